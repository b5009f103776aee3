//! The monitoring connection against a real PostgreSQL 15: a primary and a
//! streaming replica made with pg_basebackup.
//!
//! The clusters come from `support/pg.rs` (an unprivileged user when root;
//! skipped without PostgreSQL 15 except under CI).

use std::path::Path;
use std::time::{Duration, Instant};

use patroni::config::value::{Map, Value};
use patroni::postgres::process::StopMode;
use patroni::postgres::query::{
    local_conn_params, pg_isready, ClusterInfo, MonitorOptions, PgIsReady, PgMonitor, QueryError,
};

#[path = "support/pg.rs"]
mod pg;
use pg::{have_postgres, pg_command, Cluster, BIN_DIR};

impl Cluster {
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
    // The receiver's view of the primary, and the state the REST API shows.
    assert!(
        caught_up.latest_end_lsn.is_some_and(|l| l > 0),
        "{caught_up:?}"
    );
    assert_eq!(caught_up.replication_state(), Some("streaming"));
    assert_eq!(caught_up.restore_command.as_deref(), Some(""));
    assert!(caught_up.replication.is_empty());
    // The primary lists its one WAL sender with Patroni's fields, in order.
    let senders = pmon.cluster_info().await.expect("primary").replication;
    assert_eq!(senders.len(), 1, "{senders:?}");
    let keys: Vec<&str> = senders[0]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "usename",
            "application_name",
            "client_addr",
            "state",
            "sync_state",
            "sync_priority"
        ]
    );
    assert_eq!(senders[0]["usename"], "postgres");
    assert_eq!(senders[0]["state"], "streaming");
    assert_eq!(senders[0]["sync_state"], "async");
    assert_eq!(senders[0]["sync_priority"], 0);

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
    // A zero client-side timeout: the answer comes from the connection
    // task, so it can never be ready on the first poll, and the call
    // returns a typed error at once (a 1 ms timeout was beaten by fast
    // answers now and then). The connection is not kept.
    let params = local_conn_params(&primary.patroni_section(false), "heartbeat").expect("params");
    let monitor = PgMonitor::new(
        params,
        MonitorOptions {
            query_timeout: Duration::ZERO,
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
    assert!(saw_timeout, "a zero client timeout never fired");
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
