//! Project revisions: a counter per project that every change to its checkpointed state bumps
//! (the project row, its agents and assignments, tasks, token usage, context items).
//!
//! Readers use it to know, without reading the state again, that nothing changed since they
//! read it: a pause reads and snapshots the state outside the write lock and commits only if the
//! revision is unchanged; a resume that finds the revision its pause committed has nothing to
//! restore. The small tables bump through triggers (migration 4); the [`crate::context`] module
//! bumps once per write statement.

use codeframe_models::ProjectId;

use crate::{DbError, Executor, Result};

/// Bumps the revision of a project (a no-op for an unknown project).
pub async fn bump(ex: &mut impl Executor, project_id: ProjectId) -> Result<()> {
    sqlx::query("UPDATE project_revisions SET revision = revision + 1 WHERE project_id = ?")
        .bind(project_id)
        .execute(ex.connection())
        .await?;
    Ok(())
}

/// The project's revision.
pub async fn get(ex: &mut impl Executor, project_id: ProjectId) -> Result<i64> {
    let rev: Option<i64> = sqlx::query_scalar("SELECT revision FROM project_revisions WHERE project_id = ?")
        .bind(project_id)
        .fetch_optional(ex.connection())
        .await?;
    rev.ok_or_else(|| DbError::not_found("project", project_id))
}

/// Records the current revision as the one a pause committed. Call it last in the pause's
/// transaction, after every write of the pause.
pub async fn mark_paused(ex: &mut impl Executor, project_id: ProjectId) -> Result<i64> {
    let rev: Option<i64> = sqlx::query_scalar(
        "UPDATE project_revisions SET paused_revision = revision WHERE project_id = ? RETURNING revision",
    )
    .bind(project_id)
    .fetch_optional(ex.connection())
    .await?;
    rev.ok_or_else(|| DbError::not_found("project", project_id))
}

/// Whether nothing of the project's state changed since its pause committed (false when no
/// pause is recorded).
pub async fn unchanged_since_pause(ex: &mut impl Executor, project_id: ProjectId) -> Result<bool> {
    let same: Option<bool> = sqlx::query_scalar(
        "SELECT paused_revision IS NOT NULL AND paused_revision = revision FROM project_revisions \
         WHERE project_id = ?",
    )
    .bind(project_id)
    .fetch_optional(ex.connection())
    .await?;
    Ok(same.unwrap_or(false))
}

/// Forgets the revision of the last pause (a resume ends it).
pub async fn clear_paused(ex: &mut impl Executor, project_id: ProjectId) -> Result<()> {
    sqlx::query("UPDATE project_revisions SET paused_revision = NULL WHERE project_id = ?")
        .bind(project_id)
        .execute(ex.connection())
        .await?;
    Ok(())
}
