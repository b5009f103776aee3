//! Replication slots kept by the primary (`use_slots`):
//!
//! - one physical slot per member that may stream from it, named after the
//!   member and created with its WAL reserved at once. As in Patroni 4
//!   (`member_slots_ttl` > 0), that is every other member except
//!   `nostream` ones, cascaded members included, so that they can fail
//!   over to us; a `nofailover` node keeps only the slots of the members
//!   that replicate from it;
//! - the permanent slots of `/config` `slots` (physical, or logical with
//!   `database` and `plugin`);
//! - physical slots that are neither are dropped once inactive.
//!
//! Every slot's position goes to `/status`.

use crate::model::{Cluster, Tags};
use crate::postgres::query::{PgMonitor, QueryError};
use crate::postgres::slot_name_from_member_name;

/// The member slot names the node `me` keeps for the members of `cluster`.
pub fn member_slots(cluster: &Cluster, me: &str, me_nofailover: bool) -> Vec<String> {
    let mut names: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| m.name != me)
        .filter(|m| {
            let own = m.tags();
            let tags = Tags(&own);
            !tags.nostream() && (!me_nofailover || tags.replicatefrom() == Some(me))
        })
        .map(|m| slot_name_from_member_name(&m.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// A permanent slot from `/config` `slots`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermanentSlot {
    pub name: String,
    /// `Some((database, plugin))` for a logical slot.
    pub logical: Option<(String, String)>,
}

/// The permanent slots of `/config` (`slots`), as Patroni reads them: a
/// logical slot needs `database` and `plugin`; anything else is physical.
pub fn permanent_slots(cluster: &Cluster) -> Vec<PermanentSlot> {
    let Some(slots) = cluster
        .config
        .as_ref()
        .and_then(|c| c.data.get("slots"))
        .and_then(serde_json::Value::as_object)
    else {
        return Vec::new();
    };
    slots
        .iter()
        .filter_map(|(name, spec)| {
            let text = |k: &str| {
                spec.get(k)
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            };
            let bad = || {
                log::error!(target: "patroni.dcs", "Bad value for slot '{name}' in permanent_slots: {spec}");
            };
            let logical = match text("type").as_deref() {
                None | Some("physical") => None,
                Some("logical") => match text("database").zip(text("plugin")) {
                    Some(dp) => Some(dp),
                    None => {
                        bad();
                        return None;
                    }
                },
                Some(_) => {
                    bad();
                    return None;
                }
            };
            Some(PermanentSlot {
                name: name.clone(),
                logical,
            })
        })
        .collect()
}

fn decode(e: impl std::fmt::Display) -> QueryError {
    QueryError::Decode(e.to_string())
}

/// Create the missing member and permanent slots and drop physical slots
/// nobody needs. Returns `(slot, lsn)` of every slot afterwards (restart
/// LSN of physical slots, confirmed flush LSN of logical ones).
pub async fn sync_member_slots(
    monitor: &PgMonitor,
    cluster: &Cluster,
    me: &str,
    me_nofailover: bool,
) -> Result<Vec<(String, i64)>, QueryError> {
    let wanted = member_slots(cluster, me, me_nofailover);
    let permanent = permanent_slots(cluster);
    let rows = monitor
        .query(
            "SELECT slot_name::text, active, slot_type::text \
             FROM pg_catalog.pg_replication_slots",
            &[],
        )
        .await?;
    let mut existing = Vec::new();
    for row in &rows {
        let name: String = row.try_get(0).map_err(decode)?;
        let active: bool = row.try_get(1).map_err(decode)?;
        let kind: String = row.try_get(2).map_err(decode)?;
        existing.push((name, active, kind));
    }
    let exists = |name: &str| existing.iter().any(|(n, _, _)| n == name);
    let physical_wanted = wanted.iter().cloned().chain(
        permanent
            .iter()
            .filter(|p| p.logical.is_none())
            .map(|p| p.name.clone()),
    );
    for name in physical_wanted {
        if !exists(&name) {
            monitor
                .query(
                    "SELECT pg_catalog.pg_create_physical_replication_slot($1, true) \
                     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
                     WHERE slot_name = $1)",
                    &[&name],
                )
                .await?;
            log::info!(target: "patroni.postgresql.slots", "Created physical replication slot '{name}'");
        }
    }
    // Logical slots cannot be made on a standby (a candidate makes its
    // physical slots just before it promotes; the logical ones come with
    // the first cycle as primary).
    let in_recovery = monitor
        .query("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .await?
        .first()
        .and_then(|r| r.try_get::<_, bool>(0).ok())
        .unwrap_or(true);
    for slot in permanent.iter().filter(|_| !in_recovery) {
        let Some((database, plugin)) = &slot.logical else {
            continue;
        };
        if exists(&slot.name) {
            continue;
        }
        if let Err(e) = create_logical_slot(monitor, &slot.name, database, plugin).await {
            log::error!(target: "patroni.postgresql.slots",
                "Failed to create logical replication slot '{}' plugin='{plugin}': {e}", slot.name);
        }
    }
    let own = slot_name_from_member_name(me);
    for (name, active, kind) in &existing {
        let keep = kind != "physical"
            || wanted.contains(name)
            || permanent.iter().any(|p| &p.name == name)
            || *name == own;
        if !keep && !active {
            monitor
                .query(
                    "SELECT pg_catalog.pg_drop_replication_slot($1) \
                     WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
                     WHERE slot_name = $1 AND NOT active)",
                    &[name],
                )
                .await?;
            log::info!(target: "patroni.postgresql.slots", "Dropped unknown replication slot '{name}'");
        }
    }
    let rows = monitor
        .query(
            "SELECT slot_name::text, COALESCE(pg_catalog.pg_wal_lsn_diff( \
             CASE WHEN slot_type = 'logical' THEN confirmed_flush_lsn ELSE restart_lsn END, \
             '0/0')::bigint, 0) FROM pg_catalog.pg_replication_slots",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<_, String>(0).map_err(decode)?,
                r.try_get::<_, i64>(1).map_err(decode)?,
            ))
        })
        .collect()
}

/// `pg_create_logical_replication_slot` in `database` (a logical slot
/// belongs to one database, so it is made over a connection to it).
async fn create_logical_slot(
    monitor: &PgMonitor,
    name: &str,
    database: &str,
    plugin: &str,
) -> Result<(), QueryError> {
    let mut params = monitor.params().clone();
    params.dbname = database.to_owned();
    let conn = PgMonitor::new(params, Default::default());
    conn.query(
        "SELECT pg_catalog.pg_create_logical_replication_slot($1, $2) \
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)",
        &[&name, &plugin],
    )
    .await?;
    conn.close().await;
    log::info!(target: "patroni.postgresql.slots",
        "Created logical replication slot '{name}' plugin='{plugin}' in database '{database}'");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::RawNode;

    fn cluster(members: &[(&str, &str)]) -> Cluster {
        let keys: Vec<String> = members
            .iter()
            .map(|(n, _)| format!("members/{n}"))
            .collect();
        Cluster::from_raw_nodes(members.iter().zip(&keys).map(|((_, v), k)| RawNode {
            key: k,
            value: v,
            version: Some(1),
            session: None,
        }))
    }

    #[test]
    fn slots_for_streaming_members_only() {
        let c = cluster(&[
            (
                "node1",
                r#"{"conn_url":"postgres://a:1/postgres","api_url":"http://a:2/patroni"}"#,
            ),
            (
                "node-2",
                r#"{"conn_url":"postgres://b:1/postgres","api_url":"http://b:2/patroni"}"#,
            ),
            (
                "node3",
                r#"{"conn_url":"postgres://c:1/postgres","api_url":"http://c:2/patroni","tags":{"nostream":true}}"#,
            ),
            (
                "node4",
                r#"{"conn_url":"postgres://d:1/postgres","api_url":"http://d:2/patroni","tags":{"replicatefrom":"node-2"}}"#,
            ),
            (
                "node5",
                r#"{"conn_url":"postgres://e:1/postgres","api_url":"http://e:2/patroni","tags":{"replicatefrom":"node1"}}"#,
            ),
        ]);
        assert_eq!(
            member_slots(&c, "node1", false),
            vec!["node4", "node5", "node_2"]
        );
        assert_eq!(member_slots(&c, "node1", true), vec!["node5"]);
    }

    #[test]
    fn permanent_slots_from_config() {
        let keys = ["config"];
        let value = r#"{"slots":{"p":{"type":"physical"},"l":{"type":"logical","database":"postgres","plugin":"test_decoding"},"bad":{"type":"logical"}}}"#;
        let c = Cluster::from_raw_nodes(keys.iter().map(|k| RawNode {
            key: k,
            value,
            version: Some(1),
            session: None,
        }));
        let got = permanent_slots(&c);
        assert_eq!(
            got.len(),
            2,
            "a logical slot without database and plugin is skipped"
        );
        assert_eq!(got[0].logical, None);
        assert_eq!(
            got[1].logical,
            Some(("postgres".to_owned(), "test_decoding".to_owned()))
        );
    }
}
