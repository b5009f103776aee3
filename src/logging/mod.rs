//! Logging with the semantics of Patroni's `log:` section.
//!
//! Daemon code logs through the `log` crate with Patroni's logger names as
//! targets, e.g. `log::info!(target: "patroni.ha", "...")`, so that
//! `log.loggers` levels apply hierarchically as in Python
//! (`patroni.dcs: DEBUG` covers `patroni.dcs.etcd3`). A target written as a
//! Rust path (`patroni::ha`, the default when no target is given) is read
//! with dots.
//!
//! Lines are byte-identical to Python Patroni's for the same settings: the
//! default `%(asctime)s %(levelname)s: %(message)s` with a local-time
//! `2026-11-22 03:10:20,123` stamp, any `%`-style format over the usual
//! `LogRecord` attributes, or JSON objects as python-json-logger writes them.
//!
//! - [`settings`]: the `log` section with Patroni's defaults.
//! - [`format`] / [`json`]: the line formatters; [`pyfmt`] Python's number
//!   and string renderings they rely on.
//! - [`file`]: `log.dir` with size rotation.
//! - [`pipeline`]: the bounded queue and writer thread.

pub mod file;
pub mod format;
pub mod json;
pub mod pipeline;
pub mod pyfmt;
pub mod record;
pub mod settings;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

pub use format::FormatError;
pub use pipeline::{LineFormatter, LoggerHandle};
pub use record::Record;
pub use settings::{FormatSpec, LogSettings, LogType, SettingsError};

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("cannot open log file {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the logging thread: {0}")]
    Thread(std::io::Error),
    #[error("a logger is already installed in this process")]
    AlreadyInitialized,
}

/// The logger name for a `log` target: Rust paths use `::`, Patroni's
/// names use dots.
pub fn logger_name(target: &str) -> String {
    if target.contains("::") {
        target.replace("::", ".")
    } else {
        target.to_owned()
    }
}

fn dispatch(shared: &pipeline::Shared, record: &log::Record) {
    let name = logger_name(record.target());
    let levelno = record::levelno_of(record.level());
    if !shared.enabled(&name, levelno) {
        return;
    }
    let message = match record.args().as_str() {
        Some(s) => s.to_owned(),
        None => record.args().to_string(),
    };
    let rec = Record::now(
        &name,
        levelno,
        message,
        record.file().unwrap_or("(unknown file)"),
        record.line().map(i64::from).unwrap_or(0),
    );
    shared.submit(rec);
}

/// The installed global logger: forwards to the pipeline of the handle
/// returned by [`init`].
struct GlobalLogger {
    shared: Arc<pipeline::Shared>,
}

impl log::Log for GlobalLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        self.shared.enabled(
            &logger_name(metadata.target()),
            record::levelno_of(metadata.level()),
        )
    }

    fn log(&self, record: &log::Record) {
        dispatch(&self.shared, record);
    }

    fn flush(&self) {
        // Bounded, so that a hung disk cannot hang the process at exit.
        self.shared.flush(std::time::Duration::from_secs(5));
    }
}

/// Whether `traceback_level: DEBUG` is in effect (see [`exception`]).
static TRACEBACK_DEBUG: AtomicBool = AtomicBool::new(false);
/// The pipeline installed by [`init`].
static GLOBAL: OnceLock<Arc<pipeline::Shared>> = OnceLock::new();

/// The `log` crate's static filter: Python level -> most verbose `log` level.
fn max_level(levelno: i64) -> log::LevelFilter {
    match levelno {
        i64::MIN..=5 => log::LevelFilter::Trace,
        6..=10 => log::LevelFilter::Debug,
        11..=20 => log::LevelFilter::Info,
        21..=30 => log::LevelFilter::Warn,
        _ => log::LevelFilter::Error,
    }
}

/// Start logging with `settings` and install it as the process-wide `log`
/// logger. Call once; use [`LoggerHandle::reload`] for later changes.
pub fn init(settings: &LogSettings) -> Result<LoggerHandle, LogError> {
    if GLOBAL.get().is_some() {
        return Err(LogError::AlreadyInitialized);
    }
    let mut handle = LoggerHandle::start(settings)?;
    log::set_boxed_logger(Box::new(GlobalLogger {
        shared: handle.shared(),
    }))
    .map_err(|_| LogError::AlreadyInitialized)?;
    let _ = GLOBAL.set(handle.shared());
    handle.global = true;
    apply_globals(settings);
    Ok(handle)
}

/// Process-wide switches derived from the settings, applied by [`init`] and
/// by [`LoggerHandle::reload`] on the installed pipeline.
fn apply_globals(settings: &LogSettings) {
    TRACEBACK_DEBUG.store(settings.traceback_debug, Ordering::Relaxed);
    log::set_max_level(max_level(settings.most_verbose_level()));
}

/// Patroni's `logger.exception(msg)` for an error value.
///
/// The error and its `source()` chain play the part of Python's traceback:
/// - by default (`traceback_level: ERROR`) `msg` is logged at ERROR with the
///   chain as the record's error detail (the lines after a plain log line,
///   the `exc_info` field of a JSON object);
/// - with `traceback_level: DEBUG`, the same is logged at DEBUG when the
///   logger has DEBUG enabled, otherwise one ERROR line
///   `<msg>, DETAIL: '<error>'` without the detail.
///
/// Does nothing before [`init`].
#[track_caller]
pub fn exception(target: &str, msg: &str, err: &dyn std::error::Error) {
    let Some(shared) = GLOBAL.get() else {
        return;
    };
    let mut chain = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        chain.push_str(&format!("\nCaused by: {s}"));
        source = s.source();
    }
    let name = logger_name(target);
    let (levelno, message, detail) = if !TRACEBACK_DEBUG.load(Ordering::Relaxed) {
        (record::ERROR, msg.to_owned(), Some(chain))
    } else if shared.enabled(&name, record::DEBUG) {
        (record::DEBUG, msg.to_owned(), Some(chain))
    } else {
        (record::ERROR, format!("{msg}, DETAIL: '{err}'"), None)
    };
    if !shared.enabled(&name, levelno) {
        return;
    }
    let caller = std::panic::Location::caller();
    let mut rec = Record::now(&name, levelno, message, caller.file(), caller.line().into());
    rec.exc_text = detail;
    shared.submit(rec);
}

/// Patroni's `logger.critical(msg)` / `logger.fatal(msg)`: the `log` crate
/// stops at ERROR, but some lines must carry the CRITICAL level name
/// because tools match on it (the acceptance suite reads the level at a
/// fixed column, e.g. for "Can't start; there is already a node named ...").
/// Callers that exit right after should flush with `log::logger().flush()`.
///
/// Does nothing before [`init`].
#[track_caller]
pub fn critical(target: &str, msg: &str) {
    if let Some(shared) = GLOBAL.get() {
        submit_critical(shared, target, msg, std::panic::Location::caller());
    }
}

fn submit_critical(
    shared: &pipeline::Shared,
    target: &str,
    msg: &str,
    caller: &std::panic::Location<'_>,
) {
    let name = logger_name(target);
    if shared.enabled(&name, record::CRITICAL) {
        let rec = Record::now(
            &name,
            record::CRITICAL,
            msg.to_owned(),
            caller.file(),
            caller.line().into(),
        );
        shared.submit(rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Map, Value};
    use std::time::Duration;

    #[test]
    fn rust_paths_become_dotted_names() {
        assert_eq!(logger_name("patroni::dcs::etcd3"), "patroni.dcs.etcd3");
        assert_eq!(logger_name("patroni.ha"), "patroni.ha");
        assert_eq!(max_level(20), log::LevelFilter::Info);
        assert_eq!(max_level(0), log::LevelFilter::Trace);
    }

    fn settings(dir: &std::path::Path, extra: &[(&str, Value)]) -> LogSettings {
        let mut m = Map::new();
        m.set("dir", Value::Str(dir.display().to_string()));
        m.set(
            "format",
            Value::Str("%(levelname)s %(name)s %(message)s".into()),
        );
        for (k, v) in extra {
            m.set(k, v.clone());
        }
        LogSettings::from_value(&Value::Map(m)).expect("settings")
    }

    fn log_to(handle: &LoggerHandle, target: &str, level: log::Level, msg: &str) {
        handle.log(
            &log::Record::builder()
                .target(target)
                .level(level)
                .args(format_args!("{msg}"))
                .build(),
        );
    }

    #[test]
    fn pipeline_filters_by_logger_and_reloads_without_loss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut loggers = Map::new();
        loggers.set("patroni.dcs", Value::Str("DEBUG".into()));
        let s = settings(dir.path(), &[("loggers", Value::Map(loggers))]);
        let handle = LoggerHandle::start(&s).expect("start");
        log_to(&handle, "patroni.ha", log::Level::Debug, "hidden");
        log_to(&handle, "patroni::dcs::etcd3", log::Level::Debug, "shown");
        log_to(&handle, "patroni.ha", log::Level::Info, "info");
        assert!(handle.flush(Duration::from_secs(5)));

        let mut json = settings(dir.path(), &[("type", Value::Str("json".into()))]);
        json.format = FormatSpec::Text("%(levelname)s %(message)s".into());
        handle.reload(&json).expect("reload");
        log_to(&handle, "patroni.ha", log::Level::Warn, "after \"reload\"");
        handle.shutdown();

        let text = std::fs::read_to_string(dir.path().join("patroni.log")).expect("read");
        assert_eq!(
            text,
            "DEBUG patroni.dcs.etcd3 shown\nINFO patroni.ha info\n\
             {\"levelname\": \"WARNING\", \"message\": \"after \\\"reload\\\"\"}\n"
        );
    }

    #[test]
    fn critical_lines_carry_the_critical_level_name_at_patronis_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path(), &[]);
        // The acceptance suite's format; it reads the level at column 24.
        s.format = FormatSpec::Text(
            "%(asctime)s %(levelname)s [%(filename)s:%(lineno)d]: %(message)s".into(),
        );
        s.loggers = vec![("patroni.quiet".to_owned(), 60)];
        let handle = LoggerHandle::start(&s).expect("start");
        let here = std::panic::Location::caller();
        submit_critical(&handle.shared(), "patroni::main", "Can't start", here);
        submit_critical(&handle.shared(), "patroni.quiet", "filtered", here);
        handle.shutdown();
        let text = std::fs::read_to_string(dir.path().join("patroni.log")).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(&lines[0][24..32], "CRITICAL", "{}", lines[0]);
        assert!(lines[0].ends_with("]: Can't start"), "{}", lines[0]);
        assert!(
            lines[0].contains(&format!("mod.rs:{}]", here.line())),
            "{}",
            lines[0]
        );
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("request failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// The only test that installs the process-wide logger.
    #[test]
    fn global_logger_levels_and_exceptions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path(), &[]);
        let handle = init(&s).expect("first init");
        assert!(matches!(init(&s), Err(LogError::AlreadyInitialized)));
        let err = Outer(std::io::Error::other("connection refused"));

        log::debug!(target: "patroni.ha", "not shown");
        log::warn!(target: "patroni.ha", "shown {}", 1);
        exception("patroni.dcs", "Failed to get cluster", &err);

        let mut tb = s.clone();
        tb.traceback_debug = true;
        handle.reload(&tb).expect("reload");
        exception("patroni.dcs", "Failed to get cluster", &err);
        tb.level = record::DEBUG;
        handle.reload(&tb).expect("reload");
        assert!(log::log_enabled!(target: "x", log::Level::Debug));
        exception("patroni.dcs", "Failed to get cluster", &err);
        handle.shutdown();

        let text = std::fs::read_to_string(dir.path().join("patroni.log")).expect("read");
        assert_eq!(
            text,
            "WARNING patroni.ha shown 1\n\
             ERROR patroni.dcs Failed to get cluster\nrequest failed\nCaused by: connection refused\n\
             ERROR patroni.dcs Failed to get cluster, DETAIL: 'request failed'\n\
             DEBUG patroni.dcs Failed to get cluster\nrequest failed\nCaused by: connection refused\n"
        );
    }

    #[test]
    fn format_warnings_are_logged_when_the_formatter_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path(), &[]);
        s.format = FormatSpec::Text("%(levelname)s %(message)s".into());
        s.warnings = vec!["odd format".into()];
        let handle = LoggerHandle::start(&s).expect("start");
        handle.reload(&s).expect("same settings");
        let mut louder = s.clone();
        louder.level = record::DEBUG;
        handle.reload(&louder).expect("level only");
        let mut dated = louder.clone();
        dated.dateformat = Some("%H".into());
        handle.reload(&dated).expect("date format");
        handle.shutdown();
        let text = std::fs::read_to_string(dir.path().join("patroni.log")).expect("read");
        assert_eq!(text, "WARNING odd format\nWARNING odd format\n");
    }

    #[test]
    fn concurrent_writers_lose_nothing_with_an_unbounded_queue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path(), &[("max_queue_size", Value::Int(0))]);
        let handle = Arc::new(LoggerHandle::start(&s).expect("start"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = handle.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        log_to(&h, "patroni.ha", log::Level::Info, &format!("t{t} r{i}"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        assert_eq!(handle.records_lost(), 0);
        let handle = Arc::try_unwrap(handle).ok().expect("sole owner");
        handle.shutdown();
        let text = std::fs::read_to_string(dir.path().join("patroni.log")).expect("read");
        assert_eq!(text.lines().count(), 800);
        // Each thread's records stay in order.
        let t0: Vec<&str> = text.lines().filter(|l| l.contains(" t0 ")).collect();
        assert_eq!(t0.first(), Some(&"INFO patroni.ha t0 r0"));
        assert_eq!(t0.last(), Some(&"INFO patroni.ha t0 r199"));
    }

    #[test]
    fn bad_reload_keeps_the_old_configuration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path(), &[]);
        let handle = LoggerHandle::start(&s).expect("start");
        let mut bad = s.clone();
        bad.format = FormatSpec::Text("%(nosuch)s".into());
        assert!(matches!(handle.reload(&bad), Err(LogError::Format(_))));
        let mut missing = s.clone();
        missing.dir = Some(dir.path().join("missing"));
        assert!(matches!(
            handle.reload(&missing),
            Err(LogError::File { .. })
        ));
        log_to(&handle, "patroni", log::Level::Error, "still here");
        handle.shutdown();
        let text = std::fs::read_to_string(dir.path().join("patroni.log")).expect("read");
        assert_eq!(text, "ERROR patroni still here\n");
    }
}
