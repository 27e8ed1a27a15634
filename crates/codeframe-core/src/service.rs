use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use codeframe_checkpoint::{CheckpointManager, GitCheckpointManager, ReconcileReport};
use codeframe_context::{ContextManager, SqlContextManager};
use codeframe_models::{
    Agent, AgentAssignment, CheckpointId, Clock, EventKind, NewProject, Project, ProjectId, ProjectPhase,
    ProjectStatus, SystemClock, TierTotals, timestamp, validate,
};
use codeframe_persistence::{Db, agents, permits, projects, tasks};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::{debug, info, warn};

use crate::event_log::{LocalLog, Outbox};
use crate::gate::{Gates, lease_now};
use crate::{ConflictKind, CoreError, EventSink, NoopSink, Result, ServiceConfig};

/// One agent's active context totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentTotals {
    /// The agent.
    pub agent_id: String,
    /// Its active items and tokens per tier.
    #[serde(flatten)]
    pub totals: TierTotals,
}

/// Everything `status` reports about a project.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatusReport {
    /// Project id.
    pub project_id: ProjectId,
    /// Name.
    pub name: String,
    /// Lifecycle status.
    pub status: ProjectStatus,
    /// Phase.
    pub phase: ProjectPhase,
    /// Working tree.
    pub root_path: String,
    /// When paused.
    #[serde(with = "timestamp::rfc3339::option")]
    pub paused_at: Option<OffsetDateTime>,
    /// Why paused.
    pub pause_reason: Option<String>,
    /// The pause checkpoint.
    pub pause_checkpoint_id: Option<CheckpointId>,
    /// Seconds paused so far.
    pub paused_for_seconds: Option<i64>,
    /// Agents actively assigned.
    pub active_agents: Vec<String>,
    /// Active context over all agents, per tier.
    pub token_totals: TierTotals,
    /// Active context per agent.
    pub agents: Vec<AgentTotals>,
    /// Completed tasks.
    pub tasks_completed: i64,
    /// All tasks.
    pub tasks_total: i64,
    /// Whether the run gate refuses work (paused, or a pause in progress in any process).
    pub gate_closed: bool,
}

/// An agent that has been assigned to a project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectAgent {
    /// The agent.
    #[serde(flatten)]
    pub agent: Agent,
    /// Whether its assignment is active.
    pub active: bool,
}

/// A project as opened, with what reconciliation of its checkpoint store found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenedProject {
    /// The project.
    pub project: Project,
    /// Orphan refs removed, rows without commits reported.
    pub reconcile: ReconcileReport,
}

pub(crate) struct Inner {
    pub db: Db,
    pub context: Arc<dyn ContextManager>,
    pub checkpoints: Arc<dyn CheckpointManager>,
    pub events: Arc<dyn EventSink>,
    pub clock: Arc<dyn Clock>,
    pub config: ServiceConfig,
    pub(crate) gates: Gates,
    pub(crate) log: LocalLog,
    /// Transitions running on their own task ([`ProjectService::detached`]): what a graceful
    /// shutdown waits for.
    pub(crate) in_flight: tokio::sync::watch::Sender<usize>,
}

/// The project service. Cheap to clone; clones share their in-process state (this process's
/// view of the gates and of the event log). Every decision about correctness is made in the
/// database, so any number of services, in any number of processes, may share one.
#[derive(Clone)]
pub struct ProjectService {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ProjectService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectService").field("db", &self.inner.db).finish_non_exhaustive()
    }
}

impl ProjectService {
    /// A service from its parts ([`ProjectService::builder`] is the public way).
    pub(crate) fn from_parts(
        db: Db,
        context: Arc<dyn ContextManager>,
        checkpoints: Arc<dyn CheckpointManager>,
        events: Arc<dyn EventSink>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                context,
                checkpoints,
                events,
                clock,
                config,
                gates: Gates::new(),
                log: LocalLog::default(),
                in_flight: tokio::sync::watch::Sender::new(0),
            }),
        }
    }

    /// The SQLite context manager, the gix checkpoint manager, no event sink, the system clock.
    pub fn with_defaults(db: Db) -> Self {
        Self::with_config(db, ServiceConfig::default())
    }

    /// [`ProjectService::with_defaults`] with explicit settings.
    pub fn with_config(db: Db, config: ServiceConfig) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let context = Arc::new(SqlContextManager::with(db.clone(), clock.clone(), Default::default()));
        let checkpoints = Arc::new(
            GitCheckpointManager::with_clock(db.clone(), clock.clone())
                .with_max_file_size(config.max_snapshot_file_size)
                .with_durability(config.durability),
        );
        Self::from_parts(db, context, checkpoints, Arc::new(NoopSink), clock, config)
    }

    /// [`ProjectService::with_defaults`] feeding `events` (in-process observers; other processes
    /// read the event log).
    pub fn with_sink(db: Db, events: Arc<dyn EventSink>) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let context = Arc::new(SqlContextManager::with(db.clone(), clock.clone(), Default::default()));
        let checkpoints = Arc::new(GitCheckpointManager::with_clock(db.clone(), clock.clone()));
        Self::from_parts(db, context, checkpoints, events, clock, ServiceConfig::default())
    }

    /// The settings in force.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// This service's name in permit leases and pausing markers (`host:pid:instance`).
    pub fn holder(&self) -> &str {
        &self.inner.gates.holder
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The context manager.
    pub fn context(&self) -> &Arc<dyn ContextManager> {
        &self.inner.context
    }

    /// The checkpoint manager.
    pub fn checkpoints(&self) -> &Arc<dyn CheckpointManager> {
        &self.inner.checkpoints
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Runs a change on a task of its own and waits for it. If the caller stops waiting (an
    /// HTTP client disconnects, a request times out), the change still runs to completion or
    /// rolls back: a cancelled caller never leaves half a transition. A panic inside is
    /// passed on to the caller.
    pub(crate) async fn detached<T: Send + 'static>(
        &self,
        what: &'static str,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let in_flight = self.inner.in_flight.clone();
        in_flight.send_modify(|n| *n += 1);
        let work = async move {
            // Counted down when the task ends, whether or not anyone still waits for it.
            let _done = InFlight(in_flight);
            let started = std::time::Instant::now();
            let result = work.await;
            crate::metrics::transition(what, started, &result);
            result
        };
        match tokio::spawn(work).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(CoreError::Cancelled(format!("{what}: {e}"))),
        }
    }

    /// Transitions (pause, resume, restore, …) running right now in this process.
    pub fn transitions_in_flight(&self) -> usize {
        *self.inner.in_flight.borrow()
    }

    /// Waits until no transition runs in this process, or `deadline` passes; returns how many
    /// still run (0: idle). A server shutting down calls it after it stopped taking requests.
    pub async fn wait_for_transitions(&self, deadline: std::time::Duration) -> usize {
        let mut rx = self.inner.in_flight.subscribe();
        let _ = tokio::time::timeout(deadline, rx.wait_for(|n| *n == 0)).await;
        *rx.borrow()
    }

    /// Creates a project with status `init`. The root must be an existing directory; it is
    /// stored as an absolute path.
    pub async fn create(&self, name: &str, root: &Path) -> Result<Project> {
        self.create_project(NewProject {
            name: name.to_owned(),
            description: String::new(),
            root_path: root.to_string_lossy().into_owned(),
            owner_id: None,
        })
        .await
    }

    /// [`ProjectService::create`] with every field (description, owner).
    pub async fn create_project(&self, mut new: NewProject) -> Result<Project> {
        validate::project_name(&new.name)?;
        let root = Path::new(&new.root_path);
        let canonical = root
            .canonicalize()
            .map_err(|e| CoreError::BadRoot { path: new.root_path.clone(), reason: e.to_string() })?;
        if !canonical.is_dir() {
            return Err(CoreError::BadRoot { path: new.root_path, reason: "not a directory".into() });
        }
        new.root_path = canonical.to_string_lossy().into_owned();
        let mut conn = self.inner.db.conn().await?;
        let name = new.name.clone();
        let p = projects::insert(&mut conn, &new, self.now())
            .await
            .map_err(|e| CoreError::from_unique(e, || ConflictKind::NameTaken { name }))?;
        info!(project_id = %p.id, name = %p.name, root = %p.root_path, "project created");
        Ok(p)
    }

    /// Opens a project: loads it, reconciles its checkpoint store (orphan refs removed, rows
    /// without commits reported) and applies event retention to it.
    pub async fn open(&self, id: ProjectId) -> Result<OpenedProject> {
        let project = self.get(id).await?;
        let reconcile = if Path::new(&project.root_path).is_dir() {
            self.inner.checkpoints.reconcile(id).await?
        } else {
            warn!(project_id = %id, root = %project.root_path, "project root is missing; store not reconciled");
            ReconcileReport::default()
        };
        if !reconcile.missing_commits.is_empty() {
            warn!(project_id = %id, missing = ?reconcile.missing_commits, "checkpoints without their snapshot");
        }
        if project.status == ProjectStatus::Paused && project.pause_checkpoint_id.is_none() {
            warn!(project_id = %id, "project is paused without a pause checkpoint");
        }
        self.prune_events(Some(id)).await?;
        Ok(OpenedProject { project, reconcile })
    }

    /// The project with this id.
    pub async fn get(&self, id: ProjectId) -> Result<Project> {
        projects::find(&mut self.inner.db.conn().await?, id)
            .await?
            .ok_or_else(|| CoreError::project_not_found(id))
    }

    /// The project and the per-tier totals of its active context, read in one statement (what
    /// status polling needs).
    pub async fn get_with_totals(&self, id: ProjectId) -> Result<(Project, TierTotals)> {
        projects::find_with_totals(&mut self.inner.db.conn().await?, id)
            .await?
            .ok_or_else(|| CoreError::project_not_found(id))
    }

    /// The project with this name, if any.
    pub async fn find_by_name(&self, name: &str) -> Result<Option<Project>> {
        Ok(projects::find_by_name(&mut self.inner.db.conn().await?, name).await?)
    }

    /// Every project.
    pub async fn list(&self) -> Result<Vec<Project>> {
        Ok(projects::list(&mut self.inner.db.conn().await?).await?)
    }

    /// Starts a project: `init` becomes `planning` (in the discovery or planning phase) or
    /// `active` (later phases). Any other status is a conflict.
    pub async fn start(&self, id: ProjectId) -> Result<Project> {
        let service = self.clone();
        self.detached("start", async move {
            let mut tx = service.inner.db.begin().await?;
            let mut p = projects::find(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
            if p.status != ProjectStatus::Init {
                return Err(CoreError::Conflict(match p.status {
                    ProjectStatus::Paused => ConflictKind::AlreadyPaused {
                        paused_at: p.paused_at,
                        checkpoint_id: p.pause_checkpoint_id,
                    },
                    from => ConflictKind::InvalidTransition { from, action: "start" },
                }));
            }
            let from = p.status;
            p.status = match p.phase {
                ProjectPhase::Discovery | ProjectPhase::Planning => ProjectStatus::Planning,
                _ => ProjectStatus::Active,
            };
            let now = service.now();
            let p = projects::update(&mut tx, &p, now).await?;
            let mut outbox = Outbox::default();
            outbox.record(&mut tx, id, EventKind::StatusChanged { from, to: p.status }, now).await?;
            tx.commit().await?;
            info!(project_id = %id, status = %p.status, "project started");
            service.deliver(outbox).await;
            Ok(p)
        })
        .await
    }

    /// What `status` reports.
    pub async fn status(&self, id: ProjectId) -> Result<StatusReport> {
        let mut conn = self.inner.db.conn().await?;
        let p = projects::find(&mut conn, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        let active_agents = agents::active_agent_ids(&mut conn, id).await?;
        let (tasks_completed, tasks_total, _) = tasks::progress(&mut conn, id).await?;
        let gate = permits::gate(&mut conn, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        drop(conn);
        let (token_totals, per_agent) = self.token_totals(id).await?;
        let gate_closed = gate.status == ProjectStatus::Paused || gate.pausing_at(lease_now());
        Ok(StatusReport {
            project_id: p.id,
            paused_for_seconds: p.paused_at.map(|t| (self.now() - t).whole_seconds().max(0)),
            name: p.name,
            status: p.status,
            phase: p.phase,
            root_path: p.root_path,
            paused_at: p.paused_at,
            pause_reason: p.pause_reason,
            pause_checkpoint_id: p.pause_checkpoint_id,
            active_agents,
            token_totals,
            agents: per_agent,
            tasks_completed,
            tasks_total,
            gate_closed,
        })
    }

    /// Registers an agent.
    pub async fn register_agent(
        &self,
        agent_id: &str,
        agent_type: &str,
        provider: Option<&str>,
    ) -> Result<Agent> {
        validate::agent_id(agent_id)?;
        validate::label("agent type", agent_type)?;
        if let Some(p) = provider {
            validate::label("provider", p)?;
        }
        let mut conn = self.inner.db.conn().await?;
        agents::insert(&mut conn, agent_id, agent_type, provider, self.now()).await.map_err(|e| {
            CoreError::from_unique(e, || ConflictKind::AgentExists { agent_id: agent_id.to_owned() })
        })
    }

    /// Assigns a registered agent to a project (event `agent_added`).
    pub async fn assign(&self, id: ProjectId, agent_id: &str, role: &str) -> Result<AgentAssignment> {
        validate::label("role", role)?;
        let mut tx = self.inner.db.begin().await?;
        projects::find(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        agents::get(&mut tx, agent_id).await?;
        let now = self.now();
        let a = agents::assign(&mut tx, id, agent_id, role, now).await.map_err(|e| {
            CoreError::from_unique(e, || ConflictKind::AlreadyAssigned { agent_id: agent_id.to_owned() })
        })?;
        let mut outbox = Outbox::default();
        let kind = EventKind::AgentAdded { agent_id: agent_id.to_owned(), role: role.to_owned() };
        outbox.record(&mut tx, id, kind, now).await?;
        tx.commit().await?;
        self.deliver(outbox).await;
        Ok(a)
    }

    /// Registers the agent if it is new, then assigns it to the project: what "add an agent"
    /// means to the API and the command line.
    pub async fn add_agent(
        &self,
        id: ProjectId,
        agent_id: &str,
        agent_type: &str,
        provider: Option<&str>,
        role: &str,
    ) -> Result<AgentAssignment> {
        match self.register_agent(agent_id, agent_type, provider).await {
            Ok(_) | Err(CoreError::Conflict(ConflictKind::AgentExists { .. })) => {}
            Err(e) => return Err(e),
        }
        self.assign(id, agent_id, role).await
    }

    /// Ends an agent's active assignment to a project (history is kept; event
    /// `agent_deactivated`).
    pub async fn deactivate(&self, id: ProjectId, agent_id: &str) -> Result<()> {
        let mut tx = self.inner.db.begin().await?;
        projects::find(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        let now = self.now();
        agents::unassign(&mut tx, id, agent_id, now).await?;
        let mut outbox = Outbox::default();
        outbox
            .record(&mut tx, id, EventKind::AgentDeactivated { agent_id: agent_id.to_owned() }, now)
            .await?;
        tx.commit().await?;
        self.deliver(outbox).await;
        Ok(())
    }

    /// The project's actively assigned agents, by id.
    pub async fn active_agents(&self, id: ProjectId) -> Result<Vec<String>> {
        Ok(agents::active_agent_ids(&mut self.inner.db.conn().await?, id).await?)
    }

    /// Every agent ever assigned to the project, by id, with whether it is active.
    pub async fn agents(&self, id: ProjectId) -> Result<Vec<ProjectAgent>> {
        let mut conn = self.inner.db.conn().await?;
        let all = agents::list_for_project(&mut conn, id).await?;
        let active = agents::active_agent_ids(&mut conn, id).await?;
        debug!(project_id = %id, agents = all.len(), "agents listed");
        Ok(all.into_iter().map(|agent| ProjectAgent { active: active.contains(&agent.id), agent }).collect())
    }

    /// The projects of one owner, by id.
    pub async fn list_owned(&self, owner_id: i64) -> Result<Vec<Project>> {
        Ok(projects::list_by_owner(&mut self.inner.db.conn().await?, owner_id).await?)
    }
}

/// Counts a detached transition down when dropped.
struct InFlight(tokio::sync::watch::Sender<usize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
