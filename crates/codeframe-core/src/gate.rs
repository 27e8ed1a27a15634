//! The run gate, in the database: permits are leases, a pause closes the gate with a marker on
//! the project row, and every process sees the same gate.
//!
//! - [`ProjectService::enter`] takes a lease in one statement that refuses when the project
//!   is paused or a pause holds the gate; the [`Permit`] it returns is renewed in the
//!   background while it is held and released when it is dropped.
//! - A pause writes the pausing marker (refusing new permits everywhere from that moment),
//!   then waits for every live lease of the project, whichever process holds it, up to the
//!   drain deadline. A holder killed with kill -9 stops blocking once its lease expires.
//! - Per process, one small task per project with local permits renews them and watches the
//!   project row, so a permit learns within the poll interval that a pause began elsewhere
//!   (at once when it began in this process).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use codeframe_models::{EventKind, ProjectId, ProjectStatus, timestamp, validate};
use codeframe_persistence::Tx;
use codeframe_persistence::permits::{self, Lease};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::event_log::Outbox;
use crate::{ConflictKind, CoreError, ProjectService, Result};

/// One permit of a project, as the database has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PermitInfo {
    /// The permit's id.
    pub permit_id: i64,
    /// The agent doing the work.
    pub agent_id: String,
    /// Who holds it (`host:pid:instance:node` of a service).
    pub holder: String,
    /// When it was taken.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub acquired_at: OffsetDateTime,
    /// When it lapses unless renewed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl From<Lease> for PermitInfo {
    fn from(l: Lease) -> Self {
        Self {
            permit_id: l.id,
            agent_id: l.agent_id,
            holder: l.holder,
            acquired_at: l.acquired_at,
            expires_at: l.expires_at,
        }
    }
}

/// A permit held outside any process: an agent speaking HTTP, a shell script. Its holder
/// renews it explicitly ([`ProjectService::renew_permit`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemotePermit {
    /// The permit's id (pass it with the agent's writes while a pause drains).
    pub permit_id: i64,
    /// The project.
    pub project_id: ProjectId,
    /// The agent doing the work.
    pub agent_id: String,
    /// When it lapses unless renewed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Whether a pause has begun: finish or stop the unit, then release.
    pub pause_requested: bool,
}

impl RemotePermit {
    fn from_lease(l: Lease, pause_requested: bool) -> Self {
        Self {
            permit_id: l.id,
            project_id: l.project_id,
            agent_id: l.agent_id,
            expires_at: l.expires_at,
            pause_requested,
        }
    }
}

/// The run gate of a project, as every process sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GateStatus {
    /// The project.
    pub project_id: ProjectId,
    /// Whether new permits are refused (the project is paused or being paused).
    pub closed: bool,
    /// Whether a pause is in progress (draining or committing).
    pub pausing: bool,
    /// Live permits, oldest first.
    pub permits: Vec<PermitInfo>,
}

/// Permission for one unit of an agent's work. While it is held its lease is renewed; dropping
/// it (or [`Permit::release`]) ends the unit. A pause anywhere waits for it, up to its deadline.
#[derive(Debug)]
pub struct Permit {
    id: i64,
    agent_id: String,
    local: Arc<LocalGate>,
    service: ProjectService,
    closing: watch::Receiver<bool>,
    released: bool,
}

impl Permit {
    /// The agent holding the permit.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The permit's id (its lease row).
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The project.
    pub fn project_id(&self) -> ProjectId {
        self.local.project_id
    }

    /// Whether a pause of the project has begun (or finished): the agent should finish or stop
    /// its unit early. Seen at once for a pause in this process, within the service's poll
    /// interval for one elsewhere.
    pub fn is_pause_requested(&self) -> bool {
        *self.closing.borrow()
    }

    /// Completes when a pause of the project begins (at once if one has).
    pub async fn pause_requested(&self) {
        let mut rx = self.closing.clone();
        // An error means the gate's state is gone with its service: nothing will tell us.
        if rx.wait_for(|closing| *closing).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Ends the unit now and waits until the database knows (dropping the permit does the
    /// same in the background).
    pub async fn release(mut self) -> Result<()> {
        self.released = true;
        self.local.forget(self.id);
        let result = self.service.release_lease(self.id).await;
        self.local.released.notify_waiters();
        result
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.local.forget(self.id);
        let (service, id, local) = (self.service.clone(), self.id, Arc::clone(&self.local));
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = service.release_lease(id).await {
                        warn!(permit_id = id, error = %e, "permit not released; its lease will expire");
                    }
                    local.released.notify_waiters();
                });
            }
            // No runtime to write with: the lease expires on its own.
            Err(_) => warn!(permit_id = id, "permit dropped outside a runtime; its lease will expire"),
        }
    }
}

/// What this process knows of one project's gate.
#[derive(Debug)]
pub(crate) struct LocalGate {
    project_id: ProjectId,
    /// True while the project refuses work (pausing or paused), as last seen.
    closing: watch::Sender<bool>,
    /// Permits this process holds.
    held: Mutex<HashSet<i64>>,
    /// Whether the keeper task (renewal, watching the row) runs.
    keeper_running: AtomicBool,
    /// A permit of this process was released (wakes this process's drains at once).
    released: Notify,
}

impl LocalGate {
    fn new(project_id: ProjectId) -> Self {
        Self {
            project_id,
            closing: watch::channel(false).0,
            held: Mutex::new(HashSet::new()),
            keeper_running: AtomicBool::new(false),
            released: Notify::new(),
        }
    }

    fn held(&self) -> MutexGuard<'_, HashSet<i64>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn forget(&self, id: i64) {
        self.held().remove(&id);
    }

    pub(crate) fn set_closing(&self, closing: bool) {
        self.closing.send_if_modified(|c| std::mem::replace(c, closing) != closing);
    }
}

/// The per-process registry of gates, and this service instance's holder name.
#[derive(Debug)]
pub(crate) struct Gates {
    pub(crate) holder: String,
    map: Mutex<std::collections::HashMap<ProjectId, Arc<LocalGate>>>,
}

impl Gates {
    pub(crate) fn new() -> Self {
        Self { holder: holder_name(), map: Mutex::default() }
    }

    pub(crate) fn local(&self, project_id: ProjectId) -> Arc<LocalGate> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(project_id).or_insert_with(|| Arc::new(LocalGate::new(project_id))))
    }
}

/// `host:pid:instance:node`: the host and pid let an operator find the process holding a
/// lease; `node` names this boot of this machine and this pid namespace, so a process on the
/// same node can tell that a holder died (see [`holder_is_dead`]).
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
        .replace(':', "_");
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let node = local_node().unwrap_or_else(|| "-".to_owned());
    format!("{host}:{}:{}:{node}", std::process::id(), instance.get(..8).unwrap_or(&instance))
}

/// This boot of this machine, in this pid namespace: where a pid names one process. `None`
/// where `/proc` cannot tell (then only lease expiry frees what a dead holder held).
fn local_node() -> Option<String> {
    static NODE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    NODE.get_or_init(|| {
        use sha2::Digest;
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let pid_ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
        let digest = sha2::Sha256::digest(format!("{}|{}", boot.trim(), pid_ns.display()));
        Some(digest.iter().take(6).map(|b| format!("{b:02x}")).collect())
    })
    .clone()
}

/// Whether `holder` (a service's name, possibly with a `#…` suffix) is a process of this node
/// that no longer exists. Only ever true when that is certain: a holder elsewhere, or a pid
/// reused by another process, counts as alive, and its lease expires on its own.
pub(crate) fn holder_is_dead(holder: &str) -> bool {
    let base = holder.split('#').next().unwrap_or(holder);
    let mut parts = base.rsplitn(4, ':');
    let (Some(node), Some(_instance), Some(pid)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    match local_node() {
        Some(ours) if ours == node && pid != std::process::id() => {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        _ => false,
    }
}

/// Leases live in real time, whatever clock the service uses for the domain's timestamps:
/// they are about processes being alive.
pub(crate) fn lease_now() -> OffsetDateTime {
    timestamp::now_utc()
}

impl ProjectService {
    fn lease_ttl(&self) -> time::Duration {
        time::Duration::try_from(self.inner.config.lease_ttl).unwrap_or(time::Duration::seconds(30))
    }

    fn renew_every(&self) -> Duration {
        (self.inner.config.lease_ttl / 3).max(Duration::from_millis(10))
    }

    /// Takes a lease for `holder`, lasting `ttl`; refused while the project is paused or being
    /// paused (a pause whose process died on this node is cleared first).
    async fn acquire(&self, id: ProjectId, agent_id: &str, holder: &str, ttl: time::Duration) -> Result<i64> {
        validate::agent_id(agent_id)?;
        let mut retried = false;
        loop {
            let mut conn = self.inner.db.conn().await?;
            let now = lease_now();
            if let Some(permit_id) = permits::acquire(&mut conn, id, agent_id, holder, now, now + ttl).await?
            {
                return Ok(permit_id);
            }
            let gate = permits::gate(&mut conn, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
            drop(conn);
            if gate.status != ProjectStatus::Paused && !retried && self.clear_dead_pause_alone(id).await? {
                retried = true;
                continue;
            }
            self.inner.gates.local(id).set_closing(true);
            return Err(if gate.status == ProjectStatus::Paused {
                CoreError::Paused(id)
            } else {
                CoreError::Pausing(id)
            });
        }
    }

    /// Takes a run-gate permit for one unit of an agent's work: refused with
    /// [`CoreError::Paused`] while the project is paused and [`CoreError::Pausing`] while a
    /// pause (in any process) is in progress.
    pub async fn enter(&self, id: ProjectId, agent_id: &str) -> Result<Permit> {
        let local = self.inner.gates.local(id);
        let permit_id = self.acquire(id, agent_id, &self.inner.gates.holder, self.lease_ttl()).await?;
        // The gate was open when the lease was taken. (A pause closing it right after is seen
        // by the keeper within the poll interval.)
        local.set_closing(false);
        local.held().insert(permit_id);
        debug!(project_id = %id, agent_id, permit_id, "permit taken");
        self.ensure_keeper(&local);
        Ok(Permit {
            id: permit_id,
            agent_id: agent_id.to_owned(),
            closing: local.closing.subscribe(),
            local,
            service: self.clone(),
            released: false,
        })
    }

    pub(crate) async fn release_lease(&self, permit_id: i64) -> Result<()> {
        permits::release(&mut self.inner.db.conn().await?, permit_id).await?;
        debug!(permit_id, "permit released");
        Ok(())
    }

    /// Starts the task that renews this process's permits of a project and watches its row,
    /// unless it runs. It stops when the process holds no permit of the project.
    fn ensure_keeper(&self, local: &Arc<LocalGate>) {
        if local.keeper_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let (service, local) = (self.clone(), Arc::clone(local));
        tokio::spawn(async move {
            let mut last_renew = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(service.inner.config.poll_interval).await;
                {
                    let held = local.held();
                    if held.is_empty() {
                        // Decided under the lock `enter` inserts under: a permit taken after
                        // this sees the flag down and starts a new keeper.
                        local.keeper_running.store(false, Ordering::Release);
                        return;
                    }
                }
                if let Err(e) = service.keep(&local, &mut last_renew).await {
                    warn!(project_id = %local.project_id, error = %e, "permit keeper: database error; retrying");
                }
            }
        });
    }

    async fn keep(&self, local: &LocalGate, last_renew: &mut tokio::time::Instant) -> Result<()> {
        let id = local.project_id;
        let mut conn = self.inner.db.conn().await?;
        let now = lease_now();
        match permits::gate(&mut conn, id).await? {
            Some(g) => local.set_closing(g.status == ProjectStatus::Paused || g.pausing_at(now)),
            None => local.set_closing(true),
        }
        if last_renew.elapsed() >= self.renew_every() {
            let kept =
                permits::renew(&mut conn, id, &self.inner.gates.holder, now + self.lease_ttl()).await?;
            *last_renew = tokio::time::Instant::now();
            let mut held = local.held();
            let revoked: Vec<i64> = held.iter().filter(|p| !kept.contains(p)).copied().collect();
            if !revoked.is_empty() {
                // A committed pause ends every permit; their holders learn it here.
                info!(project_id = %id, permits = ?revoked, "permits revoked by a pause");
                held.retain(|p| kept.contains(p));
                local.set_closing(true);
            }
        }
        Ok(())
    }

    /// The run gate of a project as every process sees it.
    pub async fn gate_status(&self, id: ProjectId) -> Result<GateStatus> {
        let mut conn = self.inner.db.conn().await?;
        let gate = permits::gate(&mut conn, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        let now = lease_now();
        let live = permits::live(&mut conn, id, now).await?;
        let pausing = gate.pausing_at(now);
        Ok(GateStatus {
            project_id: id,
            closed: pausing || gate.status == ProjectStatus::Paused,
            pausing,
            permits: live.into_iter().map(PermitInfo::from).collect(),
        })
    }

    /// Removes the pausing marker of a pause whose process died on this node (killed, or
    /// interrupted with Ctrl-C), so the gate need not wait for the marker to expire, and records
    /// `pause_cancelled`. Returns whether it did.
    pub(crate) async fn clear_dead_pause(
        &self,
        tx: &mut Tx<'_>,
        outbox: &mut Outbox,
        id: ProjectId,
        gate: &permits::GateRow,
    ) -> Result<bool> {
        let Some(holder) = gate.pausing_holder.as_deref() else { return Ok(false) };
        if !self.inner.config.reclaim_from_dead_holders
            || !gate.pausing_at(lease_now())
            || !holder_is_dead(holder)
        {
            return Ok(false);
        }
        let cleared = permits::clear_pausing(tx, id, holder).await?;
        if cleared {
            warn!(project_id = %id, holder, "the process holding the gate for a pause is gone; gate reopened");
            let kind = EventKind::PauseCancelled { reason: "holder_gone".to_owned() };
            outbox.record(tx, id, kind, self.now()).await?;
        }
        Ok(cleared)
    }

    /// [`ProjectService::clear_dead_pause`] in a transaction of its own.
    async fn clear_dead_pause_alone(&self, id: ProjectId) -> Result<bool> {
        let mut tx = self.inner.db.begin().await?;
        let Some(gate) = permits::gate(&mut tx, id).await? else { return Ok(false) };
        let mut outbox = Outbox::default();
        let cleared = self.clear_dead_pause(&mut tx, &mut outbox, id, &gate).await?;
        tx.commit().await?;
        self.deliver(outbox).await;
        Ok(cleared)
    }

    /// Closes the gate for a pause: writes the pausing marker for `pause_holder`, so every
    /// process refuses new permits from now on, and records `pause_requested` with the drain's
    /// deadline. Refused (nothing written) when the project cannot be paused or another pause
    /// holds the gate.
    pub(crate) async fn close_gate(&self, id: ProjectId, pause_holder: &str, drain: Duration) -> Result<()> {
        let mut tx = self.inner.db.begin().await?;
        let mut outbox = Outbox::default();
        let now = lease_now();
        if !permits::set_pausing(&mut tx, id, pause_holder, now, now + self.lease_ttl()).await? {
            let project = codeframe_persistence::projects::find(&mut tx, id)
                .await?
                .ok_or_else(|| CoreError::project_not_found(id))?;
            crate::pause::refuse_unpausable(&project)?;
            let gate = permits::gate(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
            let reclaimed = self.clear_dead_pause(&mut tx, &mut outbox, id, &gate).await?
                && permits::set_pausing(&mut tx, id, pause_holder, now, now + self.lease_ttl()).await?;
            if !reclaimed {
                return Err(CoreError::Conflict(ConflictKind::PauseInProgress));
            }
        }
        let at = self.now();
        let deadline = at + time::Duration::try_from(drain).unwrap_or(time::Duration::ZERO);
        outbox.record(&mut tx, id, EventKind::PauseRequested { deadline }, at).await?;
        tx.commit().await?;
        self.inner.gates.local(id).set_closing(true);
        debug!(project_id = %id, holder = pause_holder, "run gate closed for a pause");
        self.deliver(outbox).await;
        Ok(())
    }

    /// Removes a failed pause's marker and records `pause_cancelled` (`reason`: the error's
    /// code): the gate opens again (unless the project is paused).
    pub(crate) async fn reopen_gate(&self, id: ProjectId, pause_holder: &str, reason: &str) {
        let result = async {
            let mut tx = self.inner.db.begin().await?;
            let mut outbox = Outbox::default();
            if permits::clear_pausing(&mut tx, id, pause_holder).await? {
                let kind = EventKind::PauseCancelled { reason: reason.to_owned() };
                outbox.record(&mut tx, id, kind, self.now()).await?;
            }
            let gate = permits::gate(&mut tx, id).await?;
            tx.commit().await?;
            self.deliver(outbox).await;
            Ok::<_, CoreError>(gate)
        }
        .await;
        match result {
            Ok(gate) => {
                let paused = gate.is_some_and(|g| g.status == ProjectStatus::Paused);
                self.inner.gates.local(id).set_closing(paused);
                debug!(project_id = %id, "run gate reopened");
            }
            // The marker expires on its own (lease_ttl): the gate never stays closed for good.
            Err(e) => {
                warn!(project_id = %id, error = %e, "could not reopen the run gate; it reopens when the pause's hold expires")
            }
        }
    }

    /// Refuses an agent's write (context, flash save) while the project is paused or being
    /// paused, unless it is made under `permit`: a live permit of that agent, necessarily
    /// taken before the gate closed. Called inside the write's transaction.
    pub(crate) async fn check_agent_write(
        &self,
        tx: &mut Tx<'_>,
        id: ProjectId,
        agents: &[String],
        permit: Option<i64>,
    ) -> Result<()> {
        let gate = permits::gate(tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        let now = lease_now();
        let paused = gate.status == ProjectStatus::Paused;
        if !paused && !gate.pausing_at(now) {
            return Ok(());
        }
        if let Some(permit_id) = permit
            && let Some(lease) = permits::find(tx, id, permit_id).await?
            && lease.expires_at > now
            && agents.iter().all(|a| *a == lease.agent_id)
        {
            return Ok(());
        }
        debug!(project_id = %id, ?permit, "agent write refused: the gate is closed");
        Err(if paused { CoreError::Paused(id) } else { CoreError::Pausing(id) })
    }

    /// Takes a permit for an agent outside this process (over HTTP, from a script): a lease
    /// lasting `ttl` (default: the service's lease TTL; 1 s to 1 h) that its holder renews with
    /// [`ProjectService::renew_permit`] and ends with [`ProjectService::release_permit`]. A
    /// pause drains it like any other permit; once it expires it blocks nothing.
    pub async fn take_permit(
        &self,
        id: ProjectId,
        agent_id: &str,
        ttl: Option<Duration>,
    ) -> Result<RemotePermit> {
        let ttl = self.remote_ttl(ttl)?;
        let holder = format!("remote:{}", uuid::Uuid::new_v4().simple());
        let permit_id = self.acquire(id, agent_id, &holder, ttl).await?;
        let lease = permits::find(&mut self.inner.db.conn().await?, id, permit_id)
            .await?
            .ok_or_else(|| CoreError::NotFound { entity: "permit", id: permit_id.to_string() })?;
        info!(project_id = %id, agent_id, permit_id, "remote permit taken");
        Ok(RemotePermit::from_lease(lease, false))
    }

    /// Extends a permit taken with [`ProjectService::take_permit`] by `ttl` from now. The answer
    /// says whether a pause has begun (the holder should finish its unit and release). An
    /// expired or released permit cannot be renewed: [`CoreError::Paused`] when the project is
    /// paused (a pause ended it), not found otherwise.
    pub async fn renew_permit(
        &self,
        id: ProjectId,
        permit_id: i64,
        ttl: Option<Duration>,
    ) -> Result<RemotePermit> {
        let ttl = self.remote_ttl(ttl)?;
        let mut conn = self.inner.db.conn().await?;
        let now = lease_now();
        let renewed = permits::renew_one(&mut conn, id, permit_id, now, now + ttl).await?;
        let gate = permits::gate(&mut conn, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        match renewed {
            Some(lease) => Ok(RemotePermit::from_lease(lease, gate.pausing_at(now))),
            None if gate.status == ProjectStatus::Paused => Err(CoreError::Paused(id)),
            None => Err(CoreError::NotFound { entity: "permit", id: permit_id.to_string() }),
        }
    }

    /// Ends a permit taken with [`ProjectService::take_permit`]: a pause waiting for it goes on.
    pub async fn release_permit(&self, id: ProjectId, permit_id: i64) -> Result<()> {
        if !permits::release_of_project(&mut self.inner.db.conn().await?, id, permit_id).await? {
            return Err(CoreError::NotFound { entity: "permit", id: permit_id.to_string() });
        }
        self.inner.gates.local(id).released.notify_waiters();
        info!(project_id = %id, permit_id, "remote permit released");
        Ok(())
    }

    fn remote_ttl(&self, ttl: Option<Duration>) -> Result<time::Duration> {
        let ttl = ttl.unwrap_or(self.inner.config.lease_ttl);
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&ttl) {
            return Err(CoreError::Invalid(codeframe_models::ModelError::Invalid {
                field: "ttl_seconds",
                reason: format!("must be 1 to 3600 seconds, not {}", ttl.as_secs_f64()),
            }));
        }
        Ok(time::Duration::try_from(ttl).unwrap_or(time::Duration::seconds(30)))
    }

    /// Waits until no live permit of the project remains (in any process) or `deadline`
    /// passes, renewing the pause's hold on the gate meanwhile. Returns the agents still
    /// holding permits at the deadline (sorted, each once).
    #[tracing::instrument(level = "debug", skip_all, fields(project_id = %id))]
    pub(crate) async fn drain(
        &self,
        id: ProjectId,
        pause_holder: &str,
        deadline: Duration,
    ) -> Result<Vec<String>> {
        let until = tokio::time::Instant::now() + deadline;
        let local = self.inner.gates.local(id);
        let mut last_renew = tokio::time::Instant::now();
        loop {
            // Register for this process's release wake-up before looking.
            let released = local.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let mut conn = self.inner.db.conn().await?;
            let now = lease_now();
            let mut live = permits::live(&mut conn, id, now).await?;
            if self.inner.config.reclaim_from_dead_holders {
                let (dead, alive): (Vec<Lease>, Vec<Lease>) =
                    live.into_iter().partition(|l| holder_is_dead(&l.holder));
                for lease in dead {
                    warn!(project_id = %id, permit_id = lease.id, holder = %lease.holder, agent_id = %lease.agent_id, "permit holder is gone; its permit ends now");
                    permits::release(&mut conn, lease.id).await?;
                }
                live = alive;
            }
            if live.is_empty() {
                return Ok(Vec::new());
            }
            if tokio::time::Instant::now() >= until {
                let mut agents: Vec<String> = live.into_iter().map(|l| l.agent_id).collect();
                agents.sort();
                agents.dedup();
                return Ok(agents);
            }
            if last_renew.elapsed() >= self.renew_every() {
                if !permits::renew_pausing(&mut conn, id, pause_holder, now + self.lease_ttl()).await? {
                    return Err(CoreError::Conflict(ConflictKind::PauseInProgress));
                }
                last_renew = tokio::time::Instant::now();
            }
            drop(conn);
            let wait = self.inner.config.poll_interval.min(until - tokio::time::Instant::now());
            tokio::select! {
                () = &mut released => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_dead_only_when_certain() {
        let ours = holder_name();
        assert!(!holder_is_dead(&ours), "this process is alive");
        assert!(!holder_is_dead(&format!("{ours}#pause-1234")));
        let Some(node) = local_node() else { return };
        // A pid that cannot exist on this node: dead.
        assert!(holder_is_dead(&format!("h:4194305:abcd1234:{node}")));
        assert!(holder_is_dead(&format!("h:4194305:abcd1234:{node}#pause-9")));
        // Another node, or an unreadable name: alive until its lease expires.
        assert!(!holder_is_dead("h:4194305:abcd1234:000000000000"));
        assert!(!holder_is_dead("garbage"));
        assert!(!holder_is_dead(&format!("h:notapid:abcd1234:{node}")));
    }
}
