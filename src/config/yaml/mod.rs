//! YAML loading with the semantics of PyYAML's `yaml.safe_load`, which is
//! what Patroni reads its configuration (and YAML-valued environment
//! variables) with.
//!
//! Patroni configurations are YAML 1.1 as PyYAML understands it: `on`/`yes`
//! are booleans, `0640` is octal, `1:20` is base 60, `1e3` is a string. YAML
//! 1.2 loaders disagree on all of these, so only the event parser is
//! borrowed (`saphyr-parser`); the rest is ours and follows PyYAML:
//!
//! 1. the whole input is checked for the characters PyYAML's reader refuses
//!    and for what PyYAML checks at the start of a stream (`%YAML 2.x`, a
//!    leading `...`);
//! 2. `compose` turns events into a node graph and resolves tags
//!    (`resolve` holds the YAML 1.1 implicit resolver), with PyYAML's
//!    anchor rules (no redefinition, `[A-Za-z0-9_-]` names), its tab rules
//!    (`tabs`), its flow plain scalar rules (no `?` inside, no `|`/`>`
//!    first), no empty implicit keys, and its leniency about indentation
//!    inside flow collections and quoted scalars (`indent`);
//! 3. `construct` builds the [`Value`] tree (merge keys, duplicate keys,
//!    unhashable keys) with `scalar` turning scalar text into numbers,
//!    booleans and timestamps exactly as PyYAML's constructors do.
//!
//! [`dump`] is the other direction: `yaml.safe_dump(default_flow_style=False,
//! allow_unicode=True)`, byte for byte.
//!
//! Known differences with PyYAML, all on input no Patroni configuration
//! would contain:
//! - recursive structures (`&a [*a]`) are refused: a [`Value`] is a tree;
//! - `!!binary`, `!!set`, `!!omap` and `!!pairs` are refused (bytes, sets
//!   and lists of tuples are not configuration values);
//! - NEL, LS and PS (U+0085, U+2028, U+2029) are not line breaks for the
//!   YAML 1.2 scanner;
//! - a few exotic spellings differ in acceptance: saphyr accepts a tab
//!   right after a quoted scalar (`"x"<TAB>`) and `[:"x]`; it refuses a
//!   flow plain scalar ending in a lone `-` (`[a -]`), `[? ]`, a `\u`
//!   escape of a lone surrogate, and a block scalar indicator alone on the
//!   last line (`? \n>`), which PyYAML accept;
//! - explicit `!!int`/`!!float` only take ASCII digits (Python's `int()`
//!   also reads other Unicode digits);
//! - nesting deeper than 400 levels, or aliases expanding to more than two
//!   million values, are refused (PyYAML hits its recursion limit near 500
//!   levels and shares aliased objects instead of copying them);
//! - two timestamp keys for the same instant in different offsets stay two
//!   keys (Python compares aware datetimes by instant).

mod compose;
mod construct;
mod dump;
mod indent;
mod resolve;
mod scalar;
mod tabs;

use std::fmt;

use crate::config::value::Value;

pub use dump::{dump, dump_with_width, DEFAULT_WIDTH};

/// A YAML syntax or construction error, positioned in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub message: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "YAML error at line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for YamlError {}

/// Load a single YAML document like `yaml.safe_load`: an empty stream is
/// `Value::Null`, more than one document is an error.
pub fn load(text: &str) -> Result<Value, YamlError> {
    check_printable(text)?;
    check_stream_start(text)?;
    // Spaces after the last line break carry nothing for PyYAML, but saphyr
    // counts them as one more (empty) line of a block scalar.
    let text = match text.rfind(['\n', '\r']) {
        Some(i) if text[i + 1..].bytes().all(|b| b == b' ') => &text[..=i],
        _ => text,
    };
    // saphyr-parser is third-party code with internal assertions; none
    // fired under fuzzing, but a configuration loader must report bad
    // input, never abort on it, so a panic in there becomes an error.
    let document = std::panic::catch_unwind(|| compose::compose(text)).unwrap_or_else(|_| {
        Err(YamlError {
            message: "internal error in the YAML parser on this input".into(),
            line: 1,
            column: 1,
        })
    })?;
    construct::construct(document)
}

/// PyYAML's reader refuses control characters (other than tab and line
/// breaks), DEL, C1 controls other than NEL, surrogates and U+FFFE/U+FFFF
/// anywhere in the stream, comments included.
fn check_printable(text: &str) -> Result<(), YamlError> {
    let printable = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..);
    let mut line = 1;
    let mut column = 1;
    for c in text.chars() {
        if !printable(c) {
            return Err(YamlError {
                message: format!(
                    "unacceptable character #x{:04x}: special characters are not allowed",
                    u32::from(c)
                ),
                line,
                column,
            });
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(())
}

/// What PyYAML checks at the start of the stream and saphyr does not:
/// `%YAML 1.x` (any minor version) is accepted, other major versions are
/// refused; and a stream cannot open with a `...` document end marker.
fn check_stream_start(text: &str) -> Result<(), YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line
            .strip_prefix("...")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            return Err(YamlError {
                message: "expected the node content, but found '<document end>'".into(),
                line: n + 1,
                column: 1,
            });
        }
        if !line.starts_with('%') {
            break;
        }
        let mut words = line.split_whitespace();
        if words.next() != Some("%YAML") {
            continue;
        }
        let major = words.next().and_then(|v| v.split('.').next());
        if major.is_some_and(|m| m.parse::<u32>().ok() != Some(1)) {
            return Err(YamlError {
                message: "found incompatible YAML document (version 1.* is required)".into(),
                line: n + 1,
                column: 1,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
