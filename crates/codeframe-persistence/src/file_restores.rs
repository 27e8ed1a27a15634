//! The `file_restores` table: the commit marker of all-or-nothing file restores.
//!
//! A file restore swaps files into the working tree before its transaction commits and leaves
//! a journal naming a token; the transaction records the token here. Present after the fact:
//! the transaction committed (the swap is kept); absent: it rolled back (the swap is undone).

use codeframe_models::ProjectId;
use time::OffsetDateTime;

use crate::rows::fmt;
use crate::{Executor, Result};

/// Records, inside the restore's transaction, that the file restore `token` belongs to it.
pub async fn record(
    ex: &mut impl Executor,
    project_id: ProjectId,
    token: &str,
    now: OffsetDateTime,
) -> Result<()> {
    on!(ex, c => sqlx::query("INSERT INTO file_restores (token, project_id, created_at) VALUES ($1, $2, $3)")
        .bind(token)
        .bind(project_id)
        .bind(fmt(now))
        .execute(c)
        .await.map(crate::db::Done::of))?;
    Ok(())
}

/// Whether the transaction that recorded `token` committed.
pub async fn committed(ex: &mut impl Executor, token: &str) -> Result<bool> {
    let found: Option<i64> = on!(ex, c => sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM file_restores WHERE token = $1")
        .bind(token)
        .fetch_optional(c)
        .await)?;
    Ok(found.is_some())
}

/// Forgets a settled restore (call it only once its journal is gone: a journal whose token
/// is not here is undone).
pub async fn forget(ex: &mut impl Executor, token: &str) -> Result<()> {
    on!(ex, c => sqlx::query("DELETE FROM file_restores WHERE token = $1").bind(token).execute(c).await.map(crate::db::Done::of))?;
    Ok(())
}

/// The tokens recorded for the project and not yet forgotten (restores being settled, or whose
/// process died between removing the journal and forgetting the token).
pub async fn list(ex: &mut impl Executor, project_id: ProjectId) -> Result<Vec<String>> {
    Ok(
        on!(ex, c => sqlx::query_scalar("SELECT token FROM file_restores WHERE project_id = $1 ORDER BY created_at, token")
        .bind(project_id)
        .fetch_all(c)
        .await)?,
    )
}
