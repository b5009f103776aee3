//! The DCS conformance suite: every backend must behave the same against a
//! real server. Each test starts its own etcd (3.4, v2 API enabled) or
//! ZooKeeper on free loopback ports, so tests run in parallel and leave
//! nothing behind.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use patroni::dcs::etcd::Etcd as EtcdV2;
use patroni::dcs::etcd3::Etcd3;
use patroni::dcs::settings::EtcdConnection;
use patroni::dcs::zookeeper::{ZkConnection, ZooKeeper};
use patroni::dcs::{Dcs, DcsError, KeyPaths, Timing};
use patroni::model::Cluster;

#[path = "support/zookeeper.rs"]
mod zookeeper_server;
use zookeeper_server::ZooKeeperServer;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

#[path = "support/etcd.rs"]
mod etcd_server;
use etcd_server::Etcd;

/// The server a backend talks to.
enum Server {
    Etcd(Etcd),
    ZooKeeper(ZooKeeperServer),
}

impl Server {
    fn etcd() -> Server {
        Server::Etcd(Etcd::start())
    }

    fn zookeeper() -> Server {
        Server::ZooKeeper(ZooKeeperServer::start())
    }

    fn endpoint(&self) -> String {
        match self {
            Server::Etcd(e) => e.endpoint(),
            Server::ZooKeeper(z) => z.endpoint(),
        }
    }

    fn stop(&mut self) {
        match self {
            Server::Etcd(e) => e.stop(),
            Server::ZooKeeper(z) => z.stop(),
        }
    }

    fn restart(&mut self) {
        match self {
            Server::Etcd(e) => e.restart(),
            Server::ZooKeeper(z) => z.restart(),
        }
    }
}

fn timing(ttl: u64) -> Timing {
    Timing {
        ttl: Duration::from_secs(ttl),
        retry_timeout: Duration::from_secs(2),
        loop_wait: Duration::from_secs(1),
    }
}

fn etcd3(etcd: &Server, scope: &str, name: &str, ttl: u64) -> Box<dyn Dcs> {
    let settings = EtcdConnection {
        hosts: vec![etcd.endpoint()],
        protocol: "http".into(),
        ..Default::default()
    };
    Box::new(Etcd3::new(
        KeyPaths::new("/service/", scope, name),
        settings,
        timing(ttl),
    ))
}

fn etcd2(etcd: &Server, scope: &str, name: &str, ttl: u64) -> Box<dyn Dcs> {
    let settings = EtcdConnection {
        hosts: vec![etcd.endpoint()],
        protocol: "http".into(),
        ..Default::default()
    };
    let backend = EtcdV2::new(
        KeyPaths::new("/service/", scope, name),
        settings,
        timing(ttl),
    );
    Box::new(backend.expect("valid settings"))
}

fn zookeeper(zk: &Server, scope: &str, name: &str, ttl: u64) -> Box<dyn Dcs> {
    let conn = ZkConnection {
        hosts: vec![zk.endpoint()],
        ..Default::default()
    };
    let backend = ZooKeeper::new(KeyPaths::new("/service/", scope, name), conn, timing(ttl));
    Box::new(backend.expect("valid settings"))
}

/// Read `dcs`'s snapshot until `pred` holds: another client's write reaches
/// a watch-fed cache a few milliseconds later (as in Patroni), so reads
/// across clients are eventually consistent.
async fn read_until(dcs: &dyn Dcs, pred: impl Fn(&Cluster) -> bool) -> Cluster {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let c = dcs.get_cluster().await.expect("cluster");
        if pred(&c) || Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn leader_name(c: &Cluster) -> Option<&str> {
    c.leader.as_ref().map(|l| l.name.as_str())
}

type Factory = fn(&Server, &str, &str, u64) -> Box<dyn Dcs>;

/// (name, server to start, client factory).
type Backend = (&'static str, fn() -> Server, Factory);

const BACKENDS: &[Backend] = &[
    ("etcd3", Server::etcd, etcd3),
    ("etcd (v2)", Server::etcd, etcd2),
    ("zookeeper", Server::zookeeper, zookeeper),
];

/// Run `body` for every backend against one fresh server each.
async fn for_each_backend<F, Fut>(body: F)
where
    F: Fn(Server, Factory) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for (name, server, factory) in BACKENDS {
        eprintln!("backend {name}");
        body(server(), *factory).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialize_is_create_if_absent() {
    for_each_backend(|etcd, make| async move {
        let a = make(&etcd, "init", "a", 10);
        let b = make(&etcd, "init", "b", 10);
        a.initialize(true, "").await.expect("first create wins");
        assert_eq!(b.initialize(true, "").await, Err(DcsError::CasFailed));
        a.initialize(false, "7710799292757857557")
            .await
            .expect("overwrite");
        let want = Some("7710799292757857557");
        let c = read_until(&*b, |c| c.initialize.as_deref() == want).await;
        assert_eq!(c.initialize.as_deref(), want);
        b.cancel_initialization().await.expect("cancel");
        let c = read_until(&*a, |c| c.initialize.is_none()).await;
        assert_eq!(c.initialize, None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_key_is_exclusive_and_released_only_by_its_owner() {
    for_each_backend(|etcd, make| async move {
        let a = make(&etcd, "race", "a", 10);
        let b = make(&etcd, "race", "b", 10);
        assert!(a.attempt_to_acquire_leader().await.expect("a races"));
        assert!(!b.attempt_to_acquire_leader().await.expect("b races"));
        let c = read_until(&*b, |c| leader_name(c) == Some("a")).await;
        assert_eq!(leader_name(&c), Some("a"));
        assert!(!b.delete_leader().await.expect("b cannot release a's key"));
        assert!(a.update_leader(&c).await.expect("a refreshes"));
        assert!(a.delete_leader().await.expect("a releases"));
        assert!(b.attempt_to_acquire_leader().await.expect("b takes it now"));
        let c = read_until(&*a, |c| leader_name(c) == Some("b")).await;
        assert_eq!(leader_name(&c), Some("b"));
        // a lost the key to b: refreshing must fail, not steal it back.
        assert!(!a.update_leader(&c).await.expect("a refresh"));
        let c = read_until(&*a, |c| leader_name(c) == Some("b")).await;
        assert_eq!(leader_name(&c), Some("b"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_keys_are_visible_and_leader_and_member_expire_after_ttl() {
    for_each_backend(|etcd, make| async move {
        let a = make(&etcd, "ttl", "a", 3);
        let b = make(&etcd, "ttl", "b", 30);
        let value = r#"{"conn_url":"postgres://127.0.0.1:5432/postgres","api_url":"http://127.0.0.1:8008/patroni","state":"running","role":"primary","version":"4.1.5"}"#;
        a.touch_member(None, value).await.expect("touch");
        assert!(a.attempt_to_acquire_leader().await.expect("race"));
        let c = read_until(&*b, |c| c.member("a").is_some() && c.leader.is_some()).await;
        let m = c.member("a").expect("a is visible to b");
        assert_eq!(m.role(), Some("primary"));
        assert_eq!(m.to_node(), value);
        // a dies: both keys vanish within ttl (+ slack). (A ZooKeeper
        // session lives as long as its client pings, so only a dead or
        // hung client loses its ephemeral keys.)
        drop(a);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = b.get_cluster().await.expect("cluster");
            if c.leader.is_none() && c.member("a").is_none() {
                break;
            }
            assert!(Instant::now() < deadline, "keys did not expire: {c:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_wakes_on_leader_change_and_expiry_and_times_out_otherwise() {
    for_each_backend(|etcd, make| async move {
        let a = make(&etcd, "watch", "a", 10);
        let b = make(&etcd, "watch", "b", 10);
        assert!(a.attempt_to_acquire_leader().await.expect("race"));
        let version = read_until(&*b, |c| c.leader.is_some())
            .await
            .leader
            .and_then(|l| l.version);
        assert!(version.is_some(), "the leader key has a version");
        let started = Instant::now();
        assert!(
            !b.watch(version, Duration::from_secs(1)).await,
            "nothing changed"
        );
        assert!(started.elapsed() >= Duration::from_millis(900));

        let waiter = tokio::spawn(async move {
            let woke = b.watch(version, Duration::from_secs(8)).await;
            (woke, b)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = Instant::now();
        assert!(a.delete_leader().await.expect("release"));
        let (woke, b) = waiter.await.expect("join");
        assert!(woke, "watch must wake when the leader key goes away");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "woke after {:?}",
            t0.elapsed()
        );

        // Expiry: a short-lived leader stops refreshing.
        let short = make(&etcd, "watch", "short", 3);
        assert!(short.attempt_to_acquire_leader().await.expect("race"));
        let version = read_until(&*b, |c| leader_name(c) == Some("short"))
            .await
            .leader
            .and_then(|l| l.version);
        drop(short);
        let t0 = Instant::now();
        let mut woke = false;
        while !woke && t0.elapsed() < Duration::from_secs(10) {
            woke = b.watch(version, Duration::from_secs(2)).await
                && b.get_cluster().await.expect("cluster").leader.is_none();
        }
        assert!(woke, "watch must wake when the leader key expires");
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "woke after {:?}",
            t0.elapsed()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_set_on_config_failover_and_sync() {
    for_each_backend(|etcd, make| async move {
        let a = make(&etcd, "cas", "a", 10);
        a.set_config_value(r#"{"ttl":30}"#, None)
            .await
            .expect("create config");
        let c = a.get_cluster().await.expect("cluster");
        let v1 = c
            .config
            .as_ref()
            .and_then(|c| c.version)
            .expect("config version");
        a.set_config_value(r#"{"ttl":40}"#, Some(v1))
            .await
            .expect("cas with the right version");
        assert_eq!(
            a.set_config_value(r#"{"ttl":50}"#, Some(v1)).await,
            Err(DcsError::CasFailed),
            "a stale version must lose"
        );
        let c = a.get_cluster().await.expect("cluster");
        assert_eq!(
            c.config
                .as_ref()
                .and_then(|c| c.data.get("ttl"))
                .and_then(|v| v.as_i64()),
            Some(40)
        );

        a.set_failover_value(r#"{"leader":"a","member":"b"}"#, None)
            .await
            .expect("failover");
        let c = a.get_cluster().await.expect("cluster");
        let fv = c
            .failover
            .as_ref()
            .and_then(|f| f.version)
            .expect("failover version");
        assert_eq!(
            a.set_failover_value("{}", Some(fv + 1000)).await,
            Err(DcsError::CasFailed)
        );
        a.set_failover_value("{}", Some(fv))
            .await
            .expect("failover cas");

        let sv = a
            .set_sync_state_value(r#"{"leader":"a","quorum":0,"sync_standby":null}"#, None)
            .await
            .expect("sync");
        let sv2 = a
            .set_sync_state_value(r#"{"leader":"a","quorum":0,"sync_standby":"b"}"#, Some(sv))
            .await
            .expect("sync cas");
        assert_eq!(
            a.set_sync_state_value("{}", Some(sv)).await,
            Err(DcsError::CasFailed)
        );
        assert_eq!(
            a.delete_sync_state(Some(sv)).await,
            Err(DcsError::CasFailed)
        );
        a.delete_sync_state(Some(sv2)).await.expect("delete sync");
        a.write_status(r#"{"optime":1}"#).await.expect("status");
        a.set_history_value("[]").await.expect("history");
        a.write_failsafe(r#"{"a":"http://127.0.0.1:8008/patroni"}"#)
            .await
            .expect("failsafe");
        let c = a.get_cluster().await.expect("cluster");
        assert!(c.sync.is_empty());
        assert_eq!(c.status.last_lsn, 1);
        assert!(c.failsafe.is_some() && c.history.is_some());
        a.delete_cluster().await.expect("delete cluster");
        let c = a.get_cluster().await.expect("cluster");
        assert!(c.config.is_none() && c.failover.is_none() && c.history.is_none());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_within_retry_timeout_then_recovers() {
    for_each_backend(|mut etcd, make| async move {
        let a = make(&etcd, "outage", "a", 10);
        assert!(a.attempt_to_acquire_leader().await.expect("race"));
        etcd.stop();
        let t0 = Instant::now();
        // Refreshing the leader key must report the outage, within the
        // retry timeout, so that the HA loop can demote in time.
        match a.update_leader(&Cluster::default()).await {
            Err(DcsError::Unreachable(_)) => {}
            other => panic!("expected Unreachable, got {other:?}"),
        }
        assert!(
            t0.elapsed() < Duration::from_secs(6),
            "took {:?}, retry_timeout is 2s",
            t0.elapsed()
        );
        match a.write_status(r#"{"optime":2}"#).await {
            Err(DcsError::Unreachable(_)) => {}
            other => panic!("expected Unreachable, got {other:?}"),
        }
        etcd.restart();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if a.write_status(r#"{"optime":3}"#).await.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "did not recover after etcd returned"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let c = a.get_cluster().await.expect("cluster after recovery");
        assert_eq!(c.status.last_lsn, 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_in_the_list_is_skipped() {
    let etcd = Etcd::start();
    let dead = format!("127.0.0.1:{}", free_port());
    let hosts = vec![dead, etcd.endpoint()];
    let v3 = Etcd3::new(
        KeyPaths::new("/service/", "multi", "a"),
        EtcdConnection {
            hosts: hosts.clone(),
            protocol: "http".into(),
            ..Default::default()
        },
        timing(10),
    );
    let v2 = EtcdV2::new(
        KeyPaths::new("/service/", "multi2", "a"),
        EtcdConnection {
            hosts,
            protocol: "http".into(),
            ..Default::default()
        },
        timing(10),
    )
    .expect("settings");
    let zk = ZooKeeperServer::start();
    let zk = ZooKeeper::new(
        KeyPaths::new("/service/", "multi", "a"),
        ZkConnection {
            hosts: vec![format!("127.0.0.1:{}", free_port()), zk.endpoint()],
            ..Default::default()
        },
        timing(10),
    )
    .expect("settings");
    for (name, dcs) in [
        ("etcd3", &v3 as &dyn Dcs),
        ("etcd", &v2 as &dyn Dcs),
        ("zookeeper", &zk as &dyn Dcs),
    ] {
        for _ in 0..5 {
            assert!(
                dcs.attempt_to_acquire_leader().await.is_ok(),
                "{name}: must use the live endpoint"
            );
            dcs.write_status(r#"{"optime":1}"#)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_change_takes_a_new_lease_with_the_new_ttl() {
    let etcd = Etcd::start();
    let a = Etcd3::new(
        KeyPaths::new("/service/", "lease", "a"),
        EtcdConnection {
            hosts: vec![etcd.endpoint()],
            protocol: "http".into(),
            ..Default::default()
        },
        timing(10),
    );
    let member = r#"{"state":"running"}"#;
    a.touch_member(None, member).await.expect("touch");
    let granted = |etcd: String| async move {
        let mut c = etcd_client::Client::connect([etcd], None)
            .await
            .expect("connect");
        let resp = c.get("/service/lease/members/a", None).await.expect("get");
        let lease = resp.kvs().first().expect("member key").lease();
        c.lease_time_to_live(lease, None)
            .await
            .expect("ttl")
            .granted_ttl()
    };
    assert_eq!(granted(etcd.endpoint()).await, 10);
    a.set_timing(timing(20));
    // Patroni wakes the loop at once after a ttl change...
    assert!(a.watch(None, Duration::from_secs(5)).await);
    // ...and rewrites the member key on the new lease.
    let c = a.get_cluster().await.expect("cluster");
    a.touch_member(Some(&c), member).await.expect("touch");
    assert_eq!(granted(etcd.endpoint()).await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd3_username_and_password() {
    let etcd = Etcd::start();
    let ctl = |args: &[&str]| {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=http://{}", etcd.endpoint()))
            .args(args)
            .output()
            .expect("etcdctl runs");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ctl(&["user", "add", "root:rootpw"]);
    ctl(&["user", "grant-role", "root", "root"]);
    ctl(&["auth", "enable"]);
    let make = |password: &str| {
        Etcd3::new(
            KeyPaths::new("/service/", "auth", "a"),
            EtcdConnection {
                hosts: vec![etcd.endpoint()],
                protocol: "http".into(),
                username: Some("root".into()),
                password: Some(password.into()),
                ..Default::default()
            },
            timing(10),
        )
    };
    let good = make("rootpw");
    assert!(good
        .attempt_to_acquire_leader()
        .await
        .expect("authenticated"));
    let bad = make("wrong");
    match bad.write_status("{}").await {
        Err(DcsError::Other(_) | DcsError::Unreachable(_)) => {}
        other => panic!("a wrong password must fail clearly, got {other:?}"),
    }
    let anonymous = Etcd3::new(
        KeyPaths::new("/service/", "auth", "b"),
        EtcdConnection {
            hosts: vec![etcd.endpoint()],
            protocol: "http".into(),
            ..Default::default()
        },
        timing(10),
    );
    assert!(
        anonymous.write_status("{}").await.is_err(),
        "auth is enforced"
    );
}

#[path = "support/certs.rs"]
mod certs;

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certificates(dir: &std::path::Path) {
    certs::make_certificates(
        dir,
        &[
            ("server", "serverAuth,clientAuth"),
            ("client", "clientAuth"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_on_both_backends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).expect("certs dir");
    make_certificates(&certs);
    let etcd = Etcd::start_with(dir, Some(&certs));
    let path = |f: &str| Some(certs.join(f).display().to_string());
    let conn = |with_client_cert: bool| EtcdConnection {
        hosts: vec![etcd.endpoint()],
        protocol: "https".into(),
        cacert: path("ca.crt"),
        cert: if with_client_cert {
            path("client.crt")
        } else {
            None
        },
        key: if with_client_cert {
            path("client.key")
        } else {
            None
        },
        ..Default::default()
    };
    let v3 = Etcd3::new(
        KeyPaths::new("/service/", "tls3", "a"),
        conn(true),
        timing(10),
    );
    assert!(v3
        .attempt_to_acquire_leader()
        .await
        .expect("etcd3 over mutual TLS"));
    let v2 = EtcdV2::new(
        KeyPaths::new("/service/", "tls2", "a"),
        conn(true),
        timing(10),
    )
    .expect("settings");
    assert!(v2
        .attempt_to_acquire_leader()
        .await
        .expect("etcd v2 over mutual TLS"));
    let c = v2.get_cluster().await.expect("cluster");
    assert_eq!(leader_name(&c), Some("a"));

    // The server requires a client certificate: without one, calls fail.
    let v3_anonymous = Etcd3::new(
        KeyPaths::new("/service/", "tls3", "b"),
        conn(false),
        timing(2),
    );
    assert!(v3_anonymous.write_status("{}").await.is_err());
    let v2_anonymous = EtcdV2::new(
        KeyPaths::new("/service/", "tls2", "b"),
        conn(false),
        timing(2),
    )
    .expect("settings");
    assert!(v2_anonymous.write_status("{}").await.is_err());
}

/// ZooKeeper cannot change a session's timeout: a `ttl` change opens a new
/// session, wakes the loop at once, and our ephemeral member znode is
/// created again under the new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_ttl_change_opens_a_new_session() {
    let server = Server::zookeeper();
    let a = zookeeper(&server, "zkttl", "a", 10);
    let b = zookeeper(&server, "zkttl", "b", 10);
    let member = r#"{"state":"running"}"#;
    a.touch_member(None, member).await.expect("touch");
    let session = |c: &Cluster| c.member("a").and_then(|m| m.session.clone());
    let first = session(&b.get_cluster().await.expect("cluster")).expect("ephemeral");
    // Unchanged data on the same session: no write (the version stays).
    let c = a.get_cluster().await.expect("cluster");
    a.touch_member(Some(&c), member).await.expect("touch");
    let version = |c: &Cluster| c.member("a").and_then(|m| m.version);
    assert_eq!(
        version(&a.get_cluster().await.expect("cluster")),
        version(&c)
    );
    a.set_timing(timing(20));
    assert!(a.watch(None, Duration::from_secs(5)).await);
    // The next call opens the new session: the old one's znode is gone.
    let c = a.get_cluster().await.expect("cluster");
    a.touch_member(Some(&c), member).await.expect("touch");
    let c = read_until(&*b, |c| session(c).is_some_and(|s| s != first)).await;
    assert_ne!(
        session(&c),
        Some(first),
        "member znode moved to the new session"
    );
}

/// The leader's wait ends when a new member key appears (so it can make
/// the newcomer's slot before the replica first tries to stream), and not
/// for refreshes of existing member keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_wakes_when_a_member_key_appears() {
    for (name, server, make) in &BACKENDS[..2] {
        eprintln!("backend {name}");
        let etcd = server();
        let a = make(&etcd, "newmember", "a", 10);
        assert!(a.attempt_to_acquire_leader().await.expect("race"));
        a.touch_member(None, r#"{"state":"running"}"#)
            .await
            .expect("own key");
        read_until(&*a, |c| {
            leader_name(c) == Some("a") && c.member("a").is_some()
        })
        .await;
        // Events from before (our own key appearing) are drained first.
        let _ = a.watch(None, Duration::from_secs(1)).await;
        read_until(&*a, |c| leader_name(c) == Some("a")).await;
        // A refresh of an existing member key: sleeps the whole wait.
        let a = std::sync::Arc::new(a);
        let refresher = {
            let a = a.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                a.touch_member(None, r#"{"state":"running","x":1}"#)
                    .await
                    .expect("refresh");
            })
        };
        let started = Instant::now();
        assert!(
            !a.watch(None, Duration::from_secs(2)).await,
            "{name}: a refresh woke the leader"
        );
        assert!(started.elapsed() >= Duration::from_millis(1800));
        refresher.await.expect("join");
        // A new member: wakes at once.
        read_until(&**a, |c| leader_name(c) == Some("a")).await;
        let b = make(&etcd, "newmember", "b", 10);
        let joiner = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            b.touch_member(None, r#"{"state":"starting"}"#)
                .await
                .expect("join");
            b
        });
        let started = Instant::now();
        assert!(
            a.watch(None, Duration::from_secs(8)).await,
            "{name}: a new member did not wake the leader"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{name}: woke after {:?}",
            started.elapsed()
        );
        drop(joiner.await.expect("join"));
    }
}
