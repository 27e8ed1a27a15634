//! Every route, described once: the router and the OpenAPI document are both built from
//! [`route_table`], so they cannot disagree.

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

async fn list_tokens(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult {
    ok(json!({"tokens": s.service.list_tokens(Some(c.user_id)).await?}))
}

async fn revoke_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(token_id): ApiPath<i64>,
) -> ApiResult {
    s.service.revoke_token(token_id, Some(c.user_id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateProject {
    name: String,
    root_path: String,
    #[serde(default)]
    description: String,
}

async fn create_project(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiJson(body): ApiJson<CreateProject>,
) -> ApiResult {
    let new = NewProject {
        name: body.name,
        description: body.description,
        root_path: body.root_path,
        owner_id: Some(c.user_id),
    };
    created(s.service.create_served_project(new).await?)
}

async fn list_projects(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult {
    ok(json!({"projects": s.service.list_owned(c.user_id).await?}))
}

async fn get_project(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    ok(visible_project(&s, c, id).await?)
}

async fn start(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.start(id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    root_path: String,
}

async fn move_project(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MoveBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.move_served_project(id, &body.root_path).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn pause(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<PauseBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.pause(id, PauseRequest { reason: body.reason }).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    #[serde(default)]
    checkpoint_id: Option<i64>,
    #[serde(default)]
    restore_files: bool,
    #[serde(default)]
    force: bool,
}

async fn resume(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<ResumeBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let options = ResumeOptions {
        checkpoint_id: body.checkpoint_id,
        restore_files: body.restore_files,
        force: body.force,
    };
    ok(s.service.resume(id, options).await?)
}

async fn pause_status(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    // The hot path of status polling: the project row (for the owner check too) and the
    // aggregate over its active context, in one statement.
    let (p, totals) = s.service.get_with_totals(id).await?;
    if p.owner_id != Some(c.user_id) {
        return Err(ApiError::not_found(format!("project {id}")));
    }
    let paused_for_seconds = p.paused_at.map(|t| (timestamp::now_utc() - t).whole_seconds().max(0));
    ok(json!({
        "project_id": p.id,
        "status": p.status,
        "paused": p.status == codeframe_models::ProjectStatus::Paused,
        "paused_at": p.paused_at.map(timestamp::format),
        "paused_for_seconds": paused_for_seconds,
        "reason": p.pause_reason,
        "checkpoint_id": p.pause_checkpoint_id,
        "token_totals": totals,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Omitted: from the oldest event kept.
    #[serde(default)]
    since: Option<EventSeq>,
    #[serde(default = "default_events_limit")]
    limit: i64,
}

fn default_events_limit() -> i64 {
    100
}

async fn list_events(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    if !(1..=1000).contains(&q.limit) || q.since.is_some_and(|s| s < 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "since must be ≥ 0 and limit 1..=1000",
        ));
    }
    let since = match q.since {
        Some(since) => since,
        None => s.service.event_horizon(id).await?,
    };
    ok(s.service.events_since(id, since, q.limit).await?)
}

async fn gate_status(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.gate_status(id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TakePermit {
    agent_id: String,
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

async fn take_permit(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TakePermit>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let ttl = body.ttl_seconds.map(std::time::Duration::from_secs);
    created(s.service.take_permit(id, &body.agent_id, ttl).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RenewPermit {
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

async fn renew_permit(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, permit_id)): ApiPath<(i64, i64)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RenewPermit>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let ttl = body.ttl_seconds.map(std::time::Duration::from_secs);
    ok(s.service.renew_permit(id, permit_id, ttl).await?)
}

async fn release_permit(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, permit_id)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.release_permit(id, permit_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_checkpoints(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(json!({"checkpoints": s.service.list_checkpoints(id).await?}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCheckpoint {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CreateCheckpoint>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    created(s.service.create_checkpoint(id, &body.name, &body.description).await?)
}

async fn get_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.checkpoint(id, cid).await?)
}

async fn delete_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.delete_checkpoint(id, cid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct DiffQuery {
    #[serde(default)]
    unified: bool,
}

async fn diff_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.diff_checkpoint(id, cid, q.unified).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RestoreBody {
    #[serde(default)]
    files: bool,
    #[serde(default)]
    state: bool,
    #[serde(default)]
    context: bool,
    #[serde(default)]
    preview: bool,
    #[serde(default)]
    force: bool,
}

async fn restore_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RestoreBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let what =
        RestoreWhat { files: body.files, state: body.state, context: body.context, keep_new_items: false };
    let mode = if body.preview { RestoreMode::Preview } else { RestoreMode::Apply };
    ok(s.service.restore_checkpoint_with(id, cid, what, mode, body.force).await?)
}

async fn get_policy(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.retention_policy(id).await?)
}

async fn set_policy(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(policy): ApiJson<codeframe_models::RetentionPolicy>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.set_retention_policy(id, policy).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PruneBody {
    #[serde(default)]
    dry_run: bool,
}

async fn prune(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<PruneBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.prune_checkpoints(id, body.dry_run).await?)
}

async fn collect_garbage(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.collect_garbage(id).await?)
}

async fn pin(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.pin_checkpoint(id, cid, true).await?)
}

async fn unpin(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.pin_checkpoint(id, cid, false).await?)
}

async fn undo_restore(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.undo_restore(id).await?)
}

async fn list_agents(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(json!({"agents": s.service.active_agents(id).await?}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignAgent {
    agent_id: String,
    #[serde(default = "default_agent_type")]
    agent_type: String,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default = "default_role")]
    role: String,
}

fn default_agent_type() -> String {
    "worker".into()
}

fn default_role() -> String {
    "worker".into()
}

async fn assign_agent(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AssignAgent>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let assigned = s
        .service
        .add_agent(id, &body.agent_id, &body.agent_type, body.provider.as_deref(), &body.role)
        .await?;
    created(assigned)
}

async fn deactivate_agent(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.deactivate(id, &agent).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct ContextQuery {
    #[serde(default)]
    tier: Option<Tier>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

async fn list_context(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    ApiQuery(q): ApiQuery<ContextQuery>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let state = match q.state.as_deref() {
        None | Some("active") => ArchiveState::Active,
        Some("archived") => ArchiveState::Archived,
        Some("all") => ArchiveState::All,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("state must be active, archived or all, not {other:?}"),
            ));
        }
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) || q.offset.is_some_and(|o| o < 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "limit must be 1..=1000 and offset ≥ 0",
        ));
    }
    let query = ListQuery {
        project_id: id,
        agent_id: Some(agent),
        tier: q.tier,
        state,
        limit: Some(limit),
        offset: q.offset.unwrap_or(0),
    };
    let page = s.service.list_context(&query).await?;
    ok(json!({"items": page.items, "total": page.total, "limit": page.limit, "offset": page.offset}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddItem {
    item_type: ItemType,
    content: String,
    #[serde(default, with = "codeframe_models::timestamp::rfc3339::option")]
    created_at: Option<OffsetDateTime>,
    #[serde(default)]
    access_count: Option<i64>,
}

impl AddItem {
    fn into_new(self, agent: &str) -> NewContextItem {
        NewContextItem {
            agent_id: agent.to_owned(),
            item_type: self.item_type,
            content: self.content,
            created_at: self.created_at,
            access_count: self.access_count,
        }
    }
}

async fn add_context(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    PermitHeader(permit): PermitHeader,
    ApiJson(body): ApiJson<AddItem>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    created(s.service.add_context_item(id, body.into_new(&agent), permit).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddItems {
    items: Vec<AddItem>,
}

async fn add_context_bulk(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    PermitHeader(permit): PermitHeader,
    ApiJson(body): ApiJson<AddItems>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let items: Vec<NewContextItem> = body.items.into_iter().map(|i| i.into_new(&agent)).collect();
    let ids = s.service.add_context_items(id, items, permit).await?;
    created(json!({"ids": ids, "count": ids.len()}))
}

async fn context_stats(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let t = s.service.agent_token_totals(id, &agent).await?;
    ok(json!({
        "project_id": id,
        "agent_id": agent,
        "hot_count": t.hot_items, "warm_count": t.warm_items, "cold_count": t.cold_items,
        "total_count": t.total_items(),
        "hot_tokens": t.hot_tokens, "warm_tokens": t.warm_tokens, "cold_tokens": t.cold_tokens,
        "total_tokens": t.total_tokens(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FlashSaveBody {
    #[serde(default)]
    force: bool,
}

async fn flash_save(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    PermitHeader(permit): PermitHeader,
    ApiJsonOrDefault(body): ApiJsonOrDefault<FlashSaveBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    match s.service.flash_save(id, &agent, body.force, permit).await? {
        Some(report) => ok(report),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "flash_save_not_due",
            "context is below the flash-save threshold; use force to flash-save anyway",
        )),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RestoreArchivedBody {
    #[serde(default)]
    flash_save_id: Option<i64>,
}

async fn restore_archived(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RestoreArchivedBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let n = s.service.restore_archived(id, &agent, body.flash_save_id).await?;
    ok(json!({"restored": n}))
}
