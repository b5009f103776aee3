//! The HA core: pure decisions, no IO.
//!
//! Each piece takes a snapshot of what the daemon observed (the DCS
//! [`crate::model::Cluster`], the local PostgreSQL, the peers' `/patroni`
//! answers, the settings, the time) and returns what to do and the lines
//! Patroni would log. The daemon gathers the inputs and executes the
//! outcome, so every decision is tested on its output with no mocks.
//!
//! - [`race`]: the leader race (Patroni's `_is_healthiest_node`).
//! - [`sync`], [`quorum`]: synchronous replication and quorum commit on
//!   the primary (which standbys the key and the setting name, and in
//!   which order they change).
//! - [`decide`]: one cycle's decision as a conversation with the executor
//!   (bootstrap, replica creation, recovery of a stopped PostgreSQL, the
//!   leader key, manual failover and switchover, pause mode), plus the
//!   daemon's stop ([`decide::decide_shutdown`]) and a cycle without the
//!   DCS ([`decide::decide_dcs_error`]).

pub mod decide;
pub mod quorum;
pub mod race;
#[cfg(test)]
mod sim;
pub mod sync;
