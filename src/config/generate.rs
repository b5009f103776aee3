//! `patroni --generate-config [--dsn DSN] [FILE]`: a configuration for an
//! existing PostgreSQL instance, read from the running server.
//!
//! Starts from the same template as the sample (this host, `#FIXME`
//! placeholders, the default dynamic configuration, `PATRONI_*` on top),
//! then asks the server: the settings that come from its configuration
//! files, command line or environment go to `bootstrap.dcs` (commands and
//! file locations stay local, for safety), `cluster_name` becomes the
//! scope, `listen_addresses`/`port` the listen address; `pg_hba.conf` and
//! `pg_ident.conf` are copied when they are the data directory's own; the
//! binaries' directory is the running postmaster's. The superuser section
//! holds what the connection used (from the DSN or the `PG*` variables).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use super::sample::{format_sections, template, SampleError, NO_VALUE};
use super::units::parse_bool;
use super::{Map, Value};
use crate::postgres::dsn::parse_dsn;
use crate::postgres::params::CMDLINE_OPTIONS;
use crate::postgres::query::{ConnParams, MonitorOptions, PgMonitor};

/// Connection parameters Patroni copies into the superuser section, and
/// the libpq variable each falls back to.
const AUTH_PARAMETERS: [(&str, &str); 12] = [
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("sslmode", "PGSSLMODE"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslpassword", ""),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("gssencmode", "PGGSSENCMODE"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("sslnegotiation", "PGSSLNEGOTIATION"),
];

/// The first server version that knows these connection parameters.
const AUTH_PARAMETER_VERSIONS: [(&str, i64); 5] = [
    ("gssencmode", 120000),
    ("channel_binding", 130000),
    ("sslpassword", 130000),
    ("sslcrldir", 140000),
    ("sslnegotiation", 170000),
];

/// Settings kept in the local `postgresql.parameters` (commands and file
/// locations), not in the dynamic configuration.
const LOCAL_PARAMETERS: [&str; 8] = [
    "archive_command",
    "restore_command",
    "archive_cleanup_command",
    "recovery_end_command",
    "ssl_passphrase_command",
    "hba_file",
    "ident_file",
    "config_file",
];

fn refused(text: impl Into<String>) -> SampleError {
    SampleError::Refused(text.into())
}

fn env_var<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

/// The configuration text for the instance the DSN (or the `PG*`
/// variables) lead to.
pub fn generate(env: &[(String, String)], dsn: Option<&str>) -> Result<String, SampleError> {
    let mut config = template(env)?;
    let parsed = match dsn {
        Some(d) => parse_dsn(d).ok_or_else(|| refused("Failed to parse DSN string"))?,
        None => Vec::new(),
    };
    let from_dsn = |key: &str| {
        parsed
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };

    // The superuser section: what the DSN says, else the environment.
    let mut su: Vec<(String, String)> = Vec::new();
    for (param, var) in AUTH_PARAMETERS {
        let value = from_dsn(param).or_else(|| env_var(env, var).map(str::to_owned));
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            su.push((param.to_owned(), v));
        }
    }
    let user = take(&mut su, "user")
        .or_else(|| configured_superuser(&config, "username"))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(os_user);
    let password = match su
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.clone())
        .or_else(|| configured_superuser(&config, "password"))
        .filter(|p| !p.is_empty())
    {
        Some(p) => p,
        None => ask_password()?,
    };
    set_pair(&mut su, "password", password.clone());

    let params = conn_params(env, &parsed, &user, &password)?;
    let server = read_server(params)?;
    su.retain(|(k, _)| {
        AUTH_PARAMETER_VERSIONS
            .iter()
            .all(|(name, min)| k != name || server.version >= *min)
    });
    if !server.is_superuser {
        return Err(refused(
            "The provided user does not have superuser privilege",
        ));
    }

    let mut superuser = Map::new();
    superuser.set("username", s(&user));
    for (k, v) in &su {
        superuser.set(k, s(v));
    }
    let mut replication = Map::new();
    replication.set("username", s(NO_VALUE));
    replication.set("password", s(NO_VALUE));
    let mut auth = Map::new();
    auth.set("superuser", Value::Map(superuser));
    auth.set("replication", Value::Map(replication));
    config
        .entry_map("postgresql")
        .set("authentication", Value::Map(auth));

    apply_settings(&mut config, &server.settings, from_dsn("port"), env);
    copy_conf_files(&mut config, server.version)?;
    let data_dir = config_str(&config, "data_dir");
    let bin_dir = postmaster_bin_dir(Path::new(&data_dir))?;
    config.entry_map("postgresql").set("bin_dir", s(&bin_dir));
    Ok(format_sections(config))
}

fn take(pairs: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let i = pairs.iter().position(|(k, _)| k == key)?;
    Some(pairs.remove(i).1)
}

fn set_pair(pairs: &mut Vec<(String, String)>, key: &str, value: String) {
    match pairs.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => pairs.push((key.to_owned(), value)),
    }
}

/// Patroni looks for a top-level `authentication.superuser` here (which a
/// configuration does not normally have), then falls back.
fn configured_superuser(config: &Map, key: &str) -> Option<String> {
    str_at(config, &["authentication", "superuser", key])
}

/// The string at a path of nested mappings.
fn str_at(config: &Map, path: &[&str]) -> Option<String> {
    let (last, sections) = path.split_last()?;
    let mut map = config;
    for section in sections {
        map = map.get(section).and_then(Value::as_map)?;
    }
    map.get(last).and_then(Value::as_str).map(str::to_owned)
}

fn os_user() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; the
    // name is copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// `getpass`: from the terminal without echo, else a line of stdin.
fn ask_password() -> Result<String, SampleError> {
    let mut err = std::io::stderr();
    let _ = write!(err, "Please enter the user password:");
    let _ = err.flush();
    let stdin = std::io::stdin();
    let fd = libc::STDIN_FILENO;
    let tty = stdin.is_terminal();
    // SAFETY: termios calls on stdin with a zeroed struct filled by tcgetattr.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        (tty && libc::tcgetattr(fd, &mut t) == 0).then(|| {
            let mut quiet = t;
            quiet.c_lflag &= !libc::ECHO;
            libc::tcsetattr(fd, libc::TCSANOW, &quiet);
            t
        })
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the attributes read above.
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
    }
    let _ = writeln!(err);
    match read {
        Ok(0) | Err(_) => Err(refused("Unexpected exception: EOF when reading a line")),
        Ok(_) => Ok(line.trim_end_matches(['\n', '\r']).to_owned()),
    }
}

/// The connection, as libpq would make it from the DSN and the `PG*`
/// variables: the first host (or the default socket directories), the
/// first port, the user as database by default.
fn conn_params(
    env: &[(String, String)],
    parsed: &[(String, String)],
    user: &str,
    password: &str,
) -> Result<ConnParams, SampleError> {
    let get = |key: &str, var: &str| {
        parsed
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .or_else(|| env_var(env, var).map(str::to_owned))
            .filter(|v| !v.is_empty())
    };
    let first = |v: String| v.split(',').next().unwrap_or_default().to_owned();
    let host = get("host", "PGHOST").map(first).filter(|h| !h.is_empty());
    let port = match get("port", "PGPORT").map(first).filter(|p| !p.is_empty()) {
        Some(p) => p.parse::<u16>().map_err(|_| {
            refused(format!(
                "Failed to establish PostgreSQL connection: invalid port number: \"{p}\""
            ))
        })?,
        None => 5432,
    };
    let mut ssl = Vec::new();
    for key in ["sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl"] {
        let var = format!("PG{}", key.to_uppercase());
        if let Some(v) = get(key, &var) {
            ssl.push((key.to_owned(), v));
        }
    }
    Ok(ConnParams {
        host,
        port,
        user: Some(user.to_owned()),
        password: Some(password.to_owned()),
        dbname: get("dbname", "PGDATABASE").unwrap_or_else(|| user.to_owned()),
        application_name: "Patroni".to_owned(),
        connect_timeout: Duration::from_secs(10),
        options: String::new(),
        ssl,
    })
}

struct Server {
    version: i64,
    is_superuser: bool,
    /// `(name, current_setting(name))` in `pg_settings` order.
    settings: Vec<(String, String)>,
}

fn read_server(params: ConnParams) -> Result<Server, SampleError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SampleError::Unexpected(e.to_string()))?;
    let failed = |e: crate::postgres::query::QueryError| {
        refused(format!("Failed to establish PostgreSQL connection: {e}"))
    };
    runtime.block_on(async move {
        let monitor = PgMonitor::new(
            params,
            MonitorOptions {
                query_timeout: Duration::from_secs(30),
            },
        );
        let rows = monitor
            .query(
                "SELECT pg_catalog.current_setting('server_version_num')::int, \
                 pg_catalog.current_setting('is_superuser')",
                &[],
            )
            .await
            .map_err(failed)?;
        let row = rows
            .first()
            .ok_or_else(|| refused("no answer from PostgreSQL"))?;
        let version: i32 = row
            .try_get(0)
            .map_err(|e| SampleError::Unexpected(e.to_string()))?;
        let su: String = row
            .try_get(1)
            .map_err(|e| SampleError::Unexpected(e.to_string()))?;
        let required: Vec<String> = ["hba_file", "ident_file", "config_file", "data_directory"]
            .into_iter()
            .chain(CMDLINE_OPTIONS.iter().map(|(n, _)| *n))
            .map(str::to_owned)
            .collect();
        let rows = monitor
            .query(
                "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings \
                 WHERE context <> 'internal' \
                 AND source IN ('configuration file', 'command line', 'environment variable') \
                 AND category <> 'Write-Ahead Log / Recovery Target' \
                 AND setting <> '(disabled)' \
                 OR name = ANY($1)",
                &[&required],
            )
            .await
            .map_err(failed)?;
        monitor.close().await;
        let mut settings = Vec::new();
        for row in rows {
            let name: String = row
                .try_get(0)
                .map_err(|e| SampleError::Unexpected(e.to_string()))?;
            let value: String = row
                .try_get(1)
                .map_err(|e| SampleError::Unexpected(e.to_string()))?;
            settings.push((name, value));
        }
        Ok(Server {
            version: i64::from(version),
            is_superuser: parse_bool(&Value::Str(su)) == Some(true),
            settings,
        })
    })
}

fn config_str(config: &Map, key: &str) -> String {
    config
        .get("postgresql")
        .and_then(Value::as_map)
        .and_then(|p| p.get(key))
        .map(|v| match v {
            Value::Str(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// Where each setting goes (Patroni's `_set_pg_params`).
fn apply_settings(
    config: &mut Map,
    settings: &[(String, String)],
    dsn_port: Option<String>,
    env: &[(String, String)],
) {
    let (mut port, mut listen) = (None, None);
    for (name, value) in settings {
        match name.as_str() {
            "data_directory" => config.entry_map("postgresql").set("data_dir", s(value)),
            "cluster_name" if !value.is_empty() => config.set("scope", s(value)),
            n if LOCAL_PARAMETERS.contains(&n) => config
                .entry_map("postgresql")
                .entry_map("parameters")
                .set(n, s(value)),
            "port" => port = Some(value.clone()),
            "listen_addresses" => listen = Some(value.clone()),
            n => config
                .entry_map("bootstrap")
                .entry_map("dcs")
                .entry_map("postgresql")
                .entry_map("parameters")
                .set(n, s(value)),
        }
    }
    let connect = config_str(config, "connect_address");
    let ip = connect.split(':').next().unwrap_or_default().to_owned();
    let connect_port = dsn_port
        .or_else(|| env_var(env, "PGPORT").map(str::to_owned))
        .or_else(|| port.clone())
        .unwrap_or_else(|| "None".to_owned());
    let pg = config.entry_map("postgresql");
    pg.set("connect_address", s(&format!("{ip}:{connect_port}")));
    let show = |v: Option<String>| v.unwrap_or_else(|| "None".to_owned());
    pg.set("listen", s(&format!("{}:{}", show(listen), show(port))));
}

/// The stripped, non-empty lines of a file.
fn stripped_lines(path: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// `pg_hba` and `pg_ident` from the data directory's own files (one kept
/// elsewhere may not be writable by Patroni, so it is left alone).
fn copy_conf_files(config: &mut Map, version: i64) -> Result<(), SampleError> {
    let data_dir = config_str(config, "data_dir");
    let local = |config: &Map, key: &str| str_at(config, &["postgresql", "parameters", key]);
    let mut kinds = vec![
        "local",
        "host",
        "hostssl",
        "hostnossl",
        "hostgssenc",
        "hostnogssenc",
    ];
    if version >= 160000 {
        kinds.extend(["include", "include_if_exists", "include_dir"]);
    }
    let hba = format!("{data_dir}/pg_hba.conf");
    if local(config, "hba_file").as_deref() == Some(hba.as_str()) {
        let lines = stripped_lines(Path::new(&hba))
            .map_err(|e| refused(format!("Failed to read pg_hba.conf: {e}")))?;
        let rules: Vec<Value> = lines
            .into_iter()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|k| kinds.contains(&k))
            })
            .map(Value::Str)
            .collect();
        config
            .entry_map("postgresql")
            .set("pg_hba", Value::Seq(rules));
    }
    let ident = format!("{data_dir}/pg_ident.conf");
    if local(config, "ident_file").as_deref() == Some(ident.as_str()) {
        let lines = stripped_lines(Path::new(&ident))
            .map_err(|e| refused(format!("Failed to read pg_ident.conf: {e}")))?;
        let maps: Vec<Value> = lines
            .into_iter()
            .filter(|l| !l.starts_with('#'))
            .map(Value::Str)
            .collect();
        if !maps.is_empty() {
            config
                .entry_map("postgresql")
                .set("pg_ident", Value::Seq(maps));
        }
    }
    Ok(())
}

/// The directory of the running postmaster's executable.
fn postmaster_bin_dir(data_dir: &Path) -> Result<String, SampleError> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .map_err(|e| refused(format!("Error while reading postmaster.pid file: {e}")))?;
    let first = text.lines().next().unwrap_or_default().trim();
    if first.is_empty() {
        return Err(refused(
            "Failed to obtain postmaster pid from postmaster.pid file",
        ));
    }
    let pid: u32 = first.parse().map_err(|_| {
        SampleError::Unexpected(format!("invalid literal for int() with base 10: '{first}'"))
    })?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map_err(|_| refused("Obtained postmaster pid doesn't exist."))?;
    Ok(exe
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_are_sorted_into_local_and_dynamic() {
        let mut config = Map::new();
        config
            .entry_map("postgresql")
            .set("connect_address", s("10.0.0.5:5432"));
        apply_settings(
            &mut config,
            &settings(&[
                ("archive_command", "cp %p /a/%f"),
                ("cluster_name", "main"),
                ("data_directory", "/srv/pg"),
                ("listen_addresses", "*"),
                ("max_connections", "200"),
                ("port", "5433"),
            ]),
            None,
            &[],
        );
        let pg = config
            .get("postgresql")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(config.get("scope"), Some(&s("main")));
        assert_eq!(pg.get("data_dir"), Some(&s("/srv/pg")));
        assert_eq!(pg.get("connect_address"), Some(&s("10.0.0.5:5433")));
        assert_eq!(pg.get("listen"), Some(&s("*:5433")));
        let local = pg
            .get("parameters")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(local.get("archive_command"), Some(&s("cp %p /a/%f")));
        let dcs = config
            .get("bootstrap")
            .and_then(|b| b.as_map()?.get("dcs"))
            .and_then(|d| d.as_map()?.get("postgresql"))
            .and_then(|p| p.as_map()?.get("parameters"))
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(dcs.get("max_connections"), Some(&s("200")));
        assert!(dcs.get("archive_command").is_none());
        // A port from the DSN wins for the connect address.
        apply_settings(
            &mut config,
            &settings(&[("port", "5433")]),
            Some("6000".into()),
            &[],
        );
        let pg = config
            .get("postgresql")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(pg.get("connect_address"), Some(&s("10.0.0.5:6000")));
    }

    #[test]
    fn a_missing_postmaster_pid_is_reported() {
        let e = postmaster_bin_dir(Path::new("/nonexistent"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.starts_with("Error while reading postmaster.pid file")));
    }

    #[test]
    fn a_broken_dsn_is_refused_before_connecting() {
        let e = generate(&[], Some("host=a foo = '"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("Failed to parse DSN string"));
    }
}
