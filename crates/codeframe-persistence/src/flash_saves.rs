//! The `flash_saves` table: one row per flash save, naming the items it archived.

use codeframe_models::{FlashSave, FlashSaveId, ProjectId};
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, ts};
use crate::{DbError, Executor, Result};

const COLUMNS: &str = "id, project_id, agent_id, tokens_before, tokens_after, items_count, items_archived, \
    hot_items_retained, warm_items_retained, created_at";

#[derive(FromRow)]
struct Row {
    id: FlashSaveId,
    project_id: ProjectId,
    agent_id: String,
    tokens_before: i64,
    tokens_after: i64,
    items_count: i64,
    items_archived: i64,
    hot_items_retained: i64,
    warm_items_retained: i64,
    created_at: String,
}

impl TryFrom<Row> for FlashSave {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self> {
        Ok(FlashSave {
            created_at: ts("flash_saves", "created_at", &r.created_at)?,
            id: r.id,
            project_id: r.project_id,
            agent_id: r.agent_id,
            tokens_before: r.tokens_before,
            tokens_after: r.tokens_after,
            items_count: r.items_count,
            items_archived: r.items_archived,
            hot_items_retained: r.hot_items_retained,
            warm_items_retained: r.warm_items_retained,
        })
    }
}

/// The figures of a flash save, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFlashSave<'a> {
    /// An id from [`reserve_ids`], or `None` for the next one.
    pub id: Option<FlashSaveId>,
    /// Project.
    pub project_id: ProjectId,
    /// Agent.
    pub agent_id: &'a str,
    /// Active tokens before.
    pub tokens_before: i64,
    /// Active tokens after.
    pub tokens_after: i64,
    /// Active items before.
    pub items_count: i64,
    /// COLD items archived.
    pub items_archived: i64,
    /// HOT items kept.
    pub hot_items_retained: i64,
    /// WARM items kept.
    pub warm_items_retained: i64,
    /// When.
    pub created_at: OffsetDateTime,
}

/// Hands out `count` consecutive flash-save ids that are never handed out again; returns the
/// first. Call it through an executor that commits on its own, so that a pause can write the
/// ids into its snapshot before it takes the write lock (a rollback burns them).
pub async fn reserve_ids(ex: &mut impl Executor, count: i64) -> Result<FlashSaveId> {
    Ok(on!(ex, c => sqlx::query_scalar(
        "UPDATE id_sequences SET next_id = next_id + $1 WHERE name = 'flash_saves' RETURNING next_id - $1",
    )
    .bind(count.max(1))
    .fetch_one(c)
    .await)?)
}

/// Inserts a flash-save row.
pub async fn insert(ex: &mut impl Executor, new: &NewFlashSave<'_>) -> Result<FlashSave> {
    let id = match new.id {
        Some(id) => id,
        None => reserve_ids(ex, 1).await?,
    };
    let row: Row = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO flash_saves (id, project_id, agent_id, tokens_before, tokens_after, items_count, items_archived, \
         hot_items_retained, warm_items_retained, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(new.project_id)
    .bind(new.agent_id)
    .bind(new.tokens_before)
    .bind(new.tokens_after)
    .bind(new.items_count)
    .bind(new.items_archived)
    .bind(new.hot_items_retained)
    .bind(new.warm_items_retained)
    .bind(fmt(new.created_at))
    .fetch_one(c)
    .await)?;
    row.try_into()
}

/// Corrects the figures of a flash-save row written before its archive ran.
pub async fn set_result(
    ex: &mut impl Executor,
    id: FlashSaveId,
    tokens_after: i64,
    items_archived: i64,
) -> Result<()> {
    let done = on!(ex, c => sqlx::query("UPDATE flash_saves SET tokens_after = $1, items_archived = $2 WHERE id = $3")
        .bind(tokens_after)
        .bind(items_archived)
        .bind(id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    if done.rows_affected() == 0 {
        return Err(DbError::not_found("flash save", id));
    }
    Ok(())
}

/// The flash save with this id.
pub async fn get(ex: &mut impl Executor, id: FlashSaveId) -> Result<FlashSave> {
    let row: Option<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM flash_saves WHERE id = $1")))
            .bind(id)
            .fetch_optional(c)
            .await)?;
    row.ok_or_else(|| DbError::not_found("flash save", id))?.try_into()
}

/// Flash saves of a project (optionally one agent), newest first.
pub async fn list(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: Option<&str>,
) -> Result<Vec<FlashSave>> {
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM flash_saves WHERE project_id = $1 AND ($2 IS NULL OR agent_id = $2) ORDER BY id DESC"
    )))
    .bind(project_id)
    .bind(agent_id)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(FlashSave::try_from).collect()
}
