//! Settings of the project service.

use std::path::PathBuf;
use std::time::Duration;

/// Settings of the service. Every process sharing a database may use its own; the values that
/// other processes rely on (a lease's expiry, a pausing marker's expiry) are written to the
/// database with the row, so they never need to agree.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// How long a pause waits for work in flight before going on (default 30 s).
    pub drain_timeout: Duration,
    /// How long a permit (and a pause's hold on the gate) lasts unless renewed (default 30 s).
    /// Holders renew at a third of it; a holder killed with kill -9 stops blocking a pause when
    /// its lease expires.
    pub lease_ttl: Duration,
    /// How often this process looks at the database for what other processes did: new events,
    /// a gate closed or opened elsewhere, permits released elsewhere (default 100 ms). Changes
    /// made by this process are seen at once.
    pub poll_interval: Duration,
    /// How long events are kept.
    pub event_retention: EventRetention,
    /// Free at once what a dead holder on this machine held (its permits, a pause's hold on
    /// the gate) instead of waiting for its lease to expire (default true). A holder counts
    /// as dead only when that is certain: same boot of the same machine, same pid namespace,
    /// and its pid gone. Holders elsewhere always wait for expiry.
    pub reclaim_from_dead_holders: bool,
    /// Directories under which [`crate::ProjectService::create_served_project`] accepts
    /// project roots (a server's `--workspace-root`); none: that refuses every root.
    pub workspace_roots: Vec<PathBuf>,
    /// Where the snapshot stores of served projects live (`<dir>/<project id>.git`), out of
    /// reach of the code running in the project trees; `None`: in each tree, as for `init`.
    pub stores_dir: Option<PathBuf>,
    /// Files larger than this are left out of snapshots and listed in the checkpoint
    /// (default 100 MiB).
    pub max_snapshot_file_size: u64,
    /// How hard snapshot stores push writes to disk (default normal; `codeframe serve`
    /// uses full). Open the database with `synchronous_full` to match.
    pub durability: codeframe_checkpoint::Durability,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            event_retention: EventRetention::default(),
            reclaim_from_dead_holders: true,
            workspace_roots: Vec::new(),
            stores_dir: None,
            max_snapshot_file_size: codeframe_checkpoint::DEFAULT_MAX_FILE_SIZE,
            durability: codeframe_checkpoint::Durability::Normal,
        }
    }
}

/// Retention of the event log. An event is deleted once it is older than `max_age` or once its
/// project has `max_events_per_project` newer events; a client asking for events after a
/// deleted one is told it has a gap and should reload the project's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRetention {
    /// Default 30 days.
    pub max_age: Duration,
    /// Default 100,000.
    pub max_events_per_project: u32,
}

impl Default for EventRetention {
    fn default() -> Self {
        Self { max_age: Duration::from_secs(30 * 24 * 3600), max_events_per_project: 100_000 }
    }
}
