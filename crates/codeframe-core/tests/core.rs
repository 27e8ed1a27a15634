//! ProjectService tests: real SQLite files, real git repositories, real snapshot stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use codeframe_testkit::{git, tree_files};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use codeframe_checkpoint::{
    CheckpointDraft, CheckpointManager, CheckpointSpec, FileDiff, FilesRestored, GitCheckpointManager,
    PreparedCheckpoint, ReconcileReport, RestoreMode, RestoreReport, RestoreWhat, VerifyReport,
    WrittenCheckpoint, checkpoint_ref,
};
use codeframe_context::{
    ContextConfig, ContextError, ContextManager, FlashSavePlan, ItemPage, ListQuery, SqlContextManager,
};
use codeframe_core::{
    CollectingSink, ConflictKind, CoreError, EventError, EventSink, PauseOptions, ProjectService,
    ServiceConfig,
};
use codeframe_models::{
    Checkpoint, CheckpointId, ContextItem, FlashSaveId, FlashSaveReport, ItemType, ManualClock,
    NewContextItem, PauseRequest, ProjectEvent, ProjectId, ProjectStatus, ResumeOptions, TierTotals,
};
use codeframe_persistence::{Db, ReadTx, Tx, checkpoints, context, projects};
use tempfile::TempDir;
use time::{Duration as TimeDuration, OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-07-01 08:00 UTC);

// ---------------------------------------------------------------- fixture

struct Fx {
    _tmp: TempDir,
    root: PathBuf,
    /// Beside the database (on SQLite, its file): where the crash tests' child processes put
    /// their marker files.
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    db_path: PathBuf,
    /// The database (a SQLite file or a PostgreSQL URL), for child processes.
    db_url: String,
    db: Db,
    clock: ManualClock,
    sink: Arc<CollectingSink>,
    svc: ProjectService,
    project: ProjectId,
}

fn make_root(tmp: &Path) -> PathBuf {
    let root = tmp.join("repo");
    std::fs::create_dir_all(root.join("src")).unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    std::fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(root.join("README.md"), "# demo\n").unwrap();
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-qm", "init"]);
    root
}

async fn service(
    db: &Db,
    clock: &ManualClock,
    sink: Arc<dyn EventSink>,
    context: Option<Arc<dyn ContextManager>>,
    checkpoints: Option<Arc<dyn CheckpointManager>>,
) -> ProjectService {
    let clock_arc: Arc<dyn codeframe_models::Clock> = Arc::new(clock.clone());
    let context = context.unwrap_or_else(|| {
        Arc::new(SqlContextManager::with(db.clone(), clock_arc.clone(), ContextConfig::default()))
    });
    let checkpoints = checkpoints
        .unwrap_or_else(|| Arc::new(GitCheckpointManager::with_clock(db.clone(), clock_arc.clone())));
    ProjectService::builder()
        .db(db.clone())
        .context_manager(context)
        .checkpoint_manager(checkpoints)
        .event_sink(sink)
        .clock(clock_arc)
        .drain_timeout(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

async fn fx() -> Fx {
    fx_with(|_, _, _| None, |_, _| None).await
}

type CtxWrap = fn(&Db, &ManualClock, Arc<dyn ContextManager>) -> Option<Arc<dyn ContextManager>>;
type CpWrap = fn(&Db, Arc<dyn CheckpointManager>) -> Option<Arc<dyn CheckpointManager>>;

async fn fx_with(ctx: CtxWrap, cp: CpWrap) -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let root = make_root(tmp.path());
    let db_path = tmp.path().join("state.db");
    let db_url = codeframe_testkit::database::location(tmp.path());
    let db = Db::open(&db_url).await.unwrap();
    let clock = ManualClock::new(T0);
    let sink = Arc::new(CollectingSink::default());
    let clock_arc: Arc<dyn codeframe_models::Clock> = Arc::new(clock.clone());
    let base_ctx: Arc<dyn ContextManager> =
        Arc::new(SqlContextManager::with(db.clone(), clock_arc.clone(), ContextConfig::default()));
    let base_cp: Arc<dyn CheckpointManager> =
        Arc::new(GitCheckpointManager::with_clock(db.clone(), clock_arc));
    let svc = service(&db, &clock, sink.clone(), ctx(&db, &clock, base_ctx), cp(&db, base_cp)).await;
    let project = svc.create("demo", &root).await.unwrap().id;
    Fx { _tmp: tmp, root, db_path, db_url, db, clock, sink, svc, project }
}

/// Registers agents and gives each `hot`, `warm` and `cold` items (known tiers).
async fn populate(f: &Fx, agents: &[&str], hot: usize, warm: usize, cold: usize) {
    for a in agents {
        f.svc.register_agent(a, "worker", None).await.unwrap();
        f.svc.assign(f.project, a, "worker").await.unwrap();
        let mut items = Vec::new();
        let item = |t: ItemType, content: String, days: i64| NewContextItem {
            agent_id: (*a).into(),
            item_type: t,
            content,
            created_at: Some(T0 - TimeDuration::days(days)),
            access_count: None,
        };
        items.extend((0..hot).map(|n| item(ItemType::Task, format!("{a} hot task {n}"), 0)));
        items.extend((0..warm).map(|n| item(ItemType::Code, format!("fn {a}_warm_{n}() {{}}"), 0)));
        items.extend((0..cold).map(|n| item(ItemType::PrdSection, format!("{a} old requirement {n}"), 30)));
        f.svc.context().add_items(f.project, items).await.unwrap();
    }
}

async fn set_status(f: &Fx, status: ProjectStatus) {
    let mut c = f.db.conn().await.unwrap();
    let mut p = projects::get(&mut c, f.project).await.unwrap();
    p.status = status;
    projects::update(&mut c, &p, T0).await.unwrap();
}

async fn items(f: &Fx) -> Vec<ContextItem> {
    context::list_for_project(&mut f.db.conn().await.unwrap(), f.project).await.unwrap()
}

fn refs(root: &Path) -> Vec<String> {
    if !root.join(".codeframe/snapshots.git").exists() {
        return Vec::new();
    }
    git(root, &["--git-dir", ".codeframe/snapshots.git", "for-each-ref", "--format=%(refname)"])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn reason(r: &str) -> PauseRequest {
    PauseRequest { reason: Some(r.into()) }
}

// ---------------------------------------------------------------- lifecycle

#[tokio::test]
async fn create_validates_name_and_root() {
    let f = fx().await;
    let e = f.svc.create("demo", &f.root).await.unwrap_err();
    assert!(matches!(e, CoreError::Conflict(ConflictKind::NameTaken { .. })), "{e}");
    assert!(f.svc.create("", &f.root).await.unwrap_err().is_invalid());
    assert!(f.svc.create("x", Path::new("/definitely/not/here")).await.unwrap_err().is_invalid());
    let p = f.svc.get(f.project).await.unwrap();
    assert!(Path::new(&p.root_path).is_absolute());
    assert_eq!(p.status, ProjectStatus::Init);
}

#[tokio::test]
async fn start_moves_init_to_planning_and_only_once() {
    let f = fx().await;
    let p = f.svc.start(f.project).await.unwrap();
    assert_eq!(p.status, ProjectStatus::Planning);
    let e = f.svc.start(f.project).await.unwrap_err();
    assert!(matches!(
        e,
        CoreError::Conflict(ConflictKind::InvalidTransition { from: ProjectStatus::Planning, .. })
    ));
    assert!(f.svc.start(ProjectId(999)).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn pause_is_allowed_from_planning_running_and_active_and_resume_returns_there() {
    let f = fx().await;
    for status in [ProjectStatus::Planning, ProjectStatus::Running, ProjectStatus::Active] {
        set_status(&f, status).await;
        let out = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
        assert!(out.success);
        assert_eq!(f.svc.get(f.project).await.unwrap().status, ProjectStatus::Paused);
        let r = f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
        assert_eq!(r.status, status);
        let p = f.svc.get(f.project).await.unwrap();
        assert_eq!(
            (p.status, p.paused_at, p.pause_checkpoint_id, p.status_before_pause),
            (status, None, None, None)
        );
    }
}

#[tokio::test]
async fn pause_from_init_or_completed_is_refused_and_changes_nothing() {
    let f = fx().await;
    for status in [ProjectStatus::Init, ProjectStatus::Completed] {
        set_status(&f, status).await;
        let before = f.svc.get(f.project).await.unwrap();
        let e = f.svc.pause(f.project, PauseRequest::default()).await.unwrap_err();
        assert!(
            matches!(e, CoreError::Conflict(ConflictKind::InvalidTransition { from, action: "pause" }) if from == status),
            "{e}"
        );
        assert!(e.to_string().contains("cannot pause"));
        assert_eq!(f.svc.get(f.project).await.unwrap(), before);
        assert!(refs(&f.root).is_empty());
        assert!(!f.svc.gate_status(f.project).await.unwrap().closed, "the gate is reopened");
    }
}

#[tokio::test]
async fn pausing_a_paused_project_is_a_conflict_that_reports_the_existing_pause() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let first = f.svc.pause(f.project, reason("first")).await.unwrap();
    let before = f.svc.get(f.project).await.unwrap();
    let e = f.svc.pause(f.project, reason("second")).await.unwrap_err();
    match e {
        CoreError::Conflict(ConflictKind::AlreadyPaused { paused_at, checkpoint_id }) => {
            assert_eq!(paused_at, Some(first.paused_at));
            assert_eq!(checkpoint_id, Some(first.checkpoint_id));
        }
        other => panic!("expected AlreadyPaused, got {other}"),
    }
    assert_eq!(f.svc.get(f.project).await.unwrap(), before);
    assert_eq!(f.svc.checkpoints().list(f.project).await.unwrap().len(), 1, "no second checkpoint");
    assert!(f.svc.gate_status(f.project).await.unwrap().closed, "still paused");
}

#[tokio::test]
async fn pause_of_an_unknown_project_is_not_found() {
    let f = fx().await;
    assert!(f.svc.pause(ProjectId(4242), PauseRequest::default()).await.unwrap_err().is_not_found());
    assert!(f.svc.resume(ProjectId(4242), ResumeOptions::default()).await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_reason_over_500_characters_is_refused_and_changes_nothing() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let before = f.svc.get(f.project).await.unwrap();
    let e = f.svc.pause(f.project, reason(&"r".repeat(501))).await.unwrap_err();
    assert!(e.is_invalid(), "{e}");
    assert_eq!(f.svc.get(f.project).await.unwrap(), before);
    // Exactly 500 is fine.
    f.svc.pause(f.project, reason(&"r".repeat(500))).await.unwrap();
}

// ---------------------------------------------------------------- pause results

#[tokio::test]
async fn pause_with_no_agents_reports_zeros() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let out = f.svc.pause(f.project, reason("test pause")).await.unwrap();
    assert_eq!((out.tokens_before, out.tokens_after, out.items_archived), (0, 0, 0));
    assert_eq!(out.reduction_percentage, 0.0);
    assert!(out.agents.is_empty() && out.interrupted_agents.is_empty());
    let cp = f.svc.checkpoints().get(f.project, out.checkpoint_id).await.unwrap();
    assert_eq!(cp.trigger, codeframe_models::CheckpointTrigger::Pause);
    assert!(cp.name.contains("test pause"));
}

#[tokio::test]
async fn pause_with_one_agent_archives_its_cold_items() {
    let f = fx().await;
    populate(&f, &["solo"], 2, 3, 4).await;
    set_status(&f, ProjectStatus::Active).await;
    let totals = f.svc.context().token_totals(f.project, "solo").await.unwrap();
    let out = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    assert_eq!(out.items_archived, 4);
    assert_eq!(out.tokens_before, totals.total_tokens());
    assert_eq!(out.tokens_after, totals.hot_tokens + totals.warm_tokens);
    assert_eq!(out.agents.len(), 1);
    assert_eq!(out.agents[0].report.as_ref().unwrap().items_archived, 4);
    let all = items(&f).await;
    assert_eq!(all.len(), 9, "archived, not deleted");
    assert_eq!(all.iter().filter(|i| i.archived_at.is_some()).count(), 4);
}

#[tokio::test]
async fn pause_with_many_agents_sums_their_flash_saves() {
    let f = fx().await;
    populate(&f, &["a1", "a2", "a3"], 1, 2, 3).await;
    set_status(&f, ProjectStatus::Running).await;
    let out = f.svc.pause(f.project, reason("resource_limit")).await.unwrap();
    assert_eq!(out.agents.iter().map(|a| a.agent_id.as_str()).collect::<Vec<_>>(), ["a1", "a2", "a3"]);
    let reports: Vec<&FlashSaveReport> = out.agents.iter().map(|a| a.report.as_ref().unwrap()).collect();
    assert_eq!(out.tokens_before, reports.iter().map(|r| r.tokens_before).sum::<i64>());
    assert_eq!(out.tokens_after, reports.iter().map(|r| r.tokens_after).sum::<i64>());
    assert_eq!(out.items_archived, 9);
    let expected =
        ((out.tokens_before - out.tokens_after) as f64 / out.tokens_before as f64 * 10000.0).round() / 100.0;
    assert_eq!(out.reduction_percentage, expected);
    assert!(out.reduction_percentage > 0.0 && out.reduction_percentage < 100.0);
}

#[tokio::test]
async fn paused_at_is_the_same_instant_in_the_result_and_the_database() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    f.clock.set(datetime!(2026-07-02 09:10:11.123456 UTC));
    let out = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    let p = f.svc.get(f.project).await.unwrap();
    assert_eq!(p.paused_at, Some(out.paused_at));
    assert_eq!(out.paused_at, datetime!(2026-07-02 09:10:11.123456 UTC));
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(json["paused_at"], "2026-07-02T09:10:11.123456Z");
    for field in [
        "success",
        "checkpoint_id",
        "tokens_before",
        "tokens_after",
        "reduction_percentage",
        "items_archived",
    ] {
        assert!(json.get(field).is_some(), "{field}");
    }
    assert_eq!(p.pause_checkpoint_id, Some(out.checkpoint_id));
    assert_eq!(p.status_before_pause, Some(ProjectStatus::Active));
}

#[tokio::test]
async fn the_pause_checkpoint_holds_the_flash_saved_context_and_the_pre_pause_row() {
    let f = fx().await;
    populate(&f, &["a"], 1, 1, 2).await;
    set_status(&f, ProjectStatus::Active).await;
    let out = f.svc.pause(f.project, reason("why")).await.unwrap();
    let cp = f.svc.checkpoints().get(f.project, out.checkpoint_id).await.unwrap();
    assert_eq!(cp.pause_reason.as_deref(), Some("why"));
    assert!(cp.description.starts_with("Project paused at 2026-07-01 08:00:00 UTC\nReason: why"));
    assert_eq!(cp.metadata.context_items_count, 4);
    assert_eq!(cp.metadata.agents_active, ["a"]);
    assert!(f.svc.checkpoints().verify(f.project, cp.id).await.unwrap().ok());
    let gd = |spec: &str| git(&f.root, &["--git-dir", ".codeframe/snapshots.git", "show", spec]);
    let r = checkpoint_ref(cp.id);
    let project: serde_json::Value = serde_json::from_str(&gd(&format!("{r}:state/project.json"))).unwrap();
    assert_eq!(project["status"], "active");
    let ctx = gd(&format!("{r}:state/context/000000.jsonl"));
    assert_eq!(ctx.lines().filter(|l| l.contains("\"archived_at\":\"2026")).count(), 2);
    assert!(gd(&format!("{r}:files/src/main.rs")).contains("fn main"));
}

#[tokio::test]
async fn a_pause_over_an_earlier_checkpoint_holds_what_its_flash_save_archived() {
    let f = fx().await;
    populate(&f, &["a"], 1, 1, 2).await;
    set_status(&f, ProjectStatus::Active).await;
    let base = f.svc.create_checkpoint(f.project, "before", "").await.unwrap();
    let out = f.svc.pause(f.project, reason("again")).await.unwrap();
    let gd = |spec: &str| git(&f.root, &["--git-dir", ".codeframe/snapshots.git", "show", spec]);
    let before = gd(&format!("{}:state/context/000000.jsonl", checkpoint_ref(base.id)));
    let paused = gd(&format!("{}:state/context/000000.jsonl", checkpoint_ref(out.checkpoint_id)));
    assert_eq!(before.lines().filter(|l| l.contains("\"archived_at\":\"2026")).count(), 0);
    assert_eq!(paused.lines().filter(|l| l.contains("\"archived_at\":\"2026")).count(), 2, "{paused}");
    let expected: Vec<String> = items(&f).await.iter().map(|i| i.id.clone()).collect();
    let ids: Vec<String> = paused
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, expected);
}

// ---------------------------------------------------------------- resume

#[tokio::test]
async fn resume_restores_the_paused_context_byte_identically_and_keeps_new_items() {
    let f = fx().await;
    populate(&f, &["a", "b"], 2, 2, 2).await;
    set_status(&f, ProjectStatus::Active).await;
    f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    let at_pause = items(&f).await;
    // While paused: items are touched and re-tiered, and a new item is added.
    f.clock.advance(TimeDuration::days(3));
    for i in at_pause.iter().take(3) {
        f.svc.context().touch(&i.id).await.unwrap();
    }
    f.svc.context().update_tiers(f.project, None).await.unwrap();
    let added = f
        .svc
        .context()
        .add_item(
            f.project,
            NewContextItem {
                agent_id: "a".into(),
                item_type: ItemType::Error,
                content: "noted during the pause".into(),
                created_at: None,
                access_count: None,
            },
        )
        .await
        .unwrap();
    assert_ne!(items(&f).await.len(), at_pause.len());

    let r = f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    assert_eq!((r.items_restored, r.status, r.paused_for_seconds), (12, ProjectStatus::Active, 3 * 86_400));
    let now: Vec<ContextItem> = items(&f).await;
    let restored: Vec<&ContextItem> = now.iter().filter(|i| i.id != added.id).collect();
    assert_eq!(restored, at_pause.iter().collect::<Vec<_>>(), "every paused item byte-identical");
    assert!(now.iter().any(|i| i.id == added.id), "nothing made during the pause is lost");
}

#[tokio::test]
async fn resume_from_an_explicit_checkpoint() {
    let f = fx().await;
    populate(&f, &["a"], 1, 1, 1).await;
    set_status(&f, ProjectStatus::Active).await;
    let first = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    let at_first = items(&f).await;
    f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    f.svc.context().touch(&at_first[0].id).await.unwrap();
    let second = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    assert_ne!(first.checkpoint_id, second.checkpoint_id);
    let r = f
        .svc
        .resume(f.project, ResumeOptions { checkpoint_id: Some(first.checkpoint_id), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(r.checkpoint_id, first.checkpoint_id);
    assert_eq!(items(&f).await, at_first, "the first pause's context is back");
}

#[tokio::test]
async fn resume_while_not_paused_is_refused() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let e = f.svc.resume(f.project, ResumeOptions::default()).await.unwrap_err();
    assert!(
        matches!(e, CoreError::Conflict(ConflictKind::NotPaused { status: ProjectStatus::Active })),
        "{e}"
    );
}

#[tokio::test]
async fn resume_from_another_projects_or_an_unknown_checkpoint_changes_nothing() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    let before = f.svc.get(f.project).await.unwrap();
    let e = f
        .svc
        .resume(f.project, ResumeOptions { checkpoint_id: Some(CheckpointId(999)), ..Default::default() })
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(f.svc.get(f.project).await.unwrap(), before);
}

/// Turns the packs of the project's snapshot store into loose objects, so a test can delete one
/// object the way code in the project could.
/// Removes the object `spec` names (`<ref>:<path>`) from the project's store, as a damaged
/// disk or code in the tree could.
fn lose_object(root: &Path, spec: &str) {
    let oid = git(root, &["--git-dir", ".codeframe/snapshots.git", "rev-parse", spec]);
    let oid = oid.trim();
    unpack_store(root);
    std::fs::remove_file(root.join(format!(".codeframe/snapshots.git/objects/{}/{}", &oid[..2], &oid[2..])))
        .unwrap();
}

fn unpack_store(root: &Path) {
    let dir = root.join(".codeframe/snapshots.git/objects/pack");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let pack = entry.unwrap().path();
        if pack.extension().is_none_or(|e| e != "pack") {
            continue;
        }
        let moved = root.parent().unwrap().join(pack.file_name().unwrap());
        std::fs::rename(&pack, &moved).unwrap();
        std::fs::remove_file(pack.with_extension("idx")).unwrap();
        let out = std::process::Command::new("git")
            .args(["--git-dir", ".codeframe/snapshots.git", "unpack-objects", "-q"])
            .current_dir(root)
            .stdin(std::fs::File::open(&moved).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[tokio::test]
async fn resume_from_a_corrupt_checkpoint_is_a_clear_error_and_changes_nothing() {
    let f = fx().await;
    populate(&f, &["a"], 1, 1, 1).await;
    set_status(&f, ProjectStatus::Active).await;
    let out = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    // A change during the pause, so that the resume must read the checkpoint's state back.
    let first = items(&f).await[0].id.clone();
    context::touch(&mut f.db.conn().await.unwrap(), &first, T0).await.unwrap();
    let before = (f.svc.get(f.project).await.unwrap(), items(&f).await);
    // Lose the state blob of the checkpoint.
    lose_object(&f.root, &format!("{}:state/project.json", checkpoint_ref(out.checkpoint_id)));
    let e = f.svc.resume(f.project, ResumeOptions::default()).await.unwrap_err();
    assert!(e.to_string().contains("unreadable"), "{e}");
    assert_eq!((f.svc.get(f.project).await.unwrap(), items(&f).await), before);
    assert!(f.svc.gate_status(f.project).await.unwrap().closed);
}

#[tokio::test]
async fn a_forced_resume_brings_a_project_with_a_lost_checkpoint_back_as_it_is() {
    let f = fx().await;
    populate(&f, &["a"], 1, 1, 1).await;
    set_status(&f, ProjectStatus::Active).await;
    let out = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    let first = items(&f).await[0].id.clone();
    context::touch(&mut f.db.conn().await.unwrap(), &first, T0).await.unwrap();
    let in_db = items(&f).await;
    // The whole snapshot store is gone.
    std::fs::remove_dir_all(f.root.join(".codeframe/snapshots.git")).unwrap();
    let e = f.svc.resume(f.project, ResumeOptions::default()).await.unwrap_err();
    assert!(!e.to_string().is_empty());
    assert_eq!(
        f.svc.get(f.project).await.unwrap().status,
        ProjectStatus::Paused,
        "a plain resume changes nothing"
    );

    let forced = ResumeOptions { force: true, restore_files: true, ..Default::default() };
    let r = f.svc.resume(f.project, forced).await.unwrap();
    assert_eq!(r.checkpoint_id, out.checkpoint_id);
    assert_eq!(r.status, ProjectStatus::Active);
    assert!(!r.files_restored);
    assert!(r.warnings.iter().any(|w| w.contains("context not restored")), "{:?}", r.warnings);
    assert!(r.warnings.iter().any(|w| w.contains("files not restored")), "{:?}", r.warnings);
    assert_eq!(items(&f).await, in_db, "context as it is in the database");
    assert!(!f.svc.gate_status(f.project).await.unwrap().closed, "the gate is open");
    // The project works again: a new pause makes a new store.
    f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
}

#[tokio::test]
async fn a_resume_after_an_untouched_pause_reads_no_state_back() {
    let f = fx().await;
    populate(&f, &["a"], 2, 2, 2).await;
    set_status(&f, ProjectStatus::Active).await;
    let out = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    let paused = items(&f).await;
    // Proof that nothing is read back: the context chunk is gone from the store, and the
    // resume does not notice (verify does).
    lose_object(&f.root, &format!("{}:state/context/000000.jsonl", checkpoint_ref(out.checkpoint_id)));
    let r = f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    assert_eq!(r.items_restored, 6, "the checkpoint's item count");
    assert_eq!(items(&f).await, paused, "the rows are exactly as the pause left them");
    assert!(!f.svc.checkpoints().verify(f.project, out.checkpoint_id).await.unwrap().ok());

    // After a change during the next pause, the resume reads the checkpoint and puts back
    // what changed.
    f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    let paused = items(&f).await;
    let first = paused[0].id.clone();
    context::touch(&mut f.db.conn().await.unwrap(), &first, T0 + TimeDuration::hours(1)).await.unwrap();
    assert_ne!(items(&f).await, paused);
    f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    assert_eq!(items(&f).await, paused, "the touched item is back to the checkpoint's");
}

#[tokio::test]
async fn files_edited_during_the_pause_are_kept_unless_restore_files() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    std::fs::write(f.root.join("src/main.rs"), "fn main() { println!(\"edited\"); }\n").unwrap();
    std::fs::write(f.root.join("NEW.md"), "new\n").unwrap();
    let r = f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    assert_eq!(r.files_changed, ["NEW.md", "src/main.rs"]);
    assert!(!r.files_restored);
    assert!(std::fs::read_to_string(f.root.join("src/main.rs")).unwrap().contains("edited"));

    f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    std::fs::write(f.root.join("src/main.rs"), "fn main() { todo!() }\n").unwrap();
    let r =
        f.svc.resume(f.project, ResumeOptions { restore_files: true, ..Default::default() }).await.unwrap();
    assert!(r.files_restored);
    assert_eq!(r.files_changed, ["src/main.rs"]);
    assert!(
        std::fs::read_to_string(f.root.join("src/main.rs")).unwrap().contains("edited"),
        "back to the pause's files"
    );
    let head = git(&f.root, &["status", "--porcelain"]);
    assert!(
        head.contains("src/main.rs") && head.contains("NEW.md"),
        "the user's repository is not reset: {head}"
    );
}

// ---------------------------------------------------------------- events

#[tokio::test]
async fn events_are_published_in_order_after_the_commit() {
    let f = fx().await;
    populate(&f, &["a"], 1, 1, 1).await;
    f.svc.start(f.project).await.unwrap();
    f.svc.pause(f.project, reason("lunch")).await.unwrap();
    f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    assert_eq!(
        f.sink.names(),
        [
            "agent_added",
            "status_changed",
            "pause_requested",
            "flash_save_completed",
            "context_archived",
            "checkpoint_created",
            "status_changed",
            "project_paused",
            "checkpoint_restored",
            "status_changed",
            "project_resumed"
        ]
    );
    // In-process observers get exactly what the durable log holds, seq for seq.
    let logged = f.svc.events_since(f.project, 0, 1000).await.unwrap();
    assert_eq!(f.sink.events(), logged.events);
    assert!(logged.events.windows(2).all(|w| w[0].seq < w[1].seq));
    let paused: Vec<ProjectEvent> =
        f.sink.events().into_iter().filter(|e| e.kind.name() == "project_paused").collect();
    let json = serde_json::to_value(&paused[0]).unwrap();
    assert_eq!(json["type"], "project_paused");
    assert_eq!(json["project_id"], f.project.get());
    assert_eq!(json["reason"], "lunch");
    assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
}

struct FailingSink;

#[async_trait]
impl EventSink for FailingSink {
    async fn publish(&self, _event: &ProjectEvent) -> Result<(), EventError> {
        Err(EventError("subscribers gone".into()))
    }
}

#[tokio::test]
async fn a_failing_event_sink_never_fails_the_pause() {
    let f = fx().await;
    let svc = service(&f.db, &f.clock, Arc::new(FailingSink), None, None).await;
    set_status(&f, ProjectStatus::Active).await;
    let out = svc.pause(f.project, PauseRequest::default()).await.unwrap();
    assert!(out.success);
    assert_eq!(svc.get(f.project).await.unwrap().status, ProjectStatus::Paused);
    svc.resume(f.project, ResumeOptions::default()).await.unwrap();
}

// ---------------------------------------------------------------- injected failures

/// A context manager whose flash save of one agent does its work and then fails.
struct FlakyContext {
    inner: Arc<dyn ContextManager>,
    fail_for: &'static str,
}

#[async_trait]
impl ContextManager for FlakyContext {
    async fn add_item(&self, p: ProjectId, i: NewContextItem) -> Result<ContextItem, ContextError> {
        self.inner.add_item(p, i).await
    }
    async fn add_items(&self, p: ProjectId, i: Vec<NewContextItem>) -> Result<Vec<String>, ContextError> {
        self.inner.add_items(p, i).await
    }
    async fn touch(&self, id: &str) -> Result<ContextItem, ContextError> {
        self.inner.touch(id).await
    }
    async fn get(&self, id: &str) -> Result<ContextItem, ContextError> {
        self.inner.get(id).await
    }
    async fn list(&self, q: &ListQuery) -> Result<ItemPage, ContextError> {
        self.inner.list(q).await
    }
    async fn recalculate_scores(&self, p: ProjectId, a: Option<&str>) -> Result<u64, ContextError> {
        self.inner.recalculate_scores(p, a).await
    }
    async fn update_tiers(&self, p: ProjectId, a: Option<&str>) -> Result<u64, ContextError> {
        self.inner.update_tiers(p, a).await
    }
    async fn token_totals(&self, p: ProjectId, a: &str) -> Result<TierTotals, ContextError> {
        self.inner.token_totals(p, a).await
    }
    async fn should_flash_save(&self, p: ProjectId, a: &str, force: bool) -> Result<bool, ContextError> {
        self.inner.should_flash_save(p, a, force).await
    }
    async fn flash_save(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        a: &str,
    ) -> Result<FlashSaveReport, ContextError> {
        let report = self.inner.flash_save(tx, p, a).await?;
        if a == self.fail_for {
            return Err(ContextError::Tokenizer(format!(
                "injected failure after archiving {}",
                report.items_archived
            )));
        }
        Ok(report)
    }
    async fn plan_flash_save(
        &self,
        read: &mut ReadTx,
        p: ProjectId,
        a: &str,
    ) -> Result<FlashSavePlan, ContextError> {
        self.inner.plan_flash_save(read, p, a).await
    }
    async fn apply_flash_save(
        &self,
        tx: &mut Tx<'_>,
        plan: &FlashSavePlan,
        id: FlashSaveId,
        now: OffsetDateTime,
    ) -> Result<FlashSaveReport, ContextError> {
        let report = self.inner.apply_flash_save(tx, plan, id, now).await?;
        if plan.agent_id == self.fail_for {
            return Err(ContextError::Tokenizer(format!(
                "injected failure after archiving {}",
                report.items_archived
            )));
        }
        Ok(report)
    }
    async fn flash_save_now(
        &self,
        p: ProjectId,
        a: &str,
        f: bool,
    ) -> Result<Option<FlashSaveReport>, ContextError> {
        self.inner.flash_save_now(p, a, f).await
    }
    async fn restore_archived(
        &self,
        p: ProjectId,
        a: &str,
        id: Option<FlashSaveId>,
    ) -> Result<u64, ContextError> {
        self.inner.restore_archived(p, a, id).await
    }
    async fn prepare_items(
        &self,
        p: ProjectId,
        i: Vec<NewContextItem>,
    ) -> Result<Vec<ContextItem>, ContextError> {
        self.inner.prepare_items(p, i).await
    }
    async fn insert_items(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        i: &[ContextItem],
    ) -> Result<(), ContextError> {
        self.inner.insert_items(tx, p, i).await
    }
    async fn restore_archived_in(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        a: &str,
        id: Option<FlashSaveId>,
    ) -> Result<u64, ContextError> {
        self.inner.restore_archived_in(tx, p, a, id).await
    }
}

#[tokio::test]
async fn one_agents_failed_flash_save_does_not_fail_the_pause() {
    let f = fx_with(|_, _, inner| Some(Arc::new(FlakyContext { inner, fail_for: "b" })), |_, _| None).await;
    populate(&f, &["a", "b", "c"], 1, 1, 2).await;
    set_status(&f, ProjectStatus::Active).await;
    let b_before: Vec<ContextItem> = items(&f).await.into_iter().filter(|i| i.agent_id == "b").collect();
    let out = f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    let b = out.agents.iter().find(|e| e.agent_id == "b").unwrap();
    assert!(b.report.is_none() && b.error.as_deref().unwrap().contains("injected"));
    assert_eq!(out.items_archived, 4, "only a's and c's items count");
    let ok: Vec<&FlashSaveReport> = out.agents.iter().filter_map(|e| e.report.as_ref()).collect();
    assert_eq!(ok.len(), 2);
    assert_eq!(out.tokens_before, ok.iter().map(|r| r.tokens_before).sum::<i64>());
    let b_after: Vec<ContextItem> = items(&f).await.into_iter().filter(|i| i.agent_id == "b").collect();
    assert_eq!(b_after, b_before, "b's flash save was rolled back alone (savepoint)");
    assert_eq!(f.svc.get(f.project).await.unwrap().status, ProjectStatus::Paused);
}

/// A checkpoint manager whose `write` does its work (objects and ref) and then fails.
struct FailingWrite {
    inner: Arc<dyn CheckpointManager>,
}

#[async_trait]
impl CheckpointManager for FailingWrite {
    async fn reserve_id(&self) -> codeframe_checkpoint::Result<CheckpointId> {
        self.inner.reserve_id().await
    }
    async fn prepare(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
        spec: CheckpointSpec,
    ) -> codeframe_checkpoint::Result<PreparedCheckpoint> {
        self.inner.prepare(tx, p, id, spec).await
    }
    async fn write(
        &self,
        tx: &mut Tx<'_>,
        prepared: PreparedCheckpoint,
    ) -> codeframe_checkpoint::Result<Checkpoint> {
        let cp = self.inner.write(tx, prepared).await?;
        Err(codeframe_checkpoint::CheckpointError::Worker(format!("disk full after writing {}", cp.id)))
    }
    async fn draft(
        &self,
        read: &mut ReadTx,
        p: ProjectId,
        id: CheckpointId,
        spec: CheckpointSpec,
        will_change: &[String],
    ) -> codeframe_checkpoint::Result<CheckpointDraft> {
        self.inner.draft(read, p, id, spec, will_change).await
    }
    async fn write_objects(&self, draft: CheckpointDraft) -> codeframe_checkpoint::Result<WrittenCheckpoint> {
        self.inner.write_objects(draft).await
    }
    async fn record(
        &self,
        tx: &mut Tx<'_>,
        w: &WrittenCheckpoint,
    ) -> codeframe_checkpoint::Result<Checkpoint> {
        self.inner.record(tx, w).await
    }
    async fn publish(&self, w: &WrittenCheckpoint) -> codeframe_checkpoint::Result<()> {
        self.inner.publish(w).await?;
        Err(codeframe_checkpoint::CheckpointError::Worker(format!(
            "disk full after writing {}",
            w.checkpoint.id
        )))
    }
    async fn discard(&self, p: ProjectId, id: CheckpointId) -> codeframe_checkpoint::Result<()> {
        self.inner.discard(p, id).await
    }
    async fn list(&self, p: ProjectId) -> codeframe_checkpoint::Result<Vec<Checkpoint>> {
        self.inner.list(p).await
    }
    async fn get(&self, p: ProjectId, id: CheckpointId) -> codeframe_checkpoint::Result<Checkpoint> {
        self.inner.get(p, id).await
    }
    async fn delete(&self, p: ProjectId, id: CheckpointId) -> codeframe_checkpoint::Result<()> {
        self.inner.delete(p, id).await
    }
    async fn delete_row(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
    ) -> codeframe_checkpoint::Result<()> {
        self.inner.delete_row(tx, p, id).await
    }
    async fn diff(&self, p: ProjectId, id: CheckpointId, u: bool) -> codeframe_checkpoint::Result<FileDiff> {
        self.inner.diff(p, id, u).await
    }
    async fn verify(&self, p: ProjectId, id: CheckpointId) -> codeframe_checkpoint::Result<VerifyReport> {
        self.inner.verify(p, id).await
    }
    async fn restore(
        &self,
        p: ProjectId,
        id: CheckpointId,
        w: RestoreWhat,
        m: RestoreMode,
    ) -> codeframe_checkpoint::Result<RestoreReport> {
        self.inner.restore(p, id, w, m).await
    }
    async fn restore_in(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
        w: RestoreWhat,
        m: RestoreMode,
    ) -> codeframe_checkpoint::Result<RestoreReport> {
        self.inner.restore_in(tx, p, id, w, m).await
    }
    async fn restore_rows(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
        w: RestoreWhat,
    ) -> codeframe_checkpoint::Result<usize> {
        self.inner.restore_rows(tx, p, id, w).await
    }
    async fn restore_files(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
    ) -> codeframe_checkpoint::Result<FilesRestored> {
        self.inner.restore_files(tx, p, id).await
    }
    async fn reconcile(&self, p: ProjectId) -> codeframe_checkpoint::Result<ReconcileReport> {
        self.inner.reconcile(p).await
    }
    async fn collect_garbage(
        &self,
        p: ProjectId,
        min_packs: usize,
    ) -> codeframe_checkpoint::Result<Option<codeframe_checkpoint::GcReport>> {
        self.inner.collect_garbage(p, min_packs).await
    }
    async fn settle_files(
        &self,
        p: ProjectId,
    ) -> codeframe_checkpoint::Result<Option<codeframe_checkpoint::FilesSettled>> {
        self.inner.settle_files(p).await
    }
}

#[tokio::test]
async fn a_failure_before_the_commit_rolls_everything_back_and_discards_the_ref() {
    let f = fx_with(|_, _, _| None, |_, inner| Some(Arc::new(FailingWrite { inner }))).await;
    populate(&f, &["a", "b"], 1, 1, 3).await;
    set_status(&f, ProjectStatus::Active).await;
    let before = (f.svc.get(f.project).await.unwrap(), items(&f).await);
    let published = f.sink.names().len();
    let logged = f.svc.events_since(f.project, 0, 1000).await.unwrap().events;
    let e = f.svc.pause(f.project, PauseRequest::default()).await.unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    assert_eq!(
        (f.svc.get(f.project).await.unwrap(), items(&f).await),
        before,
        "status, paused_at, context unchanged"
    );
    assert!(f.svc.checkpoints().list(f.project).await.unwrap().is_empty(), "no checkpoint row");
    assert!(refs(&f.root).is_empty(), "the ref was discarded");
    let saves = codeframe_persistence::flash_saves::list(&mut f.db.conn().await.unwrap(), f.project, None)
        .await
        .unwrap();
    assert!(saves.is_empty(), "flash saves rolled back");
    assert!(!f.svc.gate_status(f.project).await.unwrap().closed, "the gate is open again");
    // The rolled-back pause published nothing of its own: only that the gate closed and opened.
    let names: Vec<&str> = f.sink.names()[published..].to_vec();
    assert_eq!(names, ["pause_requested", "pause_cancelled"]);
    let now_logged = f.svc.events_since(f.project, 0, 1000).await.unwrap().events;
    assert_eq!(now_logged[..logged.len()], logged[..]);
    let cancelled = now_logged.last().unwrap();
    assert!(
        matches!(&cancelled.kind, codeframe_models::EventKind::PauseCancelled { reason } if reason == "internal"),
        "{cancelled:?}"
    );
}

// ---------------------------------------------------------------- run gate

#[tokio::test]
async fn permits_are_refused_while_paused_and_resume_reopens_the_gate() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    drop(f.svc.enter(f.project, "a").await.unwrap());
    f.svc.pause(f.project, PauseRequest::default()).await.unwrap();
    assert!(matches!(f.svc.enter(f.project, "a").await, Err(CoreError::Paused(id)) if id == f.project));
    // A fresh service on the same database starts with the gate closed for a paused project.
    let other = service(&f.db, &f.clock, Arc::new(CollectingSink::default()), None, None).await;
    assert!(other.enter(f.project, "a").await.is_err());
    f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    assert!(f.svc.enter(f.project, "a").await.is_ok());
}

#[tokio::test]
async fn pause_waits_for_work_in_flight_to_finish() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let permit = f.svc.enter(f.project, "worker-1").await.unwrap();
    let svc = f.svc.clone();
    let project = f.project;
    let pause = tokio::spawn(async move { svc.pause(project, PauseRequest::default()).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pause.is_finished(), "pause waits for the permit");
    assert!(f.svc.enter(f.project, "worker-2").await.is_err(), "new work is refused meanwhile");
    drop(permit);
    let out = pause.await.unwrap().unwrap();
    assert!(out.interrupted_agents.is_empty());
}

#[tokio::test]
async fn agents_still_working_at_the_deadline_are_reported_interrupted() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let _slow = f.svc.enter(f.project, "slow-agent").await.unwrap();
    let _slow2 = f.svc.enter(f.project, "slow-agent").await.unwrap();
    let out = f
        .svc
        .pause_with(
            f.project,
            PauseRequest::default(),
            PauseOptions { drain_timeout: Some(Duration::from_millis(100)) },
        )
        .await
        .unwrap();
    assert_eq!(out.interrupted_agents, ["slow-agent"]);
}

// ---------------------------------------------------------------- status, agents

#[tokio::test]
async fn status_reports_the_pause_and_the_context() {
    let f = fx().await;
    populate(&f, &["a", "b"], 1, 2, 3).await;
    set_status(&f, ProjectStatus::Active).await;
    let s = f.svc.status(f.project).await.unwrap();
    assert_eq!((s.status, s.paused_at, s.paused_for_seconds), (ProjectStatus::Active, None, None));
    assert_eq!(s.active_agents, ["a", "b"]);
    assert_eq!(s.token_totals.total_items(), 12);
    let out = f.svc.pause(f.project, reason("night")).await.unwrap();
    f.clock.advance(TimeDuration::minutes(90));
    let s = f.svc.status(f.project).await.unwrap();
    assert_eq!(s.status, ProjectStatus::Paused);
    assert_eq!(
        (s.paused_at, s.pause_reason.as_deref(), s.pause_checkpoint_id),
        (Some(out.paused_at), Some("night"), Some(out.checkpoint_id))
    );
    assert_eq!(s.paused_for_seconds, Some(5400));
    assert_eq!(s.token_totals.cold_items, 0);
    assert!(s.gate_closed);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["status"], "paused");
    assert_eq!(json["agents"][0]["agent_id"], "a");
}

#[tokio::test]
async fn agents_register_assign_and_deactivate() {
    let f = fx().await;
    f.svc.register_agent("w1", "worker", Some("anthropic")).await.unwrap();
    assert!(matches!(
        f.svc.register_agent("w1", "worker", None).await,
        Err(CoreError::Conflict(ConflictKind::AgentExists { .. }))
    ));
    assert!(f.svc.register_agent("bad id", "worker", None).await.unwrap_err().is_invalid());
    f.svc.assign(f.project, "w1", "worker").await.unwrap();
    assert!(matches!(
        f.svc.assign(f.project, "w1", "worker").await,
        Err(CoreError::Conflict(ConflictKind::AlreadyAssigned { .. }))
    ));
    assert!(f.svc.assign(f.project, "ghost", "worker").await.unwrap_err().is_not_found());
    f.svc.deactivate(f.project, "w1").await.unwrap();
    assert!(f.svc.deactivate(f.project, "w1").await.unwrap_err().is_not_found());
    assert!(f.svc.status(f.project).await.unwrap().active_agents.is_empty());
}

#[tokio::test]
async fn open_reconciles_orphan_refs() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    // An orphan: a checkpoint whose transaction never committed.
    let spec = CheckpointSpec {
        name: "orphan".into(),
        description: String::new(),
        trigger: codeframe_models::CheckpointTrigger::Manual,
        pause_reason: None,
    };
    let id = f.svc.checkpoints().reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let orphan = f.svc.checkpoints().create(&mut tx, f.project, id, spec).await.unwrap();
    drop(tx);
    assert_eq!(refs(&f.root).len(), 1);
    let opened = f.svc.open(f.project).await.unwrap();
    assert_eq!(opened.reconcile.removed_refs, [orphan.id]);
    assert!(refs(&f.root).is_empty());
    assert!(f.svc.open(ProjectId(404)).await.unwrap_err().is_not_found());
}

// ---------------------------------------------------------------- concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pauses_exactly_one_wins_across_two_services() {
    let f = fx().await;
    populate(&f, &["a"], 1, 1, 1).await;
    set_status(&f, ProjectStatus::Active).await;
    let other = service(&f.db, &f.clock, Arc::new(CollectingSink::default()), None, None).await;
    let mut handles = Vec::new();
    for n in 0..8 {
        let svc = if n % 2 == 0 { f.svc.clone() } else { other.clone() };
        let project = f.project;
        handles.push(tokio::spawn(async move { svc.pause(project, PauseRequest::default()).await }));
    }
    let mut ok = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(e.is_conflict(), "{e}"),
        }
    }
    assert_eq!(ok, 1, "exactly one pause succeeds");
    assert_eq!(f.svc.checkpoints().list(f.project).await.unwrap().len(), 1);
    assert_eq!(refs(&f.root).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_pauses_and_resumes_end_consistent() {
    let f = fx().await;
    populate(&f, &["a", "b"], 2, 2, 2).await;
    set_status(&f, ProjectStatus::Active).await;
    let item_ids: Vec<String> = items(&f).await.into_iter().map(|i| i.id).collect();
    let mut handles = Vec::new();
    for n in 0..16 {
        let svc = f.svc.clone();
        let project = f.project;
        handles.push(tokio::spawn(async move {
            if n % 2 == 0 {
                svc.pause(project, PauseRequest::default()).await.map(|_| "pause")
            } else {
                svc.resume(project, ResumeOptions::default()).await.map(|_| "resume")
            }
        }));
    }
    let (mut pauses, mut resumes) = (0, 0);
    for h in handles {
        match h.await.unwrap() {
            Ok("pause") => pauses += 1,
            Ok(_) => resumes += 1,
            Err(e) => assert!(e.is_conflict(), "{e}"),
        }
    }
    let p = f.svc.get(f.project).await.unwrap();
    // Some serial order explains the end state: pauses and resumes alternate from active.
    assert!(pauses == resumes || pauses == resumes + 1, "{pauses} pauses, {resumes} resumes");
    if pauses == resumes + 1 {
        assert_eq!(p.status, ProjectStatus::Paused);
        assert!(p.paused_at.is_some() && p.pause_checkpoint_id.is_some());
        assert!(f.svc.checkpoints().verify(f.project, p.pause_checkpoint_id.unwrap()).await.unwrap().ok());
        assert!(f.svc.gate_status(f.project).await.unwrap().closed);
    } else {
        assert_eq!(p.status, ProjectStatus::Active);
        assert_eq!((p.paused_at, p.pause_checkpoint_id), (None, None));
        assert!(!f.svc.gate_status(f.project).await.unwrap().closed);
    }
    assert_eq!(checkpoints::list(&mut f.db.conn().await.unwrap(), f.project).await.unwrap().len(), pauses);
    let mut after: Vec<String> = items(&f).await.into_iter().map(|i| i.id).collect();
    after.sort();
    let mut expected = item_ids;
    expected.sort();
    assert_eq!(after, expected, "no context item lost");
}

// ---------------------------------------------------------------- agents' writes and the gate

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_write_while_a_pause_drains_needs_its_permit_and_is_refused_once_paused() {
    let f = fx().await;
    populate(&f, &["a", "b"], 1, 1, 0).await;
    set_status(&f, ProjectStatus::Active).await;
    let item = |agent: &str, text: &str| NewContextItem {
        agent_id: agent.into(),
        item_type: ItemType::Task,
        content: text.into(),
        created_at: None,
        access_count: None,
    };
    let permit = f.svc.enter(f.project, "a").await.unwrap();
    let svc = f.svc.clone();
    let project = f.project;
    let pause = tokio::spawn(async move { svc.pause(project, PauseRequest::default()).await });
    while !f.svc.gate_status(f.project).await.unwrap().pausing {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = items(&f).await.len();
    // Draining: a write without a permit, or under another agent's, is refused...
    let e = f.svc.add_context_items(f.project, vec![item("a", "no permit")], None).await.unwrap_err();
    assert!(matches!(e, CoreError::Pausing(_)), "{e}");
    let e = f
        .svc
        .add_context_items(f.project, vec![item("b", "wrong agent")], Some(permit.id()))
        .await
        .unwrap_err();
    assert!(matches!(e, CoreError::Pausing(_)), "{e}");
    let e = f.svc.flash_save(f.project, "b", true, None).await.unwrap_err();
    assert!(matches!(e, CoreError::Pausing(_)), "{e}");
    assert_eq!(items(&f).await.len(), before, "nothing written");
    // ...while the unit in flight finishes under its permit.
    let id = permit.id();
    f.svc.add_context_items(f.project, vec![item("a", "finishing the unit")], Some(id)).await.unwrap();
    assert!(permit.is_pause_requested());
    permit.release().await.unwrap();
    pause.await.unwrap().unwrap();
    // Paused: the permit is over, so is the work.
    let e = f.svc.add_context_item(f.project, item("a", "too late"), Some(id)).await.unwrap_err();
    assert!(matches!(e, CoreError::Paused(_)), "{e}");
    assert_eq!(items(&f).await.len(), before + 1);
    let names = f.sink.names();
    let requested = names.iter().position(|n| *n == "pause_requested").unwrap();
    let paused = names.iter().position(|n| *n == "project_paused").unwrap();
    assert!(requested < paused, "{names:?}");
    // Resumed: work needs no permit again.
    f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    f.svc.add_context_items(f.project, vec![item("b", "back to work")], None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_permit_is_drained_like_any_other_and_stops_blocking_when_it_expires() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let held = f.svc.take_permit(f.project, "remote-agent", Some(Duration::from_secs(60))).await.unwrap();
    assert!(!held.pause_requested);
    assert!(f.svc.take_permit(f.project, "x", Some(Duration::from_secs(0))).await.unwrap_err().is_invalid());
    assert!(f.svc.take_permit(f.project, "bad id!", None).await.unwrap_err().is_invalid());
    let svc = f.svc.clone();
    let project = f.project;
    let pause = tokio::spawn(async move { svc.pause(project, PauseRequest::default()).await });
    while !f.svc.gate_status(f.project).await.unwrap().pausing {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let renewed = f.svc.renew_permit(f.project, held.permit_id, Some(Duration::from_secs(60))).await.unwrap();
    assert!(renewed.pause_requested, "renewing tells the holder a pause began");
    assert!(renewed.expires_at > held.expires_at);
    assert!(matches!(f.svc.take_permit(f.project, "late", None).await, Err(CoreError::Pausing(_))));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pause.is_finished(), "the pause waits for the remote permit");
    f.svc.release_permit(f.project, held.permit_id).await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), pause).await.unwrap().unwrap().unwrap();
    assert!(out.interrupted_agents.is_empty());
    assert!(f.svc.release_permit(f.project, held.permit_id).await.unwrap_err().is_not_found());
    assert!(matches!(f.svc.renew_permit(f.project, held.permit_id, None).await, Err(CoreError::Paused(_))));
    f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();

    // A remote holder that vanishes blocks only until its permit expires (never reclaimed as a
    // dead process: it is not one of this machine's).
    f.svc.take_permit(f.project, "vanished", Some(Duration::from_secs(1))).await.unwrap();
    let out = f
        .svc
        .pause_with(
            f.project,
            PauseRequest::default(),
            PauseOptions { drain_timeout: Some(Duration::from_secs(60)) },
        )
        .await
        .unwrap();
    assert!(out.interrupted_agents.is_empty(), "{out:?}");
}

// ---------------------------------------------------------------- two processes, one gate

/// A child process holding run-gate permits: this test binary re-run (`gate_child`), driven by
/// commands on stdin, answering one line each on stdout.
struct GateChild {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl GateChild {
    fn spawn(db: &str, project: ProjectId, lease_ms: u64) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "gate_child", "--ignored", "--test-threads=1", "--nocapture"])
            .env("CF_GATE_DB", db)
            .env("CF_GATE_PROJECT", project.to_string())
            .env("CF_GATE_LEASE_MS", lease_ms.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness may print `test gate_child ... ` before the first answer.
                if let Some((_, answer)) = line.split_once("gate-child: ") {
                    let _ = tx.send(answer.to_owned());
                }
            }
        });
        Self { child, stdin, lines }
    }

    /// Sends a command; its one-line answer.
    fn ask(&mut self, command: &str) -> String {
        use std::io::Write;
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.lines.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no answer to {command}"))
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

#[tokio::test]
#[ignore = "run as a child process by the two-process gate tests"]
#[allow(clippy::print_stdout)]
async fn gate_child() {
    let Ok(db_path) = std::env::var("CF_GATE_DB") else { return };
    let project: ProjectId = std::env::var("CF_GATE_PROJECT").unwrap().parse().unwrap();
    let lease: u64 = std::env::var("CF_GATE_LEASE_MS").unwrap().parse().unwrap();
    let config = ServiceConfig { lease_ttl: Duration::from_millis(lease), ..ServiceConfig::default() };
    let svc = ProjectService::with_config(Db::open(&db_path).await.unwrap(), config);
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut held: Vec<codeframe_core::Permit> = Vec::new();
    while let Some(command) = commands.recv().await {
        let answer = match command.as_str() {
            "enter" => match svc.enter(project, "agent-a").await {
                Ok(p) => {
                    held.push(p);
                    "ok".to_owned()
                }
                Err(e) => format!("refused {}", e.code()),
            },
            "release" => match held.pop() {
                Some(p) => {
                    p.release().await.map_or_else(|e| format!("error {e}"), |()| "released".to_owned())
                }
                None => "nothing held".to_owned(),
            },
            // Whether the held permit learns of a pause begun elsewhere (within 5 s).
            "pause-requested" => match held.last() {
                Some(p) => {
                    let learned = tokio::time::timeout(Duration::from_secs(5), p.pause_requested()).await;
                    if learned.is_ok() { "yes" } else { "no" }.to_owned()
                }
                None => "nothing held".to_owned(),
            },
            other => format!("unknown command {other}"),
        };
        println!("gate-child: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_in_one_process_drains_and_closes_the_gate_of_another() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let mut a = GateChild::spawn(&f.db_url, f.project, 30_000);
    assert_eq!(a.ask("enter"), "ok");

    // Process B (this one) pauses: it waits for A's permit.
    let svc = f.svc.clone();
    let project = f.project;
    let pause = tokio::spawn(async move {
        svc.pause_with(
            project,
            reason("two processes"),
            PauseOptions { drain_timeout: Some(Duration::from_secs(30)) },
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!pause.is_finished(), "B waits for A's unit of work");
    assert!(f.svc.gate_status(f.project).await.unwrap().pausing);
    let answer = tokio::task::block_in_place(|| a.ask("pause-requested"));
    assert_eq!(answer, "yes", "A's permit learns that a pause began elsewhere");
    let answer = tokio::task::block_in_place(|| a.ask("enter"));
    assert_eq!(answer, "refused pausing", "no new work in A while B drains");

    let answer = tokio::task::block_in_place(|| a.ask("release"));
    assert_eq!(answer, "released");
    let out = tokio::time::timeout(Duration::from_secs(20), pause).await.unwrap().unwrap().unwrap();
    assert!(out.interrupted_agents.is_empty(), "A finished its unit: nobody was interrupted");
    let answer = tokio::task::block_in_place(|| a.ask("enter"));
    assert_eq!(answer, "refused paused", "A's next enter is refused while paused");

    // B resumes; A, not restarted, works again.
    f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
    let answer = tokio::task::block_in_place(|| a.ask("enter"));
    assert_eq!(answer, "ok");
    a.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_with_kill_9_stops_blocking_once_its_lease_expires() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let mut a = GateChild::spawn(&f.db_url, f.project, 2_000);
    assert_eq!(a.ask("enter"), "ok");
    a.kill();
    // B counts on lease expiry alone, as it must for a holder on another machine.
    let config = ServiceConfig { reclaim_from_dead_holders: false, ..ServiceConfig::default() };
    let b = ProjectService::with_config(f.db.clone(), config);
    assert_eq!(b.gate_status(f.project).await.unwrap().permits.len(), 1, "A's lease is still live");
    let out = b
        .pause_with(
            f.project,
            reason("after kill"),
            PauseOptions { drain_timeout: Some(Duration::from_secs(60)) },
        )
        .await
        .unwrap();
    assert!(out.interrupted_agents.is_empty(), "the expired lease no longer counts: {out:?}");
    assert_eq!(b.get(f.project).await.unwrap().status, ProjectStatus::Paused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_on_this_machine_is_reclaimed_without_waiting_for_its_lease() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let mut a = GateChild::spawn(&f.db_url, f.project, 600_000);
    assert_eq!(a.ask("enter"), "ok");
    a.kill();
    let out = f
        .svc
        .pause_with(
            f.project,
            PauseRequest::default(),
            PauseOptions { drain_timeout: Some(Duration::from_secs(300)) },
        )
        .await
        .unwrap();
    assert!(out.interrupted_agents.is_empty(), "{out:?}");
    // (A lease of ten minutes was not waited for: the test would have timed out.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_a_project_another_process_just_paused_is_refused() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let cp = f.svc.create_checkpoint(f.project, "before", "").await.unwrap();
    // Another process is committing a pause: it holds the write lock when the restore starts,
    // and commits while the restore waits for the lock.
    let mut other = f.db.begin().await.unwrap();
    let mut p = projects::get(&mut other, f.project).await.unwrap();
    p.status_before_pause = Some(p.status);
    p.status = ProjectStatus::Paused;
    p.paused_at = Some(T0);
    p.pause_checkpoint_id = Some(cp.id);
    projects::update(&mut other, &p, T0).await.unwrap();
    let svc = f.svc.clone();
    let project = f.project;
    let what = RestoreWhat { files: true, state: true, context: true, keep_new_items: false };
    let restore =
        tokio::spawn(async move { svc.restore_checkpoint(project, cp.id, what, RestoreMode::Apply).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!restore.is_finished(), "the restore waits for the write lock");
    other.commit().await.unwrap();
    let e = restore.await.unwrap().unwrap_err();
    assert!(matches!(e, CoreError::Conflict(ConflictKind::InvalidTransition { .. })), "{e}");
    let now = f.svc.get(f.project).await.unwrap();
    assert_eq!((now.status, now.pause_checkpoint_id), (ProjectStatus::Paused, Some(cp.id)), "still paused");
}

// ---------------------------------------------------------------- crash tests

/// Crash tests: a child process (this test binary, running `crash::crash_child`) pauses or
/// resumes with a fail point armed; it panics there, or sleeps there and is killed with
/// SIGKILL. The project is then reopened and must be fully paused with a checkpoint that
/// verifies, or exactly as before — and no context item is ever lost.
#[cfg(feature = "failpoints")]
mod crash {
    use super::*;
    use codeframe_testkit::restore_leftovers;
    use std::process::Stdio;

    #[tokio::test]
    #[ignore = "run as a child process by the crash tests"]
    async fn crash_child() {
        let Ok(db_path) = std::env::var("CF_CRASH_DB") else { return };
        codeframe_core::failpoints::configure_from_env().unwrap();
        let project: ProjectId = std::env::var("CF_CRASH_PROJECT").unwrap().parse().unwrap();
        let db = Db::open(&db_path).await.unwrap();
        let svc = ProjectService::with_defaults(db);
        let result: Result<(), CoreError> = match std::env::var("CF_CRASH_ACTION").as_deref() {
            Ok("resume") => svc.resume(project, ResumeOptions::default()).await.map(drop),
            Ok("resume_files") => {
                let options = ResumeOptions { restore_files: true, ..ResumeOptions::default() };
                svc.resume(project, options).await.map(drop)
            }
            Ok("restore") => {
                let checkpoint: i64 = std::env::var("CF_CRASH_CHECKPOINT").unwrap().parse().unwrap();
                let all = RestoreWhat { files: true, state: true, context: true, keep_new_items: false };
                svc.restore_checkpoint_with(project, CheckpointId(checkpoint), all, RestoreMode::Apply, true)
                    .await
                    .map(drop)
            }
            _ => svc.pause(project, reason("crash test")).await.map(drop),
        };
        // A child expected to fail says how; any other failure is a panic.
        match std::env::var("CF_CRASH_RESULT") {
            Ok(path) => std::fs::write(path, format!("{result:?}")).unwrap(),
            Err(_) => result.unwrap(),
        }
    }

    /// This test binary re-run as `crash_child`: `action` on the fixture's project, with the
    /// fail point `point` configured as `spec`, marking points reached in `marker`.
    fn crash_child_command(f: &Fx, action: &str, point: &str, spec: &str, marker: &Path) -> Command {
        let mut child = Command::new(std::env::current_exe().unwrap());
        child
            .args(["--exact", "crash::crash_child", "--ignored", "--test-threads=1"])
            .env("CF_CRASH_DB", &f.db_url)
            .env("CF_CRASH_PROJECT", f.project.to_string())
            .env("CF_CRASH_ACTION", action)
            .env("FAILPOINTS", format!("{point}={spec}"))
            .env("CODEFRAME_FAILPOINT_MARKER", marker)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        child
    }

    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Stop {
        Panic,
        Kill,
    }

    fn wait_for_marker(marker: &Path, point: &str, child: &mut std::process::Child) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if std::fs::read_to_string(marker).unwrap_or_default().lines().any(|l| l == point) {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("child exited ({status}) before reaching {point}");
            }
            assert!(std::time::Instant::now() < deadline, "child never reached {point}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn crash_at(point: &str, stop: Stop) {
        let f = fx().await;
        populate(&f, &["a", "b"], 2, 2, 3).await;
        set_status(&f, ProjectStatus::Active).await;
        let resume = point.starts_with("resume::");
        if resume {
            f.svc.pause(f.project, reason("before the crash")).await.unwrap();
        }
        let before_project = f.svc.get(f.project).await.unwrap();
        let before_items = items(&f).await;
        let before_log = f.svc.events_since(f.project, 0, 1000).await.unwrap().events;
        let marker = f.db_path.with_file_name("marker");
        let action = if stop == Stop::Panic { "panic" } else { "sleep(60000)" };
        let mut child =
            crash_child_command(&f, if resume { "resume" } else { "pause" }, point, action, &marker)
                .spawn()
                .unwrap();
        match stop {
            Stop::Panic => {
                let status = child.wait().unwrap();
                assert!(!status.success(), "{point}: the child should have panicked");
            }
            Stop::Kill => {
                wait_for_marker(&marker, point, &mut child);
                child.kill().unwrap();
                child.wait().unwrap();
            }
        }
        assert!(std::fs::read_to_string(&marker).unwrap().lines().any(|l| l == point), "{point} reached");

        // Reopen as a new process would.
        let db = Db::open(&f.db_url).await.unwrap();
        let svc = service(&db, &f.clock, Arc::new(CollectingSink::default()), None, None).await;
        svc.open(f.project).await.unwrap();
        let p = svc.get(f.project).await.unwrap();
        let now_items = context::list_for_project(&mut db.conn().await.unwrap(), f.project).await.unwrap();

        // No orphan ref: every ref has its checkpoint row, every row its ref.
        let rows = checkpoints::list(&mut db.conn().await.unwrap(), f.project).await.unwrap();
        let mut row_refs: Vec<String> = rows.iter().map(|c| checkpoint_ref(c.id)).collect();
        row_refs.sort();
        let mut store_refs = refs(&f.root);
        store_refs.sort();
        assert_eq!(store_refs, row_refs, "{point} {stop:?}: refs match rows after reconcile");

        // No context item lost: same ids and contents either way.
        let key = |v: &[ContextItem]| {
            v.iter().map(|i| (i.id.clone(), i.content.clone(), i.tier)).collect::<Vec<_>>()
        };
        assert_eq!(key(&now_items), key(&before_items), "{point} {stop:?}: no item lost");

        // The event log: a committed pause's events survive the crash (and are delivered from
        // the log after it); a rolled-back change left none.
        let log = svc.events_since(f.project, 0, 1000).await.unwrap().events;
        let committed = point == "pause::after_commit";
        if committed {
            let new: Vec<&str> = log[before_log.len()..].iter().map(|e| e.kind.name()).collect();
            assert_eq!(new.last(), Some(&"project_paused"), "{point} {stop:?}: {new:?}");
            assert!(new.contains(&"checkpoint_created") && new.contains(&"status_changed"), "{new:?}");
        } else {
            // Nothing of the rolled-back change; at most the gate's closing (and reopening).
            assert_eq!(log[..before_log.len()], before_log[..], "{point} {stop:?}");
            let new: Vec<&str> = log[before_log.len()..].iter().map(|e| e.kind.name()).collect();
            let gate_closed = !matches!(point, "pause::after_validate" | "resume::before_commit");
            match new.as_slice() {
                [] => {
                    assert!(!gate_closed, "{point} {stop:?}: pause_requested is committed before the drain")
                }
                ["pause_requested"] | ["pause_requested", "pause_cancelled"] => {
                    assert!(gate_closed, "{point}")
                }
                other => panic!("{point} {stop:?}: unexpected events {other:?}"),
            }
        }
        if committed {
            assert_eq!(p.status, ProjectStatus::Paused, "{point} {stop:?}");
            let cp = p.pause_checkpoint_id.unwrap();
            let paused = log.iter().rev().find(|e| e.kind.name() == "project_paused").unwrap();
            assert!(
                matches!(paused.kind, codeframe_models::EventKind::ProjectPaused { checkpoint_id, .. } if checkpoint_id == cp)
            );
            assert!(
                svc.checkpoints().verify(f.project, cp).await.unwrap().ok(),
                "{point} {stop:?}: checkpoint verifies"
            );
            assert!(now_items.iter().any(|i| i.archived_at.is_some()));
        } else {
            assert_eq!(p, before_project, "{point} {stop:?}: exactly as before");
            assert_eq!(now_items, before_items, "{point} {stop:?}: every item exactly as before");
        }
        // Either way the project can go on: pause (or resume) now succeeds.
        if p.status == ProjectStatus::Paused {
            svc.resume(f.project, ResumeOptions::default()).await.unwrap();
        } else {
            svc.pause(f.project, PauseRequest::default()).await.unwrap();
        }
    }

    /// A child process pausing, held at `point`; returns it and its marker file.
    fn pause_held_at(f: &Fx, point: &str) -> (std::process::Child, PathBuf) {
        let marker = f.db_path.with_file_name("held-marker");
        let mut child = crash_child_command(f, "pause", point, "sleep(1500)", &marker).spawn().unwrap();
        wait_for_marker(&marker, point, &mut child);
        (child, marker)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garbage_is_not_collected_while_another_process_writes_a_checkpoint() {
        let f = fx().await;
        populate(&f, &["a"], 1, 1, 1).await;
        set_status(&f, ProjectStatus::Active).await;
        let old = f.svc.create_checkpoint(f.project, "old", "").await.unwrap();
        f.svc.delete_checkpoint(f.project, old.id).await.unwrap();
        // The other process has written its snapshot's objects (reusing what the deleted
        // checkpoint had) and not yet its ref.
        let (mut child, _) = pause_held_at(&f, "pause::after_objects_written");
        let refused = f.svc.collect_garbage(f.project).await.unwrap_err();
        assert_eq!(refused.code(), "store_busy", "{refused}");
        assert!(child.wait().unwrap().success());
        let report = f.svc.collect_garbage(f.project).await.unwrap();
        assert_eq!(report.checkpoints_kept, 1);
        let p = f.svc.get(f.project).await.unwrap();
        let cp = p.pause_checkpoint_id.unwrap();
        assert!(
            f.svc.checkpoints().verify(f.project, cp).await.unwrap().ok(),
            "the pause checkpoint is whole"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_snapshot_is_written_without_the_write_lock() {
        let f = fx().await;
        populate(&f, &["a", "b"], 2, 2, 3).await;
        set_status(&f, ProjectStatus::Active).await;
        let count = items(&f).await.len();
        let (mut child, _) = pause_held_at(&f, "pause::after_objects_written");
        // The other process has read the state and written the snapshot: this process can
        // take the write lock at once (the pause would otherwise hold it for 1.5 s more).
        let asked = std::time::Instant::now();
        let tx = f.db.begin().await.unwrap();
        assert!(asked.elapsed() < Duration::from_millis(1000), "waited {:?} for the lock", asked.elapsed());
        tx.rollback().await.unwrap();
        assert!(child.wait().unwrap().success());
        let p = f.svc.get(f.project).await.unwrap();
        assert_eq!(p.status, ProjectStatus::Paused);
        let cp = f.svc.checkpoints().get(f.project, p.pause_checkpoint_id.unwrap()).await.unwrap();
        assert_eq!(cp.metadata.context_items_count, count as i64);
        assert!(f.svc.checkpoints().verify(f.project, cp.id).await.unwrap().ok());
        // The snapshot holds exactly what the pause committed: a resume finds nothing to put back.
        let paused_items = items(&f).await;
        assert_eq!(paused_items.iter().filter(|i| i.archived_at.is_some()).count(), 6);
        f.svc.resume(f.project, ResumeOptions::default()).await.unwrap();
        assert_eq!(items(&f).await, paused_items);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_made_while_the_snapshot_is_written_is_in_the_checkpoint() {
        let f = fx().await;
        populate(&f, &["a", "b"], 2, 2, 3).await;
        set_status(&f, ProjectStatus::Active).await;
        let count = items(&f).await.len();
        let (mut child, _) = pause_held_at(&f, "pause::after_objects_written");
        // This process writes around the gate (an embedding application with its own
        // connection) after the other one read the state for its snapshot.
        let mut late = items(&f).await.into_iter().find(|i| i.agent_id == "a").unwrap();
        late.id = "written-during-the-snapshot".into();
        late.content = "late news".into();
        context::insert_many(&mut f.db.conn().await.unwrap(), &[late]).await.unwrap();
        assert!(child.wait().unwrap().success(), "the pause goes on under the lock");
        let p = f.svc.get(f.project).await.unwrap();
        assert_eq!(p.status, ProjectStatus::Paused);
        let cp = f.svc.checkpoints().get(f.project, p.pause_checkpoint_id.unwrap()).await.unwrap();
        assert_eq!(cp.metadata.context_items_count, count as i64 + 1, "the snapshot has the late item");
        let chunk = git(
            &f.root,
            &[
                "--git-dir",
                ".codeframe/snapshots.git",
                "show",
                &format!("{}:state/context/000000.jsonl", checkpoint_ref(cp.id)),
            ],
        );
        assert!(chunk.contains("written-during-the-snapshot") && chunk.contains("late news"));
        assert!(f.svc.checkpoints().verify(f.project, cp.id).await.unwrap().ok());
    }

    macro_rules! crash_tests {
        ($($name:ident => $point:literal),+ $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                crash_at($point, Stop::Panic).await;
                crash_at($point, Stop::Kill).await;
            }
        )+};
    }

    crash_tests! {
        crash_after_validate => "pause::after_validate",
        crash_after_drain => "pause::after_drain",
        crash_after_state_read => "pause::after_state_read",
        crash_after_objects_written => "pause::after_objects_written",
        crash_after_flash_save => "pause::after_flash_save",
        crash_after_checkpoint_row => "pause::after_checkpoint_row",
        crash_after_ref_written => "pause::after_ref_written",
        crash_before_commit => "pause::before_commit",
        crash_after_commit => "pause::after_commit",
        crash_before_resume_commit => "resume::before_commit",
    }

    /// Work since the checkpoint: an edit, a deletion, two new files (one in new directories).
    /// Restoring it back takes 5 renames: 2 removals, the edit (aside, in), the deletion (in).
    fn diverge(root: &Path) {
        std::fs::write(root.join("src/main.rs"), "fn main() { todo!() }\n").unwrap();
        std::fs::remove_file(root.join("README.md")).unwrap();
        std::fs::write(root.join("src/new.rs"), "pub fn new() {}\n").unwrap();
        std::fs::create_dir_all(root.join("extra/deep")).unwrap();
        std::fs::write(root.join("extra/deep/x.txt"), "x\n").unwrap();
    }

    fn wait_for_marker_count(marker: &Path, point: &str, n: usize, child: &mut std::process::Child) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let seen =
                std::fs::read_to_string(marker).unwrap_or_default().lines().filter(|l| *l == point).count();
            if seen >= n {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("child exited ({status}) having reached {point} {seen} times, not {n}");
            }
            assert!(std::time::Instant::now() < deadline, "child never reached {point} {n} times");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `action` (`resume_files`: resume restoring files; `restore`: restore a checkpoint's
    /// files, state and context) in a child process with `point` configured as `spec`. A
    /// `sleep` spec is killed (-9) once the point was reached `reached` times; a `return` spec
    /// lets the child fail. Then the project is opened as a new process would, and its files
    /// must be the checkpoint's if `committed`, else exactly as before; rows likewise.
    async fn file_crash_at(point: &str, action: &str, spec: &str, reached: usize, committed: bool) {
        let f = fx().await;
        populate(&f, &["a"], 2, 2, 2).await;
        set_status(&f, ProjectStatus::Active).await;
        let checkpoint = if action == "resume_files" {
            f.svc.pause(f.project, reason("before the crash")).await.unwrap().checkpoint_id
        } else {
            f.svc.create_checkpoint(f.project, "base", "").await.unwrap().id
        };
        let checkpoint_tree = tree_files(&f.root);
        diverge(&f.root);
        let before_tree = tree_files(&f.root);
        let before_project = f.svc.get(f.project).await.unwrap();
        let before_items = items(&f).await;
        let marker = f.db_path.with_file_name("marker");
        let result_file = f.db_path.with_file_name("result");
        let killed = spec.contains("sleep");
        let mut child = crash_child_command(&f, action, point, spec, &marker);
        child.env("CF_CRASH_CHECKPOINT", checkpoint.to_string());
        if !killed {
            child.env("CF_CRASH_RESULT", &result_file);
        }
        let mut child = child.spawn().unwrap();
        if killed {
            wait_for_marker_count(&marker, point, reached, &mut child);
            child.kill().unwrap();
            child.wait().unwrap();
        } else {
            assert!(child.wait().unwrap().success());
            let result = std::fs::read_to_string(&result_file).unwrap();
            assert!(result.starts_with("Err(") && result.contains(point), "{point}: {result}");
        }

        // Open as a new process would.
        let db = Db::open(&f.db_url).await.unwrap();
        let svc = service(&db, &f.clock, Arc::new(CollectingSink::default()), None, None).await;
        let opened = svc.open(f.project).await.unwrap();
        let settled = opened.reconcile.interrupted_restore;
        if killed {
            assert_eq!(settled.map(|s| s.committed), Some(committed), "{point} {action}: settled on open");
        } else {
            assert_eq!(settled, None, "{point} {action}: undone by the failing process itself");
        }
        assert_eq!(restore_leftovers(&f.root), Vec::<String>::new(), "{point} {action}: nothing left");
        let p = svc.get(f.project).await.unwrap();
        if committed {
            assert_eq!(tree_files(&f.root), checkpoint_tree, "{point} {action}: the restore is whole");
            if action == "resume_files" {
                assert_ne!(p.status, ProjectStatus::Paused, "{point}: resumed");
            }
        } else {
            assert_eq!(tree_files(&f.root), before_tree, "{point} {action}: every file as before");
            assert!(!f.root.join("README.md").exists(), "{point} {action}: no restored file left");
            assert_eq!(p, before_project, "{point} {action}: the project as before");
            let now_items =
                context::list_for_project(&mut db.conn().await.unwrap(), f.project).await.unwrap();
            assert_eq!(now_items, before_items, "{point} {action}: every item as before");
            // And the project goes on: the same operation now succeeds, whole.
            if action == "resume_files" {
                let options = ResumeOptions { restore_files: true, ..ResumeOptions::default() };
                svc.resume(f.project, options).await.unwrap();
            } else {
                let all = RestoreWhat { files: true, state: true, context: true, keep_new_items: false };
                svc.restore_checkpoint_with(f.project, checkpoint, all, RestoreMode::Apply, true)
                    .await
                    .unwrap();
            }
            assert_eq!(tree_files(&f.root), checkpoint_tree, "{point} {action}: restored on the next try");
            assert_eq!(restore_leftovers(&f.root), Vec::<String>::new());
        }
    }

    macro_rules! file_crash_tests {
        ($($name:ident => ($point:literal, $action:literal, $spec:literal, $reached:literal, $committed:literal)),+ $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                file_crash_at($point, $action, $spec, $reached, $committed).await;
            }
        )+};
    }

    file_crash_tests! {
        resume_files_killed_during_the_renames => ("files::during_swap", "resume_files", "2*off->sleep(60000)", 3, false),
        resume_files_killed_after_the_renames => ("files::after_swap", "resume_files", "sleep(60000)", 1, false),
        resume_files_killed_before_its_commit => ("resume::before_commit", "resume_files", "sleep(60000)", 1, false),
        resume_files_killed_after_its_commit => ("resume::after_commit", "resume_files", "sleep(60000)", 1, true),
        resume_files_failing_on_its_last_rename => ("files::during_swap", "resume_files", "4*off->return", 5, false),
        restore_killed_during_the_renames => ("files::during_swap", "restore", "1*off->sleep(60000)", 2, false),
        restore_killed_after_its_commit => ("restore::after_commit", "restore", "sleep(60000)", 1, true),
        restore_failing_after_the_renames => ("files::after_swap", "restore", "return", 1, false),
    }

    #[test]
    fn every_file_restore_fail_point_has_a_crash_test() {
        let source = include_str!("core.rs");
        for point in codeframe_core::failpoints::FILE_RESTORE {
            assert!(source.contains(&format!("=> (\"{point}\"")), "{point} has no crash test");
        }
    }

    #[test]
    fn every_fail_point_has_a_crash_test() {
        let source = include_str!("core.rs");
        for point in codeframe_core::failpoints::ALL {
            assert!(source.contains(&format!("=> \"{point}\"")), "{point} has no crash test");
        }
    }
}

// ---------------------------------------------------------------- undoable restore

async fn everything(f: &Fx) -> (Vec<(String, Vec<u8>)>, Vec<ContextItem>, ProjectStatus) {
    (tree_files(&f.root), items(f).await, f.svc.get(f.project).await.unwrap().status)
}

#[tokio::test]
async fn a_restore_then_undo_gives_back_files_rows_and_context_exactly_and_undo_again_redoes() {
    let f = fx().await;
    populate(&f, &["a"], 2, 2, 2).await;
    set_status(&f, ProjectStatus::Active).await;
    let base = f.svc.create_checkpoint(f.project, "base", "").await.unwrap();
    // Work after the checkpoint: an edit, a new file, a deleted file, context touched, a status.
    std::fs::write(f.root.join("src/main.rs"), "fn main() { println!(\"later\"); }\n").unwrap();
    std::fs::write(f.root.join("src/new.rs"), [0u8, 159, 146, 150]).unwrap();
    std::fs::remove_file(f.root.join("README.md")).unwrap();
    let first = items(&f).await[0].id.clone();
    context::touch(&mut f.db.conn().await.unwrap(), &first, T0 + TimeDuration::hours(5)).await.unwrap();
    set_status(&f, ProjectStatus::Running).await;
    let before_restore = everything(&f).await;

    let all = RestoreWhat { files: true, state: true, context: true, keep_new_items: false };
    let refused = f.svc.restore_checkpoint(f.project, base.id, all, RestoreMode::Apply).await.unwrap_err();
    match &refused {
        CoreError::Conflict(ConflictKind::UnsavedChanges { paths }) => {
            assert_eq!(paths, &["README.md", "src/main.rs", "src/new.rs"]);
        }
        other => panic!("{other}"),
    }
    assert_eq!(everything(&f).await, before_restore, "a refused restore changes nothing");
    let r = f.svc.restore_checkpoint_with(f.project, base.id, all, RestoreMode::Apply, true).await.unwrap();
    let safety = r.safety_checkpoint_id.expect("a checkpoint made first");
    let restored = everything(&f).await;
    assert_ne!(restored, before_restore, "the restore changed things");
    assert_eq!(
        f.svc.checkpoint(f.project, safety).await.unwrap().trigger,
        codeframe_models::CheckpointTrigger::BeforeRestore
    );

    let undo = f.svc.undo_restore(f.project).await.unwrap();
    assert_eq!(undo.checkpoint_id, safety);
    assert_eq!(everything(&f).await, before_restore, "files, context and status as before the restore");

    // The undo was a restore: undoing it again brings the restored state back.
    f.svc.undo_restore(f.project).await.unwrap();
    assert_eq!(everything(&f).await, restored);
}

#[tokio::test]
async fn a_refused_restore_leaves_no_checkpoint_behind_and_nothing_to_undo() {
    let f = fx().await;
    set_status(&f, ProjectStatus::Active).await;
    let all = RestoreWhat { files: true, state: true, context: true, keep_new_items: false };
    assert!(f.svc.restore_checkpoint(f.project, CheckpointId(999), all, RestoreMode::Apply).await.is_err());
    assert!(f.svc.list_checkpoints(f.project).await.unwrap().is_empty());
    assert!(refs(&f.root).is_empty(), "no ref of the rolled-back safety checkpoint");
    assert!(f.svc.undo_restore(f.project).await.unwrap_err().is_not_found());
}

#[test]
fn the_examples_need_codeframe_core_alone() {
    // What an application writes: everything from codeframe-core (and std, and its runtime).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().filter(|l| l.starts_with("use ")) {
            let root = line.trim_start_matches("use ").split("::").next().unwrap();
            assert!(["std", "codeframe_core", "tokio"].contains(&root), "{}: {line}", path.display());
        }
        assert!(
            !text.contains("codeframe_models::") && !text.contains("codeframe_persistence::"),
            "{}",
            path.display()
        );
        seen += 1;
    }
    assert!(seen >= 3);
}

// ---------------------------------------------------------------- several instances (PostgreSQL)

/// Collects `tail`'s events until one of `kind` arrives, for at most `within`.
async fn wait_for_event(tail: &mut codeframe_core::EventTail, kind: &str, within: Duration) -> ProjectEvent {
    tokio::time::timeout(within, async {
        loop {
            for e in tail.next_batch().await.unwrap() {
                if e.kind.name() == kind {
                    return e;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind} event within {within:?}"))
}

/// On PostgreSQL an instance's tails hear another instance's events when they commit, not at
/// their next poll (here a minute away); a listener whose connection is killed reconnects, and
/// neither an event committed while it was down nor one committed after is missed.
#[tokio::test]
async fn postgres_tails_hear_other_instances_at_once_and_survive_a_lost_listener() {
    if !codeframe_testkit::database::is_postgres() {
        return; // On SQLite, processes on one machine find each other's events by polling.
    }
    let f = fx().await;
    let other = ProjectService::with_config(
        Db::open(&f.db_url).await.unwrap(),
        ServiceConfig { poll_interval: Duration::from_secs(60), ..ServiceConfig::default() },
    );
    let mut tail = other.tail_events(Some(f.project), None).await.unwrap();

    f.svc.add_agent(f.project, "a1", "worker", None, "worker").await.unwrap();
    let heard = wait_for_event(&mut tail, "agent_added", Duration::from_secs(5)).await;
    assert_eq!(heard.project_id, f.project);

    // Kill the listening connection (what a failover or an idle-connection reaper does).
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&f.db_url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed >= 1, "a listening connection existed");
    f.svc.add_agent(f.project, "a2", "worker", None, "worker").await.unwrap();
    let e = wait_for_event(&mut tail, "agent_added", Duration::from_secs(10)).await;
    assert!(e.seq > heard.seq);
    tokio::time::sleep(Duration::from_millis(300)).await;
    f.svc.add_agent(f.project, "a3", "worker", None, "worker").await.unwrap();
    let last = wait_for_event(&mut tail, "agent_added", Duration::from_secs(10)).await;
    assert!(last.seq > e.seq, "the event after the reconnection arrives too");
}
