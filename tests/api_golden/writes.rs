//! Modifying endpoints against `write_endpoints_errors`, and GETs while
//! the DCS hangs.

use super::*;

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
        ("GET", "/replica", "200 OK"),
        ("OPTIONS", "/primary", "503 Service Unavailable"),
        ("GET", "/readiness", "200 OK"),
        ("GET", "/liveness", "200 OK"),
        ("GET", "/patroni", "200 OK"),
        ("GET", "/cluster", "200 OK"),
        ("GET", "/metrics", "200 OK"),
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
    assert_eq!(got.status_line, "503 Service Unavailable");
    assert!(!stuck.is_finished());
    stuck.abort();
    server.task.abort();
}
