//! The pause transaction.

use std::time::{Duration, Instant};

use codeframe_checkpoint::CheckpointSpec;
use codeframe_models::{
    AgentFlashSaveEntry, CheckpointTrigger, EventKind, PauseOutcome, PauseRequest, Project, ProjectId,
    ProjectStatus, reduction_percentage, validate,
};
use codeframe_persistence::{Tx, agents, projects};
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::{debug, error, info, warn};

use crate::failpoints::failpoint;
use crate::{ConflictKind, CoreError, ProjectService, Result, RunGate};

/// Per-call pause settings.
#[derive(Debug, Clone, Default)]
pub struct PauseOptions {
    /// How long to wait for work in flight; the service's default when `None`.
    pub drain_timeout: Option<Duration>,
}

/// The pause checkpoint's name: `Project paused[: reason]`, at most 100 characters.
pub(crate) fn checkpoint_name(reason: Option<&str>) -> String {
    let name = match reason {
        Some(r) if !r.trim().is_empty() => format!("Project paused: {r}"),
        _ => "Project paused".to_owned(),
    };
    validate::truncate_chars(&name, validate::CHECKPOINT_NAME_MAX)
}

/// The pause checkpoint's description: the time and the reason, at most 500 characters.
pub(crate) fn checkpoint_description(at: OffsetDateTime, reason: Option<&str>) -> String {
    let when = at
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
        .unwrap_or_else(|_| codeframe_models::timestamp::format(at));
    let mut d = format!("Project paused at {when} UTC");
    if let Some(r) = reason.filter(|r| !r.trim().is_empty()) {
        d.push_str("\nReason: ");
        d.push_str(r);
    }
    validate::truncate_chars(&d, validate::CHECKPOINT_DESCRIPTION_MAX)
}

fn refuse_unpausable(p: &Project) -> Result<()> {
    match p.status {
        s if s.is_pausable() => Ok(()),
        ProjectStatus::Paused => Err(CoreError::Conflict(ConflictKind::AlreadyPaused {
            paused_at: p.paused_at,
            checkpoint_id: p.pause_checkpoint_id,
        })),
        from => Err(CoreError::Conflict(ConflictKind::InvalidTransition { from, action: "pause" })),
    }
}

/// What the transaction produced, for the result and the events.
struct Paused {
    outcome: PauseOutcome,
    from: ProjectStatus,
    checkpoint_name: String,
    reason: Option<String>,
}

impl ProjectService {
    /// Pauses a project (see the crate docs for the transaction). Allowed from planning,
    /// running and active; a paused project is a [`ConflictKind::AlreadyPaused`] conflict.
    pub async fn pause(&self, id: ProjectId, request: PauseRequest) -> Result<PauseOutcome> {
        self.pause_with(id, request, PauseOptions::default()).await
    }

    /// [`ProjectService::pause`] with per-call options.
    pub async fn pause_with(
        &self,
        id: ProjectId,
        request: PauseRequest,
        options: PauseOptions,
    ) -> Result<PauseOutcome> {
        let started = Instant::now();
        let reason = request.reason.filter(|r| !r.is_empty());
        info!(project_id = id, reason = ?reason, "pause requested");
        if let Some(r) = &reason {
            validate::pause_reason(r)?;
        }
        let lock = self.transition_lock(id);
        let _guard = lock.lock().await;

        // 1. Validate.
        let project = self.get(id).await?;
        refuse_unpausable(&project)?;
        debug!(project_id = id, status = %project.status, version = project.version, "pause validated");
        failpoint!("pause::after_validate");

        // 2. Drain. Everything after closing the gate reopens it on failure.
        let gate = self.gate(id).await?;
        gate.close();
        match self.pause_after_close(project, reason, &gate, options, started).await {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                gate.open();
                error!(project_id = id, error = %e, elapsed_ms = started.elapsed().as_millis(), "pause failed; nothing changed");
                Err(e)
            }
        }
    }

    async fn pause_after_close(
        &self,
        project: Project,
        reason: Option<String>,
        gate: &RunGate,
        options: PauseOptions,
        started: Instant,
    ) -> Result<PauseOutcome> {
        let id = project.id;
        let deadline = options.drain_timeout.unwrap_or(self.inner.config.drain_timeout);
        let interrupted = gate.drain(deadline).await;
        if interrupted.is_empty() {
            debug!(project_id = id, elapsed_ms = started.elapsed().as_millis(), "run gate drained");
        } else {
            warn!(project_id = id, agents = ?interrupted, "drain deadline passed; agents interrupted");
        }
        failpoint!("pause::after_drain");

        // 3. One transaction.
        let paused_at = self.now();
        let mut tx = self.inner.db.begin().await?;
        let mut checkpoint_id = None;
        let result =
            self.pause_in_tx(&mut tx, &project, reason, paused_at, interrupted, &mut checkpoint_id).await;
        let paused = match result {
            Ok(p) => match tx.commit().await {
                Ok(()) => p,
                Err(e) => {
                    self.discard_after_failure(id, checkpoint_id).await;
                    return Err(e.into());
                }
            },
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    error!(project_id = id, error = %rb, "rollback failed (the transaction is abandoned)");
                }
                info!(project_id = id, "pause rolled back");
                self.discard_after_failure(id, checkpoint_id).await;
                return Err(e);
            }
        };
        failpoint!("pause::after_commit");
        let Paused { outcome, from, checkpoint_name, reason } = paused;
        info!(
            project_id = id,
            checkpoint_id = outcome.checkpoint_id,
            items_archived = outcome.items_archived,
            reduction_percentage = outcome.reduction_percentage,
            interrupted = outcome.interrupted_agents.len(),
            elapsed_ms = started.elapsed().as_millis(),
            "project paused"
        );

        // 5. Events, after the commit; a failing sink never fails the pause.
        for a in &outcome.agents {
            if let Some(r) = &a.report {
                self.publish(
                    id,
                    EventKind::FlashSaveCompleted {
                        agent_id: a.agent_id.clone(),
                        flash_save_id: r.flash_save_id,
                        items_archived: r.items_archived,
                        reduction_percentage: r.reduction_percentage,
                    },
                )
                .await;
            }
        }
        self.publish(
            id,
            EventKind::CheckpointCreated {
                checkpoint_id: outcome.checkpoint_id,
                checkpoint_name,
                trigger: CheckpointTrigger::Pause.as_str().to_owned(),
            },
        )
        .await;
        self.publish(id, EventKind::StatusChanged { from, to: ProjectStatus::Paused }).await;
        self.publish(
            id,
            EventKind::ProjectPaused {
                checkpoint_id: outcome.checkpoint_id,
                reason,
                items_archived: outcome.items_archived,
                reduction_percentage: outcome.reduction_percentage,
            },
        )
        .await;
        Ok(outcome)
    }

    async fn discard_after_failure(&self, id: ProjectId, checkpoint_id: Option<i64>) {
        if let Some(cp) = checkpoint_id
            && let Err(e) = self.inner.checkpoints.discard(id, cp).await
        {
            // Left for reconciliation when the project is next opened.
            error!(project_id = id, checkpoint_id = cp, error = %e, "could not discard the checkpoint ref");
        }
    }

    async fn pause_in_tx(
        &self,
        tx: &mut Tx<'_>,
        validated: &Project,
        reason: Option<String>,
        paused_at: OffsetDateTime,
        interrupted_agents: Vec<String>,
        checkpoint_id: &mut Option<i64>,
    ) -> Result<Paused> {
        let id = validated.id;
        let current = projects::get(tx, id).await?;
        if current.version != validated.version {
            refuse_unpausable(&current)?;
            return Err(CoreError::Conflict(ConflictKind::Concurrent));
        }

        // Flash save every active agent, each in a savepoint of its own.
        let step = Instant::now();
        let mut entries = Vec::new();
        for agent_id in agents::active_agent_ids(tx, id).await? {
            let mut sp = tx.savepoint().await?;
            match self.inner.context.flash_save(&mut sp, id, &agent_id).await {
                Ok(report) => {
                    sp.commit().await?;
                    entries.push(AgentFlashSaveEntry { agent_id, report: Some(report), error: None });
                }
                Err(e) => {
                    sp.rollback().await?;
                    warn!(project_id = id, agent_id = %agent_id, error = %e, "flash save failed; pausing without it");
                    entries.push(AgentFlashSaveEntry { agent_id, report: None, error: Some(e.to_string()) });
                }
            }
        }
        debug!(
            project_id = id,
            agents = entries.len(),
            elapsed_ms = step.elapsed().as_millis(),
            "flash saves done"
        );
        failpoint!("pause::after_flash_save");

        // The checkpoint row (state read here: after the flash saves, before the status change).
        let step = Instant::now();
        let name = checkpoint_name(reason.as_deref());
        let spec = CheckpointSpec {
            name: name.clone(),
            description: checkpoint_description(paused_at, reason.as_deref()),
            trigger: CheckpointTrigger::Pause,
            pause_reason: reason.clone(),
        };
        let prepared = self.inner.checkpoints.prepare(tx, id, spec).await?;
        *checkpoint_id = Some(prepared.checkpoint.id);
        debug!(
            project_id = id,
            checkpoint_id = prepared.checkpoint.id,
            elapsed_ms = step.elapsed().as_millis(),
            "checkpoint row written"
        );
        failpoint!("pause::after_checkpoint_row");

        // The project row, with the version check.
        let mut paused = current.clone();
        paused.status = ProjectStatus::Paused;
        paused.paused_at = Some(paused_at);
        paused.pause_reason = reason.clone();
        paused.pause_checkpoint_id = Some(prepared.checkpoint.id);
        paused.status_before_pause = Some(current.status);
        projects::update(tx, &paused, paused_at).await?;

        // The snapshot's objects and ref.
        let step = Instant::now();
        let checkpoint = self.inner.checkpoints.write(tx, prepared).await?;
        debug!(
            project_id = id,
            checkpoint_id = checkpoint.id,
            elapsed_ms = step.elapsed().as_millis(),
            "checkpoint ref written"
        );
        failpoint!("pause::after_ref_written");
        failpoint!("pause::before_commit");

        let ok = entries.iter().filter_map(|e| e.report.as_ref());
        let tokens_before: i64 = ok.clone().map(|r| r.tokens_before).sum();
        let tokens_after: i64 = ok.clone().map(|r| r.tokens_after).sum();
        let items_archived: i64 = ok.map(|r| r.items_archived).sum();
        Ok(Paused {
            outcome: PauseOutcome {
                success: true,
                checkpoint_id: checkpoint.id,
                tokens_before,
                tokens_after,
                reduction_percentage: reduction_percentage(tokens_before, tokens_after),
                items_archived,
                paused_at,
                agents: entries,
                interrupted_agents,
            },
            from: current.status,
            checkpoint_name: name,
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn checkpoint_name_and_description_follow_the_reference() {
        assert_eq!(checkpoint_name(None), "Project paused");
        assert_eq!(checkpoint_name(Some("lunch")), "Project paused: lunch");
        assert_eq!(checkpoint_name(Some(&"r".repeat(200))).chars().count(), 100);
        let at = datetime!(2025-11-23 14:30:00 UTC);
        assert_eq!(checkpoint_description(at, None), "Project paused at 2025-11-23 14:30:00 UTC");
        assert_eq!(
            checkpoint_description(at, Some("resource_limit")),
            "Project paused at 2025-11-23 14:30:00 UTC\nReason: resource_limit"
        );
        assert_eq!(checkpoint_description(at, Some(&"é".repeat(500))).chars().count(), 500);
    }
}
