//! Creating a replica's data directory (Patroni's `create_replica` and
//! `basebackup`) and removing a data directory (`remove_data_directory`).
//!
//! The methods of `postgresql.create_replica_methods` (default
//! `basebackup`) are tried in order until one succeeds:
//!
//! - `basebackup` runs `pg_basebackup --pgdata=<data_dir> -X stream
//!   --dbname=<connstring>` plus the `postgresql.basebackup` options, and
//!   tries twice with a pause in between (5 seconds in Patroni).
//! - any other name runs the command of the `postgresql.<method>` section
//!   (or the method name itself) with `--scope=`, `--role=replica`,
//!   `--datadir=`, `--connstring=` and the section's other keys, unless
//!   `no_params` is set.
//!
//! The connection string is the source member's connection keywords with
//! the replication credentials, without the password: that goes into the
//! `.pgpass` file named by `PGPASSFILE`. Whatever a failed attempt left in
//! the data directory is removed, so the next method (or the next HA
//! cycle) starts from an empty directory. Dropping the future kills the
//! running command: that is how the daemon cancels a replica creation.

mod remove;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::config::{Map, Value};
use crate::postgres::bootstrap::roles::write_pgpass;
use crate::postgres::bootstrap::{
    process_user_options, run_command, shlex_split, BootstrapError, PgCommands,
};
use crate::postgres::process::RunAs;
use crate::postgres::pystr::py_str;
use crate::postgres::recovery::{format_dsn, ReplicationSource};

pub use remove::{data_directory_empty, move_data_directory, remove_data_directory, RemoveError};

const LOG_TARGET: &str = "patroni.postgresql.bootstrap";

/// How long Patroni waits before the second `pg_basebackup` attempt.
pub const BASEBACKUP_RETRY_SLEEP: Duration = Duration::from_secs(5);

/// How many times `pg_basebackup` is tried.
const BASEBACKUP_ATTEMPTS: u32 = 2;

/// Why no replica was created.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// Without a member to copy from, only methods with `no_leader` work,
    /// and none was configured.
    #[error("no replica creation method can work without a replication connection")]
    NoUsableMethod,
    /// Every method failed; the last failure is given.
    #[error("replica creation failed, last method {method}: {reason}")]
    AllFailed { method: String, reason: String },
    #[error(transparent)]
    Setup(#[from] BootstrapError),
}

/// What [`create_replica`] works with.
#[derive(Debug, Clone)]
pub struct ReplicaInput<'a> {
    pub data_dir: &'a Path,
    pub commands: &'a PgCommands,
    /// The cluster name (`scope`), passed to custom methods.
    pub scope: &'a str,
    /// The `postgresql` configuration section: `create_replica_methods`
    /// (or the older `create_replica_method`), `basebackup` and each
    /// custom method's section.
    pub postgresql: &'a Map,
    /// Methods to use instead of the configured ones: `["basebackup"]`
    /// for a reinit from the leader, or a remote member's methods.
    pub methods: Option<Vec<String>>,
    /// The member to copy from; `None` when there is none (only methods
    /// with `no_leader` are tried then).
    pub source: Option<&'a ReplicationSource>,
    /// `postgresql.authentication.replication`.
    pub replication: Option<&'a Map>,
    /// `postgresql.pgpass`.
    pub pgpass: &'a Path,
    /// The PostgreSQL version number of the binaries (`150004`).
    pub pg_version: i64,
    /// The pause between the two `pg_basebackup` attempts
    /// ([`BASEBACKUP_RETRY_SLEEP`] in production).
    pub retry_sleep: Duration,
    pub run_as: Option<&'a RunAs>,
}

/// The configured methods, in order (default `basebackup`).
pub fn configured_methods(postgresql: &Map) -> Vec<String> {
    let list = ["create_replica_methods", "create_replica_method"]
        .iter()
        .filter_map(|k| postgresql.get(k))
        .find(|v| v.truthy());
    match list {
        Some(Value::Seq(items)) => items.iter().map(py_str).collect(),
        Some(other) => vec![py_str(other)],
        None => vec!["basebackup".to_owned()],
    }
}

/// A method's section (`postgresql.<method>`), empty when absent.
fn method_options(postgresql: &Map, method: &str) -> Value {
    match postgresql.get(method) {
        Some(v) if v.truthy() => v.clone(),
        _ => Value::Map(Map::new()),
    }
}

/// Whether `method` can run without a member to copy from (`no_leader`).
pub fn works_without_leader(postgresql: &Map, method: &str) -> bool {
    method != "basebackup"
        && matches!(method_options(postgresql, method), Value::Map(m)
            if m.get("no_leader").is_some_and(Value::truthy))
}

/// The options refused for `pg_basebackup` (Patroni passes these itself,
/// or they would produce something else than a data directory).
fn basebackup_not_allowed(pg_version: i64) -> Vec<&'static str> {
    let mut list = vec![
        "pgdata",
        "format",
        "wal-method",
        "xlog-method",
        "gzip",
        "version",
        "dbname",
        "host",
        "port",
        "username",
        "password",
    ];
    if pg_version < 150000 {
        list.push("compress");
    }
    list
}

/// The `pg_basebackup` command line. Refused options are logged and
/// left out, as Patroni does; on PostgreSQL 15+ only server-side
/// `--compress` is kept.
pub fn basebackup_argv(
    commands: &PgCommands,
    data_dir: &Path,
    connstring: &str,
    options: &Value,
    pg_version: i64,
) -> Vec<String> {
    let not_allowed = basebackup_not_allowed(pg_version);
    let mut user = process_user_options("basebackup", options, &not_allowed, &mut |e| {
        log::error!(target: LOG_TARGET, "{e}");
    });
    if pg_version >= 150000 {
        user.retain(|opt| {
            let keep = !opt.starts_with("--compress=") || opt.starts_with("--compress=server");
            if !keep {
                log::error!(target: LOG_TARGET,
                    "compress option for basebackup must use server-side compression \
                     (e.g., server-gzip, server-zstd). Client-side compression is not allowed.");
            }
            keep
        });
    }
    let mut argv = vec![
        commands.program("pg_basebackup").display().to_string(),
        format!("--pgdata={}", data_dir.display()),
        "-X".to_owned(),
        "stream".to_owned(),
        format!("--dbname={connstring}"),
    ];
    argv.extend(user);
    // Flushed with one syncfs once the copy is complete (see `durable`).
    argv.push(super::durable::NO_SYNC.to_owned());
    argv
}

/// The command line of a custom method, and whether its leftovers are
/// kept after a failure (`keep_data`, unless `no_params` dropped it).
pub fn custom_method_argv(
    method: &str,
    options: &Value,
    scope: &str,
    data_dir: &Path,
    connstring: &str,
) -> Result<(Vec<String>, bool), BootstrapError> {
    let mut config = match options {
        Value::Map(m) => m.clone(),
        _ => Map::new(),
    };
    let command = config
        .remove("command")
        .map(|v| py_str(&v))
        .unwrap_or_else(|| method.to_owned());
    if config.get("no_params").is_some_and(Value::truthy) {
        for key in ["no_params", "no_leader", "keep_data"] {
            config.remove(key);
        }
    } else {
        config.set("scope", Value::Str(scope.to_owned()));
        config.set("role", Value::Str("replica".to_owned()));
        config.set("datadir", Value::Str(data_dir.display().to_string()));
        config.set("connstring", Value::Str(connstring.to_owned()));
    }
    let mut argv = shlex_split(&command).map_err(|reason| BootstrapError::BadCommand {
        command: command.clone(),
        reason,
    })?;
    if argv.is_empty() {
        return Err(BootstrapError::EmptyCommand(method.to_owned()));
    }
    for (key, value) in config.iter() {
        argv.push(format!("--{}={}", py_str(key), py_str(value)));
    }
    let keep_data = config.get("keep_data").is_some_and(Value::truthy);
    Ok((argv, keep_data))
}

/// Removes what a failed attempt left, logging (not failing on) errors:
/// the caller reports the attempt's own failure. Runs on the blocking
/// pool: a large data directory takes a while to delete.
async fn clean(data_dir: &Path) {
    if data_directory_empty(data_dir) {
        return;
    }
    let path = data_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || remove_data_directory(&path)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::error!(target: LOG_TARGET, "{e}"),
        Err(e) => log::error!(target: LOG_TARGET, "removing {} failed: {e}", data_dir.display()),
    }
}

/// Patroni's `basebackup`: up to two attempts, the data directory emptied
/// before each and after the last failed one.
async fn basebackup(
    input: &ReplicaInput<'_>,
    connstring: &str,
    env: &[(OsString, OsString)],
) -> Result<(), String> {
    let options = method_options(input.postgresql, "basebackup");
    let argv = basebackup_argv(
        input.commands,
        input.data_dir,
        connstring,
        &options,
        input.pg_version,
    );
    let mut last = String::new();
    for attempt in 0..BASEBACKUP_ATTEMPTS {
        clean(input.data_dir).await;
        log::debug!(target: LOG_TARGET, "calling: {argv:?}");
        match run_command(&argv, env, input.run_as).await {
            Ok(status) if status.success() => {
                return super::durable::sync_data_directory(input.data_dir)
                    .await
                    .map_err(|e| format!("cannot flush the new replica to disk: {e}"));
            }
            Ok(status) => {
                last = format!(
                    "pg_basebackup exited with code={}",
                    status.code().unwrap_or(-1)
                );
                log::error!(target: LOG_TARGET, "Error when fetching backup: {last}");
            }
            Err(e) => {
                last = e.to_string();
                log::error!(target: LOG_TARGET, "Error when fetching backup with pg_basebackup: {e}");
            }
        }
        if attempt + 1 < BASEBACKUP_ATTEMPTS {
            log::warn!(target: LOG_TARGET, "Trying again in {} seconds", input.retry_sleep.as_secs());
            tokio::time::sleep(input.retry_sleep).await;
        } else {
            clean(input.data_dir).await;
        }
    }
    Err(last)
}

/// Runs one custom method; its leftovers are removed after a failure
/// unless `keep_data` says otherwise.
async fn custom_method(
    input: &ReplicaInput<'_>,
    method: &str,
    connstring: &str,
    env: &[(OsString, OsString)],
) -> Result<(), String> {
    let options = method_options(input.postgresql, method);
    let keep_before =
        matches!(&options, Value::Map(m) if m.get("keep_data").is_some_and(Value::truthy));
    if !data_directory_empty(input.data_dir) {
        if keep_before {
            log::info!(target: LOG_TARGET, "Leaving data directory uncleaned");
        } else {
            clean(input.data_dir).await;
        }
    }
    let (argv, keep_data) =
        custom_method_argv(method, &options, input.scope, input.data_dir, connstring)
            .map_err(|e| e.to_string())?;
    let result = match run_command(&argv, env, input.run_as).await {
        Ok(status) if status.success() => return Ok(()),
        Ok(status) => {
            let code = status.code().unwrap_or(-1);
            log::error!(target: LOG_TARGET,
                "Error creating replica using method {method}: {} exited with code={code}", argv[0]);
            format!("{} exited with code={code}", argv[0])
        }
        Err(e) => {
            log::error!(target: LOG_TARGET, "Error creating replica using method {method}: {e}");
            e.to_string()
        }
    };
    if !keep_data {
        clean(input.data_dir).await;
    }
    Err(result)
}

/// Creates the data directory of a replica (Patroni's `create_replica`).
/// Returns the method that succeeded. On failure the data directory is
/// left empty (removed), except for the leftovers of a custom method with
/// `keep_data`.
pub async fn create_replica(input: &ReplicaInput<'_>) -> Result<String, ReplicaError> {
    let mut methods = input
        .methods
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| configured_methods(input.postgresql));
    let (connstring, env) = match input.source {
        Some(source) => {
            let kwargs = source.conn_kwargs_with_auth(input.replication);
            let env = write_pgpass(input.pgpass, &kwargs, input.run_as)?;
            let mut without_password = kwargs.clone();
            without_password.set("password", Value::Null);
            (format_dsn(&without_password, input.pg_version), env)
        }
        None => {
            methods.retain(|m| works_without_leader(input.postgresql, m));
            (String::new(), Vec::new())
        }
    };
    if methods.is_empty() {
        return Err(ReplicaError::NoUsableMethod);
    }
    let mut last = (String::new(), String::new());
    for method in &methods {
        let result = if method == "basebackup" {
            basebackup(input, &connstring, &env).await
        } else {
            custom_method(input, method, &connstring, &env).await
        };
        match result {
            Ok(()) => {
                log::info!(target: LOG_TARGET, "replica has been created using {method}");
                return Ok(method.clone());
            }
            Err(reason) => last = (method.clone(), reason),
        }
    }
    Err(ReplicaError::AllFailed {
        method: last.0,
        reason: last.1,
    })
}

#[cfg(test)]
mod tests;
