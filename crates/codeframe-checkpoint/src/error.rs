use std::path::PathBuf;

use codeframe_models::{CheckpointId, ModelError, ProjectId};
use codeframe_persistence::DbError;
use thiserror::Error;

/// Why a checkpoint operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// No project with this id.
    #[error("project {0} not found")]
    UnknownProject(ProjectId),
    /// No checkpoint with this id (for this project).
    #[error("checkpoint {0} not found")]
    NotFound(CheckpointId),
    /// The checkpoint row has no snapshot commit, or its commit (or an object it needs) is
    /// missing from the store.
    #[error("checkpoint {id} is unreadable: {reason}")]
    Unreadable {
        /// The checkpoint.
        id: CheckpointId,
        /// What is missing or broken.
        reason: String,
    },
    /// The checkpoint is the pause checkpoint of a paused project and cannot be deleted.
    #[error("checkpoint {0} is the checkpoint of the current pause; resume first")]
    InUse(CheckpointId),
    /// A name, description or reason failed validation.
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// The project root is missing or not a directory.
    #[error("project root {0} is not a directory")]
    BadRoot(PathBuf),
    /// A path in a checkpoint tree is unsafe to write (`..`, absolute, through a symlink,
    /// outside the root, into `.git/` or `.codeframe/`); nothing was written.
    #[error("unsafe path {path:?} in checkpoint: {reason}")]
    UnsafePath {
        /// The path, lossily decoded.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// The snapshot store (gix) failed.
    #[error("snapshot store {path}: {message}")]
    Store {
        /// Store or object involved.
        path: PathBuf,
        /// What gix reported.
        message: String,
    },
    /// A file of the working tree could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Stored state JSON could not be read or written.
    #[error("checkpoint state {file}: {message}")]
    State {
        /// The state file (`state/project.json`, …).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The database failed.
    #[error("checkpoint storage failed: {0}")]
    Db(#[from] DbError),
    /// Another process (or task) is restoring this project's files right now.
    #[error("a restore of the files of project {0} is in progress; try again when it is done")]
    RestoreInProgress(ProjectId),
    /// The project's snapshot store is in use (a checkpoint is being written or read), so its
    /// garbage cannot be collected now.
    #[error(
        "the snapshot store of project {0} is in use; collect its garbage when no checkpoint is being written"
    )]
    StoreBusy(ProjectId),
    /// A fail point made the step fail (crash tests only).
    #[error("injected failure at {0}")]
    Injected(&'static str),
    /// A blocking task was cancelled or panicked.
    #[error("checkpoint worker failed: {0}")]
    Worker(String),
}

impl CheckpointError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn store(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        Self::Store { path: path.into(), message: e.to_string() }
    }

    pub(crate) fn unsafe_path(path: &[u8], reason: impl Into<String>) -> Self {
        Self::UnsafePath { path: String::from_utf8_lossy(path).into_owned(), reason: reason.into() }
    }
}
