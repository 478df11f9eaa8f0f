//! Logs through `tracing`: one JSON object per line on stdout by default, or
//! human-readable lines. Access logs use the target `streamhub::access`, so
//! `STREAMHUB_LOG=info,streamhub::access=warn` silences them alone.

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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stdout);
    let res = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    res.map_err(|_| LoggingError::AlreadySet)
}
