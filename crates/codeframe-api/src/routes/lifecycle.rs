//! Pause, resume and pause status.

use super::*;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct PauseBody {
    #[serde(default)]
    reason: Option<String>,
}

pub(super) async fn pause(
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
pub(super) struct ResumeBody {
    #[serde(default)]
    checkpoint_id: Option<i64>,
    #[serde(default)]
    restore_files: bool,
    #[serde(default)]
    force: bool,
}

pub(super) async fn resume(
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

pub(super) async fn pause_status(
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
