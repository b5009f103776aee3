//! The postmaster process API against a real PostgreSQL 15.
//!
//! Each test initialises its own cluster (`support/pg.rs`: run as an
//! unprivileged user when root, a temporary directory, a free loopback
//! port), so the tests run in parallel.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use patroni::postgres::controldata::ClusterState;
use patroni::postgres::pid::PmStatus;
use patroni::postgres::process::{
    controldata, controldata_as, Postmaster, StartError, StopMode, StopOutcome,
};

#[path = "support/pg.rs"]
mod pg;
use pg::{have_postgres, pg_command, pid_alive, Cluster, BIN_DIR};

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
