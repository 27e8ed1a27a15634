//! The codeframe project service: lifecycle, run gate and the atomic pause transaction.
//!
//! [`ProjectService`] composes the context and checkpoint managers through their traits
//! (`Arc<dyn ContextManager>`, `Arc<dyn CheckpointManager>`), an [`EventSink`] and a
//! [`Clock`]; the concrete types are chosen by whoever builds it (the
//! API, the CLI, a test). [`ProjectService::with_defaults`] wires the SQLite and gix ones.
//!
//! **Pause** (see `pause.rs`) is all-or-nothing: validate → close the run gate (in the
//! database, for every process) and drain it → one database transaction that flash-saves every active agent (each in a savepoint:
//! one agent's failure does not fail the pause), records the pause checkpoint, marks the
//! project paused with a version check, writes the checkpoint's objects and ref → commit.
//! Any error before the commit rolls everything back and discards the ref. A crash leaves at
//! most an orphan ref, which [`ProjectService::open`] reconciles.
//!
//! **Many processes, one truth.** Several processes may share a database (`codeframe serve`,
//! the command line, applications embedding this crate). Whatever decides correctness lives
//! there: the run gate's permits are leases ([`ProjectService::enter`], [`Permit`]), a pause
//! closes the gate with a marker on the project row, every transition is decided inside its
//! write transaction, and every event is appended to a durable log in the same transaction
//! as the change it reports ([`ProjectService::events_since`], [`ProjectService::tail_events`]).
//!
//! ```no_run
//! use codeframe_core::{PauseRequest, ProjectService, ResumeOptions};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let service = ProjectService::builder().database_url(".codeframe/state.db").build().await?;
//! let project = service.create("shop", std::path::Path::new(".")).await?;
//! service.start(project.id).await?;
//! let _permit = service.enter(project.id, "coder-1").await?; // agents work inside permits
//! drop(_permit);
//! let paused = service.pause(project.id, PauseRequest { reason: Some("lunch".into()) }).await?;
//! println!("checkpoint {} — {}% of context archived", paused.checkpoint_id, paused.reduction_percentage);
//! let resumed = service.resume(project.id, ResumeOptions::default()).await?;
//! println!("back to {}; files edited meanwhile: {:?}", resumed.status, resumed.files_changed);
//! # Ok(()) }
//! ```

pub mod auth;
mod backup;
mod builder;
mod checkpoints;
mod config;
mod context;
mod doctor;
mod error;
mod event_log;
mod events;
pub mod failpoints;
mod gate;
mod metrics;
mod pause;
mod resume;
mod retention;
mod roots;
mod service;

pub use backup::{RestoredDatabase, restore_database};
pub use builder::ProjectServiceBuilder;
pub use config::{EventRetention, ServiceConfig};
pub use doctor::{DoctorReport, Finding};
pub use error::{ConflictKind, CoreError, ErrorClass};
pub use event_log::{EventPage, EventTail};
pub use events::{CollectingSink, EventError, EventSink, NoopSink};
pub use gate::{GateStatus, Permit, PermitInfo, RemotePermit};
pub use metrics::ServiceGauges;
pub use pause::PauseOptions;
pub use retention::{AUTO_GC_PACKS, PruneReport};
pub use roots::resolve_workspace_roots;
pub use service::{AgentTotals, OpenedProject, ProjectAgent, ProjectService, StatusReport};

// Core is the only door: what its signatures need from the layers below is re-exported here,
// so the API, the command line and embedding applications depend on core (and models) alone.
pub use codeframe_checkpoint::{
    CheckpointDraft, CheckpointError, CheckpointManager, CheckpointSpec, Durability, FileChange, FileDiff,
    FileDiffEntry, FilesRestored, FilesSettled, GcReport, GitCheckpointManager, PreparedCheckpoint,
    ProjectState, ReconcileReport, RestoreMode, RestoreReport, RestoreWhat, VerifyReport, WrittenCheckpoint,
};
pub use codeframe_context::{
    ArchiveState, ContextConfig, ContextError, ContextManager, FlashSavePlan, ItemPage, ListQuery,
    SqlContextManager, parse_item_type,
};
pub use codeframe_persistence::{Backend, Db, DbError, DbOptions, PoolUsage, ReadTx, Tx};
// The domain types (ids, requests, outcomes, items, events, the clock) every signature here
// uses, so an application depends on this crate alone.
/// The attribute that implementations of [`ContextManager`], [`CheckpointManager`] and
/// [`EventSink`] take (their methods are async).
pub use async_trait::async_trait;
pub use codeframe_models::*;
/// Timestamps in signatures (`Clock::now`, items' times) are [`time::OffsetDateTime`].
pub use time;

/// Result of a core operation.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
