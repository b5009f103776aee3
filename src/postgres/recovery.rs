//! Replication: where a replica streams from and how Patroni tells
//! PostgreSQL about it.
//!
//! The pieces, in the order Patroni uses them: a [`ReplicationSource`]
//! (a cluster member, or the remote primary of a standby cluster) gives
//! connection keywords; [`primary_conninfo_params`] adds authentication
//! and the version-dependent defaults; [`build_recovery_params`] adds the
//! slot and the recovery targets; [`split_signal_file`] takes
//! `standby_mode` out (PostgreSQL 12+ expresses it with a signal file) and
//! [`recovery_lines`] renders the rest, turning the password into a
//! `.pgpass` entry ([`pgpass_content`]) and the keywords into a connection
//! string ([`format_dsn`]).

use crate::config::units::parse_bool;
use crate::config::{Map, Value};
use crate::postgres::conf::ConfWriter;
use crate::postgres::params::{
    ci_remove, ci_set, ci_setdefault, transform_recovery_parameter, GucCatalog,
};
use crate::postgres::pystr::py_str;

/// Patroni's `slot_name_from_member_name`: lower-case, `-` and `.` become
/// `_`, anything else outside `[a-z0-9_]` becomes `u` and its code point
/// in (at least) four decimal digits; at most 63 characters.
pub fn slot_name_from_member_name(member_name: &str) -> String {
    let mut out = String::new();
    for c in member_name.to_lowercase().chars() {
        match c {
            'a'..='z' | '0'..='9' | '_' => out.push(c),
            '-' | '.' => out.push('_'),
            other => out.push_str(&format!("u{:04}", u32::from(other))),
        }
    }
    out.chars().take(63).collect()
}

/// The member a replica streams from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationSource {
    /// The member name.
    pub name: String,
    /// `host`, `port`, `dbname` and any other keywords of the member's
    /// `conn_kwargs`, in that order; see [`ReplicationSource::from_member_data`].
    pub conn_kwargs: Map,
    /// The primary of another cluster (a standby cluster's leader streams
    /// from it); its `data` may then hold `primary_slot_name`,
    /// `no_replication_slot` and `recovery_min_apply_delay`.
    pub remote: bool,
    /// The member data: `restore_command`, `archive_cleanup_command` and,
    /// for a remote source, the keys above.
    pub data: Map,
}

impl ReplicationSource {
    /// A cluster member from its DCS data, or `None` when it has no usable
    /// connection address (Patroni then writes no `primary_conninfo`).
    ///
    /// The keywords come from `conn_kwargs` when present, else from the
    /// `conn_url` (`postgres://host:port/dbname`), as Patroni's
    /// `Member.conn_kwargs` does.
    pub fn from_member_data(name: &str, data: &Map) -> Option<ReplicationSource> {
        let mut kwargs = Map::new();
        kwargs.set("host", Value::Null);
        kwargs.set("port", Value::Null);
        kwargs.set("dbname", Value::Null);
        match data.get("conn_kwargs") {
            Some(Value::Map(given)) if !given.is_empty() => {
                for (k, v) in given.iter() {
                    kwargs.insert(k.clone(), v.clone());
                }
            }
            _ => {
                let url = data.get("conn_url").and_then(Value::as_str)?;
                let parsed = parse_conn_url(url)?;
                kwargs.set("host", parsed.host.map_or(Value::Null, Value::Str));
                kwargs.set("port", Value::Int(i64::from(parsed.port.unwrap_or(5432))));
                kwargs.set("dbname", Value::Str(parsed.dbname));
            }
        }
        Some(ReplicationSource {
            name: name.to_owned(),
            conn_kwargs: kwargs,
            remote: false,
            data: data.clone(),
        })
    }

    /// Patroni's `Member.conn_kwargs(auth)`: the keywords with the
    /// authentication merged in (`username` renamed `user`; `options` and
    /// `connect_timeout` refused so a configuration cannot inject them).
    pub fn conn_kwargs_with_auth(&self, auth: Option<&Map>) -> Map {
        let mut ret = self.conn_kwargs.clone();
        if let Some(auth) = auth {
            for (k, v) in auth.str_entries() {
                if k != "options" && k != "connect_timeout" && !v.is_null() {
                    ret.set(k, v.clone());
                }
            }
            if auth.contains_key("username") {
                if let Some(user) = ret.remove("username") {
                    ret.set("user", user);
                }
            }
        }
        ret
    }
}

/// What Python's `urlparse` gives for a `postgres://` URL: the host is
/// lower-cased and unbracketed, the port must be a number.
struct ConnUrl {
    host: Option<String>,
    port: Option<u16>,
    dbname: String,
}

fn parse_conn_url(url: &str) -> Option<ConnUrl> {
    let rest = url.split_once("://").map_or("", |(_, r)| r);
    let (netloc, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let hostport = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner.split_once(']')?;
        (h.to_owned(), after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    let port = match port {
        None | Some("") => None,
        // A non-numeric port makes Python raise; such a member is unusable.
        Some(p) => Some(p.parse::<u16>().ok()?),
    };
    Some(ConnUrl {
        host: (!host.is_empty()).then(|| host.to_lowercase()),
        port: port.filter(|p| *p != 0),
        dbname: path.strip_prefix('/').unwrap_or(path).to_owned(),
    })
}

/// First PostgreSQL version accepting each optional libpq keyword.
fn keyword_since(keyword: &str) -> i64 {
    match keyword {
        "target_session_attrs" => 100000,
        "gssencmode" => 120000,
        "channel_binding" | "sslpassword" => 130000,
        "sslcrldir" => 140000,
        "sslnegotiation" => 170000,
        _ => 0,
    }
}

/// This node, as far as `primary_conninfo` is concerned.
#[derive(Debug, Clone)]
pub struct LocalNode<'a> {
    /// Member name: the `application_name` on the primary and the default
    /// slot name.
    pub name: &'a str,
    /// `postgresql.authentication.replication`.
    pub replication_auth: Option<&'a Map>,
    /// `postgresql.krbsrvname`.
    pub krbsrvname: Option<&'a str>,
    /// `postgresql.database` (default `postgres`).
    pub database: &'a str,
    /// Major version (150000 for 15).
    pub major_version: i64,
}

/// Patroni's `primary_conninfo_params`: `None` when there is nobody to
/// stream from (no source, no address, or the source is this node).
pub fn primary_conninfo_params(
    source: Option<&ReplicationSource>,
    node: &LocalNode<'_>,
) -> Option<Map> {
    let source = source.filter(|s| s.name != node.name)?;
    let mut ret = source.conn_kwargs_with_auth(node.replication_auth);
    ret.set("application_name", Value::Str(node.name.to_owned()));
    ret.entry_or("sslmode", "prefer");
    for keyword in ["gssencmode", "channel_binding"] {
        if node.major_version >= keyword_since(keyword) {
            ret.entry_or(keyword, "prefer");
        }
    }
    if node.major_version >= keyword_since("sslnegotiation") {
        ret.entry_or("sslnegotiation", "postgres");
    }
    if let Some(krb) = node.krbsrvname.filter(|k| !k.is_empty()) {
        ret.set("krbsrvname", Value::Str(krb.to_owned()));
    }
    if !ret.get("dbname").is_some_and(Value::truthy) {
        ret.set("dbname", Value::Str(node.database.to_owned()));
    }
    Some(ret)
}

/// `dict.setdefault` on a plain (case-sensitive) map.
trait EntryOr {
    fn entry_or(&mut self, key: &str, value: &str);
}

impl EntryOr for Map {
    fn entry_or(&mut self, key: &str, value: &str) {
        if !self.contains_key(key) {
            self.set(key, Value::Str(value.to_owned()));
        }
    }
}

/// Patroni's `format_dsn`: the libpq keywords it knows, in its fixed
/// order, each present only when not null and supported by the version;
/// `passfile` replaces `password` when set. Quotes, backslashes and spaces
/// in values are backslash-escaped.
pub fn format_dsn(params: &Map, major_version: i64) -> String {
    let secret = if params.get("passfile").is_some_and(Value::truthy) {
        "passfile"
    } else {
        "password"
    };
    let keywords = [
        "dbname",
        "user",
        secret,
        "host",
        "port",
        "sslmode",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "application_name",
        "krbsrvname",
        "gssencmode",
        "channel_binding",
        "target_session_attrs",
        "sslnegotiation",
    ];
    let mut parts = Vec::new();
    for kw in keywords {
        let Some(value) = params.get(kw).filter(|v| !v.is_null()) else {
            continue;
        };
        if major_version < keyword_since(kw) {
            continue;
        }
        let mut escaped = String::new();
        for c in py_str(value).chars() {
            if matches!(c, '\'' | '\\' | ' ') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        parts.push(format!("{kw}={escaped}"));
    }
    parts.join(" ")
}

/// Patroni's `.pgpass` content for a connection: one
/// `host:port:*:user:password` line per host (a socket directory also
/// gets a `localhost` line), `:` and `\` backslash-escaped, empty fields
/// written as `*`. `None` when the record has no `password` key.
pub fn pgpass_content(record: &Map) -> Option<String> {
    if !record.contains_key("password") {
        return None;
    }
    let escape = |s: &str| {
        let mut out = String::new();
        for c in s.chars() {
            if c == ':' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out
    };
    let field = |name: &str| match record.get(name).filter(|v| v.truthy()) {
        Some(v) => escape(&py_str(v)),
        None => "*".to_owned(),
    };
    let host_list = match record.get("host").filter(|v| v.truthy()) {
        Some(v) => py_str(v),
        None => "*".to_owned(),
    };
    let mut hosts: Vec<String> = host_list
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(escape)
        .collect();
    if hosts.iter().any(|h| h.starts_with('/')) && !hosts.iter().any(|h| h == "localhost") {
        hosts.push("localhost".to_owned());
    }
    let (port, user, password) = (field("port"), field("user"), field("password"));
    let text: String = hosts
        .iter()
        .map(|host| format!("{host}:{port}:*:{user}:{password}\n"))
        .collect();
    Some(text)
}

/// Patroni's `_adjust_recovery_parameters`: the `recovery_conf` that is in
/// force. Recovery settings placed among `parameters` replace the
/// `recovery_conf` section altogether; the promote trigger takes the name
/// the version understands.
pub fn effective_recovery_conf(
    recovery_conf: Option<&Map>,
    server_parameters: &Map,
    major_version: i64,
) -> Option<Map> {
    let from_params: Map = server_parameters
        .iter()
        .filter(|(k, _)| {
            k.as_str()
                .is_some_and(crate::postgres::params::is_recovery_parameter)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut conf = if from_params.is_empty() {
        recovery_conf.cloned()?
    } else {
        from_params
    };
    if conf.is_empty() {
        return Some(conf);
    }
    let (good, wrong) = if major_version < 120000 {
        ("trigger_file", "promote_trigger_file")
    } else {
        ("promote_trigger_file", "trigger_file")
    };
    let value = conf.remove(wrong);
    if !conf.contains_key(good) {
        if let Some(v) = value.filter(Value::truthy) {
            conf.set(good, v);
        }
    }
    Some(conf)
}

/// Inputs of [`build_recovery_params`] beyond the node itself.
#[derive(Debug, Clone)]
pub struct RecoveryInput<'a> {
    pub node: LocalNode<'a>,
    /// See [`effective_recovery_conf`].
    pub recovery_conf: Option<&'a Map>,
    /// `postgresql.use_slots` of the dynamic configuration (default true).
    pub use_slots: bool,
}

/// Patroni's `build_recovery_params`: what a replica streaming from
/// `source` needs, `primary_conninfo` as a keyword map. Keys are matched
/// case-insensitively, as in Patroni.
pub fn build_recovery_params(source: Option<&ReplicationSource>, input: &RecoveryInput<'_>) -> Map {
    let major = input.node.major_version;
    let mut params = Map::new();
    if let Some(conf) = input.recovery_conf {
        for (k, v) in conf.str_entries() {
            let lower = k.to_lowercase();
            if !lower.starts_with("recovery_target")
                && lower != "primary_conninfo"
                && lower != "primary_slot_name"
            {
                ci_set(&mut params, k, v.clone());
            }
        }
    }
    ci_set(&mut params, "standby_mode", Value::Str("on".into()));
    ci_set(
        &mut params,
        "recovery_target_timeline",
        Value::Str("latest".into()),
    );
    if major >= 120000 {
        // Keep targets set in an included file from pausing, promoting or
        // stopping a streaming replica.
        for name in [
            "recovery_target",
            "recovery_target_name",
            "recovery_target_time",
            "recovery_target_xid",
            "recovery_target_lsn",
        ] {
            ci_set(&mut params, name, Value::Str(String::new()));
        }
    }

    let remote = source.is_some_and(|s| s.remote);
    if let Some(mut conninfo) = primary_conninfo_params(source, &input.node) {
        let no_slot = remote
            && source
                .and_then(|s| s.data.get("no_replication_slot"))
                .is_some_and(Value::truthy);
        if input.use_slots && major >= 90400 && !no_slot {
            let slot_member = if remote {
                source
                    .and_then(|s| s.data.get("primary_slot_name"))
                    .map(py_str)
                    .unwrap_or_else(|| input.node.name.to_owned())
            } else {
                input.node.name.to_owned()
            };
            ci_set(
                &mut params,
                "primary_slot_name",
                Value::Str(slot_name_from_member_name(&slot_member)),
            );
            // A standby leader given several hosts must reach the one that
            // accepts writes: that is where its slot lives.
            let multi_host = conninfo
                .get("host")
                .and_then(Value::as_str)
                .is_some_and(|h| h.contains(','));
            if remote && multi_host && major >= 100000 {
                conninfo.set("target_session_attrs", Value::Str("read-write".into()));
            }
        }
        ci_set(&mut params, "primary_conninfo", Value::Map(conninfo));
    }

    if let Some(source) = source {
        let mut names = vec!["restore_command", "archive_cleanup_command"];
        if remote {
            names.push("recovery_min_apply_delay");
        }
        for name in names {
            if let Some(v) = source.data.get(name).filter(|v| v.truthy()) {
                ci_set(&mut params, name, v.clone());
            }
        }
    }
    params
}

/// The signal file a PostgreSQL 12+ replica needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalFile {
    /// `standby.signal`: keep streaming/restoring forever.
    Standby,
    /// `recovery.signal`: recover to a target, then stop or promote.
    Recovery,
}

impl SignalFile {
    pub fn file_name(self) -> &'static str {
        match self {
            SignalFile::Standby => "standby.signal",
            SignalFile::Recovery => "recovery.signal",
        }
    }

    /// The file that must not exist alongside this one (Patroni removes
    /// `standby.signal` when writing `recovery.signal`; both are empty).
    pub fn conflicting(self) -> Option<&'static str> {
        match self {
            SignalFile::Standby => None,
            SignalFile::Recovery => Some("standby.signal"),
        }
    }
}

/// Patroni's `write_recovery_conf` on PostgreSQL 12+: `standby_mode` leaves
/// the parameters and decides the signal file. Older versions keep it in
/// `recovery.conf` and get `None`.
pub fn split_signal_file(params: &mut Map, major_version: i64) -> Option<SignalFile> {
    if major_version < 120000 {
        return None;
    }
    let standby = ci_remove(params, "standby_mode").and_then(|v| parse_bool(&v));
    Some(if standby == Some(true) {
        SignalFile::Standby
    } else {
        SignalFile::Recovery
    })
}

/// Patroni's `_write_recovery_params`: the recovery settings in name
/// order, validated for the version. `primary_conninfo` is rendered with
/// [`format_dsn`]; when it carries a password (PostgreSQL 10+) the
/// password goes to the `.pgpass` file at `pgpass_path` instead, whose
/// content is returned alongside.
pub fn recovery_lines(
    writer: &mut ConfWriter,
    params: &Map,
    major_version: i64,
    pgpass_path: &str,
    catalog: &dyn GucCatalog,
) -> Option<String> {
    let mut params = params.clone();
    if major_version >= 90500 {
        let pause = ci_remove(&mut params, "pause_at_recovery_target").and_then(|v| parse_bool(&v));
        if let Some(pause) = pause {
            let action = if pause { "pause" } else { "promote" };
            ci_setdefault(
                &mut params,
                "recovery_target_action",
                Value::Str(action.into()),
            );
        }
    } else {
        let action = ci_remove(&mut params, "recovery_target_action");
        if action.is_some_and(|a| py_str(&a).to_lowercase() == "promote") {
            ci_setdefault(
                &mut params,
                "pause_at_recovery_target",
                Value::Str("false".into()),
            );
        }
    }
    let mut entries: Vec<(String, Value)> = params
        .str_entries()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let mut pgpass = None;
    for (name, value) in entries {
        let rendered = if name == "primary_conninfo" {
            let mut conninfo = match value {
                Value::Map(m) => m,
                // A string here came from configuration verbatim.
                other => {
                    writer.param(&name, &py_str(&other));
                    continue;
                }
            };
            if major_version >= 100000 {
                if let Some(content) = pgpass_content(&conninfo).filter(|c| !c.is_empty()) {
                    conninfo.set("passfile", Value::Str(pgpass_path.to_owned()));
                    pgpass = Some(content);
                }
            }
            format_dsn(&conninfo, major_version)
        } else {
            match transform_recovery_parameter(catalog, major_version, &name, &value) {
                Some(v) => py_str(&v),
                None => continue,
            }
        };
        writer.param(&name, &rendered);
    }
    pgpass
}

#[cfg(test)]
mod tests;
