//! A tower layer that caches idempotent `GET` responses by route, query and caller, and says what it did in an
//! RFC 9211 `Cache-Status` member.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, HeaderName, HeaderValue, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::Collect;
use http_body_util::{BodyExt, Full};
use tower_layer::Layer;
use tower_service::Service;

use crate::{CacheKey, QueryCache, Tier};

/// The `Cache-Status` field name (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The tag every cached response carries: `invalidate_tag(tenant, "http")` drops a tenant's cached responses.
pub const HTTP_TAG: &str = "http";

/// Boxed errors at the tower boundary.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A stored response: status, headers and body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedResponse {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl CachedResponse {
    /// The body's size in bytes plus its headers' (a weigher for [`QueryCacheBuilder::weigher`](crate::QueryCacheBuilder::weigher)).
    #[must_use]
    pub fn weight(&self) -> u64 {
        let headers: usize = self.headers.iter().map(|(n, v)| n.len() + v.len()).sum();
        (self.body.len() + headers) as u64
    }
}

/// Who is asking: the tenant (the cache namespace) and the caller (user or token subject), or `None` to bypass
/// the cache for this request.
pub type CallerFn = Arc<dyn Fn(&http::request::Parts) -> Option<(String, String)> + Send + Sync>;

/// Caches `GET` responses with status 200 for one [`Tier`], keyed by path, query and caller.
///
/// Clones share one cache. Responses with `Set-Cookie` or `Cache-Control: no-store`/`private` are not stored;
/// requests with `Cache-Control: no-cache` or `no-store` go forward (`fwd=request`). Only `GET` is cached; other
/// methods pass through untouched.
#[derive(Clone)]
pub struct GetCacheLayer {
    cache: QueryCache<CachedResponse>,
    tier: Tier,
    caller: CallerFn,
    name: Arc<str>,
}

impl std::fmt::Debug for GetCacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetCacheLayer")
            .field("tier", &self.tier)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl GetCacheLayer {
    /// A layer storing into `cache` for `tier`, naming itself `name` in `Cache-Status` (a token such as
    /// `reference-server`), with `caller` telling tenant and caller apart.
    pub fn new(
        cache: QueryCache<CachedResponse>,
        tier: Tier,
        name: &str,
        caller: impl Fn(&http::request::Parts) -> Option<(String, String)> + Send + Sync + 'static,
    ) -> Self {
        Self {
            cache,
            tier,
            caller: Arc::new(caller),
            name: name.into(),
        }
    }
}

impl<S> Layer<S> for GetCacheLayer {
    type Service = GetCache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GetCache {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`GetCacheLayer`].
#[derive(Clone, Debug)]
pub struct GetCache<S> {
    inner: S,
    layer: GetCacheLayer,
}

impl<S> GetCache<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GetCache<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let (parts, body) = request.into_parts();
        if parts.method != Method::GET {
            return ResponseFuture::call(self.inner.call(Request::from_parts(parts, body)), None);
        }
        let key = key_for(&self.layer, &parts);
        let reason = if key.is_none() {
            "bypass"
        } else if request_refuses_cache(&parts) {
            "request"
        } else {
            "miss"
        };
        if let (Some(key), "miss") = (&key, reason)
            && let Some((stored, ttl)) = self.layer.cache.get_with_ttl(key)
        {
            let member = format!("{}; hit; ttl={}", self.layer.name, ttl.as_secs());
            return ResponseFuture::ready(rebuild(&stored, &member));
        }
        let miss = Miss {
            layer: self.layer.clone(),
            key,
            reason,
        };
        ResponseFuture::call(
            self.inner.call(Request::from_parts(parts, body)),
            Some(miss),
        )
    }
}

/// What a forwarded `GET` needs once the response is in.
struct Miss {
    layer: GetCacheLayer,
    key: Option<CacheKey>,
    reason: &'static str,
}

pin_project_lite::pin_project! {
    /// The future of [`GetCache`]: a hit is ready at once; a forwarded request awaits the inner service, then
    /// its body; a stored miss then awaits the store (the only boxed step, on the miss path).
    pub struct ResponseFuture<F, B: Body> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F, B: Body> {
        Ready { response: Option<Response<Full<Bytes>>> },
        Call { #[pin] future: F, miss: Option<Miss> },
        Collect { #[pin] collect: Collect<B>, parts: Option<http::response::Parts>, miss: Option<Miss> },
        Store { store: Pin<Box<dyn Future<Output = ()> + Send>>, response: Option<Response<Full<Bytes>>> },
    }
}

impl<F, B: Body> ResponseFuture<F, B> {
    fn ready(response: Response<Full<Bytes>>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    fn call(future: F, miss: Option<Miss>) -> Self {
        Self {
            state: State::Call { future, miss },
        }
    }
}

impl<F, B: Body> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

fn completed() -> BoxError {
    "response future polled after completion".into()
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<Full<Bytes>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Ready { response } => {
                    return Poll::Ready(response.take().ok_or_else(completed));
                }
                StateProj::Call { future, miss } => {
                    let response = std::task::ready!(future.poll(cx)).map_err(Into::into)?;
                    let (parts, body) = response.into_parts();
                    let miss = miss.take();
                    state.set(State::Collect {
                        collect: body.collect(),
                        parts: Some(parts),
                        miss,
                    });
                }
                StateProj::Collect {
                    collect,
                    parts,
                    miss,
                } => {
                    let bytes = std::task::ready!(collect.poll(cx))
                        .map_err(Into::into)?
                        .to_bytes();
                    let Some(parts) = parts.take() else {
                        return Poll::Ready(Err(completed()));
                    };
                    let mut response = Response::from_parts(parts, Full::new(bytes.clone()));
                    let Some(miss) = miss.take() else {
                        return Poll::Ready(Ok(response));
                    };
                    let store: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = match &miss.key {
                        Some(key) if miss.reason == "miss" && storable(&response) => {
                            let snapshot = snapshot(&response, &bytes);
                            let (cache, key, tier) =
                                (miss.layer.cache.clone(), key.clone(), miss.layer.tier);
                            Some(Box::pin(
                                async move { cache.insert(&key, tier, snapshot).await },
                            ))
                        }
                        _ => None,
                    };
                    let member = if store.is_some() {
                        format!("{}; fwd={}; stored", miss.layer.name, miss.reason)
                    } else {
                        format!("{}; fwd={}", miss.layer.name, miss.reason)
                    };
                    append_status(response.headers_mut(), &member);
                    match store {
                        Some(store) => state.set(State::Store {
                            store,
                            response: Some(response),
                        }),
                        None => return Poll::Ready(Ok(response)),
                    }
                }
                StateProj::Store { store, response } => {
                    std::task::ready!(store.as_mut().poll(cx));
                    return Poll::Ready(response.take().ok_or_else(completed));
                }
            }
        }
    }
}

fn key_for(layer: &GetCacheLayer, parts: &http::request::Parts) -> Option<CacheKey> {
    let (tenant, caller) = (layer.caller)(parts)?;
    let route = (
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
        caller.as_str(),
    );
    CacheKey::new(&tenant, "http.get", &route)
        .and_then(|k| k.tagged([HTTP_TAG]))
        .ok()
}

fn request_refuses_cache(parts: &http::request::Parts) -> bool {
    parts.headers.get_all(CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|d| matches!(d.trim(), "no-cache" | "no-store"))
        })
    })
}

fn storable(response: &Response<Full<Bytes>>) -> bool {
    // RFC 6585 4: a 429 must not be stored; only plain successes are cached here.
    response.status() == StatusCode::OK
        && !response.headers().contains_key(SET_COOKIE)
        && !response.headers().get_all(CACHE_CONTROL).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|d| matches!(d.trim(), "no-store" | "private"))
            })
        })
}

fn snapshot(response: &Response<Full<Bytes>>, body: &Bytes) -> CachedResponse {
    CachedResponse {
        status: response.status().as_u16(),
        headers: response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect(),
        body: body.to_vec(),
    }
}

fn rebuild(stored: &CachedResponse, member: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(stored.body.clone())));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_bytes(value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    append_status(response.headers_mut(), member);
    response
}

/// Appends this cache's member to `Cache-Status`, keeping the members of caches closer to the origin
/// (RFC 9211 2: the field is a list; each cache appends its own).
fn append_status(headers: &mut http::HeaderMap, member: &str) {
    let existing: Vec<String> = headers
        .get_all(&CACHE_STATUS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let value = if existing.is_empty() {
        member.to_owned()
    } else {
        format!("{}, {member}", existing.join(", "))
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(CACHE_STATUS, value);
    }
}
