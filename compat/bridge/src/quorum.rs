//! `quorum_resolve`: the quorum commit resolver, for the differential test
//! against Python Patroni's `QuorumStateResolver`
//! (`pytests/test_quorum_diff.py`).

use patroni::ha::quorum::{self, QuorumError, QuorumInput, TransitionKind};
use patroni::ha::sync::NameSet;
use pyo3::prelude::*;
use serde_json::json;

/// Returns JSON: `{"transitions": [[kind, leader, num, [names sorted]]...]}`
/// or `{"error": "quorum" | "assert", "message": ...}`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn quorum_resolve(
    leader: String,
    quorum: i64,
    voters: Vec<String>,
    numsync: i64,
    sync: Vec<String>,
    numsync_confirmed: i64,
    active: Vec<String>,
    sync_wanted: i64,
    leader_wanted: String,
) -> String {
    let input = QuorumInput {
        leader,
        quorum,
        voters: NameSet::from_iter(voters),
        numsync,
        sync: NameSet::from_iter(sync),
        numsync_confirmed,
        active: NameSet::from_iter(active),
        sync_wanted,
        leader_wanted,
    };
    match quorum::resolve(&input) {
        Ok(plan) => {
            let transitions: Vec<_> = plan
                .transitions
                .iter()
                .map(|t| {
                    let kind = match t.kind {
                        TransitionKind::Sync => "sync",
                        TransitionKind::Quorum => "quorum",
                        TransitionKind::Restart => "restart",
                    };
                    json!([kind, t.leader, t.num, t.names.sorted()])
                })
                .collect();
            json!({"transitions": transitions, "warnings": plan.warnings}).to_string()
        }
        Err(QuorumError::Broken(m)) => json!({"error": "quorum", "message": m}).to_string(),
        Err(QuorumError::Inconsistent(m)) => json!({"error": "assert", "message": m}).to_string(),
    }
}

/// `quorum_ssn_value(names, num)`: the `synchronous_standby_names` text.
#[pyfunction]
fn quorum_ssn_value(names: Vec<String>, num: i64) -> Option<String> {
    quorum::quorum_ssn_value(&NameSet::from_iter(names), num)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(quorum_resolve, m)?)?;
    m.add_function(wrap_pyfunction!(quorum_ssn_value, m)?)?;
    Ok(())
}
