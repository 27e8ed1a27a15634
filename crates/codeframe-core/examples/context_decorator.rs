//! A decorator around the [`ContextManager`]: every call goes to the SQLite manager, and the
//! decorator watches the items added (here it counts them per agent; an application might
//! redact secrets, or mirror items elsewhere). The service is built with it in place of the
//! default.
//!
//! `cargo run -p codeframe-core --example context_decorator`
#![allow(clippy::print_stdout)] // an example talks to its reader

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use codeframe_core::time::OffsetDateTime;
use codeframe_core::{
    ContextError, ContextManager, FlashSavePlan, ItemPage, ListQuery, ProjectService, ReadTx,
    SqlContextManager, Tx, async_trait,
};
use codeframe_core::{
    ContextItem, FlashSaveId, FlashSaveReport, ItemType, NewContextItem, PauseRequest, ProjectId, TierTotals,
};

type Result<T> = std::result::Result<T, ContextError>;

/// Counts the items added per agent, then lets the inner manager do the work.
struct Counting<M> {
    inner: M,
    added: Mutex<BTreeMap<String, usize>>,
}

impl<M> Counting<M> {
    fn count<'a>(&self, agents: impl Iterator<Item = &'a str>) {
        if let Ok(mut added) = self.added.lock() {
            for agent in agents {
                *added.entry(agent.to_owned()).or_default() += 1;
            }
        }
    }
}

#[async_trait]
impl<M: ContextManager> ContextManager for Counting<M> {
    async fn add_item(&self, project_id: ProjectId, item: NewContextItem) -> Result<ContextItem> {
        let added = self.inner.add_item(project_id, item).await?;
        self.count(std::iter::once(added.agent_id.as_str()));
        Ok(added)
    }
    async fn add_items(&self, project_id: ProjectId, items: Vec<NewContextItem>) -> Result<Vec<String>> {
        let agents: Vec<String> = items.iter().map(|i| i.agent_id.clone()).collect();
        let ids = self.inner.add_items(project_id, items).await?;
        self.count(agents.iter().map(String::as_str));
        Ok(ids)
    }
    async fn prepare_items(
        &self,
        project_id: ProjectId,
        items: Vec<NewContextItem>,
    ) -> Result<Vec<ContextItem>> {
        self.inner.prepare_items(project_id, items).await
    }
    async fn insert_items(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        items: &[ContextItem],
    ) -> Result<()> {
        self.inner.insert_items(tx, project_id, items).await?;
        self.count(items.iter().map(|i| i.agent_id.as_str()));
        Ok(())
    }
    async fn touch(&self, item_id: &str) -> Result<ContextItem> {
        self.inner.touch(item_id).await
    }
    async fn get(&self, item_id: &str) -> Result<ContextItem> {
        self.inner.get(item_id).await
    }
    async fn list(&self, query: &ListQuery) -> Result<ItemPage> {
        self.inner.list(query).await
    }
    async fn recalculate_scores(&self, project_id: ProjectId, agent_id: Option<&str>) -> Result<u64> {
        self.inner.recalculate_scores(project_id, agent_id).await
    }
    async fn update_tiers(&self, project_id: ProjectId, agent_id: Option<&str>) -> Result<u64> {
        self.inner.update_tiers(project_id, agent_id).await
    }
    async fn token_totals(&self, project_id: ProjectId, agent_id: &str) -> Result<TierTotals> {
        self.inner.token_totals(project_id, agent_id).await
    }
    async fn should_flash_save(&self, project_id: ProjectId, agent_id: &str, force: bool) -> Result<bool> {
        self.inner.should_flash_save(project_id, agent_id, force).await
    }
    async fn flash_save(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        agent_id: &str,
    ) -> Result<FlashSaveReport> {
        self.inner.flash_save(tx, project_id, agent_id).await
    }
    async fn plan_flash_save(
        &self,
        read: &mut ReadTx,
        project_id: ProjectId,
        agent_id: &str,
    ) -> Result<FlashSavePlan> {
        self.inner.plan_flash_save(read, project_id, agent_id).await
    }
    async fn apply_flash_save(
        &self,
        tx: &mut Tx<'_>,
        plan: &FlashSavePlan,
        flash_save_id: FlashSaveId,
        now: OffsetDateTime,
    ) -> Result<FlashSaveReport> {
        self.inner.apply_flash_save(tx, plan, flash_save_id, now).await
    }
    async fn flash_save_now(
        &self,
        project_id: ProjectId,
        agent_id: &str,
        force: bool,
    ) -> Result<Option<FlashSaveReport>> {
        self.inner.flash_save_now(project_id, agent_id, force).await
    }
    async fn restore_archived(
        &self,
        project_id: ProjectId,
        agent_id: &str,
        flash_save_id: Option<FlashSaveId>,
    ) -> Result<u64> {
        self.inner.restore_archived(project_id, agent_id, flash_save_id).await
    }
    async fn restore_archived_in(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        agent_id: &str,
        flash_save_id: Option<FlashSaveId>,
    ) -> Result<u64> {
        self.inner.restore_archived_in(tx, project_id, agent_id, flash_save_id).await
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let home = tempfile::tempdir()?;
    let root = home.path().join("project");
    std::fs::create_dir_all(&root)?;
    let db = codeframe_core::Db::open(&home.path().join("state.db").to_string_lossy()).await?;
    let counting = Arc::new(Counting { inner: SqlContextManager::new(db.clone()), added: Mutex::default() });
    let service = ProjectService::builder().db(db).context_manager(counting.clone()).build().await?;
    let project = service.create("example", &root).await?.id;
    service.start(project).await?;
    for agent in ["planner", "coder"] {
        service.register_agent(agent, "worker", None).await?;
        service.assign(project, agent, "worker").await?;
    }
    let item = |agent: &str, n: usize| NewContextItem {
        agent_id: agent.into(),
        item_type: ItemType::Task,
        content: format!("{agent}'s note {n}"),
        created_at: None,
        access_count: None,
    };
    service.add_context_items(project, (0..3).map(|n| item("planner", n)).collect(), None).await?;
    service.add_context_item(project, item("coder", 0), None).await?;
    // The pause goes through the decorator too (its flash saves).
    service.pause(project, PauseRequest::default()).await?;
    let added = counting.added.lock().map(|a| a.clone()).unwrap_or_default();
    println!("items added, per agent, seen by the decorator: {added:?}");
    Ok(())
}
