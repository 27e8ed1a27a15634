-- codeframe schema, version 1.
-- Timestamps are TEXT in one fixed-width RFC 3339 UTC form (2026-11-28T06:51:32.123456Z), so they
-- sort as text and read the same in SQLite and PostgreSQL. CHECK constraints are named so a
-- violation reports which rule was broken.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL CONSTRAINT uq_users_name UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    -- SHA-256 of the token, hex; the token itself is never stored.
    token_hash    TEXT NOT NULL CONSTRAINT uq_api_tokens_hash UNIQUE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
);

CREATE TABLE projects (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    name                 TEXT NOT NULL CONSTRAINT uq_projects_name UNIQUE
                         CONSTRAINT ck_projects_name CHECK (length(trim(name)) BETWEEN 1 AND 100),
    description          TEXT NOT NULL DEFAULT '',
    root_path            TEXT NOT NULL,
    status               TEXT NOT NULL DEFAULT 'init'
                         CONSTRAINT ck_projects_status
                         CHECK (status IN ('init','planning','running','active','paused','completed')),
    phase                TEXT NOT NULL DEFAULT 'discovery'
                         CONSTRAINT ck_projects_phase
                         CHECK (phase IN ('discovery','planning','active','review','complete')),
    owner_id             INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    paused_at            TEXT,
    pause_reason         TEXT CONSTRAINT ck_projects_pause_reason CHECK (length(pause_reason) <= 500),
    pause_checkpoint_id  INTEGER REFERENCES checkpoints(id) ON DELETE SET NULL,
    status_before_pause  TEXT CONSTRAINT ck_projects_status_before_pause
                         CHECK (status_before_pause IN ('init','planning','running','active','completed')),
    version              INTEGER NOT NULL DEFAULT 1,
    CONSTRAINT ck_projects_paused_fields CHECK ((status = 'paused') = (paused_at IS NOT NULL))
);

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    agent_type  TEXT NOT NULL,
    provider    TEXT,
    status      TEXT NOT NULL DEFAULT 'idle'
                CONSTRAINT ck_agents_status CHECK (status IN ('idle','working','blocked','offline')),
    created_at  TEXT NOT NULL
);

CREATE TABLE project_agents (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id     INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    agent_id       TEXT NOT NULL REFERENCES agents(id) ON DELETE CASCADE,
    role           TEXT NOT NULL DEFAULT 'worker',
    assigned_at    TEXT NOT NULL,
    unassigned_at  TEXT,
    is_active      INTEGER NOT NULL DEFAULT 1 CONSTRAINT ck_project_agents_is_active CHECK (is_active IN (0, 1)),
    CONSTRAINT ck_project_agents_unassigned CHECK ((is_active = 1) = (unassigned_at IS NULL))
);
-- One active assignment per (project, agent); history rows are kept.
CREATE UNIQUE INDEX uq_project_agents_active ON project_agents(project_id, agent_id) WHERE is_active = 1;

CREATE TABLE tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    title           TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'pending'
                    CONSTRAINT ck_tasks_status
                    CHECK (status IN ('pending','assigned','in_progress','blocked','completed','failed')),
    assigned_agent  TEXT REFERENCES agents(id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL,
    completed_at    TEXT
);
CREATE INDEX idx_tasks_project ON tasks(project_id, status);

CREATE TABLE token_usage (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id          INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    agent_id            TEXT NOT NULL,
    task_id             INTEGER REFERENCES tasks(id) ON DELETE SET NULL,
    model_name          TEXT NOT NULL,
    input_tokens        INTEGER NOT NULL CONSTRAINT ck_token_usage_input CHECK (input_tokens >= 0),
    output_tokens       INTEGER NOT NULL CONSTRAINT ck_token_usage_output CHECK (output_tokens >= 0),
    estimated_cost_usd  REAL NOT NULL CONSTRAINT ck_token_usage_cost CHECK (estimated_cost_usd >= 0),
    actual_cost_usd     REAL CONSTRAINT ck_token_usage_actual_cost CHECK (actual_cost_usd >= 0),
    call_type           TEXT NOT NULL DEFAULT 'other'
                        CONSTRAINT ck_token_usage_call_type
                        CHECK (call_type IN ('task_execution','code_review','coordination','other')),
    timestamp           TEXT NOT NULL
);
CREATE INDEX idx_token_usage_project ON token_usage(project_id, timestamp);

CREATE TABLE checkpoints (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    name          TEXT NOT NULL CONSTRAINT ck_checkpoints_name CHECK (length(trim(name)) BETWEEN 1 AND 100),
    description   TEXT NOT NULL DEFAULT '' CONSTRAINT ck_checkpoints_description CHECK (length(description) <= 500),
    trigger       TEXT NOT NULL
                  CONSTRAINT ck_checkpoints_trigger CHECK (trigger IN ('manual','auto','phase_transition','pause')),
    -- Hex id of the snapshot commit in the project's private store.
    commit_id     TEXT,
    pause_reason  TEXT,
    metadata      TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX idx_checkpoints_project ON checkpoints(project_id, created_at DESC, id DESC);

CREATE TABLE flash_saves (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id           INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    agent_id             TEXT NOT NULL REFERENCES agents(id),
    tokens_before        INTEGER NOT NULL,
    tokens_after         INTEGER NOT NULL,
    items_count          INTEGER NOT NULL,
    items_archived       INTEGER NOT NULL,
    hot_items_retained   INTEGER NOT NULL,
    warm_items_retained  INTEGER NOT NULL,
    created_at           TEXT NOT NULL
);
CREATE INDEX idx_flash_saves_agent ON flash_saves(project_id, agent_id, id DESC);

CREATE TABLE context_items (
    id                      TEXT PRIMARY KEY NOT NULL,
    project_id              INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    agent_id                TEXT NOT NULL REFERENCES agents(id),
    item_type               TEXT NOT NULL
                            CONSTRAINT ck_context_items_item_type
                            CHECK (item_type IN ('TASK','CODE','ERROR','TEST_RESULT','PRD_SECTION')),
    content                 TEXT NOT NULL,
    token_count             INTEGER NOT NULL CONSTRAINT ck_context_items_token_count CHECK (token_count >= 0),
    importance_score        REAL NOT NULL
                            CONSTRAINT ck_context_items_score CHECK (importance_score BETWEEN 0.0 AND 1.0),
    tier                    TEXT NOT NULL CONSTRAINT ck_context_items_tier CHECK (tier IN ('hot','warm','cold')),
    access_count            INTEGER NOT NULL DEFAULT 0
                            CONSTRAINT ck_context_items_access_count CHECK (access_count >= 0),
    created_at              TEXT NOT NULL,
    last_accessed           TEXT NOT NULL,
    -- Archived items are kept (never deleted by a flash save or a pause) and can be brought back.
    archived_at             TEXT,
    archived_by_flash_save  INTEGER REFERENCES flash_saves(id)
);
-- The active set per agent and tier: token sums and the COLD archive read only this index.
CREATE INDEX idx_context_active ON context_items(project_id, agent_id, tier, token_count) WHERE archived_at IS NULL;
CREATE INDEX idx_context_archived ON context_items(project_id, agent_id, archived_by_flash_save)
    WHERE archived_at IS NOT NULL;
CREATE INDEX idx_context_project ON context_items(project_id, created_at, id);
