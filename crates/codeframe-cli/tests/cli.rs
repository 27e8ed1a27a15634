//! End to end: the built `codeframe` binary, run as a user would, in real git repositories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use codeframe_models::ProjectId;
use codeframe_testkit::git;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_codeframe");

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn repo() -> Repo {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("shop");
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/main.rs"), "fn main() {}\n").unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-qm", "init"]);
    Repo { _tmp: tmp, root }
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CODEFRAME_HOME")
        .env_remove("FAILPOINTS")
        .output()
        .unwrap()
}

/// Runs with `--json`, expects success and exactly one JSON document on stdout.
fn json(dir: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = run_in(dir, &full);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not one JSON document: {e}"))
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

#[test]
fn the_walkthrough_with_json_outputs() {
    let r = repo();
    let d = &r.root;
    let init = json(d, &["init", ".", "--name", "shop"]);
    assert_eq!(init["name"], "shop");
    assert!(d.join(".codeframe/state.db").is_file());

    json(d, &["agent", "add", "coder-1", "--type", "backend"]);
    json(d, &["agent", "add", "planner-1"]);
    let item =
        json(d, &["context", "add", "--agent", "coder-1", "--type", "TASK", "--content", "Add login page"]);
    assert_eq!(item["tier"], "hot");
    std::fs::write(d.join("notes.md"), "old requirement text\n").unwrap();
    let item =
        json(d, &["context", "add", "--agent", "planner-1", "--type", "PRD_SECTION", "--file", "notes.md"]);
    assert!(item["token_count"].as_i64().unwrap() > 0);
    let lines = r#"{"agent_id":"coder-1","item_type":"ERROR","content":"stale error","created_at":"2026-01-01T00:00:00Z"}
{"agent_id":"planner-1","item_type":"CODE","content":"fn old() {}","created_at":"2026-01-02T00:00:00Z","access_count":2}
"#;
    std::fs::write(d.join("old.jsonl"), lines).unwrap();
    assert_eq!(json(d, &["context", "import", "old.jsonl"])["imported"], 2);

    let started = json(d, &["start"]);
    assert_eq!(started["status"], "planning");

    let pause = json(d, &["pause", "--reason", "lunch"]);
    for field in [
        "success",
        "checkpoint_id",
        "tokens_before",
        "tokens_after",
        "reduction_percentage",
        "items_archived",
        "paused_at",
    ] {
        assert!(pause.get(field).is_some(), "pause --json lacks {field}");
    }
    assert_eq!(pause["success"], true);
    assert_eq!(pause["items_archived"], 2);

    let status = json(d, &["status"]);
    for field in ["project_id", "name", "status", "phase", "paused_at", "pause_reason", "pause_checkpoint_id"]
    {
        assert!(status.get(field).is_some(), "status --json lacks {field}");
    }
    assert_eq!(status["status"], "paused");
    assert_eq!(status["paused_at"], pause["paused_at"]);
    assert_eq!(status["pause_reason"], "lunch");
    assert_eq!(status["pause_checkpoint_id"], pause["checkpoint_id"]);

    let again = run_in(d, &["--json", "pause"]);
    assert_eq!(code(&again), 3, "already paused is a conflict");
    assert!(again.stdout.is_empty());
    let err: Value = serde_json::from_slice(&again.stderr).unwrap();
    assert_eq!(err["error"]["code"], "conflict");

    std::fs::write(d.join("src/main.rs"), "fn main() { println!(\"edited while paused\"); }\n").unwrap();
    let resume = json(d, &["resume"]);
    for field in ["success", "checkpoint_id", "status", "items_restored", "files_changed"] {
        assert!(resume.get(field).is_some(), "resume --json lacks {field}");
    }
    assert_eq!(resume["status"], "planning");
    assert_eq!(resume["items_restored"], 4);
    assert_eq!(resume["files_changed"], serde_json::json!(["src/main.rs"]));
    assert!(std::fs::read_to_string(d.join("src/main.rs")).unwrap().contains("edited"), "edits kept");

    let list = json(d, &["checkpoints", "list"]);
    let first = &list.as_array().unwrap()[0];
    for field in ["id", "name", "trigger", "created_at", "commit"] {
        assert!(first.get(field).is_some(), "checkpoints list --json lacks {field}");
    }
    assert_eq!(first["trigger"], "pause");
    assert_eq!(first["name"], "Project paused: lunch");
    let id = first["id"].as_i64().unwrap().to_string();
    assert_eq!(json(d, &["checkpoints", "verify", &id])["ok"], true);
    assert_eq!(json(d, &["checkpoints", "show", &id])["commit"], first["commit"]);
    let diff = json(d, &["checkpoints", "diff", &id]);
    assert_eq!(diff["files"][0]["path"], "src/main.rs");
    let manual = json(d, &["checkpoints", "create", "--name", "manual"]);
    let manual_id = manual["id"].as_i64().unwrap().to_string();
    assert_eq!(json(d, &["checkpoints", "delete", &manual_id])["deleted"], manual["id"]);
    assert_eq!(code(&run_in(d, &["checkpoints", "show", &manual_id])), 4);

    let stats = json(d, &["context", "stats"]);
    for field in ["active_items", "archived_items", "active_tokens", "hot", "warm", "cold"] {
        assert!(stats["total"].get(field).is_some(), "stats total lacks {field}");
    }
    assert_eq!(stats["total"]["archived_items"], 2);
    assert_eq!(stats["total"]["active_items"], 2);
    assert_eq!(stats["agents"][0]["agent_id"], "coder-1");

    let token = json(d, &["token", "create", "--name", "ci"]);
    assert!(token["token"].as_str().unwrap().starts_with("cf_"));

    // The user's repository: HEAD and the index untouched, .codeframe hidden.
    let status = Command::new("git").args(["status", "--porcelain"]).current_dir(d).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(!status.contains(".codeframe"), "{status}");
}

#[test]
fn export_and_import_round_trip() {
    let r = repo();
    let d = &r.root;
    json(d, &["init"]);
    json(d, &["agent", "add", "a1"]);
    let lines: String = (0..5)
        .map(|n| format!("{{\"agent_id\":\"a1\",\"item_type\":\"CODE\",\"content\":\"fn f{n}() {{}}\",\"created_at\":\"2026-01-0{}T00:00:00Z\"}}\n", n + 1))
        .collect();
    std::fs::write(d.join("in.jsonl"), lines).unwrap();
    json(d, &["context", "import", "in.jsonl"]);
    json(d, &["start"]);
    json(d, &["pause"]);
    let exported = json(d, &["context", "export", "out.jsonl"]);
    assert_eq!((exported["exported"].as_i64(), exported["archived"].as_i64()), (Some(5), Some(5)));
    let out = std::fs::read_to_string(d.join("out.jsonl")).unwrap();
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    for field in ["id", "tier", "token_count", "archived_at", "content", "agent_id", "item_type"] {
        assert!(first.get(field).is_some(), "export lacks {field}");
    }
    // Import the export into a second project: same contents, types and creation times.
    let other = r.root.parent().unwrap().join("other");
    std::fs::create_dir_all(&other).unwrap();
    json(&other, &["init"]);
    json(&other, &["agent", "add", "a1"]);
    json(&other, &["context", "import", d.join("out.jsonl").to_str().unwrap()]);
    json(&other, &["context", "export", "again.jsonl"]);
    let key = |text: &str| {
        let mut v: Vec<(String, String, String)> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|v| (v["content"].to_string(), v["item_type"].to_string(), v["created_at"].to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&std::fs::read_to_string(other.join("again.jsonl")).unwrap()), key(&out));
}

#[test]
fn importing_ten_thousand_lines() {
    let r = repo();
    let d = &r.root;
    json(d, &["init"]);
    json(d, &["agent", "add", "bulk-agent"]);
    let lines: String = (0..10_000)
        .map(|n| {
            format!(
                "{{\"agent_id\":\"bulk-agent\",\"item_type\":\"TASK\",\"content\":\"task number {n}\"}}\n"
            )
        })
        .collect();
    std::fs::write(d.join("big.jsonl"), lines).unwrap();
    assert_eq!(json(d, &["context", "import", "big.jsonl"])["imported"], 10_000);
    assert_eq!(json(d, &["context", "stats"])["total"]["active_items"], 10_000);
    // A bad line anywhere imports nothing and names the line.
    std::fs::write(d.join("bad.jsonl"), "{\"agent_id\":\"bulk-agent\",\"item_type\":\"TASK\",\"content\":\"ok\"}\n{\"agent_id\":\"bulk-agent\",\"item_type\":\"NOTE\",\"content\":\"x\"}\n").unwrap();
    let out = run_in(d, &["context", "import", "bad.jsonl"]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:2"));
    assert_eq!(json(d, &["context", "stats"])["total"]["active_items"], 10_000);
}

#[test]
fn exit_codes_for_usage_conflict_and_not_found() {
    let r = repo();
    let d = &r.root;
    // No home yet: not found.
    assert_eq!(code(&run_in(d, &["status"])), 4);
    json(d, &["init"]);
    let out = run_in(d, &["frobnicate"]);
    assert_eq!(code(&out), 2, "unknown command");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "one clear line");
    let out = run_in(d, &["--json", "frobnicate"]);
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"]["code"], "usage");
    assert!(run_in(d, &["--help"]).status.success());
    assert_eq!(code(&run_in(d, &["pause", "--drain-timeout", "soon"])), 2, "bad flag value");
    assert_eq!(code(&run_in(d, &["context", "add", "--agent", "x", "--type", "TASK"])), 2, "no content");
    assert_eq!(code(&run_in(d, &["--project", "nope", "status"])), 4);
    assert_eq!(code(&run_in(d, &["checkpoints", "show", "999"])), 4);
    assert_eq!(code(&run_in(d, &["resume"])), 3, "not paused");
    assert_eq!(code(&run_in(d, &["pause"])), 3, "init cannot be paused");
    json(d, &["start"]);
    let long = "r".repeat(501);
    let out = run_in(d, &["pause", "--reason", &long]);
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1, "one clear line");
    assert_eq!(json(d, &["status"])["status"], "planning", "nothing changed");
    assert_eq!(
        code(&run_in(d, &["context", "add", "--agent", "ghost", "--type", "TASK", "--content", "x"])),
        4
    );
    assert_eq!(
        code(&run_in(d, &["context", "add", "--agent", "ghost", "--type", "NOTE", "--content", "x"])),
        2
    );
    assert_eq!(code(&run_in(d, &["checkpoints", "restore", "1", "--files"])), 4);
}

#[test]
fn the_home_is_found_upward_or_given() {
    let r = repo();
    let d = &r.root;
    json(d, &["init", ".", "--name", "found"]);
    assert_eq!(json(&d.join("src"), &["status"])["name"], "found", "found from a subdirectory");
    let elsewhere = r.root.parent().unwrap();
    let home = d.join(".codeframe");
    assert_eq!(json(elsewhere, &["--home", home.to_str().unwrap(), "status"])["name"], "found");
    let out = Command::new(BIN)
        .args(["--json", "status"])
        .current_dir(elsewhere)
        .env("CODEFRAME_HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["name"], "found");
}

#[test]
fn restore_needs_confirmation_when_not_on_a_terminal() {
    let r = repo();
    let d = &r.root;
    json(d, &["init"]);
    let cp = json(d, &["checkpoints", "create", "--name", "base"]);
    let id = cp["id"].as_i64().unwrap().to_string();
    std::fs::write(d.join("src/main.rs"), "changed\n").unwrap();
    let out = run_in(d, &["checkpoints", "restore", &id, "--files"]);
    assert_eq!(code(&out), 2);
    assert_eq!(std::fs::read_to_string(d.join("src/main.rs")).unwrap(), "changed\n");
    let out = run_in(d, &["--json", "checkpoints", "restore", &id, "--files", "--yes"]);
    assert_eq!(code(&out), 3, "the edit would be lost: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("changed since the latest checkpoint (src/main.rs)")
    );
    assert_eq!(std::fs::read_to_string(d.join("src/main.rs")).unwrap(), "changed\n");
    let restored = json(d, &["checkpoints", "restore", &id, "--files", "--force", "--yes"]);
    assert_eq!(restored["files_written"], 1);
    assert_eq!(std::fs::read_to_string(d.join("src/main.rs")).unwrap(), "fn main() {}\n");
}

#[test]
fn the_demo_runs_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let v = json(tmp.path(), &["demo", tmp.path().join("demo").to_str().unwrap()]);
    assert_eq!(v["pause"]["success"], true);
    assert!(v["pause"]["items_archived"].as_i64().unwrap() > 0);
    assert_eq!(v["resume"]["files_changed"], serde_json::json!(["src/main.rs"]));
    assert_eq!(v["after"]["status"], "planning");
}

#[cfg(feature = "failpoints")]
#[test]
fn a_pause_killed_at_a_fail_point_leaves_the_project_as_it_was() {
    let r = repo();
    let d = &r.root;
    json(d, &["init"]);
    json(d, &["start"]);
    let marker = d.parent().unwrap().join("marker");
    let mut child = Command::new(BIN)
        .args(["pause", "--reason", "killed"])
        .current_dir(d)
        .env("FAILPOINTS", "pause::before_commit=sleep(60000)")
        .env("CODEFRAME_FAILPOINT_MARKER", &marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&marker).unwrap_or_default().contains("pause::before_commit") {
        assert!(std::time::Instant::now() < deadline, "never reached the fail point");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let status = json(d, &["status"]);
    assert_eq!(status["status"], "planning");
    assert!(status["paused_at"].is_null());
    assert_eq!(json(d, &["checkpoints", "list"]), serde_json::json!([]));
    let refs = Command::new("git")
        .args(["--git-dir", ".codeframe/snapshots.git", "for-each-ref"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(refs.stdout.is_empty(), "the orphan ref was reconciled away");
    assert_eq!(json(d, &["pause"])["success"], true, "and the project can be paused");
}

// ---------------------------------------------------------------- several processes, one home

/// A `codeframe serve` process on 127.0.0.1 (a free port), over the home of `dir`.
struct Server {
    child: std::process::Child,
    addr: String,
    metrics: Option<String>,
}

impl Server {
    fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    fn start_with(dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(extra)
            .current_dir(dir)
            .env_remove("CODEFRAME_HOME")
            .env_remove("FAILPOINTS")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut metrics = None;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let first_word = |rest: &str| rest.split_whitespace().next().unwrap_or_default().to_owned();
                if let Some(rest) = line.strip_prefix("codeframe metrics on http://") {
                    metrics = Some(first_word(rest).trim_end_matches("/metrics").to_owned());
                }
                if let Some(rest) = line.strip_prefix("codeframe API on http://") {
                    let _ = tx.send((first_word(rest), metrics.take()));
                }
            }
        });
        let (addr, metrics) =
            rx.recv_timeout(std::time::Duration::from_secs(60)).expect("serve never listened");
        Self { child, addr, metrics }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn subscribe(addr: &str, token: &str, message: Value) -> Ws {
    use futures_util::{SinkExt, StreamExt};
    let url = format!("ws://{addr}/ws");
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(tokio_tungstenite::tungstenite::Message::Text(message.to_string().into())).await.unwrap();
    loop {
        // The server may ping first.
        let msg = ws.next().await.unwrap().unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(ack) = msg {
            assert!(ack.contains("subscribed"), "{ack}");
            return ws;
        }
    }
}

/// Events received until one of type `until` (or nothing for 10 s).
async fn events_until(ws: &mut Ws, until: &str) -> Vec<Value> {
    use futures_util::StreamExt;
    let mut got = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await;
        let Ok(Some(Ok(msg))) = next else { return got };
        let Ok(text) = msg.to_text() else { continue };
        let Ok(v) = serde_json::from_str::<Value>(text) else { continue };
        let done = v["type"] == until;
        got.push(v);
        if done {
            return got;
        }
    }
}

/// In a child process: pauses the project through the library, as an application embedding
/// `codeframe-core` would.
#[tokio::test]
#[ignore = "run as a child process by the multi-process tests"]
async fn library_child() {
    let Ok(db) = std::env::var("CF_LIBRARY_DB") else { return };
    let service = codeframe_core::ProjectService::with_defaults(codeframe_core::Db::open(&db).await.unwrap());
    let request = codeframe_models::PauseRequest { reason: Some("library".into()) };
    service.pause(ProjectId(1), request).await.unwrap();
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_delivers_events_committed_by_the_command_line_and_by_a_library_process() {
    let r = repo();
    let d = r.root.clone();
    let token = blocking(|| {
        json(&d, &["init"]);
        json(&d, &["start"]);
        json(&d, &["agent", "add", "coder-1"]);
        json(&d, &["token", "create", "--name", "test"])["token"].as_str().unwrap().to_owned()
    });
    let server = blocking(|| Server::start(&d));
    let mut ws =
        subscribe(&server.addr, &token, serde_json::json!({"type": "subscribe", "project_id": 1})).await;

    // A pause made by the command line, in another process.
    let paused = blocking(|| json(&d, &["pause", "--reason", "terminal"]));
    let got = events_until(&mut ws, "project_paused").await;
    let last = got.last().unwrap();
    assert_eq!(last["type"], "project_paused", "{got:?}");
    assert_eq!(last["reason"], "terminal");
    assert_eq!(last["checkpoint_id"], paused["checkpoint_id"]);
    assert!(last["seq"].as_i64().unwrap() > 0, "every event carries its seq");
    let seqs: Vec<i64> = got.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    blocking(|| json(&d, &["resume"]));
    let got = events_until(&mut ws, "project_resumed").await;
    assert_eq!(got.last().unwrap()["type"], "project_resumed");

    // A pause made by an application using the library, in a third process.
    let status = blocking(|| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "library_child", "--ignored", "--test-threads=1"])
            .env("CF_LIBRARY_DB", d.join(".codeframe/state.db"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
    });
    assert!(status.success());
    let got = events_until(&mut ws, "project_paused").await;
    assert_eq!(got.last().unwrap()["reason"], "library", "{got:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_prints_the_log_and_follows_what_other_processes_commit() {
    let r = repo();
    let d = r.root.clone();
    blocking(|| {
        json(&d, &["init"]);
        json(&d, &["start"]);
        json(&d, &["agent", "add", "coder-1"]);
    });
    // The log so far, as JSON lines.
    let out = blocking(|| run_in(&d, &["--json", "events"]));
    assert!(out.status.success());
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = lines.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["status_changed", "agent_added"]);
    let since = lines[0]["seq"].as_i64().unwrap().to_string();
    let human = blocking(|| run_in(&d, &["events", "--since", &since]));
    let human = String::from_utf8_lossy(&human.stdout).into_owned();
    assert!(human.contains("agent_added") && human.contains("agent_id=coder-1"), "{human}");
    assert!(!human.contains("status_changed"), "only events after --since: {human}");

    // Following: a pause by another process shows up as it commits.
    let mut follow = Command::new(BIN)
        .args(["--json", "events", "--follow", "--since", &lines[1]["seq"].as_i64().unwrap().to_string()])
        .current_dir(&d)
        .env_remove("CODEFRAME_HOME")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str(&line).unwrap());
        }
    });
    blocking(|| json(&d, &["pause", "--reason", "followed"]));
    let mut seen = Vec::new();
    while let Ok(v) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        let done = v["type"] == "project_paused";
        seen.push(v);
        if done {
            break;
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    let kinds: Vec<&str> = seen.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["pause_requested", "flash_save_completed", "checkpoint_created", "status_changed", "project_paused"]
    );
    assert_eq!(seen[4]["reason"], "followed");
    // A position the log never reached is a gap: exit 4.
    let out = blocking(|| run_in(&d, &["events", "--since", "99999"]));
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));
    // Retention set from the command line: keep the newest event only. Without --since the
    // command prints what is kept; asking for what is gone is a gap.
    blocking(|| json(&d, &["--events-max-per-project", "1", "status"]));
    let out = blocking(|| run_in(&d, &["--json", "events"]));
    let kept: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["type"], "project_paused");
    let out = blocking(|| run_in(&d, &["events", "--since", "0"]));
    assert_eq!(code(&out), 4);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("reload"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(feature = "failpoints")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_right_before_a_kill_9_is_delivered_after_restart() {
    let r = repo();
    let d = r.root.clone();
    let token = blocking(|| {
        json(&d, &["init"]);
        json(&d, &["start"]);
        json(&d, &["token", "create", "--name", "test"])["token"].as_str().unwrap().to_owned()
    });
    let since = blocking(|| {
        let out = run_in(&d, &["--json", "events"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let last = text.lines().last().map(|l| serde_json::from_str::<Value>(l).unwrap());
        last.map_or(0, |v| v["seq"].as_i64().unwrap())
    });
    let marker = d.parent().unwrap().join("marker");
    let mut child = Command::new(BIN)
        .args(["pause", "--reason", "killed after commit"])
        .current_dir(&d)
        .env("FAILPOINTS", "pause::after_commit=sleep(60000)")
        .env("CODEFRAME_FAILPOINT_MARKER", &marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    blocking(|| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !std::fs::read_to_string(&marker).unwrap_or_default().contains("pause::after_commit") {
            assert!(std::time::Instant::now() < deadline, "never reached the fail point");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    });
    // A server started afterwards delivers it to a client catching up from where it was.
    let server = blocking(|| Server::start(&d));
    let message = serde_json::json!({"type": "subscribe", "project_id": 1, "since": since});
    let mut ws = subscribe(&server.addr, &token, message).await;
    let got = events_until(&mut ws, "project_paused").await;
    let paused = got.last().unwrap();
    assert_eq!(
        (paused["type"].as_str(), paused["reason"].as_str()),
        (Some("project_paused"), Some("killed after commit"))
    );
    assert_eq!(blocking(|| json(&d, &["status"]))["status"], "paused");
    drop(server);
}

// ---------------------------------------------------------------- agents anywhere: the gate over HTTP

/// The Python agent of docs/examples/agent.py (standard library only), as a process speaking
/// HTTP and WebSocket to `codeframe serve`; its steps, one JSON line each.
struct PyAgent {
    child: std::process::Child,
    steps: std::sync::mpsc::Receiver<Value>,
}

impl PyAgent {
    fn start(addr: &str, token: &str) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/agent.py");
        let mut child = Command::new("python3")
            .arg(script)
            .env("CODEFRAME_URL", format!("http://{addr}"))
            .env("CODEFRAME_TOKEN", token)
            .env("CODEFRAME_PROJECT", "1")
            .env("CODEFRAME_AGENT", "py-agent")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the example agent");
        let stdout = child.stdout.take().unwrap();
        let (tx, steps) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap());
            }
        });
        Self { child, steps }
    }

    /// The next step, which must be `step`.
    fn expect(&self, step: &str) -> Value {
        let got = self
            .steps
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {step}"));
        assert_eq!(got["step"], step, "{got}");
        got
    }
}

#[test]
fn an_http_agent_holds_a_permit_that_a_pause_from_the_command_line_waits_for() {
    let r = repo();
    let d = &r.root;
    json(d, &["init"]);
    json(d, &["start"]);
    json(d, &["agent", "add", "py-agent"]);
    let token = json(d, &["token", "create", "--name", "agent"])["token"].as_str().unwrap().to_owned();
    let server = Server::start(d);
    let mut agent = PyAgent::start(&server.addr, &token);
    agent.expect("ready");
    assert_eq!(agent.expect("permit")["unit"], 1);
    let before = json(d, &["context", "stats"])["total"]["active_items"].as_i64().unwrap();

    // The pause (another process) waits for the agent's unit; the agent hears pause_requested,
    // saves its work under its permit and releases it; only then does the pause complete.
    let paused = json(d, &["pause", "--reason", "agents anywhere", "--drain-timeout", "60"]);
    assert_eq!(paused["interrupted_agents"], serde_json::json!([]), "the drain ended with the release");
    assert!(agent.expect("pause_requested")["deadline"].as_str().unwrap().ends_with('Z'));
    assert_eq!(agent.expect("final_write")["status"], 201, "a write under the permit while draining");
    assert_eq!(agent.expect("released")["status"], 204);

    // Paused: the agent's write is refused and changes nothing.
    let refused = agent.expect("paused_write");
    assert_eq!((refused["status"].as_i64(), refused["code"].as_str()), (Some(409), Some("paused")));
    let stats = json(d, &["context", "stats"]);
    assert_eq!(stats["total"]["active_items"].as_i64().unwrap(), before + 1, "only the final write");

    // Resumed: the agent takes a permit again.
    json(d, &["resume"]);
    assert_eq!(agent.expect("permit_after_resume")["status"], 201);
    assert!(agent.child.wait().unwrap().success());
    drop(server);
}

#[test]
fn permits_from_the_command_line_for_shell_agents() {
    let r = repo();
    let d = &r.root;
    json(d, &["init"]);
    json(d, &["start"]);
    json(d, &["agent", "add", "sh-agent"]);
    let taken = json(d, &["permit", "take", "--agent", "sh-agent", "--ttl", "60"]);
    let id = taken["permit_id"].as_i64().unwrap().to_string();
    assert_eq!(
        (taken["agent_id"].as_str(), taken["pause_requested"].as_bool()),
        (Some("sh-agent"), Some(false))
    );
    let renewed = json(d, &["permit", "renew", &id, "--ttl", "120"]);
    assert!(renewed["expires_at"].as_str().unwrap() > taken["expires_at"].as_str().unwrap());
    // A pause with a short drain deadline reports the shell agent interrupted, then ends its permit.
    let paused = json(d, &["pause", "--drain-timeout", "1"]);
    assert_eq!(paused["interrupted_agents"], serde_json::json!(["sh-agent"]));
    let out = run_in(
        d,
        &["context", "add", "--agent", "sh-agent", "--type", "TASK", "--content", "x", "--permit", &id],
    );
    assert_eq!(code(&out), 3, "paused: refused whatever permit");
    assert_eq!(code(&run_in(d, &["permit", "renew", &id])), 3, "the pause ended it");
    assert_eq!(code(&run_in(d, &["permit", "take", "--agent", "sh-agent"])), 3);
    json(d, &["resume"]);
    let again = json(d, &["permit", "take", "--agent", "sh-agent"]);
    let again_id = again["permit_id"].as_i64().unwrap().to_string();
    json(
        d,
        &["context", "add", "--agent", "sh-agent", "--type", "TASK", "--content", "x", "--permit", &again_id],
    );
    assert_eq!(json(d, &["permit", "release", &again_id])["released"], true);
    assert_eq!(code(&run_in(d, &["permit", "release", &again_id])), 4, "released once");
    assert_eq!(code(&run_in(d, &["permit", "take", "--agent", "sh-agent", "--ttl", "0"])), 2);
    // A shell agent that dies holding a permit blocks a pause only until the permit expires.
    json(d, &["permit", "take", "--agent", "sh-agent", "--ttl", "2"]);
    let paused = json(d, &["pause", "--drain-timeout", "60"]);
    assert_eq!(paused["interrupted_agents"], serde_json::json!([]), "the expired permit no longer counts");
}

// ---------------------------------------------------------------- tokens

/// One HTTP/1.1 request over a plain socket: (status, body).
fn http(addr: &str, method: &str, path: &str, token: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[test]
fn tokens_on_a_fresh_home_expire_and_a_revocation_reaches_a_running_server_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("srv").join("home");
    let h = home.to_str().unwrap();
    let dir = tmp.path();
    // A fresh home: no project yet.
    let ops = json(dir, &["--home", h, "token", "create", "--name", "ops", "--user", "alice"]);
    let ops_token = ops["token"].as_str().unwrap().to_owned();
    let short = json(
        dir,
        &["--home", h, "token", "create", "--name", "short", "--user", "alice", "--expires-in", "2s"],
    );
    let short_token = short["token"].as_str().unwrap().to_owned();
    assert_eq!(
        code(&run_in(dir, &["--home", h, "token", "create", "--name", "x", "--expires-in", "soon"])),
        2
    );
    let list = json(dir, &["--home", h, "token", "list"]);
    let tokens = list.as_array().unwrap();
    assert_eq!(tokens.len(), 2);
    assert!(tokens[0]["expires_at"].is_null() && tokens[1]["expires_at"].is_string(), "{list}");

    let mut server = Command::new(BIN)
        .args(["--home", h, "serve", "--addr", "127.0.0.1:0"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = {
        use std::io::BufRead;
        let stderr = server.stderr.take().unwrap();
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("codeframe API on http://").map(|r| r.split(' ').next().unwrap().to_owned())
            })
            .unwrap()
    };
    let (status, body) = http(&addr, "GET", "/api/tokens", &ops_token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["tokens"].as_array().unwrap().len(), 2);
    assert_eq!(http(&addr, "GET", "/api/projects", &short_token).0, 200);

    // Revoked from another process: refused by the server within a second.
    let id = tokens[0]["id"].as_i64().unwrap().to_string();
    json(dir, &["--home", h, "token", "revoke", &id]);
    let revoked_at = std::time::Instant::now();
    while http(&addr, "GET", "/api/projects", &ops_token).0 != 401 {
        assert!(revoked_at.elapsed() < std::time::Duration::from_secs(1), "still accepted after 1 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(code(&run_in(dir, &["--home", h, "token", "revoke", &id])), 4, "revoked once");
    // Expired: refused.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(http(&addr, "GET", "/api/projects", &short_token).0, 401);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn serve_refuses_a_home_inside_a_workspace_root_and_a_missing_workspace_root() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let home = work.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let serve = |workspace: &Path| {
        let mut args = vec!["--home", home.to_str().unwrap(), "serve", "--addr", "127.0.0.1:0"];
        args.extend(["--workspace-root", workspace.to_str().unwrap()]);
        run_in(tmp.path(), &args)
    };
    let out = serve(&work);
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the workspace root"));
    let out = serve(&tmp.path().join("nope"));
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------- operating the service

/// A request with a JSON body; (status, body).
fn http_post(addr: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    // A server that goes away mid-answer leaves what it sent (status 0 if nothing).
    let _ = s.read_to_string(&mut out);
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

/// A started project whose agent holds a permit for `ttl` seconds (so a pause drains until it
/// expires), and an API token.
fn started_with_a_held_permit(d: &Path, ttl: &str) -> String {
    json(d, &["init"]);
    json(d, &["agent", "add", "coder-1"]);
    json(d, &["start"]);
    json(d, &["permit", "take", "--agent", "coder-1", "--ttl", ttl]);
    json(d, &["token", "create", "--name", "test"])["token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_pause_lets_it_finish_closes_websockets_with_1001_and_exits_0() {
    use futures_util::StreamExt;
    let r = repo();
    let d = r.root.clone();
    // A permit held elsewhere for 4 s: the pause drains until it expires.
    let token = blocking(|| started_with_a_held_permit(&d, "4"));
    let mut server = blocking(|| Server::start(&d));
    let mut ws =
        subscribe(&server.addr, &token, serde_json::json!({"type": "subscribe", "project_id": 1})).await;
    let (addr, t) = (server.addr.clone(), token.clone());
    let pause =
        std::thread::spawn(move || http_post(&addr, "/api/projects/1/pause", &t, r#"{"reason":"deploy"}"#));
    let got = events_until(&mut ws, "pause_requested").await;
    assert_eq!(got.last().unwrap()["type"], "pause_requested", "{got:?}");

    // SIGTERM while the pause waits for the permit.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let closed = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    let frame = closed.unwrap();
    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
    // No new connections once shutting down.
    let refused = std::time::Instant::now();
    while std::net::TcpStream::connect(&server.addr).is_ok() {
        assert!(refused.elapsed() < std::time::Duration::from_secs(5), "still accepting");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // The pause in flight finishes, then the process exits 0.
    let (status, body) = blocking(|| pause.join().unwrap());
    assert_eq!(status, 200, "{body}");
    let outcome: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(outcome["success"], true, "{outcome}");
    let exit = blocking(|| {
        let started = std::time::Instant::now();
        loop {
            if let Some(s) = server.child.try_wait().unwrap() {
                break s;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "still running");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    assert_eq!(exit.code(), Some(0));
    let status = blocking(|| json(&d, &["status"]));
    assert_eq!(status["status"], "paused");
    assert_eq!(status["pause_checkpoint_id"], outcome["checkpoint_id"]);
    let verify = blocking(|| {
        json(&d, &["checkpoints", "verify", &outcome["checkpoint_id"].as_i64().unwrap().to_string()])
    });
    assert_eq!(verify["ok"], true, "{verify}");
}

#[test]
fn serve_settings_come_from_the_file_unless_a_flag_or_variable_says_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (file_home, env_home, work) = (t.join("file-home"), t.join("env-home"), t.join("work"));
    std::fs::create_dir_all(&work).unwrap();
    let conf = t.join("codeframe.toml");

    // `config check`: a typo is named, exit 2; a good file is echoed.
    std::fs::write(&conf, "adress = \"127.0.0.1:0\"\n").unwrap();
    let out = run_in(t, &["config", "check", conf.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("adress"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        &conf,
        format!(
            "home = {:?}\naddr = \"127.0.0.1:0\"\nworkspace_roots = [{:?}]\nlog_format = \"json\"\n\
             [limits]\nshutdown_grace_seconds = 5\n",
            file_home.to_str().unwrap(),
            t.join("missing").to_str().unwrap()
        ),
    )
    .unwrap();
    let checked = json(t, &["config", "check", conf.to_str().unwrap()]);
    assert_eq!(checked["log_format"], "json");
    assert_eq!(checked["limits"]["shutdown_grace_seconds"], 5);

    // The file alone: its (missing) workspace root is refused.
    let out = run_in(t, &["serve", "--config", conf.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A flag overrides the file's roots, a variable its home; the file's log format holds.
    let mut server = Command::new(BIN)
        .args(["serve", "--config", conf.to_str().unwrap(), "--workspace-root", work.to_str().unwrap()])
        .current_dir(t)
        .env("CODEFRAME_HOME", &env_home)
        .env("CODEFRAME_LOG", "info")
        .env_remove("FAILPOINTS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: Vec<String> = {
        use std::io::BufRead;
        let stderr = server.stderr.take().unwrap();
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let done = line.starts_with("codeframe API on http://");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    };
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(lines.last().unwrap().starts_with("codeframe API on http://"), "{lines:?}");
    assert!(env_home.join("state.db").is_file(), "the variable's home is used");
    assert!(!file_home.exists(), "not the file's");
    let logs: Vec<Value> = lines.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        logs.iter().any(|l| l["fields"]["message"] == "database opened"),
        "JSON log lines, as the file says: {lines:?}"
    );
}

/// A metrics text: every sample as (name with labels, value); panics on a malformed line.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("malformed line {l:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|e| panic!("{l:?}: {e}")),
            };
            (series.to_owned(), value)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_on_their_own_listener_and_count_what_happened() {
    let r = repo();
    let d = r.root.clone();
    let token = blocking(|| {
        json(&d, &["init"]);
        json(&d, &["agent", "add", "coder-1"]);
        json(&d, &["context", "add", "--agent", "coder-1", "--type", "TASK", "--content", "ship it"]);
        json(&d, &["start"]);
        json(&d, &["token", "create", "--name", "test"])["token"].as_str().unwrap().to_owned()
    });
    let server = blocking(|| Server::start_with(&d, &["--metrics-addr", "127.0.0.1:0"]));
    let metrics = server.metrics.clone().expect("a metrics listener");
    let mut ws =
        subscribe(&server.addr, &token, serde_json::json!({"type": "subscribe", "project_id": 1})).await;
    let (status, body) = blocking(|| http_post(&server.addr, "/api/projects/1/pause", &token, "{}"));
    assert_eq!(status, 200, "{body}");
    events_until(&mut ws, "project_paused").await;
    assert_eq!(blocking(|| http(&server.addr, "GET", "/api/projects/1", &token)).0, 200);
    assert_eq!(blocking(|| http(&server.addr, "GET", "/api/projects/999", &token)).0, 404);

    // No token needed on the metrics listener; the API listener has no /metrics.
    let (status, text) = blocking(|| http(&metrics, "GET", "/metrics", ""));
    assert_eq!(status, 200, "{text}");
    assert_eq!(blocking(|| http(&server.addr, "GET", "/metrics", &token)).0, 404);
    assert_eq!(blocking(|| http(&metrics, "GET", "/api/projects", &token)).0, 404);

    let samples = parse_metrics(&text);
    let value = |series: &str| {
        samples
            .iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value(
            r#"codeframe_http_requests_total{method="POST",route="/api/projects/{id}/pause",status="200"}"#
        ),
        1.0
    );
    assert!(
        value(r#"codeframe_http_requests_total{method="GET",route="/api/projects/{id}",status="404"}"#)
            >= 1.0
    );
    assert!(!text.contains("/api/projects/999"), "route templates, never raw paths");
    assert_eq!(value(r#"codeframe_transition_duration_seconds_count{transition="pause",outcome="ok"}"#), 1.0);
    assert!(value("codeframe_events_delivered_total") >= 1.0);
    assert_eq!(value("codeframe_ws_subscribers"), 1.0);
    assert_eq!(value("codeframe_leases_held"), 0.0);
    assert_eq!(value("codeframe_transitions_in_flight"), 0.0);
    assert!(value("codeframe_event_log_head") >= 1.0);
    assert!(value(r#"codeframe_db_pool_connections{state="open"}"#) >= 1.0);
    let items: f64 = samples
        .iter()
        .filter(|(s, _)| s.starts_with("codeframe_context_items{project_id=\"1\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(items, 1.0, "the one active item, in its tier");
    assert!(
        samples.iter().any(|(s, v)| s.starts_with("codeframe_context_tokens{project_id=\"1\"") && *v > 0.0),
        "{text}"
    );
    drop(server);
}

#[test]
fn a_backup_taken_under_load_restores_to_a_consistent_home() {
    let r = repo();
    let d = r.root.clone();
    json(&d, &["init"]);
    json(&d, &["agent", "add", "coder-1"]);
    json(&d, &["start"]);
    let server = Server::start(&d);
    // Load from other processes: items added, pauses and resumes, all the time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (d, stop) = (d.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let content = format!("item {n}");
                json(&d, &["context", "add", "--agent", "coder-1", "--type", "TASK", "--content", &content]);
                json(&d, &["pause"]);
                json(&d, &["resume"]);
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(600));
    let backup = d.parent().unwrap().join("backup.db");
    let taken = json(&d, &["backup", "--to", backup.to_str().unwrap()]);
    assert!(taken["bytes"].as_u64().unwrap() > 0);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(load.join().unwrap() >= 1, "the load ran");
    assert_eq!(code(&run_in(&d, &["backup", "--to", backup.to_str().unwrap()])), 2, "never overwrites");
    let backup_bytes = std::fs::read(&backup).unwrap();

    // Later work, which the restore takes back.
    json(&d, &["context", "add", "--agent", "coder-1", "--type", "TASK", "--content", "after the backup"]);
    let out = run_in(&d, &["restore-backup", backup.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "asks for --yes");
    let out = run_in(&d, &["restore-backup", backup.to_str().unwrap(), "--yes"]);
    assert_eq!(
        code(&out),
        3,
        "refused while the server has it open: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    drop(server);

    let restored = json(&d, &["restore-backup", backup.to_str().unwrap(), "--yes"]);
    let aside = std::path::PathBuf::from(restored["replaced"].as_str().unwrap());
    assert!(aside.is_file(), "the replaced database is kept");
    assert_eq!(std::fs::read(&backup).unwrap(), backup_bytes, "the backup file is unchanged");

    // A consistent home: a valid status, every checkpoint readable, the later item gone.
    let status = json(&d, &["status"]);
    let paused = status["status"] == "paused";
    assert_eq!(paused, status["pause_checkpoint_id"].is_i64(), "{status}");
    for cp in json(&d, &["checkpoints", "list"]).as_array().unwrap() {
        let id = cp["id"].as_i64().unwrap().to_string();
        assert_eq!(json(&d, &["checkpoints", "verify", &id])["ok"], true);
    }
    let export = d.parent().unwrap().join("export.jsonl");
    json(&d, &["context", "export", export.to_str().unwrap()]);
    let exported = std::fs::read_to_string(&export).unwrap();
    assert!(!exported.contains("after the backup"));
    assert!(exported.contains("item 0"));
    // And the home works: a pause or resume goes through.
    json(&d, &[if paused { "resume" } else { "pause" }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_outliving_the_shutdown_grace_is_rolled_back_and_the_home_stays_usable() {
    let r = repo();
    let d = r.root.clone();
    // Held for 30 s elsewhere: the pause would drain far past the 1 s grace.
    let token = blocking(|| started_with_a_held_permit(&d, "30"));
    let conf = d.parent().unwrap().join("grace.toml");
    std::fs::write(&conf, "[limits]\nshutdown_grace_seconds = 1\n").unwrap();
    let mut server = blocking(|| Server::start_with(&d, &["--config", conf.to_str().unwrap()]));
    let mut ws =
        subscribe(&server.addr, &token, serde_json::json!({"type": "subscribe", "project_id": 1})).await;
    let (addr, t) = (server.addr.clone(), token.clone());
    let pause = std::thread::spawn(move || http_post(&addr, "/api/projects/1/pause", &t, "{}"));
    let got = events_until(&mut ws, "pause_requested").await;
    assert_eq!(got.last().unwrap()["type"], "pause_requested", "{got:?}");
    let signalled = std::time::Instant::now();
    assert!(Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap().success());
    let exit = blocking(|| server.child.wait().unwrap());
    assert_eq!(exit.code(), Some(0));
    let took = signalled.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(10),
        "the pause had its 1 s of grace, no more: {took:?}"
    );
    let (status, answer) = blocking(|| pause.join().unwrap());
    assert_ne!(status, 200, "the pause did not complete: {answer}");

    // Rolled back: not paused, no checkpoint; the gate is usable again from this machine.
    let status = blocking(|| json(&d, &["status"]));
    assert_eq!(status["status"], "planning", "{status}");
    assert_eq!(blocking(|| json(&d, &["checkpoints", "list"])), serde_json::json!([]));
    let permits = blocking(|| json(&d, &["permit", "take", "--agent", "coder-1", "--ttl", "5"]));
    assert!(permits["permit_id"].is_i64(), "{permits}");
}

#[test]
fn a_paused_project_whose_directory_moved_is_re_pointed_and_resumes() {
    let r = repo();
    let a = r.root.clone();
    json(&a, &["init"]);
    json(&a, &["agent", "add", "coder-1"]);
    json(&a, &["start"]);
    let paused = json(&a, &["pause", "--reason", "moving"]);
    let b = a.parent().unwrap().join("moved-shop");
    std::fs::rename(&a, &b).unwrap();
    let out = run_in(&b, &["--json", "resume"]);
    assert_ne!(code(&out), 0, "the old root is gone: {}", String::from_utf8_lossy(&out.stdout));
    let out =
        run_in(&b, &["project", "move", "--root", b.parent().unwrap().join("nowhere").to_str().unwrap()]);
    assert_eq!(code(&out), 2, "a missing directory is bad input");

    let moved = json(&b, &["project", "move", "--root", "."]);
    assert_eq!(moved["root_path"], b.canonicalize().unwrap().to_str().unwrap());
    assert_eq!(moved["status"], "paused", "moving does not resume");
    let id = paused["checkpoint_id"].as_i64().unwrap().to_string();
    assert_eq!(json(&b, &["checkpoints", "verify", &id])["ok"], true);
    let resumed = json(&b, &["resume"]);
    assert_eq!(resumed["files_changed"], serde_json::json!([]), "{resumed}");
    assert_eq!(json(&b, &["status"])["status"], "planning");
}

#[test]
fn doctor_names_what_is_wrong_and_each_fix_works() {
    let r = repo();
    let a = r.root.clone();
    json(&a, &["init"]);
    json(&a, &["agent", "add", "coder-1"]);
    json(&a, &["start"]);
    json(&a, &["checkpoints", "create", "--name", "manual"]);
    let healthy = json(&a, &["doctor"]);
    assert_eq!(
        (healthy["healthy"].as_bool(), healthy["checkpoints_checked"].as_i64()),
        (Some(true), Some(1)),
        "{healthy}"
    );

    let paused = json(&a, &["pause"]);
    let pause_cp = paused["checkpoint_id"].as_i64().unwrap();
    // Every object of the store lost.
    for entry in std::fs::read_dir(a.join(".codeframe/snapshots.git/objects/pack")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let out = run_in(&a, &["--json", "doctor"]);
    assert_eq!(code(&out), 1, "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    let findings = report["findings"].as_array().unwrap();
    let of =
        |id: i64| findings.iter().find(|f| f["checkpoint_id"] == id).unwrap_or_else(|| panic!("{report}"));
    assert_eq!(of(pause_cp)["kind"], "commit_missing");
    assert!(of(pause_cp)["fix"].as_str().unwrap().contains("resume --force"), "{report}");
    assert!(of(1)["fix"].as_str().unwrap().contains("checkpoints delete 1"), "{report}");

    // The fixes, as printed.
    let resumed = json(&a, &["resume", "--force"]);
    assert!(!resumed["warnings"].as_array().unwrap().is_empty());
    for id in [1, pause_cp] {
        json(&a, &["checkpoints", "delete", &id.to_string()]);
    }
    assert_eq!(json(&a, &["doctor"])["healthy"], true);

    // A moved directory: its root is missing until re-pointed.
    let b = a.parent().unwrap().join("elsewhere");
    std::fs::rename(&a, &b).unwrap();
    let home = b.join(".codeframe");
    let out = run_in(&b, &["--json", "--home", home.to_str().unwrap(), "doctor"]);
    assert_eq!(code(&out), 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["kind"], "root_missing", "{report}");
    assert!(report["findings"][0]["fix"].as_str().unwrap().contains("project move --root"));
    json(&b, &["project", "move", "--root", "."]);
    assert_eq!(json(&b, &["doctor"])["healthy"], true);
}

#[test]
fn retention_keeps_exactly_what_the_policy_says_under_16_concurrent_writers() {
    let r = repo();
    let d = r.root.clone();
    json(&d, &["init"]);
    json(&d, &["agent", "add", "coder-1"]);
    json(&d, &["start"]);
    let pinned = json(&d, &["checkpoints", "create", "--name", "keep me"])["id"].as_i64().unwrap();
    assert_eq!(json(&d, &["checkpoints", "pin", &pinned.to_string()])["pinned"], true);
    let set =
        json(&d, &["checkpoints", "policy", "--keep-last", "3", "--keep-within", "0", "--keep-daily", "0"]);
    assert_eq!(set["policy"]["keep_last"], 3);
    let pause_cp = json(&d, &["pause"])["checkpoint_id"].as_i64().unwrap();

    // Sixteen processes make checkpoints at once; each prunes after its own.
    let writers: Vec<_> = (0..16)
        .map(|n| {
            Command::new(BIN)
                .args(["--json", "checkpoints", "create", "--name", &format!("w{n}")])
                .current_dir(&d)
                .env_remove("CODEFRAME_HOME")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut made = Vec::new();
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        made.push(serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"].as_i64().unwrap());
    }
    let listed: Vec<Value> = json(&d, &["checkpoints", "list"]).as_array().unwrap().clone();
    let mut kept: Vec<i64> = listed.iter().map(|c| c["id"].as_i64().unwrap()).collect();
    kept.sort_unstable();
    // The three newest of all, the pinned one, the pause's: exactly.
    let mut newest: Vec<(String, i64)> = listed
        .iter()
        .map(|c| (c["created_at"].as_str().unwrap().to_owned(), c["id"].as_i64().unwrap()))
        .collect();
    newest.sort();
    let mut expected: Vec<i64> = newest.iter().rev().take(3).map(|(_, id)| *id).collect();
    expected.extend([pinned, pause_cp]);
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(kept, expected, "made {made:?}");
    assert_eq!(kept.len(), 5);
    assert!(made.iter().filter(|id| kept.contains(id)).count() == 3);

    // A dry run deletes nothing; unpinning makes the pinned one prunable.
    json(&d, &["checkpoints", "unpin", &pinned.to_string()]);
    let dry = json(&d, &["checkpoints", "prune", "--dry-run"]);
    assert_eq!(dry["pruned"], serde_json::json!([pinned]));
    assert_eq!(json(&d, &["checkpoints", "list"]).as_array().unwrap().len(), 5);
    assert_eq!(json(&d, &["checkpoints", "prune"])["pruned"], serde_json::json!([pinned]));
    assert_eq!(json(&d, &["checkpoints", "list"]).as_array().unwrap().len(), 4);
    // Every deletion is an event: 18 made, 4 kept.
    let out = run_in(&d, &["--json", "events"]);
    let deletions = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["type"] == "checkpoint_deleted")
        .count();
    assert_eq!(deletions, 14);
}

#[test]
fn checkpoints_undo_takes_a_restore_back_from_the_command_line() {
    let r = repo();
    let d = r.root.clone();
    json(&d, &["init"]);
    json(&d, &["start"]);
    let id = json(&d, &["checkpoints", "create", "--name", "base"])["id"].as_i64().unwrap().to_string();
    let out = run_in(&d, &["--json", "checkpoints", "undo"]);
    assert_eq!(code(&out), 4, "nothing to undo yet");
    std::fs::write(d.join("src/main.rs"), "fn main() { later() }\n").unwrap();
    let restored = json(&d, &["checkpoints", "restore", &id, "--files", "--force", "--yes"]);
    assert!(restored["safety_checkpoint_id"].is_i64(), "{restored}");
    assert_eq!(restored["unsaved_changes"], serde_json::json!(["src/main.rs"]));
    assert_eq!(std::fs::read_to_string(d.join("src/main.rs")).unwrap(), "fn main() {}\n");
    let undone = json(&d, &["checkpoints", "undo"]);
    assert_eq!(undone["checkpoint_id"], restored["safety_checkpoint_id"]);
    assert_eq!(std::fs::read_to_string(d.join("src/main.rs")).unwrap(), "fn main() { later() }\n");
}

#[test]
fn checkpoints_gc_removes_what_deleted_checkpoints_used_and_keeps_the_rest_readable() {
    let r = repo();
    let d = r.root.clone();
    json(&d, &["init"]);
    json(&d, &["start"]);
    let mut ids = Vec::new();
    for n in 0..3 {
        std::fs::write(d.join("src/lib.rs"), format!("pub fn v{n}() {{}}\n")).unwrap();
        ids.push(
            json(&d, &["checkpoints", "create", "--name", &format!("c{n}")])["id"]
                .as_i64()
                .unwrap()
                .to_string(),
        );
    }
    json(&d, &["checkpoints", "delete", &ids[0]]);
    let gc = json(&d, &["checkpoints", "gc"]);
    assert_eq!(gc["checkpoints_kept"], 2, "{gc}");
    assert_eq!(gc["packs_after"], 1, "{gc}");
    assert!(gc["bytes_after"].as_u64() < gc["bytes_before"].as_u64(), "{gc}");
    for id in &ids[1..] {
        assert_eq!(json(&d, &["checkpoints", "verify", id])["ok"], true);
    }
    let out = run_in(&d, &["checkpoints", "gc"]);
    assert_eq!(code(&out), 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kept"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

// ---------------------------------------------------------------- the dashboard, in a browser

#[path = "browser/webdriver.rs"]
mod webdriver;

/// Where the browser tests leave their screenshots (under `target/`).
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

#[test]
fn the_dashboard_in_a_real_browser_follows_the_project_live() {
    let Some(browser) =
        webdriver::Driver::start_or_skip("the_dashboard_in_a_real_browser_follows_the_project_live")
    else {
        return;
    };
    let r = repo();
    let d = r.root.clone();
    json(&d, &["init", ".", "--name", "shop"]);
    json(&d, &["agent", "add", "coder-1"]);
    json(&d, &["start"]);
    json(&d, &["checkpoints", "create", "--name", "before the browser"]);
    let token = json(&d, &["token", "create", "--name", "browser"])["token"].as_str().unwrap().to_owned();
    let server = Server::start(&d);
    let base = format!("http://{}/", server.addr);
    // Some context for the chart: items of every tier's kind.
    let items: Vec<Value> = (0..12)
        .map(|n| {
            let kind = ["TASK", "CODE", "PRD_SECTION"][n % 3];
            serde_json::json!({"item_type": kind, "content": format!("item {n}: {}", "some words of context ".repeat(n + 1))})
        })
        .collect();
    let (status, body) = http_post(
        &server.addr,
        "/api/projects/1/agents/coder-1/context/bulk",
        &token,
        &serde_json::json!({ "items": items }).to_string(),
    );
    assert_eq!(status, 201, "{body}");

    // A wrong token: the API's own words are shown, and nothing else.
    browser.goto(&base);
    browser.type_into("#token", "cf_wrong");
    browser.click("#sign-in button");
    let refused = browser.wait_text("#errors", |t| !t.is_empty());
    assert!(refused.contains("unauthorized"), "{refused}");

    // Sign in; the project is listed with its status.
    browser.type_into("#token", &token);
    browser.click("#sign-in button");
    browser.wait_text("#projects li", |t| t.contains("shop") && t.contains("planning"));
    // The list follows another process's pause and resume.
    json(&d, &["pause", "--reason", "seen from the list"]);
    browser.wait_text("#projects li", |t| t.contains("paused") && t.contains("seen from the list"));
    json(&d, &["resume"]);
    browser.wait_text("#projects li", |t| t.contains("planning"));
    browser.click("#projects li a");
    browser.wait_text("#status-text", |t| t == "planning");
    browser.wait_text("#agents-table", |t| t.contains("coder-1"));
    browser.wait_text("#checkpoints", |t| t.contains("before the browser"));
    // Marks this page load: a reload would lose it.
    browser.script("window.__sameLoad = true; return null;", serde_json::json!([]));

    // Pause from the page, with a reason: the result, the badge and the checkpoint appear.
    browser.type_into("#pause-reason", "lunch break");
    browser.click("#pause-button");
    let paused = browser.wait_text("#pause-result", |t| t.starts_with("Paused: checkpoint"));
    assert!(paused.contains("items archived") && paused.contains("tokens"), "{paused}");
    browser.wait_text("#status-text", |t| t == "paused");
    browser.wait_text("#project-status", |t| t.contains("lunch break"));
    browser.wait_text("#checkpoints", |t| t.contains("pause"));
    browser.wait_text("#event-feed", |t| t.contains("project_paused"));
    browser.script("window.scrollTo(0, 0); return null;", serde_json::json!([]));
    browser.screenshot(&screenshot_dir().join("dashboard-project.png"));

    // Another process resumes, then pauses again: the page follows without a reload.
    json(&d, &["resume"]);
    browser.wait_text("#status-text", |t| t == "planning");
    json(&d, &["pause", "--reason", "from the terminal"]);
    browser.wait_text("#status-text", |t| t == "paused");
    browser.wait_text("#project-status", |t| t.contains("from the terminal"));
    assert_eq!(browser.script("return window.__sameLoad === true;", serde_json::json!([])), true);

    // A dropped connection: what happens meanwhile is caught up on reconnection.
    browser.script(
        "state.ws.onclose = null; state.ws.close(); state.ws = null; return null;",
        serde_json::json!([]),
    );
    json(&d, &["checkpoints", "create", "--name", "made while disconnected"]);
    browser.script("connect(); return null;", serde_json::json!([]));
    browser.wait_text("#event-feed", |t| t.contains("made while disconnected"));
    browser.wait_text("#checkpoints", |t| t.contains("made while disconnected"));

    // A diff: the file edited while paused, as a unified diff.
    std::fs::write(d.join("src/main.rs"), "fn main() { println!(\"edited while paused\"); }\n").unwrap();
    browser.click("tr[data-checkpoint-id] .diff-button");
    browser.wait_text("#diff-files", |t| t.contains("src/main.rs"));
    browser.click("#diff-files button[data-path='src/main.rs']");
    let diff = browser.wait_text("#diff-text", |t| t.contains("edited while paused"));
    assert!(diff.contains("+fn main() { println!"), "{diff}");
    browser.screenshot(&screenshot_dir().join("dashboard-diff.png"));

    // Resume from the page (files kept): the result lists the file changed while paused.
    browser.click("#resume-button");
    let resumed = browser.wait_text("#resume-result", |t| t.starts_with("Resumed"));
    assert!(resumed.contains("src/main.rs") && resumed.contains("kept"), "{resumed}");
    browser.wait_text("#status-text", |t| t == "planning");
    let feed = browser.wait_text("#event-feed", |t| t.contains("project_resumed"));
    for kind in ["project_paused", "checkpoint_created", "status_changed", "project_resumed"] {
        assert!(feed.contains(kind), "{kind} in the feed: {feed}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("src/main.rs")).unwrap(),
        "fn main() { println!(\"edited while paused\"); }\n"
    );

    // Restore with a preview and a confirmation.
    browser.click("tr[data-checkpoint-id] .restore-button");
    browser.wait_text("[role=dialog]", |t| t.contains("src/main.rs"));
    browser.click("#confirm-restore");
    browser.wait_text("#restore-result", |t| t.starts_with("Restored checkpoint"));
    // The checkpoint held the context added at the start: it is all there after the restore.
    browser.wait_text("#context-chart", |t| t.contains("4 items") && t.contains("8 items"));

    // Readable on a 360 px wide screen: nothing wider than the window.
    browser.resize(360, 800);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let fits = browser.script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
        serde_json::json!([]),
    );
    assert_eq!(fits, true, "the page fits 360 px");
    browser.screenshot(&screenshot_dir().join("dashboard-360.png"));

    // Sign out: the token is gone from the tab.
    browser.click("#sign-out");
    browser.find("#sign-in");
    assert_eq!(browser.script("return sessionStorage.length;", serde_json::json!([])), 0);
}

#[test]
fn the_dashboard_assets_are_cached_properly_and_load_nothing_from_elsewhere() {
    let r = repo();
    let d = r.root.clone();
    json(&d, &["init", ".", "--name", "shop"]);
    let server = Server::start(&d);
    let page = raw_get(&server.addr, "/", &[]);
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let header = |resp: &str, name: &str| {
        resp.lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    assert_eq!(header(&page, "cache-control"), "no-cache");
    assert!(header(&page, "content-security-policy").contains("default-src 'none'"));
    assert!(header(&page, "content-type").starts_with("text/html"));
    let script = page.split("src=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    assert!(script.starts_with("/assets/app.js?v="), "{script}");
    let js = raw_get(&server.addr, &script, &[]);
    assert!(js.starts_with("HTTP/1.1 200"), "{js}");
    assert!(header(&js, "cache-control").contains("immutable"));
    let etag = header(&js, "etag");
    let again = raw_get(&server.addr, &script, &[("If-None-Match", &etag)]);
    assert!(again.starts_with("HTTP/1.1 304"), "{again}");
    // The API stays behind its token.
    assert!(raw_get(&server.addr, "/api/projects", &[]).starts_with("HTTP/1.1 401"));
}

/// A GET with the given headers; the whole answer (status line, headers, body) as text.
fn raw_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

// ---------------------------------------------------------------- two servers, one PostgreSQL database

/// Two `codeframe serve` processes on one PostgreSQL database, as behind a load balancer:
/// a pause through A reaches a WebSocket subscriber on B; a permit taken through A holds a
/// pause through B until A releases it; 16 concurrent pauses spread over both end with exactly
/// one paused project and fifteen 409s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_database_are_one_service() {
    let Some(server_url) = codeframe_testkit::database::postgres_server() else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "two_servers_on_one_postgres_database_are_one_service: skipped (CODEFRAME_TEST_POSTGRES_URL not set)"
            );
        }
        assert!(
            !std::env::var("CODEFRAME_REQUIRE_POSTGRES").is_ok_and(|v| v == "1"),
            "CODEFRAME_REQUIRE_POSTGRES=1 but no PostgreSQL server was given"
        );
        return;
    };
    let url = codeframe_testkit::database::fresh_postgres(&server_url);
    let r = repo();
    let d = r.root.clone();
    let db = ["--database", url.as_str()];
    let token = blocking(|| {
        let cli = |args: &[&str]| json(&d, &[&db[..], args].concat());
        assert_eq!(cli(&["init"])["project_id"], 1);
        cli(&["start"]);
        cli(&["agent", "add", "coder-1"]);
        cli(&["token", "create", "--name", "test"])["token"].as_str().unwrap().to_owned()
    });
    assert!(!d.join(".codeframe/state.db").exists(), "no SQLite file: the state is in PostgreSQL");
    let a = blocking(|| Server::start_with(&d, &db));
    let b = blocking(|| Server::start_with(&d, &db));
    let http = reqwest::Client::new();
    let call = |addr: &str, method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http.request(method, format!("http://{addr}{path}")).bearer_auth(&token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    use reqwest::Method;
    let mut ws_b =
        subscribe(&b.addr, &token, serde_json::json!({"type": "subscribe", "project_id": 1})).await;

    // A pause through A reaches the subscriber on B.
    let (status, paused) = call(&a.addr, Method::POST, "/api/projects/1/pause", None).await;
    assert_eq!(status, 200, "{paused}");
    let got = events_until(&mut ws_b, "project_paused").await;
    assert_eq!(got.last().unwrap()["checkpoint_id"], paused["checkpoint_id"], "{got:?}");
    let (status, body) = call(&b.addr, Method::POST, "/api/projects/1/resume", None).await;
    assert_eq!(status, 200, "{body}");

    // A permit taken through A holds a pause through B until A releases it.
    let (status, permit) = call(
        &a.addr,
        Method::POST,
        "/api/projects/1/permits",
        Some(serde_json::json!({"agent_id": "coder-1", "ttl_seconds": 120})),
    )
    .await;
    assert_eq!(status, 201, "{permit}");
    let permit_id = permit["permit_id"].as_i64().unwrap();
    let pause_b = tokio::spawn(call(&b.addr, Method::POST, "/api/projects/1/pause", None));
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(!pause_b.is_finished(), "the pause through B waits for the permit taken through A");
    let (status, refused) = call(
        &a.addr,
        Method::POST,
        "/api/projects/1/permits",
        Some(serde_json::json!({"agent_id": "coder-1"})),
    )
    .await;
    assert_eq!(status, 409, "the gate is closed on A too: {refused}");
    let (status, _) =
        call(&a.addr, Method::DELETE, &format!("/api/projects/1/permits/{permit_id}"), None).await;
    assert_eq!(status, 204);
    let (status, drained) =
        tokio::time::timeout(std::time::Duration::from_secs(20), pause_b).await.unwrap().unwrap();
    assert_eq!(status, 200, "{drained}");
    assert_eq!(drained["interrupted_agents"], serde_json::json!([]), "the permit was released, not revoked");
    let got = events_until(&mut ws_b, "project_paused").await;
    assert_eq!(got.last().unwrap()["checkpoint_id"], drained["checkpoint_id"]);
    let (status, body) = call(&a.addr, Method::POST, "/api/projects/1/resume", None).await;
    assert_eq!(status, 200, "{body}");

    // Sixteen concurrent pauses, eight through each server: exactly one wins.
    let pauses: Vec<_> = (0..16)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr.clone() } else { b.addr.clone() };
            tokio::spawn(call(
                &addr,
                Method::POST,
                "/api/projects/1/pause",
                Some(serde_json::json!({"reason": format!("racer {i}")})),
            ))
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for p in pauses {
        let (status, body) = p.await.unwrap();
        match status {
            200 => winners.push(body),
            409 => conflicts += 1,
            other => panic!("a pause answered {other}: {body}"),
        }
    }
    assert_eq!((winners.len(), conflicts), (1, 15), "{winners:?}");
    let winner = &winners[0];
    for server in [&a, &b] {
        let (status, project) = call(&server.addr, Method::GET, "/api/projects/1", None).await;
        assert_eq!(status, 200);
        assert_eq!(project["status"], "paused", "{project}");
        assert_eq!(project["pause_checkpoint_id"], winner["checkpoint_id"], "{project}");
    }
    let (_, list) = call(&b.addr, Method::GET, "/api/projects/1/checkpoints", None).await;
    let pause_checkpoints = list["checkpoints"]
        .as_array()
        .unwrap_or_else(|| list.as_array().unwrap())
        .iter()
        .filter(|c| c["trigger"] == "pause")
        .count();
    assert_eq!(pause_checkpoints, 3, "one checkpoint per pause that succeeded: {list}");
    drop((a, b));
}

/// `--database` (or `CODEFRAME_DATABASE_URL`) names the database in place of the home's
/// `state.db`; the file commands refuse a PostgreSQL URL, pointing at pg_dump.
#[test]
fn a_database_named_with_database_is_used_instead_of_the_homes_file() {
    let r = repo();
    let d = &r.root;
    let elsewhere = r._tmp.path().join("elsewhere.db");
    let elsewhere = elsewhere.to_str().unwrap();
    assert_eq!(json(d, &["--database", elsewhere, "init"])["project_id"], 1);
    assert!(std::path::Path::new(elsewhere).is_file(), "the named database holds the state");
    assert!(!d.join(".codeframe/state.db").exists(), "the home's file is not created");
    let out = Command::new(BIN)
        .args(["--json", "status"])
        .current_dir(d)
        .env_remove("CODEFRAME_HOME")
        .env("CODEFRAME_DATABASE_URL", elsewhere)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["name"], "shop", "{status}");
    // Without it, the home has no database of its own.
    assert_ne!(code(&run_in(d, &["status"])), 0);

    let pg = "postgres://nobody@127.0.0.1:1/codeframe";
    for args in [vec!["backup", "--to", "copy.db"], vec!["restore-backup", "copy.db", "--yes"]] {
        let out = run_in(d, &[&["--database", pg][..], &args].concat());
        assert_eq!(code(&out), 2, "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"), "{args:?}");
    }
    assert!(!d.join("copy.db").exists());
}
