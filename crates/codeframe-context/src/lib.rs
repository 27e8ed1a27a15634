//! Tiered agent context for codeframe.
//!
//! An agent's context is a set of [`ContextItem`](codeframe_models::ContextItem)s, each
//! scored for importance ([`codeframe_models::scoring`]) and placed in a tier. The
//! [`ContextManager`] trait is the seam the rest of the system uses; [`SqlContextManager`]
//! implements it over `codeframe-persistence`.
//!
//! - Token counts are `cl100k_base` ([`tokens`]), computed once when an item is written and
//!   stored, so nothing (a pause least of all) re-tokenizes.
//! - A **flash save** archives an agent's COLD items — the rows are kept, marked with the
//!   flash save that archived them — and records a `flash_saves` row. It runs inside a
//!   transaction the caller passes, so a pause can make it part of its own transaction.
//! - Archived items can be brought back with [`ContextManager::restore_archived`].

mod config;
mod error;
mod manager;
pub mod tokens;

pub use config::ContextConfig;
pub use error::ContextError;
pub use manager::{ContextManager, FlashSavePlan, ItemPage, ListQuery, SqlContextManager, parse_item_type};

/// Re-exported so callers can name the archive filter without depending on persistence.
pub use codeframe_persistence::context::ArchiveState;

/// Result of a context operation.
pub type Result<T, E = ContextError> = std::result::Result<T, E>;
