//! Where and how Patroni connects to its own PostgreSQL.
//!
//! Patroni derives the superuser connection for its local connections
//! (the HA loop's `heartbeat` connection and the REST API's `restapi` one)
//! from the `postgresql` section alone, so this is a pure function of the
//! configuration. The rules, as in Patroni 4.1:
//!
//! - The port and the listen addresses come from `postgresql.listen`
//!   (`host[,host...][:port]`, port 5432 by default); a `port` in
//!   `postgresql.parameters` is ignored because `listen` wins there too.
//! - Over TCP the host is `localhost` when PostgreSQL listens on `*`,
//!   `localhost`, `0.0.0.0` or `127.0.0.1`, otherwise the first listen
//!   address.
//! - With `use_unix_socket` the first absolute directory of the
//!   `unix_socket_directories` parameter is the host; when that parameter
//!   is set but holds no absolute path the TCP host is used instead; when
//!   it is not set at all no host is given and the client library's
//!   default socket directory is used.
//! - The credentials are `postgresql.authentication.superuser` (`username`
//!   becomes `user`; `password` and the `ssl*` keys pass through), the
//!   database is `postgresql.database` (default `postgres`).
//! - Every connection sets `application_name=Patroni <name>`, a 3 second
//!   `connect_timeout` and `options=-c statement_timeout=2000 -c
//!   pg_stat_statements.track=none` (Patroni's own monitoring statements
//!   are kept out of `pg_stat_statements`; PostgreSQL accepts the dotted
//!   setting even when the extension is not loaded).

use std::time::Duration;

use crate::config::value::{Map, Value};
use crate::dcs::settings::split_host_port;

/// Patroni's connect timeout for its own connections.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Patroni's statement timeout for its own connections, in milliseconds.
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u64 = 2000;

/// Added to every connection's `options` after the statement timeout.
const EXTRA_OPTIONS: &str = "-c pg_stat_statements.track=none";

/// The `options` startup parameter for a statement timeout.
fn options_for(statement_timeout_ms: u64) -> String {
    format!("-c statement_timeout={statement_timeout_ms} {EXTRA_OPTIONS}")
}

/// Socket directories tried when `use_unix_socket` is on but no directory
/// is configured: the client library's compiled-in default differs between
/// distributions (Debian-family builds use `/var/run/postgresql`, upstream
/// builds `/tmp`), so both are tried in that order.
pub const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// Why the configuration does not give a usable connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnParamsError {
    #[error("postgresql.listen is missing")]
    MissingListen,
    #[error("postgresql.listen: {0}")]
    BadListen(String),
    #[error("postgresql.{key} must be a string, got {got}")]
    NotAString { key: String, got: String },
}

/// The parameters of one local superuser connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnParams {
    /// A host name, an address, or an absolute socket directory; `None`
    /// means the default socket directories ([`DEFAULT_SOCKET_DIRS`]).
    pub host: Option<String>,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: String,
    pub application_name: String,
    pub connect_timeout: Duration,
    /// The `options` startup parameter (`-c statement_timeout=...`).
    pub options: String,
    /// `sslmode`, `sslcert`, ... from the superuser section, in order.
    pub ssl: Vec<(String, String)>,
}

impl ConnParams {
    /// The `sslmode` asked for, if any.
    pub fn sslmode(&self) -> Option<&str> {
        self.ssl
            .iter()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.as_str())
    }

    /// The `sslmode` that applies: none over a Unix-domain socket, where
    /// libpq ignores it (Patroni's local connections with `use_unix_socket`
    /// keep the superuser's `sslmode: verify-ca` and still work).
    pub fn effective_sslmode(&self) -> Option<&str> {
        match &self.host {
            None => None,
            Some(h) if h.starts_with('/') || h.starts_with('@') => None,
            Some(_) => self.sslmode(),
        }
    }

    /// Replaces the statement timeout in `options`.
    pub fn with_statement_timeout(mut self, millis: u64) -> ConnParams {
        self.options = options_for(millis);
        self
    }
}

/// Python's `str()` of a scalar the way it ends up in a libpq keyword.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::BigInt(s) => Some(s.clone()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        _ => None,
    }
}

/// Python truthiness of an optional configuration value.
fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Int(0)) => false,
        Some(Value::Float(f)) => *f != 0.0,
        Some(Value::Str(s)) => !s.is_empty(),
        Some(Value::Seq(s)) => !s.is_empty(),
        Some(Value::Map(m)) => !m.is_empty(),
        Some(_) => true,
    }
}

fn type_name(value: &Value) -> String {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::BigInt(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Str(_) => "a string",
        Value::Timestamp(..) => "a timestamp",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
    .to_owned()
}

/// The TCP host: `localhost` when PostgreSQL listens on a loopback or
/// wildcard address, else the first listen address.
pub fn tcp_local_address(listen_addresses: &str) -> String {
    for la in listen_addresses.split(',') {
        let la = la.trim();
        if matches!(la.to_lowercase().as_str(), "*" | "localhost")
            || matches!(la, "0.0.0.0" | "127.0.0.1")
        {
            return "localhost".to_owned();
        }
    }
    listen_addresses
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The first absolute directory of `unix_socket_directories`, if any.
pub fn unix_local_address(unix_socket_directories: &str) -> Option<String> {
    unix_socket_directories
        .split(',')
        .map(str::trim)
        .find(|d| d.starts_with('/'))
        .map(str::to_owned)
}

/// The local superuser connection for the connection called `name`
/// (`heartbeat` for the HA loop, `restapi` for the REST API) from the
/// `postgresql` configuration section.
pub fn local_conn_params(postgresql: &Map, name: &str) -> Result<ConnParams, ConnParamsError> {
    let listen = match postgresql.get("listen") {
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Int(i)) => i.to_string(),
        Some(Value::Null) | None => return Err(ConnParamsError::MissingListen),
        Some(other) => {
            return Err(ConnParamsError::NotAString {
                key: "listen".to_owned(),
                got: type_name(other),
            })
        }
    };
    let (listen_addresses, port) =
        split_host_port(&listen, 5432).map_err(ConnParamsError::BadListen)?;
    let tcp_host = tcp_local_address(&listen_addresses);

    let socket_dirs = match postgresql.get("parameters") {
        Some(Value::Map(p)) => crate::postgres::params::ci_get(p, "unix_socket_directories"),
        _ => None,
    };
    let host = if truthy(postgresql.get("use_unix_socket")) {
        match socket_dirs {
            None | Some(Value::Null) => None,
            Some(v) => {
                let dirs = scalar_text(v).unwrap_or_default();
                Some(unix_local_address(&dirs).unwrap_or_else(|| tcp_host.clone()))
            }
        }
    } else {
        Some(tcp_host)
    };

    let mut user = None;
    let mut password = None;
    let mut ssl = Vec::new();
    if let Some(Value::Map(auth)) = postgresql.get("authentication") {
        if let Some(Value::Map(su)) = auth.get("superuser") {
            for (key, value) in su.str_entries() {
                let Some(text) = scalar_text(value) else {
                    continue;
                };
                match key {
                    "username" | "user" => user = Some(text),
                    "password" => password = Some(text),
                    k if k.starts_with("ssl") || k == "gssencmode" || k == "channel_binding" => {
                        ssl.push((k.to_owned(), text))
                    }
                    _ => {}
                }
            }
        }
    }

    let dbname = match postgresql.get("database") {
        None | Some(Value::Null) => "postgres".to_owned(),
        Some(v) => scalar_text(v).ok_or_else(|| ConnParamsError::NotAString {
            key: "database".to_owned(),
            got: type_name(v),
        })?,
    };

    Ok(ConnParams {
        host,
        port,
        user,
        password,
        dbname,
        application_name: format!("Patroni {name}"),
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        options: options_for(DEFAULT_STATEMENT_TIMEOUT_MS),
        ssl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(pairs: &[(&str, Value)]) -> Map {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.set(k, v.clone());
        }
        m
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(section(pairs))
    }

    #[test]
    fn tcp_host_table() {
        let table = [
            ("*", "localhost"),
            ("localhost", "localhost"),
            ("LocalHost", "localhost"),
            ("0.0.0.0", "localhost"),
            ("127.0.0.1", "localhost"),
            ("10.0.0.5, 127.0.0.1", "localhost"),
            ("10.0.0.5,10.0.0.6", "10.0.0.5"),
            (" db.example ", "db.example"),
            ("::1", "::1"),
        ];
        for (listen, want) in table {
            assert_eq!(tcp_local_address(listen), want, "listen {listen:?}");
        }
    }

    #[test]
    fn unix_dir_table() {
        assert_eq!(unix_local_address("@abstract, /tmp"), Some("/tmp".into()));
        assert_eq!(unix_local_address(" /run/pg ,/tmp"), Some("/run/pg".into()));
        assert_eq!(unix_local_address("relative,@x"), None);
        assert_eq!(unix_local_address(""), None);
    }

    #[test]
    fn host_selection_table() {
        // (listen, use_unix_socket, unix_socket_directories, expected host, port)
        type Row<'a> = (&'a str, bool, Option<&'a str>, Option<&'a str>, u16);
        let table: [Row; 7] = [
            ("127.0.0.1:5433", false, None, Some("localhost"), 5433),
            ("10.1.2.3", false, Some("/tmp"), Some("10.1.2.3"), 5432),
            (
                "10.1.2.3:6000",
                true,
                Some("/var/run/pg, /tmp"),
                Some("/var/run/pg"),
                6000,
            ),
            (
                "10.1.2.3:6000",
                true,
                Some("relative"),
                Some("10.1.2.3"),
                6000,
            ),
            ("*:5432", true, Some(""), Some("localhost"), 5432),
            ("*:5432", true, None, None, 5432),
            ("[::1]:7000", false, None, Some("::1"), 7000),
        ];
        for (listen, unix, dirs, want_host, want_port) in table {
            let mut pairs = vec![
                ("listen", s(listen)),
                ("use_unix_socket", Value::Bool(unix)),
            ];
            if let Some(d) = dirs {
                pairs.push(("parameters", map(&[("unix_socket_directories", s(d))])));
            }
            let p = local_conn_params(&section(&pairs), "heartbeat").expect("params");
            assert_eq!(
                p.host.as_deref(),
                want_host,
                "listen {listen:?} unix {unix}"
            );
            assert_eq!(p.port, want_port, "listen {listen:?}");
        }
    }

    #[test]
    fn credentials_database_and_fixed_options() {
        let conf = section(&[
            ("listen", s("0.0.0.0:5432")),
            ("database", s("appdb")),
            (
                "authentication",
                map(&[
                    (
                        "superuser",
                        map(&[
                            ("username", s("admin")),
                            ("password", Value::Int(1234)),
                            ("sslmode", s("disable")),
                            ("sslrootcert", s("/etc/ca.pem")),
                        ]),
                    ),
                    ("replication", map(&[("username", s("repl"))])),
                ]),
            ),
        ]);
        let p = local_conn_params(&conf, "restapi").expect("params");
        assert_eq!(p.user.as_deref(), Some("admin"));
        assert_eq!(p.password.as_deref(), Some("1234"));
        assert_eq!(p.dbname, "appdb");
        assert_eq!(p.application_name, "Patroni restapi");
        assert_eq!(p.connect_timeout, Duration::from_secs(3));
        assert_eq!(
            p.options,
            "-c statement_timeout=2000 -c pg_stat_statements.track=none"
        );
        assert_eq!(p.sslmode(), Some("disable"));
        assert_eq!(
            p.ssl,
            vec![
                ("sslmode".to_owned(), "disable".to_owned()),
                ("sslrootcert".to_owned(), "/etc/ca.pem".to_owned())
            ]
        );
        assert_eq!(
            p.with_statement_timeout(500).options,
            "-c statement_timeout=500 -c pg_stat_statements.track=none"
        );
    }

    #[test]
    fn defaults_and_errors() {
        let p = local_conn_params(&section(&[("listen", s("localhost"))]), "heartbeat")
            .expect("params");
        assert_eq!(p.dbname, "postgres");
        assert_eq!(p.user, None);
        assert_eq!(p.password, None);
        assert_eq!(p.host.as_deref(), Some("localhost"));
        assert_eq!(
            local_conn_params(&Map::new(), "heartbeat"),
            Err(ConnParamsError::MissingListen)
        );
        assert!(matches!(
            local_conn_params(&section(&[("listen", s("host:notaport"))]), "heartbeat"),
            Err(ConnParamsError::BadListen(_))
        ));
        assert!(matches!(
            local_conn_params(&section(&[("listen", Value::Seq(vec![]))]), "heartbeat"),
            Err(ConnParamsError::NotAString { .. })
        ));
    }
}
