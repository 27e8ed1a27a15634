//! Bearer tokens: list and revoke.

use super::*;

pub(super) async fn list_tokens(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult {
    ok(json!({"tokens": s.service.list_tokens(Some(c.user_id)).await?}))
}

pub(super) async fn revoke_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(token_id): ApiPath<i64>,
) -> ApiResult {
    s.service.revoke_token(token_id, Some(c.user_id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
