//! The `permits` table: run-gate permits as leases, and the project row's pausing marker.
//!
//! A permit row says "this holder's agent is doing a unit of work on this project until
//! `expires_at`". Holders renew their leases while they work; a holder that dies stops
//! blocking a pause when its leases expire. A pause closes the gate by writing a pausing
//! marker (holder, until) on the project row; taking a permit is refused while the project
//! is paused or the marker lies ahead. Taking a permit is one statement, so it is ordered with
//! the marker's write: either the permit exists before the gate closes (and the pause waits
//! for it) or it is refused.

use codeframe_models::{ProjectId, ProjectStatus};
use sqlx::FromRow;
use time::OffsetDateTime;

use crate::rows::{fmt, opt_ts, parse, ts};
use crate::{DbError, Executor, Result};

/// One live or expired permit lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Row id (the permit id).
    pub id: i64,
    /// The project.
    pub project_id: ProjectId,
    /// The agent doing the work.
    pub agent_id: String,
    /// Who holds it (a service instance in some process).
    pub holder: String,
    /// When it was taken.
    pub acquired_at: OffsetDateTime,
    /// When it lapses unless renewed.
    pub expires_at: OffsetDateTime,
}

#[derive(FromRow)]
struct LeaseRow {
    id: i64,
    project_id: ProjectId,
    agent_id: String,
    holder: String,
    acquired_at: String,
    expires_at: String,
}

impl TryFrom<LeaseRow> for Lease {
    type Error = DbError;

    fn try_from(r: LeaseRow) -> Result<Self> {
        Ok(Lease {
            acquired_at: ts("permits", "acquired_at", &r.acquired_at)?,
            expires_at: ts("permits", "expires_at", &r.expires_at)?,
            id: r.id,
            project_id: r.project_id,
            agent_id: r.agent_id,
            holder: r.holder,
        })
    }
}

/// What decides whether a project's gate is open: its status and its pausing marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRow {
    /// Lifecycle status (`paused` closes the gate).
    pub status: ProjectStatus,
    /// Who is pausing the project, while a pause is in progress.
    pub pausing_holder: Option<String>,
    /// Until when the pausing marker holds unless renewed.
    pub pausing_until: Option<OffsetDateTime>,
}

impl GateRow {
    /// Whether a pause in progress holds the gate closed at `now`.
    pub fn pausing_at(&self, now: OffsetDateTime) -> bool {
        self.pausing_until.is_some_and(|until| until > now)
    }
}

#[derive(FromRow)]
struct GateSqlRow {
    status: String,
    pausing_holder: Option<String>,
    pausing_until: Option<String>,
}

/// The gate-deciding fields of a project, if it exists.
pub async fn gate(ex: &mut impl Executor, project_id: ProjectId) -> Result<Option<GateRow>> {
    let row: Option<GateSqlRow> = on!(ex, c => sqlx::query_as("SELECT status, pausing_holder, pausing_until FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(c)
            .await)?;
    row.map(|r| {
        Ok(GateRow {
            status: parse("projects", "status", &r.status)?,
            pausing_until: opt_ts("projects", "pausing_until", r.pausing_until.as_deref())?,
            pausing_holder: r.pausing_holder,
        })
    })
    .transpose()
}

/// Takes a lease if the project accepts work at `now`: it exists, is not paused, and no
/// unexpired pausing marker closes it. One statement. `None` when refused (read
/// [`gate`] to learn why).
pub async fn acquire(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: &str,
    holder: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<Option<i64>> {
    let now = fmt(now);
    // On PostgreSQL the project row is share-locked: a pause writing its marker meanwhile
    // waits for this permit to commit (and then sees it), or this statement waits for the
    // marker and re-reads the row (and is refused). SQLite's single writer orders them anyway.
    let id: Option<i64> = on!(ex, c, backend => sqlx::query_scalar(match backend {
        crate::Backend::Sqlite => "INSERT INTO permits (project_id, agent_id, holder, acquired_at, expires_at) \
         SELECT id, $1, $2, $3, $4 FROM projects \
         WHERE id = $5 AND status <> 'paused' AND (pausing_until IS NULL OR pausing_until <= $6) \
         RETURNING id",
        _ => "INSERT INTO permits (project_id, agent_id, holder, acquired_at, expires_at) \
         SELECT id, $1, $2, $3, $4 FROM projects \
         WHERE id = $5 AND status <> 'paused' AND (pausing_until IS NULL OR pausing_until <= $6) \
         FOR SHARE RETURNING id",
    })
    .bind(agent_id)
    .bind(holder)
    .bind(&now)
    .bind(fmt(expires_at))
    .bind(project_id)
    .bind(&now)
    .fetch_optional(c)
    .await)?;
    Ok(id)
}

/// Extends every lease `holder` has on the project to `expires_at`; returns the ids still held
/// (a lease missing from the answer was revoked by a pause or released).
pub async fn renew(
    ex: &mut impl Executor,
    project_id: ProjectId,
    holder: &str,
    expires_at: OffsetDateTime,
) -> Result<Vec<i64>> {
    Ok(on!(ex, c => sqlx::query_scalar(
        "UPDATE permits SET expires_at = $1 WHERE project_id = $2 AND holder = $3 RETURNING id",
    )
    .bind(fmt(expires_at))
    .bind(project_id)
    .bind(holder)
    .fetch_all(c)
    .await)?)
}

/// Extends one live lease of the project to `expires_at`; `None` when it is gone or expired at
/// `now` (an expired lease cannot come back: a pause may have gone on without it).
pub async fn renew_one(
    ex: &mut impl Executor,
    project_id: ProjectId,
    id: i64,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<Option<Lease>> {
    let row: Option<LeaseRow> = on!(ex, c => sqlx::query_as(
        "UPDATE permits SET expires_at = $1 WHERE id = $2 AND project_id = $3 AND expires_at > $4 \
         RETURNING id, project_id, agent_id, holder, acquired_at, expires_at",
    )
    .bind(fmt(expires_at))
    .bind(id)
    .bind(project_id)
    .bind(fmt(now))
    .fetch_optional(c)
    .await)?;
    row.map(Lease::try_from).transpose()
}

/// One lease of the project, live or expired, if it exists.
pub async fn find(ex: &mut impl Executor, project_id: ProjectId, id: i64) -> Result<Option<Lease>> {
    let row: Option<LeaseRow> = on!(ex, c => sqlx::query_as(
        "SELECT id, project_id, agent_id, holder, acquired_at, expires_at FROM permits WHERE id = $1 AND project_id = $2",
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(c)
    .await)?;
    row.map(Lease::try_from).transpose()
}

/// Ends one lease of the project; `false` when it was not there.
pub async fn release_of_project(ex: &mut impl Executor, project_id: ProjectId, id: i64) -> Result<bool> {
    let done = on!(ex, c => sqlx::query("DELETE FROM permits WHERE id = $1 AND project_id = $2")
        .bind(id)
        .bind(project_id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected() > 0)
}

/// Ends a lease; `false` when it was already gone.
pub async fn release(ex: &mut impl Executor, id: i64) -> Result<bool> {
    let done = on!(ex, c => sqlx::query("DELETE FROM permits WHERE id = $1").bind(id).execute(c).await.map(crate::db::Done::of))?;
    Ok(done.rows_affected() > 0)
}

/// The project's leases that have not expired at `now`, oldest first.
pub async fn live(ex: &mut impl Executor, project_id: ProjectId, now: OffsetDateTime) -> Result<Vec<Lease>> {
    let rows: Vec<LeaseRow> = on!(ex, c => sqlx::query_as(
        "SELECT id, project_id, agent_id, holder, acquired_at, expires_at FROM permits \
         WHERE project_id = $1 AND expires_at > $2 ORDER BY id",
    )
    .bind(project_id)
    .bind(fmt(now))
    .fetch_all(c)
    .await)?;
    rows.into_iter().map(Lease::try_from).collect()
}

/// Leases of every project that have not expired at `now`.
pub async fn count_live(ex: &mut impl Executor, now: OffsetDateTime) -> Result<i64> {
    Ok(on!(ex, c => sqlx::query_scalar("SELECT COUNT(*) FROM permits WHERE expires_at > $1")
        .bind(fmt(now))
        .fetch_one(c)
        .await)?)
}

/// Ends every lease of the project (a pause that committed interrupts what is left).
/// Returns how many there were.
pub async fn revoke_all(ex: &mut impl Executor, project_id: ProjectId) -> Result<u64> {
    let done = on!(ex, c => sqlx::query("DELETE FROM permits WHERE project_id = $1")
        .bind(project_id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected())
}

/// Deletes leases that expired before `now` (housekeeping; expired leases block nothing).
pub async fn delete_expired(ex: &mut impl Executor, now: OffsetDateTime) -> Result<u64> {
    let done = on!(ex, c => sqlx::query("DELETE FROM permits WHERE expires_at <= $1")
        .bind(fmt(now))
        .execute(c)
        .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected())
}

/// Closes the gate for a pause: writes the pausing marker if the project is pausable and no
/// other pause holds an unexpired marker. `false` when refused (read [`gate`] to learn why).
pub async fn set_pausing(
    ex: &mut impl Executor,
    project_id: ProjectId,
    holder: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> Result<bool> {
    let done = on!(ex, c => sqlx::query(
        "UPDATE projects SET pausing_holder = $1, pausing_until = $2 \
         WHERE id = $3 AND status IN ('planning','running','active') \
         AND (pausing_until IS NULL OR pausing_until <= $4 OR pausing_holder = $5)",
    )
    .bind(holder)
    .bind(fmt(until))
    .bind(project_id)
    .bind(fmt(now))
    .bind(holder)
    .execute(c)
    .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected() > 0)
}

/// Extends the pausing marker `holder` wrote; `false` when it is no longer theirs.
pub async fn renew_pausing(
    ex: &mut impl Executor,
    project_id: ProjectId,
    holder: &str,
    until: OffsetDateTime,
) -> Result<bool> {
    let done = on!(ex, c => sqlx::query("UPDATE projects SET pausing_until = $1 WHERE id = $2 AND pausing_holder = $3")
        .bind(fmt(until))
        .bind(project_id)
        .bind(holder)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected() > 0)
}

/// Removes the pausing marker `holder` wrote (the gate opens unless the project is paused);
/// `false` when it was not theirs.
pub async fn clear_pausing(ex: &mut impl Executor, project_id: ProjectId, holder: &str) -> Result<bool> {
    let done = on!(ex, c => sqlx::query(
        "UPDATE projects SET pausing_holder = NULL, pausing_until = NULL WHERE id = $1 AND pausing_holder = $2",
    )
    .bind(project_id)
    .bind(holder)
    .execute(c)
    .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected() > 0)
}
