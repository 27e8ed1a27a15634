//! Writing a snapshot's objects, reading its state and files back (checked), diffing it
//! with the working tree, restoring its files.

use codeframe_models::{Checkpoint, CheckpointId, CheckpointMetadata, ContextItem, ProjectId};
use gix::ObjectId;
use gix::objs::tree::EntryKind;
use tracing::debug;

use crate::gc::StoreUse;
use crate::journal::{Journal, RestoreLock};
use crate::layout::{self, Chunk};
use crate::restore::{self, Delta};
use crate::state::{self, ProjectState};
use crate::store::{FileEntry, Place, Store};
use crate::{CheckpointError, Result, paths, worktree};

use crate::types::*;

pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| CheckpointError::Worker(e.to_string()))?
}

pub(crate) fn oid_hex(oid: &ObjectId) -> String {
    oid.to_hex().to_string()
}

pub(crate) fn parse_oid(id: CheckpointId, hex: Option<&str>) -> Result<ObjectId> {
    let hex =
        hex.ok_or_else(|| CheckpointError::Unreadable { id, reason: "no snapshot commit recorded".into() })?;
    ObjectId::from_hex(hex.as_bytes())
        .map_err(|e| CheckpointError::Unreadable { id, reason: format!("bad commit id {hex:?}: {e}") })
}

/// What [`GitCheckpointManager::read_for`] read.
pub(crate) struct ReadCheckpoint {
    pub(crate) state: ProjectState,
    pub(crate) chunks: Vec<Chunk>,
    pub(crate) revision: i64,
    pub(crate) place: Place,
    pub(crate) row: Checkpoint,
    pub(crate) hold: Option<StoreUse>,
}

/// Largest file read whole for a unified diff.
pub(crate) const UNIFIED_DIFF_MAX: u64 = 8 << 20;

/// Writes the objects of a checkpoint's snapshot: files, state, meta; commit. No ref.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_snapshot(
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
    debug!(checkpoint_id = %id, commit = %commit, "snapshot objects written");
    Ok((commit, stats, metadata, store.into_hold()))
}

/// Reads the state stored in a checkpoint commit; a missing object makes it unreadable.
pub(crate) fn read_state(store: &Store, id: CheckpointId, commit: ObjectId) -> Result<ProjectState> {
    read_state_inner(store, id, commit).map_err(|e| unreadable_if_missing(id, e))
}

/// A store error met while reading a checkpoint's snapshot means the checkpoint is unreadable.
pub(crate) fn unreadable_if_missing(id: CheckpointId, e: CheckpointError) -> CheckpointError {
    match e {
        CheckpointError::Store { message, .. } => CheckpointError::Unreadable { id, reason: message },
        other => other,
    }
}

pub(crate) fn read_state_inner(store: &Store, id: CheckpointId, commit: ObjectId) -> Result<ProjectState> {
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
pub(crate) fn read_state_rows(store: &Store, id: CheckpointId, commit: ObjectId) -> Result<ProjectState> {
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
pub(crate) fn snapshot_belongs_to(
    s: &ProjectState,
    project_id: ProjectId,
) -> std::result::Result<(), String> {
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
pub(crate) fn checkpoint_files(store: &Store, id: CheckpointId, commit: ObjectId) -> Result<Vec<FileEntry>> {
    let tree = store.commit_tree(commit)?;
    // A snapshot of an empty working tree has no `files/` (a git tree holds no empty
    // directory): it restores to no file at all. Its `meta.json` says it is ours.
    match store.child(tree, "files")? {
        Some(files) => paths::files_of(store, files.oid),
        None if store.child(tree, "meta.json")?.is_some() => Ok(Vec::new()),
        None => {
            Err(CheckpointError::Unreadable { id, reason: "no files/ nor meta.json in the snapshot".into() })
        }
    }
}

pub(crate) fn diff_of(
    store: &Store,
    root: &std::path::Path,
    d: &Delta<'_>,
    unified: bool,
) -> Result<crate::FileDiff> {
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
pub(crate) fn open_store(place: &Place, id: CheckpointId) -> Result<Store> {
    Store::open_existing(place)?
        .ok_or_else(|| CheckpointError::Unreadable { id, reason: "no snapshot store".into() })
}

/// Validates, then makes the working tree's files equal to the checkpoint's, all or nothing,
/// holding the project's restore lock. Returns the lock with the journal of the swap.
pub(crate) fn restore_files_blocking(
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
