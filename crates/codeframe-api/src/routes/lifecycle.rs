//! Pause, resume and pause status.

use super::*;

/// `POST /api/projects/{id}/pause` (the body may be omitted).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PauseBody {
    /// Why: at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: Option<String>,
}

/// Pause a project (atomic): drain its permits, checkpoint, flash-save every agent.
#[utoipa::path(post, path = "/api/projects/{id}/pause", operation_id = "pauseProject", tag = "lifecycle",
    params(ProjectPath), request_body = Option<PauseBody>,
    responses((status = 200, description = "Paused", body = codeframe_models::PauseOutcome),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn pause(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<PauseBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.pause(id, PauseRequest { reason: body.reason }).await?)
}

/// `POST /api/projects/{id}/resume` (the body may be omitted).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResumeBody {
    /// Resume from this checkpoint instead of the pause's own.
    #[serde(default)]
    checkpoint_id: Option<CheckpointId>,
    /// Also put the checkpoint's files back (refused over unsaved changes unless `force`).
    #[serde(default)]
    restore_files: bool,
    /// Overwrite files changed since the latest checkpoint.
    #[serde(default)]
    force: bool,
}

/// Resume a paused project.
#[utoipa::path(post, path = "/api/projects/{id}/resume", operation_id = "resumeProject", tag = "lifecycle",
    params(ProjectPath), request_body = Option<ResumeBody>,
    responses((status = 200, description = "Resumed", body = codeframe_models::ResumeOutcome),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn resume(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
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

/// Whether a project is paused, since when and why, and its context totals.
#[derive(Serialize, ToSchema)]
pub(crate) struct PauseStatus {
    /// The project.
    project_id: ProjectId,
    /// Its status.
    status: codeframe_models::ProjectStatus,
    /// Whether it is paused.
    paused: bool,
    /// When it was paused (RFC 3339).
    #[schema(format = DateTime)]
    paused_at: Option<String>,
    /// For how long, in seconds.
    paused_for_seconds: Option<i64>,
    /// Why.
    reason: Option<String>,
    /// The pause's checkpoint.
    checkpoint_id: Option<CheckpointId>,
    /// Its active context per tier.
    token_totals: codeframe_models::TierTotals,
}

/// Pause status and context totals.
#[utoipa::path(get, path = "/api/projects/{id}/pause-status", operation_id = "pauseStatus", tag = "lifecycle",
    params(ProjectPath),
    responses((status = 200, description = "The status", body = PauseStatus), BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn pause_status(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    // The hot path of status polling: the project row (for the owner check too) and the
    // aggregate over its active context, in one statement.
    let (p, totals) = s.service.get_with_totals(id).await?;
    if p.owner_id != Some(c.user_id) {
        return Err(ApiError::not_found(format!("project {id}")));
    }
    ok(PauseStatus {
        project_id: p.id,
        status: p.status,
        paused: p.status == codeframe_models::ProjectStatus::Paused,
        paused_at: p.paused_at.map(timestamp::format),
        paused_for_seconds: p.paused_at.map(|t| (timestamp::now_utc() - t).whole_seconds().max(0)),
        reason: p.pause_reason,
        checkpoint_id: p.pause_checkpoint_id,
        token_totals: totals,
    })
}
