//! Which parameter values reach the configuration files.
//!
//! Patroni validates every GUC value against a per-version table before
//! writing it (clamping numbers, dropping invalid values and parameters
//! the version does not know). The table for ordinary parameters is
//! behind [`GucCatalog`]; recovery parameters, which Patroni manages
//! itself, are validated here with their own small table.

use crate::config::units::{parse_bool, parse_int, parse_real};
use crate::config::Value;
use crate::postgres::pystr::py_str;

/// The names of PostgreSQL's recovery parameters, which Patroni manages
/// itself and never writes among the ordinary parameters.
pub const RECOVERY_PARAMETERS: [&str; 18] = [
    "archive_cleanup_command",
    "pause_at_recovery_target",
    "primary_conninfo",
    "primary_slot_name",
    "promote_trigger_file",
    "recovery_end_command",
    "recovery_min_apply_delay",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "restore_command",
    "standby_mode",
    "trigger_file",
];

/// Whether `name` is a recovery parameter (case-insensitively).
pub fn is_recovery_parameter(name: &str) -> bool {
    let lower = name.to_lowercase();
    RECOVERY_PARAMETERS.contains(&lower.as_str())
}

/// Validation of ordinary (non-recovery) GUC values for a PostgreSQL
/// version, as Patroni's `available_parameters` validators do: a value may
/// be kept, clamped, or dropped (with a warning in Patroni's log).
///
/// The table of validators lives outside this module; [`PassThroughGucs`]
/// keeps every value, which is what Patroni does for any parameter valid
/// for the running version.
pub trait GucCatalog {
    /// The value to write for `name`, or `None` to leave it out.
    fn transform(&self, version: i64, name: &str, value: &Value) -> Option<Value>;
    /// Whether this catalog has a validator for `name` (an extension-style
    /// name with a dot is passed through unvalidated only when it has none).
    fn has_validator(&self, name: &str) -> bool;
    /// Whether the running `postgres` knows `name` (`postgres
    /// --describe-config`); consulted for recovery parameters outside the
    /// version range of their validators.
    fn is_available(&self, name: &str) -> bool;
}

/// A catalog that keeps every ordinary parameter and knows no recovery
/// parameter beyond the validated version ranges.
#[derive(Debug, Clone, Copy, Default)]
pub struct PassThroughGucs;

impl GucCatalog for PassThroughGucs {
    fn transform(&self, _version: i64, _name: &str, value: &Value) -> Option<Value> {
        Some(value.clone())
    }
    fn has_validator(&self, _name: &str) -> bool {
        false
    }
    fn is_available(&self, name: &str) -> bool {
        !is_recovery_parameter(name)
    }
}

/// Patroni's `transform_postgresql_parameter_value`: the value written to
/// `postgresql.conf` for an ordinary parameter, `None` to skip it.
pub fn transform_parameter(
    catalog: &dyn GucCatalog,
    version: i64,
    name: &str,
    value: &Value,
) -> Option<Value> {
    if name.contains('.') && !catalog.has_validator(name) {
        return Some(value.clone());
    }
    if is_recovery_parameter(name) {
        return None;
    }
    catalog.transform(version, name, value)
}

/// How a recovery parameter is validated, and for which versions.
enum RecoveryKind {
    Text,
    Bool,
    /// Milliseconds, clamped to `0..=i32::MAX`.
    Millis,
    Enum(&'static [&'static str]),
}

/// The recovery parameters' validators: (name, kind, from, till).
const RECOVERY_VALIDATORS: [(&str, RecoveryKind, i64, Option<i64>); 18] = [
    ("archive_cleanup_command", RecoveryKind::Text, 90300, None),
    (
        "pause_at_recovery_target",
        RecoveryKind::Bool,
        90300,
        Some(90500),
    ),
    ("primary_conninfo", RecoveryKind::Text, 90300, None),
    ("primary_slot_name", RecoveryKind::Text, 90400, None),
    (
        "promote_trigger_file",
        RecoveryKind::Text,
        120000,
        Some(160000),
    ),
    ("recovery_end_command", RecoveryKind::Text, 90300, None),
    (
        "recovery_min_apply_delay",
        RecoveryKind::Millis,
        90400,
        None,
    ),
    (
        "recovery_target",
        RecoveryKind::Enum(&["immediate", ""]),
        90400,
        None,
    ),
    (
        "recovery_target_action",
        RecoveryKind::Enum(&["pause", "promote", "shutdown"]),
        90500,
        None,
    ),
    ("recovery_target_inclusive", RecoveryKind::Bool, 90300, None),
    ("recovery_target_lsn", RecoveryKind::Text, 100000, None),
    ("recovery_target_name", RecoveryKind::Text, 90400, None),
    ("recovery_target_time", RecoveryKind::Text, 90300, None),
    ("recovery_target_timeline", RecoveryKind::Text, 90300, None),
    ("recovery_target_xid", RecoveryKind::Text, 90300, None),
    ("restore_command", RecoveryKind::Text, 90300, None),
    ("standby_mode", RecoveryKind::Bool, 90300, Some(120000)),
    ("trigger_file", RecoveryKind::Text, 90300, Some(120000)),
];

/// Patroni's `transform_recovery_parameter_value`: validate a recovery
/// parameter for `version`; `None` leaves it out of the file.
pub fn transform_recovery_parameter(
    catalog: &dyn GucCatalog,
    version: i64,
    name: &str,
    value: &Value,
) -> Option<Value> {
    let lower = name.to_lowercase();
    let validator = RECOVERY_VALIDATORS.iter().find(|(n, _, from, till)| {
        *n == lower && version >= *from && till.is_none_or(|t| version < t)
    });
    if let Some((_, kind, _, _)) = validator {
        return match kind {
            RecoveryKind::Text => Some(value.clone()),
            RecoveryKind::Bool => parse_bool(value).map(|_| value.clone()),
            RecoveryKind::Millis => {
                let max = i64::from(i32::MAX);
                match parse_int(value, Some("ms")) {
                    Some(n) if n < 0 => Some(Value::Int(0)),
                    Some(n) if n > max => Some(Value::Int(max)),
                    Some(_) => Some(value.clone()),
                    // Beyond i64 (Python's ints are unbounded): still a
                    // number, clamped like any other.
                    None => match parse_real(value, Some("ms")) {
                        Some(r) if r.is_finite() && r.abs() >= 9.2e18 => {
                            Some(Value::Int(if r < 0.0 { 0 } else { max }))
                        }
                        _ => None,
                    },
                }
            }
            RecoveryKind::Enum(allowed) => allowed
                .contains(&py_str(value).to_lowercase().as_str())
                .then(|| value.clone()),
        };
    }
    // Before 12 `postgres --describe-config` does not list recovery
    // settings, so Patroni treats exactly its own list as available.
    let available = if version >= 120000 {
        catalog.is_available(name)
    } else {
        is_recovery_parameter(name)
    };
    available.then(|| value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_validation() {
        let c = PassThroughGucs;
        let v = |s: &str| Value::Str(s.into());
        assert_eq!(
            transform_recovery_parameter(&c, 150000, "recovery_min_apply_delay", &v("-5")),
            Some(Value::Int(0))
        );
        assert_eq!(
            transform_recovery_parameter(
                &c,
                150000,
                "recovery_min_apply_delay",
                &Value::Float(1e20)
            ),
            Some(Value::Int(2147483647))
        );
        assert_eq!(
            transform_recovery_parameter(&c, 150000, "recovery_min_apply_delay", &v("soon")),
            None
        );
        assert_eq!(
            transform_recovery_parameter(&c, 150000, "recovery_min_apply_delay", &v("1min")),
            Some(v("1min"))
        );
        assert_eq!(
            transform_recovery_parameter(&c, 150000, "recovery_target_action", &v("Pause")),
            Some(v("Pause"))
        );
        assert_eq!(
            transform_recovery_parameter(&c, 150000, "recovery_target", &v("x")),
            None
        );
        assert_eq!(
            transform_recovery_parameter(&c, 150000, "trigger_file", &v("/t")),
            None
        );
        assert_eq!(
            transform_recovery_parameter(&c, 110000, "trigger_file", &v("/t")),
            Some(v("/t"))
        );
        assert_eq!(
            transform_parameter(&c, 150000, "restore_command", &v("x")),
            None
        );
        assert_eq!(
            transform_parameter(&c, 150000, "a.b", &v("x")),
            Some(v("x"))
        );
    }
}
