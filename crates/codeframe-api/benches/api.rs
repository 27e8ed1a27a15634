//! API benchmark, one JSON object per measure on stdout:
//! - `pause_status`: `GET pause-status` with 64 concurrent connections on 127.0.0.1;
//! - `ws_fanout`: an event committed by the server's own process → 1,000 WebSocket subscribers;
//! - `event_delivery_cross_process`: an event committed by another process (this benchmark
//!   re-run as a child, using the library on the same database) → a WebSocket subscriber;
//! - `permit_enter`: taking and releasing a run-gate permit (a lease in the database);
//! - `permit_http`: the same over HTTP, as an agent in another language does it.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::error::Error;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use codeframe_api::{AppState, router};
use codeframe_core::{Db, EventError, EventSink, ProjectService, ServiceConfig};
use codeframe_models::{ProjectEvent, timestamp};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const CONNECTIONS: usize = 64;
const LOAD_SECONDS: u64 = 5;
const SUBSCRIBERS: usize = 1000;
const EVENTS: usize = 20;
const CROSS_EVENTS: usize = 200;
const PERMITS: usize = 2000;
const PERMITS_HTTP: usize = 1000;
/// Set in the child process: the database to write events to, as another process would.
const CHILD_DB: &str = "CODEFRAME_BENCH_WRITER_DB";
const CHILD_PROJECT: &str = "CODEFRAME_BENCH_WRITER_PROJECT";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() as f64) * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn r(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn unix_ms() -> f64 {
    (time::OffsetDateTime::now_utc() - time::OffsetDateTime::UNIX_EPOCH).as_seconds_f64() * 1000.0
}

fn print_latencies(name: &str, params: serde_json::Value, mut lat: Vec<f64>) {
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        serde_json::json!({"name": name, "params": params, "delivered": lat.len(),
            "p50": r(percentile(&lat, 0.5)), "p99": r(percentile(&lat, 0.99)),
            "median": r(percentile(&lat, 0.5)), "p95": r(percentile(&lat, 0.95)), "unit": "ms", "runs": lat.len()})
    );
}

async fn load(base: String, token: String, project: i64) -> Res<()> {
    let url = format!("{base}/api/projects/{project}/pause-status");
    let until = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let url = url.clone();
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let mut lat = Vec::new();
            while Instant::now() < until {
                let t = Instant::now();
                let res = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert!(res.status().is_success());
                let _ = res.bytes().await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.total_cmp(b));
    let rps = all.len() as f64 / elapsed;
    println!(
        "{}",
        serde_json::json!({"name": "pause_status", "params": {"connections": CONNECTIONS, "seconds": LOAD_SECONDS},
            "rps": rps.round(), "p50": r(percentile(&all, 0.5)), "p99": r(percentile(&all, 0.99)),
            "median": r(percentile(&all, 0.5)), "p95": r(percentile(&all, 0.95)), "unit": "ms", "runs": all.len()})
    );
    Ok(())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscriber(ws_url: &str, token: &str, project: i64) -> Res<Ws> {
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url)?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
    ws.send(Message::Text(
        serde_json::json!({"type": "subscribe", "project_id": project}).to_string().into(),
    ))
    .await?;
    // The acknowledgement (the server may ping first).
    while let Some(msg) = ws.next().await {
        if matches!(msg?, Message::Text(_)) {
            break;
        }
    }
    Ok(ws)
}

/// One event: an agent assigned or deactivated, alternately (a real change, committed with
/// its event in one transaction).
async fn one_event(service: &ProjectService, project: i64, n: usize) -> Res<()> {
    if n.is_multiple_of(2) {
        service.assign(project, "bench-agent", "worker").await?;
    } else {
        service.deactivate(project, "bench-agent").await?;
    }
    Ok(())
}

async fn fanout(ws_url: String, token: String, project: i64, state: AppState) -> Res<()> {
    let mut clients = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        clients.push(subscriber(&ws_url, &token, project).await?);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<f64>();
    for mut ws in clients {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut got = 0;
            while let Some(Ok(msg)) = ws.next().await {
                if let Message::Text(t) = msg {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    if let Some(sent) = v["timestamp"].as_str().and_then(|s| timestamp::parse(s).ok()) {
                        let lat = (time::OffsetDateTime::now_utc() - sent).as_seconds_f64() * 1000.0;
                        let _ = tx.send(lat);
                        got += 1;
                        if got == EVENTS {
                            break;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    for n in 0..EVENTS {
        one_event(&state.service, project, n).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lat = Vec::new();
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        lat.push(v);
        if lat.len() == SUBSCRIBERS * EVENTS {
            break;
        }
    }
    print_latencies("ws_fanout", serde_json::json!({"subscribers": SUBSCRIBERS, "events": EVENTS}), lat);
    Ok(())
}

/// In the child: prints `seq unix_ms` for each event the moment its transaction committed.
struct CommitClock;

#[async_trait]
impl EventSink for CommitClock {
    async fn publish(&self, event: &ProjectEvent) -> Result<(), EventError> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{} {}", event.seq, unix_ms()).map_err(|e| EventError(e.to_string()))?;
        out.flush().map_err(|e| EventError(e.to_string()))
    }
}

/// The child process: commits events on the shared database, paced, and reports when.
fn writer_child(db: &str, project: i64) -> Res<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let service = ProjectService::with_sink(Db::open(db).await?, Arc::new(CommitClock));
        for n in 0..CROSS_EVENTS {
            one_event(&service, project, n).await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    })
}

async fn cross_process(ws_url: String, token: String, project: i64, db_path: &str) -> Res<()> {
    let mut ws = subscriber(&ws_url, &token, project).await?;
    let received = tokio::spawn(async move {
        let mut at = std::collections::HashMap::new();
        while at.len() < CROSS_EVENTS {
            let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await else {
                break;
            };
            if let Message::Text(t) = msg {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if let Some(seq) = v["seq"].as_i64() {
                    at.insert(seq, unix_ms());
                }
            }
        }
        at
    });
    let exe = std::env::current_exe()?;
    let db = db_path.to_owned();
    let committed = tokio::task::spawn_blocking(move || -> Res<Vec<(i64, f64)>> {
        let child = std::process::Command::new(exe)
            .env(CHILD_DB, db)
            .env(CHILD_PROJECT, project.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut lines = Vec::new();
        let out = child.stdout.ok_or("no child stdout")?;
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            let mut parts = line.split(' ');
            if let (Some(seq), Some(ms)) = (parts.next(), parts.next()) {
                lines.push((seq.parse()?, ms.parse()?));
            }
        }
        Ok(lines)
    })
    .await??;
    let received = received.await?;
    let lat: Vec<f64> =
        committed.iter().filter_map(|(seq, at)| received.get(seq).map(|got| (got - at).max(0.0))).collect();
    let params = serde_json::json!({"events": CROSS_EVENTS, "writer": "another process (library)",
        "poll_interval_ms": ServiceConfig::default().poll_interval.as_millis()});
    print_latencies("event_delivery_cross_process", params, lat);
    Ok(())
}

async fn permit_enter(service: &ProjectService, project: i64) -> Res<()> {
    let mut us = Vec::with_capacity(PERMITS);
    for _ in 0..PERMITS {
        let t = Instant::now();
        let permit = service.enter(project, "bench-agent").await?;
        permit.release().await?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        serde_json::json!({"name": "permit_enter", "params": {"permits": PERMITS, "what": "enter + release"},
            "median": r(percentile(&us, 0.5)), "p95": r(percentile(&us, 0.95)), "p99": r(percentile(&us, 0.99)),
            "unit": "us", "runs": us.len()})
    );
    Ok(())
}

async fn permit_http(base: &str, token: &str, project: i64) -> Res<()> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/projects/{project}/permits");
    let mut ms = Vec::with_capacity(PERMITS_HTTP);
    for _ in 0..PERMITS_HTTP {
        let t = Instant::now();
        let res = client
            .post(&url)
            .bearer_auth(token)
            .json(&serde_json::json!({"agent_id": "bench-agent"}))
            .send()
            .await?;
        let permit: serde_json::Value = res.error_for_status()?.json().await?;
        let id = permit["permit_id"].as_i64().ok_or("no permit_id")?;
        client.delete(format!("{url}/{id}")).bearer_auth(token).send().await?.error_for_status()?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        serde_json::json!({"name": "permit_http", "params": {"permits": PERMITS_HTTP, "what": "POST permits + DELETE"},
            "p50": r(percentile(&ms, 0.5)), "p99": r(percentile(&ms, 0.99)),
            "median": r(percentile(&ms, 0.5)), "p95": r(percentile(&ms, 0.95)), "unit": "ms", "runs": ms.len()})
    );
    Ok(())
}

fn main() -> Res<()> {
    if let (Ok(db), Ok(project)) = (std::env::var(CHILD_DB), std::env::var(CHILD_PROJECT)) {
        return writer_child(&db, project.parse()?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let db_path = dir.path().join("bench.db");
        let db_path = db_path.to_str().ok_or("path")?.to_owned();
        let db = Db::open(&db_path).await?;
        let state = AppState::new(db).await?;
        let token = state.service.create_token("bench", "bench", None).await?;
        let root = dir.path().join("project");
        std::fs::create_dir_all(&root)?;
        let user = state.service.ensure_user("bench").await?;
        let project = state
            .service
            .create_project(codeframe_models::NewProject {
                name: "bench".into(),
                description: String::new(),
                root_path: root.to_string_lossy().into_owned(),
                owner_id: Some(user.id),
            })
            .await?
            .id;
        state.service.start(project).await?;
        state.service.register_agent("bench-agent", "worker", None).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        load(format!("http://{addr}"), token.clone(), project).await?;
        permit_enter(&state.service, project).await?;
        permit_http(&format!("http://{addr}"), &token, project).await?;
        cross_process(format!("ws://{addr}/ws"), token.clone(), project, &db_path).await?;
        fanout(format!("ws://{addr}/ws"), token, project, state).await?;
        Ok(())
    })
}
