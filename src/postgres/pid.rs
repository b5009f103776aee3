//! `postmaster.pid` and `postmaster.opts`.
//!
//! `postmaster.pid` is PostgreSQL's lock file: one value per line (pid,
//! data directory, start time as a Unix timestamp, port, first socket
//! directory, first listen address, shared memory key and, on 10+, a
//! status padded to eight characters). Patroni reads the first seven lines
//! to recognise a running postmaster. `postmaster.opts` records the
//! command line of the last start.

/// `postmaster.pid` as Patroni reads it: each line without its newline.
/// Missing lines are `None`; nothing is validated until a typed accessor
/// is called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostmasterPid {
    pub pid: Option<String>,
    pub data_dir: Option<String>,
    pub start_time: Option<String>,
    pub port: Option<String>,
    pub socket_dir: Option<String>,
    pub listen_addr: Option<String>,
    pub shmem_key: Option<String>,
    pub status: Option<String>,
}

/// The postmaster status line (PostgreSQL 10+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PmStatus {
    Starting,
    Stopping,
    Ready,
    Standby,
    Other(String),
}

/// Python's `int(text)`: surrounding whitespace allowed, nothing else.
fn py_int(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

impl PostmasterPid {
    pub fn parse(text: &str) -> PostmasterPid {
        // Python iterates the file by '\n'; a line keeps everything but
        // its trailing newline.
        let mut lines = text
            .split_inclusive('\n')
            .map(|l| l.trim_end_matches('\n').to_owned());
        PostmasterPid {
            pid: lines.next(),
            data_dir: lines.next(),
            start_time: lines.next(),
            port: lines.next(),
            socket_dir: lines.next(),
            listen_addr: lines.next(),
            shmem_key: lines.next(),
            status: lines.next(),
        }
    }

    /// The postmaster pid; negative in the file means a single-user
    /// backend, which Patroni treats by its absolute value.
    pub fn pid(&self) -> Option<i64> {
        self.pid.as_deref().and_then(py_int).filter(|p| *p != 0)
    }

    pub fn start_time(&self) -> Option<i64> {
        self.start_time.as_deref().and_then(py_int)
    }

    pub fn port(&self) -> Option<u16> {
        self.port.as_deref()?.trim().parse().ok()
    }

    pub fn status(&self) -> Option<PmStatus> {
        let s = self.status.as_deref()?.trim();
        Some(match s {
            "starting" => PmStatus::Starting,
            "stopping" => PmStatus::Stopping,
            "ready" => PmStatus::Ready,
            "standby" => PmStatus::Standby,
            other => PmStatus::Other(other.to_owned()),
        })
    }
}

/// The command line in `postmaster.opts`: the program (written bare) and
/// each argument (written in double quotes, unescaped). `None` if the
/// text does not have that shape.
pub fn parse_postmaster_opts(text: &str) -> Option<Vec<String>> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    let (program, mut rest) = match line.find(" \"") {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, ""),
    };
    let mut argv = vec![program.to_owned()];
    while !rest.is_empty() {
        let body = rest.strip_prefix(" \"")?;
        // An argument ends at the quote followed by the next ` "` or the
        // end of the line (arguments themselves may hold quotes).
        let end = body
            .find("\" \"")
            .or_else(|| body.strip_suffix('"').map(str::len))?;
        argv.push(body[..end].to_owned());
        rest = &body[end + 1..];
    }
    Some(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_pg15_pidfile() {
        let pid = PostmasterPid::parse(include_str!("testdata/postmaster.pid"));
        assert!(pid.pid().is_some_and(|p| p > 0));
        assert!(pid.data_dir.as_deref().is_some_and(|d| d.starts_with('/')));
        assert!(pid.start_time().is_some_and(|t| t > 1_600_000_000));
        assert_eq!(pid.port(), Some(54329));
        assert_eq!(pid.listen_addr.as_deref(), Some("127.0.0.1"));
        assert_eq!(pid.status(), Some(PmStatus::Ready));
        assert!(pid.shmem_key.as_deref().is_some_and(|k| !k.is_empty()));
    }

    #[test]
    fn short_or_garbage_pidfile() {
        let pid = PostmasterPid::parse("abc\n/data\n");
        assert_eq!(pid.pid(), None);
        assert_eq!(pid.data_dir.as_deref(), Some("/data"));
        assert_eq!(pid.port(), None);
        assert_eq!(pid.status(), None);
        assert_eq!(PostmasterPid::parse(" 42 \n").pid(), Some(42));
    }

    #[test]
    fn opts_round_trip() {
        let text = include_str!("testdata/postmaster.opts");
        let argv = parse_postmaster_opts(text).unwrap_or_default();
        assert_eq!(argv.get(1).map(String::as_str), Some("-D"));
        assert!(argv.windows(2).any(|w| w == ["-p", "54329"]));
        assert_eq!(crate::postgres::conf::postmaster_opts(&argv), text);
        assert_eq!(parse_postmaster_opts("/pg \"unterminated"), None);
        assert_eq!(
            parse_postmaster_opts("/pg \"a\" \"b\"\"\"\n"),
            Some(vec!["/pg".into(), "a".into(), "b\"\"".into()])
        );
    }
}
