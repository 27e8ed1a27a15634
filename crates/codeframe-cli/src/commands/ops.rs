//! Operating a home: `token …`, `doctor`, `backup`, `restore-backup`, `config check`, `serve`, `demo`.

use super::*;

pub(super) async fn token(cli: &Cli, command: &TokenCommand) -> Result<()> {
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

/// `doctor`: the report on stdout; exit 1 when a finding needs a fix.
pub(super) async fn doctor(cli: &Cli) -> Result<()> {
    let home = find_home(cli)?;
    let svc = ProjectService::with_config(open_cli_db(cli, &home, false).await?, service_config(cli));
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

/// `backup` and `restore-backup` copy SQLite files; a PostgreSQL database is backed up with
/// its own tools.
fn refuse_postgres(cli: &Cli, command: &str) -> Result<()> {
    match &cli.database {
        Some(url) if codeframe_core::Backend::of(url) == codeframe_core::Backend::Postgres => {
            Err(CliError::Usage(format!(
                "`{command}` copies a SQLite database file; back a PostgreSQL database up with \
                 pg_dump and restore it with pg_restore (docs/OPERATIONS.md)"
            )))
        }
        _ => Ok(()),
    }
}

/// `backup --to FILE`.
pub(super) async fn backup(cli: &Cli, to: &Path) -> Result<()> {
    refuse_postgres(cli, "backup")?;
    let home = find_home(cli)?;
    let svc = ProjectService::with_config(open_cli_db(cli, &home, false).await?, service_config(cli));
    let bytes = svc.backup_to(to).await?;
    let database = database_location(cli, &home)?;
    let doc = json!({"backup": to, "bytes": bytes, "database": database});
    print(cli.json, &doc, || format!("backed up {database} to {} ({bytes} bytes)", to.display()))
}

/// `restore-backup FILE --yes`.
pub(super) async fn restore_backup(cli: &Cli, file: &Path, yes: bool) -> Result<()> {
    refuse_postgres(cli, "restore-backup")?;
    let home = find_home(cli)?;
    let database = match &cli.database {
        Some(path) => {
            PathBuf::from(path.strip_prefix("sqlite://").or(path.strip_prefix("sqlite:")).unwrap_or(path))
        }
        None => home.join(DB_FILE),
    };
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
pub(super) fn config_check(json: bool, file: &Path) -> Result<()> {
    let loaded = crate::config::ServeFile::load(file).map_err(CliError::Usage)?;
    print(json, &loaded, || format!("{}: ok", file.display()))
}

pub(super) async fn serve(
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
    let config = codeframe_api::ServeConfig {
        addr,
        database: database_location(cli, &home)?,
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
pub(super) async fn demo(json: bool, dir: Option<PathBuf>) -> Result<()> {
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
