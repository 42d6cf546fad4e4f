//! Polls requests by hand through one request-id stack, for instruction counts that machine noise does not
//! move (the tower-requestid README's table):
//!
//! ```text
//! cargo build --release -p benches --bin requestid_loop
//! valgrind --tool=callgrind target/release/requestid_loop ours 100000      # or none, tower-http; add `id`
//! valgrind --tool=callgrind target/release/requestid_loop ours 0           # startup, to subtract
//! ```
//!
//! Each request is `Request::new(())` (with a valid `x-request-id` when `id` is given) into a `service_fn`
//! that answers `Response::new(())`, polled once with a no-op waker; the stacks are set up as in
//! `benches/requestid.rs`. Without valgrind it also prints the wall time per request.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::io::Write as _;
use std::pin::pin;
use std::process::ExitCode;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tower::{Service, ServiceBuilder, service_fn};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_requestid::RequestIdLayer;

use benches::requestid::{handler, no_id, with_id as with_id_request};

fn run<S, B>(mut svc: S, n: u64, with_id: bool) -> Result<Duration, String>
where
    S: Service<Request<()>, Response = Response<B>, Error = Infallible>,
{
    let mut cx = Context::from_waker(Waker::noop());
    let start = Instant::now();
    for _ in 0..n {
        if svc.poll_ready(&mut cx).is_pending() {
            return Err("the service is not ready at once".into());
        }
        let req = if with_id { with_id_request() } else { no_id() };
        match pin!(svc.call(req)).poll(&mut cx) {
            Poll::Ready(Ok(response)) => drop(black_box(response)),
            Poll::Ready(Err(e)) => match e {},
            Poll::Pending => return Err("the handler is not ready at once".into()),
        }
    }
    Ok(start.elapsed())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(stack), Some(Ok(n))) = (args.first(), args.get(1).map(|n| n.parse::<u64>())) else {
        eprintln!("usage: requestid_loop none|ours|tower-http REQUESTS [id]");
        return ExitCode::FAILURE;
    };
    let with_id = args.get(2).is_some_and(|a| a == "id");
    let elapsed = match stack.as_str() {
        "none" => run(service_fn(handler), n, with_id),
        "ours" => run(
            ServiceBuilder::new()
                .layer(RequestIdLayer::new())
                .service(service_fn(handler)),
            n,
            with_id,
        ),
        "tower-http" => run(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .service(service_fn(handler)),
            n,
            with_id,
        ),
        other => Err(format!("unknown stack {other}: none, ours or tower-http")),
    };
    match elapsed {
        Ok(elapsed) => {
            let per_request = elapsed.as_secs_f64() * 1e9 / n.max(1) as f64;
            let _ = writeln!(
                std::io::stdout().lock(),
                "{stack}: {n} requests, {per_request:.1} ns each"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
