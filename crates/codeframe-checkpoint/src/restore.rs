//! Comparing a checkpoint's files with the working tree, and writing them back safely.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fs::Root;
use crate::journal::{self, Journal, RestoreLock};
use crate::store::{FileEntry, Store};
use crate::{CheckpointError, Result};

/// Differences between a checkpoint's files and the working tree.
#[derive(Debug, Default)]
pub(crate) struct Delta<'a> {
    /// In the working tree only (restore removes them).
    pub added: Vec<&'a FileEntry>,
    /// In both, with other content or kind (restore rewrites them).
    pub modified: Vec<(&'a FileEntry, &'a FileEntry)>,
    /// In the checkpoint only (restore writes them).
    pub deleted: Vec<&'a FileEntry>,
}

pub(crate) fn delta<'a>(checkpoint: &'a [FileEntry], current: &'a [FileEntry]) -> Delta<'a> {
    let cp: BTreeMap<&[u8], &FileEntry> = checkpoint.iter().map(|e| (e.path.as_slice(), e)).collect();
    let now: BTreeMap<&[u8], &FileEntry> = current.iter().map(|e| (e.path.as_slice(), e)).collect();
    let mut d = Delta::default();
    for (path, c) in &now {
        match cp.get(path) {
            None => d.added.push(c),
            Some(old) if old.oid != c.oid || old.kind != c.kind => d.modified.push((old, c)),
            Some(_) => {}
        }
    }
    d.deleted = cp.iter().filter(|(p, _)| !now.contains_key(*p)).map(|(_, e)| *e).collect();
    d
}

fn abs(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(rel))
}

/// Checks that writing `rel` never goes through a symlink or over something that is not
/// ours to replace. `removing` are the paths the restore deletes first.
fn check_target(root: &Path, rel: &[u8], removing: &BTreeMap<&[u8], ()>) -> Result<()> {
    let mut end = 0;
    while let Some(i) = rel[end..].iter().position(|b| *b == b'/') {
        let prefix = &rel[..end + i];
        let p = abs(root, prefix);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(CheckpointError::unsafe_path(
                    rel,
                    "its directory is a symlink on disk; refusing to write through it",
                ));
            }
            Ok(m) if !m.is_dir() && !removing.contains_key(prefix) => {
                return Err(CheckpointError::unsafe_path(
                    rel,
                    "a file that is not part of the snapshot is in the way",
                ));
            }
            _ => {}
        }
        end += i + 1;
    }
    let p = abs(root, rel);
    if let Ok(m) = std::fs::symlink_metadata(&p)
        && m.is_dir()
    {
        return Err(CheckpointError::unsafe_path(rel, "a directory is in the way"));
    }
    Ok(())
}

/// What applying files did.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub written: usize,
    pub removed: usize,
    /// The swap to settle once the transaction is decided (`None`: nothing changed).
    pub journal: Option<Journal>,
}

/// Makes the working tree's files equal to the checkpoint's, all or nothing: validates every
/// target and checks every object first, so a refusal writes nothing; stages every new content
/// in codeframe's folder; then swaps them in under a journal (see [`crate::journal`]). Removals
/// are only of files the walk found: never ignored files, `.git/` or `.codeframe/`. Every
/// rename goes through a handle on the root without following links (see [`crate::fs`]): a
/// directory swapped for a link after the checks cannot redirect a write outside the root; it
/// makes the restore fail, and undo.
pub(crate) fn apply(store: &Store, root: &Path, lock: &RestoreLock, d: &Delta<'_>) -> Result<Applied> {
    let removing: BTreeMap<&[u8], ()> = d.added.iter().map(|e| (e.path.as_slice(), ())).collect();
    let writes: Vec<&FileEntry> =
        d.modified.iter().map(|(old, _)| *old).chain(d.deleted.iter().copied()).collect();
    for e in &writes {
        check_target(root, &e.path, &removing)?;
        if !store.has_object(&e.oid) {
            return Err(CheckpointError::Store {
                path: store.path().to_path_buf(),
                message: format!("blob {} of {} is missing", e.oid, String::from_utf8_lossy(&e.path)),
            });
        }
    }
    let handle = Root::open(root)?;
    let Some(journal) = journal::stage(store, &handle, d, store.durable())? else {
        return Ok(Applied::default());
    };
    journal::swap_in(&handle, lock, &journal, store.durable())?;
    Ok(Applied { written: writes.len(), removed: d.added.len(), journal: Some(journal) })
}

/// A unified diff of two texts, or `None` when either side is not text.
pub(crate) fn unified(path: &str, old: &[u8], new: &[u8]) -> Option<String> {
    let is_text = |b: &[u8]| !b.contains(&0) && std::str::from_utf8(b).is_ok();
    if !is_text(old) || !is_text(new) {
        return None;
    }
    let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
    Some(diff.unified_diff().context_radius(3).header(&format!("a/{path}"), &format!("b/{path}")).to_string())
}
