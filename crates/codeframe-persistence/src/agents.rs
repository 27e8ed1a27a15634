//! The `agents` table and `project_agents` assignments (soft-deleted: history is kept).

use codeframe_models::{Agent, AgentAssignment, AgentStatus, ProjectId};
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, opt_ts, parse, ts};
use crate::{DbError, Executor, Result};

#[derive(FromRow)]
struct AgentRow {
    id: String,
    agent_type: String,
    provider: Option<String>,
    status: String,
    created_at: String,
}

impl TryFrom<AgentRow> for Agent {
    type Error = DbError;

    fn try_from(r: AgentRow) -> Result<Self> {
        Ok(Agent {
            status: parse::<AgentStatus>("agents", "status", &r.status)?,
            created_at: ts("agents", "created_at", &r.created_at)?,
            id: r.id,
            agent_type: r.agent_type,
            provider: r.provider,
        })
    }
}

#[derive(FromRow)]
struct AssignmentRow {
    id: i64,
    project_id: ProjectId,
    agent_id: String,
    role: String,
    assigned_at: String,
    unassigned_at: Option<String>,
    is_active: bool,
}

impl TryFrom<AssignmentRow> for AgentAssignment {
    type Error = DbError;

    fn try_from(r: AssignmentRow) -> Result<Self> {
        const E: &str = "project_agents";
        Ok(AgentAssignment {
            assigned_at: ts(E, "assigned_at", &r.assigned_at)?,
            unassigned_at: opt_ts(E, "unassigned_at", r.unassigned_at.as_deref())?,
            id: r.id,
            project_id: r.project_id,
            agent_id: r.agent_id,
            role: r.role,
            is_active: r.is_active,
        })
    }
}

const AGENT_COLUMNS: &str = "id, agent_type, provider, status, created_at";
const ASSIGNMENT_COLUMNS: &str = "id, project_id, agent_id, role, assigned_at, unassigned_at, is_active";

/// Registers an agent (status `idle`). An existing id is a unique-constraint error.
pub async fn insert(
    ex: &mut impl Executor,
    id: &str,
    agent_type: &str,
    provider: Option<&str>,
    now: OffsetDateTime,
) -> Result<Agent> {
    let row: AgentRow = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO agents (id, agent_type, provider, created_at) VALUES ($1, $2, $3, $4) RETURNING {AGENT_COLUMNS}"
    )))
    .bind(id)
    .bind(agent_type)
    .bind(provider)
    .bind(fmt(now))
    .fetch_one(c)
    .await)?;
    row.try_into()
}

/// Inserts an agent row as given; on an existing id, `on_conflict` decides.
async fn write_agent(ex: &mut impl Executor, agent: &Agent, on_conflict: &'static str) -> Result<()> {
    on!(ex, c => sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO agents (id, agent_type, provider, status, created_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT(id) {on_conflict}"
    )))
    .bind(&agent.id)
    .bind(&agent.agent_type)
    .bind(&agent.provider)
    .bind(agent.status.as_str())
    .bind(fmt(agent.created_at))
    .execute(c)
    .await.map(crate::db::Done::of))?;
    Ok(())
}

/// Writes an agent row as given (insert or replace its fields); used when restoring state.
pub async fn upsert(ex: &mut impl Executor, agent: &Agent) -> Result<()> {
    write_agent(
        ex,
        agent,
        "DO UPDATE SET agent_type = excluded.agent_type, provider = excluded.provider, \
         status = excluded.status, created_at = excluded.created_at",
    )
    .await
}

/// Writes an agent row as given unless one with its id exists (which is left as it is).
pub async fn insert_missing(ex: &mut impl Executor, agent: &Agent) -> Result<()> {
    write_agent(ex, agent, "DO NOTHING").await
}

/// The agent with this id.
pub async fn get(ex: &mut impl Executor, id: &str) -> Result<Agent> {
    let row: Option<AgentRow> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1")))
            .bind(id)
            .fetch_optional(c)
            .await)?;
    row.ok_or_else(|| DbError::not_found("agent", id))?.try_into()
}

/// Every agent, by id.
pub async fn list(ex: &mut impl Executor) -> Result<Vec<Agent>> {
    let rows: Vec<AgentRow> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY id")))
            .fetch_all(c)
            .await)?;
    rows.into_iter().map(Agent::try_from).collect()
}

/// Agents with any assignment (active or not) to a project, by id.
pub async fn list_for_project(ex: &mut impl Executor, project_id: ProjectId) -> Result<Vec<Agent>> {
    let rows: Vec<AgentRow> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE id IN \
         (SELECT agent_id FROM project_agents WHERE project_id = $1) ORDER BY id"
    )))
    .bind(project_id)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(Agent::try_from).collect()
}

/// Sets an agent's reported status.
pub async fn set_status(ex: &mut impl Executor, id: &str, status: AgentStatus) -> Result<()> {
    let done = on!(ex, c => sqlx::query("UPDATE agents SET status = $1 WHERE id = $2")
        .bind(status.as_str())
        .bind(id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    if done.rows_affected() == 0 {
        return Err(DbError::not_found("agent", id));
    }
    Ok(())
}

/// Assigns an agent to a project. A second active assignment of the same pair violates
/// `uq_project_agents_active`.
pub async fn assign(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: &str,
    role: &str,
    now: OffsetDateTime,
) -> Result<AgentAssignment> {
    let row: AssignmentRow = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO project_agents (project_id, agent_id, role, assigned_at) VALUES ($1, $2, $3, $4) \
         RETURNING {ASSIGNMENT_COLUMNS}"
    )))
    .bind(project_id)
    .bind(agent_id)
    .bind(role)
    .bind(fmt(now))
    .fetch_one(c)
    .await)?;
    row.try_into()
}

/// Ends an agent's active assignment to a project (the row is kept as history).
pub async fn unassign(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: &str,
    now: OffsetDateTime,
) -> Result<()> {
    let done = on!(ex, c => sqlx::query(
        "UPDATE project_agents SET is_active = FALSE, unassigned_at = $1 \
         WHERE project_id = $2 AND agent_id = $3 AND is_active = TRUE",
    )
    .bind(fmt(now))
    .bind(project_id)
    .bind(agent_id)
    .execute(c)
    .await.map(crate::db::Done::of))?;
    if done.rows_affected() == 0 {
        return Err(DbError::not_found("active assignment", format!("{agent_id} in project {project_id}")));
    }
    Ok(())
}

/// Ids of the agents actively assigned to a project, sorted.
pub async fn active_agent_ids(ex: &mut impl Executor, project_id: ProjectId) -> Result<Vec<String>> {
    Ok(on!(ex, c => sqlx::query_scalar(
        "SELECT agent_id FROM project_agents WHERE project_id = $1 AND is_active = TRUE ORDER BY agent_id",
    )
    .bind(project_id)
    .fetch_all(c)
    .await)?)
}

/// Whether the agent is actively assigned to the project.
pub async fn is_active(ex: &mut impl Executor, project_id: ProjectId, agent_id: &str) -> Result<bool> {
    let n: i64 = on!(ex, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM project_agents WHERE project_id = $1 AND agent_id = $2 AND is_active = TRUE",
    )
    .bind(project_id)
    .bind(agent_id)
    .fetch_one(c)
    .await)?;
    Ok(n > 0)
}

/// Every assignment of a project (active and ended), by id.
pub async fn assignments(ex: &mut impl Executor, project_id: ProjectId) -> Result<Vec<AgentAssignment>> {
    let rows: Vec<AssignmentRow> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM project_agents WHERE project_id = $1 ORDER BY id"
    )))
    .bind(project_id)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(AgentAssignment::try_from).collect()
}

/// Replaces a project's assignments with `rows` (ids kept); used when restoring state.
pub async fn replace_assignments(
    ex: &mut impl Executor,
    project_id: ProjectId,
    rows: &[AgentAssignment],
) -> Result<()> {
    on!(ex, c => sqlx::query("DELETE FROM project_agents WHERE project_id = $1")
        .bind(project_id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    for a in rows {
        on!(ex, c => sqlx::query(
            "INSERT INTO project_agents (id, project_id, agent_id, role, assigned_at, unassigned_at, is_active) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(a.id)
        .bind(project_id)
        .bind(&a.agent_id)
        .bind(&a.role)
        .bind(fmt(a.assigned_at))
        .bind(a.unassigned_at.map(fmt))
        .bind(a.is_active)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    }
    Ok(())
}
