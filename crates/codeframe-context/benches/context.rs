//! Context benchmarks: flash save of 10k and 100k items over 4 agents (time and peak
//! memory), and adding 10k items in bulk (tokenizing included). One JSON object per measure.
#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, clippy::expect_used)]

use codeframe_models::ProjectId;
use codeframe_testkit::bench::{emit, peak_rss_mb, reset_peak_rss};
use std::error::Error;
use std::time::Instant;

use codeframe_context::{ContextManager, SqlContextManager};
use codeframe_models::{ContextItem, ItemType, NewContextItem, NewProject, Tier, timestamp};
use codeframe_persistence::{Db, agents, context, projects};

const AGENTS: [&str; 4] = ["agent-0", "agent-1", "agent-2", "agent-3"];
const RUNS: usize = 5;

type Res<T> = Result<T, Box<dyn Error>>;

fn content(n: usize) -> String {
    // ~400 bytes of code-like text, different per item.
    let mut s = format!("// item {n}\nfn handler_{n}(req: Request) -> Response {{\n");
    while s.len() < 380 {
        s.push_str(&format!("    let v{n} = compute({n}, \"{}\");\n", n % 97));
    }
    s.push_str("}\n");
    s
}

async fn setup(n: usize) -> Res<(tempfile::TempDir, Db, i64)> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path().join("bench.db").to_str().ok_or("path")?).await?;
    let now = timestamp::now_utc();
    let mut tx = db.begin().await?;
    let p = projects::insert(
        &mut tx,
        &NewProject {
            name: "bench".into(),
            description: String::new(),
            root_path: "/tmp".into(),
            owner_id: None,
        },
        now,
    )
    .await?;
    for a in AGENTS {
        agents::insert(&mut tx, a, "worker", None, now).await?;
        agents::assign(&mut tx, p.id, a, "worker", now).await?;
    }
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        // ~40% COLD, the rest split between WARM and HOT.
        let tier = match i % 10 {
            0..=3 => Tier::Cold,
            4..=7 => Tier::Warm,
            _ => Tier::Hot,
        };
        batch.push(ContextItem {
            id: format!("{i:08}"),
            project_id: p.id,
            agent_id: AGENTS[i % AGENTS.len()].into(),
            item_type: ItemType::ALL[i % ItemType::ALL.len()],
            content: content(i),
            token_count: 100,
            importance_score: 0.5,
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
    tx.commit().await?;
    Ok((dir, db, p.id.into()))
}

async fn bench_flash_save(n: usize) -> Res<()> {
    let (_dir, db, project_id) = setup(n).await?;
    let manager = SqlContextManager::new(db.clone());
    let mut times = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..RUNS {
        reset_peak_rss();
        let started = Instant::now();
        let mut tx = db.begin().await?;
        let mut archived = 0;
        for a in AGENTS {
            archived += manager.flash_save(&mut tx, ProjectId(project_id), a).await?.items_archived;
        }
        tx.commit().await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        peaks.push(peak_rss_mb());
        assert_eq!(archived as usize, n * 4 / 10, "every COLD item archived");
        for a in AGENTS {
            manager.restore_archived(ProjectId(project_id), a, None).await?;
        }
    }
    let params = serde_json::json!({"n": n, "a": AGENTS.len()});
    emit("flash_save", &params, times, "ms");
    emit("flash_save_peak_rss", &params, peaks, "MB");
    Ok(())
}

async fn bench_bulk_add(n: usize) -> Res<()> {
    let (_dir, db, project_id) = setup(0).await?;
    let manager = SqlContextManager::new(db);
    // Load the tokenizer outside the measure: it is loaded once per process.
    codeframe_context::tokens::count("warm up")?;
    let mut times = Vec::new();
    for run in 0..RUNS {
        let items: Vec<_> = (0..n)
            .map(|i| NewContextItem {
                agent_id: AGENTS[i % AGENTS.len()].into(),
                item_type: ItemType::ALL[i % ItemType::ALL.len()],
                content: content(i + run * n),
                created_at: None,
                access_count: None,
            })
            .collect();
        let started = Instant::now();
        let ids = manager.add_items(ProjectId(project_id), items).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(ids.len(), n);
    }
    emit("add_items_bulk", &serde_json::json!({"n": n}), times, "ms");
    Ok(())
}

fn main() -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        bench_flash_save(10_000).await?;
        bench_flash_save(100_000).await?;
        bench_bulk_add(10_000).await
    })
}
