//! File access that cannot leave the project root.
//!
//! Code running in a project tree may swap any directory or file for a symbolic link (or a
//! FIFO) at any moment. So nothing here resolves a path the usual way: every path is opened
//! component by component from a directory handle of the root, with `O_NOFOLLOW` on each
//! component (rustix's `openat`). A link met anywhere stops the operation instead of being
//! followed, which is what `openat2`'s `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` would give
//! (relative paths here never hold `..`: [`crate::paths`] refuses them), without needing
//! Linux 5.6 or a seccomp profile that allows `openat2`, and without a new dependency.
//!
//! Reads open without blocking and keep only regular files (a FIFO or a device is not
//! content); a restore writes new contents into a staging folder first and renames them into
//! place (see [`crate::journal`]).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::{CheckpointError, Result};

/// A directory handle on the project root.
#[derive(Debug)]
pub(crate) struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// What opening a path of the tree for reading found.
#[derive(Debug)]
pub(crate) enum Found {
    /// A regular file, opened, with its status.
    File(File, rustix::fs::Stat),
    /// A symbolic link, and its target.
    Symlink(Vec<u8>),
    /// Nothing there any more, or something that is not content (a FIFO, a socket, a device,
    /// a directory), or a path that now goes through a link: left out.
    Nothing,
}

fn errno_io(path: &Path, e: Errno) -> CheckpointError {
    CheckpointError::io(path, std::io::Error::from(e))
}

/// Splits a relative path into its directory components and its last name.
fn split(rel: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut parts: Vec<&[u8]> = rel.split(|b| *b == b'/').filter(|p| !p.is_empty()).collect();
    let name = parts.pop().unwrap_or_default();
    (parts, name)
}

/// 32 unpredictable hex digits (a restore's token, naming its staging folder).
pub(crate) fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| CheckpointError::io(Path::new("."), std::io::Error::other(e.to_string())))?;
    let mut name = String::with_capacity(32);
    for b in bytes {
        let _ = write!(name, "{b:02x}");
    }
    Ok(name)
}

impl Root {
    /// Opens a handle on the root directory (its own path is trusted: it is the project's).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| errno_io(path, e))?;
        Ok(Self { fd, path: path.to_path_buf() })
    }

    /// Where a message should say `rel` is.
    pub(crate) fn shown(&self, rel: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(rel))
    }

    /// Opens the directory made of `parts` beneath the root, never through a link; creates
    /// missing directories when `create`. `Ok(None)` when a part is missing (and not created).
    fn dir(&self, rel: &[u8], parts: &[&[u8]], create: bool) -> Result<Option<OwnedFd>> {
        let mut current: Option<OwnedFd> = None;
        for part in parts {
            let name = OsStr::from_bytes(part);
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let at = current.as_ref().map_or(self.fd.as_fd(), |fd| fd.as_fd());
            let opened = match rustix::fs::openat(at, name, flags, Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(at, name, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(errno_io(&self.shown(rel), e)),
                    }
                    rustix::fs::openat(at, name, flags, Mode::empty())
                }
                other => other,
            };
            match opened {
                Ok(fd) => current = Some(fd),
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(CheckpointError::unsafe_path(
                        rel,
                        "a directory on its way is a symbolic link or a file; refusing to go through it",
                    ));
                }
                Err(e) => return Err(errno_io(&self.shown(rel), e)),
            }
        }
        Ok(Some(
            current.unwrap_or(
                rustix::fs::openat(
                    &self.fd,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno_io(&self.path, e))?,
            ),
        ))
    }

    /// Opens `rel` for reading without following a link anywhere and without blocking.
    pub(crate) fn read(&self, rel: &[u8]) -> Result<Found> {
        let (parts, name) = split(rel);
        let parent = match self.dir(rel, &parts, false) {
            Ok(Some(fd)) => fd,
            // Swapped for a link or removed since it was listed: not part of this snapshot.
            Ok(None) | Err(CheckpointError::UnsafePath { .. }) => return Ok(Found::Nothing),
            Err(e) => return Err(e),
        };
        let name = OsStr::from_bytes(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        match rustix::fs::openat(&parent, name, flags, Mode::empty()) {
            Ok(fd) => {
                let stat = rustix::fs::fstat(&fd).map_err(|e| errno_io(&self.shown(rel), e))?;
                if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
                    Ok(Found::File(File::from(fd), stat))
                } else {
                    Ok(Found::Nothing)
                }
            }
            // O_NOFOLLOW on a link: read the link itself.
            Err(Errno::LOOP) => match rustix::fs::readlinkat(&parent, name, Vec::new()) {
                Ok(target) => Ok(Found::Symlink(target.into_bytes())),
                Err(Errno::NOENT | Errno::INVAL) => Ok(Found::Nothing),
                Err(e) => Err(errno_io(&self.shown(rel), e)),
            },
            // Gone, or a path that stopped being one, or a socket: not content. (A file that
            // cannot be read is an error, as it always was: it must not vanish silently.)
            Err(Errno::NOENT | Errno::NOTDIR | Errno::NXIO) => Ok(Found::Nothing),
            Err(e) => Err(errno_io(&self.shown(rel), e)),
        }
    }

    /// The directory holding `rel` (opened never through a link, created when `create`) and
    /// the last name of `rel`. `Ok(None)` when a directory is missing and not created.
    pub(crate) fn parent<'a>(&self, rel: &'a [u8], create: bool) -> Result<Option<(OwnedFd, &'a [u8])>> {
        let (parts, name) = split(rel);
        Ok(self.dir(rel, &parts, create)?.map(|fd| (fd, name)))
    }

    /// Opens the directory `rel` beneath the root (created when `create`), never through a link.
    pub(crate) fn open_dir(&self, rel: &[u8], create: bool) -> Result<Option<OwnedFd>> {
        let parts: Vec<&[u8]> = rel.split(|b| *b == b'/').filter(|p| !p.is_empty()).collect();
        self.dir(rel, &parts, create)
    }

    /// How many of the directories holding `rel`, innermost first, are not directories on disk
    /// (missing, or a file that a restore removes first): the ones writing `rel` creates.
    pub(crate) fn missing_dirs(&self, rel: &[u8]) -> usize {
        let (parts, _) = split(rel);
        (0..=parts.len())
            .rev()
            .find(|depth| matches!(self.dir(rel, &parts[..*depth], false), Ok(Some(_))))
            .map_or(parts.len(), |depth| parts.len() - depth)
    }

    /// Removes the directories holding `rel`, innermost first, while they are empty, at most
    /// `limit` of them; never the root.
    pub(crate) fn remove_empty_dirs(&self, rel: &[u8], limit: usize) {
        let (parts, _) = split(rel);
        for depth in (0..parts.len()).rev().take(limit) {
            let Ok(Some(dir)) = self.dir(rel, &parts[..depth], false) else { break };
            if rustix::fs::unlinkat(&dir, OsStr::from_bytes(parts[depth]), AtFlags::REMOVEDIR).is_err() {
                break; // not empty (or gone): stop climbing
            }
        }
    }
}

/// The permission bits a restored file gets: those of the regular file it replaces in `dir`
/// (0600 stays 0600), else 0644, with the executable bits following `executable`.
pub(crate) fn restored_mode(dir: Option<&OwnedFd>, name: &[u8], executable: bool) -> u32 {
    let existing = dir.and_then(|dir| {
        match rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                Some(st.st_mode & 0o7777)
            }
            _ => None,
        }
    });
    let base = existing.unwrap_or(0o644);
    if executable { base | ((base & 0o444) >> 2) } else { base & !0o111 }
}

/// Creates `name` in `dir` (it must not exist): a regular file holding `bytes` with the
/// permission bits `mode`, or a symbolic link to `bytes`. Flushed to disk when `durable`.
/// `shown` names it in errors.
pub(crate) fn create_at(
    dir: &OwnedFd,
    name: &[u8],
    bytes: &[u8],
    kind: WriteKind,
    mode: u32,
    durable: bool,
    shown: &Path,
) -> Result<()> {
    use std::io::Write as _;
    let name = OsStr::from_bytes(name);
    match kind {
        WriteKind::Symlink => {
            rustix::fs::symlinkat(OsStr::from_bytes(bytes), dir, name).map_err(|e| errno_io(shown, e))
        }
        WriteKind::File { .. } => {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600))
                .map_err(|e| errno_io(shown, e))?;
            let written = (|| {
                let mut file = File::from(fd);
                file.write_all(bytes)?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(std::io::Error::from)?;
                if durable {
                    file.sync_all()?;
                }
                Ok::<(), std::io::Error>(())
            })();
            written.map_err(|e| {
                let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
                CheckpointError::io(shown, e)
            })
        }
    }
}

/// Renames `from` in `from_dir` to `to` in `to_dir`. `Ok(false)` when `from` is not there.
pub(crate) fn rename_at(
    from_dir: &OwnedFd,
    from: &[u8],
    to_dir: &OwnedFd,
    to: &[u8],
    shown: &Path,
) -> Result<bool> {
    match rustix::fs::renameat(from_dir, OsStr::from_bytes(from), to_dir, OsStr::from_bytes(to)) {
        Ok(()) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(Errno::XDEV) => Err(CheckpointError::io(
            shown,
            std::io::Error::other(
                "on another filesystem than the project root's .codeframe folder; cannot swap it in atomically",
            ),
        )),
        Err(e) => Err(errno_io(shown, e)),
    }
}

/// Whether `name` exists in `dir` (a link is not followed).
pub(crate) fn exists_at(dir: &OwnedFd, name: &[u8]) -> bool {
    rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

/// Removes `name` from `dir` (absent is fine).
pub(crate) fn unlink_at(dir: &OwnedFd, name: &[u8], shown: &Path) -> Result<()> {
    match rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(errno_io(shown, e)),
    }
}

/// Flushes a directory opened as `dir`.
pub(crate) fn sync_fd(dir: &OwnedFd, shown: &Path) -> Result<()> {
    rustix::fs::fsync(dir).map_err(|e| errno_io(shown, e))
}

/// Removes the directory `name` of `dir` and the files in it (one level: a staging folder).
/// Absent is fine.
pub(crate) fn remove_flat_dir(dir: &OwnedFd, name: &[u8], shown: &Path) -> Result<()> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let inner = match rustix::fs::openat(dir, OsStr::from_bytes(name), flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(errno_io(shown, e)),
    };
    for entry in names_in(&inner, shown)? {
        unlink_at(&inner, &entry, shown)?;
    }
    match rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(errno_io(shown, e)),
    }
}

/// The names in the directory `dir` (not `.` and `..`).
pub(crate) fn names_in(dir: &OwnedFd, shown: &Path) -> Result<Vec<Vec<u8>>> {
    let mut reader = rustix::fs::Dir::read_from(dir).map_err(|e| errno_io(shown, e))?;
    let mut names = Vec::new();
    while let Some(entry) = reader.read() {
        let entry = entry.map_err(|e| errno_io(shown, e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    Ok(names)
}

/// What [`Root::write`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteKind {
    /// A regular file.
    File {
        /// With its executable bits set.
        executable: bool,
    },
    /// A symbolic link (the bytes are its target).
    Symlink,
}

/// Flushes a file's data and the directory entry naming it.
pub(crate) fn sync_file_and_dir(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| CheckpointError::io(path, e))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Flushes a directory (its entries: files created, renamed or removed in it).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| CheckpointError::io(dir, e))
}
