//! `patroni --generate-sample-config [FILE]`: a starting configuration for
//! this host, the way Patroni writes it.
//!
//! The sample has this host's name and first address, Patroni's logging
//! defaults, the default dynamic configuration under `bootstrap.dcs`
//! adjusted to the installed PostgreSQL major version (`wal_keep_size` or
//! `wal_keep_segments`, `wal_level`, the password method), every `PATRONI_*`
//! variable applied on top, and `#FIXME` where only the operator can know
//! the value. Sections come in Patroni's order with its comments, each
//! dumped like `yaml.safe_dump` (sorted keys).

use std::net::ToSocketAddrs;
use std::path::Path;
use std::process::Command;

use super::effective::{default_configuration, patch_config, Config};
use super::units::parse_bool;
use super::yaml::dump;
use super::{Map, Value};

/// What the operator must fill in.
pub const NO_VALUE: &str = "#FIXME";

/// Why no sample could be produced.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("Failed to get postgres version: {0}")]
    PostgresVersion(String),
    #[error("Unexpected exception: {0}")]
    Unexpected(String),
    /// A generator's own refusal, shown as it is (Patroni's
    /// `PatroniException` text).
    #[error("{0}")]
    Refused(String),
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.set(k, v);
    }
    Value::Map(m)
}

/// This host's name and its first address from `getaddrinfo`, IPv4 first.
fn host_address() -> (String, String) {
    let hostname = match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(h) if !h.trim().is_empty() => h.trim().to_owned(),
        _ => return (NO_VALUE.into(), NO_VALUE.into()),
    };
    let mut addrs: Vec<std::net::SocketAddr> = match (hostname.as_str(), 0).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(_) => return (NO_VALUE.into(), NO_VALUE.into()),
    };
    addrs.sort_by_key(|a| if a.is_ipv4() { 0 } else { 1 });
    match addrs.first() {
        Some(a) => (hostname, a.ip().to_string()),
        None => (NO_VALUE.into(), NO_VALUE.into()),
    }
}

/// `postgres --version` -> major version as Patroni's integer (`150000`).
fn postgres_major(bin_dir: &str, bin_name: &str) -> Result<i64, SampleError> {
    let binary = if bin_dir.is_empty() {
        bin_name.to_owned()
    } else {
        Path::new(bin_dir).join(bin_name).display().to_string()
    };
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .map_err(|e| SampleError::PostgresVersion(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "postgres (PostgreSQL) 15.20 (Debian ...)": the third word.
    let version = text
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| SampleError::Unexpected(format!("unexpected version output {text:?}")))?;
    let mut parts = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<i64>()
    });
    let major = parts
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| SampleError::Unexpected(format!("unexpected version {version:?}")))?;
    Ok(if major >= 10 {
        major * 10000
    } else {
        major * 10000 + parts.next().and_then(Result::ok).unwrap_or(0) * 100
    })
}

/// The starting point of both generators (Patroni's
/// `get_template_config`): this host's name and address, logging
/// defaults, `#FIXME` placeholders, the default dynamic configuration as
/// `bootstrap.dcs`, and the `PATRONI_*` environment applied on top.
pub(crate) fn template(env: &[(String, String)]) -> Result<Map, SampleError> {
    let (hostname, ip) = host_address();
    let mut config = match map(vec![
        ("scope", s(NO_VALUE)),
        ("name", s(&hostname)),
        (
            "restapi",
            map(vec![
                ("connect_address", s(&format!("{ip}:8008"))),
                ("listen", s(&format!("{ip}:8008"))),
            ]),
        ),
        (
            "log",
            map(vec![
                ("type", s("plain")),
                ("level", s("INFO")),
                ("traceback_level", s("ERROR")),
                ("format", s("%(asctime)s %(levelname)s: %(message)s")),
                ("max_queue_size", Value::Int(1000)),
            ]),
        ),
        (
            "postgresql",
            map(vec![
                ("data_dir", s(NO_VALUE)),
                ("connect_address", s(&format!("{ip}:5432"))),
                ("listen", s(&format!("{ip}:5432"))),
                ("bin_dir", s("")),
                (
                    "authentication",
                    map(vec![
                        (
                            "superuser",
                            map(vec![("username", s("postgres")), ("password", s(NO_VALUE))]),
                        ),
                        (
                            "replication",
                            map(vec![
                                ("username", s("replicator")),
                                ("password", s(NO_VALUE)),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
        (
            "tags",
            map(vec![
                ("failover_priority", Value::Int(1)),
                ("sync_priority", Value::Int(1)),
                ("noloadbalance", Value::Bool(false)),
                ("clonefrom", Value::Bool(true)),
                ("nosync", Value::Bool(false)),
                ("nostream", Value::Bool(false)),
            ]),
        ),
    ]) {
        Value::Map(m) => m,
        _ => unreachable!("map() builds a map"),
    };

    // The environment (or PATRONI_CONFIGURATION) applies on top.
    let mut local = Config::load(None, env, None)
        .map(|c| c.local_configuration().clone())
        .map_err(|e| SampleError::Unexpected(e.to_string()))?;
    let mut dynamic = default_configuration();
    dynamic.remove("standby_cluster");
    local.entry_map("bootstrap").set("dcs", Value::Map(dynamic));
    local.entry_map("postgresql");
    patch_config(&mut config, &local);
    Ok(config)
}

/// The sample configuration text (no trailing newline, like Patroni's).
pub fn generate(env: &[(String, String)]) -> Result<String, SampleError> {
    let mut config = template(env)?;
    let pg = config.entry_map("postgresql");
    let bin_dir = pg.get("bin_dir").map(|v| v.to_string()).unwrap_or_default();
    let bin_name = pg
        .get("bin_name")
        .and_then(Value::as_map)
        .and_then(|b| b.get("postgres"))
        .and_then(Value::as_str)
        .unwrap_or("postgres")
        .to_owned();
    let major = postgres_major(&bin_dir, &bin_name)?;
    let auth = if major >= 100000 {
        "scram-sha-256"
    } else {
        "md5"
    };

    let pg = config.entry_map("postgresql");
    pg.set("parameters", map(vec![("password_encryption", s(auth))]));
    let replication_user = pg
        .get("authentication")
        .and_then(Value::as_map)
        .and_then(|a| a.get("replication"))
        .and_then(Value::as_map)
        .and_then(|r| r.get("username"))
        .map(|u| u.to_string())
        .unwrap_or_else(|| "replicator".into());
    pg.set(
        "pg_hba",
        Value::Seq(vec![
            s(&format!("host all all all {auth}")),
            s(&format!("host replication {replication_user} all {auth}")),
        ]),
    );
    if major >= 110000 {
        let rewind = pg.entry_map("authentication").entry_map("rewind");
        if rewind.is_empty() {
            rewind.set("username", s("rewind_user"));
        }
        if !rewind.contains_key("password") {
            rewind.set("password", s(NO_VALUE));
        }
    }
    let dcs_pg = config
        .entry_map("bootstrap")
        .entry_map("dcs")
        .entry_map("postgresql");
    let params = dcs_pg.entry_map("parameters");
    if major < 130000 {
        params.set("wal_keep_segments", Value::Int(8));
    } else {
        params.set("wal_keep_size", s("128MB"));
    }
    params.set(
        "wal_level",
        s(if major < 90600 {
            "hot_standby"
        } else {
            "replica"
        }),
    );
    let hints = params.get("wal_log_hints").cloned().unwrap_or(Value::Null);
    dcs_pg.set(
        "use_pg_rewind",
        Value::Bool(parse_bool(&hints) == Some(true)),
    );

    Ok(format_sections(config))
}

/// One `{name: value}` block dumped and indented by `prefix`.
fn block(name: &str, value: &Value, prefix: &str) -> String {
    let mut m = Map::new();
    m.set(name, value.clone());
    let text = dump(&Value::Map(m));
    format!(
        "{prefix}{}",
        text.trim().replace('\n', &format!("\n{prefix}"))
    )
}

pub(crate) fn format_sections(mut config: Map) -> String {
    let mut lines: Vec<String> = Vec::new();
    let section = |lines: &mut Vec<String>, config: &Map, name: &str| {
        if let Some(v) = config.get(name) {
            if matches!(v, Value::Map(_)) {
                lines.push(String::new());
            }
            lines.push(block(name, v, ""));
        }
    };
    for name in [
        "scope",
        "namespace",
        "name",
        "log",
        "restapi",
        "ctl",
        "citus",
        "consul",
        "etcd",
        "etcd3",
        "exhibitor",
        "kubernetes",
        "raft",
        "zookeeper",
    ] {
        section(&mut lines, &config, name);
    }
    if let Some(Value::Map(bootstrap)) = config.get_mut("bootstrap") {
        lines.push(
            "\n# The bootstrap configuration. Works only when the cluster is not yet initialized."
                .into(),
        );
        lines.push(
            "# If the cluster is already initialized, all changes in the `bootstrap` section are ignored!"
                .into(),
        );
        lines.push("bootstrap:".into());
        if let Some(Value::Map(dcs)) = bootstrap.get_mut("dcs") {
            for comment in [
                "  # This section will be written into <dcs>:/<namespace>/<scope>/config after initializing",
                "  # new cluster and all other cluster members will use it as a `global configuration`.",
                "  # WARNING! If you want to change any of the parameters that were set up",
                "  # via `bootstrap.dcs` section, please use `patronictl edit-config`!",
                "  dcs:",
            ] {
                lines.push(comment.into());
            }
            for name in ["loop_wait", "retry_timeout", "ttl"] {
                if let Some(v) = dcs.remove(name) {
                    lines.push(block(name, &v, "    "));
                }
            }
            for (name, value) in dcs.iter() {
                lines.push(block(&name.to_string(), value, "    "));
            }
        }
    }
    for name in ["postgresql", "watchdog", "tags"] {
        section(&mut lines, &config, name);
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_in_patroni_order_with_sorted_keys() {
        let text = match generate(&[]) {
            Ok(t) => t,
            // No PostgreSQL on this machine: the error must say so.
            Err(e) => {
                assert!(
                    e.to_string().starts_with("Failed to get postgres version"),
                    "{e}"
                );
                return;
            }
        };
        assert!(text.starts_with("scope: '#FIXME'\nname: "));
        let log = text.find("\nlog:\n").expect("log section");
        let restapi = text.find("\nrestapi:\n").expect("restapi");
        let bootstrap = text.find("\nbootstrap:\n").expect("bootstrap");
        let postgresql = text.find("\npostgresql:\n").expect("postgresql");
        let tags = text.find("\ntags:\n").expect("tags");
        assert!(
            log < restapi && restapi < bootstrap && bootstrap < postgresql && postgresql < tags
        );
        assert!(text.contains("  dcs:\n    loop_wait: 10\n    retry_timeout: 10\n    ttl: 30\n"));
        assert!(text.contains("  format: '%(asctime)s %(levelname)s: %(message)s'\n"));
        assert!(!text.ends_with('\n'));
    }

    #[test]
    fn environment_applies_on_top() {
        let env = vec![
            ("PATRONI_SCOPE".to_owned(), "batman".to_owned()),
            (
                "PATRONI_RESTAPI_LISTEN".to_owned(),
                "0.0.0.0:8008".to_owned(),
            ),
        ];
        if let Ok(text) = generate(&env) {
            assert!(text.starts_with("scope: batman\n"), "{text}");
            assert!(text.contains("  listen: 0.0.0.0:8008\n"));
        }
    }
}
