//! A throwaway etcd 3.4 server (v2 API enabled) on free loopback ports,
//! optionally serving HTTPS with client certificates.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A throwaway etcd server.
pub struct Etcd {
    child: Child,
    client_port: u16,
    _dir: tempfile::TempDir,
    args: Vec<String>,
}

fn etcd_binary() -> PathBuf {
    for p in ["/usr/bin/etcd", "/usr/local/bin/etcd"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("etcd not installed (apt-get install etcd-server)");
}

impl Etcd {
    pub fn start() -> Etcd {
        Etcd::start_with(tempfile::tempdir().expect("tempdir"), None)
    }

    /// `tls`: (certificate dir with ca.crt, server.crt, server.key) to serve
    /// HTTPS and require client certificates.
    pub fn start_with(dir: tempfile::TempDir, tls: Option<&std::path::Path>) -> Etcd {
        let client_port = free_port();
        let peer_port = free_port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let args = vec![
            "--name".into(),
            "conformance".into(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("conformance={peer}"),
            "--enable-v2=true".into(),
        ];
        let mut args = args;
        if let Some(certs) = tls {
            for (flag, file) in [
                ("--cert-file", "server.crt"),
                ("--key-file", "server.key"),
                ("--trusted-ca-file", "ca.crt"),
            ] {
                args.push(flag.into());
                args.push(certs.join(file).display().to_string());
            }
            args.push("--client-cert-auth".into());
        }
        let child = spawn(&args);
        let etcd = Etcd {
            child,
            client_port,
            _dir: dir,
            args,
        };
        etcd.wait_ready();
        etcd
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_ok() {
                std::thread::sleep(Duration::from_millis(300));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not start on port {}", self.client_port);
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.args);
        self.wait_ready();
    }
}

fn spawn(args: &[String]) -> Child {
    Command::new(etcd_binary())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd starts")
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
