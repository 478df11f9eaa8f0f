//! Which IO backend the shards run on, chosen once at start.

use crate::config::IoBackend;

/// The backend that actually runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A tokio current-thread runtime per shard, on epoll.
    Epoll,
}

impl Backend {
    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Epoll => "epoll",
        }
    }
}

/// Why a requested backend cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `STREAMHUB_IO=uring` was asked for, and this build has no io_uring backend yet.
    #[error(
        "STREAMHUB_IO=uring: this build has no io_uring backend yet; use STREAMHUB_IO=epoll or auto"
    )]
    UringUnavailable,
}

/// The backend for a setting, with the reason it was chosen (for the start-up log).
pub fn select(requested: IoBackend) -> Result<(Backend, &'static str), BackendError> {
    match requested {
        IoBackend::Epoll => Ok((Backend::Epoll, "requested by STREAMHUB_IO=epoll")),
        IoBackend::Auto => Ok((
            Backend::Epoll,
            "STREAMHUB_IO=auto and this build has no io_uring backend yet",
        )),
        IoBackend::Uring => Err(BackendError::UringUnavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_falls_back_to_epoll_with_a_reason() {
        let (backend, why) = select(IoBackend::Auto).unwrap();
        assert_eq!(backend, Backend::Epoll);
        assert!(why.contains("io_uring"));
    }

    #[test]
    fn uring_is_refused_with_a_clear_message() {
        let err = select(IoBackend::Uring).unwrap_err().to_string();
        assert!(err.contains("STREAMHUB_IO=uring"), "{err}");
        assert!(err.contains("epoll"), "{err}");
    }
}
