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

/// Bumps the revision of a project; returns the new revision (0 for an unknown project).
pub async fn bump(ex: &mut impl Executor, project_id: ProjectId) -> Result<i64> {
    let rev: Option<i64> = on!(ex, c => sqlx::query_scalar(
        "UPDATE project_revisions SET revision = revision + 1 WHERE project_id = $1 RETURNING revision",
    )
    .bind(project_id)
    .fetch_optional(c)
    .await)?;
    Ok(rev.unwrap_or(0))
}

/// Bumps the revision of a project for a statement that deletes some of its items; returns
/// the new revision. Snapshots never build on a checkpoint older than a deletion.
pub async fn bump_for_deletion(ex: &mut impl Executor, project_id: ProjectId) -> Result<i64> {
    let rev: Option<i64> = on!(ex, c => sqlx::query_scalar(
        "UPDATE project_revisions SET revision = revision + 1, deleted_revision = revision + 1 \
         WHERE project_id = $1 RETURNING revision",
    )
    .bind(project_id)
    .fetch_optional(c)
    .await)?;
    Ok(rev.unwrap_or(0))
}

/// The revision of the project's last item deletion (0: none).
pub async fn deleted_revision(ex: &mut impl Executor, project_id: ProjectId) -> Result<i64> {
    let rev: Option<i64> = on!(ex, c => sqlx::query_scalar("SELECT deleted_revision FROM project_revisions WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(c)
            .await)?;
    rev.ok_or_else(|| DbError::not_found("project", project_id))
}

/// The project's revision.
pub async fn get(ex: &mut impl Executor, project_id: ProjectId) -> Result<i64> {
    let rev: Option<i64> = on!(ex, c => sqlx::query_scalar("SELECT revision FROM project_revisions WHERE project_id = $1")
        .bind(project_id)
        .fetch_optional(c)
        .await)?;
    rev.ok_or_else(|| DbError::not_found("project", project_id))
}

/// Records the current revision as the one a pause committed. Call it last in the pause's
/// transaction, after every write of the pause.
pub async fn mark_paused(ex: &mut impl Executor, project_id: ProjectId) -> Result<i64> {
    let rev: Option<i64> = on!(ex, c => sqlx::query_scalar(
        "UPDATE project_revisions SET paused_revision = revision WHERE project_id = $1 RETURNING revision",
    )
    .bind(project_id)
    .fetch_optional(c)
    .await)?;
    rev.ok_or_else(|| DbError::not_found("project", project_id))
}

/// Whether nothing of the project's state changed since its pause committed (false when no
/// pause is recorded).
pub async fn unchanged_since_pause(ex: &mut impl Executor, project_id: ProjectId) -> Result<bool> {
    let same: Option<bool> = on!(ex, c => sqlx::query_scalar(
        "SELECT paused_revision IS NOT NULL AND paused_revision = revision FROM project_revisions \
         WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(c)
    .await)?;
    Ok(same.unwrap_or(false))
}

/// Forgets the revision of the last pause (a resume ends it).
pub async fn clear_paused(ex: &mut impl Executor, project_id: ProjectId) -> Result<()> {
    on!(ex, c => sqlx::query("UPDATE project_revisions SET paused_revision = NULL WHERE project_id = $1")
        .bind(project_id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    Ok(())
}
