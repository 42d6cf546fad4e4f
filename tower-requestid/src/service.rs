//! `RequestIdService`: the per-request work of [`RequestIdLayer`](crate::RequestIdLayer).

use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use tower_service::Service;
use tracing::{Level, Span};

use crate::context::RequestContext;
use crate::future::ResponseFuture;
use crate::id::{MakeRequestId, RequestId};
use crate::layer::{Config, Rule};
use crate::trace::TraceContext;

/// The service made by [`RequestIdLayer`](crate::RequestIdLayer).
#[derive(Clone, Debug)]
pub struct RequestIdService<S, M> {
    inner: S,
    config: Config<M>,
}

impl<S, M> RequestIdService<S, M> {
    pub(crate) fn new(inner: S, config: Config<M>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, by value.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Outcome of looking at the incoming id header.
enum Incoming<'a> {
    Absent,
    Valid(RequestId),
    Rejected(&'a [u8]),
}

fn incoming<'a>(headers: &'a HeaderMap, name: &http::HeaderName, rule: Rule) -> Incoming<'a> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Incoming::Absent;
    };
    if values.next().is_some() {
        return Incoming::Rejected(first.as_bytes());
    }
    let kept = match rule {
        Rule::Default => {
            RequestId::is_valid(first.as_bytes()).then(|| RequestId::from_valid(first))
        }
        Rule::Custom(rule) => RequestId::from_header_value_with(first, rule),
        Rule::Never => None,
    };
    match kept {
        Some(id) => Incoming::Valid(id),
        None => Incoming::Rejected(first.as_bytes()),
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for RequestIdService<S, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    M: MakeRequestId,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &mut self.config;
        let (id, kept, rejected) = match incoming(req.headers(), &config.header, config.rule) {
            Incoming::Valid(id) => (id, true, None),
            Incoming::Absent => (config.make.make_request_id(), false, None),
            // Escaped only when the rejection may be logged: a flood of bad ids costs no allocation each.
            Incoming::Rejected(bytes) => (
                config.make.make_request_id(),
                false,
                Some(
                    config
                        .rejections
                        .admit()
                        .map(|suppressed| (escape_truncated(bytes), suppressed)),
                ),
            ),
        };
        let incoming_trace = TraceContext::from_headers(req.headers());
        let joined = incoming_trace.is_some();
        #[cfg_attr(not(feature = "opentelemetry"), allow(unused_mut))]
        let mut trace = incoming_trace.unwrap_or_else(TraceContext::new_root);

        let span = make_span(config.span_level, &req, &id, &trace);
        #[cfg(feature = "opentelemetry")]
        crate::otel::attach(&span, &mut trace, joined);
        #[cfg(not(feature = "opentelemetry"))]
        let _ = joined;

        if let Some(admitted) = rejected {
            if let Some(((escaped, len), suppressed)) = admitted {
                let _enter = span.enter();
                tracing::warn!(
                    rejected = %escaped,
                    rejected_len = len,
                    suppressed,
                    "incoming request id refused and replaced"
                );
            }
            if !config.set_request_header {
                req.headers_mut().remove(&config.header);
            }
        }
        if config.set_request_header && !kept {
            req.headers_mut()
                .insert(config.header.clone(), id.header_value().clone());
        }

        let context = RequestContext { id, trace };
        req.extensions_mut().insert(context.id.clone());
        if config.trace_context_extension {
            req.extensions_mut().insert(context.trace.clone());
        }

        // The span and the context are in place while the inner service is called and while its future is
        // polled: layers inside that read the context in `call` (a Sentry hub per request) see it too.
        let inner = &mut self.inner;
        let future = crate::context::in_request(&span, Some(&context), || inner.call(req));
        ResponseFuture::new(future, span, Some(context), config.header.clone())
    }
}

/// The first 64 bytes, escaped (`\r`, `\n`, `\x00`, `\"`, `\\` ...), and the full length.
fn escape_truncated(bytes: &[u8]) -> (String, usize) {
    let mut out = String::new();
    for &b in bytes.iter().take(64) {
        out.extend(std::ascii::escape_default(b).map(char::from));
    }
    if bytes.len() > 64 {
        out.push_str("...");
    }
    (out, bytes.len())
}

fn make_span<B>(level: Level, req: &Request<B>, id: &RequestId, trace: &TraceContext) -> Span {
    macro_rules! span {
        ($level:expr) => {
            tracing::span!(
                $level,
                "request",
                request_id = %id,
                trace_id = %trace.trace_id(),
                method = %req.method(),
                path = %req.uri().path(),
            )
        };
    }
    match level {
        Level::ERROR => span!(Level::ERROR),
        Level::WARN => span!(Level::WARN),
        Level::INFO => span!(Level::INFO),
        Level::DEBUG => span!(Level::DEBUG),
        _ => span!(Level::TRACE),
    }
}
