//! Reading the project's working tree into blobs: `.gitignore` honoured (whether or not the
//! root is a git repository), `.git` and `.codeframe` never included.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::debug;

use crate::statcache::{Stat, StatCache};
use crate::store::{FileEntry, FileKind, Store};
use crate::{CheckpointError, Result};

/// Names never walked, at any depth: git's own data and codeframe's.
pub(crate) const EXCLUDED: [&[u8]; 2] = [b".git", b".codeframe"];

/// How a snapshot of the files went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct WalkStats {
    pub files: usize,
    pub hashed: usize,
    pub reused: usize,
}

/// A file found by the walk, with its metadata.
pub(crate) struct Found {
    pub path: Vec<u8>,
    pub abs: std::path::PathBuf,
    pub kind: FileKind,
    pub meta: std::fs::Metadata,
}

/// Lists the files and symlinks of the working tree, sorted by path.
pub(crate) fn walk(root: &Path) -> Result<Vec<Found>> {
    if !root.is_dir() {
        return Err(CheckpointError::BadRoot(root.to_path_buf()));
    }
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .ignore(false)
        .parents(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| !EXCLUDED.contains(&e.file_name().as_bytes()))
        .build();
    let mut out = Vec::new();
    for entry in walker {
        let entry = entry.map_err(|e| CheckpointError::io(root, std::io::Error::other(e.to_string())))?;
        let abs = entry.path();
        if abs == root {
            continue;
        }
        let meta = std::fs::symlink_metadata(abs).map_err(|e| CheckpointError::io(abs, e))?;
        let kind = if meta.file_type().is_symlink() {
            FileKind::Symlink
        } else if meta.is_file() {
            if meta.permissions().mode() & 0o111 != 0 { FileKind::Executable } else { FileKind::Regular }
        } else {
            continue; // directories are implied by their files; fifos and sockets are not content
        };
        let rel = abs.strip_prefix(root).map_err(|e| CheckpointError::io(abs, std::io::Error::other(e)))?;
        out.push(Found { path: rel.as_os_str().as_bytes().to_vec(), abs: abs.to_path_buf(), kind, meta });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The bytes git stores for a file: its content, or a symlink's target.
pub(crate) fn read_content(found: &Found) -> Result<Vec<u8>> {
    match found.kind {
        FileKind::Symlink => std::fs::read_link(&found.abs)
            .map(|t| t.as_os_str().as_bytes().to_vec())
            .map_err(|e| CheckpointError::io(&found.abs, e)),
        FileKind::Regular | FileKind::Executable => {
            std::fs::read(&found.abs).map_err(|e| CheckpointError::io(&found.abs, e))
        }
    }
}

/// Hashes the working tree into the store, reading only files whose stat changed since the
/// last snapshot. With `write` false, blobs are hashed but not stored (for diffs).
pub(crate) fn snapshot(store: &Store, root: &Path, write: bool) -> Result<(Vec<FileEntry>, WalkStats)> {
    let started = Instant::now();
    let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let now_secs = i64::try_from(now_secs).unwrap_or(i64::MAX);
    let cache = StatCache::load(store.path());
    let mut next = StatCache::default();
    let mut stats = WalkStats::default();
    let mut entries = Vec::new();
    for found in walk(root)? {
        let stat = Stat::of(&found.meta, found.kind);
        let cached = cache.lookup(&found.path, &stat).filter(|oid| store.has_object(oid));
        let oid = match cached {
            Some(oid) => {
                stats.reused += 1;
                oid
            }
            None => {
                stats.hashed += 1;
                let bytes = read_content(&found)?;
                if write {
                    store.write_blob(&bytes)?
                } else {
                    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, &bytes)
                        .map_err(|e| CheckpointError::store(&found.abs, e))?
                }
            }
        };
        // A file changed within the last seconds could change again within the same mtime
        // tick without its stat moving ("racy git"): such entries are not cached.
        if write && stat.mtime < now_secs - 1 {
            next.insert(found.path.clone(), stat, oid);
        }
        entries.push(FileEntry { path: found.path, kind: found.kind, oid });
    }
    stats.files = entries.len();
    if write {
        next.save(store.path())?;
    }
    debug!(
        root = %root.display(),
        files = stats.files,
        hashed = stats.hashed,
        reused = stats.reused,
        cached = next.len(),
        elapsed_ms = started.elapsed().as_millis(),
        "working tree snapshot"
    );
    Ok((entries, stats))
}
