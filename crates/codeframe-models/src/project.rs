use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::status::wire_enum;
use crate::{
    AgentId, AgentStatus, CheckpointId, ProjectId, ProjectPhase, ProjectStatus, TaskStatus, timestamp,
};

/// A project, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    /// Row id.
    pub id: ProjectId,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Absolute path of the project's working tree.
    pub root_path: String,
    /// Lifecycle status.
    pub status: ProjectStatus,
    /// Phase of work.
    pub phase: ProjectPhase,
    /// Owning user (API); `None` for projects made by the local CLI.
    pub owner_id: Option<i64>,
    /// When the project was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the row last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// When the project was paused; `None` unless paused.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "timestamp::rfc3339::option")]
    pub paused_at: Option<OffsetDateTime>,
    /// Why it was paused, if a reason was given.
    pub pause_reason: Option<String>,
    /// Checkpoint made by the pause.
    pub pause_checkpoint_id: Option<CheckpointId>,
    /// Status to return to on resume.
    pub status_before_pause: Option<ProjectStatus>,
    /// Optimistic-concurrency version; every update increments it.
    pub version: i64,
    /// Where its snapshot store lives when not in `<root>/.codeframe/snapshots.git` (a server
    /// keeps the stores of the projects it creates under its own home). Internal: never sent
    /// to clients nor written into snapshots.
    #[serde(skip_serializing, default)]
    pub store_path: Option<String>,
}

/// What is needed to create a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProject {
    /// Unique name (see [`crate::validate::project_name`]).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Absolute path of the working tree.
    pub root_path: String,
    /// Owning user, if any.
    #[serde(default)]
    pub owner_id: Option<i64>,
}

/// An agent known to the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    /// Chosen identifier.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: AgentId,
    /// Kind of agent, e.g. `backend-worker`.
    pub agent_type: String,
    /// Model provider, if known.
    pub provider: Option<String>,
    /// Reported status.
    pub status: AgentStatus,
    /// When it was registered.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An agent's assignment to a project. At most one active assignment per (project, agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentAssignment {
    /// Row id.
    pub id: i64,
    /// Project.
    pub project_id: ProjectId,
    /// Agent.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    /// Role in the project, e.g. `worker`.
    pub role: String,
    /// When assigned.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub assigned_at: OffsetDateTime,
    /// When unassigned; `None` while active.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "timestamp::rfc3339::option")]
    pub unassigned_at: Option<OffsetDateTime>,
    /// Whether the assignment is active.
    pub is_active: bool,
}

/// A task of a project (used by checkpoint metadata).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// Row id.
    pub id: i64,
    /// Project.
    pub project_id: ProjectId,
    /// Title.
    pub title: String,
    /// Free text.
    pub description: String,
    /// Status.
    pub status: TaskStatus,
    /// Agent working on it, if any.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub assigned_agent: Option<AgentId>,
    /// When created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When completed.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "timestamp::rfc3339::option")]
    pub completed_at: Option<OffsetDateTime>,
}

/// What is needed to create a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    /// Project.
    pub project_id: ProjectId,
    /// Title.
    pub title: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// Purpose of a model call, for token accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CallType {
    /// Doing a task.
    TaskExecution,
    /// Reviewing code.
    CodeReview,
    /// Coordinating agents.
    Coordination,
    /// Anything else.
    Other,
}

wire_enum!(CallType, "call type", {
    TaskExecution => "task_execution", CodeReview => "code_review",
    Coordination => "coordination", Other => "other",
});

/// One model call's token usage and cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenUsage {
    /// Row id.
    pub id: i64,
    /// Project.
    pub project_id: ProjectId,
    /// Agent that made the call.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    /// Task the call served, if any.
    pub task_id: Option<i64>,
    /// Model name.
    pub model_name: String,
    /// Prompt tokens.
    pub input_tokens: i64,
    /// Completion tokens.
    pub output_tokens: i64,
    /// Estimated cost in USD.
    pub estimated_cost_usd: f64,
    /// Billed cost in USD, when known.
    pub actual_cost_usd: Option<f64>,
    /// Purpose of the call.
    pub call_type: CallType,
    /// When the call was made.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub timestamp: OffsetDateTime,
}

/// What is needed to record token usage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTokenUsage {
    /// Project.
    pub project_id: ProjectId,
    /// Agent.
    pub agent_id: AgentId,
    /// Task, if any.
    pub task_id: Option<i64>,
    /// Model name.
    pub model_name: String,
    /// Prompt tokens (≥ 0).
    pub input_tokens: i64,
    /// Completion tokens (≥ 0).
    pub output_tokens: i64,
    /// Estimated cost (≥ 0).
    pub estimated_cost_usd: f64,
    /// Purpose.
    pub call_type: CallType,
}
