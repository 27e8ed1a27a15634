//! How a snapshot's context items are laid out in chunks, and incremental snapshots.
//!
//! Items are stored sorted by id in `state/context/NNNNNN.jsonl` chunks; each chunk covers an
//! id range, from its first id to the next chunk's. `state/context_index.json` records each
//! chunk's first id and item count. A snapshot may build on an earlier checkpoint of the
//! project (its *base*): the chunks holding no item written since the base's revision keep
//! their blobs, unread; only the others are read from the database and written again. A new
//! snapshot is full when there is no usable base, or when items were deleted since it.

use gix::ObjectId;
use serde::{Deserialize, Serialize};

use crate::state::{self, CONTEXT_CHUNK};
use crate::store::Store;
use crate::{CheckpointError, Result};

/// The tree path of the chunk index.
pub(crate) const INDEX_PATH: &str = "state/context_index.json";

/// A chunk grown past this many items (ids added inside its range) is split when rewritten.
const CHUNK_MAX: usize = 2 * CONTEXT_CHUNK;

/// One chunk of a snapshot being written, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunk {
    /// The base's blob, unchanged: not read, not written.
    Reused { oid: ObjectId, first: String, count: usize },
    /// Items `start..start + len` of the draft's items, written anew.
    Fresh { start: usize, len: usize },
}

/// The chunk index blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Index {
    pub chunks: Vec<IndexEntry>,
}

/// A chunk's first id and item count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IndexEntry {
    pub count: usize,
    pub first: String,
}

/// A base checkpoint's chunks: first id, count and blob of each, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseChunk {
    pub first: String,
    pub count: usize,
    pub oid: ObjectId,
}

/// Chunks of `len` items read whole (a full snapshot).
pub(crate) fn full(len: usize) -> Vec<Chunk> {
    (0..len)
        .step_by(CONTEXT_CHUNK)
        .map(|start| Chunk::Fresh { start, len: CONTEXT_CHUNK.min(len - start) })
        .collect()
}

/// Reads the chunks of a base commit, every one of whose blobs the store holds; `None` if
/// the commit has no usable index or lacks a blob (an older snapshot, a damaged store): the
/// caller then writes a full snapshot.
pub(crate) fn read_base(store: &Store, commit: ObjectId) -> Result<Option<Vec<BaseChunk>>> {
    match read_index(store, commit)? {
        // A base without a chunk (no item when it was made) has no range to put new items
        // in: the snapshot is made whole.
        Some(chunks) if !chunks.is_empty() && chunks.iter().all(|c| store.has_object(&c.oid)) => {
            Ok(Some(chunks))
        }
        _ => Ok(None),
    }
}

/// Reads the chunks of a commit as its index and tree name them (blobs not looked at);
/// `None` if the commit has no index or one that disagrees with its tree.
pub(crate) fn read_index(store: &Store, commit: ObjectId) -> Result<Option<Vec<BaseChunk>>> {
    let tree = store.commit_tree(commit)?;
    let Some(state_tree) = store.child(tree, "state")? else { return Ok(None) };
    let Some(index) = store.child(state_tree.oid, "context_index.json")? else { return Ok(None) };
    let index: Index = match state::parse(INDEX_PATH, &store.read_blob(index.oid)?) {
        Ok(i) => i,
        Err(_) => return Ok(None),
    };
    let mut entries = match store.child(state_tree.oid, "context")? {
        Some(ctx) => store.tree_entries(ctx.oid)?,
        None => Vec::new(),
    };
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    if entries.len() != index.chunks.len() {
        return Ok(None);
    }
    let mut chunks = Vec::with_capacity(entries.len());
    for (n, (entry, listed)) in entries.into_iter().zip(index.chunks).enumerate() {
        let named_in_order = entry.path == format!("{n:06}.jsonl").into_bytes();
        if !named_in_order || listed.count == 0 {
            return Ok(None);
        }
        chunks.push(BaseChunk { first: listed.first, count: listed.count, oid: entry.oid });
    }
    // Ids must rise from chunk to chunk, or the ranges mean nothing.
    if chunks.windows(2).any(|w| w[0].first >= w[1].first) {
        return Ok(None);
    }
    Ok(Some(chunks))
}

/// The index of the base chunk whose range holds `id` (ids before the first chunk's belong
/// to it).
pub(crate) fn chunk_of(base: &[BaseChunk], id: &str) -> usize {
    base.partition_point(|c| c.first.as_str() <= id).saturating_sub(1)
}

/// The id range `[from, to)` of base chunk `k` (`None`: open).
pub(crate) fn range_of(base: &[BaseChunk], k: usize) -> (Option<&str>, Option<&str>) {
    let from = if k == 0 { None } else { base.get(k).map(|c| c.first.as_str()) };
    let to = base.get(k + 1).map(|c| c.first.as_str());
    (from, to)
}

/// Splits freshly read items of one base chunk (at `start` in the draft's items) into chunks:
/// one, or several of `CONTEXT_CHUNK` when it grew past `CHUNK_MAX`; none when empty.
pub(crate) fn fresh(start: usize, len: usize) -> Vec<Chunk> {
    if len == 0 {
        Vec::new()
    } else if len <= CHUNK_MAX {
        vec![Chunk::Fresh { start, len }]
    } else {
        full(len).into_iter().map(|c| shift(c, start)).collect()
    }
}

fn shift(c: Chunk, by: usize) -> Chunk {
    match c {
        Chunk::Fresh { start, len } => Chunk::Fresh { start: start + by, len },
        reused => reused,
    }
}

/// The number of items the chunks hold.
pub(crate) fn count(chunks: &[Chunk]) -> usize {
    chunks
        .iter()
        .map(|c| match c {
            Chunk::Reused { count, .. } => *count,
            Chunk::Fresh { len, .. } => *len,
        })
        .sum()
}

/// An error for an index that does not describe the chunks written (a bug, not bad input).
pub(crate) fn inconsistent(what: &str) -> CheckpointError {
    CheckpointError::State { file: INDEX_PATH.into(), message: what.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(firsts: &[&str]) -> Vec<BaseChunk> {
        firsts
            .iter()
            .map(|f| BaseChunk { first: (*f).into(), count: 1, oid: ObjectId::null(gix::hash::Kind::Sha1) })
            .collect()
    }

    #[test]
    fn ids_map_to_the_chunk_whose_range_holds_them() {
        let b = base(&["b", "f", "m"]);
        assert_eq!(chunk_of(&b, "a"), 0, "before the first chunk: the first");
        assert_eq!(chunk_of(&b, "b"), 0);
        assert_eq!(chunk_of(&b, "e"), 0);
        assert_eq!(chunk_of(&b, "f"), 1);
        assert_eq!(chunk_of(&b, "l"), 1);
        assert_eq!(chunk_of(&b, "zz"), 2);
        assert_eq!(range_of(&b, 0), (None, Some("f")));
        assert_eq!(range_of(&b, 1), (Some("f"), Some("m")));
        assert_eq!(range_of(&b, 2), (Some("m"), None));
    }

    #[test]
    fn a_grown_chunk_is_split_and_an_empty_one_dropped() {
        assert_eq!(fresh(7, 0), Vec::new());
        assert_eq!(fresh(7, CHUNK_MAX), vec![Chunk::Fresh { start: 7, len: CHUNK_MAX }]);
        let split = fresh(7, CHUNK_MAX + 1);
        assert_eq!(split.len(), 3);
        assert_eq!(count(&split), CHUNK_MAX + 1);
        assert_eq!(split[0], Chunk::Fresh { start: 7, len: CONTEXT_CHUNK });
        assert_eq!(count(&full(2_500)), 2_500);
        assert_eq!(full(2_500).len(), 3);
    }
}
