//! The dynamically typed value a Patroni configuration is made of.
//!
//! Patroni reads YAML with PyYAML's `safe_load`, so a configuration is a tree
//! of Python objects: `None`, `bool`, `int` (unbounded), `float`, `str`,
//! `datetime.date`/`datetime.datetime`, `list` and `dict` (insertion ordered,
//! keys may be any hashable scalar). [`Value`] models exactly that, so that
//! the effective configuration can be compared with Python's one to one.

use std::collections::HashMap;
use std::fmt;

/// A YAML 1.1 `timestamp` as PyYAML resolves it: a bare date becomes
/// `datetime.date`, anything with a time part a `datetime.datetime`
/// (timezone-aware when an offset or `Z` was given).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timestamp {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    /// `None` for a bare date.
    pub time: Option<TimeOfDay>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeOfDay {
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub microsecond: u32,
    /// Offset from UTC in seconds; `None` for a naive datetime.
    pub utc_offset: Option<i32>,
}

/// One node of a configuration tree.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer outside `i64`, as decimal digits with an optional `-`.
    BigInt(String),
    Float(f64),
    Str(String),
    Timestamp(Timestamp),
    Seq(Vec<Value>),
    Map(Map),
}

/// An insertion-ordered mapping with Python `dict` semantics: assigning an
/// existing key replaces the value in place and keeps the key's position.
///
/// String keys (nearly all of them) are found through a hash index, so
/// building a large mapping stays linear; other keys are compared one by
/// one with Python's key equality.
#[derive(Clone, Default)]
pub struct Map {
    entries: Vec<(Value, Value)>,
    /// Position in `entries` of every string key.
    str_index: HashMap<String, usize>,
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

impl PartialEq for Value {
    /// Python equality, except that types are not mixed: `1 == True` and
    /// `1 == 1.0` are false here, because the differential tests compare
    /// types too. Floats compare bitwise-equal for NaN.
    fn eq(&self, other: &Value) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (BigInt(a), BigInt(b)) => a == b,
            (Float(a), Float(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Str(a), Str(b)) => a == b,
            (Timestamp(a), Timestamp(b)) => a == b,
            (Seq(a), Seq(b)) => a == b,
            (Map(a), Map(b)) => a == b,
            _ => false,
        }
    }
}

impl PartialEq for Map {
    /// Like Python dicts: same keys and values, order ignored.
    fn eq(&self, other: &Map) -> bool {
        self.len() == other.len()
            && self
                .entries
                .iter()
                .all(|(k, v)| other.get_value(k).is_some_and(|o| o == v))
    }
}

impl Map {
    pub fn new() -> Map {
        Map::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &Value) -> Option<usize> {
        match key {
            Value::Str(s) => self.str_index.get(s).copied(),
            _ => self.entries.iter().position(|(k, _)| key_eq(k, key)),
        }
    }

    /// Python `d[key] = value`.
    pub fn insert(&mut self, key: Value, value: Value) {
        match self.position(&key) {
            Some(pos) => self.entries[pos].1 = value,
            None => {
                if let Value::Str(s) = &key {
                    self.str_index.insert(s.clone(), self.entries.len());
                }
                self.entries.push((key, value));
            }
        }
    }

    /// `d[key] = value` for a string key.
    pub fn set(&mut self, key: &str, value: Value) {
        self.insert(Value::Str(key.to_owned()), value);
    }

    pub fn get_value(&self, key: &Value) -> Option<&Value> {
        self.position(key).map(|pos| &self.entries[pos].1)
    }

    pub fn get_value_mut(&mut self, key: &Value) -> Option<&mut Value> {
        let pos = self.position(key)?;
        Some(&mut self.entries[pos].1)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.str_index.get(key).map(|&pos| &self.entries[pos].1)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let pos = *self.str_index.get(key)?;
        Some(&mut self.entries[pos].1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Python `d.pop(key, None)`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.remove_value(&Value::Str(key.to_owned()))
    }

    /// Python `d.pop(key, None)` for any key.
    pub fn remove_value(&mut self, key: &Value) -> Option<Value> {
        let pos = self.position(key)?;
        let (_, value) = self.entries.remove(pos);
        if let Value::Str(s) = key {
            self.str_index.remove(s);
        }
        for slot in self.str_index.values_mut() {
            if *slot > pos {
                *slot -= 1;
            }
        }
        Some(value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Value, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &Value> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// `(key, value)` pairs whose key is a string.
    pub fn str_entries(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().filter_map(|(k, v)| match k {
            Value::Str(s) => Some((s.as_str(), v)),
            _ => None,
        })
    }

    /// Get `key`, inserting an empty map first when it is absent or not a map.
    pub fn entry_map(&mut self, key: &str) -> &mut Map {
        if !matches!(self.get(key), Some(Value::Map(_))) {
            self.set(key, Value::Map(Map::new()));
        }
        match self.get_mut(key) {
            Some(Value::Map(m)) => m,
            _ => unreachable!("just inserted a map"),
        }
    }
}

impl FromIterator<(Value, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (Value, Value)>>(iter: I) -> Map {
        let mut m = Map::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl IntoIterator for Map {
    type Item = (Value, Value);
    type IntoIter = std::vec::IntoIter<(Value, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// Key equality as a Python dict sees it: `1`, `1.0` and `True` are the
/// same key.
fn key_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_map_mut(&mut self) -> Option<&mut Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Python truthiness (`bool(x)`).
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Timestamp(_) => true,
            Value::Seq(s) => !s.is_empty(),
            Value::Map(m) => !m.is_empty(),
        }
    }

    /// The Python type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Timestamp(t) if t.time.is_none() => "date",
            Value::Timestamp(_) => "datetime",
            Value::Seq(_) => "list",
            Value::Map(_) => "dict",
        }
    }

    /// Convert to JSON the way Python's `json.dumps` would see it; `None`
    /// when the tree holds something JSON cannot carry (a timestamp, a
    /// non-finite float, a non-scalar key).
    pub fn to_json(&self) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::BigInt(s) => J::Number(s.parse().ok()?),
            Value::Float(f) => J::from(serde_json::Number::from_f64(*f)?),
            Value::Str(s) => J::String(s.clone()),
            Value::Timestamp(_) => return None,
            Value::Seq(items) => J::Array(items.iter().map(Value::to_json).collect::<Option<_>>()?),
            Value::Map(m) => {
                let mut out = serde_json::Map::new();
                for (k, v) in m.iter() {
                    out.insert(json_key(k)?, v.to_json()?);
                }
                J::Object(out)
            }
        })
    }

    /// The inverse of [`Value::to_json`].
    pub fn from_json(json: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match json {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None if n.is_f64() => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                None => Value::BigInt(n.to_string()),
            },
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::Seq(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (Value::Str(k.clone()), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// `json.dumps` turns scalar keys into strings: `True` -> `"true"`, `1` -> `"1"`.
fn json_key(k: &Value) -> Option<String> {
    Some(match k {
        Value::Str(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(s) => s.clone(),
        Value::Float(f) => python_float_repr(*f),
        _ => return None,
    })
}

/// Python's `repr(float)`: shortest round-trip digits, `.0` for integral
/// values, `inf`/`nan`, exponent form past 1e16.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust finds the shortest digit count that round-trips; when two
    // strings of that length both round-trip, Python takes the one nearest
    // the exact value (ties to even), which is exactly the value correctly
    // rounded to that many digits.
    let shortest = format!("{:e}", f.abs());
    let digits = shortest
        .split('e')
        .next()
        .unwrap_or("")
        .chars()
        .filter(char::is_ascii_digit)
        .count()
        .max(1);
    let mut rounded = format!("{:.*e}", digits - 1, f.abs());
    // Next to a power of two the round-trip interval is lopsided, and the
    // nearest string of that length may not read back: then the shortest
    // string Rust found is the only one that does.
    if rounded.parse::<f64>().ok() != Some(f.abs()) {
        rounded = shortest;
    }
    let (mantissa, exp) = rounded.split_once('e').unwrap_or((&rounded, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut d: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    while d.len() > 1 && d.ends_with('0') {
        d.pop();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let body = if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if d.len() <= int_len {
                format!("{d}{}.0", "0".repeat(int_len - d.len()))
            } else {
                format!("{}.{}", &d[..int_len], &d[int_len..])
            }
        } else {
            format!("0.{}{d}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let (first, rest) = d.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{frac}e{esign}{:02}", exp.abs())
    };
    format!("{sign}{body}")
}

impl fmt::Display for Value {
    /// Python's `str()` of the value, for scalars; containers print as JSON-ish.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("None"),
            Value::Bool(true) => f.write_str("True"),
            Value::Bool(false) => f.write_str("False"),
            Value::Int(i) => write!(f, "{i}"),
            Value::BigInt(s) => f.write_str(s),
            Value::Float(x) => f.write_str(&python_float_repr(*x)),
            Value::Str(s) => f.write_str(s),
            other => match other.to_json() {
                Some(j) => write!(f, "{j}"),
                None => write!(f, "{other:?}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dict_semantics_keep_first_position() {
        let mut m = Map::new();
        m.set("a", Value::Int(1));
        m.set("b", Value::Int(2));
        m.set("a", Value::Int(3));
        let keys: Vec<_> = m.str_entries().map(|(k, _)| k.to_owned()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(m.get("a"), Some(&Value::Int(3)));
    }

    #[test]
    fn removal_keeps_the_index_consistent() {
        let mut m = Map::new();
        for k in ["a", "b", "c", "d"] {
            m.set(k, Value::Str(k.to_uppercase()));
        }
        m.insert(Value::Int(7), Value::Null);
        assert_eq!(m.remove("b"), Some(Value::Str("B".into())));
        assert_eq!(m.remove_value(&Value::Int(7)), Some(Value::Null));
        assert_eq!(m.get("c"), Some(&Value::Str("C".into())));
        m.set("c", Value::Int(3));
        let keys: Vec<_> = m.str_entries().map(|(k, _)| k.to_owned()).collect();
        assert_eq!(keys, ["a", "c", "d"]);
        assert_eq!(m.get("c"), Some(&Value::Int(3)));
        assert_eq!(m.get("b"), None);
    }

    #[test]
    fn large_maps_build_in_linear_time() {
        let mut m = Map::new();
        for i in 0..200_000 {
            m.set(&format!("k{i}"), Value::Int(i));
        }
        assert_eq!(m.len(), 200_000);
        assert_eq!(m.get("k199999"), Some(&Value::Int(199_999)));
    }

    #[test]
    fn numeric_keys_collide_like_python() {
        let mut m = Map::new();
        m.insert(Value::Int(1), Value::Str("int".into()));
        m.insert(Value::Bool(true), Value::Str("bool".into()));
        assert_eq!(m.len(), 1);
        assert_eq!(
            m.get_value(&Value::Int(1)),
            Some(&Value::Str("bool".into()))
        );
    }

    #[test]
    #[allow(clippy::excessive_precision)] // exact test values on purpose
    fn float_repr_matches_python() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (6.103515625e-05, "6.103515625e-05"),
            (562949953421312.25, "562949953421312.2"),
            (5.9604644775390625e-08, "5.960464477539063e-08"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (-1.5, "-1.5"),
            (1e22, "1e+22"),
            (123456789012345680.0, "1.2345678901234568e+17"),
            (9.999999999999999e15, "1e+16"),
            (5e-324, "5e-324"),
            (0.0001, "0.0001"),
            (123456.789, "123456.789"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(python_float_repr(f), want);
        }
    }
}
