//! Users and API tokens: tokens are 32 random bytes, shown once, stored as a SHA-256 hash. A
//! token may expire; revoking one deletes its hash, so it matches nothing any more.

use std::fmt::Write as _;
use std::time::Duration;

use codeframe_models::timestamp;
use codeframe_persistence::auth;
pub use codeframe_persistence::auth::{ApiToken, User};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tracing::{debug, info};

use crate::{CoreError, ProjectService, Result};

/// The user that owns projects made by the local command line, and the first token.
pub const LOCAL_USER: &str = "local";

/// How often a token's `last_used_at` is written at most.
const LAST_USED_EVERY: time::Duration = time::Duration::minutes(1);

/// Longest token lifetime accepted (ten years).
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Longest token label.
const TOKEN_NAME_MAX: usize = 100;

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A new random token: `cf_` and 64 hex digits (32 random bytes from the OS).
pub fn generate_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| CoreError::Internal(format!("no randomness for a token: {e}")))?;
    Ok(bytes.iter().fold(String::from("cf_"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

/// Who a valid token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// The token's owner.
    pub user_id: i64,
    /// The token's id.
    pub token_id: i64,
    /// When the token stops working, if it expires.
    pub expires_at: Option<OffsetDateTime>,
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// Its id (to revoke it).
    pub id: i64,
    /// The owner's name.
    pub user: String,
    /// Its label.
    pub name: String,
    /// When it was made.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was last used (to the minute).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "timestamp::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working, if it expires.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "timestamp::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
}

fn token_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.chars().count() > TOKEN_NAME_MAX || name.chars().any(char::is_control) {
        return Err(CoreError::Invalid(codeframe_models::ModelError::Invalid {
            field: "token name",
            reason: format!("must be 1 to {TOKEN_NAME_MAX} characters, without control characters"),
        }));
    }
    Ok(())
}

impl ProjectService {
    /// The user with this name, created if missing.
    pub async fn ensure_user(&self, name: &str) -> Result<User> {
        codeframe_models::validate::user_name(name)?;
        Ok(auth::ensure_user(&mut self.inner.db.conn().await?, name, self.now()).await?)
    }

    /// Creates a token for `user` (created if missing) labelled `name`, valid for `expires_in`
    /// (forever when `None`); returns the token, which is not stored and cannot be shown again.
    pub async fn create_token(&self, user: &str, name: &str, expires_in: Option<Duration>) -> Result<String> {
        codeframe_models::validate::user_name(user)?;
        token_name(name)?;
        let now = self.now();
        let expires_at = match expires_in {
            Some(d) if d.is_zero() || d > MAX_LIFETIME => {
                return Err(CoreError::Invalid(codeframe_models::ModelError::Invalid {
                    field: "token lifetime",
                    reason: "must be between 1 second and 10 years".into(),
                }));
            }
            Some(d) => Some(now + time::Duration::try_from(d).unwrap_or(time::Duration::MAX)),
            None => None,
        };
        let token = generate_token()?;
        let mut tx = self.inner.db.begin().await?;
        let u = auth::ensure_user(&mut tx, user, now).await?;
        auth::insert_token(&mut tx, u.id, name, &hash_token(&token), now, expires_at).await?;
        tx.commit().await?;
        info!(user, name, expires_at = ?expires_at, "API token created");
        Ok(token)
    }

    /// When no token exists, creates one for the local user and returns it (to show once).
    pub async fn ensure_first_token(&self) -> Result<Option<String>> {
        if auth::count_tokens(&mut self.inner.db.conn().await?).await? > 0 {
            return Ok(None);
        }
        self.create_token(LOCAL_USER, "first start", None).await.map(Some)
    }

    /// Who a token stands for, if it is a known token that has not expired. Records the use
    /// (at most once a minute per token).
    pub async fn authenticate(&self, token: &str) -> Result<Option<Authenticated>> {
        let mut conn = self.inner.db.conn().await?;
        let Some(t) = auth::find_token(&mut conn, &hash_token(token)).await? else { return Ok(None) };
        let now = self.now();
        if t.expires_at.is_some_and(|at| at <= now) {
            debug!(token_id = t.id, "expired token refused");
            return Ok(None);
        }
        auth::touch_token(&mut conn, t.id, now, now - LAST_USED_EVERY).await?;
        Ok(Some(Authenticated { user_id: t.user_id, token_id: t.id, expires_at: t.expires_at }))
    }

    /// Every token (of one user, when given), by id.
    pub async fn list_tokens(&self, user_id: Option<i64>) -> Result<Vec<TokenInfo>> {
        let rows = auth::list_tokens(&mut self.inner.db.conn().await?, user_id).await?;
        Ok(rows
            .into_iter()
            .map(|(t, user)| TokenInfo {
                id: t.id,
                user,
                name: t.name,
                created_at: t.created_at,
                last_used_at: t.last_used_at,
                expires_at: t.expires_at,
            })
            .collect())
    }

    /// Revokes a token (of one user, when given): every process serving the database refuses
    /// it from then on (servers re-check their cached tokens at least every second).
    pub async fn revoke_token(&self, id: i64, user_id: Option<i64>) -> Result<()> {
        if !auth::delete_token(&mut self.inner.db.conn().await?, id, user_id).await? {
            return Err(CoreError::NotFound { entity: "token", id: id.to_string() });
        }
        info!(token_id = id, "API token revoked");
        Ok(())
    }
}
