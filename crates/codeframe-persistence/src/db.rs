//! The database handle, its two backends and the transaction types that cross crates.
//!
//! [`Db::open`] picks the backend from what it is given: a `postgres://` (or `postgresql://`)
//! URL opens PostgreSQL, anything else (a `sqlite:` URL or a file path) embedded SQLite.
//! Above this module nothing knows which one it is: repository functions take an
//! [`Executor`] and run their statements through [`on!`](crate::on), which compiles each
//! statement once per backend.
//!
//! Both backends give writers the same guarantee: write transactions are serialised.
//! SQLite has one writer at a time by design (`BEGIN IMMEDIATE`); on PostgreSQL every write
//! transaction takes one transaction-scoped advisory lock first. So every read-check-write
//! the repositories and the managers do inside a [`Tx`] is as safe across server instances as
//! it is across processes on one machine, and events commit in `seq` order (a tail reading
//! `seq > cursor` never skips one that commits later with a smaller `seq`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};
use tracing::{debug, info, warn};

use crate::error::BackendError;
use crate::{DbError, Result};

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL advisory lock every write transaction takes first (see the module docs).
/// An arbitrary constant: `codeframe` spelled in ASCII, so it reads as ours in `pg_locks`.
const WRITE_LOCK_KEY: i64 = 0x636f_6465_6672_616d;

/// The channel events are announced on (PostgreSQL): a trigger on `events` notifies it with
/// the new `seq` when the inserting transaction commits.
pub const EVENTS_CHANNEL: &str = "codeframe_events";

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Embedded SQLite: one file, one machine (the default).
    Sqlite,
    /// A PostgreSQL server: several processes on several machines.
    Postgres,
}

impl Backend {
    /// The backend a location names: `postgres://…`/`postgresql://…` is PostgreSQL,
    /// anything else (a path, `sqlite:…`) SQLite.
    pub fn of(url_or_path: &str) -> Self {
        if url_or_path.starts_with("postgres://") || url_or_path.starts_with("postgresql://") {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to open a database. The defaults suit an embedded, single-machine deployment.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Pool size (1 for an in-memory database, whatever is asked).
    pub max_connections: u32,
    /// How long a statement waits for a lock held by another connection (SQLite's busy
    /// timeout; PostgreSQL's `lock_timeout`).
    pub busy_timeout: Duration,
    /// `synchronous=FULL` instead of `NORMAL` (SQLite): every commit survives power loss, not
    /// only a process crash. WAL with NORMAL already never corrupts and never loses a commit on
    /// a process kill. PostgreSQL commits are durable as its server is configured.
    pub synchronous_full: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { max_connections: 8, busy_timeout: Duration::from_secs(10), synchronous_full: false }
    }
}

/// The newest schema version this program knows (the same number on both backends).
pub fn schema_version() -> i64 {
    SQLITE_MIGRATOR.iter().chain(POSTGRES_MIGRATOR.iter()).map(|m| m.version).max().unwrap_or(0)
}

/// Refuses (changing nothing) a database migrated by a newer program, with a message that says
/// so, instead of the migrator's "previously applied but missing".
async fn refuse_newer_schema(pool: &Pool, location: &str) -> Result<()> {
    let found: Option<i64> = match pool {
        Pool::Sqlite(pool) => {
            let exists: Option<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            )
            .fetch_optional(pool)
            .await?;
            if exists.is_none() {
                return Ok(());
            }
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(pool).await?
        }
        Pool::Postgres(pool) => {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(pool)
                .await?;
            if !exists {
                return Ok(());
            }
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations").fetch_one(pool).await?
        }
    };
    let (found, supported) = (found.unwrap_or(0), schema_version());
    if found > supported {
        return Err(DbError::TooNew { location: location.to_owned(), found, supported });
    }
    Ok(())
}

/// Makes sure no other connection has the SQLite database file at `path` open, and folds its
/// WAL into the file, so the file alone holds the database: what replacing it needs. Takes
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

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A handle to the database: a connection pool with the schema migrated. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    location: String,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password a URL may hold.
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .field("location", &redact(&self.location))
            .finish()
    }
}

impl Db {
    /// Opens the database at a file path, a `sqlite:` URL or a `postgres://` URL, and runs
    /// pending migrations. A SQLite file is created if missing (WAL, foreign keys on, a busy
    /// timeout); a PostgreSQL database named in the URL that does not exist yet is created
    /// (the URL's user needs the `CREATEDB` privilege for that, not otherwise).
    pub async fn open(url_or_path: &str) -> Result<Self> {
        Self::open_with(url_or_path, DbOptions::default()).await
    }

    /// [`Db::open`] with explicit options.
    pub async fn open_with(url_or_path: &str, options: DbOptions) -> Result<Self> {
        let (pool, max) = match Backend::of(url_or_path) {
            Backend::Sqlite => open_sqlite(url_or_path, &options).await?,
            Backend::Postgres => open_postgres(url_or_path, &options).await?,
        };
        refuse_newer_schema(&pool, &redact(url_or_path)).await?;
        let migrated = match &pool {
            Pool::Sqlite(p) => SQLITE_MIGRATOR.run(p).await,
            Pool::Postgres(p) => POSTGRES_MIGRATOR.run(p).await,
        };
        migrated.map_err(|e| DbError::Migrate(BackendError::new(e)))?;
        let db = Self { pool, location: url_or_path.to_owned() };
        info!(location = %redact(url_or_path), backend = %db.backend(), max_connections = max, "database opened");
        Ok(db)
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Writes a consistent copy of the whole SQLite database to `path` (`VACUUM INTO`): safe
    /// while other connections and processes write; the copy is compact and has no WAL.
    /// Refuses a `path` that exists. PostgreSQL is backed up with its own tools (`pg_dump`):
    /// [`DbError::Unsupported`].
    pub async fn backup_to(&self, path: &std::path::Path) -> Result<()> {
        let Pool::Sqlite(pool) = &self.pool else {
            return Err(self.unsupported("backup to a file (use pg_dump)"));
        };
        if path.exists() {
            return Err(DbError::Constraint {
                kind: crate::ConstraintKind::Unique,
                constraint: format!("backup target {} exists", path.display()),
            });
        }
        let target = path.to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO ?").bind(target).execute(pool).await?;
        info!(location = %self.location, to = %path.display(), "database backed up");
        Ok(())
    }

    /// The result of SQLite's `PRAGMA integrity_check` (`["ok"]` when sound). On PostgreSQL,
    /// whose pages are checked by the server itself (checksums, `amcheck`), `["ok"]` once a
    /// statement round-trips.
    pub async fn integrity_check(&self) -> Result<Vec<String>> {
        match &self.pool {
            Pool::Sqlite(pool) => Ok(sqlx::query_scalar("PRAGMA integrity_check").fetch_all(pool).await?),
            Pool::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
                Ok(vec!["ok".to_owned()])
            }
        }
    }

    /// Connections the pool holds now, and how many of them are idle.
    pub fn pool_usage(&self) -> PoolUsage {
        let (open, idle) = match &self.pool {
            Pool::Sqlite(p) => (p.size(), p.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        };
        PoolUsage { open, idle: u32::try_from(idle).unwrap_or(u32::MAX) }
    }

    /// Where the database lives, as given to [`Db::open`] (a URL may hold a password: log
    /// [`redact`]`(location)` instead).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Begins a write transaction. It takes the write lock at once (SQLite: `BEGIN IMMEDIATE`;
    /// PostgreSQL: the writers' advisory lock), so write transactions never interleave; the
    /// second waits up to the busy timeout.
    pub async fn begin(&self) -> Result<Tx<'static>> {
        let inner = match &self.pool {
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => {
                let mut tx = p.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK_KEY)
                    .execute(&mut *tx)
                    .await?;
                TxInner::Postgres(tx)
            }
        };
        debug!("transaction begun");
        Ok(Tx { inner })
    }

    /// Begins a read transaction: every statement run through it sees the same committed state
    /// (a reader never waits for the writer, nor the writer for it). Use it for reads only; on
    /// PostgreSQL a write through it is refused, on SQLite it would take the write lock late
    /// and may fail as busy.
    pub async fn read(&self) -> Result<ReadTx> {
        let inner = match &self.pool {
            Pool::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN DEFERRED").await?),
            Pool::Postgres(p) => {
                TxInner::Postgres(p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?)
            }
        };
        Ok(ReadTx { inner })
    }

    /// A pooled connection for statements outside a transaction (each commits on its own).
    pub async fn conn(&self) -> Result<Conn> {
        let inner = match &self.pool {
            Pool::Sqlite(p) => ConnInner::Sqlite(p.acquire().await?),
            Pool::Postgres(p) => ConnInner::Postgres(p.acquire().await?),
        };
        Ok(Conn { inner })
    }

    /// Listens for events committed by any process (PostgreSQL's `LISTEN`); `None` on SQLite,
    /// where processes share one file and find new events by reading the log.
    pub async fn event_listener(&self) -> Result<Option<EventListener>> {
        let Pool::Postgres(pool) = &self.pool else { return Ok(None) };
        let mut listener = PgListener::connect_with(pool).await?;
        // Lost notifications are made up by the reader (it reads the log from its cursor), so
        // an overflowing queue may drop them rather than grow.
        listener.ignore_pool_close_event(true);
        listener.listen(EVENTS_CHANNEL).await?;
        debug!(channel = EVENTS_CHANNEL, "listening for events");
        Ok(Some(EventListener { inner: listener }))
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    fn unsupported(&self, operation: &'static str) -> DbError {
        DbError::Unsupported { operation, backend: self.backend() }
    }
}

async fn open_sqlite(url_or_path: &str, options: &DbOptions) -> Result<(Pool, u32)> {
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
    Ok((Pool::Sqlite(pool), max))
}

async fn open_postgres(url: &str, options: &DbOptions) -> Result<(Pool, u32)> {
    let location = redact(url);
    let open_err =
        |e: sqlx::Error| DbError::Open { location: location.clone(), source: BackendError::new(e) };
    let lock_timeout = format!("{}ms", options.busy_timeout.as_millis());
    let connect = PgConnectOptions::from_str(url)
        .map_err(open_err)?
        .application_name("codeframe")
        .options([("lock_timeout", lock_timeout.as_str())]);
    let max = options.max_connections.max(1);
    let pool_options = || {
        PgPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(options.busy_timeout + Duration::from_secs(5))
    };
    let pool = match pool_options().connect_with(connect.clone()).await {
        Ok(pool) => pool,
        Err(e) if is_missing_database(&e) => {
            create_postgres_database(&connect).await.map_err(open_err)?;
            pool_options().connect_with(connect).await.map_err(open_err)?
        }
        Err(e) => return Err(open_err(e)),
    };
    Ok((Pool::Postgres(pool), max))
}

fn is_missing_database(e: &sqlx::Error) -> bool {
    // 3D000: invalid_catalog_name ("database … does not exist").
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000"))
}

/// Creates the database `connect` names, connected to the server's `postgres` database. A
/// database created meanwhile by someone else (42P04) is fine.
async fn create_postgres_database(connect: &PgConnectOptions) -> std::result::Result<(), sqlx::Error> {
    use sqlx::{ConnectOptions, Connection};
    let name = connect.get_database().unwrap_or_default().to_owned();
    let mut admin = connect.clone().database("postgres").connect().await?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    let created = sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {quoted} TEMPLATE template0 ENCODING 'UTF8'"
    )))
    .execute(&mut admin)
    .await;
    admin.close().await?;
    match created {
        Ok(_) => {
            info!(database = %name, "database created");
            Ok(())
        }
        Err(sqlx::Error::Database(d)) if d.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(e),
    }
}

/// A location fit for logs and messages: a URL's password replaced by `***`.
pub fn redact(url_or_path: &str) -> String {
    let Some((scheme, rest)) = url_or_path.split_once("://") else { return url_or_path.to_owned() };
    // The last `@`: a password may hold one (unencoded), and hiding too much is harmless.
    let Some((userinfo, host)) = rest.rsplit_once('@') else { return url_or_path.to_owned() };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url_or_path.to_owned(),
    }
}

#[derive(Debug)]
enum TxInner<'c> {
    Sqlite(sqlx::Transaction<'c, Sqlite>),
    Postgres(sqlx::Transaction<'c, Postgres>),
}

/// A database transaction. Dropped without [`Tx::commit`], it rolls back.
#[derive(Debug)]
pub struct Tx<'c> {
    inner: TxInner<'c>,
}

impl Tx<'_> {
    /// Makes every change of the transaction durable.
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await?,
            TxInner::Postgres(tx) => tx.commit().await?,
        }
        debug!("transaction committed");
        Ok(())
    }

    /// Undoes every change of the transaction.
    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback().await?,
            TxInner::Postgres(tx) => tx.rollback().await?,
        }
        debug!("transaction rolled back");
        Ok(())
    }

    /// Opens a savepoint: a nested transaction whose changes can be rolled back alone.
    /// Committing it releases the savepoint into this transaction.
    pub async fn savepoint(&mut self) -> Result<Tx<'_>> {
        let inner = match &mut self.inner {
            TxInner::Sqlite(tx) => TxInner::Sqlite(sqlx::Acquire::begin(&mut **tx).await?),
            TxInner::Postgres(tx) => TxInner::Postgres(sqlx::Acquire::begin(&mut **tx).await?),
        };
        Ok(Tx { inner })
    }
}

/// A read transaction (see [`Db::read`]); ends when dropped.
#[derive(Debug)]
pub struct ReadTx {
    inner: TxInner<'static>,
}

#[derive(Debug)]
enum ConnInner {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

/// A pooled connection, returned to the pool when dropped.
#[derive(Debug)]
pub struct Conn {
    inner: ConnInner,
}

/// Wakes a process when another one commits an event (see [`Db::event_listener`]).
#[derive(Debug)]
pub struct EventListener {
    inner: PgListener,
}

impl EventListener {
    /// Waits for the next announcement. `Some(seq)`: an event with this `seq` committed.
    /// `None`: the listening connection was lost and has been re-established; announcements
    /// may have been missed meanwhile, so read the log from your cursor. An error (the server
    /// unreachable): call again later, which tries to reconnect.
    pub async fn next(&mut self) -> Result<Option<i64>> {
        match self.inner.try_recv().await? {
            Some(n) => match n.payload().parse::<i64>() {
                Ok(seq) => Ok(Some(seq)),
                Err(_) => {
                    warn!(channel = n.channel(), payload = n.payload(), "unexpected event notification");
                    Ok(Some(0))
                }
            },
            None => {
                warn!(channel = EVENTS_CHANNEL, "event listener lost its connection; reconnecting");
                // Listening again before the caller re-reads the log: an event committed after
                // that read is announced, one committed before it is read. No gap either way.
                sqlx::query("SELECT 1").execute(&mut self.inner).await?;
                debug!(channel = EVENTS_CHANNEL, "event listener reconnected");
                Ok(None)
            }
        }
    }
}

pub(crate) mod sealed {
    use sqlx::{PgConnection, SqliteConnection};

    /// Gives repository functions the connection to run on. Not nameable outside the crate,
    /// so no driver type leaks into the public API.
    pub trait Sealed {
        fn connection(&mut self) -> Connection<'_>;
    }

    /// A connection borrowed from an executor, whichever the backend.
    pub enum Connection<'a> {
        Sqlite(&'a mut SqliteConnection),
        Postgres(&'a mut PgConnection),
    }
}

use sealed::Connection;

/// Something repository functions can run statements on: a [`Tx`], a [`ReadTx`] or a [`Conn`].
pub trait Executor: sealed::Sealed + Send {}

fn tx_connection<'a>(tx: &'a mut TxInner<'_>) -> Connection<'a> {
    match tx {
        TxInner::Sqlite(tx) => Connection::Sqlite(tx),
        TxInner::Postgres(tx) => Connection::Postgres(tx),
    }
}

impl sealed::Sealed for Tx<'_> {
    fn connection(&mut self) -> Connection<'_> {
        tx_connection(&mut self.inner)
    }
}
impl Executor for Tx<'_> {}

impl sealed::Sealed for ReadTx {
    fn connection(&mut self) -> Connection<'_> {
        tx_connection(&mut self.inner)
    }
}
impl Executor for ReadTx {}

impl sealed::Sealed for Conn {
    fn connection(&mut self) -> Connection<'_> {
        match &mut self.inner {
            ConnInner::Sqlite(c) => Connection::Sqlite(c),
            ConnInner::Postgres(c) => Connection::Postgres(c),
        }
    }
}
impl Executor for Conn {}

/// What a statement that returns no rows reports, the same for both backends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Done(u64);

impl Done {
    pub(crate) fn of(result: impl RowsAffected) -> Self {
        Self(result.rows_affected())
    }

    pub(crate) fn rows_affected(self) -> u64 {
        self.0
    }
}

pub(crate) trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// How much of the connection pool is in use (see [`Db::pool_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open.
    pub open: u32,
    /// Open connections not in use.
    pub idle: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_names_the_backend() {
        assert_eq!(Backend::of("postgres://u@h/db"), Backend::Postgres);
        assert_eq!(Backend::of("postgresql://u@h/db"), Backend::Postgres);
        assert_eq!(Backend::of("sqlite:/tmp/x.db"), Backend::Sqlite);
        assert_eq!(Backend::of("/srv/codeframe/state.db"), Backend::Sqlite);
        // A relative file whose name merely starts like a scheme is a file.
        assert_eq!(Backend::of("postgres.db"), Backend::Sqlite);
    }

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/cf"), "postgres://app:***@db:5432/cf");
        assert_eq!(redact("postgres://app@db/cf"), "postgres://app@db/cf");
        assert_eq!(redact("/srv/state.db"), "/srv/state.db");
        assert_eq!(redact("postgres://app:p@ss@db/cf"), "postgres://app:***@db/cf");
    }
}
