use codeframe_models::{ModelError, ProjectId};
use codeframe_persistence::DbError;
use thiserror::Error;

/// Why a context operation failed. Nothing was changed when one is returned.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ContextError {
    /// No project with this id.
    #[error("project {0} not found")]
    UnknownProject(ProjectId),
    /// The agent is not registered, or not actively assigned to the project.
    #[error("agent {agent_id:?} is not an active agent of project {project_id}")]
    UnknownAgent {
        /// Project.
        project_id: ProjectId,
        /// Agent id that was given.
        agent_id: String,
    },
    /// No context item with this id.
    #[error("context item {0} not found")]
    UnknownItem(String),
    /// The item type is not one of TASK, CODE, ERROR, TEST_RESULT, PRD_SECTION.
    #[error("invalid item type {0:?}; expected one of TASK, CODE, ERROR, TEST_RESULT, PRD_SECTION")]
    InvalidItemType(String),
    /// The content is empty or only whitespace.
    #[error("context item content for agent {agent_id:?} is empty")]
    EmptyContent {
        /// Agent the item was for.
        agent_id: String,
    },
    /// The content is larger than the configured limit.
    #[error("context item content is {size} bytes; the limit is {limit} bytes")]
    ContentTooLarge {
        /// Size given.
        size: usize,
        /// The limit ([`crate::ContextConfig::max_content_bytes`]).
        limit: usize,
    },
    /// A value failed validation (agent id, timestamp, …).
    #[error(transparent)]
    Invalid(#[from] ModelError),
    /// The rows changed between a flash save's plan and its application.
    #[error(
        "the context of agent {agent_id:?} in project {project_id} changed since the flash save was planned"
    )]
    Stale {
        /// Project.
        project_id: ProjectId,
        /// Agent.
        agent_id: String,
    },
    /// The tokenizer could not be loaded.
    #[error("cannot load the cl100k_base tokenizer: {0}")]
    Tokenizer(String),
    /// The database failed.
    #[error("context storage failed: {0}")]
    Storage(#[from] DbError),
}
