//! The pause transaction.

use std::time::{Duration, Instant};

use codeframe_checkpoint::CheckpointSpec;
use codeframe_models::{
    AgentFlashSaveEntry, CheckpointTrigger, EventKind, PauseOutcome, PauseRequest, Project, ProjectId,
    ProjectStatus, reduction_percentage, validate,
};
use codeframe_persistence::{Tx, agents, permits, projects};
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::{debug, error, info, warn};

use crate::event_log::Outbox;
use crate::failpoints::failpoint;
use crate::{ConflictKind, CoreError, ProjectService, Result};

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

pub(crate) fn refuse_unpausable(p: &Project) -> Result<()> {
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
    outbox: Outbox,
}

/// Reopens the gate if a pause ends without doing so (a panic unwinding through it): the
/// marker would otherwise hold the gate closed until it expires.
struct GateHold {
    service: ProjectService,
    project_id: ProjectId,
    holder: String,
    armed: bool,
}

impl Drop for GateHold {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (service, id, holder) = (self.service.clone(), self.project_id, std::mem::take(&mut self.holder));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move { service.reopen_gate(id, &holder, "internal").await });
        }
    }
}

impl ProjectService {
    /// Pauses a project (see the crate docs for the transaction). Allowed from planning,
    /// running and active; a paused project is a [`ConflictKind::AlreadyPaused`] conflict.
    pub async fn pause(&self, id: ProjectId, request: PauseRequest) -> Result<PauseOutcome> {
        self.pause_with(id, request, PauseOptions::default()).await
    }

    /// [`ProjectService::pause`] with per-call options.
    ///
    /// The pause runs on a task of its own: if the caller stops waiting (an HTTP client
    /// disconnects, a request times out), it still runs to completion or rolls back cleanly.
    pub async fn pause_with(
        &self,
        id: ProjectId,
        request: PauseRequest,
        options: PauseOptions,
    ) -> Result<PauseOutcome> {
        let service = self.clone();
        self.detached("pause", async move { service.run_pause(id, request, options).await }).await
    }

    async fn run_pause(
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

        // 1. Validate.
        let project = self.get(id).await?;
        refuse_unpausable(&project)?;
        debug!(project_id = id, status = %project.status, version = project.version, "pause validated");
        failpoint!("pause::after_validate");

        // 2. Close the gate everywhere (the pausing marker), then drain. From here on every
        // failure reopens the gate.
        let pause_holder = format!("{}#pause-{}", self.inner.gates.holder, uuid::Uuid::new_v4().simple());
        let deadline = options.drain_timeout.unwrap_or(self.inner.config.drain_timeout);
        self.close_gate(id, &pause_holder, deadline).await?;
        let mut hold =
            GateHold { service: self.clone(), project_id: id, holder: pause_holder.clone(), armed: true };
        let result = self.pause_after_close(&project, reason, &pause_holder, options, started).await;
        hold.armed = false;
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                self.reopen_gate(id, &pause_holder, e.code()).await;
                error!(project_id = id, error = %e, elapsed_ms = started.elapsed().as_millis(), "pause failed; nothing changed");
                Err(e)
            }
        }
    }

    async fn pause_after_close(
        &self,
        project: &Project,
        reason: Option<String>,
        pause_holder: &str,
        options: PauseOptions,
        started: Instant,
    ) -> Result<PauseOutcome> {
        let id = project.id;
        // The id is committed before the transaction: a rollback burns it, so its ref can
        // never be taken for a later checkpoint's.
        let checkpoint_id = self.inner.checkpoints.reserve_id().await?;
        let deadline = options.drain_timeout.unwrap_or(self.inner.config.drain_timeout);
        let interrupted = self.drain(id, pause_holder, deadline).await?;
        if interrupted.is_empty() {
            debug!(project_id = id, elapsed_ms = started.elapsed().as_millis(), "run gate drained");
        } else {
            warn!(project_id = id, agents = ?interrupted, "drain deadline passed; agents interrupted");
        }
        failpoint!("pause::after_drain");

        // 3. One transaction.
        let paused_at = self.now();
        let mut tx = self.inner.db.begin().await?;
        let result =
            self.pause_in_tx(&mut tx, id, checkpoint_id, pause_holder, reason, paused_at, interrupted).await;
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
        let Paused { outcome, outbox } = paused;
        info!(
            project_id = id,
            checkpoint_id = outcome.checkpoint_id,
            items_archived = outcome.items_archived,
            reduction_percentage = outcome.reduction_percentage,
            interrupted = outcome.interrupted_agents.len(),
            elapsed_ms = started.elapsed().as_millis(),
            "project paused"
        );
        // 5. In-process delivery after the commit (the events are in the log already).
        self.deliver(outbox).await;
        Ok(outcome)
    }

    async fn discard_after_failure(&self, id: ProjectId, checkpoint_id: i64) {
        if let Err(e) = self.inner.checkpoints.discard(id, checkpoint_id).await {
            // Left for reconciliation when the project is next opened.
            error!(project_id = id, checkpoint_id, error = %e, "could not discard the checkpoint ref");
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn pause_in_tx(
        &self,
        tx: &mut Tx<'_>,
        id: ProjectId,
        checkpoint_id: i64,
        pause_holder: &str,
        reason: Option<String>,
        paused_at: OffsetDateTime,
        interrupted_agents: Vec<String>,
    ) -> Result<Paused> {
        // Decided under the write lock: still pausable, and the gate still held by this pause.
        let current = projects::get(tx, id).await?;
        refuse_unpausable(&current)?;
        let gate = permits::gate(tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        if gate.pausing_holder.as_deref() != Some(pause_holder) {
            return Err(CoreError::Conflict(ConflictKind::PauseInProgress));
        }
        let mut outbox = Outbox::default();

        // Flash save every active agent, each in a savepoint of its own.
        let step = Instant::now();
        let mut entries = Vec::new();
        for agent_id in agents::active_agent_ids(tx, id).await? {
            let mut sp = tx.savepoint().await?;
            match self.inner.context.flash_save(&mut sp, id, &agent_id).await {
                Ok(report) => {
                    sp.commit().await?;
                    self.record_flash_save(tx, &mut outbox, id, &agent_id, &report, paused_at).await?;
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
        let prepared = self.inner.checkpoints.prepare(tx, id, checkpoint_id, spec).await?;
        debug!(
            project_id = id,
            checkpoint_id,
            elapsed_ms = step.elapsed().as_millis(),
            "checkpoint row written"
        );
        failpoint!("pause::after_checkpoint_row");

        // The project row, with the version check; the gate's marker gives way to the status,
        // and permits still held past the deadline end (their holders learn it at renewal).
        let mut paused = current.clone();
        paused.status = ProjectStatus::Paused;
        paused.paused_at = Some(paused_at);
        paused.pause_reason = reason.clone();
        paused.pause_checkpoint_id = Some(checkpoint_id);
        paused.status_before_pause = Some(current.status);
        projects::update(tx, &paused, paused_at).await?;
        permits::clear_pausing(tx, id, pause_holder).await?;
        permits::revoke_all(tx, id).await?;

        // The snapshot's objects and ref.
        let step = Instant::now();
        let checkpoint = self.inner.checkpoints.write(tx, prepared).await?;
        debug!(
            project_id = id,
            checkpoint_id,
            elapsed_ms = step.elapsed().as_millis(),
            "checkpoint ref written"
        );
        failpoint!("pause::after_ref_written");

        let ok = entries.iter().filter_map(|e| e.report.as_ref());
        let tokens_before: i64 = ok.clone().map(|r| r.tokens_before).sum();
        let tokens_after: i64 = ok.clone().map(|r| r.tokens_after).sum();
        let items_archived: i64 = ok.map(|r| r.items_archived).sum();
        let reduction = reduction_percentage(tokens_before, tokens_after);
        let trigger = CheckpointTrigger::Pause.as_str().to_owned();
        let events = [
            EventKind::CheckpointCreated { checkpoint_id, checkpoint_name: name, trigger },
            EventKind::StatusChanged { from: current.status, to: ProjectStatus::Paused },
            EventKind::ProjectPaused {
                checkpoint_id,
                reason,
                items_archived,
                reduction_percentage: reduction,
            },
        ];
        for kind in events {
            outbox.record(tx, id, kind, paused_at).await?;
        }
        failpoint!("pause::before_commit");
        Ok(Paused {
            outcome: PauseOutcome {
                success: true,
                checkpoint_id: checkpoint.id,
                tokens_before,
                tokens_after,
                reduction_percentage: reduction,
                items_archived,
                paused_at,
                agents: entries,
                interrupted_agents,
            },
            outbox,
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
