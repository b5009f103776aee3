//! The REST server: Patroni's routes, status codes, reason phrases and
//! bodies on hyper's HTTP/1.x framing.
//!
//! # Framing
//!
//! hyper (http1 only, through `hyper-util`'s tokio glue) parses requests
//! and frames responses; this module only routes and builds
//! `http::Response`s. Python's `BaseHTTPRequestHandler` answers HTTP/1.0
//! without `Content-Length` and closes every connection; hyper answers in
//! the request's version (HTTP/1.1 to 1.1 requests), always sends
//! `Content-Length` and `Date`, and keeps HTTP/1.1 connections alive
//! unless the client says `Connection: close`. Every client Patroni has
//! (patronictl on urllib3, HAProxy `httpchk`, curl, `requests`) reads both.
//! What stays as Patroni has it: status codes, Patroni's reason phrases
//! (set explicitly where they differ from hyper's, e.g. `413 Request
//! Entity Too Large`, `501 Unsupported method ('BREW')`), Content-Type,
//! bodies, `Server` (`server_tokens`), `WWW-Authenticate`, the configured
//! extra headers, and Python's HTML error page for handler errors.
//!
//! # Threading
//!
//! [`ApiServer::serve_on_own_thread`] runs the server on a thread of its
//! own with a single-threaded tokio runtime: a health check never waits
//! for a runtime worker busy with the HA loop (a slow DCS call, a file
//! written synchronously), and the HA loop never competes with a flood of
//! checks. One thread serves tens of thousands of requests per second;
//! every handler only reads the published snapshot, and the modifying
//! endpoints await the HA loop through channels.
//!
//! # Limits (Python has none of these)
//!
//! - The request head must arrive within [`Limits::header_timeout`]
//!   (hyper's `header_read_timeout`, which also closes keep-alive
//!   connections idle that long) and fit in [`Limits::max_head`] bytes
//!   (431). A body must fit in [`Limits::max_body`] (413, checked against
//!   `Content-Length` before reading and while reading) and arrive within
//!   the same timeout (else 408 and close). The TLS handshake has the same
//!   bound. No task is held forever by a slow client.
//! - At most [`Limits::max_connections`] connections are served at once;
//!   further ones wait in the kernel backlog (`request_queue_size`).
//!
//! # Known deviations from Python Patroni
//!
//! - Framing as above. Header names are written in title case
//!   (`Www-Authenticate`, `Content-Type`); HTTP header names are
//!   case-insensitive, so clients do not notice.
//! - Replies that Patroni sends as a bare status line (`HEAD`, `OPTIONS`,
//!   `/liveness`, `/readiness`) also carry `Content-Length: 0` and `Date`.
//! - Requests hyper cannot parse (garbage request line, HTTP/0.9, bad
//!   header syntax, unsupported version such as `HTTP/2.0`) get hyper's
//!   bodiless `400 Bad Request` (431 for an oversized head, 414 for a URI
//!   over 64 KiB) and the connection is closed; Python answers an HTML error
//!   page (505 for HTTP/2.0, a body-only page for a garbage line).
//! - `GET /cluster`, `/config`, `/history` answer from the last published
//!   cluster view instead of querying the DCS in the request (Python's
//!   `/cluster` hangs while the DCS is unreachable).
//! - TLS is rustls, not OpenSSL: see [`tls`] for what that changes
//!   (encrypted keys, `ciphers`).
//! - `allowlist` entries must be IP addresses or CIDR networks; Python also
//!   resolves host names.

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::bodies;
use super::commands::{self, ApiCommands, Reply};
use super::health;
use super::status::StatusReader;

mod request;
mod settings;
pub mod tls;

use request::py_repr;
pub use request::Request;
pub use settings::{bind_listen, split_listen, ApiSettings, IpNet, Limits, PYTHON_SERVER_HEADER};
pub use tls::{TlsAcceptor, TlsError, TlsOptions, VerifyClient};

/// A response as the server sends it.
pub type Response = hyper::Response<Full<Bytes>>;

/// hyper refuses a read buffer smaller than this.
const MIN_BUF_SIZE: usize = 8192;

/// Everything a connection handler needs.
pub struct ApiServer {
    pub settings: ApiSettings,
    pub status: StatusReader,
    pub commands: Arc<dyn ApiCommands>,
}

impl ApiServer {
    /// Accept connections until the task is dropped. With TLS configured
    /// but not loadable this returns the error at once: the API is never
    /// served in plain text by mistake.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        if let Some(tls) = &self.settings.tls {
            if tls.config().is_none() {
                tls.reload()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            }
        }
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

    /// Serve on a thread of its own with a single-threaded runtime, so
    /// that health checks neither wait behind the HA loop's work nor
    /// compete with it for the runtime's workers. The thread ends (logging
    /// why) when [`ApiServer::serve`] returns.
    pub fn serve_on_own_thread(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        // A tokio listener belongs to the runtime that made it: hand the
        // socket over as a std one and register it again on the new runtime.
        let listener = listener.into_std()?;
        std::thread::Builder::new()
            .name("patroni-api".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        log::error!(target: "patroni.api", "REST API runtime: {e}");
                        return;
                    }
                };
                let result = runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    self.serve(listener).await
                });
                if let Err(e) = result {
                    log::error!(target: "patroni.api", "REST API stopped: {e}");
                }
            })
            .map(|_| ())
    }

    /// Re-read the TLS certificate, key and CA files (SIGHUP / reload).
    /// The listener stays; new connections use the new files. `Ok(true)`
    /// when the served certificate changed, `Ok(false)` when it did not or
    /// TLS is not configured. On error the old files stay in use.
    pub fn reload_certificates(&self) -> Result<bool, TlsError> {
        match &self.settings.tls {
            Some(tls) => tls.reload(),
            None => Ok(false),
        }
    }

    /// Apply a changed `restapi` section's TLS options (paths,
    /// `verify_client`, `ciphers`) without dropping the listener. Turning
    /// TLS on or off needs a new server (Python re-creates its listener
    /// then too); that is reported as an error and nothing changes.
    pub fn reconfigure_tls(&self, restapi: &crate::config::value::Map) -> Result<bool, TlsError> {
        match (&self.settings.tls, settings::tls_options(restapi)) {
            (Some(tls), Some(options)) => tls.reconfigure(options),
            (None, None) => Ok(false),
            (Some(_), None) => Err(TlsError(
                "restapi.certfile was removed: restart the REST API to serve plain HTTP".into(),
            )),
            (None, Some(_)) => Err(TlsError(
                "restapi.certfile was added: restart the REST API to serve HTTPS".into(),
            )),
        }
    }

    async fn handle_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> io::Result<()> {
        let Some(tls) = &self.settings.tls else {
            return self.serve_http(stream, peer.ip(), None).await;
        };
        let Some(loaded) = tls.current() else {
            return Ok(());
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(loaded.config);
        let handshake =
            tokio::time::timeout(self.settings.limits.header_timeout, acceptor.accept(stream));
        let stream = match handshake.await {
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "TLS handshake timed out",
                ))
            }
            Ok(r) => r?,
        };
        let has_cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .is_some_and(|c| !c.is_empty());
        let conn = ConnTls {
            has_cert,
            mode: loaded.verify_client,
        };
        self.serve_http(stream, peer.ip(), Some(conn)).await
    }

    /// Serve HTTP/1.x requests on one plain or TLS stream until the client
    /// closes it, asks to, or stays silent past the header timeout.
    async fn serve_http<S>(
        self: Arc<Self>,
        stream: S,
        peer: IpAddr,
        tls: Option<ConnTls>,
    ) -> io::Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let limits = self.settings.limits;
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(limits.max_head.max(MIN_BUF_SIZE))
            .max_header_size(limits.max_head)
            .title_case_headers(true);
        let server = self.clone();
        let service = service_fn(move |req: hyper::Request<Incoming>| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(req, peer, tls).await) }
        });
        builder
            .serve_connection(TokioIo::new(stream), service)
            .await
            .map_err(io::Error::other)
    }

    /// One request: read its body within the limits, then answer it.
    async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        peer: IpAddr,
        tls: Option<ConnTls>,
    ) -> Response {
        let (parts, body) = req.into_parts();
        let mut request = Request::from_parts(&parts);
        let w = Writer {
            settings: &self.settings,
            head: request.method == "HEAD",
        };
        // Only the modifying methods have bodies worth reading; a GET's
        // (unusual) body is left unread and hyper closes the connection.
        if matches!(request.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") {
            match self.read_body(&request, body).await {
                Ok(bytes) => request.body = bytes,
                Err(code) => return w.error(code, None).close(),
            }
        }
        self.respond_on(&request, peer, tls).await
    }

    /// The request body, at most [`Limits::max_body`] bytes, within
    /// [`Limits::header_timeout`]; else the error status to answer.
    async fn read_body(&self, request: &Request, body: Incoming) -> Result<Vec<u8>, u16> {
        let limits = self.settings.limits;
        let declared = request
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > limits.max_body as u64) {
            return Err(413);
        }
        let read = Limited::new(body, limits.max_body).collect();
        match tokio::time::timeout(limits.header_timeout, read).await {
            Err(_) => Err(408),
            Ok(Ok(collected)) => Ok(collected.to_bytes().to_vec()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(413),
            Ok(Err(_)) => Err(400),
        }
    }

    /// The response to one parsed request on a plain connection.
    pub async fn respond(&self, req: &Request, peer: IpAddr) -> Response {
        self.respond_on(req, peer, None).await
    }

    async fn respond_on(&self, req: &Request, peer: IpAddr, tls: Option<ConnTls>) -> Response {
        let w = Writer {
            settings: &self.settings,
            head: req.method == "HEAD",
        };
        let status = self.status.current().checked_now();
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
            ("GET", "patroni") => {
                let fresh = self.status.fresh().await.checked_now();
                w.json(200, &bodies::status_body(&fresh))
            }
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
                if let Some(denied) = self.check_access(req, peer, &status, check_members, tls) {
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

    /// Patroni's `check_access`: allowlist, then the client certificate
    /// (TLS with `verify_client` optional or required), then basic auth.
    fn check_access(
        &self,
        req: &Request,
        peer: IpAddr,
        status: &super::status::NodeStatus,
        check_members: bool,
        tls: Option<ConnTls>,
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
        if let Some(conn) = tls {
            if !conn.has_cert && conn.mode != VerifyClient::None {
                return Some(Reply::html(403, "client certificate required"));
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

/// What the access check needs to know about a TLS connection.
#[derive(Debug, Clone, Copy)]
struct ConnTls {
    /// The client presented a certificate (rustls verified it against
    /// `cafile` during the handshake).
    has_cert: bool,
    mode: VerifyClient,
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

/// `html.escape(s, quote=False)`.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The body of Python's `send_error` page.
fn error_page(code: u16, message: &str) -> String {
    let explain = reason(code).1;
    format!(
        "<!DOCTYPE HTML>\n<html lang=\"en\">\n    <head>\n        <meta charset=\"utf-8\">\n        <title>Error response</title>\n    </head>\n    <body>\n        <h1>Error response</h1>\n        <p>Error code: {code}</p>\n        <p>Message: {}.</p>\n        <p>Error code explanation: {code} - {}.</p>\n    </body>\n</html>\n",
        html_escape(message),
        html_escape(explain)
    )
}

/// A response with `code` and Python's reason phrase `phrase`: hyper's
/// own phrase is replaced where the two differ (e.g. `Request Entity Too
/// Large` for 413, or a handler's message on 501).
fn with_status(code: u16, phrase: &str, body: Bytes) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = hyper::Response::new(Full::new(body));
    *response.status_mut() = status;
    if status.canonical_reason() != Some(phrase) {
        if let Ok(custom) = hyper::ext::ReasonPhrase::try_from(phrase.as_bytes()) {
            response.extensions_mut().insert(custom);
        }
    }
    response
}

/// Append a header, skipping names or values HTTP cannot carry (e.g. a
/// configured extra header with a newline in it) rather than failing the
/// response.
fn push_header(response: &mut Response, name: &str, value: &str) {
    match (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        (Ok(n), Ok(v)) => {
            response.headers_mut().append(n, v);
        }
        _ => log::debug!(target: "patroni.api", "header {name:?} not sendable, skipped"),
    }
}

/// Asks hyper to close the connection after this response.
trait CloseAfter {
    fn close(self) -> Self;
}

impl CloseAfter for Response {
    fn close(mut self) -> Self {
        self.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        self
    }
}

/// Frames responses the way Patroni's handler methods do.
struct Writer<'a> {
    settings: &'a ApiSettings,
    head: bool,
}

impl Writer<'_> {
    /// `_write_status_code_only`: the status and no headers of our own.
    fn status_only(&self, code: u16) -> Response {
        with_status(code, reason(code).0, Bytes::new())
    }

    /// `write_response`: Server, the given headers, Content-Type, then the
    /// configured extra headers (hyper adds Date and Content-Length).
    fn text(
        &self,
        code: u16,
        content_type: &str,
        headers: &[(String, String)],
        body: &str,
    ) -> Response {
        let mut r = with_status(code, reason(code).0, Bytes::from(body.to_owned()));
        push_header(&mut r, "Server", &self.settings.server_header);
        for (k, v) in headers {
            push_header(&mut r, k, v);
        }
        push_header(&mut r, "Content-Type", content_type);
        for (k, v) in &self.settings.extra_headers {
            push_header(&mut r, k, v);
        }
        r
    }

    fn json(&self, code: u16, body: &str) -> Response {
        self.text(code, "application/json", &[], body)
    }

    /// Python's `send_error`: the HTML page (none for HEAD), `message` as
    /// reason phrase and in the page, and the connection closed.
    fn error(&self, code: u16, message: Option<&str>) -> Response {
        let message = message.unwrap_or(reason(code).0);
        let body = if self.head {
            Bytes::new()
        } else {
            Bytes::from(error_page(code, message))
        };
        let mut r = with_status(code, message, body);
        push_header(&mut r, "Server", &self.settings.server_header);
        push_header(&mut r, "Content-Type", "text/html;charset=utf-8");
        r.close()
    }

    fn reply(&self, reply: Reply) -> Response {
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
