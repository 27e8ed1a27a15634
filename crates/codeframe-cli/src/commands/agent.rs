//! `agent …`, `context …` (import, stats) and `permit …`.

use super::*;

pub(super) async fn agent(cli: &Cli, command: &AgentCommand) -> Result<()> {
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

pub(super) async fn context_cmd(cli: &Cli, command: &ContextCommand) -> Result<()> {
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

pub(super) async fn import(cli: &Cli, svc: &ProjectService, p: &Project, file: &Path) -> Result<()> {
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

pub(super) fn totals_json(active: &codeframe_models::TierTotals, archived: i64) -> Value {
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

pub(super) async fn stats(cli: &Cli, svc: &ProjectService, p: &Project) -> Result<()> {
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
        let q =
            ListQuery { agent_id: Some(agent.clone()), state: ArchiveState::Archived, ..ListQuery::of(p.id) };
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

pub(super) async fn permit(cli: &Cli, command: &PermitCommand) -> Result<()> {
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
