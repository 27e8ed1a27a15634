//! Projects: create, list, get, start, move.

use super::*;

/// `POST /api/projects`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProject {
    /// 1–100 characters, not blank, no control characters.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\p{Cc}]*[^\s\p{Cc}][^\p{Cc}]*$")]
    name: String,
    /// An existing directory inside one of the server's workspace roots (at most 4096 bytes).
    #[schema(format = "directory")]
    root_path: String,
    /// At most 2000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: String,
}

/// The caller's projects.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProjectList {
    /// Oldest first.
    projects: Vec<codeframe_models::Project>,
}

/// Create a project.
#[utoipa::path(post, path = "/api/projects", operation_id = "createProject", tag = "projects",
    request_body = CreateProject,
    responses((status = 201, description = "Created", body = codeframe_models::Project),
        BadRequest, BodyErrors, Conflict, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn create_project(
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

/// List the caller's projects.
#[utoipa::path(get, path = "/api/projects", operation_id = "listProjects", tag = "projects",
    responses((status = 200, description = "The projects", body = ProjectList), Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn list_projects(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult {
    ok(ProjectList { projects: s.service.list_owned(c.user_id).await? })
}

/// Get a project.
#[utoipa::path(get, path = "/api/projects/{id}", operation_id = "getProject", tag = "projects",
    params(ProjectPath),
    responses((status = 200, description = "The project", body = codeframe_models::Project),
        BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn get_project(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    ok(visible_project(&s, c, id).await?)
}

/// Start a project (planning → active).
#[utoipa::path(post, path = "/api/projects/{id}/start", operation_id = "startProject", tag = "projects",
    params(ProjectPath),
    responses((status = 200, description = "The project, started", body = codeframe_models::Project),
        BadRequest, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn start(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.start(id).await?)
}

/// `POST /api/projects/{id}/move`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MoveBody {
    /// The project's directory now: an existing directory inside one of the server's workspace
    /// roots (at most 4096 bytes).
    #[schema(format = "directory")]
    root_path: String,
}

/// Re-point a project whose directory moved.
#[utoipa::path(post, path = "/api/projects/{id}/move", operation_id = "moveProject", tag = "projects",
    params(ProjectPath), request_body = MoveBody,
    responses((status = 200, description = "The project, moved", body = codeframe_models::Project),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn move_project(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
    ApiJson(body): ApiJson<MoveBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    ok(s.service.move_served_project(id, &body.root_path).await?)
}
