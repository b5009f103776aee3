//! The files Patroni keeps in (or next to) the PostgreSQL data directory,
//! and the few PostgreSQL outputs it reads back.
//!
//! A data directory has to be able to move between Python Patroni and
//! patroni-rs in both directions, so everything written here must match
//! Patroni 4.1 byte for byte for the same inputs: `postgresql.conf` (with
//! its `# recovery.conf` block on PostgreSQL 12+), `pg_hba.conf`,
//! `pg_ident.conf`, `recovery.conf` on older versions, the `.pgpass` file
//! and the `postgres` command line (which PostgreSQL itself records in
//! `postmaster.opts`).
//!
//! Everything in this module is pure: callers gather the inputs
//! (configuration, role, the member to replicate from, PostgreSQL version)
//! and do the file IO themselves. That keeps the formatting rules testable
//! against golden captures without a running cluster.
//!
//! - [`params`]: from the `postgresql` configuration section to the server
//!   parameters Patroni manages (`cluster_name`, `listen_addresses`,
//!   `port`, version renames, `CMDLINE_OPTIONS`).
//! - [`guc`]: GUC value validation (the catalog hook, recovery parameters).
//! - [`pg15_catalog`]: PostgreSQL 15's settings as a validation catalog.
//! - [`recovery`]: replication source, `primary_conninfo`, recovery
//!   parameters, `.pgpass`, slot names.
//! - [`conf`]: the text of the configuration files and the command line.
//! - [`node`]: all of the above for one start of PostgreSQL
//!   ([`render_node`]), in the order Patroni's `Postgresql.start` runs it.
//! - [`pystr`]: Python's `str()` of configuration values, the form every
//!   value is written in.
//! - [`controldata`]: `pg_controldata` output.
//! - [`pid`]: `postmaster.pid` and `postmaster.opts`.
//! - [`process`]: the postmaster process: start, attach, stop, promote.
//! - [`query`]: the monitoring connection and the HA loop's per-cycle query.
//! - [`bootstrap`]: initdb, custom bootstrap, roles and post_bootstrap script;
//!   [`replica`]: replica creation and data directory removal.

pub mod bootstrap;
pub mod conf;
pub mod controldata;
pub mod dsn;
pub mod durable;
pub mod guc;
pub mod node;
pub mod params;
pub mod pg15_catalog;
pub mod pid;
pub mod process;
pub mod pystr;
pub mod query;
pub mod recovery;
pub mod replica;

pub use conf::{
    pg_hba_conf, pg_ident_conf, postgres_argv, postgresql_conf, postmaster_opts, recovery_conf,
    ConfWriter, PostgresqlConf,
};
pub use node::{render_node, NodeFiles, NodeInput, Role};
pub use params::{server_parameters, GucCatalog, PassThroughGucs, ServerParamsInput, SyncState};
pub use recovery::{
    build_recovery_params, format_dsn, pgpass_content, slot_name_from_member_name,
    ReplicationSource, SignalFile,
};
