use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tracing::{debug, info};

use crate::error::BackendError;
use crate::{DbError, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How to open a database. The defaults suit an embedded, single-machine deployment.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Pool size (1 for an in-memory database, whatever is asked).
    pub max_connections: u32,
    /// How long a statement waits for a lock held by another connection.
    pub busy_timeout: Duration,
    /// `synchronous=FULL` instead of `NORMAL`: every commit survives power loss, not only
    /// a process crash. WAL with NORMAL already never corrupts and never loses a commit on a
    /// process kill.
    pub synchronous_full: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { max_connections: 8, busy_timeout: Duration::from_secs(10), synchronous_full: false }
    }
}

/// The newest schema version this program knows.
pub fn schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Refuses (changing nothing) a database migrated by a newer program, with a message that says
/// so, instead of the migrator's "previously applied but missing".
async fn refuse_newer_schema(pool: &SqlitePool, location: &str) -> Result<()> {
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await?;
    if exists.is_none() {
        return Ok(());
    }
    let found: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(pool).await?;
    let (found, supported) = (found.unwrap_or(0), schema_version());
    if found > supported {
        return Err(DbError::TooNew { location: location.to_owned(), found, supported });
    }
    Ok(())
}

/// Makes sure no other connection has the database file at `path` open, and folds its WAL
/// into the file, so the file alone holds the database: what replacing it needs. Takes
/// SQLite's exclusive lock for the duration; [`DbError::InUse`] if anyone else holds it open.
pub async fn settle_unused(path: &std::path::Path) -> Result<()> {
    use sqlx::ConnectOptions;
    let location = path.display().to_string();
    let busy = |e: sqlx::Error| match &e {
        sqlx::Error::Database(d) if d.message().contains("locked") || d.message().contains("busy") => {
            DbError::InUse { location: location.clone() }
        }
        _ => DbError::Backend(BackendError::new(e)),
    };
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .busy_timeout(Duration::ZERO)
        .pragma("locking_mode", "EXCLUSIVE")
        .connect()
        .await
        .map_err(busy)?;
    // The exclusive lock is taken on first access: a write transaction that changes nothing.
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await.map_err(busy)?;
    sqlx::query("COMMIT").execute(&mut conn).await.map_err(busy)?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&mut conn).await.map_err(busy)?;
    sqlx::Connection::close(conn).await.map_err(busy)?;
    Ok(())
}

/// A handle to the database: a connection pool with the schema migrated. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: SqlitePool,
    location: String,
}

impl Db {
    /// Opens (creating if missing) the database at a file path or a `sqlite:` URL, with
    /// WAL, foreign keys on and a busy timeout, and runs pending migrations.
    pub async fn open(url_or_path: &str) -> Result<Self> {
        Self::open_with(url_or_path, DbOptions::default()).await
    }

    /// [`Db::open`] with explicit options.
    pub async fn open_with(url_or_path: &str, options: DbOptions) -> Result<Self> {
        let open_err =
            |e: sqlx::Error| DbError::Open { location: url_or_path.to_owned(), source: BackendError::new(e) };
        let in_memory = url_or_path.contains(":memory:") || url_or_path.contains("mode=memory");
        let connect = if url_or_path.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(url_or_path).map_err(open_err)?
        } else {
            SqliteConnectOptions::new().filename(url_or_path)
        };
        let connect = connect
            .create_if_missing(true)
            .journal_mode(if in_memory { SqliteJournalMode::Memory } else { SqliteJournalMode::Wal })
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout)
            .synchronous(if options.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            });
        let max = if in_memory { 1 } else { options.max_connections.max(1) };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .acquire_timeout(options.busy_timeout + Duration::from_secs(5))
            .connect_with(connect)
            .await
            .map_err(open_err)?;
        refuse_newer_schema(&pool, url_or_path).await?;
        MIGRATOR.run(&pool).await.map_err(|e| DbError::Migrate(BackendError::new(e)))?;
        info!(location = url_or_path, max_connections = max, "database opened");
        Ok(Self { pool, location: url_or_path.to_owned() })
    }

    /// Writes a consistent copy of the whole database to `path` (`VACUUM INTO`): safe while
    /// other connections and processes write; the copy is compact and has no WAL. Refuses a
    /// `path` that exists.
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        if path.exists() {
            return Err(DbError::Constraint {
                kind: crate::ConstraintKind::Unique,
                constraint: format!("backup target {} exists", path.display()),
            });
        }
        let target = path.to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO ?").bind(target).execute(&self.pool).await?;
        info!(location = %self.location, to = %path.display(), "database backed up");
        Ok(())
    }

    /// The result of `PRAGMA integrity_check` (`["ok"]` when sound).
    pub async fn integrity_check(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&self.pool).await?)
    }

    /// Connections the pool holds now, and how many of them are idle.
    pub fn pool_usage(&self) -> PoolUsage {
        PoolUsage { open: self.pool.size(), idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX) }
    }

    /// Where the database lives, as given to [`Db::open`].
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Begins a write transaction. It takes the write lock at once (`BEGIN IMMEDIATE`), so two
    /// transactions never deadlock upgrading a read lock; the second waits up to the busy timeout.
    pub async fn begin(&self) -> Result<Tx<'static>> {
        let inner = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        debug!("transaction begun");
        Ok(Tx { inner })
    }

    /// Begins a read transaction: every statement run through it sees the same committed state
    /// (in WAL mode a reader never waits for the writer, nor the writer for it). Use it for
    /// reads only; writing through it would take the write lock late and may fail as busy.
    pub async fn read(&self) -> Result<ReadTx> {
        let inner = self.pool.begin_with("BEGIN DEFERRED").await?;
        Ok(ReadTx { inner })
    }

    /// A pooled connection for statements outside a transaction (each commits on its own).
    pub async fn conn(&self) -> Result<Conn> {
        Ok(Conn { inner: self.pool.acquire().await? })
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database transaction. Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub struct Tx<'c> {
    inner: sqlx::Transaction<'c, Sqlite>,
}

impl Tx<'_> {
    /// Makes every change of the transaction durable.
    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        debug!("transaction committed");
        Ok(())
    }

    /// Undoes every change of the transaction.
    pub async fn rollback(self) -> Result<()> {
        self.inner.rollback().await?;
        debug!("transaction rolled back");
        Ok(())
    }

    /// Opens a savepoint: a nested transaction whose changes can be rolled back alone.
    /// Committing it releases the savepoint into this transaction.
    pub async fn savepoint(&mut self) -> Result<Tx<'_>> {
        let inner = sqlx::Acquire::begin(&mut self.inner).await?;
        Ok(Tx { inner })
    }
}

/// A read transaction (see [`Db::read`]); ends when dropped.
#[derive(Debug)]
pub struct ReadTx {
    inner: sqlx::Transaction<'static, Sqlite>,
}

/// A pooled connection, returned to the pool when dropped.
#[derive(Debug)]
pub struct Conn {
    inner: PoolConnection<Sqlite>,
}

pub(crate) mod sealed {
    /// Gives repository functions the connection to run on. Not nameable outside the crate,
    /// so no driver type leaks into the public API.
    pub trait Sealed {
        fn connection(&mut self) -> &mut sqlx::SqliteConnection;
    }
}

/// Something repository functions can run statements on: a [`Tx`], a [`ReadTx`] or a [`Conn`].
pub trait Executor: sealed::Sealed + Send {}

impl sealed::Sealed for Tx<'_> {
    fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.inner
    }
}
impl Executor for Tx<'_> {}

impl sealed::Sealed for ReadTx {
    fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.inner
    }
}
impl Executor for ReadTx {}

impl sealed::Sealed for Conn {
    fn connection(&mut self) -> &mut SqliteConnection {
        &mut self.inner
    }
}
impl Executor for Conn {}

/// How much of the connection pool is in use (see [`Db::pool_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open.
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
}
