//! API load benchmark: `GET pause-status` with 64 concurrent connections on 127.0.0.1
//! (requests/second, p50/p99 latency), and event delivery latency to 1,000 WebSocket
//! subscribers. One JSON object per measure on stdout.
#![allow(missing_docs, clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::error::Error;
use std::time::{Duration, Instant};

use codeframe_api::{AppState, create_token, router};
use codeframe_core::EventSink;
use codeframe_models::{EventKind, ProjectEvent, ProjectStatus, timestamp};
use codeframe_persistence::Db;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const CONNECTIONS: usize = 64;
const LOAD_SECONDS: u64 = 5;
const SUBSCRIBERS: usize = 1000;
const EVENTS: usize = 20;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() as f64) * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn r(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
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

async fn fanout(ws_url: String, token: String, project: i64, state: AppState) -> Res<()> {
    let mut clients = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url.as_str())?;
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        ws.send(Message::Text(
            serde_json::json!({"type": "subscribe", "project_id": project}).to_string().into(),
        ))
        .await?;
        let _subscribed = ws.next().await;
        clients.push(ws);
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
    for _ in 0..EVENTS {
        let event = ProjectEvent {
            project_id: project,
            timestamp: timestamp::now_utc(),
            kind: EventKind::StatusChanged { from: ProjectStatus::Active, to: ProjectStatus::Paused },
        };
        state.hub.publish(&event).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut lat = Vec::new();
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        lat.push(v);
        if lat.len() == SUBSCRIBERS * EVENTS {
            break;
        }
    }
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        serde_json::json!({"name": "ws_fanout", "params": {"subscribers": SUBSCRIBERS, "events": EVENTS},
            "delivered": lat.len(), "p50": r(percentile(&lat, 0.5)), "p99": r(percentile(&lat, 0.99)),
            "median": r(percentile(&lat, 0.5)), "p95": r(percentile(&lat, 0.95)), "unit": "ms", "runs": lat.len()})
    );
    Ok(())
}

fn main() -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let db = Db::open(dir.path().join("bench.db").to_str().ok_or("path")?).await?;
        let token = create_token(&db, "bench", "bench").await.map_err(|e| e.message)?;
        let state = AppState::new(db.clone());
        let root = dir.path().join("project");
        std::fs::create_dir_all(&root)?;
        let user =
            codeframe_persistence::auth::ensure_user(&mut db.conn().await?, "bench", timestamp::now_utc())
                .await?;
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = router(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        load(format!("http://{addr}"), token.clone(), project).await?;
        fanout(format!("ws://{addr}/ws"), token, project, state).await?;
        Ok(())
    })
}
