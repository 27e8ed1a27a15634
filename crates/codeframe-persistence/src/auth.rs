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
    /// When last used (kept to the minute).
    pub last_used_at: Option<OffsetDateTime>,
    /// When it stops working, if it expires.
    pub expires_at: Option<OffsetDateTime>,
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
    expires_at: Option<String>,
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
            expires_at: opt_ts("api_tokens", "expires_at", r.expires_at.as_deref())?,
            id: r.id,
            user_id: r.user_id,
            name: r.name,
        })
    }
}

/// The user with this name, created if missing.
pub async fn ensure_user(ex: &mut impl Executor, name: &str, now: OffsetDateTime) -> Result<User> {
    on!(ex, c => sqlx::query("INSERT INTO users (name, created_at) VALUES ($1, $2) ON CONFLICT(name) DO NOTHING")
        .bind(name)
        .bind(fmt(now))
        .execute(c)
        .await.map(crate::db::Done::of))?;
    let row: UserRow = on!(ex, c => sqlx::query_as("SELECT id, name, created_at FROM users WHERE name = $1")
        .bind(name)
        .fetch_one(c)
        .await)?;
    row.try_into()
}

const TOKEN_COLUMNS: &str = "id, user_id, name, created_at, last_used_at, expires_at";

/// Records a token by its hash.
pub async fn insert_token(
    ex: &mut impl Executor,
    user_id: i64,
    name: &str,
    token_hash: &str,
    now: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
) -> Result<ApiToken> {
    let row: TokenRow = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO api_tokens (user_id, name, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5) \
         RETURNING {TOKEN_COLUMNS}"
    )))
    .bind(user_id)
    .bind(name)
    .bind(token_hash)
    .bind(fmt(now))
    .bind(expires_at.map(fmt))
    .fetch_one(c)
    .await)?;
    row.try_into()
}

/// The token with this hash, if any (expired or not).
pub async fn find_token(ex: &mut impl Executor, token_hash: &str) -> Result<Option<ApiToken>> {
    let row: Option<TokenRow> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1"
    )))
    .bind(token_hash)
    .fetch_optional(c)
    .await)?;
    row.map(ApiToken::try_from).transpose()
}

/// Every token with its owner's name (of one user, when given), by id.
pub async fn list_tokens(ex: &mut impl Executor, user_id: Option<i64>) -> Result<Vec<(ApiToken, String)>> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        token: TokenRow,
        user_name: String,
    }
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(
        "SELECT t.id, t.user_id, t.name, t.created_at, t.last_used_at, t.expires_at, u.name AS user_name \
         FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE $1 IS NULL OR t.user_id = $1 ORDER BY t.id",
    )
    .bind(user_id)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(|r| Ok((ApiToken::try_from(r.token)?, r.user_name))).collect()
}

/// Deletes a token (of one user, when given); `false` when there was none.
pub async fn delete_token(ex: &mut impl Executor, id: i64, user_id: Option<i64>) -> Result<bool> {
    let done = on!(ex, c => sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND ($2 IS NULL OR user_id = $2)")
        .bind(id)
        .bind(user_id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected() > 0)
}

/// Records a use of the token, unless one was recorded after `not_since` (so a busy token
/// writes at most once a minute). Returns whether it wrote.
pub async fn touch_token(
    ex: &mut impl Executor,
    id: i64,
    now: OffsetDateTime,
    not_since: OffsetDateTime,
) -> Result<bool> {
    let done = on!(ex, c => sqlx::query(
        "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)",
    )
    .bind(fmt(now))
    .bind(id)
    .bind(fmt(not_since))
    .execute(c)
    .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected() > 0)
}

/// How many tokens exist.
pub async fn count_tokens(ex: &mut impl Executor) -> Result<i64> {
    Ok(on!(ex, c => sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens").fetch_one(c).await)?)
}
