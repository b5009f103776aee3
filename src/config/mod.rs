//! Configuration with Patroni 4.1 semantics.
//!
//! - [`value`] — the dynamically typed tree a configuration is.
//! - [`yaml`] — YAML 1.1 loading with PyYAML `safe_load` resolution.
//! - [`units`] — `parse_bool`, `parse_int`, `parse_real` with PostgreSQL units.
//! - [`env`] — the `PATRONI_*` environment variables.
//! - [`case_insensitive`] — `postgresql.parameters` names, case-insensitive.
//! - [`effective`] — file + environment + dynamic defaults into the effective
//!   configuration the daemon runs with.
//! - [`pytext`] — Python's `str()`/`repr()` of values.
//! - [`sample`] — `--generate-sample-config`.
//! - [`validate`] — `--validate-config`.

pub mod case_insensitive;
pub mod effective;
pub mod env;
pub mod generate;
pub mod pytext;
pub mod sample;
pub mod units;
pub mod validate;
pub mod value;
pub mod yaml;

pub use value::{Map, Value};
