//! Authentication: who is calling, verified once per request, and what their role lets them do.
//!
//! [`authenticate`] runs for every request: a valid access token whose session is still live puts a
//! [`Principal`] into the request's extensions; a missing or invalid one puts nothing and rejects nothing (the
//! rate limiter then treats the caller as anonymous). Handlers state what they need by taking a [`Principal`]
//! (401 without one) and calling [`Principal::require`] (403 for a role that may not).

pub mod password;
pub mod token;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::error::AppError;

/// A user's role in their organization, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Created the organization; everything, including unlocking accounts and data rights.
    Owner,
    /// Manages users and settings.
    Admin,
    /// Keeps the books: accounts, journals, invoices, payments.
    Accountant,
    /// Day-to-day work: invoices, payments; signs in with a PIN on a shared terminal.
    Staff,
    /// Reads.
    Viewer,
}

impl Role {
    /// The role's name as stored and put in tokens.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Accountant => "accountant",
            Self::Staff => "staff",
            Self::Viewer => "viewer",
        }
    }

    /// Parses a stored or claimed role name.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "owner" => Self::Owner,
            "admin" => Self::Admin,
            "accountant" => Self::Accountant,
            "staff" => Self::Staff,
            "viewer" => Self::Viewer,
            _ => return None,
        })
    }
}

/// Every role: operations any signed-in member of the organization may call.
pub const EVERYONE: &[Role] = &[
    Role::Owner,
    Role::Admin,
    Role::Accountant,
    Role::Staff,
    Role::Viewer,
];

/// Owners and admins: people, settings, the audit trail.
pub const MANAGERS: &[Role] = &[Role::Owner, Role::Admin];

/// The owner alone: data rights and unlocking PIN sign-in.
pub const OWNER: &[Role] = &[Role::Owner];

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: Uuid,
    /// The user's organization: every query of the request is scoped by it.
    pub organization_id: Uuid,
    /// The user's role.
    pub role: Role,
    /// The rate-limit tier (`authenticated` or `premium`).
    pub tier: String,
    /// The session the token belongs to.
    pub session_id: Uuid,
    /// The organization requires a second factor and the user has none yet: the session may only enrol.
    pub totp_pending: bool,
}

impl Principal {
    /// Allows the request when the caller has one of `roles`.
    ///
    /// # Errors
    ///
    /// [`AppError::Forbidden`] otherwise.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Self>()
            .cloned()
            .ok_or(AppError::Unauthorized)
    }
}

/// The bearer token of a request, if it has one.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Middleware: verifies the bearer token and the liveness of its session, and records the [`Principal`].
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(token) = bearer(&request) {
        match state.keys().verify(token, state.clock().unix()) {
            Ok(claims) => match crate::domain::identity::touch_session(&state, &claims).await {
                Ok(Some(principal)) => {
                    request.extensions_mut().insert(principal);
                }
                Ok(None) => tracing::debug!("token of an ended session"),
                Err(e) => tracing::warn!(error = %e, "session check failed"),
            },
            Err(e) => tracing::debug!(reason = %e, "access token refused"),
        }
    }
    next.run(request).await
}
