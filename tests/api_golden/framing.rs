//! Raw response bytes against the captures, framing probes included.

use super::*;

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
