//! What `/proc` tells about a process: CPU time used and resident memory.

use std::time::{Duration, Instant};

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ, fixed at 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user plus system) used so far by `pid`, or by this process with None.
pub fn cpu_seconds(pid: Option<u32>) -> std::io::Result<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path)?;
    // The command name (field 2) may hold spaces; fields after its ')' are plain.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| std::io::Error::other("unexpected /proc stat format"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    let parse = |i: usize| -> std::io::Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|t| t as f64 / TICKS_PER_SECOND)
            .ok_or_else(|| std::io::Error::other("unexpected /proc stat format"))
    };
    Ok(parse(11)? + parse(12)?)
}

/// Measures the share of one core a process used over an interval.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: Option<u32>,
    cpu0: f64,
    t0: Instant,
}

impl CpuMeter {
    /// Starts measuring `pid` (this process with None).
    pub fn start(pid: Option<u32>) -> std::io::Result<CpuMeter> {
        Ok(CpuMeter {
            pid,
            cpu0: cpu_seconds(pid)?,
            t0: Instant::now(),
        })
    }

    /// CPU seconds used since the start.
    pub fn used(&self) -> f64 {
        cpu_seconds(self.pid).map_or(f64::NAN, |cpu| cpu - self.cpu0)
    }

    /// CPU used since the start, as a fraction of one core (1.0 = one core busy).
    pub fn share(&self) -> f64 {
        let wall = self.t0.elapsed().as_secs_f64();
        match cpu_seconds(self.pid) {
            Ok(cpu) if wall > 0.0 => (cpu - self.cpu0) / wall,
            _ => f64::NAN,
        }
    }
}

/// Resident memory of `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc status"))
}

/// Samples a process's RSS on a thread until stopped: memory over time.
#[derive(Debug)]
pub struct RssProbe {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Vec<(f64, u64)>>,
}

impl RssProbe {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> RssProbe {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match rss_bytes(pid) {
                    Ok(rss) => samples.push((t0.elapsed().as_secs_f64(), rss)),
                    Err(_) => break,
                }
                std::thread::sleep(every);
            }
            samples
        });
        RssProbe { stop, handle }
    }

    /// Stops and returns the samples: (seconds since start, RSS bytes).
    pub fn finish(self) -> Vec<(f64, u64)> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let meter = CpuMeter::start(None).unwrap();
        // Burn some CPU so the share is measurably above zero.
        let mut x = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        assert!(meter.share() > 0.0);
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 1024 * 1024, "rss {rss}");
        let probe = RssProbe::start(std::process::id(), Duration::from_millis(10));
        std::thread::sleep(Duration::from_millis(50));
        let samples = probe.finish();
        assert!(!samples.is_empty());
        assert!(samples.iter().all(|&(_, b)| b > 0));
    }
}
