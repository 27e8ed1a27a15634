//! Checkpoint tests on real git repositories (made with stock git) and plain directories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use codeframe_models::{CheckpointId, ProjectId};
use codeframe_testkit::{files_under, git, restore_leftovers, tree_files};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use codeframe_checkpoint::{
    CheckpointError, CheckpointManager, CheckpointSpec, FileChange, GitCheckpointManager, RestoreMode,
    RestoreWhat, checkpoint_ref,
};
use codeframe_models::{
    CheckpointTrigger, ContextItem, ItemType, NewProject, NewTask, ProjectStatus, TaskStatus, Tier,
};
use codeframe_persistence::{Db, agents, checkpoints, context, file_restores, projects, tasks};
use tempfile::TempDir;
use time::{OffsetDateTime, macros::datetime};

const T0: OffsetDateTime = datetime!(2026-06-01 10:00 UTC);

struct Fx {
    _tmp: TempDir,
    root: PathBuf,
    db: Db,
    cm: GitCheckpointManager,
    project: ProjectId,
}

fn store_git(root: &Path, args: &[&str]) -> String {
    let mut full = vec!["--git-dir", ".codeframe/snapshots.git"];
    full.extend_from_slice(args);
    git(root, &full)
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

async fn add_project(db: &Db, name: &str, root: &Path) -> ProjectId {
    let mut tx = db.begin().await.unwrap();
    let p = projects::insert(
        &mut tx,
        &NewProject {
            name: name.into(),
            description: String::new(),
            root_path: root.to_str().unwrap().into(),
            owner_id: None,
        },
        T0,
    )
    .await
    .unwrap();
    let agent = format!("{name}-agent");
    agents::insert(&mut tx, &agent, "worker", None, T0).await.unwrap();
    agents::assign(&mut tx, p.id, &agent, "worker", T0).await.unwrap();
    let items: Vec<ContextItem> = (0..5)
        .map(|n| ContextItem {
            id: format!("{name}-item-{n}"),
            project_id: p.id,
            agent_id: agent.clone(),
            item_type: ItemType::Code,
            content: format!("fn f{n}() {{}} // «{name}»"),
            token_count: 7,
            importance_score: 0.5,
            tier: [Tier::Hot, Tier::Warm, Tier::Cold][n % 3],
            access_count: n as i64,
            created_at: T0,
            last_accessed: T0,
            archived_at: None,
            archived_by_flash_save: None,
        })
        .collect();
    context::insert_many(&mut tx, &items).await.unwrap();
    let t = tasks::insert(
        &mut tx,
        &NewTask { project_id: p.id, title: "first".into(), description: String::new() },
        T0,
    )
    .await
    .unwrap();
    tasks::set_status(&mut tx, t.id, TaskStatus::Completed, T0).await.unwrap();
    tx.commit().await.unwrap();
    p.id
}

/// A project whose root is a git repository with a commit, a branch, a stash, an
/// untracked file, an ignored file and a staged change.
async fn fx_git() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("proj");
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    write(&root, ".gitignore", b"target/\n*.log\n");
    write(&root, "src/lib.rs", b"pub fn a() {}\n");
    write(&root, "README.md", b"# proj\n");
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-qm", "initial"]);
    git(&root, &["branch", "feature"]);
    write(&root, "README.md", b"# proj\nstashed change\n");
    git(&root, &["stash", "-q"]);
    write(&root, "src/lib.rs", b"pub fn a() {}\npub fn b() {}\n");
    git(&root, &["add", "src/lib.rs"]);
    write(&root, "notes.txt", b"untracked notes\n");
    write(&root, "target/debug/out.bin", b"build output");
    write(&root, "run.log", b"log line\n");
    fx_at(tmp, root).await
}

async fn fx_plain() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("plain");
    std::fs::create_dir_all(&root).unwrap();
    write(&root, "a.txt", b"alpha\n");
    write(&root, "dir/b.txt", b"beta\n");
    fx_at(tmp, root).await
}

async fn fx_at(tmp: TempDir, root: PathBuf) -> Fx {
    let db = Db::open(&codeframe_testkit::database::location(tmp.path())).await.unwrap();
    let project = add_project(&db, "p", &root).await;
    let cm = GitCheckpointManager::new(db.clone());
    Fx { _tmp: tmp, root, db, cm, project }
}

fn spec(name: &str) -> CheckpointSpec {
    CheckpointSpec {
        name: name.into(),
        description: "test".into(),
        trigger: CheckpointTrigger::Manual,
        pause_reason: None,
    }
}

async fn create(f: &Fx, name: &str) -> codeframe_models::Checkpoint {
    let id = f.cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let cp = f.cm.create(&mut tx, f.project, id, spec(name)).await.unwrap();
    tx.commit().await.unwrap();
    cp
}

fn all(what: bool) -> RestoreWhat {
    RestoreWhat { files: what, state: what, context: what, keep_new_items: false }
}

fn repo_fingerprint(root: &Path) -> (String, String, Vec<u8>, String, String) {
    (
        git(root, &["rev-parse", "HEAD"]),
        git(root, &["for-each-ref"]),
        std::fs::read(root.join(".git/index")).unwrap(),
        git(root, &["stash", "list"]),
        git(root, &["status", "--porcelain=v2", "--untracked-files=all"]),
    )
}

/// Every object in the project's store, loose or packed.
fn store_objects(root: &Path) -> usize {
    let counts = store_git(root, &["count-objects", "-v"]);
    let field = |name: &str| -> usize {
        counts.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().parse().unwrap()).unwrap()
    };
    field("count:") + field("in-pack:")
}

/// The store's pack files (snapshots write one per checkpoint).
fn packs(root: &Path) -> Vec<PathBuf> {
    let dir = root.join(".codeframe/snapshots.git/objects/pack");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|e| e == "pack"));
    v.sort();
    v
}

/// Turns every packed object of the store into a loose one, so a test can tamper with a single
/// object's file the way code in the project could.
fn unpack_store(root: &Path) {
    for pack in packs(root) {
        let moved = root.parent().unwrap().join(pack.file_name().unwrap());
        std::fs::rename(&pack, &moved).unwrap();
        std::fs::remove_file(pack.with_extension("idx")).unwrap();
        let out = Command::new("git")
            .args(["--git-dir", ".codeframe/snapshots.git", "unpack-objects", "-q"])
            .current_dir(root)
            .stdin(std::fs::File::open(&moved).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

// ---------------------------------------------------------------- create

#[tokio::test]
async fn create_leaves_the_users_repository_untouched() {
    let f = fx_git().await;
    let before = repo_fingerprint(&f.root);
    let cp = create(&f, "first").await;
    let after = repo_fingerprint(&f.root);
    assert_eq!(before, after, "HEAD, branches, index bytes, stash and status are unchanged");
    assert_eq!(cp.commit_id.as_ref().map(String::len), Some(40));
    assert!(git(&f.root, &["log", "--all", "--oneline"]).lines().all(|l| !l.contains("Checkpoint")));
}

#[tokio::test]
async fn the_store_passes_git_fsck_and_git_show_reads_meta_json() {
    let f = fx_git().await;
    let cp = create(&f, "fsck me").await;
    store_git(&f.root, &["fsck", "--strict", "--no-dangling"]);
    let meta = store_git(&f.root, &["show", &format!("{}:meta.json", checkpoint_ref(cp.id))]);
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["project_id"], f.project.get());
    assert_eq!(meta["tasks_completed"], 1);
    assert_eq!(meta["tasks_total"], 1);
    assert_eq!(meta["last_task_completed"], "first");
    assert_eq!(meta["context_items_count"], 5);
    assert_eq!(meta["agents_active"], serde_json::json!(["p-agent"]));
    let keys: Vec<_> = meta.as_object().unwrap().keys().cloned().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    // State is readable too, context as JSON lines sorted by id.
    let ctx = store_git(&f.root, &["show", &format!("{}:state/context/000000.jsonl", checkpoint_ref(cp.id))]);
    assert_eq!(ctx.lines().count(), 5);
    assert!(ctx.lines().next().unwrap().starts_with("{\"access_count\":0,\"agent_id\":\"p-agent\""));
}

#[tokio::test]
async fn ignored_files_are_absent_and_untracked_files_present() {
    let f = fx_git().await;
    let cp = create(&f, "files").await;
    let listing = store_git(&f.root, &["ls-tree", "-r", "--name-only", &checkpoint_ref(cp.id)]);
    let files: Vec<&str> = listing.lines().filter_map(|l| l.strip_prefix("files/")).collect();
    assert_eq!(files, [".gitignore", "README.md", "notes.txt", "src/lib.rs"]);
    // The staged content (not HEAD's) is what the working tree holds.
    let lib = store_git(&f.root, &["show", &format!("{}:files/src/lib.rs", checkpoint_ref(cp.id))]);
    assert_eq!(lib, "pub fn a() {}\npub fn b() {}\n");
}

#[tokio::test]
async fn a_plain_directory_can_be_checkpointed() {
    let f = fx_plain().await;
    write(&f.root, ".gitignore", b"*.tmp\n");
    write(&f.root, "x.tmp", b"ignored even without git");
    let cp = create(&f, "plain").await;
    let listing = store_git(&f.root, &["ls-tree", "-r", "--name-only", &checkpoint_ref(cp.id)]);
    let files: Vec<&str> = listing.lines().filter_map(|l| l.strip_prefix("files/")).collect();
    assert_eq!(files, [".gitignore", "a.txt", "dir/b.txt"]);
    assert!(f.cm.verify(f.project, cp.id).await.unwrap().ok());
}

#[tokio::test]
async fn identical_state_gives_identical_blobs_and_unchanged_checkpoints_cost_almost_nothing() {
    let f = fx_plain().await;
    let a = create(&f, "one").await;
    let objects_after_one = store_objects(&f.root);
    let mut last = a.clone();
    for n in 0..9 {
        last = create(&f, &format!("again {n}")).await;
    }
    let tree = |id| store_git(&f.root, &["rev-parse", &format!("{}^{{tree}}", checkpoint_ref(id))]);
    let meta_a = store_git(&f.root, &["rev-parse", &format!("{}:state", checkpoint_ref(a.id))]);
    let meta_b = store_git(&f.root, &["rev-parse", &format!("{}:state", checkpoint_ref(last.id))]);
    assert_eq!(meta_a, meta_b, "the same state makes the same state/ tree");
    assert_eq!(tree(a.id), tree(last.id), "the same files and state make the same root tree");
    // Only one new object (the commit) per unchanged checkpoint.
    assert_eq!(store_objects(&f.root), objects_after_one + 9);
}

#[tokio::test]
async fn checkpoint_names_and_descriptions_are_validated() {
    let f = fx_plain().await;
    let id = f.cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let e = f.cm.create(&mut tx, f.project, id, spec(&"n".repeat(101))).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Invalid(_)), "{e}");
    let e = f.cm.create(&mut tx, f.project, id, spec("  ")).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Invalid(_)));
    let e = f.cm.create(&mut tx, ProjectId(4242), id, spec("x")).await.unwrap_err();
    assert!(matches!(e, CheckpointError::UnknownProject(ProjectId(4242))));
    drop(tx);
    assert!(f.cm.list(f.project).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_root_is_a_typed_error() {
    let f = fx_plain().await;
    std::fs::remove_dir_all(&f.root).unwrap();
    let id = f.cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    assert!(matches!(f.cm.create(&mut tx, f.project, id, spec("x")).await, Err(CheckpointError::BadRoot(_))));
}

// ---------------------------------------------------------------- transactions

#[tokio::test]
async fn rollback_plus_discard_leaves_no_ref_and_no_row() {
    let f = fx_plain().await;
    let id = f.cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let cp = f.cm.create(&mut tx, f.project, id, spec("doomed")).await.unwrap();
    assert!(
        !store_git(&f.root, &["for-each-ref", "refs/codeframe/"]).is_empty(),
        "the ref is written before commit"
    );
    tx.rollback().await.unwrap();
    f.cm.discard(f.project, cp.id).await.unwrap();
    assert_eq!(store_git(&f.root, &["for-each-ref", "refs/codeframe/"]), "");
    assert!(f.cm.list(f.project).await.unwrap().is_empty());
    assert!(matches!(f.cm.get(f.project, cp.id).await, Err(CheckpointError::NotFound(_))));
    // Discarding twice is harmless.
    f.cm.discard(f.project, cp.id).await.unwrap();
}

#[tokio::test]
async fn reconcile_removes_orphan_refs_and_reports_missing_commits() {
    let f = fx_plain().await;
    let kept = create(&f, "kept").await;
    // A row whose commit vanished (e.g. a store restored from an old backup).
    let id = f.cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let broken = f.cm.create(&mut tx, f.project, id, spec("broken")).await.unwrap();
    checkpoints::set_commit(&mut tx, broken.id, "0123456789012345678901234567890123456789").await.unwrap();
    tx.commit().await.unwrap();
    // A crash between writing the ref and committing leaves an orphan ref.
    let id = f.cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let orphan = f.cm.create(&mut tx, f.project, id, spec("orphan")).await.unwrap();
    drop(tx);

    let report = f.cm.reconcile(f.project).await.unwrap();
    assert_eq!(report.removed_refs, vec![orphan.id]);
    assert_eq!(report.missing_commits, vec![broken.id]);
    let refs = store_git(&f.root, &["for-each-ref", "--format=%(refname)", "refs/codeframe/"]);
    assert!(refs.contains(&checkpoint_ref(kept.id)));
    assert!(!refs.contains(&checkpoint_ref(orphan.id)));
    assert!(!f.cm.verify(f.project, broken.id).await.unwrap().ok());
    // A second pass finds nothing more to remove.
    assert!(f.cm.reconcile(f.project).await.unwrap().removed_refs.is_empty());
}

#[tokio::test]
async fn a_rolled_back_id_is_never_reused_and_a_committed_ref_is_never_overwritten() {
    let f = fx_plain().await;
    let id = f.cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let orphan = f.cm.create(&mut tx, f.project, id, spec("orphan")).await.unwrap();
    drop(tx);
    // The rolled-back id stays burnt: the next checkpoint gets a fresh one, and the orphan
    // ref (left for reconciliation) names nothing that exists.
    let fresh = create(&f, "fresh").await;
    assert!(fresh.id > orphan.id, "{} after {}", fresh.id, orphan.id);
    assert!(f.cm.verify(f.project, fresh.id).await.unwrap().ok());
    assert_eq!(f.cm.reconcile(f.project).await.unwrap().removed_refs, vec![orphan.id]);
    // A late writer for a committed checkpoint's id cannot move its ref.
    let before = store_git(&f.root, &["rev-parse", &checkpoint_ref(fresh.id)]);
    std::fs::write(f.root.join("late.txt"), "late").unwrap();
    let mut tx = f.db.begin().await.unwrap();
    checkpoints::delete(&mut tx, fresh.id).await.unwrap(); // so the row insert itself succeeds
    let e = f.cm.create(&mut tx, f.project, fresh.id, spec("late")).await.unwrap_err();
    drop(tx);
    assert!(e.to_string().contains(&checkpoint_ref(fresh.id)), "{e}");
    assert_eq!(store_git(&f.root, &["rev-parse", &checkpoint_ref(fresh.id)]), before);
    assert!(f.cm.verify(f.project, fresh.id).await.unwrap().ok());
}

// ---------------------------------------------------------------- list, get, delete, verify

#[tokio::test]
async fn list_get_and_delete() {
    let f = fx_plain().await;
    let a = create(&f, "a").await;
    let b = create(&f, "b").await;
    let listed: Vec<_> = f.cm.list(f.project).await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(listed, [b.id, a.id], "newest first");
    assert_eq!(f.cm.get(f.project, a.id).await.unwrap(), a);
    f.cm.delete(f.project, a.id).await.unwrap();
    assert!(matches!(f.cm.get(f.project, a.id).await, Err(CheckpointError::NotFound(_))));
    let refs = store_git(&f.root, &["for-each-ref", "--format=%(refname)", "refs/codeframe/"]);
    assert_eq!(refs.trim(), checkpoint_ref(b.id));
    assert!(matches!(f.cm.delete(f.project, a.id).await, Err(CheckpointError::NotFound(_))));
}

#[tokio::test]
async fn the_pause_checkpoint_of_a_paused_project_cannot_be_deleted() {
    let f = fx_plain().await;
    let cp = create(&f, "pause").await;
    let mut c = f.db.conn().await.unwrap();
    let mut p = projects::get(&mut c, f.project).await.unwrap();
    p.status = ProjectStatus::Paused;
    p.paused_at = Some(T0);
    p.pause_checkpoint_id = Some(cp.id);
    projects::update(&mut c, &p, T0).await.unwrap();
    assert!(matches!(f.cm.delete(f.project, cp.id).await, Err(CheckpointError::InUse(_))));
    assert!(f.cm.get(f.project, cp.id).await.is_ok());
}

#[tokio::test]
async fn verify_detects_a_missing_object() {
    let f = fx_plain().await;
    let cp = create(&f, "v").await;
    let ok = f.cm.verify(f.project, cp.id).await.unwrap();
    assert!(ok.ok(), "{:?}", ok.problems);
    assert!(ok.objects_checked >= 6);
    // Remove the blob of a.txt from the store.
    let oid = store_git(&f.root, &["rev-parse", &format!("{}:files/a.txt", checkpoint_ref(cp.id))]);
    let oid = oid.trim();
    unpack_store(&f.root);
    std::fs::remove_file(f.root.join(format!(
        ".codeframe/snapshots.git/objects/{}/{}",
        &oid[..2],
        &oid[2..]
    )))
    .unwrap();
    let bad = f.cm.verify(f.project, cp.id).await.unwrap();
    assert!(!bad.ok());
    assert!(bad.problems.iter().any(|p| p.contains(oid) && p.contains("a.txt")), "{:?}", bad.problems);
}

#[tokio::test]
async fn checkpoints_of_another_project_are_not_found() {
    let f = fx_plain().await;
    let other_root = f.root.parent().unwrap().join("other");
    std::fs::create_dir_all(&other_root).unwrap();
    let other = add_project(&f.db, "other", &other_root).await;
    let cp = create(&f, "mine").await;
    assert!(matches!(f.cm.get(other, cp.id).await, Err(CheckpointError::NotFound(_))));
    assert!(matches!(
        f.cm.restore(other, cp.id, all(true), RestoreMode::Apply).await,
        Err(CheckpointError::NotFound(_))
    ));
}

// ---------------------------------------------------------------- diff and restore

#[tokio::test]
async fn diff_lists_added_modified_and_deleted_files_with_unified_text() {
    let f = fx_plain().await;
    let cp = create(&f, "base").await;
    write(&f.root, "a.txt", b"alpha\nchanged\n");
    std::fs::remove_file(f.root.join("dir/b.txt")).unwrap();
    write(&f.root, "new.txt", b"brand new\n");
    let d = f.cm.diff(f.project, cp.id, true).await.unwrap();
    let summary: Vec<_> = d.files.iter().map(|e| (e.path.as_str(), e.change)).collect();
    assert_eq!(
        summary,
        [("a.txt", FileChange::Modified), ("dir/b.txt", FileChange::Deleted), ("new.txt", FileChange::Added)]
    );
    let a = d.files[0].unified.as_deref().unwrap();
    assert!(a.contains("--- a/a.txt") && a.contains("+changed"), "{a}");
    assert!(f.cm.diff(f.project, cp.id, false).await.unwrap().files.iter().all(|e| e.unified.is_none()));
}

#[tokio::test]
async fn preview_changes_nothing() {
    let f = fx_plain().await;
    let cp = create(&f, "base").await;
    write(&f.root, "a.txt", b"edited\n");
    let items_before = context::list_for_project(&mut f.db.conn().await.unwrap(), f.project).await.unwrap();
    let r = f.cm.restore(f.project, cp.id, all(true), RestoreMode::Preview).await.unwrap();
    assert!(!r.applied);
    assert_eq!(r.diff.paths(), ["a.txt"]);
    assert_eq!(std::fs::read(f.root.join("a.txt")).unwrap(), b"edited\n");
    assert_eq!(
        context::list_for_project(&mut f.db.conn().await.unwrap(), f.project).await.unwrap(),
        items_before
    );
}

#[tokio::test]
async fn binary_empty_executable_symlink_and_non_utf8_files_round_trip() {
    let f = fx_plain().await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    write(&f.root, "bin/blob.dat", &binary);
    write(&f.root, "empty", b"");
    write(&f.root, "run.sh", b"#!/bin/sh\necho hi\n");
    std::fs::set_permissions(f.root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("a.txt", f.root.join("link-to-a")).unwrap();
    std::os::unix::fs::symlink("../outside/target", f.root.join("dangling")).unwrap();
    let weird = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.txt");
    std::fs::write(f.root.join(weird), b"latin-1 name").unwrap();
    let cp = create(&f, "rich").await;

    // Modify everything.
    write(&f.root, "bin/blob.dat", b"clobbered");
    std::fs::remove_file(f.root.join("empty")).unwrap();
    std::fs::set_permissions(f.root.join("run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::remove_file(f.root.join("link-to-a")).unwrap();
    write(&f.root, "link-to-a", b"now a file");
    std::fs::remove_file(f.root.join(weird)).unwrap();
    write(&f.root, "extra/new.txt", b"added after");

    let r =
        f.cm.restore(f.project, cp.id, RestoreWhat { files: true, ..Default::default() }, RestoreMode::Apply)
            .await
            .unwrap();
    assert!(r.applied);
    assert_eq!(r.files_removed, 1);
    assert_eq!(std::fs::read(f.root.join("bin/blob.dat")).unwrap(), binary);
    assert_eq!(std::fs::read(f.root.join("empty")).unwrap(), b"");
    assert_eq!(std::fs::metadata(f.root.join("run.sh")).unwrap().permissions().mode() & 0o111, 0o111);
    assert_eq!(std::fs::read_link(f.root.join("link-to-a")).unwrap(), Path::new("a.txt"));
    assert_eq!(std::fs::read_link(f.root.join("dangling")).unwrap(), Path::new("../outside/target"));
    assert_eq!(std::fs::read(f.root.join(weird)).unwrap(), b"latin-1 name");
    assert!(!f.root.join("extra").exists(), "the added file and its emptied directory are gone");
    // Nothing differs any more.
    assert!(f.cm.diff(f.project, cp.id, false).await.unwrap().files.is_empty());
}

#[tokio::test]
async fn restore_never_touches_git_codeframe_or_ignored_files() {
    let f = fx_git().await;
    let cp = create(&f, "base").await;
    let head = git(&f.root, &["rev-parse", "HEAD"]);
    write(&f.root, "late.log", b"ignored, created after the checkpoint");
    write(&f.root, "notes.txt", b"edited");
    f.cm.restore(f.project, cp.id, RestoreWhat { files: true, ..Default::default() }, RestoreMode::Apply)
        .await
        .unwrap();
    assert_eq!(std::fs::read(f.root.join("notes.txt")).unwrap(), b"untracked notes\n");
    assert_eq!(std::fs::read(f.root.join("late.log")).unwrap(), b"ignored, created after the checkpoint");
    assert!(f.root.join("target/debug/out.bin").exists());
    assert_eq!(git(&f.root, &["rev-parse", "HEAD"]), head);
    assert!(f.root.join(".codeframe/snapshots.git/HEAD").exists());
}

#[tokio::test]
async fn restoring_state_and_context_brings_rows_back_and_leaves_the_other_project_alone() {
    let f = fx_plain().await;
    let other_root = f.root.parent().unwrap().join("other");
    std::fs::create_dir_all(&other_root).unwrap();
    let other = add_project(&f.db, "other", &other_root).await;
    let cp = create(&f, "state").await;
    let mut c = f.db.conn().await.unwrap();
    let items_before = context::list_for_project(&mut c, f.project).await.unwrap();
    let tasks_before = tasks::list(&mut c, f.project).await.unwrap();
    let other_items = context::list_for_project(&mut c, other).await.unwrap();
    let other_project = projects::get(&mut c, other).await.unwrap();

    // Change this project's rows and the other project's rows.
    context::touch(&mut c, "p-item-0", T0).await.unwrap();
    tasks::insert(
        &mut c,
        &NewTask { project_id: f.project, title: "later".into(), description: String::new() },
        T0,
    )
    .await
    .unwrap();
    let mut p = projects::get(&mut c, f.project).await.unwrap();
    p.status = ProjectStatus::Active;
    projects::update(&mut c, &p, T0).await.unwrap();
    context::touch(&mut c, "other-item-1", T0).await.unwrap();
    let other_items_changed = context::list_for_project(&mut c, other).await.unwrap();
    drop(c);

    let what = RestoreWhat { files: false, state: true, context: true, keep_new_items: false };
    let r = f.cm.restore(f.project, cp.id, what, RestoreMode::Apply).await.unwrap();
    assert_eq!((r.items_restored, r.state_restored), (5, true));
    let mut c = f.db.conn().await.unwrap();
    assert_eq!(context::list_for_project(&mut c, f.project).await.unwrap(), items_before);
    assert_eq!(tasks::list(&mut c, f.project).await.unwrap(), tasks_before);
    assert_eq!(projects::get(&mut c, f.project).await.unwrap().status, ProjectStatus::Init);
    assert_ne!(other_items, other_items_changed);
    assert_eq!(
        context::list_for_project(&mut c, other).await.unwrap(),
        other_items_changed,
        "other project untouched"
    );
    assert_eq!(projects::get(&mut c, other).await.unwrap(), other_project);
}

#[tokio::test]
async fn restore_refuses_to_write_through_a_symlinked_directory() {
    let f = fx_plain().await;
    let cp = create(&f, "dir").await;
    let outside = f.root.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::remove_dir_all(f.root.join("dir")).unwrap();
    std::os::unix::fs::symlink(&outside, f.root.join("dir")).unwrap();
    write(&f.root, "a.txt", b"edited and must stay edited");
    let e = f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap_err();
    assert!(matches!(e, CheckpointError::UnsafePath { .. }), "{e}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside");
    assert_eq!(
        std::fs::read(f.root.join("a.txt")).unwrap(),
        b"edited and must stay edited",
        "nothing written at all"
    );
    let items = context::list_for_project(&mut f.db.conn().await.unwrap(), f.project).await.unwrap();
    assert_eq!(items.len(), 5);
}

/// Points checkpoint `id` at a commit whose `files/` tree is `files_tree`, keeping its state.
fn forge(root: &Path, id: i64, files_tree: gix::ObjectId) -> String {
    let repo = gix::open(root.join(".codeframe/snapshots.git")).unwrap();
    let commit =
        repo.find_reference(checkpoint_ref(CheckpointId(id)).as_str()).unwrap().peel_to_commit().unwrap();
    let tree = commit.tree().unwrap();
    let mut entries: Vec<gix::objs::tree::Entry> = tree
        .decode()
        .unwrap()
        .entries
        .iter()
        .map(|e| gix::objs::tree::Entry {
            mode: e.mode,
            filename: e.filename.to_owned(),
            oid: e.oid.to_owned(),
        })
        .collect();
    for e in &mut entries {
        if e.filename == "files" {
            e.oid = files_tree;
        }
    }
    entries.sort();
    let new_tree = repo.write_object(gix::objs::Tree { entries }).unwrap().detach();
    let sig = gix::actor::Signature {
        name: "t".into(),
        email: "t@example.com".into(),
        time: gix::date::Time::new(0, 0),
    };
    let mut buf = gix::date::parse::TimeBuf::default();
    let s = sig.to_ref(&mut buf);
    let no_parents: [gix::ObjectId; 0] = [];
    repo.new_commit_as(s, s, "forged", new_tree, no_parents).unwrap().id.to_hex().to_string()
}

fn tree_of(root: &Path, entries: Vec<(&[u8], gix::objs::tree::EntryKind, gix::ObjectId)>) -> gix::ObjectId {
    let repo = gix::open(root.join(".codeframe/snapshots.git")).unwrap();
    let mut entries: Vec<_> = entries
        .into_iter()
        .map(|(name, kind, oid)| gix::objs::tree::Entry { mode: kind.into(), filename: name.into(), oid })
        .collect();
    entries.sort();
    repo.write_object(gix::objs::Tree { entries }).unwrap().detach()
}

fn blob(root: &Path, bytes: &[u8]) -> gix::ObjectId {
    gix::open(root.join(".codeframe/snapshots.git")).unwrap().write_blob(bytes).unwrap().detach()
}

#[tokio::test]
async fn forged_trees_with_dot_dot_absolute_or_duplicate_paths_are_refused_with_nothing_written() {
    use gix::objs::tree::EntryKind::{Blob, Link, Tree};
    let f = fx_plain().await;
    let cp = create(&f, "forge").await;
    let evil = blob(&f.root, b"evil");
    let x = tree_of(&f.root, vec![(b"x", Blob, evil)]);
    let cases = vec![
        ("../x", tree_of(&f.root, vec![(b"..", Tree, x), (b"a.txt", Blob, evil)])),
        ("absolute", tree_of(&f.root, vec![(b"/etc/passwd", Blob, evil), (b"a.txt", Blob, evil)])),
        (
            "symlinked dir",
            tree_of(
                &f.root,
                vec![(b"d", Link, blob(&f.root, b"/tmp")), (b"d", Tree, x), (b"a.txt", Blob, evil)],
            ),
        ),
        (".git", tree_of(&f.root, vec![(b".git", Tree, x), (b"a.txt", Blob, evil)])),
    ];
    for (label, files_tree) in cases {
        let commit = forge(&f.root, cp.id.into(), files_tree);
        checkpoints::set_commit(&mut f.db.conn().await.unwrap(), cp.id, &commit).await.unwrap();
        let e = f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap_err();
        assert!(matches!(e, CheckpointError::UnsafePath { .. }), "{label}: {e}");
        assert_eq!(std::fs::read(f.root.join("a.txt")).unwrap(), b"alpha\n", "{label}: nothing written");
        assert!(!f.root.parent().unwrap().join("x").exists(), "{label}");
        let e = f.cm.diff(f.project, cp.id, false).await.unwrap_err();
        assert!(matches!(e, CheckpointError::UnsafePath { .. }), "{label}");
    }
}

#[tokio::test]
async fn second_snapshot_reuses_the_stat_cache() {
    let f = fx_plain().await;
    // Files older than the racy window are trusted from the cache.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for p in ["a.txt", "dir/b.txt"] {
        std::fs::File::options().write(true).open(f.root.join(p)).unwrap().set_modified(old).unwrap();
    }
    create(&f, "one").await;
    let cache = std::fs::read_to_string(f.root.join(".codeframe/snapshots.git/codeframe-statcache")).unwrap();
    assert_eq!(cache.lines().count(), 3, "header + two cached files");
    // Same size, same mtime, same inode, but different content: the cache is trusted (as git
    // trusts its index), so change the size to see the change picked up.
    write(&f.root, "a.txt", b"alpha plus more\n");
    let cp = create(&f, "two").await;
    let a = store_git(&f.root, &["show", &format!("{}:files/a.txt", checkpoint_ref(cp.id))]);
    assert_eq!(a, "alpha plus more\n");
}

// ---------------------------------------------------------------- tampered stores

/// The loose-object file of `oid` in the project's store.
fn object_file(root: &Path, oid: &str) -> PathBuf {
    root.join(".codeframe/snapshots.git/objects").join(&oid[..2]).join(&oid[2..])
}

/// Everything restorable of the project, to compare before and after a refused operation.
async fn rows(f: &Fx) -> (codeframe_models::Project, Vec<ContextItem>) {
    let mut c = f.db.conn().await.unwrap();
    (
        projects::get(&mut c, f.project).await.unwrap(),
        context::list_for_project(&mut c, f.project).await.unwrap(),
    )
}

#[tokio::test]
async fn an_edited_object_is_refused_by_restore_and_reported_by_verify() {
    let f = fx_plain().await;
    let cp = create(&f, "base").await;
    let blob = store_git(&f.root, &["rev-parse", &format!("{}:files/a.txt", checkpoint_ref(cp.id))]);
    // Code in the project swaps the object's content for another valid object's.
    unpack_store(&f.root);
    let forged = store_git(&f.root, &["hash-object", "-w", "--stdin"]); // the empty blob
    std::fs::copy(object_file(&f.root, forged.trim()), object_file(&f.root, blob.trim())).unwrap();
    write(&f.root, "a.txt", b"changed since\n");
    let before = rows(&f).await;
    let e = f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap_err();
    assert!(e.to_string().contains("corrupt"), "{e}");
    assert_eq!(std::fs::read(f.root.join("a.txt")).unwrap(), b"changed since\n", "no file written");
    assert_eq!(rows(&f).await, before, "no row written");
    let report = f.cm.verify(f.project, cp.id).await.unwrap();
    assert!(!report.ok());
    assert!(
        report.problems.iter().any(|p| p.contains("corrupt") && p.contains("files/a.txt")),
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn a_truncated_object_fails_verify_and_resume_reads() {
    let f = fx_plain().await;
    let cp = create(&f, "base").await;
    let chunk =
        store_git(&f.root, &["rev-parse", &format!("{}:state/context/000000.jsonl", checkpoint_ref(cp.id))]);
    unpack_store(&f.root);
    let path = object_file(&f.root, chunk.trim());
    let bytes = std::fs::read(&path).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    perms.set_mode(0o644);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let report = f.cm.verify(f.project, cp.id).await.unwrap();
    assert!(!report.ok(), "a truncated object is a problem, not only a missing one");
    assert!(report.problems.iter().any(|p| p.contains(chunk.trim())), "{:?}", report.problems);
    let before = rows(&f).await;
    let what = RestoreWhat { files: false, state: true, context: true, keep_new_items: false };
    assert!(f.cm.restore(f.project, cp.id, what, RestoreMode::Apply).await.is_err());
    assert_eq!(rows(&f).await, before);
}

#[tokio::test]
async fn a_snapshot_is_one_pack_that_git_itself_accepts() {
    let f = fx_plain().await;
    let cp = create(&f, "packed").await;
    assert_eq!(packs(&f.root).len(), 1, "one pack per snapshot, no loose files");
    let loose = store_git(&f.root, &["count-objects", "-v"]);
    assert!(loose.lines().any(|l| l == "count: 0"), "{loose}");
    for pack in packs(&f.root) {
        git(&f.root, &["verify-pack", pack.with_extension("idx").to_str().unwrap()]);
    }
    store_git(&f.root, &["fsck", "--strict", "--no-dangling"]);
    let a = store_git(&f.root, &["show", &format!("{}:files/a.txt", checkpoint_ref(cp.id))]);
    assert_eq!(a, "alpha\n");
}

#[tokio::test]
async fn a_damaged_pack_fails_verify_and_restore_changes_nothing() {
    let f = fx_plain().await;
    let cp = create(&f, "base").await;
    write(&f.root, "a.txt", b"changed since\n");
    let pack = packs(&f.root).pop().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let mut perms = std::fs::metadata(&pack).unwrap().permissions();
    perms.set_mode(0o644);
    std::fs::set_permissions(&pack, perms).unwrap();
    // Flip bits inside the objects (past the 12-byte header, before the trailing checksum).
    for i in (12..bytes.len() - 20).step_by(7) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(&pack, &bytes).unwrap();
    let report = f.cm.verify(f.project, cp.id).await.unwrap();
    assert!(!report.ok(), "a damaged pack is a problem");
    let before = rows(&f).await;
    assert!(f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.is_err());
    assert_eq!(rows(&f).await, before, "no row written");
    assert_eq!(std::fs::read(f.root.join("a.txt")).unwrap(), b"changed since\n", "no file written");
}

#[tokio::test]
async fn a_snapshot_holding_another_projects_rows_is_refused_and_changes_nothing() {
    let f = fx_plain().await;
    let other_root = f.root.parent().unwrap().join("other");
    std::fs::create_dir_all(&other_root).unwrap();
    let other = add_project(&f.db, "other", &other_root).await;
    let cp = create(&f, "base").await;
    // Forge: the checkpoint's context chunk now carries an item of the other project (as code
    // in the tree could write into the store), committed and pointed to like a real one.
    let spec = format!("{}:state/context/000000.jsonl", checkpoint_ref(cp.id));
    let chunk = store_git(&f.root, &["cat-file", "blob", &spec]);
    let forged_line = chunk
        .lines()
        .next()
        .unwrap()
        .replace(&format!("\"project_id\":{}", f.project), &format!("\"project_id\":{other}"))
        .replace("p-item-0", "planted-item");
    let forged = format!("{chunk}{forged_line}\n");
    let tmp_blob = f.root.parent().unwrap().join("forged.jsonl");
    std::fs::write(&tmp_blob, forged).unwrap();
    let blob = store_git(&f.root, &["hash-object", "-w", tmp_blob.to_str().unwrap()]);
    let index = f.root.parent().unwrap().join("forged.index");
    let with_index = |args: &[&str]| {
        let out = Command::new("git")
            .args(["--git-dir", ".codeframe/snapshots.git"])
            .args(args)
            .current_dir(&f.root)
            .env("GIT_INDEX_FILE", &index)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    with_index(&["read-tree", &checkpoint_ref(cp.id)]);
    with_index(&[
        "update-index",
        "--cacheinfo",
        &format!("100644,{},state/context/000000.jsonl", blob.trim()),
    ]);
    let tree = with_index(&["write-tree"]);
    let commit = with_index(&["commit-tree", &tree, "-m", "forged"]);
    with_index(&["update-ref", &checkpoint_ref(cp.id), &commit]);
    checkpoints::set_commit(&mut f.db.conn().await.unwrap(), cp.id, &commit).await.unwrap();

    // A change since the checkpoint, so that resume's read takes in the forged chunk.
    context::touch(&mut f.db.conn().await.unwrap(), "p-item-0", T0 + time::Duration::hours(1)).await.unwrap();
    let before = rows(&f).await;
    let other_before = context::list_for_project(&mut f.db.conn().await.unwrap(), other).await.unwrap();
    let what = RestoreWhat { files: false, state: true, context: true, keep_new_items: false };
    let e = f.cm.restore(f.project, cp.id, what, RestoreMode::Apply).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Unreadable { .. }), "{e}");
    assert!(e.to_string().contains(&format!("project {other}")), "{e}");
    let mut tx = f.db.begin().await.unwrap();
    let resume_like = RestoreWhat { files: false, state: false, context: true, keep_new_items: true };
    assert!(
        f.cm.restore_rows(&mut tx, f.project, cp.id, resume_like).await.is_err(),
        "resume's read refuses too"
    );
    drop(tx);
    assert_eq!(rows(&f).await, before, "nothing changed in the project");
    let other_after = context::list_for_project(&mut f.db.conn().await.unwrap(), other).await.unwrap();
    assert_eq!(other_after, other_before, "nothing injected into the other project");
}

// ---------------------------------------------------------------- races with code in the tree

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_swapped_for_a_symlink_during_restore_never_redirects_a_write() {
    let f = fx_plain().await;
    let outside = f.root.parent().unwrap().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let cp = create(&f, "base").await; // holds dir/b.txt
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (root, outside, stop) = (f.root.clone(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            let (dir, real) = (root.join("dir"), root.join("dir.real"));
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // dir → a link to a directory outside the root, then back. The edit that makes
                // the next restore rewrite dir/b.txt is made in the real directory (a write
                // through the link would be the test's own, not the restore's).
                if std::fs::rename(&dir, &real).is_ok() {
                    let _ = std::fs::write(real.join("b.txt"), format!("edit {swaps}\n"));
                    let _ = std::os::unix::fs::symlink(&outside, &dir);
                    std::thread::yield_now();
                    let _ = std::fs::remove_file(&dir);
                    let _ = std::fs::rename(&real, &dir);
                    swaps += 1;
                }
            }
            swaps
        })
    };
    let (mut restored, mut refused) = (0, 0);
    for _ in 0..1000 {
        match f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await {
            Ok(_) => restored += 1,
            Err(_) => refused += 1,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(swaps > 100, "the race ran ({swaps} swaps)");
    assert_eq!(files_under(&outside), Vec::<PathBuf>::new(), "nothing written outside the root");
    assert!(restored > 0, "restores still work between swaps ({restored} done, {refused} refused)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_and_fifos_swapped_in_during_snapshots_are_never_read_through_nor_block() {
    let f = fx_plain().await;
    let outside = f.root.parent().unwrap().join("keys");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("id_rsa"), "-----BEGIN PRIVATE KEY----- secret").unwrap();
    write(&f.root, "secret.txt", b"public\n");
    write(&f.root, "pipe", b"plain\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (root, key, stop) = (f.root.clone(), outside.join("id_rsa"), stop.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (secret, pipe) = (root.join("secret.txt"), root.join("pipe"));
                let _ = std::fs::remove_file(&secret);
                let _ = std::os::unix::fs::symlink(&key, &secret);
                let _ = std::fs::remove_file(&pipe);
                let _ = rustix::fs::mkfifoat(rustix::fs::CWD, &pipe, rustix::fs::Mode::from_raw_mode(0o644));
                std::thread::yield_now();
                let _ = std::fs::remove_file(&secret);
                let _ = std::fs::write(&secret, "public\n");
                let _ = std::fs::remove_file(&pipe);
                let _ = std::fs::write(&pipe, "plain\n");
                swaps += 1;
            }
            swaps
        })
    };
    for n in 0..150 {
        let taken = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            if n % 3 == 0 {
                f.cm.diff(f.project, CheckpointId(0), true).await.ok(); // (no such checkpoint: only the walk matters)
            }
            create(&f, &format!("snap {n}")).await
        })
        .await;
        assert!(taken.is_ok(), "snapshot {n} blocked");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(racer.join().unwrap() > 10);
    // No object of the store holds the key.
    let all = store_git(&f.root, &["cat-file", "--batch-all-objects", "--batch"]);
    assert!(!all.contains("PRIVATE KEY"), "an outside file was read into the store");
    // And the pipe never turned into content other than the plain file's.
    for cp in f.cm.list(f.project).await.unwrap() {
        let spec = format!("{}:files/pipe", checkpoint_ref(cp.id));
        let content = Command::new("git")
            .args(["--git-dir", ".codeframe/snapshots.git", "cat-file", "-p", &spec])
            .current_dir(&f.root)
            .output()
            .unwrap();
        // The racer rewrites the file non-atomically, so an empty one may be seen; a FIFO is
        // never content.
        if content.status.success() {
            assert!(content.stdout == b"plain\n" || content.stdout.is_empty(), "{:?}", content.stdout);
        }
    }
}

#[tokio::test]
async fn restore_keeps_permission_bits_and_takes_names_of_the_full_length() {
    let f = fx_plain().await;
    let long = "n".repeat(255);
    write(&f.root, "private.key", b"mine\n");
    std::fs::set_permissions(f.root.join("private.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    write(&f.root, &format!("dir/{long}"), b"long name\n");
    let cp = create(&f, "base").await;
    std::fs::write(f.root.join("private.key"), "changed\n").unwrap();
    std::fs::remove_file(f.root.join("dir").join(&long)).unwrap();
    f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap();
    assert_eq!(std::fs::read(f.root.join("private.key")).unwrap(), b"mine\n");
    let mode = std::fs::metadata(f.root.join("private.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "0600 stays 0600");
    assert_eq!(std::fs::read(f.root.join("dir").join(&long)).unwrap(), b"long name\n");
    let leftovers: Vec<_> = files_under(&f.root)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".cf-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left: {leftovers:?}");
}

#[tokio::test]
async fn files_over_the_size_limit_are_left_out_and_listed() {
    let f = fx_plain().await;
    let cm = GitCheckpointManager::new(f.db.clone()).with_max_file_size(1024);
    write(&f.root, "big.bin", &vec![7u8; 4096]);
    let id = cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let cp = cm.create(&mut tx, f.project, id, spec("with a big file")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(cp.metadata.skipped_files.len(), 1);
    assert_eq!(
        (cp.metadata.skipped_files[0].path.as_str(), cp.metadata.skipped_files[0].size),
        ("big.bin", 4096)
    );
    assert_eq!(cm.get(f.project, cp.id).await.unwrap().metadata.skipped_files, cp.metadata.skipped_files);
    let tree = store_git(&f.root, &["ls-tree", "-r", "--name-only", &checkpoint_ref(cp.id)]);
    assert!(!tree.contains("big.bin") && tree.contains("files/a.txt"), "{tree}");
    // Left out on both sides, it is neither reported as added nor removed by a restore.
    assert!(cm.diff(f.project, cp.id, false).await.unwrap().files.is_empty());
    cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap();
    assert_eq!(std::fs::metadata(f.root.join("big.bin")).unwrap().len(), 4096, "kept");
}

// ---------------------------------------------------------------- incremental context snapshots

/// Adds `n` items to the project with ids `{prefix}{00000..n}` (sorted before `p-item-*`).
async fn add_items(f: &Fx, prefix: &str, n: usize) {
    let items: Vec<ContextItem> = (0..n)
        .map(|k| ContextItem {
            id: format!("{prefix}{k:05}"),
            project_id: f.project,
            agent_id: "p-agent".into(),
            item_type: ItemType::Code,
            content: format!("item {k} of {prefix}"),
            token_count: 3,
            importance_score: 0.5,
            tier: Tier::Warm,
            access_count: 0,
            created_at: T0,
            last_accessed: T0,
            archived_at: None,
            archived_by_flash_save: None,
        })
        .collect();
    let mut tx = f.db.begin().await.unwrap();
    context::insert_many(&mut tx, &items).await.unwrap();
    tx.commit().await.unwrap();
}

/// The blob ids of a commit's context chunks, in order.
fn chunk_oids(root: &Path, commit: &str) -> Vec<String> {
    store_git(root, &["ls-tree", &format!("{commit}:state/context")])
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap().to_owned())
        .collect()
}

/// Every context line of a commit's snapshot, chunk after chunk.
fn snapshot_lines(root: &Path, commit: &str) -> Vec<String> {
    chunk_oids(root, commit)
        .iter()
        .flat_map(|oid| {
            store_git(root, &["cat-file", "blob", oid]).lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

fn commit_of(cp: &codeframe_models::Checkpoint) -> String {
    cp.commit_id.clone().unwrap()
}

/// A snapshot made with no earlier checkpoint to build on (every earlier one deleted): what a
/// full read of the context writes.
async fn full_snapshot(f: &Fx) -> codeframe_models::Checkpoint {
    for c in f.cm.list(f.project).await.unwrap() {
        f.cm.delete(f.project, c.id).await.unwrap();
    }
    create(f, "full").await
}

#[tokio::test]
async fn an_incremental_snapshot_rewrites_only_the_changed_chunk_and_holds_what_a_full_one_does() {
    let f = fx_plain().await;
    add_items(&f, "bulk-", 2_500).await;
    let first = create(&f, "first").await;
    let before = chunk_oids(&f.root, &commit_of(&first));
    assert_eq!(before.len(), 3, "2,505 items in chunks of 1,000");
    context::touch(&mut f.db.conn().await.unwrap(), "bulk-01234", T0 + time::Duration::hours(1))
        .await
        .unwrap();

    let second = create(&f, "second").await;
    let after = chunk_oids(&f.root, &commit_of(&second));
    assert_eq!(after.len(), 3);
    assert_eq!((after[0] == before[0], after[1] == before[1], after[2] == before[2]), (true, false, true));
    assert_eq!(second.metadata.context_items_count, 2_505);
    let touched = snapshot_lines(&f.root, &commit_of(&second))
        .into_iter()
        .find(|l| l.contains("\"bulk-01234\""))
        .unwrap();
    assert!(touched.contains("\"access_count\":1"), "{touched}");

    let full = full_snapshot(&f).await;
    assert_eq!(snapshot_lines(&f.root, &commit_of(&second)), snapshot_lines(&f.root, &commit_of(&full)));
    assert!(f.cm.verify(f.project, full.id).await.unwrap().ok());
}

#[tokio::test]
async fn items_deleted_since_the_last_checkpoint_make_the_next_snapshot_full() {
    let f = fx_plain().await;
    let small = create(&f, "five items").await;
    add_items(&f, "bulk-", 2_500).await;
    create(&f, "many items").await;
    // Restoring the older context deletes the 2,500 items the newer snapshot holds.
    let what = RestoreWhat { files: false, state: false, context: true, keep_new_items: false };
    f.cm.restore(f.project, small.id, what, RestoreMode::Apply).await.unwrap();

    let after = create(&f, "after restore").await;
    assert_eq!(after.metadata.context_items_count, 5);
    let lines = snapshot_lines(&f.root, &commit_of(&after));
    assert_eq!(lines.len(), 5, "no deleted item survives in a reused chunk");
    assert_eq!(lines, snapshot_lines(&f.root, &commit_of(&small)));
}

#[tokio::test]
async fn a_chunk_that_grows_is_split_and_the_others_are_reused() {
    let f = fx_plain().await;
    add_items(&f, "bulk-", 2_500).await;
    let first = create(&f, "first").await;
    let before = chunk_oids(&f.root, &commit_of(&first));
    // 2,100 ids that sort inside the first chunk's range: it holds 3,100 items now.
    add_items(&f, "bulk-00000-late-", 2_100).await;

    let second = create(&f, "grown").await;
    let after = chunk_oids(&f.root, &commit_of(&second));
    assert_eq!(after.len(), 6, "the grown chunk split in four, two reused");
    assert_eq!(after[4..], before[1..], "the untouched chunks are the first snapshot's blobs");
    assert_eq!(second.metadata.context_items_count, 4_605);
    let lines = snapshot_lines(&f.root, &commit_of(&second));
    let full = full_snapshot(&f).await;
    assert_eq!(lines, snapshot_lines(&f.root, &commit_of(&full)), "same items, same order");
}

#[tokio::test]
async fn a_base_with_a_missing_chunk_makes_the_next_snapshot_full() {
    let f = fx_plain().await;
    add_items(&f, "bulk-", 2_500).await;
    let first = create(&f, "first").await;
    let lost = chunk_oids(&f.root, &commit_of(&first))[1].clone();
    unpack_store(&f.root);
    std::fs::remove_file(object_file(&f.root, &lost)).unwrap();
    context::touch(&mut f.db.conn().await.unwrap(), "bulk-00007", T0 + time::Duration::hours(1))
        .await
        .unwrap();

    let second = create(&f, "second").await;
    let report = f.cm.verify(f.project, second.id).await.unwrap();
    assert!(report.ok(), "the new snapshot names no lost object: {:?}", report.problems);
    assert_eq!(snapshot_lines(&f.root, &commit_of(&second)).len(), 2_505);
    // Content-addressed: the rewritten chunk is the lost blob, so the base is whole again.
    assert!(f.cm.verify(f.project, first.id).await.unwrap().ok());
}

#[tokio::test]
async fn an_incremental_snapshot_restores_exactly() {
    let f = fx_plain().await;
    add_items(&f, "bulk-", 2_500).await;
    create(&f, "base").await;
    let mut c = f.db.conn().await.unwrap();
    context::touch(&mut c, "bulk-02222", T0 + time::Duration::hours(2)).await.unwrap();
    drop(c);
    add_items(&f, "bulk-01500-new-", 3).await;
    let cp = create(&f, "incremental").await;
    let at_checkpoint = rows(&f).await;
    let mut c = f.db.conn().await.unwrap();
    context::touch(&mut c, "bulk-00001", T0 + time::Duration::hours(3)).await.unwrap();
    context::touch(&mut c, "bulk-02222", T0 + time::Duration::hours(3)).await.unwrap();
    drop(c);
    let what = RestoreWhat { files: false, state: false, context: true, keep_new_items: false };
    f.cm.restore(f.project, cp.id, what, RestoreMode::Apply).await.unwrap();
    assert_eq!(rows(&f).await.1, at_checkpoint.1);
}

async fn restore_context_keeping_new(f: &Fx, id: i64) -> usize {
    let what = RestoreWhat { files: false, state: false, context: true, keep_new_items: true };
    let mut tx = f.db.begin().await.unwrap();
    let n = f.cm.restore_rows(&mut tx, f.project, CheckpointId(id), what).await.unwrap();
    tx.commit().await.unwrap();
    n
}

#[tokio::test]
async fn restoring_context_over_new_items_reads_only_the_chunks_written_since() {
    let f = fx_plain().await;
    add_items(&f, "bulk-", 2_500).await;
    let cp = create(&f, "cp").await;
    let at_checkpoint = rows(&f).await.1;
    let mut c = f.db.conn().await.unwrap();
    context::touch(&mut c, "bulk-01234", T0 + time::Duration::hours(1)).await.unwrap();
    drop(c);
    add_items(&f, "bulk-01500-new-", 2).await;
    // Proof that the other chunks are not read: their blobs are gone.
    let oids = chunk_oids(&f.root, &commit_of(&cp));
    unpack_store(&f.root);
    for lost in [&oids[0], &oids[2]] {
        std::fs::remove_file(object_file(&f.root, lost)).unwrap();
    }

    assert_eq!(restore_context_keeping_new(&f, cp.id.into()).await, 2_505, "the checkpoint's item count");
    let now = rows(&f).await.1;
    let (kept, restored): (Vec<ContextItem>, Vec<ContextItem>) =
        now.into_iter().partition(|i| i.id.starts_with("bulk-01500-new-"));
    assert_eq!(kept.len(), 2, "new items are kept");
    assert_eq!(restored, at_checkpoint, "the touched item is back as it was");
}

#[tokio::test]
async fn restoring_context_after_a_deletion_reads_the_whole_snapshot() {
    let f = fx_plain().await;
    let cp = create(&f, "five").await;
    let at_checkpoint = rows(&f).await.1;
    let mut c = f.db.conn().await.unwrap();
    context::replace_for_project(&mut c, f.project, &at_checkpoint[..2]).await.unwrap();
    drop(c);
    assert_eq!(restore_context_keeping_new(&f, cp.id.into()).await, 5);
    assert_eq!(rows(&f).await.1, at_checkpoint, "deleted items are back");
}

#[tokio::test]
async fn with_full_durability_snapshots_restores_and_refs_work_the_same() {
    let f = fx_plain().await;
    let cm = GitCheckpointManager::new(f.db.clone()).with_durability(codeframe_checkpoint::Durability::Full);
    let id = cm.reserve_id().await.unwrap();
    let mut tx = f.db.begin().await.unwrap();
    let cp = cm.create(&mut tx, f.project, id, spec("durable")).await.unwrap();
    tx.commit().await.unwrap();
    assert!(cm.verify(f.project, cp.id).await.unwrap().ok());
    store_git(&f.root, &["fsck", "--strict"]);
    write(&f.root, "a.txt", b"changed\n");
    let what = RestoreWhat { files: true, state: false, context: false, keep_new_items: false };
    let r = cm.restore(f.project, cp.id, what, RestoreMode::Apply).await.unwrap();
    assert_eq!(r.files_written, 1);
    assert_eq!(std::fs::read(f.root.join("a.txt")).unwrap(), b"alpha\n");
}

// ---------------------------------------------------------------- all-or-nothing file restore

/// A checkpoint of a.txt and dir/b.txt, then a tree where a.txt is edited, dir/b.txt deleted
/// and new/c.txt added: restoring rewrites a.txt, writes dir/b.txt (last), removes new/c.txt.
async fn diverged() -> (Fx, codeframe_models::Checkpoint) {
    let f = fx_plain().await;
    let cp = create(&f, "base").await;
    write(&f.root, "a.txt", b"edited since\n");
    std::fs::remove_dir_all(f.root.join("dir")).unwrap();
    write(&f.root, "new/c.txt", b"made since\n");
    (f, cp)
}

fn checkpoint_tree() -> Vec<(String, Vec<u8>)> {
    vec![("a.txt".into(), b"alpha\n".to_vec()), ("dir/b.txt".into(), b"beta\n".to_vec())]
}

#[tokio::test]
async fn a_restore_that_fails_on_its_last_file_leaves_every_file_as_before() {
    let (f, cp) = diverged().await;
    // The last file's object is damaged after the checks (code in the project could do it):
    // reading it fails while the others are already staged.
    let blob = store_git(&f.root, &["rev-parse", &format!("{}:files/dir/b.txt", checkpoint_ref(cp.id))]);
    unpack_store(&f.root);
    let forged = store_git(&f.root, &["hash-object", "-w", "--stdin"]);
    std::fs::copy(object_file(&f.root, forged.trim()), object_file(&f.root, blob.trim())).unwrap();
    let (before_tree, before_rows) = (tree_files(&f.root), rows(&f).await);
    let e = f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap_err();
    assert!(e.to_string().contains("corrupt"), "{e}");
    assert_eq!(tree_files(&f.root), before_tree, "every file as before");
    assert_eq!(rows(&f).await, before_rows, "every row as before");
    assert_eq!(restore_leftovers(&f.root), Vec::<String>::new(), "nothing staged is left");
}

#[tokio::test]
async fn a_restore_is_swapped_in_whole_and_leaves_nothing_behind() {
    let (f, cp) = diverged().await;
    let r = f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap();
    assert_eq!((r.files_written, r.files_removed), (2, 1));
    assert_eq!(tree_files(&f.root), checkpoint_tree());
    assert!(!f.root.join("new").exists(), "the directory its removal emptied is gone");
    assert_eq!(restore_leftovers(&f.root), Vec::<String>::new());
    let mut c = f.db.conn().await.unwrap();
    assert_eq!(
        file_restores::list(&mut c, f.project).await.unwrap(),
        Vec::<String>::new(),
        "marker forgotten"
    );
    drop(c);
    // Nothing to restore: no journal at all.
    let r = f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap();
    assert_eq!((r.files_written, r.files_removed), (0, 0));
    assert_eq!(restore_leftovers(&f.root), Vec::<String>::new());
}

/// Restores `cp`'s files in a transaction through a manager of its own (a process), decides
/// the transaction, then drops the manager without settling, as a process that dies would.
async fn restore_and_die(f: &Fx, cp: i64, commit: bool) {
    let dying = GitCheckpointManager::new(f.db.clone());
    let mut tx = f.db.begin().await.unwrap();
    let restored = dying.restore_files(&mut tx, f.project, CheckpointId(cp)).await.unwrap();
    assert_eq!((restored.written, restored.removed), (2, 1));
    assert_eq!(tree_files(&f.root), checkpoint_tree(), "swapped in before the transaction is decided");
    if commit {
        tx.commit().await.unwrap();
        let mut c = f.db.conn().await.unwrap();
        assert_eq!(file_restores::list(&mut c, f.project).await.unwrap().len(), 1, "marker committed");
    } else {
        tx.rollback().await.unwrap();
    }
    drop(dying);
    assert!(!restore_leftovers(&f.root).is_empty(), "the journal is left for whoever comes next");
}

#[tokio::test]
async fn a_restore_whose_transaction_rolled_back_is_undone_by_the_next_open() {
    let (f, cp) = diverged().await;
    let before = tree_files(&f.root);
    restore_and_die(&f, cp.id.into(), false).await;
    let report = f.cm.reconcile(f.project).await.unwrap();
    let settled = report.interrupted_restore.expect("an interrupted restore was settled");
    assert!(!settled.committed);
    assert_eq!(settled.files, 3);
    assert_eq!(tree_files(&f.root), before, "every file put back");
    assert!(!f.root.join("dir").exists(), "the directory made for dir/b.txt is gone again");
    assert_eq!(restore_leftovers(&f.root), Vec::<String>::new());
    assert_eq!(f.cm.reconcile(f.project).await.unwrap().interrupted_restore, None, "settled once");
}

#[tokio::test]
async fn a_restore_whose_transaction_committed_is_completed_by_the_next_open() {
    let (f, cp) = diverged().await;
    restore_and_die(&f, cp.id.into(), true).await;
    let settled = f.cm.reconcile(f.project).await.unwrap().interrupted_restore.unwrap();
    assert!(settled.committed);
    assert_eq!(tree_files(&f.root), checkpoint_tree());
    assert!(!f.root.join("new").exists());
    assert_eq!(restore_leftovers(&f.root), Vec::<String>::new());
    let mut c = f.db.conn().await.unwrap();
    assert_eq!(
        file_restores::list(&mut c, f.project).await.unwrap(),
        Vec::<String>::new(),
        "its marker is forgotten once the journal is gone"
    );
}

#[tokio::test]
async fn a_restore_is_refused_while_another_process_holds_an_unsettled_one() {
    let (f, cp) = diverged().await;
    let other = GitCheckpointManager::new(f.db.clone());
    let mut tx = f.db.begin().await.unwrap();
    other.restore_files(&mut tx, f.project, cp.id).await.unwrap();
    tx.commit().await.unwrap();
    // The other manager (process) still holds the restore lock: a restore now is refused, and
    // opening the project leaves its journal alone.
    write(&f.root, "a.txt", b"edited again\n");
    let e = f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap_err();
    assert!(matches!(e, CheckpointError::RestoreInProgress(p) if p == f.project), "{e}");
    assert_eq!(f.cm.reconcile(f.project).await.unwrap().interrupted_restore, None);
    assert_eq!(std::fs::read(f.root.join("a.txt")).unwrap(), b"edited again\n");
    let settled = other.settle_files(f.project).await.unwrap().unwrap();
    assert!(settled.committed);
    assert_eq!(other.settle_files(f.project).await.unwrap(), None, "nothing left to settle");
    f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap();
    assert_eq!(tree_files(&f.root), checkpoint_tree());
}

#[tokio::test]
async fn staging_folders_of_a_process_that_died_while_staging_are_removed() {
    let (f, cp) = diverged().await;
    let stale = f.root.join(".codeframe/restore-0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("new-0"), b"half staged").unwrap();
    let before = tree_files(&f.root);
    assert_eq!(f.cm.reconcile(f.project).await.unwrap().interrupted_restore, None);
    assert!(!stale.exists(), "the staging folder is gone");
    assert_eq!(tree_files(&f.root), before, "the tree is untouched");
    f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap();
    assert_eq!(tree_files(&f.root), checkpoint_tree());
}

// ---------------------------------------------------------------- garbage collection

/// Whether the store has the object (`git cat-file -e`).
fn store_has(root: &Path, oid: &str) -> bool {
    Command::new("git")
        .args(["--git-dir", ".codeframe/snapshots.git", "cat-file", "-e", oid.trim()])
        .current_dir(root)
        .status()
        .unwrap()
        .success()
}

fn blob_of(root: &Path, cp: i64, path: &str) -> String {
    store_git(root, &["rev-parse", &format!("{}:files/{path}", checkpoint_ref(CheckpointId(cp)))])
        .trim()
        .to_owned()
}

#[tokio::test]
async fn gc_removes_what_only_deleted_checkpoints_used_and_keeps_everything_else_readable() {
    let f = fx_plain().await;
    let mut cps = Vec::new();
    for n in 0..5 {
        write(&f.root, "a.txt", format!("version {n}\n").as_bytes());
        write(&f.root, &format!("only-in-{n}.bin"), &vec![n as u8; 4096]);
        cps.push(create(&f, &format!("c{n}")).await);
        std::fs::remove_file(f.root.join(format!("only-in-{n}.bin"))).unwrap();
    }
    let doomed: Vec<String> = cps[..3].iter().map(|c| blob_of(&f.root, c.id.into(), "a.txt")).collect();
    let kept_blob = blob_of(&f.root, cps[4].id.into(), "a.txt");
    for cp in &cps[..3] {
        f.cm.delete(f.project, cp.id).await.unwrap();
    }
    assert!(doomed.iter().all(|b| store_has(&f.root, b)), "deleting a checkpoint removes no object");
    let report = f.cm.collect_garbage(f.project, 0).await.unwrap().unwrap();
    assert_eq!(report.checkpoints_kept, 2);
    assert_eq!((report.packs_before, report.packs_after), (5, 1));
    assert!(report.objects_kept < report.objects_before, "{report:?}");
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    for b in &doomed {
        assert!(!store_has(&f.root, b), "{b}, used only by deleted checkpoints, is gone");
    }
    assert!(store_has(&f.root, &kept_blob));
    for cp in &cps[3..] {
        assert!(f.cm.verify(f.project, cp.id).await.unwrap().ok(), "checkpoint {} verifies", cp.id);
    }
    let fsck = Command::new("git")
        .args(["--git-dir", ".codeframe/snapshots.git", "fsck", "--full", "--strict", "--no-dangling"])
        .current_dir(&f.root)
        .output()
        .unwrap();
    assert!(fsck.status.success() && fsck.stdout.is_empty(), "{}", String::from_utf8_lossy(&fsck.stderr));
    // A kept checkpoint still restores exactly, and a second collection changes nothing.
    f.cm.restore(f.project, cps[3].id, all(true), RestoreMode::Apply).await.unwrap();
    assert_eq!(std::fs::read(f.root.join("a.txt")).unwrap(), b"version 3\n");
    assert_eq!(std::fs::read(f.root.join("only-in-3.bin")).unwrap(), vec![3u8; 4096]);
    let again = f.cm.collect_garbage(f.project, 0).await.unwrap().unwrap();
    assert_eq!(
        (again.objects_before, again.objects_kept, again.packs_after),
        (report.objects_kept, report.objects_kept, 1)
    );
    assert!(
        f.cm.verify(f.project, cps[4].id).await.unwrap().ok(),
        "the pack named like its predecessor survives"
    );
}

#[tokio::test]
async fn gc_keeps_large_loose_blobs_and_waits_for_the_pack_threshold() {
    let f = fx_plain().await;
    write(&f.root, "big.bin", &vec![7u8; (1 << 20) + 10]);
    let first = create(&f, "big").await;
    assert_eq!(f.cm.collect_garbage(f.project, 2).await.unwrap(), None, "one pack: below the threshold");
    std::fs::remove_file(f.root.join("big.bin")).unwrap();
    let second = create(&f, "small").await;
    let report = f.cm.collect_garbage(f.project, 2).await.unwrap().unwrap();
    assert_eq!(report.loose_removed, 0, "the large blob is still needed and stays loose");
    assert!(f.cm.verify(f.project, first.id).await.unwrap().ok());
    f.cm.delete(f.project, first.id).await.unwrap();
    let report = f.cm.collect_garbage(f.project, 0).await.unwrap().unwrap();
    assert_eq!(report.loose_removed, 1, "the large blob no one needs is removed");
    assert!(f.cm.verify(f.project, second.id).await.unwrap().ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_refuses_while_a_checkpoint_is_being_written_and_never_removes_what_it_reuses() {
    let f = fx_plain().await;
    write(&f.root, "a.txt", b"old content\n");
    let old = create(&f, "old").await;
    write(&f.root, "a.txt", b"new content\n");
    let _newer = create(&f, "newer").await;
    f.cm.delete(f.project, old.id).await.unwrap();
    // The file goes back to what only the deleted checkpoint had: the next snapshot reuses
    // that blob, which no ref reaches now.
    write(&f.root, "a.txt", b"old content\n");
    let id = f.cm.reserve_id().await.unwrap();
    let mut read = f.db.read().await.unwrap();
    let draft = f.cm.draft(&mut read, f.project, id, spec("reusing"), &[]).await.unwrap();
    drop(read);
    let written = f.cm.write_objects(draft).await.unwrap();
    let e = f.cm.collect_garbage(f.project, 0).await.unwrap_err();
    assert!(matches!(e, CheckpointError::StoreBusy(p) if p == f.project), "{e}");
    let mut tx = f.db.begin().await.unwrap();
    f.cm.record(&mut tx, &written).await.unwrap();
    tx.commit().await.unwrap();
    f.cm.publish(&written).await.unwrap();
    drop(written);
    f.cm.collect_garbage(f.project, 0).await.unwrap().unwrap();
    assert!(f.cm.verify(f.project, id).await.unwrap().ok(), "the reused blob survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_running_over_and_over_while_checkpoints_come_and_go_loses_nothing() {
    let f = fx_plain().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = {
        let (cm, project, stop) = (f.cm.clone(), f.project, stop.clone());
        tokio::spawn(async move {
            let (mut ran, mut busy) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match cm.collect_garbage(project, 0).await {
                    Ok(_) => ran += 1,
                    Err(CheckpointError::StoreBusy(_)) => busy += 1,
                    Err(e) => panic!("{e}"),
                }
                tokio::task::yield_now().await;
            }
            (ran, busy)
        })
    };
    let mut live: Vec<i64> = Vec::new();
    for n in 0..24 {
        // Contents cycle through three versions, so snapshots keep reusing blobs that only
        // deleted checkpoints had.
        write(&f.root, "a.txt", format!("version {}\n", n % 3).as_bytes());
        let id = f.cm.reserve_id().await.unwrap();
        let mut read = f.db.read().await.unwrap();
        let draft = f.cm.draft(&mut read, f.project, id, spec(&format!("c{n}")), &[]).await.unwrap();
        drop(read);
        let written = f.cm.write_objects(draft).await.unwrap();
        let mut tx = f.db.begin().await.unwrap();
        f.cm.record(&mut tx, &written).await.unwrap();
        tx.commit().await.unwrap();
        f.cm.publish(&written).await.unwrap();
        drop(written);
        live.push(id.into());
        if live.len() > 2 {
            f.cm.delete(f.project, CheckpointId(live.remove(0))).await.unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ran, _busy) = collector.await.unwrap();
    assert!(ran > 0, "collections ran between the checkpoints");
    for id in &live {
        assert!(f.cm.verify(f.project, CheckpointId(*id)).await.unwrap().ok(), "checkpoint {id} verifies");
    }
    f.cm.collect_garbage(f.project, 0).await.unwrap().unwrap();
    for id in &live {
        assert!(f.cm.verify(f.project, CheckpointId(*id)).await.unwrap().ok(), "checkpoint {id} verifies");
    }
    let fsck = Command::new("git")
        .args(["--git-dir", ".codeframe/snapshots.git", "fsck", "--full", "--strict"])
        .current_dir(&f.root)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stderr));
}

#[tokio::test]
async fn a_checkpoint_of_an_empty_directory_diffs_and_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("empty");
    std::fs::create_dir_all(&root).unwrap();
    let f = fx_at(tmp, root).await;
    let cp = create(&f, "nothing yet").await;
    assert!(f.cm.verify(f.project, cp.id).await.unwrap().ok());
    assert!(f.cm.diff(f.project, cp.id, false).await.unwrap().paths().is_empty());
    write(&f.root, "new.txt", b"made after\n");
    assert_eq!(f.cm.diff(f.project, cp.id, false).await.unwrap().paths(), ["new.txt"]);
    f.cm.restore(f.project, cp.id, all(true), RestoreMode::Apply).await.unwrap();
    assert!(!f.root.join("new.txt").exists(), "restoring the empty checkpoint removes the file made since");
}

#[tokio::test]
async fn items_added_after_a_checkpoint_that_had_none_are_in_the_next_one() {
    let f = fx_plain().await;
    context::replace_for_project(&mut f.db.conn().await.unwrap(), f.project, &[]).await.unwrap();
    let empty = create(&f, "no context yet").await;
    assert_eq!(empty.metadata.context_items_count, 0);
    // Items written after a base that had no chunk at all.
    add_items(&f, "n", 12).await;
    let next = create(&f, "twelve").await;
    assert_eq!(next.metadata.context_items_count, 12, "the snapshot holds every item");
    let before = rows(&f).await.1;
    let what = RestoreWhat { files: false, state: false, context: true, keep_new_items: false };
    f.cm.restore(f.project, next.id, what, RestoreMode::Apply).await.unwrap();
    assert_eq!(rows(&f).await.1, before, "restoring it keeps every item");
}

#[tokio::test]
async fn context_written_after_a_checkpoint_that_had_none_is_kept_by_a_resume() {
    let f = fx_plain().await;
    context::replace_for_project(&mut f.db.conn().await.unwrap(), f.project, &[]).await.unwrap();
    let empty = create(&f, "paused with no context").await;
    add_items(&f, "w", 3).await; // written while paused (under permits)
    let before = rows(&f).await.1;
    assert_eq!(restore_context_keeping_new(&f, empty.id.into()).await, 0, "nothing to bring back");
    assert_eq!(rows(&f).await.1, before, "the items written since are kept");
}
