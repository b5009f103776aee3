//! The cluster state Patroni keeps in the DCS, and its exact byte format.
//!
//! Each key has a reader that accepts whatever Patroni (any 4.x, and the
//! legacy forms it still reads) may have stored, and a writer that produces
//! the bytes Patroni 4.1 would store. No IO here.
//!
//! - [`json`]: Python `json.dumps`-identical writers (compact for the DCS,
//!   spaced for REST).
//! - [`member`], [`failover`], [`sync`], [`history`], [`status`]: one file
//!   per key; [`cluster`]: the snapshot built from all of them, plus
//!   `config`, `leader` and `failsafe`.

pub mod cluster;
pub mod failover;
pub mod history;
pub mod json;
pub mod member;
pub mod status;
pub mod sync;
pub mod tags;

pub use cluster::{Cluster, ClusterConfig, Leader};
pub use failover::Failover;
pub use history::{HistoryEntry, TimelineHistory};
pub use member::{Member, MemberStatus, WalStatus};
pub use status::Status;
pub use sync::SyncState;
pub use tags::Tags;
