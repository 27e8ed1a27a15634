//! The `checkpoints` table (rows only; the snapshot itself lives in the project's store).

use codeframe_models::{
    Checkpoint, CheckpointId, CheckpointMetadata, CheckpointTrigger, ProjectId, RetentionPolicy,
};
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, parse, ts};
use crate::{DbError, Executor, Result};

const COLUMNS: &str =
    "id, project_id, name, description, trigger, commit_id, pause_reason, metadata, created_at, pinned";

#[derive(FromRow)]
struct Row {
    id: CheckpointId,
    project_id: ProjectId,
    name: String,
    description: String,
    trigger: String,
    commit_id: Option<String>,
    pause_reason: Option<String>,
    metadata: String,
    created_at: String,
    pinned: bool,
}

impl TryFrom<Row> for Checkpoint {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self> {
        const E: &str = "checkpoints";
        let metadata: CheckpointMetadata =
            serde_json::from_str(&r.metadata).map_err(|e| DbError::Corrupt {
                entity: E,
                field: "metadata",
                value: r.metadata.clone(),
                reason: e.to_string(),
            })?;
        Ok(Checkpoint {
            trigger: parse::<CheckpointTrigger>(E, "trigger", &r.trigger)?,
            created_at: ts(E, "created_at", &r.created_at)?,
            id: r.id,
            project_id: r.project_id,
            name: r.name,
            description: r.description,
            commit_id: r.commit_id,
            pause_reason: r.pause_reason,
            metadata,
            pinned: r.pinned,
        })
    }
}

/// What is needed to record a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCheckpoint {
    /// Its id, from [`reserve_id`]; `None` takes the next one inside the insert's own
    /// transaction (an id that a rollback gives back and a later checkpoint can get again).
    pub id: Option<CheckpointId>,
    /// Project.
    pub project_id: ProjectId,
    /// Name (≤ 100 characters).
    pub name: String,
    /// Description (≤ 500 characters).
    pub description: String,
    /// What made it.
    pub trigger: CheckpointTrigger,
    /// Snapshot commit, if already known.
    pub commit_id: Option<String>,
    /// Pause reason, for pause checkpoints.
    pub pause_reason: Option<String>,
    /// Summary of the project.
    pub metadata: CheckpointMetadata,
    /// When it was made.
    pub created_at: OffsetDateTime,
}

fn metadata_json(m: &CheckpointMetadata) -> Result<String> {
    serde_json::to_string(m).map_err(|e| DbError::Corrupt {
        entity: "checkpoints",
        field: "metadata",
        value: format!("{m:?}"),
        reason: e.to_string(),
    })
}

/// Hands out a checkpoint id that is never handed out again. Call it through an executor that
/// commits on its own (a pooled connection, or a transaction committed before the checkpoint's
/// own): then a checkpoint whose transaction rolls back burns its id, and the snapshot ref named
/// after that id can never be mistaken for a later checkpoint's.
pub async fn reserve_id(ex: &mut impl Executor) -> Result<CheckpointId> {
    Ok(on!(ex, c => sqlx::query_scalar(
        "UPDATE id_sequences SET next_id = next_id + 1 WHERE name = 'checkpoints' RETURNING next_id - 1",
    )
    .fetch_one(c)
    .await)?)
}

/// Inserts a checkpoint row, with the id given or the next one.
pub async fn insert(ex: &mut impl Executor, new: &NewCheckpoint) -> Result<Checkpoint> {
    let id = match new.id {
        Some(id) => id,
        None => reserve_id(ex).await?,
    };
    let row: Row = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO checkpoints (id, project_id, name, description, trigger, commit_id, pause_reason, metadata, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(new.project_id)
    .bind(&new.name)
    .bind(&new.description)
    .bind(new.trigger.as_str())
    .bind(&new.commit_id)
    .bind(&new.pause_reason)
    .bind(metadata_json(&new.metadata)?)
    .bind(fmt(new.created_at))
    .fetch_one(c)
    .await)?;
    row.try_into()
}

/// Records the snapshot commit of a checkpoint.
pub async fn set_commit(ex: &mut impl Executor, id: CheckpointId, commit_id: &str) -> Result<()> {
    let done = on!(ex, c => sqlx::query("UPDATE checkpoints SET commit_id = $1 WHERE id = $2")
        .bind(commit_id)
        .bind(id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    updated_one(done.rows_affected(), id)
}

/// Records the project revision the checkpoint's snapshot is exact at: every item written at
/// or before it is in the snapshot as stored now, unless written again since.
pub async fn set_revision(ex: &mut impl Executor, id: CheckpointId, revision: i64) -> Result<()> {
    let done = on!(ex, c => sqlx::query("UPDATE checkpoints SET revision = $1 WHERE id = $2")
        .bind(revision)
        .bind(id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    updated_one(done.rows_affected(), id)
}

/// The project revision a checkpoint's snapshot is exact at (`None`: unknown, or no such
/// checkpoint).
pub async fn revision(ex: &mut impl Executor, id: CheckpointId) -> Result<Option<i64>> {
    let found: Option<Option<i64>> = on!(ex, c => sqlx::query_scalar("SELECT revision FROM checkpoints WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await)?;
    Ok(found.flatten())
}

/// The project's newest checkpoint with a snapshot and a known revision: (id, commit,
/// revision), the base an incremental snapshot may build on.
pub async fn latest_with_revision(
    ex: &mut impl Executor,
    project_id: ProjectId,
) -> Result<Option<(CheckpointId, String, i64)>> {
    Ok(on!(ex, c => sqlx::query_as(
        "SELECT id, commit_id, revision FROM checkpoints \
         WHERE project_id = $1 AND commit_id IS NOT NULL AND revision IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(project_id)
    .fetch_optional(c)
    .await)?)
}

/// Replaces the metadata recorded for a checkpoint (the snapshot completes it).
pub async fn set_metadata(
    ex: &mut impl Executor,
    id: CheckpointId,
    metadata: &CheckpointMetadata,
) -> Result<()> {
    let done = on!(ex, c => sqlx::query("UPDATE checkpoints SET metadata = $1 WHERE id = $2")
        .bind(metadata_json(metadata)?)
        .bind(id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    updated_one(done.rows_affected(), id)
}

/// The checkpoint with this id.
pub async fn get(ex: &mut impl Executor, id: CheckpointId) -> Result<Checkpoint> {
    find(ex, id).await?.ok_or_else(|| DbError::not_found("checkpoint", id))
}

/// The checkpoint with this id, if any.
pub async fn find(ex: &mut impl Executor, id: CheckpointId) -> Result<Option<Checkpoint>> {
    let row: Option<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM checkpoints WHERE id = $1")))
            .bind(id)
            .fetch_optional(c)
            .await)?;
    row.map(Checkpoint::try_from).transpose()
}

/// A project's checkpoints, newest first.
pub async fn list(ex: &mut impl Executor, project_id: ProjectId) -> Result<Vec<Checkpoint>> {
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM checkpoints WHERE project_id = $1 ORDER BY created_at DESC, id DESC"
    )))
    .bind(project_id)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(Checkpoint::try_from).collect()
}

/// Deletes a checkpoint row.
pub async fn delete(ex: &mut impl Executor, id: CheckpointId) -> Result<()> {
    let done = on!(ex, c => sqlx::query("DELETE FROM checkpoints WHERE id = $1").bind(id).execute(c).await.map(crate::db::Done::of))?;
    if done.rows_affected() == 0 {
        return Err(DbError::not_found("checkpoint", id));
    }
    Ok(())
}

/// Pins or unpins a checkpoint of the project; `NotFound` if it is not one of its.
pub async fn set_pinned(
    ex: &mut impl Executor,
    project_id: ProjectId,
    id: CheckpointId,
    pinned: bool,
) -> Result<()> {
    let done = on!(ex, c => sqlx::query("UPDATE checkpoints SET pinned = $1 WHERE id = $2 AND project_id = $3")
        .bind(pinned)
        .bind(id)
        .bind(project_id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    updated_one(done.rows_affected(), id)
}

/// The project's retention policy (the defaults when none was set).
pub async fn policy(ex: &mut impl Executor, project_id: ProjectId) -> Result<RetentionPolicy> {
    let row: Option<(i64, i64, i64)> = on!(ex, c => sqlx::query_as(
        "SELECT keep_last, keep_within_seconds, keep_daily_days FROM checkpoint_policies WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_optional(c)
    .await)?;
    Ok(match row {
        Some((last, within, daily)) => RetentionPolicy {
            keep_last: u32::try_from(last).unwrap_or(u32::MAX),
            keep_within_seconds: u64::try_from(within).unwrap_or(0),
            keep_daily_days: u32::try_from(daily).unwrap_or(0),
        },
        None => RetentionPolicy::default(),
    })
}

/// Sets the project's retention policy.
pub async fn set_policy(ex: &mut impl Executor, project_id: ProjectId, p: &RetentionPolicy) -> Result<()> {
    on!(ex, c => sqlx::query(
        "INSERT INTO checkpoint_policies (project_id, keep_last, keep_within_seconds, keep_daily_days) \
         VALUES ($1, $2, $3, $4) ON CONFLICT(project_id) DO UPDATE SET keep_last = excluded.keep_last, \
         keep_within_seconds = excluded.keep_within_seconds, keep_daily_days = excluded.keep_daily_days",
    )
    .bind(project_id)
    .bind(i64::from(p.keep_last))
    .bind(i64::try_from(p.keep_within_seconds).unwrap_or(i64::MAX))
    .bind(i64::from(p.keep_daily_days))
    .execute(c)
    .await.map(crate::db::Done::of))?;
    Ok(())
}

/// `Ok` when an update touched the checkpoint's row, `NotFound` when there was none.
fn updated_one(rows: u64, id: CheckpointId) -> Result<()> {
    if rows == 0 {
        return Err(DbError::not_found("checkpoint", id));
    }
    Ok(())
}
