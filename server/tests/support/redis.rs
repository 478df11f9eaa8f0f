//! A Redis of the test's own: `redis-server` on a free loopback port, keeping nothing on
//! disk, that the test kills and starts again (empty, as a Redis without persistence
//! comes back). Dropping it kills it.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use super::pg::free_port;
use super::PATIENCE;

/// A private `redis-server`.
pub struct PrivateRedis {
    /// Its TCP port.
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts one on a free port, answering once this returns.
    pub fn start() -> PrivateRedis {
        let mut redis = PrivateRedis {
            port: free_port(),
            child: None,
        };
        redis.run();
        redis
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir", "/tmp"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting redis-server (apt install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while self.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// A command's answer through `redis-cli` (empty when it could not connect).
    pub fn cli(&self, args: &[&str]) -> String {
        if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            return String::new();
        }
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("running redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Kills it (SIGKILL): everything it held is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
