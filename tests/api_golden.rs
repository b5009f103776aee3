//! The REST API against a real Patroni 4.1.5: golden captures and
//! Patroni's own handler code.
//!
//! Golden replays ([`labels`], [`framing`], [`writes`]): for each captured
//! node we rebuild the published snapshot from what the capture shows at
//! that moment (the node's own `GET /patroni` body, its configuration file,
//! and the DCS dump taken in the same second), start our server on a
//! loopback port, replay every captured request over a raw socket and
//! compare status line, headers (all but `Date`) and body bytes. Only
//! `dcs_last_seen` is masked: Patroni refreshed it between requests.
//!
//! Differential tests ([`diff_health`], [`diff_writes`], [`diff_cluster`]) run Patroni's own
//! handlers in the project venv on generated situations and compare codes,
//! bodies and messages; they are skipped when the venv is missing.
//!
//! This file holds the shared helpers: snapshots from captures, a scripted
//! HA loop, and a raw-socket client.

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

/// A response reduced to what must match Patroni: the status code and
/// reason phrase (without the HTTP version), the headers (names
/// lower-cased) except the framing ones (`Date`, `Content-Length`,
/// `Connection`, which hyper writes its own way), and the body.
#[derive(Debug, PartialEq)]
struct Parsed {
    status_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// Headers that belong to the framing, not to Patroni's answer.
fn framing_header(name: &str) -> bool {
    matches!(name, "date" | "content-length" | "connection")
}

/// `HTTP/1.0 200 OK` -> `200 OK`.
fn strip_version(line: &str) -> String {
    match line.split_once(' ') {
        Some((version, rest)) if version.starts_with("HTTP/") => rest.to_owned(),
        _ => line.to_owned(),
    }
}

fn parse_response(bytes: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status_line = strip_version(lines.next().unwrap_or(""));
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .filter(|(k, _)| !framing_header(k))
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
        .filter_map(|h| {
            Some((
                h[0].as_str()?.to_ascii_lowercase(),
                h[1].as_str()?.to_owned(),
            ))
        })
        .filter(|(k, _)| !framing_header(k))
        .collect();
    Parsed {
        status_line: strip_version(entry["status_line"].as_str().unwrap_or("")),
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

/// The project venv's Python (`PATRONI_RS_VENV`, default
/// `/opt/patroni-rs/venv`), which has Python Patroni 4.1.5.
fn venv_python() -> String {
    let venv = std::env::var("PATRONI_RS_VENV").unwrap_or_else(|_| "/opt/patroni-rs/venv".into());
    format!("{venv}/bin/python")
}

/// Whether the differential tests can run. Under CI a missing Python
/// Patroni is a failure, not a skip.
fn python_available(python: &str) -> bool {
    if std::path::Path::new(python).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{python} not found (run .ci/setup)"
    );
    eprintln!("skipped: {python} not found");
    false
}

/// Run a Python harness that answers one stdin line with one stdout line.
/// Stdin is fed from a thread: writing everything first could fill both
/// pipes and deadlock. Panics with the harness's stderr when it fails.
fn python_lines(python: &str, script: &str, input: String) -> Vec<String> {
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
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
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[path = "api_golden/diff_cluster.rs"]
mod diff_cluster;
#[path = "api_golden/diff_health.rs"]
mod diff_health;
#[path = "api_golden/diff_writes.rs"]
mod diff_writes;
#[path = "api_golden/framing.rs"]
mod framing;
#[path = "api_golden/labels.rs"]
mod labels;
#[path = "api_golden/writes.rs"]
mod writes;
