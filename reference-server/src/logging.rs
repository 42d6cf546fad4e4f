//! Log set-up: tower-requestid's JSON lines (with `request_id` and `trace_id` on every line written while
//! serving a request) by default, pretty output for people (`LOG_FORMAT=pretty`).

use tower_requestid::logging::{LogConfig, LogError, LogFormat, LogGuard};

use crate::config::{Config, LogFormat as Format};

/// Installs the global subscriber; keep the guard for the life of the process (it flushes exporters).
///
/// # Errors
///
/// When a global subscriber is installed already or an exporter cannot be built.
pub fn init(config: &Config) -> Result<LogGuard, LogError> {
    let format = match config.log_format {
        Format::Json => LogFormat::Json,
        Format::Pretty => LogFormat::Pretty,
    };
    tower_requestid::logging::init(&LogConfig::new(config.log_level.clone(), format))
}
