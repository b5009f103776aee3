//! Python `logging.Formatter` with `%`-style format strings.
//!
//! A format is parsed once, when the `log` section is applied. Every record
//! attribute has a fixed Python type, so everything that would make Python's
//! `fmt % record.__dict__` raise on *every* record (an unknown attribute, `%d`
//! applied to a string, a stray `%`) is found up front and reported as a
//! configuration error instead of a stream of "--- Logging error ---"
//! tracebacks with every record lost, which is what Python Patroni does.

use super::pyfmt;
use super::record::{self, attr_type, Attr, AttrType, Record};

/// Why a format string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Python's `Formatter(fmt)` check: at least one `%(name)X` placeholder.
    #[error("invalid log format {0:?}: it has no %(name)s style placeholder")]
    NoPlaceholder(String),
    #[error("log format references unknown record attribute {0:?}")]
    UnknownAttribute(String),
    #[error("log format: %{conv} cannot format attribute {attr:?} (a Python {ty})")]
    BadConversion {
        attr: String,
        conv: char,
        ty: &'static str,
    },
    #[error("log format: unsupported format character {0:?}")]
    Unsupported(char),
    #[error("log format: incomplete placeholder at the end of {0:?}")]
    Incomplete(String),
    #[error("log format: placeholders without a %(name) key or with '*' are not supported")]
    Positional,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Flags {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Spec {
    key: String,
    flags: Flags,
    width: Option<usize>,
    precision: Option<usize>,
    conv: char,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Field(Spec),
}

/// A parsed `%`-style format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PercentFormat {
    pieces: Vec<Piece>,
    uses_time: bool,
}

/// Python's `PercentStyle.validation_pattern`, searched anywhere in the
/// format: `%\(\w+\)[#0+ -]*(\*|\d+)?(\.(\*|\d+))?[diouxefgcrsa%]`, ignoring case.
pub fn has_valid_placeholder(fmt: &str) -> bool {
    let chars: Vec<char> = fmt.chars().collect();
    (0..chars.len()).any(|i| matches_placeholder_at(&chars, i))
}

fn matches_placeholder_at(c: &[char], mut i: usize) -> bool {
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    if c.get(i) != Some(&'%') || c.get(i + 1) != Some(&'(') {
        return false;
    }
    i += 2;
    let start = i;
    while c.get(i).is_some_and(|&ch| word(ch)) {
        i += 1;
    }
    if i == start || c.get(i) != Some(&')') {
        return false;
    }
    i += 1;
    while c.get(i).is_some_and(|ch| "#0+ -".contains(*ch)) {
        i += 1;
    }
    // Width and precision: the regex backtracks, but a greedy scan gives
    // the same answer because digits and '*' cannot be conversion letters.
    if c.get(i) == Some(&'*') {
        i += 1;
    } else {
        while c.get(i).is_some_and(char::is_ascii_digit) {
            i += 1;
        }
    }
    if c.get(i) == Some(&'.')
        && c.get(i + 1)
            .is_some_and(|ch| *ch == '*' || ch.is_ascii_digit())
    {
        i += 1;
        if c.get(i) == Some(&'*') {
            i += 1;
        } else {
            while c.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
        }
    }
    c.get(i)
        .is_some_and(|ch| "diouxefgcrsa%".contains(ch.to_ascii_lowercase()))
}

impl PercentFormat {
    /// Parse and type-check `fmt` against the record attributes.
    pub fn parse(fmt: &str) -> Result<PercentFormat, FormatError> {
        if !has_valid_placeholder(fmt) {
            return Err(FormatError::NoPlaceholder(fmt.to_owned()));
        }
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut it = fmt.chars().peekable();
        let incomplete = || FormatError::Incomplete(fmt.to_owned());
        while let Some(c) = it.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let Some(&next) = it.peek() else {
                return Err(incomplete());
            };
            if next == '%' {
                it.next();
                lit.push('%');
                continue;
            }
            if next != '(' {
                return Err(FormatError::Positional);
            }
            it.next();
            // The key runs to the matching ')', counting nested parentheses.
            let mut key = String::new();
            let mut depth = 1;
            loop {
                match it.next() {
                    None => return Err(incomplete()),
                    Some('(') => {
                        depth += 1;
                        key.push('(');
                    }
                    Some(')') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                        key.push(')');
                    }
                    Some(ch) => key.push(ch),
                }
            }
            let mut flags = Flags::default();
            while let Some(&ch) = it.peek() {
                match ch {
                    '-' => flags.left = true,
                    '0' => flags.zero = true,
                    '+' => flags.plus = true,
                    ' ' => flags.space = true,
                    '#' => flags.alt = true,
                    _ => break,
                }
                it.next();
            }
            let number = |it: &mut std::iter::Peekable<std::str::Chars>| {
                let mut n: Option<usize> = None;
                while let Some(d) = it.peek().and_then(|ch| ch.to_digit(10)) {
                    n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
                    it.next();
                }
                n
            };
            if it.peek() == Some(&'*') {
                return Err(FormatError::Positional);
            }
            let width = number(&mut it);
            let precision = if it.peek() == Some(&'.') {
                it.next();
                if it.peek() == Some(&'*') {
                    return Err(FormatError::Positional);
                }
                Some(number(&mut it).unwrap_or(0))
            } else {
                None
            };
            // Python accepts and ignores C length modifiers.
            while matches!(it.peek(), Some('h' | 'l' | 'L')) {
                it.next();
            }
            let conv = it.next().ok_or_else(incomplete)?;
            if conv == '%' {
                // `%(key)%` prints a percent sign without looking the key up.
                lit.push('%');
                continue;
            }
            check_conversion(&key, conv)?;
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Field(Spec {
                key,
                flags,
                width,
                precision,
                conv,
            }));
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(PercentFormat {
            pieces,
            // Python's `usesTime()` is a plain substring search.
            uses_time: fmt.contains("%(asctime)"),
        })
    }

    /// Does the format need `asctime` (so it must be computed)?
    pub fn uses_time(&self) -> bool {
        self.uses_time
    }

    /// `fmt % record.__dict__`, with `asctime` supplied by the caller.
    pub fn render(&self, rec: &Record, asctime: Option<&str>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Lit(s) => out.push_str(s),
                Piece::Field(spec) => {
                    let value = if spec.key == "asctime" {
                        Attr::Str(asctime.unwrap_or_default().to_owned())
                    } else {
                        rec.attr(&spec.key).unwrap_or(Attr::None)
                    };
                    render_field(spec, &value, &mut out);
                }
            }
        }
        out
    }
}

fn check_conversion(key: &str, conv: char) -> Result<(), FormatError> {
    let ty = attr_type(key).ok_or_else(|| FormatError::UnknownAttribute(key.to_owned()))?;
    let (ok, tyname) = match ty {
        AttrType::Str => ("rsa".contains(conv) || conv == 's', "str"),
        AttrType::None => ("rsa".contains(conv), "NoneType"),
        AttrType::Int => ("rsadiuxXofFeEgG".contains(conv), "int"),
        AttrType::Float => ("rsadiufFeEgG".contains(conv), "float"),
    };
    if !"rsadiuxXofFeEgGc".contains(conv) {
        return Err(FormatError::Unsupported(conv));
    }
    if ok {
        Ok(())
    } else {
        Err(FormatError::BadConversion {
            attr: key.to_owned(),
            conv,
            ty: tyname,
        })
    }
}

/// Pad `body` (already carrying its sign/prefix in `sign`) to the width.
fn pad(spec: &Spec, sign: &str, body: &str, numeric: bool, out: &mut String) {
    let len = sign.chars().count() + body.chars().count();
    let fill = spec.width.unwrap_or(0).saturating_sub(len);
    if spec.flags.left {
        out.push_str(sign);
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.flags.zero && numeric {
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(body);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(sign);
        out.push_str(body);
    }
}

fn sign_of(negative: bool, flags: &Flags) -> &'static str {
    if negative {
        "-"
    } else if flags.plus {
        "+"
    } else if flags.space {
        " "
    } else {
        ""
    }
}

fn render_field(spec: &Spec, value: &Attr, out: &mut String) {
    match spec.conv {
        's' | 'r' | 'a' => {
            let text = match (value, spec.conv) {
                (Attr::Str(s), 's') => s.clone(),
                (Attr::Str(s), 'r') => pyfmt::str_repr(s),
                (Attr::Str(s), _) => pyfmt::str_ascii(s),
                (Attr::Int(i), _) => i.to_string(),
                (Attr::Float(f), _) => pyfmt::float_repr(*f),
                (Attr::None, _) => "None".to_owned(),
            };
            let text: String = match spec.precision {
                Some(p) => text.chars().take(p).collect(),
                None => text,
            };
            pad(spec, "", &text, false, out);
        }
        'd' | 'i' | 'u' | 'x' | 'X' | 'o' => {
            let n: i128 = match value {
                Attr::Int(i) => i128::from(*i),
                // int(float) truncates; record floats are finite.
                Attr::Float(f) if f.is_finite() => f.trunc() as i128,
                _ => 0,
            };
            let (digits, prefix) = match spec.conv {
                'x' => (format!("{:x}", n.unsigned_abs()), "0x"),
                'X' => (format!("{:X}", n.unsigned_abs()), "0X"),
                'o' => (format!("{:o}", n.unsigned_abs()), "0o"),
                _ => (n.unsigned_abs().to_string(), ""),
            };
            let digits = match spec.precision {
                Some(p) if p > digits.len() => format!("{}{digits}", "0".repeat(p - digits.len())),
                _ => digits,
            };
            let mut sign = sign_of(n < 0, &spec.flags).to_owned();
            if spec.flags.alt {
                sign.push_str(prefix);
            }
            pad(spec, &sign, &digits, true, out);
        }
        _ => {
            let x = match value {
                Attr::Int(i) => *i as f64,
                Attr::Float(f) => *f,
                _ => 0.0,
            };
            let prec = spec.precision.unwrap_or(6);
            let upper = spec.conv.is_ascii_uppercase();
            let a = x.abs();
            let body = if !x.is_finite() {
                let t = if x.is_nan() { "nan" } else { "inf" };
                if upper {
                    t.to_uppercase()
                } else {
                    t.to_owned()
                }
            } else {
                match spec.conv.to_ascii_lowercase() {
                    'f' => pyfmt::fixed(a, prec, spec.flags.alt),
                    'e' => pyfmt::exponent(a, prec, spec.flags.alt, upper),
                    _ => pyfmt::general(a, prec, spec.flags.alt, upper),
                }
            };
            let sign = sign_of(x.is_sign_negative() && !x.is_nan(), &spec.flags);
            pad(spec, sign, &body, x.is_finite(), out);
        }
    }
}

/// What Python's `%` style uses for an empty format.
pub const MESSAGE_ONLY: &str = "%(message)s";

/// Python's `logging.Formatter(fmt, datefmt)` for Patroni's plain log type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatter {
    fmt: PercentFormat,
    datefmt: Option<String>,
}

impl Formatter {
    /// An empty `fmt` means `%(message)s`, as in Python.
    pub fn new(fmt: &str, datefmt: Option<&str>) -> Result<Formatter, FormatError> {
        let fmt = if fmt.is_empty() { MESSAGE_ONLY } else { fmt };
        Ok(Formatter {
            fmt: PercentFormat::parse(fmt)?,
            datefmt: datefmt.filter(|d| !d.is_empty()).map(str::to_owned),
        })
    }

    /// One log line, without the trailing newline.
    pub fn format(&self, rec: &Record) -> String {
        let asctime = self
            .fmt
            .uses_time()
            .then(|| record::format_time(rec.created, rec.msecs(), self.datefmt.as_deref()));
        let mut line = self.fmt.render(rec, asctime.as_deref());
        if let Some(exc) = rec.exc_text.as_deref().filter(|t| !t.is_empty()) {
            if !line.ends_with('\n') {
                line.push('\n');
            }
            line.push_str(exc);
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        let mut r = Record::now(
            "patroni.ha",
            record::WARNING,
            "it's up".into(),
            "/x/ha.py",
            42,
        );
        r.created = 1763781020.125;
        r.relative_created = 1234.5678;
        r.thread = 255;
        r.process = 77;
        r
    }

    fn render(fmt: &str) -> String {
        Formatter::new(fmt, Some("%Y"))
            .expect("valid format")
            .format(&rec())
    }

    #[test]
    fn widths_flags_and_conversions() {
        assert_eq!(render("%(levelname)-8s|"), "WARNING |");
        assert_eq!(render("%(levelname)10.4s|"), "      WARN|");
        assert_eq!(
            render("%(lineno)5d|%(lineno)-5d|%(lineno)05d"),
            "   42|42   |00042"
        );
        assert_eq!(
            render("%(lineno)+d %(lineno) d %(lineno).4d"),
            "+42  42 0042"
        );
        assert_eq!(
            render("%(thread)x %(thread)#X %(thread)#o"),
            "ff 0XFF 0o377"
        );
        assert_eq!(render("%(msecs)03d %(msecs).1f"), "125 125.0");
        assert_eq!(
            render("%(relativeCreated).3f %(created)s"),
            "1234.568 1763781020.125"
        );
        assert_eq!(
            render("%(relativeCreated)e %(relativeCreated)g"),
            "1.234568e+03 1234.57"
        );
        assert_eq!(
            render("%(message)r 100%% %(name)a"),
            "\"it's up\" 100% 'patroni.ha'"
        );
        assert_eq!(
            render("%(exc_info)s %(levelno)ld %(process)s"),
            "None 30 77"
        );
    }

    #[test]
    fn error_detail_follows_the_line() {
        let f = Formatter::new("%(levelname)s %(message)s", None).expect("valid");
        let mut r = rec();
        r.exc_text = Some("detail".into());
        assert_eq!(f.format(&r), "WARNING it's up\ndetail");
        r.message = "ends with newline\n".into();
        assert_eq!(f.format(&r), "WARNING ends with newline\ndetail");
    }

    #[test]
    fn asctime_uses_datefmt_without_millis() {
        let out = render("%(asctime)s %(message)s");
        assert_eq!(out.len(), "2025 it's up".len(), "{out}");
        assert!(!out.contains(','));
    }

    #[test]
    fn refuses_what_python_would_fail_on() {
        assert_eq!(
            PercentFormat::parse("no placeholders"),
            Err(FormatError::NoPlaceholder("no placeholders".into()))
        );
        assert_eq!(
            PercentFormat::parse("%(message)s %(user)s"),
            Err(FormatError::UnknownAttribute("user".into()))
        );
        assert!(matches!(
            PercentFormat::parse("%(message)d"),
            Err(FormatError::BadConversion { conv: 'd', .. })
        ));
        assert!(matches!(
            PercentFormat::parse("%(created)x"),
            Err(FormatError::BadConversion { ty: "float", .. })
        ));
        assert_eq!(
            PercentFormat::parse("%(message)s %"),
            Err(FormatError::Incomplete("%(message)s %".into()))
        );
        assert_eq!(
            PercentFormat::parse("%(message)s %s"),
            Err(FormatError::Positional)
        );
        assert_eq!(
            PercentFormat::parse("%(message)s %(message)y"),
            Err(FormatError::Unsupported('y'))
        );
    }

    #[test]
    fn validation_pattern_is_a_search() {
        assert!(has_valid_placeholder("x %(a)-10.3S y"));
        assert!(has_valid_placeholder("%(a)%"));
        assert!(!has_valid_placeholder("%(a b)s"));
        assert!(!has_valid_placeholder("%(a)"));
    }
}
