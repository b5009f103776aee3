//! Patroni's value parsers: `parse_bool`, `parse_int` and `parse_real`,
//! with PostgreSQL's memory and time units. (Being written.)
use super::Value;

/// Patroni `parse_bool`: `on/off/true/false/yes/no/1/0`, any case.
pub fn parse_bool(_value: &Value) -> Option<bool> {
    None
}

/// Patroni `parse_int(value, base_unit)`.
pub fn parse_int(_value: &Value, _base_unit: Option<&str>) -> Option<i64> {
    None
}

/// Patroni `parse_real(value, base_unit)`.
pub fn parse_real(_value: &Value, _base_unit: Option<&str>) -> Option<f64> {
    None
}
