//! The axum extractor [`Validated<T>`]: JSON in, invariants checked, RFC 9457 problem+json 422 out.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::violation::{Validate, Violation, Violations};

/// The problem type of every validation answer (API.md, "Errors").
pub const PROBLEM_TYPE: &str = "/problems/validation";

/// Extracts a JSON body into `T` and checks [`Validate::violations`]; a body that breaks any invariant is
/// answered with `422 application/problem+json` listing every violation, and the handler never runs.
///
/// ```
/// use axum::{Router, body::Body, http::{Request, StatusCode}, routing::post};
/// use fin_invariants::{Validated, invoice::InvoiceWithTotals};
/// use tower::ServiceExt;
///
/// async fn create(Validated(doc): Validated<InvoiceWithTotals>) -> String {
///     doc.totals.payable_amount.to_string()
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let app: Router = Router::new().route("/api/v1/invoices", post(create));
/// // One line of 2 x 9.95 at 10 % VAT, with a VAT total one cent short.
/// let body = r#"{"currency":"AUD",
///   "lines":[{"quantity":"2","net_price":"9.95","tax_category":"S","tax_rate":"10"}],
///   "totals":{"line_net_total":"19.90","tax_exclusive_amount":"19.90","tax_total":"1.98",
///             "tax_inclusive_amount":"21.88","payable_amount":"21.88",
///             "tax_breakdown":[{"category":"S","rate":"10","taxable_amount":"19.90","tax_amount":"1.98"}]}}"#;
/// let request = Request::post("/api/v1/invoices")
///     .header("content-type", "application/json")
///     .body(Body::from(body))
///     .unwrap();
/// let response = app.oneshot(request).await.unwrap();
/// assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
/// assert_eq!(response.headers()["content-type"], "application/problem+json");
/// # }
/// ```
///
/// The service should check again with the same code ([`Validate::validate`]): the route guards the
/// wire, the service guards every other caller.
#[derive(Debug, Clone, Copy, Default)]
pub struct Validated<T>(pub T);

impl<S, T> FromRequest<S> for Validated<T>
where
    T: DeserializeOwned + Validate,
    S: Send + Sync,
{
    type Rejection = ValidationRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let instance = req.uri().path().to_owned();
        let axum::Json(value) =
            axum::Json::<T>::from_request(req, state)
                .await
                .map_err(|rejection| ValidationRejection::Body {
                    rejection,
                    instance: instance.clone(),
                })?;
        match value.validate() {
            Ok(()) => Ok(Self(value)),
            Err(violations) => Err(ValidationRejection::Invalid {
                violations,
                instance: Some(instance),
            }),
        }
    }
}

/// Why [`Validated`] refused a request; answers as `application/problem+json`.
#[derive(Debug)]
#[non_exhaustive]
pub enum ValidationRejection {
    /// The body parsed but breaks invariants: 422 with every violation in `errors`.
    Invalid {
        /// Every violation.
        violations: Violations,
        /// The request path, as the problem's `instance`.
        instance: Option<String>,
    },
    /// The body is not JSON of the expected shape: axum's status (400, 415 or 422) and its reason.
    Body {
        /// axum's rejection.
        rejection: JsonRejection,
        /// The request path.
        instance: String,
    },
}

impl ValidationRejection {
    /// A 422 rejection for violations found outside the extractor (the service's second check).
    #[must_use]
    pub fn from_violations(violations: Violations) -> Self {
        Self::Invalid {
            violations,
            instance: None,
        }
    }
}

impl From<Violations> for ValidationRejection {
    fn from(violations: Violations) -> Self {
        Self::from_violations(violations)
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Violation]>::is_empty")]
    errors: &'a [Violation],
}

fn problem(status: StatusCode, problem: &Problem<'_>) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for ValidationRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Invalid {
                violations,
                instance,
            } => {
                let count = violations.len();
                let detail = if count == 1 {
                    "1 rule violation".to_owned()
                } else {
                    format!("{count} rule violations")
                };
                problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &Problem {
                        kind: PROBLEM_TYPE,
                        title: "The request breaks the rules it must follow",
                        status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
                        detail,
                        instance: instance.as_deref(),
                        errors: violations.as_slice(),
                    },
                )
            }
            Self::Body {
                rejection,
                instance,
            } => {
                let status = rejection.status();
                problem(
                    status,
                    &Problem {
                        kind: PROBLEM_TYPE,
                        title: "The request body cannot be read",
                        status: status.as_u16(),
                        detail: rejection.body_text(),
                        instance: Some(&instance),
                        errors: &[],
                    },
                )
            }
        }
    }
}

impl IntoResponse for Violations {
    /// 422 `application/problem+json` without `instance`.
    fn into_response(self) -> Response {
        ValidationRejection::from_violations(self).into_response()
    }
}
