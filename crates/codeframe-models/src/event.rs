use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{AgentId, CheckpointId, FlashSaveId, ProjectId, ProjectStatus, timestamp};

/// Position of an event in the durable event log: it only grows, is never reused, and orders
/// every event of every project. A client that saw `seq` N asks for what came after N.
pub type EventSeq = i64;

/// Something that happened to a project, published to subscribers of that project.
///
/// On the wire it is one flat JSON object: `seq`, `type`, `project_id`, `timestamp` and the
/// fields of the [`EventKind`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectEvent {
    /// Its position in the event log (0 for an event not yet written to it).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub seq: EventSeq,
    /// The project.
    pub project_id: ProjectId,
    /// When it happened.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
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
    /// A checkpoint was deleted (its row and ref).
    CheckpointDeleted {
        /// The checkpoint.
        checkpoint_id: CheckpointId,
    },
    /// An agent was assigned to the project.
    AgentAdded {
        /// The agent.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        agent_id: AgentId,
        /// Its role in the project.
        role: String,
    },
    /// An agent's assignment ended (its context is kept).
    AgentDeactivated {
        /// The agent.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        agent_id: AgentId,
    },
    /// Context items were added to the active set.
    ContextAdded {
        /// The agents the items belong to, sorted.
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        agents: Vec<AgentId>,
        /// How many items.
        items_added: i64,
    },
    /// Items left the active context: a flash save archived them (kept, restorable).
    ContextArchived {
        /// The agent.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        agent_id: AgentId,
        /// The flash save that archived them.
        flash_save_id: FlashSaveId,
        /// How many items.
        items_archived: i64,
    },
    /// A pause closed the project's run gate and waits for work in flight: agents should finish
    /// or stop their unit (and release their permits) before `deadline`.
    PauseRequested {
        /// When the pause stops waiting and goes on (units still running are interrupted).
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
        #[serde(with = "timestamp::rfc3339")]
        deadline: OffsetDateTime,
    },
    /// A pause that had closed the gate failed (nothing changed) or its process died; the gate
    /// is open again.
    PauseCancelled {
        /// Why, as an error code (`internal`, `checkpoint_unreadable`, `holder_gone`, …).
        reason: String,
    },
    /// Archived items came back into the active context.
    ContextRestored {
        /// The agent.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        agent_id: AgentId,
        /// Only the items of this flash save, when given.
        flash_save_id: Option<FlashSaveId>,
        /// How many items.
        items_restored: i64,
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
            Self::CheckpointDeleted { .. } => "checkpoint_deleted",
            Self::AgentAdded { .. } => "agent_added",
            Self::AgentDeactivated { .. } => "agent_deactivated",
            Self::ContextAdded { .. } => "context_added",
            Self::ContextArchived { .. } => "context_archived",
            Self::ContextRestored { .. } => "context_restored",
            Self::PauseRequested { .. } => "pause_requested",
            Self::PauseCancelled { .. } => "pause_cancelled",
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
            seq: 42,
            project_id: crate::ProjectId(7),
            timestamp: datetime!(2026-01-01 00:00 UTC),
            kind: EventKind::StatusChanged { from: ProjectStatus::Active, to: ProjectStatus::Paused },
        };
        let v = serde_json::to_value(&e).ok();
        assert_eq!(
            v,
            Some(serde_json::json!({
                "seq": 42, "type": "status_changed", "project_id": 7,
                "timestamp": "2026-01-01T00:00:00.000000Z", "from": "active", "to": "paused"
            }))
        );
        let back: Option<ProjectEvent> = v.and_then(|v| serde_json::from_value(v).ok());
        assert_eq!(back, Some(e.clone()));
        assert_eq!(e.kind.name(), "status_changed");
    }
}
