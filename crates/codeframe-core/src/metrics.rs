//! Numbers an operator watches. Transitions report through the [`metrics`] facade (a no-op
//! until the application installs a recorder, as `codeframe serve` does for `/metrics`);
//! levels that live in the database are read on demand ([`ProjectService::gauges`]).
//!
//! Names (Prometheus conventions): `codeframe_transition_duration_seconds{transition,outcome}`
//! (pause, resume, create_checkpoint, restore_checkpoint, …; outcome `ok` or the error class),
//! `codeframe_items_archived_total`.

use std::time::Instant;

use codeframe_models::{ProjectId, Tier};
use codeframe_persistence::{PoolUsage, context, events, permits};

use crate::{ProjectService, Result};

/// Records how long a transition took and how it ended.
pub(crate) fn transition<T>(what: &'static str, started: Instant, result: &Result<T>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.class().label(),
    };
    metrics::histogram!(
        "codeframe_transition_duration_seconds",
        "transition" => transition_label(what),
        "outcome" => outcome
    )
    .record(started.elapsed().as_secs_f64());
}

/// `"create checkpoint"` → `"create_checkpoint"` (labels are identifiers).
fn transition_label(what: &'static str) -> &'static str {
    match what {
        "create checkpoint" => "create_checkpoint",
        "restore checkpoint" => "restore_checkpoint",
        "delete checkpoint" => "delete_checkpoint",
        other if !other.contains(' ') => other,
        _ => "other",
    }
}

/// Counts context items archived by flash saves.
pub(crate) fn items_archived(n: i64) {
    metrics::counter!("codeframe_items_archived_total").increment(u64::try_from(n).unwrap_or(0));
}

/// Levels read from the database and this process at one moment (see [`ProjectService::gauges`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceGauges {
    /// Live run-gate leases, every project, every process.
    pub leases_held: i64,
    /// The newest `seq` of the event log.
    pub event_head: i64,
    /// Active context per project and tier: (project, tier, items, tokens).
    pub context: Vec<(ProjectId, Tier, i64, i64)>,
    /// This process's connection pool.
    pub pool: PoolUsage,
    /// Transitions running in this process.
    pub transitions_in_flight: usize,
}

impl ProjectService {
    /// The levels an operator watches, read now (three small queries, no lock).
    pub async fn gauges(&self) -> Result<ServiceGauges> {
        let mut read = self.inner.db.read().await?;
        let now = self.inner.clock.now();
        let gauges = ServiceGauges {
            leases_held: permits::count_live(&mut read, now).await?,
            event_head: events::head(&mut read).await?,
            context: context::active_totals_by_project(&mut read).await?,
            pool: self.inner.db.pool_usage(),
            transitions_in_flight: self.transitions_in_flight(),
        };
        Ok(gauges)
    }
}
