//! Checkpoints: list, create, get, delete, diff, restore, undo, retention, pins, prune, gc.

use super::*;

/// A project's checkpoints.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckpointList {
    /// Newest first.
    checkpoints: Vec<codeframe_models::Checkpoint>,
}

/// List checkpoints, newest first.
#[utoipa::path(get, path = "/api/projects/{id}/checkpoints", operation_id = "listCheckpoints", tag = "checkpoints",
    params(ProjectPath),
    responses((status = 200, description = "The checkpoints", body = CheckpointList), BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn list_checkpoints(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(CheckpointList { checkpoints: s.service.list_checkpoints(id).await? })
}

/// `POST /api/projects/{id}/checkpoints`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCheckpoint {
    /// 1–100 characters, not blank, no NUL.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00]*[^\s\x00][^\x00]*$")]
    name: String,
    /// At most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
}

/// Create a manual checkpoint.
#[utoipa::path(post, path = "/api/projects/{id}/checkpoints", operation_id = "createCheckpoint", tag = "checkpoints",
    params(ProjectPath), request_body = CreateCheckpoint,
    responses((status = 201, description = "Created", body = codeframe_models::Checkpoint),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn create_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
    ApiJson(body): ApiJson<CreateCheckpoint>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    created(s.service.create_checkpoint(id, &body.name, &body.description).await?)
}

/// Get a checkpoint.
#[utoipa::path(get, path = "/api/projects/{id}/checkpoints/{cid}", operation_id = "getCheckpoint", tag = "checkpoints",
    params(CheckpointPath),
    responses((status = 200, description = "The checkpoint", body = codeframe_models::Checkpoint),
        BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn get_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(CheckpointPath { id, cid }): ApiPath<CheckpointPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.checkpoint(id, cid).await?)
}

/// Delete a checkpoint (409 when a paused project still needs it).
#[utoipa::path(delete, path = "/api/projects/{id}/checkpoints/{cid}", operation_id = "deleteCheckpoint", tag = "checkpoints",
    params(CheckpointPath),
    responses((status = 204, description = "Deleted"), BadRequest, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn delete_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(CheckpointPath { id, cid }): ApiPath<CheckpointPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.delete_checkpoint(id, cid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET …/diff?unified=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DiffQuery {
    /// Include a unified diff of each changed text file.
    #[serde(default)]
    unified: bool,
}

/// Files changed since a checkpoint.
#[utoipa::path(get, path = "/api/projects/{id}/checkpoints/{cid}/diff", operation_id = "diffCheckpoint", tag = "checkpoints",
    params(CheckpointPath, DiffQuery),
    responses((status = 200, description = "The changed files", body = codeframe_core::FileDiff),
        BadRequest, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn diff_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(CheckpointPath { id, cid }): ApiPath<CheckpointPath>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.diff_checkpoint(id, cid, q.unified).await?)
}

/// `POST …/checkpoints/{cid}/restore` (the body may be omitted: nothing is restored).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreBody {
    /// Put the checkpoint's files back.
    #[serde(default)]
    files: bool,
    /// Put the project's rows (status, phase, tasks) back.
    #[serde(default)]
    state: bool,
    /// Put the agents' context back.
    #[serde(default)]
    context: bool,
    /// Say what would change, change nothing.
    #[serde(default)]
    preview: bool,
    /// Overwrite files changed since the latest checkpoint.
    #[serde(default)]
    force: bool,
}

/// Restore (or preview) a checkpoint.
#[utoipa::path(post, path = "/api/projects/{id}/checkpoints/{cid}/restore", operation_id = "restoreCheckpoint", tag = "checkpoints",
    params(CheckpointPath), request_body = Option<RestoreBody>,
    responses((status = 200, description = "What the restore did (or would do)", body = codeframe_core::RestoreReport),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn restore_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(CheckpointPath { id, cid }): ApiPath<CheckpointPath>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RestoreBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let what =
        RestoreWhat { files: body.files, state: body.state, context: body.context, keep_new_items: false };
    let mode = if body.preview { RestoreMode::Preview } else { RestoreMode::Apply };
    ok(s.service.restore_checkpoint_with(id, cid, what, mode, body.force).await?)
}

/// The retention policy.
#[utoipa::path(get, path = "/api/projects/{id}/checkpoints/policy", operation_id = "getRetentionPolicy", tag = "checkpoints",
    params(ProjectPath),
    responses((status = 200, description = "The policy", body = codeframe_models::RetentionPolicy),
        BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn get_policy(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.retention_policy(id).await?)
}

/// Set the retention policy (then prune by it).
#[utoipa::path(put, path = "/api/projects/{id}/checkpoints/policy", operation_id = "setRetentionPolicy", tag = "checkpoints",
    params(ProjectPath), request_body = codeframe_models::RetentionPolicy,
    responses((status = 200, description = "What the prune did", body = codeframe_core::PruneReport),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn set_policy(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
    ApiJson(policy): ApiJson<codeframe_models::RetentionPolicy>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.set_retention_policy(id, policy).await?)
}

/// `POST …/checkpoints/prune` (the body may be omitted).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PruneBody {
    /// List what would be deleted, delete nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Delete checkpoints the policy does not keep (or list them with dry_run).
#[utoipa::path(post, path = "/api/projects/{id}/checkpoints/prune", operation_id = "pruneCheckpoints", tag = "checkpoints",
    params(ProjectPath), request_body = Option<PruneBody>,
    responses((status = 200, description = "What was (or would be) deleted", body = codeframe_core::PruneReport),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn prune(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<PruneBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.prune_checkpoints(id, body.dry_run).await?)
}

/// Remove snapshot objects no checkpoint needs and pack the rest (409 store_busy while a checkpoint is being written).
#[utoipa::path(post, path = "/api/projects/{id}/checkpoints/gc", operation_id = "collectGarbage", tag = "checkpoints",
    params(ProjectPath),
    responses((status = 200, description = "What the collection did", body = codeframe_core::GcReport),
        BadRequest, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn collect_garbage(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.collect_garbage(id).await?)
}

/// Pin a checkpoint (never pruned).
#[utoipa::path(post, path = "/api/projects/{id}/checkpoints/{cid}/pin", operation_id = "pinCheckpoint", tag = "checkpoints",
    params(CheckpointPath),
    responses((status = 200, description = "The checkpoint, pinned", body = codeframe_models::Checkpoint),
        BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn pin(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(CheckpointPath { id, cid }): ApiPath<CheckpointPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.pin_checkpoint(id, cid, true).await?)
}

/// Unpin a checkpoint.
#[utoipa::path(post, path = "/api/projects/{id}/checkpoints/{cid}/unpin", operation_id = "unpinCheckpoint", tag = "checkpoints",
    params(CheckpointPath),
    responses((status = 200, description = "The checkpoint, unpinned", body = codeframe_models::Checkpoint),
        BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn unpin(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(CheckpointPath { id, cid }): ApiPath<CheckpointPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.pin_checkpoint(id, cid, false).await?)
}

/// Take the last restore back (restores the checkpoint it made first).
#[utoipa::path(post, path = "/api/projects/{id}/checkpoints/undo", operation_id = "undoRestore", tag = "checkpoints",
    params(ProjectPath),
    responses((status = 200, description = "What the undo restored", body = codeframe_core::RestoreReport),
        BadRequest, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn undo_restore(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.undo_restore(id).await?)
}
