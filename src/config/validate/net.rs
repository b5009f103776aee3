//! Address checks: `host:port` parsing as Patroni's `split_host_port`,
//! name resolution through the system resolver (`getaddrinfo`, so that
//! errors read exactly like Python's `socket.gaierror`), and the TCP probe
//! Patroni uses to decide whether a port is taken or a server reachable.

use super::pyrepr::str_repr;
use super::Ctx;
use crate::config::value::Value;
use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream};

/// A port as Python's `int()` parsed it; it may be out of any C range.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    /// `None` when the digits do not fit an `i64`.
    value: Option<i64>,
    text: String,
}

/// Python's `str.isspace`, which counts the ASCII file/group/record/unit
/// separators as whitespace too.
pub fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python `int(text)` for base 10: surrounding whitespace, a sign, digits
/// with single underscores between them.
pub fn py_int(text: &str) -> Option<Port> {
    let t = text.trim_matches(py_space);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if !clean.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = clean.trim_start_matches('0');
    let canonical = match (neg, trimmed.is_empty()) {
        (_, true) => "0".to_owned(),
        (true, false) => format!("-{trimmed}"),
        (false, false) => trimmed.to_owned(),
    };
    Some(Port {
        value: canonical.parse().ok(),
        text: canonical,
    })
}

/// Patroni `split_host_port(value, default_port)`: the part after the last
/// `:` is the port; when the host part itself holds a `:` (IPv6), square
/// brackets are stripped from each comma-separated host. `None` where
/// Python raises `ValueError`.
pub fn split_host_port(value: &str, default_port: i64) -> Option<(String, Port)> {
    let (mut host, port) = match value.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.to_owned()),
        None => (value.to_owned(), default_port.to_string()),
    };
    if host.contains(':') {
        host = host
            .split(',')
            .map(|h| h.trim_matches(py_space).trim_matches(['[', ']']))
            .collect::<Vec<_>>()
            .join(",");
    }
    Some((host, py_int(&port)?))
}

/// Python's message for calling a `str` method on something else.
pub fn no_attribute(value: &Value, attr: &str) -> String {
    format!(
        "'{}' object has no attribute '{attr}'",
        qualified_type(value)
    )
}

/// The type name Python prints in attribute errors.
pub fn qualified_type(value: &Value) -> &'static str {
    match value {
        Value::Timestamp(t) if t.time.is_none() => "datetime.date",
        Value::Timestamp(_) => "datetime.datetime",
        other => other.type_name(),
    }
}

/// Patroni `validate_host_port`: resolve each host, then try a TCP
/// connection. For a `listen` address a successful connection means the
/// port is taken (unless the operator asked to ignore that); for anything
/// else a failed connection means the server is unreachable.
pub fn host_port(
    value: &Value,
    listen: bool,
    multiple_hosts: bool,
    ctx: &Ctx,
) -> Result<(), String> {
    let Value::Str(text) = value else {
        return Err(no_attribute(value, "rsplit"));
    };
    let (hosts, port) = split_host_port(text, 1).ok_or("contains a wrong value")?;
    let mut hosts: Vec<String> = if multiple_hosts {
        hosts.split(',').map(str::to_owned).collect()
    } else {
        vec![hosts]
    };
    if hosts.iter().any(|h| h == "*") {
        if hosts.len() != 1 {
            return Err("expecting '*' alone".into());
        }
        // Every address a wildcard listener would bind to.
        if port.value.is_none() {
            return Err("Python int too large to convert to C long".into());
        }
        let service = port.text.clone();
        hosts = getaddrinfo(None, Some(&service))?
            .into_iter()
            .map(|a| a.ip().to_string())
            .collect();
    }
    for host in &hosts {
        idna_check(host)?;
        let first = getaddrinfo(Some(host), None)?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no address found for {}", str_repr(host)))?;
        let number = port_for_connect(&port)?;
        let target = match first {
            SocketAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(*a.ip(), number)),
            SocketAddr::V6(a) => {
                SocketAddr::V6(SocketAddrV6::new(*a.ip(), number, 0, a.scope_id()))
            }
        };
        let connected = TcpStream::connect(target).is_ok();
        if connected {
            if listen && !ctx.params.ignore_listen_port {
                return Err(format!("Port {} is already in use.", port.text));
            }
        } else if !listen {
            return Err(format!("{text} is not reachable"));
        }
    }
    Ok(())
}

/// Python's `connect_ex` refuses any port outside 0-65535 with one message.
fn port_for_connect(port: &Port) -> Result<u16, String> {
    port.value
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| "connect_ex(): port must be 0-65535.".to_owned())
}

/// Python encodes host names with the `idna` codec before resolving them,
/// which refuses empty or over-long labels in ASCII names.
fn idna_check(host: &str) -> Result<(), String> {
    if !host.is_ascii() {
        return Ok(());
    }
    let labels: Vec<&str> = host.split('.').collect();
    let (last, rest) = labels.split_last().unwrap_or((&"", &[]));
    let fail = |why: &str| {
        Err(format!(
            "encoding with 'idna' codec failed (UnicodeError: {why})"
        ))
    };
    if rest.iter().any(|l| l.is_empty() || l.len() >= 64) {
        return fail("label empty or too long");
    }
    if last.len() >= 64 {
        return fail("label too long");
    }
    Ok(())
}

/// `getaddrinfo(node, service, 0, SOCK_STREAM, 0, AI_PASSIVE)`; errors are
/// worded as Python's `socket.gaierror`.
fn getaddrinfo(node: Option<&str>, service: Option<&str>) -> Result<Vec<SocketAddr>, String> {
    let to_c = |s: &str| {
        CString::new(s).map_err(|_| "host name must not contain null character".to_owned())
    };
    let node_c = node.map(to_c).transpose()?;
    let service_c = service.map(to_c).transpose()?;
    // SAFETY: a zeroed addrinfo is the documented way to build hints.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_socktype = libc::SOCK_STREAM;
    hints.ai_flags = libc::AI_PASSIVE;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: the C strings outlive the call; `res` is freed below.
    let rc = unsafe {
        libc::getaddrinfo(
            node_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            service_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            &hints,
            &mut res,
        )
    };
    if rc != 0 {
        if rc == libc::EAI_SYSTEM {
            return Err(os_error_text(&std::io::Error::last_os_error()));
        }
        // SAFETY: gai_strerror returns a static NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) };
        return Err(format!("[Errno {rc}] {}", msg.to_string_lossy()));
    }
    let mut out = Vec::new();
    let mut cur = res;
    while !cur.is_null() {
        // SAFETY: `cur` walks the list getaddrinfo returned.
        let ai = unsafe { &*cur };
        if let Some(addr) = sockaddr(ai) {
            out.push(addr);
        }
        cur = ai.ai_next;
    }
    // SAFETY: `res` came from a successful getaddrinfo.
    unsafe { libc::freeaddrinfo(res) };
    Ok(out)
}

fn sockaddr(ai: &libc::addrinfo) -> Option<SocketAddr> {
    if ai.ai_addr.is_null() {
        return None;
    }
    match ai.ai_family {
        libc::AF_INET => {
            // SAFETY: the family says this is a sockaddr_in.
            let sa = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr));
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sa.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this is a sockaddr_in6.
            let sa = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in6) };
            let ip = Ipv6Addr::from(sa.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sa.sin6_port),
                0,
                sa.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Python's `str(OSError)` without a file name: `[Errno 13] Permission denied`.
pub fn os_error_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let full = e.to_string();
            let suffix = format!(" (os error {code})");
            let msg = full.strip_suffix(&suffix).unwrap_or(&full);
            format!("[Errno {code}] {msg}")
        }
        None => e.to_string(),
    }
}

/// Python's `str(OSError)` with a file name: `[Errno 2] No such file or directory: 'x'`.
pub fn os_error_with_path(e: &std::io::Error, path: &str) -> String {
    if e.raw_os_error().is_some() {
        format!("{}: {}", os_error_text(e), str_repr(path))
    } else {
        e.to_string()
    }
}

/// Patroni `is_ipv4_address`: whatever C `inet_aton` accepts, which
/// includes the short and hexadecimal/octal forms (`127.1`, `0x7f.0.0.1`)
/// and anything after the address once a whitespace character is seen.
pub fn inet_aton(text: &str) -> bool {
    let addr = text
        .split(|c: char| c.is_ascii_whitespace())
        .next()
        .unwrap_or("");
    let parts: Vec<&str> = addr.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return false;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        match c_strtoul(p) {
            Some(n) => nums.push(n),
            None => return false,
        }
    }
    let (last, head) = match nums.split_last() {
        Some(x) => x,
        None => return false,
    };
    if head.iter().any(|n| *n > 0xff) {
        return false;
    }
    let remaining_bytes = 4 - head.len() as u32;
    let limit = if remaining_bytes == 4 {
        u64::from(u32::MAX)
    } else {
        (1u64 << (8 * remaining_bytes)) - 1
    };
    *last <= limit
}

/// One `inet_aton` component: decimal, `0x` hexadecimal or `0` octal.
fn c_strtoul(p: &str) -> Option<u64> {
    let (digits, radix) = if let Some(h) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        (h, 16)
    } else if p.len() > 1 && p.starts_with('0') {
        (&p[1..], 8)
    } else {
        (p, 10)
    };
    if digits.is_empty() && radix == 16 {
        // "0x" without digits is refused by glibc.
        return None;
    }
    if p.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_follows_patroni() {
        let (h, p) = split_host_port("127.0.0.1:5432", 1).unwrap();
        assert_eq!((h.as_str(), p.value), ("127.0.0.1", Some(5432)));
        let (h, p) = split_host_port("[::1]:8008", 1).unwrap();
        assert_eq!((h.as_str(), p.value), ("::1", Some(8008)));
        let (h, p) = split_host_port("db1,db2", 1).unwrap();
        assert_eq!((h.as_str(), p.value), ("db1,db2", Some(1)));
        assert_eq!(split_host_port("host: 1_0 ", 1).unwrap().1.value, Some(10));
        assert!(split_host_port("host:port", 1).is_none());
        assert!(split_host_port("host:", 1).is_none());
    }

    #[test]
    fn port_range_errors_read_like_connect_ex() {
        let big = py_int("70000").unwrap();
        assert_eq!(
            port_for_connect(&big).unwrap_err(),
            "connect_ex(): port must be 0-65535."
        );
        let huge = py_int("99999999999999999999999").unwrap();
        assert_eq!(
            port_for_connect(&huge).unwrap_err(),
            "connect_ex(): port must be 0-65535."
        );
        assert_eq!(
            port_for_connect(&py_int("-1").unwrap()).unwrap_err(),
            "connect_ex(): port must be 0-65535."
        );
        assert_eq!(port_for_connect(&py_int("+80").unwrap()), Ok(80));
    }

    #[test]
    fn idna_refuses_empty_labels() {
        assert!(idna_check("a..b")
            .unwrap_err()
            .contains("label empty or too long"));
        assert!(idna_check("db.example.com.").is_ok());
    }

    #[test]
    fn inet_aton_accepts_the_c_forms() {
        for ok in ["127.0.0.1", "127.1", "0x7f.1", "10", "1.2.3.4 trailing"] {
            assert!(inet_aton(ok), "{ok}");
        }
        for bad in [
            "",
            "1.2.3.4.5",
            "256.1.1.1",
            "abc",
            "1.2.3.4x",
            "::1",
            "0x",
            "1.0x",
            "08",
            "+1.2.3.4",
        ] {
            assert!(!inet_aton(bad), "{bad}");
        }
    }

    #[test]
    fn resolver_errors_read_like_gaierror() {
        let err = getaddrinfo(Some("name.invalid"), None).unwrap_err();
        assert!(err.starts_with("[Errno -"), "{err}");
        let ok = getaddrinfo(Some("127.0.0.1"), None).unwrap();
        assert_eq!(ok[0].ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
