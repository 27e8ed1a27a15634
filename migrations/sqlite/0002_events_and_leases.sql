-- codeframe schema, version 2: one truth across processes.
-- Everything that decides correctness lives here, not in one process's memory: the event log
-- (an outbox written in the same transaction as the change it reports), the run gate's leases,
-- the pausing marker that closes the gate, and checkpoint ids that are never handed out twice.

-- The event log. `seq` is AUTOINCREMENT: it only grows and is never reused. SQLite has one
-- writer at a time, so transactions commit in `seq` order and a reader tailing `seq > cursor`
-- never skips an event that commits later with a smaller `seq`.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    -- The wire name of the event (`project_paused`, …).
    kind        TEXT NOT NULL,
    -- The event as JSON (`type` and its fields; `seq`, `project_id` and `timestamp` are columns).
    payload     TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX idx_events_project ON events(project_id, seq);
CREATE INDEX idx_events_created ON events(created_at);

-- Retention deletes a prefix of each project's events; `pruned_through` is the highest `seq`
-- deleted, so a client asking for events after an older `seq` is told it missed some (a gap).
CREATE TABLE event_horizons (
    project_id      INTEGER PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    pruned_through  INTEGER NOT NULL
);

-- Run-gate permits are leases: a holder (one process's service) renews them while it works;
-- a holder killed with kill -9 stops blocking a pause when `expires_at` passes.
CREATE TABLE permits (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    agent_id     TEXT NOT NULL,
    holder       TEXT NOT NULL,
    acquired_at  TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
CREATE INDEX idx_permits_project ON permits(project_id, expires_at);
CREATE INDEX idx_permits_holder ON permits(holder, project_id);

-- A pause in progress closes the gate everywhere: new permits are refused while
-- `pausing_until` lies ahead. The pausing process renews it; if that process dies, it expires
-- and the gate opens again.
ALTER TABLE projects ADD COLUMN pausing_holder TEXT;
ALTER TABLE projects ADD COLUMN pausing_until TEXT;

-- Ids handed out outside the transaction that uses them, so a rolled-back checkpoint's id
-- (and the ref named after it) never names a later checkpoint.
CREATE TABLE id_sequences (
    name     TEXT PRIMARY KEY NOT NULL,
    next_id  INTEGER NOT NULL
);
INSERT INTO id_sequences (name, next_id) VALUES ('checkpoints', 1 + MAX(
    COALESCE((SELECT MAX(id) FROM checkpoints), 0),
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'checkpoints'), 0)));
