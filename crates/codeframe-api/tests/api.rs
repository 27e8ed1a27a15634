//! The real server on 127.0.0.1 (port 0), a real HTTP client and real WebSocket clients.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use codeframe_testkit::git;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use codeframe_api::{AppState, EventHub, router};
use codeframe_core::{
    CheckpointManager, CheckpointSpec, ContextError, ContextManager, Db, FileDiff, FlashSavePlan,
    GitCheckpointManager, ItemPage, ListQuery, ProjectService, ReadTx, ReconcileReport, RestoreMode,
    RestoreReport, RestoreWhat, ServiceConfig, SqlContextManager, Tx, VerifyReport,
};
use codeframe_models::{
    Checkpoint, CheckpointId, ContextItem, FlashSaveId, FlashSaveReport, NewContextItem, ProjectId,
    TierTotals,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

#[path = "api/schema_fuzz.rs"]
mod schema_fuzz;

struct Srv {
    hub: EventHub,
    tmp: TempDir,
    base: String,
    ws: String,
    alice: String,
    bob: String,
    http: reqwest::Client,
    db: Db,
    service: ProjectService,
}

async fn serve(state: AppState, db: Db, tmp: TempDir) -> Srv {
    let hub = state.hub.clone();
    let service = state.service.clone();
    let alice = state.service.create_token("alice", "test", None).await.unwrap();
    let bob = state.service.create_token("bob", "test", None).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    Srv {
        hub,
        tmp,
        base: format!("http://{addr}"),
        ws: format!("ws://{addr}/ws"),
        alice,
        bob,
        http: reqwest::Client::new(),
        db,
        service,
    }
}

/// The settings of a served test home in `tmp`: projects under `tmp/work`, their snapshot
/// stores under `tmp/home/stores` (the database is `tmp/home/state.db`).
fn served(tmp: &Path, config: ServiceConfig) -> ServiceConfig {
    std::fs::create_dir_all(tmp.join("work")).unwrap();
    std::fs::create_dir_all(tmp.join("home")).unwrap();
    ServiceConfig {
        workspace_roots: vec![tmp.join("work").canonicalize().unwrap()],
        stores_dir: Some(tmp.join("home/stores")),
        ..config
    }
}

async fn open_home(tmp: &TempDir) -> Db {
    std::fs::create_dir_all(tmp.path().join("home")).unwrap();
    Db::open(&codeframe_testkit::database::location(&tmp.path().join("home"))).await.unwrap()
}

async fn start() -> Srv {
    start_with(|db| Arc::new(GitCheckpointManager::new(db)), ServiceConfig::default()).await
}

/// A server over a service built from its parts (a checkpoint manager wrapper, settings).
async fn start_with(checkpoints: fn(Db) -> Arc<dyn CheckpointManager>, config: ServiceConfig) -> Srv {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_home(&tmp).await;
    let service = ProjectService::builder()
        .db(db.clone())
        .context_manager(Arc::new(SqlContextManager::new(db.clone())))
        .checkpoint_manager(checkpoints(db.clone()))
        .config(served(tmp.path(), config))
        .build()
        .await
        .unwrap();
    serve(AppState::from_service(service).await.unwrap(), db, tmp).await
}

impl Srv {
    /// The snapshot store of a served project (under the server's home).
    fn store(&self, id: i64) -> PathBuf {
        self.tmp.path().join("home/stores").join(format!("{id}.git"))
    }

    fn root(&self, name: &str) -> PathBuf {
        let root = self.tmp.path().join("work").join(name);
        if !root.exists() {
            std::fs::create_dir_all(root.join("src")).unwrap();
            git(&root, &["init", "-q"]);
            std::fs::write(root.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
        }
        root
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() })
    }

    async fn alice(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.alice.clone()), body).await
    }

    async fn project(&self, name: &str) -> i64 {
        let root = self.root(name);
        let (s, v) =
            self.alice("POST", "/api/projects", Some(json!({"name": name, "root_path": root}))).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let id = v["id"].as_i64().unwrap();
        let (s, _) = self.alice("POST", &format!("/api/projects/{id}/start"), None).await;
        assert_eq!(s, StatusCode::OK);
        id
    }

    async fn ws_connect(&self, token: Option<&str>) -> WsClient {
        let mut req =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(self.ws.as_str())
                .unwrap();
        if let Some(t) = token {
            req.headers_mut().insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        ws
    }
}

type WsClient = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_send(ws: &mut WsClient, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON text message, or `None` after `wait`.
async fn ws_next(ws: &mut WsClient, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??.ok()?;
        match msg {
            Message::Text(t) => return Some(serde_json::from_str(&t).unwrap()),
            Message::Close(frame) => {
                return Some(json!({"type": "closed", "frame": frame.map(|f| f.code.to_string())}));
            }
            _ => continue,
        }
    }
}

fn assert_error_shape(v: &Value) {
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["details"].is_object(), "{v}");
}

// ---------------------------------------------------------------- the main flow

#[tokio::test]
async fn create_start_pause_status_resume() {
    let srv = start().await;
    let id = srv.project("flow").await;
    let (s, v) =
        srv.alice("POST", &format!("/api/projects/{id}/agents"), Some(json!({"agent_id": "w1"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = srv
        .alice(
            "POST",
            &format!("/api/projects/{id}/agents/w1/context/bulk"),
            Some(json!({"items": [
                {"item_type": "TASK", "content": "ship it"},
                {"item_type": "PRD_SECTION", "content": "old requirement", "created_at": "2026-01-01T00:00:00Z"}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, paused) =
        srv.alice("POST", &format!("/api/projects/{id}/pause"), Some(json!({"reason": "lunch"}))).await;
    assert_eq!(s, StatusCode::OK, "{paused}");
    for field in [
        "success",
        "checkpoint_id",
        "tokens_before",
        "tokens_after",
        "reduction_percentage",
        "items_archived",
        "paused_at",
    ] {
        assert!(paused.get(field).is_some(), "{field} in {paused}");
    }
    assert_eq!(paused["items_archived"], 1);

    let (s, st) = srv.alice("GET", &format!("/api/projects/{id}/pause-status"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(st["status"], "paused");
    assert_eq!(st["paused_at"], paused["paused_at"]);
    assert_eq!(st["reason"], "lunch");
    assert_eq!(st["checkpoint_id"], paused["checkpoint_id"]);
    assert!(st["paused_for_seconds"].as_i64().unwrap() >= 0);
    assert_eq!(st["token_totals"]["cold_items"], 0);

    let (s, resumed) = srv.alice("POST", &format!("/api/projects/{id}/resume"), None).await;
    assert_eq!(s, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "planning");
    assert_eq!(resumed["checkpoint_id"], paused["checkpoint_id"]);
    let (_, st) = srv.alice("GET", &format!("/api/projects/{id}/pause-status"), None).await;
    assert_eq!((st["status"].as_str(), st["paused_at"].is_null()), (Some("planning"), true));
}

#[tokio::test]
async fn double_pause_is_409_with_the_existing_pause_in_details() {
    let srv = start().await;
    let id = srv.project("twice").await;
    let (_, first) = srv.alice("POST", &format!("/api/projects/{id}/pause"), None).await;
    let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/pause"), Some(json!({}))).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_error_shape(&v);
    assert_eq!(v["error"]["code"], "already_paused");
    assert_eq!(v["error"]["details"]["checkpoint_id"], first["checkpoint_id"]);
    assert_eq!(v["error"]["details"]["paused_at"], first["paused_at"]);
    let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/start"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_paused")));
}

#[tokio::test]
async fn a_501_character_reason_is_422_and_changes_nothing() {
    let srv = start().await;
    let id = srv.project("long").await;
    let (s, v) = srv
        .alice("POST", &format!("/api/projects/{id}/pause"), Some(json!({"reason": "r".repeat(501)})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_shape(&v);
    let (_, p) = srv.alice("GET", &format!("/api/projects/{id}"), None).await;
    assert_eq!(p["status"], "planning");
}

// ---------------------------------------------------------------- auth

#[tokio::test]
async fn missing_or_invalid_tokens_are_401() {
    let srv = start().await;
    let (s, v) = srv.call("GET", "/api/projects", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_error_shape(&v);
    let (s, _) = srv.call("GET", "/api/projects", Some("cf_not_a_real_token"), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = srv.call("POST", "/api/projects/1/pause", None, Some(json!({}))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = srv.call("GET", "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
}

#[tokio::test]
async fn another_owners_project_is_404_and_untouched() {
    let srv = start().await;
    let id = srv.project("alices").await;
    let bob = srv.bob.clone();
    for (method, path) in [
        ("GET", format!("/api/projects/{id}")),
        ("POST", format!("/api/projects/{id}/pause")),
        ("GET", format!("/api/projects/{id}/pause-status")),
        ("GET", format!("/api/projects/{id}/checkpoints")),
        ("POST", format!("/api/projects/{id}/agents/x/flash-save")),
    ] {
        let (s, v) = srv.call(method, &path, Some(&bob), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert_error_shape(&v);
    }
    let (_, list) = srv.call("GET", "/api/projects", Some(&bob), None).await;
    assert_eq!(list["projects"], json!([]));
    let (_, p) = srv.alice("GET", &format!("/api/projects/{id}"), None).await;
    assert_eq!(p["status"], "planning");
}

// ---------------------------------------------------------------- bad input

#[tokio::test]
async fn bad_input_gets_the_error_shape_and_changes_nothing() {
    let srv = start().await;
    let id = srv.project("strict").await;
    let url = format!("{}/api/projects/{id}/pause", srv.base);
    // Malformed JSON.
    let res = srv
        .http
        .post(&url)
        .bearer_auth(&srv.alice)
        .header("content-type", "application/json")
        .body("{\"reason\":")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_error_shape(&res.json().await.unwrap());
    // Wrong content type.
    let res = srv
        .http
        .post(&url)
        .bearer_auth(&srv.alice)
        .header("content-type", "text/plain")
        .body("{\"reason\":\"x\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_shape(&res.json().await.unwrap());
    let res = srv
        .http
        .post(format!("{}/api/projects", srv.base))
        .bearer_auth(&srv.alice)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Unknown fields and wrong types.
    let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/pause"), Some(json!({"reason": 5}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Non-numeric and negative ids.
    let (s, v) = srv.alice("GET", "/api/projects/abc", None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_error_shape(&v);
    let (s, v) = srv.alice("GET", "/api/projects/-1", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error_shape(&v);
    let (s, _) = srv.alice("GET", &format!("/api/projects/{id}/checkpoints/1.5"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // SQL meta-characters are data; path-like agent ids and roots are refused.
    let sneaky = "x'); DROP TABLE projects;--";
    let (s, v) = srv
        .alice("POST", "/api/projects", Some(json!({"name": sneaky, "root_path": srv.root("sneaky")})))
        .await;
    assert_eq!((s, v["name"].as_str()), (StatusCode::CREATED, Some(sneaky)));
    let (s, v) =
        srv.alice("POST", "/api/projects", Some(json!({"name": "p", "root_path": "../../etc/nope"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "outside the workspace roots");
    assert_error_shape(&v);
    for agent in ["../../etc/passwd", "a'; DELETE FROM agents;--", ""] {
        let (s, v) =
            srv.alice("POST", &format!("/api/projects/{id}/agents"), Some(json!({"agent_id": agent}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{agent}: {v}");
        assert_error_shape(&v);
    }
    let (s, v) = srv.alice("GET", &format!("/api/projects/{id}/agents/w/context?limit=0"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = srv.alice("GET", &format!("/api/projects/{id}/agents/w/context?tier=HOT"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Unknown routes and methods.
    let (s, v) = srv.alice("GET", "/api/nothing-here", None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("route_not_found")));
    let (s, v) = srv.alice("PUT", &format!("/api/projects/{id}/pause"), None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_shape(&v);

    // Nothing changed.
    let (_, list) = srv.alice("GET", "/api/projects", None).await;
    assert_eq!(list["projects"].as_array().unwrap().len(), 2);
    let (_, p) = srv.alice("GET", &format!("/api/projects/{id}"), None).await;
    assert_eq!(p["status"], "planning");
    let (_, agents) = srv.alice("GET", &format!("/api/projects/{id}/agents"), None).await;
    assert_eq!(agents["agents"], json!([]));
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let srv = start().await;
    let id = srv.project("big").await;
    let huge = "x".repeat(codeframe_api::DEFAULT_BODY_LIMIT + 1024);
    let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/pause"), Some(json!({"reason": huge}))).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape(&v);
    let (_, p) = srv.alice("GET", &format!("/api/projects/{id}"), None).await;
    assert_eq!(p["status"], "planning");
}

/// A context manager that panics when listing: stands for a bug in a handler's path.
struct PanickingContext(SqlContextManager);

#[async_trait]
impl ContextManager for PanickingContext {
    async fn add_item(&self, p: ProjectId, i: NewContextItem) -> Result<ContextItem, ContextError> {
        self.0.add_item(p, i).await
    }
    async fn add_items(&self, p: ProjectId, i: Vec<NewContextItem>) -> Result<Vec<String>, ContextError> {
        self.0.add_items(p, i).await
    }
    async fn touch(&self, id: &str) -> Result<ContextItem, ContextError> {
        self.0.touch(id).await
    }
    async fn get(&self, id: &str) -> Result<ContextItem, ContextError> {
        self.0.get(id).await
    }
    async fn list(&self, _q: &ListQuery) -> Result<ItemPage, ContextError> {
        panic!("secret internal detail: list exploded");
    }
    async fn recalculate_scores(&self, p: ProjectId, a: Option<&str>) -> Result<u64, ContextError> {
        self.0.recalculate_scores(p, a).await
    }
    async fn update_tiers(&self, p: ProjectId, a: Option<&str>) -> Result<u64, ContextError> {
        self.0.update_tiers(p, a).await
    }
    async fn token_totals(&self, p: ProjectId, a: &str) -> Result<TierTotals, ContextError> {
        self.0.token_totals(p, a).await
    }
    async fn should_flash_save(&self, p: ProjectId, a: &str, f: bool) -> Result<bool, ContextError> {
        self.0.should_flash_save(p, a, f).await
    }
    async fn flash_save(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        a: &str,
    ) -> Result<FlashSaveReport, ContextError> {
        self.0.flash_save(tx, p, a).await
    }
    async fn plan_flash_save(
        &self,
        read: &mut ReadTx,
        p: ProjectId,
        a: &str,
    ) -> Result<FlashSavePlan, ContextError> {
        self.0.plan_flash_save(read, p, a).await
    }
    async fn apply_flash_save(
        &self,
        tx: &mut Tx<'_>,
        plan: &FlashSavePlan,
        id: FlashSaveId,
        now: time::OffsetDateTime,
    ) -> Result<FlashSaveReport, ContextError> {
        self.0.apply_flash_save(tx, plan, id, now).await
    }
    async fn flash_save_now(
        &self,
        p: ProjectId,
        a: &str,
        f: bool,
    ) -> Result<Option<FlashSaveReport>, ContextError> {
        self.0.flash_save_now(p, a, f).await
    }
    async fn restore_archived(
        &self,
        p: ProjectId,
        a: &str,
        id: Option<FlashSaveId>,
    ) -> Result<u64, ContextError> {
        self.0.restore_archived(p, a, id).await
    }
    async fn prepare_items(
        &self,
        p: ProjectId,
        i: Vec<NewContextItem>,
    ) -> Result<Vec<ContextItem>, ContextError> {
        self.0.prepare_items(p, i).await
    }
    async fn insert_items(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        i: &[ContextItem],
    ) -> Result<(), ContextError> {
        self.0.insert_items(tx, p, i).await
    }
    async fn restore_archived_in(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        a: &str,
        id: Option<FlashSaveId>,
    ) -> Result<u64, ContextError> {
        self.0.restore_archived_in(tx, p, a, id).await
    }
}

#[tokio::test]
async fn a_panic_in_a_handler_is_a_500_without_internals() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_home(&tmp).await;
    let service = ProjectService::builder()
        .db(db.clone())
        .context_manager(Arc::new(PanickingContext(SqlContextManager::new(db.clone()))))
        .checkpoint_manager(Arc::new(GitCheckpointManager::new(db.clone())))
        .config(served(tmp.path(), ServiceConfig::default()))
        .build()
        .await
        .unwrap();
    let hub = EventHub::follow(&service).await.unwrap();
    let srv = serve(AppState::with(service, hub), db, tmp).await;
    let id = srv.project("boom").await;
    let (s, v) = srv.alice("GET", &format!("/api/projects/{id}/agents/a/context"), None).await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_error_shape(&v);
    assert!(!v.to_string().contains("secret"), "{v}");
    // The server keeps serving.
    let (s, _) = srv.alice("GET", &format!("/api/projects/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    drop(srv.db);
}

// ---------------------------------------------------------------- checkpoints and context

#[tokio::test]
async fn checkpoints_create_list_get_diff_restore_and_delete() {
    let srv = start().await;
    let id = srv.project("cps").await;
    let (s, cp) = srv
        .alice("POST", &format!("/api/projects/{id}/checkpoints"), Some(json!({"name": "before refactor"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{cp}");
    let cid = cp["id"].as_i64().unwrap();
    assert_eq!(cp["trigger"], "manual");
    assert_eq!(cp["commit_id"].as_str().unwrap().len(), 40);
    let (_, list) = srv.alice("GET", &format!("/api/projects/{id}/checkpoints"), None).await;
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 1);
    let (s, got) = srv.alice("GET", &format!("/api/projects/{id}/checkpoints/{cid}"), None).await;
    assert_eq!((s, &got["name"]), (StatusCode::OK, &json!("before refactor")));
    std::fs::write(srv.root("cps").join("src/lib.rs"), "pub fn g() {}\n").unwrap();
    let (_, diff) =
        srv.alice("GET", &format!("/api/projects/{id}/checkpoints/{cid}/diff?unified=true"), None).await;
    assert_eq!(diff["files"][0]["path"], "src/lib.rs");
    assert_eq!(diff["files"][0]["change"], "modified");
    assert!(diff["files"][0]["unified"].as_str().unwrap().contains("+pub fn g() {}"));
    let (s, preview) = srv
        .alice(
            "POST",
            &format!("/api/projects/{id}/checkpoints/{cid}/restore"),
            Some(json!({"files": true, "preview": true})),
        )
        .await;
    assert_eq!((s, preview["applied"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(preview["unsaved_changes"], json!(["src/lib.rs"]), "the preview names what would be lost");
    assert_eq!(std::fs::read_to_string(srv.root("cps").join("src/lib.rs")).unwrap(), "pub fn g() {}\n");
    // The edit since the checkpoint is not overwritten unless forced.
    let (s, refused) = srv
        .alice("POST", &format!("/api/projects/{id}/checkpoints/{cid}/restore"), Some(json!({"files": true})))
        .await;
    assert_eq!(
        (s, refused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("unsaved_changes")),
        "{refused}"
    );
    assert_eq!(refused["error"]["details"]["paths"], json!(["src/lib.rs"]));
    assert_eq!(std::fs::read_to_string(srv.root("cps").join("src/lib.rs")).unwrap(), "pub fn g() {}\n");
    let (s, applied) = srv
        .alice(
            "POST",
            &format!("/api/projects/{id}/checkpoints/{cid}/restore"),
            Some(json!({"files": true, "force": true})),
        )
        .await;
    assert_eq!((s, applied["files_written"].as_i64()), (StatusCode::OK, Some(1)));
    assert_eq!(std::fs::read_to_string(srv.root("cps").join("src/lib.rs")).unwrap(), "pub fn f() {}\n");
    let (s, v) = srv.alice("DELETE", &format!("/api/projects/{id}/checkpoints/{cid}"), None).await;
    assert_eq!((s, v), (StatusCode::NO_CONTENT, Value::Null));
    let (s, _) = srv.alice("GET", &format!("/api/projects/{id}/checkpoints/{cid}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) =
        srv.alice("POST", &format!("/api/projects/{id}/checkpoints"), Some(json!({"name": ""}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}

#[tokio::test]
async fn agents_and_context_routes() {
    let srv = start().await;
    let id = srv.project("ctx").await;
    let base = format!("/api/projects/{id}/agents");
    srv.alice("POST", &base, Some(json!({"agent_id": "w1", "agent_type": "backend"}))).await;
    let (s, v) = srv.alice("POST", &base, Some(json!({"agent_id": "w1"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("already_assigned")));
    let (s, item) = srv
        .alice(
            "POST",
            &format!("{base}/w1/context"),
            Some(json!({"item_type": "CODE", "content": "fn main() {}"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{item}");
    assert!(item["token_count"].as_i64().unwrap() > 0);
    let (s, v) = srv
        .alice("POST", &format!("{base}/w1/context"), Some(json!({"item_type": "NOTE", "content": "x"})))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let items: Vec<Value> = (0..30)
        .map(|n| json!({"item_type": "ERROR", "content": format!("old error {n}"), "created_at": "2026-01-01T00:00:00Z"}))
        .collect();
    let (s, v) = srv.alice("POST", &format!("{base}/w1/context/bulk"), Some(json!({"items": items}))).await;
    assert_eq!((s, v["count"].as_i64()), (StatusCode::CREATED, Some(30)));
    let (_, page) = srv.alice("GET", &format!("{base}/w1/context?tier=cold&limit=10&offset=25"), None).await;
    assert_eq!((page["total"].as_i64(), page["items"].as_array().unwrap().len()), (Some(30), 5));
    let (_, stats) = srv.alice("GET", &format!("{base}/w1/context/stats"), None).await;
    assert_eq!((stats["cold_count"].as_i64(), stats["warm_count"].as_i64()), (Some(30), Some(1)));
    let (s, v) = srv.alice("POST", &format!("{base}/w1/flash-save"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("flash_save_not_due")));
    let (s, report) = srv.alice("POST", &format!("{base}/w1/flash-save"), Some(json!({"force": true}))).await;
    assert_eq!((s, report["items_archived"].as_i64()), (StatusCode::OK, Some(30)));
    let (_, archived) = srv.alice("GET", &format!("{base}/w1/context?state=archived&limit=100"), None).await;
    assert_eq!(archived["total"], 30);
    let (_, restored) = srv.alice("POST", &format!("{base}/w1/context/restore"), Some(json!({}))).await;
    assert_eq!(restored["restored"], 30);
    let (s, _) = srv.alice("DELETE", &format!("{base}/w1"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, agents) = srv.alice("GET", &base, None).await;
    assert_eq!(agents["agents"], json!([]));
    let (s, _) = srv.alice("GET", &format!("{base}/ghost/context/stats"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- WebSocket

#[tokio::test]
async fn the_pause_event_reaches_that_projects_subscribers_only() {
    let srv = start().await;
    let one = srv.project("one").await;
    let two = srv.project("two").await;
    let mut a = srv.ws_connect(Some(&srv.alice)).await;
    let mut b = srv.ws_connect(Some(&srv.alice)).await;
    ws_send(&mut a, json!({"type": "subscribe", "project_id": one})).await;
    ws_send(&mut b, json!({"type": "subscribe", "project_id": two})).await;
    assert_eq!(ws_next(&mut a, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");
    assert_eq!(ws_next(&mut b, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");

    let (s, paused) =
        srv.alice("POST", &format!("/api/projects/{one}/pause"), Some(json!({"reason": "ws"}))).await;
    assert_eq!(s, StatusCode::OK);
    let mut seen = Vec::new();
    while let Some(ev) = ws_next(&mut a, Duration::from_secs(5)).await {
        seen.push(ev["type"].as_str().unwrap().to_owned());
        if ev["type"] == "project_paused" {
            assert_eq!(ev["project_id"], one);
            assert_eq!(ev["checkpoint_id"], paused["checkpoint_id"]);
            assert_eq!(ev["reason"], "ws");
            assert!(ev["timestamp"].as_str().unwrap().ends_with('Z'));
            break;
        }
    }
    assert_eq!(seen, ["pause_requested", "checkpoint_created", "status_changed", "project_paused"]);
    assert_eq!(
        ws_next(&mut b, Duration::from_millis(500)).await,
        None,
        "project two's subscriber hears nothing"
    );

    // b does hear its own project.
    srv.alice("POST", &format!("/api/projects/{two}/pause"), None).await;
    let mut got = None;
    while let Some(ev) = ws_next(&mut b, Duration::from_secs(5)).await {
        if ev["type"] == "project_paused" {
            got = Some(ev);
            break;
        }
    }
    assert_eq!(got.unwrap()["project_id"], two);
    // After unsubscribing, a hears nothing more.
    ws_send(&mut a, json!({"type": "unsubscribe", "project_id": one})).await;
    assert_eq!(ws_next(&mut a, Duration::from_secs(5)).await.unwrap()["type"], "unsubscribed");
    srv.alice("POST", &format!("/api/projects/{one}/resume"), None).await;
    assert_eq!(ws_next(&mut a, Duration::from_millis(500)).await, None);
}

#[tokio::test]
async fn the_websocket_requires_a_token_and_hides_other_owners_projects() {
    let srv = start().await;
    let id = srv.project("private").await;
    // No token at all: the first message must authenticate.
    let mut anon = srv.ws_connect(None).await;
    ws_send(&mut anon, json!({"type": "subscribe", "project_id": id})).await;
    let reply = ws_next(&mut anon, Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply["error"]["code"], "unauthorized");
    // A bad token in the header is refused before the upgrade.
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(srv.ws.as_str())
            .unwrap();
    req.headers_mut().insert("authorization", "Bearer nope".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err());
    // First-message auth works; another owner's project is refused.
    let mut bob = srv.ws_connect(None).await;
    ws_send(&mut bob, json!({"type": "auth", "token": srv.bob})).await;
    assert_eq!(ws_next(&mut bob, Duration::from_secs(5)).await.unwrap()["type"], "authenticated");
    ws_send(&mut bob, json!({"type": "subscribe", "project_id": id})).await;
    let reply = ws_next(&mut bob, Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply["error"]["code"], "not_found");
    srv.alice("POST", &format!("/api/projects/{id}/pause"), None).await;
    assert_eq!(ws_next(&mut bob, Duration::from_millis(500)).await, None);
    ws_send(&mut bob, json!({"type": "ping"})).await;
    assert_eq!(ws_next(&mut bob, Duration::from_secs(5)).await.unwrap()["type"], "pong");
}

// ---------------------------------------------------------------- OpenAPI

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_routes_served() {
    let srv = start().await;
    let (s, doc) = srv.call("GET", "/api/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    documented.sort();
    let mut table: Vec<(String, String)> =
        codeframe_api::routes().iter().map(|r| (r.method.to_uppercase(), r.path.to_owned())).collect();
    table.sort();
    assert_eq!(documented, table);
    // The contract, written out independently of the route table: a route added, removed or
    // renamed there must be added here too, on purpose.
    let contract: Vec<(String, String)> = [
        ("DELETE", "/api/projects/{id}/agents/{agent}"),
        ("DELETE", "/api/projects/{id}/checkpoints/{cid}"),
        ("DELETE", "/api/projects/{id}/permits/{permit_id}"),
        ("DELETE", "/api/tokens/{token_id}"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/projects"),
        ("GET", "/api/projects/{id}"),
        ("GET", "/api/projects/{id}/agents"),
        ("GET", "/api/projects/{id}/agents/{agent}/context"),
        ("GET", "/api/projects/{id}/agents/{agent}/context/stats"),
        ("GET", "/api/projects/{id}/checkpoints"),
        ("GET", "/api/projects/{id}/checkpoints/policy"),
        ("GET", "/api/projects/{id}/checkpoints/{cid}"),
        ("GET", "/api/projects/{id}/checkpoints/{cid}/diff"),
        ("GET", "/api/projects/{id}/events"),
        ("GET", "/api/projects/{id}/pause-status"),
        ("GET", "/api/projects/{id}/permits"),
        ("GET", "/api/tokens"),
        ("GET", "/healthz"),
        ("GET", "/ws"),
        ("POST", "/api/projects"),
        ("POST", "/api/projects/{id}/agents"),
        ("POST", "/api/projects/{id}/agents/{agent}/context"),
        ("POST", "/api/projects/{id}/agents/{agent}/context/bulk"),
        ("POST", "/api/projects/{id}/agents/{agent}/context/restore"),
        ("POST", "/api/projects/{id}/agents/{agent}/flash-save"),
        ("POST", "/api/projects/{id}/checkpoints"),
        ("POST", "/api/projects/{id}/checkpoints/gc"),
        ("POST", "/api/projects/{id}/checkpoints/prune"),
        ("POST", "/api/projects/{id}/checkpoints/undo"),
        ("POST", "/api/projects/{id}/checkpoints/{cid}/pin"),
        ("POST", "/api/projects/{id}/checkpoints/{cid}/restore"),
        ("POST", "/api/projects/{id}/checkpoints/{cid}/unpin"),
        ("POST", "/api/projects/{id}/move"),
        ("POST", "/api/projects/{id}/pause"),
        ("POST", "/api/projects/{id}/permits"),
        ("POST", "/api/projects/{id}/permits/{permit_id}/renew"),
        ("POST", "/api/projects/{id}/resume"),
        ("POST", "/api/projects/{id}/start"),
        ("PUT", "/api/projects/{id}/checkpoints/policy"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    assert_eq!(documented, contract);
    // Every reference resolves; every operation is named; every route that needs a token says
    // so and documents 401; every error answer has the error shape.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r);
                }
                o.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    for r in all_refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(doc["components"]["schemas"][name].is_object(), "dangling {r}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    // Ids are components of their own (integers on the wire); no Rust alias leaks in as a
    // schema named after its primitive.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for id in ["ProjectId", "CheckpointId", "FlashSaveId"] {
        assert_eq!(schemas[id]["type"], "integer", "{id}");
    }
    assert!(schemas.keys().all(|k| k.starts_with(char::is_uppercase)) && !schemas.contains_key("String"));
    for route in codeframe_api::routes() {
        let op = &doc["paths"][route.path][route.method];
        assert!(op["operationId"].is_string(), "{} {}", route.method, route.path);
        let secured = op["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        assert_eq!(secured, route.auth || route.path == "/ws", "{} {}", route.method, route.path);
        assert_eq!(op["responses"]["401"].is_object(), route.auth || route.path == "/ws", "{}", route.path);
        for (status, answer) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    answer["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{status} of {} {}",
                    route.method, route.path
                );
            }
        }
        if route.agent_write {
            let params = op["parameters"].as_array().unwrap();
            assert!(
                params.iter().any(|p| p["name"] == "Codeframe-Permit" && p["in"] == "header"),
                "{}",
                route.path
            );
        }
    }
    // Every documented route is served (its answer is never the router's own 404 or 405).
    let id = srv.project("probe").await;
    for (method, path) in &documented {
        let concrete =
            path.replace("{id}", &id.to_string()).replace("{cid}", "1").replace("{agent}", "probe-agent");
        let (s, v) = srv.alice(method, &concrete, None).await;
        assert_ne!(v["error"]["code"], "route_not_found", "{method} {path}");
        assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
    }
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_with_a_close_frame() {
    use codeframe_models::EventKind;
    let srv = start().await;
    let id = srv.project("firehose").await;
    let mut slow = srv.ws_connect(Some(&srv.alice)).await;
    let mut fast = srv.ws_connect(Some(&srv.alice)).await;
    ws_send(&mut slow, json!({"type": "subscribe", "project_id": id})).await;
    ws_send(&mut fast, json!({"type": "subscribe", "project_id": id})).await;
    assert_eq!(ws_next(&mut slow, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");
    assert_eq!(ws_next(&mut fast, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");

    // The fast subscriber keeps reading; the slow one reads nothing while far more events than
    // the hub holds (each ~1 KB) are committed to the log, paced so that a reader can keep up.
    let total = 3 * codeframe_api::HUB_CAPACITY;
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen_by_reader = Arc::clone(&seen);
    let reader = tokio::spawn(async move {
        while let Some(v) = ws_next(&mut fast, Duration::from_secs(10)).await {
            if v["type"] == "project_paused" {
                let n = seen_by_reader.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if n == total {
                    break;
                }
            }
        }
    });
    let reason = "r".repeat(500);
    let mut n = 0;
    while n < total {
        // Written as another process would (no in-process wake-up): the tail's poll finds them.
        let mut tx = srv.db.begin().await.unwrap();
        for _ in 0..256 {
            let kind = EventKind::ProjectPaused {
                checkpoint_id: CheckpointId(n as i64),
                reason: Some(reason.clone()),
                items_archived: 0,
                reduction_percentage: 0.0,
            };
            codeframe_persistence::events::append(
                &mut tx,
                ProjectId(id),
                kind,
                codeframe_models::timestamp::now_utc(),
            )
            .await
            .unwrap();
            n += 1;
        }
        tx.commit().await.unwrap();
        while n >= seen.load(std::sync::atomic::Ordering::SeqCst) + 1024 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    tokio::time::timeout(Duration::from_secs(60), reader).await.unwrap().unwrap();
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        total,
        "the reading subscriber got every event"
    );
    // The slow one gets what fitted in its buffers, then is closed (code 1013), not waited for.
    let mut received = 0;
    let ending = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Err(_) => panic!("the slow subscriber was neither served in full nor dropped"),
            Ok(Some(Ok(Message::Text(_)))) => received += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            // The connection may also end without the frame if it was reset.
            Ok(None) | Ok(Some(Err(_))) => break None,
        }
    };
    assert!(received < total, "the slow subscriber was dropped before receiving everything ({received})");
    assert!(matches!(ending, Some(1013) | None), "{ending:?}");
}

// ---------------------------------------------------------------- the event log: catch-up, gaps

/// Reads WebSocket messages until `n` events arrived (or nothing came for 10 s).
async fn ws_events(ws: &mut WsClient, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let Some(v) = ws_next(ws, Duration::from_secs(10)).await else { break };
        if v.get("seq").is_some() && v["type"] != "subscribed" {
            got.push(v);
        }
    }
    got
}

/// Appends events as another process would: straight to the log, no wake-up of the server.
async fn append_elsewhere(db: &Db, project: i64, from: usize, count: usize) {
    let mut tx = db.begin().await.unwrap();
    for n in from..from + count {
        let kind =
            codeframe_models::EventKind::ContextAdded { agents: vec![format!("a{n}")], items_added: 1 };
        codeframe_persistence::events::append(
            &mut tx,
            ProjectId(project),
            kind,
            codeframe_models::timestamp::now_utc(),
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_with_since_catches_up_on_a_missed_burst_exactly_once_then_streams_live() {
    let srv = start().await;
    let id = srv.project("catch-up").await;
    let mut ws = srv.ws_connect(Some(&srv.alice)).await;
    ws_send(&mut ws, json!({"type": "subscribe", "project_id": id})).await;
    let ack = ws_next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!(ack["type"], "subscribed");
    srv.alice("POST", &format!("/api/projects/{id}/agents"), Some(json!({"agent_id": "w1"}))).await;
    let first = ws_events(&mut ws, 1).await;
    assert_eq!(first[0]["type"], "agent_added");
    let last_seen = first[0]["seq"].as_i64().unwrap();
    drop(ws);

    // Missed while disconnected: a burst of 1,000 events.
    append_elsewhere(&srv.db, id, 0, 1000).await;
    // Reconnect with `since`, while another writer keeps committing (the replay/live boundary).
    let writer = {
        let db = srv.db.clone();
        tokio::spawn(async move {
            for batch in 0..20 {
                append_elsewhere(&db, id, 1000 + batch * 10, 10).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut ws = srv.ws_connect(Some(&srv.alice)).await;
    ws_send(&mut ws, json!({"type": "subscribe", "project_id": id, "since": last_seen})).await;
    let ack = ws_next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!((ack["type"].as_str(), ack["since"].as_i64()), (Some("subscribed"), Some(last_seen)));
    let got = ws_events(&mut ws, 1200).await;
    writer.await.unwrap();
    assert_eq!(got.len(), 1200, "every missed and concurrent event");
    let seqs: Vec<i64> = got.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, each once");
    assert!(seqs[0] > last_seen);
    let names: Vec<&str> = got.iter().map(|e| e["agents"][0].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..1200).map(|n| format!("a{n}")).collect();
    assert_eq!(names, expected, "exactly the events written, in the order written");

    // Then live events, with their seq, and nothing twice.
    srv.alice("POST", &format!("/api/projects/{id}/pause"), None).await;
    let live = ws_events(&mut ws, 5).await;
    let kinds: Vec<&str> = live.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["pause_requested", "flash_save_completed", "checkpoint_created", "status_changed", "project_paused"]
    );
    assert!(live[0]["seq"].as_i64().unwrap() > *seqs.last().unwrap());
    assert_eq!(ws_next(&mut ws, Duration::from_millis(500)).await, None, "no duplicate");
}

#[tokio::test]
async fn the_events_route_pages_the_log_and_a_since_past_retention_is_a_gap() {
    let srv = start().await;
    let id = srv.project("paged").await;
    for n in 0..8 {
        let (s, _) = srv
            .alice("POST", &format!("/api/projects/{id}/agents"), Some(json!({"agent_id": format!("w{n}")})))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    // status_changed (start) and eight agent_added, in order, three at a time.
    let mut since = 0;
    let mut all = Vec::new();
    loop {
        let (s, page) =
            srv.alice("GET", &format!("/api/projects/{id}/events?since={since}&limit=3"), None).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        all.extend(page["events"].as_array().unwrap().iter().cloned());
        since = page["next_since"].as_i64().unwrap();
        if !page["has_more"].as_bool().unwrap() {
            break;
        }
    }
    let kinds: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds[0], "status_changed");
    assert_eq!(kinds[1..], ["agent_added"; 8]);
    assert_eq!(all[8]["agent_id"], "w7");
    let (s, v) = srv.alice("GET", &format!("/api/projects/{id}/events?limit=0"), None).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, _) = srv.call("GET", &format!("/api/projects/{id}/events"), Some(&srv.bob), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another owner's events are not found");

    // Retention keeps the newest 5: the 4 oldest are gone.
    let config = ServiceConfig {
        event_retention: codeframe_core::EventRetention { max_events_per_project: 5, ..Default::default() },
        ..Default::default()
    };
    let retention = ProjectService::with_config(srv.db.clone(), config);
    assert_eq!(retention.prune_events(None).await.unwrap(), 4);
    let pruned_through = all[3]["seq"].as_i64().unwrap();
    let (s, v) = srv.alice("GET", &format!("/api/projects/{id}/events?since=0"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::GONE, Some("gap")), "{v}");
    assert_eq!(v["error"]["details"]["pruned_through"], pruned_through);
    let (s, v) = srv.alice("GET", &format!("/api/projects/{id}/events?since={pruned_through}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["events"].as_array().unwrap().len(), 5);
    // Without `since`: from the oldest event kept, never a gap.
    let (s, v) = srv.alice("GET", &format!("/api/projects/{id}/events"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["events"].as_array().unwrap().len(), 5);
    // A seq the log never reached is a gap too (a client from another database).
    let (s, _) = srv.alice("GET", &format!("/api/projects/{id}/events?since=999999"), None).await;
    assert_eq!(s, StatusCode::GONE);

    // The WebSocket says so the same way, then streams live events.
    let mut ws = srv.ws_connect(Some(&srv.alice)).await;
    ws_send(&mut ws, json!({"type": "subscribe", "project_id": id, "since": 1})).await;
    assert_eq!(ws_next(&mut ws, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");
    let gap = ws_next(&mut ws, Duration::from_secs(5)).await.unwrap();
    assert_eq!((gap["type"].as_str(), gap["pruned_through"].as_i64()), (Some("gap"), Some(pruned_through)));
    srv.alice("POST", &format!("/api/projects/{id}/agents"), Some(json!({"agent_id": "late"}))).await;
    let live = ws_events(&mut ws, 1).await;
    assert_eq!((live[0]["type"].as_str(), live[0]["agent_id"].as_str()), (Some("agent_added"), Some("late")));
}

// ---------------------------------------------------------------- cancellation

/// The checkpoint manager, with a snapshot write that takes long enough for an HTTP client to
/// give up, and that fails once when `FAIL_NEXT_WRITE` is set (after writing its ref).
struct SlowWrites(Arc<dyn CheckpointManager>);

static FAIL_NEXT_WRITE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static FAILED_ID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

#[async_trait]
impl CheckpointManager for SlowWrites {
    async fn reserve_id(&self) -> codeframe_core::Result<CheckpointId, codeframe_core::CheckpointError> {
        self.0.reserve_id().await
    }
    async fn prepare(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
        spec: CheckpointSpec,
    ) -> Result<codeframe_core::PreparedCheckpoint, codeframe_core::CheckpointError> {
        self.0.prepare(tx, p, id, spec).await
    }
    async fn write(
        &self,
        tx: &mut Tx<'_>,
        prepared: codeframe_core::PreparedCheckpoint,
    ) -> Result<Checkpoint, codeframe_core::CheckpointError> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let cp = self.0.write(tx, prepared).await?;
        if FAIL_NEXT_WRITE.swap(false, std::sync::atomic::Ordering::SeqCst) {
            FAILED_ID.store(cp.id.into(), std::sync::atomic::Ordering::SeqCst);
            return Err(codeframe_core::CheckpointError::Worker("disk full (injected)".into()));
        }
        Ok(cp)
    }
    async fn draft(
        &self,
        read: &mut codeframe_core::ReadTx,
        p: ProjectId,
        id: CheckpointId,
        spec: CheckpointSpec,
        will_change: &[String],
    ) -> Result<codeframe_core::CheckpointDraft, codeframe_core::CheckpointError> {
        self.0.draft(read, p, id, spec, will_change).await
    }
    async fn write_objects(
        &self,
        draft: codeframe_core::CheckpointDraft,
    ) -> Result<codeframe_core::WrittenCheckpoint, codeframe_core::CheckpointError> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        self.0.write_objects(draft).await
    }
    async fn record(
        &self,
        tx: &mut Tx<'_>,
        w: &codeframe_core::WrittenCheckpoint,
    ) -> Result<Checkpoint, codeframe_core::CheckpointError> {
        self.0.record(tx, w).await
    }
    async fn publish(
        &self,
        w: &codeframe_core::WrittenCheckpoint,
    ) -> Result<(), codeframe_core::CheckpointError> {
        self.0.publish(w).await?;
        if FAIL_NEXT_WRITE.swap(false, std::sync::atomic::Ordering::SeqCst) {
            FAILED_ID.store(w.checkpoint.id.into(), std::sync::atomic::Ordering::SeqCst);
            return Err(codeframe_core::CheckpointError::Worker("disk full (injected)".into()));
        }
        Ok(())
    }
    async fn discard(&self, p: ProjectId, id: CheckpointId) -> Result<(), codeframe_core::CheckpointError> {
        self.0.discard(p, id).await
    }
    async fn list(&self, p: ProjectId) -> Result<Vec<Checkpoint>, codeframe_core::CheckpointError> {
        self.0.list(p).await
    }
    async fn get(
        &self,
        p: ProjectId,
        id: CheckpointId,
    ) -> Result<Checkpoint, codeframe_core::CheckpointError> {
        self.0.get(p, id).await
    }
    async fn delete(&self, p: ProjectId, id: CheckpointId) -> Result<(), codeframe_core::CheckpointError> {
        self.0.delete(p, id).await
    }
    async fn delete_row(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
    ) -> Result<(), codeframe_core::CheckpointError> {
        self.0.delete_row(tx, p, id).await
    }
    async fn diff(
        &self,
        p: ProjectId,
        id: CheckpointId,
        u: bool,
    ) -> Result<FileDiff, codeframe_core::CheckpointError> {
        self.0.diff(p, id, u).await
    }
    async fn verify(
        &self,
        p: ProjectId,
        id: CheckpointId,
    ) -> Result<VerifyReport, codeframe_core::CheckpointError> {
        self.0.verify(p, id).await
    }
    async fn restore(
        &self,
        p: ProjectId,
        id: CheckpointId,
        w: RestoreWhat,
        m: RestoreMode,
    ) -> Result<RestoreReport, codeframe_core::CheckpointError> {
        self.0.restore(p, id, w, m).await
    }
    async fn restore_in(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
        w: RestoreWhat,
        m: RestoreMode,
    ) -> Result<RestoreReport, codeframe_core::CheckpointError> {
        self.0.restore_in(tx, p, id, w, m).await
    }
    async fn restore_rows(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
        w: RestoreWhat,
    ) -> Result<usize, codeframe_core::CheckpointError> {
        self.0.restore_rows(tx, p, id, w).await
    }
    async fn restore_files(
        &self,
        tx: &mut Tx<'_>,
        p: ProjectId,
        id: CheckpointId,
    ) -> Result<codeframe_core::FilesRestored, codeframe_core::CheckpointError> {
        self.0.restore_files(tx, p, id).await
    }
    async fn reconcile(&self, p: ProjectId) -> Result<ReconcileReport, codeframe_core::CheckpointError> {
        self.0.reconcile(p).await
    }
    async fn collect_garbage(
        &self,
        p: ProjectId,
        min_packs: usize,
    ) -> Result<Option<codeframe_core::GcReport>, codeframe_core::CheckpointError> {
        self.0.collect_garbage(p, min_packs).await
    }
    async fn settle_files(
        &self,
        p: ProjectId,
    ) -> Result<Option<codeframe_core::FilesSettled>, codeframe_core::CheckpointError> {
        self.0.settle_files(p).await
    }
}

fn slow_writes(db: Db) -> Arc<dyn CheckpointManager> {
    Arc::new(SlowWrites(Arc::new(GitCheckpointManager::new(db))))
}

fn store_refs(store: &Path) -> Vec<String> {
    let out = Command::new("git")
        .args(["--git-dir", store.to_str().unwrap(), "for-each-ref", "--format=%(refname)"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// POSTs a pause with a client that gives up after 300 ms (the pause takes 1.5 s).
async fn pause_and_hang_up(srv: &Srv, id: i64) {
    let client = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let sent = client
        .post(format!("{}/api/projects/{id}/pause", srv.base))
        .bearer_auth(&srv.alice)
        .json(&json!({"reason": "hang up"}))
        .send()
        .await;
    assert!(sent.as_ref().is_err_and(reqwest::Error::is_timeout), "{sent:?}");
}

/// Waits until no pause holds the project's gate (the detached pause has ended).
async fn settled(svc: &ProjectService, id: i64) -> codeframe_core::GateStatus {
    for _ in 0..200 {
        let gate = svc.gate_status(ProjectId(id)).await.unwrap();
        if !gate.pausing {
            return gate;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the pause never ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_whose_http_client_disconnects_runs_to_completion() {
    let srv = start_with(slow_writes, ServiceConfig::default()).await;
    let id = srv.project("hang-up").await;
    let svc = ProjectService::with_defaults(srv.db.clone());
    pause_and_hang_up(&srv, id).await;
    let gate = settled(&svc, id).await;
    let p = svc.get(ProjectId(id)).await.unwrap();
    assert_eq!(p.status, codeframe_models::ProjectStatus::Paused, "the pause finished on its own task");
    assert!(gate.closed);
    let cp = p.pause_checkpoint_id.unwrap();
    assert!(svc.verify_checkpoint(ProjectId(id), cp).await.unwrap().ok(), "its checkpoint is readable");
    assert_eq!(store_refs(&srv.store(id)), [format!("refs/codeframe/checkpoints/{cp}")], "no orphan ref");
    assert!(matches!(svc.enter(ProjectId(id), "agent").await, Err(codeframe_core::CoreError::Paused(_))));
    let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/resume"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    drop(svc.enter(ProjectId(id), "agent").await.unwrap());
    let (s, again) = srv.alice("POST", &format!("/api/projects/{id}/pause"), None).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert!(again["checkpoint_id"].as_i64().unwrap() > cp.into(), "a fresh id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_that_fails_after_its_client_disconnected_rolls_back_cleanly() {
    let srv = start_with(slow_writes, ServiceConfig::default()).await;
    let id = srv.project("hang-up-fail").await;
    let svc = ProjectService::with_defaults(srv.db.clone());
    let before = svc.get(ProjectId(id)).await.unwrap();
    FAIL_NEXT_WRITE.store(true, std::sync::atomic::Ordering::SeqCst);
    pause_and_hang_up(&srv, id).await;
    let gate = settled(&svc, id).await;
    let failed = FAILED_ID.load(std::sync::atomic::Ordering::SeqCst);
    assert!(failed > 0, "the injected failure happened");
    assert_eq!(svc.get(ProjectId(id)).await.unwrap(), before, "exactly as before");
    assert!(!gate.closed, "the gate is open again");
    assert!(svc.list_checkpoints(ProjectId(id)).await.unwrap().is_empty());
    assert!(store_refs(&srv.store(id)).is_empty(), "the rolled-back ref was discarded");
    drop(svc.enter(ProjectId(id), "agent").await.expect("permits work"));
    let (s, next) = srv.alice("POST", &format!("/api/projects/{id}/pause"), None).await;
    assert_eq!(s, StatusCode::OK, "{next}");
    let fresh = next["checkpoint_id"].as_i64().unwrap();
    assert!(fresh > failed, "the rolled-back id {failed} is never reused ({fresh})");
    assert_eq!(store_refs(&srv.store(id)), [format!("refs/codeframe/checkpoints/{fresh}")]);
}

// ---------------------------------------------------------------- permits over HTTP

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permits_over_http_are_drained_by_a_pause_and_gate_agent_writes() {
    let srv = start().await;
    let id = srv.project("permits").await;
    srv.alice("POST", &format!("/api/projects/{id}/agents"), Some(json!({"agent_id": "w1"}))).await;
    let mut ws = srv.ws_connect(Some(&srv.alice)).await;
    ws_send(&mut ws, json!({"type": "subscribe", "project_id": id})).await;
    assert_eq!(ws_next(&mut ws, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");

    let (s, permit) = srv
        .alice(
            "POST",
            &format!("/api/projects/{id}/permits"),
            Some(json!({"agent_id": "w1", "ttl_seconds": 60})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{permit}");
    let pid = permit["permit_id"].as_i64().unwrap();
    assert!(permit["expires_at"].as_str().unwrap().ends_with('Z'));
    let (s, gate) = srv.alice("GET", &format!("/api/projects/{id}/permits"), None).await;
    assert_eq!(
        (s, gate["closed"].as_bool(), gate["permits"][0]["agent_id"].as_str()),
        (StatusCode::OK, Some(false), Some("w1"))
    );
    for (body, code) in
        [(json!({"agent_id": "w1", "ttl_seconds": 0}), 422), (json!({"agent_id": "no good"}), 422)]
    {
        let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/permits"), Some(body)).await;
        assert_eq!(s.as_u16(), code, "{v}");
    }
    let (s, _) = srv
        .call("POST", &format!("/api/projects/{id}/permits"), Some(&srv.bob), Some(json!({"agent_id": "w1"})))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "another owner's project");

    // A pause over HTTP waits for the permit; the subscriber hears pause_requested at once.
    let pause = {
        let (http, url, token) =
            (srv.http.clone(), format!("{}/api/projects/{id}/pause", srv.base), srv.alice.clone());
        tokio::spawn(async move {
            http.post(url).bearer_auth(token).send().await.unwrap().json::<Value>().await.unwrap()
        })
    };
    let requested = loop {
        let v = ws_next(&mut ws, Duration::from_secs(10)).await.expect("pause_requested");
        if v["type"] == "pause_requested" {
            break v;
        }
    };
    assert!(requested["deadline"].as_str().unwrap().ends_with('Z'));
    assert!(!pause.is_finished(), "the pause drains the HTTP permit");
    let (s, v) =
        srv.alice("POST", &format!("/api/projects/{id}/permits"), Some(json!({"agent_id": "w2"}))).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("pausing")), "{v}");
    let (s, renewed) = srv.alice("POST", &format!("/api/projects/{id}/permits/{pid}/renew"), None).await;
    assert_eq!((s, renewed["pause_requested"].as_bool()), (StatusCode::OK, Some(true)), "{renewed}");

    // Agent writes: without the permit refused, under it accepted, with a bad header 400.
    let item = json!({"item_type": "TASK", "content": "the last step"});
    let ctx = format!("/api/projects/{id}/agents/w1/context");
    let (s, v) = srv.alice("POST", &ctx, Some(item.clone())).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("pausing")));
    let under = |header: &str| {
        srv.http
            .post(format!("{}{ctx}", srv.base))
            .bearer_auth(&srv.alice)
            .header("Codeframe-Permit", header)
            .json(&item)
    };
    assert_eq!(under(&pid.to_string()).send().await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(under("soon").send().await.unwrap().status(), StatusCode::BAD_REQUEST);
    let (s, _) = srv.alice("DELETE", &format!("/api/projects/{id}/permits/{pid}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let paused = tokio::time::timeout(Duration::from_secs(10), pause).await.unwrap().unwrap();
    assert_eq!(paused["interrupted_agents"], json!([]), "{paused}");

    // Paused: the permit is over; writes and renewals are refused.
    assert_eq!(under(&pid.to_string()).send().await.unwrap().status(), StatusCode::CONFLICT);
    let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/permits/{pid}/renew"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("paused")));
    let (s, _) = srv.alice("DELETE", &format!("/api/projects/{id}/permits/{pid}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = srv
        .alice("POST", &format!("/api/projects/{id}/agents/w1/flash-save"), Some(json!({"force": true})))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("paused")));
}

// ---------------------------------------------------------------- tokens

#[tokio::test]
async fn a_user_lists_and_revokes_only_their_own_tokens_and_a_revoked_token_stops_working() {
    let srv = start().await;
    let (s, mine) = srv.alice("GET", "/api/tokens", None).await;
    assert_eq!(s, StatusCode::OK);
    let mine = mine["tokens"].as_array().unwrap().clone();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0]["user"].as_str(), mine[0]["name"].as_str()), (Some("alice"), Some("test")));
    assert!(!mine.iter().any(|t| t.to_string().contains("cf_")), "never the token itself");
    let (_, bobs) = srv.call("GET", "/api/tokens", Some(&srv.bob), None).await;
    let bob_token_id = bobs["tokens"][0]["id"].as_i64().unwrap();
    let (s, _) = srv.alice("DELETE", &format!("/api/tokens/{bob_token_id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "bob's token is not alice's to revoke");
    let (s, _) = srv.call("GET", "/api/projects", Some(&srv.bob), None).await;
    assert_eq!(s, StatusCode::OK, "and still works");
    // Alice revokes her own token: refused from then on (the cache holds it at most 0.5 s).
    let (s, _) = srv.alice("DELETE", &format!("/api/tokens/{}", mine[0]["id"]), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (s, v) = srv.alice("GET", "/api/projects", None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    // A token that expired is refused too.
    let short = srv.db.clone();
    let svc = ProjectService::with_defaults(short);
    let token = svc.create_token("carol", "short", Some(Duration::from_secs(1))).await.unwrap();
    let (s, _) = srv.call("GET", "/api/projects", Some(&token), None).await;
    assert_eq!(s, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, _) = srv.call("GET", "/api/projects", Some(&token), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(svc.create_token("carol", "", None).await.unwrap_err().is_invalid());
    assert!(svc.create_token("carol", "x", Some(Duration::ZERO)).await.unwrap_err().is_invalid());
}

// ---------------------------------------------------------------- confined project roots

#[tokio::test]
async fn project_roots_are_confined_to_workspace_roots_and_never_overlap() {
    let srv = start().await;
    let alice_root = srv.root("alice-shop");
    let (s, v) =
        srv.alice("POST", "/api/projects", Some(json!({"name": "shop", "root_path": alice_root}))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let bob = |body: Value| srv.call("POST", "/api/projects", Some(&srv.bob), Some(body));
    // Bob cannot take alice's root, a directory inside it, nor one containing it.
    std::fs::create_dir_all(alice_root.join("src/deep")).unwrap();
    for root in
        [alice_root.clone(), alice_root.join("src/deep"), srv.tmp.path().join("work/../work/alice-shop/src")]
    {
        let (s, v) = bob(json!({"name": "steal", "root_path": root})).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("root_overlaps")),
            "{root:?}: {v}"
        );
    }
    let container = srv.tmp.path().join("work/all");
    std::fs::create_dir_all(&container).unwrap();
    // (A workspace root itself is not a project root.)
    let (s, _) = bob(json!({"name": "all", "root_path": srv.tmp.path().join("work")})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Outside the workspace roots: 403, and the same answer whether the path exists or not.
    let (s1, existing) = bob(json!({"name": "r", "root_path": "/root"})).await;
    let (s2, missing) = bob(json!({"name": "r", "root_path": "/definitely/not/here"})).await;
    let (s3, dotted) = bob(
        json!({"name": "r", "root_path": format!("{}/../../etc", srv.tmp.path().join("work").display())}),
    )
    .await;
    assert_eq!((s1, s2, s3), (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN, StatusCode::FORBIDDEN));
    assert_eq!(existing["error"], missing["error"], "no hint of what exists outside");
    assert_eq!(existing["error"], dotted["error"]);
    let (s, v) = bob(json!({"name": "r", "root_path": "relative/path"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // A symbolic link inside the workspace that leads outside is judged by where it leads.
    let link = srv.tmp.path().join("work/escape");
    std::os::unix::fs::symlink("/tmp", &link).unwrap();
    let (s, v) = bob(json!({"name": "escape", "root_path": link})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // Inside the workspace, a missing directory is simply invalid.
    let (s, v) = bob(json!({"name": "r", "root_path": srv.tmp.path().join("work/nope")})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid")), "{v}");
    // Bob's own directory works, and its snapshot store lives under the server's home, out of
    // reach of code running in the tree.
    let bob_root = srv.root("bob-shop");
    let (s, p) = bob(json!({"name": "bob-shop", "root_path": bob_root})).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert!(p.get("store_path").is_none(), "the store's path is not shown: {p}");
    let id = p["id"].as_i64().unwrap();
    let (s, _) = srv
        .call(
            "POST",
            &format!("/api/projects/{id}/checkpoints"),
            Some(&srv.bob),
            Some(json!({"name": "one"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(!bob_root.join(".codeframe").exists(), "nothing of codeframe's in the tree");
    assert_eq!(store_refs(&srv.store(id)).len(), 1);
}

#[tokio::test]
async fn a_server_without_workspace_roots_refuses_to_create_projects() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_home(&tmp).await;
    let srv = serve(AppState::new(db.clone()).await.unwrap(), db, tmp).await;
    std::fs::create_dir_all(srv.tmp.path().join("p")).unwrap();
    let (s, v) = srv
        .alice("POST", "/api/projects", Some(json!({"name": "p", "root_path": srv.tmp.path().join("p")})))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert!(v["error"]["message"].as_str().unwrap().contains("--workspace-root"), "{v}");
}

// ---------------------------------------------------------------- limits on the wire

/// A server over its own home with the given caps.
async fn start_limited(limits: codeframe_api::Limits) -> Srv {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_home(&tmp).await;
    let service = ProjectService::builder()
        .db(db.clone())
        .context_manager(Arc::new(SqlContextManager::new(db.clone())))
        .checkpoint_manager(slow_writes(db.clone()))
        .config(served(tmp.path(), ServiceConfig::default()))
        .build()
        .await
        .unwrap();
    let hub = EventHub::follow(&service).await.unwrap();
    serve(AppState::with_limits(service, hub, limits), db, tmp).await
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A raw WebSocket handshake on a plain socket (no token), as an attacker would do it.
async fn raw_ws(base: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(String::from_utf8_lossy(&head).starts_with("HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_60_mib_frame_is_refused_without_memory_growth() {
    use tokio::io::AsyncWriteExt;
    let srv = start().await;
    let mut s = raw_ws(&srv.base).await;
    let before = rss_kib();
    // A masked text frame announcing 60 MiB, streamed in 64 KiB chunks.
    let len: u64 = 60 << 20;
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&len.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    let chunk = vec![0u8; 64 << 10];
    let mut sent = 0u64;
    let refused = async {
        s.write_all(&header).await?;
        while sent < len {
            s.write_all(&chunk).await?;
            sent += chunk.len() as u64;
        }
        Ok::<(), std::io::Error>(())
    };
    let result = tokio::time::timeout(Duration::from_secs(20), refused).await;
    assert!(matches!(result, Ok(Err(_))), "the server must close the socket, not read 60 MiB: {result:?}");
    assert!(sent < len / 2, "refused early ({sent} bytes sent)");
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 16 << 10, "memory grew by {grown} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_auth_and_size_limits_and_connection_caps() {
    let srv =
        start_limited(codeframe_api::Limits { ws_connections_per_token: 2, ..Default::default() }).await;
    let id = srv.project("ws-limits").await;
    // A token in the query string works; a bad one is refused before the upgrade.
    let url = format!("{}?token={}", srv.ws, srv.alice);
    let (mut q, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    ws_send(&mut q, json!({"type": "subscribe", "project_id": id})).await;
    assert_eq!(ws_next(&mut q, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");
    assert!(tokio_tungstenite::connect_async(format!("{}?token=cf_nope", srv.ws)).await.is_err());
    // Two connections per token: the third is refused (429) before the upgrade.
    let _second = srv.ws_connect(Some(&srv.alice)).await;
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(srv.ws.as_str())
            .unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {}", srv.alice).parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    let _bob = srv.ws_connect(Some(&srv.bob)).await; // another token is not affected
    // An in-band auth message over 4 KiB is refused.
    let mut anon = srv.ws_connect(None).await;
    let padded = format!("{{\"type\":\"auth\",\"token\":\"{}\"{}}}", srv.bob, " ".repeat(5000));
    anon.send(Message::Text(padded.into())).await.unwrap();
    assert_eq!(ws_next(&mut anon, Duration::from_secs(5)).await.unwrap()["error"]["code"], "unauthorized");
    // A message over 64 KiB closes an authenticated socket.
    let big = json!({"type": "ping", "pad": "x".repeat(70 << 10)});
    let _ = q.send(Message::Text(big.to_string().into())).await;
    let ended = ws_next(&mut q, Duration::from_secs(5)).await;
    assert!(ended.is_none() || ended.as_ref().is_some_and(|v| v["type"] == "closed"), "{ended:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_in_one_users_project_never_drops_another_users_subscribers() {
    use codeframe_models::EventKind;
    let srv = start().await;
    let alices = srv.project("alice-busy").await;
    let bob_root = srv.root("bob-quiet");
    let (_, p) = srv
        .call(
            "POST",
            "/api/projects",
            Some(&srv.bob),
            Some(json!({"name": "bob-quiet", "root_path": bob_root})),
        )
        .await;
    let bobs = p["id"].as_i64().unwrap();
    // Bob subscribes to his project and reads nothing during alice's burst.
    let mut bob = srv.ws_connect(Some(&srv.bob)).await;
    ws_send(&mut bob, json!({"type": "subscribe", "project_id": bobs})).await;
    assert_eq!(ws_next(&mut bob, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");
    // Alice has a subscriber that never reads.
    let mut stuck = srv.ws_connect(Some(&srv.alice)).await;
    ws_send(&mut stuck, json!({"type": "subscribe", "project_id": alices})).await;
    assert_eq!(ws_next(&mut stuck, Duration::from_secs(5)).await.unwrap()["type"], "subscribed");
    let subscriptions = srv.hub.subscriptions();
    assert_eq!(subscriptions, 2);
    let reason = "r".repeat(500);
    for _ in 0..3 {
        let mut tx = srv.db.begin().await.unwrap();
        for n in 0..codeframe_api::HUB_CAPACITY {
            let kind = EventKind::ProjectPaused {
                checkpoint_id: CheckpointId(n as i64),
                reason: Some(reason.clone()),
                items_archived: 0,
                reduction_percentage: 0.0,
            };
            codeframe_persistence::events::append(
                &mut tx,
                ProjectId(alices),
                kind,
                codeframe_models::timestamp::now_utc(),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    // The stuck subscriber is dropped (its queue overflowed or its socket stalled) and its
    // task ends within the send timeout; bob's subscription is untouched.
    let deadline = tokio::time::Instant::now() + codeframe_api::SEND_TIMEOUT + Duration::from_secs(5);
    while srv.hub.subscriptions() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the stuck subscriber was not dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.call(
        "POST",
        &format!("/api/projects/{bobs}/agents"),
        Some(&srv.bob),
        Some(json!({"agent_id": "b1"})),
    )
    .await;
    let got = ws_next(&mut bob, Duration::from_secs(5)).await.unwrap();
    assert_eq!((got["type"].as_str(), got["agent_id"].as_str()), (Some("agent_added"), Some("b1")), "{got}");
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_strings_and_concurrency_are_limited() {
    let srv = start_limited(codeframe_api::Limits {
        http_concurrency: 1,
        http_queue_wait: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let id = srv.project("limits").await;
    // A pause needs kilobytes: 100 KiB is refused; the bulk import still takes megabytes.
    let (s, v) = srv
        .alice("POST", &format!("/api/projects/{id}/pause"), Some(json!({"reason": "x".repeat(100 << 10)})))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large")));
    srv.alice("POST", &format!("/api/projects/{id}/agents"), Some(json!({"agent_id": "w"}))).await;
    let items: Vec<Value> = (0..2000)
        .map(|n| json!({"item_type": "CODE", "content": format!("{n} {}", "y".repeat(900))}))
        .collect();
    let (s, v) = srv
        .alice("POST", &format!("/api/projects/{id}/agents/w/context/bulk"), Some(json!({"items": items})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Every string has a limit.
    for body in [
        json!({"agent_id": "w2", "agent_type": "t".repeat(65)}),
        json!({"agent_id": "w2", "provider": "p".repeat(65)}),
        json!({"agent_id": "w2", "role": "r".repeat(65)}),
        json!({"agent_id": "a".repeat(129)}),
    ] {
        let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/agents"), Some(body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    let (s, _) = srv
        .alice(
            "POST",
            "/api/projects",
            Some(json!({"name": "n", "root_path": srv.root("n"), "description": "d".repeat(2001)})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // One request at a time: while a slow pause runs, another request waits, then gets 503.
    let pause = {
        let (http, url, token) =
            (srv.http.clone(), format!("{}/api/projects/{id}/pause", srv.base), srv.alice.clone());
        tokio::spawn(async move { http.post(url).bearer_auth(token).send().await.unwrap().status() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, v) = srv.alice("GET", &format!("/api/projects/{id}"), None).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("busy")));
    assert_eq!(pause.await.unwrap(), StatusCode::OK);
    let (s, _) = srv.alice("GET", &format!("/api/projects/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn a_moved_project_is_re_pointed_only_inside_the_workspace_and_only_by_its_owner() {
    let srv = start().await;
    let id = srv.project("wanderer").await;
    let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/pause"), Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let old = srv.root("wanderer");
    let new = old.parent().unwrap().join("wanderer-moved");
    std::fs::rename(&old, &new).unwrap();
    let path = format!("/api/projects/{id}/move");

    let (s, v) = srv.alice("POST", &path, Some(json!({"root_path": "/etc"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "outside the workspace roots: {v}");
    let (s, _) = srv.call("POST", &path, Some(&srv.bob.clone()), Some(json!({"root_path": new}))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "not bob's project");
    let (s, v) = srv.alice("POST", &path, Some(json!({"root_path": new, "extra": 1}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown fields refused: {v}");

    let (s, v) = srv.alice("POST", &path, Some(json!({"root_path": new}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["root_path"], new.canonicalize().unwrap().to_str().unwrap());
    let (s, v) = srv.alice("POST", &format!("/api/projects/{id}/resume"), Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["warnings"], json!([]));
}

#[tokio::test]
async fn a_restore_over_http_can_be_undone() {
    let srv = start().await;
    let id = srv.project("undoable").await;
    let (s, none) = srv.alice("POST", &format!("/api/projects/{id}/checkpoints/undo"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "nothing to undo yet: {none}");
    let (s, cp) =
        srv.alice("POST", &format!("/api/projects/{id}/checkpoints"), Some(json!({"name": "base"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{cp}");
    let file = srv.root("undoable").join("src/lib.rs");
    std::fs::write(&file, "pub fn changed() {}\n").unwrap();
    let restore = format!("/api/projects/{id}/checkpoints/{}/restore", cp["id"]);
    let (s, r) = srv.alice("POST", &restore, Some(json!({"files": true, "force": true}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert!(r["safety_checkpoint_id"].is_i64(), "{r}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pub fn f() {}\n");
    let (s, u) = srv.alice("POST", &format!("/api/projects/{id}/checkpoints/undo"), None).await;
    assert_eq!(s, StatusCode::OK, "{u}");
    assert_eq!(u["checkpoint_id"], r["safety_checkpoint_id"]);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pub fn changed() {}\n");
}

#[tokio::test]
async fn garbage_collection_over_http_keeps_every_remaining_checkpoint_readable() {
    let srv = start().await;
    let id = srv.project("collected").await;
    let file = srv.root("collected").join("src/lib.rs");
    let mut ids = Vec::new();
    for n in 0..3 {
        std::fs::write(&file, format!("pub fn v{n}() {{}}\n")).unwrap();
        let (s, cp) = srv
            .alice("POST", &format!("/api/projects/{id}/checkpoints"), Some(json!({"name": format!("c{n}")})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{cp}");
        ids.push(cp["id"].as_i64().unwrap());
    }
    let (s, _) = srv.alice("DELETE", &format!("/api/projects/{id}/checkpoints/{}", ids[0]), None).await;
    assert!(s.is_success());
    let (s, gc) = srv.alice("POST", &format!("/api/projects/{id}/checkpoints/gc"), None).await;
    assert_eq!(s, StatusCode::OK, "{gc}");
    assert_eq!(gc["checkpoints_kept"], 2, "{gc}");
    assert_eq!((gc["packs_before"].as_i64(), gc["packs_after"].as_i64()), (Some(3), Some(1)), "{gc}");
    assert!(gc["bytes_after"].as_u64() < gc["bytes_before"].as_u64(), "{gc}");
    // What the kept checkpoints hold is still there: restoring the older one brings it back.
    let restore = format!("/api/projects/{id}/checkpoints/{}/restore", ids[1]);
    let (s, r) = srv.alice("POST", &restore, Some(json!({"files": true, "force": true}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "pub fn v1() {}\n");
    // Someone else's project is not theirs to collect.
    let bob = srv.bob.clone();
    let (s, _) = srv.call("POST", &format!("/api/projects/{id}/checkpoints/gc"), Some(&bob), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn restoring_a_checkpoint_that_does_not_exist_is_not_found_and_makes_no_safety_checkpoint() {
    // Found by the schema-driven tester: the safety checkpoint took the id asked for, and the
    // restore then "restored" it.
    let srv = start().await;
    let id = srv.project("ghost").await;
    let (s, list) = srv.alice("GET", &format!("/api/projects/{id}/checkpoints"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 0);
    for next in [1, 2] {
        let (s, v) = srv
            .alice(
                "POST",
                &format!("/api/projects/{id}/checkpoints/{next}/restore"),
                Some(json!({"state": true})),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert_eq!(v["error"]["code"], "not_found");
    }
    let (_, list) = srv.alice("GET", &format!("/api/projects/{id}/checkpoints"), None).await;
    assert_eq!(list["checkpoints"].as_array().unwrap().len(), 0, "{list}");
    let (_, events) = srv.alice("GET", &format!("/api/projects/{id}/events"), None).await;
    assert!(!events.to_string().contains("checkpoint_restored"), "{events}");
}

/// Text holding NUL is refused with 422 on every route and both backends (PostgreSQL cannot
/// store it; SQLite's SQL functions would see the text cut short), changing nothing; an
/// escaped backslash followed by `u0000` is ordinary text.
#[tokio::test]
async fn text_with_nul_is_refused_before_anything_is_written() {
    let srv = start().await;
    let root = srv.root("nul");
    let (s, v) = srv
        .alice(
            "POST",
            "/api/projects",
            Some(json!({"name": "nul", "description": "a\u{0}b", "root_path": root})),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "invalid");
    assert!(v["error"]["message"].as_str().unwrap().contains("NUL"), "{v}");
    let (_, list) = srv.alice("GET", "/api/projects", None).await;
    assert_eq!(list["projects"].as_array().map_or(0, Vec::len), 0, "nothing created: {list}");

    let id = srv.project("plain").await;
    let (s, v) =
        srv.alice("POST", &format!("/api/projects/{id}/pause"), Some(json!({"reason": "\u{0}"}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "an optional body too: {v}");
    let (s, v) = srv
        .alice(
            "POST",
            "/api/projects",
            Some(json!({"name": "slash", "description": "C:\\u0000", "root_path": srv.root("slash")})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["description"], "C:\\u0000");
}
