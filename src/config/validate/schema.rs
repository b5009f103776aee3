//! The shape of a valid Patroni 4.1 local configuration, as data.
//!
//! Key order matters: results are reported in the order keys appear here,
//! which is the order Patroni checks them in.

use super::checks;
use super::engine::{CheckFn, Entry, Node, PyType};
use crate::config::value::Value;

/// The default `postgresql.bin_dir` is checked when the key is absent:
/// an empty string, meaning "look the binaries up in `PATH`".
static EMPTY_STR: Value = Value::Str(String::new());

fn string() -> Node {
    Node::Type(PyType::Str)
}
fn boolean() -> Node {
    Node::Type(PyType::Bool)
}
fn integer() -> Node {
    Node::Type(PyType::Int)
}
fn dict() -> Node {
    Node::Type(PyType::Dict)
}
fn list_of(inner: Node) -> Node {
    Node::List(Box::new(inner))
}
fn strings() -> Node {
    list_of(string())
}
fn check(check: CheckFn) -> Node {
    Node::Check {
        expected: None,
        check,
    }
}
fn typed_check(expected: PyType, check: CheckFn) -> Node {
    Node::Check {
        expected: Some(expected),
        check,
    }
}
fn opt(name: &'static str, node: Node) -> Entry {
    Entry::Optional(name, node, None)
}
fn req(name: &'static str, node: Node) -> Entry {
    Entry::Required(name, node)
}
fn enumeration(values: &'static [&'static str], case_sensitive: bool) -> Node {
    Node::Enum {
        values,
        case_sensitive,
    }
}

/// Integer bounds. `strict` adds an `isinstance(int)` check before the
/// value is parsed, so that `"30"` is refused where Patroni refuses it.
#[derive(Default, Clone, Copy)]
struct IntRule {
    min: Option<i64>,
    max: Option<i64>,
    base_unit: Option<&'static str>,
    aligned: Option<i64>,
    strict: bool,
}

impl IntRule {
    fn node(self) -> Node {
        Node::Int {
            expected: self.strict.then_some(PyType::Int),
            min: self.min,
            max: self.max,
            base_unit: self.base_unit,
            aligned: self.aligned,
        }
    }
}

fn int_min(min: i64) -> Node {
    IntRule {
        min: Some(min),
        ..IntRule::default()
    }
    .node()
}
fn int_range(min: i64, max: i64) -> Node {
    IntRule {
        min: Some(min),
        max: Some(max),
        ..IntRule::default()
    }
    .node()
}
fn strict_int_min(min: i64) -> Node {
    IntRule {
        min: Some(min),
        strict: true,
        ..IntRule::default()
    }
    .node()
}
fn port() -> Node {
    IntRule {
        max: Some(65535),
        strict: true,
        ..IntRule::default()
    }
    .node()
}

fn host_port() -> Node {
    check(checks::host_port)
}
/// `hosts:` given either as `"h1:p1,h2:p2"` or as a list of `host:port`.
fn hosts() -> Node {
    Node::Or(vec![
        typed_check(PyType::Str, checks::comma_separated_host_port),
        list_of(host_port()),
    ])
}
fn connect_address() -> Node {
    typed_check(PyType::Str, checks::connect_address)
}
fn listen_address() -> Node {
    typed_check(PyType::Str, checks::host_port_listen)
}

fn user_attributes() -> Node {
    Node::Dict(vec![req("username", string()), opt("password", string())])
}

fn etcd() -> Node {
    Node::Dict(vec![
        Entry::AnyOf(vec![
            ("host", host_port()),
            ("hosts", hosts()),
            ("srv", string()),
            ("srv_suffix", string()),
            ("url", string()),
            ("proxy", string()),
        ]),
        opt("protocol", string()),
        opt("username", string()),
        opt("password", string()),
        opt("cacert", string()),
        opt("cert", string()),
        opt("key", string()),
    ])
}

fn log() -> Node {
    Node::Dict(vec![
        opt("type", enumeration(&["plain", "json"], true)),
        opt(
            "level",
            enumeration(
                &[
                    "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL",
                ],
                true,
            ),
        ),
        opt("traceback_level", enumeration(&["DEBUG", "ERROR"], false)),
        opt("format", check(checks::log_format)),
        opt("dateformat", string()),
        opt("static_fields", dict()),
        opt("max_queue_size", integer()),
        opt("dir", string()),
        opt("file_num", integer()),
        opt("file_size", integer()),
        opt(
            "mode",
            IntRule {
                min: Some(0),
                max: Some(511),
                strict: true,
                ..IntRule::default()
            }
            .node(),
        ),
        opt("loggers", dict()),
        opt("deduplicate_heartbeat_logs", boolean()),
    ])
}

fn ctl() -> Node {
    Node::Dict(vec![
        opt("insecure", boolean()),
        opt("cacert", string()),
        opt("certfile", string()),
        opt("keyfile", string()),
        opt("keyfile_password", string()),
    ])
}

fn restapi() -> Node {
    Node::Dict(vec![
        opt("thread_pool_size", strict_int_min(5)),
        req("listen", listen_address()),
        req("connect_address", connect_address()),
        opt(
            "authentication",
            Node::Dict(vec![req("username", string()), req("password", string())]),
        ),
        opt("certfile", string()),
        opt("keyfile", string()),
        opt("keyfile_password", string()),
        opt("cafile", string()),
        opt("ciphers", string()),
        opt(
            "verify_client",
            enumeration(&["none", "optional", "required"], true),
        ),
        opt("allowlist", strings()),
        opt("allowlist_include_members", boolean()),
        opt("http_extra_headers", dict()),
        opt("https_extra_headers", dict()),
        opt(
            "request_queue_size",
            IntRule {
                min: Some(0),
                max: Some(4096),
                strict: true,
                ..IntRule::default()
            }
            .node(),
        ),
        opt(
            "server_tokens",
            enumeration(&["minimal", "productonly", "original"], false),
        ),
    ])
}

fn bootstrap() -> Node {
    let parameters = Node::Dict(vec![
        opt("max_connections", int_range(1, 262_143)),
        opt("max_locks_per_transaction", int_range(10, 2_147_483_647)),
        opt("max_prepared_transactions", int_range(0, 262_143)),
        opt("max_replication_slots", int_range(0, 262_143)),
        opt("max_wal_senders", int_range(0, 262_143)),
        opt("max_worker_processes", int_range(0, 262_143)),
    ]);
    let postgresql = Node::Dict(vec![
        opt("parameters", parameters),
        opt("use_pg_rewind", boolean()),
        opt("pg_hba", strings()),
        opt("pg_ident", strings()),
        opt("pg_ctl_timeout", int_min(0)),
        opt("use_slots", boolean()),
    ]);
    let standby_cluster = Node::Dict(vec![
        Entry::AnyOf(vec![
            ("host", string()),
            ("port", port()),
            ("restore_command", string()),
        ]),
        opt("primary_slot_name", string()),
        opt("create_replica_methods", strings()),
        opt("archive_cleanup_command", string()),
        opt("recovery_min_apply_delay", string()),
    ]);
    let dcs = Node::Dict(vec![
        opt("ttl", int_min(20)),
        opt("loop_wait", int_min(1)),
        opt("retry_timeout", int_min(3)),
        opt("maximum_lag_on_failover", int_min(0)),
        opt("maximum_lag_on_syncnode", int_min(-1)),
        opt(
            "member_slots_ttl",
            IntRule {
                min: Some(0),
                base_unit: Some("s"),
                ..IntRule::default()
            }
            .node(),
        ),
        opt("postgresql", postgresql),
        opt("primary_start_timeout", int_min(0)),
        opt("primary_stop_timeout", int_min(0)),
        opt("standby_cluster", standby_cluster),
        opt("synchronous_mode", check(checks::synchronous_mode)),
        opt("synchronous_mode_strict", boolean()),
        opt("synchronous_node_count", int_min(1)),
    ]);
    Node::Dict(vec![
        req("dcs", dcs),
        opt("initdb", list_of(Node::Or(vec![string(), dict()]))),
        opt("method", string()),
    ])
}

fn consul() -> Node {
    Node::Dict(vec![
        Entry::AnyOf(vec![("host", host_port()), ("url", string())]),
        opt("port", port()),
        opt("scheme", string()),
        opt("token", string()),
        opt("verify", boolean()),
        opt("cacert", string()),
        opt("cert", string()),
        opt("key", string()),
        opt("dc", string()),
        opt("checks", strings()),
        opt("register_service", boolean()),
        opt("service_tags", strings()),
        opt("service_check_interval", string()),
        opt("service_check_tls_server_name", string()),
        opt(
            "consistency",
            enumeration(&["default", "consistent", "stale"], true),
        ),
    ])
}

fn exhibitor() -> Node {
    Node::Dict(vec![
        req("hosts", strings()),
        req("port", port()),
        opt("poll_interval", strict_int_min(1)),
    ])
}

fn kubernetes() -> Node {
    Node::Dict(vec![
        req("labels", Node::Dict(Vec::new())),
        opt("bypass_api_service", boolean()),
        opt("namespace", string()),
        opt("scope_label", string()),
        opt("role_label", string()),
        opt("leader_label_value", string()),
        opt("follower_label_value", string()),
        opt("standby_leader_label_value", string()),
        opt("tmp_role_label", string()),
        opt("use_endpoints", boolean()),
        opt(
            "pod_ip",
            Node::Or(vec![
                check(checks::ipv4_address),
                check(checks::ipv6_address),
            ]),
        ),
        opt(
            "ports",
            list_of(Node::Dict(vec![req("name", string()), req("port", port())])),
        ),
        opt("cacert", string()),
        opt(
            "retriable_http_codes",
            Node::Or(vec![integer(), list_of(integer())]),
        ),
        opt("bootstrap_labels", dict()),
    ])
}

fn raft() -> Node {
    Node::Dict(vec![
        req("self_addr", connect_address()),
        opt("bind_addr", listen_address()),
        req(
            "partner_addrs",
            typed_check(PyType::List, checks::host_port_list),
        ),
        opt("data_dir", string()),
        opt("password", string()),
    ])
}

fn zookeeper() -> Node {
    Node::Dict(vec![
        req("hosts", hosts()),
        opt("use_ssl", boolean()),
        opt("cacert", string()),
        opt("cert", string()),
        opt("key", string()),
        opt("key_password", string()),
        opt("verify", boolean()),
        opt("set_acls", dict()),
        opt("auth_data", dict()),
    ])
}

fn citus() -> Node {
    Node::Dict(vec![
        req("database", string()),
        req("group", strict_int_min(0)),
    ])
}

fn postgresql() -> Node {
    let binary = || typed_check(PyType::Str, checks::binary_name);
    Node::Dict(vec![
        req(
            "listen",
            typed_check(PyType::Str, checks::host_port_listen_multiple_hosts),
        ),
        req("connect_address", connect_address()),
        opt("proxy_address", connect_address()),
        req(
            "authentication",
            Node::Dict(vec![
                req("replication", user_attributes()),
                req("superuser", user_attributes()),
                opt("rewind", user_attributes()),
            ]),
        ),
        req("data_dir", typed_check(PyType::Str, checks::data_dir)),
        opt(
            "bin_name",
            Node::Dict(vec![
                opt("pg_ctl", binary()),
                opt("initdb", binary()),
                opt("pg_controldata", binary()),
                opt("pg_basebackup", binary()),
                opt("postgres", binary()),
                opt("pg_isready", binary()),
                opt("pg_rewind", binary()),
            ]),
        ),
        Entry::Optional("bin_dir", Node::BinDir, Some(&EMPTY_STR)),
        opt(
            "parameters",
            Node::Dict(vec![opt("unix_socket_directories", string())]),
        ),
        opt("pg_hba", strings()),
        opt("pg_ident", strings()),
        opt("pg_ctl_timeout", int_min(0)),
        opt("use_pg_rewind", boolean()),
    ])
}

fn watchdog() -> Node {
    Node::Dict(vec![
        opt("mode", check(checks::watchdog_mode)),
        opt("device", string()),
        opt("safety_margin", strict_int_min(-1)),
    ])
}

fn tags() -> Node {
    Node::Dict(vec![
        Entry::AtMostOne(vec![
            ("nofailover", boolean()),
            ("failover_priority", strict_int_min(0)),
        ]),
        opt("clonefrom", boolean()),
        opt("noloadbalance", boolean()),
        opt("replicatefrom", string()),
        Entry::AtMostOne(vec![
            ("nosync", boolean()),
            ("sync_priority", strict_int_min(0)),
        ]),
        opt("nostream", boolean()),
    ])
}

/// The whole local configuration.
pub fn patroni() -> Node {
    Node::Dict(vec![
        req("name", string()),
        req("scope", string()),
        opt("thread_pool_size", strict_int_min(5)),
        opt(
            "thread_stack_size",
            IntRule {
                min: Some(65536),
                base_unit: Some("B"),
                aligned: Some(65536),
                strict: true,
                ..IntRule::default()
            }
            .node(),
        ),
        opt("log", log()),
        opt("ctl", ctl()),
        req("restapi", restapi()),
        opt("bootstrap", bootstrap()),
        // The DCS modules Patroni 4.1 ships, in the order it lists them.
        Entry::AnyOf(vec![
            ("consul", consul()),
            ("etcd", etcd()),
            ("etcd3", etcd()),
            ("exhibitor", exhibitor()),
            ("kubernetes", kubernetes()),
            ("raft", raft()),
            ("zookeeper", zookeeper()),
        ]),
        opt("citus", citus()),
        req("postgresql", postgresql()),
        opt("watchdog", watchdog()),
        opt("tags", tags()),
    ])
}
