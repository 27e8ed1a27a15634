//! The `events` table: the durable event log (an outbox).
//!
//! An event is appended through the same transaction as the change it reports, so a
//! rolled-back change publishes nothing and a committed one is never lost. Readers page by
//! `seq`. Retention deletes a prefix of a project's events and records how far it went in
//! `event_horizons`, so a reader asking for events after an older `seq` learns it has a gap.

use codeframe_models::{EventKind, EventSeq, ProjectEvent, ProjectId};
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, ts};
use crate::{DbError, Executor, Result};

#[derive(FromRow)]
struct Row {
    seq: i64,
    project_id: ProjectId,
    payload: String,
    created_at: String,
}

impl TryFrom<Row> for ProjectEvent {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self> {
        let kind: EventKind = serde_json::from_str(&r.payload).map_err(|e| DbError::Corrupt {
            entity: "events",
            field: "payload",
            value: r.payload.clone(),
            reason: e.to_string(),
        })?;
        Ok(ProjectEvent {
            seq: r.seq,
            project_id: r.project_id,
            timestamp: ts("events", "created_at", &r.created_at)?,
            kind,
        })
    }
}

/// Appends an event and returns it with its `seq`. The event becomes visible to readers when
/// the executor's transaction commits, and disappears with it if it rolls back.
pub async fn append(
    ex: &mut impl Executor,
    project_id: ProjectId,
    kind: EventKind,
    at: OffsetDateTime,
) -> Result<ProjectEvent> {
    let payload = serde_json::to_string(&kind).map_err(|e| DbError::Corrupt {
        entity: "events",
        field: "payload",
        value: format!("{kind:?}"),
        reason: e.to_string(),
    })?;
    let seq: i64 = on!(ex, c => sqlx::query_scalar(
        "INSERT INTO events (project_id, kind, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING seq",
    )
    .bind(project_id)
    .bind(kind.name())
    .bind(&payload)
    .bind(fmt(at))
    .fetch_one(c)
    .await)?;
    Ok(ProjectEvent { seq, project_id, timestamp: codeframe_models::timestamp::normalize(at), kind })
}

/// A project's events with `seq > since`, oldest first, at most `limit`.
pub async fn list_since(
    ex: &mut impl Executor,
    project_id: ProjectId,
    since: EventSeq,
    limit: i64,
) -> Result<Vec<ProjectEvent>> {
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(
        "SELECT seq, project_id, payload, created_at FROM events \
         WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(project_id)
    .bind(since)
    .bind(limit)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(ProjectEvent::try_from).collect()
}

/// Every project's events with `seq > since`, oldest first, at most `limit` (what a server
/// tailing the log reads: one indexed range scan, whatever the number of subscribers).
pub async fn tail(ex: &mut impl Executor, since: EventSeq, limit: i64) -> Result<Vec<ProjectEvent>> {
    let rows: Vec<Row> = on!(ex, c => sqlx::query_as(
        "SELECT seq, project_id, payload, created_at FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(ProjectEvent::try_from).collect()
}

/// The newest `seq` written (0 when nothing was ever written; retention deleting every event
/// does not move it back).
pub async fn head(ex: &mut impl Executor) -> Result<EventSeq> {
    // SQLite's two-argument MAX is PostgreSQL's GREATEST.
    Ok(on!(ex, c, backend => sqlx::query_scalar::<_, Option<i64>>(match backend {
        crate::Backend::Sqlite => "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), \
                    COALESCE((SELECT MAX(pruned_through) FROM event_horizons), 0))",
        _ => "SELECT GREATEST(COALESCE((SELECT MAX(seq) FROM events), 0), \
                    COALESCE((SELECT MAX(pruned_through) FROM event_horizons), 0))",
    })
    .fetch_one(c)
    .await)?
    .unwrap_or(0))
}

/// The highest `seq` of the project that retention deleted (0 when none was).
pub async fn pruned_through(ex: &mut impl Executor, project_id: ProjectId) -> Result<EventSeq> {
    Ok(on!(ex, c => sqlx::query_scalar::<_, i64>("SELECT pruned_through FROM event_horizons WHERE project_id = $1")
        .bind(project_id)
        .fetch_optional(c)
        .await)?
        .unwrap_or(0))
}

/// Deletes a project's events with `seq <= through` and records the horizon. Returns how many
/// were deleted.
pub async fn prune_through(ex: &mut impl Executor, project_id: ProjectId, through: EventSeq) -> Result<u64> {
    let done = on!(ex, c => sqlx::query("DELETE FROM events WHERE project_id = $1 AND seq <= $2")
        .bind(project_id)
        .bind(through)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    on!(ex, c, backend => sqlx::query(match backend {
        crate::Backend::Sqlite => "INSERT INTO event_horizons (project_id, pruned_through) VALUES ($1, $2) \
         ON CONFLICT(project_id) DO UPDATE SET pruned_through = MAX(pruned_through, excluded.pruned_through)",
        _ => "INSERT INTO event_horizons (project_id, pruned_through) VALUES ($1, $2) \
         ON CONFLICT(project_id) DO UPDATE \
         SET pruned_through = GREATEST(event_horizons.pruned_through, excluded.pruned_through)",
    })
    .bind(project_id)
    .bind(through)
    .execute(c)
    .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected())
}

/// What retention would delete: for each project (or the one given) whose oldest events were
/// written before `older_than` or that holds more than `keep_per_project` events, the `seq`
/// through which its events go. Always a prefix of each project's events, so the horizon says
/// exactly what is gone. Reads only; apply each cut with [`prune_through`].
pub async fn prune_plan(
    ex: &mut impl Executor,
    project_id: Option<ProjectId>,
    older_than: OffsetDateTime,
    keep_per_project: i64,
) -> Result<Vec<(ProjectId, EventSeq)>> {
    let projects: Vec<ProjectId> = match project_id {
        Some(p) => vec![p],
        None => {
            on!(ex, c => sqlx::query_scalar("SELECT DISTINCT project_id FROM events").fetch_all(c).await)?
        }
    };
    let older_than = fmt(older_than);
    let mut cuts = Vec::new();
    for project in projects {
        // By age: the newest expired event, when the oldest one has expired (the usual case,
        // nothing expired, costs one index probe).
        let oldest: Option<String> = on!(ex, c => sqlx::query_scalar("SELECT created_at FROM events WHERE project_id = $1 ORDER BY seq LIMIT 1")
                .bind(project)
                .fetch_optional(c)
                .await)?;
        let mut cut = None;
        if oldest.is_some_and(|t| t < older_than) {
            cut = on!(ex, c => sqlx::query_scalar::<_, Option<i64>>(
                "SELECT MAX(seq) FROM events WHERE project_id = $1 AND created_at < $2",
            )
            .bind(project)
            .bind(&older_than)
            .fetch_one(c)
            .await)?;
        }
        // By count: the first event beyond the newest `keep_per_project`.
        let beyond: Option<i64> = on!(ex, c => sqlx::query_scalar(
            "SELECT seq FROM events WHERE project_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2",
        )
        .bind(project)
        .bind(keep_per_project)
        .fetch_optional(c)
        .await)?;
        if let Some(through) = cut.into_iter().chain(beyond).max() {
            cuts.push((project, through));
        }
    }
    Ok(cuts)
}
