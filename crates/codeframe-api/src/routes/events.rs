//! The event log over HTTP.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Omitted: from the oldest event kept.
    #[serde(default)]
    since: Option<EventSeq>,
    #[serde(default = "default_events_limit")]
    limit: i64,
}

pub(super) fn default_events_limit() -> i64 {
    100
}

pub(super) async fn list_events(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(id): ApiPath<i64>,
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
