//! `patroni --validate-config`: Patroni 4.1's check of a local
//! configuration file.
//!
//! The verdict and every printed line match Python Patroni's validator for
//! the same configuration on the same machine, because operators script
//! around that output. Like Patroni, validation looks at the machine: the
//! data directory and PostgreSQL binaries on disk, `postgres --version`,
//! name resolution, whether listen ports are free and DCS endpoints
//! reachable.
//!
//! - [`schema`]: the configuration's expected shape, as data.
//! - [`engine`]: the combinators and the walk that reports problems.
//! - [`checks`], [`net`]: the custom checks (files, binaries, addresses).
//!
//! Known differences from Python Patroni 4.1.5:
//!
//! - Where Python's validator stops with a traceback (a non-empty
//!   `postgresql.bin_name` that is not a mapping, or a `bin_name` entry that
//!   is not a string, reaching the `bin_dir` check), we report the setting
//!   ("... is not a dictionary" / "... is not a string") and check `bin_dir`
//!   for the standard binary names.
//! - Non-ASCII host names: Python converts them with IDNA before resolving;
//!   we hand them to the resolver as UTF-8.
//! - Non-ASCII characters in printed values are escaped by an approximation
//!   of Python's `str.isprintable` (no Unicode database here).
//! - Integer settings beyond the 64-bit range are compared through a double,
//!   so `thread_stack_size` alignment of such values is approximate.
//! - `postgres --version` killed by a signal is reported without the signal
//!   name.

mod checks;
mod engine;
mod net;
use crate::config::pytext as pyrepr;
mod schema;

use crate::config::value::Value;
use std::sync::OnceLock;

/// Options of the validation (`populate_validate_params` in Patroni).
#[derive(Debug, Clone, Default)]
pub struct ValidateParams {
    /// `--ignore-listen-port`: a listen address whose port is already in
    /// use is not an error (e.g. validating the config of a running node).
    pub ignore_listen_port: bool,
}

/// What every check can see: the whole configuration (some checks read a
/// sibling setting, e.g. `bin_dir` for `data_dir`) and the options.
pub struct Ctx<'a> {
    pub root: &'a Value,
    pub params: &'a ValidateParams,
}

fn patroni_schema() -> &'static engine::Node {
    static SCHEMA: OnceLock<engine::Node> = OnceLock::new();
    SCHEMA.get_or_init(schema::patroni)
}

/// Validate a local configuration. Returns the problems, one line each, in
/// the order Patroni reports them (`<path> <value> <message>`); an empty
/// list means the configuration is valid. Never fails: any value shape is
/// reported, not rejected.
pub fn validate(config: &Value, params: &ValidateParams) -> Vec<String> {
    let ctx = Ctx {
        root: config,
        params,
    };
    engine::check(patroni_schema(), config, &ctx)
        .into_iter()
        .filter(|o| !o.ok)
        .map(|o| o.render())
        .collect()
}

/// The one change Python Patroni's validator makes to the configuration it
/// checks: a `postgresql` mapping without `bin_dir` gets `bin_dir: ''`
/// appended. `patroni --validate-config --print` prints the configuration
/// after validation, so that key shows up in its output; call this before
/// printing to match it.
pub fn apply_validator_defaults(config: &mut Value) {
    let Some(root) = config.as_map_mut() else {
        return;
    };
    if let Some(Value::Map(pg)) = root.get_mut("postgresql") {
        if !pg.contains_key("bin_dir") {
            pg.set("bin_dir", Value::Str(String::new()));
        }
    }
}

#[cfg(test)]
mod tests;
