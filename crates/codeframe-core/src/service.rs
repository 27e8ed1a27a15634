use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codeframe_checkpoint::{CheckpointManager, GitCheckpointManager, ReconcileReport};
use codeframe_context::{ContextManager, SqlContextManager};
use codeframe_models::{
    Agent, AgentAssignment, Clock, EventKind, NewProject, Project, ProjectEvent, ProjectId, ProjectPhase,
    ProjectStatus, SystemClock, TierTotals, timestamp, validate,
};
use codeframe_persistence::{Db, agents, context, projects, tasks};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::{ConflictKind, CoreError, EventSink, NoopSink, Permit, Result, RunGate};

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// How long a pause waits for work in flight before going on (default 30 s).
    pub drain_timeout: Duration,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self { drain_timeout: Duration::from_secs(30) }
    }
}

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
    pub pause_checkpoint_id: Option<i64>,
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
    /// Whether the run gate refuses work.
    pub gate_closed: bool,
}

/// A project as opened, with what reconciliation of its checkpoint store found.
#[derive(Debug, Clone)]
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
    gates: Mutex<HashMap<ProjectId, Arc<RunGate>>>,
    transitions: Mutex<HashMap<ProjectId, Arc<tokio::sync::Mutex<()>>>>,
}

/// The project service. Cheap to clone; clones share gates and locks.
#[derive(Clone)]
pub struct ProjectService {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ProjectService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectService").field("db", &self.inner.db.location()).finish_non_exhaustive()
    }
}

impl ProjectService {
    /// A service from its parts.
    pub fn new(
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
                gates: Mutex::new(HashMap::new()),
                transitions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The SQLite context manager, the gix checkpoint manager, no event sink, the system clock.
    pub fn with_defaults(db: Db) -> Self {
        Self::with_sink(db, Arc::new(NoopSink))
    }

    /// [`ProjectService::with_defaults`] publishing to `events`.
    pub fn with_sink(db: Db, events: Arc<dyn EventSink>) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let context = Arc::new(SqlContextManager::with(db.clone(), clock.clone(), Default::default()));
        let checkpoints = Arc::new(GitCheckpointManager::with_clock(db.clone(), clock.clone()));
        Self::new(db, context, checkpoints, events, clock, ServiceConfig::default())
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

    /// Serialises pause and resume of one project within this process.
    pub(crate) fn transition_lock(&self, id: ProjectId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.inner.transitions.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(id).or_default())
    }

    /// Publishes an event; a failing sink is logged, never returned.
    pub(crate) async fn publish(&self, project_id: ProjectId, kind: EventKind) {
        let event = ProjectEvent { project_id, timestamp: self.now(), kind };
        if let Err(e) = self.inner.events.publish(&event).await {
            warn!(project_id, event = event.kind.name(), error = %e, "event not delivered");
        }
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
        info!(project_id = p.id, name = %p.name, root = %p.root_path, "project created");
        Ok(p)
    }

    /// Opens a project: loads it and reconciles its checkpoint store (orphan refs removed,
    /// rows without commits reported).
    pub async fn open(&self, id: ProjectId) -> Result<OpenedProject> {
        let project = self.get(id).await?;
        let reconcile = if Path::new(&project.root_path).is_dir() {
            self.inner.checkpoints.reconcile(id).await?
        } else {
            warn!(project_id = id, root = %project.root_path, "project root is missing; store not reconciled");
            ReconcileReport::default()
        };
        if !reconcile.missing_commits.is_empty() {
            warn!(project_id = id, missing = ?reconcile.missing_commits, "checkpoints without their snapshot");
        }
        if project.status == ProjectStatus::Paused && project.pause_checkpoint_id.is_none() {
            warn!(project_id = id, "project is paused without a pause checkpoint");
        }
        Ok(OpenedProject { project, reconcile })
    }

    /// The project with this id.
    pub async fn get(&self, id: ProjectId) -> Result<Project> {
        projects::find(&mut self.inner.db.conn().await?, id)
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
        let lock = self.transition_lock(id);
        let _guard = lock.lock().await;
        let mut p = self.get(id).await?;
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
        let p = projects::update(&mut self.inner.db.conn().await?, &p, self.now()).await?;
        info!(project_id = id, status = %p.status, "project started");
        self.publish(id, EventKind::StatusChanged { from, to: p.status }).await;
        Ok(p)
    }

    /// The run gate of a project (closed while it is paused).
    pub async fn gate(&self, id: ProjectId) -> Result<Arc<RunGate>> {
        if let Some(g) = self.inner.gates.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
            return Ok(Arc::clone(g));
        }
        let paused = self.get(id).await?.status == ProjectStatus::Paused;
        let mut gates = self.inner.gates.lock().unwrap_or_else(|p| p.into_inner());
        Ok(Arc::clone(gates.entry(id).or_insert_with(|| RunGate::new(id, paused))))
    }

    /// Takes a run-gate permit for one unit of an agent's work.
    pub async fn enter(&self, id: ProjectId, agent_id: &str) -> Result<Permit> {
        self.gate(id).await?.enter(agent_id)
    }

    /// What `status` reports.
    pub async fn status(&self, id: ProjectId) -> Result<StatusReport> {
        let mut conn = self.inner.db.conn().await?;
        let p = projects::find(&mut conn, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        let active_agents = agents::active_agent_ids(&mut conn, id).await?;
        let per_agent = context::tier_totals_by_agent(&mut conn, id).await?;
        let (tasks_completed, tasks_total, _) = tasks::progress(&mut conn, id).await?;
        drop(conn);
        let mut token_totals = TierTotals::default();
        for (_, t) in &per_agent {
            token_totals.add(t);
        }
        let gate_closed = self.gate(id).await?.is_closed();
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
            agents: per_agent
                .into_iter()
                .map(|(agent_id, totals)| AgentTotals { agent_id, totals })
                .collect(),
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
        let mut conn = self.inner.db.conn().await?;
        agents::insert(&mut conn, agent_id, agent_type, provider, self.now()).await.map_err(|e| {
            CoreError::from_unique(e, || ConflictKind::AgentExists { agent_id: agent_id.to_owned() })
        })
    }

    /// Assigns a registered agent to a project.
    pub async fn assign(&self, id: ProjectId, agent_id: &str, role: &str) -> Result<AgentAssignment> {
        let mut tx = self.inner.db.begin().await?;
        projects::find(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        agents::get(&mut tx, agent_id).await?;
        let a = agents::assign(&mut tx, id, agent_id, role, self.now()).await.map_err(|e| {
            CoreError::from_unique(e, || ConflictKind::AlreadyAssigned { agent_id: agent_id.to_owned() })
        })?;
        tx.commit().await?;
        Ok(a)
    }

    /// Ends an agent's active assignment to a project (history is kept).
    pub async fn deactivate(&self, id: ProjectId, agent_id: &str) -> Result<()> {
        let mut conn = self.inner.db.conn().await?;
        projects::find(&mut conn, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        agents::unassign(&mut conn, id, agent_id, self.now()).await?;
        Ok(())
    }
}
