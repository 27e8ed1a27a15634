use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::status::wire_enum;
use crate::{CheckpointId, ProjectId, ProjectPhase, timestamp};

/// What made a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CheckpointTrigger {
    /// Asked for by a person.
    Manual,
    /// Made on a schedule.
    Auto,
    /// Made when the phase changed.
    PhaseTransition,
    /// Made by a pause.
    Pause,
    /// Made just before a restore changed anything: what `checkpoints undo` brings back.
    BeforeRestore,
}

wire_enum!(CheckpointTrigger, "checkpoint trigger", {
    Manual => "manual", Auto => "auto", PhaseTransition => "phase_transition", Pause => "pause",
    BeforeRestore => "before_restore",
});

/// Summary of the project stored with a checkpoint (the reference's fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckpointMetadata {
    /// Project.
    pub project_id: ProjectId,
    /// Phase at the time.
    pub phase: ProjectPhase,
    /// Completed tasks.
    pub tasks_completed: i64,
    /// All tasks.
    pub tasks_total: i64,
    /// Agents with an active assignment, sorted.
    pub agents_active: Vec<String>,
    /// Title of the most recently completed task.
    pub last_task_completed: Option<String>,
    /// Context items of the project, active and archived.
    pub context_items_count: i64,
    /// Sum of estimated cost of the project's token usage.
    pub total_cost_usd: f64,
    /// Files of the working tree left out of the snapshot because they exceed the size limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_files: Vec<SkippedFile>,
}

/// A file left out of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SkippedFile {
    /// Path relative to the project root (non-UTF-8 bytes replaced).
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A checkpoint, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Checkpoint {
    /// Row id.
    pub id: CheckpointId,
    /// Project.
    pub project_id: ProjectId,
    /// Name (≤ 100 characters).
    pub name: String,
    /// Description (≤ 500 characters).
    pub description: String,
    /// What made it.
    pub trigger: CheckpointTrigger,
    /// Id of the snapshot commit in the private store (hex); `None` until written.
    pub commit_id: Option<String>,
    /// Reason of the pause, for pause checkpoints.
    pub pause_reason: Option<String>,
    /// Summary of the project.
    pub metadata: CheckpointMetadata,
    /// When it was made.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Pinned: never pruned by retention.
    #[serde(default)]
    pub pinned: bool,
}

/// Which checkpoints of a project retention keeps: any checkpoint a rule keeps is kept (and
/// pinned ones, and the checkpoint of the project's current pause, always).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionPolicy {
    /// The newest N (at least 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub keep_last: u32,
    /// Every checkpoint younger than this many seconds.
    pub keep_within_seconds: u64,
    /// The newest checkpoint of each of the last D days (UTC).
    pub keep_daily_days: u32,
}

impl Default for RetentionPolicy {
    /// Generous: the newest 50, everything of the last 7 days, one a day for 90 days.
    fn default() -> Self {
        Self { keep_last: 50, keep_within_seconds: 7 * 86_400, keep_daily_days: 90 }
    }
}
