//! Manual failover and switchover (the `failover` key), and the check
//! both it and crash handling use: is there anyone to hand over to?

use super::{HaSettings, Me};
use crate::ha::race::PeerStatus;
use crate::model::{Cluster, Tags};

/// Patroni's `is_failover_possible` (synchronous and quorum modes aside):
/// does some other member that may be promoted answer its `/patroni`, not
/// lagging (behind `cluster_lsn` when given, else past
/// `maximum_lag_on_failover` from `/status`), and not behind the cluster
/// timeline when `check_timeline` is on?
///
/// With a failover key naming a candidate, only that candidate counts,
/// unless `exclude_failover_candidate`, in which case everyone else does.
/// Members missing from `peers` count as unreachable.
pub fn is_failover_possible(
    cluster: &Cluster,
    me: &Me,
    settings: &HaSettings,
    peers: &[PeerStatus],
    cluster_lsn: i64,
    exclude_failover_candidate: bool,
) -> bool {
    let candidate = cluster
        .failover
        .as_ref()
        .filter(|f| !f.is_empty())
        .and_then(|f| f.candidate.as_deref());
    let cluster_timeline = cluster.timeline();
    cluster
        .members
        .iter()
        .filter(|m| m.name != me.name && m.api_url().is_some())
        .filter(|m| !Tags(&m.tags()).nofailover())
        .filter(|m| match candidate {
            Some(c) if exclude_failover_candidate => m.name != c,
            Some(c) => m.name == c,
            None => true,
        })
        .any(|m| {
            let unknown = PeerStatus::unknown(m);
            let st = peers.iter().find(|p| p.name == m.name).unwrap_or(&unknown);
            if st.failover_limitation().is_some() {
                return false;
            }
            let lagging = if cluster_lsn != 0 {
                st.wal_position < cluster_lsn
            } else {
                cluster.status.last_lsn - st.wal_position > settings.maximum_lag_on_failover
            };
            if lagging {
                return false;
            }
            !(settings.check_timeline && (st.timeline == 0 || st.timeline < cluster_timeline))
        })
}
