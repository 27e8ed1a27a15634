//! The codeframe project service: lifecycle, run gate and the atomic pause transaction.
//!
//! [`ProjectService`] composes the context and checkpoint managers through their traits
//! (`Arc<dyn ContextManager>`, `Arc<dyn CheckpointManager>`), an [`EventSink`] and a
//! [`Clock`](codeframe_models::Clock); the concrete types are chosen by whoever builds it (the
//! API, the CLI, a test). [`ProjectService::with_defaults`] wires the SQLite and gix ones.
//!
//! **Pause** (see `pause.rs`) is all-or-nothing: validate → close the [`RunGate`] and drain
//! it → one database transaction that flash-saves every active agent (each in a savepoint:
//! one agent's failure does not fail the pause), records the pause checkpoint, marks the
//! project paused with a version check, writes the checkpoint's objects and ref → commit.
//! Any error before the commit rolls everything back and discards the ref. A crash leaves at
//! most an orphan ref, which [`ProjectService::open`] reconciles.
//!
//! ```no_run
//! use codeframe_core::ProjectService;
//! use codeframe_models::{PauseRequest, ResumeOptions};
//! use codeframe_persistence::Db;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let service = ProjectService::with_defaults(Db::open(".codeframe/state.db").await?);
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

mod checkpoints;
mod error;
mod events;
pub mod failpoints;
mod gate;
mod pause;
mod resume;
mod service;

pub use error::{ConflictKind, CoreError};
pub use events::{CollectingSink, EventError, EventSink, NoopSink};
pub use gate::{Permit, RunGate};
pub use pause::PauseOptions;
pub use service::{AgentTotals, OpenedProject, ProjectService, ServiceConfig, StatusReport};

/// Result of a core operation.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
