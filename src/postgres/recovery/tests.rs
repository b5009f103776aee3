use super::*;
use crate::postgres::params::PassThroughGucs;

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn member(url: &str) -> ReplicationSource {
    let mut data = Map::new();
    data.set("conn_url", s(url));
    ReplicationSource::from_member_data("node2", &data).expect("usable member")
}

fn auth() -> Map {
    let mut a = Map::new();
    a.set("username", s("replicator"));
    a.set("password", s("rep pass"));
    a
}

#[test]
fn slot_names() {
    assert_eq!(slot_name_from_member_name("Node-1.dc"), "node_1_dc");
    assert_eq!(slot_name_from_member_name("a b!é"), "au0032bu0033u0233");
    assert_eq!(slot_name_from_member_name(&"x".repeat(80)).len(), 63);
}

#[test]
fn conn_url_parsing_like_urlparse() {
    let m = member("postgres://Host.Example:5433/db");
    assert_eq!(m.conn_kwargs.get("host"), Some(&s("host.example")));
    assert_eq!(m.conn_kwargs.get("port"), Some(&Value::Int(5433)));
    assert_eq!(m.conn_kwargs.get("dbname"), Some(&s("db")));
    let m = member("postgres://[::1]/postgres");
    assert_eq!(m.conn_kwargs.get("host"), Some(&s("::1")));
    assert_eq!(m.conn_kwargs.get("port"), Some(&Value::Int(5432)));
    let mut data = Map::new();
    data.set("conn_url", s("postgres://h:bad/x"));
    assert!(ReplicationSource::from_member_data("n", &data).is_none());
    assert!(ReplicationSource::from_member_data("n", &Map::new()).is_none());
}

fn node<'a>(auth: &'a Map, major: i64) -> LocalNode<'a> {
    LocalNode {
        name: "node1",
        replication_auth: Some(auth),
        krbsrvname: None,
        database: "postgres",
        major_version: major,
    }
}

#[test]
fn conninfo_keys_by_version() {
    let a = auth();
    let m = member("postgres://127.0.0.1:5433/postgres");
    let p = primary_conninfo_params(Some(&m), &node(&a, 150000)).expect("params");
    assert_eq!(
        format_dsn(&p, 150000),
        "dbname=postgres user=replicator password=rep\\ pass host=127.0.0.1 port=5433 \
         sslmode=prefer application_name=node1 gssencmode=prefer channel_binding=prefer"
    );
    let p = primary_conninfo_params(Some(&m), &node(&a, 110000)).expect("params");
    assert!(!format_dsn(&p, 110000).contains("gssencmode"));
    let p = primary_conninfo_params(Some(&m), &node(&a, 170000)).expect("params");
    assert!(format_dsn(&p, 170000).ends_with("channel_binding=prefer sslnegotiation=postgres"));
    // Streaming from ourselves is no streaming at all.
    let me = ReplicationSource {
        name: "node1".into(),
        ..m.clone()
    };
    assert!(primary_conninfo_params(Some(&me), &node(&a, 150000)).is_none());
}

#[test]
fn pgpass_lines() {
    let mut r = Map::new();
    r.set("host", s("/run/pg, h:1"));
    r.set("port", Value::Int(5432));
    r.set("user", s("u\\x"));
    r.set("password", s("p:w"));
    assert_eq!(
        pgpass_content(&r).as_deref(),
        Some("/run/pg:5432:*:u\\\\x:p\\:w\nh\\:1:5432:*:u\\\\x:p\\:w\nlocalhost:5432:*:u\\\\x:p\\:w\n")
    );
    r.remove("password");
    assert_eq!(pgpass_content(&r), None);
    let mut r = Map::new();
    r.set("password", Value::Null);
    assert_eq!(pgpass_content(&r).as_deref(), Some("*:*:*:*:*\n"));
}

#[test]
fn recovery_params_for_a_replica_and_a_standby_leader() {
    let a = auth();
    let mut conf = Map::new();
    conf.set("restore_command", s("cp %f"));
    conf.set("recovery_target_time", s("x"));
    let input = RecoveryInput {
        node: node(&a, 150000),
        recovery_conf: Some(&conf),
        use_slots: true,
    };
    let mut params = build_recovery_params(Some(&member("postgres://h:1/postgres")), &input);
    assert_eq!(
        split_signal_file(&mut params, 150000),
        Some(SignalFile::Standby)
    );
    let mut w = ConfWriter::new();
    let pgpass = recovery_lines(&mut w, &params, 150000, "/pgpass", &PassThroughGucs);
    assert_eq!(pgpass.as_deref(), Some("h:1:*:replicator:rep pass\n"));
    let text = w.finish();
    let body: Vec<&str> = text.lines().skip(2).collect();
    assert_eq!(
        body,
        [
            "primary_conninfo = 'dbname=postgres user=replicator passfile=/pgpass host=h port=1 \
             sslmode=prefer application_name=node1 gssencmode=prefer channel_binding=prefer'",
            "primary_slot_name = 'node1'",
            "recovery_target = ''",
            "recovery_target_lsn = ''",
            "recovery_target_name = ''",
            "recovery_target_time = ''",
            "recovery_target_timeline = 'latest'",
            "recovery_target_xid = ''",
            "restore_command = 'cp %f'",
        ]
    );

    let mut data = Map::new();
    data.set("conn_kwargs", {
        let mut k = Map::new();
        k.set("host", s("a,b"));
        k.set("port", s("5432"));
        Value::Map(k)
    });
    data.set("primary_slot_name", s("Standby-1"));
    data.set("recovery_min_apply_delay", s("5min"));
    let mut remote = ReplicationSource::from_member_data("remote_member", &data).expect("source");
    remote.remote = true;
    let params = build_recovery_params(Some(&remote), &input);
    assert_eq!(params.get("primary_slot_name"), Some(&s("standby_1")));
    assert_eq!(params.get("recovery_min_apply_delay"), Some(&s("5min")));
    let Some(Value::Map(ci)) = params.get("primary_conninfo") else {
        panic!("no conninfo");
    };
    assert_eq!(ci.get("target_session_attrs"), Some(&s("read-write")));
    assert_eq!(ci.get("dbname"), Some(&s("postgres")));
}

#[test]
fn old_versions_keep_standby_mode_and_pause_flag() {
    let a = auth();
    let mut conf = Map::new();
    conf.set("recovery_target_action", s("promote"));
    let input = RecoveryInput {
        node: node(&a, 90400),
        recovery_conf: Some(&conf),
        use_slots: false,
    };
    let mut params = build_recovery_params(None, &input);
    assert_eq!(split_signal_file(&mut params, 90400), None);
    params.set("recovery_target_action", s("promote"));
    let mut w = ConfWriter::new();
    assert_eq!(
        recovery_lines(&mut w, &params, 90400, "/p", &PassThroughGucs),
        None
    );
    let text = w.finish();
    assert!(
        text.contains("pause_at_recovery_target = 'false'\n"),
        "{text}"
    );
    assert!(text.contains("standby_mode = 'on'\n"));
    assert!(!text.contains("recovery_target_action"));
}

#[test]
fn recovery_conf_from_parameters_and_trigger_rename() {
    let mut sp = Map::new();
    sp.set("trigger_file", s("/t"));
    sp.set("work_mem", s("1MB"));
    let conf = effective_recovery_conf(None, &sp, 150000).expect("conf");
    assert_eq!(conf.get("promote_trigger_file"), Some(&s("/t")));
    assert_eq!(conf.len(), 1);
    assert_eq!(effective_recovery_conf(None, &Map::new(), 150000), None);
}
