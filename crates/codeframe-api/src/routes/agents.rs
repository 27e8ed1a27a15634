//! Agents of a project: list, assign, deactivate.

use super::*;

pub(super) async fn list_agents(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(json!({"agents": s.service.active_agents(id).await?}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AssignAgent {
    agent_id: String,
    #[serde(default = "default_agent_type")]
    agent_type: String,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default = "default_role")]
    role: String,
}

pub(super) fn default_agent_type() -> String {
    "worker".into()
}

pub(super) fn default_role() -> String {
    "worker".into()
}

pub(super) async fn assign_agent(
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

pub(super) async fn deactivate_agent(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.deactivate(id, &agent).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
