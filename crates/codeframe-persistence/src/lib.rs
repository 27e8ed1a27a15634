//! SQLite persistence for codeframe.
//!
//! [`Db`] owns the connection pool and runs the migrations of the workspace's top-level
//! `migrations/` folder when it opens. Work happens through repository modules
//! ([`projects`], [`agents`], [`context`], [`checkpoints`], [`flash_saves`], [`tasks`],
//! [`token_usage`], [`auth`], the file restores' commit markers [`file_restores`], the event log [`events`], the run gate's [`permits`] and the
//! change counters [`revisions`]) whose
//! functions take any [`Executor`]: a pooled [`Conn`] for a single
//! statement, or a [`Tx`] (opened by [`Db::begin`]) so several calls commit or roll back
//! together. No sqlx type appears in this crate's public signatures, so a PostgreSQL backend
//! can be added behind the same API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), codeframe_persistence::DbError> {
//! use codeframe_models::NewProject;
//! use codeframe_persistence::{Db, projects};
//!
//! let db = Db::open("state.db").await?;
//! let mut tx = db.begin().await?;
//! let p = projects::insert(&mut tx, &NewProject {
//!     name: "demo".into(), description: String::new(), root_path: "/tmp/demo".into(), owner_id: None,
//! }, codeframe_models::timestamp::now_utc()).await?;
//! tx.commit().await?;
//! # let _ = p; Ok(()) }
//! ```

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

pub use db::{Conn, Db, DbOptions, Executor, PoolUsage, ReadTx, Tx, schema_version, settle_unused};
pub use error::{BackendError, ConstraintKind, DbError};

/// Result of a persistence operation.
pub type Result<T, E = DbError> = std::result::Result<T, E>;
