//! Pause benchmarks over the scenarios S(N, A, F) of design §8: N context items (~400 B, mixed
//! types, 40 % COLD) over A agents, a tree of F files (~2 KiB) of which 10 % changed since the
//! last checkpoint. Measures the pause, a second pause after 1 % of the files changed, how long
//! the pause held SQLite's write lock (`write_lock_held`, as the pause measures its own write
//! transaction), the resume after a change during the pause (one item touched: the checkpoint's
//! context is read back and compared), the resume after an untouched pause
//! (`resume_unchanged`), and the peak RSS of the pause. One JSON object per measure on stdout.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use codeframe_models::ProjectId;
use codeframe_testkit::bench::{emit, peak_rss_mb, reset_peak_rss};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use codeframe_checkpoint::CheckpointSpec;
use codeframe_core::ProjectService;
use codeframe_models::{
    CheckpointTrigger, ContextItem, ItemType, PauseRequest, ProjectStatus, ResumeOptions, Tier, timestamp,
};
use codeframe_persistence::{Db, agents, context, projects};

const RUNS: usize = 5;
type Res<T> = Result<T, Box<dyn Error>>;

fn file_content(n: usize, version: usize) -> Vec<u8> {
    let mut s = format!("// file {n} version {version}\n");
    while s.len() < 2048 {
        s.push_str(&format!("fn item_{n}_{}() -> u64 {{ {} }}\n", s.len(), n * 31 + version));
    }
    s.into_bytes()
}

/// Writes file `n`, dated in the past (outside the stat cache's racy window, as most files
/// of a real project are), each version with its own mtime.
fn write_file(root: &Path, n: usize, version: usize) -> Res<()> {
    let p = root.join(format!("src/mod_{:03}/file_{n:05}.rs", n / 100));
    std::fs::create_dir_all(p.parent().ok_or("parent")?)?;
    std::fs::write(&p, file_content(n, version))?;
    let t = SystemTime::now() - Duration::from_secs(7200) + Duration::from_secs(version as u64);
    std::fs::File::options().write(true).open(&p)?.set_modified(t)?;
    Ok(())
}

fn item_content(i: usize) -> String {
    let mut s = format!("// context item {i}\nfn handler_{i}(req: Request) -> Response {{\n");
    while s.len() < 380 {
        s.push_str(&format!("    let v{i} = compute({i}, \"{}\");\n", i % 97));
    }
    s.push_str("}\n");
    s
}

struct Scenario {
    _dir: tempfile::TempDir,
    svc: ProjectService,
    db: Db,
    project: i64,
    root: PathBuf,
    agents: Vec<String>,
    files: usize,
}

/// The backends to measure: SQLite, and PostgreSQL when `CODEFRAME_BENCH_POSTGRES_URL` names a
/// server (`cargo xtask bench` starts a throwaway one when PostgreSQL is installed).
fn backends() -> Vec<(&'static str, Option<String>)> {
    let mut all = vec![("sqlite", None)];
    if let Ok(server) = std::env::var("CODEFRAME_BENCH_POSTGRES_URL") {
        all.push(("postgres", Some(server)));
    }
    all
}

async fn setup(n: usize, a: usize, f: usize, server: Option<&str>) -> Res<Scenario> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("project");
    for i in 0..f {
        write_file(&root, i, 0)?;
    }
    let location = match server {
        Some(server) => format!("{server}/cf_bench_pause_{}_{n}_{a}_{f}", std::process::id()),
        None => dir.path().join("bench.db").to_str().ok_or("path")?.to_owned(),
    };
    let db = Db::open(&location).await?;
    let svc = ProjectService::with_defaults(db.clone());
    let project = svc.create("bench", &root).await?.id;
    let now = timestamp::now_utc();
    let agent_ids: Vec<String> = (0..a).map(|i| format!("agent-{i}")).collect();
    let mut tx = db.begin().await?;
    for id in &agent_ids {
        agents::insert(&mut tx, id, "worker", None, now).await?;
        agents::assign(&mut tx, project, id, "worker", now).await?;
    }
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let tier = match i % 10 {
            0..=3 => Tier::Cold,
            4..=7 => Tier::Warm,
            _ => Tier::Hot,
        };
        batch.push(ContextItem {
            id: format!("{i:08}"),
            project_id: project,
            agent_id: agent_ids[i % a].clone(),
            item_type: ItemType::ALL[i % ItemType::ALL.len()],
            content: item_content(i),
            token_count: 100,
            importance_score: match tier {
                Tier::Hot => 0.9,
                Tier::Warm => 0.6,
                Tier::Cold => 0.2,
            },
            tier,
            access_count: 0,
            created_at: now,
            last_accessed: now,
            archived_at: None,
            archived_by_flash_save: None,
        });
        if batch.len() == 10_000 {
            context::insert_many(&mut tx, &batch).await?;
            batch.clear();
        }
    }
    context::insert_many(&mut tx, &batch).await?;
    let mut p = projects::get(&mut tx, project).await?;
    p.status = ProjectStatus::Active;
    projects::update(&mut tx, &p, now).await?;
    tx.commit().await?;
    // The last checkpoint, before 10 % of the files change.
    let spec = CheckpointSpec {
        name: "baseline".into(),
        description: String::new(),
        trigger: CheckpointTrigger::Manual,
        pause_reason: None,
    };
    let id = svc.checkpoints().reserve_id().await?;
    let mut tx = db.begin().await?;
    svc.checkpoints().create(&mut tx, project, id, spec).await?;
    tx.commit().await?;
    Ok(Scenario { _dir: dir, svc, db, project: project.into(), root, agents: agent_ids, files: f })
}

/// Keeps the `write_lock_ms` the last "project paused" log line reported.
#[derive(Clone, Default)]
struct LockHeld(Arc<AtomicU64>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LockHeld {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Find<'a>(&'a AtomicU64);
        impl tracing::field::Visit for Find<'_> {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "write_lock_ms" {
                    self.0.store(value, Ordering::SeqCst);
                }
            }
            fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
                self.record_u64(field, u64::try_from(value).unwrap_or(0));
            }
            fn record_u128(&mut self, field: &tracing::field::Field, value: u128) {
                self.record_u64(field, u64::try_from(value).unwrap_or(u64::MAX));
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        event.record(&mut Find(&self.0));
    }
}

async fn bench(
    n: usize,
    a: usize,
    f: usize,
    lock: &LockHeld,
    backend: &str,
    server: Option<&str>,
) -> Res<()> {
    let params = serde_json::json!({"n": n, "a": a, "f": f, "backend": backend});
    let s = setup(n, a, f, server).await?;
    let (mut pause, mut incremental, mut resume, mut peak) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut lock_held, mut resume_unchanged) = (Vec::new(), Vec::new());
    let mut version = 1;
    for run in 0..RUNS {
        // 10 % of the files changed since the last checkpoint; COLD context not yet archived.
        for a in &s.agents {
            s.svc.context().restore_archived(ProjectId(s.project), a, None).await?;
        }
        for k in 0..s.files / 10 {
            write_file(&s.root, (run * 7 + k * 10) % s.files, version)?;
        }
        version += 1;
        reset_peak_rss();
        let started = Instant::now();
        let out = s.svc.pause(ProjectId(s.project), PauseRequest { reason: Some("bench".into()) }).await?;
        pause.push(started.elapsed().as_secs_f64() * 1000.0);
        peak.push(peak_rss_mb());
        lock_held.push(lock.0.load(Ordering::SeqCst) as f64);
        assert_eq!(out.items_archived as usize, n * 4 / 10);

        // Something changed while paused (an item read, as an operator's tool might): the
        // resume reads the checkpoint's context back and puts the item as it was.
        let touched = format!("{:08}", (run * 31) % n);
        context::touch(&mut s.db.conn().await?, &touched, timestamp::now_utc()).await?;
        let started = Instant::now();
        s.svc.resume(ProjectId(s.project), ResumeOptions::default()).await?;
        resume.push(started.elapsed().as_secs_f64() * 1000.0);

        // The next pause, after 1 % of the files changed.
        for k in 0..(s.files / 100).max(1) {
            write_file(&s.root, (run * 13 + k * 100 + 3) % s.files, version)?;
        }
        version += 1;
        let started = Instant::now();
        s.svc.pause(ProjectId(s.project), PauseRequest::default()).await?;
        incremental.push(started.elapsed().as_secs_f64() * 1000.0);
        // Nothing changed while paused.
        let started = Instant::now();
        s.svc.resume(ProjectId(s.project), ResumeOptions::default()).await?;
        resume_unchanged.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    emit("pause", &params, pause, "ms");
    emit("pause_incremental", &params, incremental, "ms");
    emit("write_lock_held", &params, lock_held, "ms");
    emit("resume", &params, resume, "ms");
    emit("resume_unchanged", &params, resume_unchanged, "ms");
    emit("peak_rss", &params, peak, "MB");
    drop(s.db);
    Ok(())
}

fn main() -> Res<()> {
    use tracing_subscriber::prelude::*;
    // CODEFRAME_BENCH_LOG=codeframe_core=debug shows each step's duration on stderr.
    let lock = LockHeld::default();
    let filter = std::env::var("CODEFRAME_BENCH_LOG").unwrap_or_else(|_| "off".into());
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::EnvFilter::new(filter));
    let lock_filter =
        tracing_subscriber::filter::Targets::new().with_target("codeframe_core::pause", tracing::Level::INFO);
    let _ = tracing_subscriber::registry().with(log).with(lock.clone().with_filter(lock_filter)).try_init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let only = std::env::var("CODEFRAME_BENCH_SCENARIO").ok();
    rt.block_on(async {
        for (n, a, f) in [(1_000, 2, 100), (10_000, 4, 1_000), (50_000, 8, 5_000), (100_000, 8, 10_000)] {
            if only.as_deref().is_some_and(|o| o != format!("{n},{a},{f}")) {
                continue;
            }
            for (backend, server) in backends() {
                bench(n, a, f, &lock, backend, server.as_deref()).await?;
            }
        }
        Ok(())
    })
}
