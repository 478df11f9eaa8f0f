//! Logs through `tracing`: one JSON object per line on stdout by default ([`json`]), or
//! human-readable lines. Access logs use the target `streamhub::access`, so
//! `STREAMHUB_LOG=info,streamhub::access=off` silences them alone.

pub mod clock;
pub mod json;
pub mod sink;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter is not valid `EnvFilter` syntax.
    #[error("STREAMHUB_LOG: `{filter}` is not a valid log filter: {source}")]
    Filter {
        /// The filter as given.
        filter: String,
        /// What the parser said.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadySet,
}

/// Installs the process-wide subscriber.
pub fn init(filter: &str, format: LogFormat) -> Result<(), LoggingError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| LoggingError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let res = match format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(env_filter)
            .with(json::JsonLayer)
            .try_init()
            .is_ok(),
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(env_filter)
            .with_writer(std::io::stdout)
            .try_init()
            .is_ok(),
    };
    if res {
        Ok(())
    } else {
        Err(LoggingError::AlreadySet)
    }
}
