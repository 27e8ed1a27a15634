//! Bearer tokens: list and revoke.

use super::*;

/// The caller's tokens.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenList {
    /// Never the secrets themselves.
    tokens: Vec<codeframe_core::auth::TokenInfo>,
}

/// `{token_id}`: one of the caller's tokens.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TokenPath {
    /// The token's id.
    token_id: i64,
}

/// The caller's API tokens (never the tokens themselves).
#[utoipa::path(get, path = "/api/tokens", operation_id = "listTokens", tag = "tokens",
    responses((status = 200, description = "The tokens", body = TokenList), Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn list_tokens(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult {
    ok(TokenList { tokens: s.service.list_tokens(Some(c.user_id)).await? })
}

/// Revoke one of the caller's tokens.
#[utoipa::path(delete, path = "/api/tokens/{token_id}", operation_id = "revokeToken", tag = "tokens",
    params(TokenPath),
    responses((status = 204, description = "Revoked"), BadRequest, NotFound, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn revoke_token(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(TokenPath { token_id }): ApiPath<TokenPath>,
) -> ApiResult {
    s.service.revoke_token(token_id, Some(c.user_id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
