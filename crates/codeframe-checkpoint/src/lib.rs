//! Content-addressed project checkpoints for codeframe.
//!
//! A checkpoint is one commit in a bare git repository private to codeframe,
//! `<project root>/.codeframe/snapshots.git`, under `refs/codeframe/checkpoints/<id>`. Its tree:
//!
//! - `files/` — the working tree: tracked and untracked files, `.gitignore` rules honoured,
//!   `.git/` and `.codeframe/` excluded, executable bits and symlinks kept as git keeps them;
//! - `state/` — the project's own rows (project, agents and assignments, tasks, token usage)
//!   and all its context items, as deterministic JSON (sorted keys, stable order);
//! - `meta.json` — [`CheckpointMetadata`](codeframe_models::CheckpointMetadata).
//!
//! The store is written with gix; the user's repository (HEAD, index, branches, stash) is
//! never touched, and a project that is not a git repository can be checkpointed too.
//! Identical content is stored once, and a stat cache inside the store lets a snapshot hash
//! only the files that changed since the previous one. Stock git can read the store
//! (`git --git-dir .codeframe/snapshots.git show refs/codeframe/checkpoints/1:meta.json`).
//!
//! Unix only: executable bits, symlinks and byte-string file names are read as Unix has them.

mod error;
#[doc(hidden)]
pub mod failpoints;
mod fs;
mod gc;
mod git;
mod journal;
mod layout;
mod manager;
mod pack;
mod paths;
mod restore;
mod rows;
mod snapshot;
mod statcache;
mod state;
mod store;
mod types;
mod worktree;

pub use error::CheckpointError;
pub use gc::GcReport;
pub use git::GitCheckpointManager;
pub use manager::CheckpointManager;
pub use state::ProjectState;
pub use store::{Place, STORE_DIR, checkpoint_ref};
pub use types::{
    CheckpointDraft, CheckpointSpec, DEFAULT_MAX_FILE_SIZE, Durability, FileChange, FileDiff, FileDiffEntry,
    FilesRestored, FilesSettled, PreparedCheckpoint, ReconcileReport, RestoreMode, RestoreReport,
    RestoreWhat, VerifyReport, WrittenCheckpoint,
};

/// Result of a checkpoint operation.
pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;
