//! A throwaway `nats-server` for tests and benchmarks (feature `testing`).
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! let mut server = switchyard_nats::testing::NatsServer::start()?;
//! println!("{}", server.url());
//! server.kill(); // SIGKILL
//! server.restart()?; // same port, same JetStream store
//! # Ok(()) }
//! ```
//!
//! The binary is `$NATS_SERVER_BIN`, else `nats-server` on `PATH`, else
//! `/usr/sbin/nats-server`. Each server listens on 127.0.0.1 on a free port (`-p -1`),
//! with JetStream on, its store and ports file in a temporary directory deleted on drop.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed) `nats-server` child process. Dropping it kills the server.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    extra: Vec<String>,
}

/// The server binary to run.
pub fn server_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("nats-server");
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("/usr/sbin/nats-server")
}

/// The server's version line (`nats-server: v2.9.10`), if it runs.
pub fn server_version() -> Option<String> {
    let out = Command::new(server_binary())
        .arg("--version")
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl NatsServer {
    /// Start a server with JetStream on a free port.
    pub fn start() -> io::Result<NatsServer> {
        Self::start_with(&[])
    }

    /// Start a server with extra command-line arguments, e.g.
    /// `["--user", "u", "--pass", "p"]` or `["--auth", "token"]`.
    pub fn start_with(extra: &[&str]) -> io::Result<NatsServer> {
        let dir = tempfile::Builder::new().prefix("sy-nats-").tempdir()?;
        let mut s = NatsServer {
            child: None,
            dir,
            port: 0,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        s.spawn(None)?;
        Ok(s)
    }

    fn spawn(&mut self, port: Option<u16>) -> io::Result<()> {
        let dir = self.dir.path();
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let mut child = Command::new(server_binary())
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
            .arg(dir.join("store"))
            .arg("--ports_file_dir")
            .arg(dir)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run {}: {e}", server_binary().display()),
                )
            })?;
        let ports = dir.join(format!("nats-server_{}.ports", child.id()));
        let deadline = Instant::now() + Duration::from_secs(15);
        let port = loop {
            if let Some(p) = read_port(&ports) {
                break p;
            }
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "nats-server exited with {status} before listening; log: {}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                )));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "nats-server wrote no ports file within 15 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.port = port;
        self.child = Some(child);
        Ok(())
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory (JetStream store under `store/`, log in `server.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL the server and reap it. No-op if it is not running.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the server again on the same port with the same store (killing it first if
    /// it still runs).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        let port = self.port;
        // The port may take a moment to be free again.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(Some(port)) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "nats-server restart failed; retrying");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_port(path: &Path) -> Option<u16> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = v.get("nats")?.as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}
