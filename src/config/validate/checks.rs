//! The custom checks of the schema: addresses, the data directory, the
//! PostgreSQL binaries, log format, watchdog and synchronous mode.
//!
//! Each check returns `Err(reason)` with Patroni's wording; the engine
//! turns it into "didn't pass validation: reason". Where Python Patroni
//! would fail with a Python exception, the reason is the text that
//! exception prints, so both validators still print the same line.

use super::net::{self, os_error_with_path, py_space, qualified_type};
use super::pyrepr::str_repr;
use super::Ctx;
use crate::config::units::parse_bool;
use crate::config::value::{Map, Value};
use std::ffi::CString;
use std::path::Path;
use std::process::{Command, Stdio};

/// The binaries `postgresql.bin_dir` must hold. `pg_rewind` is optional.
const BINARIES: [&str; 6] = [
    "pg_ctl",
    "initdb",
    "pg_controldata",
    "pg_basebackup",
    "postgres",
    "pg_isready",
];

pub fn host_port(v: &Value, ctx: &Ctx) -> Result<(), String> {
    net::host_port(v, false, false, ctx)
}

/// `"h1:p1, h2:p2"`: every item must be reachable.
pub fn comma_separated_host_port(v: &Value, ctx: &Ctx) -> Result<(), String> {
    let Value::Str(s) = v else {
        return Err(net::no_attribute(v, "split"));
    };
    s.split(',')
        .try_for_each(|item| host_port(&Value::Str(item.trim_matches(py_space).to_owned()), ctx))
}

pub fn host_port_list(v: &Value, ctx: &Ctx) -> Result<(), String> {
    match v {
        Value::Seq(items) => items.iter().try_for_each(|item| host_port(item, ctx)),
        other => Err(format!(
            "'{}' object is not iterable",
            qualified_type(other)
        )),
    }
}

pub fn host_port_listen(v: &Value, ctx: &Ctx) -> Result<(), String> {
    net::host_port(v, true, false, ctx)
}

pub fn host_port_listen_multiple_hosts(v: &Value, ctx: &Ctx) -> Result<(), String> {
    net::host_port(v, true, true, ctx)
}

/// An address other members use to reach us: it must not be a loopback or
/// wildcard address.
pub fn connect_address(v: &Value, _ctx: &Ctx) -> Result<(), String> {
    let (host, _) = v
        .as_str()
        .and_then(|s| net::split_host_port(s, 1))
        .ok_or("contains a wrong value")?;
    if ["127.0.0.1", "0.0.0.0", "*", "::1", "localhost"].contains(&host.as_str()) {
        return Err(r#"must not contain "127.0.0.1", "0.0.0.0", "*", "::1", "localhost""#.into());
    }
    Ok(())
}

pub fn log_format(v: &Value, _ctx: &Ctx) -> Result<(), String> {
    match v {
        Value::Str(_) => Ok(()),
        Value::Seq(items) if items.is_empty() => Err("should contain at least one item".into()),
        Value::Seq(items) => {
            let field_ok = |f: &Value| match f {
                Value::Str(_) => true,
                Value::Map(m) => m.len() == 1 && m.iter().all(|(_, v)| matches!(v, Value::Str(_))),
                _ => false,
            };
            if items.iter().all(field_ok) {
                Ok(())
            } else {
                Err("each item should be a string or a dictionary with string values".into())
            }
        }
        _ => Err("Should be a string or a list".into()),
    }
}

pub fn watchdog_mode(v: &Value, _ctx: &Ctx) -> Result<(), String> {
    match v {
        Value::Bool(false) => Ok(()),
        Value::Str(s) if ["off", "automatic", "required"].contains(&s.as_str()) => Ok(()),
        Value::Bool(_) | Value::Str(_) => Err("Wrong value".into()),
        _ => Err("expected type is not a string".into()),
    }
}

/// `quorum` (any case) or anything `parse_bool` understands.
pub fn synchronous_mode(v: &Value, _ctx: &Ctx) -> Result<(), String> {
    let quorum = matches!(v, Value::Str(s) if s.to_lowercase() == "quorum");
    if quorum || parse_bool(v).is_some() {
        Ok(())
    } else {
        Err("invalid value for synchronous_mode".into())
    }
}

pub fn ipv4_address(v: &Value, _ctx: &Ctx) -> Result<(), String> {
    match v {
        Value::Str(s) if net::inet_aton(s) => Ok(()),
        _ => Err("Is not a valid ipv4 address".into()),
    }
}

pub fn ipv6_address(v: &Value, _ctx: &Ctx) -> Result<(), String> {
    match v {
        Value::Str(s) if s.parse::<std::net::Ipv6Addr>().is_ok() => Ok(()),
        _ => Err("Is not a valid ipv6 address".into()),
    }
}

/// The `postgresql` section of the configuration being validated.
fn postgresql<'a>(ctx: &Ctx<'a>) -> Option<&'a Map> {
    ctx.root.as_map()?.get("postgresql")?.as_map()
}

/// The configured name of a PostgreSQL binary (`postgresql.bin_name`), or
/// the standard one.
fn bin_name<'a>(ctx: &Ctx<'a>, name: &'a str) -> Result<BinName<'a>, String> {
    let configured = postgresql(ctx).and_then(|pg| pg.get("bin_name"));
    match configured {
        Some(Value::Map(m)) if !m.is_empty() => Ok(match m.get(name) {
            Some(Value::Str(s)) => BinName::Name(s),
            Some(other) => BinName::NotAString(other),
            None => BinName::Name(name),
        }),
        Some(v) if v.truthy() => Err(net::no_attribute(v, "get")),
        _ => Ok(BinName::Name(name)),
    }
}

enum BinName<'a> {
    Name(&'a str),
    NotAString(&'a Value),
}

/// Where to look binaries up, from `postgresql.bin_dir`.
enum SearchPath<'a> {
    /// Not configured: the `PATH` environment variable.
    Env,
    /// Configured but empty (or another false-like value): nowhere.
    Nowhere,
    Dir(&'a str),
}

fn search_path<'a>(ctx: &Ctx<'a>) -> Result<SearchPath<'a>, String> {
    match postgresql(ctx).and_then(|pg| pg.get("bin_dir")) {
        None | Some(Value::Null) => Ok(SearchPath::Env),
        Some(v) if !v.truthy() => Ok(SearchPath::Nowhere),
        Some(Value::Str(s)) => Ok(SearchPath::Dir(s)),
        Some(other) => Err(path_type_error(other)),
    }
}

fn path_type_error(v: &Value) -> String {
    format!(
        "expected str, bytes or os.PathLike object, not {}",
        qualified_type(v)
    )
}

/// `os.path.join(a, b)` on POSIX.
fn py_join(a: &str, b: &str) -> String {
    if b.starts_with('/') || a.is_empty() {
        b.to_owned()
    } else if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

/// An existing, executable, non-directory file, as `shutil.which` checks.
fn is_executable(path: &str) -> bool {
    let p = Path::new(path);
    if !p.exists() || p.is_dir() {
        return false;
    }
    let Ok(c) = CString::new(path) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// `shutil.which(cmd, path=...)`: a name with a slash is checked as is,
/// otherwise each directory of the search path is tried in order.
fn which(cmd: &str, path: &SearchPath) -> bool {
    if cmd.contains('/') {
        return is_executable(cmd);
    }
    let dirs = match path {
        SearchPath::Env => std::env::var("PATH").unwrap_or_else(|_| "/bin:/usr/bin".into()),
        SearchPath::Nowhere => return false,
        SearchPath::Dir(d) => (*d).to_owned(),
    };
    if dirs.is_empty() {
        return false;
    }
    dirs.split(':').any(|dir| is_executable(&py_join(dir, cmd)))
}

/// `postgresql.bin_name.<binary>`: the program must be found in `bin_dir`
/// (or `PATH` when no `bin_dir` is configured).
pub fn binary_name(v: &Value, ctx: &Ctx) -> Result<(), String> {
    let name = v.as_str().unwrap_or_default();
    if name.is_empty() {
        return Err("is an empty string".into());
    }
    let path = search_path(ctx)?;
    if which(name, &path) {
        return Ok(());
    }
    let place = match path {
        SearchPath::Dir(d) => d,
        _ => "$PATH",
    };
    Err(format!("does not contain '{name}' in '{place}'"))
}

/// `postgresql.bin_dir`: every required binary must be in it (or in `PATH`
/// when it is empty). Returns every problem found.
pub fn bin_dir(dir: &str, ctx: &Ctx) -> Vec<String> {
    let mut programs = Vec::new();
    for binary in BINARIES {
        // A `bin_name` that is not a mapping of strings is already reported
        // under `bin_name` (Python Patroni stops with a traceback here);
        // the directory is still checked, for the standard names.
        match bin_name(ctx, binary) {
            Ok(BinName::Name(n)) => programs.push(n),
            Ok(BinName::NotAString(_)) | Err(_) => programs.push(binary),
        }
    }
    if dir.is_empty() {
        return programs
            .into_iter()
            .filter(|p| !which(p, &SearchPath::Env))
            .map(|p| format!("does not contain '{p}' in '$PATH'"))
            .collect();
    }
    let p = Path::new(dir);
    if !p.exists() {
        return vec![format!("Directory '{dir}' does not exist.")];
    }
    if !p.is_dir() {
        return vec![format!("'{dir}' is not a directory.")];
    }
    programs
        .into_iter()
        .filter(|prog| !which(prog, &SearchPath::Dir(dir)))
        .map(|prog| format!("does not contain '{prog}' in '{dir}'"))
        .collect()
}

/// `postgresql.data_dir`: absent, empty, or an initialized data directory
/// of the same major version as the configured `postgres` binary.
pub fn data_dir(v: &Value, ctx: &Ctx) -> Result<(), String> {
    let dir = v.as_str().unwrap_or_default();
    if dir.is_empty() {
        return Err("is an empty string".into());
    }
    let path = Path::new(dir);
    if path.exists() && !path.is_dir() {
        return Err("is not a directory".into());
    }
    if data_directory_empty(dir)? {
        return Ok(());
    }
    let version_file = py_join(dir, "PG_VERSION");
    if !Path::new(&version_file).exists() {
        return Err("doesn't look like a valid data directory".into());
    }
    let raw = std::fs::read(&version_file).map_err(|e| os_error_with_path(&e, &version_file))?;
    let pgversion = String::from_utf8_lossy(&raw)
        .trim_matches(py_space)
        .to_owned();
    let numeric = py_float(&pgversion).ok_or_else(|| {
        format!(
            "could not convert string to float: {}",
            str_repr(&pgversion)
        )
    })?;
    let waldir = if numeric >= 10.0 { "pg_wal" } else { "pg_xlog" };
    if !Path::new(&py_join(dir, waldir)).is_dir() {
        return Err(format!(
            "data dir for the cluster is not empty, but doesn't contain \"{waldir}\" directory"
        ));
    }
    let major = major_version(ctx)?;
    if pgversion != major {
        return Err(format!(
            "data_dir directory postgresql version ({pgversion}) doesn't match with 'postgres --version' output ({major})"
        ));
    }
    Ok(())
}

/// Empty means: missing, or holding only hidden entries and `lost+found`,
/// and no `global/pg_control`.
fn data_directory_empty(dir: &str) -> Result<bool, String> {
    if Path::new(&py_join(&py_join(dir, "global"), "pg_control")).is_file() {
        return Ok(false);
    }
    if !Path::new(dir).exists() {
        return Ok(true);
    }
    let entries = std::fs::read_dir(dir).map_err(|e| os_error_with_path(&e, dir))?;
    for entry in entries {
        let entry = entry.map_err(|e| os_error_with_path(&e, dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with('.') || name == "lost+found") {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Python `float(text)` for the forms a `PG_VERSION` file can hold.
fn py_float(text: &str) -> Option<f64> {
    let t = text.trim_matches(py_space);
    if t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    t.replace('_', "").parse().ok()
}

/// The major version `postgres --version` reports (`15`, `9.6`).
fn major_version(ctx: &Ctx) -> Result<String, String> {
    let name = bin_name(ctx, "postgres")?;
    let binary = match (postgresql(ctx).and_then(|pg| pg.get("bin_dir")), name) {
        (Some(Value::Str(d)), BinName::Name(n)) if !d.is_empty() => py_join(d, n),
        (Some(Value::Str(d)), BinName::NotAString(v)) if !d.is_empty() => {
            return Err(format!(
                "join() argument must be str, bytes, or os.PathLike object, not '{}'",
                qualified_type(v)
            ))
        }
        (Some(d), _) if d.truthy() => return Err(path_type_error(d)),
        (_, BinName::Name(n)) => n.to_owned(),
        (_, BinName::NotAString(v)) => return Err(path_type_error(v)),
    };
    let output = Command::new(&binary)
        .arg("--version")
        .stdin(Stdio::inherit())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            format!(
                "Failed to get postgres version: {}",
                os_error_with_path(&e, &binary)
            )
        })?;
    if !output.status.success() {
        let argv = format!("[{}, '--version']", str_repr(&binary));
        return Err(match output.status.code() {
            Some(code) => format!("Command '{argv}' returned non-zero exit status {code}."),
            None => format!("Command '{argv}' died with a signal."),
        });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    parse_major_version(&text)
        .ok_or_else(|| "'NoneType' object has no attribute 'groups'".to_owned())
}

/// `postgres (PostgreSQL) 15.2 ...` -> `15`; `9.6.24` -> `9.6`. A bare major
/// (`16` in a development build) gets `.0` appended first, as Patroni does.
fn parse_major_version(output: &str) -> Option<String> {
    let re = regex::Regex::new(r"^[^\s]+ [^\s]+ ((\d+)(\.\d+)*)").ok()?;
    let caps = re.captures(output)?;
    let full = caps.get(1)?.as_str();
    let major: u64 = caps.get(2)?.as_str().parse().ok()?;
    let dots = full.matches('.').count();
    let full = if (major < 10 && dots < 2) || (major >= 10 && dots < 1) {
        format!("{full}.0")
    } else {
        full.to_owned()
    };
    let strip = regex::Regex::new(r"\.\d+$").ok()?;
    Some(strip.replace(&full, "").into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_version_parsing() {
        let v = |s| parse_major_version(s);
        assert_eq!(
            v("postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n").as_deref(),
            Some("15")
        );
        assert_eq!(v("postgres (PostgreSQL) 9.6.24").as_deref(), Some("9.6"));
        assert_eq!(v("postgres (PostgreSQL) 9.6").as_deref(), Some("9.6"));
        assert_eq!(v("postgres (PostgreSQL) 17devel").as_deref(), Some("17"));
        assert_eq!(v("garbage"), None);
    }

    #[test]
    fn join_like_posixpath() {
        assert_eq!(py_join("/a", "b"), "/a/b");
        assert_eq!(py_join("/a/", "b"), "/a/b");
        assert_eq!(py_join("", "b"), "b");
        assert_eq!(py_join("/a", "/b"), "/b");
    }

    #[test]
    fn log_format_rules() {
        let ctx_root = Value::Null;
        let params = super::super::ValidateParams::default();
        let ctx = Ctx {
            root: &ctx_root,
            params: &params,
        };
        assert!(log_format(&Value::Str("%(message)s".into()), &ctx).is_ok());
        assert_eq!(
            log_format(&Value::Seq(vec![]), &ctx).unwrap_err(),
            "should contain at least one item"
        );
        assert_eq!(
            log_format(&Value::Seq(vec![Value::Int(1)]), &ctx).unwrap_err(),
            "each item should be a string or a dictionary with string values"
        );
        assert_eq!(
            log_format(&Value::Int(1), &ctx).unwrap_err(),
            "Should be a string or a list"
        );
    }

    #[test]
    fn py_float_accepts_python_forms() {
        assert_eq!(py_float(" 9.6 "), Some(9.6));
        assert_eq!(py_float("1_0"), Some(10.0));
        assert_eq!(py_float("abc"), None);
    }
}
