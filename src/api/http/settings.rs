//! `restapi` settings of the server: limits, allowlist networks, headers,
//! authentication, and the listen address.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::net::TcpListener;

use super::tls::{TlsAcceptor, TlsOptions, VerifyClient};
use crate::api::commands::PollTiming;

/// Resource limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers, bytes (431 beyond).
    pub max_head: usize,
    /// Request body, bytes (413 beyond).
    pub max_body: usize,
    /// Time for the request head, and again for the body; also how long a
    /// kept-alive connection may stay idle, and the TLS handshake bound.
    pub header_timeout: Duration,
    /// Connections served at once. Idle kept-alive connections count, so
    /// this is sized for load balancers that keep one connection per
    /// check worker; each costs a task and two small buffers.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_body: 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
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
    /// `http_extra_headers`, in configuration order; with TLS,
    /// `https_extra_headers` merged in as Python's `dict.update` does
    /// (same name: value replaced in place; new names appended).
    pub extra_headers: Vec<(String, String)>,
    /// base64(`username:password`) when authentication is configured.
    pub(super) auth_key: Option<String>,
    pub allowlist: Vec<IpNet>,
    pub allowlist_include_members: bool,
    pub limits: Limits,
    pub poll: PollTiming,
    /// `request_queue_size`: the listen backlog for [`bind_listen`].
    pub request_queue_size: u32,
    /// TLS when `restapi.certfile` is set; shared so that a reload is seen
    /// by the running server.
    pub tls: Option<Arc<TlsAcceptor>>,
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
            request_queue_size: 5,
            tls: None,
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
    /// `allowlist_include_members`, and TLS (`certfile`, `keyfile`,
    /// `keyfile_password`, `cafile`, `ciphers`, `verify_client`,
    /// `https_extra_headers`). A TLS configuration that fails to load is
    /// logged here and reported again by [`super::ApiServer::serve`],
    /// which refuses to serve rather than fall back to plain HTTP.
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
        if let Some(options) = tls_options(restapi) {
            if let Some(headers) = restapi.get("https_extra_headers").and_then(V::as_map) {
                for (k, v) in headers.str_entries() {
                    let v = python_text(v);
                    match s.extra_headers.iter_mut().find(|(name, _)| name == k) {
                        Some(slot) => slot.1 = v,
                        None => s.extra_headers.push((k.to_owned(), v)),
                    }
                }
            }
            let acceptor = TlsAcceptor::new(options);
            if let Err(e) = acceptor.reload() {
                log::error!(target: "patroni.api", "REST API TLS: {e}");
            }
            s.tls = Some(Arc::new(acceptor));
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
        if let Some(size) = restapi
            .get("request_queue_size")
            .and_then(|v| crate::config::units::parse_int(v, None))
            .and_then(|n| u32::try_from(n).ok())
        {
            s.request_queue_size = size;
        }
        s.allowlist_include_members = restapi
            .get("allowlist_include_members")
            .is_some_and(V::truthy);
        s
    }
}

/// The TLS options when `certfile` is set (non-empty, like Python's
/// truthiness test).
pub(super) fn tls_options(restapi: &crate::config::value::Map) -> Option<TlsOptions> {
    use crate::config::value::Value as V;
    let text = |k: &str| restapi.get(k).filter(|v| v.truthy()).map(python_text);
    let certfile = text("certfile")?;
    Some(TlsOptions {
        certfile: certfile.into(),
        keyfile: text("keyfile").map(Into::into),
        keyfile_password: text("keyfile_password"),
        cafile: text("cafile").map(Into::into),
        ciphers: text("ciphers"),
        verify_client: restapi
            .get("verify_client")
            .and_then(V::as_str)
            .map(VerifyClient::parse)
            .unwrap_or_default(),
    })
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

/// Bind `restapi.listen` with `restapi.request_queue_size` as the listen
/// backlog (Patroni's default is 5) and address reuse, as Python's
/// `HTTPServer` does. An empty host or `*` listens on every address: the
/// IPv6 wildcard (dual stack on Linux) when available, else IPv4, the
/// preference Patroni has. Host names resolve with IPv6 addresses first.
pub async fn bind_listen(listen: &str, backlog: u32) -> io::Result<TcpListener> {
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
        match bind_one(addr, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(io::Error::new(
        last.kind(),
        format!(
            "Couldn't start a service on '{listen}', please check your `restapi.listen` configuration: {last}"
        ),
    ))
}

fn bind_one(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}
