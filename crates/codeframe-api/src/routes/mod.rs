//! Every route, described once for the router ([`route_table`]: method, path, body limit,
//! whether it needs a token) and once for the document (each handler's `#[utoipa::path]`: its
//! parameters, body and answers). A test checks that both list the same routes.

mod agents;
mod checkpoints;
mod context;
mod events;
mod lifecycle;
mod permits;
mod projects;
mod tokens;

pub(crate) use agents::*;
pub(crate) use checkpoints::*;
pub(crate) use context::*;
pub(crate) use events::*;
pub(crate) use lifecycle::*;
pub(crate) use permits::*;
pub(crate) use projects::*;
pub(crate) use tokens::*;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use codeframe_core::{ArchiveState, ListQuery, RestoreMode, RestoreWhat};
use codeframe_models::{
    CheckpointId, EventSeq, ItemType, NewContextItem, NewProject, PauseRequest, ProjectId, ResumeOptions,
    Tier, timestamp,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Caller, visible_project};
use crate::extract::{ApiJson, ApiJsonOrDefault, ApiPath, ApiQuery, PermitHeader};
use crate::openapi::{BadRequest, BodyErrors, Conflict, Gone, Invalid, NotFound, ServerErrors, Unauthorized};
use crate::{ApiError, AppState};

/// How one route is served: its method, path, whether it needs a token and how large a body
/// it takes. What it takes and answers is in its handler's `#[utoipa::path]`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RouteSpec {
    /// HTTP method, lower case.
    pub method: &'static str,
    /// Path, with `{param}` segments.
    pub path: &'static str,
    /// Whether it needs a bearer token.
    pub auth: bool,
    /// Whether it is an agent's write, which takes the `Codeframe-Permit` header (refused while
    /// the project is paused or pausing unless made under a live permit).
    pub agent_write: bool,
    /// Largest body accepted (413 beyond): 64 KiB, more only where a route needs it.
    pub body_limit: usize,
}

/// The body limit of most routes: their bodies are a few short fields.
const SMALL_BODY: usize = 64 << 10;

const fn route(method: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec { method, path, auth: true, agent_write: false, body_limit: SMALL_BODY }
}

/// A route anyone may call (no token; `/ws` takes its token itself).
const fn public(mut s: RouteSpec) -> RouteSpec {
    s.auth = false;
    s
}

/// Marks a route as an agent's write (see [`RouteSpec::agent_write`]) taking up to `limit`
/// bytes of body.
const fn agent_write(mut s: RouteSpec, limit: usize) -> RouteSpec {
    s.agent_write = true;
    s.body_limit = limit;
    s
}

type Handler = MethodRouter<AppState>;

/// The routes served, each with its handler.
pub(crate) fn route_table() -> Vec<(RouteSpec, Handler)> {
    vec![
        (public(route("get", "/healthz")), get(health)),
        (public(route("get", "/api/openapi.json")), get(openapi)),
        (public(route("get", "/ws")), get(crate::ws::handler)),
        (route("get", "/api/tokens"), get(list_tokens)),
        (route("delete", "/api/tokens/{token_id}"), delete(revoke_token)),
        (route("post", "/api/projects"), post(create_project)),
        (route("get", "/api/projects"), get(list_projects)),
        (route("get", "/api/projects/{id}"), get(get_project)),
        (route("post", "/api/projects/{id}/start"), post(start)),
        (route("post", "/api/projects/{id}/move"), post(move_project)),
        (route("post", "/api/projects/{id}/pause"), post(pause)),
        (route("post", "/api/projects/{id}/resume"), post(resume)),
        (route("get", "/api/projects/{id}/pause-status"), get(pause_status)),
        (route("get", "/api/projects/{id}/events"), get(list_events)),
        (route("get", "/api/projects/{id}/permits"), get(gate_status)),
        (route("post", "/api/projects/{id}/permits"), post(take_permit)),
        (route("post", "/api/projects/{id}/permits/{permit_id}/renew"), post(renew_permit)),
        (route("delete", "/api/projects/{id}/permits/{permit_id}"), delete(release_permit)),
        (route("get", "/api/projects/{id}/checkpoints"), get(list_checkpoints)),
        (route("post", "/api/projects/{id}/checkpoints"), post(create_checkpoint)),
        (route("get", "/api/projects/{id}/checkpoints/{cid}"), get(get_checkpoint)),
        (route("delete", "/api/projects/{id}/checkpoints/{cid}"), delete(delete_checkpoint)),
        (route("get", "/api/projects/{id}/checkpoints/{cid}/diff"), get(diff_checkpoint)),
        (route("get", "/api/projects/{id}/checkpoints/policy"), get(get_policy)),
        (route("put", "/api/projects/{id}/checkpoints/policy"), put(set_policy)),
        (route("post", "/api/projects/{id}/checkpoints/prune"), post(prune)),
        (route("post", "/api/projects/{id}/checkpoints/gc"), post(collect_garbage)),
        (route("post", "/api/projects/{id}/checkpoints/{cid}/pin"), post(pin)),
        (route("post", "/api/projects/{id}/checkpoints/{cid}/unpin"), post(unpin)),
        (route("post", "/api/projects/{id}/checkpoints/undo"), post(undo_restore)),
        (route("post", "/api/projects/{id}/checkpoints/{cid}/restore"), post(restore_checkpoint)),
        (route("get", "/api/projects/{id}/agents"), get(list_agents)),
        (route("post", "/api/projects/{id}/agents"), post(assign_agent)),
        (route("delete", "/api/projects/{id}/agents/{agent}"), delete(deactivate_agent)),
        (route("get", "/api/projects/{id}/agents/{agent}/context"), get(list_context)),
        // One item: its content may be 1 MiB, escaped in JSON.
        (agent_write(route("post", "/api/projects/{id}/agents/{agent}/context"), 4 << 20), post(add_context)),
        (
            agent_write(
                route("post", "/api/projects/{id}/agents/{agent}/context/bulk"),
                crate::DEFAULT_BODY_LIMIT,
            ),
            post(add_context_bulk),
        ),
        (route("get", "/api/projects/{id}/agents/{agent}/context/stats"), get(context_stats)),
        (route("post", "/api/projects/{id}/agents/{agent}/context/restore"), post(restore_archived)),
        (
            agent_write(route("post", "/api/projects/{id}/agents/{agent}/flash-save"), SMALL_BODY),
            post(flash_save),
        ),
    ]
}

/// `{id}`: a project of the caller's.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ProjectPath {
    /// The project's id.
    id: ProjectId,
}

/// `{id}/checkpoints/{cid}`: one checkpoint of a project.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct CheckpointPath {
    /// The project's id.
    id: ProjectId,
    /// The checkpoint's id.
    cid: CheckpointId,
}

/// `{id}/permits/{permit_id}`: one run-gate permit of a project.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PermitPath {
    /// The project's id.
    id: ProjectId,
    /// The permit's id.
    permit_id: i64,
}

/// `{id}/agents/{agent}`: one agent of a project.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct AgentPath {
    /// The project's id.
    id: ProjectId,
    /// The agent's id: 1–128 ASCII letters, digits, `.`, `_` and `-` (not `.` or `..`).
    #[param(
        max_length = 128,
        pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)$"
    )]
    agent: String,
}

type ApiResult = Result<Response, ApiError>;

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::OK, axum::Json(value)).into_response())
}

fn created(value: impl serde::Serialize) -> ApiResult {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// Liveness check.
#[utoipa::path(get, path = "/healthz", operation_id = "health", tag = "service",
    responses((status = 200, description = "The server is up", body = Health), ServerErrors))]
pub(crate) async fn health() -> ApiResult {
    ok(Health { status: "ok" })
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "openapi", tag = "service",
    responses((status = 200, description = "The document", body = Object), ServerErrors))]
pub(crate) async fn openapi() -> ApiResult {
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    Ok((json, crate::openapi::document_json()).into_response())
}
