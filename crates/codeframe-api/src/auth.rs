//! Bearer API tokens: random 32 bytes, shown once, stored as a SHA-256 hash.

use std::fmt::Write as _;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use codeframe_models::{Project, ProjectId, timestamp};
use codeframe_persistence::{Db, auth};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The user a request acts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The token's owner.
    pub user_id: i64,
}

/// The user that owns projects made by the local command line, and the first token.
pub const LOCAL_USER: &str = "local";

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A new random token: `cf_` and 64 hex digits (32 random bytes).
pub fn generate_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(bytes.iter().fold(String::from("cf_"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Creates a token for `user` (created if missing); returns the token, which is not stored.
pub async fn create_token(db: &Db, user: &str, name: &str) -> Result<String, ApiError> {
    let token = generate_token()?;
    let now = timestamp::now_utc();
    let mut tx = db.begin().await?;
    let u = auth::ensure_user(&mut tx, user, now).await?;
    auth::insert_token(&mut tx, u.id, name, &hash_token(&token), now).await?;
    tx.commit().await?;
    Ok(token)
}

/// When no token exists, creates one for the local user and returns it (to print once).
pub async fn ensure_first_token(db: &Db) -> Result<Option<String>, ApiError> {
    if auth::count_tokens(&mut db.conn().await?).await? > 0 {
        return Ok(None);
    }
    create_token(db, LOCAL_USER, "first start").await.map(Some)
}

/// The caller a bearer token stands for.
pub(crate) async fn caller_for(state: &AppState, token: &str) -> Result<Option<Caller>, ApiError> {
    let hash = hash_token(token);
    if let Some(c) = state.known_tokens.read().unwrap_or_else(|p| p.into_inner()).get(&hash) {
        return Ok(Some(*c));
    }
    let found = auth::find_token(&mut state.service.db().conn().await?, &hash).await?;
    let caller = found.map(|t| Caller { user_id: t.user_id });
    if let Some(c) = caller {
        state.known_tokens.write().unwrap_or_else(|p| p.into_inner()).insert(hash, c);
    }
    Ok(caller)
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
