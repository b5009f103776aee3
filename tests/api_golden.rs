//! The REST API against captures from a real Patroni 4.1.5 cluster.
//!
//! For each node of `etcd3/rest/01-baseline-sync-off` we rebuild the
//! published snapshot from what the capture shows at that moment (the
//! node's own `GET /patroni` body, its configuration file, and the DCS dump
//! `etcd3/dcs/01-baseline-sync-off`, taken in the same second), start our
//! server on a loopback port, replay every captured request over a raw
//! socket and compare status line, headers (all but `Date`) and body bytes.
//! Only `dcs_last_seen` is masked: Patroni refreshed it between requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use patroni::api::commands::{ApiCommands, PollTiming};
use patroni::api::http::{ApiServer, ApiSettings};
use patroni::api::status::{NodeStatus, PgQuery, PostgresView, StatusPublisher, Xlog};
use patroni::model::{Cluster, Member};

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/compat/golden")
}

fn read_json(path: &PathBuf) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The DCS dump of one label as a cluster snapshot.
fn dcs_cluster(label: &str) -> Cluster {
    dcs_cluster_at(&format!("etcd3/dcs/{label}"))
}

/// A DCS dump folder (relative to the golden root) as a cluster snapshot.
fn dcs_cluster_at(dir: &str) -> Cluster {
    let index = read_json(&golden().join(dir).join("index.json"));
    let keys = index["keys"].as_array().cloned().unwrap_or_default();
    let owned: Vec<(String, String, Option<i64>)> = keys
        .iter()
        .map(|k| {
            let key = k["key"].as_str().unwrap_or("");
            // `/service/<scope>/<key>` -> `<key>`
            let rel = key
                .strip_prefix("/service/")
                .and_then(|k| k.split_once('/'))
                .map_or(key, |(_, k)| k)
                .to_owned();
            (
                rel,
                k["value"].as_str().unwrap_or("").to_owned(),
                k["mod_revision"].as_i64(),
            )
        })
        .collect();
    Cluster::from_nodes(owned.iter().map(|(k, v, r)| (k.as_str(), v.as_str(), *r)))
}

/// A node's YAML configuration as JSON.
fn node_config(node: &str) -> Value {
    let file = if node == "s1" {
        "etcd3-standby-cluster-s1.yml".to_owned()
    } else {
        format!("etcd3-{node}.yml")
    };
    let path = golden().join("configs").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    patroni::config::yaml::load(&text)
        .ok()
        .and_then(|v| v.to_json())
        .unwrap_or(Value::Null)
}

fn obj(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Rebuild the snapshot a node published when the capture was taken.
fn node_status(folder: &str, node: &str, cluster: &Arc<Cluster>) -> NodeStatus {
    node_status_at("01-baseline-sync-off", folder, node, cluster)
}

fn node_status_at(label: &str, folder: &str, node: &str, cluster: &Arc<Cluster>) -> NodeStatus {
    let rest_dir = if label.contains('/') {
        label.to_owned()
    } else {
        format!("etcd3/rest/{label}")
    };
    let index = read_json(&golden().join(rest_dir).join("index.json"));
    let body: Value =
        serde_json::from_str(index[folder]["/patroni"]["body"].as_str().unwrap_or("{}"))
            .unwrap_or(Value::Null);
    status_from_body(&body, node, cluster)
}

/// The snapshot behind a captured `/patroni` body. A body without `xlog`
/// means the status query failed (PostgreSQL down).
fn status_from_body(body: &Value, node: &str, cluster: &Arc<Cluster>) -> NodeStatus {
    let config = node_config(node);
    let scope = body["patroni"]["scope"].as_str().unwrap_or("demo");
    let mut s = NodeStatus::new(scope, node);
    let xlog = match &body["xlog"] {
        Value::Object(x) if x.contains_key("location") => Some(Xlog::Primary {
            location: x["location"].as_i64().unwrap_or(0),
        }),
        Value::Object(x) => Some(Xlog::Replica {
            received_location: x["received_location"].as_i64().unwrap_or(0),
            replayed_location: x["replayed_location"].as_i64().unwrap_or(0),
            replayed_timestamp: x["replayed_timestamp"].as_str().map(str::to_owned),
            paused: x["paused"].as_bool().unwrap_or(false),
        }),
        _ => None,
    };
    s.postgres = PostgresView {
        state: body["state"].as_str().unwrap_or("").to_owned(),
        role: body["role"].as_str().unwrap_or("").to_owned(),
        query: body.get("xlog").map(|_| PgQuery {
            postmaster_start_time: body["postmaster_start_time"].as_str().map(str::to_owned),
            server_version: body["server_version"].as_i64(),
            xlog,
            timeline: body["timeline"].as_i64(),
            latest_end_lsn: None,
            replication_state: body["replication_state"].as_str().map(str::to_owned),
            replication: body["replication"].as_array().cloned(),
        }),
    };
    s.is_leader = cluster.leader.as_ref().is_some_and(|l| l.name == node);
    s.cluster = Some(cluster.clone());
    s.cluster_valid = true;
    s.dcs_last_seen = body["dcs_last_seen"].as_i64().unwrap_or(0);
    s.tags = obj(&config["tags"]);
    s.effective_tags = obj(&body["tags"]);
    s.database_system_identifier = body["database_system_identifier"]
        .as_str()
        .map(str::to_owned);
    s.ttl = 30;
    s.next_run = now_epoch();
    s
}

fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The stand-in for the HA loop in write-endpoint tests: answers from the
/// golden DCS view and mimics what the captured node did.
struct FakeHa {
    cluster: Arc<Cluster>,
    name: String,
    server_version: i64,
    /// After a failover key is written, the DCS shows it cleared (the
    /// leader rejected a failover to itself).
    failover_cleared: bool,
    hang: bool,
}

#[async_trait]
impl ApiCommands for FakeHa {
    async fn get_cluster(&self) -> Result<Arc<Cluster>, String> {
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(self.cluster.clone())
    }
    async fn reload(&self) {}
    async fn restart(&self, request: &Map<String, Value>) -> Result<(bool, String), String> {
        let role_ok = request.get("role").and_then(Value::as_str).is_none_or(|r| {
            r == "primary"
                && self
                    .cluster
                    .leader
                    .as_ref()
                    .is_some_and(|l| l.name == self.name)
        });
        let version_ok = request
            .get("postgres_version")
            .and_then(Value::as_str)
            .is_none_or(|v| {
                let parts: Vec<i64> = v.split('.').filter_map(|p| p.parse().ok()).collect();
                let wanted = parts.first().copied().unwrap_or(0) * 10000
                    + parts.get(1).copied().unwrap_or(0);
                self.server_version < wanted
            });
        let pending_ok = !request
            .get("restart_pending")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if role_ok && version_ok && pending_ok {
            Ok((true, "restarted successfully".into()))
        } else {
            Ok((false, "restart conditions are not satisfied".into()))
        }
    }
    async fn schedule_restart(&self, _: &Map<String, Value>) -> bool {
        true
    }
    async fn delete_scheduled_restart(&self) -> bool {
        false
    }
    async fn reinitialize(&self, _: bool, _: bool) -> Option<String> {
        if self
            .cluster
            .leader
            .as_ref()
            .is_some_and(|l| l.name == self.name)
        {
            Some("I am the leader, can not reinitialize".into())
        } else {
            None
        }
    }
    async fn manual_failover(
        &self,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<i64>,
    ) -> bool {
        self.failover_cleared
    }
    async fn has_healthy_candidate(&self, members: &[Member]) -> bool {
        members.iter().any(|m| {
            !m.tags()
                .get("nofailover")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
    }
    async fn set_config(&self, _: &str, _: Option<i64>) -> bool {
        true
    }
    async fn update_failsafe(&self, _: &Map<String, Value>) -> Result<Option<i64>, String> {
        Ok(None)
    }
    async fn mpp_event(&self, _: &Map<String, Value>) {}
    fn wakeup(&self) {}
}

struct Running {
    addr: SocketAddr,
    publisher: StatusPublisher,
    task: tokio::task::JoinHandle<()>,
}

async fn start(
    status: NodeStatus,
    commands: Arc<dyn ApiCommands>,
    settings: ApiSettings,
) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let (publisher, reader) = StatusPublisher::new(status);
    let server = Arc::new(ApiServer {
        settings,
        status: reader,
        commands,
    });
    let task = tokio::spawn(async move {
        let _ = server.serve(listener).await;
    });
    Running {
        addr,
        publisher,
        task,
    }
}

fn settings_for(node: &str) -> ApiSettings {
    let config = node_config(node);
    let mut s = ApiSettings::new();
    let auth = &config["restapi"]["authentication"];
    if let (Some(u), Some(p)) = (auth["username"].as_str(), auth["password"].as_str()) {
        s.set_auth(u, p);
    }
    s.poll = PollTiming {
        interval: Duration::from_millis(5),
    };
    s
}

async fn raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    stream
        .write_all(request)
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut out = Vec::new();
    stream
        .read_to_end(&mut out)
        .await
        .unwrap_or_else(|e| panic!("read: {e}"));
    out
}

fn request(method: &str, path: &str, headers: &[String], body: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if let Some(b) = body {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    r.push_str("\r\n");
    if let Some(b) = body {
        r.push_str(b);
    }
    r.into_bytes()
}

/// Status line, headers without Date, body.
#[derive(Debug, PartialEq)]
struct Parsed {
    status_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn parse_response(bytes: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("").to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| *k != "Date")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Parsed {
        status_line,
        headers,
        body: mask(body),
    }
}

fn expected(entry: &Value) -> Parsed {
    let headers = entry["headers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|h| Some((h[0].as_str()?.to_owned(), h[1].as_str()?.to_owned())))
        .filter(|(k, _)| k != "Date")
        .collect();
    Parsed {
        status_line: entry["status_line"].as_str().unwrap_or("").to_owned(),
        headers,
        body: mask(entry["body"].as_str().unwrap_or("")),
    }
}

/// Replace the `dcs_last_seen` numbers, which Patroni refreshed between
/// captured requests.
fn mask(body: &str) -> String {
    let re = regex::Regex::new(r#"("dcs_last_seen": |patroni_dcs_last_seen\{[^}]*\} )\d+"#)
        .unwrap_or_else(|e| panic!("{e}"));
    re.replace_all(body, "${1}N").into_owned()
}

/// Replay every captured request of one REST label against our server.
/// `dcs_label` is the DCS dump taken at the same moment; the `config` key
/// is taken from the label's own `GET /config` capture when they differ.
/// `label` is a folder under `etcd3/rest`, or a path from the golden root.
async fn replay_label(label: &str, dcs_dir: &str) -> (usize, Vec<String>) {
    let rest_dir = if label.contains('/') {
        label.to_owned()
    } else {
        format!("etcd3/rest/{label}")
    };
    let index = read_json(&golden().join(rest_dir).join("index.json"));
    let mut cluster = dcs_cluster_at(dcs_dir);
    let folders: Vec<String> = index
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if let Some(first) = folders.first() {
        if let Ok(Value::Object(config)) =
            serde_json::from_str::<Value>(index[first]["/config"]["body"].as_str().unwrap_or(""))
        {
            if let Some(c) = cluster.config.as_mut() {
                c.data = config;
            }
        }
    }
    let cluster = Arc::new(cluster);
    let mut failures = Vec::new();
    let mut checked = 0;
    for folder in &folders {
        let node = folder
            .split('_')
            .find(|p| p.starts_with("node"))
            .or_else(|| folder.rsplit('_').next())
            .unwrap_or("");
        let status = node_status_at(label, folder, node, &cluster);
        let fake = Arc::new(FakeHa {
            cluster: cluster.clone(),
            name: node.into(),
            server_version: 150020,
            failover_cleared: true,
            hang: false,
        });
        let server = start(status, fake, settings_for(node)).await;
        let entries = index[folder].as_object().cloned().unwrap_or_default();
        for (key, entry) in &entries {
            let (method, path) = match key.split_once(' ') {
                Some((m, p)) => (m, p),
                None => ("GET", key.as_str()),
            };
            let got = parse_response(&raw(server.addr, &request(method, path, &[], None)).await);
            let want = expected(entry);
            checked += 1;
            if got != want {
                failures.push(format!(
                    "{label} {node} {method} {path}:\n  got  {got:?}\n  want {want:?}"
                ));
            }
        }
        server.task.abort();
    }
    (checked, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baseline_read_endpoints_match_python() {
    let (checked, failures) =
        replay_label("01-baseline-sync-off", "etcd3/dcs/01-baseline-sync-off").await;
    assert!(checked >= 150, "only {checked} captured requests found");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_labels_match_python() {
    let mut all = Vec::new();
    for (label, dcs) in [
        // No dump was taken with this label; the pause transition's
        // "after" dump is the same moment.
        ("02-paused", "etcd3/transitions/03-pause/dcs_after"),
        ("03-sync-mode-on", "etcd3/dcs/03-sync-mode-on"),
        ("04-sync-mode-quorum", "etcd3/dcs/04-sync-mode-quorum"),
        (
            "05-quorum-two-candidates",
            "etcd3/dcs/05-quorum-two-candidates",
        ),
        ("06-failsafe-on", "etcd3/dcs/06-failsafe-on"),
        // A one-node standby cluster: /standby-leader = 200.
        ("etcd3/standby_cluster/rest", "etcd3/standby_cluster/dcs"),
    ] {
        let (checked, failures) = replay_label(label, dcs).await;
        let min = if label.contains("standby") { 56 } else { 168 };
        assert!(
            checked >= min,
            "{label}: only {checked} captured requests found"
        );
        all.extend(failures);
    }
    assert!(
        all.is_empty(),
        "{} mismatches:\n{}",
        all.len(),
        all.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_match_captures() {
    let base = golden().join("etcd3/rest/01-baseline-sync-off");
    let cluster = Arc::new(dcs_cluster("01-baseline-sync-off"));
    let status = node_status("replica_node2", "node2", &cluster);
    let fake = Arc::new(FakeHa {
        cluster: cluster.clone(),
        name: "node2".into(),
        server_version: 150020,
        failover_cleared: true,
        hang: false,
    });
    let server = start(status, fake, settings_for("node2")).await;
    let date = regex::bytes::Regex::new(r"Date: [^\r]*\r\n").unwrap_or_else(|e| panic!("{e}"));
    let strip = |b: &[u8]| date.replace_all(b, &b"Date: X\r\n"[..]).into_owned();
    for (file, method, path) in [
        ("replica_node2/GET_patroni.http", "GET", "/patroni"),
        ("replica_node2/OPTIONS_replica.http", "OPTIONS", "/replica"),
        ("replica_node2/HEAD_root.http", "HEAD", "/"),
        ("replica_node2/GET_liveness.http", "GET", "/liveness"),
        ("replica_node2/GET_config.http", "GET", "/config"),
        ("replica_node2/GET_failsafe.http", "GET", "/failsafe"),
        ("replica_node2/GET_cluster.http", "GET", "/cluster"),
    ] {
        let want = std::fs::read(base.join(file)).unwrap_or_default();
        let got = raw(server.addr, &request(method, path, &[], None)).await;
        assert_eq!(
            String::from_utf8_lossy(&strip(&got)),
            String::from_utf8_lossy(&strip(&want)),
            "{file}"
        );
    }
    // An unparsable request line: the bare HTML page, as captured.
    let want = std::fs::read(golden().join("etcd3/extra/framing/garbage_request_line.http"))
        .unwrap_or_default();
    assert_eq!(raw(server.addr, b"GARBAGE\r\n\r\n").await, want);
    // Framing probes whose answer does not depend on the cluster state.
    let framing = golden().join("etcd3/extra/framing");
    let basic = "Authorization: Basic cGF0cm9uaTpyZXN0LXNlY3JldA==".to_owned();
    for (file, method, path, headers, body) in [
        (
            "DELETE_restart_noauth.http",
            "DELETE",
            "/restart",
            vec![],
            None,
        ),
        (
            "POST_reload_bearer_auth.http",
            "POST",
            "/reload",
            vec!["Authorization: Bearer abc".to_owned()],
            None,
        ),
        (
            "PATCH_config_empty_object.http",
            "PATCH",
            "/config",
            vec![basic.clone()],
            Some("{}"),
        ),
    ] {
        let want = std::fs::read(framing.join(file)).unwrap_or_default();
        let got = raw(server.addr, &request(method, path, &headers, body)).await;
        assert_eq!(
            String::from_utf8_lossy(&strip(&got)),
            String::from_utf8_lossy(&strip(&want)),
            "{file}"
        );
    }
    // Keep-alive asked for: still HTTP/1.0 and closed (read_to_end returns).
    let got = raw(
        server.addr,
        b"HEAD /replica HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    assert_eq!(
        got,
        std::fs::read(framing.join("HEAD_replica_on_replica.http")).unwrap_or_default()
    );
    // POST without Content-Length where a body is required.
    let want =
        std::fs::read(golden().join("etcd3/extra/framing/POST_switchover_no_content_length.http"))
            .unwrap_or_default();
    let auth = "Authorization: Basic cGF0cm9uaTpyZXN0LXNlY3JldA==".to_owned();
    let got = raw(server.addr, &request("POST", "/switchover", &[auth], None)).await;
    assert_eq!(
        String::from_utf8_lossy(&strip(&got)),
        String::from_utf8_lossy(&strip(&want))
    );
    server.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_endpoint_errors_match_python() {
    let index = read_json(
        &golden().join("etcd3/rest/01-baseline-sync-off/write_endpoints_errors/index.json"),
    );
    let cluster = Arc::new(dcs_cluster("01-baseline-sync-off"));
    let mut servers: HashMap<i64, Running> = HashMap::new();
    for (port, folder, node) in [
        (18008, "leader_node1", "node1"),
        (18009, "replica_node2", "node2"),
    ] {
        let fake = Arc::new(FakeHa {
            cluster: cluster.clone(),
            name: node.into(),
            server_version: 150020,
            failover_cleared: true,
            hang: false,
        });
        let status = node_status(folder, node, &cluster);
        servers.insert(port, start(status, fake, settings_for(node)).await);
    }
    let mut failures = Vec::new();
    let cases = index.as_object().cloned().unwrap_or_default();
    for (name, case) in &cases {
        let req = &case["request"];
        let Some(server) = servers.get(&req["port"].as_i64().unwrap_or(0)) else {
            failures.push(format!("{name}: no server for port"));
            continue;
        };
        let mut headers = Vec::new();
        if req["auth"].as_bool() == Some(true) {
            headers.push("Authorization: Basic cGF0cm9uaTpyZXN0LXNlY3JldA==".to_owned());
        }
        for h in req["extra_headers"].as_array().cloned().unwrap_or_default() {
            headers.push(h.as_str().unwrap_or("").to_owned());
        }
        let body = match &req["body"] {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        };
        let bytes = request(
            req["method"].as_str().unwrap_or(""),
            req["path"].as_str().unwrap_or(""),
            &headers,
            body.as_deref(),
        );
        let got = parse_response(&raw(server.addr, &bytes).await);
        let want = expected(case);
        if got != want {
            failures.push(format!("{name}:\n  got  {got:?}\n  want {want:?}"));
        }
    }
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for s in servers.values() {
        s.task.abort();
    }
}

/// Health checks never wait on the DCS or PostgreSQL: with the DCS hanging
/// (every `get_cluster` pends forever, a switchover request stuck on it)
/// and no snapshot published for a long time, GETs answer at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_do_not_wait_for_a_stuck_publisher() {
    let cluster = Arc::new(dcs_cluster("01-baseline-sync-off"));
    let status = node_status("replica_node2", "node2", &cluster);
    let fake = Arc::new(FakeHa {
        cluster: cluster.clone(),
        name: "node2".into(),
        server_version: 150020,
        failover_cleared: true,
        hang: true,
    });
    let server = start(status, fake, settings_for("node2")).await;
    // A modifying request stuck on the hanging DCS.
    let stuck_addr = server.addr;
    let stuck = tokio::spawn(async move {
        let auth = "Authorization: Basic cGF0cm9uaTpyZXN0LXNlY3JldA==".to_owned();
        raw(
            stuck_addr,
            &request(
                "POST",
                "/switchover",
                &[auth],
                Some(r#"{"leader": "node1", "candidate": "node2"}"#),
            ),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    for (method, path, status_line) in [
        ("GET", "/replica", "HTTP/1.0 200 OK"),
        ("OPTIONS", "/primary", "HTTP/1.0 503 Service Unavailable"),
        ("GET", "/readiness", "HTTP/1.0 200 OK"),
        ("GET", "/liveness", "HTTP/1.0 200 OK"),
        ("GET", "/patroni", "HTTP/1.0 200 OK"),
        ("GET", "/cluster", "HTTP/1.0 200 OK"),
        ("GET", "/metrics", "HTTP/1.0 200 OK"),
    ] {
        let started = Instant::now();
        let got = parse_response(&raw(server.addr, &request(method, path, &[], None)).await);
        let took = started.elapsed();
        assert_eq!(got.status_line, status_line, "{method} {path}");
        assert!(
            took < Duration::from_millis(500),
            "{method} {path} took {took:?}"
        );
    }
    // A newly published snapshot is seen by the next request.
    let mut demoted = node_status("replica_node2", "node2", &cluster);
    demoted.postgres.state = "stopped".into();
    server.publisher.publish(demoted);
    let got = parse_response(&raw(server.addr, &request("GET", "/health", &[], None)).await);
    assert_eq!(got.status_line, "HTTP/1.0 503 Service Unavailable");
    assert!(!stuck.is_finished());
    stuck.abort();
    server.task.abort();
}

/// `GET_read-only__lag-1MB_AND_mode-write_node2.http` -> `/read-only?lag=1MB&mode=write`.
fn request_of_file(stem: &str) -> (String, String) {
    let (method, rest) = stem.split_once('_').unwrap_or(("GET", stem));
    let (path, query) = rest.split_once("__").unwrap_or((rest, ""));
    let path = if path == "root" {
        "/".to_owned()
    } else {
        format!("/{path}")
    };
    if query.is_empty() {
        return (method.to_owned(), path);
    }
    let query: Vec<String> = query
        .split("_AND_")
        .map(|kv| kv.replacen('-', "=", 1))
        .collect();
    (method.to_owned(), format!("{path}?{}", query.join("&")))
}

/// Replay every `*_<node>.http` capture of an `extra/` folder.
async fn replay_extra(dir: &str, node: &str) -> (usize, Vec<String>) {
    let base = golden().join("etcd3/extra").join(dir);
    let cluster = Arc::new(dcs_cluster_at(&format!("etcd3/extra/{dir}/dcs")));
    let patroni = std::fs::read(base.join(format!("GET_patroni_{node}.http"))).unwrap_or_default();
    let body: Value = serde_json::from_str(&parse_raw(&patroni).2).unwrap_or(Value::Null);
    let status = status_from_body(&body, node, &cluster);
    let fake = Arc::new(FakeHa {
        cluster: cluster.clone(),
        name: node.into(),
        server_version: 150020,
        failover_cleared: true,
        hang: false,
    });
    let server = start(status, fake, settings_for(node)).await;
    let mut files: Vec<String> = std::fs::read_dir(&base)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let suffix = format!("_{node}.http");
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in files.iter().filter(|f| f.ends_with(&suffix)) {
        let stem = &file[..file.len() - suffix.len()];
        let (method, path) = request_of_file(stem);
        let want = parse_response(&std::fs::read(base.join(file)).unwrap_or_default());
        let got = parse_response(&raw(server.addr, &request(&method, &path, &[], None)).await);
        checked += 1;
        if got != want {
            failures.push(format!(
                "{dir} {method} {path}:\n  got  {got:?}\n  want {want:?}"
            ));
        }
    }
    server.task.abort();
    (checked, failures)
}

/// Status line, headers and body of raw response bytes.
fn parse_raw(bytes: &[u8]) -> (String, String, String) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (line.to_owned(), headers.to_owned(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_paused_replay_and_stopped_postgres_match_python() {
    let mut all = Vec::new();
    for (dir, node, min) in [
        ("replica-replay-paused-lagging", "node2", 12),
        ("paused-replica-postgres-stopped", "node3", 8),
    ] {
        let (checked, failures) = replay_extra(dir, node).await;
        assert_eq!(checked, min, "{dir}");
        all.extend(failures);
    }
    assert!(
        all.is_empty(),
        "{} mismatches:\n{}",
        all.len(),
        all.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tokens_and_extra_headers() {
    let base = golden().join("etcd3/extra/server_tokens_minimal_and_extra_headers");
    let cluster = Arc::new(dcs_cluster("06-failsafe-on"));
    let status = node_status_at(
        "06-failsafe-on",
        "replica_nofailover_node3",
        "node3",
        &cluster,
    );
    let fake = Arc::new(FakeHa {
        cluster: cluster.clone(),
        name: "node3".into(),
        server_version: 150020,
        failover_cleared: true,
        hang: false,
    });
    let mut settings = settings_for("node3");
    settings.set_server_tokens("Minimal");
    settings.extra_headers = vec![
        ("X-Frame-Options".into(), "SAMEORIGIN".into()),
        ("X-Test".into(), "one".into()),
    ];
    let server = start(status, fake, settings).await;
    let auth = "Authorization: Basic cGF0cm9uaTpyZXN0LXNlY3JldA==".to_owned();
    for (file, method, path, headers, body, compare_body) in [
        ("GET_config.http", "GET", "/config", vec![], None, false),
        ("GET_patroni.http", "GET", "/patroni", vec![], None, false),
        ("GET_metrics.http", "GET", "/metrics", vec![], None, false),
        ("GET_liveness.http", "GET", "/liveness", vec![], None, true),
        (
            "OPTIONS_replica.http",
            "OPTIONS",
            "/replica",
            vec![],
            None,
            true,
        ),
        ("POST_reload.http", "POST", "/reload", vec![], None, true),
        (
            "POST_switchover.http",
            "POST",
            "/switchover",
            vec![auth.clone()],
            Some("{}"),
            true,
        ),
    ] {
        let want = parse_response(&std::fs::read(base.join(file)).unwrap_or_default());
        let got = parse_response(&raw(server.addr, &request(method, path, &headers, body)).await);
        assert_eq!(got.status_line, want.status_line, "{file}");
        assert_eq!(got.headers, want.headers, "{file}");
        if compare_body {
            assert_eq!(got.body, want.body, "{file}");
        }
    }
    server.task.abort();
}

/// The Python side of the differential test: Patroni's own
/// `get_postgresql_status` and `do_GET` run on a handler whose database
/// row, DCS view and node state come from each scenario line; it prints the
/// status code and body of every path.
const PY_HARNESS: &str = r#"
import datetime, json, sys, types
from urllib.parse import urlparse, parse_qs
from patroni.api import RestApiHandler
from patroni.dcs import Cluster, ClusterConfig, Failover, Leader, Member, Status, SyncState
from patroni.exceptions import PostgresConnectionException
from patroni.postgresql.misc import PostgresqlState
from patroni import global_config
from patroni.tags import Tags

class Node(Tags):
    def __init__(self, tags):
        self._t = tags
    @property
    def tags(self):
        return self._t

def cluster_of(keys):
    parts = {k: (v, ver) for k, v, ver in keys}
    members = [Member.from_node(ver, k[8:], None, v) for k, (v, ver) in parts.items() if k.startswith('members/')]
    config = ClusterConfig.from_node(parts['config'][1], parts['config'][0]) if 'config' in parts else None
    leader = None
    if 'leader' in parts:
        name = parts['leader'][0]
        m = next((m for m in members if m.name == name), None) or Member(0, name, None, {})
        leader = Leader(parts['leader'][1], None, m)
    sync = SyncState.from_node(parts['sync'][1], parts['sync'][0]) if 'sync' in parts else SyncState.empty()
    status = Status.from_node(parts['status'][0]) if 'status' in parts else Status(0, None, [])
    return Cluster(None, config, leader, status, members, None, sync, None, None)

READINESS_QUERIES = ['', 'lag=100', 'lag=abc', 'mode=write', 'lag=0&mode=write', 'lag=5kB']

def ts(text):
    return datetime.datetime.fromisoformat(text) if text else None

for line in sys.stdin:
    sc = json.loads(line)
    cluster = cluster_of(sc['keys'])
    # Start from the defaults: a scenario must not inherit the previous
    # scenario's configuration through Patroni's process-wide state.
    global_config.update(None, {'ttl': 30})
    global_config.update(cluster)
    node = Node(sc['tags'])
    node.version = '4.1.5'
    node.scheduled_restart = {}
    node.logger = types.SimpleNamespace(queue_size=0, NORMAL_LOG_QUEUE_SIZE=2, records_lost=0)
    node.dcs = types.SimpleNamespace(cluster=cluster if sc['valid'] else None, last_seen=sc['last_seen'])
    node.ha = types.SimpleNamespace(
        is_leader=lambda: sc['is_leader'], failsafe_is_active=lambda: sc['failsafe_active'],
        get_effective_tags=lambda: dict(sc['tags']), watchdog=types.SimpleNamespace(is_healthy=True))
    def replication_state(is_primary, status, restore):
        if is_primary:
            return None
        if status == 'streaming':
            return 'streaming'
        return 'in archive recovery' if restore else None
    node.postgresql = types.SimpleNamespace(
        state=PostgresqlState(sc['state']), role=sc['mem_role'], major_version=150000, server_version=150020,
        name=sc['name'], scope='demo', sysid='7710799292757857557', pending_restart_reason={},
        POSTMASTER_START_TIME='x', TL_LSN='x', wal_name='wal', lsn_name='lsn', wal_flush='_flush',
        replica_cached_timeline=lambda tl: sc['cached_timeline'],
        replication_state_from_parameters=replication_state)
    row = [ts(sc['start']), 0 if sc['in_recovery'] else sc['timeline'], sc['location'], sc['replayed'],
           sc['received'], sc['paused'], ts(sc['replayed_ts']), sc['latest_end_lsn'], sc['wr_status'],
           sc['restore_command'], sc['received'], sc['replication']]
    out = []
    for url in sc['paths']:
        u = urlparse(url)
        h = types.SimpleNamespace(path=u.path, path_query=parse_qs(u.query) or {})
        h.server = types.SimpleNamespace(patroni=node)
        def query(stmt, *args, retry=False):
            if not sc['reachable']:
                raise PostgresConnectionException('down')
            return [row]
        h.query = query
        h.get_postgresql_status = lambda retry=False, h=h: RestApiHandler.get_postgresql_status(h, retry)
        res = []
        h._write_json_response = lambda code, body: res.append((code, json.dumps(body, default=str)))
        h._write_status_response = lambda code, body, h=h: RestApiHandler._write_status_response(h, code, body)
        RestApiHandler.do_GET(h)
        out.append(res[0])
    ready = []
    for q in READINESS_QUERIES:
        h.path_query = parse_qs(q) or {}
        ready.append(200 if RestApiHandler._readiness(h) is None else 503)
    metrics = []
    h.write_response = lambda code, body, content_type=None, headers=None: metrics.append(body)
    RestApiHandler.do_GET_metrics(h)
    print(json.dumps({'get': out, 'readiness': ready, 'metrics': metrics[0]}))
"#;

/// The readiness queries the harness evaluates (keep in sync with
/// `READINESS_QUERIES` in the harness).
const READINESS_QUERIES: [&str; 6] = [
    "",
    "lag=100",
    "lag=abc",
    "mode=write",
    "lag=0&mode=write",
    "lag=5kB",
];

/// A small deterministic generator (64-bit LCG) for scenarios.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        usize::try_from((self.0 >> 33) % (n as u64)).unwrap_or(0)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next(items.len())]
    }
}

const DIFF_PATHS: [&str; 36] = [
    "/",
    "/primary",
    "/master",
    "/read-write",
    "/leader",
    "/standby-leader",
    "/standby_leader",
    "/replica",
    "/read-only",
    "/health",
    "/sync",
    "/synchronous",
    "/quorum",
    "/async",
    "/asynchronous",
    "/read-only-sync",
    "/read-only-synchronous",
    "/read-only-quorum",
    "/nonexistent",
    "/replica?lag=100",
    "/replica?lag=1kB",
    "/replica?lag=abc",
    "/read-only?lag=0",
    "/async?lag=10",
    "/replica?tag_dc=dc1",
    "/replica?tag_dc=dc2",
    "/replica?tag_flag=true",
    "/replica?tag_num=3",
    "/health?tag_missing=x",
    "/sync?tag_dc=dc1",
    "/quorum?lag=5&tag_flag=true",
    "/primary?tag_dc=zz",
    "/read-only-quorum?tag_dc=zz",
    "/leader?lag=0",
    "/x/replica/y",
    "/read-only-sync?lag=0&tag_flag=false",
];

/// One random situation, as JSON for the harness and as our snapshot.
fn scenario(rng: &mut Lcg) -> (Value, NodeStatus) {
    let name = *rng.pick(&["node1", "node2", "node3"]);
    let state = *rng.pick(&[
        "running",
        "running",
        "running",
        "starting",
        "stopped",
        "restarting",
    ]);
    let mem_role = *rng.pick(&["primary", "replica", "standby_leader", "demoted"]);
    let reachable = rng.next(5) != 0;
    let in_recovery = rng.next(3) != 0;
    let timeline = 1 + rng.next(4) as i64;
    let cached_timeline = rng.pick(&[None, Some(2_i64), Some(3)]).to_owned();
    let location = *rng.pick(&[1000_i64, 5000]);
    let replayed = *rng.pick(&[100_i64, 900, 1000, 4000]);
    let received = replayed + *rng.pick(&[0_i64, 50]);
    let paused = rng.next(4) == 0;
    let replayed_ts = rng
        .pick(&[None, Some("2026-11-22 01:20:33.305479+00:00")])
        .to_owned();
    let latest_end_lsn = rng.pick(&[None, Some(1200_i64), Some(6000)]).to_owned();
    let wr_status = rng
        .pick(&[None, Some("streaming"), Some("stopping")])
        .to_owned();
    let restore_command = *rng.pick(&["", "cp %f %p"]);
    let replication = rng
        .pick(&[
            Value::Null,
            serde_json::json!([{"usename": "replicator", "application_name": "node2", "client_addr": "127.0.0.1", "state": "streaming", "sync_state": "async", "sync_priority": 0}]),
        ])
        .clone();
    let config = *rng.pick(&[
        r#"{"ttl":30}"#,
        r#"{"pause":true}"#,
        r#"{"synchronous_mode":true}"#,
        r#"{"synchronous_mode":"quorum","pause":"on"}"#,
        r#"{"standby_cluster":{"host":"10.0.0.1","port":5432}}"#,
        r#"{"maximum_lag_on_failover":"2kB","synchronous_mode":"on"}"#,
        "[1]",
    ]);
    let sync = *rng.pick(&[
        "{}",
        r#"{"leader":"node1","sync_standby":"node2"}"#,
        r#"{"leader":"node1","sync_standby":"node2,NODE3","quorum":1}"#,
    ]);
    let optime = *rng.pick(&[0_i64, 1000, 5000]);
    let mut keys = vec![
        ("config".to_owned(), config.to_owned(), Some(3_i64)),
        ("sync".to_owned(), sync.to_owned(), Some(4)),
        (
            "status".to_owned(),
            format!(r#"{{"optime":{optime}}}"#),
            Some(5),
        ),
        (
            "members/node1".to_owned(),
            r#"{"timeline":1}"#.to_owned(),
            Some(6),
        ),
        ("members/node2".to_owned(), "{}".to_owned(), Some(7)),
    ];
    if let Some(leader) = rng.pick(&[None, Some("node1"), Some("node2")]) {
        keys.push(("leader".to_owned(), (*leader).to_owned(), Some(8)));
    }
    let tags = rng
        .pick(&[
            serde_json::json!({}),
            serde_json::json!({"dc": "dc1", "flag": true, "num": 3}),
            serde_json::json!({"noloadbalance": true, "dc": "dc2"}),
            serde_json::json!({"nofailover": true, "flag": false}),
        ])
        .clone();
    let valid = rng.next(4) != 0;
    let is_leader = rng.next(2) == 0;
    let failsafe_active = rng.next(6) == 0;
    let json = serde_json::json!({
        "name": name, "state": state, "mem_role": mem_role, "reachable": reachable,
        "in_recovery": in_recovery, "timeline": timeline, "cached_timeline": cached_timeline,
        "location": location, "replayed": replayed, "received": received, "paused": paused,
        "replayed_ts": replayed_ts, "latest_end_lsn": latest_end_lsn, "wr_status": wr_status,
        "restore_command": restore_command, "replication": replication,
        "start": "2026-11-22 01:19:23.052006+00:00",
        "keys": keys.iter().map(|(k, v, r)| serde_json::json!([k, v, r])).collect::<Vec<_>>(),
        "valid": valid, "is_leader": is_leader, "failsafe_active": failsafe_active,
        "tags": tags, "last_seen": 1795310453, "paths": DIFF_PATHS.to_vec(),
    });

    let cluster = Arc::new(Cluster::from_nodes(
        keys.iter().map(|(k, v, r)| (k.as_str(), v.as_str(), *r)),
    ));
    let mut s = NodeStatus::new("demo", name);
    let queried = reachable && matches!(state, "running" | "restarting" | "starting");
    let replication_state = if !in_recovery {
        None
    } else if wr_status == Some("streaming") {
        Some("streaming".to_owned())
    } else if !restore_command.is_empty() {
        Some("in archive recovery".to_owned())
    } else {
        None
    };
    s.postgres = PostgresView {
        state: state.to_owned(),
        role: mem_role.to_owned(),
        query: queried.then(|| PgQuery {
            postmaster_start_time: Some("2026-11-22 01:19:23.052006+00:00".to_owned()),
            server_version: Some(150020),
            xlog: Some(if in_recovery {
                Xlog::Replica {
                    received_location: received,
                    replayed_location: replayed,
                    replayed_timestamp: replayed_ts.map(str::to_owned),
                    paused,
                }
            } else {
                Xlog::Primary { location }
            }),
            timeline: if in_recovery {
                cached_timeline
            } else {
                Some(timeline)
            },
            latest_end_lsn,
            replication_state,
            replication: replication.as_array().cloned(),
        }),
    };
    s.is_leader = is_leader;
    s.cluster = Some(cluster);
    s.cluster_valid = valid;
    s.dcs_last_seen = 1795310453;
    s.tags = obj(&tags);
    s.effective_tags = obj(&tags);
    s.database_system_identifier = Some("7710799292757857557".to_owned());
    s.failsafe_active = failsafe_active;
    (json, s)
}

/// Health codes and bodies of the generic GET handler, `/readiness` codes
/// and the `/metrics` text against Patroni's own code on generated
/// situations (roles, states, PostgreSQL down or unreachable, DCS
/// validity, pause, sync/quorum/standby configurations, lag, tags).
#[test]
fn health_checks_match_patroni_on_generated_scenarios() {
    let python = "/opt/patroni-rs/venv/bin/python";
    if !std::path::Path::new(python).exists() {
        eprintln!("skipped: {python} not found");
        return;
    }
    let mut rng = Lcg(0x5eed);
    let scenarios: Vec<(Value, NodeStatus)> = (0..300).map(|_| scenario(&mut rng)).collect();
    let input: String = scenarios.iter().map(|(j, _)| format!("{j}\n")).collect();
    let mut child = std::process::Command::new(python)
        .args(["-c", PY_HARNESS])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python: {e}"));
    // Feed stdin from a thread: the harness answers line by line, so
    // writing everything first could fill both pipes and deadlock.
    let feeder = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(input.as_bytes());
        })
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("python: {e}"));
    if let Some(f) = feeder {
        let _ = f.join();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap_or("")
        .lines()
        .collect();
    assert_eq!(lines.len(), scenarios.len());
    let mut failures = Vec::new();
    let mut ok_codes = 0;
    for ((json, status), line) in scenarios.iter().zip(lines) {
        let answer: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        let python: Vec<(u16, String)> =
            serde_json::from_value(answer["get"].clone()).unwrap_or_default();
        assert_eq!(python.len(), DIFF_PATHS.len());
        let metrics = answer["metrics"].as_str().unwrap_or("");
        assert!(metrics.starts_with("# HELP patroni_version"), "{metrics}");
        let ours_metrics = patroni::api::bodies::metrics_body(status);
        if metrics != ours_metrics {
            failures.push(format!(
                "/metrics in {json}\n  python {metrics}\n  ours   {ours_metrics}"
            ));
        }
        let ready: Vec<u16> =
            serde_json::from_value(answer["readiness"].clone()).unwrap_or_default();
        for (q, code) in READINESS_QUERIES.iter().zip(&ready) {
            let ours = patroni::api::health::readiness_status(
                status,
                &patroni::api::health::Query::parse(q),
            );
            ok_codes += usize::from(*code == 200);
            if ours != *code {
                failures.push(format!(
                    "/readiness?{q} in {json}\n  python {code}\n  ours   {ours}"
                ));
            }
        }
        assert_eq!(ready.len(), READINESS_QUERIES.len());
        for (url, (code, body)) in DIFF_PATHS.iter().zip(python) {
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            let ours = patroni::api::health::health_status(
                status,
                path,
                &patroni::api::health::Query::parse(query),
            );
            let our_body = patroni::api::bodies::status_body(status);
            ok_codes += usize::from(code == 200);
            if ours != code || our_body != body {
                failures.push(format!(
                    "{url} in {json}\n  python {code} {body}\n  ours   {ours} {our_body}"
                ));
            }
        }
    }
    assert!(
        ok_codes > 500,
        "too few 200s ({ok_codes}) to be a meaningful comparison"
    );
    assert!(
        failures.is_empty(),
        "{} mismatches, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Python side of the write-endpoint differential test: Patroni's own
/// `do_POST_failover`/`do_POST_restart` with the request body, DCS view and
/// HA answers taken from each scenario line. Writing the failover key
/// "fails", so no result polling happens.
const PY_WRITE_HARNESS: &str = r#"
import json, sys, types
from patroni.api import RestApiHandler
from patroni.dcs import Cluster, ClusterConfig, Leader, Member, Status, SyncState
from patroni import global_config

for line in sys.stdin:
    sc = json.loads(line)
    parts = {k: v for k, v in sc['keys']}
    members = [Member.from_node(1, n, None, '{"api_url":"http://%s/patroni"}' % n) for n in ('a', 'b', 'c')]
    leader = Leader(1, None, members[0]) if 'leader' in parts else None
    cluster = Cluster(None, ClusterConfig.from_node(1, parts['config']), leader, Status(0, None, []), members,
                      None, SyncState.from_node(1, parts.get('sync', '{}')), None, None)
    global_config.update(None, {'ttl': 30})
    global_config.update(cluster)
    res = []
    node = types.SimpleNamespace()
    node.dcs = types.SimpleNamespace(get_cluster=lambda: cluster, manual_failover=lambda *a, **k: False, loop_wait=10)
    healthy = sc['healthy']
    node.ha = types.SimpleNamespace(
        fetch_nodes_statuses=lambda ms: [types.SimpleNamespace(failover_limitation=lambda: None if healthy else 'no')
                                         for _ in ms],
        restart=lambda req: (False, 'restart conditions are not satisfied'),
        schedule_future_restart=lambda req: True, wakeup=lambda: None)
    h = types.SimpleNamespace(server=types.SimpleNamespace(patroni=node, check_access=lambda *a, **k: True))
    h._read_json_content = lambda body_is_optional=False: dict(sc['body'])
    h.write_response = lambda code, body, content_type='text/html', headers=None: res.append((code, body))
    h.parse_schedule = RestApiHandler.parse_schedule
    h.is_failover_possible = lambda *a: RestApiHandler.is_failover_possible(h, *a)
    if sc['action'] == 'restart':
        RestApiHandler.do_POST_restart(h)
    else:
        RestApiHandler.do_POST_failover(h, action=sc['action'])
    print(json.dumps(res[0]))
"#;

fn write_scenario(rng: &mut Lcg) -> Value {
    let config = *rng.pick(&[
        "{}",
        r#"{"pause":true}"#,
        r#"{"synchronous_mode":true}"#,
        r#"{"synchronous_mode":"quorum"}"#,
        r#"{"synchronous_mode":true,"pause":true}"#,
    ]);
    let sync = *rng.pick(&["{}", r#"{"leader":"a","sync_standby":"b"}"#]);
    let mut keys = vec![
        serde_json::json!(["config", config]),
        serde_json::json!(["sync", sync]),
    ];
    if rng.next(4) != 0 {
        keys.push(serde_json::json!(["leader", "a"]));
    }
    let action = *rng.pick(&["failover", "switchover", "restart"]);
    let mut body = Map::new();
    if action == "restart" {
        let options: [(&str, &[Value]); 6] = [
            (
                "schedule",
                &[
                    Value::from("2099-01-01T00:00:00+00:00"),
                    Value::from("garbage"),
                    Value::from("2020-01-01T00:00:00Z"),
                    Value::from("2099-01-01 00:00:00"),
                ],
            ),
            (
                "role",
                &[
                    Value::from("primary"),
                    Value::from("master"),
                    Value::from("replica"),
                ],
            ),
            (
                "postgres_version",
                &[
                    Value::from("15.2"),
                    Value::from("abc"),
                    Value::from("9.6"),
                    Value::from("1.2.3.4"),
                ],
            ),
            (
                "timeout",
                &[
                    Value::from("0"),
                    Value::from(5),
                    Value::from("1min"),
                    Value::from("x"),
                ],
            ),
            ("restart_pending", &[Value::from(true)]),
            ("foo", &[Value::from(1)]),
        ];
        for _ in 0..rng.next(4) {
            let (k, values) = rng.pick(&options);
            body.insert((*k).to_owned(), rng.pick(values).clone());
        }
    } else {
        for (k, values) in [
            (
                "leader",
                &[
                    Value::Null,
                    Value::from("a"),
                    Value::from("x"),
                    Value::from(""),
                ][..],
            ),
            (
                "candidate",
                &[
                    Value::Null,
                    Value::from("a"),
                    Value::from("b"),
                    Value::from("c"),
                    Value::from("z"),
                ][..],
            ),
            ("member", &[Value::Null, Value::from("b")][..]),
            (
                "scheduled_at",
                &[
                    Value::Null,
                    Value::Null,
                    Value::from("garbage"),
                    Value::from("2020-01-01T00:00:00+00:00"),
                    Value::from("2099-01-01T00:00:00"),
                    Value::from("2099-01-01T00:00:00+00:00"),
                    Value::from("2099-01-01 10:00:00Z"),
                    Value::from(5),
                ][..],
            ),
        ] {
            let v = rng.pick(values).clone();
            if !v.is_null() {
                body.insert(k.to_owned(), v);
            }
        }
    }
    serde_json::json!({
        "keys": keys, "action": action, "body": body, "healthy": rng.next(3) != 0,
    })
}

/// Our side of one write scenario.
struct WriteFake {
    cluster: Arc<Cluster>,
    healthy: bool,
}

#[async_trait]
impl ApiCommands for WriteFake {
    async fn get_cluster(&self) -> Result<Arc<Cluster>, String> {
        Ok(self.cluster.clone())
    }
    async fn reload(&self) {}
    async fn restart(&self, _: &Map<String, Value>) -> Result<(bool, String), String> {
        Ok((false, "restart conditions are not satisfied".into()))
    }
    async fn schedule_restart(&self, _: &Map<String, Value>) -> bool {
        true
    }
    async fn delete_scheduled_restart(&self) -> bool {
        false
    }
    async fn reinitialize(&self, _: bool, _: bool) -> Option<String> {
        None
    }
    async fn manual_failover(
        &self,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<&str>,
        _: Option<i64>,
    ) -> bool {
        false
    }
    async fn has_healthy_candidate(&self, members: &[Member]) -> bool {
        self.healthy && !members.is_empty()
    }
    async fn set_config(&self, _: &str, _: Option<i64>) -> bool {
        false
    }
    async fn update_failsafe(&self, _: &Map<String, Value>) -> Result<Option<i64>, String> {
        Ok(None)
    }
    async fn mpp_event(&self, _: &Map<String, Value>) {}
    fn wakeup(&self) {}
}

/// Switchover/failover and restart validation (messages, codes, check
/// order) against Patroni's own handlers on generated requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_validation_matches_patroni_on_generated_requests() {
    use patroni::api::commands::{post_failover, post_restart, Reply};
    let python = "/opt/patroni-rs/venv/bin/python";
    if !std::path::Path::new(python).exists() {
        eprintln!("skipped: {python} not found");
        return;
    }
    let mut rng = Lcg(0xfa11);
    let scenarios: Vec<Value> = (0..400).map(|_| write_scenario(&mut rng)).collect();
    let input: String = scenarios.iter().map(|j| format!("{j}\n")).collect();
    let mut child = std::process::Command::new(python)
        .args(["-c", PY_WRITE_HARNESS])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python: {e}"));
    let feeder = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(input.as_bytes());
        })
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("python: {e}"));
    if let Some(f) = feeder {
        let _ = f.join();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap_or("")
        .lines()
        .collect();
    assert_eq!(lines.len(), scenarios.len());
    let mut failures = Vec::new();
    let mut codes = std::collections::BTreeMap::new();
    for (sc, line) in scenarios.iter().zip(lines) {
        let (code, msg): (Option<u16>, String) =
            serde_json::from_str(line).unwrap_or((Some(0), String::new()));
        // A valid schedule followed by a later 400 check leaves Patroni's
        // status code unset (`None`): its handler then fails while writing
        // and the client sees the connection closed. We answer 400.
        let code = code.unwrap_or(400);
        *codes.entry(code).or_insert(0) += 1;
        let keys: Vec<(String, String)> = sc["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|k| {
                (
                    k[0].as_str().unwrap_or("").to_owned(),
                    k[1].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        let mut nodes: Vec<(String, String, Option<i64>)> =
            keys.into_iter().map(|(k, v)| (k, v, Some(1))).collect();
        for n in ["a", "b", "c"] {
            nodes.push((
                format!("members/{n}"),
                format!(r#"{{"api_url":"http://{n}/patroni"}}"#),
                Some(1),
            ));
        }
        let cluster = Arc::new(Cluster::from_nodes(
            nodes.iter().map(|(k, v, r)| (k.as_str(), v.as_str(), *r)),
        ));
        let fake = WriteFake {
            cluster: cluster.clone(),
            healthy: sc["healthy"].as_bool().unwrap_or(false),
        };
        let body = obj(&sc["body"]);
        let now = chrono::Utc::now();
        let reply = match sc["action"].as_str().unwrap_or("") {
            "restart" => {
                let mut status = NodeStatus::new("demo", "a");
                status.cluster = Some(cluster.clone());
                status.cluster_valid = true;
                post_restart(&fake, &status, body, now).await
            }
            "failover" => post_failover(&fake, &body, "failover", now, PollTiming::default()).await,
            _ => post_failover(&fake, &body, "switchover", now, PollTiming::default()).await,
        };
        let ours = match reply {
            Reply::Text { code, body, .. } => (code, body),
            Reply::Error(code) => (code, "<error page>".to_owned()),
        };
        if ours != (code, msg.clone()) {
            failures.push(format!(
                "{sc}\n  python {code} {msg}\n  ours   {} {}",
                ours.0, ours.1
            ));
        }
    }
    assert!(codes.len() >= 5, "too little variety: {codes:?}");
    assert!(
        failures.is_empty(),
        "{} mismatches, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(6)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
