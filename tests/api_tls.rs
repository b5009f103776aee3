//! The REST API over TLS with real clients: a rustls client, `curl`, and
//! Python's urllib3 from the project venv (what patronictl uses).
//!
//! Certificates (a CA, two server certificates for 127.0.0.1 and a client
//! certificate) are made with the `openssl` command line in a temp dir.
//! The server runs on a loopback port with a fixed status snapshot, built
//! from a `restapi` section exactly as the daemon builds it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use patroni::api::commands::ApiCommands;
use patroni::api::http::{ApiServer, ApiSettings, Limits};
use patroni::api::status::{NodeStatus, StatusPublisher};
use patroni::config::value::{Map as CMap, Value as CValue};
use patroni::model::{Cluster, Member};

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

#[path = "support/certs.rs"]
mod certs;
use certs::openssl;

/// CA, `server` and `server2` (both for IP 127.0.0.1, different subjects
/// and serials) and `client`, all signed by the CA.
fn make_certificates(dir: &Path) {
    certs::make_certificates(
        dir,
        &[
            ("server", "serverAuth"),
            ("server2", "serverAuth"),
            ("client", "clientAuth"),
        ],
    );
}

struct Certs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        make_certificates(dir.path());
        let path = dir.path().to_path_buf();
        Certs { _dir: dir, path }
    }

    fn file(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }
}

/// A `restapi` section with TLS from these files.
fn restapi(certs: &Certs, verify_client: Option<&str>) -> CMap {
    let mut m = CMap::new();
    m.set("listen", CValue::Str("127.0.0.1:0".into()));
    m.set("certfile", CValue::Str(certs.file("server.crt")));
    m.set("keyfile", CValue::Str(certs.file("server.key")));
    m.set("cafile", CValue::Str(certs.file("ca.crt")));
    if let Some(v) = verify_client {
        m.set("verify_client", CValue::Str(v.into()));
    }
    m
}

struct Running {
    addr: SocketAddr,
    server: Arc<ApiServer>,
    _publisher: StatusPublisher,
}

async fn start(mut settings: ApiSettings) -> Running {
    settings.limits = Limits {
        header_timeout: Duration::from_millis(1500),
        ..Limits::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let (publisher, reader) = StatusPublisher::new(NodeStatus::new("demo", "node1"));
    let server = Arc::new(ApiServer {
        settings,
        status: reader,
        commands: Arc::new(Nothing),
    });
    let serving = server.clone();
    tokio::spawn(async move {
        let _ = serving.serve(listener).await;
    });
    Running {
        addr,
        server,
        _publisher: publisher,
    }
}

fn request(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request over TLS with a rustls client trusting the test CA,
/// optionally presenting the client certificate. Returns the raw reply
/// and the certificate the server presented.
async fn tls_exchange(
    certs: &Certs,
    addr: SocketAddr,
    with_client_cert: bool,
    req: &[u8],
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.path.join("ca.crt"))
        .unwrap_or_else(|e| panic!("ca: {e}"))
    {
        roots
            .add(c.unwrap_or_else(|e| panic!("ca: {e}")))
            .unwrap_or_else(|e| panic!("ca: {e}"));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("{e}"))
    .with_root_certificates(roots);
    let config = if with_client_cert {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(certs.path.join("client.crt"))
                .unwrap_or_else(|e| panic!("{e}"))
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{e}"));
        let key = PrivateKeyDer::from_pem_file(certs.path.join("client.key"))
            .unwrap_or_else(|e| panic!("{e}"));
        builder
            .with_client_auth_cert(chain, key)
            .unwrap_or_else(|e| panic!("{e}"))
    } else {
        builder.with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = connector.connect(name, tcp).await?;
    let served = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default();
    tls.write_all(req).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok((out, served))
}

async fn plain_exchange(addr: SocketAddr, req: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let _ = s.write_all(req).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    out
}

fn body_of(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

/// The reply with its `Date` header removed, for byte comparison.
/// The reply without the headers that vary with time and body length.
fn without_date(reply: &[u8]) -> String {
    String::from_utf8_lossy(reply)
        .split("\r\n")
        .filter(|l| !l.starts_with("Date: ") && !l.starts_with("Content-Length: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn pem_leaf(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .next()
        .and_then(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .unwrap_or_default()
}

#[tokio::test]
async fn get_over_tls_matches_plain_http_and_merges_https_headers() {
    let certs = Certs::new();
    let mut section = restapi(&certs, None);
    let mut http_headers = CMap::new();
    http_headers.set("X-Both", CValue::Str("http".into()));
    http_headers.set("X-Http", CValue::Str("1".into()));
    section.set("http_extra_headers", CValue::Map(http_headers.clone()));
    let mut https_headers = CMap::new();
    https_headers.set("X-Both", CValue::Str("https".into()));
    https_headers.set("Strict-Transport-Security", CValue::Str("max-age=1".into()));
    section.set("https_extra_headers", CValue::Map(https_headers));
    let tls = start(ApiSettings::from_restapi(&section)).await;

    let mut plain_section = CMap::new();
    plain_section.set("http_extra_headers", CValue::Map(http_headers));
    let plain = start(ApiSettings::from_restapi(&plain_section)).await;

    let req = request("GET", "/patroni", "");
    let (over_tls, served) = tls_exchange(&certs, tls.addr, false, &req)
        .await
        .unwrap_or_else(|e| panic!("TLS GET: {e}"));
    let over_plain = plain_exchange(plain.addr, &req).await;
    assert_eq!(served, pem_leaf(&certs.path.join("server.crt")));
    assert!(!body_of(&over_plain).is_empty());
    assert_eq!(body_of(&over_tls), body_of(&over_plain));

    let head = String::from_utf8_lossy(&over_tls);
    assert!(
        head.contains("X-Both: https\r\nX-Http: 1\r\nStrict-Transport-Security: max-age=1\r\n"),
        "{head}"
    );
    let plain_head = String::from_utf8_lossy(&over_plain);
    assert!(
        plain_head.contains("X-Both: http\r\nX-Http: 1\r\n"),
        "{plain_head}"
    );
}

#[tokio::test]
async fn verify_client_required_refuses_handshake_without_certificate() {
    let certs = Certs::new();
    let tls = start(ApiSettings::from_restapi(&restapi(
        &certs,
        Some("required"),
    )))
    .await;
    let req = request("GET", "/patroni", "");
    match tls_exchange(&certs, tls.addr, false, &req).await {
        Ok((reply, _)) => assert!(reply.is_empty(), "{}", String::from_utf8_lossy(&reply)),
        Err(e) => eprintln!("refused as expected: {e}"),
    }
    let (reply, _) = tls_exchange(&certs, tls.addr, true, &req)
        .await
        .unwrap_or_else(|e| panic!("with client cert: {e}"));
    assert!(
        reply.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert!(body_of(&reply).contains("\"state\""));

    // curl, as an operator or a health checker would use it.
    let url = format!("https://127.0.0.1:{}/patroni", tls.addr.port());
    let with_cert = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", &certs.file("ca.crt")])
        .args([
            "--cert",
            &certs.file("client.crt"),
            "--key",
            &certs.file("client.key"),
        ])
        .arg(&url)
        .output()
        .await
        .unwrap_or_else(|e| panic!("curl: {e}"));
    assert!(
        with_cert.status.success(),
        "{}",
        String::from_utf8_lossy(&with_cert.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&with_cert.stdout), body_of(&reply));
    let without = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", &certs.file("ca.crt")])
        .arg(&url)
        .output()
        .await
        .unwrap_or_else(|e| panic!("curl: {e}"));
    assert!(
        !without.status.success(),
        "curl without a client certificate got in"
    );
}

#[tokio::test]
async fn verify_client_optional_guards_only_modifying_requests() {
    let certs = Certs::new();
    let mut section = restapi(&certs, Some("Optional"));
    section.set(
        "allowlist",
        CValue::Seq(vec![CValue::Str("10.0.0.0/8".into())]),
    );
    let tls = start(ApiSettings::from_restapi(&restapi(
        &certs,
        Some("optional"),
    )))
    .await;
    let denied_by_allowlist = start(ApiSettings::from_restapi(&section)).await;

    let (get, _) = tls_exchange(&certs, tls.addr, false, &request("GET", "/patroni", ""))
        .await
        .unwrap_or_else(|e| panic!("GET: {e}"));
    let status_line = String::from_utf8_lossy(&get);
    assert!(
        status_line.starts_with("HTTP/1.1 200 ") || status_line.starts_with("HTTP/1.1 503 "),
        "{status_line}"
    );

    let post = request("POST", "/restart", "{}");
    let (refused, _) = tls_exchange(&certs, tls.addr, false, &post)
        .await
        .unwrap_or_else(|e| panic!("POST: {e}"));
    // Same framing as every other 403 reply of ours, only the text differs.
    let (other_403, _) = tls_exchange(&certs, denied_by_allowlist.addr, true, &post)
        .await
        .unwrap_or_else(|e| panic!("POST: {e}"));
    assert_eq!(
        without_date(&refused),
        without_date(&other_403).replace("Access is denied", "client certificate required")
    );
    assert!(
        without_date(&refused).starts_with("HTTP/1.1 403 Forbidden\r\nServer: "),
        "{}",
        without_date(&refused)
    );
    assert!(without_date(&refused).ends_with("\r\n\r\nclient certificate required"));

    let (allowed, _) = tls_exchange(&certs, tls.addr, true, &post)
        .await
        .unwrap_or_else(|e| panic!("POST with cert: {e}"));
    let allowed = String::from_utf8_lossy(&allowed);
    assert!(
        !allowed.contains("client certificate required"),
        "{allowed}"
    );
    assert!(allowed.starts_with("HTTP/1.1 "), "{allowed}");
}

#[tokio::test]
async fn plain_http_and_stalled_handshakes_do_not_hold_the_server() {
    let certs = Certs::new();
    let tls = start(ApiSettings::from_restapi(&restapi(&certs, None))).await;
    let req = request("GET", "/patroni", "");

    // A client that connects and never starts the handshake.
    let mut idle = TcpStream::connect(tls.addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));

    let garbage = plain_exchange(tls.addr, &req).await;
    assert!(
        !garbage.starts_with(b"HTTP/1.1 200") && !garbage.starts_with(b"HTTP/1.0 200"),
        "plain HTTP was served"
    );

    let (reply, _) = tls_exchange(&certs, tls.addr, false, &req)
        .await
        .unwrap_or_else(|e| panic!("TLS after plain HTTP: {e}"));
    assert!(body_of(&reply).contains("\"state\""));

    // The idle connection is closed after the head timeout (1.5 s).
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle handshake still open: {closed:?}"
    );
}

#[tokio::test]
async fn reload_swaps_the_served_certificate_without_dropping_the_listener() {
    let certs = Certs::new();
    // Serve from files we can overwrite.
    let crt = certs.path.join("live.crt");
    let key = certs.path.join("live.key");
    let copy = |from: &str, to: &Path| {
        std::fs::copy(certs.path.join(from), to).unwrap_or_else(|e| panic!("copy: {e}"));
    };
    copy("server.crt", &crt);
    copy("server.key", &key);
    let mut section = restapi(&certs, None);
    section.set("certfile", CValue::Str(crt.display().to_string()));
    section.set("keyfile", CValue::Str(key.display().to_string()));
    let tls = start(ApiSettings::from_restapi(&section)).await;
    let req = request("GET", "/patroni", "");

    let (_, before) = tls_exchange(&certs, tls.addr, false, &req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(before, pem_leaf(&certs.path.join("server.crt")));
    assert_eq!(tls.server.reload_certificates(), Ok(false));

    copy("server2.crt", &crt);
    copy("server2.key", &key);
    assert_eq!(tls.server.reload_certificates(), Ok(true));
    let (reply, after) = tls_exchange(&certs, tls.addr, false, &req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(after, pem_leaf(&certs.path.join("server2.crt")));
    assert_ne!(after, before);
    assert!(body_of(&reply).contains("\"state\""));

    // A broken file is reported with its name and the old certificate stays.
    std::fs::write(&key, "garbage").unwrap_or_else(|e| panic!("{e}"));
    let err = tls
        .server
        .reload_certificates()
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    assert!(err.contains("live.key"), "{err}");
    let (_, still) = tls_exchange(&certs, tls.addr, false, &req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(still, after);

    // A configuration reload that turns on verify_client (and fixes the
    // key) applies to the next connection on the same listener.
    copy("server2.key", &key);
    section.set("verify_client", CValue::Str("required".into()));
    assert_eq!(tls.server.reconfigure_tls(&section), Ok(false));
    let refused = tls_exchange(&certs, tls.addr, false, &req).await;
    assert!(
        refused.as_ref().map_or(true, |(r, _)| r.is_empty()),
        "served without a client certificate: {refused:?}"
    );
    let (reply, _) = tls_exchange(&certs, tls.addr, true, &req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(body_of(&reply).contains("\"state\""));

    // Turning TLS off needs a new listener: refused, TLS stays on.
    section.remove("certfile");
    let err = tls
        .server
        .reconfigure_tls(&section)
        .err()
        .map(|e| e.0)
        .unwrap_or_default();
    assert!(err.contains("restapi.certfile"), "{err}");
    assert!(tls_exchange(&certs, tls.addr, true, &req).await.is_ok());
}

#[tokio::test]
async fn unloadable_tls_refuses_to_serve() {
    let certs = Certs::new();
    let mut section = restapi(&certs, None);
    section.set("keyfile", CValue::Str(certs.file("missing.key")));
    let settings = ApiSettings::from_restapi(&section);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let (_publisher, reader) = StatusPublisher::new(NodeStatus::new("demo", "node1"));
    let server = Arc::new(ApiServer {
        settings,
        status: reader,
        commands: Arc::new(Nothing),
    });
    let result = tokio::time::timeout(Duration::from_secs(5), server.serve(listener)).await;
    match result {
        Ok(Err(e)) => assert!(e.to_string().contains("missing.key"), "{e}"),
        other => panic!("served without a usable key: {other:?}"),
    }
}

/// patronictl talks to the API through urllib3 with the `ctl` certificate.
#[tokio::test]
async fn python_urllib3_client_with_certificate() {
    let venv = std::env::var("PATRONI_RS_VENV").unwrap_or_else(|_| "/opt/patroni-rs/venv".into());
    let python = format!("{venv}/bin/python");
    if !Path::new(&python).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{python} not found (run .ci/setup)"
        );
        eprintln!("skipped: {python} not found");
        return;
    }
    let certs = Certs::new();
    let tls = start(ApiSettings::from_restapi(&restapi(
        &certs,
        Some("required"),
    )))
    .await;
    let script = "import sys, urllib3\n\
        ca, crt, key, url = sys.argv[1:5]\n\
        kw = dict(cert_file=crt, key_file=key) if crt else {}\n\
        http = urllib3.PoolManager(cert_reqs='CERT_REQUIRED', ca_certs=ca, **kw)\n\
        r = http.request('GET', url, retries=False, timeout=10)\n\
        sys.stdout.write('%d\\n' % r.status + r.data.decode())\n";
    let url = format!("https://127.0.0.1:{}/patroni", tls.addr.port());
    let run = |crt: String, key: String| {
        tokio::process::Command::new(&python)
            .args(["-c", script, &certs.file("ca.crt"), &crt, &key, &url])
            .output()
    };
    let ok = run(certs.file("client.crt"), certs.file("client.key"))
        .await
        .unwrap_or_else(|e| panic!("python: {e}"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = String::from_utf8_lossy(&ok.stdout);
    let (code, body) = out.split_once('\n').unwrap_or_default();
    assert!(code == "200" || code == "503", "{out}");
    let (direct, _) = tls_exchange(&certs, tls.addr, true, &request("GET", "/patroni", ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body, body_of(&direct));

    let refused = run(String::new(), String::new())
        .await
        .unwrap_or_else(|e| panic!("python: {e}"));
    assert!(
        !refused.status.success(),
        "urllib3 without a client certificate got in"
    );
}

/// PKCS#1 RSA, SEC1 EC, a key inside `certfile`, and an encrypted PKCS#8
/// key with `keyfile_password`, each serving a real GET.
#[tokio::test]
async fn key_formats_and_keyfile_password() {
    let certs = Certs::new();
    let dir = certs.path.as_path();
    openssl(
        dir,
        &[
            "pkey",
            "-in",
            "server.key",
            "-traditional",
            "-out",
            "rsa1.key",
        ],
    );
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-in",
            "server.key",
            "-out",
            "enc.key",
            "-passout",
            "pass:s3cret",
        ],
    );
    openssl(
        dir,
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            "ec.key",
        ],
    );
    openssl(
        dir,
        &[
            "req", "-new", "-key", "ec.key", "-out", "ec.csr", "-subj", "/CN=ec",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "ec.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "ec.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    assert!(read("rsa1.key").contains("BEGIN RSA PRIVATE KEY"));
    assert!(read("enc.key").contains("BEGIN ENCRYPTED PRIVATE KEY"));
    assert!(read("ec.key").contains("BEGIN EC PRIVATE KEY"));
    std::fs::write(
        dir.join("ec-combined.pem"),
        read("ec.crt") + &read("ec.key"),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let cases: [(&str, Option<&str>, Option<&str>); 3] = [
        ("server.crt", Some("rsa1.key"), None),
        ("server.crt", Some("enc.key"), Some("s3cret")),
        ("ec-combined.pem", None, None),
    ];
    for (crt, key, password) in cases {
        let mut section = restapi(&certs, None);
        section.set("certfile", CValue::Str(certs.file(crt)));
        section.remove("keyfile");
        if let Some(key) = key {
            section.set("keyfile", CValue::Str(certs.file(key)));
        }
        if let Some(pw) = password {
            section.set("keyfile_password", CValue::Str(pw.into()));
        }
        let tls = start(ApiSettings::from_restapi(&section)).await;
        let (reply, served) =
            tls_exchange(&certs, tls.addr, false, &request("GET", "/patroni", ""))
                .await
                .unwrap_or_else(|e| panic!("{crt} {key:?}: {e}"));
        assert!(body_of(&reply).contains("\"state\""), "{crt} {key:?}");
        assert_eq!(served, pem_leaf(&dir.join(crt)), "{crt}");
    }

    let mut wrong = restapi(&certs, None);
    wrong.set("keyfile", CValue::Str(certs.file("enc.key")));
    wrong.set("keyfile_password", CValue::Str("nope".into()));
    let settings = ApiSettings::from_restapi(&wrong);
    let err = settings
        .tls
        .as_ref()
        .and_then(|t| t.reload().err())
        .map(|e| e.0)
        .unwrap_or_default();
    assert!(err.contains("enc.key") && err.contains("decrypt"), "{err}");
}

/// `ciphers` restricts the TLS 1.2 suites the server accepts.
#[tokio::test]
async fn ciphers_restrict_tls12_suites() {
    let certs = Certs::new();
    let mut section = restapi(&certs, None);
    section.set(
        "ciphers",
        CValue::Str("ECDHE-RSA-AES128-GCM-SHA256:!aNULL".into()),
    );
    let tls = start(ApiSettings::from_restapi(&section)).await;

    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.path.join("ca.crt"))
        .unwrap_or_else(|e| panic!("ca: {e}"))
        .flatten()
    {
        roots.add(c).unwrap_or_else(|e| panic!("ca: {e}"));
    }
    let roots = Arc::new(roots);
    // A TLS 1.2 client offering only the given suite.
    let negotiate = |suite: rustls::CipherSuite| {
        let roots = roots.clone();
        async move {
            let mut provider = rustls::crypto::ring::default_provider();
            provider.cipher_suites.retain(|s| s.suite() == suite);
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap_or_else(|e| panic!("{e}"))
                .with_root_certificates(roots)
                .with_no_client_auth();
            let tcp = TcpStream::connect(tls.addr).await?;
            let name = ServerName::IpAddress(tls.addr.ip().into());
            let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(
                stream
                    .get_ref()
                    .1
                    .negotiated_cipher_suite()
                    .map(|s| s.suite()),
            )
        }
    };
    let chosen = rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256;
    let other = rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384;
    assert_eq!(negotiate(chosen).await.ok().flatten(), Some(chosen));
    assert!(
        negotiate(other).await.is_err(),
        "a suite left out of ciphers was accepted"
    );
}
