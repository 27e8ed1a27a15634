//! Reading the project's working tree into blobs: `.gitignore` honoured (whether or not the
//! root is a git repository), `.git` and `.codeframe` never included.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use codeframe_models::SkippedFile;
use gix::ObjectId;
use tracing::debug;

use crate::fs::{self, Root};
use crate::pack::PackWriter;
use crate::statcache::{Stat, StatCache};
use crate::store::{FileEntry, FileKind, Store};
use crate::{CheckpointError, Result};

/// Names never walked, at any depth: git's own data and codeframe's.
pub(crate) const EXCLUDED: [&[u8]; 2] = [b".git", b".codeframe"];

/// How a snapshot of the files went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WalkStats {
    pub files: usize,
    pub hashed: usize,
    pub reused: usize,
    /// Files over the size limit, left out.
    pub skipped: Vec<SkippedFile>,
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
        let entry = match entry {
            Ok(entry) => entry,
            // Removed (or swapped) while the walk listed its directory: not part of the tree.
            Err(e) if e.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) => continue,
            Err(e) => return Err(CheckpointError::io(root, std::io::Error::other(e.to_string()))),
        };
        let abs = entry.path();
        if abs == root {
            continue;
        }
        let meta = match std::fs::symlink_metadata(abs) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(CheckpointError::io(abs, e)),
        };
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

/// Reads exactly `size` bytes and fails if the file turns out shorter or longer: a file
/// rewritten while it is read must not become a blob of half its old and half its new content.
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: std::io::Read> std::io::Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other("the file grew while it was read")),
            };
        }
        let want = usize::try_from(self.remaining).unwrap_or(usize::MAX).min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file shrank while it was read",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// One file of the tree as it will be snapshotted.
enum Read {
    /// Its blob (and the status of what was read), or a symlink's.
    Blob(ObjectId, FileKind, Option<Stat>),
    /// Over the size limit: left out.
    TooLarge(u64),
    /// Not there any more, or not content: left out.
    Nothing,
}

/// Files up to this size go into the snapshot's pack (read whole: bounded memory); larger ones
/// are streamed into a loose object of their own.
const PACKED_MAX: u64 = 1 << 20;

/// Reads one file through the root's handle (no link followed, nothing blocks) and stores its
/// content (into `pack`, or a loose object when large) — or, without a pack, only hashes it.
fn read_one(
    store: &Store,
    root: &Root,
    found: &Found,
    mut pack: Option<&mut PackWriter>,
    max_size: u64,
) -> Result<Read> {
    use std::io::Read as _;
    const ATTEMPTS: usize = 3;
    let hash = |bytes: &[u8]| {
        gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, bytes)
            .map_err(|e| CheckpointError::store(&found.abs, e))
    };
    for attempt in 1..=ATTEMPTS {
        let (file, st) = match root.read(&found.path)? {
            fs::Found::File(file, st) => (file, st),
            fs::Found::Symlink(target) => {
                let oid = match pack.as_deref_mut() {
                    Some(pack) => store.put(pack, gix::objs::Kind::Blob, &target)?,
                    None => hash(&target)?,
                };
                return Ok(Read::Blob(oid, FileKind::Symlink, None));
            }
            fs::Found::Nothing => return Ok(Read::Nothing),
        };
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if size > max_size {
            return Ok(Read::TooLarge(size));
        }
        let kind = if st.st_mode & 0o111 != 0 { FileKind::Executable } else { FileKind::Regular };
        let mut reader = Exact { inner: std::io::BufReader::with_capacity(64 << 10, file), remaining: size };
        let stored = match pack.as_deref_mut() {
            Some(pack) if size <= PACKED_MAX => {
                let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                match reader.read_to_end(&mut bytes) {
                    Ok(_) => store.put(pack, gix::objs::Kind::Blob, &bytes),
                    Err(e) => Err(CheckpointError::io(&found.abs, e)),
                }
            }
            Some(_) => store.write_blob_stream(size, &mut reader),
            None => gix::objs::compute_stream_hash(
                gix::hash::Kind::Sha1,
                gix::objs::Kind::Blob,
                &mut reader,
                size,
                &mut gix::progress::Discard,
                &std::sync::atomic::AtomicBool::new(false),
            )
            .map_err(|e| CheckpointError::store(&found.abs, e)),
        };
        match stored {
            Ok(oid) => return Ok(Read::Blob(oid, kind, Some(Stat::of_opened(&st, kind)))),
            Err(e) if attempt < ATTEMPTS => {
                debug!(path = %found.abs.display(), error = %e, attempt, "file changed while read; reading it again");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Read::Nothing)
}

/// Hashes the working tree into the store (new blobs into `pack`), reading only files whose
/// stat changed since the last snapshot. Without a pack, blobs are hashed but not stored (for
/// diffs). Files over `max_size` bytes are left out and listed.
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) fn snapshot(
    store: &Store,
    root: &Path,
    mut pack: Option<&mut PackWriter>,
    max_size: u64,
) -> Result<(Vec<FileEntry>, WalkStats)> {
    let write = pack.is_some();
    let now_secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let now_secs = i64::try_from(now_secs).unwrap_or(i64::MAX);
    let cache = StatCache::load(store.path());
    let handle = Root::open(root)?;
    let mut next = StatCache::default();
    let mut stats = WalkStats::default();
    let mut entries = Vec::new();
    for found in walk(root)? {
        let listed = Stat::of(&found.meta, found.kind);
        if let Some(oid) = cache.lookup(&found.path, &listed).filter(|oid| store.has_object(oid)) {
            stats.reused += 1;
            if write {
                next.insert(found.path.clone(), listed, oid);
            }
            entries.push(FileEntry { path: found.path, kind: found.kind, oid });
            continue;
        }
        let (oid, kind, stat) = match read_one(store, &handle, &found, pack.as_deref_mut(), max_size)? {
            Read::Blob(oid, kind, stat) => (oid, kind, stat),
            Read::TooLarge(size) => {
                stats
                    .skipped
                    .push(SkippedFile { path: String::from_utf8_lossy(&found.path).into_owned(), size });
                continue;
            }
            Read::Nothing => continue,
        };
        stats.hashed += 1;
        // A file changed within the last seconds could change again within the same mtime
        // tick without its stat moving ("racy git"): such entries are not cached.
        if let Some(stat) = stat.filter(|s| write && s.mtime < now_secs - 1) {
            next.insert(found.path.clone(), stat, oid);
        }
        entries.push(FileEntry { path: found.path, kind, oid });
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
        skipped = stats.skipped.len(),
        cached = next.len(),
        "working tree snapshot"
    );
    Ok((entries, stats))
}
