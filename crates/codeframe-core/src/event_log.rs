//! The durable event log, seen from the service: recording events inside a transaction,
//! delivering them after it commits, paging them, tailing them and retention.
//!
//! Every change that reports an event appends it through its own transaction
//! ([`Outbox::record`]), so a rolled-back change publishes nothing and a committed one is in
//! the log even if the process dies a moment later. After the commit the service feeds its
//! in-process [`EventSink`](crate::EventSink) and wakes the tails of this process at once;
//! tails also poll the log (one indexed range read per interval, whatever the number of
//! subscribers), so events written by other processes arrive within the poll interval. On
//! PostgreSQL, where those processes may run on other machines, the first tail also starts a
//! listener (`LISTEN codeframe_events`) that wakes the tails as soon as any instance commits an
//! event; when its connection drops it reconnects and wakes them all, and they catch up from
//! their cursors (the log, not the notification, is what they read, so nothing is lost).

use std::sync::{Arc, Weak};
use std::time::Duration;

use codeframe_models::{EventKind, EventSeq, ProjectEvent, ProjectId};
use codeframe_persistence::{EventListener, Tx, events};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::{CoreError, ProjectService, Result};

/// Most events read from the log in one query.
const READ_BATCH: i64 = 1000;

/// Events recorded inside a transaction; delivered in-process once it commits.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    events: Vec<ProjectEvent>,
}

impl Outbox {
    /// Appends an event to the log through `tx`.
    pub(crate) async fn record(
        &mut self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        kind: EventKind,
        at: OffsetDateTime,
    ) -> Result<()> {
        let event = events::append(tx, project_id, kind, at).await?;
        self.events.push(event);
        Ok(())
    }
}

/// A page of a project's events (see [`ProjectService::events_since`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// The events, oldest first.
    pub events: Vec<ProjectEvent>,
    /// The `since` to ask for the next page: the last event's `seq`, or the `since` given.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub next_since: EventSeq,
    /// Whether more events follow (the page was full).
    pub has_more: bool,
    /// The newest `seq` of the whole log when the page was read.
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub head: EventSeq,
}

/// The in-process side of the log: the newest `seq` this process committed (or heard of from
/// other processes), watched by tails.
#[derive(Debug)]
pub(crate) struct LocalLog {
    committed: watch::Sender<EventSeq>,
    /// The task listening for other processes' events (PostgreSQL), started by the first tail.
    listener: tokio::sync::OnceCell<AbortOnDrop>,
}

impl Default for LocalLog {
    fn default() -> Self {
        Self { committed: watch::channel(0).0, listener: tokio::sync::OnceCell::new() }
    }
}

impl LocalLog {
    /// Wakes every tail: an event up to `seq` committed somewhere (0: something may have).
    fn wake(&self, seq: EventSeq) {
        self.committed.send_modify(|newest| *newest = (*newest).max(seq));
    }
}

/// A task aborted when its owner (the service's shared state) is dropped.
#[derive(Debug)]
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Forwards other processes' events to this one's tails until the service is gone.
async fn forward_notifications(
    mut listener: EventListener,
    weak: Weak<crate::service::Inner>,
    retry: Duration,
) {
    loop {
        let heard = listener.next().await;
        let Some(inner) = weak.upgrade() else { return };
        match heard {
            Ok(Some(seq)) => inner.log.wake(seq),
            // Reconnecting: announcements may have been missed; every tail re-reads from its cursor.
            Ok(None) => inner.log.wake(0),
            Err(e) => {
                warn!(error = %e, "event listener failed; retrying");
                drop(inner);
                tokio::time::sleep(retry).await;
                let Some(inner) = weak.upgrade() else { return };
                inner.log.wake(0);
            }
        }
    }
}

impl ProjectService {
    /// Delivers committed events: wakes this process's tails, then feeds the event sink.
    /// A failing sink is logged, never returned.
    pub(crate) async fn deliver(&self, outbox: Outbox) {
        let Some(last) = outbox.events.last().map(|e| e.seq) else { return };
        self.inner.log.committed.send_if_modified(|seq| {
            let newer = last > *seq;
            *seq = (*seq).max(last);
            newer
        });
        for event in &outbox.events {
            if let Err(e) = self.inner.events.publish(event).await {
                warn!(project_id = %event.project_id, seq = event.seq, event = event.kind.name(), error = %e, "event sink failed");
            }
        }
    }

    /// The newest `seq` of the log (0 when it is empty).
    pub async fn event_head(&self) -> Result<EventSeq> {
        Ok(events::head(&mut self.inner.db.conn().await?).await?)
    }

    /// The project's events after `since`, oldest first, at most `limit` (1–1000).
    ///
    /// A `since` older than retention kept, or newer than anything in the log, is
    /// [`CoreError::EventGap`]: events were missed and the client should reload the project's
    /// state. `since = 0` reads from the oldest event kept, unless retention already removed
    /// some of this project's events.
    pub async fn events_since(
        &self,
        project_id: ProjectId,
        since: EventSeq,
        limit: i64,
    ) -> Result<EventPage> {
        if !(1..=READ_BATCH).contains(&limit) || since < 0 {
            return Err(CoreError::Invalid(codeframe_models::ModelError::Invalid {
                field: "events query",
                reason: format!(
                    "since must be ≥ 0 and limit 1..={READ_BATCH} (got since {since}, limit {limit})"
                ),
            }));
        }
        let mut conn = self.inner.db.conn().await?;
        codeframe_persistence::projects::find(&mut conn, project_id)
            .await?
            .ok_or_else(|| CoreError::project_not_found(project_id))?;
        // Read the page first and the horizon after it: retention that ran in between shows as
        // a gap (the client reloads), never as a page with a hole in it.
        let page = events::list_since(&mut conn, project_id, since, limit).await?;
        let pruned_through = events::pruned_through(&mut conn, project_id).await?;
        let head = events::head(&mut conn).await?;
        if since < pruned_through || since > head {
            return Err(CoreError::EventGap { project_id, since, pruned_through, head });
        }
        let has_more = i64::try_from(page.len()).unwrap_or(i64::MAX) == limit;
        let next_since = page.last().map_or(since, |e| e.seq);
        Ok(EventPage { events: page, next_since, has_more, head })
    }

    /// Periodic upkeep for a long-running process: event retention over every project, and
    /// expired permit leases deleted (they block nothing, but nobody needs them).
    pub async fn housekeeping(&self) -> Result<()> {
        self.prune_events(None).await?;
        let expired = codeframe_persistence::permits::delete_expired(
            &mut self.inner.db.conn().await?,
            crate::gate::lease_now(),
        )
        .await?;
        debug!(expired, "expired permit leases deleted");
        Ok(())
    }

    /// The `seq` after which the project's events are all kept: retention deleted everything
    /// up to it (0 when it deleted nothing). Reading from here never meets a gap.
    pub async fn event_horizon(&self, project_id: ProjectId) -> Result<EventSeq> {
        let mut conn = self.inner.db.conn().await?;
        codeframe_persistence::projects::find(&mut conn, project_id)
            .await?
            .ok_or_else(|| CoreError::project_not_found(project_id))?;
        Ok(events::pruned_through(&mut conn, project_id).await?)
    }

    /// A tail of the log from `after` (exclusive; `None`: from the current head), of every
    /// project or of one. Each [`EventTail::next_batch`] waits for events and returns them in
    /// `seq` order.
    pub async fn tail_events(
        &self,
        project_id: Option<ProjectId>,
        after: Option<EventSeq>,
    ) -> Result<EventTail> {
        let cursor = match after {
            Some(seq) => seq,
            None => self.event_head().await?,
        };
        self.listen_for_other_processes().await;
        Ok(EventTail {
            service: self.clone(),
            project_id,
            cursor,
            wake: self.inner.log.committed.subscribe(),
            poll: self.inner.config.poll_interval,
        })
    }

    /// Starts (once per service) the task that wakes this process's tails when another process
    /// commits an event, where the database can announce it (PostgreSQL). When it cannot be
    /// started the tails still poll, and the next tail tries again.
    async fn listen_for_other_processes(&self) {
        let started = self
            .inner
            .log
            .listener
            .get_or_try_init(|| async {
                let listener = self.inner.db.event_listener().await?;
                let retry = self.inner.config.poll_interval;
                let weak = Arc::downgrade(&self.inner);
                Ok::<_, codeframe_persistence::DbError>(AbortOnDrop(
                    listener.map(|l| tokio::spawn(forward_notifications(l, weak, retry))),
                ))
            })
            .await;
        if let Err(e) = started {
            warn!(error = %e, "cannot listen for other processes' events; tails poll the log");
        }
    }

    /// Applies the retention of [`crate::EventRetention`] to one project's events, or to every
    /// project's. Returns how many events were deleted.
    pub async fn prune_events(&self, project_id: Option<ProjectId>) -> Result<u64> {
        let retention = self.inner.config.event_retention;
        let older_than = self.now() - retention.max_age;
        let keep = i64::from(retention.max_events_per_project);
        let mut conn = self.inner.db.conn().await?;
        let cuts = events::prune_plan(&mut conn, project_id, older_than, keep).await?;
        drop(conn);
        if cuts.is_empty() {
            return Ok(0);
        }
        let mut tx = self.inner.db.begin().await?;
        let mut deleted = 0;
        for (project, through) in &cuts {
            deleted += events::prune_through(&mut tx, *project, *through).await?;
        }
        tx.commit().await?;
        info!(projects = cuts.len(), deleted, "event log pruned");
        Ok(deleted)
    }
}

/// A tail of the event log (see [`ProjectService::tail_events`]).
#[derive(Debug)]
pub struct EventTail {
    service: ProjectService,
    project_id: Option<ProjectId>,
    cursor: EventSeq,
    wake: watch::Receiver<EventSeq>,
    poll: Duration,
}

impl EventTail {
    /// The `seq` of the last event returned (or the starting point).
    pub fn cursor(&self) -> EventSeq {
        self.cursor
    }

    /// Waits until events after the cursor exist and returns them (at least one, at most
    /// 1000), oldest first; the cursor moves past them.
    pub async fn next_batch(&mut self) -> Result<Vec<ProjectEvent>> {
        loop {
            // Mark the wake-up seen before reading, so a commit after the read wakes us.
            self.wake.borrow_and_update();
            let mut conn = self.service.inner.db.conn().await?;
            let batch = match self.project_id {
                Some(p) => events::list_since(&mut conn, p, self.cursor, READ_BATCH).await?,
                None => events::tail(&mut conn, self.cursor, READ_BATCH).await?,
            };
            drop(conn);
            if let Some(last) = batch.last() {
                self.cursor = last.seq;
                debug!(events = batch.len(), cursor = self.cursor, "event tail read");
                return Ok(batch);
            }
            tokio::select! {
                changed = self.wake.changed() => {
                    if changed.is_err() {
                        // The service that fed the wake-ups is gone: polling alone remains.
                        tokio::time::sleep(self.poll).await;
                    }
                }
                () = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}
