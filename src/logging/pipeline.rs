//! The two-step logging pipeline: callers enqueue records, one background
//! thread writes them.
//!
//! Patroni does the same so that a slow or stuck log destination never
//! stalls the HA loop: the queue is bounded by `log.max_queue_size`, a record
//! that finds it full is dropped and counted, and the count is reported (as a
//! WARNING record) as soon as there is room again. `/patroni` exposes the
//! queue length and the lost-record count, which [`LoggerHandle`] provides.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::file::RotatingFile;
use super::format::{FormatError, Formatter};
use super::json::{fields_of, JsonFormatter};
use super::record::{self, Record};
use super::settings::{FormatSpec, LogSettings, LogType};
use super::LogError;

/// The name Patroni's own logging module logs under.
pub const SELF_LOGGER: &str = "patroni.log";

/// Lock a mutex even if a writer panicked while holding it: the protected
/// data (a queue, a file handle) stays usable, and losing logging because of
/// an unrelated panic would hide the cause.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How records become lines.
#[derive(Debug, Clone)]
pub enum LineFormatter {
    Plain(Formatter),
    Json(JsonFormatter),
}

impl LineFormatter {
    /// The formatter Patroni would build for these settings.
    pub fn build(s: &LogSettings) -> Result<LineFormatter, FormatError> {
        let datefmt = s.dateformat.as_deref();
        Ok(match (&s.format, s.log_type) {
            (FormatSpec::Text(f), LogType::Plain) => {
                LineFormatter::Plain(Formatter::new(f, datefmt)?)
            }
            (FormatSpec::Text(f), LogType::Json) => {
                let f = if f.is_empty() {
                    super::format::MESSAGE_ONLY
                } else {
                    f.as_str()
                };
                // python-json-logger validates string formats like logging does.
                if !super::format::has_valid_placeholder(f) {
                    return Err(FormatError::NoPlaceholder(f.to_owned()));
                }
                LineFormatter::Json(JsonFormatter::new(
                    fields_of(f),
                    Vec::new(),
                    s.static_fields.clone(),
                    datefmt,
                ))
            }
            (FormatSpec::Fields { fields, renames }, _) => LineFormatter::Json(JsonFormatter::new(
                fields.clone(),
                renames.clone(),
                s.static_fields.clone(),
                datefmt,
            )),
        })
    }

    pub fn format(&self, rec: &Record) -> String {
        match self {
            LineFormatter::Plain(f) => f.format(rec),
            LineFormatter::Json(f) => f.format(rec),
        }
    }
}

enum Output {
    Stderr,
    File(RotatingFile),
}

/// Where and how records are written; owned by the writer thread under a lock
/// so a reload can swap it between two records.
struct Sink {
    formatter: LineFormatter,
    output: Output,
    /// Set after a failed write so the failure is reported once, not per record.
    failing: bool,
}

impl Sink {
    fn write(&mut self, rec: &Record) {
        let line = self.formatter.format(rec);
        let result = match &mut self.output {
            Output::Stderr => {
                let mut err = std::io::stderr().lock();
                err.write_all(line.as_bytes())
                    .and_then(|_| err.write_all(b"\n"))
            }
            Output::File(f) => f.write_line(&line),
        };
        match result {
            Ok(()) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                let target = match &self.output {
                    Output::File(f) => f.path().display().to_string(),
                    Output::Stderr => "stderr".to_owned(),
                };
                // Nothing else can carry this message: the log is what failed.
                let _ = writeln!(
                    std::io::stderr(),
                    "patroni: cannot write log record to {target}: {e}"
                );
            }
            Err(_) => {}
        }
    }
}

enum Item {
    Record(Box<Record>),
    Stop,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    /// `<= 0`: unbounded.
    max: i64,
    lost: u64,
    /// The writer has taken a record and not finished writing it.
    busy: bool,
    /// The writer thread is gone; records are written by the caller.
    closed: bool,
}

pub(crate) struct Shared {
    settings: RwLock<Arc<LogSettings>>,
    queue: Mutex<Queue>,
    /// Signals the writer that records arrived.
    ready: Condvar,
    /// Signals flushers that the queue drained.
    idle: Condvar,
    sink: Mutex<Sink>,
}

impl Shared {
    fn settings(&self) -> Arc<LogSettings> {
        self.settings
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn enabled(&self, name: &str, levelno: i64) -> bool {
        levelno >= self.settings().effective_level(name)
    }

    /// Queue a record, or count it as lost when the queue is full.
    pub(crate) fn submit(&self, rec: Record) {
        let mut q = lock(&self.queue);
        if q.closed {
            drop(q);
            lock(&self.sink).write(&rec);
            return;
        }
        let full = |q: &Queue| q.max > 0 && q.items.len() as i64 >= q.max;
        if full(&q) {
            q.lost += 1;
            return;
        }
        q.items.push_back(Item::Record(Box::new(rec)));
        if q.lost > 0 && !full(&q) {
            let msg = format!("QueueHandler has lost {} log records", q.lost);
            let warning = Record::now(SELF_LOGGER, record::WARNING, msg, file!(), 0);
            q.items.push_back(Item::Record(Box::new(warning)));
            q.lost = 0;
        }
        self.ready.notify_one();
    }

    fn next(&self) -> Item {
        let mut q = lock(&self.queue);
        q.busy = false;
        loop {
            if let Some(item) = q.items.pop_front() {
                q.busy = true;
                return item;
            }
            self.idle.notify_all();
            q = self.ready.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The writer thread's state for Patroni's heartbeat-noise reduction.
///
/// At level INFO, Patroni holds back each `Lock owner: ...` message and
/// prints it only if the next message from the same thread is not a
/// heartbeat (`no action. ...` / `PAUSE: no action...`): in a healthy
/// cluster the log then shows one line per HA loop. With
/// `deduplicate_heartbeat_logs`, a heartbeat identical to the previous one
/// is dropped as well.
#[derive(Default)]
struct Dedup {
    held: Option<Record>,
    last_heartbeat: Option<String>,
}

fn is_heartbeat(msg: &str) -> bool {
    msg.starts_with("no action. ") || msg.starts_with("PAUSE: no action")
}

impl Dedup {
    /// The records to write now, in order, for an incoming record.
    fn process(&mut self, rec: Record, settings: &LogSettings) -> Vec<Record> {
        if settings.level != record::INFO {
            return vec![rec];
        }
        if rec.message.starts_with("Lock owner: ") {
            self.held = Some(rec);
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut keep = true;
        if self.held.as_ref().is_some_and(|h| h.thread == rec.thread) {
            let held = self.held.take();
            if is_heartbeat(&rec.message) {
                if settings.deduplicate_heartbeat_logs
                    && self.last_heartbeat.as_deref() == Some(rec.message.as_str())
                {
                    keep = false;
                } else {
                    self.last_heartbeat = Some(rec.message.clone());
                }
            } else {
                out.extend(held);
                self.last_heartbeat = None;
            }
        }
        if keep {
            out.push(rec);
        }
        out
    }
}

fn writer(shared: Arc<Shared>) {
    let mut dedup = Dedup::default();
    loop {
        match shared.next() {
            Item::Stop => break,
            Item::Record(rec) => {
                let settings = shared.settings();
                let out = dedup.process(*rec, &settings);
                let mut sink = lock(&shared.sink);
                for r in &out {
                    sink.write(r);
                }
            }
        }
    }
    // Records queued behind the stop marker are written here; from now on
    // callers write synchronously. Holding the sink first keeps their
    // records after these.
    let mut sink = lock(&shared.sink);
    let rest: Vec<Item> = {
        let mut q = lock(&shared.queue);
        q.closed = true;
        q.items.drain(..).collect()
    };
    for item in rest {
        if let Item::Record(rec) = item {
            sink.write(&rec);
        }
    }
    drop(sink);
    lock(&shared.queue).busy = false;
    shared.idle.notify_all();
}

/// The destination for `s`, reusing `current` when it is already the same
/// log file (only its limits and mode change then, as in Patroni).
fn apply_output(s: &LogSettings, current: &mut Option<Output>) -> Result<Output, LogError> {
    let Some(dir) = &s.dir else {
        return Ok(Output::Stderr);
    };
    let same_file =
        matches!(current, Some(Output::File(f)) if f.path().parent() == Some(dir.as_path()));
    if same_file {
        if let Some(Output::File(mut f)) = current.take() {
            f.update(s.mode, s.file_size, s.file_num);
            return Ok(Output::File(f));
        }
    }
    RotatingFile::open(dir, s.mode, s.file_size, s.file_num)
        .map(Output::File)
        .map_err(|source| LogError::File {
            path: dir.join(super::file::FILE_NAME),
            source,
        })
}

/// A running logging pipeline. Dropping it stops the writer thread after
/// the queued records are written; records logged afterwards are written
/// synchronously by the caller.
pub struct LoggerHandle {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
    /// This pipeline is the process-wide `log` logger (see [`super::init`]).
    pub(crate) global: bool,
}

impl LoggerHandle {
    /// Start a pipeline without installing it as the `log` crate's logger.
    pub fn start(settings: &LogSettings) -> Result<LoggerHandle, LogError> {
        record::tzset();
        let _ = record::start_time();
        let formatter = LineFormatter::build(settings)?;
        let output = apply_output(settings, &mut None)?;
        let shared = Arc::new(Shared {
            settings: RwLock::new(Arc::new(settings.clone())),
            queue: Mutex::new(Queue {
                max: settings.max_queue_size,
                ..Queue::default()
            }),
            ready: Condvar::new(),
            idle: Condvar::new(),
            sink: Mutex::new(Sink {
                formatter,
                output,
                failing: false,
            }),
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("patroni-logger".into())
                .spawn(move || writer(shared))
                .map_err(LogError::Thread)?
        };
        let handle = LoggerHandle {
            shared,
            worker: Some(worker),
            global: false,
        };
        handle.report_warnings(settings);
        Ok(handle)
    }

    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Log what Patroni would log while applying `settings`.
    fn report_warnings(&self, settings: &LogSettings) {
        let levelled = (settings.warnings.iter().map(|w| (record::WARNING, w)))
            .chain(settings.errors.iter().map(|e| (record::ERROR, e)));
        for (levelno, text) in levelled {
            if self.shared.enabled(SELF_LOGGER, levelno) {
                let rec = Record::now(SELF_LOGGER, levelno, text.clone(), file!(), 0);
                self.submit(rec);
            }
        }
    }

    /// Apply a changed `log` section. Levels apply at once; records already
    /// queued are written with the new format and destination, none are
    /// dropped. On error nothing changes.
    ///
    /// Like Patroni, an unchanged section is a no-op, and the warnings about
    /// the format are repeated only when the formatter is rebuilt (the format
    /// settings changed, or output switched between stderr and a file).
    pub fn reload(&self, settings: &LogSettings) -> Result<(), LogError> {
        let old = self.shared.settings();
        if *old == *settings {
            return Ok(());
        }
        let formatter_rebuilt = old.log_type != settings.log_type
            || old.format != settings.format
            || old.dateformat != settings.dateformat
            || old.static_fields != settings.static_fields
            || old.warnings != settings.warnings
            || old.errors != settings.errors
            || old.dir.is_some() != settings.dir.is_some();
        let formatter = LineFormatter::build(settings)?;
        {
            let mut sink = lock(&self.shared.sink);
            let mut current = Some(std::mem::replace(&mut sink.output, Output::Stderr));
            match apply_output(settings, &mut current) {
                Ok(output) => sink.output = output,
                Err(e) => {
                    if let Some(old) = current {
                        sink.output = old;
                    }
                    return Err(e);
                }
            }
            sink.formatter = formatter;
        }
        *self
            .shared
            .settings
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(settings.clone());
        lock(&self.shared.queue).max = settings.max_queue_size;
        if self.global {
            super::apply_globals(settings);
        }
        if formatter_rebuilt {
            self.report_warnings(settings);
        }
        Ok(())
    }

    /// Log a `log` crate record through this pipeline, applying the levels.
    pub fn log(&self, record: &log::Record) {
        super::dispatch(&self.shared, record);
    }

    /// Queue an already built record (no level check).
    pub fn submit(&self, rec: Record) {
        self.shared.submit(rec);
    }

    /// Records waiting to be written (`logger_queue_size` in `/patroni`).
    pub fn queue_size(&self) -> usize {
        lock(&self.shared.queue).items.len()
    }

    /// Records dropped because the queue was full and not reported yet
    /// (`logger_records_lost`).
    pub fn records_lost(&self) -> u64 {
        lock(&self.shared.queue).lost
    }

    /// Wait until every queued record is written; `false` on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.flush(timeout)
    }

    /// Write what is queued and stop the writer thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(worker) = self.worker.take() {
            lock(&self.shared.queue).items.push_back(Item::Stop);
            self.shared.ready.notify_one();
            let _ = worker.join();
        }
    }
}

impl Shared {
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut q = lock(&self.queue);
        while !q.closed && (!q.items.is_empty() || q.busy) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            q = self
                .idle
                .wait_timeout(q, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for LoggerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(msg: &str, thread: i64) -> Record {
        let mut r = Record::now("patroni.ha", record::INFO, msg.into(), "ha.py", 1);
        r.thread = thread;
        r
    }

    fn run(dedup_flag: bool, msgs: &[(&str, i64)]) -> Vec<String> {
        let s = LogSettings {
            deduplicate_heartbeat_logs: dedup_flag,
            ..LogSettings::default()
        };
        let mut d = Dedup::default();
        msgs.iter()
            .flat_map(|(m, t)| d.process(rec(m, *t), &s))
            .map(|r| r.message)
            .collect()
    }

    #[test]
    fn lock_owner_is_shown_only_before_non_heartbeats() {
        let out = run(
            false,
            &[
                ("Lock owner: a; I am b", 1),
                ("no action. I am (b), a secondary", 1),
                ("Lock owner: a; I am b", 1),
                ("no action. I am (b), a secondary", 1),
                ("Lock owner: a; I am b", 1),
                ("starting as a secondary", 1),
            ],
        );
        assert_eq!(
            out,
            [
                "no action. I am (b), a secondary",
                "no action. I am (b), a secondary",
                "Lock owner: a; I am b",
                "starting as a secondary"
            ]
        );
    }

    #[test]
    fn identical_heartbeats_are_dropped_when_asked() {
        let msgs = [
            ("Lock owner: a; I am b", 1),
            ("no action. I am (b), a secondary", 1),
            ("Lock owner: a; I am b", 1),
            ("no action. I am (b), a secondary", 1),
            ("other thread", 2),
        ];
        assert_eq!(
            run(true, &msgs),
            ["no action. I am (b), a secondary", "other thread"]
        );
        assert_eq!(run(false, &msgs).len(), 3);
    }

    #[test]
    fn full_queue_counts_and_reports_lost_records() {
        let s = LogSettings {
            max_queue_size: 2,
            ..LogSettings::default()
        };
        let shared = Shared {
            settings: RwLock::new(Arc::new(s.clone())),
            queue: Mutex::new(Queue {
                max: 2,
                ..Queue::default()
            }),
            ready: Condvar::new(),
            idle: Condvar::new(),
            sink: Mutex::new(Sink {
                formatter: LineFormatter::build(&s).expect("default format"),
                output: Output::Stderr,
                failing: false,
            }),
        };
        for i in 0..5 {
            shared.submit(rec(&format!("m{i}"), 1));
        }
        assert_eq!(lock(&shared.queue).lost, 3);
        assert_eq!(lock(&shared.queue).items.len(), 2);
        // Drain one, the next record fits but the report does not.
        let _ = lock(&shared.queue).items.pop_front();
        shared.submit(rec("m5", 1));
        assert_eq!(lock(&shared.queue).lost, 3);
        let _ = lock(&shared.queue).items.drain(..);
        shared.submit(rec("m6", 1));
        let q = lock(&shared.queue);
        assert_eq!(q.lost, 0);
        let msgs: Vec<String> = q
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Record(r) => Some(r.message.clone()),
                Item::Stop => None,
            })
            .collect();
        assert_eq!(msgs, ["m6", "QueueHandler has lost 3 log records"]);
    }
}
