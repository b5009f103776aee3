//! Behaviour of the whole validator on constructed configurations. Paths
//! and ports are chosen so that no network or PostgreSQL install matters:
//! addresses are literal IPs on closed/used ports we control.

use super::*;
use crate::config::value::Map;
use std::net::TcpListener;

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in entries {
        m.set(k, v);
    }
    Value::Map(m)
}

fn set(config: &mut Value, path: &[&str], value: Value) {
    let mut cur = config.as_map_mut().expect("map");
    for key in &path[..path.len() - 1] {
        cur = cur.entry_map(key);
    }
    cur.set(path[path.len() - 1], value);
}

fn remove(config: &mut Value, path: &[&str]) {
    let mut cur = config.as_map_mut().expect("map");
    for key in &path[..path.len() - 1] {
        cur = cur.entry_map(key);
    }
    cur.remove(path[path.len() - 1]);
}

/// A config whose only machine-dependent parts are a free listen port
/// (`free`) and the bin_dir (a temp dir holding fake executables).
fn base(free: u16, bin_dir: &str, data_dir: &str) -> Value {
    map(vec![
        ("scope", s("demo")),
        ("name", s("node1")),
        (
            "restapi",
            map(vec![
                ("listen", s(&format!("127.0.0.1:{free}"))),
                ("connect_address", s("10.0.0.1:8008")),
            ]),
        ),
        ("kubernetes", map(vec![("labels", map(vec![]))])),
        (
            "postgresql",
            map(vec![
                ("listen", s(&format!("127.0.0.1:{free}"))),
                ("connect_address", s("10.0.0.1:5432")),
                ("data_dir", s(data_dir)),
                ("bin_dir", s(bin_dir)),
                (
                    "authentication",
                    map(vec![
                        ("replication", map(vec![("username", s("rep"))])),
                        ("superuser", map(vec![("username", s("su"))])),
                    ]),
                ),
            ]),
        ),
    ])
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    bin: String,
    data: String,
    port: u16,
}

fn fixture() -> Fixture {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    for name in checks_binaries() {
        let p = bin.join(name);
        std::fs::write(&p, "#!/bin/sh\necho 'postgres (PostgreSQL) 16.4'\n").expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let data = tmp.path().join("data").to_string_lossy().into_owned();
    Fixture {
        bin: bin.to_string_lossy().into_owned(),
        data,
        port: free_port(),
        _tmp: tmp,
    }
}

fn checks_binaries() -> [&'static str; 6] {
    [
        "pg_ctl",
        "initdb",
        "pg_controldata",
        "pg_basebackup",
        "postgres",
        "pg_isready",
    ]
}

fn run(config: &Value) -> Vec<String> {
    validate(config, &ValidateParams::default())
}

#[test]
fn valid_config_has_no_problems() {
    let f = fixture();
    assert_eq!(run(&base(f.port, &f.bin, &f.data)), Vec::<String>::new());
}

#[test]
fn missing_keys_and_wrong_types_are_reported_with_paths() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    remove(&mut c, &["name"]);
    set(&mut c, &["scope"], Value::Int(5));
    set(&mut c, &["postgresql", "pg_hba"], Value::Seq(vec![]));
    set(
        &mut c,
        &["postgresql", "pg_ident"],
        Value::Seq(vec![s("ok"), Value::Bool(true)]),
    );
    assert_eq!(
        run(&c),
        [
            "name  is not defined.",
            "scope 5 is not a string",
            "postgresql.pg_hba [] is an empty list",
            "postgresql.pg_ident.1 True is not a string",
        ]
    );
}

#[test]
fn no_dcs_lists_every_candidate() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    remove(&mut c, &["kubernetes"]);
    let out = run(&c);
    let expected: Vec<String> = [
        "consul",
        "etcd",
        "etcd3",
        "exhibitor",
        "kubernetes",
        "raft",
        "zookeeper",
    ]
    .iter()
    .map(|d| format!("{d}  is not defined."))
    .collect();
    assert_eq!(out, expected);
}

#[test]
fn int_rules_use_parse_int_and_strict_types() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    set(&mut c, &["bootstrap", "dcs", "ttl"], Value::Int(5));
    set(&mut c, &["bootstrap", "dcs", "loop_wait"], s("10"));
    set(&mut c, &["thread_pool_size"], s("10"));
    set(&mut c, &["watchdog", "safety_margin"], Value::Bool(true));
    assert_eq!(
        run(&c),
        [
            "thread_pool_size 10 is not an integer",
            "bootstrap.dcs.ttl 5 didn't pass validation: Wrong value",
            "watchdog.safety_margin True didn't pass validation: Wrong value",
        ]
    );
}

#[test]
fn at_most_one_and_enums() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    set(&mut c, &["tags", "nofailover"], Value::Bool(true));
    set(&mut c, &["tags", "failover_priority"], Value::Int(1));
    set(&mut c, &["log", "type"], s("JSON"));
    set(&mut c, &["log", "traceback_level"], s("debug"));
    assert_eq!(
        run(&c),
        [
            "log.type JSON didn't pass validation: Wrong value",
            "tags  Multiple of ('nofailover', 'failover_priority') provided",
        ]
    );
}

#[test]
fn list_items_report_the_item_itself() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    let port = map(vec![("name", Value::Int(1)), ("port", Value::Int(5432))]);
    set(&mut c, &["kubernetes", "ports"], Value::Seq(vec![port]));
    set(&mut c, &["kubernetes", "pod_ip"], s("nope"));
    assert_eq!(
        run(&c),
        [
            "kubernetes.pod_ip nope didn't pass validation: Is not a valid ipv4 address",
            "kubernetes.pod_ip nope didn't pass validation: Is not a valid ipv6 address",
            "kubernetes.ports.0.name {'name': 1, 'port': 5432} is not a string",
        ]
    );
}

#[test]
fn or_reports_only_the_lowest_level() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    remove(&mut c, &["kubernetes"]);
    // Port 1 on loopback: nothing listens there, so it is unreachable.
    set(&mut c, &["zookeeper", "hosts"], s("127.0.0.1:1"));
    assert_eq!(
        run(&c),
        ["zookeeper.hosts 127.0.0.1:1 didn't pass validation: 127.0.0.1:1 is not reachable"]
    );
    set(&mut c, &["zookeeper", "hosts"], Value::Int(3));
    assert_eq!(
        run(&c),
        [
            "zookeeper.hosts 3 is not a string",
            "zookeeper.hosts 3 is not a list"
        ]
    );
}

#[test]
fn listen_port_in_use_unless_ignored() {
    let f = fixture();
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let mut c = base(f.port, &f.bin, &f.data);
    set(
        &mut c,
        &["restapi", "listen"],
        s(&format!("127.0.0.1:{port}")),
    );
    assert_eq!(
        run(&c),
        [format!("restapi.listen 127.0.0.1:{port} didn't pass validation: Port {port} is already in use.")]
    );
    let ignore = ValidateParams {
        ignore_listen_port: true,
    };
    assert!(validate(&c, &ignore).is_empty());
}

#[test]
fn connect_address_must_not_be_loopback() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    set(&mut c, &["postgresql", "connect_address"], s("[::1]:5432"));
    set(&mut c, &["restapi", "connect_address"], s("host:port"));
    assert_eq!(
        run(&c),
        [
            "restapi.connect_address host:port didn't pass validation: contains a wrong value",
            "postgresql.connect_address [::1]:5432 didn't pass validation: must not contain \"127.0.0.1\", \"0.0.0.0\", \"*\", \"::1\", \"localhost\"",
        ]
    );
}

#[test]
fn bin_dir_and_data_dir_are_checked_on_disk() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    std::fs::remove_file(format!("{}/pg_isready", f.bin)).expect("rm");
    std::fs::create_dir(&f.data).expect("mkdir");
    std::fs::write(format!("{}/PG_VERSION", f.data), "15\n").expect("write");
    assert_eq!(
        run(&c),
        [
            "postgresql.data_dir ".to_owned() + &f.data
                + " didn't pass validation: data dir for the cluster is not empty, but doesn't contain \"pg_wal\" directory",
            format!("postgresql.bin_dir  does not contain 'pg_isready' in '{}'", f.bin),
        ]
    );
    std::fs::create_dir(format!("{}/pg_wal", f.data)).expect("mkdir");
    set(&mut c, &["postgresql", "bin_dir"], s("/nonexistent/bin"));
    let out = run(&c);
    assert_eq!(
        out.last().map(String::as_str),
        Some("postgresql.bin_dir  Directory '/nonexistent/bin' does not exist.")
    );
    set(&mut c, &["postgresql", "bin_dir"], s(&f.bin));
    assert_eq!(
        run(&c),
        [format!(
            "postgresql.data_dir {} didn't pass validation: data_dir directory postgresql version (15) doesn't match with 'postgres --version' output (16)",
            f.data
        ), format!("postgresql.bin_dir  does not contain 'pg_isready' in '{}'", f.bin)]
    );
}

#[test]
fn non_mapping_config_never_panics() {
    for v in [
        Value::Null,
        Value::Int(1),
        s("x"),
        Value::Seq(vec![Value::Null]),
    ] {
        let out = run(&v);
        assert_eq!(out.len(), 1);
        assert!(out[0].ends_with("is not a dictionary"), "{out:?}");
    }
    let mut c = map(vec![(
        "postgresql",
        map(vec![("bin_name", s("weird")), ("bin_dir", Value::Int(7))]),
    )]);
    assert!(!run(&c).is_empty());
    set(&mut c, &["postgresql", "bin_dir"], s(""));
    assert!(!run(&c).is_empty());
}

#[test]
fn integers_beyond_i64_behave_like_python_ints() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    set(&mut c, &["bootstrap", "dcs", "ttl"], Value::Float(1e19));
    set(
        &mut c,
        &["bootstrap", "dcs", "loop_wait"],
        Value::BigInt("-99999999999999999999".into()),
    );
    set(
        &mut c,
        &[
            "bootstrap",
            "dcs",
            "postgresql",
            "parameters",
            "max_connections",
        ],
        Value::BigInt("99999999999999999999".into()),
    );
    assert_eq!(
        run(&c),
        [
            "bootstrap.dcs.loop_wait -99999999999999999999 didn't pass validation: Wrong value",
            "bootstrap.dcs.postgresql.parameters.max_connections 99999999999999999999 didn't pass validation: Wrong value",
        ]
    );
}

#[test]
fn unusable_bin_name_is_reported_once() {
    // Python Patroni stops with a traceback on these; we report the setting.
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    set(&mut c, &["postgresql", "bin_name"], s("weird"));
    assert_eq!(run(&c), ["postgresql.bin_name weird is not a dictionary"]);
    set(
        &mut c,
        &["postgresql", "bin_name"],
        map(vec![("postgres", Value::Null)]),
    );
    assert_eq!(
        run(&c),
        ["postgresql.bin_name.postgres None is not a string"]
    );
}

#[test]
fn empty_bin_dir_means_path_lookup() {
    let f = fixture();
    let mut c = base(f.port, &f.bin, &f.data);
    set(&mut c, &["postgresql", "bin_dir"], s(""));
    let odd = "surely-not-on-path-pg_ctl";
    set(
        &mut c,
        &["postgresql", "bin_name"],
        map(vec![("pg_ctl", s(odd))]),
    );
    let out = run(&c);
    assert_eq!(
        out.first().cloned(),
        Some(format!(
            "postgresql.bin_name.pg_ctl {odd} didn't pass validation: does not contain '{odd}' in '$PATH'"
        ))
    );
    assert!(out.contains(&format!(
        "postgresql.bin_dir  does not contain '{odd}' in '$PATH'"
    )));
}

#[test]
fn validator_defaults_add_an_empty_bin_dir_only_when_missing() {
    let mut c = map(vec![("postgresql", map(vec![("data_dir", s("/d"))]))]);
    apply_validator_defaults(&mut c);
    let pg = c
        .as_map()
        .and_then(|m| m.get("postgresql"))
        .and_then(Value::as_map);
    let keys: Vec<&str> = pg
        .map(|m| m.str_entries().map(|(k, _)| k).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["data_dir", "bin_dir"]);
    assert_eq!(pg.and_then(|m| m.get("bin_dir")), Some(&s("")));

    let mut kept = map(vec![("postgresql", map(vec![("bin_dir", s("/usr/bin"))]))]);
    apply_validator_defaults(&mut kept);
    let bin_dir = kept
        .as_map()
        .and_then(|m| m.get("postgresql"))
        .and_then(Value::as_map)
        .and_then(|m| m.get("bin_dir"));
    assert_eq!(bin_dir, Some(&s("/usr/bin")));

    let mut odd = map(vec![("postgresql", s("x"))]);
    apply_validator_defaults(&mut odd);
    assert_eq!(odd, map(vec![("postgresql", s("x"))]));
}
