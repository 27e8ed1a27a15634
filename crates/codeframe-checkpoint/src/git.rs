//! [`GitCheckpointManager`]: the [`CheckpointManager`] over a private gix store per project.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use codeframe_models::{
    Checkpoint, CheckpointId, CheckpointMetadata, Clock, ContextItem, ProjectId, ProjectStatus, SystemClock,
    validate,
};
use codeframe_persistence::checkpoints::NewCheckpoint;
use codeframe_persistence::{
    Db, Executor, ReadTx, Tx, agents, checkpoints, context, file_restores, projects, revisions, tasks,
    token_usage,
};
use gix::ObjectId;
use tracing::{debug, info, instrument, warn};

use crate::fs::Root;
use crate::gc::{self, GcReport, StoreUse};
use crate::journal::{self, Journal, RestoreLock};
use crate::layout::{self, Chunk};
use crate::restore::{self};
use crate::state::ProjectState;
use crate::store::{Place, Store};
use crate::{CheckpointError, Result, worktree};

use crate::manager::CheckpointManager;
use crate::snapshot::*;
use crate::types::*;

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

    pub(crate) fn durable(&self) -> bool {
        self.durability == Durability::Full
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<ProjectId, PendingFiles>> {
        // A panic while holding it cannot leave the map half-changed (one insert or remove).
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Completes (if its token is recorded, as seen through `ex`) or undoes a swapped-in file
    /// restore, then forgets it.
    pub(crate) async fn settle(
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
    pub(crate) async fn restore_lock(
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
                        debug!(project_id = %project_id, "a file restore is in progress in another process; left alone");
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
            project_id = %project_id,
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
    pub(crate) async fn swap_files_in(
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

    pub(crate) async fn place(&self, ex: &mut impl Executor, project_id: ProjectId) -> Result<Place> {
        let p = projects::find(ex, project_id).await?.ok_or(CheckpointError::UnknownProject(project_id))?;
        Ok(Place::new(p.root_path, p.store_path.as_deref()).with_durable(self.durable()))
    }

    pub(crate) async fn row(
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
    pub(crate) async fn read_for(
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
    pub(crate) async fn read_context(
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
            project_id = %project_id,
            base_revision,
            chunks = base.len(),
            rewritten = dirty.len(),
            items_read = items.len(),
            "context snapshot over the previous checkpoint"
        );
        Ok((items, chunks))
    }

    /// The newest checkpoint an incremental snapshot can build on: its revision and chunks.
    pub(crate) async fn base(
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
                project_id = %project_id,
                checkpoint_id = %id,
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
                warn!(project_id = %project_id, checkpoint_id = %id, error = %e, "previous checkpoint unusable as a base; full context snapshot");
                Ok(None)
            }
        }
    }

    pub(crate) async fn metadata(
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
            checkpoint_id = %checkpoint.id,
            items = state.context_items.len(),
            "checkpoint row written"
        );
        Ok(PreparedCheckpoint { checkpoint, state, chunks, place, hold })
    }

    #[instrument(skip_all, fields(checkpoint_id = %prepared.checkpoint.id))]
    async fn write(&self, tx: &mut Tx<'_>, prepared: PreparedCheckpoint) -> Result<Checkpoint> {
        let PreparedCheckpoint { checkpoint, state, chunks, place, hold: _hold } = prepared;
        let id = checkpoint.id;
        let message = commit_message(&checkpoint);
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
            warn!(checkpoint_id = %id, skipped = ?metadata.skipped_files, "files over the size limit left out of the snapshot");
            checkpoints::set_metadata(tx, id, &metadata).await?;
        }
        info!(
            project_id = %checkpoint.project_id,
            checkpoint_id = %id,
            commit = %hex,
            files = stats.files,
            hashed = stats.hashed,
            reused = stats.reused,
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
        let ReadCheckpoint { state, chunks, revision, place, row: checkpoint, hold } =
            self.read_for(read, project_id, checkpoint_id, spec, will_change).await?;
        debug!(
            checkpoint_id = %checkpoint_id,
            items = state.context_items.len(),
            "checkpoint state read"
        );
        Ok(CheckpointDraft { checkpoint, state, chunks, revision, place, hold })
    }

    #[instrument(skip_all, fields(checkpoint_id = %draft.checkpoint.id))]
    async fn write_objects(&self, draft: CheckpointDraft) -> Result<WrittenCheckpoint> {
        let CheckpointDraft { checkpoint, state, chunks, revision, place, hold } = draft;
        let id = checkpoint.id;
        let message = commit_message(&checkpoint);
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
            warn!(checkpoint_id = %id, skipped = ?metadata.skipped_files, "files over the size limit left out of the snapshot");
        }
        info!(
            project_id = %checkpoint.project_id,
            checkpoint_id = %id,
            commit = %commit,
            files = stats.files,
            hashed = stats.hashed,
            reused = stats.reused,
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
        debug!(checkpoint_id = %id, "checkpoint ref written");
        Ok(())
    }

    async fn discard(&self, project_id: ProjectId, checkpoint_id: CheckpointId) -> Result<()> {
        let place = self.place(&mut self.db.conn().await?, project_id).await?;
        let removed = blocking(move || match Store::open_existing(&place)? {
            Some(store) => store.delete_ref(checkpoint_id),
            None => Ok(false),
        })
        .await?;
        info!(project_id = %project_id, checkpoint_id = %checkpoint_id, removed, "checkpoint ref discarded");
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
        info!(project_id = %project_id, checkpoint_id = %checkpoint_id, "checkpoint deleted");
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
                    warn!(project_id = %project_id, error = %rb, "rollback failed (the transaction is abandoned)");
                }
                Err(e)
            }
        };
        if let Err(e) = self.settle_files(project_id).await {
            warn!(project_id = %project_id, error = %e, "cannot settle the file restore now; the next restore or open will");
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
                    warn!(project_id = %project_id, checkpoint_id = %checkpoint_id, error = %e, "file restore failed; rows to be rolled back");
                    return Err(e);
                }
            }
        }
        report.applied = true;
        info!(
            project_id = %project_id,
            checkpoint_id = %checkpoint_id,
            files_written = report.files_written,
            files_removed = report.files_removed,
            items_restored = report.items_restored,
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
            project_id = %project_id,
            checkpoint_id = %checkpoint_id,
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
        debug!(project_id = %project_id, committed = settled.committed, files = settled.files, "file restore settled");
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
            warn!(project_id = %project_id, removed_refs = ?report.removed_refs, missing_commits = ?report.missing_commits, "checkpoint store reconciled");
        } else {
            debug!(project_id = %project_id, "checkpoint store consistent");
        }
        Ok(report)
    }
}

/// The snapshot commit's message. A commit cannot hold NUL, and control characters only garble
/// `git log`: the name (a user's, or a pause reason) is kept as given in the database and
/// shown here with each control character (but the line breaks) as U+FFFD.
fn commit_message(checkpoint: &Checkpoint) -> String {
    let name: String =
        checkpoint.name.chars().map(|c| if c.is_control() && c != '\n' { '\u{fffd}' } else { c }).collect();
    format!("Checkpoint {}: {name}\n\ntrigger: {}\n", checkpoint.id, checkpoint.trigger)
}
