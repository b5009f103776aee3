//! Expectations checked against Python Patroni 4.1.5's `basebackup` and
//! `create_replica` command lines.

use super::*;
use crate::postgres::bootstrap::PgCommands;

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn map(pairs: &[(&str, Value)]) -> Map {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.set(k, v.clone());
    }
    m
}

fn commands() -> PgCommands {
    PgCommands {
        bin_dir: Some("/usr/lib/postgresql/15/bin".into()),
        bin_name: Default::default(),
    }
}

#[test]
fn basebackup_command_line() {
    let options = Value::Seq(vec![
        s("verbose"),
        Value::Map(map(&[("max-rate", s("100M"))])),
        Value::Map(map(&[("compress", s("gzip"))])),
        Value::Map(map(&[("compress", s("server-zstd"))])),
        Value::Map(map(&[("dbname", s("x"))])),
    ]);
    let argv = basebackup_argv(
        &commands(),
        Path::new("/d"),
        "host=h port=5432",
        &options,
        150004,
    );
    assert_eq!(
        argv,
        [
            "/usr/lib/postgresql/15/bin/pg_basebackup",
            "--pgdata=/d",
            "-X",
            "stream",
            "--dbname=host=h port=5432",
            "--verbose",
            "--max-rate=100M",
            "--compress=server-zstd",
            "--no-sync"
        ]
    );
    // Before 15 compress is refused outright.
    let argv = basebackup_argv(&commands(), Path::new("/d"), "", &options, 140010);
    assert!(
        !argv.iter().any(|a| a.starts_with("--compress")),
        "{argv:?}"
    );
}

#[test]
fn custom_method_command_line() {
    let options = Value::Map(map(&[
        ("command", s("/usr/bin/wal-g backup-fetch")),
        ("keep_data", Value::Bool(true)),
        ("no_leader", Value::Bool(true)),
        ("retries", Value::Int(3)),
    ]));
    let (argv, keep) =
        custom_method_argv("walg", &options, "batman", Path::new("/d"), "host=h").expect("ok");
    assert_eq!(
        argv,
        [
            "/usr/bin/wal-g",
            "backup-fetch",
            "--keep_data=True",
            "--no_leader=True",
            "--retries=3",
            "--scope=batman",
            "--role=replica",
            "--datadir=/d",
            "--connstring=host=h"
        ]
    );
    assert!(keep);
    let mut quiet = options.as_map().cloned().unwrap_or_default();
    quiet.set("no_params", Value::Bool(true));
    let (argv, keep) =
        custom_method_argv("walg", &Value::Map(quiet), "b", Path::new("/d"), "").expect("ok");
    assert_eq!(argv, ["/usr/bin/wal-g", "backup-fetch", "--retries=3"]);
    assert!(!keep, "no_params drops keep_data, as in Patroni");
    // Without a section the method name is the command.
    let (argv, _) = custom_method_argv(
        "my_clone",
        &Value::Map(Map::new()),
        "b",
        Path::new("/d"),
        "c",
    )
    .expect("ok");
    assert_eq!(argv[0], "my_clone");
}

#[test]
fn method_lists() {
    assert_eq!(configured_methods(&Map::new()), ["basebackup"]);
    let pg = map(&[
        (
            "create_replica_methods",
            Value::Seq(vec![s("walg"), s("basebackup")]),
        ),
        (
            "walg",
            Value::Map(map(&[
                ("command", s("x")),
                ("no_leader", Value::Bool(true)),
            ])),
        ),
    ]);
    assert_eq!(configured_methods(&pg), ["walg", "basebackup"]);
    assert!(works_without_leader(&pg, "walg"));
    assert!(!works_without_leader(&pg, "basebackup"));
    let old = map(&[("create_replica_method", Value::Seq(vec![s("x")]))]);
    assert_eq!(configured_methods(&old), ["x"]);
}

#[test]
fn emptiness_and_removal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    assert!(data_directory_empty(&data));
    std::fs::create_dir_all(data.join("lost+found")).expect("mkdir");
    std::fs::write(data.join(".hidden"), "").expect("write");
    assert!(data_directory_empty(&data));
    std::fs::create_dir_all(data.join("global")).expect("mkdir");
    assert!(!data_directory_empty(&data));

    // A symlinked WAL directory is removed with the data directory; a
    // link pointing at an ancestor is not followed.
    let wal = dir.path().join("wal");
    std::fs::create_dir(&wal).expect("mkdir");
    std::fs::write(wal.join("000000010000000000000001"), "x").expect("write");
    std::os::unix::fs::symlink(&wal, data.join("pg_wal")).expect("symlink");
    std::fs::create_dir(data.join("pg_tblspc")).expect("mkdir");
    std::os::unix::fs::symlink(dir.path(), data.join("pg_tblspc").join("16384")).expect("symlink");
    remove_data_directory(&data).expect("removed");
    assert!(!data.exists());
    assert!(!wal.exists());
    assert!(dir.path().exists(), "an ancestor link target must survive");

    // A symlinked data directory: only the link goes.
    let target = dir.path().join("real");
    std::fs::create_dir(&target).expect("mkdir");
    std::fs::write(target.join("PG_VERSION"), "15").expect("write");
    std::os::unix::fs::symlink(&target, &data).expect("symlink");
    remove_data_directory(&data).expect("removed");
    assert!(std::fs::symlink_metadata(&data).is_err());
    assert!(target.join("PG_VERSION").exists());
}

#[tokio::test]
async fn no_source_keeps_only_no_leader_methods() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pg = map(&[
        (
            "create_replica_methods",
            Value::Seq(vec![s("basebackup"), s("fail"), s("ok")]),
        ),
        (
            "fail",
            Value::Map(map(&[
                ("command", s("false")),
                ("no_leader", Value::Bool(true)),
            ])),
        ),
        (
            "ok",
            Value::Map(map(&[
                ("command", s("true")),
                ("no_leader", Value::Bool(true)),
            ])),
        ),
    ]);
    let cmds = commands();
    let input = ReplicaInput {
        data_dir: &dir.path().join("data"),
        commands: &cmds,
        scope: "s",
        postgresql: &pg,
        methods: None,
        source: None,
        replication: None,
        pgpass: &dir.path().join("pgpass"),
        pg_version: 150004,
        retry_sleep: Duration::ZERO,
        run_as: None,
    };
    assert_eq!(create_replica(&input).await.expect("ok works"), "ok");
    let only_basebackup = ReplicaInput {
        methods: Some(vec!["basebackup".to_owned()]),
        ..input
    };
    let err = create_replica(&only_basebackup)
        .await
        .expect_err("nothing usable");
    assert!(matches!(err, ReplicaError::NoUsableMethod), "{err:?}");
}
