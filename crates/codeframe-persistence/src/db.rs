use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tracing::{debug, info};

use crate::error::BackendError;
use crate::{DbError, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

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
        MIGRATOR.run(&pool).await.map_err(|e| DbError::Migrate(BackendError::new(e)))?;
        info!(location = url_or_path, max_connections = max, "database opened");
        Ok(Self { pool, location: url_or_path.to_owned() })
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
