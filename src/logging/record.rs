//! One log record, with the attributes of Python's `logging.LogRecord` that
//! Patroni users reference in `log.format`.
//!
//! The message is already rendered when a record is built: Patroni's queue
//! handler does the same (it formats `msg % args` in the calling thread and
//! ships only the text), so the record is plain data that can cross threads.

use std::ffi::CString;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Python's numeric levels.
pub const DEBUG: i64 = 10;
pub const INFO: i64 = 20;
pub const WARNING: i64 = 30;
pub const ERROR: i64 = 40;
pub const CRITICAL: i64 = 50;

/// `logging.getLevelName(levelno)` for a record: the canonical names, and
/// `Level N` for numbers without one (as Python prints them).
pub fn level_name(levelno: i64) -> String {
    match levelno {
        0 => "NOTSET".into(),
        DEBUG => "DEBUG".into(),
        INFO => "INFO".into(),
        WARNING => "WARNING".into(),
        ERROR => "ERROR".into(),
        CRITICAL => "CRITICAL".into(),
        n => format!("Level {n}"),
    }
}

/// The Python level of a `log` crate level. `trace!` has no Python
/// counterpart; it becomes level 5, below DEBUG, so it is shown only when a
/// logger is explicitly set to a number at or below 5.
pub fn levelno_of(level: log::Level) -> i64 {
    match level {
        log::Level::Error => ERROR,
        log::Level::Warn => WARNING,
        log::Level::Info => INFO,
        log::Level::Debug => DEBUG,
        log::Level::Trace => 5,
    }
}

/// A typed attribute value: formats like `%(lineno)5d` are valid or not
/// depending on the attribute's Python type.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Str(String),
    Int(i64),
    Float(f64),
    /// Python `None` (`exc_info`, `args`, ... after Patroni's queue handler).
    None,
}

/// The attribute names a `%(name)s` placeholder may use, with the attribute's
/// Python type. `asctime` and `message` are set by the formatter.
pub const ATTRIBUTES: &[(&str, AttrType)] = &[
    ("name", AttrType::Str),
    ("msg", AttrType::Str),
    ("args", AttrType::None),
    ("levelname", AttrType::Str),
    ("levelno", AttrType::Int),
    ("pathname", AttrType::Str),
    ("filename", AttrType::Str),
    ("module", AttrType::Str),
    ("exc_info", AttrType::None),
    ("exc_text", AttrType::None),
    ("stack_info", AttrType::None),
    ("lineno", AttrType::Int),
    ("funcName", AttrType::Str),
    ("created", AttrType::Float),
    ("msecs", AttrType::Float),
    ("relativeCreated", AttrType::Float),
    ("thread", AttrType::Int),
    ("threadName", AttrType::Str),
    ("processName", AttrType::Str),
    ("process", AttrType::Int),
    ("message", AttrType::Str),
    ("asctime", AttrType::Str),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    Str,
    Int,
    Float,
    None,
}

/// The type of a record attribute, `None` (the Rust one) for names a
/// record does not have.
pub fn attr_type(name: &str) -> Option<AttrType> {
    ATTRIBUTES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The logger name, e.g. `patroni.ha`.
    pub name: String,
    pub levelno: i64,
    /// The rendered message (Python's `record.getMessage()`).
    pub message: String,
    pub pathname: String,
    pub lineno: i64,
    pub func_name: String,
    /// Seconds since the epoch.
    pub created: f64,
    /// Milliseconds since the logging system started.
    pub relative_created: f64,
    /// `threading.get_ident()`: the pthread id.
    pub thread: i64,
    pub thread_name: String,
    pub process: i64,
    pub process_name: String,
    /// Error detail logged with the record (Python's `exc_text`: the
    /// formatted traceback). Plain lines get it on the following lines,
    /// JSON objects as an `exc_info` field.
    pub exc_text: Option<String>,
}

impl Record {
    /// A record stamped now, in the calling thread.
    pub fn now(name: &str, levelno: i64, message: String, pathname: &str, lineno: i64) -> Record {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let current = std::thread::current();
        let thread_name = match current.name() {
            Some("main") => "MainThread".to_owned(),
            Some(n) => n.to_owned(),
            None => format!("{:?}", current.id()),
        };
        Record {
            name: name.to_owned(),
            levelno,
            message,
            pathname: pathname.to_owned(),
            lineno,
            func_name: "(unknown function)".to_owned(),
            created,
            relative_created: (created - start_time()) * 1000.0,
            thread: current_thread_ident(),
            thread_name,
            process: i64::from(std::process::id()),
            process_name: "MainProcess".to_owned(),
            exc_text: None,
        }
    }

    pub fn level_name(&self) -> String {
        level_name(self.levelno)
    }

    /// `os.path.basename(pathname)`.
    pub fn filename(&self) -> &str {
        self.pathname.rsplit('/').next().unwrap_or(&self.pathname)
    }

    /// The file name without its extension.
    pub fn module(&self) -> &str {
        let f = self.filename();
        match f.rfind('.') {
            Some(i) => &f[..i],
            None => f,
        }
    }

    /// `int((created - int(created)) * 1000) + 0.0`, as Python 3.11 computes it.
    pub fn msecs(&self) -> f64 {
        ((self.created - self.created.trunc()) * 1000.0).trunc()
    }

    /// The value of an attribute by its Python name; `asctime` is not one
    /// (the formatter computes it). `None` for unknown names.
    pub fn attr(&self, key: &str) -> Option<Attr> {
        Some(match key {
            "name" => Attr::Str(self.name.clone()),
            "msg" | "message" => Attr::Str(self.message.clone()),
            "exc_text" => match &self.exc_text {
                Some(t) => Attr::Str(t.clone()),
                None => Attr::None,
            },
            "args" | "exc_info" | "stack_info" => Attr::None,
            "levelname" => Attr::Str(self.level_name()),
            "levelno" => Attr::Int(self.levelno),
            "pathname" => Attr::Str(self.pathname.clone()),
            "filename" => Attr::Str(self.filename().to_owned()),
            "module" => Attr::Str(self.module().to_owned()),
            "lineno" => Attr::Int(self.lineno),
            "funcName" => Attr::Str(self.func_name.clone()),
            "created" => Attr::Float(self.created),
            "msecs" => Attr::Float(self.msecs()),
            "relativeCreated" => Attr::Float(self.relative_created),
            "thread" => Attr::Int(self.thread),
            "threadName" => Attr::Str(self.thread_name.clone()),
            "processName" => Attr::Str(self.process_name.clone()),
            "process" => Attr::Int(self.process),
            _ => return None,
        })
    }
}

/// When logging started (Python's `logging._startTime`), for `relativeCreated`.
pub fn start_time() -> f64 {
    static START: OnceLock<f64> = OnceLock::new();
    *START.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    })
}

fn current_thread_ident() -> i64 {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    let id = unsafe { libc::pthread_self() };
    id as i64
}

/// Re-read the `TZ` environment variable, as Python's `time.tzset()` does.
/// Python reads it once at start-up; the daemon calls this when logging is
/// initialised.
pub fn tzset() {
    extern "C" {
        // POSIX; the libc crate does not bind it on every target.
        fn tzset();
    }
    // SAFETY: tzset takes no arguments and only updates the C library's
    // timezone globals.
    unsafe { tzset() }
}

/// `time.strftime(fmt, time.localtime(secs))`: the C library renders the
/// local time, exactly as CPython does on the same machine (same `TZ`, same
/// C locale).
pub fn strftime_local(fmt: &str, secs: f64) -> String {
    if fmt.is_empty() {
        return String::new();
    }
    // time.localtime() floors a float timestamp.
    let t = secs.floor() as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return String::new();
    }
    // strftime cannot report an embedded NUL; Python refuses such formats,
    // we render the part before it.
    let cut = fmt.split('\0').next().unwrap_or("");
    let Ok(cfmt) = CString::new(cut) else {
        return String::new();
    };
    // strftime returns 0 both for "too small" and for an empty result; like
    // CPython, grow the buffer up to 256 bytes per format byte, then accept "".
    let mut size = 1024usize;
    let limit = 256 * cut.len().max(4);
    loop {
        let mut buf = vec![0u8; size];
        // SAFETY: buf has `size` writable bytes; cfmt and tm are valid.
        let n = unsafe {
            libc::strftime(
                buf.as_mut_ptr() as *mut libc::c_char,
                size,
                cfmt.as_ptr(),
                &tm,
            )
        };
        if n > 0 {
            buf.truncate(n);
            return String::from_utf8_lossy(&buf).into_owned();
        }
        if size >= limit {
            return String::new();
        }
        size = (size * 4).min(limit);
    }
}

/// `logging.Formatter.formatTime`: with a date format, the strftime output
/// alone; without one, `YYYY-MM-DD HH:MM:SS,mmm`.
pub fn format_time(created: f64, msecs: f64, datefmt: Option<&str>) -> String {
    match datefmt {
        Some(f) if !f.is_empty() => strftime_local(f, created),
        _ => format!(
            "{},{:03}",
            strftime_local("%Y-%m-%d %H:%M:%S", created),
            msecs as i64
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(created: f64) -> Record {
        let mut r = Record::now("patroni.ha", INFO, "hi".into(), "/src/patroni/ha.py", 7);
        r.created = created;
        r
    }

    #[test]
    fn derived_attributes() {
        let r = rec(1763781020.9876);
        assert_eq!(r.filename(), "ha.py");
        assert_eq!(r.module(), "ha");
        assert_eq!(r.msecs(), 987.0);
        assert_eq!(r.attr("levelname"), Some(Attr::Str("INFO".into())));
        assert_eq!(r.attr("lineno"), Some(Attr::Int(7)));
        assert_eq!(r.attr("nope"), None);
        assert_eq!(level_name(25), "Level 25");
        assert_eq!(levelno_of(log::Level::Warn), WARNING);
    }

    #[test]
    fn default_asctime_layout() {
        // Only the layout is checked here (the zone is the test machine's);
        // the pytests compare with Python under fixed zones.
        let s = format_time(1763781020.0456, 45.0, None);
        assert_eq!(s.len(), "2025-11-22 03:10:20,045".len());
        assert!(s.ends_with(",045"), "{s}");
        assert_eq!(format_time(1763781020.0, 0.0, Some("%Y")).len(), 4);
        assert_eq!(strftime_local("", 0.0), "");
    }
}
