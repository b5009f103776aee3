//! `wanted_slots`: the replication slots a node should have, for the
//! differential test against Python Patroni's
//! `Cluster.get_replication_slots` (`pytests/test_slots_diff.py`).

use patroni::daemon::slots::plan::{self, SlotKind, SlotRole, SlotSettings};
use patroni::model::cluster::RawNode;
use patroni::model::Cluster;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::{json, Map, Value};

/// `nodes`: `(relative key, value)` pairs as stored in the DCS (each with
/// version 1); `tags`: this node's tags as a JSON object; `role`:
/// `primary`, `standby_leader` or `replica`. Returns a JSON object
/// `{"slots": {name: {"type", "lsn"?, "expected_active"?, "database"?,
/// "plugin"?}}, "errors": [...]}`.
#[pyfunction]
fn wanted_slots(
    nodes: Vec<(String, String)>,
    me: &str,
    tags: &str,
    role: &str,
    server_version: i32,
) -> PyResult<String> {
    let tags: Map<String, Value> = serde_json::from_str(tags)
        .map_err(|e| PyValueError::new_err(format!("tags must be a JSON object: {e}")))?;
    let cluster = Cluster::from_raw_nodes(nodes.iter().map(|(k, v)| RawNode {
        key: k,
        value: v,
        version: Some(1),
        session: None,
    }));
    let settings = SlotSettings::from_cluster(&cluster, server_version);
    let got = plan::wanted_slots(&cluster, me, &tags, SlotRole::from_role(role), &settings);
    let mut slots = Map::new();
    for (name, slot) in got.slots {
        let mut o = Map::new();
        match slot.kind {
            SlotKind::Physical => {
                o.insert("type".into(), "physical".into());
            }
            SlotKind::Logical { database, plugin } => {
                o.insert("type".into(), "logical".into());
                o.insert("database".into(), database.into());
                o.insert("plugin".into(), plugin.into());
            }
        }
        if let Some(lsn) = slot.lsn {
            o.insert("lsn".into(), lsn.into());
        }
        if let Some(active) = slot.expected_active {
            o.insert("expected_active".into(), active.into());
        }
        slots.insert(name, Value::Object(o));
    }
    Ok(json!({"slots": slots, "errors": got.errors}).to_string())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(wanted_slots, m)?)?;
    Ok(())
}
