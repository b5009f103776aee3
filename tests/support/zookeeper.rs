//! A throwaway standalone ZooKeeper (the Debian `zookeeper` package's jar)
//! on a free loopback port, with a short tick so that session timeouts from
//! 1 s to 120 s are accepted.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ZooKeeperServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The ZooKeeper classpath: its configuration directory (log4j settings)
/// and the jar, whose manifest names its dependencies.
fn classpath() -> String {
    let jar = "/usr/share/java/zookeeper.jar";
    assert!(
        Path::new(jar).exists(),
        "ZooKeeper not installed (apt-get install zookeeper)"
    );
    format!("/etc/zookeeper/conf:{jar}")
}

impl ZooKeeperServer {
    pub fn start() -> ZooKeeperServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let cfg = format!(
            "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             minSessionTimeout=1000\nmaxSessionTimeout=120000\nadmin.enableServer=false\n\
             4lw.commands.whitelist=ruok\n",
            data.display()
        );
        std::fs::write(dir.path().join("zoo.cfg"), cfg).expect("zoo.cfg");
        let mut zk = ZooKeeperServer {
            child: None,
            port,
            dir,
        };
        zk.spawn();
        zk
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("zoo.cfg")
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("zookeeper.log")).expect("log file");
        let child = Command::new("java")
            .arg("-cp")
            .arg(classpath())
            .arg(format!("-Dzookeeper.log.dir={}", self.dir.path().display()))
            .arg("-Dzookeeper.root.logger=WARN,CONSOLE")
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_or(Stdio::null(), Stdio::from))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("java starts ZooKeeper");
        self.child = Some(child);
        self.wait_ready();
    }

    /// `host:port` for the client.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Ready when `ruok` answers `imok` (the port opens a little before).
    fn wait_ready(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
            if let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut answer = String::new();
                if s.write_all(b"ruok").is_ok()
                    && s.read_to_string(&mut answer).is_ok()
                    && answer == "imok"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log =
            std::fs::read_to_string(self.dir.path().join("zookeeper.log")).unwrap_or_default();
        panic!("ZooKeeper did not start on port {}:\n{log}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop and start again on the same port and data (sessions survive).
    #[allow(dead_code)] // not every test crate restarts its server
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        self.stop();
    }
}
