//! The pause transaction.

use std::time::{Duration, Instant};

use codeframe_checkpoint::{CheckpointSpec, WrittenCheckpoint};
use codeframe_context::FlashSavePlan;
use codeframe_models::{
    AgentFlashSaveEntry, CheckpointId, CheckpointTrigger, EventKind, FlashSaveId, PauseOutcome, PauseRequest,
    Project, ProjectId, ProjectStatus, reduction_percentage, validate,
};
use codeframe_persistence::checkpoints as persistence_checkpoints;
use codeframe_persistence::{Tx, agents, flash_saves, permits, projects, revisions};
use time::OffsetDateTime;
use time::macros::format_description;
use tracing::{debug, error, info, instrument, warn};

use crate::event_log::Outbox;
use crate::failpoints::failpoint;
use crate::{ConflictKind, CoreError, ProjectService, Result};

/// Per-call pause settings.
#[derive(Debug, Clone, Default)]
pub struct PauseOptions {
    /// How long to wait for work in flight; the service's default when `None`.
    pub drain_timeout: Option<Duration>,
}

/// The pause checkpoint's name: `Project paused[: reason]`, at most 100 characters; a NUL of
/// the reason (which a checkpoint name may not hold) shown as U+FFFD.
pub(crate) fn checkpoint_name(reason: Option<&str>) -> String {
    let name = match reason {
        Some(r) if !r.trim().is_empty() => format!("Project paused: {}", r.replace('\0', "\u{fffd}")),
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
    /// How long the transaction held the write lock.
    lock_held: Duration,
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
        self.detached("pause", async move {
            let paused = service.run_pause(id, request, options).await;
            if let Ok(outcome) = &paused {
                crate::metrics::items_archived(outcome.items_archived);
                service.prune_after_checkpoint(id).await;
            }
            paused
        })
        .await
    }

    // The span's close (with `CODEFRAME_LOG=codeframe_core=info`) says how long the pause took.
    #[instrument(name = "pause", skip_all, fields(project_id = %id))]
    async fn run_pause(
        &self,
        id: ProjectId,
        request: PauseRequest,
        options: PauseOptions,
    ) -> Result<PauseOutcome> {
        let reason = request.reason.filter(|r| !r.is_empty());
        info!(project_id = %id, reason = ?reason, "pause requested");
        if let Some(r) = &reason {
            validate::pause_reason(r)?;
        }

        // 1. Validate.
        let project = self.get(id).await?;
        refuse_unpausable(&project)?;
        debug!(project_id = %id, status = %project.status, version = project.version, "pause validated");
        failpoint!("pause::after_validate");

        // 2. Close the gate everywhere (the pausing marker), then drain. From here on every
        // failure reopens the gate.
        let pause_holder = format!("{}#pause-{}", self.inner.gates.holder, uuid::Uuid::new_v4().simple());
        let deadline = options.drain_timeout.unwrap_or(self.inner.config.drain_timeout);
        self.close_gate(id, &pause_holder, deadline).await?;
        let mut hold =
            GateHold { service: self.clone(), project_id: id, holder: pause_holder.clone(), armed: true };
        let result = self.pause_after_close(&project, reason, &pause_holder, options).await;
        hold.armed = false;
        match result {
            Ok(outcome) => Ok(outcome),
            Err(e) => {
                self.reopen_gate(id, &pause_holder, e.code()).await;
                error!(project_id = %id, error = %e, "pause failed; nothing changed");
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
    ) -> Result<PauseOutcome> {
        let id = project.id;
        // The id is committed before the transaction: a rollback burns it, so its ref can
        // never be taken for a later checkpoint's.
        let checkpoint_id = self.inner.checkpoints.reserve_id().await?;
        let deadline = options.drain_timeout.unwrap_or(self.inner.config.drain_timeout);
        let interrupted = self.drain(id, pause_holder, deadline).await?;
        if interrupted.is_empty() {
            debug!(project_id = %id, "run gate drained");
        } else {
            warn!(project_id = %id, agents = ?interrupted, "drain deadline passed; agents interrupted");
        }
        failpoint!("pause::after_drain");

        let paused_at = self.now();
        let pause = PauseTx { id, checkpoint_id, pause_holder, reason, paused_at, interrupted };

        // 3. Outside the write lock: read the state once, plan the flash saves and write the
        // snapshot's objects. Then one short transaction applies it all if nothing changed.
        let mut paused = None;
        if let Some(draft) = self.draft_pause(&pause).await? {
            debug!(project_id = %id, "snapshot written outside the lock");
            paused = self.commit_pause(&pause, Some(draft)).await?;
        }
        let paused = match paused {
            Some(p) => p,
            // The project changed meanwhile (or a flash save could not be planned): the whole
            // pause under the write lock, as it always can.
            None => match self.commit_pause(&pause, None).await? {
                Some(p) => p,
                None => return Err(CoreError::Conflict(ConflictKind::Concurrent)),
            },
        };
        failpoint!("pause::after_commit");
        let Paused { outcome, outbox, lock_held } = paused;
        info!(
            project_id = %id,
            checkpoint_id = %outcome.checkpoint_id,
            items_archived = outcome.items_archived,
            reduction_percentage = outcome.reduction_percentage,
            interrupted = outcome.interrupted_agents.len(),
            write_lock_ms = lock_held.as_millis(),
            "project paused"
        );
        // 5. In-process delivery after the commit (the events are in the log already).
        self.deliver(outbox).await;
        Ok(outcome)
    }

    /// Reads the project through one read transaction, plans its flash saves, reserves their
    /// ids and writes the snapshot's objects from the state as the flash saves will leave it.
    /// `None` when a flash save cannot be planned (the locked pause handles that agent).
    #[instrument(level = "debug", skip_all)]
    async fn draft_pause(&self, pause: &PauseTx<'_>) -> Result<Option<PauseDraft>> {
        let id = pause.id;
        let mut read = self.inner.db.read().await?;
        let revision = revisions::get(&mut read, id).await?;
        let mut plans = Vec::new();
        for agent_id in agents::active_agent_ids(&mut read, id).await? {
            match self.inner.context.plan_flash_save(&mut read, id, &agent_id).await {
                Ok(plan) => plans.push(plan),
                Err(e) => {
                    info!(project_id = %id, agent_id, error = %e, "flash save not plannable; pausing under the lock");
                    return Ok(None);
                }
            }
        }
        let will_change: Vec<String> = plans.iter().flat_map(|p| p.targets.iter().cloned()).collect();
        let mut draft = self
            .inner
            .checkpoints
            .draft(&mut read, id, pause.checkpoint_id, pause.spec(), &will_change)
            .await?;
        drop(read);
        failpoint!("pause::after_state_read");
        let count = i64::try_from(plans.len()).unwrap_or(i64::MAX);
        let first = if plans.is_empty() {
            0
        } else {
            flash_saves::reserve_ids(&mut self.inner.db.conn().await?, count).await?.get()
        };
        let mut planned = Vec::with_capacity(plans.len());
        for (flash_save_id, plan) in (first..).map(FlashSaveId).zip(plans) {
            let archived = plan.archive_in(draft.context_items_mut(), flash_save_id, pause.paused_at);
            if archived != plan.totals.cold_items {
                // One read transaction cannot disagree with itself; if it does, do not guess.
                warn!(project_id = %id, agent_id = %plan.agent_id, archived, planned = plan.totals.cold_items, "plan and state disagree; pausing under the lock");
                return Ok(None);
            }
            planned.push((plan, flash_save_id));
        }
        let written = self.inner.checkpoints.write_objects(draft).await?;
        failpoint!("pause::after_objects_written");
        Ok(Some(PauseDraft { revision, plans: planned, written }))
    }

    /// The pause's transaction: from a draft (applied only if the project's revision is still
    /// the one the draft read; `Ok(None)` otherwise), or, without one, everything under the
    /// write lock. A failure rolls back and removes the ref.
    #[instrument(level = "debug", skip_all, fields(optimistic = draft.is_some()))]
    async fn commit_pause(&self, pause: &PauseTx<'_>, draft: Option<PauseDraft>) -> Result<Option<Paused>> {
        let id = pause.id;
        let optimistic = draft.is_some();
        let mut tx = self.inner.db.begin().await?;
        let locked = Instant::now();
        let result = match &draft {
            Some(d) => self.pause_from_draft(&mut tx, pause, d).await,
            None => self.pause_in_tx(&mut tx, pause).await.map(Some),
        };
        match result {
            Ok(Some(mut p)) => match (Instant::now(), tx.commit().await) {
                (committing, Ok(())) => {
                    p.lock_held = locked.elapsed();
                    debug!(
                        project_id = %id,
                        optimistic,
                        commit_ms = committing.elapsed().as_millis(),
                        "pause committed"
                    );
                    Ok(Some(p))
                }
                (_, Err(e)) => {
                    self.discard_after_failure(id, pause.checkpoint_id).await;
                    Err(e.into())
                }
            },
            Ok(None) => {
                if let Err(rb) = tx.rollback().await {
                    error!(project_id = %id, error = %rb, "rollback failed (the transaction is abandoned)");
                }
                Ok(None)
            }
            Err(e) => {
                if let Err(rb) = tx.rollback().await {
                    error!(project_id = %id, error = %rb, "rollback failed (the transaction is abandoned)");
                }
                info!(project_id = %id, optimistic, "pause rolled back");
                self.discard_after_failure(id, pause.checkpoint_id).await;
                Err(e)
            }
        }
    }

    async fn discard_after_failure(&self, id: ProjectId, checkpoint_id: CheckpointId) {
        if let Err(e) = self.inner.checkpoints.discard(id, checkpoint_id).await {
            // Left for reconciliation when the project is next opened.
            error!(project_id = %id, checkpoint_id = %checkpoint_id, error = %e, "could not discard the checkpoint ref");
        }
    }

    /// Decided under the write lock: still pausable, and the gate still held by this pause.
    async fn check_still_pausable(&self, tx: &mut Tx<'_>, pause: &PauseTx<'_>) -> Result<Project> {
        let current = projects::get(tx, pause.id).await?;
        refuse_unpausable(&current)?;
        let gate =
            permits::gate(tx, pause.id).await?.ok_or_else(|| CoreError::project_not_found(pause.id))?;
        if gate.pausing_holder.as_deref() != Some(pause.pause_holder) {
            return Err(CoreError::Conflict(ConflictKind::PauseInProgress));
        }
        Ok(current)
    }

    /// The short transaction of a drafted pause. `Ok(None)`: the project changed since the
    /// draft read it, or a flash save failed to apply; the caller rolls back and pauses under
    /// the lock.
    async fn pause_from_draft(
        &self,
        tx: &mut Tx<'_>,
        pause: &PauseTx<'_>,
        draft: &PauseDraft,
    ) -> Result<Option<Paused>> {
        let id = pause.id;
        let current = self.check_still_pausable(tx, pause).await?;
        let now_revision = revisions::get(tx, id).await?;
        if now_revision != draft.revision {
            info!(
                project_id = %id,
                read = draft.revision,
                now = now_revision,
                "the project changed while its snapshot was written; pausing under the lock"
            );
            return Ok(None);
        }
        let mut outbox = Outbox::default();
        let mut entries = Vec::new();
        for (plan, flash_save_id) in &draft.plans {
            match self.inner.context.apply_flash_save(tx, plan, *flash_save_id, pause.paused_at).await {
                Ok(report) => {
                    self.record_flash_save(tx, &mut outbox, id, &plan.agent_id, &report, pause.paused_at)
                        .await?;
                    entries.push(AgentFlashSaveEntry {
                        agent_id: plan.agent_id.clone(),
                        report: Some(report),
                        error: None,
                    });
                }
                Err(e) => {
                    info!(project_id = %id, agent_id = %plan.agent_id, error = %e, "drafted flash save failed; pausing under the lock");
                    return Ok(None);
                }
            }
        }
        failpoint!("pause::after_flash_save");
        self.inner.checkpoints.record(tx, &draft.written).await?;
        failpoint!("pause::after_checkpoint_row");
        self.set_paused(tx, pause, &current).await?;
        self.inner.checkpoints.publish(&draft.written).await?;
        failpoint!("pause::after_ref_written");
        self.finish_pause(tx, pause, current.status, entries, outbox).await.map(Some)
    }

    /// The whole pause under the write lock: flash saves, state read, snapshot.
    async fn pause_in_tx(&self, tx: &mut Tx<'_>, pause: &PauseTx<'_>) -> Result<Paused> {
        let id = pause.id;
        let current = self.check_still_pausable(tx, pause).await?;
        let mut outbox = Outbox::default();

        // Flash save every active agent, each in a savepoint of its own.
        let step = Instant::now();
        let mut entries = Vec::new();
        for agent_id in agents::active_agent_ids(tx, id).await? {
            let mut sp = tx.savepoint().await?;
            match self.inner.context.flash_save(&mut sp, id, &agent_id).await {
                Ok(report) => {
                    sp.commit().await?;
                    self.record_flash_save(tx, &mut outbox, id, &agent_id, &report, pause.paused_at).await?;
                    entries.push(AgentFlashSaveEntry { agent_id, report: Some(report), error: None });
                }
                Err(e) => {
                    sp.rollback().await?;
                    warn!(project_id = %id, agent_id, error = %e, "flash save failed; pausing without it");
                    entries.push(AgentFlashSaveEntry { agent_id, report: None, error: Some(e.to_string()) });
                }
            }
        }
        debug!(
            project_id = %id,
            agents = entries.len(),
            elapsed_ms = step.elapsed().as_millis(),
            "flash saves done"
        );
        failpoint!("pause::after_flash_save");

        // The checkpoint row (state read here: after the flash saves, before the status change).
        let step = Instant::now();
        let prepared = self.inner.checkpoints.prepare(tx, id, pause.checkpoint_id, pause.spec()).await?;
        debug!(
            project_id = %id,
            checkpoint_id = %pause.checkpoint_id,
            elapsed_ms = step.elapsed().as_millis(),
            "checkpoint row written"
        );
        failpoint!("pause::after_checkpoint_row");
        self.set_paused(tx, pause, &current).await?;

        // The snapshot's objects and ref.
        let step = Instant::now();
        self.inner.checkpoints.write(tx, prepared).await?;
        debug!(
            project_id = %id,
            checkpoint_id = %pause.checkpoint_id,
            elapsed_ms = step.elapsed().as_millis(),
            "checkpoint ref written"
        );
        failpoint!("pause::after_ref_written");
        self.finish_pause(tx, pause, current.status, entries, outbox).await
    }

    /// The project row, with the version check; the gate's marker gives way to the status,
    /// and permits still held past the deadline end (their holders learn it at renewal).
    async fn set_paused(&self, tx: &mut Tx<'_>, pause: &PauseTx<'_>, current: &Project) -> Result<()> {
        let mut paused = current.clone();
        paused.status = ProjectStatus::Paused;
        paused.paused_at = Some(pause.paused_at);
        paused.pause_reason = pause.reason.clone();
        paused.pause_checkpoint_id = Some(pause.checkpoint_id);
        paused.status_before_pause = Some(current.status);
        projects::update(tx, &paused, pause.paused_at).await?;
        permits::clear_pausing(tx, pause.id, pause.pause_holder).await?;
        permits::revoke_all(tx, pause.id).await?;
        Ok(())
    }

    /// The events and figures of a pause whose rows and ref are written; records the revision
    /// the pause commits (a resume finding it unchanged has nothing to restore).
    async fn finish_pause(
        &self,
        tx: &mut Tx<'_>,
        pause: &PauseTx<'_>,
        from: ProjectStatus,
        entries: Vec<AgentFlashSaveEntry>,
        mut outbox: Outbox,
    ) -> Result<Paused> {
        let ok = entries.iter().filter_map(|e| e.report.as_ref());
        let tokens_before: i64 = ok.clone().map(|r| r.tokens_before).sum();
        let tokens_after: i64 = ok.clone().map(|r| r.tokens_after).sum();
        let items_archived: i64 = ok.map(|r| r.items_archived).sum();
        let reduction = reduction_percentage(tokens_before, tokens_after);
        let trigger = CheckpointTrigger::Pause.as_str().to_owned();
        let events = [
            EventKind::CheckpointCreated {
                checkpoint_id: pause.checkpoint_id,
                checkpoint_name: checkpoint_name(pause.reason.as_deref()),
                trigger,
            },
            EventKind::StatusChanged { from, to: ProjectStatus::Paused },
            EventKind::ProjectPaused {
                checkpoint_id: pause.checkpoint_id,
                reason: pause.reason.clone(),
                items_archived,
                reduction_percentage: reduction,
            },
        ];
        for kind in events {
            outbox.record(tx, pause.id, kind, pause.paused_at).await?;
        }
        // The snapshot is exact at the revision this transaction commits: the next snapshot
        // builds on it, reading again only what is written after.
        let committed = revisions::mark_paused(tx, pause.id).await?;
        persistence_checkpoints::set_revision(tx, pause.checkpoint_id, committed).await?;
        failpoint!("pause::before_commit");
        Ok(Paused {
            outcome: PauseOutcome {
                success: true,
                checkpoint_id: pause.checkpoint_id,
                tokens_before,
                tokens_after,
                reduction_percentage: reduction,
                items_archived,
                paused_at: pause.paused_at,
                agents: entries,
                interrupted_agents: pause.interrupted.clone(),
            },
            outbox,
            lock_held: Duration::ZERO,
        })
    }
}

/// What one pause is about, from the gate's closing to its commit.
struct PauseTx<'a> {
    id: ProjectId,
    checkpoint_id: CheckpointId,
    pause_holder: &'a str,
    reason: Option<String>,
    paused_at: OffsetDateTime,
    interrupted: Vec<String>,
}

impl PauseTx<'_> {
    fn spec(&self) -> CheckpointSpec {
        CheckpointSpec {
            name: checkpoint_name(self.reason.as_deref()),
            description: checkpoint_description(self.paused_at, self.reason.as_deref()),
            trigger: CheckpointTrigger::Pause,
            pause_reason: self.reason.clone(),
        }
    }
}

/// A pause worked out outside the write lock: the revision it read, its flash-save plans with
/// their reserved ids, and the snapshot written from the state they leave.
struct PauseDraft {
    revision: i64,
    plans: Vec<(FlashSavePlan, FlashSaveId)>,
    written: WrittenCheckpoint,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn checkpoint_name_and_description_follow_the_reference() {
        assert_eq!(checkpoint_name(None), "Project paused");
        assert_eq!(checkpoint_name(Some("lunch")), "Project paused: lunch");
        // Found by the API's schema-driven tester: a reason with NUL made the pause fail.
        assert_eq!(checkpoint_name(Some("a\0b")), "Project paused: a\u{fffd}b");
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
