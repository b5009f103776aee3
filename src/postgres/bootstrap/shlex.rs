//! Python's `shlex.split` (POSIX mode, no comments): how Patroni turns a
//! configured command string into an argument list without a shell.

/// Splits `text` into words: whitespace separates words, single quotes
/// keep everything literally, double quotes let a backslash escape only
/// `"` and `\`, and outside quotes a backslash escapes any character.
/// Errors carry Python's messages.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has started: `''` is an (empty) word of its own.
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("No closing quotation".to_owned()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("No closing quotation".to_owned()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("No closing quotation".to_owned()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("No escaped character".to_owned()),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split;

    /// Expectations produced by Python 3.11's `shlex.split`.
    #[test]
    fn matches_python() {
        let table: [(&str, &[&str]); 9] = [
            ("a b", &["a", "b"]),
            ("\"a b\"", &["a b"]),
            ("a\\ b", &["a b"]),
            ("'x\\y'", &["x\\y"]),
            ("\"x\\\"y\"", &["x\"y"]),
            ("\"x\\ny\"", &["x\\ny"]),
            ("a#b c", &["a#b", "c"]),
            ("a '' b", &["a", "", "b"]),
            ("  /bin/cmd   --x='1 2'\t", &["/bin/cmd", "--x=1 2"]),
        ];
        for (text, want) in table {
            assert_eq!(split(text).expect(text), want, "{text:?}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(split("\"unbalanced").unwrap_err(), "No closing quotation");
        assert_eq!(split("'x").unwrap_err(), "No closing quotation");
        assert_eq!(split("a\\").unwrap_err(), "No escaped character");
    }
}
