//! Implicit tag resolution of plain scalars, YAML 1.1 as PyYAML's
//! `Resolver` does it.
//!
//! PyYAML picks candidate resolvers by the first character of the scalar
//! and tries each candidate's regular expression in registration order; the
//! first match gives the tag, otherwise the scalar is a string. The
//! expressions below are the same languages as PyYAML's (they are disjoint,
//! so the order only matters for the dispatch on the first character).
//!
//! One Python detail is kept on purpose: `re.match(r"^...$", s)` also
//! matches when `s` has a single trailing newline, which a scalar can only
//! have when it carries the non-specific tag `!` (e.g. `! |` block scalars).

use regex::Regex;
use std::sync::OnceLock;

/// The tags implicit resolution can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Implicit {
    Null,
    Bool,
    Int,
    Float,
    Timestamp,
    /// `<<`, the merge key.
    Merge,
    /// `=`, YAML 1.1's "value" key.
    Value,
    Str,
}

struct Resolvers {
    bool_: Regex,
    float: Regex,
    int: Regex,
    merge: Regex,
    null: Regex,
    timestamp: Regex,
    value: Regex,
}

fn resolvers() -> &'static Resolvers {
    static R: OnceLock<Resolvers> = OnceLock::new();
    R.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("resolver regex is valid");
        Resolvers {
            bool_: re(
                r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$",
            ),
            // Needs a dot (or .inf/.nan); an exponent needs a sign; a
            // leading-dot number takes no sign.
            float: re(concat!(
                r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?",
                r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
                r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
                r"|[-+]?\.(?:inf|Inf|INF)",
                r"|\.(?:nan|NaN|NAN))$",
            )),
            int: re(concat!(
                r"^(?:[-+]?0b[0-1_]+",
                r"|[-+]?0[0-7_]+",
                r"|[-+]?(?:0|[1-9][0-9_]*)",
                r"|[-+]?0x[0-9a-fA-F_]+",
                r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
            )),
            merge: re(r"^(?:<<)$"),
            null: re(r"^(?:~|null|Null|NULL|)$"),
            timestamp: re(concat!(
                r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}",
                r"|[0-9]{4}-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9]{2}:[0-9]{2}",
                r"(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9]{2})?))?)$",
            )),
            value: re(r"^(?:=)$"),
        }
    })
}

/// Python `re.match` of an expression of the form `^(?:...)$`.
fn py_full_match(re: &Regex, s: &str) -> bool {
    re.is_match(s) || s.strip_suffix('\n').is_some_and(|t| re.is_match(t))
}

/// The tag PyYAML's resolver gives a scalar subject to implicit resolution.
pub(super) fn resolve_scalar(value: &str) -> Implicit {
    let r = resolvers();
    let candidates: &[(Implicit, &Regex)] = match value.chars().next() {
        None => &[(Implicit::Null, &r.null)],
        Some('y' | 'Y' | 't' | 'T' | 'f' | 'F' | 'o' | 'O') => &[(Implicit::Bool, &r.bool_)],
        Some('n' | 'N') => &[(Implicit::Bool, &r.bool_), (Implicit::Null, &r.null)],
        Some('-' | '+') => &[(Implicit::Float, &r.float), (Implicit::Int, &r.int)],
        Some('0'..='9') => &[
            (Implicit::Float, &r.float),
            (Implicit::Int, &r.int),
            (Implicit::Timestamp, &r.timestamp),
        ],
        Some('.') => &[(Implicit::Float, &r.float)],
        Some('<') => &[(Implicit::Merge, &r.merge)],
        Some('~') => &[(Implicit::Null, &r.null)],
        Some('=') => &[(Implicit::Value, &r.value)],
        Some(_) => &[],
    };
    candidates
        .iter()
        .find(|(_, re)| py_full_match(re, value))
        .map_or(Implicit::Str, |(tag, _)| *tag)
}

#[cfg(test)]
mod tests {
    use super::Implicit::*;
    use super::*;

    #[test]
    fn resolution_table() {
        let table: &[(&str, Implicit)] = &[
            ("", Null),
            ("~", Null),
            ("null", Null),
            ("Null", Null),
            ("NULL", Null),
            ("nULL", Str),
            ("none", Str),
            ("yes", Bool),
            ("Yes", Bool),
            ("YES", Bool),
            ("yEs", Str),
            ("no", Bool),
            ("on", Bool),
            ("On", Bool),
            ("ON", Bool),
            ("off", Bool),
            ("OFF", Bool),
            ("true", Bool),
            ("True", Bool),
            ("FALSE", Bool),
            ("y", Str),
            ("n", Str),
            ("Y", Str),
            ("0", Int),
            ("-0", Int),
            ("0640", Int),
            ("0_", Int),
            ("08", Str),
            ("0o640", Str),
            ("0x1F", Int),
            ("0xg", Str),
            ("0b101", Int),
            ("0b", Str),
            ("1_000", Int),
            ("+5", Int),
            ("1:20", Int),
            ("1:60", Str),
            ("0:20", Str),
            ("1:5:59", Int),
            ("1e3", Str),
            ("1.0e3", Str),
            ("1.0e+3", Float),
            ("1.", Float),
            ("1.5", Float),
            ("-1.5", Float),
            (".5", Float),
            ("-.5", Str),
            ("+.5", Str),
            ("._5", Str),
            ("1:20.5", Float),
            (".inf", Float),
            ("-.Inf", Float),
            (".NaN", Float),
            ("-.nan", Str),
            (".Nan", Str),
            ("inf", Str),
            ("2024-01-02", Timestamp),
            ("2024-1-2", Str),
            ("2024-1-2 1:02:03", Timestamp),
            ("2001-12-14t21:59:43.10-05:00", Timestamp),
            ("2001-12-14 21:59:43.10 -5", Timestamp),
            ("2001-12-14 \t21:59:43Z", Timestamp),
            ("2024-13-45", Timestamp),
            ("<<", Merge),
            ("<", Str),
            ("=", Value),
            ("==", Str),
            ("1MB", Str),
            ("15.2", Float),
            ("1.2.3", Str),
            // Python `$` before a final newline (only reachable through `!`).
            ("123\n", Int),
            ("yes\n", Bool),
            ("~\n", Null),
            ("\n", Str),
            ("123\n\n", Str),
        ];
        for (text, want) in table {
            assert_eq!(resolve_scalar(text), *want, "{text:?}");
        }
    }
}
