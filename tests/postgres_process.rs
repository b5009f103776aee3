//! The postmaster process API against a real PostgreSQL 15.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root every
//! PostgreSQL program runs as the unprivileged `patroni-rs-test` user (the
//! acceptance harness's user, created here if missing) through
//! `StartOptions::run_as`. Each test initialises its own cluster in a
//! temporary directory and listens on a free loopback port, so the tests
//! run in parallel. Without PostgreSQL 15 they are skipped with a message.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use patroni::config::value::{Map, Value};
use patroni::postgres::controldata::ClusterState;
use patroni::postgres::pid::{PmStatus, PostmasterPid};
use patroni::postgres::postgres_argv;
use patroni::postgres::process::{
    controldata, controldata_as, Postmaster, RunAs, StartError, StartOptions, StopMode, StopOutcome,
};

const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
const TEST_USER: &str = "patroni-rs-test";

/// One test's cluster: a temporary directory owned by the PostgreSQL user
/// holding `data/`, the socket directory and the log file.
struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    port: u16,
    run_as: Option<RunAs>,
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The user PostgreSQL runs as: ourselves, or the test user when root.
fn run_as() -> Option<RunAs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    if id_of("-u").is_none() {
        let status = Command::new("useradd").args(["-m", TEST_USER]).status();
        // A parallel test may have created it meanwhile: check again.
        if id_of("-u").is_none() {
            panic!("could not create the user {TEST_USER}: {status:?}");
        }
    }
    let uid = id_of("-u").expect("uid");
    let gid = id_of("-g").expect("gid");
    Some(RunAs::new(uid, gid))
}

/// A helper command (initdb, pg_basebackup, pg_ctl) as the PostgreSQL user.
fn pg_command(program: &str, run_as: &Option<RunAs>) -> Command {
    let mut cmd = Command::new(Path::new(BIN_DIR).join(program));
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid).current_dir("/");
    }
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn have_postgres() -> bool {
    if Path::new(BIN_DIR).join("postgres").exists() {
        true
    } else {
        // Under CI a missing PostgreSQL is a broken setup, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL 15 binaries not found in {BIN_DIR} (.ci/setup installs them)"
        );
        eprintln!(
            "SKIPPED: PostgreSQL 15 binaries not found in {BIN_DIR} (.ci/setup installs them)"
        );
        false
    }
}

impl Cluster {
    /// An empty directory for a cluster, owned by the PostgreSQL user.
    fn empty() -> Cluster {
        let run_as = run_as();
        let dir = tempfile::Builder::new()
            .prefix("patroni-rs-pgproc-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        if let Some(r) = &run_as {
            std::os::unix::fs::chown(&root, Some(r.uid), Some(r.gid)).expect("chown");
        }
        Cluster {
            data: root.join("data"),
            _dir: dir,
            root,
            port: free_port(),
            run_as,
        }
    }

    /// A freshly initialised cluster.
    fn init() -> Cluster {
        let cluster = Cluster::empty();
        let out = pg_command("initdb", &cluster.run_as)
            .args(["-D"])
            .arg(&cluster.data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// The command line Patroni would build, plus test-only settings.
    fn argv(&self, extra: &[&str]) -> Vec<String> {
        let mut conf = Map::new();
        conf.set("listen_addresses", Value::Str("127.0.0.1".to_owned()));
        conf.set("port", Value::Int(i64::from(self.port)));
        conf.set("wal_level", Value::Str("replica".to_owned()));
        conf.set("hot_standby", Value::Str("on".to_owned()));
        conf.set("max_wal_senders", Value::Int(5));
        let data = self.data.display().to_string();
        let config_file = self.data.join("postgresql.conf").display().to_string();
        let postgres = Path::new(BIN_DIR).join("postgres").display().to_string();
        let mut argv = postgres_argv(&postgres, &data, &config_file, &conf);
        for setting in [
            format!("unix_socket_directories={}", self.root.display()),
            "fsync=off".to_owned(),
            "shared_buffers=16MB".to_owned(),
        ] {
            argv.push("-c".to_owned());
            argv.push(setting);
        }
        for e in extra {
            argv.push("-c".to_owned());
            argv.push((*e).to_owned());
        }
        argv
    }

    fn options(&self, timeout: Duration) -> StartOptions {
        StartOptions {
            timeout,
            log_file: Some(self.root.join("postgres.log")),
            run_as: self.run_as.clone(),
        }
    }

    async fn start(&self) -> Postmaster {
        match Postmaster::start(
            &self.argv(&[]),
            &self.data,
            &self.options(Duration::from_secs(30)),
        )
        .await
        {
            Ok(pm) => pm,
            Err(e) => panic!("start failed: {e}"),
        }
    }

    fn pidfile(&self) -> Option<PostmasterPid> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .map(|t| PostmasterPid::parse(&t))
    }

    async fn state(&self) -> Option<ClusterState> {
        controldata(Some(Path::new(BIN_DIR)), &self.data)
            .await
            .expect("pg_controldata")
            .cluster_state()
    }
}

/// A failed assertion must not leave a postmaster running on a deleted
/// directory: stop whatever runs there (pg_ctl checks the pid file itself)
/// before the directory goes.
impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let _ = pg_command("pg_ctl", &self.run_as)
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(&self.data)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn start_is_ready_and_each_stop_mode_stops_it() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::init();
    assert_eq!(cluster.state().await, Some(ClusterState::ShutDown));

    for (mode, expected_state) in [
        (StopMode::Fast, ClusterState::ShutDown),
        (StopMode::Smart, ClusterState::ShutDown),
        (StopMode::Immediate, ClusterState::InProduction),
    ] {
        let mut pm = cluster.start().await;
        assert!(pm.is_running());
        let pidfile = cluster.pidfile().expect("postmaster.pid");
        assert_eq!(pidfile.pid(), Some(i64::from(pm.pid())));
        assert_eq!(pidfile.status(), Some(PmStatus::Ready));
        assert_eq!(pidfile.port(), Some(cluster.port));
        // The exact command line reached PostgreSQL.
        let opts = std::fs::read_to_string(cluster.data.join("postmaster.opts")).expect("opts");
        assert!(
            opts.contains(&format!("\"--port={}\"", cluster.port)),
            "{opts}"
        );
        pm.reload().expect("reload");

        let began = Instant::now();
        let outcome = pm
            .stop(mode, Some(Duration::from_secs(20)))
            .await
            .expect("stop");
        assert_eq!(outcome, StopOutcome::Stopped, "{mode:?}");
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "{mode:?} took {:?}",
            began.elapsed()
        );
        assert!(!pm.is_running());
        assert!(!pid_alive(pm.pid()));
        // Immediate leaves the control file saying "in production": the
        // next start runs crash recovery.
        assert_eq!(cluster.state().await, Some(expected_state), "{mode:?}");
    }
}

#[tokio::test]
async fn a_bad_parameter_fails_fast_with_the_log() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::init();
    let argv = cluster.argv(&["shared_buffers=garbage"]);
    let began = Instant::now();
    let err = Postmaster::start(
        &argv,
        &cluster.data,
        &cluster.options(Duration::from_secs(60)),
    )
    .await
    .expect_err("must not start");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "took {:?}",
        began.elapsed()
    );
    match &err {
        StartError::Exited { status, log_tail } => {
            assert!(!status.success());
            assert!(
                log_tail.iter().any(|l| l.contains("shared_buffers")),
                "{log_tail:?}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("shared_buffers"), "{err}");
}

#[tokio::test]
async fn attach_after_a_daemon_restart_and_stop_through_it() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::init();
    let pm = cluster.start().await;
    let pid = pm.pid();
    // The "daemon" goes away; PostgreSQL does not.
    drop(pm);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(pid_alive(pid));

    let mut attached = Postmaster::attach(&cluster.data).expect("attach");
    assert_eq!(attached.pid(), pid);
    assert!(attached.is_running());
    // Starting again must not spawn a second postmaster.
    match Postmaster::start(
        &cluster.argv(&[]),
        &cluster.data,
        &cluster.options(Duration::from_secs(5)),
    )
    .await
    {
        Err(StartError::AlreadyRunning { pid: running }) => assert_eq!(running, pid),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    let outcome = attached
        .stop(StopMode::Fast, Some(Duration::from_secs(20)))
        .await
        .expect("stop");
    assert_eq!(outcome, StopOutcome::Stopped);
    assert!(!pid_alive(pid));
    assert!(Postmaster::attach(&cluster.data).is_none());
    assert_eq!(cluster.state().await, Some(ClusterState::ShutDown));
}

#[tokio::test]
async fn a_stale_pid_file_is_neither_attached_nor_signalled() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::init();
    // A process of the PostgreSQL user (so PostgreSQL itself would see
    // the pid as alive) that has nothing to do with PostgreSQL.
    let mut sleeper = {
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        if let Some(r) = &cluster.run_as {
            cmd.uid(r.uid).gid(r.gid);
        }
        cmd.spawn().expect("spawn sleep")
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let stale = format!(
        "{}\n{}\n{now}\n{}\n{}\n127.0.0.1\n  5432001    360448\nready   \n",
        sleeper.id(),
        cluster.data.display(),
        cluster.port,
        cluster.root.display()
    );
    std::fs::write(cluster.data.join("postmaster.pid"), stale).expect("write stale pid file");

    assert!(Postmaster::attach(&cluster.data).is_none());
    // Start over the stale file: PostgreSQL is told to ignore that pid.
    let mut pm = cluster.start().await;
    assert_ne!(pm.pid(), sleeper.id() as i32);
    assert_eq!(
        pm.stop(StopMode::Fast, Some(Duration::from_secs(20)))
            .await
            .expect("stop"),
        StopOutcome::Stopped
    );
    assert!(
        matches!(sleeper.try_wait(), Ok(None)),
        "sleep was signalled"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[tokio::test]
async fn a_smart_stop_blocked_by_a_client_escalates_to_immediate() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::init();
    let mut pm = cluster.start().await;
    // Only PostgreSQL's own helpers run: none of them is a user backend.
    assert_eq!(pm.user_backends(), vec![]);
    assert!(
        pm.wait_for_user_backends_to_close(Some(Duration::ZERO))
            .await
    );

    let mut client = pg_command("psql", &cluster.run_as)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-d", "postgres", "-c", "SELECT pg_sleep(60)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn psql");
    let deadline = Instant::now() + Duration::from_secs(10);
    let backends = loop {
        let b = pm.user_backends();
        if !b.is_empty() || Instant::now() > deadline {
            break b;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(backends.len(), 1, "{backends:?}");
    assert!(backends[0].1.contains("postgres postgres"), "{backends:?}");
    assert!(
        !pm.wait_for_user_backends_to_close(Some(Duration::from_millis(300)))
            .await
    );

    // Smart waits for that client forever; after the timeout the stop
    // turns immediate, which ends the session.
    let began = Instant::now();
    let outcome = pm
        .stop(StopMode::Smart, Some(Duration::from_secs(1)))
        .await
        .expect("stop");
    assert_eq!(outcome, StopOutcome::EscalatedToImmediate);
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(!pm.is_running());
    let _ = client.kill();
    let _ = client.wait();
}

/// Waits for pg_controldata to report `want`.
async fn wait_for_state(cluster: &Cluster, want: ClusterState, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cluster.state().await == Some(want.clone()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn promote_a_standby() {
    if !have_postgres() {
        return;
    }
    let primary = Cluster::init();
    let mut primary_pm = primary.start().await;

    let standby = Cluster::empty();
    let out = pg_command("pg_basebackup", &standby.run_as)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-X", "stream", "--no-sync", "-D"])
        .arg(&standby.data)
        .output()
        .expect("run pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(standby.data.join("standby.signal"), "").expect("standby.signal");
    if let Some(r) = &standby.run_as {
        std::os::unix::fs::chown(
            standby.data.join("standby.signal"),
            Some(r.uid),
            Some(r.gid),
        )
        .expect("chown");
    }
    let conninfo = format!(
        "primary_conninfo=host=127.0.0.1 port={} user=postgres",
        primary.port
    );
    // Without hot standby PostgreSQL reports `standby` and never `ready`;
    // the start completes on that.
    let mut cold = match Postmaster::start(
        &standby.argv(&[&conninfo, "hot_standby=off"]),
        &standby.data,
        &standby.options(Duration::from_secs(30)),
    )
    .await
    {
        Ok(pm) => pm,
        Err(e) => panic!("cold standby start failed: {e}"),
    };
    assert_eq!(
        standby.pidfile().and_then(|p| p.status()),
        Some(PmStatus::Standby)
    );
    assert_eq!(
        cold.stop(StopMode::Fast, Some(Duration::from_secs(20)))
            .await
            .expect("stop"),
        StopOutcome::Stopped
    );
    let mut standby_pm = match Postmaster::start(
        &standby.argv(&[&conninfo]),
        &standby.data,
        &standby.options(Duration::from_secs(30)),
    )
    .await
    {
        Ok(pm) => pm,
        Err(e) => panic!("standby start failed: {e}"),
    };
    // PostgreSQL writes `ready` for a hot standby too (`standby` means a
    // standby that does not accept connections, hot_standby=off).
    assert_eq!(
        standby.pidfile().and_then(|p| p.status()),
        Some(PmStatus::Ready)
    );
    assert_eq!(standby.state().await, Some(ClusterState::InArchiveRecovery));

    standby_pm
        .promote(Some(Path::new(BIN_DIR)))
        .await
        .expect("promote");
    assert!(
        wait_for_state(
            &standby,
            ClusterState::InProduction,
            Duration::from_secs(20)
        )
        .await,
        "standby did not leave recovery"
    );
    assert!(!standby.data.join("standby.signal").exists());

    for pm in [&mut standby_pm, &mut primary_pm] {
        assert_eq!(
            pm.stop(StopMode::Fast, Some(Duration::from_secs(20)))
                .await
                .expect("stop"),
            StopOutcome::Stopped
        );
    }
}

#[tokio::test]
async fn controldata_of_a_stopped_cluster_and_of_nothing() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::init();
    let data = controldata_as(
        Some(Path::new(BIN_DIR)),
        &cluster.data,
        cluster.run_as.as_ref(),
    )
    .await
    .expect("pg_controldata");
    assert_eq!(data.cluster_state(), Some(ClusterState::ShutDown));
    let sysid = data.system_identifier().expect("system identifier");
    assert!(
        sysid.len() >= 10 && sysid.bytes().all(|b| b.is_ascii_digit()),
        "{sysid}"
    );
    assert_eq!(data.checkpoint_timeline(), Some(1));
    assert_eq!(data.wal_level(), Some("replica"));

    let missing = cluster.root.join("no-such-dir");
    let err = controldata(Some(Path::new(BIN_DIR)), &missing)
        .await
        .expect_err("no data dir");
    assert!(err.to_string().contains("pg_controldata"), "{err}");
}
