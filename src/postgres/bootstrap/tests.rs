//! Expectations checked by hand against Python Patroni 4.1.5
//! (`Bootstrap.process_user_options`, `quote_literal`, `_custom_bootstrap`).

use super::roles::{create_or_update_role_sql, quote_ident, quote_literal, rewind_grant_sql};
use super::*;

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn map(pairs: &[(&str, Value)]) -> Map {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.set(k, v.clone());
    }
    m
}

fn run(tool: &str, options: &Value, not_allowed: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut errors = Vec::new();
    let out = process_user_options(tool, options, not_allowed, &mut |e| errors.push(e));
    (out, errors)
}

#[test]
fn list_options_like_python() {
    let options = Value::Seq(vec![
        s("data-checksums"),
        Value::Map(map(&[("encoding", s("UTF8"))])),
        Value::Map(map(&[("locale", s("\"en US\""))])),
    ]);
    let (out, errors) = run("initdb", &options, &INITDB_NOT_ALLOWED);
    assert_eq!(
        out,
        ["--data-checksums", "--encoding=UTF8", "--locale=en US"]
    );
    assert!(errors.is_empty());
}

#[test]
fn refused_and_malformed_options_report_python_messages() {
    let (out, errors) = run(
        "initdb",
        &Value::Seq(vec![s("nosync")]),
        &INITDB_NOT_ALLOWED,
    );
    assert!(out.is_empty());
    assert_eq!(
        errors,
        [
            "nosync option for initdb is not allowed",
            "Error when parsing initdb option nosync: value should be string value or a single key-value pair"
        ]
    );
    let pw = Value::Seq(vec![Value::Map(map(&[("pwfile", s("/x"))]))]);
    let (_, errors) = run("initdb", &pw, &INITDB_NOT_ALLOWED);
    assert_eq!(
        errors,
        [
            "pwfile option for initdb is not allowed",
            "Error when parsing initdb key-value option /x: only one key-value is allowed and value should be a string"
        ]
    );
    let two = Value::Seq(vec![Value::Map(map(&[("a", s("1")), ("b", s("2"))]))]);
    let (_, errors) = run("initdb", &two, &[]);
    assert_eq!(
        errors,
        ["Error when parsing initdb key-value option 1: only one key-value is allowed and value should be a string"]
    );
    let (_, errors) = run("initdb", &Value::Seq(vec![Value::Int(5)]), &[]);
    assert_eq!(
        errors,
        ["Error when parsing initdb option 5: value should be string value or a single key-value pair"]
    );
    let (_, errors) = run("initdb", &s("x"), &[]);
    assert_eq!(errors, ["initdb options must be list or dict"]);
}

#[test]
fn map_options_skip_empty_values() {
    let options = Value::Map(map(&[
        ("max-rate", s("100M")),
        ("checkpoint", s("fast")),
        ("x", s("")),
        ("y", Value::Null),
        ("z", Value::Int(0)),
    ]));
    let (out, errors) = run("basebackup", &options, &["pgdata"]);
    assert_eq!(out, ["--max-rate=100M", "--checkpoint=fast"]);
    assert!(errors.is_empty());
    let (out, errors) = run(
        "basebackup",
        &Value::Map(map(&[("pgdata", s("x"))])),
        &["pgdata"],
    );
    assert!(out.is_empty());
    assert_eq!(errors, ["pgdata option for basebackup is not allowed"]);
}

#[test]
fn unquote_only_single_words() {
    assert_eq!(unquote("\"a quoted string\""), "a quoted string");
    assert_eq!(
        unquote("\"a multi\" \"quoted string\""),
        "\"a multi\" \"quoted string\""
    );
    assert_eq!(
        unquote("unbalanced \"quoted string"),
        "unbalanced \"quoted string"
    );
}

#[test]
fn initdb_command_line() {
    let commands = PgCommands {
        bin_dir: Some(PathBuf::from("/usr/lib/postgresql/15/bin")),
        bin_name: BTreeMap::from([("initdb".to_owned(), "initdb15".to_owned())]),
    };
    let options = Value::Seq(vec![
        s("data-checksums"),
        Value::Map(map(&[("encoding", s("UTF8"))])),
    ]);
    let su = map(&[("username", s("postgres")), ("password", s("secret"))]);
    let input = InitdbInput {
        data_dir: Path::new("/data/pg"),
        commands: &commands,
        options: Some(&options),
        superuser: Some(&su),
        run_as: None,
    };
    let argv = initdb_argv(&input, Some(Path::new("/tmp/pw"))).expect("valid");
    assert_eq!(
        argv,
        [
            "/usr/lib/postgresql/15/bin/initdb15",
            "--data-checksums",
            "--encoding=UTF8",
            "--no-sync",
            "--username=postgres",
            "--pwfile=/tmp/pw",
            "/data/pg"
        ]
    );
    let bad = Value::Seq(vec![s("version")]);
    let input = InitdbInput {
        options: Some(&bad),
        ..input
    };
    let err = initdb_argv(&input, None).expect_err("refused");
    assert_eq!(err.to_string(), "version option for initdb is not allowed");
}

#[tokio::test]
async fn initdb_refuses_before_running_anything() {
    let commands = PgCommands {
        bin_dir: Some(PathBuf::from("/nonexistent")),
        bin_name: BTreeMap::new(),
    };
    let bad = Value::Map(map(&[("pgdata", s("/elsewhere"))]));
    let input = InitdbInput {
        data_dir: Path::new("/nonexistent/data"),
        commands: &commands,
        options: Some(&bad),
        superuser: None,
        run_as: None,
    };
    let err = initdb(&input).await.expect_err("refused");
    assert!(matches!(err, BootstrapError::Options(_)), "{err:?}");
}

#[test]
fn custom_bootstrap_arguments() {
    let section = map(&[
        ("command", s("/usr/bin/restore --from 'my backup'")),
        ("keep_existing_recovery_conf", Value::Bool(true)),
        (
            "recovery_conf",
            Value::Map(map(&[("restore_command", s("cp x y"))])),
        ),
        ("target", s("latest")),
        ("verbose", Value::Bool(true)),
        ("datadir", s("/ignored")),
    ]);
    let argv =
        custom_bootstrap_argv("restore", &section, "batman", Path::new("/data/pg")).expect("ok");
    assert_eq!(
        argv,
        [
            "/usr/bin/restore",
            "--from",
            "my backup",
            "--scope=batman",
            "--datadir=/data/pg",
            "--target=latest",
            "--verbose=True"
        ]
    );
    let mut quiet = section.clone();
    quiet.set("no_params", Value::Bool(true));
    let argv =
        custom_bootstrap_argv("restore", &quiet, "batman", Path::new("/data/pg")).expect("ok");
    assert_eq!(argv[3..], ["--target=latest", "--verbose=True"]);
    let err = custom_bootstrap_argv("restore", &Map::new(), "b", Path::new("/d"))
        .expect_err("no command");
    assert!(matches!(err, BootstrapError::BadMethod { .. }));
}

#[tokio::test]
async fn custom_bootstrap_outcome_and_failure() {
    let ok = map(&[
        ("command", s("true")),
        ("no_params", Value::Bool(true)),
        ("keep_existing_recovery_conf", Value::Bool(true)),
    ]);
    let outcome = custom_bootstrap("m", &ok, "s", Path::new("/tmp"), None)
        .await
        .expect("true succeeds");
    assert!(outcome.keep_existing_recovery_conf);
    assert_eq!(outcome.recovery_conf, None);
    let failing = map(&[("command", s("false"))]);
    let err = custom_bootstrap("m", &failing, "s", Path::new("/tmp"), None)
        .await
        .expect_err("false fails");
    assert!(matches!(err, BootstrapError::Failed { .. }), "{err:?}");
}

#[test]
fn method_selection() {
    assert_eq!(bootstrap_method(&Map::new()), "initdb");
    let custom = map(&[
        ("method", s("restore")),
        ("restore", Value::Map(map(&[("command", s("x"))]))),
    ]);
    assert_eq!(bootstrap_method(&custom), "restore");
    let no_section = map(&[("method", s("restore"))]);
    assert_eq!(bootstrap_method(&no_section), "initdb");
}

#[test]
fn pg_hba_appended_only_when_unmanaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pg_hba.conf"), "local all all trust\n").expect("write");
    let lines = vec![
        "host all all 0.0.0.0/0 md5".to_owned(),
        "host replication r 10.0.0.0/8 md5".to_owned(),
    ];
    assert!(!append_pg_hba(dir.path(), &lines, true, false).expect("ok"));
    assert!(!append_pg_hba(dir.path(), &lines, false, true).expect("ok"));
    assert!(append_pg_hba(dir.path(), &lines, false, false).expect("ok"));
    let text = std::fs::read_to_string(dir.path().join("pg_hba.conf")).expect("read");
    assert_eq!(
        text,
        "local all all trust\n\nhost all all 0.0.0.0/0 md5\nhost replication r 10.0.0.0/8 md5\n"
    );
}

#[test]
fn role_sql_like_python() {
    assert_eq!(quote_literal("it's"), "'it''s'");
    assert_eq!(quote_literal("a\\b"), " E'a\\\\b'");
    assert_eq!(quote_ident("Re\"p"), "\"Re\"\"p\"");
    let sql = create_or_update_role_sql("replicator", Some("rep-pass"), &["replication"]);
    assert_eq!(
        sql,
        "DO $$\nBEGIN\n    SET local synchronous_commit = 'local';\n    \
         PERFORM * FROM pg_catalog.pg_authid WHERE rolname = 'replicator';\n    \
         IF FOUND THEN\n        ALTER ROLE \"replicator\" WITH REPLICATION LOGIN PASSWORD 'rep-pass';\n    \
         ELSE\n        CREATE ROLE \"replicator\" WITH REPLICATION LOGIN PASSWORD 'rep-pass';\n    \
         END IF;\nEND;$$"
    );
    let nologin = create_or_update_role_sql("r", None, &["nologin"]);
    assert!(nologin.contains("WITH NOLOGIN;"), "{nologin}");
    let empty_pw = create_or_update_role_sql("r", Some(""), &[]);
    assert!(empty_pw.contains("WITH LOGIN;"), "{empty_pw}");
    assert!(
        rewind_grant_sql("pg_stat_file(text, boolean)", "rewind").contains(
            "GRANT EXECUTE ON function pg_catalog.pg_stat_file(text, boolean) TO \"rewind\";"
        )
    );
}

/// A stand-in `initdb` records its arguments, the password file's content
/// and mode; the file must be gone once `initdb` returns.
#[tokio::test]
async fn initdb_password_file_is_private_and_removed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let script = format!(
        "#!/bin/sh\nfor a; do echo \"$a\"; case \"$a\" in --pwfile=*) f=\"${{a#--pwfile=}}\";; esac; done > {out}\n\
         cat \"$f\" >> {out}; echo >> {out}; stat -c %a \"$f\" >> {out}; echo \"$f\" >> {out}\nexit 0\n",
        out = out.display()
    );
    let program = dir.path().join("initdb");
    std::fs::write(&program, script).expect("write");
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let commands = PgCommands {
        bin_dir: Some(dir.path().to_path_buf()),
        bin_name: BTreeMap::new(),
    };
    let options = Value::Map(map(&[("encoding", s("UTF8"))]));
    let su = map(&[("username", s("admin")), ("password", s("p w'\"x"))]);
    // The stand-in writes nothing there, but the flush after it needs the
    // directory to exist, as the real initdb leaves it.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    initdb(&InitdbInput {
        data_dir: &data,
        commands: &commands,
        options: Some(&options),
        superuser: Some(&su),
        run_as: None,
    })
    .await
    .expect("fake initdb succeeds");
    let text = std::fs::read_to_string(&out).expect("output");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "--encoding=UTF8");
    assert_eq!(lines[1], "--no-sync");
    assert_eq!(lines[2], "--username=admin");
    assert!(lines[3].starts_with("--pwfile="), "{lines:?}");
    assert_eq!(lines[4], data.display().to_string());
    assert_eq!(lines[5], "p w'\"x");
    assert_eq!(lines[6], "600");
    assert!(!Path::new(lines[7]).exists(), "password file left behind");

    // A failing initdb is an error and also removes the file.
    std::fs::write(&program, "#!/bin/sh\nexit 1\n").expect("write");
    let err = initdb(&InitdbInput {
        data_dir: Path::new("/data/x"),
        commands: &commands,
        options: None,
        superuser: Some(&su),
        run_as: None,
    })
    .await
    .expect_err("fails");
    assert!(matches!(err, BootstrapError::Failed { .. }), "{err:?}");
}

#[test]
fn program_names_from_config() {
    let pg = map(&[
        ("bin_dir", s("/opt/pg/bin")),
        (
            "bin_name",
            Value::Map(map(&[
                ("pg_basebackup", s("pg_basebackup15")),
                ("initdb", Value::Int(3)),
            ])),
        ),
    ]);
    let cmds = PgCommands::from_config(&pg);
    assert_eq!(
        cmds.program("pg_basebackup"),
        PathBuf::from("/opt/pg/bin/pg_basebackup15")
    );
    assert_eq!(cmds.program("initdb"), PathBuf::from("/opt/pg/bin/initdb"));
    assert_eq!(
        PgCommands::from_config(&Map::new()).program("pg_ctl"),
        PathBuf::from("pg_ctl")
    );
}
