//! Backups of a home's database, and putting one back.
//!
//! A backup is a consistent copy of the database taken online (`VACUUM INTO`): servers and
//! command lines keep writing meanwhile. The snapshot stores (`.codeframe/snapshots.git` in
//! project trees, `stores/` in a server's home) are append-only object stores: copy them after
//! the database and every checkpoint the copy names has its objects.

use std::path::{Path, PathBuf};

use codeframe_persistence::{Db, schema_version, settle_unused};
use tracing::{info, warn};

use crate::{CoreError, ProjectService, Result};

/// What [`restore_database`] did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct RestoredDatabase {
    /// The database file now holding the backup.
    pub database: PathBuf,
    /// Where the database it replaced was moved (kept, never deleted); `None` if there was none.
    pub replaced: Option<PathBuf>,
    /// The schema version after migrating the backup (a backup of an older version is upgraded).
    pub schema_version: i64,
}

impl ProjectService {
    /// Writes a consistent copy of the whole database to `target`, while others keep writing.
    /// Refuses a `target` that exists.
    pub async fn backup_to(&self, target: &Path) -> Result<u64> {
        if target.exists() {
            return Err(CoreError::FileExists(target.display().to_string()));
        }
        self.inner.db.backup_to(target).await?;
        let bytes = std::fs::metadata(target).map(|m| m.len()).map_err(|e| io(target, &e))?;
        Ok(bytes)
    }
}

fn io(path: &Path, e: &std::io::Error) -> CoreError {
    CoreError::Internal(format!("{}: {e}", path.display()))
}

/// Puts the backup `backup` in place of the database file `database` (whose process must all be
/// stopped: [`codeframe_persistence::DbError::InUse`] otherwise). The backup file is not
/// changed: a copy is checked (integrity, schema — an older one is migrated, a newer one
/// refused) before anything is replaced, and the replaced database is kept beside it as
/// `<name>.replaced-<unix time>`. Any refusal leaves the home as it was.
pub async fn restore_database(database: &Path, backup: &Path) -> Result<RestoredDatabase> {
    if !backup.is_file() {
        return Err(CoreError::NotFound { entity: "backup", id: backup.display().to_string() });
    }
    let staging = with_suffix(database, ".restoring");
    std::fs::copy(backup, &staging).map_err(|e| io(&staging, &e))?;
    let checked = check_copy(&staging).await;
    if let Err(e) = checked {
        discard(&staging);
        return Err(e);
    }
    let replaced = if database.exists() {
        if let Err(e) = settle_unused(database).await {
            discard(&staging);
            return Err(e.into());
        }
        let unix = time::OffsetDateTime::now_utc().unix_timestamp();
        let aside = with_suffix(database, &format!(".replaced-{unix}"));
        std::fs::rename(database, &aside).map_err(|e| io(database, &e))?;
        // Folded into the file by `settle_unused`: empty, and they belong to the old file.
        for side in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(with_suffix(database, side));
        }
        Some(aside)
    } else {
        None
    };
    std::fs::rename(&staging, database).map_err(|e| io(database, &e))?;
    discard(&staging); // its leftover -wal/-shm, if SQLite left any
    if let Some(dir) = database.parent() {
        // The renames survive a power loss.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    info!(database = %database.display(), backup = %backup.display(), replaced = ?replaced, "database restored from a backup");
    Ok(RestoredDatabase { database: database.to_owned(), replaced, schema_version: schema_version() })
}

/// Opens the staged copy (migrating it), checks its integrity, and closes it with its WAL
/// folded in.
async fn check_copy(staging: &Path) -> Result<()> {
    let location = staging.to_string_lossy().into_owned();
    let db = Db::open(&location).await?;
    let report = db.integrity_check().await?;
    db.close().await;
    if report != ["ok"] {
        return Err(CoreError::Internal(format!("the backup is damaged: {}", report.join("; "))));
    }
    settle_unused(staging).await?;
    Ok(())
}

fn discard(staging: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let p = with_suffix(staging, suffix);
        if p.exists()
            && let Err(e) = std::fs::remove_file(&p)
        {
            warn!(path = %p.display(), error = %e, "cannot remove a staging file");
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
