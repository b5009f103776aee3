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

use crate::model::Cluster;
use crate::postgres::process::StopMode;
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

/// Separates the columns of `psql`'s unaligned output (never in a slot
/// name, a database name we accept, a plugin name or hex).
const SEP: char = '\u{1f}';

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.strip_prefix("\\x").unwrap_or(hex);
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Parse `psql -At` rows of (name, type, database, plugin, hex state);
/// only logical slots are kept.
fn parse_rows(out: &str) -> Result<Vec<Remote>, String> {
    let mut slots = Vec::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = line.split(SEP).collect();
        let [name, kind, database, plugin, state] = cols.as_slice() else {
            return Err(format!("unexpected row from the primary: {line:?}"));
        };
        if *kind != "logical" {
            continue;
        }
        let state = decode_hex(state).ok_or_else(|| format!("bad slot state for {name}"))?;
        slots.push(Remote {
            name: (*name).to_owned(),
            database: (*database).to_owned(),
            plugin: (*plugin).to_owned(),
            state,
        });
    }
    Ok(slots)
}

async fn read_from_primary(
    psql: &Path,
    dsn: &str,
    password: Option<&str>,
    names: &[String],
) -> Result<Vec<Remote>, String> {
    // Slot names are plain identifiers ([a-z0-9_]); quote them anyway.
    let list: Vec<String> = names
        .iter()
        .map(|n| format!("'{}'", n.replace('\'', "''")))
        .collect();
    let sql = format!(
        "SELECT slot_name, slot_type, datname, plugin, \
         pg_catalog.encode(pg_catalog.pg_read_binary_file('pg_replslot/' || slot_name || '/state'), 'hex') \
         FROM pg_catalog.pg_get_replication_slots() JOIN pg_catalog.pg_database ON datoid = oid \
         WHERE NOT pg_catalog.pg_is_in_recovery() AND slot_name = ANY(ARRAY[{}]::name[])",
        list.join(", ")
    );
    let mut command = tokio::process::Command::new(psql);
    command
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-F"])
        .arg(SEP.to_string())
        .arg("-d")
        .arg(dsn)
        .arg("-c")
        .arg(&sql)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(p) = password {
        command.env("PGPASSWORD", p);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), command.output())
        .await
        .map_err(|_| "psql did not answer within 30 s".to_owned())?
        .map_err(|e| format!("cannot run {}: {e}", psql.display()))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    parse_rows(&String::from_utf8_lossy(&output.stdout))
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
    let Some((dsn, password)) =
        daemon.rewind_dsn(cluster, &leader, &daemon.pg.monitor.params().dbname.clone())
    else {
        return;
    };
    log::info!(target: "patroni.ha", "Copying logical slots {names:?} from the primary");
    let psql = daemon.cfg.program("psql");
    let remote = match read_from_primary(&psql, &dsn, password.as_deref(), names).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_psql() {
        let out = format!(
            "test_logical{SEP}logical{SEP}postgres{SEP}test_decoding{SEP}a1ff00\n\
             phys{SEP}physical{SEP}{SEP}{SEP}\n"
        );
        let rows = parse_rows(&out).expect("parsed");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "test_logical");
        assert_eq!(rows[0].database, "postgres");
        assert_eq!(rows[0].plugin, "test_decoding");
        assert_eq!(rows[0].state, [0xa1, 0xff, 0x00]);
        assert!(parse_rows("only one column\n").is_err());
        assert!(parse_rows(&format!("n{SEP}logical{SEP}d{SEP}p{SEP}abc\n")).is_err());
    }

    #[test]
    fn slot_state_written_with_data_directory_modes() {
        let dir = std::env::temp_dir().join(format!("patroni-rs-slotcopy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir.join("pg_replslot"))
            .expect("dirs");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        write_slot(&dir, "s1", b"old").expect("first");
        write_slot(&dir, "s1", b"new").expect("replace");
        let state = dir.join("pg_replslot/s1/state");
        assert_eq!(std::fs::read(&state).expect("read"), b"new");
        let mode = std::fs::metadata(&state)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.join("pg_replslot/s1.tmp").exists());
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
