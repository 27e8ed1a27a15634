//! What each command does.

mod agent;
mod checkpoint;
mod event;
mod ops;
mod project;

use agent::{agent, context_cmd, permit};
use checkpoint::checkpoints;
use event::events;
use ops::{backup, config_check, demo, doctor, restore_backup, serve, token};
use project::{human_pause, human_resume, init, status};

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use codeframe_core::auth::LOCAL_USER;
use codeframe_core::{
    ArchiveState, CoreError, Db, EventRetention, FileChange, FileDiff, ListQuery, PauseOptions,
    ProjectService, RestoreMode, RestoreWhat, ServiceConfig, parse_item_type,
};
use codeframe_models::{
    ItemType, NewContextItem, NewProject, PauseOutcome, PauseRequest, Project, ProjectEvent, ProjectId,
    ResumeOptions, ResumeOutcome, timestamp,
};
use serde_json::{Value, json};

use crate::output::{CliError, duration, print, short, thousands};
use crate::{
    AgentCommand, CheckpointCommand, Cli, Command, ConfigCommand, ContextCommand, PermitCommand,
    ProjectCommand, TokenCommand,
};

type Result<T, E = CliError> = std::result::Result<T, E>;

const DB_FILE: &str = "state.db";

/// The home: `--home`/`$CODEFRAME_HOME`, else the nearest `.codeframe/` holding a database
/// (any `.codeframe/` when the database is named by `--database`).
fn find_home(cli: &Cli) -> Result<PathBuf> {
    if let Some(h) = &cli.home {
        return Ok(h.clone());
    }
    let external = cli.database.is_some();
    let cwd = std::env::current_dir().map_err(|e| CliError::Runtime(format!("current directory: {e}")))?;
    let mut dir = Some(cwd.as_path());
    while let Some(d) = dir {
        let home = d.join(".codeframe");
        if home.join(DB_FILE).is_file() || (external && home.is_dir()) {
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

/// Where the database is: `--database`, else the home's `state.db`.
fn database_location(cli: &Cli, home: &Path) -> Result<String> {
    match &cli.database {
        Some(url) => Ok(url.clone()),
        None => home_database(home),
    }
}

/// The home's `state.db`, as the text `Db::open` takes.
fn home_database(home: &Path) -> Result<String> {
    let path = home.join(DB_FILE);
    let location =
        path.to_str().ok_or_else(|| CliError::Usage(format!("{} is not valid UTF-8", path.display())))?;
    Ok(location.to_owned())
}

/// Opens `--database` when given (created if missing), else the home's `state.db` (created
/// only when `create`).
async fn open_cli_db(cli: &Cli, home: &Path, create: bool) -> Result<Db> {
    match &cli.database {
        Some(url) => open_location(url, cli.durability()).await,
        None => open_db(home, create, cli.durability()).await,
    }
}

async fn open_location(location: &str, durability: codeframe_core::Durability) -> Result<Db> {
    let options = codeframe_core::DbOptions {
        synchronous_full: durability == codeframe_core::Durability::Full,
        ..codeframe_core::DbOptions::default()
    };
    Ok(Db::open_with(location, options).await?)
}

async fn open_db(home: &Path, create: bool, durability: codeframe_core::Durability) -> Result<Db> {
    let path = home.join(DB_FILE);
    if !create && !path.is_file() {
        return Err(CliError::NotFound(format!(
            "no codeframe database at {} (run `codeframe init`)",
            path.display()
        )));
    }
    open_location(&home_database(home)?, durability).await
}

/// The project to act on: `--project`, the only one, or the one whose root holds the
/// current directory.
async fn select(svc: &ProjectService, selector: Option<&str>) -> Result<Project> {
    if let Some(s) = selector {
        let found = match s.parse::<ProjectId>() {
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
    let home = find_home(cli)?;
    let svc = ProjectService::with_config(open_cli_db(cli, &home, false).await?, service_config(cli));
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
        None => find_home(cli)?,
    };
    let db = open_cli_db(cli, &home, true).await?;
    Ok((home, ProjectService::with_config(db, service_config(cli))))
}
