//! Writing many objects as one pack.
//!
//! A loose object costs a file creation, a directory entry and a rename; on some filesystems
//! that is a millisecond each, so a snapshot of 10,000 files spent seconds creating files. A
//! snapshot's new objects are instead appended to one pack file (git's format, version 2),
//! indexed (index version 2) and moved into `objects/pack/`: two file creations whatever the
//! number of objects. Stock git and gix read the result like any pack.
//!
//! Entries are whole objects (no deltas), each deflated; the count in the pack's header is
//! written last and the pack's checksum computed by reading the file back, so memory holds only
//! the index entries (id, offset, CRC-32), never the objects.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use gix::ObjectId;

use crate::{CheckpointError, Result};

/// Object kinds as a pack entry header encodes them.
fn kind_code(kind: gix::objs::Kind) -> u8 {
    match kind {
        gix::objs::Kind::Commit => 1,
        gix::objs::Kind::Tree => 2,
        gix::objs::Kind::Blob => 3,
        gix::objs::Kind::Tag => 4,
    }
}

/// Counts bytes and their CRC-32 on their way to the file.
struct Tracked<W> {
    inner: W,
    crc: crc32fast::Hasher,
    written: u64,
}

impl<W: Write> Write for Tracked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A pack being written into a store's `objects/pack/` directory.
pub(crate) struct PackWriter {
    dir: PathBuf,
    tmp: PathBuf,
    /// `None` once finished.
    file: Option<BufWriter<File>>,
    offset: u64,
    /// Id, offset in the pack, CRC-32 of the entry.
    entries: Vec<(ObjectId, u64, u32)>,
    seen: HashSet<ObjectId>,
    /// Flush the pack, its index and their directory before `finish` returns.
    durable: bool,
}

fn io_err(path: &Path, e: std::io::Error) -> CheckpointError {
    CheckpointError::io(path, e)
}

impl PackWriter {
    /// Starts a pack in `objects_dir/pack` (created if missing).
    pub(crate) fn new(objects_dir: &Path, durable: bool) -> Result<Self> {
        let dir = objects_dir.join("pack");
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| io_err(&dir, std::io::Error::other(e.to_string())))?;
        let tmp = dir.join(format!("tmp_pack_{:016x}", u64::from_le_bytes(random)));
        let file = std::fs::OpenOptions::new().write(true).read(true).create_new(true).open(&tmp);
        let mut file = BufWriter::with_capacity(256 << 10, file.map_err(|e| io_err(&tmp, e))?);
        // The object count is filled in by `finish`.
        file.write_all(b"PACK\0\0\0\x02\0\0\0\0").map_err(|e| io_err(&tmp, e))?;
        Ok(Self {
            dir,
            tmp,
            file: Some(file),
            offset: 12,
            entries: Vec::new(),
            seen: HashSet::new(),
            durable,
        })
    }

    /// Whether the pack already holds `id`.
    pub(crate) fn contains(&self, id: &ObjectId) -> bool {
        self.seen.contains(id)
    }

    /// Appends an object whose id is `id` (once: a second add of the same id is ignored).
    pub(crate) fn add_with_id(&mut self, id: ObjectId, kind: gix::objs::Kind, data: &[u8]) -> Result<()> {
        if !self.seen.insert(id) {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Err(io_err(&self.tmp, std::io::Error::other("the pack is already finished")));
        };
        let mut out = Tracked { inner: file, crc: crc32fast::Hasher::new(), written: 0 };
        // Entry header: type and size, 4 bits then 7 bits at a time, low bits first.
        let mut size = data.len() as u64;
        let mut byte = (kind_code(kind) << 4) | (size & 0x0f) as u8;
        size >>= 4;
        while size > 0 {
            out.write_all(&[byte | 0x80]).map_err(|e| io_err(&self.tmp, e))?;
            byte = (size & 0x7f) as u8;
            size >>= 7;
        }
        out.write_all(&[byte]).map_err(|e| io_err(&self.tmp, e))?;
        // The fastest level: most of a project is source text that deflates well anyway.
        let level = gix::zlib::Compression::new(1).unwrap_or(gix::zlib::Compression::DEFAULT);
        let mut deflate = gix::zlib::stream::deflate::Write::new(&mut out, level);
        deflate.write_all(data).map_err(|e| io_err(&self.tmp, e))?;
        deflate.flush().map_err(|e| io_err(&self.tmp, e))?;
        drop(deflate);
        let (crc, written) = (out.crc.finalize(), out.written);
        self.entries.push((id, self.offset, crc));
        self.offset += written;
        Ok(())
    }

    /// Completes the pack (count, checksum), writes its index, and moves both into place.
    /// Returns the pack's name, or `None` when nothing was added (no file is left behind).
    pub(crate) fn finish(mut self) -> Result<Option<String>> {
        let tmp = self.tmp.clone();
        let err = |e: std::io::Error| io_err(&tmp, e);
        let Some(writer) = self.file.take() else { return Ok(None) };
        if self.entries.is_empty() {
            drop(writer);
            let _ = std::fs::remove_file(&self.tmp);
            return Ok(None);
        }
        let mut file = writer.into_inner().map_err(|e| err(e.into_error()))?;
        let count = u32::try_from(self.entries.len()).map_err(|e| err(std::io::Error::other(e)))?;
        file.seek(SeekFrom::Start(8)).map_err(err)?;
        file.write_all(&count.to_be_bytes()).map_err(err)?;
        // The checksum covers everything so far: read it back (from the page cache).
        file.seek(SeekFrom::Start(0)).map_err(err)?;
        let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let pack_sum = hasher.try_finalize().map_err(|e| err(std::io::Error::other(e.to_string())))?;
        file.seek(SeekFrom::End(0)).map_err(err)?;
        file.write_all(pack_sum.as_bytes()).map_err(err)?;
        if self.durable {
            file.sync_all().map_err(err)?;
        }
        drop(file);

        // The index: fan-out, sorted ids, CRC-32s, offsets (large ones in a table), checksums.
        self.entries.sort_by_key(|a| a.0);
        let mut idx: Vec<u8> = Vec::with_capacity(8 + 1024 + self.entries.len() * 28 + 40);
        idx.extend_from_slice(b"\xfftOc\0\0\0\x02");
        let mut fanout = [0u32; 256];
        for (id, _, _) in &self.entries {
            fanout[usize::from(id.as_bytes()[0])] += 1;
        }
        let mut running = 0u32;
        for n in fanout {
            running += n;
            idx.extend_from_slice(&running.to_be_bytes());
        }
        for (id, _, _) in &self.entries {
            idx.extend_from_slice(id.as_bytes());
        }
        for (_, _, crc) in &self.entries {
            idx.extend_from_slice(&crc.to_be_bytes());
        }
        let mut large = Vec::new();
        for (_, offset, _) in &self.entries {
            match u32::try_from(*offset) {
                Ok(small) if small < 0x8000_0000 => idx.extend_from_slice(&small.to_be_bytes()),
                _ => {
                    let slot = u32::try_from(large.len()).map_err(|e| err(std::io::Error::other(e)))?;
                    idx.extend_from_slice(&(slot | 0x8000_0000).to_be_bytes());
                    large.push(*offset);
                }
            }
        }
        for offset in large {
            idx.extend_from_slice(&offset.to_be_bytes());
        }
        idx.extend_from_slice(pack_sum.as_bytes());
        let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
        hasher.update(&idx);
        let idx_sum = hasher.try_finalize().map_err(|e| err(std::io::Error::other(e.to_string())))?;
        idx.extend_from_slice(idx_sum.as_bytes());

        let name = format!("pack-{}", pack_sum.to_hex());
        let pack_path = self.dir.join(format!("{name}.pack"));
        let idx_path = self.dir.join(format!("{name}.idx"));
        let idx_tmp = self.dir.join(format!("{name}.idx.tmp"));
        let mut idx_file = File::create(&idx_tmp).map_err(|e| io_err(&idx_tmp, e))?;
        idx_file.write_all(&idx).map_err(|e| io_err(&idx_tmp, e))?;
        if self.durable {
            idx_file.sync_all().map_err(|e| io_err(&idx_tmp, e))?;
        }
        // The pack first, its index last: readers find packs through their indexes.
        std::fs::rename(&tmp, &pack_path).map_err(|e| io_err(&pack_path, e))?;
        std::fs::rename(&idx_tmp, &idx_path).map_err(|e| io_err(&idx_path, e))?;
        if self.durable {
            // The renames themselves survive a power loss only once the directory is flushed.
            crate::fs::sync_dir(&self.dir)?;
        }
        Ok(Some(name))
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        // An unfinished pack is removed (after `finish` the file is gone from this path).
        let _ = std::fs::remove_file(&self.tmp);
    }
}
