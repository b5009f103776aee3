use super::*;

fn parse(head: &str) -> Result<Request, String> {
    parse_head(head.as_bytes(), "S").map_err(|b| String::from_utf8_lossy(&b).into_owned())
}

#[test]
fn request_line_rules() {
    let r = parse(
        "GET //patroni/x?lag=1MB&tag_a=b#frag HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n",
    )
    .unwrap_or_default();
    assert_eq!(r.method, "GET");
    assert_eq!(r.path, "/patroni/x");
    assert_eq!(r.query.get("lag"), Some("1MB"));
    assert_eq!(r.header("content-length"), Some("3"));

    let garbage = parse("GARBAGE\r\n\r\n").err().unwrap_or_default();
    assert!(garbage.starts_with("<!DOCTYPE HTML>"), "{garbage}");
    assert!(garbage.contains("<p>Message: Bad request syntax ('GARBAGE').</p>"));

    let bad_version = parse("GET / HTTP/x\r\n\r\n").err().unwrap_or_default();
    assert!(
        bad_version.starts_with("HTTP/1.0 400 Bad request version ('HTTP/x')\r\nServer: S\r\n"),
        "{bad_version}"
    );
    let v2 = parse("GET / HTTP/2.0\r\n\r\n").err().unwrap_or_default();
    assert!(
        v2.starts_with("HTTP/1.0 505 Invalid HTTP version (2.0)\r\n"),
        "{v2}"
    );
    let post09 = parse("POST /x\r\n\r\n").err().unwrap_or_default();
    assert!(post09.starts_with("<!DOCTYPE"), "{post09}");
    assert!(post09.contains("Bad HTTP/0.9 request type ('POST')"));
    assert!(parse("\r\n\r\n").err().is_some_and(|b| b.is_empty()));
}

#[test]
fn url_splitting() {
    assert_eq!(split_url("/a?b=1#c"), ("/a".into(), "b=1".into()));
    assert_eq!(split_url("http://h:1/p?q"), ("/p".into(), "q".into()));
    assert_eq!(split_url("/x://y"), ("/x://y".into(), String::new()));
}

#[test]
fn allowlist_networks() {
    let net = IpNet::parse("10.1.2.3/8").unwrap_or(IpNet {
        addr: IpAddr::from([0, 0, 0, 0]),
        prefix: 32,
    });
    assert!(net.contains("10.200.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
    assert!(!net.contains("11.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
    assert!(net.contains(
        "::ffff:10.0.0.9"
            .parse()
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    ));
    assert!(IpNet::parse("::1")
        .is_some_and(|n| n.contains("::1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])))));
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
