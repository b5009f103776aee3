//! Running PostgreSQL's programs: the environment they get, the optional
//! switch to another user, `pg_ctl` and `pg_controldata`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::ProcessError;
use crate::postgres::controldata::ControlData;

/// Run PostgreSQL's programs as another user.
///
/// The daemon normally runs as the PostgreSQL OS user already and never
/// needs this. It exists for tools and tests that run as root (PostgreSQL
/// refuses to run as root): the child drops to `uid`/`gid` with exactly
/// `groups` as supplementary groups before `exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl RunAs {
    /// A user with only its primary group.
    pub fn new(uid: u32, gid: u32) -> RunAs {
        RunAs {
            uid,
            gid,
            groups: vec![gid],
        }
    }
}

/// Environment variables never passed to PostgreSQL: systemd's
/// notification socket (only the daemon speaks to systemd; a postmaster
/// that saw it would send READY/STOPPING itself) and our own configuration.
fn is_private_variable(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    name == b"NOTIFY_SOCKET" || name.starts_with(b"PATRONI_") || name.starts_with(b"KUBERNETES_")
}

/// The postmaster's environment, from the daemon's: private variables
/// removed, `PG_MALLOC_ARENA_MAX` renamed to `MALLOC_ARENA_MAX` (so glibc's
/// arena limit can be set for PostgreSQL without affecting the daemon).
/// Works on `OsString`s: a variable that is not UTF-8 is passed through,
/// never a reason to fail (or panic, as `std::env::vars` would).
pub(crate) fn postmaster_env(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
) -> BTreeMap<OsString, OsString> {
    let mut env: BTreeMap<OsString, OsString> = inherited
        .into_iter()
        .filter(|(name, _)| !is_private_variable(name))
        .collect();
    if let Some(arena) = env.remove(OsStr::new("PG_MALLOC_ARENA_MAX")) {
        env.insert(OsString::from("MALLOC_ARENA_MAX"), arena);
    }
    env
}

/// Makes `command` drop privileges to `run_as` (if any) and, when
/// `new_session`, start a session of its own, in the child before `exec`.
///
/// A new session keeps the postmaster out of the daemon's process group
/// and terminal: a Ctrl-C or SIGHUP meant for the daemon must not stop
/// PostgreSQL, and PostgreSQL must outlive a daemon restart.
pub(crate) fn prepare(command: &mut Command, run_as: Option<&RunAs>, new_session: bool) {
    let run_as = run_as.cloned();
    if run_as.is_some() {
        // The caller's working directory (often /root) may be unreadable
        // for the target user; PostgreSQL's tools refuse to start then.
        command.current_dir("/");
    }
    if run_as.is_none() && !new_session {
        return;
    }
    let groups: Vec<libc::gid_t> = run_as
        .as_ref()
        .map(|r| r.groups.iter().map(|g| *g as libc::gid_t).collect())
        .unwrap_or_default();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe system calls (setsid, setgroups, setgid,
    // setuid) on data prepared before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if new_session && libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            if let Some(r) = &run_as {
                if libc::setgroups(groups.len() as _, groups.as_ptr()) == -1
                    || libc::setgid(r.gid as libc::gid_t) == -1
                    || libc::setuid(r.uid as libc::uid_t) == -1
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// `<bin_dir>/<name>`, or the bare name (found on `PATH`) without a
/// bin_dir, as Patroni's `pgcommand` does.
pub fn pg_program(bin_dir: Option<&Path>, name: &str) -> PathBuf {
    match bin_dir {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

/// Runs a helper program to completion, capturing its output.
async fn run(
    program: &Path,
    args: &[&std::ffi::OsStr],
    run_as: Option<&RunAs>,
    c_locale: bool,
) -> Result<std::process::Output, ProcessError> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if c_locale {
        command.env("LANG", "C").env("LC_ALL", "C");
    }
    prepare(&mut command, run_as, false);
    command
        .output()
        .await
        .map_err(|source| ProcessError::Spawn {
            program: program.display().to_string(),
            source,
        })
}

fn failed(program: &Path, output: &std::process::Output) -> ProcessError {
    ProcessError::CommandFailed {
        program: program.display().to_string(),
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    }
}

/// `pg_ctl <action> -D <data_dir> <args...>`, as Patroni's `pg_ctl()`;
/// `Ok(())` only on exit status 0.
pub async fn pg_ctl(
    bin_dir: Option<&Path>,
    data_dir: &Path,
    action: &str,
    args: &[&str],
    run_as: Option<&RunAs>,
) -> Result<(), ProcessError> {
    let program = pg_program(bin_dir, "pg_ctl");
    let mut argv: Vec<&std::ffi::OsStr> = vec![action.as_ref(), "-D".as_ref(), data_dir.as_ref()];
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    let output = run(&program, &argv, run_as, false).await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(&program, &output))
    }
}

/// Runs `pg_controldata <data_dir>` in the C locale (the labels are
/// translated otherwise) and parses its output.
///
/// Patroni returns an empty dict on any failure; we say why instead, and
/// callers that want Patroni's behaviour map the error to "no data".
pub async fn controldata(
    bin_dir: Option<&Path>,
    data_dir: &Path,
) -> Result<ControlData, ProcessError> {
    controldata_as(bin_dir, data_dir, None).await
}

/// [`controldata`] run as another user.
pub async fn controldata_as(
    bin_dir: Option<&Path>,
    data_dir: &Path,
    run_as: Option<&RunAs>,
) -> Result<ControlData, ProcessError> {
    let program = pg_program(bin_dir, "pg_controldata");
    let output = run(&program, &[data_dir.as_os_str()], run_as, true).await?;
    if !output.status.success() {
        return Err(failed(&program, &output));
    }
    if output.stdout.is_empty() {
        return Err(ProcessError::EmptyOutput {
            program: program.display().to_string(),
        });
    }
    Ok(ControlData::parse(&String::from_utf8_lossy(&output.stdout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        items
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn env_drops_private_variables_and_renames_arena() {
        let env = postmaster_env(pairs(&[
            ("PATH", "/bin"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("PATRONI_NAME", "pg1"),
            ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ("PG_MALLOC_ARENA_MAX", "2"),
            ("PGTZ", "UTC"),
        ]));
        let keys: Vec<&OsStr> = env.keys().map(OsString::as_os_str).collect();
        assert_eq!(keys, vec!["MALLOC_ARENA_MAX", "PATH", "PGTZ"]);
        assert_eq!(
            env.get(OsStr::new("MALLOC_ARENA_MAX")),
            Some(&OsString::from("2"))
        );
    }

    #[test]
    fn env_keeps_non_utf8_values() {
        use std::os::unix::ffi::OsStringExt;
        let odd = OsString::from_vec(vec![b'a', 0xff, b'b']);
        let env = postmaster_env(vec![
            (OsString::from("ODD"), odd.clone()),
            (
                OsString::from_vec(b"PATRONI_\xff".to_vec()),
                OsString::from("x"),
            ),
        ]);
        assert_eq!(env.len(), 1);
        assert_eq!(env.get(OsStr::new("ODD")), Some(&odd));
    }

    #[test]
    fn program_paths() {
        assert_eq!(
            pg_program(Some(Path::new("/usr/lib/postgresql/15/bin")), "pg_ctl"),
            PathBuf::from("/usr/lib/postgresql/15/bin/pg_ctl")
        );
        assert_eq!(pg_program(None, "pg_ctl"), PathBuf::from("pg_ctl"));
        assert_eq!(
            pg_program(Some(Path::new("")), "postgres"),
            PathBuf::from("postgres")
        );
    }

    #[tokio::test]
    async fn missing_program_is_a_spawn_error() {
        let err = controldata(Some(Path::new("/nonexistent/bin")), Path::new("/tmp"))
            .await
            .expect_err("no such program");
        assert!(matches!(err, ProcessError::Spawn { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/bin/pg_controldata"));
    }

    #[tokio::test]
    async fn failing_program_reports_status_and_stderr() {
        // `false` stands in for a pg_ctl that fails: exit status 1.
        let err = pg_ctl(Some(Path::new("/bin")), Path::new("/tmp"), "x", &[], None)
            .await
            .expect_err("/bin/pg_ctl does not exist");
        assert!(matches!(err, ProcessError::Spawn { .. }));
        let output = run(
            Path::new("/bin/sh"),
            &["-c".as_ref(), "echo oops >&2; exit 3".as_ref()],
            None,
            true,
        )
        .await
        .expect("sh runs");
        let err = failed(Path::new("/bin/sh"), &output);
        let text = err.to_string();
        assert!(text.contains("oops") && text.contains('3'), "{text}");
    }
}
