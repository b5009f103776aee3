//! Reading and parsing one request: Python's request-line rules first (so
//! malformed lines get Python's error replies), then httparse for the head,
//! then the body by `Content-Length`, all within the configured limits.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::error_page;
use super::settings::Limits;
use crate::api::commands::Body;
use crate::api::health::Query;

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

    pub(super) fn body(&self) -> Body<'_> {
        Body {
            content_length: self.header("content-length"),
            bytes: &self.body,
        }
    }
}

pub(super) enum Incoming {
    /// The client went away before sending a request line.
    Closed,
    /// Answer with these bytes without dispatching.
    Reject(Vec<u8>),
    Request(Request),
}

/// Read and parse one request from the stream.
pub(super) async fn read_request(
    stream: &mut (impl AsyncRead + Unpin),
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

pub(super) fn find_head_end(buf: &[u8]) -> Option<usize> {
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
pub(super) fn py_repr(s: &str) -> String {
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
pub(super) fn parse_head(head: &[u8], server: &str) -> Result<Request, Vec<u8>> {
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
pub(super) fn split_url(raw: &str) -> (String, String) {
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
