//! Agent context: list, add, bulk add, stats, flash save, restore archived.

use super::*;

/// Which items a listing shows.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ContextState {
    /// Items in the active set (the default).
    #[default]
    Active,
    /// Items a flash save archived.
    Archived,
    /// Both.
    All,
}

/// `GET …/context?tier=&state=&limit=&offset=`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContextQuery {
    /// Only items of this tier.
    #[serde(default)]
    tier: Option<Tier>,
    /// Active (default), archived or all items.
    #[serde(default)]
    state: Option<ContextState>,
    /// Items per page, 1–1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Items to skip (default 0).
    #[serde(default)]
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// A page of an agent's context items.
#[derive(Serialize, ToSchema)]
pub(crate) struct ContextPage {
    /// Highest score first.
    items: Vec<codeframe_models::ContextItem>,
    /// Items matching, over all pages.
    total: i64,
    /// The page size.
    limit: Option<i64>,
    /// Items skipped.
    offset: i64,
}

/// List an agent's context (paginated).
#[utoipa::path(get, path = "/api/projects/{id}/agents/{agent}/context", operation_id = "listContext", tag = "context",
    params(AgentPath, ContextQuery),
    responses((status = 200, description = "A page of items", body = ContextPage), BadRequest, NotFound, Invalid, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn list_context(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(AgentPath { id, agent }): ApiPath<AgentPath>,
    ApiQuery(q): ApiQuery<ContextQuery>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let state = match q.state.unwrap_or_default() {
        ContextState::Active => ArchiveState::Active,
        ContextState::Archived => ArchiveState::Archived,
        ContextState::All => ArchiveState::All,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) || q.offset.is_some_and(|o| o < 0) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "limit must be 1..=1000 and offset ≥ 0",
        ));
    }
    let query = ListQuery {
        project_id: id,
        agent_id: Some(agent),
        tier: q.tier,
        state,
        limit: Some(limit),
        offset: q.offset.unwrap_or(0),
    };
    let page = s.service.list_context(&query).await?;
    ok(ContextPage { items: page.items, total: page.total, limit: page.limit, offset: page.offset })
}

/// One context item to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddItem {
    /// What kind of item it is.
    item_type: ItemType,
    /// The item's text: not blank, at most 1 MiB of UTF-8 (the schema says 262144 characters,
    /// which are 1 MiB at most whatever they are).
    #[schema(min_length = 1, max_length = 262144, pattern = r"^[\s\S]*\S[\s\S]*$")]
    content: String,
    /// When it was made (default: now); RFC 3339.
    #[serde(default, with = "codeframe_models::timestamp::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    created_at: Option<OffsetDateTime>,
    /// How often it was used (default 0).
    #[serde(default)]
    #[schema(minimum = 0)]
    access_count: Option<i64>,
}

impl AddItem {
    fn into_new(self, agent: &str) -> NewContextItem {
        NewContextItem {
            agent_id: agent.to_owned(),
            item_type: self.item_type,
            content: self.content,
            created_at: self.created_at,
            access_count: self.access_count,
        }
    }
}

/// Add a context item.
#[utoipa::path(post, path = "/api/projects/{id}/agents/{agent}/context", operation_id = "addContextItem", tag = "context",
    params(AgentPath, ("Codeframe-Permit" = Option<i64>, Header, description = "The permit this write is made under: lets it through while a pause drains")),
    request_body = AddItem,
    responses((status = 201, description = "Added, scored and tiered", body = codeframe_models::ContextItem),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn add_context(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(AgentPath { id, agent }): ApiPath<AgentPath>,
    PermitHeader(permit): PermitHeader,
    ApiJson(body): ApiJson<AddItem>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    created(s.service.add_context_item(id, body.into_new(&agent), permit).await?)
}

/// `POST …/context/bulk`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddItems {
    /// The items, added in one transaction.
    items: Vec<AddItem>,
}

/// The ids of items added in bulk.
#[derive(Serialize, ToSchema)]
pub(crate) struct AddedItems {
    /// In the order given.
    ids: Vec<String>,
    /// How many.
    count: usize,
}

/// Add context items in bulk.
#[utoipa::path(post, path = "/api/projects/{id}/agents/{agent}/context/bulk", operation_id = "addContextItems", tag = "context",
    params(AgentPath, ("Codeframe-Permit" = Option<i64>, Header, description = "The permit this write is made under: lets it through while a pause drains")),
    request_body = AddItems,
    responses((status = 201, description = "Added", body = AddedItems),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn add_context_bulk(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(AgentPath { id, agent }): ApiPath<AgentPath>,
    PermitHeader(permit): PermitHeader,
    ApiJson(body): ApiJson<AddItems>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let items: Vec<NewContextItem> = body.items.into_iter().map(|i| i.into_new(&agent)).collect();
    let ids = s.service.add_context_items(id, items, permit).await?;
    created(AddedItems { count: ids.len(), ids })
}

/// An agent's active context per tier.
#[derive(Serialize, ToSchema)]
pub(crate) struct ContextStats {
    /// The project.
    project_id: ProjectId,
    /// The agent.
    agent_id: String,
    /// Items in the hot tier.
    hot_count: i64,
    /// Items in the warm tier.
    warm_count: i64,
    /// Items in the cold tier.
    cold_count: i64,
    /// All active items.
    total_count: i64,
    /// Tokens in the hot tier.
    hot_tokens: i64,
    /// Tokens in the warm tier.
    warm_tokens: i64,
    /// Tokens in the cold tier.
    cold_tokens: i64,
    /// All active tokens.
    total_tokens: i64,
}

/// Active context per tier.
#[utoipa::path(get, path = "/api/projects/{id}/agents/{agent}/context/stats", operation_id = "contextStats", tag = "context",
    params(AgentPath),
    responses((status = 200, description = "The totals", body = ContextStats), BadRequest, NotFound, Invalid, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn context_stats(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(AgentPath { id, agent }): ApiPath<AgentPath>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let t = s.service.agent_token_totals(id, &agent).await?;
    ok(ContextStats {
        project_id: id,
        hot_count: t.hot_items,
        warm_count: t.warm_items,
        cold_count: t.cold_items,
        total_count: t.total_items(),
        hot_tokens: t.hot_tokens,
        warm_tokens: t.warm_tokens,
        cold_tokens: t.cold_tokens,
        total_tokens: t.total_tokens(),
        agent_id: agent,
    })
}

/// `POST …/flash-save` (the body may be omitted).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FlashSaveBody {
    /// Flash-save even below the threshold.
    #[serde(default)]
    force: bool,
}

/// Flash-save an agent's context (409 flash_save_not_due below the threshold unless forced).
#[utoipa::path(post, path = "/api/projects/{id}/agents/{agent}/flash-save", operation_id = "flashSave", tag = "context",
    params(AgentPath, ("Codeframe-Permit" = Option<i64>, Header, description = "The permit this write is made under: lets it through while a pause drains")),
    request_body = Option<FlashSaveBody>,
    responses((status = 200, description = "What was archived", body = codeframe_models::FlashSaveReport),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn flash_save(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(AgentPath { id, agent }): ApiPath<AgentPath>,
    PermitHeader(permit): PermitHeader,
    ApiJsonOrDefault(body): ApiJsonOrDefault<FlashSaveBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    match s.service.flash_save(id, &agent, body.force, permit).await? {
        Some(report) => ok(report),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "flash_save_not_due",
            "context is below the flash-save threshold; use force to flash-save anyway",
        )),
    }
}

/// `POST …/context/restore` (the body may be omitted: every archived item).
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreArchivedBody {
    /// Only the items this flash save archived.
    #[serde(default)]
    flash_save_id: Option<codeframe_models::FlashSaveId>,
}

/// How many archived items came back.
#[derive(Serialize, ToSchema)]
pub(crate) struct Restored {
    /// Items now active again.
    restored: u64,
}

/// Bring archived items back.
#[utoipa::path(post, path = "/api/projects/{id}/agents/{agent}/context/restore", operation_id = "restoreArchived", tag = "context",
    params(AgentPath), request_body = Option<RestoreArchivedBody>,
    responses((status = 200, description = "How many came back", body = Restored),
        BadRequest, BodyErrors, NotFound, Conflict, Unauthorized, ServerErrors),
    security(("bearer" = [])))]
pub(crate) async fn restore_archived(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath(AgentPath { id, agent }): ApiPath<AgentPath>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RestoreArchivedBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let restored = s.service.restore_archived(id, &agent, body.flash_save_id).await?;
    ok(Restored { restored })
}
