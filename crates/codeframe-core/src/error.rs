use codeframe_checkpoint::CheckpointError;
use codeframe_context::ContextError;
use codeframe_models::{CheckpointId, EventSeq, ModelError, ProjectId, ProjectStatus};
use codeframe_persistence::{ConstraintKind, DbError};
use serde::Serialize;
use serde_json::{Value, json};
use thiserror::Error;
use time::OffsetDateTime;

/// Why a state transition was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConflictKind {
    /// The project is already paused.
    AlreadyPaused {
        /// When it was paused.
        #[serde(with = "codeframe_models::timestamp::rfc3339::option")]
        paused_at: Option<OffsetDateTime>,
        /// Its pause checkpoint.
        checkpoint_id: Option<CheckpointId>,
    },
    /// Resume needs a paused project.
    NotPaused {
        /// The project's status.
        status: ProjectStatus,
    },
    /// The action is not allowed from the project's status.
    InvalidTransition {
        /// The project's status.
        from: ProjectStatus,
        /// What was asked (`start`, `pause`, …).
        action: &'static str,
    },
    /// Another change to the project committed first (stale version).
    Concurrent,
    /// Another pause of the project is in progress (draining or committing).
    PauseInProgress,
    /// The project root equals, contains or lies inside another project's root.
    RootOverlaps,
    /// A project with this name exists.
    NameTaken {
        /// The name.
        name: String,
    },
    /// The agent is already actively assigned to the project.
    AlreadyAssigned {
        /// The agent.
        agent_id: String,
    },
    /// The agent id is already registered.
    AgentExists {
        /// The agent.
        agent_id: String,
    },
    /// A restore would overwrite files changed since the project's latest checkpoint; ask
    /// again with `force` to overwrite them (the restore checkpoints them first either way).
    UnsavedChanges {
        /// The files, sorted.
        paths: Vec<String>,
    },
}

impl std::fmt::Display for ConflictKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AlreadyPaused { paused_at, checkpoint_id } => {
                write!(f, "project is already paused")?;
                if let Some(t) = paused_at {
                    write!(f, " since {}", codeframe_models::timestamp::format(*t))?;
                }
                if let Some(c) = checkpoint_id {
                    write!(f, " (checkpoint {c})")?;
                }
                Ok(())
            }
            Self::NotPaused { status } => write!(f, "project is not paused (status {status})"),
            Self::InvalidTransition { from, action } => write!(f, "cannot {action} a project that is {from}"),
            Self::Concurrent => write!(f, "the project was changed concurrently; try again"),
            Self::PauseInProgress => write!(f, "a pause of the project is already in progress"),
            Self::RootOverlaps => {
                write!(f, "the root equals, contains or lies inside another project's root")
            }
            Self::NameTaken { name } => write!(f, "a project named {name:?} already exists"),
            Self::AlreadyAssigned { agent_id } => {
                write!(f, "agent {agent_id:?} is already assigned to the project")
            }
            Self::AgentExists { agent_id } => write!(f, "agent {agent_id:?} is already registered"),
            Self::UnsavedChanges { paths } => write!(
                f,
                "the restore would overwrite {} file(s) changed since the latest checkpoint ({}); force it to overwrite them",
                paths.len(),
                paths.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// An error of the project service.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// Something named does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// What kind of thing.
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// The transition was refused; nothing changed.
    #[error("conflict: {0}")]
    Conflict(ConflictKind),
    /// The project is paused: the run gate refuses new work.
    #[error("project {0} is paused")]
    Paused(ProjectId),
    /// A pause of the project is in progress: the run gate refuses new work.
    #[error("project {0} is being paused")]
    Pausing(ProjectId),
    /// Events asked for are no longer kept (retention), or the position is unknown: the client
    /// missed events and should reload the project's state.
    #[error(
        "events of project {project_id} after seq {since} are not available (kept: after seq {pruned_through}, \
         up to seq {head}); reload the project's state"
    )]
    EventGap {
        /// The project.
        project_id: ProjectId,
        /// The position asked for.
        since: EventSeq,
        /// Retention deleted the project's events up to this position.
        pruned_through: EventSeq,
        /// The newest position of the log.
        head: EventSeq,
    },
    /// The operation's task ended before it finished (the runtime is shutting down); what it
    /// did was rolled back.
    #[error("operation cancelled: {0}")]
    Cancelled(String),
    /// Not allowed by the server's configuration (e.g. a project root outside the workspace
    /// roots); nothing changed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A file the operation would create exists already; nothing was written.
    #[error("{0} exists; choose another path (nothing is overwritten)")]
    FileExists(String),
    /// A resource of the system failed (e.g. no randomness for a token).
    #[error("internal error: {0}")]
    Internal(String),
    /// Bad input (a name, a reason, a path).
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// The project root is not a usable directory.
    #[error("project root {path}: {reason}")]
    BadRoot {
        /// The path given.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The project has no checkpoint to resume from.
    #[error("project {0} has no pause checkpoint to resume from")]
    NoCheckpoint(ProjectId),
    /// The context manager failed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// The checkpoint manager failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The database failed.
    #[error(transparent)]
    Db(DbError),
    /// A fail point injected this error (tests only).
    #[error("fail point {0} injected an error")]
    Injected(&'static str),
}

impl From<DbError> for CoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound { entity, id } => Self::NotFound { entity, id },
            DbError::Conflict { .. } => Self::Conflict(ConflictKind::Concurrent),
            other => Self::Db(other),
        }
    }
}

/// What kind of failure an error is: the one mapping behind both the API's HTTP statuses and
/// the command line's exit codes, so the two never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The input was rejected; nothing changed. HTTP 422, exit 2.
    Invalid,
    /// Something named does not exist (or is not the caller's). HTTP 404, exit 4.
    NotFound,
    /// Not allowed by the configuration. HTTP 403, exit 2.
    Forbidden,
    /// The state does not allow it (already paused, not paused, in use …); nothing changed.
    /// HTTP 409, exit 3.
    Conflict,
    /// What was asked for existed once and is gone (events past retention). HTTP 410, exit 4.
    Gone,
    /// Anything else (storage, I/O); logged in full, reported without internals.
    /// HTTP 500, exit 1.
    Internal,
}

impl ErrorClass {
    /// A short lowercase name (`invalid`, `not_found`, …), for metrics labels and logs.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::NotFound => "not_found",
            Self::Forbidden => "forbidden",
            Self::Conflict => "conflict",
            Self::Gone => "gone",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status of an error of this class.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::Invalid => 422,
            Self::NotFound => 404,
            Self::Forbidden => 403,
            Self::Conflict => 409,
            Self::Gone => 410,
            Self::Internal => 500,
        }
    }

    /// The command line's exit code for an error of this class.
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::Invalid | Self::Forbidden => 2,
            Self::NotFound | Self::Gone => 4,
            Self::Conflict => 3,
            Self::Internal => 1,
        }
    }
}

impl CoreError {
    pub(crate) fn project_not_found(id: ProjectId) -> Self {
        Self::NotFound { entity: "project", id: id.to_string() }
    }

    /// The class of this error (see [`ErrorClass`]).
    pub fn class(&self) -> ErrorClass {
        self.classify().0
    }

    /// A stable machine-readable code (`not_found`, `already_paused`, `paused`, `gap`, …).
    pub fn code(&self) -> &'static str {
        self.classify().1
    }

    /// Structured details for clients (empty object when there are none).
    pub fn details(&self) -> Value {
        match self {
            Self::Conflict(kind) => serde_json::to_value(kind).unwrap_or_else(|_| json!({})),
            Self::Paused(id) | Self::Pausing(id) => json!({"project_id": id}),
            Self::EventGap { project_id, since, pruned_through, head } => {
                json!({"project_id": project_id, "since": since, "pruned_through": pruned_through, "head": head})
            }
            Self::Context(ContextError::ContentTooLarge { size, limit }) => {
                json!({"size": size, "limit": limit})
            }
            _ => json!({}),
        }
    }

    fn classify(&self) -> (ErrorClass, &'static str) {
        use ErrorClass::{Conflict, Forbidden, Gone, Internal, Invalid, NotFound};
        match self {
            Self::NotFound { .. } | Self::NoCheckpoint(_) => (NotFound, "not_found"),
            Self::Conflict(kind) => (Conflict, conflict_code(kind)),
            Self::Paused(_) => (Conflict, "paused"),
            Self::Pausing(_) => (Conflict, "pausing"),
            Self::Invalid(_) | Self::BadRoot { .. } => (Invalid, "invalid"),
            Self::EventGap { .. } => (Gone, "gap"),
            Self::Forbidden(_) => (Forbidden, "forbidden"),
            Self::Context(e) => match e {
                ContextError::UnknownProject(_)
                | ContextError::UnknownAgent { .. }
                | ContextError::UnknownItem(_) => (NotFound, "not_found"),
                ContextError::ContentTooLarge { .. } => (Invalid, "content_too_large"),
                ContextError::EmptyContent { .. }
                | ContextError::InvalidItemType(_)
                | ContextError::Invalid(_) => (Invalid, "invalid"),
                ContextError::Stale { .. } => (Conflict, "concurrent_update"),
                ContextError::Tokenizer(_) | ContextError::Storage(_) => (Internal, "internal"),
                // A kind added to the (non-exhaustive) context errors is internal until mapped.
                _ => (Internal, "internal"),
            },
            Self::Checkpoint(e) => match e {
                CheckpointError::NotFound(_) | CheckpointError::UnknownProject(_) => (NotFound, "not_found"),
                CheckpointError::InUse(_) => (Conflict, "checkpoint_in_use"),
                CheckpointError::Unreadable { .. } => (Conflict, "checkpoint_unreadable"),
                CheckpointError::BadRoot(_) => (Conflict, "project_root_missing"),
                CheckpointError::Invalid(_) => (Invalid, "invalid"),
                CheckpointError::UnsafePath { .. } => (Invalid, "unsafe_path"),
                CheckpointError::RestoreInProgress(_) => (Conflict, "restore_in_progress"),
                CheckpointError::StoreBusy(_) => (Conflict, "store_busy"),
                CheckpointError::Injected(_)
                | CheckpointError::Store { .. }
                | CheckpointError::Io { .. }
                | CheckpointError::State { .. }
                | CheckpointError::Db(_)
                | CheckpointError::Worker(_) => (Internal, "internal"),
                // A kind added to the (non-exhaustive) checkpoint errors is internal until mapped.
                _ => (Internal, "internal"),
            },
            Self::FileExists(_) => (Invalid, "exists"),
            Self::Db(DbError::InUse { .. }) => (Conflict, "database_in_use"),
            Self::Db(DbError::TooNew { .. }) => (Conflict, "database_too_new"),
            Self::Db(DbError::Unrepresentable(_)) => (Invalid, "invalid"),
            Self::Db(_) | Self::Injected(_) | Self::Cancelled(_) | Self::Internal(_) => {
                (Internal, "internal")
            }
        }
    }

    /// Whether this is a refused transition ([`CoreError::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    /// Whether something named does not exist (project, checkpoint, agent, item).
    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::NotFound
    }

    /// Whether the input was rejected as invalid.
    pub fn is_invalid(&self) -> bool {
        self.class() == ErrorClass::Invalid
    }

    /// Maps a unique-constraint error to the conflict it means.
    pub(crate) fn from_unique(e: DbError, conflict: impl FnOnce() -> ConflictKind) -> Self {
        match &e {
            DbError::Constraint { kind: ConstraintKind::Unique, .. } => Self::Conflict(conflict()),
            _ => e.into(),
        }
    }
}

fn conflict_code(kind: &ConflictKind) -> &'static str {
    match kind {
        ConflictKind::AlreadyPaused { .. } => "already_paused",
        ConflictKind::NotPaused { .. } => "not_paused",
        ConflictKind::InvalidTransition { .. } => "invalid_transition",
        ConflictKind::Concurrent => "concurrent_update",
        ConflictKind::PauseInProgress => "pause_in_progress",
        ConflictKind::RootOverlaps => "root_overlaps",
        ConflictKind::NameTaken { .. } => "name_taken",
        ConflictKind::AlreadyAssigned { .. } => "already_assigned",
        ConflictKind::AgentExists { .. } => "agent_exists",
        ConflictKind::UnsavedChanges { .. } => "unsaved_changes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_say_why() {
        let c = ConflictKind::AlreadyPaused {
            paused_at: Some(time::macros::datetime!(2026-01-01 0:00 UTC)),
            checkpoint_id: Some(CheckpointId(3)),
        };
        assert_eq!(
            c.to_string(),
            "project is already paused since 2026-01-01T00:00:00.000000Z (checkpoint 3)"
        );
        let c = ConflictKind::InvalidTransition { from: ProjectStatus::Init, action: "pause" };
        assert_eq!(c.to_string(), "cannot pause a project that is init");
        let json = serde_json::to_value(ConflictKind::NotPaused { status: ProjectStatus::Active }).ok();
        assert_eq!(json, Some(serde_json::json!({"kind": "not_paused", "status": "active"})));
    }

    #[test]
    fn storage_errors_map_to_the_core_kinds() {
        let e: CoreError = DbError::NotFound { entity: "project", id: "4".into() }.into();
        assert!(e.is_not_found());
        let e: CoreError =
            DbError::Conflict { entity: "project", id: "4".into(), expected: 1, actual: 2 }.into();
        assert!(matches!(e, CoreError::Conflict(ConflictKind::Concurrent)));
        let e = CoreError::from_unique(
            DbError::Constraint { kind: ConstraintKind::Unique, constraint: "projects.name".into() },
            || ConflictKind::NameTaken { name: "x".into() },
        );
        assert!(e.is_conflict());
    }

    #[test]
    fn one_class_decides_the_http_status_and_the_exit_code() {
        let cases = [
            (CoreError::project_not_found(ProjectId(1)), 404, 4, "not_found"),
            (
                CoreError::Conflict(ConflictKind::NotPaused { status: ProjectStatus::Active }),
                409,
                3,
                "not_paused",
            ),
            (CoreError::Paused(ProjectId(1)), 409, 3, "paused"),
            (CoreError::Pausing(ProjectId(1)), 409, 3, "pausing"),
            (CoreError::Checkpoint(CheckpointError::InUse(CheckpointId(2))), 409, 3, "checkpoint_in_use"),
            (CoreError::Invalid(ModelError::Empty { field: "name" }), 422, 2, "invalid"),
            (
                CoreError::EventGap { project_id: ProjectId(1), since: 1, pruned_through: 9, head: 20 },
                410,
                4,
                "gap",
            ),
            (CoreError::Injected("x"), 500, 1, "internal"),
        ];
        for (e, status, exit, code) in cases {
            assert_eq!(
                (e.class().http_status(), e.class().exit_code(), e.code()),
                (status, exit, code),
                "{e}"
            );
        }
        assert_eq!(CoreError::Paused(ProjectId(7)).details(), json!({"project_id": 7}));
    }
}
