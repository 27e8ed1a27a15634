//! The run gate: status, permits taken, renewed, released.

use super::*;

pub(super) async fn gate_status(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.gate_status(id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TakePermit {
    agent_id: String,
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

pub(super) async fn take_permit(
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
pub(super) struct RenewPermit {
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

pub(super) async fn renew_permit(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, permit_id)): ApiPath<(i64, i64)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RenewPermit>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let ttl = body.ttl_seconds.map(std::time::Duration::from_secs);
    ok(s.service.renew_permit(id, permit_id, ttl).await?)
}

pub(super) async fn release_permit(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, permit_id)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.release_permit(id, permit_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
