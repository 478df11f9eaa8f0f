//! A PostgreSQL of a test's own ([`PrivatePg`]): `initdb` in a scratch folder on a free
//! port, or a streaming replica of one (`pg_basebackup`), that the test stops, starts,
//! freezes and pauses under a running server.

use std::cell::Cell;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::PATIENCE;

/// PostgreSQL's server programs (`initdb`, `pg_ctl`): `STREAMHUB_TEST_PG_BIN`, or where
/// Debian puts PostgreSQL 15's.
pub fn pg_bin() -> PathBuf {
    std::env::var_os("STREAMHUB_TEST_PG_BIN").map_or_else(
        || PathBuf::from("/usr/lib/postgresql/15/bin"),
        PathBuf::from,
    )
}

/// Whether the tests run as root (PostgreSQL refuses to: its programs then run as the
/// `postgres` user).
pub fn is_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| {
        let out = Command::new("id")
            .arg("-u")
            .output()
            .expect("running id -u");
        String::from_utf8_lossy(&out.stdout).trim() == "0"
    })
}

/// A PostgreSQL server program, run as `postgres` when the tests run as root.
pub fn pg_program(name: &str) -> Command {
    let path = pg_bin().join(name);
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    }
}

pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A PostgreSQL of the test's own: a cluster made by `initdb` in a scratch folder
/// (trust authentication, `fsync` on), listening on 127.0.0.1 on a free port, that the
/// test stops and starts. Dropping it stops it and removes the folder.
pub struct PrivatePg {
    /// The scratch folder: `data` (the cluster), `sock` (its Unix socket), `log`.
    dir: PathBuf,
    /// Its TCP port.
    pub port: u16,
    running: Cell<bool>,
    /// The processes [`PrivatePg::freeze`] stopped.
    frozen: std::cell::RefCell<Vec<String>>,
}

impl PrivatePg {
    /// A new cluster, started.
    pub fn start_new() -> PrivatePg {
        let mut pg = PrivatePg::scratch();
        let out = pg_program("initdb")
            .current_dir(&pg.dir)
            .arg("-D")
            .arg(pg.data())
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ])
            .output()
            .expect("running initdb");
        assert!(out.status.success(), "initdb: {}", output_text(&out));
        pg.start_on_a_free_port();
        pg
    }

    /// A streaming replica of `primary` (which must be running): `pg_basebackup -R`
    /// (initdb's `pg_hba.conf` trusts replication from 127.0.0.1), started on a port
    /// of its own. It replays what the primary writes until it is paused
    /// ([`PrivatePg::pause_replay`]) or stopped.
    pub fn replica_of(primary: &PrivatePg) -> PrivatePg {
        let mut pg = PrivatePg::scratch();
        let out = pg_program("pg_basebackup")
            .current_dir(&pg.dir)
            .arg("-D")
            .arg(pg.data())
            .args(["-R", "-X", "stream", "-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &primary.port.to_string()])
            .output()
            .expect("running pg_basebackup");
        assert!(out.status.success(), "pg_basebackup: {}", output_text(&out));
        pg.start_on_a_free_port();
        pg
    }

    /// Stops replaying the primary's WAL (on a replica): it keeps answering reads with
    /// what it had replayed.
    pub fn pause_replay(&self) {
        self.psql("SELECT pg_wal_replay_pause()");
    }

    /// Replays the primary's WAL again (on a replica).
    pub fn resume_replay(&self) {
        self.psql("SELECT pg_wal_replay_resume()");
    }

    /// Starts it on a free port (a few tries: another process may take the port between
    /// the probe and the start).
    fn start_on_a_free_port(&mut self) {
        for attempt in 1.. {
            self.port = free_port();
            match self.try_start() {
                Ok(()) => break,
                Err(_) if attempt < 5 => {}
                Err(e) => panic!("PostgreSQL would not start: {e}"),
            }
        }
    }

    /// A scratch folder for a cluster, owned by `postgres` when the tests run as root.
    fn scratch() -> PrivatePg {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("streamhub-pg-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        let pg = PrivatePg {
            dir,
            port: 0,
            running: Cell::new(false),
            frozen: Default::default(),
        };
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .status()
                .expect("running chown");
            assert!(status.success(), "chown postgres {}", pg.dir.display());
        }
        pg
    }

    /// Its data folder.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Its URL (the `postgres` database, as the `postgres` user).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn pg_ctl(&self, args: &[&str]) -> Output {
        pg_program("pg_ctl")
            .current_dir(&self.dir)
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", &PATIENCE.as_secs().to_string()])
            .args(args)
            .output()
            .expect("running pg_ctl")
    }

    pub fn try_start(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.join("sock").display()
        );
        let log = self.dir.join("log");
        let out = self.pg_ctl(&["-l", log.to_str().unwrap(), "-o", &options, "start"]);
        if out.status.success() {
            self.running.set(true);
            Ok(())
        } else {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            Err(format!("{}; its log ends: {tail:?}", output_text(&out)))
        }
    }

    /// Starts it again on its port (a few tries: the port may be briefly held).
    pub fn start(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.try_start() {
                Ok(()) => return,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("PostgreSQL would not start again: {e}"),
            }
        }
    }

    /// Stops it (fast: sessions are ended, the data is checkpointed).
    pub fn stop(&self) {
        let out = self.pg_ctl(&["-m", "fast", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", output_text(&out));
        self.running.set(false);
    }

    /// Freezes it: SIGSTOP to the postmaster and every process it started. It keeps its
    /// connections (and the kernel queues new ones) but answers nothing, like a
    /// database behind a network partition, until [`PrivatePg::thaw`].
    pub fn freeze(&self) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("reading postmaster.pid");
        let postmaster = pid.lines().next().unwrap().trim().to_owned();
        let out = Command::new("pgrep")
            .args(["-P", &postmaster])
            .output()
            .expect("running pgrep");
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        signal(&pids, "STOP");
        *self.frozen.borrow_mut() = pids;
    }

    /// Resumes what [`PrivatePg::freeze`] stopped.
    pub fn thaw(&self) {
        let pids = std::mem::take(&mut *self.frozen.borrow_mut());
        if !pids.is_empty() {
            signal(&pids, "CONT");
        }
    }

    /// Runs one statement with `psql` on it; its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([&self.url(), "-v", "ON_ERROR_STOP=1", "-Atc", sql])
            .output()
            .expect("running psql");
        assert!(out.status.success(), "psql {sql}: {}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.thaw();
        if self.running.get() {
            let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends `kill -<name>` to processes.
pub fn signal(pids: &[String], name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids)
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name} {pids:?}");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
