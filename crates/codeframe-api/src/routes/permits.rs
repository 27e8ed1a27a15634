//! The run gate: status, permits taken, renewed, released.

use super::*;

/// The run gate: closed?, live permits.
#[utoipa::path(get, path = "/api/projects/{id}/permits", operation_id = "gateStatus", tag = "permits",
    params(ProjectPath),
    responses((status = 200, description = "The gate", body = codeframe_core::GateStatus), BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn gate_status(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.gate_status(id).await?)
}

/// `POST /api/projects/{id}/permits`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TakePermit {
    /// The agent doing the unit of work (1–128 ASCII letters, digits, `.`, `_`, `-`).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)$"
    )]
    agent_id: String,
    /// How long the permit lasts unless renewed: 1–3600 seconds (default: the server's lease).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3600)]
    ttl_seconds: Option<u64>,
}

/// Take a run-gate permit for an agent's unit of work (409 when paused or pausing).
#[utoipa::path(post, path = "/api/projects/{id}/permits", operation_id = "takePermit", tag = "permits",
    params(ProjectPath), request_body = TakePermit,
    responses((status = 201, description = "Taken", body = codeframe_core::RemotePermit),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn take_permit(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
    ApiJson(body): ApiJson<TakePermit>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let ttl = body.ttl_seconds.map(std::time::Duration::from_secs);
    created(s.service.take_permit(id, &body.agent_id, ttl).await?)
}

/// `POST /api/projects/{id}/permits/{permit_id}/renew` (the body may be omitted).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewPermit {
    /// Extend by this many seconds from now: 1–3600 (default: the server's lease).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3600)]
    ttl_seconds: Option<u64>,
}

/// Extend a permit; says whether a pause has begun.
#[utoipa::path(post, path = "/api/projects/{id}/permits/{permit_id}/renew", operation_id = "renewPermit", tag = "permits",
    params(PermitPath), request_body = Option<RenewPermit>,
    responses((status = 200, description = "Renewed", body = codeframe_core::RemotePermit),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn renew_permit(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(PermitPath { id, permit_id }): ApiPath<PermitPath>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RenewPermit>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let ttl = body.ttl_seconds.map(std::time::Duration::from_secs);
    ok(s.service.renew_permit(id, permit_id, ttl).await?)
}

/// End a permit (a pause waiting for it goes on).
#[utoipa::path(delete, path = "/api/projects/{id}/permits/{permit_id}", operation_id = "releasePermit", tag = "permits",
    params(PermitPath),
    responses((status = 204, description = "Released"), BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn release_permit(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(PermitPath { id, permit_id }): ApiPath<PermitPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.release_permit(id, permit_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
