//! The `context_items` table, with each item's content in `context_contents` (apart from the
//! hot columns that scoring and archiving rewrite). Everything a pause needs is one set-based
//! statement: token totals, archiving an agent's COLD items, bringing archived items back.
//!
//! Every write here bumps the project's [`crate::revisions`] once per statement.

use codeframe_models::{ContextItem, FlashSaveId, ItemType, ProjectId, Tier, TierTotals};
use futures_util::TryStreamExt;
use sqlx::{Database, Encode, FromRow, QueryBuilder, Type};
use time::OffsetDateTime;

use crate::rows::{fmt, opt_ts, parse, ts};
use crate::{DbError, Executor, Result, revisions};

/// The columns an insert writes (content apart; `rev`, the revision of the write, last).
const ITEM_COLUMNS: &str = "id, project_id, agent_id, item_type, token_count, importance_score, tier, \
    access_count, created_at, last_accessed, archived_at, archived_by_flash_save, rev";

/// A whole item, from `ITEM_SOURCE`.
const COLUMNS: &str = "i.id, i.project_id, i.agent_id, i.item_type, c.content, i.token_count, i.importance_score, \
    i.tier, i.access_count, i.created_at, i.last_accessed, i.archived_at, i.archived_by_flash_save";

/// Items joined with their content.
const ITEM_SOURCE: &str = "context_items i JOIN context_contents c ON c.item_id = i.id";

/// Rows per multi-row INSERT: 13 parameters each stays well under SQLite's 32,766 limit.
const INSERT_CHUNK: usize = 1_000;
/// Rows per batched score UPDATE (3 parameters each).
const UPDATE_CHUNK: usize = 5_000;

#[derive(FromRow)]
struct Row {
    id: String,
    project_id: ProjectId,
    agent_id: String,
    item_type: String,
    content: String,
    token_count: i64,
    importance_score: f64,
    tier: String,
    access_count: i64,
    created_at: String,
    last_accessed: String,
    archived_at: Option<String>,
    archived_by_flash_save: Option<FlashSaveId>,
}

impl TryFrom<Row> for ContextItem {
    type Error = DbError;

    fn try_from(r: Row) -> Result<Self> {
        const E: &str = "context_items";
        Ok(ContextItem {
            item_type: parse::<ItemType>(E, "item_type", &r.item_type)?,
            tier: parse::<Tier>(E, "tier", &r.tier)?,
            created_at: ts(E, "created_at", &r.created_at)?,
            last_accessed: ts(E, "last_accessed", &r.last_accessed)?,
            archived_at: opt_ts(E, "archived_at", r.archived_at.as_deref())?,
            id: r.id,
            project_id: r.project_id,
            agent_id: r.agent_id,
            content: r.content,
            token_count: r.token_count,
            importance_score: r.importance_score,
            access_count: r.access_count,
            archived_by_flash_save: r.archived_by_flash_save,
        })
    }
}

/// Which items a listing covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ArchiveState {
    /// Items in the active set.
    #[default]
    Active,
    /// Archived items.
    Archived,
    /// Both.
    All,
}

/// A filtered, paginated listing of a project's items. Ordered by importance (highest
/// first), then last access (most recent first), then id, so pages are stable.
#[derive(Debug, Clone)]
pub struct ItemQuery<'a> {
    /// Project.
    pub project_id: ProjectId,
    /// Only this agent's items.
    pub agent_id: Option<&'a str>,
    /// Only this tier.
    pub tier: Option<Tier>,
    /// Active, archived or both.
    pub state: ArchiveState,
    /// Page size; `None` for every matching item.
    pub limit: Option<i64>,
    /// Items to skip.
    pub offset: i64,
}

impl ItemQuery<'_> {
    /// Every active item of a project (narrow it with struct update syntax).
    pub fn of(project_id: ProjectId) -> Self {
        Self { project_id, agent_id: None, tier: None, state: ArchiveState::Active, limit: None, offset: 0 }
    }
}

fn push_filter<DB>(qb: &mut QueryBuilder<DB>, q: &ItemQuery<'_>)
where
    DB: Database,
    for<'t> ProjectId: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> &'static str: Encode<'t, DB> + Type<DB>,
{
    qb.push(" WHERE i.project_id = ").push_bind(q.project_id);
    if let Some(agent) = q.agent_id {
        qb.push(" AND i.agent_id = ").push_bind(agent.to_owned());
    }
    if let Some(tier) = q.tier {
        qb.push(" AND i.tier = ").push_bind(tier.as_str());
    }
    match q.state {
        ArchiveState::Active => qb.push(" AND i.archived_at IS NULL"),
        ArchiveState::Archived => qb.push(" AND i.archived_at IS NOT NULL"),
        ArchiveState::All => qb.push(""),
    };
}

/// Bumps the revision of every project the items belong to; returns each one's new revision.
async fn bump_projects(ex: &mut impl Executor, items: &[ContextItem]) -> Result<Vec<(ProjectId, i64)>> {
    let mut projects: Vec<ProjectId> = items.iter().map(|i| i.project_id).collect();
    projects.sort_unstable();
    projects.dedup();
    let mut revs = Vec::with_capacity(projects.len());
    for p in projects {
        revs.push((p, revisions::bump(ex, p).await?));
    }
    Ok(revs)
}

/// `INSERT INTO context_items (…) VALUES (…), (…)` for a chunk of items, each with the new
/// revision of its project (from [`bump_projects`]).
fn insert_values<DB>(chunk: &[ContextItem], revs: &[(ProjectId, i64)]) -> QueryBuilder<DB>
where
    DB: Database,
    DB::Arguments: Default,
    for<'t> ProjectId: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> &'static str: Encode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<FlashSaveId>: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Type<DB>,
    for<'t> f64: Encode<'t, DB> + Type<DB>,
{
    let rev_of = |p: ProjectId| revs.iter().find(|(id, _)| *id == p).map_or(0, |(_, r)| *r);
    let mut qb = QueryBuilder::<DB>::new(format!("INSERT INTO context_items ({ITEM_COLUMNS}) "));
    qb.push_values(chunk, |mut b, item| {
        b.push_bind(item.id.clone())
            .push_bind(item.project_id)
            .push_bind(item.agent_id.clone())
            .push_bind(item.item_type.as_str())
            .push_bind(item.token_count)
            .push_bind(item.importance_score)
            .push_bind(item.tier.as_str())
            .push_bind(item.access_count)
            .push_bind(fmt(item.created_at))
            .push_bind(fmt(item.last_accessed))
            .push_bind(item.archived_at.map(fmt))
            .push_bind(item.archived_by_flash_save)
            .push_bind(rev_of(item.project_id));
    });
    qb
}

/// `INSERT INTO context_contents … ON CONFLICT DO UPDATE` for a chunk of items.
async fn write_contents(ex: &mut impl Executor, chunk: &[ContextItem]) -> Result<()> {
    on!(ex, c => {
        let mut qb = QueryBuilder::new("INSERT INTO context_contents (item_id, content) ");
        qb.push_values(chunk, |mut b, item| {
            b.push_bind(item.id.clone()).push_bind(item.content.clone());
        });
        qb.push(" ON CONFLICT(item_id) DO UPDATE SET content = excluded.content");
        qb.build().execute(c).await?;
    });
    Ok(())
}

/// Inserts items as given (ids, counts, scores and timestamps included), in multi-row
/// statements. Run it in a [`crate::Tx`] so a bulk insert is one commit.
pub async fn insert_many(ex: &mut impl Executor, items: &[ContextItem]) -> Result<u64> {
    let revs = bump_projects(ex, items).await?;
    let mut inserted = 0;
    for chunk in items.chunks(INSERT_CHUNK) {
        inserted += on!(ex, c => insert_values(chunk, &revs).build().execute(c).await?.rows_affected());
        write_contents(ex, chunk).await?;
    }
    Ok(inserted)
}

/// What `upsert_many` adds to [`insert_values`]: an existing id takes every column given.
const UPSERT: &str = " ON CONFLICT(id) DO UPDATE SET agent_id = excluded.agent_id, \
     item_type = excluded.item_type, token_count = excluded.token_count, \
     importance_score = excluded.importance_score, tier = excluded.tier, access_count = excluded.access_count, \
     created_at = excluded.created_at, last_accessed = excluded.last_accessed, \
     archived_at = excluded.archived_at, archived_by_flash_save = excluded.archived_by_flash_save, \
     rev = excluded.rev";

/// Writes items as given, replacing the stored row of any id that exists (every column) and
/// inserting the others; items not in `items` are left alone.
pub async fn upsert_many(ex: &mut impl Executor, items: &[ContextItem]) -> Result<u64> {
    // Refused before anything is written, so a refusal changes nothing even outside a transaction.
    for chunk in items.chunks(INSERT_CHUNK) {
        refuse_project_moves(ex, chunk).await?;
    }
    let revs = bump_projects(ex, items).await?;
    let mut written = 0;
    for chunk in items.chunks(INSERT_CHUNK) {
        written += on!(ex, c => {
            let mut qb = insert_values(chunk, &revs);
            qb.push(UPSERT);
            qb.build().execute(c).await?.rows_affected()
        });
        write_contents(ex, chunk).await?;
    }
    Ok(written)
}

/// An item never moves to another project (its old project's snapshots would lose it
/// silently): an id stored under another project is refused.
async fn refuse_project_moves(ex: &mut impl Executor, chunk: &[ContextItem]) -> Result<()> {
    let stored: Vec<(String, ProjectId)> = on!(ex, c => {
        let mut qb = QueryBuilder::new("SELECT id, project_id FROM context_items WHERE id IN (");
        let mut ids = qb.separated(", ");
        for item in chunk {
            ids.push_bind(item.id.clone());
        }
        qb.push(")");
        qb.build_query_as().fetch_all(c).await?
    });
    for (id, project_id) in stored {
        if chunk.iter().any(|i| i.id == id && i.project_id != project_id) {
            return Err(DbError::Constraint {
                kind: crate::ConstraintKind::Check,
                constraint: format!("context_items.project_id (item {id} belongs to project {project_id})"),
            });
        }
    }
    Ok(())
}

/// The item with this id.
pub async fn get(ex: &mut impl Executor, id: &str) -> Result<ContextItem> {
    let row: Option<Row> = on!(ex, c => sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM {ITEM_SOURCE} WHERE i.id = $1")))
            .bind(id)
            .fetch_optional(c)
            .await)?;
    row.ok_or_else(|| DbError::not_found("context item", id))?.try_into()
}

/// A page of items (see [`ItemQuery`]).
pub async fn list(ex: &mut impl Executor, q: &ItemQuery<'_>) -> Result<Vec<ContextItem>> {
    let rows: Vec<Row> = on!(ex, c => {
        let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM {ITEM_SOURCE}"));
        push_filter(&mut qb, q);
        qb.push(" ORDER BY i.importance_score DESC, i.last_accessed DESC, i.id");
        if let Some(limit) = q.limit {
            qb.push(" LIMIT ").push_bind(limit.max(0)).push(" OFFSET ").push_bind(q.offset.max(0));
        }
        qb.build_query_as().fetch_all(c).await?
    });
    rows.into_iter().map(ContextItem::try_from).collect()
}

/// How many items match the query's filters (ignoring its page).
pub async fn count(ex: &mut impl Executor, q: &ItemQuery<'_>) -> Result<i64> {
    Ok(on!(ex, c => {
        let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM context_items i");
        push_filter(&mut qb, q);
        qb.build_query_scalar().fetch_one(c).await?
    }))
}

/// Every item of a project, active and archived, ordered by id (a stable order for snapshots).
pub async fn list_for_project(ex: &mut impl Executor, project_id: ProjectId) -> Result<Vec<ContextItem>> {
    // Sorted here rather than by SQL: `ORDER BY id` makes SQLite sort whole rows (content
    // included) in a temporary b-tree, which doubles the cost of reading a large context.
    // Streamed: each row becomes an item as it arrives, so a large context is held once, not
    // twice (rows, then items).
    let sql = format!("SELECT {COLUMNS} FROM {ITEM_SOURCE} WHERE i.project_id = $1");
    let mut items = on!(ex, c => {
        let mut rows = sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql)).bind(project_id).fetch(c);
        let mut items = Vec::new();
        while let Some(row) = rows.try_next().await? {
            items.push(ContextItem::try_from(row)?);
        }
        items
    });
    items.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(items)
}

/// Active (not archived) items and tokens per project and tier, for every project.
pub async fn active_totals_by_project(ex: &mut impl Executor) -> Result<Vec<(ProjectId, Tier, i64, i64)>> {
    let rows: Vec<(ProjectId, String, i64, i64)> = on!(ex, c => sqlx::query_as(
        "SELECT project_id, tier, COUNT(*), CAST(COALESCE(SUM(token_count), 0) AS BIGINT) FROM context_items \
         WHERE archived_at IS NULL GROUP BY project_id, tier ORDER BY project_id, tier",
    )
    .fetch_all(c)
    .await)?;
    rows.into_iter()
        .map(|(p, tier, items, tokens)| Ok((p, parse("context_items", "tier", &tier)?, items, tokens)))
        .collect()
}

/// Ids of the project's items written after `revision`, sorted.
pub async fn ids_written_after(
    ex: &mut impl Executor,
    project_id: ProjectId,
    revision: i64,
) -> Result<Vec<String>> {
    let mut ids: Vec<String> = on!(ex, c => sqlx::query_scalar("SELECT id FROM context_items WHERE project_id = $1 AND rev > $2")
            .bind(project_id)
            .bind(revision)
            .fetch_all(c)
            .await)?;
    ids.sort_unstable();
    Ok(ids)
}

/// The project's items with `from <= id < to` (either bound open when `None`), by id.
pub async fn list_id_range(
    ex: &mut impl Executor,
    project_id: ProjectId,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Vec<ContextItem>> {
    // Bounds are spelled out only when present: `(? IS NULL OR i.id >= ?)` would keep SQLite
    // from using the (project_id, id) index.
    let mut items = on!(ex, c => {
        let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM {ITEM_SOURCE} WHERE i.project_id = "));
        qb.push_bind(project_id);
        if let Some(from) = from {
            qb.push(" AND i.id >= ").push_bind(from.to_owned());
        }
        if let Some(to) = to {
            qb.push(" AND i.id < ").push_bind(to.to_owned());
        }
        let mut rows = qb.build_query_as::<Row>().fetch(c);
        let mut items = Vec::new();
        while let Some(row) = rows.try_next().await? {
            items.push(ContextItem::try_from(row)?);
        }
        items
    });
    items.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    Ok(items)
}

/// Ids of an agent's active COLD items (what its flash save archives), sorted.
pub async fn active_cold_ids(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: &str,
) -> Result<Vec<String>> {
    let mut ids: Vec<String> = on!(ex, c => sqlx::query_scalar(
        "SELECT id FROM context_items WHERE project_id = $1 AND agent_id = $2 AND tier = 'cold' AND archived_at IS NULL",
    )
    .bind(project_id)
    .bind(agent_id)
    .fetch_all(c)
    .await)?;
    ids.sort_unstable();
    Ok(ids)
}

/// Records an access: `access_count + 1`, `last_accessed = now`. Returns the updated item.
pub async fn touch(ex: &mut impl Executor, id: &str, now: OffsetDateTime) -> Result<ContextItem> {
    let project: Option<ProjectId> = on!(ex, c => sqlx::query_scalar("SELECT project_id FROM context_items WHERE id = $1")
        .bind(id)
        .fetch_optional(c)
        .await)?;
    let project = project.ok_or_else(|| DbError::not_found("context item", id))?;
    let rev = revisions::bump(ex, project).await?;
    on!(ex, c => sqlx::query(
        "UPDATE context_items SET access_count = access_count + 1, last_accessed = $1, rev = $2 WHERE id = $3",
    )
    .bind(fmt(now))
    .bind(rev)
    .bind(id)
    .execute(c)
    .await.map(crate::db::Done::of))?;
    get(ex, id).await
}

/// The inputs of the importance score of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreInput {
    /// Item id.
    pub id: String,
    /// Its type.
    pub item_type: ItemType,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Its access count.
    pub access_count: i64,
}

/// A page (by id, after `after_id`) of the score inputs of a project's active items,
/// optionally for one agent. Keyset pagination keeps every page one index range scan.
pub async fn score_inputs(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: Option<&str>,
    after_id: Option<&str>,
    limit: i64,
) -> Result<Vec<ScoreInput>> {
    let rows: Vec<(String, String, String, i64)> = on!(ex, c => sqlx::query_as(
        "SELECT id, item_type, created_at, access_count FROM context_items \
         WHERE project_id = $1 AND ($2 IS NULL OR agent_id = $2) AND archived_at IS NULL AND id > $3 \
         ORDER BY id LIMIT $4",
    )
    .bind(project_id)
    .bind(agent_id)
    .bind(after_id.unwrap_or(""))
    .bind(limit)
    .fetch_all(c)
    .await)?;
    rows.into_iter()
        .map(|(id, item_type, created_at, access_count)| {
            Ok(ScoreInput {
                item_type: parse("context_items", "item_type", &item_type)?,
                created_at: ts("context_items", "created_at", &created_at)?,
                id,
                access_count,
            })
        })
        .collect()
}

/// Writes new scores (and tiers, when given) of a project's items in batched statements.
/// Returns rows updated (ids of other projects' items are ignored).
pub async fn update_scores(
    ex: &mut impl Executor,
    project_id: ProjectId,
    scores: &[(String, f64, Option<Tier>)],
) -> Result<u64> {
    let mut updated = 0;
    for chunk in scores.chunks(UPDATE_CHUNK) {
        let rev = revisions::bump(ex, project_id).await?;
        updated += on!(ex, c => {
            let mut qb = QueryBuilder::new("WITH v(id, score, tier) AS (");
            qb.push_values(chunk, |mut b, (id, score, tier)| {
                b.push_bind(id.clone()).push_bind(*score).push_bind(tier.map(Tier::as_str));
            });
            qb.push(
                ") UPDATE context_items SET importance_score = v.score, tier = COALESCE(v.tier, context_items.tier), rev = ",
            );
            qb.push_bind(rev);
            qb.push(" FROM v WHERE context_items.id = v.id AND context_items.project_id = ");
            qb.push_bind(project_id);
            qb.build().execute(c).await?.rows_affected()
        });
    }
    Ok(updated)
}

/// Item counts and token sums per tier of one agent's active items (one statement).
pub async fn tier_totals(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: &str,
) -> Result<TierTotals> {
    let rows: Vec<(String, i64, i64)> = on!(ex, c => sqlx::query_as(
        "SELECT tier, COUNT(*), CAST(COALESCE(SUM(token_count), 0) AS BIGINT) FROM context_items \
         WHERE project_id = $1 AND agent_id = $2 AND archived_at IS NULL GROUP BY tier",
    )
    .bind(project_id)
    .bind(agent_id)
    .fetch_all(c)
    .await)?;
    fold_totals(rows.into_iter().map(|(t, n, s)| (String::new(), t, n, s)))
        .map(|mut v| v.pop().unwrap_or_default().1)
}

/// [`tier_totals`] for every agent with active items in the project, by agent id.
pub async fn tier_totals_by_agent(
    ex: &mut impl Executor,
    project_id: ProjectId,
) -> Result<Vec<(String, TierTotals)>> {
    let rows: Vec<(String, String, i64, i64)> = on!(ex, c => sqlx::query_as(
        "SELECT agent_id, tier, COUNT(*), CAST(COALESCE(SUM(token_count), 0) AS BIGINT) FROM context_items \
         WHERE project_id = $1 AND archived_at IS NULL GROUP BY agent_id, tier ORDER BY agent_id",
    )
    .bind(project_id)
    .fetch_all(c)
    .await)?;
    fold_totals(rows.into_iter())
}

fn fold_totals(rows: impl Iterator<Item = (String, String, i64, i64)>) -> Result<Vec<(String, TierTotals)>> {
    let mut out: Vec<(String, TierTotals)> = Vec::new();
    for (agent, tier, n, tokens) in rows {
        if out.last().is_none_or(|(a, _)| *a != agent) {
            out.push((agent, TierTotals::default()));
        }
        let Some((_, t)) = out.last_mut() else { continue };
        match parse::<Tier>("context_items", "tier", &tier)? {
            Tier::Hot => (t.hot_items, t.hot_tokens) = (n, tokens),
            Tier::Warm => (t.warm_items, t.warm_tokens) = (n, tokens),
            Tier::Cold => (t.cold_items, t.cold_tokens) = (n, tokens),
        }
    }
    Ok(out)
}

/// Archives every active COLD item of an agent in one statement: the rows are kept, with
/// `archived_at = now` and the flash save's id. Returns how many were archived.
pub async fn archive_cold(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: &str,
    flash_save_id: FlashSaveId,
    now: OffsetDateTime,
) -> Result<u64> {
    let rev = revisions::bump(ex, project_id).await?;
    let done = on!(ex, c => sqlx::query(
        "UPDATE context_items SET archived_at = $1, archived_by_flash_save = $2, rev = $3 \
         WHERE project_id = $4 AND agent_id = $5 AND tier = 'cold' AND archived_at IS NULL",
    )
    .bind(fmt(now))
    .bind(flash_save_id)
    .bind(rev)
    .bind(project_id)
    .bind(agent_id)
    .execute(c)
    .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected())
}

/// Brings an agent's archived items back into the active set (all of them, or those of one
/// flash save), in one statement. Content, scores and tiers are untouched. Returns the count.
pub async fn restore_archived(
    ex: &mut impl Executor,
    project_id: ProjectId,
    agent_id: &str,
    flash_save_id: Option<FlashSaveId>,
) -> Result<u64> {
    let rev = revisions::bump(ex, project_id).await?;
    let done = on!(ex, c => sqlx::query(
        "UPDATE context_items SET archived_at = NULL, archived_by_flash_save = NULL, rev = $4 \
         WHERE project_id = $1 AND agent_id = $2 AND archived_at IS NOT NULL \
         AND ($3 IS NULL OR archived_by_flash_save = $3)",
    )
    .bind(project_id)
    .bind(agent_id)
    .bind(flash_save_id)
    .bind(rev)
    .execute(c)
    .await.map(crate::db::Done::of))?;
    Ok(done.rows_affected())
}

/// Replaces every item of a project with `items` (used when restoring a checkpoint's
/// state, an explicit request). Other projects' items are untouched.
pub async fn replace_for_project(
    ex: &mut impl Executor,
    project_id: ProjectId,
    items: &[ContextItem],
) -> Result<u64> {
    if let Some(stray) = items.iter().find(|i| i.project_id != project_id) {
        return Err(DbError::Corrupt {
            entity: "context_items",
            field: "project_id",
            value: stray.project_id.to_string(),
            reason: format!("item {} does not belong to project {project_id}", stray.id),
        });
    }
    on!(ex, c => sqlx::query(
        "DELETE FROM context_contents WHERE item_id IN (SELECT id FROM context_items WHERE project_id = $1)",
    )
    .bind(project_id)
    .execute(c)
    .await.map(crate::db::Done::of))?;
    on!(ex, c => sqlx::query("DELETE FROM context_items WHERE project_id = $1")
        .bind(project_id)
        .execute(c)
        .await.map(crate::db::Done::of))?;
    revisions::bump_for_deletion(ex, project_id).await?;
    insert_many(ex, items).await
}
