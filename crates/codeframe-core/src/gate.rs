use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use codeframe_models::ProjectId;
use tokio::sync::Notify;

use crate::CoreError;

/// The run gate of a project: agents do each unit of work inside a [`Permit`]. Pause closes
/// the gate (new permits are refused with [`CoreError::Paused`]) and waits for the permits in
/// flight; resume opens it again.
#[derive(Debug)]
pub struct RunGate {
    project_id: ProjectId,
    state: Mutex<GateState>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    next_id: u64,
    in_flight: BTreeMap<u64, String>,
}

/// Permission for one unit of an agent's work; dropping it ends the unit.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<RunGate>,
    id: u64,
    agent_id: String,
}

impl Permit {
    /// The agent holding the permit.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.lock().in_flight.remove(&self.id);
        self.gate.changed.notify_waiters();
    }
}

impl RunGate {
    /// A gate for a project, open or closed.
    pub fn new(project_id: ProjectId, closed: bool) -> Arc<Self> {
        Arc::new(Self {
            project_id,
            state: Mutex::new(GateState { closed, ..Default::default() }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a permit for `agent_id`, or fails with [`CoreError::Paused`] if the gate is closed.
    pub fn enter(self: &Arc<Self>, agent_id: &str) -> Result<Permit, CoreError> {
        let mut s = self.lock();
        if s.closed {
            return Err(CoreError::Paused(self.project_id));
        }
        s.next_id += 1;
        let id = s.next_id;
        s.in_flight.insert(id, agent_id.to_owned());
        Ok(Permit { gate: Arc::clone(self), id, agent_id: agent_id.to_owned() })
    }

    /// Refuses new permits.
    pub fn close(&self) {
        self.lock().closed = true;
    }

    /// Accepts new permits again.
    pub fn open(&self) {
        self.lock().closed = false;
    }

    /// Whether new permits are refused.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Agents holding permits now (sorted, each once).
    pub fn in_flight(&self) -> Vec<String> {
        let mut agents: Vec<String> = self.lock().in_flight.values().cloned().collect();
        agents.sort();
        agents.dedup();
        agents
    }

    /// Waits until no permit is in flight or `deadline` passes; returns the agents still in
    /// flight at the deadline (empty when everything drained).
    pub async fn drain(&self, deadline: Duration) -> Vec<String> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            // Register for the wake-up before looking, so a permit dropped in between is seen.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.lock().in_flight.is_empty() {
                return Vec::new();
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(until) => return self.in_flight(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_gate_refuses_permits_and_an_open_one_grants_them() {
        let gate = RunGate::new(7, false);
        let p = gate.enter("a");
        assert!(p.is_ok());
        gate.close();
        assert!(matches!(gate.enter("b"), Err(CoreError::Paused(7))));
        gate.open();
        assert!(gate.enter("b").is_ok());
    }

    #[tokio::test]
    async fn drain_returns_at_once_when_idle_and_lists_agents_at_the_deadline() {
        let gate = RunGate::new(1, false);
        assert!(gate.drain(Duration::from_secs(10)).await.is_empty());
        let _a = gate.enter("agent-b");
        let _b = gate.enter("agent-a");
        let _c = gate.enter("agent-a");
        assert_eq!(gate.in_flight(), ["agent-a", "agent-b"]);
        assert_eq!(gate.drain(Duration::from_millis(50)).await, ["agent-a", "agent-b"]);
    }

    #[tokio::test]
    async fn drain_wakes_as_soon_as_the_last_permit_is_dropped() {
        let gate = RunGate::new(1, false);
        let permit = gate.enter("a");
        let g = Arc::clone(&gate);
        let waiter = tokio::spawn(async move { g.drain(Duration::from_secs(30)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(permit);
        let left = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(left, Ok(Ok(v)) if v.is_empty()));
    }
}
