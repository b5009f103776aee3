//! PyYAML's rule for tab characters, which is stricter than YAML 1.2's.
//!
//! PyYAML's scanner only ever skips spaces between tokens and only spaces
//! separate the words of a plain scalar, so a tab is accepted only inside
//! a quoted scalar, inside the content of a block scalar, or in a comment.
//! `key: value<TAB>` or `key:<TAB>value` make Patroni fail to start; saphyr
//! accepts them, so the tabs are checked here after a successful parse,
//! against the spans of the scalars the parser reported (a block scalar's
//! span starts at its content, after the `|`/`>` header line).

use std::ops::Range;

use super::YamlError;

/// Refuse a tab outside `zones` (character ranges of quoted and block
/// scalars, sorted) and outside comments.
pub(super) fn check_tabs(source: &str, zones: &[Range<usize>]) -> Result<(), YamlError> {
    if !source.contains('\t') {
        return Ok(());
    }
    let (mut line, mut column) = (1usize, 1usize);
    let mut in_comment = false;
    let mut previous: Option<char> = None;
    let mut zone = 0usize;
    for (index, c) in source.chars().enumerate() {
        while zones.get(zone).is_some_and(|z| z.end <= index) {
            zone += 1;
        }
        let in_scalar = zones.get(zone).is_some_and(|z| z.start <= index);
        let after_blank = previous.is_none_or(|p| matches!(p, ' ' | '\t' | '\n' | '\r'));
        if c == '#' && !in_scalar && after_blank {
            in_comment = true;
        }
        if c == '\t' && !in_comment && !in_scalar {
            return Err(YamlError {
                message: "found character '\\t' that cannot start any token \
                          (tabs are only allowed in quoted and block scalars and in comments)"
                    .into(),
                line,
                column,
            });
        }
        if c == '\n' {
            line += 1;
            column = 1;
            in_comment = false;
        } else {
            column += 1;
        }
        previous = Some(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabs_outside_scalars_and_comments_are_refused() {
        let e = check_tabs("a: b\t\n", &[]).unwrap_err();
        assert_eq!((e.line, e.column), (1, 5));
        assert!(check_tabs("a: b # \tc\n", &[]).is_ok());
        assert!(check_tabs("\t# c\n", &[]).is_err());
        assert!(check_tabs("a: b#\tc\n", &[]).is_err());
        // `'b\tc'` is characters 3..8.
        let quoted = 3..8;
        assert!(check_tabs("a: 'b\tc'\n", std::slice::from_ref(&quoted)).is_ok());
        assert!(check_tabs("a: 'b\tc'\t\n", std::slice::from_ref(&quoted)).is_err());
        // Block scalar content `b\tc\n` at 7..11; the header is outside.
        let block = 7..11;
        assert!(check_tabs("a: |\n  b\tc\n", std::slice::from_ref(&block)).is_ok());
        let block = 8..11;
        assert!(check_tabs("a: |\t\n  bc\n", std::slice::from_ref(&block)).is_err());
    }
}
