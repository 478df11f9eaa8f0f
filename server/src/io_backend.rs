//! Which IO backend the shards run on, chosen once at start.

use crate::config::IoBackend;

/// The backend that actually runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A tokio current-thread runtime per shard, on epoll.
    Epoll,
    /// The same runtime, with connections on a ring per shard (see [`crate::uring`]).
    Uring,
}

impl Backend {
    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Epoll => "epoll",
            Backend::Uring => "io_uring",
        }
    }
}

/// Why a requested backend cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `STREAMHUB_IO=uring` was asked for and the kernel does not run it.
    #[error("STREAMHUB_IO=uring: {0}; use STREAMHUB_IO=epoll or auto")]
    UringUnavailable(String),
}

/// The backend for a setting, with the reason it was chosen (for the start-up log):
/// `uring` and `auto` probe the kernel; `uring` runs io_uring or refuses to start with
/// the probe's reason, `auto` runs epoll for now and says whether io_uring could run.
pub fn select(requested: IoBackend) -> Result<(Backend, String), BackendError> {
    choose(requested, crate::uring::probe)
}

fn choose(
    requested: IoBackend,
    probe: impl FnOnce() -> Result<(), String>,
) -> Result<(Backend, String), BackendError> {
    match requested {
        IoBackend::Epoll => Ok((Backend::Epoll, "requested by STREAMHUB_IO=epoll".into())),
        IoBackend::Uring => match probe() {
            Ok(()) => Ok((Backend::Uring, "requested by STREAMHUB_IO=uring".into())),
            Err(why) => Err(BackendError::UringUnavailable(why)),
        },
        // Until the io_uring backend holds an idle connection in less memory than
        // epoll and delivers a fan-out for no more CPU (neither holds yet: see
        // perf/RESULTS.md), `auto` runs epoll and says whether io_uring could run.
        IoBackend::Auto => match probe() {
            Ok(()) => Ok((
                Backend::Epoll,
                "STREAMHUB_IO=auto runs epoll until the io_uring backend beats it (this kernel runs io_uring: STREAMHUB_IO=uring takes it)".into(),
            )),
            Err(why) => Ok((Backend::Epoll, format!("STREAMHUB_IO=auto and {why}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_epoll_with_the_probes_reason() {
        let (backend, why) = choose(IoBackend::Auto, || {
            Err("io_uring_setup is not permitted".into())
        })
        .unwrap();
        assert_eq!(backend, Backend::Epoll);
        assert!(why.contains("not permitted"), "{why}");
    }

    #[test]
    fn auto_runs_epoll_for_now_and_says_uring_could_run() {
        let (backend, why) = choose(IoBackend::Auto, || Ok(())).unwrap();
        assert_eq!(backend, Backend::Epoll);
        assert!(why.contains("STREAMHUB_IO=uring"), "{why}");
    }

    #[test]
    fn uring_is_refused_with_the_probes_reason() {
        let err = choose(IoBackend::Uring, || {
            Err("this kernel has no io_uring".into())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("STREAMHUB_IO=uring"), "{err}");
        assert!(err.contains("no io_uring"), "{err}");
    }

    #[test]
    fn this_kernel_passes_the_probe() {
        // io_uring is enabled on the machines this project is built on; a kernel or a
        // sandbox that blocks it fails here with the probe's reason.
        crate::uring::probe().unwrap();
    }
}
