//! Bearer API tokens (made and checked by `codeframe_core::auth`) and the owner check.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use codeframe_core::auth::hash_token;
use codeframe_models::{Project, ProjectId};

use crate::{ApiError, AppState};

/// The user a request acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The token's owner.
    pub user_id: i64,
    /// The token used.
    pub token_id: i64,
}

/// How long a checked token is trusted without asking the database again: a token revoked
/// (or expired) by any process is refused within this.
pub(crate) const TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// A token the database accepted, and when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KnownToken {
    caller: Caller,
    checked: std::time::Instant,
    expires_at: Option<time::OffsetDateTime>,
}

/// The caller a bearer token stands for.
pub(crate) async fn caller_for(state: &AppState, token: &str) -> Result<Option<Caller>, ApiError> {
    let hash = hash_token(token);
    let cached = state.known_tokens.read().unwrap_or_else(|p| p.into_inner()).get(&hash).copied();
    if let Some(known) = cached
        && known.checked.elapsed() < TOKEN_RECHECK
        && known.expires_at.is_none_or(|at| at > codeframe_models::timestamp::now_utc())
    {
        return Ok(Some(known.caller));
    }
    let found = state.service.authenticate(token).await?;
    let mut known = state.known_tokens.write().unwrap_or_else(|p| p.into_inner());
    match found {
        Some(a) => {
            let caller = Caller { user_id: a.user_id, token_id: a.token_id };
            known.insert(
                hash,
                KnownToken { caller, checked: std::time::Instant::now(), expires_at: a.expires_at },
            );
            Ok(Some(caller))
        }
        None => {
            known.remove(&hash);
            Ok(None)
        }
    }
}

pub(crate) fn bearer(req_headers: &axum::http::HeaderMap) -> Option<&str> {
    req_headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// Middleware: a valid bearer token or 401.
pub(crate) async fn require_token(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    use axum::response::IntoResponse;
    let Some(token) = bearer(req.headers()) else {
        return ApiError::unauthorized("missing bearer token").into_response();
    };
    match caller_for(&state, token).await {
        Ok(Some(caller)) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Ok(None) => ApiError::unauthorized("invalid token").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The project, if the caller owns it; another owner's project is "not found".
pub(crate) async fn visible_project(
    state: &AppState,
    caller: Caller,
    id: ProjectId,
) -> Result<Project, ApiError> {
    match state.service.get(id).await {
        Ok(p) if p.owner_id == Some(caller.user_id) => Ok(p),
        Ok(_) => Err(ApiError::not_found(format!("project {id}"))),
        Err(e) => Err(e.into()),
    }
}
