//! Log set-up: JSON lines with `request_id` and `trace_id` at the top level, or pretty output for people.
//!
//! tracing-subscriber's own JSON format nests span fields under `span`/`spans` and cannot lift them to the
//! top level (tokio-rs/tracing#1531, #2670). [`JsonLayer`] does: when a span is created with a `request_id`
//! or `trace_id` field it keeps those two values in the span's extensions, and each event takes the nearest
//! ones from its scope, so a span opened deep inside a handler still logs the request's id.

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// One JSON object per line (production).
    #[default]
    Json,
    /// tracing-subscriber's multi-line pretty format, span fields included (development).
    Pretty,
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogTarget {
    /// Standard output (what container platforms collect).
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

/// Log settings, usually read with [`LogConfig::from_env`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `my_service=debug,info`.
    pub level: String,
    /// JSON or pretty.
    pub format: LogFormat,
    /// Standard output or standard error.
    pub target: LogTarget,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Json,
            target: LogTarget::Stdout,
        }
    }
}

/// A log setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// `LOG_FORMAT` is neither `json` nor `pretty`.
    #[error("LOG_FORMAT must be `json` or `pretty`, got {0:?}")]
    Format(String),
    /// The level is not a valid `tracing` filter.
    #[error("LOG_LEVEL is not a valid filter: {0}")]
    Level(#[from] tracing_subscriber::filter::ParseError),
    /// A global subscriber is already installed.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled(#[from] tracing_subscriber::util::TryInitError),
    /// The OpenTelemetry exporter could not be built.
    #[error("OpenTelemetry exporter set-up failed: {0}")]
    Exporter(String),
}

impl LogConfig {
    /// Settings with this filter and format, to standard output.
    #[must_use]
    pub fn new(level: impl Into<String>, format: LogFormat) -> Self {
        Self {
            level: level.into(),
            format,
            target: LogTarget::Stdout,
        }
    }

    /// Writes to standard error instead.
    #[must_use]
    pub fn to_stderr(mut self) -> Self {
        self.target = LogTarget::Stderr;
        self
    }

    /// Reads `LOG_LEVEL` (default `info`) and `LOG_FORMAT` (`json`, the default, or `pretty`).
    ///
    /// # Errors
    ///
    /// [`LogError::Format`] for another `LOG_FORMAT`; the level is checked by [`init`].
    pub fn from_env() -> Result<Self, LogError> {
        let level = std::env::var("LOG_LEVEL")
            .ok()
            .filter(|v| !v.trim().is_empty());
        let format = match std::env::var("LOG_FORMAT").ok().as_deref().map(str::trim) {
            None | Some("" | "json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => return Err(LogError::Format(other.to_owned())),
        };
        Ok(Self {
            level: level.unwrap_or_else(|| "info".to_owned()),
            format,
            target: LogTarget::Stdout,
        })
    }
}

/// Keeps the exporters alive; dropping it flushes and shuts them down. Hold it in `main`.
#[must_use = "dropping the guard shuts the trace exporter down"]
#[derive(Debug)]
pub struct LogGuard {
    #[cfg(feature = "opentelemetry")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        #[cfg(feature = "opentelemetry")]
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber: the filter from `config.level`, then JSON lines ([`JsonLayer`]) or the
/// pretty format. With the `opentelemetry` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are also
/// exported over OTLP (see [`otel`](crate::otel)), and `trace_id` in the logs is the exported trace's id.
///
/// # Errors
///
/// [`LogError::Level`] for an invalid filter, [`LogError::AlreadyInstalled`] when a global subscriber exists,
/// [`LogError::Exporter`] when the OTLP exporter cannot be built.
pub fn init(config: &LogConfig) -> Result<LogGuard, LogError> {
    let filter = EnvFilter::builder().parse(&config.level)?;
    #[cfg(feature = "opentelemetry")]
    let (otel_layer, provider) = match crate::otel::provider_from_env()? {
        Some(provider) => (Some(crate::otel::layer(&provider)), Some(provider)),
        None => (None, None),
    };
    #[cfg(not(feature = "opentelemetry"))]
    let otel_layer: Option<tracing_subscriber::layer::Identity> = None;

    // With the `sentry` feature: INFO and WARN events become breadcrumbs, ERROR events become Sentry events
    // (each tagged with the request id by `sentry::layer`). Without a Sentry client both do nothing.
    #[cfg(feature = "sentry")]
    let sentry_layer = {
        use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
        use tracing_subscriber::filter::{LevelFilter, filter_fn};
        Some(
            BreadcrumbLayer::new()
                .with_filter(filter_fn(|m| {
                    matches!(*m.level(), tracing::Level::WARN | tracing::Level::INFO)
                }))
                .and_then(ErrorLayer::new().with_filter(LevelFilter::ERROR)),
        )
    };
    #[cfg(not(feature = "sentry"))]
    let sentry_layer: Option<tracing_subscriber::layer::Identity> = None;

    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(sentry_layer);
    match (config.format, config.target) {
        (LogFormat::Json, LogTarget::Stdout) => {
            registry.with(JsonLayer::new(io::stdout)).try_init()?
        }
        (LogFormat::Json, LogTarget::Stderr) => {
            registry.with(JsonLayer::new(io::stderr)).try_init()?
        }
        (LogFormat::Pretty, LogTarget::Stdout) => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .pretty()
                        .with_writer(io::stdout),
                )
                .try_init()?;
        }
        (LogFormat::Pretty, LogTarget::Stderr) => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .pretty()
                        .with_writer(io::stderr),
                )
                .try_init()?;
        }
    }
    Ok(LogGuard {
        #[cfg(feature = "opentelemetry")]
        provider,
    })
}

/// The correlation fields a span carries, kept in its extensions.
#[derive(Clone, Debug, Default)]
struct Correlation {
    request_id: Option<String>,
    trace_id: Option<String>,
}

impl Visit for Correlation {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "request_id" => self.request_id = Some(value.to_owned()),
            "trace_id" => self.trace_id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "request_id" => self.request_id = Some(format!("{value:?}")),
            "trace_id" => self.trace_id = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

/// A layer that writes one JSON object per event:
///
/// ```text
/// {"timestamp":"2026-12-01T04:00:00.123456Z","level":"INFO","request_id":"0193...","trace_id":"4bf9...",
///  "target":"my_service::payments","span":"sync_payment","message":"payment synced","amount":"12.00"}
/// ```
///
/// `request_id` and `trace_id` come from the nearest span in the event's scope that has them (the request
/// span of [`RequestIdLayer`](crate::RequestIdLayer) records both) and are left out when no span has them.
/// Event fields follow at the top level; one named like a fixed key is written as `fields.<name>`. Each line
/// is written with one `write_all`.
#[derive(Debug)]
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// Writes lines to `make_writer` (`std::io::stdout`, a test buffer).
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

const RESERVED: [&str; 6] = [
    "timestamp",
    "level",
    "request_id",
    "trace_id",
    "target",
    "span",
];

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let fields = attrs.metadata().fields();
        if fields.field("request_id").is_none() && fields.field("trace_id").is_none() {
            return;
        }
        let mut correlation = Correlation::default();
        attrs.record(&mut correlation);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(correlation);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut extensions = span.extensions_mut();
            if let Some(correlation) = extensions.get_mut::<Correlation>() {
                values.record(correlation);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":\"");
        let _ = SystemTime.format_time(&mut Writer::new(&mut line));
        line.push_str("\",\"level\":\"");
        line.push_str(event.metadata().level().as_str());
        line.push('"');

        let mut request_id = None;
        let mut trace_id = None;
        let mut leaf = None;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if leaf.is_none() {
                    leaf = Some(span.name());
                }
                if let Some(c) = span.extensions().get::<Correlation>() {
                    request_id = request_id.or_else(|| c.request_id.clone());
                    trace_id = trace_id.or_else(|| c.trace_id.clone());
                }
                if request_id.is_some() && trace_id.is_some() {
                    break;
                }
            }
        }
        if let Some(id) = request_id {
            push_field(&mut line, "request_id", &id);
        }
        if let Some(id) = trace_id {
            push_field(&mut line, "trace_id", &id);
        }
        push_field(&mut line, "target", event.metadata().target());
        if let Some(name) = leaf {
            push_field(&mut line, "span", name);
        }
        event.record(&mut EventFields { line: &mut line });
        line.push_str("}\n");

        let mut writer = self.make_writer.make_writer_for(event.metadata());
        let _ = writer.write_all(line.as_bytes());
    }
}

fn push_key(line: &mut String, key: &str) {
    line.push(',');
    if RESERVED.contains(&key) {
        push_json_str(line, &format!("fields.{key}"));
    } else {
        push_json_str(line, key);
    }
    line.push(':');
}

fn push_field(line: &mut String, key: &str, value: &str) {
    line.push(',');
    push_json_str(line, key);
    line.push(':');
    push_json_str(line, value);
}

fn push_json_str(line: &mut String, value: &str) {
    // serde_json escapes exactly as RFC 8259 asks; serializing a &str into a String cannot fail.
    if let Ok(quoted) = serde_json::to_string(value) {
        line.push_str(&quoted);
    }
}

struct EventFields<'a> {
    line: &'a mut String,
}

impl Visit for EventFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        push_key(self.line, field.name());
        match serde_json::Number::from_f64(value) {
            Some(n) => {
                let _ = write!(self.line, "{n}");
            }
            None => push_json_str(self.line, &value.to_string()),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        push_key(self.line, field.name());
        let _ = write!(self.line, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        push_key(self.line, field.name());
        let _ = write!(self.line, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        push_key(self.line, field.name());
        let _ = write!(self.line, "{value}");
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        push_key(self.line, field.name());
        push_json_str(self.line, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        push_key(self.line, field.name());
        push_json_str(self.line, &value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        push_key(self.line, field.name());
        push_json_str(self.line, &format!("{value:?}"));
    }
}
