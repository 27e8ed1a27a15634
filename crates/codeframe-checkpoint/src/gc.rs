//! Garbage collection of a snapshot store: objects no checkpoint ref reaches are removed, the
//! others packed into one pack.
//!
//! **Safe with concurrent checkpoints.** A checkpoint reuses objects already in the store (an
//! unchanged file's blob, the base snapshot's context chunks) from the moment it reads them
//! until its ref is written. Everyone who uses a store holds a shared lock on
//! `<store>/codeframe-gc.lock` (every opened [`Store`], and a checkpoint from its draft to its
//! ref, see [`StoreUse`]); collection takes it exclusively, without waiting: while anything is
//! being written or read it does nothing, so it can never remove an object a checkpoint is
//! about to name.
//!
//! **Crash-safe.** The new pack is complete (pack renamed into place before its index) before
//! anything is removed; a crash leaves old and new packs side by side, both valid, and the next
//! collection removes the duplicates.
//!
//! **Never makes damage worse.** Every object kept is read and checked against its id before
//! the old packs go: a kept checkpoint with a missing or corrupt object stops the collection
//! with nothing removed.

use std::collections::HashSet;
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use gix::ObjectId;
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::store::Store;
use crate::{CheckpointError, Result};

/// The lock file, in the snapshot store.
pub(crate) const GC_LOCK: &str = "codeframe-gc.lock";

/// Blobs at least this large are written loose (streamed) by snapshots and stay loose.
const LARGE_BLOB: u64 = 1 << 20;

/// A hold on a store that garbage collection respects: shared by every user of the store,
/// exclusive for a collection. Released when dropped.
#[derive(Debug)]
pub(crate) struct StoreUse(File);

impl StoreUse {
    fn open(store: &Path) -> Result<File> {
        let path = store.join(GC_LOCK);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| CheckpointError::io(&path, e))
    }

    /// A shared hold: waits only while a collection runs.
    pub(crate) fn shared(store: &Path) -> Result<Self> {
        let file = Self::open(store)?;
        file.lock_shared().map_err(|e| CheckpointError::io(store.join(GC_LOCK), e))?;
        Ok(Self(file))
    }

    /// The exclusive hold of a collection; `None` while anyone uses the store.
    fn exclusive(store: &Path) -> Result<Option<Self>> {
        let file = Self::open(store)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(CheckpointError::io(store.join(GC_LOCK), e)),
        }
    }
}

impl Drop for StoreUse {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// What a garbage collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcReport {
    /// Checkpoint refs whose objects were kept.
    pub checkpoints_kept: usize,
    /// Objects reachable from them (kept).
    pub objects_kept: usize,
    /// Objects in the store before (an object stored twice counts twice).
    pub objects_before: usize,
    /// Packs before and after.
    pub packs_before: usize,
    /// Packs after (one, plus none: large blobs stay loose).
    pub packs_after: usize,
    /// Loose objects removed (packed, or reached by nothing).
    pub loose_removed: usize,
    /// Bytes of the store's objects before.
    pub bytes_before: u64,
    /// Bytes of the store's objects after.
    pub bytes_after: u64,
}

/// The store's pack files (`.pack`), sorted.
fn packs(objects: &Path) -> Result<Vec<PathBuf>> {
    let dir = objects.join("pack");
    let mut found = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for e in entries {
                let p = e.map_err(|e| CheckpointError::io(&dir, e))?.path();
                if p.extension().is_some_and(|x| x == "pack") {
                    found.push(p);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CheckpointError::io(&dir, e)),
    }
    found.sort();
    Ok(found)
}

/// The store's loose objects: (id, file).
fn loose(objects: &Path) -> Result<Vec<(ObjectId, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(objects) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(CheckpointError::io(objects, e)),
    };
    for e in entries {
        let dir = e.map_err(|e| CheckpointError::io(objects, e))?.path();
        let Some(fan) = dir.file_name().and_then(|n| n.to_str()).filter(|n| n.len() == 2) else { continue };
        if !dir.is_dir() || !fan.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        for f in std::fs::read_dir(&dir).map_err(|e| CheckpointError::io(&dir, e))? {
            let file = f.map_err(|e| CheckpointError::io(&dir, e))?.path();
            let Some(rest) = file.file_name().and_then(|n| n.to_str()) else { continue };
            if let Ok(oid) = ObjectId::from_hex(format!("{fan}{rest}").as_bytes()) {
                found.push((oid, file));
            }
        }
    }
    Ok(found)
}

/// Objects an index v2 lists (its fan-out table's last entry).
fn indexed_objects(idx: &Path) -> usize {
    let Ok(bytes) = std::fs::read(idx) else { return 0 };
    let at = 8 + 255 * 4;
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, |b| u32::from_be_bytes(b) as usize)
}

/// Bytes of the files under `dir`.
pub(crate) fn disk_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Every object reachable from the store's refs, commits and trees before what they name.
fn reachable(store: &Store) -> Result<(usize, Vec<ObjectId>)> {
    let refs = store.list_refs()?;
    let mut seen = HashSet::new();
    let mut order = Vec::new();
    for (_, commit) in &refs {
        if !seen.insert(*commit) {
            continue;
        }
        order.push(*commit);
        let mut trees = vec![store.commit_tree(*commit)?];
        while let Some(tree) = trees.pop() {
            if !seen.insert(tree) {
                continue;
            }
            order.push(tree);
            for e in store.tree_entries(tree)? {
                if e.mode.is_tree() {
                    trees.push(e.oid);
                } else if !e.mode.is_commit() && seen.insert(e.oid) {
                    order.push(e.oid);
                }
            }
        }
    }
    Ok((refs.len(), order))
}

/// Collects the garbage of the store at `store_path` (see the module docs) if it has at least
/// `min_packs` packs (`Ok(None)` otherwise). [`CheckpointError::StoreBusy`] (named for
/// `project_id`) when the store is in use: nothing was done.
pub(crate) fn collect(
    store_path: &Path,
    durable: bool,
    min_packs: usize,
    project_id: codeframe_models::ProjectId,
) -> Result<Option<GcReport>> {
    let objects = store_path.join("objects");
    if packs(&objects)?.len() < min_packs {
        return Ok(None);
    }
    let Some(_exclusive) = StoreUse::exclusive(store_path)? else {
        debug!(store = %store_path.display(), "store in use; garbage collection skipped");
        return Err(CheckpointError::StoreBusy(project_id));
    };
    let store = Store::open_unlocked(store_path, durable)?;
    let old_packs = packs(&objects)?;
    let old_loose = loose(&objects)?;
    let mut report = GcReport {
        packs_before: old_packs.len(),
        objects_before: old_packs.iter().map(|p| indexed_objects(&p.with_extension("idx"))).sum::<usize>()
            + old_loose.len(),
        bytes_before: disk_bytes(&objects),
        ..GcReport::default()
    };
    let (checkpoints, order) = reachable(&store)?;
    report.checkpoints_kept = checkpoints;
    report.objects_kept = order.len();
    let loose_ids: HashSet<ObjectId> = old_loose.iter().map(|(oid, _)| *oid).collect();
    // Large loose blobs stay where they are; everything else goes into one new pack, each
    // object read and checked against its id first.
    let mut stay_loose = HashSet::new();
    let mut pack = store.pack()?;
    for oid in &order {
        if loose_ids.contains(oid) && store.object_size(*oid)? >= LARGE_BLOB {
            stay_loose.insert(*oid);
            continue;
        }
        let (kind, data) = store.read_verified(*oid)?;
        pack.add_with_id(*oid, kind, &data)?;
    }
    let new_pack = pack.finish()?;
    let kept_pack = new_pack.as_deref().map(|name| objects.join("pack").join(format!("{name}.pack")));
    for old in &old_packs {
        // Identical content gives the identical name: the new pack may be an old one.
        if Some(old) == kept_pack.as_ref() {
            continue;
        }
        remove(&old.with_extension("idx"))?;
        remove(old)?;
    }
    for (oid, file) in &old_loose {
        if !stay_loose.contains(oid) {
            remove(file)?;
            report.loose_removed += 1;
            if let Some(dir) = file.parent() {
                let _ = std::fs::remove_dir(dir); // only when empty
            }
        }
    }
    if durable {
        crate::fs::sync_dir(&objects.join("pack"))?;
    }
    report.packs_after = packs(&objects)?.len();
    report.bytes_after = disk_bytes(&objects);
    info!(
        store = %store_path.display(),
        checkpoints,
        kept = report.objects_kept,
        before = report.objects_before,
        bytes_before = report.bytes_before,
        bytes_after = report.bytes_after,
        "snapshot store collected"
    );
    Ok(Some(report))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CheckpointError::io(path, e)),
    }
}
