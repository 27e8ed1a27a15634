-- codeframe schema, version 5: snapshots that rewrite only the context that changed.

-- The project revision at which each item was last written (every write statement of the
-- persistence layer's context module sets it). Items written after a checkpoint's revision
-- are the only ones a later snapshot must read again.
ALTER TABLE context_items ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;

-- The last revision at which items of the project were deleted: a snapshot never builds on a
-- checkpoint older than a deletion.
ALTER TABLE project_revisions ADD COLUMN deleted_revision INTEGER NOT NULL DEFAULT 0;

-- The project revision a checkpoint's snapshot is exact at (NULL: unknown, never a base for
-- an incremental snapshot).
ALTER TABLE checkpoints ADD COLUMN revision INTEGER;

-- The items of one id range of a project (what an incremental snapshot and a resume read).
-- `rev` has no index on purpose: every archived row would pay for it inside the pause's write
-- transaction, while finding the items written since a revision is a scan of the project's
-- rows done outside it.
CREATE INDEX idx_context_project_id ON context_items(project_id, id);
