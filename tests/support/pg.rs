//! Shared by the integration tests that run a real PostgreSQL 15: a
//! throwaway cluster in a temporary directory on a free loopback port.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root every
//! PostgreSQL program runs as the unprivileged `patroni-rs-test` user (the
//! acceptance harness's user, created here if missing). Without PostgreSQL
//! 15 the tests skip with a message, except under CI (`CI` set), where that
//! is a failure. Not every test file uses every helper.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use patroni::config::value::{Map, Value};
use patroni::postgres::controldata::ClusterState;
use patroni::postgres::pid::PostmasterPid;
use patroni::postgres::postgres_argv;
use patroni::postgres::process::{controldata, Postmaster, RunAs, StartOptions};

pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
pub const TEST_USER: &str = "patroni-rs-test";

/// One test's cluster: a temporary directory owned by the PostgreSQL user
/// holding `data/`, the socket directory and the log file.
pub struct Cluster {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub run_as: Option<RunAs>,
}

fn id_of(flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, TEST_USER]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The user PostgreSQL runs as: ourselves, or the test user when root.
pub fn run_as() -> Option<RunAs> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    if id_of("-u").is_none() {
        let status = Command::new("useradd").args(["-m", TEST_USER]).status();
        // A parallel test may have created it meanwhile: check again.
        if id_of("-u").is_none() {
            panic!("could not create the user {TEST_USER}: {status:?}");
        }
    }
    Some(RunAs::new(
        id_of("-u").expect("uid"),
        id_of("-g").expect("gid"),
    ))
}

/// A helper program (initdb, pg_basebackup, pg_ctl, psql) as the
/// PostgreSQL user.
pub fn pg_command(program: &str, run_as: &Option<RunAs>) -> Command {
    let mut cmd = Command::new(Path::new(BIN_DIR).join(program));
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid).current_dir("/");
    }
    cmd
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn have_postgres() -> bool {
    if Path::new(BIN_DIR).join("postgres").exists() {
        return true;
    }
    // Under CI a missing PostgreSQL is a broken setup, not a skip.
    assert!(
        std::env::var_os("CI").is_none(),
        "PostgreSQL 15 binaries not found in {BIN_DIR} (.ci/setup installs them)"
    );
    eprintln!("SKIPPED: PostgreSQL 15 binaries not found in {BIN_DIR} (.ci/setup installs them)");
    false
}

/// Whether a process exists.
pub fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

impl Cluster {
    /// An empty directory for a cluster, owned by the PostgreSQL user.
    pub fn empty() -> Cluster {
        let run_as = run_as();
        let dir = tempfile::Builder::new()
            .prefix("patroni-rs-pg-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_path_buf();
        if let Some(r) = &run_as {
            std::os::unix::fs::chown(&root, Some(r.uid), Some(r.gid)).expect("chown");
        }
        Cluster {
            data: root.join("data"),
            _dir: dir,
            root,
            port: free_port(),
            run_as,
        }
    }

    /// A freshly initialised cluster.
    pub fn init() -> Cluster {
        let cluster = Cluster::empty();
        let out = pg_command("initdb", &cluster.run_as)
            .arg("-D")
            .arg(&cluster.data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "--no-instructions",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// The command line Patroni would build, plus test-only settings and
    /// `extra` (`name=value`).
    pub fn argv(&self, extra: &[&str]) -> Vec<String> {
        let mut conf = Map::new();
        conf.set("listen_addresses", Value::Str("127.0.0.1".to_owned()));
        conf.set("port", Value::Int(i64::from(self.port)));
        conf.set("wal_level", Value::Str("replica".to_owned()));
        conf.set("hot_standby", Value::Str("on".to_owned()));
        conf.set("max_wal_senders", Value::Int(5));
        let data = self.data.display().to_string();
        let config_file = self.data.join("postgresql.conf").display().to_string();
        let postgres = Path::new(BIN_DIR).join("postgres").display().to_string();
        let mut argv = postgres_argv(&postgres, &data, &config_file, &conf);
        let fixed = [
            format!("unix_socket_directories={}", self.root.display()),
            "fsync=off".to_owned(),
            "shared_buffers=16MB".to_owned(),
            // Small status intervals so a replica reports quickly.
            "wal_receiver_status_interval=1s".to_owned(),
        ];
        for setting in fixed
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
        {
            argv.push("-c".to_owned());
            argv.push(setting.to_owned());
        }
        argv
    }

    pub fn options(&self, timeout: Duration) -> StartOptions {
        StartOptions {
            timeout,
            log_file: Some(self.root.join("postgres.log")),
            run_as: self.run_as.clone(),
        }
    }

    pub async fn start(&self) -> Postmaster {
        match Postmaster::start(
            &self.argv(&[]),
            &self.data,
            &self.options(Duration::from_secs(30)),
        )
        .await
        {
            Ok(pm) => pm,
            Err(e) => panic!("start failed: {e}"),
        }
    }

    pub fn pidfile(&self) -> Option<PostmasterPid> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .map(|t| PostmasterPid::parse(&t))
    }

    pub async fn state(&self) -> Option<ClusterState> {
        controldata(Some(Path::new(BIN_DIR)), &self.data)
            .await
            .expect("pg_controldata")
            .cluster_state()
    }
}

/// A failed assertion must not leave a postmaster running on a deleted
/// directory: stop whatever runs there (pg_ctl checks the pid file itself)
/// before the directory goes.
impl Drop for Cluster {
    fn drop(&mut self) {
        if self.data.join("postmaster.pid").exists() {
            let _ = pg_command("pg_ctl", &self.run_as)
                .args(["stop", "-m", "immediate", "-w", "-D"])
                .arg(&self.data)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
