-- codeframe schema, version 3: a server safe for several users.

-- Tokens may expire; a revoked token is deleted (its hash is gone, so it matches nothing).
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;

-- Where a project's snapshot store lives, when not in `<root>/.codeframe/snapshots.git`: a
-- server keeps the stores of the projects it creates under its own home, out of reach of the
-- code running in the project trees.
ALTER TABLE projects ADD COLUMN store_path TEXT;
