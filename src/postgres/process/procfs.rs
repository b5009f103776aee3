//! What we read about other processes from Linux's `/proc`, and signals.
//!
//! Everything that decides "is this pid still the postmaster we know?"
//! lives here. A pid alone is not an identity: after a crash or a reboot
//! the number in `postmaster.pid` can belong to any process. A pid plus
//! its kernel start time (field 22 of `/proc/<pid>/stat`, in clock ticks
//! since boot) is, because the kernel never gives one pid to two processes
//! started in the same tick. Every signal we send is preceded by that
//! check.

use std::io;
use std::path::PathBuf;

/// The few fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// `R`, `S`, `D`, `Z` (zombie), `X` (dead), `T` (stopped), ...
    pub state: char,
    pub ppid: i32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// A zombie or dead entry has exited: it cannot receive signals in
    /// any useful way and will never serve a connection again.
    pub fn is_gone(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The second field is the command
/// name in parentheses and may itself contain spaces and parentheses, so
/// the fixed fields are counted from the LAST `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let close = text.rfind(')')?;
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state); field N is fields[N - 3].
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start_ticks = fields.get(19)?.parse().ok()?;
    Some(ProcStat {
        state,
        ppid,
        start_ticks,
    })
}

/// `/proc/<pid>/stat` of a live or zombie process; `None` once it is gone
/// (or if `/proc` is not readable, which we treat the same: unknown
/// processes are never signalled).
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// `btime` from `/proc/stat`: the boot time as a Unix timestamp.
fn boot_time() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// The process start time as a Unix timestamp (what `postmaster.pid`
/// records on its third line), or `None` if it cannot be computed.
pub(crate) fn start_time_unix(stat: &ProcStat) -> Option<f64> {
    let boot = boot_time()?;
    Some(boot as f64 + stat.start_ticks as f64 / clock_ticks_per_second() as f64)
}

/// `/proc/<pid>/cmdline` split at NUL bytes. Readable for any process.
pub(crate) fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(split_cmdline(&raw))
}

/// Splits a raw cmdline. A process that rewrote its title (as PostgreSQL's
/// children do) may have one argument holding spaces and no trailing NUL.
pub(crate) fn split_cmdline(raw: &[u8]) -> Vec<String> {
    raw.split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

/// The working directory of a process; only readable for our own uid (or
/// as root). The postmaster changes into its data directory at start.
pub(crate) fn cwd(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/cwd")).ok()
}

/// Direct children of `pid`, found by scanning `/proc` (Linux has no
/// cheaper portable way for a process that is not ours).
pub(crate) fn children(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|child| read_stat(*child).is_some_and(|s| s.ppid == pid))
        .collect()
}

/// `children`, recursively (depth first, parents before their children).
pub(crate) fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children(p) {
            if !out.contains(&c) {
                out.push(c);
                todo.push(c);
            }
        }
    }
    out
}

/// `kill(2)`. Callers check the process identity first.
pub(crate) fn send_signal(pid: i32, signal: libc::c_int) -> io::Result<()> {
    if pid <= 0 {
        // 0 and negative pids address process groups: never what we mean.
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_parentheses_and_spaces_in_the_name() {
        let text = "4242 (post (gres) x) S 17 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 \
                    20 0 1 0 987654 1000 200 18446744073709551615";
        let s = parse_stat(text).expect("parses");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 17);
        assert_eq!(s.start_ticks, 987654);
        assert!(!s.is_gone());
    }

    #[test]
    fn stat_garbage_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis at all"), None);
    }

    #[test]
    fn own_stat_is_readable_and_alive() {
        let me = std::process::id() as i32;
        let s = read_stat(me).expect("own stat");
        assert!(!s.is_gone());
        let started = start_time_unix(&s).expect("start time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        assert!(started <= now + 1.0 && started > now - 86400.0 * 365.0);
        assert_eq!(read_stat(0), None);
        assert_eq!(read_stat(-5), None);
    }

    #[test]
    fn cmdline_split() {
        assert_eq!(
            split_cmdline(b"/usr/bin/postgres\0-D\0/data\0"),
            vec!["/usr/bin/postgres", "-D", "/data"]
        );
        assert_eq!(
            split_cmdline(b"postgres: checkpointer "),
            vec!["postgres: checkpointer "]
        );
    }

    #[test]
    fn signals_refuse_group_pids() {
        assert!(send_signal(0, 0).is_err());
        assert!(send_signal(-1, 0).is_err());
        assert!(send_signal(std::process::id() as i32, 0).is_ok());
    }

    #[test]
    fn children_of_a_spawned_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let me = std::process::id() as i32;
        let pid = child.id() as i32;
        assert!(children(me).contains(&pid));
        assert!(descendants(me).contains(&pid));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!children(me).contains(&pid));
    }
}
