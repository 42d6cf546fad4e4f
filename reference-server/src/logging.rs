//! Log set-up: JSON lines by default, pretty output for people (`LOG_FORMAT=pretty`).

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Later calls (tests that build several servers) leave the first in place.
pub fn init(config: &Config) {
    let filter = EnvFilter::builder().parse_lossy(&config.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.pretty().try_init(),
    };
}
