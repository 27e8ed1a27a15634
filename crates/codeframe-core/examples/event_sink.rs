//! A custom [`EventSink`]: every event this service commits, delivered in-process as it
//! happens (other processes read the same events from the database's event log).
//!
//! `cargo run -p codeframe-core --example event_sink`
#![allow(clippy::print_stdout)] // an example talks to its reader

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use codeframe_core::{EventError, EventSink, ProjectService, async_trait};
use codeframe_core::{PauseRequest, ProjectEvent, ResumeOptions};

/// Prints each event and counts them.
#[derive(Default)]
struct Printer {
    seen: AtomicUsize,
}

#[async_trait]
impl EventSink for Printer {
    async fn publish(&self, event: &ProjectEvent) -> Result<(), EventError> {
        self.seen.fetch_add(1, Ordering::Relaxed);
        println!("event #{} on project {}: {}", event.seq, event.project_id, event.kind.name());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = tempfile::tempdir()?;
    let root = home.path().join("project");
    std::fs::create_dir_all(&root)?;
    let printer = Arc::new(Printer::default());
    let service = ProjectService::builder()
        .database_url(home.path().join("state.db").to_string_lossy())
        .event_sink(printer.clone())
        .build()
        .await?;
    let project = service.create("example", &root).await?.id;
    service.start(project).await?;
    service.pause(project, PauseRequest { reason: Some("a demo".into()) }).await?;
    service.resume(project, ResumeOptions::default()).await?;
    println!("{} events delivered", printer.seen.load(Ordering::Relaxed));
    Ok(())
}
