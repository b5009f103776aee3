//! From the `etcd:` / `etcd3:` / `zookeeper:` configuration sections to a
//! backend (the `zookeeper:` section is parsed in [`super::zookeeper::config`]).
//!
//! Endpoints are resolved the way Patroni resolves them: `proxy` wins and is
//! used as a `url`; a `url` gives protocol, host, port (default 2379) and
//! credentials; `hosts` is a list or a comma-separated string of
//! `host[:port]` (default port `port` or 2379) under `protocol`; `host` is a
//! single `host[:port]`. DNS SRV discovery (`srv`) is not supported yet and
//! says so.

use super::etcd::Etcd;
use super::etcd3::Etcd3;
use super::{Dcs, DcsError, KeyPaths, Timing};
use crate::config::{Map, Value};

/// Endpoints and credentials of an etcd cluster, for both backends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtcdConnection {
    /// Endpoints: full URLs (`http://127.0.0.1:2379`) or `host:port`, which
    /// then uses `protocol`.
    pub hosts: Vec<String>,
    /// `http` or `https`.
    pub protocol: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of the CA that signed the etcd server certificates.
    pub cacert: Option<String>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// Patroni's `split_host_port`: the last `:` separates the port; hosts with
/// a `:` left are IPv6 and lose their brackets.
pub fn split_host_port(value: &str, default_port: u16) -> Result<(String, u16), String> {
    match value.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("invalid port in {value:?}"))?;
            let host = if host.contains(':') {
                host.split(',')
                    .map(|h| h.trim().trim_matches(|c| c == '[' || c == ']'))
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                host.to_owned()
            };
            Ok((host, port))
        }
        None => Ok((value.to_owned(), default_port)),
    }
}

/// Patroni's `uri(proto, (host, port))`: brackets around IPv6 hosts.
pub fn uri(protocol: &str, host: &str, port: u16) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!("{protocol}://{host}:{port}")
}

fn text(section: &Map, key: &str) -> Option<String> {
    match section.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) if s.is_empty() => None,
        Some(v) => Some(v.to_string()),
    }
}

/// Parse an `etcd`/`etcd3` section.
pub fn etcd_endpoints(section: &Map) -> Result<EtcdConnection, String> {
    let mut ep = EtcdConnection {
        protocol: text(section, "protocol").unwrap_or_else(|| "http".into()),
        username: text(section, "username"),
        password: text(section, "password"),
        cacert: text(section, "cacert"),
        cert: text(section, "cert"),
        key: text(section, "key"),
        ..Default::default()
    };
    let url = text(section, "proxy").or_else(|| text(section, "url"));
    if let Some(url) = url {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("invalid url {url:?}: no scheme"))?;
        let netloc = rest.split('/').next().unwrap_or("");
        let (userinfo, hostport) = match netloc.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, netloc),
        };
        if let Some(userinfo) = userinfo {
            let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            ep.username = Some(u.to_owned());
            ep.password = (!p.is_empty()).then(|| p.to_owned());
        }
        let (host, port) = split_host_port(hostport, 2379)?;
        ep.protocol = scheme.to_owned();
        ep.hosts = vec![uri(scheme, &host, port)];
        return Ok(ep);
    }
    if let Some(hosts) = section.get("hosts") {
        let default_port = match section.get("port") {
            None => 2379,
            Some(p) => crate::config::units::parse_int(p, None)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("invalid port {p}"))?,
        };
        let items: Vec<String> = match hosts {
            Value::Str(s) => s.split(',').map(str::to_owned).collect(),
            Value::Seq(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            other => {
                return Err(format!(
                    "hosts must be a list or a string, not {}",
                    other.type_name()
                ))
            }
        };
        for h in items {
            let (host, port) = split_host_port(h.trim(), default_port)?;
            ep.hosts.push(uri(&ep.protocol, &host, port));
        }
    } else if let Some(host) = text(section, "host") {
        let (host, mut port) = split_host_port(&host, 2379)?;
        if let Some(p) = section.get("port") {
            port = crate::config::units::parse_int(p, None)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or_else(|| format!("invalid port {p}"))?;
        }
        ep.hosts.push(uri(&ep.protocol, &host, port));
    } else if section.contains_key("srv") || section.contains_key("discovery_srv") {
        return Err(
            "DNS SRV discovery (srv) is not supported by patroni-rs yet; list the hosts".into(),
        );
    }
    if ep.hosts.is_empty() {
        return Err(
            "Neither srv, hosts, host nor url are defined in etcd section of config".into(),
        );
    }
    Ok(ep)
}

/// Build the DCS client for an effective configuration.
pub fn from_config(config: &Map, timing: Timing) -> Result<Box<dyn Dcs>, DcsError> {
    let name = text(config, "name").ok_or_else(|| DcsError::Other("name is not defined".into()))?;
    let scope =
        text(config, "scope").ok_or_else(|| DcsError::Other("scope is not defined".into()))?;
    let namespace = text(config, "namespace").unwrap_or_else(|| "service".into());
    let paths = KeyPaths::new(&namespace, &scope, &name);
    let section = |key: &str| config.get(key).and_then(Value::as_map);
    if let Some(s) = section("etcd3") {
        let ep = etcd_endpoints(s).map_err(|e| DcsError::Other(format!("etcd3: {e}")))?;
        return Ok(Box::new(Etcd3::new(paths, ep, timing)));
    }
    if let Some(s) = section("etcd") {
        let ep = etcd_endpoints(s).map_err(|e| DcsError::Other(format!("etcd: {e}")))?;
        return Ok(Box::new(Etcd::new(paths, ep, timing)?));
    }
    if let Some(s) = section("zookeeper") {
        let conn = super::zookeeper::zookeeper_connection(s)
            .map_err(|e| DcsError::Other(format!("zookeeper: {e}")))?;
        return Ok(Box::new(super::zookeeper::ZooKeeper::new(
            paths, conn, timing,
        )?));
    }
    for other in ["consul", "kubernetes", "exhibitor", "raft"] {
        if config.contains_key(other) {
            return Err(DcsError::Other(format!(
                "the {other} DCS is not supported by patroni-rs yet"
            )));
        }
    }
    Err(DcsError::Other(
        "Can not find suitable configuration of distributed configuration store".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn section(text: &str) -> Map {
        match yaml::load(text) {
            Ok(Value::Map(m)) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn endpoint_forms() {
        let cases = [
            ("host: 127.0.0.1:2379", vec!["http://127.0.0.1:2379"]),
            ("host: etcd.local", vec!["http://etcd.local:2379"]),
            (
                "{host: etcd.local, port: 4001}",
                vec!["http://etcd.local:4001"],
            ),
            (
                "hosts: 10.0.0.1:2379,10.0.0.2",
                vec!["http://10.0.0.1:2379", "http://10.0.0.2:2379"],
            ),
            (
                "{hosts: ['a:1', b], port: 7, protocol: https}",
                vec!["https://a:1", "https://b:7"],
            ),
            ("hosts: ['[::1]:2379']", vec!["http://[::1]:2379"]),
            ("url: https://u:p@etcd:2380/x", vec!["https://etcd:2380"]),
            (
                "{proxy: http://proxy:8080, hosts: [a]}",
                vec!["http://proxy:8080"],
            ),
        ];
        for (text, want) in cases {
            let ep = etcd_endpoints(&section(text)).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(ep.hosts, want, "{text}");
        }
        let ep = etcd_endpoints(&section("url: https://u:p@etcd")).expect("url");
        assert_eq!(
            (ep.username.as_deref(), ep.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert!(etcd_endpoints(&section("srv: example.com")).is_err());
        assert!(etcd_endpoints(&section("protocol: http")).is_err());
        assert!(etcd_endpoints(&section("host: 'a:notaport'")).is_err());
    }

    #[test]
    fn backend_choice() {
        let t = Timing::default();
        let cfg = |s: &str| section(s);
        assert!(from_config(
            &cfg("{name: n, scope: s, etcd3: {hosts: '127.0.0.1:2379'}}"),
            t
        )
        .is_ok());
        assert!(from_config(
            &cfg("{name: n, scope: s, etcd: {host: '127.0.0.1:2379'}}"),
            t
        )
        .is_ok());
        assert!(from_config(&cfg("{name: n, scope: s, zookeeper: {hosts: [a]}}"), t).is_ok());
        let err = from_config(&cfg("{name: n, scope: s, zookeeper: {hosts: []}}"), t)
            .err()
            .expect("zk without hosts");
        assert!(err.to_string().contains("zookeeper"));
        let err = from_config(&cfg("{name: n, scope: s, consul: {host: a}}"), t)
            .err()
            .expect("consul");
        assert!(err.to_string().contains("consul"));
        assert!(from_config(&cfg("{name: n, scope: s}"), t).is_err());
    }
}
