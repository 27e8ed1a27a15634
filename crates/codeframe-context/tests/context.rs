//! ContextManager tests on real SQLite files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use codeframe_models::{FlashSaveId, ProjectId};
use std::sync::Arc;

use codeframe_context::{
    ArchiveState, ContextConfig, ContextError, ContextManager, ListQuery, SqlContextManager, parse_item_type,
    tokens,
};
use codeframe_models::{ItemType, ManualClock, NewContextItem, NewProject, Tier};
use codeframe_persistence::{Db, agents, context, projects};
use tempfile::TempDir;
use time::{Duration, OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-05-01 09:00 UTC);

struct Fixture {
    _dir: TempDir,
    db: Db,
    clock: ManualClock,
    cm: Arc<dyn ContextManager>,
    project: ProjectId,
}

async fn fixture_with(config: ContextConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&codeframe_testkit::database::location(dir.path())).await.unwrap();
    let clock = ManualClock::new(T0);
    let project = add_project(&db, "main", &["a", "b"]).await;
    let cm: Arc<dyn ContextManager> =
        Arc::new(SqlContextManager::with(db.clone(), Arc::new(clock.clone()), config));
    Fixture { _dir: dir, db, clock, cm, project }
}

async fn fixture() -> Fixture {
    fixture_with(ContextConfig::default()).await
}

async fn add_project(db: &Db, name: &str, agent_ids: &[&str]) -> ProjectId {
    let mut tx = db.begin().await.unwrap();
    let p = projects::insert(
        &mut tx,
        &NewProject {
            name: name.into(),
            description: String::new(),
            root_path: "/tmp".into(),
            owner_id: None,
        },
        T0,
    )
    .await
    .unwrap();
    for a in agent_ids {
        if agents::get(&mut tx, a).await.is_err() {
            agents::insert(&mut tx, a, "worker", None, T0).await.unwrap();
        }
        agents::assign(&mut tx, p.id, a, "worker", T0).await.unwrap();
    }
    tx.commit().await.unwrap();
    p.id
}

fn new_item(agent: &str, item_type: ItemType, content: &str) -> NewContextItem {
    NewContextItem {
        agent_id: agent.into(),
        item_type,
        content: content.into(),
        created_at: None,
        access_count: None,
    }
}

fn aged(agent: &str, item_type: ItemType, days: i64) -> NewContextItem {
    NewContextItem { created_at: Some(T0 - Duration::days(days)), ..new_item(agent, item_type, "aged item") }
}

/// Adds items whose tiers are known: HOT (fresh TASK), WARM (fresh CODE), COLD (old CODE).
async fn add_tiers(f: &Fixture, agent: &str, hot: usize, warm: usize, cold: usize) {
    let mut items = Vec::new();
    items.extend((0..hot).map(|n| new_item(agent, ItemType::Task, &format!("hot task {n}"))));
    items.extend((0..warm).map(|n| new_item(agent, ItemType::Code, &format!("fn warm_{n}() {{}}"))));
    items.extend((0..cold).map(|n| NewContextItem {
        created_at: Some(T0 - Duration::days(10)),
        ..new_item(agent, ItemType::Code, &format!("fn cold_{n}() {{ /* old */ }}"))
    }));
    f.cm.add_items(f.project, items).await.unwrap();
}

async fn all_items(f: &Fixture, project: ProjectId) -> Vec<codeframe_models::ContextItem> {
    context::list_for_project(&mut f.db.conn().await.unwrap(), project).await.unwrap()
}

// ---------------------------------------------------------------- tokens

#[test]
fn token_counts_match_cl100k_base_for_ascii() {
    // Known cl100k_base encodings (OpenAI's tiktoken examples).
    assert_eq!(tokens::count("hello world").unwrap(), 2);
    assert_eq!(tokens::count("tiktoken is great!").unwrap(), 6);
    let bpe = tiktoken_rs::cl100k_base().unwrap();
    assert_eq!(bpe.encode_ordinary("hello world"), vec![15339, 1917]);
}

#[test]
fn token_counts_match_cl100k_base_for_unicode() {
    let bpe = tiktoken_rs::cl100k_base().unwrap();
    for text in ["日本語のテキストです", "中文分词测试", "emoji 🚀🔥👩‍💻 mix", "naïve café — «quotes»"]
    {
        let ids = bpe.encode_ordinary(text);
        assert_eq!(tokens::count(text).unwrap(), ids.len() as i64, "{text}");
        assert_eq!(bpe.decode(&ids).unwrap(), text, "cl100k round-trips {text}");
        // Multi-byte text takes at least one token per character here, fewer than bytes.
        assert!(tokens::count(text).unwrap() as usize <= text.len());
    }
    // A single emoji is several byte-level tokens in cl100k_base.
    assert!(tokens::count("🚀").unwrap() >= 1);
}

#[test]
fn token_counts_of_empty_ish_text() {
    assert_eq!(tokens::count("").unwrap(), 0);
    assert_eq!(tokens::count(" ").unwrap(), 1);
    assert_eq!(tokens::count("\n").unwrap(), 1);
    // Special-token markers are counted as plain text, not refused.
    assert!(tokens::count("<|endoftext|>").unwrap() > 1);
}

#[test]
fn the_tokenizer_is_loaded_once_per_process() {
    // First uses from many threads at once (and from the other tests of this binary).
    let counts: Vec<i64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8).map(|_| s.spawn(|| tokens::count("hello world").unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(counts, vec![2; 8]);
    assert_eq!(tokens::loads(), 1, "the vocabulary was loaded once");
    let many = tokens::count_many(&["a b c"; 200]).unwrap();
    assert_eq!(many, vec![tokens::count("a b c").unwrap(); 200]);
}

// ---------------------------------------------------------------- adding and validation

#[tokio::test]
async fn add_item_stores_token_count_score_and_tier() {
    let f = fixture().await;
    let item =
        f.cm.add_item(f.project, new_item("a", ItemType::Code, "fn main() { println!(\"hi\"); }"))
            .await
            .unwrap();
    assert_eq!(item.token_count, tokens::count("fn main() { println!(\"hi\"); }").unwrap());
    assert_eq!(item.tier, Tier::Warm); // 0.4·0.8 + 0.4 = 0.72
    assert!((item.importance_score - 0.72).abs() < 1e-12);
    assert_eq!((item.created_at, item.last_accessed, item.access_count), (T0, T0, 0));
    assert_eq!(f.cm.get(&item.id).await.unwrap(), item);
    assert_eq!(uuid::Uuid::parse_str(&item.id).map(|u| u.get_version_num()).ok(), Some(4));
}

#[tokio::test]
async fn a_fresh_task_scores_exactly_0_8_and_is_hot_through_the_whole_path() {
    let f = fixture().await;
    let item = f.cm.add_item(f.project, new_item("a", ItemType::Task, "do the thing")).await.unwrap();
    assert_eq!(item.importance_score, 0.8);
    assert_eq!(item.tier, Tier::Hot);
    f.cm.update_tiers(f.project, None).await.unwrap();
    let stored = f.cm.get(&item.id).await.unwrap();
    assert_eq!((stored.importance_score, stored.tier), (0.8, Tier::Hot));
}

#[tokio::test]
async fn an_ancient_task_scores_exactly_0_4_and_is_warm_through_the_whole_path() {
    let f = fixture().await;
    let item = f.cm.add_item(f.project, aged("a", ItemType::Task, 3650)).await.unwrap();
    assert_eq!(item.importance_score, 0.4);
    assert_eq!(item.tier, Tier::Warm);
    f.cm.update_tiers(f.project, Some("a")).await.unwrap();
    assert_eq!(f.cm.get(&item.id).await.unwrap().tier, Tier::Warm);
}

#[tokio::test]
async fn ageing_moves_items_down_the_tiers_as_the_clock_advances() {
    let f = fixture().await;
    let code = f.cm.add_item(f.project, new_item("a", ItemType::Code, "let x = 1;")).await.unwrap();
    let task =
        f.cm.add_item(
            f.project,
            NewContextItem { access_count: Some(5), ..new_item("a", ItemType::Task, "task") },
        )
        .await
        .unwrap();
    assert_eq!((code.tier, task.tier), (Tier::Warm, Tier::Hot));

    f.clock.advance(Duration::days(1));
    assert_eq!(f.cm.update_tiers(f.project, Some("a")).await.unwrap(), 2);
    assert_eq!(f.cm.get(&task.id).await.unwrap().tier, Tier::Warm, "a day-old task is no longer HOT");
    assert_eq!(f.cm.get(&code.id).await.unwrap().tier, Tier::Warm);

    f.clock.advance(Duration::days(3));
    f.cm.update_tiers(f.project, None).await.unwrap();
    assert_eq!(f.cm.get(&code.id).await.unwrap().tier, Tier::Cold, "CODE is COLD after ~3.22 days");
    assert_eq!(f.cm.get(&task.id).await.unwrap().tier, Tier::Warm, "a TASK never becomes COLD");
}

#[tokio::test]
async fn recalculate_scores_keeps_tiers_and_update_tiers_moves_them() {
    let f = fixture().await;
    let code = f.cm.add_item(f.project, new_item("a", ItemType::Code, "old code")).await.unwrap();
    f.clock.advance(Duration::days(5));
    assert_eq!(f.cm.recalculate_scores(f.project, Some("a")).await.unwrap(), 1);
    let s = f.cm.get(&code.id).await.unwrap();
    assert!(s.importance_score < code.importance_score);
    assert_eq!(s.tier, Tier::Warm, "recalculation keeps the stored tier");
    f.cm.update_tiers(f.project, Some("a")).await.unwrap();
    assert_eq!(f.cm.get(&code.id).await.unwrap().tier, Tier::Cold);
}

#[tokio::test]
async fn rescoring_one_agent_leaves_the_other_alone() {
    let f = fixture().await;
    f.cm.add_item(f.project, new_item("a", ItemType::Code, "a")).await.unwrap();
    let b = f.cm.add_item(f.project, new_item("b", ItemType::Code, "b")).await.unwrap();
    f.clock.advance(Duration::days(5));
    assert_eq!(f.cm.update_tiers(f.project, Some("a")).await.unwrap(), 1);
    assert_eq!(f.cm.get(&b.id).await.unwrap(), b);
}

#[tokio::test]
async fn bad_items_are_refused_with_typed_errors_and_nothing_is_written() {
    let f = fixture_with(ContextConfig { max_content_bytes: 64, ..Default::default() }).await;
    let e = f.cm.add_item(f.project, new_item("a", ItemType::Task, "  \n\t ")).await.unwrap_err();
    assert!(matches!(e, ContextError::EmptyContent { .. }), "{e}");
    let e = f.cm.add_item(f.project, new_item("a", ItemType::Task, &"x".repeat(65))).await.unwrap_err();
    assert!(matches!(e, ContextError::ContentTooLarge { size: 65, limit: 64 }), "{e}");
    let e = f.cm.add_item(ProjectId(9999), new_item("a", ItemType::Task, "x")).await.unwrap_err();
    assert!(matches!(e, ContextError::UnknownProject(ProjectId(9999))), "{e}");
    let e = f.cm.add_item(f.project, new_item("stranger", ItemType::Task, "x")).await.unwrap_err();
    assert!(matches!(e, ContextError::UnknownAgent { .. }), "{e}");
    let e = f.cm.add_item(f.project, new_item("../../etc", ItemType::Task, "x")).await.unwrap_err();
    assert!(matches!(e, ContextError::Invalid(_)), "{e}");
    assert!(matches!(parse_item_type("NOTE"), Err(ContextError::InvalidItemType(v)) if v == "NOTE"));
    assert_eq!(parse_item_type("TEST_RESULT").unwrap(), ItemType::TestResult);

    // One bad item in a bulk add refuses the whole batch.
    let batch = vec![new_item("a", ItemType::Task, "fine"), new_item("stranger", ItemType::Task, "bad")];
    assert!(f.cm.add_items(f.project, batch).await.is_err());
    assert!(all_items(&f, f.project).await.is_empty());
}

#[tokio::test]
async fn a_deactivated_agent_cannot_receive_new_items() {
    let f = fixture().await;
    agents::unassign(&mut f.db.conn().await.unwrap(), f.project, "b", T0).await.unwrap();
    let e = f.cm.add_item(f.project, new_item("b", ItemType::Task, "x")).await.unwrap_err();
    assert!(matches!(e, ContextError::UnknownAgent { .. }));
}

#[tokio::test]
async fn touch_counts_accesses_and_unknown_ids_are_typed_errors() {
    let f = fixture().await;
    let item = f.cm.add_item(f.project, new_item("a", ItemType::Error, "boom")).await.unwrap();
    f.clock.advance(Duration::minutes(5));
    let t = f.cm.touch(&item.id).await.unwrap();
    assert_eq!((t.access_count, t.last_accessed), (1, T0 + Duration::minutes(5)));
    assert!(matches!(f.cm.touch("nope").await, Err(ContextError::UnknownItem(id)) if id == "nope"));
    assert!(matches!(f.cm.get("nope").await, Err(ContextError::UnknownItem(_))));
}

#[tokio::test]
async fn listing_has_no_silent_cap_and_paginates() {
    let f = fixture().await;
    let items: Vec<_> = (0..10_050).map(|n| new_item("a", ItemType::Task, &format!("t{n}"))).collect();
    assert_eq!(f.cm.add_items(f.project, items).await.unwrap().len(), 10_050);
    let q = ListQuery { agent_id: Some("a".into()), ..ListQuery::of(f.project) };
    let all = f.cm.list(&q).await.unwrap();
    assert_eq!((all.items.len(), all.total), (10_050, 10_050));
    let page = f.cm.list(&ListQuery { limit: Some(100), offset: 10_000, ..q.clone() }).await.unwrap();
    assert_eq!((page.items.len(), page.total), (50, 10_050));
    let cold = f.cm.list(&ListQuery { tier: Some(Tier::Cold), ..q.clone() }).await.unwrap();
    assert_eq!(cold.total, 0);
    assert!(matches!(
        f.cm.list(&ListQuery::of(ProjectId(777))).await,
        Err(ContextError::UnknownProject(ProjectId(777)))
    ));
}

// ---------------------------------------------------------------- thresholds

#[tokio::test]
async fn should_flash_save_at_the_configured_threshold() {
    let f = fixture_with(ContextConfig { token_limit: 10, flash_save_threshold: 0.8, ..Default::default() })
        .await;
    assert!(!f.cm.should_flash_save(f.project, "a", false).await.unwrap(), "empty context");
    assert!(f.cm.should_flash_save(f.project, "a", true).await.unwrap(), "forced");
    // "hello world" is 2 tokens; 4 of them make 8 = 80 % of 10.
    for _ in 0..3 {
        f.cm.add_item(f.project, new_item("a", ItemType::Task, "hello world")).await.unwrap();
    }
    assert_eq!(f.cm.token_totals(f.project, "a").await.unwrap().total_tokens(), 6);
    assert!(!f.cm.should_flash_save(f.project, "a", false).await.unwrap());
    f.cm.add_item(f.project, new_item("a", ItemType::Task, "hello world")).await.unwrap();
    assert!(f.cm.should_flash_save(f.project, "a", false).await.unwrap(), "threshold is inclusive");
    assert!(matches!(
        f.cm.should_flash_save(f.project, "zed", false).await,
        Err(ContextError::UnknownAgent { .. })
    ));
}

#[tokio::test]
async fn token_totals_are_per_tier_and_active_only() {
    let f = fixture().await;
    add_tiers(&f, "a", 2, 3, 4).await;
    let t = f.cm.token_totals(f.project, "a").await.unwrap();
    assert_eq!((t.hot_items, t.warm_items, t.cold_items), (2, 3, 4));
    let stored = all_items(&f, f.project).await;
    let cold: i64 = stored.iter().filter(|i| i.tier == Tier::Cold).map(|i| i.token_count).sum();
    assert_eq!(t.cold_tokens, cold);
    f.cm.flash_save_now(f.project, "a", true).await.unwrap();
    let t = f.cm.token_totals(f.project, "a").await.unwrap();
    assert_eq!((t.cold_items, t.cold_tokens), (0, 0));
}

// ---------------------------------------------------------------- flash save

async fn flash(f: &Fixture, agent: &str) -> codeframe_models::FlashSaveReport {
    let mut tx = f.db.begin().await.unwrap();
    let r = f.cm.flash_save(&mut tx, f.project, agent).await.unwrap();
    tx.commit().await.unwrap();
    r
}

#[tokio::test]
async fn flash_save_with_no_items_records_zeros() {
    let f = fixture().await;
    let r = flash(&f, "a").await;
    assert_eq!((r.tokens_before, r.tokens_after, r.items_archived), (0, 0, 0));
    assert_eq!(r.reduction_percentage, 0.0);
    assert!(r.flash_save_id > FlashSaveId(0));
}

#[tokio::test]
async fn flash_save_with_only_hot_items_archives_nothing() {
    let f = fixture().await;
    add_tiers(&f, "a", 5, 0, 0).await;
    let r = flash(&f, "a").await;
    assert_eq!((r.items_archived, r.hot_items_retained, r.warm_items_retained), (0, 5, 0));
    assert_eq!(r.tokens_before, r.tokens_after);
    assert_eq!(r.reduction_percentage, 0.0);
}

#[tokio::test]
async fn flash_save_with_only_cold_items_archives_everything_and_keeps_the_rows() {
    let f = fixture().await;
    add_tiers(&f, "a", 0, 0, 6).await;
    let before = all_items(&f, f.project).await;
    let r = flash(&f, "a").await;
    assert_eq!((r.items_archived, r.tokens_after), (6, 0));
    assert_eq!(r.reduction_percentage, 100.0);
    let after = all_items(&f, f.project).await;
    assert_eq!(after.len(), before.len(), "archived, not deleted");
    assert!(
        after.iter().all(|i| i.archived_at == Some(T0) && i.archived_by_flash_save == Some(r.flash_save_id))
    );
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.content, b.token_count, b.tier), (&a.content, a.token_count, a.tier));
    }
}

#[tokio::test]
async fn flash_save_reports_the_reference_fields_for_a_mixed_context() {
    let f = fixture().await;
    add_tiers(&f, "a", 3, 7, 5).await;
    let t = f.cm.token_totals(f.project, "a").await.unwrap();
    let r = flash(&f, "a").await;
    assert_eq!(r.tokens_before, t.total_tokens());
    assert_eq!(r.tokens_after, t.hot_tokens + t.warm_tokens);
    assert_eq!((r.items_archived, r.hot_items_retained, r.warm_items_retained), (5, 3, 7));
    let expected = ((t.cold_tokens as f64 / t.total_tokens() as f64 * 100.0) * 100.0).round() / 100.0;
    assert_eq!(r.reduction_percentage, expected);
    assert_eq!(r.agent_id, "a");
}

#[tokio::test]
async fn a_second_flash_save_in_a_row_archives_nothing() {
    let f = fixture().await;
    add_tiers(&f, "a", 1, 1, 3).await;
    assert_eq!(flash(&f, "a").await.items_archived, 3);
    let second = flash(&f, "a").await;
    assert_eq!(second.items_archived, 0);
    assert_eq!(second.tokens_before, second.tokens_after);
}

#[tokio::test]
async fn flash_save_of_one_agent_touches_no_other_agent_or_project() {
    let f = fixture().await;
    let other = add_project(&f.db, "other", &["a"]).await;
    add_tiers(&f, "a", 1, 1, 3).await;
    add_tiers(&f, "b", 1, 1, 3).await;
    let other_cm = SqlContextManager::with(f.db.clone(), Arc::new(f.clock.clone()), ContextConfig::default());
    other_cm
        .add_items(
            other,
            vec![NewContextItem {
                created_at: Some(T0 - Duration::days(9)),
                ..new_item("a", ItemType::Code, "x")
            }],
        )
        .await
        .unwrap();
    let b_before: Vec<_> = all_items(&f, f.project).await.into_iter().filter(|i| i.agent_id == "b").collect();
    let other_before = all_items(&f, other).await;

    assert_eq!(flash(&f, "a").await.items_archived, 3);
    let b_after: Vec<_> = all_items(&f, f.project).await.into_iter().filter(|i| i.agent_id == "b").collect();
    assert_eq!(b_after, b_before);
    assert_eq!(all_items(&f, other).await, other_before);
}

#[tokio::test]
async fn rolling_back_the_callers_transaction_undoes_the_whole_flash_save() {
    let f = fixture().await;
    add_tiers(&f, "a", 2, 2, 4).await;
    let before = all_items(&f, f.project).await;
    let mut tx = f.db.begin().await.unwrap();
    let r = f.cm.flash_save(&mut tx, f.project, "a").await.unwrap();
    assert_eq!(r.items_archived, 4);
    tx.rollback().await.unwrap();
    assert_eq!(all_items(&f, f.project).await, before);
    let saves = codeframe_persistence::flash_saves::list(&mut f.db.conn().await.unwrap(), f.project, None)
        .await
        .unwrap();
    assert!(saves.is_empty(), "the flash_saves row is rolled back too");
}

#[tokio::test]
async fn archive_then_restore_leaves_every_item_byte_identical() {
    let f = fixture().await;
    add_tiers(&f, "a", 2, 3, 5).await;
    add_tiers(&f, "b", 1, 1, 2).await;
    let before = all_items(&f, f.project).await;
    let ra = flash(&f, "a").await;
    let rb = flash(&f, "b").await;
    assert_eq!((ra.items_archived, rb.items_archived), (5, 2));
    let archived =
        f.cm.list(&ListQuery { state: ArchiveState::Archived, ..ListQuery::of(f.project) }).await.unwrap();
    assert_eq!(archived.total, 7);

    assert_eq!(f.cm.restore_archived(f.project, "a", Some(ra.flash_save_id)).await.unwrap(), 5);
    assert_eq!(f.cm.restore_archived(f.project, "b", None).await.unwrap(), 2);
    assert_eq!(all_items(&f, f.project).await, before);
    assert!(matches!(
        f.cm.restore_archived(f.project, "zed", None).await,
        Err(ContextError::UnknownAgent { .. })
    ));
    assert!(matches!(
        f.cm.restore_archived(ProjectId(4040), "a", None).await,
        Err(ContextError::UnknownProject(ProjectId(4040)))
    ));
}

#[tokio::test]
async fn flash_save_now_runs_only_when_due_or_forced() {
    let f = fixture().await;
    add_tiers(&f, "a", 1, 1, 1).await;
    assert_eq!(f.cm.flash_save_now(f.project, "a", false).await.unwrap(), None);
    let r = f.cm.flash_save_now(f.project, "a", true).await.unwrap().unwrap();
    assert_eq!(r.items_archived, 1);
}

#[tokio::test]
async fn flash_save_of_an_unknown_agent_or_project_is_refused() {
    let f = fixture().await;
    let mut tx = f.db.begin().await.unwrap();
    assert!(matches!(
        f.cm.flash_save(&mut tx, f.project, "zed").await,
        Err(ContextError::UnknownAgent { .. })
    ));
    assert!(matches!(
        f.cm.flash_save(&mut tx, ProjectId(5150), "a").await,
        Err(ContextError::UnknownProject(ProjectId(5150)))
    ));
}
