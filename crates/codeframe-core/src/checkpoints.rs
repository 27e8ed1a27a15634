//! Checkpoint and context operations that publish events.

use codeframe_checkpoint::{CheckpointSpec, RestoreMode, RestoreReport, RestoreWhat};
use codeframe_models::{Checkpoint, CheckpointTrigger, EventKind, FlashSaveReport, ProjectId, ProjectStatus};
use tracing::error;

use crate::{ConflictKind, CoreError, ProjectService, Result};

impl ProjectService {
    /// Makes a manual checkpoint of the project in a transaction of its own.
    pub async fn create_checkpoint(
        &self,
        id: ProjectId,
        name: &str,
        description: &str,
    ) -> Result<Checkpoint> {
        let lock = self.transition_lock(id);
        let _guard = lock.lock().await;
        self.get(id).await?;
        let spec = CheckpointSpec {
            name: name.to_owned(),
            description: description.to_owned(),
            trigger: CheckpointTrigger::Manual,
            pause_reason: None,
        };
        let mut tx = self.inner.db.begin().await?;
        let created = self.inner.checkpoints.create(&mut tx, id, spec).await;
        let cp = match created {
            Ok(cp) => cp,
            Err(e) => {
                drop(tx);
                return Err(e.into());
            }
        };
        if let Err(e) = tx.commit().await {
            if let Err(d) = self.inner.checkpoints.discard(id, cp.id).await {
                error!(project_id = id, checkpoint_id = cp.id, error = %d, "could not discard the checkpoint ref");
            }
            return Err(e.into());
        }
        self.publish(
            id,
            EventKind::CheckpointCreated {
                checkpoint_id: cp.id,
                checkpoint_name: cp.name.clone(),
                trigger: cp.trigger.as_str().to_owned(),
            },
        )
        .await;
        Ok(cp)
    }

    /// Restores parts of a checkpoint, or previews the restore. Applying is refused while
    /// the project is paused (resume restores from the pause checkpoint).
    pub async fn restore_checkpoint(
        &self,
        id: ProjectId,
        checkpoint_id: i64,
        what: RestoreWhat,
        mode: RestoreMode,
    ) -> Result<RestoreReport> {
        let lock = self.transition_lock(id);
        let _guard = lock.lock().await;
        let project = self.get(id).await?;
        if mode == RestoreMode::Apply && project.status == ProjectStatus::Paused {
            return Err(CoreError::Conflict(ConflictKind::InvalidTransition {
                from: ProjectStatus::Paused,
                action: "restore a checkpoint into",
            }));
        }
        let report = self.inner.checkpoints.restore(id, checkpoint_id, what, mode).await?;
        if report.applied {
            let files_changed =
                i64::try_from(report.files_written + report.files_removed).unwrap_or(i64::MAX);
            self.publish(id, EventKind::CheckpointRestored { checkpoint_id, files_changed }).await;
        }
        Ok(report)
    }

    /// Flash-saves one agent when it is due (or `force`); `None` when it was not due.
    pub async fn flash_save(
        &self,
        id: ProjectId,
        agent_id: &str,
        force: bool,
    ) -> Result<Option<FlashSaveReport>> {
        let report = self.inner.context.flash_save_now(id, agent_id, force).await?;
        if let Some(r) = &report {
            self.publish(
                id,
                EventKind::FlashSaveCompleted {
                    agent_id: agent_id.to_owned(),
                    flash_save_id: r.flash_save_id,
                    items_archived: r.items_archived,
                    reduction_percentage: r.reduction_percentage,
                },
            )
            .await;
        }
        Ok(report)
    }
}
