-- no-transaction
-- codeframe schema, version 6: checkpoints made before a restore (trigger 'before_restore'),
-- and pinned checkpoints (never pruned by retention).
--
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt (SQLite's documented
-- procedure: foreign keys off, new table, copy, drop, rename, all in one transaction). With
-- foreign keys off, dropping the old table does not touch projects.pause_checkpoint_id.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE checkpoints_v6 (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT NOT NULL CONSTRAINT ck_checkpoints_name CHECK (length(trim(name)) BETWEEN 1 AND 100),
    description   TEXT NOT NULL DEFAULT '' CONSTRAINT ck_checkpoints_description CHECK (length(description) <= 500),
    trigger       TEXT NOT NULL
                  CONSTRAINT ck_checkpoints_trigger
                  CHECK (trigger IN ('manual','auto','phase_transition','pause','before_restore')),
    -- Hex id of the snapshot commit in the project's private store.
    commit_id     TEXT,
    pause_reason  TEXT,
    metadata      TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    -- The project revision the snapshot is exact at (NULL: unknown).
    revision      INTEGER,
    pinned        INTEGER NOT NULL DEFAULT 0 CONSTRAINT ck_checkpoints_pinned CHECK (pinned IN (0, 1))
);
INSERT INTO checkpoints_v6 (id, project_id, name, description, trigger, commit_id, pause_reason, metadata, created_at, revision)
    SELECT id, project_id, name, description, trigger, commit_id, pause_reason, metadata, created_at, revision
    FROM checkpoints;
DROP TABLE checkpoints;
ALTER TABLE checkpoints_v6 RENAME TO checkpoints;
CREATE INDEX idx_checkpoints_project ON checkpoints(project_id, created_at DESC, id DESC);

-- A project's retention policy (no row: the defaults). A checkpoint is kept when any rule
-- keeps it, when it is pinned, or when it is the checkpoint of the project's current pause.
CREATE TABLE checkpoint_policies (
    project_id           INTEGER PRIMARY KEY NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    keep_last            INTEGER NOT NULL CONSTRAINT ck_policies_keep_last CHECK (keep_last >= 1),
    keep_within_seconds  INTEGER NOT NULL CONSTRAINT ck_policies_keep_within CHECK (keep_within_seconds >= 0),
    keep_daily_days      INTEGER NOT NULL CONSTRAINT ck_policies_keep_daily CHECK (keep_daily_days >= 0)
);
COMMIT;
PRAGMA foreign_keys = ON;
