//! The files a real Patroni 4.1.5 wrote into PGDATA (PostgreSQL 15,
//! `../shared/compat/golden/datadir_files/`) must come out byte-identical
//! from the golden node configuration plus the dynamic configuration the
//! node cached (`patroni.dynamic.json`).
//!
//! The captures replaced paths with `<rundir>` and `<pg_bindir>`. Those are
//! not absolute paths, and Patroni makes the configuration directory
//! absolute, so we substitute absolute stand-ins before rendering and the
//! placeholders back afterwards, consistently in both directions.

use std::fs;
use std::path::{Path, PathBuf};

use patroni::config::effective::Config;
use patroni::config::{Map, Value};
use patroni::postgres::pg15_catalog::Pg15Catalog;
use patroni::postgres::recovery::ReplicationSource;
use patroni::postgres::{render_node, NodeFiles, NodeInput, Role, SignalFile};

const RUNDIR: &str = "/golden-rundir";
const BINDIR: &str = "/golden-pg-bindir";

fn golden_root() -> PathBuf {
    let shared = std::env::var_os("PATRONI_RS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let root = shared.join("compat/golden");
    assert!(
        root.is_dir(),
        "golden captures not found at {} (set PATRONI_RS_SHARED)",
        root.display()
    );
    root
}

fn to_placeholders(text: &str) -> String {
    text.replace(RUNDIR, "<rundir>")
        .replace(BINDIR, "<pg_bindir>")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Load `configs/<node>.yml` with the placeholders made absolute, and
/// apply the dynamic configuration cached in the data directory.
fn load(node: &str, datadir: &Path) -> Map {
    let yaml = read(&golden_root().join(format!("configs/{node}.yml")))
        .replace("<rundir>", RUNDIR)
        .replace("<pg_bindir>", BINDIR);
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("patroni.yml");
    fs::write(&path, yaml).expect("write config");
    let mut config = Config::load(Some(&path), &[], None).expect("golden config loads");
    let dynamic: serde_json::Value =
        serde_json::from_str(&read(&datadir.join("patroni.dynamic.json"))).expect("json");
    let Value::Map(dynamic) = Value::from_json(&dynamic) else {
        panic!("dynamic configuration is not a mapping");
    };
    config.set_dynamic_configuration(&dynamic);
    config.effective()
}

/// The other member, as the DCS describes it: the member key's `conn_url`.
fn member(name: &str, port: u16) -> ReplicationSource {
    let mut data = Map::new();
    data.set(
        "conn_url",
        Value::Str(format!("postgres://127.0.0.1:{port}/postgres")),
    );
    ReplicationSource::from_member_data(name, &data).expect("member has an address")
}

fn render(node: &str, datadir: &Path, source: &ReplicationSource) -> NodeFiles {
    let effective = load(node, datadir);
    render_node(&NodeInput {
        effective: &effective,
        major_version: 150000,
        pg_version: 150020,
        role: Role::Replica,
        source: Some(source),
        // The cluster has a permanent logical slot (`permlogical`).
        enforce_hot_standby_feedback: true,
        sync: None,
        controldata: None,
        // The daemon validates PostgreSQL 15 values as Patroni does.
        catalog: &Pg15Catalog::new(),
        cwd: "/nonexistent-cwd",
        home: "/nonexistent-home",
    })
    .expect("renders")
}

fn check_node(node: &str, dir: &str, source: ReplicationSource) {
    let datadir = golden_root().join("datadir_files").join(dir);
    let files = render(node, &datadir, &source);

    assert_eq!(
        to_placeholders(&files.postgresql_conf),
        read(&datadir.join("postgresql.conf")),
        "{dir}/postgresql.conf"
    );
    assert_eq!(
        files.pg_hba_conf.as_deref().map(to_placeholders),
        Some(read(&datadir.join("pg_hba.conf"))),
        "{dir}/pg_hba.conf"
    );
    // No `pg_ident` in the configuration: initdb's file stays untouched.
    assert_eq!(files.pg_ident_conf, None);
    assert!(!read(&datadir.join("pg_ident.conf")).starts_with("# Do not edit"));

    let opts = patroni::postgres::postmaster_opts(&files.argv);
    assert_eq!(
        to_placeholders(&opts),
        read(&datadir.join("postmaster.opts")),
        "{dir}/postmaster.opts"
    );
    assert_eq!(files.signal, Some(SignalFile::Standby));
    assert_eq!(
        to_placeholders(&files.pgpass_path),
        format!("<rundir>/etcd3/{}/pgpass", &node[6..])
    );
}

#[test]
fn replica_files_match_patroni() {
    check_node("etcd3-node1", "etcd3-node1-replica", member("node2", 15433));
    let datadir = golden_root().join("datadir_files/etcd3-node1-replica");
    // standby.signal is an empty file.
    assert_eq!(read(&datadir.join("standby.signal")), "");
}

/// node2's files were written while it was still a replica of node1
/// (its postgresql.conf keeps the recovery block after promotion, as
/// Patroni leaves it until the next rewrite).
#[test]
fn primary_files_match_patroni() {
    check_node("etcd3-node2", "etcd3-node2-primary", member("node1", 15432));
}

#[test]
fn pgpass_for_the_golden_replica() {
    let datadir = golden_root().join("datadir_files/etcd3-node1-replica");
    let files = render("etcd3-node1", &datadir, &member("node2", 15433));
    assert_eq!(
        files.pgpass.as_deref(),
        Some("127.0.0.1:15433:*:replicator:rep-pass\n")
    );
}

#[test]
fn primary_role_has_no_recovery_block() {
    let datadir = golden_root().join("datadir_files/etcd3-node2-primary");
    let effective = load("etcd3-node2", &datadir);
    let files = render_node(&NodeInput {
        effective: &effective,
        major_version: 150000,
        pg_version: 150020,
        role: Role::Primary,
        source: None,
        enforce_hot_standby_feedback: false,
        sync: None,
        controldata: None,
        // The daemon validates PostgreSQL 15 values as Patroni does.
        catalog: &Pg15Catalog::new(),
        cwd: "/",
        home: "/",
    })
    .expect("renders");
    let golden = read(&datadir.join("postgresql.conf"));
    let head = golden
        .split("\n# recovery.conf\n")
        .next()
        .unwrap_or_default()
        .replace("hot_standby_feedback = 'on'\n", "");
    assert_eq!(to_placeholders(&files.postgresql_conf), head);
    assert_eq!(files.signal, None);
    assert_eq!(files.pgpass, None);
}
