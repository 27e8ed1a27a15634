//! [`ProjectServiceBuilder`]: how an application makes a [`ProjectService`].

use std::sync::Arc;
use std::time::Duration;

use codeframe_checkpoint::{CheckpointManager, GitCheckpointManager};
use codeframe_context::{ContextConfig, ContextManager, SqlContextManager};
use codeframe_models::{Clock, SystemClock};
use codeframe_persistence::{Db, DbOptions};

use crate::{EventSink, NoopSink, ProjectService, Result, ServiceConfig};

/// Where the service's database comes from.
#[derive(Debug)]
enum Database {
    Missing,
    Open(Db),
    Url(String, DbOptions),
}

/// Builds a [`ProjectService`] (see [`ProjectService::builder`]). Only the database is
/// required; everything else has a default: the SQLite context manager, the gix checkpoint
/// manager, no event sink (other processes read the event log anyway), the system clock,
/// [`ServiceConfig::default`].
///
/// ```no_run
/// # async fn demo() -> codeframe_core::Result<()> {
/// use std::time::Duration;
/// use codeframe_core::ProjectService;
///
/// let service = ProjectService::builder()
///     .database_url("sqlite:/var/lib/codeframe/state.db")
///     .drain_timeout(Duration::from_secs(10))
///     .build()
///     .await?;
/// # let _ = service; Ok(()) }
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ProjectServiceBuilder {
    database: Database,
    events: Option<Arc<dyn EventSink>>,
    clock: Option<Arc<dyn Clock>>,
    config: ServiceConfig,
    context_config: ContextConfig,
    context: Option<Arc<dyn ContextManager>>,
    checkpoints: Option<Arc<dyn CheckpointManager>>,
}

impl std::fmt::Debug for ProjectServiceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectServiceBuilder")
            .field("database", &self.database)
            .field("config", &self.config)
            .field("custom_context_manager", &self.context.is_some())
            .field("custom_checkpoint_manager", &self.checkpoints.is_some())
            .finish_non_exhaustive()
    }
}

impl ProjectService {
    /// A builder: name the database (an open [`Db`] or a URL/path), then what differs from the
    /// defaults.
    pub fn builder() -> ProjectServiceBuilder {
        ProjectServiceBuilder {
            database: Database::Missing,
            events: None,
            clock: None,
            config: ServiceConfig::default(),
            context_config: ContextConfig::default(),
            context: None,
            checkpoints: None,
        }
    }
}

impl ProjectServiceBuilder {
    /// An open database (shared with whatever else uses it in this process).
    pub fn db(mut self, db: Db) -> Self {
        self.database = Database::Open(db);
        self
    }

    /// The database to open: a path or a `sqlite:` URL (created, and migrated, when new).
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database = Database::Url(url.into(), DbOptions::default());
        self
    }

    /// [`ProjectServiceBuilder::database_url`] with explicit pool and durability options.
    pub fn database_url_with(mut self, url: impl Into<String>, options: DbOptions) -> Self {
        self.database = Database::Url(url.into(), options);
        self
    }

    /// Where this service reports the events it commits (in-process observers).
    pub fn event_sink(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// The clock for the domain's timestamps (tests pass a manual one).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// All settings at once.
    pub fn config(mut self, config: ServiceConfig) -> Self {
        self.config = config;
        self
    }

    /// How long a pause waits for work in flight (default 30 s).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.config.drain_timeout = timeout;
        self
    }

    /// Settings of the default context manager (ignored with a custom one).
    pub fn context_config(mut self, config: ContextConfig) -> Self {
        self.context_config = config;
        self
    }

    /// A context manager of the application's own (a decorator around
    /// [`SqlContextManager`], say).
    pub fn context_manager(mut self, context: Arc<dyn ContextManager>) -> Self {
        self.context = Some(context);
        self
    }

    /// A checkpoint manager of the application's own.
    pub fn checkpoint_manager(mut self, checkpoints: Arc<dyn CheckpointManager>) -> Self {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Opens the database if a URL was given, and makes the service.
    pub async fn build(self) -> Result<ProjectService> {
        let db = match self.database {
            Database::Open(db) => db,
            Database::Url(url, options) => Db::open_with(&url, options).await?,
            Database::Missing => {
                return Err(crate::CoreError::Invalid(codeframe_models::ModelError::Empty {
                    field: "database (ProjectService::builder(): call .db(…) or .database_url(…))",
                }));
            }
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let context = self.context.unwrap_or_else(|| {
            Arc::new(SqlContextManager::with(db.clone(), clock.clone(), self.context_config))
        });
        let checkpoints = self.checkpoints.unwrap_or_else(|| {
            Arc::new(
                GitCheckpointManager::with_clock(db.clone(), clock.clone())
                    .with_max_file_size(self.config.max_snapshot_file_size)
                    .with_durability(self.config.durability),
            )
        });
        let events = self.events.unwrap_or_else(|| Arc::new(NoopSink));
        Ok(ProjectService::from_parts(db, context, checkpoints, events, clock, self.config))
    }
}
