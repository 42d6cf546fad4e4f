//! The response future of [`RateLimit`](crate::RateLimit).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::layer::{Plan, RateLimitLayer, Verdict, add_headers, refusal};
use crate::limiter::PendingDecision;
use crate::policy::{ClassifyCategory, ClassifyTier};

pin_project! {
    /// The future of a rate-limited call: waiting for the store (Redis only), calling the inner service, or
    /// answering 429.
    pub struct ResponseFuture<S, ReqBody, T, C>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody, T, C>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody, T, C>
    where
        S: Service<Request<ReqBody>>,
    {
        Deciding {
            decide: PendingDecision,
            service: Option<S>,
            request: Option<Request<ReqBody>>,
            plan: Plan,
            layer: RateLimitLayer<T, C>,
        },
        Calling {
            #[pin]
            future: S::Future,
            headers: Option<(HeaderValue, HeaderValue)>,
        },
        Refused {
            response: Option<Response<bytes::Bytes>>,
        },
    }
}

impl<S, ReqBody, T, C> std::fmt::Debug for ResponseFuture<S, ReqBody, T, C>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseFuture")
    }
}

impl<S, ReqBody, T, C> ResponseFuture<S, ReqBody, T, C>
where
    S: Service<Request<ReqBody>>,
{
    pub(crate) fn calling(future: S::Future, headers: Option<(HeaderValue, HeaderValue)>) -> Self {
        Self {
            state: State::Calling { future, headers },
        }
    }

    pub(crate) fn refused(response: Response<bytes::Bytes>) -> Self {
        Self {
            state: State::Refused {
                response: Some(response),
            },
        }
    }

    pub(crate) fn deciding(
        decide: PendingDecision,
        service: S,
        request: Request<ReqBody>,
        plan: Plan,
        layer: RateLimitLayer<T, C>,
    ) -> Self {
        Self {
            state: State::Deciding {
                decide,
                service: Some(service),
                request: Some(request),
                plan,
                layer,
            },
        }
    }
}

impl<S, ReqBody, ResBody, T, C> Future for ResponseFuture<S, ReqBody, T, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    T: ClassifyTier,
    C: ClassifyCategory,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Deciding {
                    decide,
                    service,
                    request,
                    plan,
                    layer,
                } => {
                    let decision = ready!(Pin::new(decide).poll(cx));
                    match layer.shared.conclude(*plan, &decision) {
                        Verdict::Pass(headers) => match (service.take(), request.take()) {
                            (Some(mut service), Some(request)) => State::Calling {
                                future: service.call(request),
                                headers,
                            },
                            // Polled again after completion.
                            _ => return Poll::Pending,
                        },
                        Verdict::Refuse(response) => State::Refused {
                            response: Some(response),
                        },
                    }
                }
                StateProj::Calling { future, headers } => {
                    let response = ready!(future.poll(cx))?;
                    let mut response = response.map(ResponseBody::inner);
                    add_headers(&mut response, headers.take());
                    return Poll::Ready(Ok(response));
                }
                StateProj::Refused { response } => {
                    return match response.take() {
                        Some(response) => Poll::Ready(Ok(refusal(response))),
                        None => Poll::Pending,
                    };
                }
            };
            this.state.set(next);
        }
    }
}
