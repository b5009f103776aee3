//! The `zookeeper:` configuration section.
//!
//! `hosts` is a list or a comma-separated string of `host[:port]` (port
//! 2181 when absent, as kazoo assumes). `auth_data` maps an authentication
//! scheme to its credential (sent when the session is established);
//! `set_acls` maps an x509 principal to its permissions and replaces the
//! default world-writable ACL on every znode we create.

use crate::config::{Map, Value};
use crate::dcs::settings::split_host_port;

/// The default ZooKeeper client port.
const DEFAULT_PORT: u16 = 2181;

/// How to reach and authenticate to a ZooKeeper ensemble.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZkConnection {
    /// `host:port` entries, IPv6 hosts in brackets.
    pub hosts: Vec<String>,
    /// `use_ssl`: TLS to the ensemble (not supported by patroni-rs yet).
    pub use_ssl: bool,
    /// `auth_data`: `(scheme, credential)` pairs, e.g. `("digest", "u:p")`.
    pub auth_data: Vec<(String, String)>,
    /// `set_acls`: `(x509 principal, permissions in upper case)`.
    pub set_acls: Vec<(String, Vec<String>)>,
}

impl ZkConnection {
    /// The connect string the client library takes: `h1:2181,h2:2181`.
    pub fn connect_string(&self) -> String {
        self.hosts.join(",")
    }
}

/// `host[:port]` with the default port and brackets around IPv6 hosts.
fn host_port(entry: &str) -> Result<String, String> {
    let (host, port) = split_host_port(entry.trim(), DEFAULT_PORT)?;
    if host.is_empty() {
        return Err(format!("invalid ZooKeeper host {entry:?}"));
    }
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Parse a `zookeeper:` section.
pub fn zookeeper_connection(section: &Map) -> Result<ZkConnection, String> {
    let items: Vec<String> = match section.get("hosts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Str(s)) => s
            .split(',')
            .filter(|h| !h.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Seq(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(other) => {
            return Err(format!(
                "hosts must be a list or a string, not {}",
                other.type_name()
            ))
        }
    };
    if items.is_empty() {
        return Err("no hosts are defined in the zookeeper section of config".into());
    }
    let hosts = items
        .iter()
        .map(|h| host_port(h))
        .collect::<Result<Vec<_>, _>>()?;
    let mut conn = ZkConnection {
        hosts,
        use_ssl: section.get("use_ssl").is_some_and(Value::truthy),
        ..Default::default()
    };
    if let Some(auth) = section.get("auth_data") {
        let map = auth
            .as_map()
            .ok_or_else(|| "auth_data must be a mapping of scheme: credential".to_owned())?;
        for (scheme, credential) in map.iter() {
            conn.auth_data
                .push((scheme.to_string(), credential.to_string()));
        }
    }
    if let Some(acls) = section.get("set_acls") {
        let map = acls
            .as_map()
            .ok_or_else(|| "set_acls must be a mapping of principal: [permissions]".to_owned())?;
        for (principal, permissions) in map.iter() {
            let perms = match permissions {
                Value::Seq(items) => items
                    .iter()
                    .filter_map(|p| p.as_str().map(str::to_uppercase))
                    .collect(),
                Value::Str(s) => vec![s.to_uppercase()],
                other => {
                    return Err(format!(
                        "set_acls.{principal}: permissions must be a list, not {}",
                        other.type_name()
                    ))
                }
            };
            conn.set_acls.push((principal.to_string(), perms));
        }
    }
    Ok(conn)
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
    fn hosts_as_list_or_string_with_default_port() {
        let cases = [
            ("hosts: ['a:2182', b]", vec!["a:2182", "b:2181"]),
            ("hosts: 'a:1, b:2'", vec!["a:1", "b:2"]),
            ("hosts: 127.0.0.1", vec!["127.0.0.1:2181"]),
            ("hosts: ['[::1]:2181']", vec!["[::1]:2181"]),
        ];
        for (text, want) in cases {
            let c = zookeeper_connection(&section(text)).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(c.hosts, want, "{text}");
        }
        let c = zookeeper_connection(&section("hosts: [a, 'b:3']")).expect("hosts");
        assert_eq!(c.connect_string(), "a:2181,b:3");
        assert!(zookeeper_connection(&section("hosts: []")).is_err());
        assert!(zookeeper_connection(&section("use_ssl: true")).is_err());
        assert!(zookeeper_connection(&section("hosts: 'a:port'")).is_err());
        assert!(zookeeper_connection(&section("hosts: 3")).is_err());
    }

    #[test]
    fn auth_acls_and_ssl() {
        let c = zookeeper_connection(&section(
            "{hosts: [a], use_ssl: 'on', auth_data: {digest: 'u:p'}, \
             set_acls: {'CN=principal1': [read, Write], 'CN=p2': ALL}}",
        ))
        .expect("valid");
        assert!(c.use_ssl);
        assert_eq!(c.auth_data, [("digest".to_owned(), "u:p".to_owned())]);
        assert_eq!(
            c.set_acls,
            [
                (
                    "CN=principal1".to_owned(),
                    vec!["READ".into(), "WRITE".into()]
                ),
                ("CN=p2".to_owned(), vec!["ALL".into()]),
            ]
        );
        assert!(zookeeper_connection(&section("{hosts: [a], auth_data: [x]}")).is_err());
        assert!(
            !zookeeper_connection(&section("{hosts: [a]}"))
                .expect("valid")
                .use_ssl
        );
    }
}
