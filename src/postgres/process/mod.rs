//! The postmaster as a process: start, re-attach, stop, promote, reload.
//!
//! Patroni starts `postgres` itself (not through `pg_ctl start`) because it
//! needs the postmaster's pid, and it must find that postmaster again after
//! its own restart. We do the same with these choices:
//!
//! - The postmaster is spawned directly as our child, in a session of its
//!   own. Patroni double-forks so the postmaster is never its child; we
//!   keep it as a child while this handle lives because that gives us its
//!   exit status, which makes "PostgreSQL died during start" a fast,
//!   explained failure instead of a timeout. The new session means signals
//!   aimed at the daemon's terminal or process group never reach
//!   PostgreSQL, and when the daemon exits the postmaster is simply
//!   re-parented and keeps running. A dropped handle is reaped by tokio.
//! - Output goes to a file when [`StartOptions::log_file`] is set (opened
//!   for append, so it survives daemon restarts and lets a failed start
//!   report its last lines), or is inherited from the daemon (Patroni's
//!   behaviour: the journal collects it). Never a pipe to us: a postmaster
//!   that outlives us would lose its early log output to a closed pipe.
//! - A pid is only trusted together with its kernel start time
//!   ([`procfs`]): every signal is preceded by a check that the process is
//!   still the one we started or attached to.

mod command;
mod procfs;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::{Child, Command};

pub use command::{controldata, controldata_as, pg_ctl, pg_program, RunAs};

use crate::postgres::pid::{PmStatus, PostmasterPid};

/// How long between two looks at `postmaster.pid` or the process.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How far the pid file's start time may be from the process's own start
/// time (seconds), as in Patroni: the two clocks are read at different
/// moments of the postmaster's start.
const START_TIME_TOLERANCE: f64 = 3.0;

/// How many log lines a failed start reports.
const LOG_TAIL_LINES: usize = 20;

/// Errors of the helpers and of signalling.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    CommandFailed {
        program: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("{program} printed nothing")]
    EmptyOutput { program: String },
    #[error("could not send signal {signal} to postmaster {pid}: {source}")]
    Signal {
        pid: i32,
        signal: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot stop server: a single-user server is running (pid {pid})")]
    SingleUser { pid: i32 },
    #[error("postmaster {pid} is not running")]
    NotRunning { pid: i32 },
}

/// Why [`Postmaster::start`] did not return a ready postmaster.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start PostgreSQL: a postmaster (pid {pid}) is already running on this data directory")]
    AlreadyRunning { pid: i32 },
    #[error("could not open the log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the start command line is empty")]
    EmptyCommand,
    /// The postmaster exited before it was ready; `log_tail` holds the last
    /// lines of the log file (empty when output is inherited).
    #[error("postmaster exited during start ({status}){}", tail_suffix(.log_tail))]
    Exited {
        status: ExitStatus,
        log_tail: Vec<String>,
    },
    /// Not ready within the timeout. The postmaster may still be starting
    /// (a long crash recovery); the caller decides whether to wait more or
    /// to stop it through the returned handle.
    #[error("timed out after {timeout:?} waiting for PostgreSQL to accept connections")]
    Timeout {
        timeout: Duration,
        postmaster: Box<Postmaster>,
    },
}

fn tail_suffix(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(": {}", lines.join(" | "))
    }
}

/// PostgreSQL's shutdown modes and the signal each one sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// SIGTERM: wait for clients to disconnect.
    Smart,
    /// SIGINT: disconnect clients, checkpoint, exit.
    Fast,
    /// SIGQUIT: exit at once; crash recovery at the next start.
    Immediate,
}

impl StopMode {
    pub fn signal(self) -> libc::c_int {
        match self {
            StopMode::Smart => libc::SIGTERM,
            StopMode::Fast => libc::SIGINT,
            StopMode::Immediate => libc::SIGQUIT,
        }
    }

    /// Patroni's configuration spelling (`smart`, `fast`, `immediate`).
    pub fn parse(text: &str) -> Option<StopMode> {
        match text {
            "smart" => Some(StopMode::Smart),
            "fast" => Some(StopMode::Fast),
            "immediate" => Some(StopMode::Immediate),
            _ => None,
        }
    }
}

/// How a [`Postmaster::stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Nothing to stop: the postmaster had already exited.
    NotRunning,
    /// It exited within the timeout in the requested mode.
    Stopped,
    /// Smart or fast did not finish in time; an immediate shutdown did.
    EscalatedToImmediate,
    /// Nothing else worked: the postmaster and its children were killed.
    Killed,
}

/// What the start waits for and how the postmaster runs.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// How long to wait for `ready` (or `standby`) in `postmaster.pid`;
    /// Patroni's `pg_ctl_timeout`, 60 s by default.
    pub timeout: Duration,
    /// Append the postmaster's stdout and stderr here instead of
    /// inheriting the daemon's.
    pub log_file: Option<PathBuf>,
    /// Run the postmaster as this user (see [`RunAs`]).
    pub run_as: Option<RunAs>,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            timeout: Duration::from_secs(60),
            log_file: None,
            run_as: None,
        }
    }
}

/// The readiness `postmaster.pid` reported when the start completed.
///
/// Note PostgreSQL's meaning of the words: a hot standby that accepts
/// read-only connections reports `ready`, like a primary; `standby` is a
/// standby that is up but accepts no connections (`hot_standby = off`),
/// which is as far as such a server ever gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Accepting connections (a primary or a hot standby).
    Ready,
    /// Up in recovery without accepting connections.
    Standby,
}

/// A running postmaster we started or attached to.
#[derive(Debug)]
pub struct Postmaster {
    pid: i32,
    /// Kernel start time in ticks; `None` only when the process was
    /// already gone when we looked (then `child` tells the truth).
    start_ticks: Option<u64>,
    data_dir: PathBuf,
    /// Set when we spawned it and still hold the handle.
    child: Option<Child>,
    single_user: bool,
    run_as: Option<RunAs>,
}

fn read_pidfile(data_dir: &Path) -> Option<PostmasterPid> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()
        .map(|text| PostmasterPid::parse(&text))
}

/// The last `n` lines of a file (reads at most its last 64 KiB).
fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(64 * 1024);
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err() || file.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

/// Why a pid from `postmaster.pid` is not our postmaster, or `None` if it
/// is. Patroni checks the start time and that the pid is not itself or its
/// parent; we add two positive checks that a stale file cannot pass by
/// accident: the program is `postgres`/`postmaster`, and (when the kernel
/// lets us read it) its working directory is the data directory.
fn reject_reason(pid: i32, pidfile: &PostmasterPid, data_dir: &Path) -> Option<String> {
    let me = std::process::id() as i32;
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    if pid == me || pid == parent {
        return Some(format!("pid {pid} is this process or its parent"));
    }
    let Some(stat) = procfs::read_stat(pid) else {
        return Some(format!("no process {pid}"));
    };
    if stat.is_gone() {
        return Some(format!("process {pid} has exited"));
    }
    match pidfile.start_time.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => match text.parse::<i64>() {
            Ok(0) => {}
            Ok(recorded) => {
                if let Some(actual) = procfs::start_time_unix(&stat) {
                    if (actual - recorded as f64).abs() > START_TIME_TOLERANCE {
                        return Some(format!(
                            "process {pid} started at {actual:.0}, the pid file says {recorded}"
                        ));
                    }
                }
            }
            Err(_) => log::warn!(target: "patroni.postgresql.postmaster",
                "Garbage start time value in pid file: {text:?}"),
        },
        _ => {}
    }
    let argv = procfs::cmdline(pid).unwrap_or_default();
    let program = argv.first().map(String::as_str).unwrap_or("");
    let name = program.rsplit('/').next().unwrap_or(program);
    if name != "postgres" && name != "postmaster" {
        return Some(format!("process {pid} is {program:?}, not a postmaster"));
    }
    if let Some(cwd) = procfs::cwd(pid) {
        let expected = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        if cwd != expected {
            return Some(format!(
                "process {pid} runs in {}, not in {}",
                cwd.display(),
                expected.display()
            ));
        }
    }
    None
}

impl Postmaster {
    /// The postmaster recorded in `<data_dir>/postmaster.pid`, if that
    /// process is alive and really is a postmaster for this data directory
    /// (see the checks in `reject_reason`). Used after a daemon restart; a
    /// stale pid file gives `None` and nothing is signalled.
    pub fn attach(data_dir: &Path) -> Option<Postmaster> {
        let pidfile = read_pidfile(data_dir)?;
        let raw = pidfile.pid()?;
        let single_user = raw < 0;
        let pid = i32::try_from(raw.checked_abs()?).ok()?;
        if let Some(reason) = reject_reason(pid, &pidfile, data_dir) {
            log::info!(target: "patroni.postgresql.postmaster",
                "Not attaching to pid {pid} from {}: {reason}",
                data_dir.join("postmaster.pid").display());
            return None;
        }
        Some(Postmaster {
            pid,
            start_ticks: procfs::read_stat(pid).map(|s| s.start_ticks),
            data_dir: data_dir.to_path_buf(),
            child: None,
            single_user,
            run_as: None,
        })
    }

    /// Starts `argv` (from [`crate::postgres::postgres_argv`]) and waits
    /// until `postmaster.pid` names it and reports `ready` or `standby`.
    /// Fails as soon as the process exits, with its status and last log
    /// lines.
    ///
    /// Patroni waits for the port with `pg_isready` instead; the pid file's
    /// status line says the same thing without a connection attempt.
    /// Cancelling (dropping) this future leaves the postmaster running:
    /// [`Postmaster::attach`] finds it again. A postmaster already running
    /// on the data directory is [`StartError::AlreadyRunning`] (Patroni logs
    /// an error and treats the start as done).
    pub async fn start(
        argv: &[String],
        data_dir: &Path,
        options: &StartOptions,
    ) -> Result<Postmaster, StartError> {
        let mut postmaster = Postmaster::spawn(argv, data_dir, options)?;
        match postmaster.wait_ready(options.timeout).await {
            Ok(_) => Ok(postmaster),
            Err(WaitError::Exited(status)) => Err(StartError::Exited {
                status,
                log_tail: options
                    .log_file
                    .as_deref()
                    .map(|p| tail_lines(p, LOG_TAIL_LINES))
                    .unwrap_or_default(),
            }),
            Err(WaitError::Timeout) => Err(StartError::Timeout {
                timeout: options.timeout,
                postmaster: Box::new(postmaster),
            }),
        }
    }

    /// Spawns the postmaster without waiting for it.
    pub fn spawn(
        argv: &[String],
        data_dir: &Path,
        options: &StartOptions,
    ) -> Result<Postmaster, StartError> {
        let (program, args) = argv.split_first().ok_or(StartError::EmptyCommand)?;
        let mut env = command::postmaster_env(std::env::vars_os());
        if let Some(existing) = read_pidfile(data_dir) {
            if let Some(pid) = existing
                .pid()
                .and_then(|p| i32::try_from(p.checked_abs()?).ok())
            {
                if procfs::read_stat(pid).is_some_and(|s| !s.is_gone()) {
                    if reject_reason(pid, &existing, data_dir).is_none() {
                        return Err(StartError::AlreadyRunning { pid });
                    }
                    // The pid in the stale file belongs to someone else.
                    // PostgreSQL would refuse to start, thinking the lock
                    // is held; it ignores the pid it is told is its
                    // "grandparent" (pg_ctl's own escape hatch). Removing
                    // the file instead would race with a real postmaster.
                    log::info!(target: "patroni.postgresql.postmaster",
                        "Telling PostgreSQL that it is safe to ignore postmaster.pid for process {pid}");
                    env.insert("PG_GRANDPARENT_PID".into(), pid.to_string().into());
                }
            }
        }
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(&env)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(false);
        if let Some(path) = &options.log_file {
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| StartError::LogFile {
                        path: path.clone(),
                        source,
                    })
            };
            command.stdout(open()?).stderr(open()?);
        }
        command::prepare(&mut command, options.run_as.as_ref(), true);
        log::debug!(target: "patroni.postgresql.postmaster", "Starting postgres: {}", argv.join(" "));
        let child = command.spawn().map_err(|source| StartError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or_default();
        log::info!(target: "patroni.postgresql.postmaster", "postmaster pid={pid}");
        Ok(Postmaster {
            pid,
            start_ticks: procfs::read_stat(pid).map(|s| s.start_ticks),
            data_dir: data_dir.to_path_buf(),
            child: Some(child),
            single_user: false,
            run_as: options.run_as.clone(),
        })
    }

    /// Waits until `postmaster.pid` names this process and reports
    /// `ready` or `standby`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Readiness, WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Err(WaitError::Exited(status));
            }
            if let Some(pidfile) = read_pidfile(&self.data_dir) {
                if pidfile.pid() == Some(i64::from(self.pid)) {
                    match pidfile.status() {
                        Some(PmStatus::Ready) => return Ok(Readiness::Ready),
                        Some(PmStatus::Standby) => return Ok(Readiness::Standby),
                        _ => {}
                    }
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WaitError::Timeout);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The exit status if we own the process and it has exited.
    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// True while the process we know is alive: same pid AND same kernel
    /// start time, not a zombie.
    pub fn is_running(&mut self) -> bool {
        if let Some(child) = self.child.as_mut() {
            return matches!(child.try_wait(), Ok(None));
        }
        match (procfs::read_stat(self.pid), self.start_ticks) {
            (Some(stat), Some(ticks)) => !stat.is_gone() && stat.start_ticks == ticks,
            _ => false,
        }
    }

    /// Sends `signal` after checking the process is still ours.
    fn signal(&mut self, signal: libc::c_int) -> Result<(), ProcessError> {
        if !self.is_running() {
            return Err(ProcessError::NotRunning { pid: self.pid });
        }
        procfs::send_signal(self.pid, signal).map_err(|source| ProcessError::Signal {
            pid: self.pid,
            signal,
            source,
        })
    }

    /// Re-reads the configuration files (SIGHUP, what `pg_ctl reload`
    /// sends).
    pub fn reload(&mut self) -> Result<(), ProcessError> {
        self.signal(libc::SIGHUP)
    }

    /// Promotes a standby with `pg_ctl promote -W` as Patroni 4.1 does (the
    /// same on PostgreSQL 15: it writes `promote.signal` and sends
    /// SIGUSR1). Does not wait: watch `pg_controldata` or
    /// `pg_is_in_recovery()` for the end of recovery.
    pub async fn promote(&mut self, bin_dir: Option<&Path>) -> Result<(), ProcessError> {
        if !self.is_running() {
            return Err(ProcessError::NotRunning { pid: self.pid });
        }
        pg_ctl(
            bin_dir,
            &self.data_dir,
            "promote",
            &["-W"],
            self.run_as.as_ref(),
        )
        .await
    }

    /// Waits up to `timeout` (forever with `None`) for the process to exit;
    /// true if it did.
    async fn wait_exit(&mut self, timeout: Option<Duration>) -> bool {
        if let Some(child) = self.child.as_mut() {
            return match timeout {
                Some(t) => matches!(tokio::time::timeout(t, child.wait()).await, Ok(Ok(_))),
                None => child.wait().await.is_ok(),
            };
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            if !self.is_running() {
                return true;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Stops PostgreSQL in `mode` and waits for the postmaster to exit.
    ///
    /// With a `timeout` (Patroni's stop timeout; `None` waits forever, as
    /// Patroni does by default): when a smart or fast shutdown is not done
    /// in time an immediate one is requested and given the same time, and
    /// if that is not enough either (or the mode was already immediate)
    /// the postmaster is frozen, killed with SIGKILL together with all its
    /// descendants.
    pub async fn stop(
        &mut self,
        mode: StopMode,
        timeout: Option<Duration>,
    ) -> Result<StopOutcome, ProcessError> {
        if self.single_user {
            return Err(ProcessError::SingleUser { pid: self.pid });
        }
        match self.signal(mode.signal()) {
            Ok(()) => {}
            Err(ProcessError::NotRunning { .. }) => return Ok(StopOutcome::NotRunning),
            Err(ProcessError::Signal { source, .. })
                if source.raw_os_error() == Some(libc::ESRCH) =>
            {
                return Ok(StopOutcome::NotRunning)
            }
            Err(other) => return Err(other),
        }
        if self.wait_exit(timeout).await {
            return Ok(StopOutcome::Stopped);
        }
        log::warn!(target: "patroni.postgresql", "Timeout during postmaster stop, aborting Postgres.");
        if mode != StopMode::Immediate {
            match self.signal(StopMode::Immediate.signal()) {
                Err(ProcessError::NotRunning { .. }) => return Ok(StopOutcome::Stopped),
                Err(other) => return Err(other),
                Ok(()) => {
                    if self.wait_exit(timeout).await {
                        return Ok(StopOutcome::EscalatedToImmediate);
                    }
                }
            }
        }
        log::warn!(target: "patroni.postgresql", "Sending SIGKILL to Postmaster and its children");
        self.kill_all().await
    }

    /// Freezes the postmaster (so it cannot fork new children), collects
    /// its descendants, kills the postmaster and then each descendant, and
    /// waits for the postmaster to go.
    async fn kill_all(&mut self) -> Result<StopOutcome, ProcessError> {
        match self.signal(libc::SIGSTOP) {
            Err(ProcessError::NotRunning { .. }) => return Ok(StopOutcome::Stopped),
            Err(e) => log::warn!(target: "patroni.postgresql", "Failed to suspend postmaster: {e}"),
            Ok(()) => {}
        }
        let descendants: Vec<(i32, u64)> = procfs::descendants(self.pid)
            .into_iter()
            .filter_map(|pid| procfs::read_stat(pid).map(|s| (pid, s.start_ticks)))
            .collect();
        match self.signal(libc::SIGKILL) {
            Err(ProcessError::NotRunning { .. }) => {}
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        for (pid, ticks) in descendants {
            // Same identity rule for the children: only the process we saw.
            if procfs::read_stat(pid).is_some_and(|s| s.start_ticks == ticks && !s.is_gone()) {
                let _ = procfs::send_signal(pid, libc::SIGKILL);
            }
        }
        self.wait_exit(None).await;
        Ok(StopOutcome::Killed)
    }

    /// Waits until the postmaster has no user backends left (client
    /// sessions; auxiliary processes are not counted). True when there are
    /// none left, false if some are still there after `timeout`.
    pub async fn wait_for_user_backends_to_close(&mut self, timeout: Option<Duration>) -> bool {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let backends = self.user_backends();
            if backends.is_empty() {
                return true;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                log::warn!(target: "patroni.postgresql.postmaster",
                    "Backends still alive after {timeout:?}: {}",
                    backends.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(", "));
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Children of the postmaster that are client backends: (pid, title).
    pub fn user_backends(&self) -> Vec<(i32, String)> {
        procfs::children(self.pid)
            .into_iter()
            .filter_map(|pid| {
                let title = procfs::cmdline(pid)?.into_iter().next()?;
                (!is_auxiliary_title(&title)).then_some((pid, title))
            })
            .collect()
    }
}

/// The status [`Postmaster::wait_ready`] ends with when not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    Exited(ExitStatus),
    Timeout,
}

/// Process titles of PostgreSQL's own helper processes (9.1 through 18),
/// after `postgres: ` and an optional `<cluster_name>: `.
const AUXILIARY_TITLES: &[&str] = &[
    "archiver",
    "startup",
    "autovacuum launcher",
    "autovacuum worker",
    "checkpointer",
    "logger",
    "stats collector",
    "wal receiver",
    "wal writer",
    "writer",
    "walreceiver",
    "wal sender process",
    "walsender",
    "walwriter",
    "background writer",
    "logical replication launcher",
    "logical replication worker for subscription",
    "logical replication tablesync worker for subscription",
    "logical replication parallel apply worker for subscription",
    "logical replication apply worker for subscription",
    "slotsync worker",
    "walsummarizer",
    "io worker",
    "bgworker:",
];

/// True for a PostgreSQL helper process title (`postgres: checkpointer `,
/// `postgres: main: walwriter `, `postgres: archiver process  `, ...).
fn is_auxiliary_title(title: &str) -> bool {
    let Some(rest) = title.strip_prefix("postgres:") else {
        return false;
    };
    let matches_at = |s: &str| {
        AUXILIARY_TITLES.iter().any(|name| {
            // `<name> ` or `<name> process  `: both start with a space.
            s.strip_prefix(' ')
                .and_then(|s| s.strip_prefix(name))
                .is_some_and(|s| s.starts_with(' '))
        })
    };
    if matches_at(rest) {
        return true;
    }
    // `postgres: <cluster_name>: <title>`: the cluster name may contain
    // anything but the title follows its colon.
    rest.match_indices(':')
        .any(|(i, _)| rest.get(i + 1..).is_some_and(matches_at))
}

#[cfg(test)]
mod tests;
