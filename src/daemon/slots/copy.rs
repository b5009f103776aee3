//! Copying logical slots from the primary to a replica (Patroni's
//! `SlotsHandler.copy_logical_slots`). A standby cannot create a logical
//! slot before PostgreSQL 16, so the slot's on-disk state is read from the
//! primary (`pg_read_binary_file` of `pg_replslot/<name>/state`), the
//! replica is stopped, the state files are written into its
//! `pg_replslot`, and it is started again. From then on the replica
//! advances its copies to the positions the leader publishes in
//! `/status`, so that they can be used after a failover.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::config::Value as CfgValue;
use crate::model::Cluster;
use crate::postgres::process::StopMode;
use crate::postgres::query::{ConnParams, PgMonitor};
use crate::postgres::Role;

use super::plan::{self, SlotKind, SlotRole, SlotSettings};
use crate::daemon::local::source_for;
use crate::daemon::Daemon;

/// A slot as read from the primary.
struct Remote {
    name: String,
    database: String,
    plugin: String,
    state: Vec<u8>,
}

fn text(v: Option<&CfgValue>) -> Option<String> {
    match v? {
        CfgValue::Str(s) => Some(s.clone()),
        CfgValue::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// Connection parameters for the leader, as the rewind user (it may read
/// files of the data directory), else the superuser.
fn leader_params(daemon: &Daemon, cluster: &Cluster, leader: &str) -> Option<ConnParams> {
    let source = source_for(cluster, Some(leader))?;
    let auth = daemon
        .cfg
        .auth("rewind")
        .or_else(|| daemon.cfg.auth("superuser"))
        .cloned();
    let kwargs = source.conn_kwargs_with_auth(auth.as_ref());
    let mut params = daemon.pg.monitor.params().clone();
    params.host = text(kwargs.get("host"));
    params.port = text(kwargs.get("port"))
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    params.user = text(kwargs.get("user"));
    params.password = text(kwargs.get("password"));
    params.ssl = kwargs
        .str_entries()
        .filter(|(k, _)| k.starts_with("ssl") || *k == "gssencmode" || *k == "channel_binding")
        .filter_map(|(k, v)| text(Some(v)).map(|t| (k.to_owned(), t)))
        .collect();
    Some(params)
}

async fn read_from_primary(params: ConnParams, names: &[String]) -> Result<Vec<Remote>, String> {
    let conn = PgMonitor::new(params, Default::default());
    let names: Vec<String> = names.to_vec();
    let rows = conn
        .query(
            "SELECT slot_name::text, slot_type::text, datname::text, plugin::text, \
             pg_catalog.pg_read_binary_file('pg_replslot/' || slot_name || '/state') \
             FROM pg_catalog.pg_get_replication_slots() JOIN pg_catalog.pg_database ON datoid = oid \
             WHERE NOT pg_catalog.pg_is_in_recovery() AND slot_name = ANY($1)",
            &[&names],
        )
        .await
        .map_err(|e| e.to_string());
    conn.close().await;
    let mut out = Vec::new();
    for row in rows? {
        let kind: Option<String> = row.try_get(1).map_err(|e| e.to_string())?;
        if kind.as_deref() != Some("logical") {
            continue;
        }
        out.push(Remote {
            name: row.try_get(0).map_err(|e| e.to_string())?,
            database: row
                .try_get::<_, Option<String>>(2)
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
            plugin: row
                .try_get::<_, Option<String>>(3)
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
            state: row.try_get(4).map_err(|e| e.to_string())?,
        });
    }
    Ok(out)
}

/// Write one slot's state into `pg_replslot/<name>` through a temporary
/// directory, with the data directory's permissions, synced to disk.
fn write_slot(data_dir: &Path, name: &str, state: &[u8]) -> std::io::Result<()> {
    let group = std::fs::metadata(data_dir)?.permissions().mode() & 0o070 != 0;
    let (dir_mode, file_mode) = if group {
        (0o750, 0o640)
    } else {
        (0o700, 0o600)
    };
    let replslot = data_dir.join("pg_replslot");
    let dir = replslot.join(name);
    let tmp = replslot.join(format!("{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::DirBuilder::new().mode(dir_mode).create(&tmp)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file_mode)
        .open(tmp.join("state"))?;
    file.write_all(state)?;
    file.sync_all()?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(&tmp, &dir)?;
    std::fs::File::open(&dir)?.sync_all()?;
    std::fs::File::open(&replslot)?.sync_all()
}

/// Copy `names` from the leader and restart this replica with them.
pub(super) async fn copy_logical_slots(daemon: &mut Daemon, cluster: &Cluster, names: &[String]) {
    let Some(leader) = cluster.leader.as_ref().map(|l| l.name.clone()) else {
        return;
    };
    if leader == daemon.cfg.name {
        return;
    }
    let Some(params) = leader_params(daemon, cluster, &leader) else {
        return;
    };
    log::info!(target: "patroni.ha", "Copying logical slots {names:?} from the primary");
    let remote = match read_from_primary(params, names).await {
        Ok(r) => r,
        Err(e) => {
            log::error!(target: "patroni.postgresql.slots",
                "Failed to copy logical slots from the {leader} via postgresql connection: {e}");
            return;
        }
    };
    // Copy only what this node's configuration wants, as configured.
    let server_version = daemon.pg.last_info.as_ref().map_or(0, |i| i.server_version);
    let settings = SlotSettings::from_cluster(cluster, server_version);
    let wanted = plan::wanted_slots(
        cluster,
        &daemon.cfg.name,
        &daemon.cfg.tags,
        SlotRole::Replica,
        &settings,
    );
    let copies: Vec<&Remote> = remote
        .iter()
        .filter(|r| match wanted.get(&r.name).map(|w| &w.kind) {
            Some(SlotKind::Logical { database, plugin }) => {
                let same = *database == r.database && *plugin == r.plugin;
                if !same {
                    log::warn!(target: "patroni.postgresql.slots",
                        "Will not copy the logical slot \"{}\" due to the configuration mismatch: \
                         database={database} plugin={plugin} on the primary database={} plugin={}",
                        r.name, r.database, r.plugin);
                }
                same
            }
            _ => false,
        })
        .collect();
    if copies.is_empty() {
        return;
    }
    if let Err(e) = daemon.pg.stop(StopMode::Fast).await {
        log::error!(target: "patroni.postgresql.slots", "cannot stop PostgreSQL to copy logical slots: {e}");
        return;
    }
    let data_dir = daemon.cfg.data_dir.clone();
    for slot in copies {
        match write_slot(&data_dir, &slot.name, &slot.state) {
            Ok(()) => log::info!(target: "patroni.postgresql.slots",
                "Copied logical slot '{}' from {leader}", slot.name),
            Err(e) => log::error!(target: "patroni.postgresql.slots",
                "Failed to write the copy of logical slot '{}': {e}", slot.name),
        }
    }
    let following = daemon.pg.following.clone();
    let source = source_for(cluster, following.as_deref());
    if let Err(e) = daemon.pg.start(Role::Replica, source.as_ref()).await {
        log::error!(target: "patroni.postgresql.slots", "cannot start PostgreSQL after copying logical slots: {e}");
    }
}
