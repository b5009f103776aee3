//! Physical replication slots for members (`use_slots`), kept by the
//! primary: one per member that streams from it, named after the member,
//! created with its WAL reserved at once; slots of members that left are
//! dropped once inactive. Their positions go to `/status`.

use crate::model::{Cluster, Tags};
use crate::postgres::query::{PgMonitor, QueryError};
use crate::postgres::slot_name_from_member_name;

/// The slot names the primary `me` keeps for the members of `cluster`:
/// every other member except `nostream` ones and those that replicate
/// from another member (`replicatefrom`), whose upstream keeps theirs.
pub fn member_slots(cluster: &Cluster, me: &str) -> Vec<String> {
    let mut names: Vec<String> = cluster
        .members
        .iter()
        .filter(|m| m.name != me)
        .filter(|m| {
            let own = m.tags();
            let tags = Tags(&own);
            !tags.nostream() && tags.replicatefrom().is_none_or(|r| r == me)
        })
        .map(|m| slot_name_from_member_name(&m.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The names permanent slots use (`slots` in `/config`): never dropped.
fn permanent_slots(cluster: &Cluster) -> Vec<String> {
    cluster
        .config
        .as_ref()
        .and_then(|c| c.data.get("slots"))
        .and_then(serde_json::Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Create missing member slots and drop physical slots of departed
/// members. Returns `(slot, restart_lsn)` of every physical slot after.
pub async fn sync_member_slots(
    monitor: &PgMonitor,
    cluster: &Cluster,
    me: &str,
) -> Result<Vec<(String, i64)>, QueryError> {
    let wanted = member_slots(cluster, me);
    let permanent = permanent_slots(cluster);
    let rows = monitor
        .query(
            "SELECT slot_name::text, active, \
             pg_catalog.pg_wal_lsn_diff(restart_lsn, '0/0')::bigint \
             FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical'",
            &[],
        )
        .await?;
    let mut existing = Vec::new();
    for row in &rows {
        let name: String = row
            .try_get(0)
            .map_err(|e| QueryError::Decode(e.to_string()))?;
        let active: bool = row
            .try_get(1)
            .map_err(|e| QueryError::Decode(e.to_string()))?;
        let lsn: Option<i64> = row
            .try_get(2)
            .map_err(|e| QueryError::Decode(e.to_string()))?;
        existing.push((name, active, lsn));
    }
    for name in &wanted {
        if !existing.iter().any(|(n, _, _)| n == name) {
            monitor
                .query(
                    "SELECT pg_catalog.pg_create_physical_replication_slot($1, true) \
                     WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
                     WHERE slot_name = $1)",
                    &[name],
                )
                .await?;
            log::info!(target: "patroni.postgresql.slots", "Created physical replication slot '{name}'");
        }
    }
    let own = slot_name_from_member_name(me);
    for (name, active, _) in &existing {
        let keep = wanted.contains(name) || permanent.contains(name) || *name == own;
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
            "SELECT slot_name::text, \
             COALESCE(pg_catalog.pg_wal_lsn_diff(restart_lsn, '0/0')::bigint, 0) \
             FROM pg_catalog.pg_replication_slots WHERE slot_type = 'physical'",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get::<_, String>(0)
                    .map_err(|e| QueryError::Decode(e.to_string()))?,
                r.try_get::<_, i64>(1)
                    .map_err(|e| QueryError::Decode(e.to_string()))?,
            ))
        })
        .collect()
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
        assert_eq!(member_slots(&c, "node1"), vec!["node5", "node_2"]);
    }
}
