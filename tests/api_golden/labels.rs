//! Every captured request of the `etcd3/rest/<label>` folders, the
//! standby cluster and the `extra/` captures, replayed against our server.

use super::*;

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
