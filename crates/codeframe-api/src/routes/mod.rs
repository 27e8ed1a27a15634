//! Every route, described once: the router and the OpenAPI document are both built from
//! [`route_table`], so they cannot disagree.

mod agents;
mod checkpoints;
mod context;
mod events;
mod lifecycle;
mod permits;
mod projects;
mod tokens;

use agents::*;
use checkpoints::*;
use context::*;
use events::*;
use lifecycle::*;
use permits::*;
use projects::*;
use tokens::*;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use codeframe_core::{ArchiveState, ListQuery, RestoreMode, RestoreWhat};
use codeframe_models::{
    EventSeq, ItemType, NewContextItem, NewProject, PauseRequest, ResumeOptions, Tier, timestamp,
};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use crate::auth::{Caller, visible_project};
use crate::extract::{ApiJson, ApiJsonOrDefault, ApiPath, ApiQuery, PermitHeader};
use crate::{ApiError, AppState};

/// One route: its method, path and what the OpenAPI document says of it.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path, with `{param}` segments.
    pub path: &'static str,
    /// OpenAPI operationId.
    pub operation: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    /// Whether it takes a JSON body.
    pub body: bool,
    /// Whether it needs a bearer token.
    pub auth: bool,
    /// Status of a success.
    pub success: u16,
    /// Whether it is an agent's write, which takes the `Codeframe-Permit` header (refused while
    /// the project is paused or pausing unless made under a live permit).
    pub agent_write: bool,
    /// Largest body accepted (413 beyond): 64 KiB, more only where a route needs it.
    pub body_limit: usize,
}

/// The body limit of most routes: their bodies are a few short fields.
const SMALL_BODY: usize = 64 << 10;

const fn spec(
    method: &'static str,
    path: &'static str,
    operation: &'static str,
    summary: &'static str,
    body: bool,
    success: u16,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        operation,
        summary,
        body,
        auth: true,
        success,
        agent_write: false,
        body_limit: SMALL_BODY,
    }
}

/// Raises a route's body limit.
const fn with_body_limit(mut s: RouteSpec, limit: usize) -> RouteSpec {
    s.body_limit = limit;
    s
}

/// Marks a route as an agent's write (see [`RouteSpec::agent_write`]).
const fn agent_write(mut s: RouteSpec) -> RouteSpec {
    s.agent_write = true;
    s
}

type Handler = MethodRouter<AppState>;

/// The routes served, each with its handler.
pub(crate) fn route_table() -> Vec<(RouteSpec, Handler)> {
    let public = |mut s: RouteSpec| {
        s.auth = false;
        s
    };
    vec![
        (public(spec("get", "/healthz", "health", "Liveness check", false, 200)), get(health)),
        (
            public(spec("get", "/api/openapi.json", "openapi", "This OpenAPI document", false, 200)),
            get(openapi),
        ),
        (
            spec(
                "get",
                "/api/tokens",
                "listTokens",
                "The caller's API tokens (never the tokens themselves)",
                false,
                200,
            ),
            get(list_tokens),
        ),
        (
            spec(
                "delete",
                "/api/tokens/{token_id}",
                "revokeToken",
                "Revoke one of the caller's tokens",
                false,
                204,
            ),
            delete(revoke_token),
        ),
        (spec("post", "/api/projects", "createProject", "Create a project", true, 201), post(create_project)),
        (
            spec("get", "/api/projects", "listProjects", "List the caller's projects", false, 200),
            get(list_projects),
        ),
        (spec("get", "/api/projects/{id}", "getProject", "Get a project", false, 200), get(get_project)),
        (
            spec("post", "/api/projects/{id}/start", "startProject", "Start a project", false, 200),
            post(start),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/move",
                "moveProject",
                "Re-point a project whose directory moved",
                true,
                200,
            ),
            post(move_project),
        ),
        (
            spec("post", "/api/projects/{id}/pause", "pauseProject", "Pause a project (atomic)", true, 200),
            post(pause),
        ),
        (
            spec("post", "/api/projects/{id}/resume", "resumeProject", "Resume a paused project", true, 200),
            post(resume),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/pause-status",
                "pauseStatus",
                "Pause status and context totals",
                false,
                200,
            ),
            get(pause_status),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/events",
                "listEvents",
                "The project's events after a seq, oldest first (410 when retention removed some)",
                false,
                200,
            ),
            get(list_events),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/permits",
                "gateStatus",
                "The run gate: closed?, live permits",
                false,
                200,
            ),
            get(gate_status),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/permits",
                "takePermit",
                "Take a run-gate permit for an agent's unit of work (409 when paused or pausing)",
                true,
                201,
            ),
            post(take_permit),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/permits/{permit_id}/renew",
                "renewPermit",
                "Extend a permit; says whether a pause has begun",
                true,
                200,
            ),
            post(renew_permit),
        ),
        (
            spec(
                "delete",
                "/api/projects/{id}/permits/{permit_id}",
                "releasePermit",
                "End a permit (a pause waiting for it goes on)",
                false,
                204,
            ),
            delete(release_permit),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/checkpoints",
                "listCheckpoints",
                "List checkpoints, newest first",
                false,
                200,
            ),
            get(list_checkpoints),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/checkpoints",
                "createCheckpoint",
                "Create a manual checkpoint",
                true,
                201,
            ),
            post(create_checkpoint),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/checkpoints/{cid}",
                "getCheckpoint",
                "Get a checkpoint",
                false,
                200,
            ),
            get(get_checkpoint),
        ),
        (
            spec(
                "delete",
                "/api/projects/{id}/checkpoints/{cid}",
                "deleteCheckpoint",
                "Delete a checkpoint",
                false,
                204,
            ),
            delete(delete_checkpoint),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/checkpoints/{cid}/diff",
                "diffCheckpoint",
                "Files changed since a checkpoint",
                false,
                200,
            ),
            get(diff_checkpoint),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/checkpoints/policy",
                "getRetentionPolicy",
                "The retention policy",
                false,
                200,
            ),
            get(get_policy),
        ),
        (
            spec(
                "put",
                "/api/projects/{id}/checkpoints/policy",
                "setRetentionPolicy",
                "Set the retention policy (then prune by it)",
                true,
                200,
            ),
            put(set_policy),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/checkpoints/prune",
                "pruneCheckpoints",
                "Delete checkpoints the policy does not keep (or list them with dry_run)",
                true,
                200,
            ),
            post(prune),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/checkpoints/gc",
                "collectGarbage",
                "Remove snapshot objects no checkpoint needs and pack the rest (409 store_busy while a checkpoint is being written)",
                false,
                200,
            ),
            post(collect_garbage),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/checkpoints/{cid}/pin",
                "pinCheckpoint",
                "Pin a checkpoint",
                false,
                200,
            ),
            post(pin),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/checkpoints/{cid}/unpin",
                "unpinCheckpoint",
                "Unpin a checkpoint",
                false,
                200,
            ),
            post(unpin),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/checkpoints/undo",
                "undoRestore",
                "Take the last restore back (restores the checkpoint it made first)",
                true,
                200,
            ),
            post(undo_restore),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/checkpoints/{cid}/restore",
                "restoreCheckpoint",
                "Restore (or preview) a checkpoint",
                true,
                200,
            ),
            post(restore_checkpoint),
        ),
        (
            spec("get", "/api/projects/{id}/agents", "listAgents", "Active agents of a project", false, 200),
            get(list_agents),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/agents",
                "assignAgent",
                "Register (if new) and assign an agent",
                true,
                201,
            ),
            post(assign_agent),
        ),
        (
            spec(
                "delete",
                "/api/projects/{id}/agents/{agent}",
                "deactivateAgent",
                "End an agent's assignment",
                false,
                204,
            ),
            delete(deactivate_agent),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/agents/{agent}/context",
                "listContext",
                "List an agent's context (paginated)",
                false,
                200,
            ),
            get(list_context),
        ),
        (
            // One item: its content may be 1 MiB, escaped in JSON.
            with_body_limit(
                agent_write(spec(
                    "post",
                    "/api/projects/{id}/agents/{agent}/context",
                    "addContextItem",
                    "Add a context item",
                    true,
                    201,
                )),
                4 << 20,
            ),
            post(add_context),
        ),
        (
            with_body_limit(
                agent_write(spec(
                    "post",
                    "/api/projects/{id}/agents/{agent}/context/bulk",
                    "addContextItems",
                    "Add context items in bulk",
                    true,
                    201,
                )),
                crate::DEFAULT_BODY_LIMIT,
            ),
            post(add_context_bulk),
        ),
        (
            spec(
                "get",
                "/api/projects/{id}/agents/{agent}/context/stats",
                "contextStats",
                "Active context per tier",
                false,
                200,
            ),
            get(context_stats),
        ),
        (
            spec(
                "post",
                "/api/projects/{id}/agents/{agent}/context/restore",
                "restoreArchived",
                "Bring archived items back",
                true,
                200,
            ),
            post(restore_archived),
        ),
        (
            agent_write(spec(
                "post",
                "/api/projects/{id}/agents/{agent}/flash-save",
                "flashSave",
                "Flash-save an agent's context",
                true,
                200,
            )),
            post(flash_save),
        ),
    ]
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(value)).into_response())
}

fn created(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

async fn health() -> ApiResult {
    ok(json!({"status": "ok"}))
}

async fn openapi() -> ApiResult {
    ok(crate::openapi::document())
}
