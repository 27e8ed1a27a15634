//! All-or-nothing file restores: stage, journal, swap, then settle by the database.
//!
//! 1. **Stage.** Every new content is written into a staging folder,
//!    `<root>/.codeframe/restore-<token>/new-<i>`. An error here removes the folder: the tree is
//!    untouched.
//! 2. **Journal.** `<store>/codeframe-restore.json` names the token and each entry (its path,
//!    written or removed, whether it existed, how many of its directories writing it creates),
//!    written atomically and, under full durability, flushed.
//! 3. **Swap.** In journal order (removals, then writes), each existing target is renamed aside
//!    to `bak-<i>` and each new content renamed into place. An error here undoes the swap at
//!    once and removes the journal.
//! 4. The caller's transaction records the token (`file_restores`) and commits or rolls back.
//! 5. **Settle.** Token recorded: the swap is completed (backups and emptied directories
//!    removed). Not recorded: it is undone (backups renamed back, new files and the directories
//!    made for them removed). Then the staging folder, the journal and the token row go.
//!
//! A lock file beside the journal (`codeframe-restore.lock`, an advisory `flock`) is held from
//! staging to settling. Whoever finds a journal and can take the lock knows the process that
//! wrote it is gone (the kernel releases a dead process's locks) and settles it; whoever cannot
//! take it leaves it alone. Every settling step looks at what is on disk first, so settling
//! again after a crash during settling finishes the job.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::Mode;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::fs::{self, Root, WriteKind};
use crate::restore::Delta;
use crate::statcache::{hex, unhex};
use crate::store::{FileKind, Store};
use crate::{CheckpointError, Result};

/// The lock file, in the snapshot store.
pub(crate) const LOCK_FILE: &str = "codeframe-restore.lock";
/// The journal, in the snapshot store.
pub(crate) const JOURNAL_FILE: &str = "codeframe-restore.json";
/// codeframe's own folder in the tree; staging folders are made in it.
const OWN_DIR: &[u8] = b".codeframe";
const STAGING_PREFIX: &str = "restore-";

/// A file restore swapped in (or being swapped in) and not yet settled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    /// Names the staging folder and the commit marker (`file_restores.token`).
    pub token: String,
    /// In swap order: removals first, then writes.
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// The path in the tree, in hex (paths are bytes).
    path: String,
    /// New content is staged as `new-<i>`; false: the file is removed.
    write: bool,
    /// The target existed when staged: the swap moves it aside as `bak-<i>`.
    existed: bool,
    /// How many of the path's directories, innermost first, writing it creates.
    new_dirs: usize,
}

impl Journal {
    /// How many files the restore writes or removes.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn staging_name(&self) -> Vec<u8> {
        format!("{STAGING_PREFIX}{}", self.token).into_bytes()
    }
}

impl Entry {
    fn rel(&self) -> Result<Vec<u8>> {
        unhex(&self.path).ok_or_else(|| CheckpointError::State {
            file: JOURNAL_FILE.into(),
            message: format!("entry path {:?} is not hex", self.path),
        })
    }
}

fn staged(i: usize) -> Vec<u8> {
    format!("new-{i}").into_bytes()
}

fn backup(i: usize) -> Vec<u8> {
    format!("bak-{i}").into_bytes()
}

/// The lock that makes one process at a time stage, swap or settle a project's files.
#[derive(Debug)]
pub(crate) struct RestoreLock {
    file: File,
    store: PathBuf,
}

impl RestoreLock {
    /// Takes the lock of the store at `store`; `Ok(None)` when another restore holds it.
    pub(crate) fn try_take(store: &Path) -> Result<Option<Self>> {
        let path = store.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CheckpointError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { file, store: store.to_path_buf() })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(CheckpointError::io(&path, e)),
        }
    }

    fn journal_path(&self) -> PathBuf {
        self.store.join(JOURNAL_FILE)
    }

    /// The journal of a restore that was not settled, if any.
    pub(crate) fn journal(&self) -> Result<Option<Journal>> {
        let path = self.journal_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| CheckpointError::State {
                file: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CheckpointError::io(&path, e)),
        }
    }

    fn write_journal(&self, journal: &Journal, durable: bool) -> Result<()> {
        let path = self.journal_path();
        let tmp = self.store.join(format!("{JOURNAL_FILE}.tmp"));
        let bytes = serde_json::to_vec(journal)
            .map_err(|e| CheckpointError::State { file: JOURNAL_FILE.into(), message: e.to_string() })?;
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            if durable {
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)
        })();
        written.map_err(|e| CheckpointError::io(&path, e))?;
        if durable {
            fs::sync_dir(&self.store)?;
        }
        Ok(())
    }

    fn remove_journal(&self, durable: bool) -> Result<()> {
        let path = self.journal_path();
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CheckpointError::io(&path, e)),
        }
        if durable {
            fs::sync_dir(&self.store)?;
        }
        Ok(())
    }
}

impl Drop for RestoreLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// codeframe's own folder in the tree, made (with a `.gitignore` hiding it from the user's
/// `git status`) when missing.
fn own_dir(root: &Root) -> Result<OwnedFd> {
    let dir = root
        .open_dir(OWN_DIR, true)?
        .ok_or_else(|| CheckpointError::unsafe_path(OWN_DIR, "codeframe's folder cannot be created"))?;
    if !fs::exists_at(&dir, b".gitignore") {
        let body = crate::store::OWN_DIR_GITIGNORE.as_bytes();
        let shown = root.shown(b".codeframe/.gitignore");
        match fs::create_at(
            &dir,
            b".gitignore",
            body,
            WriteKind::File { executable: false },
            0o644,
            false,
            &shown,
        ) {
            Ok(()) => {}
            // Written by another process meanwhile.
            Err(_) if fs::exists_at(&dir, b".gitignore") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

fn open_sub(dir: &OwnedFd, name: &[u8], shown: &Path) -> Result<Option<OwnedFd>> {
    use rustix::fs::OFlags;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, OsStr::from_bytes(name), flags, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(CheckpointError::io(shown, std::io::Error::from(e))),
    }
}

/// Writes every new content of `d` into a new staging folder. An error removes the folder and
/// leaves the tree as it was. `None` when `d` changes nothing.
pub(crate) fn stage(store: &Store, root: &Root, d: &Delta<'_>, durable: bool) -> Result<Option<Journal>> {
    if d.added.is_empty() && d.modified.is_empty() && d.deleted.is_empty() {
        return Ok(None);
    }
    let token = fs::random_hex()?;
    let mut journal = Journal { token, entries: Vec::new() };
    let own = own_dir(root)?;
    let name = journal.staging_name();
    let shown = root.shown(&[OWN_DIR, b"/", &name].concat());
    rustix::fs::mkdirat(&own, OsStr::from_bytes(&name), Mode::from_raw_mode(0o700))
        .map_err(|e| CheckpointError::io(&shown, std::io::Error::from(e)))?;
    let staged_all = (|| {
        let sdir = open_sub(&own, &name, &shown)?
            .ok_or_else(|| CheckpointError::io(&shown, std::io::ErrorKind::NotFound.into()))?;
        for e in &d.added {
            journal.entries.push(Entry { path: hex(&e.path), write: false, existed: true, new_dirs: 0 });
        }
        let writes = d.modified.iter().map(|(old, _)| *old).chain(d.deleted.iter().copied());
        for e in writes {
            let i = journal.entries.len();
            let bytes = store.read_blob(e.oid)?;
            // A file in the way of a directory (removed first) is no parent.
            let parent = root.parent(&e.path, false).ok().flatten();
            let target = parent.as_ref().map(|(dir, name)| (dir, *name));
            let existed = target.is_some_and(|(dir, name)| fs::exists_at(dir, name));
            let (kind, executable) = match e.kind {
                FileKind::Symlink => (WriteKind::Symlink, false),
                FileKind::Executable => (WriteKind::File { executable: true }, true),
                FileKind::Regular => (WriteKind::File { executable: false }, false),
            };
            let last = e.path.rsplit(|b| *b == b'/').next().unwrap_or_default();
            let mode = fs::restored_mode(target.map(|(dir, _)| dir), last, executable);
            fs::create_at(&sdir, &staged(i), &bytes, kind, mode, durable, &root.shown(&e.path))?;
            let new_dirs = root.missing_dirs(&e.path);
            journal.entries.push(Entry { path: hex(&e.path), write: true, existed, new_dirs });
        }
        if durable {
            fs::sync_fd(&sdir, &shown)?;
        }
        Ok(())
    })();
    if let Err(e) = staged_all {
        if let Err(cleanup) = fs::remove_flat_dir(&own, &name, &shown) {
            warn!(error = %cleanup, "cannot remove a staging folder (the next restore will)");
        }
        return Err(e);
    }
    Ok(Some(journal))
}

/// Records `journal` and swaps its files in. An error undoes what was swapped and removes the
/// journal (the tree is as it was), or, when even that fails, leaves the journal for the next
/// settle.
pub(crate) fn swap_in(root: &Root, lock: &RestoreLock, journal: &Journal, durable: bool) -> Result<()> {
    lock.write_journal(journal, durable)?;
    let swapped = swap(root, journal, durable);
    if let Err(e) = swapped {
        warn!(token = %journal.token, error = %e, "file restore failed during the swap; undoing it");
        settle(root, lock, journal, false, durable)?;
        return Err(e);
    }
    Ok(())
}

fn staging(root: &Root, journal: &Journal) -> Result<Option<(OwnedFd, OwnedFd, PathBuf)>> {
    let Some(own) = root.open_dir(OWN_DIR, false)? else { return Ok(None) };
    let name = journal.staging_name();
    let shown = root.shown(&[OWN_DIR, b"/", &name].concat());
    Ok(open_sub(&own, &name, &shown)?.map(|sdir| (own, sdir, shown)))
}

fn swap(root: &Root, journal: &Journal, durable: bool) -> Result<()> {
    let (_, sdir, staging_shown) = staging(root, journal)?
        .ok_or_else(|| CheckpointError::io(root.shown(OWN_DIR), std::io::ErrorKind::NotFound.into()))?;
    // The fail point comes before each rename (`files::during_swap`).
    let rename = |from_dir: &OwnedFd, from: &[u8], to_dir: &OwnedFd, to: &[u8], shown: &Path| {
        crate::failpoints::failpoint!("files::during_swap");
        fs::rename_at(from_dir, from, to_dir, to, shown)
    };
    for (i, e) in journal.entries.iter().enumerate() {
        let rel = e.rel()?;
        let shown = root.shown(&rel);
        if e.write {
            let (dir, name) = root
                .parent(&rel, true)?
                .ok_or_else(|| CheckpointError::unsafe_path(&rel, "its directory cannot be created"))?;
            if e.existed {
                rename(&dir, name, &sdir, &backup(i), &shown)?;
            }
            if !rename(&sdir, &staged(i), &dir, name, &shown)? {
                return Err(CheckpointError::io(
                    &shown,
                    std::io::Error::other("its staged content vanished"),
                ));
            }
            if durable {
                fs::sync_fd(&dir, &shown)?;
            }
        } else if let Some((dir, name)) = root.parent(&rel, false)? {
            rename(&dir, name, &sdir, &backup(i), &shown)?;
            if durable {
                fs::sync_fd(&dir, &shown)?;
            }
        }
    }
    if durable {
        fs::sync_fd(&sdir, &staging_shown)?;
    }
    crate::failpoints::failpoint!("files::after_swap");
    Ok(())
}

/// Completes (`committed`) or undoes the swap of `journal`, then removes its staging folder and
/// the journal. Safe to run again after a crash in the middle: each step checks the disk first.
pub(crate) fn settle(
    root: &Root,
    lock: &RestoreLock,
    journal: &Journal,
    committed: bool,
    durable: bool,
) -> Result<()> {
    // No staging folder: settled already (only the journal was left).
    if let Some((own, sdir, shown)) = staging(root, journal)? {
        if committed {
            complete(root, &sdir, journal)?;
        } else {
            undo(root, &sdir, journal)?;
        }
        fs::remove_flat_dir(&own, &journal.staging_name(), &shown)?;
        if durable {
            fs::sync_fd(&own, &shown)?;
        }
    }
    lock.remove_journal(durable)?;
    debug!(token = %journal.token, committed, files = journal.len(), "file restore settled");
    Ok(())
}

fn complete(root: &Root, sdir: &OwnedFd, journal: &Journal) -> Result<()> {
    for (i, e) in journal.entries.iter().enumerate() {
        let rel = e.rel()?;
        let shown = root.shown(&rel);
        if e.write {
            if fs::exists_at(sdir, &staged(i)) {
                let (dir, name) = root
                    .parent(&rel, true)?
                    .ok_or_else(|| CheckpointError::unsafe_path(&rel, "its directory cannot be created"))?;
                if e.existed && !fs::exists_at(sdir, &backup(i)) {
                    fs::rename_at(&dir, name, sdir, &backup(i), &shown)?;
                }
                fs::rename_at(sdir, &staged(i), &dir, name, &shown)?;
            }
        } else if !fs::exists_at(sdir, &backup(i))
            && let Some((dir, name)) = root.parent(&rel, false)?
        {
            fs::rename_at(&dir, name, sdir, &backup(i), &shown)?;
        }
    }
    // Directories the removals emptied go, as a removal always did.
    for e in journal.entries.iter().filter(|e| !e.write) {
        root.remove_empty_dirs(&e.rel()?, usize::MAX);
    }
    Ok(())
}

fn undo(root: &Root, sdir: &OwnedFd, journal: &Journal) -> Result<()> {
    for (i, e) in journal.entries.iter().enumerate().rev() {
        let rel = e.rel()?;
        let shown = root.shown(&rel);
        let backed_up = fs::exists_at(sdir, &backup(i));
        // Staged content no longer staged is in place: take it out.
        if e.write && !fs::exists_at(sdir, &staged(i)) {
            if let Some((dir, name)) = root.parent(&rel, false).ok().flatten() {
                fs::unlink_at(&dir, name, &shown)?;
            }
            if !backed_up {
                root.remove_empty_dirs(&rel, e.new_dirs);
            }
        }
        if backed_up {
            let (dir, name) = root
                .parent(&rel, true)?
                .ok_or_else(|| CheckpointError::unsafe_path(&rel, "its directory cannot be created"))?;
            fs::rename_at(sdir, &backup(i), &dir, name, &shown)?;
        }
    }
    Ok(())
}

/// Removes staging folders no journal names (left by a process that died while staging).
/// Call it holding the lock, with no journal pending.
pub(crate) fn sweep(root: &Root) -> Result<usize> {
    let Some(own) = root.open_dir(OWN_DIR, false)? else { return Ok(0) };
    let shown = root.shown(OWN_DIR);
    let mut removed = 0;
    for name in fs::names_in(&own, &shown)? {
        if name.starts_with(STAGING_PREFIX.as_bytes()) {
            fs::remove_flat_dir(&own, &name, &root.shown(&[OWN_DIR, b"/", &name].concat()))?;
            removed += 1;
        }
    }
    if removed > 0 {
        debug!(removed, "removed staging folders of restores that never swapped");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_any_bytes() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).as_deref(), Some(&bytes[..]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
