//! Project commands: `init`, `status`, and how a pause and a resume read.

use super::*;

pub(super) async fn init(cli: &Cli, dir: Option<&Path>, name: Option<&str>) -> Result<()> {
    let root = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir().map_err(|e| CliError::Runtime(e.to_string()))?,
    };
    let root = root
        .canonicalize()
        .map_err(|e| CliError::Usage(format!("project directory {}: {e}", root.display())))?;
    if !root.is_dir() {
        return Err(CliError::Usage(format!("{} is not a directory", root.display())));
    }
    let home = cli.home.clone().unwrap_or_else(|| root.join(".codeframe"));
    std::fs::create_dir_all(&home).map_err(|e| CliError::Runtime(format!("{}: {e}", home.display())))?;
    let db = open_cli_db(cli, &home, true).await?;
    let svc = ProjectService::with_config(db, service_config(cli));
    let name = match name {
        Some(n) => n.to_owned(),
        None => {
            root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "project".into())
        }
    };
    let owner = svc.ensure_user(LOCAL_USER).await?;
    let p = svc
        .create_project(NewProject {
            name,
            description: String::new(),
            root_path: root.to_string_lossy().into_owned(),
            owner_id: Some(owner.id),
        })
        .await?;
    let doc = json!({"project_id": p.id, "name": p.name, "root_path": p.root_path, "home": home, "status": p.status});
    print(cli.json, &doc, || {
        format!("Initialized project {} (id {}) at {}\nhome: {}", p.name, p.id, p.root_path, home.display())
    })
}

pub(super) async fn status(cli: &Cli) -> Result<()> {
    let (svc, p) = open_project(cli).await?;
    let s = svc.status(p.id).await?;
    print(cli.json, &s, || {
        let mut out = format!("{} (project {}): {}", s.name, s.project_id, s.status);
        if let Some(at) = s.paused_at {
            out.push_str(&format!(
                " since {} ({})",
                timestamp::format(at),
                duration(s.paused_for_seconds.unwrap_or(0))
            ));
            if let Some(r) = &s.pause_reason {
                out.push_str(&format!(" — {r}"));
            }
        }
        out.push_str(&format!("\n  phase {}", s.phase));
        if let Some(c) = s.pause_checkpoint_id {
            out.push_str(&format!(" · pause checkpoint {c}"));
        }
        out.push_str(&format!(" · tasks {}/{}", s.tasks_completed, s.tasks_total));
        let agents = if s.active_agents.is_empty() { "none".to_owned() } else { s.active_agents.join(", ") };
        out.push_str(&format!("\n  agents: {agents}"));
        let t = &s.token_totals;
        out.push_str(&format!(
            "\n  context: {} items, {} tokens (hot {} / warm {} / cold {})",
            thousands(t.total_items()),
            thousands(t.total_tokens()),
            t.hot_items,
            t.warm_items,
            t.cold_items
        ));
        out
    })
}

pub(super) fn human_pause(p: &Project, out: &PauseOutcome, commit: Option<&str>) -> String {
    let mut s = format!(
        "Paused {} at {}\n  checkpoint {} ({})\n  context archived: {} items, {}% of {} tokens",
        p.name,
        timestamp::format(out.paused_at),
        out.checkpoint_id,
        short(commit),
        out.items_archived,
        out.reduction_percentage,
        thousands(out.tokens_before)
    );
    for a in out.agents.iter().filter(|a| a.error.is_some()) {
        s.push_str(&format!(
            "\n  warning: flash save of {} failed: {}",
            a.agent_id,
            a.error.as_deref().unwrap_or("")
        ));
    }
    if !out.interrupted_agents.is_empty() {
        s.push_str(&format!(
            "\n  interrupted (still working at the deadline): {}",
            out.interrupted_agents.join(", ")
        ));
    }
    s
}

pub(super) fn human_resume(p: &Project, out: &ResumeOutcome) -> String {
    let mut s = format!(
        "Resumed {} ({}) from checkpoint {} after {}\n  context items restored: {}",
        p.name,
        out.status,
        out.checkpoint_id,
        duration(out.paused_for_seconds),
        out.items_restored
    );
    if out.files_changed.is_empty() {
        s.push_str("\n  no file changed since the pause");
    } else if out.files_restored {
        s.push_str(&format!("\n  files restored from the checkpoint: {}", out.files_changed.join(", ")));
    } else {
        s.push_str(&format!("\n  files changed while paused (kept): {}", out.files_changed.join(", ")));
    }
    s
}
