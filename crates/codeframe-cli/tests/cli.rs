//! End to end: the built `codeframe` binary, run as a user would, in real git repositories.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_codeframe");

struct Repo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .unwrap()
        .success();
    assert!(ok);
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
    let restored = json(d, &["checkpoints", "restore", &id, "--files", "--yes"]);
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
