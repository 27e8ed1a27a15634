use codeframe_checkpoint::CheckpointError;
use codeframe_context::ContextError;
use codeframe_models::{CheckpointId, ModelError, ProjectStatus};
use codeframe_persistence::{ConstraintKind, DbError};
use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

/// Why a state transition was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
            Self::NameTaken { name } => write!(f, "a project named {name:?} already exists"),
            Self::AlreadyAssigned { agent_id } => {
                write!(f, "agent {agent_id:?} is already assigned to the project")
            }
            Self::AgentExists { agent_id } => write!(f, "agent {agent_id:?} is already registered"),
        }
    }
}

/// An error of the project service.
#[derive(Debug, Error)]
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
    Paused(i64),
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
    NoCheckpoint(i64),
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

impl CoreError {
    pub(crate) fn project_not_found(id: i64) -> Self {
        Self::NotFound { entity: "project", id: id.to_string() }
    }

    /// Whether this is a refused transition ([`CoreError::Conflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    /// Whether something named does not exist (project, checkpoint, agent, item).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::NotFound { .. } | Self::NoCheckpoint(_) => true,
            Self::Context(e) => matches!(
                e,
                ContextError::UnknownProject(_)
                    | ContextError::UnknownAgent { .. }
                    | ContextError::UnknownItem(_)
            ),
            Self::Checkpoint(e) => {
                matches!(e, CheckpointError::NotFound(_) | CheckpointError::UnknownProject(_))
            }
            _ => false,
        }
    }

    /// Whether the input was rejected as invalid.
    pub fn is_invalid(&self) -> bool {
        match self {
            Self::Invalid(_) | Self::BadRoot { .. } => true,
            Self::Context(e) => matches!(
                e,
                ContextError::Invalid(_)
                    | ContextError::EmptyContent { .. }
                    | ContextError::ContentTooLarge { .. }
                    | ContextError::InvalidItemType(_)
            ),
            Self::Checkpoint(e) => {
                matches!(e, CheckpointError::Invalid(_) | CheckpointError::UnsafePath { .. })
            }
            _ => false,
        }
    }

    /// Maps a unique-constraint error to the conflict it means.
    pub(crate) fn from_unique(e: DbError, conflict: impl FnOnce() -> ConflictKind) -> Self {
        match &e {
            DbError::Constraint { kind: ConstraintKind::Unique, .. } => Self::Conflict(conflict()),
            _ => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_say_why() {
        let c = ConflictKind::AlreadyPaused {
            paused_at: Some(time::macros::datetime!(2026-01-01 0:00 UTC)),
            checkpoint_id: Some(3),
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
}
