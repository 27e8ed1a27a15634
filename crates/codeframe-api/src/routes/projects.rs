//! Projects: create, list, get, start, move.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateProject {
    name: String,
    root_path: String,
    #[serde(default)]
    description: String,
}

pub(super) async fn create_project(
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

pub(super) async fn list_projects(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult {
    ok(json!({"projects": s.service.list_owned(c.user_id).await?}))
}

pub(super) async fn get_project(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    ok(visible_project(&s, c, id).await?)
}

pub(super) async fn start(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.start(id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MoveBody {
    root_path: String,
}

pub(super) async fn move_project(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<MoveBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.move_served_project(id, &body.root_path).await?)
}
