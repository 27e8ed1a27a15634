//! The checkpoint crate's public types: what to make, what a restore, diff, verification,
//! reconciliation or settlement reports, durability levels.

use std::sync::Arc;

use codeframe_models::{Checkpoint, CheckpointId, CheckpointTrigger, ContextItem};
use gix::ObjectId;
use serde::{Deserialize, Serialize};

use crate::gc::StoreUse;
use crate::layout::Chunk;
use crate::state::ProjectState;
use crate::store::Place;

/// What to make a checkpoint of, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointSpec {
    /// Name (1–100 characters).
    pub name: String,
    /// Description (≤ 500 characters).
    #[serde(default)]
    pub description: String,
    /// What made it.
    pub trigger: CheckpointTrigger,
    /// Reason of the pause, for pause checkpoints (≤ 500 characters).
    #[serde(default)]
    pub pause_reason: Option<String>,
}

/// A checkpoint whose row is written (in the caller's transaction) and whose state is read,
/// but whose snapshot is not yet in the store. Made by [`CheckpointManager::prepare`](crate::CheckpointManager::prepare),
/// finished by [`CheckpointManager::write`](crate::CheckpointManager::write).
#[derive(Debug)]
pub struct PreparedCheckpoint {
    /// The row as inserted (no commit yet).
    pub checkpoint: Checkpoint,
    pub(crate) state: ProjectState,
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) place: Place,
    /// Keeps garbage collection away from the objects it reuses until its ref is written.
    pub(crate) hold: Option<StoreUse>,
}

/// A checkpoint read from the database (through a read transaction) but not yet written,
/// made by [`CheckpointManager::draft`](crate::CheckpointManager::draft). The items it will write may be adjusted to what the
/// caller's transaction will make of them (a pause marks the items its flash saves archive).
#[derive(Debug)]
pub struct CheckpointDraft {
    /// The row to insert (no commit yet).
    pub checkpoint: Checkpoint,
    pub(crate) state: ProjectState,
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) revision: i64,
    pub(crate) place: Place,
    /// Keeps garbage collection away from the objects it reuses until its ref is written.
    pub(crate) hold: Option<StoreUse>,
}

impl CheckpointDraft {
    /// What the snapshot holds of the database. Its `context_items` are the items this
    /// snapshot writes: all of the project's in a full snapshot; in one built on an earlier
    /// checkpoint, those of the chunks holding items written since it, or named in
    /// `will_change` (the other chunks are that checkpoint's, unread).
    pub fn state(&self) -> &ProjectState {
        &self.state
    }

    /// The items this snapshot writes (see [`CheckpointDraft::state`]), to adjust.
    pub fn context_items_mut(&mut self) -> &mut [ContextItem] {
        &mut self.state.context_items
    }

    /// The project revision the draft read the database at.
    pub fn revision(&self) -> i64 {
        self.revision
    }
}

/// A snapshot whose objects are in the store, named by no ref and no row yet, made by
/// [`CheckpointManager::write_objects`](crate::CheckpointManager::write_objects). If nothing records it, its objects are unreachable
/// and harmless (content-addressed; a later snapshot may share them).
#[derive(Debug, Clone)]
pub struct WrittenCheckpoint {
    /// The row to insert, with its commit and final metadata.
    pub checkpoint: Checkpoint,
    pub(crate) commit: ObjectId,
    pub(crate) revision: i64,
    pub(crate) place: Place,
    /// Keeps garbage collection away from its objects until its ref is written (dropped with
    /// it; never read).
    pub(crate) _hold: Option<Arc<StoreUse>>,
}

/// What restoring files did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FilesRestored {
    /// Differences before the restore.
    pub diff: FileDiff,
    /// Files written.
    pub written: usize,
    /// Files removed.
    pub removed: usize,
}

/// How a file differs between a checkpoint and the working tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FileChange {
    /// Present now, absent from the checkpoint.
    Added,
    /// Present in both with different content or kind.
    Modified,
    /// In the checkpoint, absent now.
    Deleted,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileDiffEntry {
    /// Path relative to the project root (non-UTF-8 bytes replaced).
    pub path: String,
    /// How it changed.
    pub change: FileChange,
    /// Unified text diff (checkpoint → now), when asked for and both sides are text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unified: Option<String>,
}

/// Differences between a checkpoint's files and the working tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileDiff {
    /// Changed files, by path.
    pub files: Vec<FileDiffEntry>,
}

impl FileDiff {
    /// Paths of the changed files.
    pub fn paths(&self) -> Vec<String> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }
}

/// Parts of a checkpoint to restore.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreWhat {
    /// The working tree's files.
    pub files: bool,
    /// The project's rows: project, agents and assignments, tasks, token usage.
    pub state: bool,
    /// The project's context items.
    pub context: bool,
    /// With `context`: keep items created after the checkpoint (the checkpoint's items are
    /// still restored exactly). Without it, the project's items become exactly the
    /// checkpoint's.
    #[serde(default)]
    pub keep_new_items: bool,
}

/// Preview (diff only, nothing changes) or apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMode {
    /// Report what would change; change nothing.
    Preview,
    /// Restore.
    Apply,
}

/// What a restore did (or, previewed, would do).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RestoreReport {
    /// The checkpoint.
    pub checkpoint_id: CheckpointId,
    /// Whether anything was changed.
    pub applied: bool,
    /// File differences before the restore.
    pub diff: FileDiff,
    /// Files written.
    pub files_written: usize,
    /// Files removed.
    pub files_removed: usize,
    /// Context items now in the database from the checkpoint.
    pub items_restored: usize,
    /// Whether the project's rows were restored.
    pub state_restored: bool,
    /// The checkpoint of everything as it was just before this restore (trigger
    /// `before_restore`), which `checkpoints undo` brings back; `None` for a preview.
    #[serde(default)]
    pub safety_checkpoint_id: Option<CheckpointId>,
    /// Files the restore overwrites (or would) that changed since the project's latest
    /// checkpoint: a restore without `force` refuses them; a preview lists them.
    #[serde(default)]
    pub unsaved_changes: Vec<String>,
}

/// The result of checking a checkpoint's objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The checkpoint.
    pub checkpoint_id: CheckpointId,
    /// Its commit.
    pub commit: Option<String>,
    /// Objects looked at.
    pub objects_checked: usize,
    /// What is missing or unreadable (empty: the checkpoint is complete).
    pub problems: Vec<String>,
}

impl VerifyReport {
    /// Whether the checkpoint is complete and readable.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Refs without a checkpoint row (left by a transaction that never committed), removed.
    pub removed_refs: Vec<CheckpointId>,
    /// Checkpoint rows whose commit is missing from the store (reported, kept).
    pub missing_commits: Vec<CheckpointId>,
    /// A file restore left unsettled by a process that died during it, settled now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_restore: Option<FilesSettled>,
}

/// A file restore settled once the transaction that ran it was decided (see
/// [`CheckpointManager::settle_files`](crate::CheckpointManager::settle_files)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FilesSettled {
    /// The restore's token (its journal's, and its `file_restores` row's).
    pub token: String,
    /// Its transaction committed and the files were kept; otherwise they were put back.
    pub committed: bool,
    /// Files it wrote or removed.
    pub files: usize,
}

/// How hard the snapshot store pushes its writes to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Written through the page cache: a killed process loses nothing; a power loss may lose
    /// the newest checkpoints' objects (with SQLite's `synchronous=NORMAL`, possibly their
    /// rows too).
    #[default]
    Normal,
    /// Objects, refs and restored files, and the directories naming them, are flushed to disk
    /// before the database commits: a power loss cannot leave a checkpoint row whose objects
    /// are empty. Pair it with `synchronous=FULL` ([`codeframe_persistence::DbOptions`]).
    Full,
}

/// Files larger than this are left out of snapshots by default (and listed in the checkpoint).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 100 << 20;
