use std::sync::Mutex;

use async_trait::async_trait;
use codeframe_models::ProjectEvent;
use thiserror::Error;

/// Why an event could not be delivered.
#[derive(Debug, Error)]
#[error("event delivery failed: {0}")]
pub struct EventError(pub String);

/// Where project events go (a WebSocket hub, a log, a test). A failing sink is logged by the
/// service and never fails the operation that published.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Delivers one event.
    async fn publish(&self, event: &ProjectEvent) -> Result<(), EventError>;
}

/// Drops every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopSink;

#[async_trait]
impl EventSink for NoopSink {
    async fn publish(&self, _event: &ProjectEvent) -> Result<(), EventError> {
        Ok(())
    }
}

/// Keeps every event in memory, in order (for embedding programs and tests).
#[derive(Debug, Default)]
pub struct CollectingSink {
    events: Mutex<Vec<ProjectEvent>>,
}

impl CollectingSink {
    /// The events so far.
    pub fn events(&self) -> Vec<ProjectEvent> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The wire names of the events so far (`project_paused`, …).
    pub fn names(&self) -> Vec<&'static str> {
        self.events().iter().map(|e| e.kind.name()).collect()
    }
}

#[async_trait]
impl EventSink for CollectingSink {
    async fn publish(&self, event: &ProjectEvent) -> Result<(), EventError> {
        self.events.lock().unwrap_or_else(|p| p.into_inner()).push(event.clone());
        Ok(())
    }
}
