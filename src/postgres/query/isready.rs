//! `pg_isready`: whether the server accepts connections, without logging
//! in.
//!
//! Patroni asks `pg_isready` when its monitoring query fails, to tell "the
//! server is still starting or shutting down" (it rejects connections)
//! from "nothing answers". It runs the program against the same address
//! as its superuser connection, passing only the port, database, host
//! (omitted for the default unix socket) and user, and reads the exit
//! status. We do the same.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::ConnParams;
use crate::postgres::process::pg_program;

/// `pg_isready`'s exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgIsReady {
    /// 0: accepting connections.
    Accept,
    /// 1: rejecting connections (starting up, shutting down, recovery
    /// without hot standby).
    Reject,
    /// 2: no response.
    NoResponse,
    /// 3, any other status, or the program could not be run or did not
    /// finish in time.
    Unknown,
}

impl PgIsReady {
    /// The status for an exit code, as Patroni maps it.
    pub fn from_exit_code(code: Option<i32>) -> PgIsReady {
        match code {
            Some(0) => PgIsReady::Accept,
            Some(1) => PgIsReady::Reject,
            Some(2) => PgIsReady::NoResponse,
            _ => PgIsReady::Unknown,
        }
    }
}

/// The arguments Patroni passes: `-p`, `-d`, then `-h` when a host is
/// set and `-U` when a user is.
pub fn pg_isready_args(params: &ConnParams) -> Vec<String> {
    let mut args = vec![
        "-p".to_owned(),
        params.port.to_string(),
        "-d".to_owned(),
        params.dbname.clone(),
    ];
    if let Some(host) = &params.host {
        args.push("-h".to_owned());
        args.push(host.clone());
    }
    if let Some(user) = &params.user {
        args.push("-U".to_owned());
        args.push(user.clone());
    }
    args
}

/// Runs `pg_isready` (from `bin_dir`, or `PATH` without one). The program
/// has its own connect timeout (3 s by default); `timeout` bounds the
/// whole run in case it hangs anyway, and a run that exceeds it is killed.
pub async fn pg_isready(
    bin_dir: Option<&Path>,
    params: &ConnParams,
    timeout: Duration,
) -> PgIsReady {
    let mut command = Command::new(pg_program(bin_dir, "pg_isready"));
    command
        .args(pg_isready_args(params))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            log::warn!(target: "patroni.postgresql", "could not run pg_isready: {e}");
            return PgIsReady::Unknown;
        }
    };
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => PgIsReady::from_exit_code(status.code()),
        Ok(Err(e)) => {
            log::warn!(target: "patroni.postgresql", "waiting for pg_isready failed: {e}");
            PgIsReady::Unknown
        }
        Err(_) => {
            log::warn!(target: "patroni.postgresql", "pg_isready did not finish in {timeout:?}");
            PgIsReady::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::{Map, Value};
    use crate::postgres::query::local_conn_params;

    #[test]
    fn exit_codes() {
        let table = [
            (Some(0), PgIsReady::Accept),
            (Some(1), PgIsReady::Reject),
            (Some(2), PgIsReady::NoResponse),
            (Some(3), PgIsReady::Unknown),
            (Some(127), PgIsReady::Unknown),
            (None, PgIsReady::Unknown),
        ];
        for (code, want) in table {
            assert_eq!(PgIsReady::from_exit_code(code), want, "{code:?}");
        }
    }

    #[test]
    fn arguments_follow_the_connection() {
        let mut conf = Map::new();
        conf.set("listen", Value::Str("*:5433".to_owned()));
        conf.set("database", Value::Str("appdb".to_owned()));
        let mut p = local_conn_params(&conf, "heartbeat").expect("params");
        assert_eq!(
            pg_isready_args(&p),
            ["-p", "5433", "-d", "appdb", "-h", "localhost"]
        );
        p.host = None;
        p.user = Some("admin".to_owned());
        assert_eq!(
            pg_isready_args(&p),
            ["-p", "5433", "-d", "appdb", "-U", "admin"]
        );
    }

    #[tokio::test]
    async fn a_missing_program_is_unknown() {
        let mut conf = Map::new();
        conf.set("listen", Value::Str("127.0.0.1:5432".to_owned()));
        let p = local_conn_params(&conf, "heartbeat").expect("params");
        let dir = Path::new("/nonexistent-patroni-rs-bin");
        assert_eq!(
            pg_isready(Some(dir), &p, Duration::from_secs(5)).await,
            PgIsReady::Unknown
        );
    }
}
