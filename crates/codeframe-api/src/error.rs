//! One error shape everywhere: `{"error": {"code", "message", "details"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use codeframe_checkpoint::CheckpointError;
use codeframe_context::ContextError;
use codeframe_core::{ConflictKind, CoreError};
use serde_json::{Value, json};
use tracing::error;

/// An error answered to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`not_found`, `already_paused`, …).
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Structured details (may be empty).
    pub details: Value,
}

impl ApiError {
    /// An error with empty details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: json!({}) }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub(crate) fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// An internal error: logged with its cause, answered without it.
    pub(crate) fn internal(cause: impl std::fmt::Display) -> Self {
        error!(error = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal server error")
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

fn conflict_code(kind: &ConflictKind) -> &'static str {
    match kind {
        ConflictKind::AlreadyPaused { .. } => "already_paused",
        ConflictKind::NotPaused { .. } => "not_paused",
        ConflictKind::InvalidTransition { .. } => "invalid_transition",
        ConflictKind::Concurrent => "concurrent_update",
        ConflictKind::NameTaken { .. } => "name_taken",
        ConflictKind::AlreadyAssigned { .. } => "already_assigned",
        ConflictKind::AgentExists { .. } => "agent_exists",
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::NotFound { .. } | CoreError::NoCheckpoint(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            CoreError::Conflict(kind) => Self::new(StatusCode::CONFLICT, conflict_code(&kind), message)
                .with_details(serde_json::to_value(&kind).unwrap_or_else(|_| json!({}))),
            CoreError::Paused(id) => {
                Self::new(StatusCode::CONFLICT, "paused", message).with_details(json!({"project_id": id}))
            }
            CoreError::Invalid(_) | CoreError::BadRoot { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            CoreError::Context(c) => c.into(),
            CoreError::Checkpoint(c) => c.into(),
            CoreError::Db(_) | CoreError::Injected(_) => Self::internal(message),
        }
    }
}

impl From<ContextError> for ApiError {
    fn from(e: ContextError) -> Self {
        let message = e.to_string();
        match e {
            ContextError::UnknownProject(_)
            | ContextError::UnknownAgent { .. }
            | ContextError::UnknownItem(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            ContextError::ContentTooLarge { size, limit } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "content_too_large", message)
                    .with_details(json!({"size": size, "limit": limit}))
            }
            ContextError::EmptyContent { .. }
            | ContextError::InvalidItemType(_)
            | ContextError::Invalid(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message),
            ContextError::Tokenizer(_) | ContextError::Storage(_) => Self::internal(message),
        }
    }
}

impl From<CheckpointError> for ApiError {
    fn from(e: CheckpointError) -> Self {
        let message = e.to_string();
        match e {
            CheckpointError::NotFound(_) | CheckpointError::UnknownProject(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            CheckpointError::InUse(_) => Self::new(StatusCode::CONFLICT, "checkpoint_in_use", message),
            CheckpointError::Unreadable { .. } => {
                Self::new(StatusCode::CONFLICT, "checkpoint_unreadable", message)
            }
            CheckpointError::Invalid(_) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message),
            CheckpointError::UnsafePath { .. } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unsafe_path", message)
            }
            CheckpointError::BadRoot(_) => Self::new(StatusCode::CONFLICT, "project_root_missing", message),
            CheckpointError::Store { .. }
            | CheckpointError::Io { .. }
            | CheckpointError::State { .. }
            | CheckpointError::Db(_)
            | CheckpointError::Worker(_) => Self::internal(message),
        }
    }
}

impl From<codeframe_persistence::DbError> for ApiError {
    fn from(e: codeframe_persistence::DbError) -> Self {
        CoreError::from(e).into()
    }
}
