use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{AgentId, CheckpointId, FlashSaveReport, timestamp};

/// A request to pause a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseRequest {
    /// Why (≤ 500 characters), e.g. `user_request`.
    #[serde(default)]
    pub reason: Option<String>,
}

/// How to resume a project.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeOptions {
    /// Checkpoint to restore from; defaults to the pause checkpoint.
    #[serde(default)]
    pub checkpoint_id: Option<CheckpointId>,
    /// Restore files too (otherwise files edited during the pause are kept and listed).
    #[serde(default)]
    pub restore_files: bool,
    /// Resume even if the checkpoint cannot be read (objects lost, store gone): the status comes
    /// back, context stays as it is in the database, and the outcome's `warnings` say what
    /// could not be restored.
    #[serde(default)]
    pub force: bool,
}

/// One agent's part of a pause: its flash-save report, or the error that stopped it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentFlashSaveEntry {
    /// The agent.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    /// The flash save, when it succeeded.
    pub report: Option<FlashSaveReport>,
    /// Why it failed, when it did (the pause goes on without it).
    pub error: Option<String>,
}

/// The result of a pause: the reference's seven fields, plus per-agent detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PauseOutcome {
    /// Always true for a returned outcome (a failed pause is an error).
    pub success: bool,
    /// The pause checkpoint.
    pub checkpoint_id: CheckpointId,
    /// Active tokens before, summed over agents whose flash save succeeded.
    pub tokens_before: i64,
    /// Active tokens after, summed the same way.
    pub tokens_after: i64,
    /// (before − after) / before × 100, 2 decimals.
    pub reduction_percentage: f64,
    /// Items archived over all agents.
    pub items_archived: i64,
    /// When the project was paused (the same instant as stored).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub paused_at: OffsetDateTime,
    /// Per-agent flash-save entries.
    pub agents: Vec<AgentFlashSaveEntry>,
    /// Agents still working when the drain deadline passed.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub interrupted_agents: Vec<AgentId>,
}

/// The result of a resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResumeOutcome {
    /// Always true for a returned outcome (a failed resume is an error).
    pub success: bool,
    /// The checkpoint restored from.
    pub checkpoint_id: CheckpointId,
    /// The project's status after resuming (the status it had before the pause).
    pub status: crate::ProjectStatus,
    /// Context items restored from the checkpoint.
    pub items_restored: i64,
    /// Paths that differed between the checkpoint and the working tree: edited during the
    /// pause and kept, or (with `restore_files`) put back from the checkpoint.
    pub files_changed: Vec<String>,
    /// Whether files were restored.
    pub files_restored: bool,
    /// When the project was resumed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub resumed_at: OffsetDateTime,
    /// How long it was paused, in seconds.
    pub paused_for_seconds: i64,
    /// What a forced resume could not restore (empty otherwise).
    #[serde(default)]
    pub warnings: Vec<String>,
}
