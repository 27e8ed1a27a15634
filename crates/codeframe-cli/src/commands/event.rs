//! `events [--since N] [--follow]`.

use super::*;

/// One event as a line: JSON, or `seq  time  type  field=value …`.
pub(super) fn event_line(json: bool, event: &ProjectEvent) -> Result<String> {
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
pub(super) fn emit(line: &str) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(CliError::Runtime(format!("stdout: {e}"))),
    }
}

pub(super) async fn events(cli: &Cli, since: Option<i64>, follow: bool) -> Result<()> {
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
