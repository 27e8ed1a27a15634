//! The [`CheckpointManager`] trait: everything a service needs of checkpoints.

use async_trait::async_trait;
use codeframe_models::{Checkpoint, CheckpointId, ProjectId};
use codeframe_persistence::{ReadTx, Tx};

use crate::Result;
use crate::gc::GcReport;

use crate::types::*;

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
    /// when it has fewer). Never waits: [`CheckpointError::StoreBusy`](crate::CheckpointError::StoreBusy) while a checkpoint of
    /// the project is being written or read (it never removes an object one of them needs).
    /// Refs without a checkpoint row keep their objects: reconcile first.
    async fn collect_garbage(&self, project_id: ProjectId, min_packs: usize) -> Result<Option<GcReport>>;

    /// Removes refs that have no checkpoint row; reports rows whose commit is missing; settles
    /// a file restore that a process left unsettled when it died.
    async fn reconcile(&self, project_id: ProjectId) -> Result<ReconcileReport>;
}
