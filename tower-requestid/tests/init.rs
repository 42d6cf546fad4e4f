//! `logging::init` installs the global subscriber once and refuses a bad filter.
#![cfg(feature = "logging")]

use tower_requestid::logging::{self, LogConfig, LogError, LogFormat};

#[test]
fn init_refuses_a_bad_filter_installs_once_then_reports_the_second_call() {
    let bad = LogConfig::new("info,[", LogFormat::Json).to_stderr();
    assert!(matches!(logging::init(&bad), Err(LogError::Level(_))));

    let good = LogConfig::new("warn", LogFormat::Json).to_stderr();
    let guard = logging::init(&good).expect("first install");
    tracing::warn!("installed");
    assert!(matches!(
        logging::init(&good),
        Err(LogError::AlreadyInstalled(_))
    ));
    drop(guard);
}

#[test]
fn defaults_are_info_and_json() {
    let config = LogConfig::default();
    assert_eq!(config.level, "info");
    assert_eq!(config.format, LogFormat::Json);
}
