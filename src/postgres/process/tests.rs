//! Unit tests that need no PostgreSQL; the real-server tests are in
//! `tests/postgres_process.rs`.

use super::*;

fn write_pidfile(dir: &Path, lines: &[&str]) {
    std::fs::write(dir.join("postmaster.pid"), lines.join("\n") + "\n").expect("write pid file");
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn stop_modes_map_to_postgres_signals() {
    assert_eq!(StopMode::Smart.signal(), libc::SIGTERM);
    assert_eq!(StopMode::Fast.signal(), libc::SIGINT);
    assert_eq!(StopMode::Immediate.signal(), libc::SIGQUIT);
    assert_eq!(StopMode::parse("fast"), Some(StopMode::Fast));
    assert_eq!(StopMode::parse("Fast"), None);
}

#[test]
fn auxiliary_titles_are_not_user_backends() {
    for aux in [
        "postgres: checkpointer ",
        "postgres: background writer ",
        "postgres: walwriter ",
        "postgres: archiver process   last was 0000000100000000000000A1",
        "postgres: batman: autovacuum launcher ",
        "postgres: my: odd: name: walsender replicator 10.0.0.2(5432) streaming 0/3000000",
        "postgres: logical replication launcher ",
        "postgres: bgworker: pg_cron launcher ",
    ] {
        assert!(is_auxiliary_title(aux), "{aux}");
    }
    for user in [
        "postgres: postgres postgres 127.0.0.1(50000) idle",
        "postgres: batman: app appdb [local] SELECT",
        "postgres: checkpointer", // no trailing space: not PostgreSQL's format
        "/usr/lib/postgresql/15/bin/postgres -D /data",
        "sleep",
    ] {
        assert!(!is_auxiliary_title(user), "{user}");
    }
}

#[test]
fn log_tail_keeps_the_last_non_empty_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pg.log");
    let text: String = (1..=30).map(|i| format!("line {i}\n\n")).collect();
    std::fs::write(&path, text).expect("write");
    let tail = tail_lines(&path, 3);
    assert_eq!(tail, vec!["line 28", "line 29", "line 30"]);
    assert!(tail_lines(&dir.path().join("missing"), 3).is_empty());
}

#[test]
fn start_error_message_includes_the_log_tail() {
    use std::os::unix::process::ExitStatusExt;
    let err = StartError::Exited {
        status: ExitStatus::from_raw(1 << 8),
        log_tail: vec!["FATAL:  invalid value".to_owned(), "bye".to_owned()],
    };
    let text = err.to_string();
    assert!(text.contains("exit status: 1"), "{text}");
    assert!(text.ends_with(": FATAL:  invalid value | bye"), "{text}");
}

#[test]
fn attach_without_a_usable_pid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(Postmaster::attach(dir.path()).is_none(), "no file");
    write_pidfile(dir.path(), &["garbage"]);
    assert!(Postmaster::attach(dir.path()).is_none(), "garbage pid");
    write_pidfile(dir.path(), &["0"]);
    assert!(Postmaster::attach(dir.path()).is_none(), "pid 0");
    write_pidfile(dir.path(), &["99999999999"]);
    assert!(Postmaster::attach(dir.path()).is_none(), "pid out of range");
    write_pidfile(dir.path(), &[""]);
    assert!(Postmaster::attach(dir.path()).is_none(), "empty");
}

#[test]
fn attach_refuses_our_own_pid_and_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let me = std::process::id().to_string();
    write_pidfile(dir.path(), &[&me, &dir.path().display().to_string()]);
    assert!(Postmaster::attach(dir.path()).is_none());
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() }.to_string();
    write_pidfile(dir.path(), &[&parent, &dir.path().display().to_string()]);
    assert!(Postmaster::attach(dir.path()).is_none());
}

#[tokio::test]
async fn attach_refuses_a_live_process_that_is_not_a_postmaster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sleeper = tokio::process::Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn sleep");
    let pid = sleeper.id().expect("pid").to_string();
    let start = now_unix().to_string();
    write_pidfile(
        dir.path(),
        &[
            &pid,
            &dir.path().display().to_string(),
            &start,
            "5432",
            "/tmp",
            "*",
            "1",
            "ready   ",
        ],
    );
    assert!(Postmaster::attach(dir.path()).is_none());
    // Starting over that stale file must not signal it either: the
    // start fails (no such program) without touching the sleeper.
    let err = Postmaster::spawn(
        &["/nonexistent/postgres".to_owned()],
        dir.path(),
        &StartOptions::default(),
    )
    .expect_err("no program");
    assert!(matches!(err, StartError::Spawn { .. }), "{err:?}");
    assert!(matches!(sleeper.try_wait(), Ok(None)), "sleep is untouched");
}

#[test]
fn attach_refuses_a_start_time_mismatch() {
    // Our parent is excluded outright; use pid 1, which certainly did not
    // start within 3 s of "now" on a machine that runs tests.
    let dir = tempfile::tempdir().expect("tempdir");
    let start = now_unix().to_string();
    write_pidfile(
        dir.path(),
        &["1", &dir.path().display().to_string(), &start],
    );
    let pidfile = read_pidfile(dir.path()).expect("read back");
    let reason = reject_reason(1, &pidfile, dir.path()).expect("rejected");
    assert!(
        reason.contains("started at") || reason.contains("not a postmaster"),
        "{reason}"
    );
}

#[tokio::test]
async fn empty_command_line_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Postmaster::start(&[], dir.path(), &StartOptions::default())
        .await
        .expect_err("empty argv");
    assert!(matches!(err, StartError::EmptyCommand));
}

#[tokio::test]
async fn a_process_that_exits_fails_fast_with_its_log() {
    // A stand-in "postmaster" that prints and exits 3 at once.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("out.log");
    let options = StartOptions {
        timeout: Duration::from_secs(30),
        log_file: Some(log.clone()),
        run_as: None,
    };
    let argv: Vec<String> = ["/bin/sh", "-c", "echo 'FATAL:  no such thing' >&2; exit 3"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let began = std::time::Instant::now();
    let err = Postmaster::start(&argv, dir.path(), &options)
        .await
        .expect_err("exits");
    assert!(began.elapsed() < Duration::from_secs(5));
    match err {
        StartError::Exited { status, log_tail } => {
            assert_eq!(status.code(), Some(3));
            assert_eq!(log_tail, vec!["FATAL:  no such thing"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_process_that_never_gets_ready_times_out_and_can_be_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StartOptions {
        timeout: Duration::from_millis(300),
        log_file: None,
        run_as: None,
    };
    let argv: Vec<String> = ["sleep", "30"].iter().map(|s| (*s).to_owned()).collect();
    let err = Postmaster::start(&argv, dir.path(), &options)
        .await
        .expect_err("never ready");
    let StartError::Timeout { mut postmaster, .. } = err else {
        panic!("expected a timeout, got {err:?}");
    };
    assert!(postmaster.is_running());
    // `sleep` dies on SIGINT, so fast mode stops it without escalation.
    let outcome = postmaster
        .stop(StopMode::Fast, Some(Duration::from_secs(5)))
        .await
        .expect("stop");
    assert_eq!(outcome, StopOutcome::Stopped);
    assert!(!postmaster.is_running());
    assert_eq!(
        postmaster.stop(StopMode::Fast, None).await.expect("again"),
        StopOutcome::NotRunning
    );
    assert!(matches!(
        postmaster.reload(),
        Err(ProcessError::NotRunning { .. })
    ));
}

#[tokio::test]
async fn stop_escalates_to_sigkill_for_a_process_ignoring_signals() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = StartOptions {
        timeout: Duration::from_millis(200),
        log_file: None,
        run_as: None,
    };
    // Ignores SIGINT and SIGQUIT: only the final SIGKILL ends it.
    let argv: Vec<String> = [
        "/bin/sh",
        "-c",
        "trap '' INT QUIT; while :; do sleep 0.1; done",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let err = Postmaster::start(&argv, dir.path(), &options)
        .await
        .expect_err("never ready");
    let StartError::Timeout { mut postmaster, .. } = err else {
        panic!("expected a timeout, got {err:?}");
    };
    let outcome = postmaster
        .stop(StopMode::Fast, Some(Duration::from_millis(300)))
        .await
        .expect("stop");
    assert_eq!(outcome, StopOutcome::Killed);
    assert!(!postmaster.is_running());
}
