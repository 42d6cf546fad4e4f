//! Benchmarks of this workspace's crates next to their peers.
//!
//! Each concern has one criterion bench target in `benches/` (`cargo bench -p benches --bench <area>`), with
//! groups named `area/case` and function ids `ours` and the peer's crate name, so both run in one group of one
//! run and the ratio between them is what the crate READMEs report.
#![forbid(unsafe_code)]

/// What the `requestid` bench and `src/bin/requestid_loop.rs` send through every stack.
pub mod requestid {
    use std::convert::Infallible;

    use http::{HeaderValue, Request, Response};

    /// The inner service of every stack: answers at once with an empty response.
    ///
    /// # Errors
    ///
    /// Never.
    pub async fn handler(_req: Request<()>) -> Result<Response<()>, Infallible> {
        Ok(Response::new(()))
    }

    /// A request without an id.
    #[must_use]
    pub fn no_id() -> Request<()> {
        Request::new(())
    }

    /// A request with a valid `x-request-id` (a UUIDv7), as a caller that sends its own would.
    #[must_use]
    pub fn with_id() -> Request<()> {
        let mut req = Request::new(());
        req.headers_mut().insert(
            "x-request-id",
            HeaderValue::from_static("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        );
        req
    }
}
