//! Checkpoints: list, create, get, delete, diff, restore, undo, retention, pins, prune, gc.

use super::*;

pub(super) async fn list_checkpoints(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(json!({"checkpoints": s.service.list_checkpoints(id).await?}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateCheckpoint {
    name: String,
    #[serde(default)]
    description: String,
}

pub(super) async fn create_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<CreateCheckpoint>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    created(s.service.create_checkpoint(id, &body.name, &body.description).await?)
}

pub(super) async fn get_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.checkpoint(id, cid).await?)
}

pub(super) async fn delete_checkpoint(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    s.service.delete_checkpoint(id, cid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
pub(super) struct DiffQuery {
    #[serde(default)]
    unified: bool,
}

pub(super) async fn diff_checkpoint(
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
pub(super) struct RestoreBody {
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

pub(super) async fn restore_checkpoint(
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

pub(super) async fn get_policy(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.retention_policy(id).await?)
}

pub(super) async fn set_policy(
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
pub(super) struct PruneBody {
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn prune(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<PruneBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.prune_checkpoints(id, body.dry_run).await?)
}

pub(super) async fn collect_garbage(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.collect_garbage(id).await?)
}

pub(super) async fn pin(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.pin_checkpoint(id, cid, true).await?)
}

pub(super) async fn unpin(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, cid)): ApiPath<(i64, i64)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.pin_checkpoint(id, cid, false).await?)
}

pub(super) async fn undo_restore(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.undo_restore(id).await?)
}
