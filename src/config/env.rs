//! The `PATRONI_*` environment variables, mapped onto configuration keys the
//! way Patroni 4.1 does it.
//!
//! Patroni reads its environment once, at start-up, and *removes* every
//! variable it used so that child processes (PostgreSQL, callbacks) never see
//! credentials. We work on a snapshot instead of the live process
//! environment, which keeps this module pure and testable: the caller gets
//! back the list of consumed names and unsets them itself.
//!
//! The mapping has several layers, applied in a fixed order because later
//! layers only see what earlier ones left in the environment:
//!
//! 1. top-level `NAME`, `NAMESPACE`, `SCOPE`, `THREAD_POOL_SIZE`,
//!    `THREAD_STACK_SIZE` (kept as strings);
//! 2. the legacy log names `LOGLEVEL`, `LOGFORMAT`, `LOG_DATEFMT`, which stand
//!    in for their `LOG_*` successors unless those are set;
//! 3. fixed per-section parameter lists (`RESTAPI_*`, `CTL_*`,
//!    `POSTGRESQL_*`, `LOG_*`, `RAFT_*`) and `POSTGRESQL_BIN_<binary>`;
//! 4. coercion of some of those to bool, int, YAML list or YAML mapping
//!    (an unparsable value drops the key);
//! 5. credentials (`RESTAPI_`/`CTL_` username and password, the
//!    `SUPERUSER_`/`REPLICATION_`/`REWIND_` connection parameters);
//! 6. a generic `PATRONI_<SECTION>_<SUFFIX>` rule for DCS settings, where
//!    only a fixed list of suffixes is recognised;
//! 7. `ETCD_`/`ETCD3_` username and password, read only when that section
//!    already exists.
//!
//! Empty values are skipped in layers 1-5 but *kept* by the generic rule of
//! layer 6 (so `PATRONI_ETCD3_HOSTS=` yields `hosts: ''`), exactly as Patroni.

use regex::Regex;
use std::sync::OnceLock;

use super::units::{parse_bool, parse_int};
use super::{yaml, Map, Value};

/// The prefix every variable Patroni reads carries.
pub const ENV_PREFIX: &str = "PATRONI_";

/// Connection parameters accepted under `postgresql.authentication.<user>`;
/// the first two are also what `restapi`/`ctl`/`etcd` credentials take.
pub const AUTH_ALLOWED_PARAMETERS: [&str; 12] = [
    "username",
    "password",
    "sslmode",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "gssencmode",
    "channel_binding",
    "sslnegotiation",
];

/// Suffixes the generic `PATRONI_<SECTION>_<SUFFIX>` rule accepts. Anything
/// else (for instance `PATRONI_TAGS_NOFAILOVER`) is left in the environment.
const GENERIC_SUFFIXES: [&str; 42] = [
    "HOST",
    "HOSTS",
    "PORT",
    "USE_PROXIES",
    "PROTOCOL",
    "SRV",
    "SRV_SUFFIX",
    "URL",
    "PROXY",
    "CACERT",
    "CERT",
    "KEY",
    "VERIFY",
    "TOKEN",
    "CHECKS",
    "DC",
    "CONSISTENCY",
    "REGISTER_SERVICE",
    "SERVICE_CHECK_INTERVAL",
    "SERVICE_CHECK_TLS_SERVER_NAME",
    "SERVICE_TAGS",
    "NAMESPACE",
    "CONTEXT",
    "USE_ENDPOINTS",
    "SCOPE_LABEL",
    "ROLE_LABEL",
    "POD_IP",
    "PORTS",
    "LABELS",
    "BYPASS_API_SERVICE",
    "RETRIABLE_HTTP_CODES",
    "KEY_PASSWORD",
    "USE_SSL",
    "SET_ACLS",
    "GROUP",
    "DATABASE",
    "LEADER_LABEL_VALUE",
    "FOLLOWER_LABEL_VALUE",
    "STANDBY_LEADER_LABEL_VALUE",
    "TMP_ROLE_LABEL",
    "AUTH_DATA",
    "BOOTSTRAP_LABELS",
];

/// What the environment contributes to the local configuration.
#[derive(Debug, Clone, Default)]
pub struct EnvConfig {
    /// The configuration tree built from the variables.
    pub config: Map,
    /// Names of the variables Patroni removes from its environment, in the
    /// order it reads them. Variables Patroni ignores are not listed.
    pub consumed: Vec<String>,
    /// Values that looked like a YAML list or mapping but did not parse;
    /// Patroni logs these and drops the key.
    pub parse_failures: Vec<String>,
}

/// An ordered environment with Python `os.environ.pop` semantics.
struct EnvSnapshot {
    /// `(name, value, present at start)`.
    vars: Vec<(String, String, bool)>,
    consumed: Vec<String>,
}

impl EnvSnapshot {
    fn new(env: &[(String, String)]) -> EnvSnapshot {
        let mut vars: Vec<(String, String, bool)> = Vec::with_capacity(env.len());
        for (k, v) in env {
            // Python builds os.environ with "first occurrence wins".
            if !vars.iter().any(|(name, _, _)| name == k) {
                vars.push((k.clone(), v.clone(), true));
            }
        }
        EnvSnapshot {
            vars,
            consumed: Vec::new(),
        }
    }

    fn contains(&self, name: &str) -> bool {
        self.vars.iter().any(|(k, _, _)| k == name)
    }

    fn set(&mut self, name: String, value: String) {
        match self.vars.iter_mut().find(|(k, _, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value, false)),
        }
    }

    /// Remove `name` and return its value.
    fn pop(&mut self, name: &str) -> Option<String> {
        let pos = self.vars.iter().position(|(k, _, _)| k == name)?;
        let (name, value, original) = self.vars.remove(pos);
        if original {
            self.consumed.push(name);
        }
        Some(value)
    }

    /// `PATRONI_` + upper-cased `name`, removed from the snapshot.
    fn popenv(&mut self, name: &str) -> Option<String> {
        self.pop(&format!("{ENV_PREFIX}{}", name.to_uppercase()))
    }

    fn names(&self) -> Vec<String> {
        self.vars.iter().map(|(k, _, _)| k.clone()).collect()
    }
}

/// Python `str.strip()`: Unicode whitespace plus the ASCII separators
/// `\x1c`-`\x1f`, which Python counts as whitespace and Rust does not.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// Parse a list-valued variable: bare `a, b` is wrapped as `[a, b]` unless it
/// already looks like a YAML block or flow sequence. Parse errors give `None`.
fn parse_list(value: &str, failures: &mut Vec<String>) -> Option<Value> {
    let text = if py_strip(value).starts_with('-') || value.contains('[') {
        value.to_owned()
    } else {
        format!("[{value}]")
    };
    match yaml::load(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            failures.push(format!("Exception when parsing list {text}: {e}"));
            None
        }
    }
}

/// Parse a mapping-valued variable: wrapped in `{...}` unless it already
/// starts with `{`. Parse errors give `None`.
fn parse_dict(value: &str, failures: &mut Vec<String>) -> Option<Value> {
    let text = if py_strip(value).starts_with('{') {
        value.to_owned()
    } else {
        format!("{{{value}}}")
    };
    match yaml::load(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            failures.push(format!("Exception when parsing dict {text}: {e}"));
            None
        }
    }
}

fn log_format_placeholder() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"%\(\w+\)").expect("static regex"))
}

/// `ret[section][key] = value`, creating the section (at the end) if needed.
fn set_in(ret: &mut Map, section: &str, key: &str, value: Value) {
    ret.entry_map(section).set(key, value);
}

/// `ret.get(section, {}).pop(key, None)` for a string value.
fn take_str(ret: &mut Map, section: &str, key: &str) -> Option<String> {
    match ret.get_mut(section)?.as_map_mut()?.remove(key)? {
        Value::Str(s) => Some(s),
        _ => None,
    }
}

/// Build the configuration Patroni derives from `PATRONI_*` variables.
///
/// `env` is an ordered snapshot of the environment (`std::env::vars()`
/// order); the generic DCS rule visits variables in that order, which
/// decides the order of keys in the resulting sections.
pub fn build_environment_configuration(env: &[(String, String)]) -> EnvConfig {
    let mut env = EnvSnapshot::new(env);
    let mut failures = Vec::new();
    let mut ret = Map::new();

    for param in [
        "name",
        "namespace",
        "scope",
        "thread_pool_size",
        "thread_stack_size",
    ] {
        if let Some(v) = env.popenv(param).filter(|v| !v.is_empty()) {
            ret.set(param, Value::Str(v));
        }
    }

    // Legacy log variable names stand in for the new ones unless the new
    // name is present in the environment at all (even empty).
    for (name, old) in [
        ("level", "loglevel"),
        ("format", "logformat"),
        ("dateformat", "log_datefmt"),
    ] {
        let value = env.popenv(old);
        let new_name = format!("{ENV_PREFIX}LOG_{}", name.to_uppercase());
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            if !env.contains(&new_name) {
                env.set(new_name, v);
            }
        }
    }

    let sections: [(&str, &[&str]); 5] = [
        (
            "restapi",
            &[
                "listen",
                "connect_address",
                "certfile",
                "keyfile",
                "keyfile_password",
                "cafile",
                "ciphers",
                "verify_client",
                "http_extra_headers",
                "https_extra_headers",
                "allowlist",
                "allowlist_include_members",
                "request_queue_size",
                "server_tokens",
            ],
        ),
        (
            "ctl",
            &[
                "insecure",
                "cacert",
                "certfile",
                "keyfile",
                "keyfile_password",
            ],
        ),
        (
            "postgresql",
            &[
                "listen",
                "connect_address",
                "proxy_address",
                "config_dir",
                "data_dir",
                "pgpass",
                "bin_dir",
            ],
        ),
        (
            "log",
            &[
                "type",
                "level",
                "traceback_level",
                "format",
                "dateformat",
                "static_fields",
                "max_queue_size",
                "dir",
                "mode",
                "file_size",
                "file_num",
                "loggers",
                "deduplicate_heartbeat_logs",
            ],
        ),
        (
            "raft",
            &[
                "data_dir",
                "self_addr",
                "partner_addrs",
                "password",
                "bind_addr",
            ],
        ),
    ];
    for (section, params) in sections {
        for param in params {
            if let Some(v) = env
                .popenv(&format!("{section}_{param}"))
                .filter(|v| !v.is_empty())
            {
                set_in(&mut ret, section, param, Value::Str(v));
            }
        }
    }

    for binary in [
        "pg_ctl",
        "initdb",
        "pg_controldata",
        "pg_basebackup",
        "postgres",
        "pg_isready",
        "pg_rewind",
    ] {
        if let Some(v) = env
            .popenv(&format!("POSTGRESQL_BIN_{binary}"))
            .filter(|v| !v.is_empty())
        {
            ret.entry_map("postgresql")
                .entry_map("bin_name")
                .set(binary, Value::Str(v));
        }
    }

    // Coercions: the key is taken out and put back (at the end of its
    // section) only when the value converts.
    for (section, key) in [
        ("restapi", "allowlist_include_members"),
        ("ctl", "insecure"),
        ("log", "deduplicate_heartbeat_logs"),
    ] {
        if let Some(v) = take_str(&mut ret, section, key) {
            if let Some(b) = parse_bool(&Value::Str(v)) {
                set_in(&mut ret, section, key, Value::Bool(b));
            }
        }
    }
    for (section, keys) in [
        ("restapi", &["request_queue_size", "thread_pool_size"][..]),
        (
            "log",
            &["max_queue_size", "file_size", "file_num", "mode"][..],
        ),
    ] {
        for key in keys {
            if let Some(v) = take_str(&mut ret, section, key) {
                if let Some(i) = parse_int(&Value::Str(v), None) {
                    set_in(&mut ret, section, key, Value::Int(i));
                }
            }
        }
    }
    for (section, key) in [("raft", "partner_addrs"), ("restapi", "allowlist")] {
        if let Some(v) = take_str(&mut ret, section, key) {
            if let Some(list) = parse_list(&v, &mut failures).filter(Value::truthy) {
                set_in(&mut ret, section, key, list);
            }
        }
    }
    // `log.format` is either a %-style format string or a YAML list of
    // field names for the JSON logger.
    let log_format = ret
        .get("log")
        .and_then(|l| l.as_map())
        .and_then(|l| l.get("format"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(fmt) = log_format {
        if !fmt.is_empty() && !log_format_placeholder().is_match(&fmt) {
            if let Some(list) = parse_list(&fmt, &mut failures).filter(Value::truthy) {
                set_in(&mut ret, "log", "format", list);
            }
        }
    }
    for (section, keys) in [
        ("restapi", ["http_extra_headers", "https_extra_headers"]),
        ("log", ["static_fields", "loggers"]),
    ] {
        for key in keys {
            if let Some(v) = take_str(&mut ret, section, key) {
                if let Some(dict) = parse_dict(&v, &mut failures).filter(Value::truthy) {
                    set_in(&mut ret, section, key, dict);
                }
            }
        }
    }

    for section in ["ctl", "restapi"] {
        let auth = get_auth(&mut env, section, &AUTH_ALLOWED_PARAMETERS[..2]);
        if !auth.is_empty() {
            set_in(&mut ret, section, "authentication", Value::Map(auth));
        }
    }
    let mut authentication = Map::new();
    for user in ["replication", "superuser", "rewind"] {
        let entry = get_auth(&mut env, user, &AUTH_ALLOWED_PARAMETERS);
        if !entry.is_empty() {
            authentication.set(user, Value::Map(entry));
        }
    }
    if !authentication.is_empty() {
        set_in(
            &mut ret,
            "postgresql",
            "authentication",
            Value::Map(authentication),
        );
    }

    generic_dcs_variables(&mut env, &mut ret, &mut failures);

    for dcs in ["etcd", "etcd3"] {
        if ret.contains_key(dcs) {
            let auth = get_auth(&mut env, dcs, &AUTH_ALLOWED_PARAMETERS[..2]);
            let section = ret.entry_map(dcs);
            for (k, v) in auth {
                section.insert(k, v);
            }
        }
    }

    EnvConfig {
        config: ret,
        consumed: env.consumed,
        parse_failures: failures,
    }
}

/// `PATRONI_<NAME>_<PARAM>` for each of `params`, non-empty values only.
fn get_auth(env: &mut EnvSnapshot, name: &str, params: &[&str]) -> Map {
    let mut auth = Map::new();
    for param in params {
        if let Some(v) = env
            .popenv(&format!("{name}_{param}"))
            .filter(|v| !v.is_empty())
        {
            auth.set(param, Value::Str(v));
        }
    }
    auth
}

/// The generic `PATRONI_<SECTION>_<SUFFIX>` rule, visiting what is left of
/// the environment in order.
fn generic_dcs_variables(env: &mut EnvSnapshot, ret: &mut Map, failures: &mut Vec<String>) {
    for param in env.names() {
        let Some(rest) = param.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let (name, suffix) = rest.split_once('_').unwrap_or((rest, ""));
        if name.is_empty() || !GENERIC_SUFFIXES.contains(&suffix) {
            continue;
        }
        let Some(raw) = env.pop(&param) else {
            continue;
        };
        let value: Option<Value> = if name == "CITUS" {
            match suffix {
                "GROUP" => parse_int(&Value::Str(raw), None).map(Value::Int),
                "DATABASE" => Some(Value::Str(raw)),
                // Citus takes only a group and a database; anything else
                // is consumed and dropped.
                _ => continue,
            }
        } else {
            match suffix {
                "PORT" if raw.is_empty() => Some(Value::Str(raw)),
                "PORT" => parse_int(&Value::Str(raw), None).map(Value::Int),
                "HOSTS" | "PORTS" | "CHECKS" | "SERVICE_TAGS" | "RETRIABLE_HTTP_CODES" => {
                    if raw.is_empty() {
                        Some(Value::Str(raw))
                    } else {
                        parse_list(&raw, failures)
                    }
                }
                "LABELS" | "SET_ACLS" | "AUTH_DATA" | "BOOTSTRAP_LABELS" => {
                    parse_dict(&raw, failures)
                }
                "USE_PROXIES" | "REGISTER_SERVICE" | "USE_ENDPOINTS" | "BYPASS_API_SERVICE"
                | "VERIFY" => parse_bool(&Value::Str(raw)).map(Value::Bool),
                _ => Some(Value::Str(raw)),
            }
        };
        if let Some(v) = value {
            set_in(ret, &name.to_lowercase(), &suffix.to_lowercase(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn keys(m: &Map) -> Vec<String> {
        m.str_entries().map(|(k, _)| k.to_owned()).collect()
    }

    fn section<'a>(m: &'a Map, name: &str) -> &'a Map {
        m.get(name).and_then(Value::as_map).expect("section")
    }

    #[test]
    fn top_level_values_stay_strings_and_are_consumed() {
        let e = build_environment_configuration(&env(&[
            ("PATRONI_SCOPE", "demo"),
            ("PATRONI_NAME", "node1"),
            ("PATRONI_THREAD_POOL_SIZE", "7"),
            ("PATRONI_NAMESPACE", ""),
            ("HOME", "/root"),
        ]));
        assert_eq!(keys(&e.config), ["name", "scope", "thread_pool_size"]);
        assert_eq!(
            e.config.get("thread_pool_size"),
            Some(&Value::Str("7".into()))
        );
        // Empty values are still removed from the environment.
        assert_eq!(
            e.consumed,
            [
                "PATRONI_NAME",
                "PATRONI_NAMESPACE",
                "PATRONI_SCOPE",
                "PATRONI_THREAD_POOL_SIZE"
            ]
        );
    }

    #[test]
    fn legacy_log_names_yield_to_new_ones() {
        let e = build_environment_configuration(&env(&[
            ("PATRONI_LOGLEVEL", "DEBUG"),
            ("PATRONI_LOG_DATEFMT", "%H"),
            ("PATRONI_LOG_DATEFORMAT", "%M"),
        ]));
        let log = section(&e.config, "log");
        assert_eq!(log.get("level"), Some(&Value::Str("DEBUG".into())));
        assert_eq!(log.get("dateformat"), Some(&Value::Str("%M".into())));
        assert!(e.consumed.contains(&"PATRONI_LOGLEVEL".to_string()));
        assert!(!e.consumed.contains(&"PATRONI_LOG_LEVEL".to_string()));
    }

    #[test]
    fn invalid_coercions_drop_the_key_but_keep_the_section() {
        let e = build_environment_configuration(&env(&[
            ("PATRONI_CTL_INSECURE", "maybe"),
            ("PATRONI_LOG_MODE", "0640"),
            ("PATRONI_LOG_FILE_NUM", "many"),
        ]));
        assert_eq!(section(&e.config, "ctl").len(), 0);
        let log = section(&e.config, "log");
        assert_eq!(log.get("mode"), Some(&Value::Int(0o640)));
        assert!(log.get("file_num").is_none());
    }

    #[test]
    fn coerced_keys_move_to_the_end_of_their_section() {
        let e = build_environment_configuration(&env(&[
            ("PATRONI_RESTAPI_REQUEST_QUEUE_SIZE", "10"),
            ("PATRONI_RESTAPI_LISTEN", ":8008"),
            ("PATRONI_RESTAPI_SERVER_TOKENS", "Minimal"),
        ]));
        assert_eq!(
            keys(section(&e.config, "restapi")),
            ["listen", "server_tokens", "request_queue_size"]
        );
    }

    #[test]
    fn generic_rule_follows_environment_order_and_suffix_list() {
        let e = build_environment_configuration(&env(&[
            ("PATRONI_ETCD_SRV", "example.com"),
            ("PATRONI_TAGS_NOFAILOVER", "true"),
            ("PATRONI_ETCD_HOST", "127.0.0.1:2379"),
            ("PATRONI_ETCD_PORT", "notint"),
            ("PATRONI_CONSUL_PORT", ""),
            ("PATRONI_CITUS_GROUP", "0"),
            ("PATRONI_CITUS_HOST", "x"),
            ("PATRONI__HOST", "nameless"),
        ]));
        assert_eq!(keys(section(&e.config, "etcd")), ["srv", "host"]);
        assert_eq!(
            section(&e.config, "consul").get("port"),
            Some(&Value::Str(String::new()))
        );
        assert_eq!(
            section(&e.config, "citus").get("group"),
            Some(&Value::Int(0))
        );
        assert!(section(&e.config, "citus").get("host").is_none());
        assert!(e.consumed.contains(&"PATRONI_CITUS_HOST".to_string()));
        assert!(e.consumed.contains(&"PATRONI_ETCD_PORT".to_string()));
        assert!(!e.consumed.contains(&"PATRONI_TAGS_NOFAILOVER".to_string()));
        assert!(!e.consumed.contains(&"PATRONI__HOST".to_string()));
    }

    #[test]
    fn etcd_credentials_need_an_existing_section() {
        let without = build_environment_configuration(&env(&[("PATRONI_ETCD3_USERNAME", "u")]));
        assert!(without.config.get("etcd3").is_none());
        assert!(without.consumed.is_empty());

        let with = build_environment_configuration(&env(&[
            ("PATRONI_ETCD3_USERNAME", "u"),
            ("PATRONI_ETCD3_PROTOCOL", "https"),
        ]));
        assert_eq!(
            keys(section(&with.config, "etcd3")),
            ["protocol", "username"]
        );
    }

    #[test]
    fn postgresql_authentication_collects_ssl_parameters() {
        let e = build_environment_configuration(&env(&[
            ("PATRONI_SUPERUSER_USERNAME", "postgres"),
            ("PATRONI_REPLICATION_SSLMODE", "require"),
            ("PATRONI_REPLICATION_USERNAME", "repl"),
        ]));
        let auth = section(section(&e.config, "postgresql"), "authentication");
        assert_eq!(keys(auth), ["replication", "superuser"]);
        assert_eq!(keys(section(auth, "replication")), ["username", "sslmode"]);
    }

    #[test]
    fn first_duplicate_wins_like_python_environ() {
        let e = build_environment_configuration(&env(&[
            ("PATRONI_NAME", "first"),
            ("PATRONI_NAME", "second"),
        ]));
        assert_eq!(e.config.get("name"), Some(&Value::Str("first".into())));
    }

    #[test]
    fn list_and_dict_values_are_yaml() {
        let e = build_environment_configuration(&env(&[
            ("PATRONI_ETCD3_HOSTS", "'h1:2379','h2:2379'"),
            (
                "PATRONI_RESTAPI_HTTP_EXTRA_HEADERS",
                "X-Frame-Options: SAMEORIGIN, X-Foo: bar",
            ),
            ("PATRONI_LOG_FORMAT", "message, levelname"),
            ("PATRONI_RESTAPI_ALLOWLIST", "[unclosed"),
        ]));
        let hosts = section(&e.config, "etcd3").get("hosts");
        assert_eq!(
            hosts,
            Some(&Value::Seq(vec![
                Value::Str("h1:2379".into()),
                Value::Str("h2:2379".into())
            ]))
        );
        let headers = section(section(&e.config, "restapi"), "http_extra_headers");
        assert_eq!(keys(headers), ["X-Frame-Options", "X-Foo"]);
        assert!(section(&e.config, "restapi").get("allowlist").is_none());
        assert_eq!(e.parse_failures.len(), 1);
        assert_eq!(
            section(&e.config, "log").get("format"),
            Some(&Value::Seq(vec![
                Value::Str("message".into()),
                Value::Str("levelname".into())
            ]))
        );
    }

    #[test]
    fn python_strip_includes_ascii_separators() {
        assert_eq!(py_strip("\x1c - a \t"), "- a");
    }
}
