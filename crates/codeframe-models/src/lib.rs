//! Plain domain types of codeframe.
//!
//! Everything above this crate speaks in these types: projects and their lifecycle
//! ([`ProjectStatus`]), agents' context ([`ContextItem`], [`Tier`], the importance
//! [`scoring`] functions), checkpoints ([`Checkpoint`]), the pause result
//! ([`PauseOutcome`]) and the events published to clients ([`ProjectEvent`]).
//!
//! This crate does no I/O. Wire names follow the Python CodeFRAME reference: lowercase
//! statuses and tiers, upper-case item types (`TASK`, `CODE`, …), RFC 3339 UTC timestamps.

mod checkpoint;
mod context;
mod error;
mod event;
mod ids;
mod pause;
mod project;
pub mod scoring;
mod status;
pub mod timestamp;
pub mod validate;

pub use checkpoint::{Checkpoint, CheckpointMetadata, CheckpointTrigger, RetentionPolicy, SkippedFile};
pub use context::{
    ContextItem, FlashSave, FlashSaveReport, ItemType, NewContextItem, Tier, TierTotals, reduction_percentage,
};
pub use error::ModelError;
pub use event::{EventKind, EventSeq, ProjectEvent};
pub use pause::{AgentFlashSaveEntry, PauseOutcome, PauseRequest, ResumeOptions, ResumeOutcome};
pub use project::{
    Agent, AgentAssignment, CallType, NewProject, NewTask, NewTokenUsage, Project, Task, TokenUsage,
};
pub use status::{AgentStatus, ProjectPhase, ProjectStatus, TaskStatus};
pub use timestamp::{Clock, ManualClock, SystemClock};

pub use ids::{CheckpointId, FlashSaveId, ProjectId};
/// Identifier of an agent, chosen by whoever registers it (e.g. `backend-worker-001`).
pub type AgentId = String;
/// Identifier of a context item (a UUID string, as in the reference).
pub type ContextItemId = String;
