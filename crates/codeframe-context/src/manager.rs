use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use codeframe_models::{Clock, SystemClock};
use codeframe_models::{
    ContextItem, FlashSaveId, FlashSaveReport, NewContextItem, ProjectId, Tier, TierTotals, scoring, validate,
};
use codeframe_persistence::context::{ArchiveState, ItemQuery};
use codeframe_persistence::flash_saves::NewFlashSave;
use codeframe_persistence::{Db, Executor, ReadTx, Tx, agents, context, flash_saves, projects};
use time::OffsetDateTime;
use tracing::{debug, info, instrument};

use crate::{ContextConfig, ContextError, Result, tokens};

/// A page of a listing, with the total number of matching items.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemPage {
    /// The items of this page.
    pub items: Vec<ContextItem>,
    /// How many items match, over all pages.
    pub total: i64,
    /// Page size asked for (`None`: everything).
    pub limit: Option<i64>,
    /// Items skipped.
    pub offset: i64,
}

/// A flash save worked out from a consistent read (see [`ContextManager::plan_flash_save`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashSavePlan {
    /// Project.
    pub project_id: ProjectId,
    /// Agent.
    pub agent_id: String,
    /// The agent's active items per tier when planned: the COLD ones are archived.
    pub totals: TierTotals,
    /// Ids of the items the flash save archives (the agent's active COLD items), sorted.
    pub targets: Vec<String>,
}

impl FlashSavePlan {
    /// Marks in `items` (the project's items, read with the plan) what applying the plan
    /// archives — the agent's active COLD items — as it will be stored. Returns how many.
    pub fn archive_in(
        &self,
        items: &mut [ContextItem],
        flash_save_id: FlashSaveId,
        now: OffsetDateTime,
    ) -> i64 {
        let mut archived = 0;
        for item in items.iter_mut().filter(|i| {
            i.project_id == self.project_id
                && i.agent_id == self.agent_id
                && i.tier == Tier::Cold
                && i.archived_at.is_none()
        }) {
            item.archived_at = Some(now);
            item.archived_by_flash_save = Some(flash_save_id);
            archived += 1;
        }
        archived
    }
}

/// What to list. Ordered by importance, then last access, then id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Project.
    pub project_id: ProjectId,
    /// Only this agent's items.
    pub agent_id: Option<String>,
    /// Only this tier.
    pub tier: Option<Tier>,
    /// Active (default), archived or both.
    pub state: ArchiveState,
    /// Page size; `None` lists every match (there is no silent cap).
    pub limit: Option<i64>,
    /// Items to skip.
    pub offset: i64,
}

impl ListQuery {
    /// Every active item of a project (narrow it with struct update syntax).
    pub fn of(project_id: ProjectId) -> Self {
        Self { project_id, agent_id: None, tier: None, state: ArchiveState::Active, limit: None, offset: 0 }
    }
}

/// Context management for agents of a project. Object safe: use it as
/// `Arc<dyn ContextManager>`.
#[async_trait]
pub trait ContextManager: Send + Sync {
    /// Adds one item: validates it, counts its tokens, scores and tiers it, stores it.
    async fn add_item(&self, project_id: ProjectId, item: NewContextItem) -> Result<ContextItem>;

    /// Adds many items in one transaction (all or none). Returns their ids, in input order.
    async fn add_items(&self, project_id: ProjectId, items: Vec<NewContextItem>) -> Result<Vec<String>>;

    /// The first half of [`ContextManager::add_items`], touching no database: validates the
    /// items, counts their tokens, scores and tiers them, and gives them ids. Done before a
    /// transaction begins, so tokenizing never holds the write lock.
    async fn prepare_items(
        &self,
        project_id: ProjectId,
        items: Vec<NewContextItem>,
    ) -> Result<Vec<ContextItem>>;

    /// The second half: stores prepared items inside the caller's transaction, after checking
    /// the project exists and every agent is actively assigned to it.
    async fn insert_items(&self, tx: &mut Tx<'_>, project_id: ProjectId, items: &[ContextItem])
    -> Result<()>;

    /// Records an access (access_count + 1, last_accessed = now); returns the item.
    async fn touch(&self, item_id: &str) -> Result<ContextItem>;

    /// The item with this id.
    async fn get(&self, item_id: &str) -> Result<ContextItem>;

    /// A filtered page of items.
    async fn list(&self, query: &ListQuery) -> Result<ItemPage>;

    /// Recomputes the score of every active item (of one agent, or the whole project) with
    /// the clock's now, keeping tiers. Returns the number of items updated.
    async fn recalculate_scores(&self, project_id: ProjectId, agent_id: Option<&str>) -> Result<u64>;

    /// Recomputes scores and reassigns tiers. Returns the number of items updated.
    async fn update_tiers(&self, project_id: ProjectId, agent_id: Option<&str>) -> Result<u64>;

    /// Item counts and token sums per tier of the agent's active items.
    async fn token_totals(&self, project_id: ProjectId, agent_id: &str) -> Result<TierTotals>;

    /// Whether a flash save is due: forced, or active tokens ≥ the threshold.
    async fn should_flash_save(&self, project_id: ProjectId, agent_id: &str, force: bool) -> Result<bool>;

    /// Flash-saves one agent inside the caller's transaction: archives its active COLD items
    /// (kept, marked with the new `flash_saves` row) and reports the figures. Rolling the
    /// transaction back undoes all of it.
    async fn flash_save(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        agent_id: &str,
    ) -> Result<FlashSaveReport>;

    /// Works out, from a consistent read and without writing, what a flash save of the agent
    /// would record and archive. A pause plans outside the write lock, writes its snapshot
    /// from the plan ([`FlashSavePlan::archive_in`]) and applies the plan under the lock.
    async fn plan_flash_save(
        &self,
        read: &mut ReadTx,
        project_id: ProjectId,
        agent_id: &str,
    ) -> Result<FlashSavePlan>;

    /// Applies a plan inside the caller's transaction, with an id reserved by
    /// `flash_saves::reserve_ids` and the archive time the snapshot was written with. If the
    /// rows changed since the plan, [`ContextError::Stale`] (roll the transaction back).
    async fn apply_flash_save(
        &self,
        tx: &mut Tx<'_>,
        plan: &FlashSavePlan,
        flash_save_id: FlashSaveId,
        now: OffsetDateTime,
    ) -> Result<FlashSaveReport>;

    /// Runs [`ContextManager::flash_save`] in a transaction of its own when it is due (or
    /// `force`); `None` when it was not due.
    async fn flash_save_now(
        &self,
        project_id: ProjectId,
        agent_id: &str,
        force: bool,
    ) -> Result<Option<FlashSaveReport>>;

    /// Brings an agent's archived items back to the active set: all of them, or those of
    /// one flash save. Returns how many.
    async fn restore_archived(
        &self,
        project_id: ProjectId,
        agent_id: &str,
        flash_save_id: Option<FlashSaveId>,
    ) -> Result<u64>;

    /// [`ContextManager::restore_archived`] inside the caller's transaction.
    async fn restore_archived_in(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        agent_id: &str,
        flash_save_id: Option<FlashSaveId>,
    ) -> Result<u64>;
}

/// [`ContextManager`] over the SQLite database.
#[derive(Debug, Clone)]
pub struct SqlContextManager {
    db: Db,
    clock: Arc<dyn Clock>,
    config: ContextConfig,
}

impl SqlContextManager {
    /// A manager with the default configuration and the system clock.
    pub fn new(db: Db) -> Self {
        Self::with(db, Arc::new(SystemClock), ContextConfig::default())
    }

    /// A manager with an explicit clock and configuration.
    pub fn with(db: Db, clock: Arc<dyn Clock>, config: ContextConfig) -> Self {
        Self { db, clock, config }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ContextConfig {
        &self.config
    }

    fn check_content(&self, item: &NewContextItem) -> Result<()> {
        validate::agent_id(&item.agent_id)?;
        if item.content.trim().is_empty() {
            return Err(ContextError::EmptyContent { agent_id: item.agent_id.clone() });
        }
        if item.content.len() > self.config.max_content_bytes {
            return Err(ContextError::ContentTooLarge {
                size: item.content.len(),
                limit: self.config.max_content_bytes,
            });
        }
        Ok(())
    }

    /// Builds the stored form of new items: ids, counts, scores, tiers.
    #[instrument(level = "debug", skip_all, fields(items = items.len()))]
    async fn prepare(&self, project_id: ProjectId, items: Vec<NewContextItem>) -> Result<Vec<ContextItem>> {
        for item in &items {
            self.check_content(item)?;
        }
        let (items, counts) = tokio::task::spawn_blocking(move || {
            let texts: Vec<&str> = items.iter().map(|i| i.content.as_str()).collect();
            let counts = tokens::count_many(&texts);
            (items, counts)
        })
        .await
        .map_err(|e| ContextError::Tokenizer(e.to_string()))?;
        let counts = counts?;
        let now = self.clock.now();
        Ok(items
            .into_iter()
            .zip(counts)
            .map(|(new, token_count)| {
                let created_at = new.created_at.unwrap_or(now);
                let access_count = new.access_count.unwrap_or(0).max(0);
                let score = scoring::importance_score(new.item_type, created_at, access_count, now);
                ContextItem {
                    id: uuid::Uuid::new_v4().to_string(),
                    project_id,
                    agent_id: new.agent_id,
                    item_type: new.item_type,
                    content: new.content,
                    token_count,
                    importance_score: score,
                    tier: scoring::assign_tier(score),
                    access_count,
                    created_at,
                    last_accessed: created_at,
                    archived_at: None,
                    archived_by_flash_save: None,
                }
            })
            .collect())
    }

    /// Checks the project exists and every agent is actively assigned to it.
    async fn check_agents(ex: &mut impl Executor, project_id: ProjectId, agent_ids: &[String]) -> Result<()> {
        if projects::find(ex, project_id).await?.is_none() {
            return Err(ContextError::UnknownProject(project_id));
        }
        for agent_id in agent_ids {
            if !agents::is_active(ex, project_id, agent_id).await? {
                return Err(ContextError::UnknownAgent { project_id, agent_id: agent_id.clone() });
            }
        }
        Ok(())
    }

    /// Recomputes scores (and tiers when `retier`) in batches inside one transaction.
    #[instrument(skip(self), fields(project_id = %project_id))]
    async fn rescore(&self, project_id: ProjectId, agent_id: Option<&str>, retier: bool) -> Result<u64> {
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        Self::check_agents(&mut tx, project_id, &agent_id.map(str::to_owned).into_iter().collect::<Vec<_>>())
            .await?;
        let mut updated = 0;
        let mut after: Option<String> = None;
        loop {
            let page = context::score_inputs(
                &mut tx,
                project_id,
                agent_id,
                after.as_deref(),
                self.config.score_batch_size,
            )
            .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            let scores: Vec<_> = page
                .into_iter()
                .map(|i| {
                    let s = scoring::importance_score(i.item_type, i.created_at, i.access_count, now);
                    (i.id, s, retier.then(|| scoring::assign_tier(s)))
                })
                .collect();
            updated += context::update_scores(&mut tx, project_id, &scores).await?;
        }
        tx.commit().await?;
        info!(
            project_id = %project_id,
            agent_id,
            retier,
            updated,
            "scores recalculated"
        );
        Ok(updated)
    }
}

#[async_trait]
impl ContextManager for SqlContextManager {
    #[instrument(skip(self, item), fields(agent_id = %item.agent_id, item_type = %item.item_type))]
    async fn add_item(&self, project_id: ProjectId, item: NewContextItem) -> Result<ContextItem> {
        let mut prepared = self.prepare(project_id, vec![item]).await?;
        let mut tx = self.db.begin().await?;
        self.insert_items(&mut tx, project_id, &prepared).await?;
        tx.commit().await?;
        prepared.pop().ok_or_else(|| ContextError::UnknownItem("(new item)".into()))
    }

    #[instrument(skip(self, items), fields(count = items.len()))]
    async fn add_items(&self, project_id: ProjectId, items: Vec<NewContextItem>) -> Result<Vec<String>> {
        let prepared = self.prepare(project_id, items).await?;
        let mut tx = self.db.begin().await?;
        self.insert_items(&mut tx, project_id, &prepared).await?;
        tx.commit().await?;
        Ok(prepared.into_iter().map(|i| i.id).collect())
    }

    async fn prepare_items(
        &self,
        project_id: ProjectId,
        items: Vec<NewContextItem>,
    ) -> Result<Vec<ContextItem>> {
        self.prepare(project_id, items).await
    }

    #[instrument(level = "debug", skip_all, fields(project_id = %project_id, items = items.len()))]
    async fn insert_items(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        items: &[ContextItem],
    ) -> Result<()> {
        if let Some(stray) = items.iter().find(|i| i.project_id != project_id) {
            return Err(ContextError::Invalid(codeframe_models::ModelError::Invalid {
                field: "project_id",
                reason: format!("item {} was prepared for project {}", stray.id, stray.project_id),
            }));
        }
        let agent_ids: BTreeSet<&str> = items.iter().map(|i| i.agent_id.as_str()).collect();
        let agent_ids: Vec<String> = agent_ids.into_iter().map(str::to_owned).collect();
        Self::check_agents(tx, project_id, &agent_ids).await?;
        context::insert_many(tx, items).await?;
        info!(
            project_id = %project_id,
            count = items.len(),
            "context items added"
        );
        Ok(())
    }

    async fn touch(&self, item_id: &str) -> Result<ContextItem> {
        let mut conn = self.db.conn().await?;
        context::touch(&mut conn, item_id, self.clock.now()).await.map_err(|e| not_found_item(e, item_id))
    }

    async fn get(&self, item_id: &str) -> Result<ContextItem> {
        let mut conn = self.db.conn().await?;
        context::get(&mut conn, item_id).await.map_err(|e| not_found_item(e, item_id))
    }

    async fn list(&self, q: &ListQuery) -> Result<ItemPage> {
        let mut conn = self.db.conn().await?;
        if projects::find(&mut conn, q.project_id).await?.is_none() {
            return Err(ContextError::UnknownProject(q.project_id));
        }
        let query = ItemQuery {
            project_id: q.project_id,
            agent_id: q.agent_id.as_deref(),
            tier: q.tier,
            state: q.state,
            limit: q.limit,
            offset: q.offset,
        };
        let items = context::list(&mut conn, &query).await?;
        let total = context::count(&mut conn, &query).await?;
        Ok(ItemPage { items, total, limit: q.limit, offset: q.offset })
    }

    async fn recalculate_scores(&self, project_id: ProjectId, agent_id: Option<&str>) -> Result<u64> {
        self.rescore(project_id, agent_id, false).await
    }

    async fn update_tiers(&self, project_id: ProjectId, agent_id: Option<&str>) -> Result<u64> {
        self.rescore(project_id, agent_id, true).await
    }

    async fn token_totals(&self, project_id: ProjectId, agent_id: &str) -> Result<TierTotals> {
        let mut conn = self.db.conn().await?;
        Self::check_agents(&mut conn, project_id, &[agent_id.to_owned()]).await?;
        Ok(context::tier_totals(&mut conn, project_id, agent_id).await?)
    }

    async fn should_flash_save(&self, project_id: ProjectId, agent_id: &str, force: bool) -> Result<bool> {
        let totals = self.token_totals(project_id, agent_id).await?;
        Ok(force || totals.total_tokens() >= self.config.flash_save_tokens())
    }

    #[instrument(skip(self, tx))]
    async fn flash_save(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        agent_id: &str,
    ) -> Result<FlashSaveReport> {
        // Inside the caller's transaction nothing moves between the plan and its application.
        let plan = plan(tx, project_id, agent_id).await?;
        let id = flash_saves::reserve_ids(tx, 1).await?;
        apply(tx, &plan, id, self.clock.now()).await
    }

    async fn plan_flash_save(
        &self,
        read: &mut ReadTx,
        project_id: ProjectId,
        agent_id: &str,
    ) -> Result<FlashSavePlan> {
        plan(read, project_id, agent_id).await
    }

    async fn apply_flash_save(
        &self,
        tx: &mut Tx<'_>,
        plan: &FlashSavePlan,
        flash_save_id: FlashSaveId,
        now: OffsetDateTime,
    ) -> Result<FlashSaveReport> {
        apply(tx, plan, flash_save_id, now).await
    }

    async fn flash_save_now(
        &self,
        project_id: ProjectId,
        agent_id: &str,
        force: bool,
    ) -> Result<Option<FlashSaveReport>> {
        if !self.should_flash_save(project_id, agent_id, force).await? {
            debug!(project_id = %project_id, agent_id, "flash save not due");
            return Ok(None);
        }
        let mut tx = self.db.begin().await?;
        let report = self.flash_save(&mut tx, project_id, agent_id).await?;
        tx.commit().await?;
        Ok(Some(report))
    }

    #[instrument(skip(self))]
    async fn restore_archived(
        &self,
        project_id: ProjectId,
        agent_id: &str,
        flash_save_id: Option<FlashSaveId>,
    ) -> Result<u64> {
        let mut tx = self.db.begin().await?;
        let n = self.restore_archived_in(&mut tx, project_id, agent_id, flash_save_id).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn restore_archived_in(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        agent_id: &str,
        flash_save_id: Option<FlashSaveId>,
    ) -> Result<u64> {
        if projects::find(tx, project_id).await?.is_none() {
            return Err(ContextError::UnknownProject(project_id));
        }
        if agents::get(tx, agent_id).await.is_err() {
            return Err(ContextError::UnknownAgent { project_id, agent_id: agent_id.to_owned() });
        }
        let n = context::restore_archived(tx, project_id, agent_id, flash_save_id).await?;
        info!(project_id = %project_id, agent_id, restored = n, "archived context restored");
        Ok(n)
    }
}

/// Works out a flash save of one agent from what `ex` reads.
async fn plan(ex: &mut impl Executor, project_id: ProjectId, agent_id: &str) -> Result<FlashSavePlan> {
    if projects::find(ex, project_id).await?.is_none() {
        return Err(ContextError::UnknownProject(project_id));
    }
    if agents::get(ex, agent_id).await.is_err() {
        return Err(ContextError::UnknownAgent { project_id, agent_id: agent_id.to_owned() });
    }
    let totals = context::tier_totals(ex, project_id, agent_id).await?;
    let targets = context::active_cold_ids(ex, project_id, agent_id).await?;
    Ok(FlashSavePlan { project_id, agent_id: agent_id.to_owned(), totals, targets })
}

/// Records the flash save of a plan and archives its items; [`ContextError::Stale`] if the
/// rows no longer match the plan (the caller's transaction then must not commit).
#[instrument(skip_all, fields(agent_id = %plan.agent_id))]
async fn apply(
    tx: &mut Tx<'_>,
    plan: &FlashSavePlan,
    flash_save_id: FlashSaveId,
    now: OffsetDateTime,
) -> Result<FlashSaveReport> {
    let (project_id, agent_id, t) = (plan.project_id, plan.agent_id.as_str(), &plan.totals);
    let record = flash_saves::insert(
        tx,
        &NewFlashSave {
            id: Some(flash_save_id),
            project_id,
            agent_id,
            tokens_before: t.total_tokens(),
            tokens_after: t.hot_tokens + t.warm_tokens,
            items_count: t.total_items(),
            items_archived: t.cold_items,
            hot_items_retained: t.hot_items,
            warm_items_retained: t.warm_items,
            created_at: now,
        },
    )
    .await?;
    let archived = context::archive_cold(tx, project_id, agent_id, record.id, now).await?;
    if i64::try_from(archived).ok() != Some(t.cold_items) {
        return Err(ContextError::Stale { project_id, agent_id: agent_id.to_owned() });
    }
    let report = FlashSaveReport::from_record(&record);
    info!(
        project_id = %project_id,
        agent_id,
        flash_save_id = %report.flash_save_id,
        items_archived = report.items_archived,
        tokens_before = report.tokens_before,
        tokens_after = report.tokens_after,
        "flash save done"
    );
    Ok(report)
}

fn not_found_item(e: codeframe_persistence::DbError, id: &str) -> ContextError {
    if e.is_not_found() { ContextError::UnknownItem(id.to_owned()) } else { ContextError::Storage(e) }
}

/// Parses an item type from its wire name, with the context error for a bad one.
pub fn parse_item_type(s: &str) -> Result<codeframe_models::ItemType> {
    s.parse().map_err(|_| ContextError::InvalidItemType(s.to_owned()))
}
