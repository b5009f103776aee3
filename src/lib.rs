//! patroni-rs: a PostgreSQL high-availability manager that replaces Patroni
//! 4.1 in place.
//!
//! Where things live, by the name a Patroni operator already knows:
//!
//! - [`config`]: the YAML file and `PATRONI_*` environment, read with
//!   Patroni's semantics (PyYAML 1.1 scalars, Patroni's unit parsing and
//!   environment mapping), the dynamic configuration defaults, and
//!   `--validate-config`.
//! - [`logging`]: the `log:` section: Python logging format strings, file
//!   rotation and JSON output, byte-compatible with Patroni's log lines.
//! - [`model`]: the cluster state kept in the DCS (members, leader, config,
//!   failover, sync, status, history, failsafe) and its exact bytes.
//! - [`cli`]: the command line, argparse-compatible.
//!
//! The binary in `src/main.rs` is thin: it parses argv, loads the
//! configuration and wires the pieces together.

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dcs;
pub mod ha;
pub mod logging;
pub mod model;
pub mod postgres;

/// The Patroni version we are compatible with and report everywhere Patroni
/// reports its own (member keys, REST, metrics). Peers parse it as dotted
/// integers, so it must stay numeric.
pub const PATRONI_VERSION: &str = "4.1.5";
