use super::request::{py_repr, split_url};
use super::*;

/// A request as hyper hands it over, turned into ours.
fn parse(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
    let mut builder = hyper::Request::builder().method(method).uri(target);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let (parts, ()) = builder
        .body(())
        .unwrap_or_else(|e| panic!("{e}"))
        .into_parts();
    Request::from_parts(&parts)
}

#[test]
fn request_target_rules() {
    let r = parse(
        "GET",
        "//patroni/x?lag=1MB&tag_a=b",
        &[("Host", "x"), ("Content-Length", " 3 ")],
    );
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/patroni/x");
    assert_eq!(r.query.get("lag"), Some("1MB"));
    assert_eq!(r.query.get("tag_a"), Some("b"));
    assert_eq!(r.header("Content-Length"), Some("3"));
    // Absolute-form targets keep only their path, as urlparse does.
    let r = parse("OPTIONS", "http://h:1/replica?lag=1", &[]);
    assert_eq!(
        (r.path.as_str(), r.query.get("lag")),
        ("/replica", Some("1"))
    );
    // Extension methods reach the router (which answers 501).
    assert_eq!(parse("BREW", "/pot", &[]).method, "BREW");
}

#[test]
fn listen_addresses() {
    assert_eq!(
        split_listen("127.0.0.1:8008"),
        Ok(("127.0.0.1".into(), 8008))
    );
    assert_eq!(split_listen("[::1]:8008"), Ok(("::1".into(), 8008)));
    assert_eq!(split_listen("::1:8008"), Ok(("::1".into(), 8008)));
    assert_eq!(split_listen(":8008"), Ok((String::new(), 8008)));
    assert_eq!(split_listen("*:8008"), Ok(("*".into(), 8008)));
    assert_eq!(
        split_listen("localhost"),
        Err("Invalid \"restapi\" config: expected <HOST>:<PORT> for \"listen\", but got \"localhost\"".into())
    );
    assert!(split_listen("h:99999").is_err());
}

#[tokio::test]
async fn binds_listen_address() {
    let l = bind_listen("127.0.0.1:0", 5).await;
    assert!(l.is_ok_and(|l| l.local_addr().is_ok_and(|a| a.ip().is_loopback())));
    assert!(bind_listen("nonsense", 5).await.is_err());
}

#[test]
fn settings_from_restapi_section() {
    let yaml = "authentication:\n  username: patroni\n  password: rest-secret\nserver_tokens: ProductOnly\nhttp_extra_headers:\n  X-A: one\n  X-B: 2\nallowlist: [10.0.0.0/8, 127.0.0.1, bad/host]\nallowlist_include_members: true\nrequest_queue_size: 17\n";
    let v = crate::config::yaml::load(yaml).unwrap_or(crate::config::value::Value::Null);
    let empty = crate::config::value::Map::new();
    let s = ApiSettings::from_restapi(v.as_map().unwrap_or(&empty));
    assert_eq!(s.server_header, "Patroni");
    assert_eq!(
        s.extra_headers,
        vec![
            ("X-A".to_owned(), "one".to_owned()),
            ("X-B".to_owned(), "2".to_owned())
        ]
    );
    assert_eq!(s.auth_key.as_deref(), Some("cGF0cm9uaTpyZXN0LXNlY3JldA=="));
    assert_eq!(s.allowlist.len(), 2);
    assert!(s.allowlist_include_members);
    assert_eq!(s.request_queue_size, 17);
    assert_eq!(ApiSettings::new().request_queue_size, 5);
    let d = ApiSettings::from_restapi(&empty);
    assert_eq!(d.server_header, PYTHON_SERVER_HEADER);
    assert_eq!(d.auth_key, None);
}

#[test]
fn url_splitting() {
    assert_eq!(split_url("/a?b=1#c"), ("/a".into(), "b=1".into()));
    assert_eq!(split_url("http://h:1/p?q"), ("/p".into(), "q".into()));
    assert_eq!(split_url("/x://y"), ("/x://y".into(), String::new()));
}

#[test]
fn allowlist_networks() {
    let ip = |t: &str| t.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let net = IpNet::parse("10.1.2.3/8");
    assert!(net.is_some_and(|n| n.contains(ip("10.200.0.1"))));
    assert!(net.is_some_and(|n| !n.contains(ip("11.0.0.1"))));
    assert!(net.is_some_and(|n| n.contains(ip("::ffff:10.0.0.9"))));
    assert!(IpNet::parse("::1").is_some_and(|n| n.contains(ip("::1"))));
    assert!(IpNet::parse("fd00::/8")
        .is_some_and(|n| n.contains(ip("fd12::1")) && !n.contains(ip("fe80::1"))));
    assert!(IpNet::parse("0.0.0.0/0").is_some_and(|n| n.contains(ip("8.8.8.8"))));
    assert!(IpNet::parse("10.0.0.0/33").is_none());
    assert!(IpNet::parse("host.example").is_none());
}

#[test]
fn constant_time_compare() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"ab"));
}

#[test]
fn repr_quotes_like_python() {
    assert_eq!(py_repr("PUT"), "'PUT'");
    assert_eq!(py_repr("it's"), "\"it's\"");
    assert_eq!(py_repr("a'\"b"), "'a\\'\"b'");
    assert_eq!(py_repr("\u{1}"), "'\\x01'");
}

mod server {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use serde_json::{Map, Value};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::super::*;
    use crate::api::status::{NodeStatus, StatusPublisher};
    use crate::model::{Cluster, Member};

    struct Nothing;

    #[async_trait]
    impl ApiCommands for Nothing {
        async fn get_cluster(&self) -> Result<Arc<Cluster>, String> {
            Err("no DCS".into())
        }
        async fn reload(&self) {}
        async fn restart(&self, _: &Map<String, Value>) -> Result<(bool, String), String> {
            Ok((true, "restarted successfully".into()))
        }
        async fn schedule_restart(&self, _: &Map<String, Value>) -> bool {
            false
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
        async fn has_healthy_candidate(&self, _: &[Member]) -> bool {
            false
        }
        async fn set_config(&self, _: &str, _: Option<i64>) -> bool {
            false
        }
        async fn update_failsafe(&self, _: &Map<String, Value>) -> Result<Option<i64>, String> {
            Err("Running as a leader".into())
        }
        async fn mpp_event(&self, _: &Map<String, Value>) {}
        fn wakeup(&self) {}
    }

    async fn start(settings: ApiSettings) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (_publisher, reader) = StatusPublisher::new(NodeStatus::new("demo", "n"));
        let server = Arc::new(ApiServer {
            settings,
            status: reader,
            commands: Arc::new(Nothing),
        });
        tokio::spawn(async move {
            let _ = server.serve(listener).await;
        });
        addr
    }

    /// Send raw bytes, read until the server closes.
    async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.write_all(bytes).await.unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Status line, headers (names lower-cased, without Date) and body.
    fn split(reply: &str) -> (String, Vec<(String, String)>, String) {
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((reply, ""));
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("").to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .filter(|(k, _)| k != "date")
            .collect();
        (status, headers, body.to_owned())
    }

    fn small_limits() -> ApiSettings {
        let mut s = ApiSettings::new();
        s.limits = Limits {
            max_head: 1024,
            max_body: 64,
            header_timeout: Duration::from_millis(200),
            max_connections: 2,
        };
        s
    }

    #[tokio::test]
    async fn slow_client_is_dropped() {
        let addr = start(small_limits()).await;
        let started = Instant::now();
        let reply = exchange(addr, b"GET /patroni HTTP/1.1\r\nHost: x\r\n").await;
        // hyper closes a connection whose head did not arrive in time,
        // answering at most a bodiless 408.
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 408 "),
            "{reply}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // A body that does not arrive in time: 408 page, connection closed.
        let started = Instant::now();
        let reply = exchange(
            addr,
            b"POST /mpp HTTP/1.1\r\nContent-Length: 20\r\n\r\n{\"a\"",
        )
        .await;
        assert!(
            reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{reply}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn oversized_and_malformed_requests_get_4xx() {
        let addr = start(small_limits()).await;
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(2000));
        let reply = exchange(addr, long_line.as_bytes()).await;
        assert!(
            reply.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
            "{reply}"
        );
        let long_header = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
        let reply = exchange(addr, long_header.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
        let many: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
        let reply = exchange(addr, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
        // Declared too large: refused before reading, Python's phrase and page.
        let body = "POST /mpp HTTP/1.1\r\nContent-Length: 1000\r\n\r\n{}";
        let (status, headers, page) = split(&exchange(addr, body.as_bytes()).await);
        assert_eq!(status, "HTTP/1.1 413 Request Entity Too Large");
        assert!(headers.contains(&("connection".into(), "close".into())));
        assert!(
            headers.contains(&("content-type".into(), "text/html;charset=utf-8".into())),
            "{headers:?}"
        );
        assert!(page.contains("<p>Error code: 413</p>"), "{page}");
        // Chunked, growing past the limit while read.
        let chunked = format!(
            "POST /mpp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n50\r\n{}\r\n0\r\n\r\n",
            "x".repeat(80)
        );
        let reply = exchange(addr, chunked.as_bytes()).await;
        assert!(
            reply.starts_with("HTTP/1.1 413 Request Entity Too Large\r\n"),
            "{reply}"
        );
        for garbage in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET /x\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        ] {
            let reply = exchange(addr, garbage).await;
            assert!(
                reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{garbage:?}: {reply}"
            );
        }
        // The server is still fine afterwards.
        let reply = exchange(addr, b"GET /patroni HTTP/1.0\r\n\r\n").await;
        assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"), "{reply}");
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait() {
        let addr = start(small_limits()).await;
        // Two idle connections take both permits...
        let _a = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _b = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // ...so a third is served only once their header timeout frees one.
        let started = Instant::now();
        let reply = exchange(addr, b"OPTIONS /health HTTP/1.0\r\n\r\n").await;
        let (status, headers, body) = split(&reply);
        assert_eq!(status, "HTTP/1.0 503 Service Unavailable");
        assert_eq!(headers, vec![("content-length".into(), "0".into())]);
        assert_eq!(body, "");
        assert!(
            started.elapsed() >= Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests() {
        let addr = start(ApiSettings::new()).await;
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        s.write_all(b"GET /patroni HTTP/1.1\r\nHost: x\r\n\r\nHEAD /replica HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.contains("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn auth_allowlist_and_routing() {
        let mut settings = ApiSettings::new();
        settings.set_auth("u", "p");
        settings.server_header = "Patroni".into();
        settings.extra_headers = vec![
            ("X-Frame-Options".into(), "SAMEORIGIN".into()),
            ("X-Bad".into(), "a\nb".into()),
        ];
        let addr = start(settings.clone()).await;
        let (status, headers, body) = split(
            &exchange(
                addr,
                b"POST /reload HTTP/1.1\r\nAuthorization: Bearer x\r\nConnection: close\r\n\r\n",
            )
            .await,
        );
        assert_eq!(status, "HTTP/1.1 401 Unauthorized");
        assert_eq!(body, "not authenticated");
        assert_eq!(
            headers,
            vec![
                ("server".into(), "Patroni".into()),
                ("www-authenticate".into(), "Basic realm=\"Patroni\"".into()),
                ("content-type".into(), "text/html".into()),
                ("x-frame-options".into(), "SAMEORIGIN".into()),
                ("connection".into(), "close".into()),
                ("content-length".into(), "17".into()),
            ]
        );
        // base64("u:p") = dTpw
        let reply = exchange(
            addr,
            b"POST /reload HTTP/1.0\r\nAuthorization: Basic dTpw\r\n\r\n",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.0 202 Accepted\r\n"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nreload scheduled"), "{reply}");
        // POST /mpp has no auth check.
        let reply = exchange(
            addr,
            b"POST /mpp HTTP/1.0\r\nContent-Length: 8\r\n\r\n{\"a\": 1}",
        )
        .await;
        assert!(reply.ends_with("\r\n\r\nOK"), "{reply}");
        // A body that is not JSON.
        let reply = exchange(addr, b"POST /mpp HTTP/1.0\r\nContent-Length: 3\r\n\r\n{x}").await;
        assert!(reply.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{reply}");
        // GETs ignore credentials; unknown methods get 501.
        let reply = exchange(
            addr,
            b"GET /config HTTP/1.0\r\nAuthorization: Basic bad\r\n\r\n",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.0 502 Bad Gateway\r\n"), "{reply}");
        let (status, headers, body) = split(&exchange(addr, b"BREW /pot HTTP/1.0\r\n\r\n").await);
        assert_eq!(status, "HTTP/1.0 501 Unsupported method ('BREW')");
        assert!(headers.contains(&("server".into(), "Patroni".into())));
        assert!(
            body.contains("<p>Message: Unsupported method ('BREW').</p>"),
            "{body}"
        );
        // POST /failsafe while failsafe_mode is off.
        let reply = exchange(
            addr,
            b"POST /failsafe HTTP/1.0\r\nAuthorization: Basic dTpw\r\n\r\n",
        )
        .await;
        assert!(reply.starts_with("HTTP/1.0 502 Bad Gateway\r\n"), "{reply}");

        let mut denied = settings;
        denied.allowlist = IpNet::parse("10.0.0.0/8").into_iter().collect();
        let addr = start(denied).await;
        let reply = exchange(
            addr,
            b"POST /reload HTTP/1.0\r\nAuthorization: Basic dTpw\r\n\r\n",
        )
        .await;
        assert!(reply.ends_with("\r\n\r\nAccess is denied"), "{reply}");
        assert!(reply.starts_with("HTTP/1.0 403 Forbidden\r\n"), "{reply}");
    }
}
