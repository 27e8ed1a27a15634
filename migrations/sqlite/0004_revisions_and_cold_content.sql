-- codeframe schema, version 4: a pause that holds the write lock for milliseconds.

-- Content lives apart from the hot columns of an item. Archiving 4,000 items then rewrites
-- ~300 small pages instead of every page holding their content (5 MB through the WAL).
CREATE TABLE context_contents (
    item_id  TEXT PRIMARY KEY NOT NULL REFERENCES context_items(id) ON DELETE CASCADE,
    content  TEXT NOT NULL
);
INSERT INTO context_contents (item_id, content) SELECT id, content FROM context_items;
ALTER TABLE context_items DROP COLUMN content;

-- A project's revision: bumped by every change to anything a checkpoint stores of it (the
-- project row, its agents and their assignments, tasks, token usage, context items). A pause
-- reads the state and writes the snapshot outside the write lock, then, under it, commits
-- only if the revision is still the one it read. `paused_revision` is the revision a pause
-- committed: a resume that finds it unchanged has nothing to restore.
--
-- Small tables bump through triggers. `context_items` does not: a row trigger would cost
-- every bulk statement (archiving thousands of items) an UPDATE per row, so each write
-- statement of the persistence layer's context module bumps once.
CREATE TABLE project_revisions (
    project_id       INTEGER PRIMARY KEY NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    revision         INTEGER NOT NULL DEFAULT 0,
    paused_revision  INTEGER
);
INSERT INTO project_revisions (project_id, revision) SELECT id, 0 FROM projects;

CREATE TRIGGER trg_projects_revision_row AFTER INSERT ON projects
BEGIN
    INSERT INTO project_revisions (project_id, revision) VALUES (NEW.id, 0);
END;
-- Every column a checkpoint stores (not the gate's lease columns).
CREATE TRIGGER trg_projects_revision AFTER UPDATE OF name, description, root_path, status, phase,
    owner_id, created_at, updated_at, paused_at, pause_reason, pause_checkpoint_id,
    status_before_pause, version, store_path ON projects
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id = NEW.id;
END;

CREATE TRIGGER trg_agents_revision AFTER UPDATE ON agents
BEGIN
    UPDATE project_revisions SET revision = revision + 1
    WHERE project_id IN (SELECT project_id FROM project_agents WHERE agent_id = NEW.id);
END;

CREATE TRIGGER trg_project_agents_revision_ins AFTER INSERT ON project_agents
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id = NEW.project_id;
END;
CREATE TRIGGER trg_project_agents_revision_upd AFTER UPDATE ON project_agents
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id IN (OLD.project_id, NEW.project_id);
END;
CREATE TRIGGER trg_project_agents_revision_del AFTER DELETE ON project_agents
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id = OLD.project_id;
END;

CREATE TRIGGER trg_tasks_revision_ins AFTER INSERT ON tasks
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id = NEW.project_id;
END;
CREATE TRIGGER trg_tasks_revision_upd AFTER UPDATE ON tasks
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id IN (OLD.project_id, NEW.project_id);
END;
CREATE TRIGGER trg_tasks_revision_del AFTER DELETE ON tasks
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id = OLD.project_id;
END;

CREATE TRIGGER trg_token_usage_revision_ins AFTER INSERT ON token_usage
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id = NEW.project_id;
END;
CREATE TRIGGER trg_token_usage_revision_upd AFTER UPDATE ON token_usage
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id IN (OLD.project_id, NEW.project_id);
END;
CREATE TRIGGER trg_token_usage_revision_del AFTER DELETE ON token_usage
BEGIN
    UPDATE project_revisions SET revision = revision + 1 WHERE project_id = OLD.project_id;
END;

-- Flash-save ids can be reserved ahead (a pause writes the archive marks into its snapshot
-- before it takes the write lock), so every flash save takes its id from this sequence.
INSERT INTO id_sequences (name, next_id) VALUES ('flash_saves', 1 + MAX(
    COALESCE((SELECT MAX(id) FROM flash_saves), 0),
    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'flash_saves'), 0)));
