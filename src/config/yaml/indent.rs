//! PyYAML's leniency about indentation inside flow collections and quoted
//! scalars, on top of saphyr's YAML 1.2 strictness.
//!
//! YAML 1.2 (and saphyr) want the continuation lines of a flow collection
//! or of a multi-line quoted scalar to be indented deeper than the
//! enclosing block; PyYAML does not check, so this is a valid Patroni
//! configuration:
//!
//! ```yaml
//! postgresql:
//!   parameters:
//!     shared_preload_libraries: [pg_stat_statements,
//!   auto_explain]
//! ```
//!
//! Leading spaces of such lines carry no content (they are stripped from
//! quoted scalars and ignored between flow tokens), so when saphyr reports
//! one of these indentation errors we indent the offending line(s) and
//! parse again. The shifts are remembered to report positions in the
//! original text.

/// Spaces inserted at the start of a line (1-based line number).
#[derive(Debug, Default)]
pub(super) struct Shifts(Vec<(usize, usize)>);

impl Shifts {
    /// Map a 1-based column in the repaired text back to the original.
    pub fn column(&self, line: usize, column: usize) -> usize {
        let pad: usize = self
            .0
            .iter()
            .filter(|(l, _)| *l == line)
            .map(|(_, p)| p)
            .sum();
        if column > pad {
            column - pad
        } else {
            1
        }
    }
}

/// Most repairs one document may need; each one is a full re-parse.
pub(super) const MAX_REPAIRS: usize = 200;

/// If `message` is one of saphyr's indentation complaints that PyYAML does
/// not make, return `text` with the offending lines indented. `line` is
/// 1-based, `col` 0-based (saphyr's convention).
pub(super) fn repair(
    text: &str,
    message: &str,
    line: usize,
    col: usize,
    shifts: &mut Shifts,
) -> Option<String> {
    if text.contains('\r') || line == 0 {
        return None;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    if message == "plain scalar cannot start with '-' followed by ,[]{}" {
        return quote_lone_dash(&lines, line, col, shifts);
    }
    let pad = lines.iter().take(line).map(|l| l.chars().count()).max()? + 1;
    let targets: Vec<usize> = match message {
        "invalid indentation in flow construct" | "invalid indentation" => {
            // saphyr only checks this inside flow collections (block
            // context unrolls its indentation first), and the collection
            // opened on an earlier line, so the whole line is flow content
            // whose leading spaces mean nothing. A document marker there
            // is an error for PyYAML too, keep it visible.
            if is_document_marker(lines.get(line - 1)?) {
                return None;
            }
            vec![line]
        }
        "invalid indentation in quoted scalar" => quoted_continuations(&lines, line, col)?,
        "tab cannot be used as indentation" => {
            // Only raised for the leading blanks of a quoted scalar's
            // continuation line, which are stripped: spaces do the same.
            let this = lines.get(line - 1)?;
            let blank = this.len() - this.trim_start_matches([' ', '\t']).len();
            let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            out[line - 1] = format!("{}{}", " ".repeat(blank), &this[blank..]);
            return Some(out.join("\n"));
        }
        _ => return None,
    };
    let mut out = String::with_capacity(text.len() + pad * targets.len());
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if targets.contains(&(i + 1)) {
            out.extend(std::iter::repeat_n(' ', pad));
            shifts.0.push((i + 1, pad));
        }
        out.push_str(l);
    }
    Some(out)
}

/// In flow context PyYAML reads a `-` directly followed by `,`, `[`, `]`,
/// `{` or `}` as the plain scalar `-` (`{-}` is `{'-': None}`, `[-]` is
/// `['-']`); YAML 1.2 and saphyr refuse it. The same string written
/// single-quoted parses the same way (a plain `-` resolves to a string).
fn quote_lone_dash(lines: &[&str], line: usize, col: usize, shifts: &mut Shifts) -> Option<String> {
    let this = lines.get(line - 1)?;
    let at = this.char_indices().nth(col).map(|(i, _)| i)?;
    if !this[at..].starts_with('-') {
        return None;
    }
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    out[line - 1] = format!("{}'-'{}", &this[..at], &this[at + 1..]);
    shifts.0.push((line, 2));
    Some(out.join("\n"))
}

/// `---` or `...` followed by a blank or the end of the line: a document
/// marker, which PyYAML refuses inside flow content and quoted scalars.
fn is_document_marker(line: &str) -> bool {
    (line.starts_with("---") || line.starts_with("..."))
        && line[3..]
            .chars()
            .next()
            .is_none_or(|c| c == ' ' || c == '\t')
}

/// The continuation lines (1-based) of the quoted scalar that starts at
/// `line`/`col`. Lines starting with a document marker are left alone:
/// PyYAML refuses those inside a quoted scalar too.
fn quoted_continuations(lines: &[&str], line: usize, col: usize) -> Option<Vec<usize>> {
    let first = lines.get(line - 1)?;
    let mut chars = first.chars().skip(col);
    let quote = chars.next().filter(|q| *q == '"' || *q == '\'')?;
    let mut out = Vec::new();
    let mut rest: Vec<char> = chars.collect();
    let mut current = line;
    loop {
        let mut i = 0;
        while i < rest.len() {
            match rest[i] {
                '\\' if quote == '"' => i += 2,
                '\'' if quote == '\'' && rest.get(i + 1) == Some(&'\'') => i += 2,
                c if c == quote => return Some(out),
                _ => i += 1,
            }
        }
        current += 1;
        let next = lines.get(current - 1)?;
        if is_document_marker(next) {
            return None;
        }
        out.push(current);
        rest = next.chars().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_line_is_indented() {
        let mut shifts = Shifts::default();
        let fixed = repair(
            "a: [1,\n2]\n",
            "invalid indentation in flow construct",
            2,
            0,
            &mut shifts,
        );
        assert_eq!(fixed.as_deref(), Some("a: [1,\n       2]\n"));
        assert_eq!(shifts.column(2, 8), 1);
        assert_eq!(shifts.column(1, 4), 4);
    }

    #[test]
    fn markers_and_other_errors_are_left_alone() {
        let mut shifts = Shifts::default();
        assert!(repair("a: [1,\n--- ]\n", "invalid indentation", 2, 0, &mut shifts).is_none());
        assert!(repair("a: [1,\n---]\n", "invalid indentation", 2, 0, &mut shifts).is_some());
        assert!(repair("a: [1,\n2]\n", "some other error", 2, 0, &mut shifts).is_none());
        assert!(repair("a: [1,\r\n2]\n", "invalid indentation", 2, 0, &mut shifts).is_none());
        let fixed = repair(
            "a:\n  b: [x\ny]\n",
            "invalid indentation",
            3,
            1,
            &mut shifts,
        );
        assert_eq!(fixed.as_deref(), Some("a:\n  b: [x\n        y]\n"));
    }

    #[test]
    fn tabs_leading_a_quoted_continuation_become_spaces() {
        let mut shifts = Shifts::default();
        let fixed = repair(
            "a: 'x\n\t y'\n",
            "tab cannot be used as indentation",
            2,
            0,
            &mut shifts,
        );
        assert_eq!(fixed.as_deref(), Some("a: 'x\n  y'\n"));
    }

    #[test]
    fn quoted_scalar_continuations() {
        let mut shifts = Shifts::default();
        let text = "a:\n  b: \"x \\\" y\nz\nw\"\nc: 1\n";
        let fixed = repair(
            text,
            "invalid indentation in quoted scalar",
            2,
            5,
            &mut shifts,
        )
        .unwrap();
        let pad = " ".repeat(13);
        assert_eq!(
            fixed,
            format!("a:\n  b: \"x \\\" y\n{pad}z\n{pad}w\"\nc: 1\n")
        );
        let text = "a: 'it''s\n---\n'";
        assert!(repair(
            text,
            "invalid indentation in quoted scalar",
            1,
            3,
            &mut shifts
        )
        .is_none());
        // `...y` is content, not a document marker.
        let text = "a:\n  b: 'x\n...y'";
        let fixed = repair(
            text,
            "invalid indentation in quoted scalar",
            2,
            5,
            &mut shifts,
        );
        assert!(fixed.is_some());
    }
}
