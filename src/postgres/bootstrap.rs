//! Creating a new cluster: `initdb` or a custom bootstrap command, the
//! `bootstrap.pg_hba` lines, and (in [`roles`]) the roles and the
//! `post_bootstrap` script once the new primary is up.
//!
//! Everything here follows Patroni 4.1's `Bootstrap` class:
//!
//! - `initdb` is run directly (`<bin_dir>/initdb [options] <data_dir>`,
//!   not through `pg_ctl initdb`), with the user's options from
//!   `bootstrap.initdb`, then `--username=` and a temporary `--pwfile=`
//!   for the superuser. The password file is created with mode 0600 and
//!   removed whatever the outcome.
//! - A custom bootstrap runs `bootstrap.<method>.command` (split like a
//!   shell would, without a shell) with `--scope=` and `--datadir=` and the
//!   section's other keys as `--key=value`.
//! - `bootstrap.pg_hba` lines are appended to the new `pg_hba.conf` unless
//!   the configuration manages that file itself (`postgresql.pg_hba` or an
//!   `hba_file` parameter).
//!
//! Commands inherit the daemon's stdout and stderr, as in Patroni, and are
//! killed when the future running them is dropped: that is how the daemon
//! cancels a bootstrap.

pub mod roles;
mod shlex;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use tokio::process::Command;

use crate::config::{Map, Value};
use crate::postgres::process::RunAs;
use crate::postgres::pystr::py_str;

pub use roles::{call_post_bootstrap, create_or_update_role_sql, post_bootstrap, PostBootstrap};
pub use shlex::split as shlex_split;

const LOG_TARGET: &str = "patroni.postgresql.bootstrap";

/// Options `initdb` must not be given by the user: Patroni sets them
/// itself or they would make `initdb` do something else than initialise.
pub const INITDB_NOT_ALLOWED: [&str; 5] = ["pgdata", "nosync", "pwfile", "sync-only", "version"];

/// Why a bootstrap step failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A `bootstrap.initdb` (or other tool's) option was refused; the text
    /// is Patroni's.
    #[error("{0}")]
    Options(String),
    #[error("could not write the temporary password file: {0}")]
    PasswordFile(#[source] std::io::Error),
    /// The new data directory could not be flushed to disk.
    #[error("could not flush the new data directory to disk: {0}")]
    Sync(#[source] std::io::Error),
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status})")]
    Failed { program: String, status: ExitStatus },
    #[error("the {0} command is empty")]
    EmptyCommand(String),
    #[error("could not parse the command {command:?}: {reason}")]
    BadCommand { command: String, reason: String },
    #[error("bootstrap.{method} must be a mapping with a command")]
    BadMethod { method: String },
    #[error("could not append to {path}: {source}")]
    PgHba {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("postgresql.authentication.{0}.username is not set")]
    MissingUsername(&'static str),
    #[error("could not connect to PostgreSQL: {0}")]
    Connect(String),
    #[error("{what} failed: {source}")]
    Sql {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("could not write the password file {path}: {source}")]
    Pgpass {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Patroni's `unquote`: a value that is one fully quoted shell word loses
/// its quotes (`'"a b"'` becomes `a b`); anything else is kept as written.
pub fn unquote(text: &str) -> String {
    match shlex::split(text) {
        Ok(mut words) if words.len() == 1 => words.pop().unwrap_or_default(),
        _ => text.to_owned(),
    }
}

/// Patroni's `process_user_options`: a tool's options from the
/// configuration (a list of `"flag"` strings and one-key `{key: value}`
/// maps, or a plain map) as long options (`--flag`, `--key=value`).
///
/// Every problem is reported to `on_error` with Patroni's message; the
/// offending item is skipped. `initdb` treats the first one as fatal,
/// `pg_basebackup` only logs them, so the caller decides.
pub fn process_user_options(
    tool: &str,
    options: &Value,
    not_allowed: &[&str],
    on_error: &mut dyn FnMut(String),
) -> Vec<String> {
    let allowed = |name: &str, on_error: &mut dyn FnMut(String)| {
        let ok = !not_allowed.contains(&name);
        if !ok {
            on_error(format!("{name} option for {tool} is not allowed"));
        }
        ok
    };
    let mut out = Vec::new();
    match options {
        Value::Map(map) => {
            for (key, value) in map.iter() {
                let key = py_str(key);
                if !key.is_empty() && value.truthy() && allowed(&key, on_error) {
                    out.push(format!("--{key}={}", unquote(&py_str(value))));
                }
            }
        }
        Value::Seq(items) => {
            for item in items {
                match item {
                    // A refused item is reported twice, as in Patroni: once
                    // as refused, once as not parseable.
                    Value::Str(flag) if allowed(flag, on_error) => {
                        out.push(format!("--{flag}"));
                    }
                    Value::Map(pair) => {
                        let first = pair.iter().next();
                        match first {
                            Some((key, Value::Str(value)))
                                if pair.len() == 1 && allowed(&py_str(key), on_error) =>
                            {
                                out.push(format!("--{}={}", py_str(key), unquote(value)));
                            }
                            _ => on_error(format!(
                                "Error when parsing {tool} key-value option {}: only one key-value is \
                                 allowed and value should be a string",
                                first.map(|(_, v)| py_repr_value(v)).unwrap_or_default()
                            )),
                        }
                    }
                    other => on_error(format!(
                        "Error when parsing {tool} option {}: value should be string value or a \
                         single key-value pair",
                        py_repr_value(other)
                    )),
                }
            }
        }
        _ => on_error(format!("{tool} options must be list or dict")),
    }
    out
}

/// How Python's `str.format` shows a value inside an error message.
fn py_repr_value(value: &Value) -> String {
    py_str(value)
}

/// Where the PostgreSQL programs are: `postgresql.bin_dir` and the
/// `postgresql.bin_name` overrides, as Patroni's `pgcommand`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgCommands {
    pub bin_dir: Option<PathBuf>,
    /// `bin_name`: program name overrides (`initdb`, `pg_basebackup`, ...).
    pub bin_name: BTreeMap<String, String>,
}

impl PgCommands {
    /// From the `postgresql` configuration section.
    pub fn from_config(postgresql: &Map) -> PgCommands {
        let bin_dir = postgresql
            .get("bin_dir")
            .filter(|v| v.truthy())
            .map(|v| PathBuf::from(py_str(v)));
        let mut bin_name = BTreeMap::new();
        if let Some(Value::Map(names)) = postgresql.get("bin_name") {
            for (k, v) in names.str_entries() {
                if let Value::Str(name) = v {
                    bin_name.insert(k.to_owned(), name.clone());
                }
            }
        }
        PgCommands { bin_dir, bin_name }
    }

    /// The path of program `name` (a bare name, looked up on `PATH`,
    /// without a `bin_dir`).
    pub fn program(&self, name: &str) -> PathBuf {
        let name = self.bin_name.get(name).map_or(name, String::as_str);
        match &self.bin_dir {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
            _ => PathBuf::from(name),
        }
    }
}

/// Runs `argv` to completion with the daemon's environment plus `env`,
/// stdout and stderr inherited, as `run_as` if given. The child is killed
/// if the returned future is dropped.
pub(crate) async fn run_command(
    argv: &[String],
    env: &[(OsString, OsString)],
    run_as: Option<&RunAs>,
) -> Result<ExitStatus, BootstrapError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(BootstrapError::EmptyCommand("bootstrap".to_owned()));
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(r) = run_as {
        // Supplementary groups cannot be set through the stable API; the
        // tools we run need only the user's own files.
        command.uid(r.uid).gid(r.gid).current_dir("/");
    }
    let mut child = command.spawn().map_err(|source| BootstrapError::Spawn {
        program: program.clone(),
        source,
    })?;
    child.wait().await.map_err(|source| BootstrapError::Spawn {
        program: program.clone(),
        source,
    })
}

/// A temporary file holding the superuser password for `initdb --pwfile`,
/// removed when dropped.
struct PasswordFile {
    path: PathBuf,
}

impl PasswordFile {
    fn create(password: &str, run_as: Option<&RunAs>) -> std::io::Result<PasswordFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::temp_dir();
        let mut attempt = 0u32;
        loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = dir.join(format!(
                "patroni-initdb-pw-{}-{nanos:09}-{attempt}",
                std::process::id()
            ));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut file) => {
                    let guard = PasswordFile { path };
                    file.write_all(password.as_bytes())?;
                    if let Some(r) = run_as {
                        std::os::unix::fs::chown(&guard.path, Some(r.uid), Some(r.gid))?;
                    }
                    return Ok(guard);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for PasswordFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!(target: LOG_TARGET, "could not remove {}: {e}", self.path.display());
        }
    }
}

/// The arguments of one `initdb` run (see [`initdb`]).
#[derive(Debug, Clone)]
pub struct InitdbInput<'a> {
    pub data_dir: &'a Path,
    pub commands: &'a PgCommands,
    /// `bootstrap.initdb` (`None` or null: no options).
    pub options: Option<&'a Value>,
    /// `postgresql.authentication.superuser`.
    pub superuser: Option<&'a Map>,
    pub run_as: Option<&'a RunAs>,
}

/// The `initdb` options from the configuration, or Patroni's error for
/// the first refused or malformed one.
pub fn initdb_options(options: Option<&Value>) -> Result<Vec<String>, BootstrapError> {
    let empty = Value::Seq(Vec::new());
    let options = match options {
        Some(v) if v.truthy() => v,
        _ => &empty,
    };
    let mut first_error = None;
    let out = process_user_options("initdb", options, &INITDB_NOT_ALLOWED, &mut |e| {
        first_error.get_or_insert(e);
    });
    match first_error {
        Some(e) => Err(BootstrapError::Options(e)),
        None => Ok(out),
    }
}

/// The full `initdb` command line; `pwfile` is the password file's path
/// when the superuser has a string password.
pub fn initdb_argv(
    input: &InitdbInput<'_>,
    pwfile: Option<&Path>,
) -> Result<Vec<String>, BootstrapError> {
    let mut argv = vec![input.commands.program("initdb").display().to_string()];
    argv.extend(initdb_options(input.options)?);
    // The new files are flushed with one syncfs afterwards (see
    // `durable`), not one fsync at a time.
    argv.push(super::durable::NO_SYNC.to_owned());
    if let Some(su) = input.superuser {
        if let Some(user) = su.get("username") {
            argv.push(format!("--username={}", py_str(user)));
        }
    }
    if let Some(pwfile) = pwfile {
        argv.push(format!("--pwfile={}", pwfile.display()));
    }
    argv.push(input.data_dir.display().to_string());
    Ok(argv)
}

/// Runs `initdb` as Patroni's `_initdb` does. Succeeds only when `initdb`
/// exited with status 0; the temporary password file is gone either way.
pub async fn initdb(input: &InitdbInput<'_>) -> Result<(), BootstrapError> {
    // Refused options are reported before anything touches the disk.
    initdb_options(input.options)?;
    let password = input
        .superuser
        .and_then(|su| su.get("password"))
        .and_then(Value::as_str);
    let pwfile = match password {
        Some(p) => {
            Some(PasswordFile::create(p, input.run_as).map_err(BootstrapError::PasswordFile)?)
        }
        None => None,
    };
    let argv = initdb_argv(input, pwfile.as_ref().map(|f| f.path.as_path()))?;
    log::info!(target: LOG_TARGET, "running initdb for {}", input.data_dir.display());
    let status = run_command(&argv, &[], input.run_as).await;
    drop(pwfile);
    let status = status?;
    if status.success() {
        super::durable::sync_data_directory(input.data_dir)
            .await
            .map_err(BootstrapError::Sync)
    } else {
        Err(BootstrapError::Failed {
            program: argv[0].clone(),
            status,
        })
    }
}

/// Appends the `bootstrap.pg_hba` lines to the new `pg_hba.conf`, as
/// Patroni's `append_pg_hba`: only when neither an `hba_file` parameter
/// nor `postgresql.pg_hba` says who owns the file. Patroni writes a blank
/// line, the lines, and a newline (also for an empty list). Returns
/// whether the file was written.
pub fn append_pg_hba(
    data_dir: &Path,
    lines: &[String],
    hba_file_configured: bool,
    pg_hba_configured: bool,
) -> Result<bool, BootstrapError> {
    use std::os::unix::fs::PermissionsExt;
    if hba_file_configured || pg_hba_configured {
        return Ok(false);
    }
    let path = data_dir.join("pg_hba.conf");
    let err = |source| BootstrapError::PgHba {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&path)
        .map_err(err)?;
    file.write_all(format!("\n{}\n", lines.join("\n")).as_bytes())
        .map_err(err)?;
    // Patroni's set_file_permissions: the group may read when the data
    // directory is group-readable (initdb --allow-group-access), else 0600.
    let group_read = std::fs::metadata(data_dir)
        .map(|m| m.permissions().mode() & 0o040 != 0)
        .unwrap_or(false);
    let mode = if group_read { 0o640 } else { 0o600 };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(true)
}

/// What the daemon must do after a successful custom bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomBootstrapOutcome {
    /// `recovery_conf` of the method's section: write these recovery
    /// parameters (Patroni's `write_recovery_conf`).
    pub recovery_conf: Option<Value>,
    /// When no `recovery_conf` is given: keep the recovery configuration
    /// and signal files the command left (`keep_existing_recovery_conf`);
    /// otherwise remove them.
    pub keep_existing_recovery_conf: bool,
}

/// The keys of a custom bootstrap section that are not passed on to the
/// command.
const CUSTOM_RESERVED: [&str; 6] = [
    "command",
    "no_params",
    "keep_existing_recovery_conf",
    "recovery_conf",
    "scope",
    "datadir",
];

/// The command line of a custom bootstrap method (`config` is the
/// `bootstrap.<method>` section).
pub fn custom_bootstrap_argv(
    method: &str,
    config: &Map,
    scope: &str,
    data_dir: &Path,
) -> Result<Vec<String>, BootstrapError> {
    let command = match config.get("command") {
        Some(v) if !v.is_null() => py_str(v),
        _ => {
            return Err(BootstrapError::BadMethod {
                method: method.to_owned(),
            })
        }
    };
    let mut argv = shlex::split(&command).map_err(|reason| BootstrapError::BadCommand {
        command: command.clone(),
        reason,
    })?;
    if argv.is_empty() {
        return Err(BootstrapError::EmptyCommand(method.to_owned()));
    }
    if !config.get("no_params").is_some_and(Value::truthy) {
        argv.push(format!("--scope={scope}"));
        argv.push(format!("--datadir={}", data_dir.display()));
    }
    for (key, value) in config.iter() {
        let key = py_str(key);
        if !CUSTOM_RESERVED.contains(&key.as_str()) {
            argv.push(format!("--{key}={}", py_str(value)));
        }
    }
    Ok(argv)
}

/// Runs a custom bootstrap method's command (Patroni's
/// `_custom_bootstrap`, the command part). Starting PostgreSQL and writing
/// the recovery configuration are left to the caller, guided by the
/// returned [`CustomBootstrapOutcome`].
pub async fn custom_bootstrap(
    method: &str,
    config: &Map,
    scope: &str,
    data_dir: &Path,
    run_as: Option<&RunAs>,
) -> Result<CustomBootstrapOutcome, BootstrapError> {
    let argv = custom_bootstrap_argv(method, config, scope, data_dir)?;
    log::info!(target: LOG_TARGET, "Running custom bootstrap script: {}",
        config.get("command").map(py_str).unwrap_or_default());
    let status = run_command(&argv, &[], run_as).await.inspect_err(|e| {
        log::error!(target: LOG_TARGET, "Exception during custom bootstrap: {e}");
    })?;
    if !status.success() {
        return Err(BootstrapError::Failed {
            program: argv[0].clone(),
            status,
        });
    }
    Ok(CustomBootstrapOutcome {
        recovery_conf: config.get("recovery_conf").cloned(),
        keep_existing_recovery_conf: config
            .get("keep_existing_recovery_conf")
            .is_some_and(Value::truthy),
    })
}

/// The bootstrap method Patroni would use: a custom one only when
/// `bootstrap.method` names a section that has a `command`; `initdb`
/// otherwise (also for a method without a section).
pub fn bootstrap_method(bootstrap: &Map) -> String {
    let method = bootstrap
        .get("method")
        .filter(|v| v.truthy())
        .map(py_str)
        .unwrap_or_else(|| "initdb".to_owned());
    if method != "initdb" {
        if let Some(Value::Map(section)) = bootstrap.get(&method) {
            if section.contains_key("command") {
                return method;
            }
        }
    }
    "initdb".to_owned()
}

#[cfg(test)]
mod tests;
