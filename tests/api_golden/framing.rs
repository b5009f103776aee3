//! Responses against the raw captures, framing probes included: status
//! code and reason phrase, Patroni's headers and the body must match; the
//! framing (HTTP version, `Date`, `Content-Length`, `Connection`) is
//! hyper's and is checked for what clients rely on.

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
    for (file, method, path) in [
        ("replica_node2/GET_patroni.http", "GET", "/patroni"),
        ("replica_node2/OPTIONS_replica.http", "OPTIONS", "/replica"),
        ("replica_node2/HEAD_root.http", "HEAD", "/"),
        ("replica_node2/GET_liveness.http", "GET", "/liveness"),
        ("replica_node2/GET_config.http", "GET", "/config"),
        ("replica_node2/GET_failsafe.http", "GET", "/failsafe"),
        ("replica_node2/GET_cluster.http", "GET", "/cluster"),
    ] {
        let want = parse_response(&std::fs::read(base.join(file)).unwrap_or_default());
        let bytes = raw(server.addr, &request(method, path, &[], None)).await;
        let got = parse_response(&bytes);
        assert_eq!(got, want, "{file}");
        assert_framing(&bytes, file);
    }
    // An unparsable request line: Patroni answers a bare HTML page without
    // status line; hyper a bodiless 400 (a documented deviation).
    let got = raw(server.addr, b"GARBAGE\r\n\r\n").await;
    assert!(
        got.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{}",
        String::from_utf8_lossy(&got)
    );
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
        let want = parse_response(&std::fs::read(framing.join(file)).unwrap_or_default());
        let bytes = raw(server.addr, &request(method, path, &headers, body)).await;
        assert_eq!(parse_response(&bytes), want, "{file}");
        assert_framing(&bytes, file);
    }
    // An HTTP/1.0 request is answered in HTTP/1.0 and the connection is
    // closed (read_to_end returns), as Patroni does for every request.
    let got = raw(server.addr, b"HEAD /replica HTTP/1.0\r\n\r\n").await;
    let want = std::fs::read(framing.join("HEAD_replica_on_replica.http")).unwrap_or_default();
    assert_eq!(parse_response(&got), parse_response(&want));
    assert!(got.starts_with(b"HTTP/1.0 200 OK\r\n"));
    // POST without Content-Length where a body is required.
    let want =
        std::fs::read(golden().join("etcd3/extra/framing/POST_switchover_no_content_length.http"))
            .unwrap_or_default();
    let auth = "Authorization: Basic cGF0cm9uaTpyZXN0LXNlY3JldA==".to_owned();
    let got = raw(server.addr, &request("POST", "/switchover", &[auth], None)).await;
    assert_eq!(parse_response(&got), parse_response(&want));
    assert_framing(&got, "POST_switchover_no_content_length.http");
    server.task.abort();
}

/// What clients rely on in hyper's framing: an HTTP/1.1 status line for
/// the HTTP/1.1 request, a `Date`, and a `Content-Length` equal to the
/// body's length.
fn assert_framing(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    assert!(text.starts_with("HTTP/1.1 "), "{what}: {text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let header = |name: &str| {
        head.split("\r\n")
            .filter_map(|l| l.split_once(": "))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_owned())
    };
    assert!(header("date").is_some(), "{what}: no Date");
    let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
    if !what.contains("HEAD") {
        assert_eq!(length, Some(body.len()), "{what}: {head}");
    }
}
