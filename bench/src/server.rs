//! Starting the servers under test: pinned to a core with `taskset`, on a free port,
//! ready once `GET /healthz` answers 200.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// A server process under test.
#[derive(Debug)]
pub struct ServerProc {
    /// Its name in reports.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
}

/// How to start one server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// Name in reports.
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments; `{addr}` is replaced with the listen address.
    pub args: Vec<String>,
    /// Its environment; `{addr}` in values is replaced likewise.
    pub env: Vec<(String, String)>,
}

impl ServerProc {
    /// Starts `spec` pinned to `core` and waits until it serves.
    pub fn start(spec: &ServerSpec, core: usize) -> anyhow::Result<ServerProc> {
        let addr = free_addr()?;
        let fill = |s: &str| s.replace("{addr}", &addr.to_string());
        if !spec.program.exists() {
            bail!("{} is not built: {}", spec.name, spec.program.display());
        }
        let child = Command::new("taskset")
            .arg("-c")
            .arg(core.to_string())
            .arg(&spec.program)
            .args(spec.args.iter().map(|a| fill(a)))
            .envs(spec.env.iter().map(|(k, v)| (k.clone(), fill(v))))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} (is taskset installed?)", spec.name))?;
        let mut server = ServerProc {
            name: spec.name.clone(),
            addr,
            child,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// The process id (taskset execs the program, so it is the server's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited during start: {status}", self.name);
            }
            if answers_200(self.addr, "/healthz") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("{} did not answer /healthz within 30 s", self.name)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET <path>` on `addr` answers 200 (a probe: `/healthz`, `/readyz`).
pub fn answers_200(addr: SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && &head[9..12] == b"200"
}

/// A loopback address with a port nobody listens on right now.
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?)
}

/// The directory of this executable, where cargo puts the other binaries of the same
/// profile (`streamhub`, the peers).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the bench executable")?;
    Ok(exe
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".")))
}
