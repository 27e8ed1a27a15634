//! Agent context: list, add, bulk add, stats, flash save, restore archived.

use super::*;

#[derive(Deserialize)]
pub(super) struct ContextQuery {
    #[serde(default)]
    tier: Option<Tier>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    offset: Option<i64>,
}

pub(super) async fn list_context(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    ApiQuery(q): ApiQuery<ContextQuery>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let state = match q.state.as_deref() {
        None | Some("active") => ArchiveState::Active,
        Some("archived") => ArchiveState::Archived,
        Some("all") => ArchiveState::All,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("state must be active, archived or all, not {other:?}"),
            ));
        }
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
    ok(json!({"items": page.items, "total": page.total, "limit": page.limit, "offset": page.offset}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddItem {
    item_type: ItemType,
    content: String,
    #[serde(default, with = "codeframe_models::timestamp::rfc3339::option")]
    created_at: Option<OffsetDateTime>,
    #[serde(default)]
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

pub(super) async fn add_context(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    PermitHeader(permit): PermitHeader,
    ApiJson(body): ApiJson<AddItem>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    created(s.service.add_context_item(id, body.into_new(&agent), permit).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddItems {
    items: Vec<AddItem>,
}

pub(super) async fn add_context_bulk(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    PermitHeader(permit): PermitHeader,
    ApiJson(body): ApiJson<AddItems>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let items: Vec<NewContextItem> = body.items.into_iter().map(|i| i.into_new(&agent)).collect();
    let ids = s.service.add_context_items(id, items, permit).await?;
    created(json!({"ids": ids, "count": ids.len()}))
}

pub(super) async fn context_stats(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let t = s.service.agent_token_totals(id, &agent).await?;
    ok(json!({
        "project_id": id,
        "agent_id": agent,
        "hot_count": t.hot_items, "warm_count": t.warm_items, "cold_count": t.cold_items,
        "total_count": t.total_items(),
        "hot_tokens": t.hot_tokens, "warm_tokens": t.warm_tokens, "cold_tokens": t.cold_tokens,
        "total_tokens": t.total_tokens(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FlashSaveBody {
    #[serde(default)]
    force: bool,
}

pub(super) async fn flash_save(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RestoreArchivedBody {
    #[serde(default)]
    flash_save_id: Option<i64>,
}

pub(super) async fn restore_archived(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    ApiPath((id, agent)): ApiPath<(i64, String)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RestoreArchivedBody>,
) -> ApiResult {
    visible_project(&s, c, id).await?;
    let n = s.service.restore_archived(id, &agent, body.flash_save_id).await?;
    ok(json!({"restored": n}))
}
