//! Everything Patroni writes for one start of PostgreSQL, from the
//! effective configuration: the composition of [`params`](super::params),
//! [`recovery`](super::recovery) and [`conf`](super::conf) in the order
//! Patroni's `Postgresql.start` runs them.

use std::collections::BTreeMap;

use crate::config::units::parse_bool;
use crate::config::{Map, Value};
use crate::postgres::conf::{
    pg_hba_conf, pg_ident_conf, postgres_argv, postgresql_conf, recovery_conf, PostgresqlConf,
};
use crate::postgres::params::{
    effective_configuration, join_path, server_parameters, GucCatalog, ParamsError,
    RaisedParameter, ServerParamsInput, SyncState,
};
use crate::postgres::pystr::py_str;
use crate::postgres::recovery::{
    build_recovery_params, effective_recovery_conf, split_signal_file, LocalNode, RecoveryInput,
    ReplicationSource, SignalFile,
};

/// The role PostgreSQL is started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
    /// The leader of a standby cluster: a replica of a remote primary.
    StandbyLeader,
}

/// Inputs of [`render_node`].
pub struct NodeInput<'a> {
    /// The effective configuration (`scope`, `name`, `postgresql`, ...).
    pub effective: &'a Map,
    /// Major version from `PG_VERSION` (150000) and binary version (150020).
    pub major_version: i64,
    pub pg_version: i64,
    pub role: Role,
    /// Whom a replica streams from (`None`: no primary_conninfo).
    pub source: Option<&'a ReplicationSource>,
    /// Permanent logical slots are configured (replicas need feedback).
    pub enforce_hot_standby_feedback: bool,
    pub sync: Option<SyncState>,
    /// Parsed `pg_controldata`, when available (replicas start with the
    /// larger of it and the configuration).
    pub controldata: Option<&'a BTreeMap<String, String>>,
    pub catalog: &'a dyn GucCatalog,
    /// Working and home directory, for relative paths and the default
    /// `~/pgpass`, as Python's `os.path.abspath`/`expanduser` see them.
    pub cwd: &'a str,
    pub home: &'a str,
}

/// The files and command line for one start.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFiles {
    pub config_dir: String,
    pub postgresql_conf_path: String,
    pub postgresql_conf: String,
    /// `None`: leave the existing file alone.
    pub pg_hba_conf: Option<String>,
    pub pg_ident_conf: Option<String>,
    /// PostgreSQL 12+ replicas: the signal file to create.
    pub signal: Option<SignalFile>,
    /// Before PostgreSQL 12: the `recovery.conf` text.
    pub recovery_conf: Option<String>,
    pub pgpass_path: String,
    pub pgpass: Option<String>,
    pub argv: Vec<String>,
    /// Parameters started with their `pg_controldata` value instead of
    /// the configured one (pending restart).
    pub raised: Vec<RaisedParameter>,
}

/// Python's `os.path.abspath` (without symlink resolution).
pub fn abspath(cwd: &str, path: &str) -> String {
    let joined = join_path(cwd, path);
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn str_of<'a>(m: &'a Map, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Render everything Patroni writes before starting PostgreSQL.
pub fn render_node(input: &NodeInput<'_>) -> Result<NodeFiles, ParamsError> {
    let empty = Map::new();
    let pg = input
        .effective
        .get("postgresql")
        .and_then(Value::as_map)
        .ok_or(ParamsError::Missing("postgresql"))?;
    // Patroni copies `name` and `scope` into the `postgresql` section.
    let scope = str_of(pg, "scope")
        .or_else(|| str_of(input.effective, "scope"))
        .unwrap_or_default();
    let name = str_of(pg, "name")
        .or_else(|| str_of(input.effective, "name"))
        .unwrap_or_default();
    let data_dir = str_of(pg, "data_dir").ok_or(ParamsError::Missing("data_dir"))?;
    let config_dir = abspath(input.cwd, str_of(pg, "config_dir").unwrap_or(data_dir));
    let base_name = str_of(pg, "config_base_name").unwrap_or("postgresql");
    let conf_path = join_path(&config_dir, &format!("{base_name}.conf"));
    let hba_path = join_path(&config_dir, "pg_hba.conf");
    let ident_path = join_path(&config_dir, "pg_ident.conf");
    let pgpass_path = match str_of(pg, "pgpass") {
        Some(p) => abspath(input.cwd, p),
        None => abspath(input.cwd, &join_path(input.home, "pgpass")),
    };

    let server = server_parameters(&ServerParamsInput {
        postgresql: pg,
        scope,
        major_version: input.major_version,
        config_dir: &config_dir,
        sync: input.sync.clone(),
    })?;
    let (configuration, raised) = effective_configuration(
        &server,
        input.role == Role::Primary,
        input.major_version,
        input.controldata.unwrap_or(&BTreeMap::new()),
    );

    let recovery_conf_section = pg.get("recovery_conf").and_then(Value::as_map);
    let recovery_conf_map =
        effective_recovery_conf(recovery_conf_section, &server, input.major_version);
    let auth = pg
        .get("authentication")
        .and_then(Value::as_map)
        .unwrap_or(&empty);
    // An empty `database` is kept as Patroni keeps it (`dbname=`).
    let database = pg
        .get("database")
        .map_or_else(|| "postgres".to_owned(), py_str);
    let node = LocalNode {
        name,
        replication_auth: auth.get("replication").and_then(Value::as_map),
        krbsrvname: str_of(pg, "krbsrvname"),
        database: &database,
        major_version: input.major_version,
    };
    let use_slots = pg
        .get("use_slots")
        .is_none_or(|v| parse_bool(v) == Some(true));

    let mut signal = None;
    let mut recovery_text = None;
    let mut recovery_params = None;
    if input.role != Role::Primary {
        let mut params = build_recovery_params(
            input.source,
            &RecoveryInput {
                node,
                recovery_conf: recovery_conf_map.as_ref(),
                use_slots,
            },
        );
        signal = split_signal_file(&mut params, input.major_version);
        recovery_params = Some(params);
    }

    let mut rendered = postgresql_conf(&PostgresqlConf {
        configuration: &configuration,
        server_parameters: &server,
        custom_conf: str_of(pg, "custom_conf"),
        base_conf_name: &format!("{base_name}.base.conf"),
        hba_path: &hba_path,
        ident_path: &ident_path,
        pg_version: input.pg_version,
        major_version: input.major_version,
        enforce_hot_standby_feedback: input.enforce_hot_standby_feedback,
        running_custom_bootstrap: false,
        recovery_params: recovery_params.as_ref(),
        pgpass_path: &pgpass_path,
        catalog: input.catalog,
    });
    if input.major_version < 120000 {
        if let Some(params) = &recovery_params {
            let r = recovery_conf(params, input.major_version, &pgpass_path, input.catalog);
            recovery_text = Some(r.postgresql_conf);
            rendered.pgpass = r.pgpass;
        }
    }

    let bin_dir = str_of(pg, "bin_dir").unwrap_or_default();
    let binary = pg
        .get("bin_name")
        .and_then(Value::as_map)
        .and_then(|m| str_of(m, "postgres"))
        .unwrap_or("postgres");
    let program = if bin_dir.is_empty() {
        binary.to_owned()
    } else {
        join_path(bin_dir, binary)
    };
    // `-D` gets the configured path as written; only the configuration
    // directory is made absolute.
    let argv = postgres_argv(&program, data_dir, &conf_path, &configuration);

    Ok(NodeFiles {
        pg_hba_conf: pg_hba_conf(pg, &server, &hba_path),
        pg_ident_conf: pg_ident_conf(pg, &server, &ident_path),
        config_dir,
        postgresql_conf_path: conf_path,
        postgresql_conf: rendered.postgresql_conf,
        signal,
        recovery_conf: recovery_text,
        pgpass_path,
        pgpass: rendered.pgpass,
        argv,
        raised,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::yaml;
    use crate::postgres::params::PassThroughGucs;

    fn effective(text: &str) -> Map {
        match yaml::load(text) {
            Ok(Value::Map(m)) => m,
            other => panic!("bad fixture: {other:?}"),
        }
    }

    #[test]
    fn pre12_replica_gets_recovery_conf_and_relative_paths_resolve() {
        let eff = effective(
            "scope: s\nname: n1\npostgresql:\n  listen: '*:5432'\n  data_dir: data\n  \
             parameters: {max_connections: 100}\n  \
             authentication: {replication: {username: r, password: 'p:w'}}\n",
        );
        let mut member = Map::new();
        member.set("conn_url", Value::Str("postgres://h:5433/postgres".into()));
        let source = ReplicationSource::from_member_data("n2", &member);
        let files = render_node(&NodeInput {
            effective: &eff,
            major_version: 110000,
            pg_version: 110020,
            role: Role::Replica,
            source: source.as_ref(),
            enforce_hot_standby_feedback: false,
            sync: None,
            controldata: None,
            catalog: &PassThroughGucs,
            cwd: "/srv",
            home: "/home/pg",
        })
        .expect("renders");
        assert_eq!(files.config_dir, "/srv/data");
        assert_eq!(files.pgpass_path, "/home/pg/pgpass");
        assert_eq!(files.pgpass.as_deref(), Some("h:5433:*:r:p\\:w\n"));
        assert_eq!(files.signal, None);
        let recovery = files.recovery_conf.unwrap_or_default();
        assert!(recovery.contains("standby_mode = 'on'\n"), "{recovery}");
        assert!(recovery.contains("passfile=/home/pg/pgpass host=h port=5433"));
        assert!(!files.postgresql_conf.contains("recovery.conf"));
        assert!(files.postgresql_conf.contains("wal_keep_segments = '8'\n"));
        // `-D` keeps the configured (relative) path.
        assert_eq!(files.argv[..3], ["postgres", "-D", "data"]);
        assert!(files.argv.contains(&"--listen_addresses=*".to_owned()));
    }

    #[test]
    fn missing_postgresql_section_is_an_error() {
        let eff = effective("scope: s\n");
        let err = render_node(&NodeInput {
            effective: &eff,
            major_version: 150000,
            pg_version: 150000,
            role: Role::Primary,
            source: None,
            enforce_hot_standby_feedback: false,
            sync: None,
            controldata: None,
            catalog: &PassThroughGucs,
            cwd: "/",
            home: "/",
        });
        assert_eq!(err, Err(ParamsError::Missing("postgresql")));
    }

    #[test]
    fn abspath_normalises() {
        assert_eq!(abspath("/w", "data"), "/w/data");
        assert_eq!(abspath("/w", "/a/./b/../c/"), "/a/c");
        assert_eq!(abspath("/w/x", "../d"), "/w/d");
    }
}
