//! Checkpoints through the service: manual checkpoints, restores and deletions, each with its
//! event in the same transaction, and the read-only operations callers above core need.

use codeframe_checkpoint::{CheckpointSpec, FileDiff, RestoreMode, RestoreReport, RestoreWhat, VerifyReport};
use codeframe_models::{Checkpoint, CheckpointId, CheckpointTrigger, EventKind, ProjectId, ProjectStatus};
use codeframe_persistence::{checkpoints, permits, projects};
use tracing::{error, info, warn};

use crate::event_log::Outbox;
use crate::failpoints::failpoint;
use crate::gate::lease_now;
use crate::{ConflictKind, CoreError, ProjectService, Result};

impl ProjectService {
    /// Makes a manual checkpoint of the project in a transaction of its own. Runs to
    /// completion (or rolls back) even if the caller stops waiting.
    pub async fn create_checkpoint(
        &self,
        id: ProjectId,
        name: &str,
        description: &str,
    ) -> Result<Checkpoint> {
        let spec = CheckpointSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            trigger: CheckpointTrigger::Manual,
            pause_reason: None,
        };
        let service = self.clone();
        self.detached("create checkpoint", async move { service.run_create_checkpoint(id, spec).await }).await
    }

    async fn run_create_checkpoint(&self, id: ProjectId, spec: CheckpointSpec) -> Result<Checkpoint> {
        self.get(id).await?;
        let checkpoint_id = self.inner.checkpoints.reserve_id().await?;
        let mut tx = self.inner.db.begin().await?;
        let mut outbox = Outbox::default();
        let created: Result<Checkpoint> = async {
            let cp = self.inner.checkpoints.create(&mut tx, id, checkpoint_id, spec).await?;
            let kind = EventKind::CheckpointCreated {
                checkpoint_id: cp.id,
                checkpoint_name: cp.name.clone(),
                trigger: cp.trigger.as_str().to_owned(),
            };
            outbox.record(&mut tx, id, kind, self.now()).await?;
            Ok(cp)
        }
        .await;
        let committed = match created {
            Ok(cp) => tx.commit().await.map(|()| cp).map_err(CoreError::from),
            Err(e) => {
                drop(tx);
                Err(e)
            }
        };
        match committed {
            Ok(cp) => {
                self.deliver(outbox).await;
                self.prune_after_checkpoint(id).await;
                Ok(cp)
            }
            Err(e) => {
                if let Err(d) = self.inner.checkpoints.discard(id, checkpoint_id).await {
                    error!(project_id = %id, checkpoint_id = %checkpoint_id, error = %d, "could not discard the checkpoint ref");
                }
                Err(e)
            }
        }
    }

    /// Restores parts of a checkpoint, or previews the restore. Applying is refused while the
    /// project is paused or being paused (resume restores from the pause checkpoint); that is
    /// decided inside the restore's transaction, so a pause committed a moment earlier by
    /// another process is seen. Runs to completion (or rolls back) even if the caller stops
    /// waiting.
    pub async fn restore_checkpoint(
        &self,
        id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
        mode: RestoreMode,
    ) -> Result<RestoreReport> {
        self.restore_checkpoint_with(id, checkpoint_id, what, mode, false).await
    }

    /// [`ProjectService::restore_checkpoint`]; a restore of files that would overwrite files
    /// changed since the project's latest checkpoint is refused
    /// ([`ConflictKind::UnsavedChanges`], listing them) unless `force`. A preview lists them in
    /// `unsaved_changes`.
    pub async fn restore_checkpoint_with(
        &self,
        id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
        mode: RestoreMode,
        force: bool,
    ) -> Result<RestoreReport> {
        self.get(id).await?;
        let unsaved = if what.files { self.unsaved_changes(id, checkpoint_id).await? } else { Vec::new() };
        if mode == RestoreMode::Preview {
            let mut report = self.inner.checkpoints.restore(id, checkpoint_id, what, mode).await?;
            report.unsaved_changes = unsaved;
            return Ok(report);
        }
        if !force && !unsaved.is_empty() {
            return Err(CoreError::Conflict(ConflictKind::UnsavedChanges { paths: unsaved }));
        }
        let service = self.clone();
        let mut report = self
            .detached("restore checkpoint", async move { service.run_restore(id, checkpoint_id, what).await })
            .await?;
        report.unsaved_changes = unsaved;
        Ok(report)
    }

    /// Files a restore of `checkpoint_id` would change that differ from the project's latest
    /// checkpoint (edited since, and not saved anywhere else), sorted.
    async fn unsaved_changes(&self, id: ProjectId, checkpoint_id: CheckpointId) -> Result<Vec<String>> {
        let cps = &self.inner.checkpoints;
        let Some(latest) = cps.list(id).await?.into_iter().next() else { return Ok(Vec::new()) };
        let changed: std::collections::BTreeSet<String> =
            cps.diff(id, latest.id, false).await?.paths().into_iter().collect();
        if changed.is_empty() {
            return Ok(Vec::new());
        }
        let touched = cps.diff(id, checkpoint_id, false).await?.paths();
        Ok(touched.into_iter().filter(|p| changed.contains(p)).collect())
    }

    async fn run_restore(
        &self,
        id: ProjectId,
        checkpoint_id: CheckpointId,
        what: RestoreWhat,
    ) -> Result<RestoreReport> {
        // Reserved before the write transaction (the reservation commits on its own).
        let safety_id = self.inner.checkpoints.reserve_id().await?;
        let mut tx = self.inner.db.begin().await?;
        let mut outbox = Outbox::default();
        let result: Result<RestoreReport> = async {
            let before =
                projects::find(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
            if before.status == ProjectStatus::Paused {
                return Err(CoreError::Conflict(ConflictKind::InvalidTransition {
                    from: ProjectStatus::Paused,
                    action: "restore a checkpoint into",
                }));
            }
            let gate = permits::gate(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
            if gate.pausing_at(lease_now()) && !self.clear_dead_pause(&mut tx, &mut outbox, id, &gate).await?
            {
                return Err(CoreError::Pausing(id));
            }
            // The checkpoint asked for must exist before the safety checkpoint is made, or the
            // safety checkpoint could take its id and be "restored" in its place.
            match checkpoints::find(&mut tx, checkpoint_id).await? {
                Some(c) if c.project_id == id => {}
                _ => return Err(crate::CheckpointError::NotFound(checkpoint_id).into()),
            }
            // Everything as it is now, first: what `undo_restore` brings back.
            let spec = CheckpointSpec {
                name: format!("Before restoring checkpoint {checkpoint_id}"),
                description: String::new(),
                trigger: CheckpointTrigger::BeforeRestore,
                pause_reason: None,
            };
            let safety = self.inner.checkpoints.create(&mut tx, id, safety_id, spec).await?;
            let now = self.now();
            outbox
                .record(
                    &mut tx,
                    id,
                    EventKind::CheckpointCreated {
                        checkpoint_id: safety.id,
                        checkpoint_name: safety.name.clone(),
                        trigger: safety.trigger.as_str().to_owned(),
                    },
                    now,
                )
                .await?;
            let mut report = self
                .inner
                .checkpoints
                .restore_in(&mut tx, id, checkpoint_id, what, RestoreMode::Apply)
                .await?;
            report.safety_checkpoint_id = Some(safety.id);
            let files_changed =
                i64::try_from(report.files_written + report.files_removed).unwrap_or(i64::MAX);
            outbox
                .record(&mut tx, id, EventKind::CheckpointRestored { checkpoint_id, files_changed }, now)
                .await?;
            let after = projects::get(&mut tx, id).await?;
            if after.status != before.status {
                outbox
                    .record(
                        &mut tx,
                        id,
                        EventKind::StatusChanged { from: before.status, to: after.status },
                        now,
                    )
                    .await?;
            }
            Ok(report)
        }
        .await;
        let result = match result {
            Ok(report) => tx.commit().await.map(|()| report).map_err(CoreError::from),
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    error!(project_id = %id, error = %rb, "rollback failed (the transaction is abandoned)");
                }
                Err(e)
            }
        };
        if result.is_ok() {
            failpoint!("restore::after_commit");
        }
        // Restored files are kept if the transaction committed, put back if not.
        self.settle_files(id).await;
        match result {
            Ok(report) => {
                info!(project_id = %id, checkpoint_id = %checkpoint_id, "checkpoint restored");
                self.deliver(outbox).await;
                self.prune_after_checkpoint(id).await;
                Ok(report)
            }
            Err(e) => {
                // The safety checkpoint's ref, if it was written, names a row that never was.
                if let Err(d) = self.inner.checkpoints.discard(id, safety_id).await {
                    warn!(project_id = %id, checkpoint_id = %safety_id, error = %d, "cannot remove the ref of a rolled-back checkpoint; opening the project will");
                }
                Err(e)
            }
        }
    }

    /// Settles a file restore of the project once its transaction is decided (see
    /// [`codeframe_checkpoint::CheckpointManager::settle_files`]). A failure is logged: the
    /// journal stays on disk and the next restore or open of the project settles it.
    pub(crate) async fn settle_files(&self, id: ProjectId) {
        match self.inner.checkpoints.settle_files(id).await {
            Ok(Some(settled)) => {
                info!(
                    project_id = %id,
                    committed = settled.committed,
                    files = settled.files,
                    "file restore settled"
                )
            }
            Ok(None) => {}
            Err(e) => {
                error!(project_id = %id, error = %e, "cannot settle the file restore now; the next restore or open of the project will")
            }
        }
    }

    /// Takes the last restore back: restores (files, rows and context) the checkpoint that
    /// restore made of everything just before it changed anything. Undoing is itself a
    /// restore, so it can be undone in turn. [`CoreError::NotFound`] when no restore was made.
    pub async fn undo_restore(&self, id: ProjectId) -> Result<RestoreReport> {
        let last = self
            .inner
            .checkpoints
            .list(id)
            .await?
            .into_iter()
            .find(|c| c.trigger == CheckpointTrigger::BeforeRestore)
            .ok_or_else(|| CoreError::NotFound { entity: "restore to undo", id: format!("project {id}") })?;
        info!(project_id = %id, checkpoint_id = %last.id, "undoing the last restore");
        let all = RestoreWhat { files: true, state: true, context: true, keep_new_items: false };
        // Forced: what it overwrites was checkpointed by the restore it undoes, or is
        // checkpointed now by this one.
        self.restore_checkpoint_with(id, last.id, all, RestoreMode::Apply, true).await
    }

    /// Deletes a checkpoint (its row, then its ref). The pause checkpoint of a paused project
    /// cannot be deleted.
    pub async fn delete_checkpoint(&self, id: ProjectId, checkpoint_id: CheckpointId) -> Result<()> {
        let service = self.clone();
        self.detached("delete checkpoint", async move {
            let mut tx = service.inner.db.begin().await?;
            service.inner.checkpoints.delete_row(&mut tx, id, checkpoint_id).await?;
            let mut outbox = Outbox::default();
            outbox.record(&mut tx, id, EventKind::CheckpointDeleted { checkpoint_id }, service.now()).await?;
            tx.commit().await?;
            // After the commit; a crash before this leaves an orphan ref that opening the
            // project removes.
            service.inner.checkpoints.discard(id, checkpoint_id).await?;
            info!(project_id = %id, checkpoint_id = %checkpoint_id, "checkpoint deleted");
            service.deliver(outbox).await;
            Ok(())
        })
        .await
    }

    /// The project's checkpoints, newest first.
    pub async fn list_checkpoints(&self, id: ProjectId) -> Result<Vec<Checkpoint>> {
        Ok(self.inner.checkpoints.list(id).await?)
    }

    /// One checkpoint of the project.
    pub async fn checkpoint(&self, id: ProjectId, checkpoint_id: CheckpointId) -> Result<Checkpoint> {
        Ok(self.inner.checkpoints.get(id, checkpoint_id).await?)
    }

    /// Files changed in the working tree since a checkpoint (with unified diffs on request).
    pub async fn diff_checkpoint(
        &self,
        id: ProjectId,
        checkpoint_id: CheckpointId,
        unified: bool,
    ) -> Result<FileDiff> {
        Ok(self.inner.checkpoints.diff(id, checkpoint_id, unified).await?)
    }

    /// Checks that a checkpoint's commit and every object it needs are present and readable.
    pub async fn verify_checkpoint(
        &self,
        id: ProjectId,
        checkpoint_id: CheckpointId,
    ) -> Result<VerifyReport> {
        Ok(self.inner.checkpoints.verify(id, checkpoint_id).await?)
    }
}
