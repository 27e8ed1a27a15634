//! The stat cache: for each file of the last snapshot, its size, mtime, inode and kind, and
//! the blob it hashed to. A file whose stat is unchanged is not read again.
//!
//! Stored inside the store as `codeframe-statcache`, one line per file, paths hex-encoded
//! (they are bytes, not necessarily UTF-8). A missing or unreadable cache only costs a rehash.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use gix::ObjectId;

use crate::store::FileKind;
use crate::{CheckpointError, Result};

const FILE: &str = "codeframe-statcache";
const HEADER: &str = "codeframe-statcache v1";

/// What must not have changed for a cached hash to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ino: u64,
    pub kind: FileKind,
}

impl Stat {
    pub(crate) fn of(meta: &std::fs::Metadata, kind: FileKind) -> Self {
        Self { size: meta.size(), mtime: meta.mtime(), mtime_nsec: meta.mtime_nsec(), ino: meta.ino(), kind }
    }

    /// The status of an opened file (what its content was read from).
    pub(crate) fn of_opened(st: &rustix::fs::Stat, kind: FileKind) -> Self {
        Self {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
            mtime_nsec: i64::try_from(st.st_mtime_nsec).unwrap_or(0),
            ino: st.st_ino,
            kind,
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct StatCache {
    entries: HashMap<Vec<u8>, (Stat, ObjectId)>,
}

fn kind_char(k: FileKind) -> char {
    match k {
        FileKind::Regular => 'r',
        FileKind::Executable => 'x',
        FileKind::Symlink => 'l',
    }
}

/// Bytes (a path) as lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hex back to bytes; `None` when it is not hex.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn parse_line(line: &str) -> Option<(Vec<u8>, Stat, ObjectId)> {
    let mut f = line.split('\t');
    let path = unhex(f.next()?)?;
    let size = f.next()?.parse().ok()?;
    let mtime = f.next()?.parse().ok()?;
    let mtime_nsec = f.next()?.parse().ok()?;
    let ino = f.next()?.parse().ok()?;
    let kind = match f.next()? {
        "r" => FileKind::Regular,
        "x" => FileKind::Executable,
        "l" => FileKind::Symlink,
        _ => return None,
    };
    let oid = ObjectId::from_hex(f.next()?.as_bytes()).ok()?;
    Some((path, Stat { size, mtime, mtime_nsec, ino, kind }, oid))
}

impl StatCache {
    /// Loads the cache of the store at `store_path`; an absent or damaged cache is empty.
    pub(crate) fn load(store_path: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(store_path.join(FILE)) else { return Self::default() };
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Self::default();
        }
        Self { entries: lines.filter_map(parse_line).map(|(p, s, o)| (p, (s, o))).collect() }
    }

    /// The cached blob of `path`, if its stat is unchanged.
    pub(crate) fn lookup(&self, path: &[u8], stat: &Stat) -> Option<ObjectId> {
        self.entries.get(path).filter(|(s, _)| s == stat).map(|(_, oid)| *oid)
    }

    pub(crate) fn insert(&mut self, path: Vec<u8>, stat: Stat, oid: ObjectId) {
        self.entries.insert(path, (stat, oid));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Writes the cache atomically (temp file + rename).
    pub(crate) fn save(&self, store_path: &Path) -> Result<()> {
        let mut out = String::with_capacity(self.entries.len() * 96);
        out.push_str(HEADER);
        out.push('\n');
        let mut keys: Vec<_> = self.entries.keys().collect();
        keys.sort();
        for k in keys {
            if let Some((s, oid)) = self.entries.get(k) {
                let _ = writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{oid}",
                    hex(k),
                    s.size,
                    s.mtime,
                    s.mtime_nsec,
                    s.ino,
                    kind_char(s.kind)
                );
            }
        }
        let tmp = store_path.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, out).map_err(|e| CheckpointError::io(&tmp, e))?;
        let dest = store_path.join(FILE);
        std::fs::rename(&tmp, &dest).map_err(|e| CheckpointError::io(&dest, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_including_non_utf8_paths() {
        let stat = Stat { size: 3, mtime: 10, mtime_nsec: 5, ino: 42, kind: FileKind::Executable };
        let oid = ObjectId::empty_blob(gix::hash::Kind::Sha1);
        let dir = std::env::temp_dir().join(format!("cf-statcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let mut c = StatCache::default();
        c.insert(vec![b'a', 0xff, b'/', b'b'], stat, oid);
        assert!(c.save(&dir).is_ok());
        let back = StatCache::load(&dir);
        assert_eq!(back.lookup(&[b'a', 0xff, b'/', b'b'], &stat), Some(oid));
        assert_eq!(back.lookup(&[b'a', 0xff, b'/', b'b'], &Stat { size: 4, ..stat }), None);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_damaged_cache_is_empty() {
        assert!(parse_line("zz\t1").is_none());
        assert_eq!(unhex("6162"), Some(b"ab".to_vec()));
        assert_eq!(unhex("6"), None);
    }
}
