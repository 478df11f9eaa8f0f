//! A Redis of the test's own: `redis-server` on a free loopback port, keeping nothing on
//! disk, that the test kills and starts again (empty, as a Redis without persistence
//! comes back), or a Redis Cluster of three masters. Dropping them kills them.

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
        cli(self.port, args)
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

/// A private Redis Cluster of three masters (no replicas), each a `redis-server` on a
/// free loopback port with its cluster bus on another, keeping nothing on disk.
/// Dropping it kills them.
pub struct PrivateCluster {
    /// The masters' TCP ports, in the order their slot ranges go (0-5460, ...).
    pub ports: Vec<u16>,
    /// Their cluster bus ports.
    buses: Vec<u16>,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl PrivateCluster {
    /// Starts three masters and makes them a cluster, whose state is ok once this
    /// returns.
    pub fn start() -> PrivateCluster {
        let dir = std::env::temp_dir().join(format!("streamhub-cluster-{}", free_port()));
        let mut cluster = PrivateCluster {
            ports: Vec::new(),
            buses: Vec::new(),
            children: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            cluster.ports.push(free_port());
            cluster.buses.push(free_port());
        }
        for i in 0..3 {
            let child = cluster.run(i);
            cluster.children.push(child);
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let made = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("running redis-cli --cluster create");
        assert!(made.status.success(), "{made:?}");
        cluster.wait_ok();
        cluster
    }

    /// Starts master `i`, answering once this returns (its cluster state is kept in its
    /// directory's `nodes.conf`; its data nowhere).
    fn run(&self, i: usize) -> Child {
        let (port, bus) = (self.ports[i], self.buses[i]);
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).expect("the cluster's directory");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus.to_string(),
            ])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--cluster-node-timeout", "2000"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting redis-server (apt install redis-server)");
        let deadline = Instant::now() + PATIENCE;
        while cli(port, &["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    /// Waits until every master says the cluster is ok.
    fn wait_ok(&self) {
        let deadline = Instant::now() + PATIENCE;
        while !self
            .ports
            .iter()
            .all(|&p| cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster did not become ok");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Kills the master on `port` (SIGKILL) and starts it again at once, empty (it
    /// keeps its slots), as a master without persistence or replica comes back.
    pub fn restart_empty(&mut self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|p| *p == port)
            .expect("a master");
        let _ = self.children[i].kill();
        let _ = self.children[i].wait();
        self.children[i] = self.run(i);
        self.wait_ok();
    }

    /// `REDIS_URL` for it: its seed nodes.
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A command's answer through `redis-cli -c` (following redirections).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &self.ports[0].to_string()])
            .args(args)
            .output()
            .expect("running redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A command's answer from the master on `port` alone.
    pub fn cli_on(&self, port: u16, args: &[&str]) -> String {
        cli(port, args)
    }

    /// The port of the master that owns `key`'s slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.ports[0], &["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("a slot");
        let shards = cli(self.ports[0], &["CLUSTER", "SLOTS"]);
        let lines: Vec<&str> = shards.lines().map(str::trim).collect();
        // `redis-cli` prints each range as start, end, then the master's host, port, id.
        for w in lines.windows(4) {
            if let (Ok(start), Ok(end), Ok(port)) = (
                w[0].parse::<u16>(),
                w[1].parse::<u16>(),
                w[3].parse::<u16>(),
            ) {
                if (start..=end).contains(&slot) && self.ports.contains(&port) {
                    return port;
                }
            }
        }
        panic!("no master owns the slot of {key}: {shards}");
    }
}

/// `redis-cli -p port` with `args` (empty when it could not connect).
fn cli(port: u16, args: &[&str]) -> String {
    if TcpStream::connect(("127.0.0.1", port)).is_err() {
        return String::new();
    }
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("running redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
