//! Resume: back to the status before the pause, context restored from the checkpoint.

use codeframe_checkpoint::RestoreWhat;
use codeframe_models::{CheckpointId, EventKind, ProjectId, ProjectStatus, ResumeOptions, ResumeOutcome};
use codeframe_persistence::{projects, revisions};
use tracing::{debug, error, info, instrument, warn};

use crate::event_log::Outbox;
use crate::failpoints::failpoint;
use crate::{ConflictKind, CoreError, ProjectService, Result};

impl ProjectService {
    /// Resumes a paused project: restores its context from the pause checkpoint (or the one
    /// named) — items made during the pause are kept — and returns it to the status it had
    /// before the pause. When nothing of the project's rows changed since the pause committed
    /// (its revision is the one the pause recorded), the rows already are the checkpoint's and
    /// none of its state is read back. Files are restored only with `restore_files`; otherwise the result
    /// lists the files that changed since the checkpoint, which are kept. A missing or
    /// corrupt checkpoint is an error and changes nothing. The gate opens for every process.
    ///
    /// Like a pause, it runs on a task of its own and completes or rolls back even if the
    /// caller stops waiting.
    pub async fn resume(&self, id: ProjectId, options: ResumeOptions) -> Result<ResumeOutcome> {
        let service = self.clone();
        self.detached("resume", async move { service.run_resume(id, options).await }).await
    }

    // The span's close (with `CODEFRAME_LOG=codeframe_core=info`) says how long it took.
    #[instrument(name = "resume", skip_all, fields(project_id = %id))]
    async fn run_resume(&self, id: ProjectId, options: ResumeOptions) -> Result<ResumeOutcome> {
        info!(project_id = %id, checkpoint_id = ?options.checkpoint_id, restore_files = options.restore_files, "resume requested");
        let project = self.get(id).await?;
        if project.status != ProjectStatus::Paused {
            return Err(CoreError::Conflict(ConflictKind::NotPaused { status: project.status }));
        }
        let mut warnings: Vec<String> = Vec::new();
        let checkpoint_id = match options.checkpoint_id.or(project.pause_checkpoint_id) {
            Some(c) => c,
            None if options.force => {
                warnings.push("the project has no pause checkpoint: nothing was restored".into());
                CheckpointId(0)
            }
            None => return Err(CoreError::NoCheckpoint(id)),
        };
        let checkpoints = &self.inner.checkpoints;
        // No separate verify pass: everything the resume reads is checked as it is read, and
        // a missing or corrupt checkpoint fails the transaction before anything is committed.
        // The diff is information for the caller, so it is taken before the write lock.
        let mut files_changed = if options.restore_files || checkpoint_id == CheckpointId(0) {
            Vec::new()
        } else {
            match checkpoints.diff(id, checkpoint_id, false).await {
                Ok(diff) => diff.paths(),
                Err(e) if options.force => {
                    warnings.push(format!("files changed during the pause are unknown: {e}"));
                    Vec::new()
                }
                Err(e) => return Err(e.into()),
            }
        };
        debug!(project_id = %id, checkpoint_id = %checkpoint_id, "resume validated");

        let now = self.now();
        let mut tx = self.inner.db.begin().await?;
        let mut outbox = Outbox::default();
        let result: Result<(ProjectStatus, usize, bool)> = async {
            // Decided under the write lock: still paused, by the same pause.
            let current = projects::get(&mut tx, id).await?;
            if current.status != ProjectStatus::Paused {
                return Err(CoreError::Conflict(ConflictKind::NotPaused { status: current.status }));
            }
            if current.pause_checkpoint_id != project.pause_checkpoint_id {
                return Err(CoreError::Conflict(ConflictKind::Concurrent));
            }
            // Nothing changed since the pause committed: the rows are exactly the pause
            // checkpoint's, and there is nothing to read back.
            let from_pause = current.pause_checkpoint_id == Some(checkpoint_id);
            let items = if checkpoint_id == CheckpointId(0) {
                0
            } else if from_pause && revisions::unchanged_since_pause(&mut tx, id).await? {
                let cp = checkpoints.get(id, checkpoint_id).await?;
                debug!(
                    project_id = %id,
                    checkpoint_id = %checkpoint_id, "nothing changed during the pause; context left as it is"
                );
                usize::try_from(cp.metadata.context_items_count).unwrap_or(0)
            } else {
                let what = RestoreWhat { files: false, state: false, context: true, keep_new_items: true };
                if options.force {
                    // In a savepoint: a checkpoint that fails half-way leaves no half restore.
                    let mut sp = tx.savepoint().await?;
                    match checkpoints.restore_rows(&mut sp, id, checkpoint_id, what).await {
                        Ok(n) => {
                            sp.commit().await?;
                            n
                        }
                        Err(e) => {
                            sp.rollback().await?;
                            warn!(project_id = %id, checkpoint_id = %checkpoint_id, error = %e, "forced resume: context left as it is");
                            warnings.push(format!("context not restored (left as it is in the database): {e}"));
                            0
                        }
                    }
                } else {
                    checkpoints.restore_rows(&mut tx, id, checkpoint_id, what).await?
                }
            };
            revisions::clear_paused(&mut tx, id).await?;
            let mut resumed = current;
            let status = resumed.status_before_pause.unwrap_or(ProjectStatus::Active);
            resumed.status = status;
            resumed.paused_at = None;
            resumed.pause_reason = None;
            resumed.pause_checkpoint_id = None;
            resumed.status_before_pause = None;
            projects::update(&mut tx, &resumed, now).await?;
            let mut files_restored = options.restore_files && checkpoint_id != CheckpointId(0);
            if files_restored {
                match checkpoints.restore_files(&mut tx, id, checkpoint_id).await {
                    Ok(restored) => files_changed = restored.diff.paths(),
                    Err(e) if options.force => {
                        files_restored = false;
                        warnings.push(format!("files not restored: {e}"));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let files_count = i64::try_from(files_changed.len()).unwrap_or(i64::MAX);
            let events = [
                EventKind::CheckpointRestored {
                    checkpoint_id,
                    files_changed: if files_restored { files_count } else { 0 },
                },
                EventKind::StatusChanged { from: ProjectStatus::Paused, to: status },
                EventKind::ProjectResumed { checkpoint_id, status },
            ];
            for kind in events {
                outbox.record(&mut tx, id, kind, now).await?;
            }
            failpoint!("resume::before_commit");
            Ok((status, items, files_restored))
        }
        .await;
        let decided = match result {
            Ok(r) => tx.commit().await.map(|()| r).map_err(CoreError::from),
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    error!(project_id = %id, error = %rb, "rollback failed (the transaction is abandoned)");
                }
                Err(e)
            }
        };
        if decided.is_ok() {
            failpoint!("resume::after_commit");
        }
        // Restored files are kept if the transaction committed, put back if not.
        self.settle_files(id).await;
        let (status, items, files_restored) = match decided {
            Ok(r) => r,
            Err(e) => {
                error!(project_id = %id, error = %e, "resume failed; rolled back");
                return Err(e);
            }
        };
        self.inner.gates.local(id).set_closing(false);
        let paused_for_seconds = project.paused_at.map_or(0, |t| (now - t).whole_seconds().max(0));
        let outcome = ResumeOutcome {
            success: true,
            checkpoint_id,
            status,
            items_restored: i64::try_from(items).unwrap_or(i64::MAX),
            files_changed,
            files_restored,
            resumed_at: now,
            paused_for_seconds,
            warnings,
        };
        info!(
            project_id = %id,
            checkpoint_id = %checkpoint_id,
            status = %status,
            items_restored = outcome.items_restored,
            files_changed = outcome.files_changed.len(),
            "project resumed"
        );
        self.deliver(outbox).await;
        Ok(outcome)
    }
}
