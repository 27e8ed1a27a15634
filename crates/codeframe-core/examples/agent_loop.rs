//! An agent that works in units, each inside a permit, while another task pauses and resumes
//! the project. The pause waits for the unit in flight, then refuses new permits until the
//! resume; the agent notices (`pause_requested`), finishes its unit and waits.
//!
//! `cargo run -p codeframe-core --example agent_loop`
#![allow(clippy::print_stdout)] // an example talks to its reader

use std::time::Duration;

use codeframe_core::{CoreError, ProjectService};
use codeframe_core::{ItemType, NewContextItem, PauseRequest, ResumeOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = tempfile::tempdir()?;
    let root = home.path().join("project");
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("main.rs"), "fn main() {}\n")?;
    let service = ProjectService::builder()
        .database_url(home.path().join("state.db").to_string_lossy())
        .drain_timeout(Duration::from_secs(5))
        .build()
        .await?;
    let project = service.create("example", &root).await?.id;
    service.register_agent("coder-1", "worker", None).await?;
    service.assign(project, "coder-1", "worker").await?;
    service.start(project).await?;

    let agent = {
        let service = service.clone();
        tokio::spawn(async move {
            let mut units = 0;
            while units < 20 {
                let permit = match service.enter(project, "coder-1").await {
                    Ok(permit) => permit,
                    // Paused or being paused: wait, then try again.
                    Err(CoreError::Paused(_) | CoreError::Pausing(_)) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                // One unit of work: it records what it learned, then releases the permit.
                let note = NewContextItem {
                    agent_id: "coder-1".into(),
                    item_type: ItemType::Code,
                    content: format!("unit {units}: refactored a module"),
                    created_at: None,
                    access_count: None,
                };
                service.add_context_item(project, note, Some(permit.id())).await?;
                if permit.is_pause_requested() {
                    println!("agent: a pause was asked for; unit {units} done, releasing");
                }
                permit.release().await?;
                units += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok::<_, CoreError>(units)
        })
    };

    tokio::time::sleep(Duration::from_millis(150)).await;
    let paused = service.pause(project, PauseRequest { reason: Some("lunch".into()) }).await?;
    println!("paused: checkpoint {}, {} items archived", paused.checkpoint_id, paused.items_archived);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resumed = service.resume(project, ResumeOptions::default()).await?;
    println!("resumed: status {}, {} items restored", resumed.status, resumed.items_restored);

    let units = agent.await??;
    println!("agent: {units} units done");
    Ok(())
}
