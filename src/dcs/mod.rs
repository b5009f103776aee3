//! The distributed configuration store: one trait, several backends.
//!
//! Every backend stores the same keys with the same bytes as Patroni (see
//! [`crate::model`]), under `/<namespace>/<scope>/`. The HA loop reads one
//! [`Cluster`] snapshot per cycle and then makes a few conditional writes;
//! the trait documents, per method, what is atomic and how it fails.
//!
//! Errors are split the way the HA core needs them: [`DcsError::Unreachable`]
//! (the store did not answer within `retry_timeout`: a primary must demote
//! unless failsafe applies), [`DcsError::CasFailed`] (someone else won a
//! compare-and-set: not an outage) and [`DcsError::NotFound`].
//!
//! Backends: [`etcd3`] (gRPC), [`etcd`] (v2 HTTP API), [`zookeeper`].

use std::time::Duration;

use async_trait::async_trait;

use crate::model::Cluster;

pub mod etcd;
pub mod etcd3;
pub mod path;
pub mod settings;
pub mod zookeeper;

pub use path::KeyPaths;
pub use settings::from_config;

/// Why a DCS call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DcsError {
    /// No answer within the retry deadline, or every endpoint refused us.
    #[error("DCS is not reachable: {0}")]
    Unreachable(String),
    /// A compare-and-set or create-if-absent lost: the key changed or
    /// exists. The store is healthy.
    #[error("compare-and-set failed")]
    CasFailed,
    /// The key (or our lease/session) does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The store answered with something we cannot use (bad credentials,
    /// a protocol error, an unsupported server version).
    #[error("DCS error: {0}")]
    Other(String),
}

pub type DcsResult<T> = Result<T, DcsError>;

/// Timing the DCS client needs from the dynamic configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Lifetime of the leader and member keys without refresh.
    pub ttl: Duration,
    /// How long one call may keep retrying before it reports
    /// [`DcsError::Unreachable`].
    pub retry_timeout: Duration,
    /// The HA loop period; leases are refreshed at most once per loop.
    pub loop_wait: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            ttl: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(10),
            loop_wait: Duration::from_secs(10),
        }
    }
}

/// A Patroni DCS. Every method is bounded by `retry_timeout`: after it, the
/// method returns [`DcsError::Unreachable`]. No method panics on bad data
/// read from the store; invalid values read as Patroni reads them.
#[async_trait]
pub trait Dcs: Send + Sync {
    /// Apply new timing. A changed `ttl` makes the backend take a new
    /// lease/session with that TTL at the next refresh (Patroni re-grants
    /// etcd3 leases when `ttl` changes in `/config`).
    fn set_timing(&self, timing: Timing);

    /// Read every key of the cluster in one consistent read (one range
    /// request on etcd3, one recursive GET on etcd v2).
    async fn get_cluster(&self) -> DcsResult<Cluster>;

    /// `initialize`: with `create_new`, create the key with `sysid` only if
    /// it does not exist (atomic create-if-absent; `CasFailed` when another
    /// node created it first). Without, overwrite it unconditionally.
    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()>;

    /// Delete `initialize` (a failed bootstrap gives up the race).
    async fn cancel_initialization(&self) -> DcsResult<()>;

    /// Take the leader key for this member if nobody holds it: atomic
    /// create-if-absent bound to our lease/TTL. `Ok(false)` when another
    /// member holds it.
    async fn attempt_to_acquire_leader(&self) -> DcsResult<bool>;

    /// Refresh our hold on the leader key (keepalive or TTL refresh),
    /// re-binding it to our current lease if needed. `Ok(false)` when the
    /// key is no longer ours: the caller must stop acting as leader.
    async fn update_leader(&self, cluster: &Cluster) -> DcsResult<bool>;

    /// Release the leader key if and only if it still holds our name
    /// (compare-and-delete). `Ok(false)` when it was not ours.
    async fn delete_leader(&self) -> DcsResult<bool>;

    /// Publish our member key (bound to our lease/TTL). Backends skip the
    /// write when the stored value is already `value` and still bound to
    /// our lease, as Patroni does, except etcd v2 which refreshes the TTL
    /// by rewriting every time.
    async fn touch_member(&self, cluster: Option<&Cluster>, value: &str) -> DcsResult<()>;

    /// `config`: compare-and-set on `version` when given, else overwrite.
    async fn set_config_value(&self, value: &str, version: Option<i64>) -> DcsResult<()>;

    /// `failover`: compare-and-set on `version` when given, else overwrite.
    async fn set_failover_value(&self, value: &str, version: Option<i64>) -> DcsResult<()>;

    /// `sync`: compare-and-set on `version` when given, else overwrite.
    /// Returns the new version of the key.
    async fn set_sync_state_value(&self, value: &str, version: Option<i64>) -> DcsResult<i64>;

    /// Delete `sync`, compare-and-delete on `version` when given.
    async fn delete_sync_state(&self, version: Option<i64>) -> DcsResult<()>;

    /// `history`: plain overwrite.
    async fn set_history_value(&self, value: &str) -> DcsResult<()>;

    /// `status`: plain overwrite.
    async fn write_status(&self, value: &str) -> DcsResult<()>;

    /// `failsafe`: plain overwrite.
    async fn write_failsafe(&self, value: &str) -> DcsResult<()>;

    /// Delete every key of the cluster (`patronictl remove`).
    async fn delete_cluster(&self) -> DcsResult<()>;

    /// Wait up to `timeout` for a change that should wake the HA loop early
    /// (the leader key changed or vanished). Returns `true` when woken by a
    /// change, `false` on timeout. Never fails: a broken watch degrades to
    /// sleeping.
    async fn watch(&self, leader_version: Option<i64>, timeout: Duration) -> bool;
}
