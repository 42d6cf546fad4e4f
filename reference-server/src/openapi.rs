//! The OpenAPI 3.1 document, made from the handlers' `#[utoipa::path]` annotations, and the access rule each
//! annotation declares.
//!
//! Every `/api/v1` route is registered through [`OpenApiRouter`], so a route cannot exist without being in the
//! document. Each operation declares who may call it in its `x-roles` extension, next to the handler: a list
//! of roles, or `"anyone"` for the sign-in routes. [`authorize`] enforces exactly that list, read back from the
//! document at start-up; an operation that declares nothing is refused to everyone (fail closed). While an
//! organization requires a second factor the caller has not set up, only operations marked
//! `x-while-enrolling` are open to them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::error::{AppError, Problem};
use crate::routes;

/// The tag of every operation that needs an organization: it is scoped by the organization in the verified
/// token, and another organization's ids answer 404.
pub const TENANT: &str = "tenant";

/// The value of `x-roles` for operations anyone may call.
const ANYONE: &str = "anyone";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "reference-server",
        description = "A finance backend: organizations, users, ledgers, EN 16931 invoices, dashboards, audit \
            trail. Money is a decimal string with its currency, never a JSON number; every error is \
            application/problem+json; lists are paginated with an opaque `cursor` and a `limit` (1 to 200)."
    ),
    tags(
        (name = "tenant", description = "Needs an organization: scoped by the organization in the verified \
            token; another organization's ids answer 404."),
        (name = "auth", description = "Sign-in, tokens and sessions.")
    ),
    components(schemas(Problem<'static>)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// Declares the `bearer` scheme the operations' `security` names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The problem answers any operation may give, listed once for all of them.
pub(crate) struct Problems;

impl IntoResponses for Problems {
    fn responses() -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                            "Problem",
                        ))))
                        .build(),
                )
                .build()
                .into()
        };
        [
            ("400", "The body is not JSON of the right shape"),
            ("401", "No valid access token"),
            ("403", "The caller's role may not do this"),
            ("404", "Nothing with that id in the caller's organization"),
            ("409", "Conflicts with the current state"),
            ("413", "The body is larger than MAX_BODY_SIZE"),
            ("422", "Breaks a rule: every violation is listed"),
            ("429", "Rate limited: see Retry-After and RateLimit"),
        ]
        .into_iter()
        .map(|(status, description)| (status.to_owned(), problem(description)))
        .collect()
    }
}

/// The `/api/v1` routes and their document.
pub(crate) fn api() -> (axum::Router<AppState>, Document) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::audit::router())
        .merge(routes::ledger::router())
        .merge(routes::invoices::router())
        .merge(routes::integrity::router())
        .merge(routes::dashboard::router())
        .merge(routes::rights::router())
        .split_for_parts()
}

/// Who may call one operation.
#[derive(Debug, Clone)]
enum Access {
    Anyone,
    /// These roles; `while_enrolling`: also while the organization's required second factor is not set up.
    Roles {
        roles: Vec<Role>,
        while_enrolling: bool,
    },
    /// The operation declares no readable rule: refused (fail closed).
    Nobody,
}

/// The access rule of every operation, by method and path template, as the document declares it.
#[derive(Debug, Default)]
pub(crate) struct AccessRules {
    rules: HashMap<String, Vec<(Method, Access)>>,
}

impl AccessRules {
    /// Reads `x-roles` from every operation of `doc`. An operation without a readable rule is refused to
    /// everyone.
    pub(crate) fn from_document(doc: &Value) -> Self {
        let mut rules: HashMap<String, Vec<(Method, Access)>> = HashMap::new();
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            return Self { rules };
        };
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            for (method, operation) in item {
                let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
                    continue;
                };
                let access = match operation.get("x-roles") {
                    Some(Value::String(s)) if s == ANYONE => Access::Anyone,
                    Some(Value::Array(names)) => Access::Roles {
                        roles: names
                            .iter()
                            .filter_map(|n| n.as_str().and_then(Role::parse))
                            .collect(),
                        while_enrolling: operation.get("x-while-enrolling")
                            == Some(&Value::Bool(true)),
                    },
                    _ => Access::Nobody,
                };
                rules
                    .entry(path.clone())
                    .or_default()
                    .push((method, access));
            }
        }
        Self { rules }
    }
}

/// Middleware on the `/api/v1` routes: enforces the operation's `x-roles` (401 without a caller, 403 for a
/// role not listed, 403 for a path the document does not have or an operation that declares no rule).
pub(crate) async fn authorize(
    State(rules): State<Arc<AccessRules>>,
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let Some(operations) = matched.as_ref().and_then(|m| rules.rules.get(m.as_str())) else {
        return AppError::Forbidden.into_response();
    };
    // HEAD runs the GET handler (only the body is dropped), so it is held to GET's rule.
    let method = if request.method() == Method::HEAD {
        &Method::GET
    } else {
        request.method()
    };
    let Some((_, rule)) = operations.iter().find(|(m, _)| m == method) else {
        // A documented path with a method it does not have: the router answers 405 with `Allow`.
        return next.run(request).await;
    };
    let verdict = match rule {
        Access::Anyone => Ok(()),
        Access::Roles {
            roles,
            while_enrolling,
        } => match request.extensions().get::<Principal>() {
            None => Err(AppError::Unauthorized),
            Some(p) if p.totp_pending && !while_enrolling => Err(AppError::TotpEnrolmentRequired),
            Some(p) => p.require(roles),
        },
        Access::Nobody => Err(AppError::Forbidden),
    };
    match verdict {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}
