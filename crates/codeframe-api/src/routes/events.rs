//! The event log over HTTP.

use super::*;

/// `GET /api/projects/{id}/events?since=&limit=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// The last `seq` handled; omitted: from the oldest event kept.
    #[serde(default)]
    #[param(value_type = Option<i64>, minimum = 0)]
    since: Option<EventSeq>,
    /// Events per page, 1–1000 (default 100).
    #[serde(default = "default_events_limit")]
    #[param(minimum = 1, maximum = 1000)]
    limit: i64,
}

pub(crate) fn default_events_limit() -> i64 {
    100
}

/// The project's events after a seq, oldest first (410 when retention removed some).
#[utoipa::path(get, path = "/api/projects/{id}/events", operation_id = "listEvents", tag = "events",
    params(ProjectPath, EventsQuery),
    responses((status = 200, description = "A page of events", body = codeframe_core::EventPage),
        BadRequest, NotFound, Gone, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn list_events(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(ProjectPath { id }): ApiPath<ProjectPath>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    if !(1..=1000).contains(&q.limit) || q.since.is_some_and(|s| s < 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "since must be ≥ 0 and limit 1..=1000",
        ));
    }
    let since = match q.since {
        Some(since) => since,
        None => s.service.event_horizon(id).await?,
    };
    ok(s.service.events_since(id, since, q.limit).await?)
}
