//! Agents of a project: list, assign, deactivate.

use super::*;

/// A project's active agents.
#[derive(Serialize, ToSchema)]
pub(crate) struct AgentList {
    /// Their ids.
    agents: Vec<String>,
}

/// `POST /api/projects/{id}/agents`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignAgent {
    /// 1–128 ASCII letters, digits, `.`, `_` and `-` (not `.` or `..`).
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^([A-Za-z0-9_-][A-Za-z0-9._-]*|\.[A-Za-z0-9_-][A-Za-z0-9._-]*|\.\.[A-Za-z0-9._-]+)$"
    )]
    agent_id: String,
    /// 1–64 characters, no control characters (default `worker`).
    #[serde(default = "default_agent_type")]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\p{Cc}]*[^\s\p{Cc}][^\p{Cc}]*$")]
    agent_type: String,
    /// 1–64 characters, no control characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\p{Cc}]*[^\s\p{Cc}][^\p{Cc}]*$")]
    provider: Option<String>,
    /// 1–64 characters, no control characters (default `worker`).
    #[serde(default = "default_role")]
    #[schema(min_length = 1, max_length = 64, pattern = r"^[^\p{Cc}]*[^\s\p{Cc}][^\p{Cc}]*$")]
    role: String,
}

pub(crate) fn default_agent_type() -> String {
    "worker".into()
}

pub(crate) fn default_role() -> String {
    "worker".into()
}

/// Active agents of a project.
#[utoipa::path(get, path = "/api/projects/{id}/agents", operation_id = "listAgents", tag = "agents",
    params(ProjectPath),
    responses((status = 200, description = "The agents", body = AgentList), BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn list_agents(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(AgentList { agents: s.service.active_agents(id).await? })
}

/// Register (if new) and assign an agent.
#[utoipa::path(post, path = "/api/projects/{id}/agents", operation_id = "assignAgent", tag = "agents",
    params(ProjectPath), request_body = AssignAgent,
    responses((status = 201, description = "Assigned", body = codeframe_models::AgentAssignment),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn assign_agent(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
    ApiJson(body): ApiJson<AssignAgent>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let assigned = s
        .service
        .add_agent(id, &body.agent_id, &body.agent_type, body.provider.as_deref(), &body.role)
        .await?;
    created(assigned)
}

/// End an agent's assignment.
#[utoipa::path(delete, path = "/api/projects/{id}/agents/{agent}", operation_id = "deactivateAgent", tag = "agents",
    params(AgentPath),
    responses((status = 204, description = "Ended"), BadRequest, NotFound, Invalid, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn deactivate_agent(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(AgentPath { id, agent }): ApiPath<AgentPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.deactivate(id, &agent).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
