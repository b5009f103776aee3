//! The REST server: Python `BaseHTTPRequestHandler` framing on a raw TCP
//! stream.
//!
//! # Why not hyper
//!
//! Patroni's clients see HTTP/1.0 responses whose exact bytes matter:
//! HAProxy-style status-only replies (`HTTP/1.0 200 OK\r\n\r\n`, no headers
//! at all, not even `Date`), bodies delimited by connection close with no
//! `Content-Length`, a custom reason phrase on 501 (`Unsupported method
//! ('PUT')`), headers in Python's order and case, and an HTTP/0.9-style
//! bare HTML page for an unparsable request line. hyper 1.x always adds
//! its own `date` header and length/chunked framing, answers in the
//! request's HTTP version, and cannot send a reply without a status line,
//! so most of these bytes would be out of reach. We therefore parse
//! requests with `httparse` (a well-kept, fuzzed parser; no header parsing
//! by hand) and write responses ourselves. Only the request line is first
//! checked with Python's own rules, so that malformed lines get the same
//! error replies.
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
//! - TLS is rustls, not OpenSSL: see [`tls`] for what that changes
//!   (encrypted keys, `ciphers`). The handshake must finish within
//!   [`Limits::header_timeout`], the same bound as the request head.
//! - `allowlist` entries must be IP addresses or CIDR networks; Python also
//!   resolves host names.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::bodies;
use super::commands::{self, ApiCommands, Reply};
use super::health;
use super::status::StatusReader;

mod request;
mod settings;
pub mod tls;

pub use request::Request;
use request::{py_repr, read_request, Incoming};
pub use settings::{bind_listen, split_listen, ApiSettings, IpNet, Limits, PYTHON_SERVER_HEADER};
pub use tls::{TlsAcceptor, TlsError, TlsOptions, VerifyClient};

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

    async fn handle_connection(&self, stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
        let Some(tls) = &self.settings.tls else {
            return self.exchange(stream, peer, None).await;
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
        self.exchange(stream, peer, Some(conn)).await
    }

    /// Read one request and write its response, on plain TCP or TLS.
    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        peer: SocketAddr,
        tls: Option<ConnTls>,
    ) -> io::Result<()> {
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
            Ok(Ok(Incoming::Request(req))) => self.respond_on(&req, peer.ip(), tls).await,
        };
        stream.write_all(&response).await?;
        stream.shutdown().await
    }

    /// The response bytes for one parsed request on a plain connection.
    pub async fn respond(&self, req: &Request, peer: IpAddr) -> Vec<u8> {
        self.respond_on(req, peer, None).await
    }

    async fn respond_on(&self, req: &Request, peer: IpAddr, tls: Option<ConnTls>) -> Vec<u8> {
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
