//! `LogConfig::from_env` and `logging::init` end to end, in a child process (the environment and the global
//! subscriber belong to a process): `LOG_LEVEL` filters, `LOG_FORMAT` picks JSON lines or the pretty format
//! for development, and either way the lines written inside a request carry its id.
#![cfg(feature = "logging")]
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions unwrap too

use std::convert::Infallible;
use std::process::Command;

use http::{Request, Response};
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_requestid::RequestIdLayer;
use tower_requestid::logging::{self, LogConfig};

/// Set by the tests below on the child process they start.
const CHILD: &str = "TOWER_REQUESTID_LOG_CHILD";
const ID: &str = "log-env-42";

/// The child's part: logging from the environment, one request that logs at three levels. In the parent's
/// own run (without `TOWER_REQUESTID_LOG_CHILD`) it returns at once; the tests below run it as a child.
#[test]
fn child_serves_one_request() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let config = match LogConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            println!("FROM_ENV_ERROR {e}");
            return;
        }
    };
    let _guard = logging::init(&config).unwrap();
    let svc = ServiceBuilder::new()
        .layer(RequestIdLayer::new())
        .service(service_fn(|_req: Request<()>| async {
            tracing::debug!("debug inside");
            tracing::info!("info inside");
            tracing::warn!("warn inside");
            Ok::<_, Infallible>(Response::new(()))
        }));
    let req = Request::builder()
        .header("x-request-id", ID)
        .body(())
        .unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(svc.oneshot(req))
        .unwrap();
}

/// Runs the child with these variables (and without the others) and returns its standard output.
fn child_output(vars: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["child_serves_one_request", "--exact", "--nocapture"])
        .env(CHILD, "1")
        .env_remove("LOG_LEVEL")
        .env_remove("LOG_FORMAT")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("SENTRY_DSN");
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// The JSON log lines in the child's output (libtest may print `test name ... ` ahead of the first one).
fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|line| line.find('{').map(|start| &line[start..]))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line.get("message").is_some())
        .collect()
}

fn messages(lines: &[serde_json::Value]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|line| line["message"].as_str())
        .collect()
}

#[test]
fn log_level_filters_and_json_is_the_default() {
    let lines = json_lines(&child_output(&[("LOG_LEVEL", "debug")]));
    assert_eq!(
        messages(&lines),
        ["debug inside", "info inside", "warn inside"]
    );
    for line in &lines {
        assert_eq!(line["request_id"], ID, "{line}");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
    }

    let lines = json_lines(&child_output(&[
        ("LOG_LEVEL", "warn"),
        ("LOG_FORMAT", "json"),
    ]));
    assert_eq!(messages(&lines), ["warn inside"]);

    let lines = json_lines(&child_output(&[]));
    assert_eq!(
        messages(&lines),
        ["info inside", "warn inside"],
        "info when LOG_LEVEL is unset"
    );
}

#[test]
fn log_format_pretty_is_for_people() {
    let out = child_output(&[("LOG_FORMAT", "pretty")]);
    // Without the terminal colours, the lines as a person reads them.
    let mut plain = String::new();
    let mut escape = false;
    for c in out.chars() {
        match (escape, c) {
            (false, '\u{1b}') => escape = true,
            (true, 'm') => escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    assert!(json_lines(&plain).is_empty(), "no JSON lines: {plain}");
    assert!(
        plain.contains("info inside") && plain.contains("warn inside"),
        "{plain}"
    );
    assert!(!plain.contains("debug inside"), "{plain}");
    assert!(plain.contains(&format!("request_id: {ID}")), "{plain}");
}

#[test]
fn an_unknown_log_format_is_refused() {
    let out = child_output(&[("LOG_FORMAT", "xml")]);
    assert!(out.contains("FROM_ENV_ERROR"), "{out}");
    assert!(out.contains("xml"), "the error names the value: {out}");
}
