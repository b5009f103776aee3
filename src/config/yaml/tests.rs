//! Whole-document tests of [`load`]; the per-rule tables live next to the
//! resolver and the scalar constructors.

use super::*;
use crate::config::value::{Map, TimeOfDay, Timestamp};

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

fn map(entries: Vec<(Value, Value)>) -> Value {
    Value::Map(entries.into_iter().collect())
}

fn keys(v: &Value) -> Vec<Value> {
    v.as_map().expect("a mapping").keys().cloned().collect()
}

fn load_ok(text: &str) -> Value {
    load(text).unwrap_or_else(|e| panic!("{text:?} failed: {e}"))
}

fn load_err(text: &str) -> YamlError {
    match load(text) {
        Ok(v) => panic!("{text:?} should fail, got {v:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_streams_are_null() {
    for text in [
        "",
        "   \n",
        "# only a comment\n",
        "---\n",
        "--- \n...\n",
        "--- ~\n...\n...\n",
    ] {
        assert_eq!(load_ok(text), Value::Null, "{text:?}");
    }
}

#[test]
fn golden_scalars() {
    // The input behind config_env/env_and_yaml_parsing.json's
    // `yaml11_scalars_pyyaml_safe_load`, with the values PyYAML gave.
    let doc = "a_on: on\na_off: off\na_yes: yes\na_no: no\na_y: y\na_n: n\na_True: True\n\
               a_TRUE: TRUE\na_On: On\na_quoted_on: 'on'\na_octal: 0640\na_0o: 0o640\n\
               a_hex: 0x1F\na_sexagesimal: 1:20\na_float: 1e3\na_tilde: ~\na_null: null\n\
               a_date: 2024-01-02\na_ver: 15.2\na_lag: 1MB\na_list_flow: [a, b]\n";
    let v = load_ok(doc);
    let m = v.as_map().unwrap();
    let expect = [
        ("a_on", Value::Bool(true)),
        ("a_off", Value::Bool(false)),
        ("a_yes", Value::Bool(true)),
        ("a_no", Value::Bool(false)),
        ("a_y", s("y")),
        ("a_n", s("n")),
        ("a_True", Value::Bool(true)),
        ("a_TRUE", Value::Bool(true)),
        ("a_On", Value::Bool(true)),
        ("a_quoted_on", s("on")),
        ("a_octal", Value::Int(416)),
        ("a_0o", s("0o640")),
        ("a_hex", Value::Int(31)),
        ("a_sexagesimal", Value::Int(80)),
        ("a_float", s("1e3")),
        ("a_tilde", Value::Null),
        ("a_null", Value::Null),
        (
            "a_date",
            Value::Timestamp(Timestamp {
                year: 2024,
                month: 1,
                day: 2,
                time: None,
            }),
        ),
        ("a_ver", Value::Float(15.2)),
        ("a_lag", s("1MB")),
        ("a_list_flow", Value::Seq(vec![s("a"), s("b")])),
    ];
    assert_eq!(m.len(), expect.len());
    for (k, want) in expect {
        assert_eq!(m.get(k), Some(&want), "{k}");
    }
}

#[test]
fn quoted_and_block_scalars_are_strings() {
    let v = load_ok("a: '0640'\nb: \"yes\"\nc: |\n  123\nd: >-\n  on\n  off\ne: |2+\n   x\n\n");
    let m = v.as_map().unwrap();
    assert_eq!(m.get("a"), Some(&s("0640")));
    assert_eq!(m.get("b"), Some(&s("yes")));
    assert_eq!(m.get("c"), Some(&s("123\n")));
    assert_eq!(m.get("d"), Some(&s("on off")));
    assert_eq!(m.get("e"), Some(&s(" x\n\n")));
}

#[test]
fn explicit_tags() {
    let v = load_ok(
        "a: !!str 123\nb: !!int '0x10'\nc: !!float 1e3\nd: !!bool 'ON'\ne: !!null x\n\
         f: !!timestamp 2024-1-2\ng: !!str\nh: ! 12\ni: ! '12'\nj: !!str {=: x}\n\
         k: !<tag:yaml.org,2002:int> '7'\n",
    );
    let m = v.as_map().unwrap();
    assert_eq!(m.get("a"), Some(&s("123")));
    assert_eq!(m.get("b"), Some(&Value::Int(16)));
    assert_eq!(m.get("c"), Some(&Value::Float(1000.0)));
    assert_eq!(m.get("d"), Some(&Value::Bool(true)));
    assert_eq!(m.get("e"), Some(&Value::Null));
    assert!(
        matches!(m.get("f"), Some(Value::Timestamp(t)) if (t.year, t.month, t.day) == (2024, 1, 2))
    );
    assert_eq!(m.get("g"), Some(&s("")));
    // The non-specific tag `!` means "resolve as if plain", even quoted.
    assert_eq!(m.get("h"), Some(&Value::Int(12)));
    assert_eq!(m.get("i"), Some(&Value::Int(12)));
    assert_eq!(m.get("j"), Some(&s("x")));
    assert_eq!(m.get("k"), Some(&Value::Int(7)));
    // `%TAG` handles expand to full tags.
    let v = load_ok("%TAG !e! tag:yaml.org,2002:\n---\n[!e!int '5']\n");
    assert_eq!(v, Value::Seq(vec![Value::Int(5)]));
}

#[test]
fn bad_tags_and_values_fail() {
    for text in [
        "a: !foo x",
        "a: !!python/object:os.system x",
        "a: !!int abc",
        "a: !!int ''",
        "a: !!float x",
        "a: !!bool maybe",
        "a: !!timestamp yesterday",
        "a: !!map [1]",
        "a: !!seq {a: 1}",
        "a: !!str [1]",
        "a: !!binary aGVsbG8=",
        "a: !!set {a, b}",
        "a: =",
        "[<<]",
        "a: 2024-13-01",
        "a: 0b_",
        "a: 0x_",
        "! |\n  yes\n",
    ] {
        let e = load_err(text);
        assert!(e.line >= 1 && e.column >= 1, "{text:?}: {e}");
    }
}

#[test]
fn non_specific_tag_on_block_scalar_keeps_python_dollar_semantics() {
    // Python's `$` matches before the final newline: "123\n" resolves to int.
    assert_eq!(load_ok("! |\n  123\n"), Value::Int(123));
    assert_eq!(load_ok("! |\n  ~\n"), Value::Null);
}

#[test]
fn value_key_becomes_string() {
    let v = load_ok("{=: 1, a: 2}");
    assert_eq!(keys(&v), vec![s("="), s("a")]);
}

#[test]
fn non_string_keys_and_duplicates() {
    let v = load_ok("1: a\ntrue: b\n~: c\n1.5: d\n2024-01-02: e\nx: 1\nx: 2\n");
    let k = keys(&v);
    // `true == 1` in Python: the second key replaces the value of the first.
    assert_eq!(k.len(), 5);
    assert_eq!(k[0], Value::Int(1));
    assert_eq!(v.as_map().unwrap().get_value(&Value::Int(1)), Some(&s("b")));
    assert_eq!(k[1], Value::Null);
    assert_eq!(k[2], Value::Float(1.5));
    assert!(matches!(k[3], Value::Timestamp(_)));
    assert_eq!(v.as_map().unwrap().get("x"), Some(&Value::Int(2)));
    for text in ["? [1]\n: a\n", "{[1]: a}", "? {a: 1}\n: b\n"] {
        assert!(load_err(text).message.contains("unhashable"), "{text:?}");
    }
}

#[test]
fn merge_keys_follow_pyyaml_precedence() {
    let text = "\
base: &base {a: 1, b: 2}
other: &other {b: 3, c: 4}
one:
  <<: *base
  b: 9
list:
  <<: [*base, *other]
  d: 5
";
    let v = load_ok(text);
    let m = v.as_map().unwrap();
    assert_eq!(
        m.get("one"),
        Some(&map(vec![(s("a"), Value::Int(1)), (s("b"), Value::Int(9))]))
    );
    // Later sources go first, so earlier sources win; key order follows.
    let list = m.get("list").unwrap();
    assert_eq!(keys(list), vec![s("b"), s("c"), s("a"), s("d")]);
    assert_eq!(list.as_map().unwrap().get("b"), Some(&Value::Int(2)));
    // Explicit keys before `<<` still win, but merged keys come first.
    let v = load_ok("b: &b {x: 1, y: 2}\nm: {y: 7, <<: *b}\n");
    let m = v.as_map().unwrap().get("m").unwrap();
    assert_eq!(keys(m), vec![s("x"), s("y")]);
    assert_eq!(m.as_map().unwrap().get("y"), Some(&Value::Int(7)));
    // Merging a mapping into itself is harmless in PyYAML.
    assert_eq!(
        load_ok("&a {x: 1, <<: *a}"),
        map(vec![(s("x"), Value::Int(1))])
    );
    for bad in ["a: {<<: 1}", "a: {<<: [1]}", "a: {<<: [{x: 1}, [2]]}"] {
        assert!(load_err(bad).message.contains("merg"), "{bad:?}");
    }
    // A quoted "<<" is an ordinary key.
    assert_eq!(keys(&load_ok("'<<': {a: 1}")), vec![s("<<")]);
}

#[test]
fn anchors_and_aliases() {
    let v = load_ok("a: &x [1, 2]\nb: *x\nc: &y {k: v}\nd: *y\n");
    let m = v.as_map().unwrap();
    assert_eq!(m.get("a"), m.get("b"));
    assert_eq!(m.get("c"), m.get("d"));
    assert!(load_err("[&a x, &a y]")
        .message
        .contains("duplicate anchor"));
    assert!(load_err("[&a.b x]").message.contains("alphabetic"));
    assert!(load_err("[*nope]").line == 1);
    assert!(load_err("&a [*a]").message.contains("recursive"));
    assert!(load_err("&a {k: *a}").message.contains("recursive"));
    // Properties in either order, the anchor after a tag.
    let v = load_ok("a: !!str &t 12\nb: *t\nc: &u !!int '3'\nd: *u\n");
    assert_eq!(v.as_map().unwrap().get("b"), Some(&s("12")));
    assert_eq!(v.as_map().unwrap().get("d"), Some(&Value::Int(3)));
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let prev = format!("*a{}", i - 1);
        let refs = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    assert!(load_err(&text).message.contains("more than"));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    assert!(load(&deep).is_err());
    let ok = "[".repeat(100) + &"]".repeat(100);
    assert!(load(&ok).is_ok());
}

#[test]
fn several_documents_are_an_error() {
    let e = load_err("a: 1\n---\nb: 2\n");
    assert!(e.message.contains("single document"));
    assert_eq!((e.line, e.column), (2, 1));
    assert!(load("a: 1\n...\n").is_ok());
}

#[test]
fn version_directive() {
    assert_eq!(
        load_ok("%YAML 1.1\n---\na: on\n"),
        map(vec![(s("a"), Value::Bool(true))])
    );
    assert!(load("%YAML 1.2\n--- a\n").is_ok());
    assert!(load_err("%YAML 2.0\n--- a\n")
        .message
        .contains("incompatible"));
}

#[test]
fn unprintable_characters() {
    let e = load_err("a: 1\nb: x\u{1}y\n");
    assert_eq!((e.line, e.column), (2, 5));
    assert!(e.message.contains("#x0001"));
    assert!(load_err("# \u{7f}\n").message.contains("#x007f"));
    assert!(load("a: \u{e9}\u{1f600}\n").is_ok());
}

#[test]
fn syntax_errors_have_positions() {
    let e = load_err("a: b\n  c: d: e\n");
    assert_eq!(e.line, 2);
    let shown = e.to_string();
    assert!(
        shown.starts_with("YAML error at line 2, column "),
        "{shown}"
    );
    assert!(!shown.contains('\n'));
}

#[test]
fn timestamps_in_documents() {
    let v = load_ok("t: 2001-12-14t21:59:43.10-05:00\n");
    let want = Value::Timestamp(Timestamp {
        year: 2001,
        month: 12,
        day: 14,
        time: Some(TimeOfDay {
            hour: 21,
            minute: 59,
            second: 43,
            microsecond: 100_000,
            utc_offset: Some(-18_000),
        }),
    });
    assert_eq!(v.as_map().unwrap().get("t"), Some(&want));
}

#[test]
fn big_ints() {
    let v = load_ok("a: 99999999999999999999\nb: -0x8000000000000001\n");
    let m = v.as_map().unwrap();
    assert_eq!(
        m.get("a"),
        Some(&Value::BigInt("99999999999999999999".into()))
    );
    assert_eq!(
        m.get("b"),
        Some(&Value::BigInt("-9223372036854775809".into()))
    );
}

#[test]
fn a_realistic_patroni_config() {
    let text = "\
scope: demo
name: node1
restapi:
  listen: 0.0.0.0:8008
  authentication: {username: patroni, password: 'rest-secret'}
bootstrap:
  dcs:
    ttl: 30
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: on
        max_wal_senders: 10
  pg_hba:
  - host replication repl 127.0.0.1/32 md5
tags:
  nofailover: false
log:
  mode: 0640
";
    let v = load_ok(text);
    let m = v.as_map().unwrap();
    assert_eq!(
        m.get("restapi").unwrap().as_map().unwrap().get("listen"),
        Some(&s("0.0.0.0:8008"))
    );
    let params = m
        .get("bootstrap")
        .unwrap()
        .as_map()
        .unwrap()
        .get("dcs")
        .unwrap()
        .as_map()
        .unwrap()
        .get("postgresql")
        .unwrap()
        .as_map()
        .unwrap()
        .get("parameters")
        .unwrap()
        .as_map()
        .unwrap();
    assert_eq!(params.get("hot_standby"), Some(&Value::Bool(true)));
    assert_eq!(
        m.get("log").unwrap().as_map().unwrap().get("mode"),
        Some(&Value::Int(416))
    );
    let _ = Map::new();
}

/// A tiny deterministic generator so the fuzz test needs no extra crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn fuzz_never_panics() {
    const PIECES: &[&str] = &[
        "a",
        ":",
        " ",
        "\n",
        "  ",
        "-",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a",
        "*a",
        "!",
        "!!",
        "<<",
        "=",
        "'",
        "\"",
        "|",
        ">",
        "#",
        "?",
        "---",
        "...",
        "%YAML 1.1",
        "%TAG ! !",
        "\t",
        "0x",
        "1:2",
        "~",
        "\\",
        "&",
        "*",
        "\u{feff}",
        "\u{85}",
        "é",
        "\r",
        "@",
        "`",
        "%",
        "!!int ",
        "!<x>",
        "!!float ",
        "!!timestamp ",
        "!!bool ",
        "!!null ",
        "!!str ",
        "!!map ",
        "!!seq ",
        "0\u{e9}",
        "0b",
        "0o",
        "+",
        "1_",
        ".",
        "e",
        "2024-01-0",
        "9:",
        " 0x",
        "<< ",
        ": *a",
        "\n  - ",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = (rng.next() % 24) as usize;
        let mut text = String::new();
        for _ in 0..len {
            text.push_str(PIECES[(rng.next() % PIECES.len() as u64) as usize]);
        }
        let _ = load(&text);
    }
    // Explicit tags on random short texts, to reach every constructor.
    const TAGS: &[&str] = &["!!int", "!!float", "!!bool", "!!timestamp", "!!null", "!"];
    const CHARS: &[char] = &[
        '0', '1', '9', 'x', 'b', 'o', '_', ':', '.', '-', '+', 'e', 'é', ' ', 'T', 'Z',
    ];
    for _ in 0..20_000 {
        let tag = TAGS[(rng.next() % TAGS.len() as u64) as usize];
        let len = (rng.next() % 12) as usize;
        let text: String = (0..len)
            .map(|_| CHARS[(rng.next() % CHARS.len() as u64) as usize])
            .collect();
        let _ = load(&format!("a: {tag} \"{text}\"\n"));
    }
    for _ in 0..5_000 {
        let len = (rng.next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() % 128) as u8).collect();
        let _ = load(&String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn flow_and_quoted_continuations_may_be_under_indented() {
    // PyYAML does not check indentation inside flow collections or quoted
    // scalars; YAML 1.2 does, so these need the repair pass.
    let v = load_ok("a:\n  b: [1,\n2, 3]\n  c: \"x\ny\"\nd: 1\n");
    let a = v.as_map().unwrap().get("a").unwrap().as_map().unwrap();
    assert_eq!(
        a.get("b"),
        Some(&Value::Seq(vec![
            Value::Int(1),
            Value::Int(2),
            Value::Int(3)
        ]))
    );
    assert_eq!(a.get("c"), Some(&s("x y")));
    // Errors after a repair still point into the original text.
    let e = load_err("a:\n  b: [1,\n2, !foo 3]\n");
    assert_eq!((e.line, e.column), (3, 4));
}

#[test]
fn leading_document_end_marker_is_an_error() {
    // PyYAML wants node content before a `...` that opens the stream.
    for text in ["...\n", "# c\n...\n", "..."] {
        assert!(load_err(text).message.contains("document end"), "{text:?}");
    }
    assert_eq!(load_ok("....\n"), s("...."));
}

#[test]
fn block_scalar_at_end_of_input_without_line_break() {
    // PyYAML adds no final line break when the input has none.
    let table: &[(&str, &str)] = &[
        ("a: |\n  x", "x"),
        ("a: |+\n  x", "x"),
        ("a: |-\n  x", "x"),
        ("a: >\n  x\n  y", "x y"),
        ("a: |\n  x\n  ", "x\n"),
        ("a: |+\n  x\n  ", "x\n"),
        ("a: |+\n  x\n\n  ", "x\n\n"),
        ("a: |\n  x\n\n ", "x\n"),
        ("a: |\n  x\n", "x\n"),
        ("a: |+\n  x\n\n", "x\n\n"),
    ];
    for (text, want) in table {
        assert_eq!(
            load_ok(text).as_map().unwrap().get("a"),
            Some(&s(want)),
            "{text:?}"
        );
    }
    assert_eq!(
        load_ok("- |\n  x\n- |\n  y"),
        Value::Seq(vec![s("x\n"), s("y")])
    );
}

#[test]
fn nan_keys_are_one_key() {
    let v = load_ok(".nan: 1\n.NaN: 2\n");
    let m = v.as_map().unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m.iter().next().map(|(_, v)| v), Some(&Value::Int(2)));
}

#[test]
fn tabs_follow_pyyaml() {
    for bad in [
        "a: b\t\n",
        "a:\tb\n",
        "a: b\tc\n",
        "\ta: 1\n",
        "a: [1,\t2]\n",
        "- \ta\n",
    ] {
        load_err(bad);
    }
    assert!(load_err("a: b\t\n").message.contains("'\\t'"));
    let v = load_ok("a: 'b\tc'\nb: \"\td\"\nc: |\n  e\tf\n# \tcomment\nd: 'x\n\ty'\n");
    let m = v.as_map().unwrap();
    assert_eq!(m.get("a"), Some(&s("b\tc")));
    assert_eq!(m.get("b"), Some(&s("\td")));
    assert_eq!(m.get("c"), Some(&s("e\tf\n")));
    assert_eq!(m.get("d"), Some(&s("x y")));
}

#[test]
fn empty_keys_need_an_explicit_question_mark() {
    for bad in [
        ": v\n",
        "- : v\n",
        "a:\n  : v\n",
        "{: v}",
        "[: v]",
        "{a: 1, : 2}",
    ] {
        assert!(load_err(bad).message.contains("empty key"), "{bad:?}");
    }
    for good in [
        "? \n: v\n",
        "?\n: v\n",
        "? # c\n: v\n",
        "{? : v}",
        "&x : v\n",
    ] {
        let v = load_ok(good);
        assert_eq!(keys(&v), vec![Value::Null], "{good:?}");
    }
    assert_eq!(keys(&load_ok("!!str : v\n")), vec![s("")]);
}

#[test]
fn top_level_block_scalars_must_be_indented() {
    for bad in ["|\nabc\n", "--- |\nabc\n", ">\n\nabc\n"] {
        assert!(load_err(bad).message.contains("indented"), "{bad:?}");
    }
    assert_eq!(load_ok("--- |\n  abc\n"), s("abc\n"));
    assert_eq!(load_ok("|\n\n  x\n"), s("\nx\n"));
    assert_eq!(load_ok("|\n"), s(""));
    assert_eq!(load_ok("&b\n>\n"), s(""));
    assert_eq!(load_ok("!!str &c\n|\n  x\n"), s("x\n"));
}

#[test]
fn flow_plain_scalars_follow_pyyaml() {
    for bad in ["[a?b]", "{a: x?y}", "[http://x/?a=b]", "[>a]", "a: [x, |y]"] {
        load_err(bad);
    }
    assert_eq!(load_ok("a: x?y\n"), map(vec![(s("a"), s("x?y"))]));
    assert_eq!(
        load_ok("a: ['x?y']\n"),
        map(vec![(s("a"), Value::Seq(vec![s("x?y")]))])
    );
    // A flow key of a block mapping does not make the value flow content.
    assert!(load("[a]: x?y\n")
        .unwrap_err()
        .message
        .contains("unhashable"));
}

#[test]
fn a_lone_dash_before_a_flow_indicator_is_a_plain_scalar() {
    // PyYAML: {-} -> {'-': None}, [-] -> ['-'], {a, -} -> {'a': None, '-': None}.
    assert_eq!(load_ok("{-}"), map(vec![(s("-"), Value::Null)]));
    assert_eq!(load_ok("[-]"), Value::Seq(vec![s("-")]));
    assert_eq!(load_ok("[-, -]"), Value::Seq(vec![s("-"), s("-")]));
    assert_eq!(
        load_ok("x: {a, -}\n"),
        map(vec![(
            s("x"),
            map(vec![(s("a"), Value::Null), (s("-"), Value::Null)])
        )])
    );
    // Followed by a blank it is still refused, as PyYAML does.
    load_err("{- }");
}
