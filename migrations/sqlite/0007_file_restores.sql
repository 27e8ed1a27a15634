-- codeframe schema, version 7: the commit marker of all-or-nothing file restores.
--
-- A restore of files swaps them into the working tree before its database transaction
-- commits, and writes a journal beside the snapshot store naming a token. The same transaction
-- inserts the token here. Whoever settles the journal afterwards (the restoring process, or
-- the next one to open the project after a crash) reads this table: the token present means
-- the transaction committed and the swap is completed; absent means it rolled back and the
-- swap is undone. The row is deleted once the journal is gone.
CREATE TABLE file_restores (
    token       TEXT PRIMARY KEY,
    project_id  INTEGER NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL
);
