//! After the first start of a new cluster: the superuser's password, the
//! `post_bootstrap` script, the replication and rewind roles (Patroni's
//! `Bootstrap.post_bootstrap`, in its order).
//!
//! Roles are created or updated with one `DO` block each, so running this
//! again (a retried bootstrap, or a custom bootstrap restoring a backup
//! that already has the roles) changes passwords instead of failing.
//! Statement logging is switched off around it so passwords do not end up
//! in the server log or in `pg_stat_statements`.

use std::ffi::OsString;
use std::path::Path;

use tokio_postgres::{Client, Config, NoTls};

use super::{run_command, shlex, BootstrapError, LOG_TARGET};
use crate::config::{Map, Value};
use crate::postgres::process::RunAs;
use crate::postgres::pystr::py_str;
use crate::postgres::query::ConnParams;
use crate::postgres::recovery::{format_dsn, pgpass_content};

/// The functions `pg_rewind` needs on the source server; Patroni grants
/// them to a dedicated rewind user (PostgreSQL 11+).
pub const REWIND_FUNCTIONS: [&str; 4] = [
    "pg_ls_dir(text, boolean, boolean)",
    "pg_stat_file(text, boolean)",
    "pg_read_binary_file(text)",
    "pg_read_binary_file(text, bigint, bigint, boolean)",
];

/// What [`post_bootstrap`] works with.
#[derive(Debug, Clone)]
pub struct PostBootstrap<'a> {
    /// The local superuser connection (`local_conn_params(.., "heartbeat")`).
    pub conn: &'a ConnParams,
    /// `postgresql.authentication.superuser`.
    pub superuser: &'a Map,
    /// `postgresql.authentication.replication`.
    pub replication: &'a Map,
    /// The rewind credentials (`authentication.rewind` on PostgreSQL 11+,
    /// else the superuser's); no separate role when equal to `superuser`.
    pub rewind: &'a Map,
    /// The `bootstrap` section (`post_bootstrap`/`post_init`, `users`).
    pub bootstrap: &'a Map,
    /// `postgresql.pgpass`: where the script's password file is written.
    pub pgpass: &'a Path,
    /// The server version number (`150004`), for the connection string.
    pub server_version: i64,
    /// Run the script as this user.
    pub run_as: Option<&'a RunAs>,
}

/// SQL string literal as psycopg's `sql.Literal` writes it without a
/// connection: quotes doubled; with a backslash, the `E''` form with
/// doubled backslashes (and psycopg's leading space).
pub fn quote_literal(text: &str) -> String {
    let doubled = text.replace('\'', "''");
    if text.contains('\\') {
        format!(" E'{}'", doubled.replace('\\', "\\\\"))
    } else {
        format!("'{doubled}'")
    }
}

/// SQL identifier, always quoted (libpq's `PQescapeIdentifier`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Patroni's `create_or_update_role` statement: `options` upper-cased,
/// `LOGIN` added unless `LOGIN`/`NOLOGIN` is given, the password (when
/// not empty) as a literal.
pub fn create_or_update_role_sql(name: &str, password: Option<&str>, options: &[&str]) -> String {
    let mut options: Vec<String> = options.iter().map(|o| o.to_uppercase()).collect();
    if !options.iter().any(|o| o == "LOGIN" || o == "NOLOGIN") {
        options.push("LOGIN".to_owned());
    }
    if let Some(password) = password.filter(|p| !p.is_empty()) {
        options.push("PASSWORD".to_owned());
        options.push(quote_literal(password));
    }
    let options = options.join(" ");
    format!(
        "DO $$\nBEGIN\n    SET local synchronous_commit = 'local';\n    \
         PERFORM * FROM pg_catalog.pg_authid WHERE rolname = {lit};\n    \
         IF FOUND THEN\n        ALTER ROLE {ident} WITH {options};\n    \
         ELSE\n        CREATE ROLE {ident} WITH {options};\n    END IF;\nEND;$$",
        lit = quote_literal(name),
        ident = quote_ident(name),
    )
}

/// The `GRANT EXECUTE` block for one of [`REWIND_FUNCTIONS`].
pub fn rewind_grant_sql(function: &str, user: &str) -> String {
    format!(
        "DO $$\nBEGIN\n    SET local synchronous_commit = 'local';\n    \
         GRANT EXECUTE ON function pg_catalog.{function} TO {};\nEND;$$",
        quote_ident(user)
    )
}

/// Settings that keep the role statements (and their passwords) out of
/// the logs, set before and reset after, as Patroni does.
const QUIET: [&str; 5] = [
    "SET log_statement TO none",
    "SET log_min_duration_statement TO -1",
    "SET log_min_error_statement TO 'log'",
    "SET pg_stat_statements.track_utility to 'off'",
    "SET pgaudit.log TO none",
];
const UNQUIET: [&str; 5] = [
    "RESET log_min_error_statement",
    "RESET log_min_duration_statement",
    "RESET log_statement",
    "RESET pg_stat_statements.track_utility",
    "RESET pgaudit.log",
];

async fn execute(client: &Client, sql: &str, what: &str) -> Result<(), BootstrapError> {
    client
        .batch_execute(sql)
        .await
        .map_err(|source| BootstrapError::Sql {
            what: what.to_owned(),
            source,
        })
}

async fn create_or_update_role(
    client: &Client,
    name: &str,
    password: Option<&str>,
    options: &[&str],
) -> Result<(), BootstrapError> {
    for sql in QUIET {
        execute(client, sql, sql).await?;
    }
    let what = format!("creating or updating the role {name}");
    let result = execute(
        client,
        &create_or_update_role_sql(name, password, options),
        &what,
    )
    .await;
    let mut reset = Ok(());
    for sql in UNQUIET {
        if let Err(e) = execute(client, sql, sql).await {
            reset = reset.and(Err(e));
        }
    }
    result.and(reset)
}

fn client_config(params: &ConnParams) -> Result<Config, BootstrapError> {
    crate::postgres::query::client_config(params)
        .map_err(|e| BootstrapError::Connect(e.to_string()))
}

async fn connect(params: &ConnParams) -> Result<Client, BootstrapError> {
    let config = client_config(params)?;
    let bound = params.connect_timeout * (config.get_hosts().len().max(1) as u32)
        + std::time::Duration::from_secs(1);
    let (client, connection) = match tokio::time::timeout(bound, config.connect(NoTls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(BootstrapError::Connect(e.to_string())),
        Err(_) => {
            return Err(BootstrapError::Connect(format!(
                "timed out after {bound:?}"
            )))
        }
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            log::debug!(target: LOG_TARGET, "post_bootstrap connection ended: {e}");
        }
    });
    Ok(client)
}

/// Writes a `.pgpass` file for `record` (see [`pgpass_content`]) with
/// mode 0600, owned by `run_as` when given. Returns the environment
/// addition (`PGPASSFILE`), or nothing when the record has no password.
pub fn write_pgpass(
    path: &Path,
    record: &Map,
    run_as: Option<&RunAs>,
) -> Result<Vec<(OsString, OsString)>, BootstrapError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let Some(content) = pgpass_content(record) else {
        return Ok(Vec::new());
    };
    let err = |source| BootstrapError::Pgpass {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    file.write_all(content.as_bytes()).map_err(err)?;
    if let Some(r) = run_as {
        std::os::unix::fs::chown(path, Some(r.uid), Some(r.gid)).map_err(err)?;
    }
    Ok(vec![(
        OsString::from("PGPASSFILE"),
        path.as_os_str().to_owned(),
    )])
}

/// The local connection as Patroni's connection keywords (`conn_kwargs`).
fn conn_kwargs(params: &ConnParams) -> Map {
    let mut map = Map::new();
    if let Some(host) = &params.host {
        map.set("host", Value::Str(host.clone()));
    }
    map.set("port", Value::Int(i64::from(params.port)));
    if let Some(user) = &params.user {
        map.set("user", Value::Str(user.clone()));
    }
    if let Some(password) = &params.password {
        map.set("password", Value::Str(password.clone()));
    }
    for (k, v) in &params.ssl {
        map.set(k, Value::Str(v.clone()));
    }
    map.set("dbname", Value::Str(params.dbname.clone()));
    map
}

/// The connection string the `post_bootstrap` script gets as its only
/// argument: the local superuser connection without the password (that
/// is in the `.pgpass` file).
pub fn post_bootstrap_connstring(params: &ConnParams, server_version: i64) -> String {
    let mut kwargs = conn_kwargs(params);
    kwargs.set("password", Value::Null);
    format_dsn(&kwargs, server_version)
}

/// Runs `bootstrap.post_bootstrap` (or the older `post_init`), if
/// configured, with the connection string as its argument, a `.pgpass`
/// file for the superuser (`PGPASSFILE`) and `PGOPTIONS` disabling
/// synchronous commit and the statement timeout. Returns whether a script
/// ran; fails when it cannot be started or exits non-zero.
pub async fn call_post_bootstrap(input: &PostBootstrap<'_>) -> Result<bool, BootstrapError> {
    let cmd = ["post_bootstrap", "post_init"]
        .iter()
        .filter_map(|k| input.bootstrap.get(k))
        .find(|v| v.truthy())
        .map(py_str);
    let Some(cmd) = cmd else {
        return Ok(false);
    };
    // A socket connection's password is found under `localhost` too.
    let mut record = Map::new();
    record.set("host", Value::Str("localhost".to_owned()));
    for (k, v) in conn_kwargs(input.conn).iter() {
        record.insert(k.clone(), v.clone());
    }
    let mut env = write_pgpass(input.pgpass, &record, input.run_as)?;
    env.push((
        OsString::from("PGOPTIONS"),
        OsString::from("-c synchronous_commit=local -c statement_timeout=0"),
    ));
    let mut argv = shlex::split(&cmd).map_err(|reason| BootstrapError::BadCommand {
        command: cmd.clone(),
        reason,
    })?;
    if argv.is_empty() {
        return Err(BootstrapError::EmptyCommand("post_bootstrap".to_owned()));
    }
    argv.push(post_bootstrap_connstring(input.conn, input.server_version));
    let status = run_command(&argv, &env, input.run_as)
        .await
        .inspect_err(|_| log::error!(target: LOG_TARGET, "post_init script {cmd} failed"))?;
    if !status.success() {
        log::error!(target: LOG_TARGET, "post_init script {cmd} returned non-zero code {}",
            status.code().unwrap_or(-1));
        return Err(BootstrapError::Failed {
            program: cmd,
            status,
        });
    }
    Ok(true)
}

/// Patroni's `post_bootstrap` for a new primary, up to (not including)
/// the custom-bootstrap follow-ups (restoring `pg_hba.conf`, removing the
/// recovery configuration, restart or reload), which are the daemon's.
///
/// Order: superuser password (when both `username` and `password` are
/// configured), the script, the replication role (`REPLICATION`), the
/// rewind role with its grants when it differs from the superuser.
pub async fn post_bootstrap(input: &PostBootstrap<'_>) -> Result<(), BootstrapError> {
    let result = post_bootstrap_inner(input).await;
    if let Err(e) = &result {
        log::error!(target: LOG_TARGET, "post_bootstrap: {e}");
    }
    result
}

async fn post_bootstrap_inner(input: &PostBootstrap<'_>) -> Result<(), BootstrapError> {
    let client = connect(input.conn).await?;
    let su = input.superuser;
    if su.contains_key("username") && su.contains_key("password") {
        let name = su.get("username").map(py_str).unwrap_or_default();
        let password = su.get("password").filter(|v| !v.is_null()).map(py_str);
        create_or_update_role(&client, &name, password.as_deref(), &["SUPERUSER"]).await?;
    }

    call_post_bootstrap(input).await?;

    let repl = input.replication;
    let repl_user = repl
        .get("username")
        .filter(|v| !v.is_null())
        .map(py_str)
        .ok_or(BootstrapError::MissingUsername("replication"))?;
    let repl_password = repl.get("password").filter(|v| !v.is_null()).map(py_str);
    create_or_update_role(
        &client,
        &repl_user,
        repl_password.as_deref(),
        &["REPLICATION"],
    )
    .await?;

    if input.rewind != input.superuser {
        let user = input
            .rewind
            .get("username")
            .filter(|v| !v.is_null())
            .map(py_str)
            .ok_or(BootstrapError::MissingUsername("rewind"))?;
        let password = input
            .rewind
            .get("password")
            .filter(|v| !v.is_null())
            .map(py_str);
        create_or_update_role(&client, &user, password.as_deref(), &[]).await?;
        for function in REWIND_FUNCTIONS {
            let what = format!("granting {function} to {user}");
            execute(&client, &rewind_grant_sql(function, &user), &what).await?;
        }
    }

    if input.bootstrap.get("users").is_some_and(Value::truthy) {
        log::error!(target: LOG_TARGET,
            "User creation is not be supported starting from v4.0.0. \
             Please use \"bootstrap.post_bootstrap\" script to create users.");
    }
    Ok(())
}
