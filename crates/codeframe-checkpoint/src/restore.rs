//! Comparing a checkpoint's files with the working tree, and writing them back safely.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::store::{FileEntry, FileKind, Store};
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
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Applied {
    pub written: usize,
    pub removed: usize,
}

/// Makes the working tree's files equal to the checkpoint's: validates every target and
/// checks every object first, so a refusal writes nothing; then removes files the checkpoint
/// lacks (only files the walk found: never ignored files, `.git/` or `.codeframe/`) and
/// writes each file atomically (temp file + rename).
pub(crate) fn apply(store: &Store, root: &Path, d: &Delta<'_>) -> Result<Applied> {
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
    let mut applied = Applied::default();
    for e in &d.added {
        let p = abs(root, &e.path);
        std::fs::remove_file(&p).map_err(|err| CheckpointError::io(&p, err))?;
        applied.removed += 1;
        prune_empty_dirs(root, &p);
    }
    for e in writes {
        write_file(store, root, e)?;
        applied.written += 1;
    }
    Ok(applied)
}

/// Removes now-empty parent directories of a removed file, up to (not including) the root.
fn prune_empty_dirs(root: &Path, removed: &Path) {
    let mut dir = removed.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

fn write_file(store: &Store, root: &Path, e: &FileEntry) -> Result<()> {
    let target = abs(root, &e.path);
    let parent = target.parent().unwrap_or(root);
    std::fs::create_dir_all(parent).map_err(|err| CheckpointError::io(parent, err))?;
    let name = target.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
    let mut tmp_name = b".".to_vec();
    tmp_name.extend_from_slice(&name);
    tmp_name.extend_from_slice(format!(".codeframe-restore-{}", std::process::id()).as_bytes());
    let tmp = parent.join(OsStr::from_bytes(&tmp_name));
    let bytes = store.read_blob(e.oid)?;
    let _ = std::fs::remove_file(&tmp);
    match e.kind {
        FileKind::Symlink => {
            std::os::unix::fs::symlink(OsStr::from_bytes(&bytes), &tmp)
                .map_err(|err| CheckpointError::io(&tmp, err))?;
        }
        FileKind::Regular | FileKind::Executable => {
            std::fs::write(&tmp, &bytes).map_err(|err| CheckpointError::io(&tmp, err))?;
            let mode = if e.kind == FileKind::Executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
                .map_err(|err| CheckpointError::io(&tmp, err))?;
        }
    }
    std::fs::rename(&tmp, &target).map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        CheckpointError::io(&target, err)
    })
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
