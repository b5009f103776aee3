//! The REST server: Python `BaseHTTPRequestHandler` framing on a raw TCP
//! stream.
//!
//! # Why not hyper
//!
//! Patroni's clients see HTTP/1.0 responses whose exact bytes matter:
//! HAProxy-style status-only replies (`HTTP/1.0 200 OK\r\n\r\n`, no headers
//! at all), bodies delimited by connection close with no `Content-Length`,
//! a custom reason phrase on 501 (`Unsupported method ('PUT')`), and an
//! HTTP/0.9-style bare HTML page for an unparsable request line. hyper 1.x
//! always writes the status line from the request version, adds `date` and
//! a length or chunked framing, lower-cases nothing but decides the reason
//! phrase itself, and cannot emit a response without a status line. So we
//! parse requests with `httparse` (a well-kept, fuzzed parser; we do not
//! parse headers by hand) and write responses ourselves. Only the request
//! line is first checked with Python's own rules, so that the error replies
//! to malformed lines carry the same messages.
//!
//! # Limits (Python has none of these)
//!
//! - The request head (line + headers) must arrive within
//!   [`Limits::header_timeout`] and fit in [`Limits::max_head`] bytes; a
//!   body (only read when `Content-Length` is sent) must fit in
//!   [`Limits::max_body`] and arrive within the same timeout. A slow client
//!   has its connection closed without a reply; an oversized request gets
//!   a 414 (request line), 431 (headers) or 413 (body) error page. Either
//!   way no task is held forever.
//! - At most [`Limits::max_connections`] connections are served at once;
//!   further ones wait in the kernel backlog.
//!
//! # Known deviations from Python Patroni
//!
//! - Header parsing is httparse's: it is stricter than Python's
//!   `email`-based parser (e.g. obsolete line folding or bytes outside
//!   visible ASCII in names are rejected with a 400 page where Python might
//!   accept them). At most 100 headers, like Python's limit (431 page).
//! - A negative or non-numeric `Content-Length` gets a 400 page; Python
//!   would try to read to EOF or fail in the handler.
//! - An HTTP/0.9 request (`GET /path` without version) is answered as
//!   a normal request with HTTP/1.0 framing; Python answers without status
//!   line and headers.
//! - `GET /cluster`, `/config`, `/history` answer from the last published
//!   cluster view instead of querying the DCS in the request (Python's
//!   `/cluster` hangs while the DCS is unreachable).
//! - TLS (`certfile`, `verify_client`) is not implemented yet.
//! - `allowlist` entries must be IP addresses or CIDR networks; Python also
//!   resolves host names.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::bodies;
use super::commands::{self, ApiCommands, Body, PollTiming, Reply};
use super::health::{self, Query};
use super::status::StatusReader;

/// Resource limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_head: usize,
    pub max_body: usize,
    pub header_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            max_connections: 128,
        }
    }
}

/// An allowed client network (`restapi.allowlist` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `10.0.0.0/8`, `::1`, `192.168.1.5/24` (host bits are ignored, like
    /// Python's `ip_network(strict=False)`).
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.addr.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// The `restapi` settings the server needs.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// The `Server` header value.
    pub server_header: String,
    /// `http_extra_headers`, in configuration order.
    pub extra_headers: Vec<(String, String)>,
    /// base64(`username:password`) when authentication is configured.
    auth_key: Option<String>,
    pub allowlist: Vec<IpNet>,
    pub allowlist_include_members: bool,
    pub limits: Limits,
    pub poll: PollTiming,
}

/// The Python default `Server` header, which Patroni keeps unless
/// `server_tokens` says otherwise.
pub const PYTHON_SERVER_HEADER: &str = "BaseHTTP/0.6 Python/3.11.7";

impl ApiSettings {
    pub fn new() -> ApiSettings {
        ApiSettings {
            server_header: PYTHON_SERVER_HEADER.to_owned(),
            extra_headers: Vec::new(),
            auth_key: None,
            allowlist: Vec::new(),
            allowlist_include_members: false,
            limits: Limits::default(),
            poll: PollTiming::default(),
        }
    }

    /// `restapi.server_tokens`: `Minimal` -> `Patroni/<version>`,
    /// `ProductOnly` -> `Patroni`, anything else keeps the Python default
    /// (case-insensitive, like Patroni).
    pub fn set_server_tokens(&mut self, tokens: &str) {
        self.server_header = match tokens.to_lowercase().as_str() {
            "minimal" => format!("Patroni/{}", crate::PATRONI_VERSION),
            "productonly" => "Patroni".to_owned(),
            _ => PYTHON_SERVER_HEADER.to_owned(),
        };
    }

    /// `restapi.authentication`.
    pub fn set_auth(&mut self, username: &str, password: &str) {
        self.auth_key = Some(
            base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}")),
        );
    }
}

impl ApiSettings {
    /// Settings from the `restapi` section of the effective configuration:
    /// `authentication` (or the derived `auth` text `user:pass`),
    /// `server_tokens`, `http_extra_headers`, `allowlist` (IP addresses
    /// and CIDR networks; other entries are logged and skipped) and
    /// `allowlist_include_members`.
    pub fn from_restapi(restapi: &crate::config::value::Map) -> ApiSettings {
        use crate::config::value::Value as V;
        let mut s = ApiSettings::new();
        if let Some(tokens) = restapi.get("server_tokens").and_then(V::as_str) {
            s.set_server_tokens(tokens);
        }
        if let Some(headers) = restapi.get("http_extra_headers").and_then(V::as_map) {
            s.extra_headers = headers
                .str_entries()
                .map(|(k, v)| (k.to_owned(), python_text(v)))
                .collect();
        }
        if let Some(auth) = restapi.get("authentication").and_then(V::as_map) {
            let field = |k: &str| auth.get(k).map(python_text).unwrap_or_default();
            s.set_auth(&field("username"), &field("password"));
        } else if let Some(auth) = restapi.get("auth").and_then(V::as_str) {
            s.auth_key = Some(base64::engine::general_purpose::STANDARD.encode(auth));
        }
        if let Some(list) = restapi.get("allowlist").and_then(V::as_seq) {
            for entry in list {
                let text = python_text(entry);
                match IpNet::parse(&text) {
                    Some(net) => s.allowlist.push(net),
                    None => log::error!(
                        target: "patroni.api",
                        "Invalid value \"{text}\" in the allowlist: only IP addresses and networks are supported"
                    ),
                }
            }
        }
        s.allowlist_include_members = restapi
            .get("allowlist_include_members")
            .is_some_and(V::truthy);
        s
    }
}

/// A scalar setting as Python's `str()` would print it.
fn python_text(v: &crate::config::value::Value) -> String {
    use crate::config::value::Value as V;
    match v {
        V::Str(s) => s.clone(),
        V::Int(i) => i.to_string(),
        V::Bool(true) => "True".into(),
        V::Bool(false) => "False".into(),
        V::Null => "None".into(),
        other => other
            .to_json()
            .map(|j| crate::model::json::spaced(&j))
            .unwrap_or_default(),
    }
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings::new()
    }
}

/// Split `restapi.listen` into host and port like Patroni's
/// `split_host_port`: the port follows the last colon; IPv6 hosts may be
/// bracketed.
pub fn split_listen(listen: &str) -> Result<(String, u16), String> {
    let invalid = || {
        format!("Invalid \"restapi\" config: expected <HOST>:<PORT> for \"listen\", but got \"{listen}\"")
    };
    let (host, port) = listen.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.trim().parse::<u16>().map_err(|_| invalid())?;
    let host = if host.contains(':') {
        host.trim().trim_start_matches('[').trim_end_matches(']')
    } else {
        host.trim()
    };
    Ok((host.to_owned(), port))
}

/// Bind `restapi.listen`. An empty host or `*` listens on every address:
/// the IPv6 wildcard (dual stack on Linux) when available, else IPv4, the
/// preference Patroni has. Host names resolve with IPv6 addresses first.
pub async fn bind_listen(listen: &str) -> io::Result<TcpListener> {
    let (host, port) =
        split_listen(listen).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let candidates: Vec<SocketAddr> = if host.is_empty() || host == "*" {
        vec![
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port)),
        ]
    } else {
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await?
            .collect();
        addrs.sort_by_key(SocketAddr::is_ipv4);
        addrs
    };
    let mut last = io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no address for {listen}"),
    );
    for addr in candidates {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(io::Error::new(
        last.kind(),
        format!("Couldn't start a service on '{listen}', please check your `restapi.listen` configuration: {last}"),
    ))
}

/// Everything a connection handler needs.
pub struct ApiServer {
    pub settings: ApiSettings,
    pub status: StatusReader,
    pub commands: Arc<dyn ApiCommands>,
}

impl ApiServer {
    /// Accept connections until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        let permits = Arc::new(Semaphore::new(self.settings.limits.max_connections.max(1)));
        loop {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return Ok(());
            };
            let (stream, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    log::warn!(target: "patroni.api", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                if let Err(e) = server.handle_connection(stream, peer).await {
                    log::debug!(target: "patroni.api", "connection from {peer}: {e}");
                }
                drop(permit);
            });
        }
    }

    async fn handle_connection(&self, mut stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
        let limits = self.settings.limits;
        let read = tokio::time::timeout(
            limits.header_timeout,
            read_request(&mut stream, limits, &self.settings.server_header),
        )
        .await;
        let response = match read {
            Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Incoming::Closed)) => return Ok(()),
            Ok(Ok(Incoming::Reject(bytes))) => bytes,
            Ok(Ok(Incoming::Request(req))) => self.respond(&req, peer.ip()).await,
        };
        stream.write_all(&response).await?;
        stream.shutdown().await
    }

    /// The response bytes for one parsed request.
    pub async fn respond(&self, req: &Request, peer: IpAddr) -> Vec<u8> {
        let w = Writer {
            settings: &self.settings,
            head: req.method == "HEAD",
        };
        let status = self.status.current();
        let segment = req
            .path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        let method = req.method.as_str();
        match (method, segment) {
            ("GET", "liveness") => w.status_only(health::liveness_status(&status, now_epoch())),
            ("GET", "readiness") => w.status_only(health::readiness_status(&status, &req.query)),
            ("GET", "patroni") => w.json(200, &bodies::status_body(&status)),
            ("GET", "cluster") => w.json(200, &bodies::cluster_body(&status)),
            ("GET", "history") => w.json(200, &bodies::history_body(&status)),
            ("GET", "config") => match bodies::config_body(&status) {
                Some(b) => w.json(200, &b),
                None => w.error(502, None),
            },
            ("GET", "failsafe") => match bodies::failsafe_body(&status) {
                Some(b) => w.json(200, &b),
                None => w.error(502, None),
            },
            ("GET", "metrics") => w.text(200, "text/plain", &[], &bodies::metrics_body(&status)),
            ("GET", _) => {
                let code = health::health_status(&status, &req.path, &req.query);
                w.json(code, &bodies::status_body(&status))
            }
            ("HEAD" | "OPTIONS", _) => {
                w.status_only(health::health_status(&status, &req.path, &req.query))
            }
            ("POST", "mpp") => match commands::read_json(req.body(), false) {
                Ok(body) => {
                    self.commands.mpp_event(&body).await;
                    w.reply(Reply::html(200, "OK"))
                }
                Err(reply) => w.reply(reply),
            },
            (
                "POST",
                "reload" | "failsafe" | "sigterm" | "restart" | "reinitialize" | "failover"
                | "switchover" | "citus",
            )
            | ("PATCH" | "PUT", "config")
            | ("DELETE", "restart" | "switchover") => {
                let check_members = !(method == "POST" && segment == "failsafe");
                if let Some(denied) = self.check_access(req, peer, &status, check_members) {
                    return w.reply(denied);
                }
                w.reply(self.modify(req, method, segment, &status).await)
            }
            _ => w.error(
                501,
                Some(&format!("Unsupported method ({})", py_repr(method))),
            ),
        }
    }

    /// Patroni's `check_access`: allowlist, then basic auth.
    fn check_access(
        &self,
        req: &Request,
        peer: IpAddr,
        status: &super::status::NodeStatus,
        check_members: bool,
    ) -> Option<Reply> {
        let s = &self.settings;
        let check_members = check_members && s.allowlist_include_members;
        if !s.allowlist.is_empty() || check_members {
            let allowed = s.allowlist.iter().any(|n| n.contains(peer))
                || (check_members
                    && status
                        .member_ips
                        .iter()
                        .any(|ip| IpNet::parse(&ip.to_string()).is_some_and(|n| n.contains(peer))));
            if !allowed {
                return Some(Reply::html(403, "Access is denied"));
            }
        }
        let key = s.auth_key.as_deref()?;
        let reason = match req.header("authorization") {
            None => "no auth header received",
            Some(h) => match h.strip_prefix("Basic ") {
                Some(given) if constant_time_eq(given.as_bytes(), key.as_bytes()) => return None,
                _ => "not authenticated",
            },
        };
        Some(Reply::Text {
            code: 401,
            body: reason.into(),
            content_type: "text/html",
            headers: vec![("WWW-Authenticate".into(), "Basic realm=\"Patroni\"".into())],
        })
    }

    async fn modify(
        &self,
        req: &Request,
        method: &str,
        segment: &str,
        status: &super::status::NodeStatus,
    ) -> Reply {
        let cmds = self.commands.as_ref();
        let now = Utc::now();
        match (method, segment) {
            ("POST", "reload") => {
                cmds.reload().await;
                Reply::html(202, "reload scheduled")
            }
            ("POST", "sigterm") => Reply::html(202, "shutdown scheduled"),
            ("POST", "failsafe") => {
                if !status.failsafe_mode {
                    return Reply::Error(502);
                }
                match commands::read_json(req.body(), false) {
                    Ok(body) => commands::post_failsafe(cmds, &body).await,
                    Err(r) => r,
                }
            }
            ("POST", "restart") => match commands::read_json(req.body(), true) {
                Ok(body) => commands::post_restart(cmds, status, body, now).await,
                Err(r) => r,
            },
            ("POST", "reinitialize") => match commands::read_json(req.body(), true) {
                Ok(body) => commands::post_reinitialize(cmds, &body).await,
                Err(r) => r,
            },
            ("POST", "failover" | "switchover") => match commands::read_json(req.body(), false) {
                Ok(body) => {
                    let action = if segment == "failover" {
                        "failover"
                    } else {
                        "switchover"
                    };
                    commands::post_failover(cmds, &body, action, now, self.settings.poll).await
                }
                Err(r) => r,
            },
            ("POST", "citus") => match commands::read_json(req.body(), false) {
                Ok(body) => {
                    cmds.mpp_event(&body).await;
                    Reply::html(200, "OK")
                }
                Err(r) => r,
            },
            ("PATCH", "config") => match commands::read_json(req.body(), false) {
                Ok(body) => commands::patch_config_endpoint(cmds, &body).await,
                Err(r) => r,
            },
            ("PUT", "config") => match commands::read_json(req.body(), false) {
                Ok(body) => commands::put_config(cmds, &body).await,
                Err(r) => r,
            },
            ("DELETE", "restart") => commands::delete_restart(cmds).await,
            ("DELETE", "switchover") => commands::delete_switchover(cmds).await,
            _ => Reply::Error(501),
        }
    }
}

fn now_epoch() -> f64 {
    let now = Utc::now();
    #[allow(clippy::cast_precision_loss)]
    let secs = now.timestamp_micros() as f64 / 1e6;
    secs
}

/// Compare two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without query string or fragment, leading `//` reduced to
    /// `/` (Python's `urlparse(path).path`).
    pub path: String,
    pub query: Query,
    /// Header names as sent, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn body(&self) -> Body<'_> {
        Body {
            content_length: self.header("content-length"),
            bytes: &self.body,
        }
    }
}

enum Incoming {
    /// The client went away before sending a request line.
    Closed,
    /// Answer with these bytes without dispatching.
    Reject(Vec<u8>),
    Request(Request),
}

/// Read and parse one request from the stream.
async fn read_request(
    stream: &mut TcpStream,
    limits: Limits,
    server: &str,
) -> io::Result<Incoming> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_len = loop {
        if let Some(end) = find_head_end(&buf) {
            if end > limits.max_head {
                return Ok(Incoming::Reject(oversized_head(
                    &buf,
                    limits.max_head,
                    server,
                )));
            }
            break end;
        }
        if buf.len() > limits.max_head {
            return Ok(Incoming::Reject(oversized_head(
                &buf,
                limits.max_head,
                server,
            )));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            if buf.iter().all(u8::is_ascii_whitespace) {
                return Ok(Incoming::Closed);
            }
            // A request line without the blank line: Python would parse the
            // line and then wait for headers; answer as far as the line goes.
            break buf.len();
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut req = match parse_head(&buf[..head_len.min(buf.len())], server) {
        Ok(r) => r,
        Err(reply) => return Ok(Incoming::Reject(reply)),
    };
    if let Some(cl) = req.header("content-length") {
        if let Ok(n) = cl.trim().parse::<usize>() {
            if n > limits.max_body {
                return Ok(Incoming::Reject(error_page(
                    Some("HTTP/1.x"),
                    server,
                    413,
                    None,
                    false,
                )));
            }
            let mut body: Vec<u8> = buf.get(head_len..).map(<[u8]>::to_vec).unwrap_or_default();
            while body.len() < n {
                let got = stream.read(&mut chunk).await?;
                if got == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..got]);
            }
            body.truncate(n);
            req.body = body;
        }
    }
    Ok(Incoming::Request(req))
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The reply to a head over the size limit: 414 when the request line
/// alone is too long (Python frames it with a status line), else 431.
fn oversized_head(buf: &[u8], max_head: usize, server: &str) -> Vec<u8> {
    let line_len = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
    if line_len >= max_head {
        error_page(Some("HTTP/1.x"), server, 414, None, false)
    } else {
        error_page(Some("HTTP/1.x"), server, 431, Some("Line too long"), false)
    }
}

/// Python's `repr()` of a latin-1 string (quotes chosen like Python).
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa1).contains(&(c as u32)) || c == '\u{ad}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Check the request line with Python's rules, then parse the head with
/// httparse.
fn parse_head(head: &[u8], server: &str) -> Result<Request, Vec<u8>> {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line: String = head[..line_end].iter().map(|b| char::from(*b)).collect();
    let line = line.trim_end_matches(['\r', '\n']);
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() {
        return Err(Vec::new());
    }
    // No version known yet: error replies are HTTP/0.9 style (body only).
    let mut version_known = false;
    if words.len() >= 3 {
        let version = words[words.len() - 1];
        let number = version.strip_prefix("HTTP/").and_then(|n| {
            let (a, b) = n.split_once('.')?;
            if b.contains('.') {
                return None;
            }
            Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?))
        });
        match number {
            None => {
                return Err(error_page(
                    Some(version),
                    server,
                    400,
                    Some(&format!("Bad request version ({})", py_repr(version))),
                    false,
                ))
            }
            Some((major, _)) if major >= 2 => {
                let base = version.trim_start_matches("HTTP/");
                return Err(error_page(
                    Some(version),
                    server,
                    505,
                    Some(&format!("Invalid HTTP version ({base})")),
                    false,
                ));
            }
            Some(_) => version_known = true,
        }
    }
    let framed = version_known.then_some("HTTP/1.x");
    if !(2..=3).contains(&words.len()) {
        return Err(error_page(
            framed,
            server,
            400,
            Some(&format!("Bad request syntax ({})", py_repr(line))),
            false,
        ));
    }
    if words.len() == 2 && words[0] != "GET" {
        return Err(error_page(
            None,
            server,
            400,
            Some(&format!(
                "Bad HTTP/0.9 request type ({})",
                py_repr(words[0])
            )),
            false,
        ));
    }
    let method = words[0].to_owned();
    let raw_path = words[1];
    let mut headers = Vec::new();
    if words.len() == 3 {
        let mut storage = [httparse::EMPTY_HEADER; 100];
        let mut parsed = httparse::Request::new(&mut storage);
        let mut with_end = head.to_vec();
        if find_head_end(&with_end).is_none() {
            with_end.extend_from_slice(b"\r\n\r\n");
        }
        match parsed.parse(&with_end) {
            Ok(httparse::Status::Complete(_)) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(error_page(
                    Some("HTTP/1.x"),
                    server,
                    431,
                    Some("Too many headers"),
                    false,
                ))
            }
            _ => return Err(error_page(Some("HTTP/1.x"), server, 400, None, false)),
        }
        for h in parsed.headers.iter() {
            let value: String = h.value.iter().map(|b| char::from(*b)).collect();
            headers.push((h.name.to_owned(), value.trim().to_owned()));
        }
    }
    let path = if raw_path.starts_with("//") {
        format!("/{}", raw_path.trim_start_matches('/'))
    } else {
        raw_path.to_owned()
    };
    let (path, query) = split_url(&path);
    Ok(Request {
        method,
        path,
        query: Query::parse(&query),
        headers,
        body: Vec::new(),
    })
}

/// `urlparse(path)`: drop the fragment, split the query, and drop a
/// `scheme://netloc` prefix of an absolute URI.
fn split_url(raw: &str) -> (String, String) {
    let no_fragment = raw.split('#').next().unwrap_or("");
    let (mut path, query) = match no_fragment.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (no_fragment.to_owned(), String::new()),
    };
    if let Some(idx) = path.find("://") {
        let scheme = &path[..idx];
        if !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            let rest = &path[idx + 3..];
            path = rest
                .find('/')
                .map_or(String::new(), |i| rest[i..].to_owned());
        }
    }
    (path, query)
}

/// Python's reason phrase and explanation for a status code.
pub fn reason(code: u16) -> (&'static str, &'static str) {
    match code {
        200 => ("OK", "Request fulfilled, document follows"),
        202 => ("Accepted", "Request accepted, processing continues off-line"),
        400 => ("Bad Request", "Bad request syntax or unsupported method"),
        401 => ("Unauthorized", "No permission -- see authorization schemes"),
        403 => ("Forbidden", "Request forbidden -- authorization will not help"),
        404 => ("Not Found", "Nothing matches the given URI"),
        408 => ("Request Timeout", "Request timed out; try again later"),
        409 => ("Conflict", "Request conflict"),
        411 => ("Length Required", "Client must specify Content-Length"),
        412 => ("Precondition Failed", "Precondition in headers is false"),
        413 => ("Request Entity Too Large", "Entity is too large"),
        414 => ("Request-URI Too Long", "URI is too long"),
        422 => ("Unprocessable Entity", ""),
        431 => (
            "Request Header Fields Too Large",
            "The server is unwilling to process the request because its header fields are too large",
        ),
        500 => ("Internal Server Error", "Server got itself in trouble"),
        501 => ("Not Implemented", "Server does not support this operation"),
        502 => ("Bad Gateway", "Invalid responses from another server/proxy"),
        503 => (
            "Service Unavailable",
            "The server cannot process the request due to a high load",
        ),
        505 => ("HTTP Version Not Supported", "Cannot fulfill request"),
        _ => ("???", "???"),
    }
}

fn http_date() -> String {
    Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// `html.escape(s, quote=False)`.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Python's `send_error` page. `version` is `None` before the request line
/// gave a version: then only the body is written (HTTP/0.9 style).
fn error_page(
    version: Option<&str>,
    server: &str,
    code: u16,
    message: Option<&str>,
    head: bool,
) -> Vec<u8> {
    let (short, explain) = reason(code);
    let message = message.unwrap_or(short);
    let body = format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        <p>Error code: {code}</p>\n        <p>Message: {}.</p>\n        <p>Error code explanation: {code} - {}.</p>\n    </body>\n</html>\n",
        html_escape(message),
        html_escape(explain)
    );
    let mut out = Vec::new();
    if version.is_some() {
        out.extend_from_slice(
            format!(
                "HTTP/1.0 {code} {message}\r\nServer: {server}\r\nDate: {}\r\nConnection: close\r\nContent-Type: text/html;charset=utf-8\r\nContent-Length: {}\r\n\r\n",
                http_date(),
                body.len()
            )
            .as_bytes(),
        );
    }
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Frames responses the way Patroni's handler methods do.
struct Writer<'a> {
    settings: &'a ApiSettings,
    head: bool,
}

impl Writer<'_> {
    /// `_write_status_code_only`: the status line and nothing else.
    fn status_only(&self, code: u16) -> Vec<u8> {
        format!("HTTP/1.0 {code} {}\r\n\r\n", reason(code).0).into_bytes()
    }

    /// `write_response`: Server, Date, the given headers, Content-Type,
    /// the configured extra headers, then the body until close.
    fn text(
        &self,
        code: u16,
        content_type: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.0 {code} {}\r\nServer: {}\r\nDate: {}\r\n",
            reason(code).0,
            self.settings.server_header,
            http_date()
        );
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Type: {content_type}\r\n"));
        for (k, v) in &self.settings.extra_headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(body);
        out.into_bytes()
    }

    fn json(&self, code: u16, body: &str) -> Vec<u8> {
        self.text(code, "application/json", &[], body)
    }

    fn error(&self, code: u16, message: Option<&str>) -> Vec<u8> {
        error_page(
            Some("HTTP/1.0"),
            &self.settings.server_header,
            code,
            message,
            self.head,
        )
    }

    fn reply(&self, reply: Reply) -> Vec<u8> {
        match reply {
            Reply::Text {
                code,
                body,
                content_type,
                headers,
            } => self.text(code, content_type, &headers, &body),
            Reply::Error(code) => self.error(code, None),
        }
    }
}

#[cfg(test)]
mod tests;
