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
//! content); writes go to a temporary file with an unpredictable name in the same directory,
//! then are renamed over the target.

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

/// An unpredictable name for a temporary file: `.cf-` and 32 hex digits (short, so it fits
/// beside a name of the filesystem's full length).
fn temp_name() -> Result<Vec<u8>> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| CheckpointError::io(Path::new("."), std::io::Error::other(e.to_string())))?;
    let mut name = String::from(".cf-");
    for b in bytes {
        let _ = write!(name, "{b:02x}");
    }
    Ok(name.into_bytes())
}

impl Root {
    /// Opens a handle on the root directory (its own path is trusted: it is the project's).
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| errno_io(path, e))?;
        Ok(Self { fd, path: path.to_path_buf() })
    }

    fn shown(&self, rel: &[u8]) -> PathBuf {
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

    /// Replaces `rel` with a regular file holding `bytes` (or a symlink to `bytes`), through a
    /// temporary file renamed into place. A file being replaced keeps its permission bits
    /// (0600 stays 0600), with the executable bits following `executable`.
    pub(crate) fn write(&self, rel: &[u8], bytes: &[u8], kind: WriteKind, durable: bool) -> Result<()> {
        use std::io::Write as _;
        let (parts, name) = split(rel);
        let parent = self
            .dir(rel, &parts, true)?
            .ok_or_else(|| CheckpointError::unsafe_path(rel, "its directory cannot be created"))?;
        let name = OsStr::from_bytes(name);
        let tmp_name = temp_name()?;
        let tmp = OsStr::from_bytes(&tmp_name);
        match kind {
            WriteKind::Symlink => {
                rustix::fs::symlinkat(OsStr::from_bytes(bytes), &parent, tmp)
                    .map_err(|e| errno_io(&self.shown(rel), e))?;
            }
            WriteKind::File { executable } => {
                let existing = match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                        Some(st.st_mode & 0o7777)
                    }
                    _ => None,
                };
                let base = existing.unwrap_or(0o644);
                let mode = if executable { base | ((base & 0o444) >> 2) } else { base & !0o111 };
                let flags =
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(&parent, tmp, flags, Mode::from_raw_mode(0o600))
                    .map_err(|e| errno_io(&self.shown(rel), e))?;
                let written = (|| {
                    let mut file = File::from(fd);
                    file.write_all(bytes)?;
                    rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(std::io::Error::from)?;
                    if durable {
                        file.sync_all()?;
                    }
                    Ok::<(), std::io::Error>(())
                })();
                if let Err(e) = written {
                    let _ = rustix::fs::unlinkat(&parent, tmp, AtFlags::empty());
                    return Err(CheckpointError::io(self.shown(rel), e));
                }
            }
        }
        rustix::fs::renameat(&parent, tmp, &parent, name).map_err(|e| {
            let _ = rustix::fs::unlinkat(&parent, tmp, AtFlags::empty());
            errno_io(&self.shown(rel), e)
        })?;
        if durable {
            rustix::fs::fsync(&parent).map_err(|e| errno_io(&self.shown(rel), e))?;
        }
        Ok(())
    }

    /// Removes the file or link `rel` (absent is fine), then its directories that became
    /// empty, up to the root.
    pub(crate) fn remove(&self, rel: &[u8]) -> Result<()> {
        let (parts, name) = split(rel);
        let Some(parent) = self.dir(rel, &parts, false)? else { return Ok(()) };
        match rustix::fs::unlinkat(&parent, OsStr::from_bytes(name), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(errno_io(&self.shown(rel), e)),
        }
        for depth in (0..parts.len()).rev() {
            let Ok(Some(dir)) = self.dir(rel, &parts[..depth], false) else { break };
            if rustix::fs::unlinkat(&dir, OsStr::from_bytes(parts[depth]), AtFlags::REMOVEDIR).is_err() {
                break; // not empty (or gone): stop climbing
            }
        }
        Ok(())
    }
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
