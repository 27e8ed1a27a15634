//! The `token_usage` table: model calls and their cost.

use codeframe_models::{CallType, NewTokenUsage, ProjectId, TokenUsage};
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, parse, ts};
use crate::{DbError, Executor, Result};

const COLUMNS: &str = "id, project_id, agent_id, task_id, model_name, input_tokens, output_tokens, \
    estimated_cost_usd, actual_cost_usd, call_type, timestamp";

#[derive(FromRow)]
struct Row {
    id: i64,
    project_id: ProjectId,
    agent_id: String,
    task_id: Option<i64>,
    model_name: String,
    input_tokens: i64,
    output_tokens: i64,
    estimated_cost_usd: f64,
    actual_cost_usd: Option<f64>,
    call_type: String,
    timestamp: String,
}

impl TryFrom<Row> for TokenUsage {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self> {
        Ok(TokenUsage {
            call_type: parse::<CallType>("token_usage", "call_type", &r.call_type)?,
            timestamp: ts("token_usage", "timestamp", &r.timestamp)?,
            id: r.id,
            project_id: r.project_id,
            agent_id: r.agent_id,
            task_id: r.task_id,
            model_name: r.model_name,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            estimated_cost_usd: r.estimated_cost_usd,
            actual_cost_usd: r.actual_cost_usd,
        })
    }
}

/// Records one model call.
pub async fn insert(ex: &mut impl Executor, new: &NewTokenUsage, now: OffsetDateTime) -> Result<TokenUsage> {
    let row: Row = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO token_usage (project_id, agent_id, task_id, model_name, input_tokens, output_tokens, \
         estimated_cost_usd, call_type, timestamp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
    )))
    .bind(new.project_id)
    .bind(&new.agent_id)
    .bind(new.task_id)
    .bind(&new.model_name)
    .bind(new.input_tokens)
    .bind(new.output_tokens)
    .bind(new.estimated_cost_usd)
    .bind(new.call_type.as_str())
    .bind(fmt(now))
    .fetch_one(c)
    .await)?;
    row.try_into()
}

/// A project's token usage, oldest first.
pub async fn list(ex: &mut impl Executor, project_id: ProjectId) -> Result<Vec<TokenUsage>> {
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM token_usage WHERE project_id = $1 ORDER BY timestamp, id"
    )))
    .bind(project_id)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(TokenUsage::try_from).collect()
}

/// Sum of a project's estimated cost in USD.
pub async fn total_cost(ex: &mut impl Executor, project_id: ProjectId) -> Result<f64> {
    Ok(on!(ex, c => sqlx::query_scalar(
        "SELECT COALESCE(SUM(estimated_cost_usd), 0.0) FROM token_usage WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_one(c)
    .await)?)
}

/// Replaces a project's usage rows with `rows` (ids kept); used when restoring state.
pub async fn replace_for_project(
    ex: &mut impl Executor,
    project_id: ProjectId,
    rows: &[TokenUsage],
) -> Result<()> {
    on!(ex, c => sqlx::query("DELETE FROM token_usage WHERE project_id = $1")
        .bind(project_id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    for u in rows {
        on!(ex, c => sqlx::query(
            "INSERT INTO token_usage (id, project_id, agent_id, task_id, model_name, input_tokens, output_tokens, \
             estimated_cost_usd, actual_cost_usd, call_type, timestamp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(u.id)
        .bind(project_id)
        .bind(&u.agent_id)
        .bind(u.task_id)
        .bind(&u.model_name)
        .bind(u.input_tokens)
        .bind(u.output_tokens)
        .bind(u.estimated_cost_usd)
        .bind(u.actual_cost_usd)
        .bind(u.call_type.as_str())
        .bind(fmt(u.timestamp))
        .execute(c)
        .await.map(crate::db::Done::of))?;
    }
    Ok(())
}
