//! One request as the handlers see it: method, path and query split the
//! way Python's `urlparse` splits them, headers, and the body hyper read.

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

    /// The request line and headers hyper parsed (header names arrive
    /// lower-cased; values are read as latin-1 like Python's).
    pub(super) fn from_parts(parts: &hyper::http::request::Parts) -> Request {
        let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
        let path = if target.starts_with("//") {
            format!("/{}", target.trim_start_matches('/'))
        } else {
            target.to_owned()
        };
        let (path, query) = split_url(&path);
        let headers = parts
            .headers
            .iter()
            .map(|(k, v)| {
                let value: String = v.as_bytes().iter().map(|b| char::from(*b)).collect();
                (k.as_str().to_owned(), value.trim().to_owned())
            })
            .collect();
        Request {
            method: parts.method.as_str().to_owned(),
            path,
            query: Query::parse(&query),
            headers,
            body: Vec::new(),
        }
    }

    pub(super) fn body(&self) -> Body<'_> {
        Body {
            content_length: self.header("content-length"),
            bytes: &self.body,
        }
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
