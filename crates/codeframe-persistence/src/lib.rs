//! Persistence for codeframe: embedded SQLite (the default) or PostgreSQL, behind one API.
//!
//! [`Db`] owns the connection pool and runs the migrations of the workspace's top-level
//! `migrations/<backend>/` folder when it opens; the location picks the [`Backend`]
//! (`postgres://…` → PostgreSQL, a path or `sqlite:` → SQLite). Work happens through repository modules
//! ([`projects`], [`agents`], [`context`], [`checkpoints`], [`flash_saves`], [`tasks`],
//! [`token_usage`], [`auth`], the file restores' commit markers [`file_restores`], the event log [`events`], the run gate's [`permits`] and the
//! change counters [`revisions`]) whose
//! functions take any [`Executor`]: a pooled [`Conn`] for a single
//! statement, or a [`Tx`] (opened by [`Db::begin`]) so several calls commit or roll back
//! together. No sqlx type appears in this crate's public signatures: callers never know which
//! backend runs their statements. On PostgreSQL, [`Db::event_listener`] announces events other
//! processes commit.
//!
//! ```no_run
//! # async fn demo() -> Result<(), codeframe_persistence::DbError> {
//! use codeframe_models::NewProject;
//! use codeframe_persistence::{Db, projects};
//!
//! let db = Db::open("state.db").await?; // or "postgres://user:pass@host/codeframe"
//! let mut tx = db.begin().await?;
//! let p = projects::insert(&mut tx, &NewProject {
//!     name: "demo".into(), description: String::new(), root_path: "/tmp/demo".into(), owner_id: None,
//! }, codeframe_models::timestamp::now_utc()).await?;
//! tx.commit().await?;
//! # let _ = p; Ok(()) }
//! ```

/// Runs a statement on an executor's connection, whichever the backend: the body is compiled
/// once per backend with `$c` bound to that backend's connection (and `$b`, when named, to
/// the [`Backend`], for the few statements whose SQL differs). Both arms yield the same type.
macro_rules! on {
    ($ex:expr, $c:ident => $body:expr) => {
        on!($ex, $c, _backend => $body)
    };
    ($ex:expr, $c:ident, $b:ident => $body:expr) => {
        match crate::db::sealed::Sealed::connection($ex) {
            crate::db::sealed::Connection::Sqlite($c) => {
                #[allow(unused_variables)]
                let $b = crate::Backend::Sqlite;
                $body
            }
            crate::db::sealed::Connection::Postgres($c) => {
                #[allow(unused_variables)]
                let $b = crate::Backend::Postgres;
                $body
            }
        }
    };
}

mod db;
mod error;
mod rows;

pub mod agents;
pub mod auth;
pub mod checkpoints;
pub mod context;
pub mod events;
pub mod file_restores;
pub mod flash_saves;
pub mod permits;
pub mod projects;
pub mod revisions;
pub mod tasks;
pub mod token_usage;

pub use db::{
    Backend, Conn, Db, DbOptions, EVENTS_CHANNEL, EventListener, Executor, PoolUsage, ReadTx, Tx, redact,
    schema_version, settle_unused,
};
pub use error::{BackendError, ConstraintKind, DbError};

/// Result of a persistence operation.
pub type Result<T, E = DbError> = std::result::Result<T, E>;
