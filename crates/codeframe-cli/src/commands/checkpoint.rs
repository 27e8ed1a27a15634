//! `checkpoints …`: create, list, show, diff, verify, restore, delete, policy, pins, prune, gc, undo.

use super::*;

pub(super) fn checkpoint_json(c: &codeframe_models::Checkpoint) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    v["commit"] = json!(c.commit_id);
    v
}

pub(super) async fn checkpoints(cli: &Cli, command: &CheckpointCommand) -> Result<()> {
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

pub(super) fn diff_text(d: &FileDiff) -> String {
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
