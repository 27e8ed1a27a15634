//! Checkpoint benchmarks: create for 1k and 10k files (first snapshot, then after 1% of the
//! files changed), restore, store size after ten unchanged checkpoints vs one, and the peak
//! memory of a snapshot holding a 1 GiB file (streamed, not read whole), and the first snapshot
//! of 10k files beside stock `git add -A && git commit` of the same tree (for the ratio only),
//! and the store after garbage collection beside a fresh store of the same kept checkpoints.
//! One JSON object per measure on stdout.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use codeframe_models::{CheckpointId, ProjectId};
use codeframe_testkit::bench::{emit, peak_rss_mb};
use std::error::Error;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use codeframe_checkpoint::{
    CheckpointManager, CheckpointSpec, Durability, GitCheckpointManager, RestoreMode, RestoreWhat,
};
use codeframe_models::{CheckpointTrigger, NewProject, timestamp};
use codeframe_persistence::{Db, DbOptions, projects};

const RUNS: usize = 5;
type Res<T> = Result<T, Box<dyn Error>>;

fn file_content(n: usize, version: usize) -> Vec<u8> {
    let mut s = format!("// file {n} version {version}\n");
    while s.len() < 2048 {
        s.push_str(&format!("fn item_{n}_{}() -> u64 {{ {} }}\n", s.len(), n * 31 + version));
    }
    s.into_bytes()
}

fn path_of(root: &Path, n: usize) -> std::path::PathBuf {
    root.join(format!("src/mod_{:03}/file_{n:05}.rs", n / 100))
}

/// Writes file `n`, dated an hour ago (outside the stat cache's racy window, as most of a
/// real project's files are).
fn write_file(root: &Path, n: usize, version: usize) -> Res<()> {
    let p = path_of(root, n);
    std::fs::create_dir_all(p.parent().ok_or("parent")?)?;
    std::fs::write(&p, file_content(n, version))?;
    let old = SystemTime::now() - Duration::from_secs(3600) + Duration::from_millis(version as u64);
    std::fs::File::options().write(true).open(&p)?.set_modified(old)?;
    Ok(())
}

fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

async fn setup(files: usize) -> Res<(tempfile::TempDir, Db, i64, std::path::PathBuf)> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("project");
    for n in 0..files {
        write_file(&root, n, 0)?;
    }
    let db = Db::open(dir.path().join("bench.db").to_str().ok_or("path")?).await?;
    let p = projects::insert(
        &mut db.conn().await?,
        &NewProject {
            name: "bench".into(),
            description: String::new(),
            root_path: root.to_str().ok_or("path")?.into(),
            owner_id: None,
        },
        timestamp::now_utc(),
    )
    .await?;
    Ok((dir, db, p.id.into(), root))
}

async fn checkpoint(db: &Db, cm: &GitCheckpointManager, project: i64) -> Res<(f64, i64)> {
    let spec = CheckpointSpec {
        name: "bench".into(),
        description: String::new(),
        trigger: CheckpointTrigger::Manual,
        pause_reason: None,
    };
    let started = Instant::now();
    let id = cm.reserve_id().await?;
    let mut tx = db.begin().await?;
    let cp = cm.create(&mut tx, ProjectId(project), id, spec).await?;
    tx.commit().await?;
    Ok((started.elapsed().as_secs_f64() * 1000.0, cp.id.into()))
}

async fn bench(files: usize) -> Res<()> {
    let params = serde_json::json!({"f": files});
    let (_dir, db, project, root) = setup(files).await?;
    let cm = GitCheckpointManager::new(db.clone());
    let store = root.join(".codeframe");

    // First snapshot: a fresh store each run.
    let mut first = Vec::new();
    for _ in 0..RUNS {
        let _ = std::fs::remove_dir_all(&store);
        settle();
        first.push(checkpoint(&db, &cm, project).await?.0);
    }
    emit("checkpoint_create", &params, first, "ms");

    // After 1% of the files changed.
    let changed = (files / 100).max(1);
    let mut incremental = Vec::new();
    let mut last = 0;
    for run in 0..RUNS {
        for k in 0..changed {
            write_file(&root, (run * changed + k * 97) % files, run + 1)?;
        }
        let (ms, id) = checkpoint(&db, &cm, project).await?;
        incremental.push(ms);
        last = id;
    }
    emit("checkpoint_create_incremental", &params, incremental, "ms");

    // Restore files, state and context after 1% of the files changed again.
    let mut restore = Vec::new();
    let what = RestoreWhat { files: true, state: true, context: true, keep_new_items: false };
    for run in 0..RUNS {
        for k in 0..changed {
            write_file(&root, (run * changed + k * 89) % files, 100 + run)?;
        }
        let started = Instant::now();
        let report = cm.restore(ProjectId(project), CheckpointId(last), what, RestoreMode::Apply).await?;
        restore.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(report.files_written >= 1);
    }
    emit("checkpoint_restore", &params, restore, "ms");

    // Disk: one checkpoint vs ten of an unchanged project.
    let _ = std::fs::remove_dir_all(&store);
    checkpoint(&db, &cm, project).await?;
    let one = disk_usage(&store) as f64;
    for _ in 0..9 {
        checkpoint(&db, &cm, project).await?;
    }
    let ten = disk_usage(&store) as f64;
    emit("store_size_one", &params, vec![one / 1e6], "MB");
    emit("store_size_ten_unchanged", &params, vec![ten / 1e6], "MB");
    emit("store_size_ratio", &params, vec![ten / one], "x");
    Ok(())
}

/// A tree holding one 1 GiB sparse file: the snapshot streams it into the store, so its peak
/// memory does not depend on the file's size. Run first, before anything else grew the heap.
async fn snapshot_of_a_large_file() -> Res<()> {
    let (_dir, db, project, root) = setup(10).await?;
    let big = root.join("data.bin");
    std::fs::File::create(&big)?.set_len(1 << 30)?;
    let cm = GitCheckpointManager::new(db.clone()).with_max_file_size(2 << 30);
    let _ = std::fs::write("/proc/self/clear_refs", "5"); // the peak from here on
    let (ms, id) = checkpoint(&db, &cm, project).await?;
    let peak = peak_rss_mb();
    let cp = cm.get(ProjectId(project), CheckpointId(id)).await?;
    assert!(cp.metadata.skipped_files.is_empty(), "the file was snapshotted, not skipped");
    let params = serde_json::json!({"file_bytes": 1u64 << 30, "sparse": true});
    emit("snapshot_peak_rss", &params, vec![peak], "MB");
    emit("snapshot_large_file", &params, vec![ms], "ms");
    Ok(())
}

/// Flushes dirty pages, so a measure starts from a settled tree as a user's does (not with the
/// kernel still writing back the files this benchmark just generated).
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

/// Stock `git init && git add -A && git commit` on `root`, timed; the `.git` it made is removed.
fn git_add_commit(root: &Path) -> Res<f64> {
    let git = |args: &[&str]| -> Res<()> {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .output()?;
        if !out.status.success() {
            return Err(format!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(())
    };
    let started = Instant::now();
    git(&["init", "-q"])?;
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "bench"])?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    std::fs::remove_dir_all(root.join(".git"))?;
    Ok(ms)
}

/// The first snapshot of a tree of `files` files of 2 KiB as a user meets it (settled on disk,
/// no store yet), beside stock git committing the same tree in the same run.
async fn first_snapshot_vs_git(files: usize) -> Res<()> {
    let params = serde_json::json!({"files": files, "file_bytes": 2048});
    let (_dir, db, project, root) = setup(files).await?;
    let cm = GitCheckpointManager::new(db.clone());
    let store = root.join(".codeframe");
    let (mut ours, mut git) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let _ = std::fs::remove_dir_all(&store);
        settle();
        ours.push(checkpoint(&db, &cm, project).await?.0);
        let _ = std::fs::remove_dir_all(&store);
        settle();
        git.push(git_add_commit(&root)?);
    }
    emit("snapshot_first", &params, ours, "ms");
    emit("git_add_commit", &params, git, "ms");
    Ok(())
}

/// The cost of each durability level: first and incremental checkpoints, and a restore of
/// files, with the store's writes and the database's commits flushed (full) or not (normal).
async fn durability_cost(files: usize) -> Res<()> {
    for (level, durability) in [("normal", Durability::Normal), ("full", Durability::Full)] {
        let (dir, _, project, root) = setup(files).await?;
        let options = DbOptions { synchronous_full: durability == Durability::Full, ..DbOptions::default() };
        let db = Db::open_with(dir.path().join("bench.db").to_str().ok_or("path")?, options).await?;
        let cm = GitCheckpointManager::new(db.clone()).with_durability(durability);
        let store = root.join(".codeframe");
        let (mut first, mut incremental, mut restore) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..RUNS {
            let _ = std::fs::remove_dir_all(&store);
            settle();
            let (ms, base) = checkpoint(&db, &cm, project).await?;
            first.push(ms);
            for k in 0..(files / 100).max(1) {
                write_file(&root, (run * 7 + k * 97) % files, run + 1)?;
            }
            incremental.push(checkpoint(&db, &cm, project).await?.0);
            for k in 0..(files / 100).max(1) {
                write_file(&root, (run * 11 + k * 89) % files, run + 100)?;
            }
            let what = RestoreWhat { files: true, state: false, context: false, keep_new_items: false };
            let started = Instant::now();
            cm.restore(ProjectId(project), CheckpointId(base), what, RestoreMode::Apply).await?;
            restore.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        for (kind, samples) in [("first", first), ("incremental", incremental), ("restore_files", restore)] {
            let params = serde_json::json!({"f": files, "durability": level, "operation": kind});
            emit("durability_cost", &params, samples, "ms");
        }
    }
    Ok(())
}

/// Objects only: what garbage collection is about (the stat cache and refs are beside).
fn objects_bytes(root: &Path) -> f64 {
    disk_usage(&root.join(".codeframe/snapshots.git/objects")) as f64
}

/// A history of `history` checkpoints, 5% of the files changing between them, pruned to the
/// newest `kept` and collected; beside a fresh store made of just those `kept` states.
async fn store_bytes_after_gc(files: usize, history: usize, kept: usize) -> Res<()> {
    let params = serde_json::json!({"f": files, "checkpoints": history, "kept": kept});
    let (_dir, db, project, root) = setup(files).await?;
    let cm = GitCheckpointManager::new(db.clone());
    let mut versions = vec![0usize; files];
    let mut states = Vec::new();
    let mut ids = Vec::new();
    for step in 0..history {
        for k in 0..(files / 20).max(1) {
            let n = (step * 131 + k * 97) % files;
            versions[n] = step + 1;
            write_file(&root, n, step + 1)?;
        }
        states.push(versions.clone());
        ids.push(checkpoint(&db, &cm, project).await?.1);
    }
    for id in &ids[..history - kept] {
        cm.delete(ProjectId(project), CheckpointId(*id)).await?;
    }
    let before = objects_bytes(&root);
    let started = Instant::now();
    cm.collect_garbage(ProjectId(project), 0).await?.ok_or("no store")?;
    let gc_ms = started.elapsed().as_secs_f64() * 1000.0;
    let after = objects_bytes(&root);

    // The same kept states, checkpointed into a fresh store.
    let (_fresh_dir, fresh_db, fresh_project, fresh_root) = setup(files).await?;
    let fresh_cm = GitCheckpointManager::new(fresh_db.clone());
    let mut current = vec![0usize; files];
    for state in &states[history - kept..] {
        for (n, v) in state.iter().enumerate() {
            if current[n] != *v {
                write_file(&fresh_root, n, *v)?;
                current[n] = *v;
            }
        }
        checkpoint(&fresh_db, &fresh_cm, fresh_project).await?;
    }
    let fresh = objects_bytes(&fresh_root);
    emit("store_bytes_before_gc", &params, vec![before / 1e6], "MB");
    emit("store_bytes_after_gc", &params, vec![after / 1e6], "MB");
    emit("store_bytes_fresh", &params, vec![fresh / 1e6], "MB");
    emit("store_gc_ratio", &params, vec![after / fresh], "x");
    emit("gc_duration", &params, vec![gc_ms], "ms");
    Ok(())
}

fn main() -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        // `CODEFRAME_BENCH_ONLY=gc|durability` runs those measures alone.
        match std::env::var("CODEFRAME_BENCH_ONLY").as_deref() {
            Ok("gc") => {
                store_bytes_after_gc(1_000, 20, 5).await?;
                return store_bytes_after_gc(10_000, 20, 5).await;
            }
            Ok("durability") => return durability_cost(1_000).await,
            _ => {}
        }
        snapshot_of_a_large_file().await?;
        first_snapshot_vs_git(10_000).await?;
        bench(1_000).await?;
        durability_cost(1_000).await?;
        store_bytes_after_gc(1_000, 20, 5).await?;
        store_bytes_after_gc(10_000, 20, 5).await?;
        bench(10_000).await
    })
}
