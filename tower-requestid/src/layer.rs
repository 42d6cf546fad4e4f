//! `RequestIdLayer`: the server-side configuration, cheap to clone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderName;
use tower_layer::Layer;
use tracing::Level;

use crate::id::{MakeRequestId, UuidV7};
use crate::service::RequestIdService;

/// The `x-request-id` header name.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request an id and a trace context, runs it inside a span that carries both, and echoes the id
/// on the response.
///
/// - A valid incoming id (by default 1 to 128 characters of `[A-Za-z0-9._:-]`, one header line) is kept.
///   Anything else is replaced by a new id from `M` ([`UuidV7`] by default), and the rejected value is logged
///   at WARN, truncated to 64 bytes and escaped, at most once per second per layer (with a count of the
///   events suppressed since).
/// - A valid `traceparent` joins the caller's trace; otherwise a new trace starts (W3C Processing Model).
/// - [`RequestId`](crate::RequestId) goes into the request's extensions. An invalid incoming header is
///   removed; with [`set_request_header`](Self::set_request_header) a generated id is also written into the
///   request's header.
/// - While the inner service is called and its future polled, [`RequestContext::current`](crate::RequestContext::current)
///   returns the id and the [`TraceContext`](crate::TraceContext) (for the outbound layer, the axum
///   extractors, the Sentry hub); [`trace_context_extension`](Self::trace_context_extension) also puts the
///   trace context into the extensions.
/// - The whole request runs in a span named `request` (INFO by default) with fields `request_id`,
///   `trace_id`, `method` and `path`, so every event inside carries them: the inner call and its future,
///   and with [`StreamingBodyLayer`](crate::StreamingBodyLayer) inside this one, the response body as it
///   streams. With no subscriber listening, the span costs next to nothing.
/// - The response gets the id in the same header.
///
/// Clones share the rejection-log budget.
#[derive(Clone, Debug)]
pub struct RequestIdLayer<M = UuidV7> {
    pub(crate) config: Config<M>,
}

#[derive(Clone, Debug)]
pub(crate) struct Config<M> {
    pub(crate) header: HeaderName,
    pub(crate) make: M,
    pub(crate) rule: Rule,
    pub(crate) span_level: Level,
    pub(crate) set_request_header: bool,
    pub(crate) trace_context_extension: bool,
    pub(crate) rejections: Arc<RejectionLog>,
}

impl RequestIdLayer {
    /// `x-request-id`, UUIDv7 ids, the default rule for incoming ids, an INFO span.
    #[must_use]
    pub fn new() -> Self {
        Self {
            config: Config {
                header: X_REQUEST_ID,
                make: UuidV7,
                rule: Rule::Default,
                span_level: Level::INFO,
                set_request_header: false,
                trace_context_extension: false,
                rejections: Arc::new(RejectionLog::default()),
            },
        }
    }
}

impl Default for RequestIdLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> RequestIdLayer<M> {
    /// Reads and writes the id under another header name (`x-correlation-id`, `request-id`).
    #[must_use]
    pub fn header_name(mut self, name: HeaderName) -> Self {
        self.config.header = name;
        self
    }

    /// Makes new ids with another generator ([`UuidV4`](crate::UuidV4), [`Ulid`](crate::Ulid), a closure).
    #[must_use]
    pub fn make_request_id<M2: MakeRequestId>(self, make: M2) -> RequestIdLayer<M2> {
        let Config {
            header,
            rule,
            span_level,
            set_request_header,
            trace_context_extension,
            rejections,
            ..
        } = self.config;
        RequestIdLayer {
            config: Config {
                header,
                make,
                rule,
                span_level,
                set_request_header,
                trace_context_extension,
                rejections,
            },
        }
    }

    /// Keeps incoming ids that pass `rule` instead of the default one. Whatever the rule says, only printable
    /// ASCII is ever kept.
    #[must_use]
    pub fn incoming_rule(mut self, rule: fn(&[u8]) -> bool) -> Self {
        self.config.rule = Rule::Custom(rule);
        self
    }

    /// Never keeps an incoming id (for a service at the edge that does not trust its callers).
    #[must_use]
    pub fn ignore_incoming(mut self) -> Self {
        self.config.rule = Rule::Never;
        self
    }

    /// The level of the request span (INFO by default): a subscriber filtering above it drops the span, and
    /// with it `request_id` from the events inside.
    #[must_use]
    pub fn span_level(mut self, level: Level) -> Self {
        self.config.span_level = level;
        self
    }

    /// Whether the request's own header is set to the id (default `false`).
    ///
    /// The id is always in the extensions ([`RequestId`](crate::RequestId), the axum extractor), and an invalid incoming value is
    /// always removed, so the header holds either the kept id or nothing. Turn this on for code that reads the
    /// header itself (tower-http's `PropagateRequestIdLayer`, a proxy forwarding headers); it costs a header
    /// insert per request whose id was generated.
    #[must_use]
    pub fn set_request_header(mut self, enabled: bool) -> Self {
        self.config.set_request_header = enabled;
        self
    }

    /// Whether the [`TraceContext`](crate::TraceContext) also goes into the request's extensions (default
    /// `false`).
    ///
    /// It is always available from [`RequestContext::current`](crate::RequestContext::current) while the
    /// request is called and polled, which is where handlers, the axum extractors, the outbound layer and
    /// the Sentry hub read it. Turn this on when the request itself is handed to another task (a queue
    /// worker, `tokio::spawn` with the request, a layer's `call` on the worker of a `tower::buffer::Buffer`),
    /// where only the extensions travel with it. It costs a second extension, a box and a hash-map insert:
    /// 13 to 25 ns a request here (`requestid/steps`, two runs), 5 to 10 % of the layer.
    #[must_use]
    pub fn trace_context_extension(mut self, enabled: bool) -> Self {
        self.config.trace_context_extension = enabled;
        self
    }
}

impl<S, M: Clone> Layer<S> for RequestIdLayer<M> {
    type Service = RequestIdService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService::new(inner, self.config.clone())
    }
}

/// Which incoming ids are kept.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rule {
    /// [`RequestId::is_valid`](crate::RequestId::is_valid).
    Default,
    /// A caller's rule, on top of "printable ASCII".
    Custom(fn(&[u8]) -> bool),
    /// None.
    Never,
}

/// Rate limit of the rejection event: one per second per layer, with a count of those suppressed.
#[derive(Debug, Default)]
pub(crate) struct RejectionLog {
    last_second: AtomicU64,
    suppressed: AtomicU64,
}

impl RejectionLog {
    /// `Some(suppressed since the last one)` when this rejection may be logged.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .max(1);
        let last = self.last_second.load(Ordering::Relaxed);
        if last != now
            && self
                .last_second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}
