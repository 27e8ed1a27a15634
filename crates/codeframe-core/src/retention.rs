//! Retention: which checkpoints of a project are kept, pins, and pruning.
//!
//! A checkpoint is kept when any rule of the project's [`RetentionPolicy`] keeps it, when it is
//! pinned, or when it is the checkpoint of the project's current pause. Pruning runs in one
//! write transaction (so any number of processes creating checkpoints at once agree), after
//! every new checkpoint and on demand; each deletion emits `checkpoint_deleted`. It deletes
//! rows and refs; the objects only they used are removed by garbage collection
//! ([`ProjectService::collect_garbage`]), which a prune on demand runs when it deleted
//! something, and a prune after a new checkpoint runs once the store has [`AUTO_GC_PACKS`]
//! packs (each snapshot adds one).

use std::collections::HashSet;

use codeframe_models::{Checkpoint, CheckpointId, EventKind, ProjectId, ProjectStatus, RetentionPolicy};
use codeframe_persistence::{checkpoints, projects};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::event_log::Outbox;
use crate::{CheckpointError, CoreError, GcReport, ProjectService, Result};

/// After a new checkpoint pruned something, the store's garbage is collected once it has this
/// many packs (collection rewrites every kept object: worth it only now and then).
pub const AUTO_GC_PACKS: usize = 32;

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PruneReport {
    /// Nothing was deleted: `pruned` lists what would be.
    pub dry_run: bool,
    /// Checkpoints deleted (or that would be), newest first.
    pub pruned: Vec<CheckpointId>,
    /// Checkpoints kept.
    pub kept: usize,
    /// The policy applied.
    pub policy: RetentionPolicy,
    /// The garbage collection that followed, if one ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gc: Option<GcReport>,
}

/// The checkpoints to prune from `all` (newest first) under `policy` at `now`; `protected`
/// (the current pause's) and pinned ones are always kept.
pub(crate) fn to_prune(
    all: &[Checkpoint],
    policy: &RetentionPolicy,
    protected: Option<CheckpointId>,
    now: OffsetDateTime,
) -> Vec<CheckpointId> {
    let within = time::Duration::seconds(i64::try_from(policy.keep_within_seconds).unwrap_or(i64::MAX / 2));
    // A window reaching past the calendar's range (keep_daily_days near u32::MAX) covers every
    // day there is.
    let daily_from =
        now.checked_sub(time::Duration::days(i64::from(policy.keep_daily_days))).map(|t| t.date());
    let mut days_kept = HashSet::new();
    let mut prune = Vec::new();
    for (n, c) in all.iter().enumerate() {
        let newest_of_its_day = policy.keep_daily_days > 0
            && daily_from.is_none_or(|from| c.created_at.date() > from)
            && days_kept.insert(c.created_at.to_offset(time::UtcOffset::UTC).date());
        let keep = c.pinned
            || protected == Some(c.id)
            || n < usize::try_from(policy.keep_last).unwrap_or(usize::MAX)
            || now - c.created_at < within
            || newest_of_its_day;
        if !keep {
            prune.push(c.id);
        }
    }
    prune
}

impl ProjectService {
    /// The project's retention policy (the defaults until one is set).
    pub async fn retention_policy(&self, id: ProjectId) -> Result<RetentionPolicy> {
        let mut c = self.inner.db.conn().await?;
        projects::find(&mut c, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        Ok(checkpoints::policy(&mut c, id).await?)
    }

    /// Sets the project's retention policy (`keep_last` at least 1), then prunes by it.
    pub async fn set_retention_policy(&self, id: ProjectId, policy: RetentionPolicy) -> Result<PruneReport> {
        if policy.keep_last == 0 {
            return Err(CoreError::Invalid(codeframe_models::ModelError::Invalid {
                field: "keep_last",
                reason: "must be at least 1 (the newest checkpoint is always kept)".into(),
            }));
        }
        let mut tx = self.inner.db.begin().await?;
        projects::find(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        checkpoints::set_policy(&mut tx, id, &policy).await?;
        tx.commit().await?;
        info!(project_id = %id, ?policy, "retention policy set");
        self.prune_checkpoints(id, false).await
    }

    /// Pins (or unpins) a checkpoint: a pinned checkpoint is never pruned.
    pub async fn pin_checkpoint(
        &self,
        id: ProjectId,
        checkpoint_id: CheckpointId,
        pinned: bool,
    ) -> Result<Checkpoint> {
        let mut tx = self.inner.db.begin().await?;
        checkpoints::set_pinned(&mut tx, id, checkpoint_id, pinned).await?;
        tx.commit().await?;
        Ok(self.inner.checkpoints.get(id, checkpoint_id).await?)
    }

    /// Deletes the checkpoints the policy does not keep (with `dry_run`, only says which), then
    /// collects the store's garbage when something was deleted (skipped, with a warning, while
    /// the store is in use).
    pub async fn prune_checkpoints(&self, id: ProjectId, dry_run: bool) -> Result<PruneReport> {
        let mut report = self.prune(id, dry_run).await?;
        if !report.dry_run && !report.pruned.is_empty() {
            report.gc = self.collect_garbage_if(id, 0).await;
        }
        Ok(report)
    }

    /// Removes the objects of the project's snapshot store that no checkpoint needs any more
    /// and packs the rest into one pack (refs left by interrupted checkpoints are removed
    /// first). Never waits and never removes what a checkpoint being written needs: refused
    /// with `store_busy` ([`CheckpointError::StoreBusy`]) while one is being written or read.
    pub async fn collect_garbage(&self, id: ProjectId) -> Result<GcReport> {
        let project = self.get(id).await?;
        if std::path::Path::new(&project.root_path).is_dir() || project.store_path.is_some() {
            self.inner.checkpoints.reconcile(id).await?;
        }
        let report = self.inner.checkpoints.collect_garbage(id, 0).await?;
        Ok(report.unwrap_or_default())
    }

    /// Collects garbage when the store has `min_packs` packs; a busy store or a failure is
    /// logged, never the caller's error.
    async fn collect_garbage_if(&self, id: ProjectId, min_packs: usize) -> Option<GcReport> {
        match self.inner.checkpoints.collect_garbage(id, min_packs).await {
            Ok(report) => report,
            Err(CheckpointError::StoreBusy(_)) => {
                info!(project_id = %id, "snapshot store in use; garbage left for the next collection");
                None
            }
            Err(e) => {
                warn!(project_id = %id, error = %e, "garbage collection failed; nothing was removed");
                None
            }
        }
    }

    async fn prune(&self, id: ProjectId, dry_run: bool) -> Result<PruneReport> {
        // Decided without the write lock first: most new checkpoints prune nothing.
        let report = self.prune_plan(&mut self.inner.db.read().await?, id, dry_run).await?;
        if dry_run || report.pruned.is_empty() {
            return Ok(report);
        }
        // Decided again under the lock, so concurrent writers agree on what goes.
        let mut tx = self.inner.db.begin().await?;
        let report = self.prune_plan(&mut tx, id, false).await?;
        if report.pruned.is_empty() {
            return Ok(report);
        }
        let mut outbox = Outbox::default();
        let now = self.now();
        for checkpoint_id in &report.pruned {
            self.inner.checkpoints.delete_row(&mut tx, id, *checkpoint_id).await?;
            outbox
                .record(&mut tx, id, EventKind::CheckpointDeleted { checkpoint_id: *checkpoint_id }, now)
                .await?;
        }
        tx.commit().await?;
        for checkpoint_id in &report.pruned {
            // After the commit; a crash in between leaves orphan refs that opening removes.
            if let Err(e) = self.inner.checkpoints.discard(id, *checkpoint_id).await {
                warn!(project_id = %id, checkpoint_id = %checkpoint_id, error = %e, "pruned checkpoint's ref not removed; opening the project will");
            }
        }
        info!(project_id = %id, pruned = ?report.pruned, kept = report.kept, "checkpoints pruned");
        self.deliver(outbox).await;
        Ok(report)
    }

    /// What the policy prunes, read through `ex`.
    async fn prune_plan(
        &self,
        ex: &mut impl codeframe_persistence::Executor,
        id: ProjectId,
        dry_run: bool,
    ) -> Result<PruneReport> {
        let project = projects::find(ex, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        let policy = checkpoints::policy(ex, id).await?;
        let all = checkpoints::list(ex, id).await?;
        let protected =
            if project.status == ProjectStatus::Paused { project.pause_checkpoint_id } else { None };
        let pruned = to_prune(&all, &policy, protected, self.now());
        Ok(PruneReport { dry_run, kept: all.len() - pruned.len(), pruned, policy, gc: None })
    }

    /// Prunes after a new checkpoint, collecting garbage when the store has
    /// [`AUTO_GC_PACKS`] packs; a failure is logged, never the caller's error.
    pub(crate) async fn prune_after_checkpoint(&self, id: ProjectId) {
        match self.prune(id, false).await {
            Ok(report) if !report.pruned.is_empty() => {
                self.collect_garbage_if(id, AUTO_GC_PACKS).await;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(project_id = %id, error = %e, "pruning after a new checkpoint failed; the next one retries")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use codeframe_models::{CheckpointMetadata, CheckpointTrigger, ProjectPhase};
    use time::macros::datetime;

    use super::*;

    fn ids(ids: &[i64]) -> Vec<CheckpointId> {
        ids.iter().copied().map(CheckpointId).collect()
    }

    fn cp(id: i64, at: OffsetDateTime, pinned: bool) -> Checkpoint {
        Checkpoint {
            id: CheckpointId(id),
            project_id: ProjectId(1),
            name: format!("c{id}"),
            description: String::new(),
            trigger: CheckpointTrigger::Manual,
            commit_id: None,
            pause_reason: None,
            metadata: CheckpointMetadata {
                project_id: ProjectId(1),
                phase: ProjectPhase::Discovery,
                tasks_completed: 0,
                tasks_total: 0,
                agents_active: Vec::new(),
                last_task_completed: None,
                context_items_count: 0,
                total_cost_usd: 0.0,
                skipped_files: Vec::new(),
            },
            created_at: at,
            pinned,
        }
    }

    #[test]
    fn the_largest_windows_keep_everything_instead_of_overflowing_the_calendar() {
        // Found by the API's schema-driven tester: `now - keep_daily_days` panicked.
        let now = datetime!(2026-06-30 12:00 UTC);
        let all = [
            cp(3, now, false),
            cp(2, datetime!(2001-01-01 0:00 UTC), false),
            cp(1, datetime!(1970-01-01 0:00 UTC), false),
        ];
        let policy = RetentionPolicy { keep_last: 0, keep_within_seconds: 0, keep_daily_days: u32::MAX };
        assert_eq!(to_prune(&all, &policy, None, now), Vec::<CheckpointId>::new());
        let policy = RetentionPolicy { keep_last: 0, keep_within_seconds: u64::MAX, keep_daily_days: 0 };
        assert_eq!(to_prune(&all, &policy, None, now), Vec::<CheckpointId>::new());
        let policy = RetentionPolicy { keep_last: 0, keep_within_seconds: 0, keep_daily_days: 0 };
        assert_eq!(to_prune(&all, &policy, None, now), ids(&[3, 2, 1]));
    }

    #[test]
    fn each_rule_keeps_its_checkpoints_and_pins_and_the_pause_are_never_pruned() {
        let now = datetime!(2026-06-30 12:00 UTC);
        // Newest first: two today, two yesterday, one a month ago (pinned), one a year ago,
        // one from last week (the pause's).
        let all = vec![
            cp(9, now - time::Duration::hours(1), false),
            cp(8, now - time::Duration::hours(2), false),
            cp(7, now - time::Duration::hours(25), false),
            cp(6, now - time::Duration::hours(26), false),
            cp(5, now - time::Duration::days(7), false),
            cp(4, now - time::Duration::days(30), true),
            cp(3, now - time::Duration::days(365), false),
        ];
        let last_two = RetentionPolicy { keep_last: 2, keep_within_seconds: 0, keep_daily_days: 0 };
        assert_eq!(to_prune(&all, &last_two, None, now), ids(&[7, 6, 5, 3]));
        assert_eq!(
            to_prune(&all, &last_two, Some(CheckpointId(5)), now),
            ids(&[7, 6, 3]),
            "the pause's is kept"
        );
        let a_day = RetentionPolicy { keep_last: 1, keep_within_seconds: 86_400, keep_daily_days: 0 };
        assert_eq!(to_prune(&all, &a_day, None, now), ids(&[7, 6, 5, 3]));
        let daily = RetentionPolicy { keep_last: 1, keep_within_seconds: 0, keep_daily_days: 10 };
        assert_eq!(
            to_prune(&all, &daily, None, now),
            ids(&[8, 6, 3]),
            "the newest of each of the last 10 days"
        );
    }
}
