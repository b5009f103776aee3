//! The schema combinators and the walk that applies them.
//!
//! Python Patroni describes the configuration with a nested structure of
//! dicts, lists, `Optional`/`Or`/`AtMostOne` keys, types and callables, and
//! walks it producing one result per check. The order, the dotted paths,
//! the "level" used to pick which alternatives of an `Or` get reported and
//! the message texts all show in the output, so this walk mirrors that
//! algorithm step for step while the schema itself is plain data
//! ([`Node`], [`Entry`]).

use super::pyrepr::py_str;
use super::Ctx;
use crate::config::units::{parse_int, parse_real};
use crate::config::value::{Map, Value};

/// The Python types the schema checks with `isinstance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyType {
    Str,
    /// `int`; like Python, booleans are integers too.
    Int,
    Bool,
    List,
    Dict,
}

impl PyType {
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            PyType::Str => matches!(v, Value::Str(_)),
            PyType::Int => matches!(v, Value::Int(_) | Value::BigInt(_) | Value::Bool(_)),
            PyType::Bool => matches!(v, Value::Bool(_)),
            PyType::List => matches!(v, Value::Seq(_)),
            PyType::Dict => matches!(v, Value::Map(_)),
        }
    }

    /// The wording used in "is not ..." messages.
    fn article_name(self) -> &'static str {
        match self {
            PyType::Str => "a string",
            PyType::Int => "an integer",
            PyType::Bool => "a boolean",
            PyType::List => "an array",
            PyType::Dict => "a dictionary",
        }
    }
}

/// A custom check: `Err(reason)` becomes "didn't pass validation: reason".
pub type CheckFn = fn(&Value, &Ctx) -> Result<(), String>;

/// One node of the schema tree.
pub enum Node {
    /// `isinstance(value, type)`.
    Type(PyType),
    /// A callable validator, optionally preceded by a type check.
    Check {
        expected: Option<PyType>,
        check: CheckFn,
    },
    /// Patroni's integer validator: the value goes through `parse_int` (so
    /// `"30"` and `"1min"` are accepted where a unit is given), then the
    /// range and alignment are checked. Failures read "Wrong value".
    Int {
        expected: Option<PyType>,
        min: Option<i64>,
        max: Option<i64>,
        base_unit: Option<&'static str>,
        aligned: Option<i64>,
    },
    /// A string out of a fixed set.
    Enum {
        values: &'static [&'static str],
        case_sensitive: bool,
    },
    /// A mapping with known keys; unknown keys are allowed.
    Dict(Vec<Entry>),
    /// A non-empty list whose items all match the inner node.
    List(Box<Node>),
    /// At least one alternative must match.
    Or(Vec<Node>),
    /// `postgresql.bin_dir`: a directory holding the PostgreSQL binaries.
    BinDir,
}

/// One key of a [`Node::Dict`].
pub enum Entry {
    Required(&'static str, Node),
    /// Checked when present; when absent, checked against the default if
    /// there is one (Patroni's `Optional("bin_dir", "")`).
    Optional(&'static str, Node, Option<&'static Value>),
    /// At least one of the keys must be present; each present one is checked.
    AnyOf(Vec<(&'static str, Node)>),
    /// At most one of the keys may be present.
    AtMostOne(Vec<(&'static str, Node)>),
}

/// What a result is about: nothing (printed as an empty string) or a value.
#[derive(Clone, Copy)]
pub enum Data<'a> {
    Empty,
    Of(&'a Value),
}

/// The outcome of one check, as Patroni's `Result`.
pub struct Outcome<'a> {
    pub ok: bool,
    pub error: String,
    pub level: u8,
    pub path: String,
    pub data: Data<'a>,
}

impl Outcome<'_> {
    /// The printed line: `<path> <value> <message>`.
    pub fn render(&self) -> String {
        let data = match self.data {
            Data::Empty => String::new(),
            Data::Of(v) => py_str(v),
        };
        format!("{} {} {}", self.path, data, self.error)
    }
}

fn pass(data: &Value) -> Outcome<'_> {
    Outcome {
        ok: true,
        error: String::new(),
        level: 0,
        path: String::new(),
        data: Data::Of(data),
    }
}

fn fail<'a>(error: String, level: u8, data: Data<'a>) -> Outcome<'a> {
    Outcome {
        ok: false,
        error,
        level,
        path: String::new(),
        data,
    }
}

fn join_path(head: &str, tail: &str) -> String {
    if tail.is_empty() {
        head.to_owned()
    } else {
        format!("{head}.{tail}")
    }
}

/// Check `data` against `node`, returning every result in Patroni's order.
pub fn check<'a>(node: &Node, data: &'a Value, ctx: &Ctx) -> Vec<Outcome<'a>> {
    match node {
        Node::Type(t) => {
            let mut o = pass(data);
            if !t.accepts(data) {
                o = fail(format!("is not {}", t.article_name()), 1, Data::Of(data));
            }
            vec![o]
        }
        Node::Check { expected, check } => {
            if let Some(t) = expected.filter(|t| !t.accepts(data)) {
                return vec![type_failure(t, data)];
            }
            vec![call(check(data, ctx), data)]
        }
        Node::Int {
            expected,
            min,
            max,
            base_unit,
            aligned,
        } => {
            if let Some(t) = expected.filter(|t| !t.accepts(data)) {
                return vec![type_failure(t, data)];
            }
            let ok = match parse_wide_int(data, *base_unit) {
                Some(WideInt::Exact(v)) => {
                    min.is_none_or(|m| v >= m)
                        && max.is_none_or(|m| v <= m)
                        && aligned.is_none_or(|a| a != 0 && v.rem_euclid(a) == 0)
                }
                // Beyond every i64 bound: above (or below) any min and max.
                Some(WideInt::Huge(f)) => {
                    min.is_none_or(|_| f > 0.0)
                        && max.is_none_or(|_| f < 0.0)
                        && aligned.is_none_or(|a| a != 0 && (f / a as f64).fract() == 0.0)
                }
                None => false,
            };
            vec![call(wrong_value(ok), data)]
        }
        Node::Enum {
            values,
            case_sensitive,
        } => {
            let ok = match data {
                Value::Str(s) if *case_sensitive => values.contains(&s.as_str()),
                Value::Str(s) => {
                    let lower = s.to_lowercase();
                    values.iter().any(|v| v.to_lowercase() == lower)
                }
                _ => false,
            };
            vec![call(wrong_value(ok), data)]
        }
        Node::Dict(entries) => match data {
            Value::Map(map) => check_dict(entries, map, ctx),
            _ => vec![fail("is not a dictionary".into(), 1, Data::Of(data))],
        },
        Node::List(inner) => match data {
            Value::Seq(items) => check_list(inner, data, items, ctx),
            _ => vec![fail("is not a list".into(), 1, Data::Of(data))],
        },
        Node::Or(alternatives) => check_or(alternatives, data, ctx),
        Node::BinDir => match data {
            Value::Str(dir) => super::checks::bin_dir(dir, ctx)
                .into_iter()
                .map(|e| fail(e, 0, Data::Empty))
                .collect(),
            // Python skips the directory checks for anything but a string.
            _ => Vec::new(),
        },
    }
}

/// An integer as Python's `parse_int` returns it: Python integers are
/// unbounded, so a value such as `1e19` is a valid (huge) integer there.
enum WideInt {
    Exact(i64),
    /// Outside `i64`; the float keeps the sign and magnitude.
    Huge(f64),
}

fn parse_wide_int(data: &Value, base_unit: Option<&str>) -> Option<WideInt> {
    if let Some(v) = parse_int(data, base_unit) {
        return Some(WideInt::Exact(v));
    }
    // `parse_int` gives up on overflow; `parse_real` reads the same number
    // (and unit) as a double, enough to place it beyond the i64 range.
    parse_real(data, base_unit)
        .filter(|f| f.is_finite() && f.abs() >= 9.223_372_036_854_775e18)
        .map(WideInt::Huge)
}

fn type_failure(t: PyType, data: &Value) -> Outcome<'_> {
    fail(format!("is not {}", t.article_name()), 1, Data::Of(data))
}

fn wrong_value(ok: bool) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err("Wrong value".into())
    }
}

fn call(result: Result<(), String>, data: &Value) -> Outcome<'_> {
    match result {
        Ok(()) => pass(data),
        Err(e) => fail(format!("didn't pass validation: {e}"), 0, Data::Of(data)),
    }
}

fn check_list<'a>(
    inner: &Node,
    list: &'a Value,
    items: &'a [Value],
    ctx: &Ctx,
) -> Vec<Outcome<'a>> {
    let mut out = Vec::new();
    if items.is_empty() {
        out.push(fail("is an empty list".into(), 0, Data::Of(list)));
    }
    for (i, item) in items.iter().enumerate() {
        for o in check(inner, item, ctx) {
            // Python reports the list item itself, not the nested value.
            out.push(Outcome {
                path: join_path(&i.to_string(), &o.path),
                data: Data::Of(item),
                ..o
            });
        }
    }
    out
}

fn check_dict<'a>(entries: &[Entry], map: &'a Map, ctx: &Ctx) -> Vec<Outcome<'a>> {
    let mut out = Vec::new();
    for entry in entries {
        match entry {
            Entry::Required(name, node) => match map.get(name) {
                Some(v) => check_key(&mut out, name, node, v, ctx),
                None => out.push(undefined(name)),
            },
            Entry::Optional(name, node, default) => match (map.get(name), *default) {
                (Some(v), _) | (None, Some(v)) => check_key(&mut out, name, node, v, ctx),
                (None, None) => {}
            },
            Entry::AnyOf(cases) => {
                let any_present = cases.iter().any(|(name, _)| map.contains_key(name));
                for (name, node) in cases {
                    match map.get(name) {
                        Some(v) => check_key(&mut out, name, node, v, ctx),
                        // When none is present, each one is reported missing.
                        None if !any_present => out.push(undefined(name)),
                        None => {}
                    }
                }
            }
            Entry::AtMostOne(cases) => {
                let present: Vec<_> = cases
                    .iter()
                    .filter_map(|(name, node)| map.get(name).map(|v| (*name, node, v)))
                    .collect();
                if present.len() > 1 {
                    let names: Vec<String> = cases.iter().map(|(n, _)| format!("'{n}'")).collect();
                    let tuple = if names.len() == 1 {
                        format!("({},)", names[0])
                    } else {
                        format!("({})", names.join(", "))
                    };
                    out.push(fail(
                        format!("Multiple of {tuple} provided"),
                        0,
                        Data::Empty,
                    ));
                    continue;
                }
                for (name, node, v) in present {
                    check_key(&mut out, name, node, v, ctx);
                }
            }
        }
    }
    out
}

fn undefined(name: &str) -> Outcome<'static> {
    Outcome {
        path: name.to_owned(),
        ..fail("is not defined.".into(), 0, Data::Empty)
    }
}

fn check_key<'a>(out: &mut Vec<Outcome<'a>>, name: &str, node: &Node, value: &'a Value, ctx: &Ctx) {
    for o in check(node, value, ctx) {
        out.push(Outcome {
            path: join_path(name, &o.path),
            ..o
        });
    }
}

/// Patroni's `Or`: an alternative that partly passes contributes only its
/// failures; when nothing passed at all, only the failures of the lowest
/// level are reported (a failed custom check, level 0, hides "is not a
/// list", level 1, from another alternative).
fn check_or<'a>(alternatives: &[Node], data: &'a Value, ctx: &Ctx) -> Vec<Outcome<'a>> {
    let mut results = Vec::new();
    for alt in alternatives {
        let r = check(alt, data, ctx);
        let any_ok = r.iter().any(|o| o.ok);
        let all_ok = r.iter().all(|o| o.ok);
        if any_ok && !all_ok {
            results.extend(r.into_iter().filter(|o| !o.ok));
        } else {
            results.extend(r);
        }
    }
    if results.iter().any(|o| o.ok) {
        return Vec::new();
    }
    // Stable sort, then keep the run of the smallest level (capped at 3).
    results.sort_by_key(|o| o.level);
    let mut max_level = 3;
    let mut out = Vec::new();
    for o in results {
        if o.level > max_level {
            break;
        }
        max_level = o.level;
        out.push(o);
    }
    out
}
