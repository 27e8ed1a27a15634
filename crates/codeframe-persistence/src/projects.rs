//! The `projects` table. Updates are optimistic: they name the version they expect.

use codeframe_models::{
    CheckpointId, NewProject, Project, ProjectId, ProjectPhase, ProjectStatus, TierTotals,
};
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, opt_fmt, opt_ts, parse, ts};
use crate::{DbError, Executor, Result};

const COLUMNS: &str = "id, name, description, root_path, status, phase, owner_id, created_at, updated_at, \
    paused_at, pause_reason, pause_checkpoint_id, status_before_pause, version, store_path";

#[derive(FromRow)]
struct Row {
    id: ProjectId,
    name: String,
    description: String,
    root_path: String,
    status: String,
    phase: String,
    owner_id: Option<i64>,
    created_at: String,
    updated_at: String,
    paused_at: Option<String>,
    pause_reason: Option<String>,
    pause_checkpoint_id: Option<CheckpointId>,
    status_before_pause: Option<String>,
    version: i64,
    store_path: Option<String>,
}

impl TryFrom<Row> for Project {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self> {
        const E: &str = "projects";
        Ok(Project {
            id: r.id,
            status: parse::<ProjectStatus>(E, "status", &r.status)?,
            phase: parse::<ProjectPhase>(E, "phase", &r.phase)?,
            created_at: ts(E, "created_at", &r.created_at)?,
            updated_at: ts(E, "updated_at", &r.updated_at)?,
            paused_at: opt_ts(E, "paused_at", r.paused_at.as_deref())?,
            status_before_pause: r
                .status_before_pause
                .as_deref()
                .map(|s| parse::<ProjectStatus>(E, "status_before_pause", s))
                .transpose()?,
            name: r.name,
            description: r.description,
            root_path: r.root_path,
            owner_id: r.owner_id,
            pause_reason: r.pause_reason,
            pause_checkpoint_id: r.pause_checkpoint_id,
            version: r.version,
            store_path: r.store_path,
        })
    }
}

#[derive(FromRow)]
struct WithTotals {
    #[sqlx(flatten)]
    row: Row,
    hot_items: i64,
    warm_items: i64,
    cold_items: i64,
    hot_tokens: i64,
    warm_tokens: i64,
    cold_tokens: i64,
}

fn select(filter: &str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM projects {filter}"))
}

/// The project with this id and the item counts and token sums per tier of its active
/// context, in one statement: the hot path of status polling.
pub async fn find_with_totals(
    ex: &mut impl Executor,
    id: ProjectId,
) -> Result<Option<(Project, TierTotals)>> {
    let row: Option<WithTotals> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS}, \
         CAST(COALESCE(t.hot_items, 0) AS BIGINT) AS hot_items, CAST(COALESCE(t.warm_items, 0) AS BIGINT) AS warm_items, \
         CAST(COALESCE(t.cold_items, 0) AS BIGINT) AS cold_items, CAST(COALESCE(t.hot_tokens, 0) AS BIGINT) AS hot_tokens, \
         CAST(COALESCE(t.warm_tokens, 0) AS BIGINT) AS warm_tokens, CAST(COALESCE(t.cold_tokens, 0) AS BIGINT) AS cold_tokens \
         FROM projects, (SELECT \
           SUM(CASE WHEN tier = 'hot' THEN 1 ELSE 0 END) AS hot_items, SUM(CASE WHEN tier = 'warm' THEN 1 ELSE 0 END) AS warm_items, SUM(CASE WHEN tier = 'cold' THEN 1 ELSE 0 END) AS cold_items, \
           SUM(CASE WHEN tier = 'hot' THEN token_count ELSE 0 END) AS hot_tokens, \
           SUM(CASE WHEN tier = 'warm' THEN token_count ELSE 0 END) AS warm_tokens, \
           SUM(CASE WHEN tier = 'cold' THEN token_count ELSE 0 END) AS cold_tokens \
           FROM context_items WHERE project_id = $1 AND archived_at IS NULL) AS t \
         WHERE projects.id = $1"
    )))
    .bind(id)
    .fetch_optional(c)
    .await)?;
    let Some(r) = row else { return Ok(None) };
    let totals = TierTotals {
        hot_items: r.hot_items,
        warm_items: r.warm_items,
        cold_items: r.cold_items,
        hot_tokens: r.hot_tokens,
        warm_tokens: r.warm_tokens,
        cold_tokens: r.cold_tokens,
    };
    Ok(Some((r.row.try_into()?, totals)))
}

/// Inserts a project with status `init`, phase `discovery` and version 1.
pub async fn insert(ex: &mut impl Executor, new: &NewProject, now: OffsetDateTime) -> Result<Project> {
    let now = fmt(now);
    let row: Row = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO projects (name, description, root_path, owner_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    )))
    .bind(&new.name)
    .bind(&new.description)
    .bind(&new.root_path)
    .bind(new.owner_id)
    .bind(&now)
    .bind(&now)
    .fetch_one(c)
    .await)?;
    row.try_into()
}

/// The project with this id.
pub async fn get(ex: &mut impl Executor, id: ProjectId) -> Result<Project> {
    find(ex, id).await?.ok_or_else(|| DbError::not_found("project", id))
}

/// The project with this id, if any.
pub async fn find(ex: &mut impl Executor, id: ProjectId) -> Result<Option<Project>> {
    let row: Option<Row> =
        on!(ex, c => sqlx::query_as(select("WHERE id = $1")).bind(id).fetch_optional(c).await)?;
    row.map(Project::try_from).transpose()
}

/// The project with this name, if any.
pub async fn find_by_name(ex: &mut impl Executor, name: &str) -> Result<Option<Project>> {
    let row: Option<Row> =
        on!(ex, c => sqlx::query_as(select("WHERE name = $1")).bind(name).fetch_optional(c).await)?;
    row.map(Project::try_from).transpose()
}

/// Every project, by id.
pub async fn list(ex: &mut impl Executor) -> Result<Vec<Project>> {
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(select("ORDER BY id")).fetch_all(c).await)?;
    rows.into_iter().map(Project::try_from).collect()
}

/// The projects of one owner, by id.
pub async fn list_by_owner(ex: &mut impl Executor, owner_id: i64) -> Result<Vec<Project>> {
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(select("WHERE owner_id = $1 ORDER BY id"))
        .bind(owner_id)
        .fetch_all(c)
        .await)?;
    rows.into_iter().map(Project::try_from).collect()
}

/// Writes every mutable field of `project` (all but id, name, owner and created_at), if the
/// stored version still equals `project.version`; the stored version then increments and
/// the new row is returned. A stale version is a [`DbError::Conflict`] and changes nothing.
pub async fn update(ex: &mut impl Executor, project: &Project, now: OffsetDateTime) -> Result<Project> {
    let row: Option<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE projects SET description = $1, root_path = $2, status = $3, phase = $4, updated_at = $5, \
         paused_at = $6, pause_reason = $7, pause_checkpoint_id = $8, status_before_pause = $9, version = version + 1 \
         WHERE id = $10 AND version = $11 RETURNING {COLUMNS}"
    )))
    .bind(&project.description)
    .bind(&project.root_path)
    .bind(project.status.as_str())
    .bind(project.phase.as_str())
    .bind(fmt(now))
    .bind(opt_fmt(project.paused_at))
    .bind(&project.pause_reason)
    .bind(project.pause_checkpoint_id)
    .bind(project.status_before_pause.map(|s| s.as_str()))
    .bind(project.id)
    .bind(project.version)
    .fetch_optional(c)
    .await)?;
    match row {
        Some(row) => row.try_into(),
        None => {
            let actual = get(ex, project.id).await?.version;
            Err(DbError::Conflict {
                entity: "project",
                id: project.id.to_string(),
                expected: project.version,
                actual,
            })
        }
    }
}

/// Records where the project's snapshot store lives (set once, when a server creates it).
pub async fn set_store_path(ex: &mut impl Executor, id: ProjectId, store_path: &str) -> Result<()> {
    let done = on!(ex, c => sqlx::query("UPDATE projects SET store_path = $1 WHERE id = $2")
        .bind(store_path)
        .bind(id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    if done.rows_affected() == 0 {
        return Err(DbError::not_found("project", id));
    }
    Ok(())
}

/// Deletes a project and (by cascade) everything that belongs to it. Only on explicit request.
pub async fn delete(ex: &mut impl Executor, id: ProjectId) -> Result<()> {
    let done = on!(ex, c => sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(c).await.map(crate::db::Done::of))?;
    if done.rows_affected() == 0 {
        return Err(DbError::not_found("project", id));
    }
    Ok(())
}
