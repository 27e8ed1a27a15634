//! Users and API tokens. Tokens are stored as a hash only; the token itself is shown once.

use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, opt_ts, ts};
use crate::{DbError, Executor, Result};

/// A user owning projects and tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// When created.
    pub created_at: OffsetDateTime,
}

/// An API token's record (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Label.
    pub name: String,
    /// When created.
    pub created_at: OffsetDateTime,
    /// When last used.
    pub last_used_at: Option<OffsetDateTime>,
}

#[derive(FromRow)]
struct UserRow {
    id: i64,
    name: String,
    created_at: String,
}

#[derive(FromRow)]
struct TokenRow {
    id: i64,
    user_id: i64,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
}

impl TryFrom<UserRow> for User {
    type Error = DbError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User { created_at: ts("users", "created_at", &r.created_at)?, id: r.id, name: r.name })
    }
}

impl TryFrom<TokenRow> for ApiToken {
    type Error = DbError;
    fn try_from(r: TokenRow) -> Result<Self> {
        Ok(ApiToken {
            created_at: ts("api_tokens", "created_at", &r.created_at)?,
            last_used_at: opt_ts("api_tokens", "last_used_at", r.last_used_at.as_deref())?,
            id: r.id,
            user_id: r.user_id,
            name: r.name,
        })
    }
}

/// The user with this name, created if missing.
pub async fn ensure_user(ex: &mut impl Executor, name: &str, now: OffsetDateTime) -> Result<User> {
    sqlx::query("INSERT INTO users (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING")
        .bind(name)
        .bind(fmt(now))
        .execute(ex.connection())
        .await?;
    let row: UserRow = sqlx::query_as("SELECT id, name, created_at FROM users WHERE name = ?")
        .bind(name)
        .fetch_one(ex.connection())
        .await?;
    row.try_into()
}

/// Records a token by its hash.
pub async fn insert_token(
    ex: &mut impl Executor,
    user_id: i64,
    name: &str,
    token_hash: &str,
    now: OffsetDateTime,
) -> Result<ApiToken> {
    let row: TokenRow = sqlx::query_as(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, ?, ?, ?) \
         RETURNING id, user_id, name, created_at, last_used_at",
    )
    .bind(user_id)
    .bind(name)
    .bind(token_hash)
    .bind(fmt(now))
    .fetch_one(ex.connection())
    .await?;
    row.try_into()
}

/// The token with this hash, if any.
pub async fn find_token(ex: &mut impl Executor, token_hash: &str) -> Result<Option<ApiToken>> {
    let row: Option<TokenRow> = sqlx::query_as(
        "SELECT id, user_id, name, created_at, last_used_at FROM api_tokens WHERE token_hash = ?",
    )
    .bind(token_hash)
    .fetch_optional(ex.connection())
    .await?;
    row.map(ApiToken::try_from).transpose()
}

/// How many tokens exist.
pub async fn count_tokens(ex: &mut impl Executor) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens").fetch_one(ex.connection()).await?)
}
