//! Agents' context through the service: the changes that report events (adding items, flash
//! saves, bringing archived items back) and the reads the API and the command line need.

use codeframe_context::{ContextError, ItemPage, ListQuery};
use codeframe_models::{
    ContextItem, EventKind, FlashSaveId, FlashSaveReport, NewContextItem, ProjectId, TierTotals,
};
use codeframe_persistence::{Tx, context};
use time::OffsetDateTime;

use crate::event_log::Outbox;
use crate::service::AgentTotals;
use crate::{CoreError, ProjectService, Result};

impl ProjectService {
    /// Adds one context item (see [`ProjectService::add_context_items`]).
    pub async fn add_context_item(
        &self,
        id: ProjectId,
        item: NewContextItem,
        permit: Option<i64>,
    ) -> Result<ContextItem> {
        let mut added = self.add_items_returning(id, vec![item], permit).await?;
        added.pop().ok_or_else(|| CoreError::Context(ContextError::UnknownItem("(new item)".into())))
    }

    /// Adds context items (all or none): validated and tokenized first, then stored in one
    /// transaction with a `context_added` event. Returns their ids, in input order.
    ///
    /// Adding context is an agent's work: while the project is paused or being paused it is
    /// refused ([`CoreError::Paused`], [`CoreError::Pausing`]) unless made under `permit`, a
    /// live permit of the items' agent (taken before the gate closed, so a unit of work in
    /// flight can finish while a pause drains).
    pub async fn add_context_items(
        &self,
        id: ProjectId,
        items: Vec<NewContextItem>,
        permit: Option<i64>,
    ) -> Result<Vec<String>> {
        Ok(self.add_items_returning(id, items, permit).await?.into_iter().map(|i| i.id).collect())
    }

    async fn add_items_returning(
        &self,
        id: ProjectId,
        items: Vec<NewContextItem>,
        permit: Option<i64>,
    ) -> Result<Vec<ContextItem>> {
        let prepared = self.inner.context.prepare_items(id, items).await?;
        if prepared.is_empty() {
            return Ok(prepared);
        }
        let mut agents: Vec<String> = prepared.iter().map(|i| i.agent_id.clone()).collect();
        agents.sort();
        agents.dedup();
        let items_added = i64::try_from(prepared.len()).unwrap_or(i64::MAX);
        let mut tx = self.inner.db.begin().await?;
        self.check_agent_write(&mut tx, id, &agents, permit).await?;
        self.inner.context.insert_items(&mut tx, id, &prepared).await?;
        let mut outbox = Outbox::default();
        outbox.record(&mut tx, id, EventKind::ContextAdded { agents, items_added }, self.now()).await?;
        tx.commit().await?;
        self.deliver(outbox).await;
        Ok(prepared)
    }

    /// Records what a flash save did: `flash_save_completed`, and `context_archived` when it
    /// archived anything.
    pub(crate) async fn record_flash_save(
        &self,
        tx: &mut Tx<'_>,
        outbox: &mut Outbox,
        id: ProjectId,
        agent_id: &str,
        report: &FlashSaveReport,
        at: OffsetDateTime,
    ) -> Result<()> {
        let kind = EventKind::FlashSaveCompleted {
            agent_id: agent_id.to_owned(),
            flash_save_id: report.flash_save_id,
            items_archived: report.items_archived,
            reduction_percentage: report.reduction_percentage,
        };
        outbox.record(tx, id, kind, at).await?;
        if report.items_archived > 0 {
            let kind = EventKind::ContextArchived {
                agent_id: agent_id.to_owned(),
                flash_save_id: report.flash_save_id,
                items_archived: report.items_archived,
            };
            outbox.record(tx, id, kind, at).await?;
        }
        Ok(())
    }

    /// Flash-saves one agent when it is due (or `force`); `None` when it was not due. An agent's
    /// work: refused while the project is paused or being paused unless under `permit` (see
    /// [`ProjectService::add_context_items`]).
    pub async fn flash_save(
        &self,
        id: ProjectId,
        agent_id: &str,
        force: bool,
        permit: Option<i64>,
    ) -> Result<Option<FlashSaveReport>> {
        if !self.inner.context.should_flash_save(id, agent_id, force).await? {
            return Ok(None);
        }
        let mut tx = self.inner.db.begin().await?;
        self.check_agent_write(&mut tx, id, &[agent_id.to_owned()], permit).await?;
        let report = self.inner.context.flash_save(&mut tx, id, agent_id).await?;
        let mut outbox = Outbox::default();
        self.record_flash_save(&mut tx, &mut outbox, id, agent_id, &report, self.now()).await?;
        tx.commit().await?;
        crate::metrics::items_archived(report.items_archived);
        self.deliver(outbox).await;
        Ok(Some(report))
    }

    /// Brings an agent's archived items back to the active set: all of them, or those of one
    /// flash save. Returns how many.
    pub async fn restore_archived(
        &self,
        id: ProjectId,
        agent_id: &str,
        flash_save_id: Option<FlashSaveId>,
    ) -> Result<u64> {
        let mut tx = self.inner.db.begin().await?;
        let n = self.inner.context.restore_archived_in(&mut tx, id, agent_id, flash_save_id).await?;
        let mut outbox = Outbox::default();
        if n > 0 {
            let kind = EventKind::ContextRestored {
                agent_id: agent_id.to_owned(),
                flash_save_id,
                items_restored: i64::try_from(n).unwrap_or(i64::MAX),
            };
            outbox.record(&mut tx, id, kind, self.now()).await?;
        }
        tx.commit().await?;
        self.deliver(outbox).await;
        Ok(n)
    }

    /// A filtered page of context items.
    pub async fn list_context(&self, query: &ListQuery) -> Result<ItemPage> {
        Ok(self.inner.context.list(query).await?)
    }

    /// Every context item of the project, active and archived (for export).
    pub async fn context_items(&self, id: ProjectId) -> Result<Vec<ContextItem>> {
        self.get(id).await?;
        Ok(context::list_for_project(&mut self.inner.db.conn().await?, id).await?)
    }

    /// Active items and tokens per tier of one agent.
    pub async fn agent_token_totals(&self, id: ProjectId, agent_id: &str) -> Result<TierTotals> {
        Ok(self.inner.context.token_totals(id, agent_id).await?)
    }

    /// Active items and tokens per tier over the whole project, and per agent (one query).
    pub async fn token_totals(&self, id: ProjectId) -> Result<(TierTotals, Vec<AgentTotals>)> {
        let per_agent = context::tier_totals_by_agent(&mut self.inner.db.conn().await?, id).await?;
        let mut total = TierTotals::default();
        for (_, t) in &per_agent {
            total.add(t);
        }
        Ok((
            total,
            per_agent.into_iter().map(|(agent_id, totals)| AgentTotals { agent_id, totals }).collect(),
        ))
    }
}
