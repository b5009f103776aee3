//! The monitoring connection against a real PostgreSQL 15: a primary and a
//! streaming replica made with pg_basebackup.
//!
//! PostgreSQL runs as the unprivileged `patroni-rs-test` user when the
//! tests run as root (the same approach as `tests/postgres_process.rs`).
//! Without PostgreSQL 15 the test is skipped with a message, except under
//! CI (`CI` set), where that is a failure.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use patroni::config::value::{Map, Value};
use patroni::postgres::postgres_argv;
use patroni::postgres::process::{Postmaster, RunAs, StartOptions, StopMode};
use patroni::postgres::query::{
    local_conn_params, pg_isready, ClusterInfo, MonitorOptions, PgIsReady, PgMonitor, QueryError,
};

const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
const TEST_USER: &str = "patroni-rs-test";

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

fn run_as() -> Option<RunAs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    if id_of("-u").is_none() {
        let status = Command::new("useradd").args(["-m", TEST_USER]).status();
        if id_of("-u").is_none() {
            panic!("could not create the user {TEST_USER}: {status:?}");
        }
    }
    Some(RunAs::new(
        id_of("-u").expect("uid"),
        id_of("-g").expect("gid"),
    ))
}

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
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "PostgreSQL 15 binaries not found in {BIN_DIR} (.ci/setup installs them)"
    );
    eprintln!("SKIPPED: PostgreSQL 15 binaries not found in {BIN_DIR}");
    false
}

impl Cluster {
    fn empty() -> Cluster {
        let run_as = run_as();
        let dir = tempfile::Builder::new()
            .prefix("patroni-rs-pgquery-")
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

    fn init() -> Cluster {
        let cluster = Cluster::empty();
        let out = pg_command("initdb", &cluster.run_as)
            .arg("-D")
            .arg(&cluster.data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .args(["--no-instructions"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn argv(&self) -> Vec<String> {
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
            // Small status intervals so the replica reports quickly.
            "wal_receiver_status_interval=1s".to_owned(),
        ] {
            argv.push("-c".to_owned());
            argv.push(setting);
        }
        argv
    }

    async fn start(&self) -> Postmaster {
        let options = StartOptions {
            timeout: Duration::from_secs(30),
            log_file: Some(self.root.join("postgres.log")),
            run_as: self.run_as.clone(),
        };
        match Postmaster::start(&self.argv(), &self.data, &options).await {
            Ok(pm) => pm,
            Err(e) => panic!("start failed: {e}"),
        }
    }

    /// The `postgresql` configuration section Patroni would have.
    fn patroni_section(&self, unix_socket: bool) -> Map {
        let mut su = Map::new();
        su.set("username", Value::Str("postgres".to_owned()));
        let mut auth = Map::new();
        auth.set("superuser", Value::Map(su));
        let mut params = Map::new();
        params.set(
            "unix_socket_directories",
            Value::Str(self.root.display().to_string()),
        );
        let mut section = Map::new();
        section.set("listen", Value::Str(format!("127.0.0.1:{}", self.port)));
        section.set("use_unix_socket", Value::Bool(unix_socket));
        section.set("parameters", Value::Map(params));
        section.set("authentication", Value::Map(auth));
        section
    }

    fn monitor(&self, unix_socket: bool) -> PgMonitor {
        let params = local_conn_params(&self.patroni_section(unix_socket), "heartbeat")
            .expect("connection parameters");
        PgMonitor::new(
            params,
            MonitorOptions {
                query_timeout: Duration::from_secs(5),
            },
        )
    }

    /// A plain client for the test's own statements.
    async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            tokio_postgres::NoTls,
        )
        .await
        .expect("test client connect");
        tokio::spawn(conn);
        client
    }
}

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

/// Polls the monitor until `done` holds, or panics with the last answer.
async fn wait_for(
    monitor: &PgMonitor,
    what: &str,
    done: impl Fn(&ClusterInfo) -> bool,
) -> ClusterInfo {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        match monitor.cluster_info().await {
            Ok(info) if done(&info) => return info,
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}; last answer: {last:?}");
}

#[tokio::test]
async fn primary_replica_pause_and_reconnect() {
    if !have_postgres() {
        return;
    }
    let primary = Cluster::init();
    let mut primary_pm = primary.start().await;

    // The primary, over TCP (`localhost` from listen 127.0.0.1).
    let pmon = primary.monitor(false);
    assert_eq!(pmon.params().host.as_deref(), Some("localhost"));
    let first = pmon.cluster_info().await.expect("primary cluster_info");
    assert!(!first.is_in_recovery);
    assert_eq!(first.timeline, Some(1));
    assert!(!first.replay_paused);
    assert_eq!(first.receiver_status, None);
    assert_eq!(first.received_tli, None);
    assert!(
        (150_000..160_000).contains(&first.server_version),
        "{first:?}"
    );
    let age = chrono::Utc::now() - first.postmaster_start_time;
    assert!(
        age >= chrono::TimeDelta::zero() - chrono::TimeDelta::seconds(2)
            && age < chrono::TimeDelta::seconds(60),
        "postmaster start time {} is not recent",
        first.postmaster_start_time
    );
    let lsn1 = first.wal_flush_lsn.expect("primary flush position");
    assert_eq!(first.last_operation(), Some(lsn1));

    let admin = primary.client().await;
    admin
        .batch_execute(
            "CREATE TABLE t AS SELECT g AS i FROM generate_series(1, 10000) g; \
             INSERT INTO t SELECT g FROM generate_series(1, 1000) g",
        )
        .await
        .expect("writes");
    let second = pmon.cluster_info().await.expect("second cluster_info");
    let lsn2 = second.wal_flush_lsn.expect("flush position");
    assert!(
        lsn2 > lsn1,
        "the flush position did not grow: {lsn1} -> {lsn2}"
    );

    // A streaming replica, monitored over the unix socket.
    let replica = Cluster::empty();
    let out = pg_command("pg_basebackup", &replica.run_as)
        .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
        .args(["-U", "postgres", "-X", "stream", "--no-sync", "-R", "-D"])
        .arg(&replica.data)
        .output()
        .expect("run pg_basebackup");
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _replica_pm = replica.start().await;
    let rmon = replica.monitor(true);
    assert_eq!(
        rmon.params().host.as_deref(),
        Some(replica.root.display().to_string().as_str())
    );

    admin
        .batch_execute("INSERT INTO t SELECT g FROM generate_series(1, 1000) g")
        .await
        .expect("more writes");
    let target = pmon
        .cluster_info()
        .await
        .expect("primary")
        .wal_flush_lsn
        .expect("flush position");
    let caught_up = wait_for(&rmon, "the replica to catch up", |i| {
        i.receiver_status.as_deref() == Some("streaming")
            && i.received_location().is_some_and(|l| l >= target)
            && i.replay_lsn.is_some_and(|l| l >= target)
    })
    .await;
    assert!(caught_up.is_in_recovery);
    assert_eq!(caught_up.timeline, None);
    assert_eq!(caught_up.wal_flush_lsn, None);
    assert_eq!(caught_up.received_tli, first.timeline);
    assert!(!caught_up.replay_paused);
    assert!(caught_up.last_xact_replay_timestamp.is_some());
    let conninfo = caught_up.receiver_conninfo.clone().unwrap_or_default();
    assert!(
        conninfo.contains(&format!("port={}", primary.port)),
        "conninfo {conninfo:?}"
    );
    assert!(caught_up.last_operation().is_some_and(|l| l >= target));

    // Paused replay: reported, and replay stops while receiving goes on.
    let radmin = replica.client().await;
    radmin
        .batch_execute("SELECT pg_catalog.pg_wal_replay_pause()")
        .await
        .expect("pause");
    let paused = wait_for(&rmon, "paused replay", |i| i.replay_paused).await;
    let replay_at_pause = paused.replay_lsn.expect("replay position");
    admin
        .batch_execute("INSERT INTO t SELECT g FROM generate_series(1, 1000) g")
        .await
        .expect("writes while paused");
    let target = pmon
        .cluster_info()
        .await
        .expect("primary")
        .wal_flush_lsn
        .expect("flush position");
    let received = wait_for(&rmon, "WAL received while paused", |i| {
        i.received_location().is_some_and(|l| l >= target)
    })
    .await;
    assert!(received.replay_paused);
    assert!(
        received
            .replay_lsn
            .is_some_and(|l| l < target && l >= replay_at_pause),
        "replay moved while paused: {received:?}"
    );
    radmin
        .batch_execute("SELECT pg_catalog.pg_wal_replay_resume()")
        .await
        .expect("resume");
    wait_for(&rmon, "resumed replay", |i| {
        !i.replay_paused && i.replay_lsn.is_some_and(|l| l >= target)
    })
    .await;

    // Stopping the primary: the next call fails with a typed error.
    drop(admin);
    primary_pm
        .stop(StopMode::Fast, Some(Duration::from_secs(20)))
        .await
        .expect("stop primary");
    match pmon.cluster_info().await {
        Err(QueryError::ConnectionLost(_)) | Err(QueryError::Connect(_)) => {}
        other => panic!("expected a connection error, got {other:?}"),
    }
    // Still down: a new connection attempt is refused, quickly.
    let started = Instant::now();
    assert!(matches!(
        pmon.cluster_info().await,
        Err(QueryError::Connect(_))
    ));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!pmon.is_connected().await);
    assert_eq!(
        pg_isready(
            Some(Path::new(BIN_DIR)),
            pmon.params(),
            Duration::from_secs(10)
        )
        .await,
        PgIsReady::NoResponse
    );

    // Restarted: the same monitor reconnects on its own.
    let _primary_pm = primary.start().await;
    assert_eq!(
        pg_isready(
            Some(Path::new(BIN_DIR)),
            pmon.params(),
            Duration::from_secs(10)
        )
        .await,
        PgIsReady::Accept
    );
    // Over the unix socket too.
    assert_eq!(
        pg_isready(
            Some(Path::new(BIN_DIR)),
            rmon.params(),
            Duration::from_secs(10)
        )
        .await,
        PgIsReady::Accept
    );
    let back = pmon.cluster_info().await.expect("reconnected");
    assert!(pmon.is_connected().await);
    assert!(!back.is_in_recovery);
    assert_eq!(back.timeline, Some(1));
    assert!(back.postmaster_start_time > first.postmaster_start_time);
    assert!(back.wal_flush_lsn.is_some_and(|l| l >= target));
}

#[tokio::test]
async fn a_client_timeout_is_typed_and_the_session_is_named() {
    if !have_postgres() {
        return;
    }
    let primary = Cluster::init();
    let _pm = primary.start().await;
    // A client-side timeout shorter than any answer: the call returns in
    // time with a typed error and the connection is not kept.
    let params = local_conn_params(&primary.patroni_section(false), "heartbeat").expect("params");
    let monitor = PgMonitor::new(
        params,
        MonitorOptions {
            query_timeout: Duration::from_millis(1),
        },
    );
    let started = Instant::now();
    let mut saw_timeout = false;
    for _ in 0..20 {
        match monitor.cluster_info().await {
            Err(QueryError::Timeout(_)) => {
                saw_timeout = true;
                break;
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => {}
        }
    }
    assert!(saw_timeout, "a 1 ms client timeout never fired");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!monitor.is_connected().await);

    // The session options reach the server, and the session is named
    // like Patroni's HA loop connection.
    let params = local_conn_params(&primary.patroni_section(false), "heartbeat")
        .expect("params")
        .with_statement_timeout(1234);
    let monitor = PgMonitor::new(params, MonitorOptions::default());
    assert_eq!(
        monitor
            .current_setting("statement_timeout")
            .await
            .expect("statement_timeout"),
        Some("1234ms".to_owned())
    );
    assert_eq!(
        monitor
            .current_setting("pg_stat_statements.track")
            .await
            .expect("pg_stat_statements.track"),
        Some("none".to_owned())
    );
    assert_eq!(
        monitor
            .current_setting("no_such.setting")
            .await
            .expect("unknown"),
        None
    );
    let admin = primary.client().await;
    let rows = admin
        .query(
            "SELECT application_name FROM pg_catalog.pg_stat_activity \
             WHERE application_name LIKE 'Patroni%'",
            &[],
        )
        .await
        .expect("pg_stat_activity");
    let names: Vec<String> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
    assert_eq!(names, vec!["Patroni heartbeat".to_owned()]);
}

#[tokio::test]
async fn a_frozen_backend_times_out_and_the_next_call_reconnects() {
    if !have_postgres() {
        return;
    }
    let primary = Cluster::init();
    let _pm = primary.start().await;
    let params = local_conn_params(&primary.patroni_section(false), "heartbeat").expect("params");
    let monitor = PgMonitor::new(
        params,
        MonitorOptions {
            query_timeout: Duration::from_secs(1),
        },
    );
    monitor.cluster_info().await.expect("first call");
    let admin = primary.client().await;
    let row = admin
        .query_one(
            "SELECT pid FROM pg_catalog.pg_stat_activity \
             WHERE application_name = 'Patroni heartbeat'",
            &[],
        )
        .await
        .expect("backend pid");
    let pid: i32 = row.get(0);
    // A backend that never answers (as with a hung server or network).
    // SAFETY: plain signals to a PostgreSQL backend this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let started = Instant::now();
    let result = monitor.cluster_info().await;
    let elapsed = started.elapsed();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    assert!(
        matches!(result, Err(QueryError::Timeout(_))),
        "expected a timeout, got {result:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "the call took {elapsed:?}"
    );
    assert!(!monitor.is_connected().await);
    monitor.cluster_info().await.expect("reconnected");
    // The old backend may still be exiting: look for a second one.
    let rows = admin
        .query(
            "SELECT pid FROM pg_catalog.pg_stat_activity \
             WHERE application_name = 'Patroni heartbeat'",
            &[],
        )
        .await
        .expect("backend pids");
    let pids: Vec<i32> = rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
    assert!(
        pids.iter().any(|p| *p != pid),
        "the frozen connection was reused: {pids:?}"
    );
}
