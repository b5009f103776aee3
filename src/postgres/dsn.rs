//! Connection strings as Patroni reads them (`parse_dsn`): libpq's
//! `key = value` form (values optionally single-quoted, backslash escapes)
//! and `postgres[ql]://` URIs, with `requiressl` turned into `sslmode` and
//! the defaults Patroni fills in (`sslmode`, `gssencmode`,
//! `channel_binding`: `prefer`; `sslnegotiation`: `postgres`).

/// The parameters in the order they came; a repeated key keeps its first
/// position and its last value, as a Python dict does.
pub type Params = Vec<(String, String)>;

fn set(params: &mut Params, key: &str, value: String) {
    match params.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => params.push((key.to_owned(), value)),
    }
}

fn get<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn remove(params: &mut Params, key: &str) -> Option<String> {
    let i = params.iter().position(|(k, _)| k == key)?;
    Some(params.remove(i).1)
}

/// `None` when the string cannot be parsed, else the parameters with
/// Patroni's defaults added.
pub fn parse_dsn(value: &str) -> Option<Params> {
    let mut params = if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        parse_uri(value)
    } else {
        parse_key_values(value)?
    };
    if params.is_empty() {
        return None;
    }
    if get(&params, "sslmode").is_none() {
        match remove(&mut params, "requiressl").as_deref() {
            Some("1") => set(&mut params, "sslmode", "require".into()),
            Some(_) => set(&mut params, "sslmode", "prefer".into()),
            None => {}
        }
    }
    for (key, default) in [
        ("sslmode", "prefer"),
        ("gssencmode", "prefer"),
        ("channel_binding", "prefer"),
        ("sslnegotiation", "postgres"),
    ] {
        if get(&params, key).is_none() {
            params.push((key.to_owned(), default.to_owned()));
        }
    }
    Some(params)
}

/// `key = value ...`: keys are lower-case letters and underscores; a
/// value is single-quoted (ends at the closing quote) or runs to the next
/// blank; a backslash takes the next character literally.
fn parse_key_values(dsn: &str) -> Option<Params> {
    let chars: Vec<char> = dsn.chars().collect();
    let mut params = Params::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_lowercase() || chars[i] == '_') {
            i += 1;
        }
        if i == start {
            return None;
        }
        let key: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if chars.get(i) != Some(&'=') {
            return None;
        }
        i += 1;
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() {
            return None;
        }
        let (value, next) = read_value(&chars[i..])?;
        i += next;
        set(&mut params, &key, value);
    }
    Some(params)
}

fn read_value(chars: &[char]) -> Option<(String, usize)> {
    let quoted = chars.first() == Some(&'\'');
    let mut value = String::new();
    let mut i = usize::from(quoted);
    while i < chars.len() {
        if quoted {
            if chars[i] == '\'' {
                return Some((value, i + 1));
            }
        } else if chars[i].is_whitespace() {
            break;
        }
        if chars[i] == '\\' {
            i += 1;
            if i >= chars.len() {
                break;
            }
        }
        value.push(chars[i]);
        i += 1;
    }
    // An unterminated quote is an error; a bare value may end anywhere.
    (!quoted).then_some((value, i))
}

/// `%XX` decoding (invalid escapes are kept as they are, like Python's
/// `unquote`); `plus` also turns `+` into a space (query strings).
fn unquote(text: &str, plus: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `postgres[ql]://[user[:password]@][host][:port][,...][/dbname][?k=v&...]`.
fn parse_uri(dsn: &str) -> Params {
    let rest = dsn.split_once("://").map_or("", |(_, r)| r);
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (netloc, tail) = rest.split_at(end);
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, q),
        None => (tail, ""),
    };
    let mut params = Params::new();
    let (userinfo, hostlist) = match netloc.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, netloc),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            params.push(("user".into(), unquote(user, false)));
        }
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            params.push(("password".into(), unquote(p, false)));
        }
    }
    if let Some(db) = path.strip_prefix('/').filter(|d| !d.is_empty()) {
        params.push(("dbname".into(), unquote(db, false)));
    }
    let (mut hosts, mut ports) = (Vec::new(), Vec::new());
    for item in hostlist.split(',') {
        let (host, port) = match item.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((h, after)) => (h.to_owned(), after.strip_prefix(':').unwrap_or("")),
            None => match item.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p),
                None => (item.to_owned(), ""),
            },
        };
        hosts.push(host);
        ports.push(port.to_owned());
    }
    if hosts.iter().any(|h| !h.is_empty()) {
        params.push(("host".into(), unquote(&hosts.join(","), false)));
    }
    if ports.iter().any(|p| !p.is_empty()) {
        params.push(("port".into(), unquote(&ports.join(","), false)));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if let Some((k, v)) = pair.split_once('=') {
            set(&mut params, &unquote(k, true), unquote(v, true));
        }
    }
    if get(&params, "ssl") == Some("true") {
        remove(&mut params, "ssl");
        set(&mut params, "sslmode", "require".into());
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &Params) -> Vec<(&str, &str)> {
        p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn defaults() -> Vec<(&'static str, &'static str)> {
        vec![
            ("sslmode", "prefer"),
            ("gssencmode", "prefer"),
            ("channel_binding", "prefer"),
            ("sslnegotiation", "postgres"),
        ]
    }

    #[test]
    fn key_values_with_quotes_and_escapes() {
        let p = parse_dsn(r" host = 'host' dbname = db\ name requiressl=1 ").unwrap_or_default();
        let mut want = vec![
            ("host", "host"),
            ("dbname", "db name"),
            ("sslmode", "require"),
        ];
        want.extend(defaults().into_iter().skip(1));
        assert_eq!(pairs(&p), want);
        let p = parse_dsn(r"requiressl = 0\").unwrap_or_default();
        assert_eq!(pairs(&p), defaults());
        let p = parse_dsn(r"foo=bar password='it\'s a'").unwrap_or_default();
        assert_eq!(pairs(&p)[..2], [("foo", "bar"), ("password", "it's a")]);
        assert_eq!(parse_dsn("password='it''s'"), None);
    }

    #[test]
    fn broken_strings_are_refused() {
        for bad in [
            "host=a foo = '",
            "host=a foo = ",
            "1",
            "Host=x",
            "host x",
            "",
        ] {
            assert_eq!(parse_dsn(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uris_decode_like_patroni() {
        let p = parse_dsn(
            "postgresql://u%2Fse:pass@:%2f123/db%2Fsdf?application_name=mya%2Fpp&ssl=true",
        )
        .unwrap_or_default();
        assert_eq!(
            pairs(&p)[..5],
            [
                ("user", "u/se"),
                ("password", "pass"),
                ("dbname", "db/sdf"),
                ("port", "/123"),
                ("application_name", "mya/pp"),
            ]
        );
        assert_eq!(get(&p, "sslmode"), Some("require"));
        let p = parse_dsn("postgresql://[::1]:5433,h2/postgres").unwrap_or_default();
        assert_eq!(get(&p, "host"), Some("::1,h2"));
        assert_eq!(get(&p, "port"), Some("5433,"));
        let p = parse_dsn("postgres://foo/postgres").unwrap_or_default();
        assert_eq!(pairs(&p)[..2], [("dbname", "postgres"), ("host", "foo")]);
        assert_eq!(parse_dsn("postgresql://"), None);
    }

    #[test]
    fn percent_decoding_keeps_broken_escapes() {
        assert_eq!(unquote("a%2", false), "a%2");
        assert_eq!(unquote("%zz%41", false), "%zzA");
        assert_eq!(unquote("a+b", true), "a b");
        assert_eq!(unquote("a+b", false), "a+b");
    }
}
