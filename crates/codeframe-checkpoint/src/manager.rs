use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use codeframe_models::{
    Checkpoint, CheckpointId, CheckpointMetadata, CheckpointTrigger, Clock, ContextItem, ProjectId,
    ProjectStatus, SystemClock, validate,
};
use codeframe_persistence::checkpoints::NewCheckpoint;
use codeframe_persistence::{
    Db, Executor, ReadTx, Tx, agents, checkpoints, context, file_restores, projects, revisions, tasks,
    token_usage,
};
use gix::ObjectId;
use gix::objs::tree::EntryKind;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, instrument, warn};

use crate::fs::Root;
use crate::gc::{self, GcReport, StoreUse};
use crate::journal::{self, Journal, RestoreLock};
use crate::layout::{self, Chunk};
use crate::restore::{self, Delta};
use crate::state::{self, ProjectState};
use crate::store::{FileEntry, Place, Store};
use crate::{CheckpointError, Result, paths, worktree};

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
/// but whose snapshot is not yet in the store. Made by [`CheckpointManager::prepare`],
/// finished by [`CheckpointManager::write`].
#[derive(Debug)]
pub struct PreparedCheckpoint {
    /// The row as inserted (no commit yet).
    pub checkpoint: Checkpoint,
    state: ProjectState,
    chunks: Vec<Chunk>,
    place: Place,
    /// Keeps garbage collection away from the objects it reuses until its ref is written.
    hold: Option<StoreUse>,
}

/// A checkpoint read from the database (through a read transaction) but not yet written,
/// made by [`CheckpointManager::draft`]. The items it will write may be adjusted to what the
/// caller's transaction will make of them (a pause marks the items its flash saves archive).
#[derive(Debug)]
pub struct CheckpointDraft {
    /// The row to insert (no commit yet).
    pub checkpoint: Checkpoint,
    state: ProjectState,
    chunks: Vec<Chunk>,
    revision: i64,
    place: Place,
    /// Keeps garbage collection away from the objects it reuses until its ref is written.
    hold: Option<StoreUse>,
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
/// [`CheckpointManager::write_objects`]. If nothing records it, its objects are unreachable
/// and harmless (content-addressed; a later snapshot may share them).
#[derive(Debug, Clone)]
pub struct WrittenCheckpoint {
    /// The row to insert, with its commit and final metadata.
    pub checkpoint: Checkpoint,
    commit: ObjectId,
    revision: i64,
    place: Place,
    /// Keeps garbage collection away from its objects until its ref is written (dropped with
    /// it; never read).
    _hold: Option<Arc<StoreUse>>,
}

/// What restoring files did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
/// [`CheckpointManager::settle_files`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesSettled {
    /// The restore's token (its journal's, and its `file_restores` row's).
    pub token: String,
    /// Its transaction committed and the files were kept; otherwise they were put back.
    pub committed: bool,
    /// Files it wrote or removed.
    pub files: usize,
}

/// Checkpoints of projects. Object safe: use it as `Arc<dyn CheckpointManager>`.
///
/// Ids: a checkpoint's id comes from [`CheckpointManager::reserve_id`], which commits on its own
/// before the checkpoint's transaction begins. An id is therefore never handed out twice, even
/// when a checkpoint's transaction rolls back, and the ref named after it
/// (`refs/codeframe/checkpoints/<id>`) is written create-only: nothing ever overwrites the ref
/// of a committed checkpoint.
#[async_trait]
pub trait CheckpointManager: Send + Sync {
    /// Hands out a fresh checkpoint id (committed at once; never handed out again).
    async fn reserve_id(&self) -> Result<CheckpointId>;

    /// First half of [`CheckpointManager::create`]: validates the spec, reads the project's
    /// state through `tx` (a consistent snapshot) and inserts the checkpoint row, with the
    /// reserved `checkpoint_id`, through it.
    async fn prepare(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        spec: CheckpointSpec,
    ) -> Result<PreparedCheckpoint>;

    /// Second half: writes the snapshot's objects and ref, and records the commit on the row
    /// through `tx`. If the transaction then does not commit, call
    /// [`CheckpointManager::discard`].
    async fn write(&self, tx: &mut Tx<'_>, prepared: PreparedCheckpoint) -> Result<Checkpoint>;

    /// Reads, through `read`, what a checkpoint of the project would hold, without writing
    /// anything: the other way to make a checkpoint, for callers that keep the snapshot out of
    /// their write transaction. Then [`CheckpointManager::write_objects`] (no transaction),
    /// then, in the write transaction, [`CheckpointManager::record`] and
    /// [`CheckpointManager::publish`]. The caller must make sure the rows did not change
    /// between the read and its write transaction (a pause compares project revisions).
    ///
    /// `will_change` names items the caller's transaction will change before it records the
    /// checkpoint: their chunks are read and written even when the snapshot builds on an
    /// earlier checkpoint (see [`CheckpointDraft::state`]).
    async fn draft(
        &self,
        read: &mut ReadTx,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        spec: CheckpointSpec,
        will_change: &[String],
    ) -> Result<CheckpointDraft>;

    /// Writes the snapshot's objects (the working tree's files and the draft's state) into
    /// the store; no ref, no row.
    async fn write_objects(&self, draft: CheckpointDraft) -> Result<WrittenCheckpoint>;

    /// Inserts the row of a written checkpoint through `tx`.
    async fn record(&self, tx: &mut Tx<'_>, written: &WrittenCheckpoint) -> Result<Checkpoint>;

    /// Writes the ref of a written checkpoint (create-only). If the transaction that
    /// recorded it then does not commit, call [`CheckpointManager::discard`].
    async fn publish(&self, written: &WrittenCheckpoint) -> Result<()>;

    /// Makes a checkpoint: [`CheckpointManager::prepare`] then [`CheckpointManager::write`].
    /// The row belongs to the caller's transaction.
    async fn create(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        spec: CheckpointSpec,
    ) -> Result<Checkpoint> {
        let prepared = self.prepare(tx, project_id, checkpoint_id, spec).await?;
        self.write(tx, prepared).await
    }

    /// Removes the ref of a checkpoint whose transaction did not commit. Absent is fine.
    async fn discard(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<()>;

    /// The project's checkpoints, newest first.
    async fn list(&self, project_id: ProjectId) -> Result<Vec<Checkpoint>>;

    /// One checkpoint of the project.
    async fn get(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<Checkpoint>;

    /// Deletes a checkpoint (row and ref) in a transaction of its own. The checkpoint of a
    /// current pause cannot be deleted.
    async fn delete(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<()>;

    /// Deletes a checkpoint's row inside the caller's transaction (the checkpoint of a current
    /// pause cannot be deleted). Once the transaction commits, remove the ref with
    /// [`CheckpointManager::discard`]; a crash in between leaves an orphan ref that
    /// [`CheckpointManager::reconcile`] removes.
    async fn delete_row(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
    ) -> Result<()>;

    /// Files added, modified and deleted in the working tree since the checkpoint, with
    /// unified text diffs when `unified` is set.
    async fn diff(
        &self,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        unified: bool,
    ) -> Result<FileDiff>;

    /// Checks that the commit and every object it needs are present.
    async fn verify(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<VerifyReport>;

    /// Restores parts of a checkpoint in its own transaction (see [`RestoreMode`]).
    async fn restore(
        &self,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
        mode: RestoreMode,
    ) -> Result<RestoreReport>;

    /// [`CheckpointManager::restore`] inside the caller's transaction: rows are written through
    /// `tx`; files are swapped in before this returns, all or nothing, and recorded in `tx`. The
    /// caller commits (or, on error, rolls back) right after, then calls
    /// [`CheckpointManager::settle_files`], which keeps the files if `tx` committed and puts
    /// the previous ones back if not.
    async fn restore_in(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
        mode: RestoreMode,
    ) -> Result<RestoreReport>;

    /// Restores state and/or context (not files) inside the caller's transaction.
    async fn restore_rows(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
    ) -> Result<usize>;

    /// Makes the working tree's files equal to the checkpoint's, all or nothing (validated
    /// first: a refusal writes nothing; an error after that puts everything back). Reads the
    /// checkpoint row through the caller's transaction and records the restore in it; like
    /// [`CheckpointManager::restore_in`], the caller calls
    /// [`CheckpointManager::settle_files`] once `tx` committed or rolled back.
    async fn restore_files(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
    ) -> Result<FilesRestored>;

    /// Settles the file restore that [`CheckpointManager::restore_in`] or
    /// [`CheckpointManager::restore_files`] swapped in for the project, once the transaction
    /// that ran it committed (the files are kept, the previous ones deleted) or rolled back
    /// (the previous files are put back). `None` when there is nothing to settle. A restore
    /// never settled (its process died) is settled by the next restore of the project or by
    /// [`CheckpointManager::reconcile`].
    async fn settle_files(&self, project_id: ProjectId) -> Result<Option<FilesSettled>>;

    /// Removes the objects of the project's store that no checkpoint ref reaches and packs the
    /// others into one pack, if the store has at least `min_packs` packs (0: always; `None`
    /// when it has fewer). Never waits: [`CheckpointError::StoreBusy`] while a checkpoint of
    /// the project is being written or read (it never removes an object one of them needs).
    /// Refs without a checkpoint row keep their objects: reconcile first.
    async fn collect_garbage(&self, project_id: ProjectId, min_packs: usize) -> Result<Option<GcReport>>;

    /// Removes refs that have no checkpoint row; reports rows whose commit is missing; settles
    /// a file restore that a process left unsettled when it died.
    async fn reconcile(&self, project_id: ProjectId) -> Result<ReconcileReport>;
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

/// [`CheckpointManager`] over a private gix store per project root and the SQLite database.
#[derive(Debug, Clone)]
pub struct GitCheckpointManager {
    db: Db,
    clock: Arc<dyn Clock>,
    max_file_size: u64,
    durability: Durability,
    /// File restores swapped in by this manager, waiting for their transaction's outcome.
    pending: Arc<Mutex<HashMap<ProjectId, PendingFiles>>>,
}

/// A file restore swapped in, holding its project's restore lock until it is settled.
#[derive(Debug)]
struct PendingFiles {
    lock: RestoreLock,
    journal: Journal,
    root: std::path::PathBuf,
}

/// Files larger than this are left out of snapshots by default (and listed in the checkpoint).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 100 << 20;

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| CheckpointError::Worker(e.to_string()))?
}

fn oid_hex(oid: &ObjectId) -> String {
    oid.to_hex().to_string()
}

fn parse_oid(id: CheckpointId, hex: Option<&str>) -> Result<ObjectId> {
    let hex =
        hex.ok_or_else(|| CheckpointError::Unreadable { id, reason: "no snapshot commit recorded".into() })?;
    ObjectId::from_hex(hex.as_bytes())
        .map_err(|e| CheckpointError::Unreadable { id, reason: format!("bad commit id {hex:?}: {e}") })
}

/// What [`GitCheckpointManager::read_for`] read.
struct ReadCheckpoint {
    state: ProjectState,
    chunks: Vec<Chunk>,
    revision: i64,
    place: Place,
    row: Checkpoint,
    hold: Option<StoreUse>,
}

/// Largest file read whole for a unified diff.
const UNIFIED_DIFF_MAX: u64 = 8 << 20;

/// Writes the objects of a checkpoint's snapshot: files, state, meta; commit. No ref.
#[allow(clippy::too_many_arguments)]
fn write_snapshot(
    place: &Place,
    id: CheckpointId,
    state: ProjectState,
    chunks: &[Chunk],
    mut metadata: CheckpointMetadata,
    message: String,
    unix_seconds: i64,
    max_file_size: u64,
) -> Result<(ObjectId, worktree::WalkStats, CheckpointMetadata, Option<StoreUse>)> {
    let store = Store::open_or_init(place)?;
    // Every new object of the snapshot goes into one pack: two file creations, not thousands.
    let mut pack = store.pack()?;
    let (files, stats) = worktree::snapshot(&store, &place.root, Some(&mut pack), max_file_size)?;
    metadata.skipped_files = stats.skipped.clone();
    let blob: gix::objs::tree::EntryMode = EntryKind::Blob.into();
    let mut entries: Vec<(Vec<u8>, gix::objs::tree::EntryMode, ObjectId)> =
        files.into_iter().map(|f| ([b"files/".as_slice(), &f.path].concat(), f.kind.mode(), f.oid)).collect();
    let mut put = |name: &str, bytes: Vec<u8>| -> Result<()> {
        let oid = store.put(&mut pack, gix::objs::Kind::Blob, &bytes)?;
        entries.push((name.as_bytes().to_vec(), blob, oid));
        Ok(())
    };
    put("meta.json", state::canonical_json("meta.json", &metadata)?)?;
    put("state/project.json", state::canonical_json("state/project.json", &state.project)?)?;
    put("state/agents.json", state::canonical_json("state/agents.json", &state.agents)?)?;
    put("state/assignments.json", state::canonical_json("state/assignments.json", &state.assignments)?)?;
    put("state/tasks.json", state::canonical_json("state/tasks.json", &state.tasks)?)?;
    put("state/token_usage.json", state::canonical_json("state/token_usage.json", &state.token_usage)?)?;
    let mut index = layout::Index { chunks: Vec::with_capacity(chunks.len()) };
    for (n, chunk) in chunks.iter().enumerate() {
        let name = format!("state/context/{n:06}.jsonl");
        match chunk {
            Chunk::Reused { oid, first, count } => {
                entries.push((name.into_bytes(), blob, *oid));
                index.chunks.push(layout::IndexEntry { count: *count, first: first.clone() });
            }
            Chunk::Fresh { start, len } => {
                let items = state
                    .context_items
                    .get(*start..*start + *len)
                    .filter(|i| !i.is_empty())
                    .ok_or_else(|| layout::inconsistent("a chunk outside the items read"))?;
                let first = items.first().map(|i| i.id.clone()).unwrap_or_default();
                index.chunks.push(layout::IndexEntry { count: *len, first });
                let bytes = state::items_jsonl(&name, items)?;
                let oid = store.put(&mut pack, gix::objs::Kind::Blob, &bytes)?;
                entries.push((name.into_bytes(), blob, oid));
            }
        }
    }
    let oid =
        store.put(&mut pack, gix::objs::Kind::Blob, &state::canonical_json(layout::INDEX_PATH, &index)?)?;
    entries.push((layout::INDEX_PATH.as_bytes().to_vec(), blob, oid));
    let tree = store.write_tree(&mut pack, entries.iter().map(|(p, m, o)| (p.as_slice(), *m, *o)))?;
    let commit = store.commit(&mut pack, tree, &message, unix_seconds)?;
    // The pack is in place (and flushed) before any ref can name anything in it.
    pack.finish()?;
    debug!(checkpoint_id = id, commit = %commit, "snapshot objects written");
    Ok((commit, stats, metadata, store.into_hold()))
}

/// Reads the state stored in a checkpoint commit; a missing object makes it unreadable.
fn read_state(store: &Store, id: CheckpointId, commit: ObjectId) -> Result<ProjectState> {
    read_state_inner(store, id, commit).map_err(|e| unreadable_if_missing(id, e))
}

/// A store error met while reading a checkpoint's snapshot means the checkpoint is unreadable.
fn unreadable_if_missing(id: CheckpointId, e: CheckpointError) -> CheckpointError {
    match e {
        CheckpointError::Store { message, .. } => CheckpointError::Unreadable { id, reason: message },
        other => other,
    }
}

fn read_state_inner(store: &Store, id: CheckpointId, commit: ObjectId) -> Result<ProjectState> {
    let mut state = read_state_rows(store, id, commit)?;
    let tree = store.commit_tree(commit)?;
    let Some(state_tree) = store.child(tree, "state")? else { return Ok(state) };
    if let Some(ctx) = store.child(state_tree.oid, "context")? {
        let mut chunks = store.tree_entries(ctx.oid)?;
        chunks.sort_by(|a, b| a.path.cmp(&b.path));
        for c in chunks {
            let name = format!("state/context/{}", String::from_utf8_lossy(&c.path));
            state.context_items.extend(state::parse_jsonl::<ContextItem>(&name, &store.read_blob(c.oid)?)?);
        }
    }
    Ok(state)
}

/// The snapshot's rows without its context items (left empty).
fn read_state_rows(store: &Store, id: CheckpointId, commit: ObjectId) -> Result<ProjectState> {
    let unreadable = |reason: String| CheckpointError::Unreadable { id, reason };
    let tree = store.commit_tree(commit)?;
    let state_tree =
        store.child(tree, "state")?.ok_or_else(|| unreadable("no state/ in the snapshot".into()))?;
    let read = |name: &str| -> Result<Vec<u8>> {
        let e = store.child(state_tree.oid, name)?.ok_or_else(|| unreadable(format!("no state/{name}")))?;
        store.read_blob(e.oid)
    };
    let context_items = Vec::new();
    Ok(ProjectState {
        project: state::parse("state/project.json", &read("project.json")?)?,
        agents: state::parse("state/agents.json", &read("agents.json")?)?,
        assignments: state::parse("state/assignments.json", &read("assignments.json")?)?,
        tasks: state::parse("state/tasks.json", &read("tasks.json")?)?,
        token_usage: state::parse("state/token_usage.json", &read("token_usage.json")?)?,
        context_items,
    })
}

/// Whether every row of a snapshot belongs to `project_id`: the project row, assignments,
/// tasks, token usage and context items name it, and every agent named is one of the
/// snapshot's agents assigned to it. A store can be edited by code running in the project, so
/// a snapshot is checked before any of it is written; the reason says what was wrong.
fn snapshot_belongs_to(s: &ProjectState, project_id: ProjectId) -> std::result::Result<(), String> {
    let foreign =
        |what: &str, other: ProjectId| Err(format!("it holds {what} of project {other}, not {project_id}"));
    if s.project.id != project_id {
        return foreign("the project row", s.project.id);
    }
    if let Some(a) = s.assignments.iter().find(|a| a.project_id != project_id) {
        return foreign("an agent assignment", a.project_id);
    }
    if let Some(t) = s.tasks.iter().find(|t| t.project_id != project_id) {
        return foreign("a task", t.project_id);
    }
    if let Some(u) = s.token_usage.iter().find(|u| u.project_id != project_id) {
        return foreign("token usage", u.project_id);
    }
    if let Some(i) = s.context_items.iter().find(|i| i.project_id != project_id) {
        return foreign(&format!("context item {}", i.id), i.project_id);
    }
    let assigned: std::collections::HashSet<&str> =
        s.assignments.iter().map(|a| a.agent_id.as_str()).collect();
    if let Some(a) = s.agents.iter().find(|a| !assigned.contains(a.id.as_str())) {
        return Err(format!("it holds agent {:?}, which was never assigned to project {project_id}", a.id));
    }
    let agents: std::collections::HashSet<&str> = s.agents.iter().map(|a| a.id.as_str()).collect();
    let named = s
        .context_items
        .iter()
        .map(|i| i.agent_id.as_str())
        .chain(s.assignments.iter().map(|a| a.agent_id.as_str()));
    if let Some(a) = named.into_iter().find(|a| !agents.contains(a)) {
        return Err(format!("it names agent {a:?}, which it does not hold"));
    }
    Ok(())
}

/// The validated files of a checkpoint commit.
fn checkpoint_files(store: &Store, id: CheckpointId, commit: ObjectId) -> Result<Vec<FileEntry>> {
    let tree = store.commit_tree(commit)?;
    let files = store
        .child(tree, "files")?
        .ok_or_else(|| CheckpointError::Unreadable { id, reason: "no files/ in the snapshot".into() })?;
    paths::files_of(store, files.oid)
}

fn diff_of(store: &Store, root: &std::path::Path, d: &Delta<'_>, unified: bool) -> Result<crate::FileDiff> {
    let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
    let handle = if unified { Some(crate::fs::Root::open(root)?) } else { None };
    // The current content, read through the root's handle: a file swapped for a link since the
    // walk never shows what lies outside the root.
    let now_bytes = |e: &FileEntry| -> Result<Vec<u8>> {
        use std::io::Read as _;
        let Some(handle) = &handle else { return Ok(Vec::new()) };
        match handle.read(&e.path)? {
            crate::fs::Found::File(file, st) => {
                let mut bytes = Vec::new();
                let limit = u64::try_from(st.st_size).unwrap_or(0).min(UNIFIED_DIFF_MAX);
                file.take(limit).read_to_end(&mut bytes).map_err(|err| CheckpointError::io(root, err))?;
                Ok(bytes)
            }
            crate::fs::Found::Symlink(target) => Ok(target),
            crate::fs::Found::Nothing => Ok(Vec::new()),
        }
    };
    let mut files = Vec::new();
    for e in &d.added {
        let u = if unified { restore::unified(&show(&e.path), b"", &now_bytes(e)?) } else { None };
        files.push(FileDiffEntry { path: show(&e.path), change: FileChange::Added, unified: u });
    }
    for (old, new) in &d.modified {
        let u = if unified {
            restore::unified(&show(&new.path), &store.read_blob(old.oid)?, &now_bytes(new)?)
        } else {
            None
        };
        files.push(FileDiffEntry { path: show(&new.path), change: FileChange::Modified, unified: u });
    }
    for e in &d.deleted {
        let u = if unified { restore::unified(&show(&e.path), &store.read_blob(e.oid)?, b"") } else { None };
        files.push(FileDiffEntry { path: show(&e.path), change: FileChange::Deleted, unified: u });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(FileDiff { files })
}

/// The project's store, which a checkpoint needs to exist.
fn open_store(place: &Place, id: CheckpointId) -> Result<Store> {
    Store::open_existing(place)?
        .ok_or_else(|| CheckpointError::Unreadable { id, reason: "no snapshot store".into() })
}

/// Validates, then makes the working tree's files equal to the checkpoint's, all or nothing,
/// holding the project's restore lock. Returns the lock with the journal of the swap.
fn restore_files_blocking(
    place: &Place,
    id: CheckpointId,
    commit: ObjectId,
    max: u64,
    lock: RestoreLock,
) -> Result<(FilesRestored, Option<Journal>, RestoreLock)> {
    let root = place.root.as_path();
    let store = open_store(place, id)?;
    let files = checkpoint_files(&store, id, commit)?;
    let (current, _) = worktree::snapshot(&store, root, None, max)?;
    let delta = restore::delta(&files, &current);
    let diff = diff_of(&store, root, &delta, false)?;
    let applied = restore::apply(&store, root, &lock, &delta)?;
    Ok((FilesRestored { diff, written: applied.written, removed: applied.removed }, applied.journal, lock))
}

impl GitCheckpointManager {
    /// A manager over `db` with the system clock.
    pub fn new(db: Db) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    /// A manager with an explicit clock.
    pub fn with_clock(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            clock,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            durability: Durability::Normal,
            pending: Arc::default(),
        }
    }

    /// Files larger than `bytes` are left out of snapshots (listed in the checkpoint's
    /// metadata as `skipped_files`); default [`DEFAULT_MAX_FILE_SIZE`].
    pub fn with_max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// How hard writes are pushed to disk (default [`Durability::Normal`]).
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    fn durable(&self) -> bool {
        self.durability == Durability::Full
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<ProjectId, PendingFiles>> {
        // A panic while holding it cannot leave the map half-changed (one insert or remove).
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Completes (if its token is recorded, as seen through `ex`) or undoes a swapped-in file
    /// restore, then forgets it.
    async fn settle(
        &self,
        ex: &mut impl Executor,
        lock: RestoreLock,
        journal: Journal,
        root: std::path::PathBuf,
    ) -> Result<(RestoreLock, FilesSettled)> {
        let committed = file_restores::committed(ex, &journal.token).await?;
        let durable = self.durable();
        let (lock, settled) = blocking(move || {
            let handle = Root::open(&root)?;
            journal::settle(&handle, &lock, &journal, committed, durable)?;
            Ok((lock, FilesSettled { token: journal.token.clone(), committed, files: journal.len() }))
        })
        .await?;
        // Only now that the journal is gone: a journal without its row is undone.
        if committed {
            file_restores::forget(ex, &settled.token).await?;
        }
        Ok((lock, settled))
    }

    /// Takes the project's restore lock, first settling a file restore left unsettled: this
    /// manager's own, or one whose process died. `Ok((None, _))` when another process holds
    /// the lock (it is restoring now) and `must_lock` is false; an error when it is true.
    async fn restore_lock(
        &self,
        ex: &mut impl Executor,
        project_id: ProjectId,
        place: &Place,
        must_lock: bool,
    ) -> Result<(Option<RestoreLock>, Option<FilesSettled>)> {
        let own = self.pending().remove(&project_id);
        let (lock, journal, root) = match own {
            Some(p) => (p.lock, Some(p.journal), p.root),
            None => {
                let store = place.store.clone();
                let taken = blocking(move || {
                    if !store.join("HEAD").is_file() {
                        return Ok(Some(None)); // no store: nothing was ever restored
                    }
                    match RestoreLock::try_take(&store)? {
                        Some(lock) => {
                            let journal = lock.journal()?;
                            Ok(Some(Some((lock, journal))))
                        }
                        None => Ok(None),
                    }
                })
                .await?;
                match taken {
                    Some(Some((lock, journal))) => (lock, journal, place.root.clone()),
                    Some(None) if !must_lock => return Ok((None, None)),
                    Some(None) => {
                        return Err(CheckpointError::store(
                            &place.store,
                            "the project has no snapshot store",
                        ));
                    }
                    None if must_lock => return Err(CheckpointError::RestoreInProgress(project_id)),
                    None => {
                        debug!(project_id, "a file restore is in progress in another process; left alone");
                        return Ok((None, None));
                    }
                }
            }
        };
        let Some(journal) = journal else {
            // Staging folders of a process that died before its swap began.
            let lock = blocking(move || {
                journal::sweep(&Root::open(&root)?)?;
                Ok(lock)
            })
            .await?;
            return Ok((Some(lock), None));
        };
        let (lock, settled) = self.settle(ex, lock, journal, root).await?;
        warn!(
            project_id,
            token = %settled.token,
            committed = settled.committed,
            files = settled.files,
            "settled a file restore left unsettled: {}",
            if settled.committed { "its transaction committed, files kept" } else { "its transaction rolled back, files put back" }
        );
        Ok((Some(lock), Some(settled)))
    }

    /// Restores the files of a checkpoint under the project's restore lock, recording the swap
    /// in `tx`; it stays pending until [`CheckpointManager::settle_files`].
    async fn swap_files_in(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        commit: ObjectId,
        place: Place,
    ) -> Result<FilesRestored> {
        let (lock, _) = self.restore_lock(tx, project_id, &place, true).await?;
        let lock = lock.ok_or(CheckpointError::RestoreInProgress(project_id))?;
        let max = self.max_file_size;
        let root = place.root.clone();
        let (restored, journal, lock) =
            blocking(move || restore_files_blocking(&place, checkpoint_id, commit, max, lock)).await?;
        if let Some(journal) = journal {
            let token = journal.token.clone();
            // Pending before it is recorded: a failure to record is settled (undone) too.
            self.pending().insert(project_id, PendingFiles { lock, journal, root });
            file_restores::record(tx, project_id, &token, self.clock.now()).await?;
        }
        Ok(restored)
    }

    async fn place(&self, ex: &mut impl Executor, project_id: ProjectId) -> Result<Place> {
        let p = projects::find(ex, project_id).await?.ok_or(CheckpointError::UnknownProject(project_id))?;
        Ok(Place::new(p.root_path, p.store_path.as_deref()).with_durable(self.durable()))
    }

    async fn row(
        &self,
        ex: &mut impl Executor,
        project_id: ProjectId,
        id: CheckpointId,
    ) -> Result<Checkpoint> {
        match checkpoints::find(ex, id).await? {
            Some(c) if c.project_id == project_id => Ok(c),
            _ => Err(CheckpointError::NotFound(id)),
        }
    }

    /// Validates the spec and reads what a checkpoint of the project holds: its rows, the
    /// context (whole, or the chunks to rewrite over a base checkpoint), the place, the row to be.
    async fn read_for(
        &self,
        ex: &mut impl Executor,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        spec: CheckpointSpec,
        will_change: &[String],
    ) -> Result<ReadCheckpoint> {
        validate::checkpoint_name(&spec.name)?;
        validate::checkpoint_description(&spec.description)?;
        if let Some(r) = &spec.pause_reason {
            validate::pause_reason(r)?;
        }
        let revision = match revisions::get(ex, project_id).await {
            Err(e) if e.is_not_found() => return Err(CheckpointError::UnknownProject(project_id)),
            other => other?,
        };
        let mut state = ProjectState::read_rows(ex, project_id).await?;
        let place = Place::new(&state.project.root_path, state.project.store_path.as_deref())
            .with_durable(self.durable());
        if !place.root.is_dir() {
            return Err(CheckpointError::BadRoot(place.root));
        }
        // Before a base checkpoint is chosen: its objects are reused from here on.
        let store = place.store.clone();
        let hold = blocking(move || {
            if store.join("HEAD").is_file() { StoreUse::shared(&store).map(Some) } else { Ok(None) }
        })
        .await?;
        let (items, chunks) = self.read_context(ex, &place, project_id, revision, will_change).await?;
        state.context_items = items;
        let metadata = Self::metadata(ex, &state, layout::count(&chunks)).await?;
        let row = Checkpoint {
            id: checkpoint_id,
            project_id,
            name: spec.name,
            description: spec.description,
            trigger: spec.trigger,
            commit_id: None,
            pause_reason: spec.pause_reason,
            metadata,
            created_at: self.clock.now(),
            pinned: false,
        };
        Ok(ReadCheckpoint { state, chunks, revision, place, row, hold })
    }

    /// The context a snapshot writes: over a usable base, the items of the chunks holding an
    /// item written since it (or in `will_change`), the other chunks reused; else every item.
    async fn read_context(
        &self,
        ex: &mut impl Executor,
        place: &Place,
        project_id: ProjectId,
        revision: i64,
        will_change: &[String],
    ) -> Result<(Vec<ContextItem>, Vec<Chunk>)> {
        let Some((base_revision, base)) = self.base(ex, place, project_id, revision).await? else {
            let items = context::list_for_project(ex, project_id).await?;
            let chunks = layout::full(items.len());
            return Ok((items, chunks));
        };
        let written = context::ids_written_after(ex, project_id, base_revision).await?;
        let dirty: std::collections::BTreeSet<usize> =
            written.iter().chain(will_change).map(|id| layout::chunk_of(&base, id)).collect();
        let (mut items, mut chunks) = (Vec::new(), Vec::with_capacity(base.len()));
        for (k, b) in base.iter().enumerate() {
            if dirty.contains(&k) {
                let (from, to) = layout::range_of(&base, k);
                let read = context::list_id_range(ex, project_id, from, to).await?;
                chunks.extend(layout::fresh(items.len(), read.len()));
                items.extend(read);
            } else {
                chunks.push(Chunk::Reused { oid: b.oid, first: b.first.clone(), count: b.count });
            }
        }
        debug!(
            project_id,
            base_revision,
            chunks = base.len(),
            rewritten = dirty.len(),
            items_read = items.len(),
            "context snapshot over the previous checkpoint"
        );
        Ok((items, chunks))
    }

    /// The newest checkpoint an incremental snapshot can build on: its revision and chunks.
    async fn base(
        &self,
        ex: &mut impl Executor,
        place: &Place,
        project_id: ProjectId,
        revision: i64,
    ) -> Result<Option<(i64, Vec<layout::BaseChunk>)>> {
        let Some((id, hex, base_revision)) = checkpoints::latest_with_revision(ex, project_id).await? else {
            return Ok(None);
        };
        let deleted = revisions::deleted_revision(ex, project_id).await?;
        if base_revision > revision || deleted > base_revision {
            debug!(
                project_id,
                checkpoint_id = id,
                base_revision,
                deleted,
                "items deleted since the last checkpoint; full context snapshot"
            );
            return Ok(None);
        }
        let Ok(commit) = ObjectId::from_hex(hex.as_bytes()) else { return Ok(None) };
        let place = place.clone();
        let read = blocking(move || match Store::open_existing(&place)? {
            Some(store) => layout::read_base(&store, commit),
            None => Ok(None),
        })
        .await;
        match read {
            Ok(Some(chunks)) => Ok(Some((base_revision, chunks))),
            Ok(None) => Ok(None),
            Err(e) => {
                // A damaged base is verify's business; this snapshot just reads everything.
                warn!(project_id, checkpoint_id = id, error = %e, "previous checkpoint unusable as a base; full context snapshot");
                Ok(None)
            }
        }
    }

    async fn metadata(
        ex: &mut impl Executor,
        state: &ProjectState,
        items: usize,
    ) -> Result<CheckpointMetadata> {
        let id = state.project.id;
        let (tasks_completed, tasks_total, last_task_completed) = tasks::progress(ex, id).await?;
        Ok(CheckpointMetadata {
            project_id: id,
            phase: state.project.phase,
            tasks_completed,
            tasks_total,
            agents_active: agents::active_agent_ids(ex, id).await?,
            last_task_completed,
            context_items_count: i64::try_from(items).unwrap_or(i64::MAX),
            total_cost_usd: token_usage::total_cost(ex, id).await?,
            skipped_files: Vec::new(),
        })
    }

    /// Brings back the checkpoint's version of the items written since its revision, keeping
    /// items it does not hold; only the chunks holding such items are read, from the store and
    /// from the database. `None` when that cannot be known exactly (no recorded revision, items
    /// deleted since, no usable chunk index): the caller then reads everything. Returns the
    /// checkpoint's item count, as a full restore does.
    async fn restore_written_since(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        cp: &Checkpoint,
        commit: ObjectId,
        place: &Place,
    ) -> Result<Option<usize>> {
        let Some(revision) = checkpoints::revision(tx, cp.id).await? else { return Ok(None) };
        if revisions::deleted_revision(tx, project_id).await? > revision {
            return Ok(None);
        }
        let written = context::ids_written_after(tx, project_id, revision).await?;
        let (place, checkpoint_id) = (place.clone(), cp.id);
        let read = blocking(move || {
            let store = open_store(&place, checkpoint_id)?;
            let Some(chunks) = layout::read_index(&store, commit)? else { return Ok(None) };
            let dirty: std::collections::BTreeSet<usize> =
                written.iter().map(|id| layout::chunk_of(&chunks, id)).collect();
            let mut snapshot = read_state_rows(&store, checkpoint_id, commit)?;
            let mut ranges = Vec::with_capacity(dirty.len());
            for k in dirty {
                let (from, to) = layout::range_of(&chunks, k);
                ranges.push((from.map(str::to_owned), to.map(str::to_owned)));
                let name = format!("state/context/{k:06}.jsonl");
                let oid = chunks
                    .get(k)
                    .map(|c| c.oid)
                    .ok_or_else(|| layout::inconsistent("a chunk beyond the index"))?;
                snapshot
                    .context_items
                    .extend(state::parse_jsonl::<ContextItem>(&name, &store.read_blob(oid)?)?);
            }
            Ok(Some((snapshot, ranges)))
        })
        .await;
        let (snapshot, ranges) = match read {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) => return Err(unreadable_if_missing(cp.id, e)),
        };
        snapshot_belongs_to(&snapshot, project_id)
            .map_err(|reason| CheckpointError::Unreadable { id: cp.id, reason })?;
        let mut current = std::collections::HashMap::new();
        for (from, to) in &ranges {
            for item in context::list_id_range(tx, project_id, from.as_deref(), to.as_deref()).await? {
                current.insert(item.id.clone(), item);
            }
        }
        let changed: Vec<ContextItem> = snapshot
            .context_items
            .into_iter()
            .filter(|i| current.get(&i.id).is_none_or(|c| c != i))
            .collect();
        for a in &snapshot.agents {
            agents::insert_missing(tx, a).await?;
        }
        debug!(
            project_id,
            checkpoint_id = cp.id,
            revision,
            chunks_read = ranges.len(),
            changed = changed.len(),
            "context items differing from the checkpoint (written since it)"
        );
        context::upsert_many(tx, &changed).await?;
        Ok(Some(usize::try_from(cp.metadata.context_items_count).unwrap_or(0)))
    }

    /// Applies rows of a stored state through `ex`; returns the context items written.
    async fn apply_rows(
        ex: &mut impl Executor,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        snapshot: ProjectState,
        what: RestoreWhat,
        now: time::OffsetDateTime,
    ) -> Result<usize> {
        snapshot_belongs_to(&snapshot, project_id)
            .map_err(|reason| CheckpointError::Unreadable { id: checkpoint_id, reason })?;
        if what.state {
            let current = projects::get(ex, project_id).await?;
            let restored = codeframe_models::Project {
                id: current.id,
                name: current.name.clone(),
                owner_id: current.owner_id,
                root_path: current.root_path.clone(),
                store_path: current.store_path.clone(),
                created_at: current.created_at,
                version: current.version,
                ..snapshot.project
            };
            projects::update(ex, &restored, now).await?;
            for a in &snapshot.agents {
                agents::upsert(ex, a).await?;
            }
            agents::replace_assignments(ex, project_id, &snapshot.assignments).await?;
            tasks::replace_for_project(ex, project_id, &snapshot.tasks).await?;
            token_usage::replace_for_project(ex, project_id, &snapshot.token_usage).await?;
        }
        let mut items = 0;
        if what.context {
            // Items need their agents to exist; an agent row that exists is shared with other
            // projects and stays as it is.
            for a in &snapshot.agents {
                agents::insert_missing(ex, a).await?;
            }
            items = snapshot.context_items.len();
            if what.keep_new_items {
                // Write back only what differs: after an untouched pause that is nothing, and
                // reading is far cheaper than rewriting every row.
                let current = context::list_for_project(ex, project_id).await?;
                let by_id: std::collections::HashMap<&str, &ContextItem> =
                    current.iter().map(|i| (i.id.as_str(), i)).collect();
                let changed: Vec<ContextItem> = snapshot
                    .context_items
                    .iter()
                    .filter(|i| by_id.get(i.id.as_str()).is_none_or(|c| *c != *i))
                    .cloned()
                    .collect();
                debug!(project_id, changed = changed.len(), "context items differing from the checkpoint");
                context::upsert_many(ex, &changed).await?;
            } else {
                context::replace_for_project(ex, project_id, &snapshot.context_items).await?;
            }
        }
        Ok(items)
    }
}

#[async_trait]
impl CheckpointManager for GitCheckpointManager {
    async fn reserve_id(&self) -> Result<CheckpointId> {
        Ok(checkpoints::reserve_id(&mut self.db.conn().await?).await?)
    }

    #[instrument(skip(self, tx, spec), fields(name = %spec.name, trigger = %spec.trigger))]
    async fn prepare(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        spec: CheckpointSpec,
    ) -> Result<PreparedCheckpoint> {
        let started = Instant::now();
        let ReadCheckpoint { state, chunks, revision, place, row: draft_row, hold } =
            self.read_for(tx, project_id, checkpoint_id, spec, &[]).await?;
        let checkpoint = checkpoints::insert(
            tx,
            &NewCheckpoint {
                id: Some(checkpoint_id),
                project_id,
                name: draft_row.name,
                description: draft_row.description,
                trigger: draft_row.trigger,
                commit_id: None,
                pause_reason: draft_row.pause_reason,
                metadata: draft_row.metadata,
                created_at: draft_row.created_at,
            },
        )
        .await?;
        checkpoints::set_revision(tx, checkpoint_id, revision).await?;
        debug!(
            checkpoint_id = checkpoint.id,
            items = state.context_items.len(),
            elapsed_ms = started.elapsed().as_millis(),
            "checkpoint row written"
        );
        Ok(PreparedCheckpoint { checkpoint, state, chunks, place, hold })
    }

    async fn write(&self, tx: &mut Tx<'_>, prepared: PreparedCheckpoint) -> Result<Checkpoint> {
        let started = Instant::now();
        let PreparedCheckpoint { checkpoint, state, chunks, place, hold: _hold } = prepared;
        let id = checkpoint.id;
        let message = format!("Checkpoint {id}: {}\n\ntrigger: {}\n", checkpoint.name, checkpoint.trigger);
        let metadata = checkpoint.metadata.clone();
        let unix_seconds = checkpoint.created_at.unix_timestamp();
        let max = self.max_file_size;
        let (commit, stats, metadata) = blocking(move || {
            let (commit, stats, metadata, _snapshot_hold) =
                write_snapshot(&place, id, state, &chunks, metadata, message, unix_seconds, max)?;
            Store::open_or_init(&place)?.set_ref(id, commit)?;
            Ok((commit, stats, metadata))
        })
        .await?;
        let hex = oid_hex(&commit);
        checkpoints::set_commit(tx, id, &hex).await?;
        if !metadata.skipped_files.is_empty() {
            warn!(checkpoint_id = id, skipped = ?metadata.skipped_files, "files over the size limit left out of the snapshot");
            checkpoints::set_metadata(tx, id, &metadata).await?;
        }
        info!(
            project_id = checkpoint.project_id,
            checkpoint_id = id,
            commit = %hex,
            files = stats.files,
            hashed = stats.hashed,
            reused = stats.reused,
            elapsed_ms = started.elapsed().as_millis(),
            "checkpoint snapshot written"
        );
        Ok(Checkpoint { commit_id: Some(hex), metadata, ..checkpoint })
    }

    #[instrument(skip(self, read, spec), fields(name = %spec.name, trigger = %spec.trigger))]
    async fn draft(
        &self,
        read: &mut ReadTx,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        spec: CheckpointSpec,
        will_change: &[String],
    ) -> Result<CheckpointDraft> {
        let started = Instant::now();
        let ReadCheckpoint { state, chunks, revision, place, row: checkpoint, hold } =
            self.read_for(read, project_id, checkpoint_id, spec, will_change).await?;
        debug!(
            checkpoint_id,
            items = state.context_items.len(),
            elapsed_ms = started.elapsed().as_millis(),
            "checkpoint state read"
        );
        Ok(CheckpointDraft { checkpoint, state, chunks, revision, place, hold })
    }

    async fn write_objects(&self, draft: CheckpointDraft) -> Result<WrittenCheckpoint> {
        let started = Instant::now();
        let CheckpointDraft { checkpoint, state, chunks, revision, place, hold } = draft;
        let id = checkpoint.id;
        let message = format!("Checkpoint {id}: {}\n\ntrigger: {}\n", checkpoint.name, checkpoint.trigger);
        let metadata = checkpoint.metadata.clone();
        let unix_seconds = checkpoint.created_at.unix_timestamp();
        let max = self.max_file_size;
        let at = place.clone();
        let (commit, stats, metadata, snapshot_hold) =
            blocking(move || write_snapshot(&at, id, state, &chunks, metadata, message, unix_seconds, max))
                .await?;
        // A first snapshot made the store: its hold is taken from the moment it opened it.
        let hold = hold.or(snapshot_hold);
        if !metadata.skipped_files.is_empty() {
            warn!(checkpoint_id = id, skipped = ?metadata.skipped_files, "files over the size limit left out of the snapshot");
        }
        info!(
            project_id = checkpoint.project_id,
            checkpoint_id = id,
            commit = %commit,
            files = stats.files,
            hashed = stats.hashed,
            reused = stats.reused,
            elapsed_ms = started.elapsed().as_millis(),
            "checkpoint objects written"
        );
        let checkpoint = Checkpoint { commit_id: Some(oid_hex(&commit)), metadata, ..checkpoint };
        Ok(WrittenCheckpoint { checkpoint, commit, revision, place, _hold: hold.map(Arc::new) })
    }

    async fn record(&self, tx: &mut Tx<'_>, written: &WrittenCheckpoint) -> Result<Checkpoint> {
        let c = &written.checkpoint;
        checkpoints::insert(
            tx,
            &NewCheckpoint {
                id: Some(c.id),
                project_id: c.project_id,
                name: c.name.clone(),
                description: c.description.clone(),
                trigger: c.trigger,
                commit_id: c.commit_id.clone(),
                pause_reason: c.pause_reason.clone(),
                metadata: c.metadata.clone(),
                created_at: c.created_at,
            },
        )
        .await?;
        checkpoints::set_revision(tx, c.id, written.revision).await?;
        Ok(checkpoints::get(tx, c.id).await?)
    }

    async fn publish(&self, written: &WrittenCheckpoint) -> Result<()> {
        let (place, id, commit) = (written.place.clone(), written.checkpoint.id, written.commit);
        blocking(move || Store::open_or_init(&place)?.set_ref(id, commit)).await?;
        debug!(checkpoint_id = id, "checkpoint ref written");
        Ok(())
    }

    async fn discard(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<()> {
        let place = self.place(&mut self.db.conn().await?, project_id).await?;
        let removed = blocking(move || match Store::open_existing(&place)? {
            Some(store) => store.delete_ref(checkpoint_id),
            None => Ok(false),
        })
        .await?;
        info!(project_id, checkpoint_id, removed, "checkpoint ref discarded");
        Ok(())
    }

    async fn list(&self, project_id: ProjectId) -> Result<Vec<Checkpoint>> {
        let mut conn = self.db.conn().await?;
        self.place(&mut conn, project_id).await?;
        Ok(checkpoints::list(&mut conn, project_id).await?)
    }

    async fn get(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<Checkpoint> {
        self.row(&mut self.db.conn().await?, project_id, checkpoint_id).await
    }

    async fn delete(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<()> {
        let mut tx = self.db.begin().await?;
        self.delete_row(&mut tx, project_id, checkpoint_id).await?;
        tx.commit().await?;
        self.discard(project_id, checkpoint_id).await?;
        info!(project_id, checkpoint_id, "checkpoint deleted");
        Ok(())
    }

    async fn delete_row(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
    ) -> Result<()> {
        let project =
            projects::find(tx, project_id).await?.ok_or(CheckpointError::UnknownProject(project_id))?;
        self.row(tx, project_id, checkpoint_id).await?;
        if project.status == ProjectStatus::Paused && project.pause_checkpoint_id == Some(checkpoint_id) {
            return Err(CheckpointError::InUse(checkpoint_id));
        }
        checkpoints::delete(tx, checkpoint_id).await?;
        Ok(())
    }

    async fn diff(
        &self,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        unified: bool,
    ) -> Result<FileDiff> {
        let mut conn = self.db.conn().await?;
        let place = self.place(&mut conn, project_id).await?;
        let max = self.max_file_size;
        let cp = self.row(&mut conn, project_id, checkpoint_id).await?;
        drop(conn);
        let commit = parse_oid(checkpoint_id, cp.commit_id.as_deref())?;
        blocking(move || {
            let store = open_store(&place, checkpoint_id)?;
            let files = checkpoint_files(&store, checkpoint_id, commit)?;
            let (current, _) = worktree::snapshot(&store, &place.root, None, max)?;
            diff_of(&store, &place.root, &restore::delta(&files, &current), unified)
        })
        .await
    }

    async fn verify(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<VerifyReport> {
        let mut conn = self.db.conn().await?;
        let place = self.place(&mut conn, project_id).await?;
        let cp = self.row(&mut conn, project_id, checkpoint_id).await?;
        drop(conn);
        let commit_hex = cp.commit_id.clone();
        blocking(move || {
            let mut report = VerifyReport {
                checkpoint_id,
                commit: commit_hex.clone(),
                objects_checked: 0,
                problems: Vec::new(),
            };
            let commit = match parse_oid(checkpoint_id, commit_hex.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    report.problems.push(e.to_string());
                    return Ok(report);
                }
            };
            let Some(store) = Store::open_existing(&place)? else {
                report.problems.push("no snapshot store".into());
                return Ok(report);
            };
            let (checked, problems) = store.check_objects(commit)?;
            report.objects_checked = checked;
            report.problems.extend(problems);
            if report.problems.is_empty() {
                if store.ref_target(checkpoint_id)? != Some(commit) {
                    report.problems.push(format!(
                        "ref {} does not point at {commit}",
                        crate::checkpoint_ref(checkpoint_id)
                    ));
                }
                if let Err(e) = read_state(&store, checkpoint_id, commit) {
                    report.problems.push(e.to_string());
                }
                if let Err(e) = checkpoint_files(&store, checkpoint_id, commit) {
                    report.problems.push(e.to_string());
                }
            }
            Ok(report)
        })
        .await
    }

    async fn restore(
        &self,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
        mode: RestoreMode,
    ) -> Result<RestoreReport> {
        let mut tx = self.db.begin().await?;
        let result = match self.restore_in(&mut tx, project_id, checkpoint_id, what, mode).await {
            Ok(report) => tx.commit().await.map(|()| report).map_err(CheckpointError::from),
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    warn!(project_id, error = %rb, "rollback failed (the transaction is abandoned)");
                }
                Err(e)
            }
        };
        if let Err(e) = self.settle_files(project_id).await {
            warn!(project_id, error = %e, "cannot settle the file restore now; the next restore or open will");
        }
        result
    }

    #[instrument(skip(self, tx))]
    async fn restore_in(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
        mode: RestoreMode,
    ) -> Result<RestoreReport> {
        let started = Instant::now();
        let place = self.place(tx, project_id).await?;
        let max = self.max_file_size;
        let cp = self.row(tx, project_id, checkpoint_id).await?;
        let commit = parse_oid(checkpoint_id, cp.commit_id.as_deref())?;
        // Read and validate everything before changing anything.
        let place2 = place.clone();
        let (diff, snapshot) = blocking(move || {
            let store = open_store(&place2, checkpoint_id)?;
            let files = checkpoint_files(&store, checkpoint_id, commit)?;
            let (current, _) = worktree::snapshot(&store, &place2.root, None, max)?;
            let diff = diff_of(&store, &place2.root, &restore::delta(&files, &current), false)?;
            let snapshot = read_state(&store, checkpoint_id, commit)?;
            Ok((diff, snapshot))
        })
        .await?;
        let mut report = RestoreReport {
            checkpoint_id,
            applied: false,
            diff,
            files_written: 0,
            files_removed: 0,
            items_restored: 0,
            state_restored: false,
            safety_checkpoint_id: None,
            unsaved_changes: Vec::new(),
        };
        if mode == RestoreMode::Preview {
            return Ok(report);
        }
        report.items_restored =
            Self::apply_rows(tx, project_id, checkpoint_id, snapshot, what, self.clock.now()).await?;
        report.state_restored = what.state;
        if what.files {
            match self.swap_files_in(tx, project_id, checkpoint_id, commit, place).await {
                Ok(a) => (report.files_written, report.files_removed) = (a.written, a.removed),
                Err(e) => {
                    warn!(project_id, checkpoint_id, error = %e, "file restore failed; rows to be rolled back");
                    return Err(e);
                }
            }
        }
        report.applied = true;
        info!(
            project_id,
            checkpoint_id,
            files_written = report.files_written,
            files_removed = report.files_removed,
            items_restored = report.items_restored,
            elapsed_ms = started.elapsed().as_millis(),
            "checkpoint restored"
        );
        Ok(report)
    }

    async fn restore_rows(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
    ) -> Result<usize> {
        let place = self.place(tx, project_id).await?;
        let cp = self.row(tx, project_id, checkpoint_id).await?;
        let commit = parse_oid(checkpoint_id, cp.commit_id.as_deref())?;
        let context_only = RestoreWhat { files: false, state: false, context: true, keep_new_items: true };
        if what == context_only
            && let Some(n) = self.restore_written_since(tx, project_id, &cp, commit, &place).await?
        {
            return Ok(n);
        }
        let snapshot = blocking(move || {
            let store = open_store(&place, checkpoint_id)?;
            read_state(&store, checkpoint_id, commit)
        })
        .await?;
        Self::apply_rows(tx, project_id, checkpoint_id, snapshot, what, self.clock.now()).await
    }

    async fn restore_files(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
    ) -> Result<FilesRestored> {
        let place = self.place(tx, project_id).await?;
        let cp = self.row(tx, project_id, checkpoint_id).await?;
        let commit = parse_oid(checkpoint_id, cp.commit_id.as_deref())?;
        let restored = self.swap_files_in(tx, project_id, checkpoint_id, commit, place).await?;
        info!(
            project_id,
            checkpoint_id,
            written = restored.written,
            removed = restored.removed,
            "files restored"
        );
        Ok(restored)
    }

    #[instrument(skip(self))]
    async fn collect_garbage(&self, project_id: ProjectId, min_packs: usize) -> Result<Option<GcReport>> {
        let place = self.place(&mut self.db.conn().await?, project_id).await?;
        let durable = self.durable();
        blocking(move || {
            if !place.store.join("HEAD").is_file() {
                return Ok(None); // no store: nothing to collect
            }
            gc::collect(&place.store, durable, min_packs, project_id)
        })
        .await
    }

    async fn settle_files(&self, project_id: ProjectId) -> Result<Option<FilesSettled>> {
        let Some(pending) = self.pending().remove(&project_id) else { return Ok(None) };
        let mut conn = self.db.conn().await?;
        let (_, settled) = self.settle(&mut conn, pending.lock, pending.journal, pending.root).await?;
        debug!(project_id, committed = settled.committed, files = settled.files, "file restore settled");
        Ok(Some(settled))
    }

    #[instrument(skip(self))]
    async fn reconcile(&self, project_id: ProjectId) -> Result<ReconcileReport> {
        // A write transaction waits for any checkpoint being created (which holds the write
        // lock until it commits), so an in-flight checkpoint's ref is never taken for an orphan.
        let mut tx = self.db.begin().await?;
        let place = self.place(&mut tx, project_id).await?;
        let rows = checkpoints::list(&mut tx, project_id).await?;
        let refs = {
            let place = place.clone();
            blocking(move || match Store::open_existing(&place)? {
                Some(store) => store.list_refs(),
                None => Ok(Vec::new()),
            })
            .await?
        };
        let mut report = ReconcileReport::default();
        if place.root.is_dir() {
            report.interrupted_restore = self.restore_lock(&mut tx, project_id, &place, false).await?.1;
        }
        let known: std::collections::HashMap<CheckpointId, Option<String>> =
            rows.iter().map(|c| (c.id, c.commit_id.clone())).collect();
        for (id, _) in &refs {
            if !known.contains_key(id) {
                report.removed_refs.push(*id);
            }
        }
        let removed = report.removed_refs.clone();
        let rows_to_check: Vec<(CheckpointId, Option<String>)> =
            rows.iter().map(|c| (c.id, c.commit_id.clone())).collect();
        report.missing_commits = blocking(move || {
            let store = Store::open_existing(&place)?;
            let mut missing = Vec::new();
            for (id, hex) in rows_to_check {
                let present = match (&store, hex.as_deref().map(|h| ObjectId::from_hex(h.as_bytes()))) {
                    (Some(s), Some(Ok(oid))) => s.has_object(&oid),
                    _ => false,
                };
                if !present {
                    missing.push(id);
                }
            }
            if let Some(s) = &store {
                for id in &removed {
                    s.delete_ref(*id)?;
                }
            }
            Ok(missing)
        })
        .await?;
        tx.commit().await?;
        if !report.removed_refs.is_empty() || !report.missing_commits.is_empty() {
            warn!(project_id, removed_refs = ?report.removed_refs, missing_commits = ?report.missing_commits, "checkpoint store reconciled");
        } else {
            debug!(project_id, "checkpoint store consistent");
        }
        Ok(report)
    }
}
