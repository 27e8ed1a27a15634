use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{AgentId, CheckpointId, FlashSaveId, ProjectId, ProjectStatus, timestamp};

/// Something that happened to a project, published to subscribers of that project.
///
/// On the wire it is one flat JSON object: `type`, `project_id`, `timestamp` and the
/// fields of the [`EventKind`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectEvent {
    /// The project.
    pub project_id: ProjectId,
    /// When it happened.
    #[serde(with = "timestamp::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The project was paused.
    ProjectPaused {
        /// The pause checkpoint.
        checkpoint_id: CheckpointId,
        /// The reason given.
        reason: Option<String>,
        /// Items archived by the pause's flash saves.
        items_archived: i64,
        /// Token reduction.
        reduction_percentage: f64,
    },
    /// The project was resumed.
    ProjectResumed {
        /// Checkpoint restored from.
        checkpoint_id: CheckpointId,
        /// Status after resuming.
        status: ProjectStatus,
    },
    /// A checkpoint was made.
    CheckpointCreated {
        /// The checkpoint.
        checkpoint_id: CheckpointId,
        /// Its name.
        checkpoint_name: String,
        /// What made it.
        trigger: String,
    },
    /// A checkpoint was restored.
    CheckpointRestored {
        /// The checkpoint.
        checkpoint_id: CheckpointId,
        /// Files written or removed.
        files_changed: i64,
    },
    /// An agent's context was flash-saved.
    FlashSaveCompleted {
        /// The agent.
        agent_id: AgentId,
        /// The flash-save record.
        flash_save_id: FlashSaveId,
        /// Items archived.
        items_archived: i64,
        /// Token reduction.
        reduction_percentage: f64,
    },
    /// The project's status changed.
    StatusChanged {
        /// Before.
        from: ProjectStatus,
        /// After.
        to: ProjectStatus,
    },
}

impl EventKind {
    /// The wire name of the event (`project_paused`, …).
    pub const fn name(&self) -> &'static str {
        match self {
            Self::ProjectPaused { .. } => "project_paused",
            Self::ProjectResumed { .. } => "project_resumed",
            Self::CheckpointCreated { .. } => "checkpoint_created",
            Self::CheckpointRestored { .. } => "checkpoint_restored",
            Self::FlashSaveCompleted { .. } => "flash_save_completed",
            Self::StatusChanged { .. } => "status_changed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn events_are_flat_objects_tagged_by_type() {
        let e = ProjectEvent {
            project_id: 7,
            timestamp: datetime!(2026-01-01 00:00 UTC),
            kind: EventKind::StatusChanged { from: ProjectStatus::Active, to: ProjectStatus::Paused },
        };
        let v = serde_json::to_value(&e).ok();
        assert_eq!(
            v,
            Some(serde_json::json!({
                "type": "status_changed", "project_id": 7,
                "timestamp": "2026-01-01T00:00:00.000000Z", "from": "active", "to": "paused"
            }))
        );
        let back: Option<ProjectEvent> = v.and_then(|v| serde_json::from_value(v).ok());
        assert_eq!(back, Some(e.clone()));
        assert_eq!(e.kind.name(), "status_changed");
    }
}
