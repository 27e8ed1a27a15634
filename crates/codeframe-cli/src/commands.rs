//! What each command does.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use codeframe_core::auth::LOCAL_USER;
use codeframe_core::{
    ArchiveState, CoreError, Db, EventRetention, FileChange, FileDiff, ListQuery, PauseOptions,
    ProjectService, RestoreMode, RestoreWhat, ServiceConfig, parse_item_type,
};
use codeframe_models::{
    ItemType, NewContextItem, NewProject, PauseOutcome, PauseRequest, Project, ProjectEvent, ResumeOptions,
    ResumeOutcome, timestamp,
};
use serde_json::{Value, json};

use crate::output::{CliError, duration, print, short, thousands};
use crate::{
    AgentCommand, CheckpointCommand, Cli, Command, ConfigCommand, ContextCommand, PermitCommand,
    ProjectCommand, TokenCommand,
};

type Result<T, E = CliError> = std::result::Result<T, E>;

const DB_FILE: &str = "state.db";

/// The home: `--home`/`$CODEFRAME_HOME`, else the nearest `.codeframe/` holding a database.
fn find_home(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(h) = explicit {
        return Ok(h.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| CliError::Runtime(format!("current directory: {e}")))?;
    let mut dir = Some(cwd.as_path());
    while let Some(d) = dir {
        let home = d.join(".codeframe");
        if home.join(DB_FILE).is_file() {
            return Ok(home);
        }
        dir = d.parent();
    }
    Err(CliError::NotFound(
        "no codeframe home here or above (run `codeframe init` or pass --home / set CODEFRAME_HOME)".into(),
    ))
}

/// The service's settings from the global options.
fn service_config(cli: &Cli) -> ServiceConfig {
    ServiceConfig {
        lease_ttl: Duration::from_secs(cli.lease_ttl),
        event_retention: EventRetention {
            max_age: Duration::from_secs(cli.events_max_age_days.saturating_mul(24 * 3600)),
            max_events_per_project: cli.events_max_per_project,
        },
        max_snapshot_file_size: cli.max_file_mib << 20,
        durability: cli.durability(),
        ..ServiceConfig::default()
    }
}

async fn open_db(home: &Path, create: bool, durability: codeframe_core::Durability) -> Result<Db> {
    let path = home.join(DB_FILE);
    if !create && !path.is_file() {
        return Err(CliError::NotFound(format!(
            "no codeframe database at {} (run `codeframe init`)",
            path.display()
        )));
    }
    let location =
        path.to_str().ok_or_else(|| CliError::Usage(format!("{} is not valid UTF-8", path.display())))?;
    let options = codeframe_core::DbOptions {
        synchronous_full: durability == codeframe_core::Durability::Full,
        ..codeframe_core::DbOptions::default()
    };
    Ok(Db::open_with(location, options).await?)
}

/// The project to act on: `--project`, the only one, or the one whose root holds the
/// current directory.
async fn select(svc: &ProjectService, selector: Option<&str>) -> Result<Project> {
    if let Some(s) = selector {
        let found = match s.parse::<i64>() {
            Ok(id) => svc.get(id).await.ok(),
            Err(_) => None,
        };
        let found = match found {
            Some(p) => Some(p),
            None => svc.find_by_name(s).await?,
        };
        return found.ok_or_else(|| CliError::NotFound(format!("project {s:?} not found")));
    }
    let all = svc.list().await?;
    match all.len() {
        0 => Err(CliError::NotFound("this home has no project (run `codeframe init`)".into())),
        1 => Ok(all.into_iter().next().ok_or_else(|| CliError::NotFound("no project".into()))?),
        _ => {
            let cwd = std::env::current_dir().ok().and_then(|d| d.canonicalize().ok());
            let best = all
                .into_iter()
                .filter(|p| cwd.as_ref().is_some_and(|c| c.starts_with(&p.root_path)))
                .max_by_key(|p| p.root_path.len());
            best.ok_or_else(|| CliError::Usage("this home has several projects: pass --project NAME".into()))
        }
    }
}

/// Opens the home's service and the selected project (reconciling its checkpoint store).
async fn open_project(cli: &Cli) -> Result<(ProjectService, Project)> {
    let home = find_home(cli.home.as_deref())?;
    let svc =
        ProjectService::with_config(open_db(&home, false, cli.durability()).await?, service_config(cli));
    let project = select(&svc, cli.project.as_deref()).await?;
    let opened = svc.open(project.id).await?;
    if !opened.reconcile.removed_refs.is_empty() {
        eprintln!(
            "codeframe: removed {} unfinished checkpoint ref(s) left by an interrupted pause",
            opened.reconcile.removed_refs.len()
        );
    }
    if let Some(settled) = &opened.reconcile.interrupted_restore {
        eprintln!(
            "codeframe: a restore of {} file(s) was interrupted by a crash; {}",
            settled.files,
            if settled.committed { "it had committed and was completed" } else { "every file was put back" }
        );
    }
    Ok((svc, opened.project))
}

pub(crate) async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match &cli.command {
        Command::Init { dir, name } => init(&cli, dir.as_deref(), name.as_deref()).await,
        Command::Start => {
            let (svc, p) = open_project(&cli).await?;
            let p = svc.start(p.id).await?;
            print(json, &p, || format!("Started {} ({})", p.name, p.status))
        }
        Command::Status => status(&cli).await,
        Command::Pause { reason, drain_timeout } => {
            let (svc, p) = open_project(&cli).await?;
            let options = PauseOptions { drain_timeout: drain_timeout.map(Duration::from_secs) };
            let out = svc.pause_with(p.id, PauseRequest { reason: reason.clone() }, options).await?;
            let cp = svc.checkpoint(p.id, out.checkpoint_id).await?;
            print(json, &out, || human_pause(&p, &out, cp.commit_id.as_deref()))
        }
        Command::Resume { checkpoint, restore_files, force } => {
            let (svc, p) = open_project(&cli).await?;
            let options =
                ResumeOptions { checkpoint_id: *checkpoint, restore_files: *restore_files, force: *force };
            let out = svc.resume(p.id, options).await?;
            if !json {
                for w in &out.warnings {
                    eprintln!("warning: {w}");
                }
            }
            print(json, &out, || human_resume(&p, &out))
        }
        Command::Checkpoints { command } => checkpoints(&cli, command).await,
        Command::Agent { command } => agent(&cli, command).await,
        Command::Context { command } => context_cmd(&cli, command).await,
        Command::Token { command } => token(&cli, command).await,
        Command::Events { since, follow } => events(&cli, *since, *follow).await,
        Command::Permit { command } => permit(&cli, command).await,
        Command::Serve { addr, workspace_roots, metrics_addr, config } => {
            let limits = match config {
                Some(path) => crate::config::ServeFile::load(path).map_err(CliError::Usage)?.limits(),
                None => codeframe_api::Limits::default(),
            };
            serve(&cli, *addr, workspace_roots, *metrics_addr, limits).await
        }
        Command::Config { command: ConfigCommand::Check { file } } => config_check(json, file),
        Command::Backup { to } => backup(&cli, to).await,
        Command::Doctor => doctor(&cli).await,
        Command::Project { command: ProjectCommand::Move { root } } => {
            let (svc, p) = open_project(&cli).await?;
            let moved = svc.move_project(p.id, root).await?;
            print(json, &moved, || format!("project {} now at {}", moved.name, moved.root_path))
        }
        Command::RestoreBackup { file, yes } => restore_backup(&cli, file, *yes).await,
        Command::Demo { dir } => demo(json, dir.clone()).await,
    }
}

/// The home of a server-side command (`serve`, `token`): one named with --home or
/// CODEFRAME_HOME is created when it is new, so a server can be set up before any project;
/// otherwise the nearest existing one.
async fn server_service(cli: &Cli) -> Result<(PathBuf, ProjectService)> {
    let home = match &cli.home {
        Some(home) => {
            std::fs::create_dir_all(home)
                .map_err(|e| CliError::Runtime(format!("{}: {e}", home.display())))?;
            home.clone()
        }
        None => find_home(None)?,
    };
    let db = open_db(&home, true, cli.durability()).await?;
    Ok((home, ProjectService::with_config(db, service_config(cli))))
}

async fn token(cli: &Cli, command: &TokenCommand) -> Result<()> {
    let (_, svc) = server_service(cli).await?;
    match command {
        TokenCommand::Create { name, user, expires_in } => {
            let token = svc.create_token(user, name, *expires_in).await?;
            let doc = json!({"token": token, "name": name, "user": user,
                "expires_in_seconds": expires_in.map(|d| d.as_secs())});
            print(cli.json, &doc, || {
                format!("{token}\n(shown once; send it as `Authorization: Bearer <token>`)")
            })
        }
        TokenCommand::List { user } => {
            let user_id = match user {
                Some(u) => Some(svc.ensure_user(u).await?.id),
                None => None,
            };
            let tokens = svc.list_tokens(user_id).await?;
            print(cli.json, &tokens, || {
                if tokens.is_empty() {
                    return "no tokens".into();
                }
                let when = |t: Option<time::OffsetDateTime>, none: &str| {
                    t.map_or(none.to_owned(), timestamp::format)
                };
                tokens
                    .iter()
                    .map(|t| {
                        format!(
                            "{:>4}  {:<12} {:<20} last used {}  expires {}",
                            t.id,
                            t.user,
                            t.name,
                            when(t.last_used_at, "never"),
                            when(t.expires_at, "never")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        TokenCommand::Revoke { id } => {
            svc.revoke_token(*id, None).await?;
            print(cli.json, &json!({"token_id": id, "revoked": true}), || format!("token {id} revoked"))
        }
    }
}

async fn init(cli: &Cli, dir: Option<&Path>, name: Option<&str>) -> Result<()> {
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
    let db = open_db(&home, true, cli.durability()).await?;
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

async fn status(cli: &Cli) -> Result<()> {
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

fn human_pause(p: &Project, out: &PauseOutcome, commit: Option<&str>) -> String {
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

fn human_resume(p: &Project, out: &ResumeOutcome) -> String {
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

fn checkpoint_json(c: &codeframe_models::Checkpoint) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    v["commit"] = json!(c.commit_id);
    v
}

async fn checkpoints(cli: &Cli, command: &CheckpointCommand) -> Result<()> {
    let (svc, p) = open_project(cli).await?;
    match command {
        CheckpointCommand::List => {
            let list = svc.list_checkpoints(p.id).await?;
            let doc: Vec<Value> = list.iter().map(checkpoint_json).collect();
            print(cli.json, &doc, || {
                if list.is_empty() {
                    return "no checkpoints".into();
                }
                list.iter()
                    .map(|c| {
                        format!(
                            "{:>4}  {}  {}  {:<16} {}",
                            c.id,
                            short(c.commit_id.as_deref()),
                            timestamp::format(c.created_at),
                            c.trigger.as_str(),
                            c.name
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        CheckpointCommand::Show { id } => {
            let c = svc.checkpoint(p.id, *id).await?;
            print(cli.json, &checkpoint_json(&c), || {
                format!(
                    "checkpoint {} ({}) — {}\n  {} · {}\n  {}\n  phase {} · tasks {}/{} · {} context items · ${:.2}",
                    c.id,
                    c.commit_id.as_deref().unwrap_or("no commit"),
                    c.name,
                    c.trigger,
                    timestamp::format(c.created_at),
                    c.description.replace('\n', "\n  "),
                    c.metadata.phase,
                    c.metadata.tasks_completed,
                    c.metadata.tasks_total,
                    c.metadata.context_items_count,
                    c.metadata.total_cost_usd
                )
            })
        }
        CheckpointCommand::Diff { id, unified } => {
            let d = svc.diff_checkpoint(p.id, *id, *unified).await?;
            print(cli.json, &d, || diff_text(&d))
        }
        CheckpointCommand::Verify { id } => {
            let r = svc.verify_checkpoint(p.id, *id).await?;
            print(cli.json, &json!({"ok": r.ok(), "report": r}), || {
                if r.ok() {
                    format!("checkpoint {id}: ok ({} objects)", r.objects_checked)
                } else {
                    format!("checkpoint {id}: BROKEN\n  {}", r.problems.join("\n  "))
                }
            })?;
            if r.ok() {
                Ok(())
            } else {
                Err(CliError::Runtime(format!("checkpoint {id} failed verification")))
            }
        }
        CheckpointCommand::Delete { id } => {
            svc.delete_checkpoint(p.id, *id).await?;
            print(cli.json, &json!({"deleted": id}), || format!("checkpoint {id} deleted"))
        }
        CheckpointCommand::Create { name, description } => {
            let c = svc.create_checkpoint(p.id, name, description).await?;
            print(cli.json, &checkpoint_json(&c), || {
                format!("checkpoint {} ({}) created", c.id, short(c.commit_id.as_deref()))
            })
        }
        CheckpointCommand::Policy { keep_last, keep_within, keep_daily } => {
            let mut policy = svc.retention_policy(p.id).await?;
            let changed = keep_last.is_some() || keep_within.is_some() || keep_daily.is_some();
            if let Some(n) = keep_last {
                policy.keep_last = *n;
            }
            if let Some(d) = keep_within {
                policy.keep_within_seconds = d.as_secs();
            }
            if let Some(d) = keep_daily {
                policy.keep_daily_days = *d;
            }
            let pruned =
                if changed { svc.set_retention_policy(p.id, policy).await?.pruned } else { Vec::new() };
            let doc = json!({"policy": policy, "pruned": pruned});
            print(cli.json, &doc, || {
                format!(
                    "keep the newest {}, everything younger than {}, one a day for {} days{}",
                    policy.keep_last,
                    duration(i64::try_from(policy.keep_within_seconds).unwrap_or(i64::MAX)),
                    policy.keep_daily_days,
                    if pruned.is_empty() { String::new() } else { format!("; pruned {pruned:?}") }
                )
            })
        }
        CheckpointCommand::Pin { id } | CheckpointCommand::Unpin { id } => {
            let pin = matches!(command, CheckpointCommand::Pin { .. });
            let cp = svc.pin_checkpoint(p.id, *id, pin).await?;
            print(cli.json, &cp, || format!("checkpoint {id} {}", if pin { "pinned" } else { "unpinned" }))
        }
        CheckpointCommand::Prune { dry_run } => {
            let r = svc.prune_checkpoints(p.id, *dry_run).await?;
            print(cli.json, &r, || {
                let verb = if r.dry_run { "would delete" } else { "deleted" };
                format!("{verb} {:?}; {} kept", r.pruned, r.kept)
            })
        }
        CheckpointCommand::Gc => {
            let r = svc.collect_garbage(p.id).await?;
            print(cli.json, &r, || {
                format!(
                    "kept {} objects of {} checkpoints; {} → {} bytes, {} → {} packs",
                    r.objects_kept,
                    r.checkpoints_kept,
                    r.bytes_before,
                    r.bytes_after,
                    r.packs_before,
                    r.packs_after
                )
            })
        }
        CheckpointCommand::Undo => {
            let r = svc.undo_restore(p.id).await?;
            print(cli.json, &r, || {
                format!(
                    "undone: back to checkpoint {} ({} files written, {} removed); `checkpoints undo` again redoes it",
                    r.checkpoint_id, r.files_written, r.files_removed
                )
            })
        }
        CheckpointCommand::Restore { id, files, state, context, force, yes } => {
            if !(*files || *state || *context) {
                return Err(CliError::Usage("say what to restore: --files, --state and/or --context".into()));
            }
            let what = RestoreWhat { files: *files, state: *state, context: *context, keep_new_items: false };
            if !yes {
                let preview = svc.restore_checkpoint(p.id, *id, what, RestoreMode::Preview).await?;
                if cli.json || !std::io::stdin().is_terminal() {
                    return Err(CliError::Usage("restore changes files and rows: confirm with --yes".into()));
                }
                println!("Restoring checkpoint {id} would change:\n{}", diff_text(&preview.diff));
                if !preview.unsaved_changes.is_empty() && !force {
                    println!(
                        "These files changed since the latest checkpoint and would be overwritten (use --force):\n  {}",
                        preview.unsaved_changes.join("\n  ")
                    );
                }
                if *state || *context {
                    println!(
                        "and replace the project's {}.",
                        match (*state, *context) {
                            (true, true) => "rows and context items",
                            (true, false) => "rows",
                            _ => "context items",
                        }
                    );
                }
                print!("Proceed? [y/N] ");
                let _ = std::io::stdout().flush();
                let mut answer = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut answer)
                    .map_err(|e| CliError::Runtime(e.to_string()))?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Err(CliError::Usage("restore cancelled".into()));
                }
            }
            let r = svc.restore_checkpoint_with(p.id, *id, what, RestoreMode::Apply, *force).await?;
            print(cli.json, &r, || {
                format!(
                    "restored checkpoint {id}: {} files written, {} removed, {} context items{}",
                    r.files_written,
                    r.files_removed,
                    r.items_restored,
                    if r.state_restored { ", project rows" } else { "" }
                )
            })
        }
    }
}

fn diff_text(d: &FileDiff) -> String {
    if d.files.is_empty() {
        return "  no changes".into();
    }
    d.files
        .iter()
        .map(|f| {
            let tag = match f.change {
                FileChange::Added => "A",
                FileChange::Modified => "M",
                FileChange::Deleted => "D",
            };
            match &f.unified {
                Some(u) => format!("  {tag} {}\n{u}", f.path),
                None => format!("  {tag} {}", f.path),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn agent(cli: &Cli, command: &AgentCommand) -> Result<()> {
    let (svc, p) = open_project(cli).await?;
    match command {
        AgentCommand::Add { id, agent_type } => {
            let a = svc.add_agent(p.id, id, agent_type, None, "worker").await?;
            print(cli.json, &a, || format!("agent {id} ({agent_type}) added to {}", p.name))
        }
        AgentCommand::List => {
            let all = svc.agents(p.id).await?;
            let doc: Vec<Value> = all
                .iter()
                .map(|a| json!({"agent_id": a.agent.id, "agent_type": a.agent.agent_type, "status": a.agent.status, "active": a.active}))
                .collect();
            print(cli.json, &doc, || {
                if all.is_empty() {
                    return "no agents".into();
                }
                all.iter()
                    .map(|a| {
                        let state = if a.active { "active" } else { "inactive" };
                        format!("{}  {}  {}", a.agent.id, a.agent.agent_type, state)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        AgentCommand::Deactivate { id } => {
            svc.deactivate(p.id, id).await?;
            print(cli.json, &json!({"agent_id": id, "active": false}), || format!("agent {id} deactivated"))
        }
    }
}

async fn context_cmd(cli: &Cli, command: &ContextCommand) -> Result<()> {
    let (svc, p) = open_project(cli).await?;
    match command {
        ContextCommand::Add { agent, item_type, source, permit } => {
            let item_type: ItemType = parse_item_type(item_type).map_err(CoreError::from)?;
            let content = match (&source.content, &source.file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => std::fs::read_to_string(f)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", f.display())))?,
                (None, None) => return Err(CliError::Usage("give --content or --file".into())),
            };
            let item = svc
                .add_context_item(
                    p.id,
                    NewContextItem {
                        agent_id: agent.clone(),
                        item_type,
                        content,
                        created_at: None,
                        access_count: None,
                    },
                    *permit,
                )
                .await?;
            print(cli.json, &item, || {
                format!("added {} ({}, {} tokens, {})", item.id, item.item_type, item.token_count, item.tier)
            })
        }
        ContextCommand::Import { file } => import(cli, &svc, &p, file).await,
        ContextCommand::Export { file } => {
            let items = svc.context_items(p.id).await?;
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(file)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?,
            );
            for item in &items {
                let line = serde_json::to_string(item).map_err(|e| CliError::Runtime(e.to_string()))?;
                writeln!(out, "{line}").map_err(|e| CliError::Runtime(format!("{}: {e}", file.display())))?;
            }
            out.flush().map_err(|e| CliError::Runtime(format!("{}: {e}", file.display())))?;
            let archived = items.iter().filter(|i| i.archived_at.is_some()).count();
            print(cli.json, &json!({"exported": items.len(), "archived": archived, "file": file}), || {
                format!("exported {} items ({archived} archived) to {}", items.len(), file.display())
            })
        }
        ContextCommand::Stats => stats(cli, &svc, &p).await,
    }
}

async fn import(cli: &Cli, svc: &ProjectService, p: &Project, file: &Path) -> Result<()> {
    let f = std::fs::File::open(file).map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = if !cli.json && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(size);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes}") {
            b.set_style(style);
        }
        b.set_message("reading");
        Some(b)
    } else {
        None
    };
    let mut items = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
        if let Some(b) = &bar {
            b.inc(line.len() as u64 + 1);
        }
        if line.trim().is_empty() {
            continue;
        }
        let item: NewContextItem =
            line.parse().map_err(|e| CliError::Usage(format!("{}:{}: {e}", file.display(), n + 1)))?;
        items.push(item);
    }
    if let Some(b) = &bar {
        b.set_message(format!("importing {} items", items.len()));
    }
    let count = items.len();
    let ids = svc.add_context_items(p.id, items, None).await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    print(cli.json, &json!({"imported": ids.len(), "file": file}), || {
        format!("imported {count} items into {}", p.name)
    })
}

fn totals_json(active: &codeframe_models::TierTotals, archived: i64) -> Value {
    json!({
        "active_items": active.total_items(),
        "archived_items": archived,
        "active_tokens": active.total_tokens(),
        "hot": active.hot_items,
        "warm": active.warm_items,
        "cold": active.cold_items,
        "hot_tokens": active.hot_tokens,
        "warm_tokens": active.warm_tokens,
        "cold_tokens": active.cold_tokens,
    })
}

async fn stats(cli: &Cli, svc: &ProjectService, p: &Project) -> Result<()> {
    let (_, per_agent) = svc.token_totals(p.id).await?;
    let mut agent_ids: Vec<String> = svc.agents(p.id).await?.into_iter().map(|a| a.agent.id).collect();
    for a in &per_agent {
        if !agent_ids.contains(&a.agent_id) {
            agent_ids.push(a.agent_id.clone());
        }
    }
    agent_ids.sort();
    let mut total = codeframe_models::TierTotals::default();
    let mut total_archived = 0;
    let mut rows = Vec::new();
    for agent in &agent_ids {
        let active = per_agent.iter().find(|a| a.agent_id == *agent).map(|a| a.totals).unwrap_or_default();
        let q = ListQuery {
            project_id: p.id,
            agent_id: Some(agent.clone()),
            state: ArchiveState::Archived,
            ..Default::default()
        };
        let archived = svc.list_context(&ListQuery { limit: Some(0), ..q }).await?.total;
        total.add(&active);
        total_archived += archived;
        let mut v = totals_json(&active, archived);
        v["agent_id"] = json!(agent);
        rows.push((agent.clone(), active, archived, v));
    }
    let doc = json!({
        "total": totals_json(&total, total_archived),
        "agents": rows.iter().map(|r| r.3.clone()).collect::<Vec<_>>(),
    });
    print(cli.json, &doc, || {
        let mut s = format!(
            "{}: {} active items ({} tokens), {} archived — hot {} / warm {} / cold {}",
            p.name,
            thousands(total.total_items()),
            thousands(total.total_tokens()),
            thousands(total_archived),
            total.hot_items,
            total.warm_items,
            total.cold_items
        );
        for (agent, t, archived, _) in &rows {
            s.push_str(&format!(
                "\n  {agent}: {} active ({} tokens), {archived} archived — hot {} / warm {} / cold {}",
                t.total_items(),
                thousands(t.total_tokens()),
                t.hot_items,
                t.warm_items,
                t.cold_items
            ));
        }
        s
    })
}

async fn permit(cli: &Cli, command: &PermitCommand) -> Result<()> {
    let (svc, p) = open_project(cli).await?;
    let human = |r: &codeframe_core::RemotePermit, what: &str| {
        let mut s = format!(
            "permit {} {what} for {} until {}",
            r.permit_id,
            r.agent_id,
            timestamp::format(r.expires_at)
        );
        if r.pause_requested {
            s.push_str("\n  a pause has begun: finish the unit of work and release the permit");
        }
        s
    };
    match command {
        PermitCommand::Take { agent, ttl } => {
            let r = svc.take_permit(p.id, agent, ttl.map(Duration::from_secs)).await?;
            print(cli.json, &r, || human(&r, "taken"))
        }
        PermitCommand::Renew { id, ttl } => {
            let r = svc.renew_permit(p.id, *id, ttl.map(Duration::from_secs)).await?;
            print(cli.json, &r, || human(&r, "renewed"))
        }
        PermitCommand::Release { id } => {
            svc.release_permit(p.id, *id).await?;
            print(cli.json, &json!({"permit_id": id, "released": true}), || format!("permit {id} released"))
        }
    }
}

/// One event as a line: JSON, or `seq  time  type  field=value …`.
fn event_line(json: bool, event: &ProjectEvent) -> Result<String> {
    let mut v = serde_json::to_value(event).map_err(|e| CliError::Runtime(e.to_string()))?;
    if json {
        return Ok(v.to_string());
    }
    let fields = v.as_object_mut().map(std::mem::take).unwrap_or_default();
    let details: Vec<String> = fields
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "seq" | "type" | "project_id" | "timestamp"))
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    Ok(format!(
        "{:>6}  {}  {:<22} {}",
        event.seq,
        timestamp::format(event.timestamp),
        event.kind.name(),
        details.join(" ")
    ))
}

/// Writes a line to stdout; a closed pipe (`| head`) ends the command quietly.
fn emit(line: &str) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(CliError::Runtime(format!("stdout: {e}"))),
    }
}

async fn events(cli: &Cli, since: Option<i64>, follow: bool) -> Result<()> {
    let (svc, p) = open_project(cli).await?;
    let since = match since {
        Some(since) => since,
        None => svc.event_horizon(p.id).await?,
    };
    let mut cursor = since;
    let mut printed = 0usize;
    loop {
        let page = svc.events_since(p.id, cursor, 1000).await?;
        for event in &page.events {
            if !emit(&event_line(cli.json, event)?)? {
                return Ok(());
            }
            printed += 1;
        }
        cursor = page.next_since;
        if !page.has_more {
            break;
        }
    }
    if !follow {
        if printed == 0 && !cli.json {
            emit(&format!("no events of {} after seq {since}", p.name))?;
        }
        return Ok(());
    }
    let mut tail = svc.tail_events(Some(p.id), Some(cursor)).await?;
    loop {
        tokio::select! {
            batch = tail.next_batch() => {
                for event in &batch? {
                    if !emit(&event_line(cli.json, event)?)? {
                        return Ok(());
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// `doctor`: the report on stdout; exit 1 when a finding needs a fix.
async fn doctor(cli: &Cli) -> Result<()> {
    let home = find_home(cli.home.as_deref())?;
    let svc =
        ProjectService::with_config(open_db(&home, false, cli.durability()).await?, service_config(cli));
    let report = svc.doctor().await?;
    print(cli.json, &report, || {
        let mut lines = vec![format!(
            "{}: {} projects, {} checkpoints verified, schema {}",
            if report.healthy { "healthy" } else { "needs attention" },
            report.projects_checked,
            report.checkpoints_checked,
            report.schema_version
        )];
        for f in &report.findings {
            lines.push(format!("- {}", f.message));
            if let Some(fix) = &f.fix {
                lines.push(format!("  fix: {fix}"));
            }
        }
        lines.join("\n")
    })?;
    if report.healthy {
        Ok(())
    } else {
        Err(CliError::Runtime(format!(
            "{} finding(s) need a fix",
            report.findings.iter().filter(|f| f.fix.is_some()).count()
        )))
    }
}

/// `backup --to FILE`.
async fn backup(cli: &Cli, to: &Path) -> Result<()> {
    let home = find_home(cli.home.as_deref())?;
    let svc =
        ProjectService::with_config(open_db(&home, false, cli.durability()).await?, service_config(cli));
    let bytes = svc.backup_to(to).await?;
    let doc = json!({"backup": to, "bytes": bytes, "database": home.join(DB_FILE)});
    print(cli.json, &doc, || {
        format!("backed up {} to {} ({bytes} bytes)", home.join(DB_FILE).display(), to.display())
    })
}

/// `restore-backup FILE --yes`.
async fn restore_backup(cli: &Cli, file: &Path, yes: bool) -> Result<()> {
    let home = find_home(cli.home.as_deref())?;
    let database = home.join(DB_FILE);
    if !yes {
        return Err(CliError::Usage(format!(
            "this replaces {} with {} (the current one is kept beside it); run again with --yes",
            database.display(),
            file.display()
        )));
    }
    let restored = codeframe_core::restore_database(&database, file).await?;
    print(cli.json, &restored, || match &restored.replaced {
        Some(aside) => format!(
            "restored {} from {}; the replaced database is {}",
            database.display(),
            file.display(),
            aside.display()
        ),
        None => format!("restored {} from {}", database.display(), file.display()),
    })
}

/// `config check FILE`: the file's settings, or exit 2 naming what is wrong.
fn config_check(json: bool, file: &Path) -> Result<()> {
    let loaded = crate::config::ServeFile::load(file).map_err(CliError::Usage)?;
    print(json, &loaded, || format!("{}: ok", file.display()))
}

async fn serve(
    cli: &Cli,
    addr: std::net::SocketAddr,
    workspace_roots: &[PathBuf],
    metrics_addr: Option<std::net::SocketAddr>,
    limits: codeframe_api::Limits,
) -> Result<()> {
    // Refused before the home is touched: bad settings change nothing.
    if let Some(root) = workspace_roots.iter().find(|r| !r.is_dir()) {
        return Err(CliError::Usage(format!("workspace root {} is not a directory", root.display())));
    }
    let (home, svc) = server_service(cli).await?;
    drop(svc);
    let path = home.join(DB_FILE);
    let config = codeframe_api::ServeConfig {
        addr,
        database: path.to_string_lossy().into_owned(),
        service: ServiceConfig { workspace_roots: workspace_roots.to_vec(), ..service_config(cli) },
        home: home.clone(),
        limits,
        metrics_addr,
    };
    let server = codeframe_api::bind(config).await.map_err(|e| match e {
        codeframe_api::ServeError::Service(e) => CliError::from(e),
        other => CliError::Runtime(other.to_string()),
    })?;
    let bound = server.local_addr().map_err(|e| CliError::Runtime(e.to_string()))?;
    if let Some(token) = server.first_token() {
        eprintln!("First start: API token for user {LOCAL_USER:?} (shown once):\n{token}");
    }
    if let Some(m) = server.metrics_addr() {
        eprintln!("codeframe metrics on http://{m}/metrics");
    }
    eprintln!("codeframe API on http://{bound} (Ctrl-C to stop)");
    server.run_until(codeframe_api::shutdown_signal()).await.map_err(|e| CliError::Runtime(e.to_string()))?;
    eprintln!("codeframe API stopped");
    Ok(())
}

/// The walkthrough, end to end, in a scratch directory.
async fn demo(json: bool, dir: Option<PathBuf>) -> Result<()> {
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|e| CliError::Usage(format!("{}: {e}", d.display())))?;
            d
        }
        None => std::env::temp_dir().join(format!("codeframe-demo-{}", std::process::id())),
    };
    let write = |rel: &str, text: &str| -> Result<()> {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| CliError::Runtime(e.to_string()))?;
        }
        std::fs::write(&p, text).map_err(|e| CliError::Runtime(format!("{}: {e}", p.display())))
    };
    write("src/main.rs", "fn main() {\n    println!(\"shop\");\n}\n")?;
    write("README.md", "# shop\n")?;
    write(".gitignore", "target/\n")?;
    write("target/debug/shop", "build output, ignored\n")?;
    let root = dir.canonicalize().map_err(|e| CliError::Runtime(e.to_string()))?;
    let home = root.join(".codeframe");
    std::fs::create_dir_all(&home).map_err(|e| CliError::Runtime(e.to_string()))?;
    let db = open_db(&home, true, codeframe_core::Durability::Normal).await?;
    let svc = ProjectService::with_defaults(db.clone());
    let owner = svc.ensure_user(LOCAL_USER).await?;
    let name = format!("demo-{}", std::process::id());
    let p = svc
        .create_project(NewProject {
            name,
            description: "codeframe demo".into(),
            root_path: root.to_string_lossy().into_owned(),
            owner_id: Some(owner.id),
        })
        .await?;
    svc.start(p.id).await?;
    let now = timestamp::now_utc();
    let days = |d: i64| Some(now - time::Duration::days(d));
    let mut items = Vec::new();
    for (agent, kind) in [("planner-1", "planner"), ("coder-1", "backend")] {
        svc.add_agent(p.id, agent, kind, None, "worker").await?;
        let item = |t: ItemType, c: &str, created_at| NewContextItem {
            agent_id: agent.into(),
            item_type: t,
            content: c.into(),
            created_at,
            access_count: None,
        };
        items.push(item(ItemType::Task, "Build the checkout page with a cart summary", None));
        items.push(item(
            ItemType::Code,
            "fn total(items: &[Item]) -> Money { items.iter().map(|i| i.price).sum() }",
            None,
        ));
        items.push(item(
            ItemType::Error,
            "error[E0308]: mismatched types: expected `Money`, found `u64`",
            days(4),
        ));
        items.push(item(
            ItemType::TestResult,
            "test checkout::empty_cart ... FAILED (yesterday's run)",
            days(3),
        ));
        items.push(item(
            ItemType::PrdSection,
            "Requirements v1: a guest can buy without an account",
            days(10),
        ));
    }
    svc.add_context_items(p.id, items, None).await?;
    let before = svc.status(p.id).await?;
    let paused = svc.pause(p.id, PauseRequest { reason: Some("demo: end of the work day".into()) }).await?;
    let cp = svc.checkpoint(p.id, paused.checkpoint_id).await?;
    write("src/main.rs", "fn main() {\n    println!(\"shop, edited while paused\");\n}\n")?;
    let resumed = svc.resume(p.id, ResumeOptions::default()).await?;
    let after = svc.status(p.id).await?;
    let doc = json!({
        "project": {"id": p.id, "name": p.name, "root_path": p.root_path, "home": home},
        "before": before, "pause": paused, "resume": resumed, "after": after,
    });
    print(json, &doc, || {
        format!(
            "codeframe demo in {root}\n\n\
             1. project {name} started with 2 agents and {n} context items ({tokens} tokens; {cold} COLD)\n\
             2. {pause}\n\
             3. src/main.rs edited while paused\n\
             4. {resume}\n\n\
             Look around:\n  codeframe --home {home} status\n  codeframe --home {home} checkpoints list\n  \
             codeframe --home {home} context stats\n  \
             git --git-dir {home}/snapshots.git show refs/codeframe/checkpoints/{cp}:meta.json",
            root = root.display(),
            name = p.name,
            n = before.token_totals.total_items(),
            tokens = thousands(before.token_totals.total_tokens()),
            cold = before.token_totals.cold_items,
            pause = human_pause(&p, &paused, cp.commit_id.as_deref()).replace('\n', "\n "),
            resume = human_resume(&p, &resumed).replace('\n', "\n "),
            home = home.display(),
            cp = cp.id,
        )
    })
}
