//! The `tasks` table (what checkpoint metadata summarises).

use codeframe_models::{NewTask, ProjectId, Task, TaskStatus};
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, opt_ts, parse, ts};
use crate::{DbError, Executor, Result};

const COLUMNS: &str = "id, project_id, title, description, status, assigned_agent, created_at, completed_at";

#[derive(FromRow)]
struct Row {
    id: i64,
    project_id: ProjectId,
    title: String,
    description: String,
    status: String,
    assigned_agent: Option<String>,
    created_at: String,
    completed_at: Option<String>,
}

impl TryFrom<Row> for Task {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self> {
        Ok(Task {
            status: parse::<TaskStatus>("tasks", "status", &r.status)?,
            created_at: ts("tasks", "created_at", &r.created_at)?,
            completed_at: opt_ts("tasks", "completed_at", r.completed_at.as_deref())?,
            id: r.id,
            project_id: r.project_id,
            title: r.title,
            description: r.description,
            assigned_agent: r.assigned_agent,
        })
    }
}

/// Inserts a pending task.
pub async fn insert(ex: &mut impl Executor, new: &NewTask, now: OffsetDateTime) -> Result<Task> {
    let row: Row = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tasks (project_id, title, description, created_at) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    )))
    .bind(new.project_id)
    .bind(&new.title)
    .bind(&new.description)
    .bind(fmt(now))
    .fetch_one(c)
    .await)?;
    row.try_into()
}

/// The task with this id.
pub async fn get(ex: &mut impl Executor, id: i64) -> Result<Task> {
    let row: Option<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tasks WHERE id = $1")))
            .bind(id)
            .fetch_optional(c)
            .await)?;
    row.ok_or_else(|| DbError::not_found("task", id))?.try_into()
}

/// A project's tasks, by id.
pub async fn list(ex: &mut impl Executor, project_id: ProjectId) -> Result<Vec<Task>> {
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE project_id = $1 ORDER BY id"
    )))
    .bind(project_id)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(Task::try_from).collect()
}

/// Sets a task's status; `completed` also stamps `completed_at`.
pub async fn set_status(
    ex: &mut impl Executor,
    id: i64,
    status: TaskStatus,
    now: OffsetDateTime,
) -> Result<Task> {
    let completed_at = (status == TaskStatus::Completed).then(|| fmt(now));
    let row: Option<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET status = $1, completed_at = $2 WHERE id = $3 RETURNING {COLUMNS}"
    )))
    .bind(status.as_str())
    .bind(completed_at)
    .bind(id)
    .fetch_optional(c)
    .await)?;
    row.ok_or_else(|| DbError::not_found("task", id))?.try_into()
}

/// Completed and total task counts of a project, and the title of the last completed task.
pub async fn progress(ex: &mut impl Executor, project_id: ProjectId) -> Result<(i64, i64, Option<String>)> {
    let (completed, total): (i64, i64) = on!(ex, c => sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'completed' THEN 1 ELSE 0 END), 0) AS BIGINT), COUNT(*) FROM tasks WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_one(c)
    .await)?;
    let last: Option<String> = on!(ex, c => sqlx::query_scalar(
        "SELECT title FROM tasks WHERE project_id = $1 AND status = 'completed' \
         ORDER BY completed_at DESC, id DESC LIMIT 1",
    )
    .bind(project_id)
    .fetch_optional(c)
    .await)?;
    Ok((completed, total, last))
}

/// Replaces a project's tasks with `tasks` (ids kept); used when restoring state.
pub async fn replace_for_project(
    ex: &mut impl Executor,
    project_id: ProjectId,
    tasks: &[Task],
) -> Result<()> {
    on!(ex, c => sqlx::query("DELETE FROM tasks WHERE project_id = $1").bind(project_id).execute(c).await.map(crate::db::Done::of))?;
    for t in tasks {
        on!(ex, c => sqlx::query(
            "INSERT INTO tasks (id, project_id, title, description, status, assigned_agent, created_at, completed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.id)
        .bind(project_id)
        .bind(&t.title)
        .bind(&t.description)
        .bind(t.status.as_str())
        .bind(&t.assigned_agent)
        .bind(fmt(t.created_at))
        .bind(t.completed_at.map(fmt))
        .execute(c)
        .await.map(crate::db::Done::of))?;
    }
    Ok(())
}
