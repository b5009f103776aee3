//! The REST API: Patroni's HTTP endpoints, byte-compatible with Patroni
//! 4.1.5 for load balancers, patronictl, monitoring and the other nodes.
//!
//! - [`status`]: the snapshot the HA loop publishes; the API answers from it
//!   and never waits on PostgreSQL or the DCS for a read.
//! - [`health`]: status codes of the health checks, liveness and readiness.
//! - [`bodies`]: the JSON and text bodies of the read endpoints.
//! - [`http`]: the server (framing, routing, error pages, auth).
//! - [`commands`]: the modifying endpoints' validation, and the
//!   [`commands::ApiCommands`] trait the daemon implements for the actions.

pub mod bodies;
pub mod commands;
pub mod health;
pub mod http;
pub mod status;
