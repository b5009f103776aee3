//! Bootstrap and replica creation against a real PostgreSQL 15: initdb
//! with options, the roles of post_bootstrap (used over TCP with
//! scram-sha-256), a replica from pg_basebackup that streams, method
//! fall-through and a failing basebackup.

#[path = "support/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use patroni::config::value::{Map, Value};
use patroni::postgres::bootstrap::{
    append_pg_hba, initdb, post_bootstrap, BootstrapError, InitdbInput, PgCommands, PostBootstrap,
};
use patroni::postgres::process::controldata_as;
use patroni::postgres::query::ConnParams;
use patroni::postgres::recovery::ReplicationSource;
use patroni::postgres::replica::{
    create_replica, data_directory_empty, ReplicaError, ReplicaInput,
};
use pg::{free_port, have_postgres, Cluster, BIN_DIR};

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
        bin_dir: Some(PathBuf::from(BIN_DIR)),
        bin_name: Default::default(),
    }
}

fn superuser() -> Map {
    map(&[("username", s("postgres")), ("password", s("su-pass'1"))])
}

fn replication() -> Map {
    map(&[("username", s("replicator")), ("password", s("rep\\pass"))])
}

/// initdb as Patroni runs it: checksums, UTF8, socket trust, TCP scram.
async fn bootstrap_primary(cluster: &Cluster) {
    let options = Value::Seq(vec![
        s("data-checksums"),
        Value::Map(map(&[("encoding", s("UTF8"))])),
        Value::Map(map(&[("auth-local", s("trust"))])),
        Value::Map(map(&[("auth-host", s("scram-sha-256"))])),
        s("no-sync"),
    ]);
    let su = superuser();
    let cmds = commands();
    initdb(&InitdbInput {
        data_dir: &cluster.data,
        commands: &cmds,
        options: Some(&options),
        superuser: Some(&su),
        run_as: cluster.run_as.as_ref(),
    })
    .await
    .expect("initdb");
}

fn local_conn(cluster: &Cluster) -> ConnParams {
    ConnParams {
        host: Some(cluster.root.display().to_string()),
        port: cluster.port,
        user: Some("postgres".to_owned()),
        password: Some("su-pass'1".to_owned()),
        dbname: "postgres".to_owned(),
        application_name: "Patroni heartbeat".to_owned(),
        connect_timeout: Duration::from_secs(3),
        options: "-c statement_timeout=2000".to_owned(),
        ssl: Vec::new(),
    }
}

/// Connects over TCP with a password; the error text on failure.
async fn tcp_connect(
    port: u16,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .password(password)
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("{e:?}"))?;
    tokio::spawn(conn);
    Ok(client)
}

async fn run_post_bootstrap(cluster: &Cluster, bootstrap: &Map) -> Result<(), BootstrapError> {
    let su = superuser();
    let repl = replication();
    let rewind = map(&[("username", s("rewind_user")), ("password", s("rw"))]);
    let conn = local_conn(cluster);
    let pgpass = cluster.root.join("pgpass");
    post_bootstrap(&PostBootstrap {
        conn: &conn,
        superuser: &su,
        replication: &repl,
        rewind: &rewind,
        bootstrap,
        pgpass: &pgpass,
        server_version: 150000,
        run_as: cluster.run_as.as_ref(),
    })
    .await
}

#[tokio::test]
async fn initdb_with_options_then_pg_hba() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::empty();
    bootstrap_primary(&cluster).await;
    let control = controldata_as(
        Some(Path::new(BIN_DIR)),
        &cluster.data,
        cluster.run_as.as_ref(),
    )
    .await
    .expect("pg_controldata");
    assert_eq!(control.data_checksums(), Some(true));
    let lines = vec!["host replication replicator 10.0.0.0/8 md5".to_owned()];
    assert!(append_pg_hba(&cluster.data, &lines, false, false).expect("append"));
    let hba = std::fs::read_to_string(cluster.data.join("pg_hba.conf")).expect("read");
    assert!(
        hba.ends_with("\n\nhost replication replicator 10.0.0.0/8 md5\n"),
        "{hba}"
    );
    assert!(
        hba.contains("scram-sha-256"),
        "auth-host option not applied: {hba}"
    );
}

#[tokio::test]
async fn initdb_refuses_options_with_patroni_message() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::empty();
    let options = Value::Seq(vec![Value::Map(map(&[("pgdata", s("/elsewhere"))]))]);
    let cmds = commands();
    let err = initdb(&InitdbInput {
        data_dir: &cluster.data,
        commands: &cmds,
        options: Some(&options),
        superuser: None,
        run_as: cluster.run_as.as_ref(),
    })
    .await
    .expect_err("refused");
    assert_eq!(err.to_string(), "pgdata option for initdb is not allowed");
    assert!(!cluster.data.exists());
}

#[tokio::test]
async fn post_bootstrap_roles_work_over_tcp() {
    if !have_postgres() {
        return;
    }
    let cluster = Cluster::empty();
    bootstrap_primary(&cluster).await;
    let _pm = cluster.start().await;

    let script = cluster.root.join("post.sh");
    let out = cluster.root.join("post.out");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ echo \"$1\"; cat \"$PGPASSFILE\"; echo \"$PGOPTIONS\"; }} > {}\n",
            out.display()
        ),
    )
    .expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bootstrap = map(&[("post_bootstrap", s(&script.display().to_string()))]);
    run_post_bootstrap(&cluster, &bootstrap)
        .await
        .expect("post_bootstrap");

    let got = std::fs::read_to_string(&out).expect("script output");
    let root = cluster.root.display().to_string();
    let port = cluster.port;
    assert_eq!(
        got,
        format!(
            "dbname=postgres user=postgres host={root} port={port}\n\
             {root}:{port}:*:postgres:su-pass'1\nlocalhost:{port}:*:postgres:su-pass'1\n\
             -c synchronous_commit=local -c statement_timeout=0\n"
        )
    );

    let su = tcp_connect(port, "postgres", "su-pass'1")
        .await
        .expect("superuser password");
    tcp_connect(port, "replicator", "rep\\pass")
        .await
        .expect("replicator password");
    tcp_connect(port, "rewind_user", "rw")
        .await
        .expect("rewind password");
    let err = tcp_connect(port, "replicator", "wrong")
        .await
        .expect_err("wrong password");
    assert!(err.contains("password"), "{err}");

    let row = su
        .query_one(
            "SELECT rolreplication, rolsuper FROM pg_roles WHERE rolname = 'replicator'",
            &[],
        )
        .await
        .expect("query");
    assert!(row.get::<_, bool>(0) && !row.get::<_, bool>(1));
    let granted: bool = su
        .query_one(
            "SELECT has_function_privilege('rewind_user', \
             'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)', 'EXECUTE')",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert!(granted);

    // A failing script fails post_bootstrap.
    let failing = map(&[("post_init", s("false"))]);
    let err = run_post_bootstrap(&cluster, &failing)
        .await
        .expect_err("script fails");
    assert!(matches!(err, BootstrapError::Failed { .. }), "{err:?}");
}

fn source_for(primary: &Cluster, port: u16) -> ReplicationSource {
    let data = map(&[(
        "conn_url",
        s(&format!("postgres://127.0.0.1:{port}/postgres")),
    )]);
    let _ = primary;
    ReplicationSource::from_member_data("primary", &data).expect("source")
}

#[tokio::test]
async fn replica_from_basebackup_streams_after_a_failing_method() {
    if !have_postgres() {
        return;
    }
    let primary = Cluster::empty();
    bootstrap_primary(&primary).await;
    let _pm = primary.start().await;
    run_post_bootstrap(&primary, &Map::new())
        .await
        .expect("roles");

    let replica = Cluster::empty();
    std::fs::create_dir(&replica.data).expect("mkdir");
    if let Some(r) = &replica.run_as {
        std::os::unix::fs::chown(&replica.data, Some(r.uid), Some(r.gid)).expect("chown");
    }
    let data = replica.data.display().to_string();
    let pg = map(&[
        (
            "create_replica_methods",
            Value::Seq(vec![s("broken"), s("basebackup")]),
        ),
        (
            "broken",
            Value::Map(map(&[
                ("command", s(&format!("sh -c 'touch {data}/junk; exit 3'"))),
                ("no_params", Value::Bool(true)),
            ])),
        ),
        (
            "basebackup",
            Value::Seq(vec![Value::Map(map(&[("checkpoint", s("fast"))]))]),
        ),
    ]);
    let source = source_for(&primary, primary.port);
    let repl = replication();
    let cmds = commands();
    let pgpass = replica.root.join("pgpass");
    let method = create_replica(&ReplicaInput {
        data_dir: &replica.data,
        commands: &cmds,
        scope: "batman",
        postgresql: &pg,
        methods: None,
        source: Some(&source),
        replication: Some(&repl),
        pgpass: &pgpass,
        pg_version: 150000,
        retry_sleep: Duration::ZERO,
        run_as: replica.run_as.as_ref(),
    })
    .await
    .expect("replica created");
    assert_eq!(method, "basebackup");
    assert!(!replica.data.join("junk").exists());
    assert!(replica.data.join("global/pg_control").exists());

    std::fs::write(replica.data.join("standby.signal"), "").expect("signal");
    if let Some(r) = &replica.run_as {
        std::os::unix::fs::chown(
            replica.data.join("standby.signal"),
            Some(r.uid),
            Some(r.gid),
        )
        .expect("chown");
    }
    let conninfo = format!(
        "primary_conninfo=host=127.0.0.1 port={} user=replicator passfile={} application_name=replica1",
        primary.port,
        pgpass.display()
    );
    let argv = replica.argv(&[&conninfo]);
    let _standby = patroni::postgres::process::Postmaster::start(
        &argv,
        &replica.data,
        &replica.options(Duration::from_secs(30)),
    )
    .await
    .expect("standby starts");

    let su = tcp_connect(primary.port, "postgres", "su-pass'1")
        .await
        .expect("connect");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = su
            .query(
                "SELECT state FROM pg_stat_replication WHERE application_name = 'replica1'",
                &[],
            )
            .await
            .expect("query");
        if rows.first().map(|r| r.get::<_, String>(0)).as_deref() == Some("streaming") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica never streamed: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn failing_basebackup_leaves_the_data_directory_empty() {
    if !have_postgres() {
        return;
    }
    let replica = Cluster::empty();
    std::fs::create_dir(&replica.data).expect("mkdir");
    std::fs::write(replica.data.join("PG_VERSION"), "15\n").expect("leftover");
    let nobody = Cluster::empty();
    let source = source_for(&nobody, free_port());
    let repl = replication();
    let cmds = commands();
    let pgpass = replica.root.join("pgpass");
    let started = Instant::now();
    let err = create_replica(&ReplicaInput {
        data_dir: &replica.data,
        commands: &cmds,
        scope: "batman",
        postgresql: &Map::new(),
        methods: None,
        source: Some(&source),
        replication: Some(&repl),
        pgpass: &pgpass,
        pg_version: 150000,
        retry_sleep: Duration::from_millis(10),
        run_as: replica.run_as.as_ref(),
    })
    .await
    .expect_err("nothing listens there");
    assert!(
        matches!(err, ReplicaError::AllFailed { ref method, .. } if method == "basebackup"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(data_directory_empty(&replica.data));
    // The password went to the .pgpass file, not the command line.
    let pgpass_text = std::fs::read_to_string(&pgpass).expect("pgpass");
    assert!(
        pgpass_text.contains(":replicator:rep\\\\pass"),
        "{pgpass_text}"
    );
}
