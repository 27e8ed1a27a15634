//! Users and API tokens: tokens are 32 random bytes, shown once, stored as a SHA-256 hash.

use std::fmt::Write as _;

use codeframe_persistence::auth;
pub use codeframe_persistence::auth::{ApiToken, User};
use sha2::{Digest, Sha256};
use tracing::info;

use crate::{CoreError, ProjectService, Result};

/// The user that owns projects made by the local command line, and the first token.
pub const LOCAL_USER: &str = "local";

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
        .map_err(|e| CoreError::Cancelled(format!("no randomness for a token: {e}")))?;
    Ok(bytes.iter().fold(String::from("cf_"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

impl ProjectService {
    /// The user with this name, created if missing.
    pub async fn ensure_user(&self, name: &str) -> Result<User> {
        codeframe_models::validate::user_name(name)?;
        Ok(auth::ensure_user(&mut self.inner.db.conn().await?, name, self.now()).await?)
    }

    /// Creates a token for `user` (created if missing) labelled `name`; returns the token,
    /// which is not stored and cannot be shown again.
    pub async fn create_token(&self, user: &str, name: &str) -> Result<String> {
        codeframe_models::validate::user_name(user)?;
        let token = generate_token()?;
        let now = self.now();
        let mut tx = self.inner.db.begin().await?;
        let u = auth::ensure_user(&mut tx, user, now).await?;
        auth::insert_token(&mut tx, u.id, name, &hash_token(&token), now).await?;
        tx.commit().await?;
        info!(user, name, "API token created");
        Ok(token)
    }

    /// When no token exists, creates one for the local user and returns it (to show once).
    pub async fn ensure_first_token(&self) -> Result<Option<String>> {
        if auth::count_tokens(&mut self.inner.db.conn().await?).await? > 0 {
            return Ok(None);
        }
        self.create_token(LOCAL_USER, "first start").await.map(Some)
    }

    /// The user id a token stands for, if it is a known token.
    pub async fn authenticate(&self, token: &str) -> Result<Option<i64>> {
        let found = auth::find_token(&mut self.inner.db.conn().await?, &hash_token(token)).await?;
        Ok(found.map(|t| t.user_id))
    }
}
