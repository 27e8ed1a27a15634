//! The private snapshot store: a bare git repository written with gix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use codeframe_models::CheckpointId;
use gix::ObjectId;
use gix::objs::tree::{Entry, EntryKind, EntryMode};
use gix::refs::Target;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use tracing::debug;

use crate::gc::StoreUse;
use crate::pack::PackWriter;
use crate::{CheckpointError, Result};

/// Where the store lives, relative to the project root.
pub const STORE_DIR: &str = ".codeframe/snapshots.git";
const REF_PREFIX: &str = "refs/codeframe/checkpoints/";
/// `.codeframe/.gitignore`: hides codeframe's folder from the user's `git status` without
/// touching anything of the user's repository.
pub(crate) const OWN_DIR_GITIGNORE: &str = "# codeframe's private data (snapshots, state)\n*\n";

/// The ref naming a checkpoint's commit.
pub fn checkpoint_ref(id: CheckpointId) -> String {
    format!("{REF_PREFIX}{id}")
}

/// Where a project lives: its working tree, and its snapshot store (by default
/// `<root>/.codeframe/snapshots.git`; a server keeps the stores of the projects it creates
/// under its own home, out of reach of the code running in the trees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The working tree.
    pub root: PathBuf,
    /// The private bare repository holding the snapshots.
    pub store: PathBuf,
    /// Flush what is written (objects, refs, restored files, and their directories) to disk
    /// before returning: see [`crate::Durability::Full`].
    pub durable: bool,
}

impl Place {
    /// The place of a project rooted at `root`, with its store at `store_path` or in the tree.
    pub fn new(root: impl Into<PathBuf>, store_path: Option<&str>) -> Self {
        let root = root.into();
        let store = store_path.map_or_else(|| root.join(STORE_DIR), PathBuf::from);
        Self { root, store, durable: false }
    }

    /// This place with writes flushed to disk (or not).
    pub fn with_durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    fn store_in_tree(&self) -> bool {
        self.store.starts_with(&self.root)
    }
}

/// Kind of a file in a snapshot, as git records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FileKind {
    Regular,
    Executable,
    Symlink,
}

impl FileKind {
    pub(crate) fn mode(self) -> EntryMode {
        match self {
            Self::Regular => EntryKind::Blob.into(),
            Self::Executable => EntryKind::BlobExecutable.into(),
            Self::Symlink => EntryKind::Link.into(),
        }
    }

    pub(crate) fn from_mode(mode: EntryMode) -> Option<Self> {
        match mode.kind() {
            EntryKind::Blob => Some(Self::Regular),
            EntryKind::BlobExecutable => Some(Self::Executable),
            EntryKind::Link => Some(Self::Symlink),
            EntryKind::Tree | EntryKind::Commit => None,
        }
    }
}

/// One file of a snapshot: its path relative to the root (bytes, `/`-separated), kind and blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileEntry {
    pub path: Vec<u8>,
    pub kind: FileKind,
    pub oid: ObjectId,
}

/// A raw tree entry read back from the store, before any validation.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub path: Vec<u8>,
    pub mode: EntryMode,
    pub oid: ObjectId,
}

pub(crate) struct Store {
    repo: gix::Repository,
    path: PathBuf,
    durable: bool,
    /// Garbage collection waits for no one and runs only while nobody holds this.
    hold: Option<StoreUse>,
}

#[derive(Default)]
struct Dir {
    entries: BTreeMap<Vec<u8>, Node>,
}

enum Node {
    Leaf(EntryMode, ObjectId),
    Dir(Dir),
}

impl Dir {
    fn insert(&mut self, path: &[u8], mode: EntryMode, oid: ObjectId) {
        match path.iter().position(|b| *b == b'/') {
            None => {
                self.entries.insert(path.to_vec(), Node::Leaf(mode, oid));
            }
            Some(i) => {
                let node =
                    self.entries.entry(path[..i].to_vec()).or_insert_with(|| Node::Dir(Dir::default()));
                if let Node::Leaf(..) = node {
                    *node = Node::Dir(Dir::default());
                }
                if let Node::Dir(d) = node {
                    d.insert(&path[i + 1..], mode, oid);
                }
            }
        }
    }

    fn write(self, store: &Store, pack: &mut PackWriter) -> Result<ObjectId> {
        let mut entries = Vec::with_capacity(self.entries.len());
        for (name, node) in self.entries {
            let (mode, oid) = match node {
                Node::Leaf(mode, oid) => (mode, oid),
                Node::Dir(d) => (EntryKind::Tree.into(), d.write(store, pack)?),
            };
            entries.push(Entry { mode, filename: name.into(), oid });
        }
        entries.sort();
        store.put_object(pack, &gix::objs::Tree { entries })
    }
}

impl Store {
    /// Opens the project's store, creating it on first use.
    pub(crate) fn open_or_init(place: &Place) -> Result<Self> {
        let path = place.store.clone();
        let own_dir = place.root.join(".codeframe");
        let ignore = own_dir.join(".gitignore");
        if place.store_in_tree() && !ignore.exists() {
            std::fs::create_dir_all(&own_dir).map_err(|e| CheckpointError::io(&own_dir, e))?;
            std::fs::write(&ignore, OWN_DIR_GITIGNORE).map_err(|e| CheckpointError::io(&ignore, e))?;
        }
        let repo = if path.join("HEAD").is_file() {
            gix::open(&path).map_err(|e| CheckpointError::store(&path, e))?
        } else {
            std::fs::create_dir_all(&path).map_err(|e| CheckpointError::io(&path, e))?;
            debug!(store = %path.display(), "initialising snapshot store");
            gix::init_bare(&path).map_err(|e| CheckpointError::store(&path, e))?
        };
        let hold = StoreUse::shared(&path)?;
        Ok(Self { repo, path, durable: place.durable, hold: Some(hold) })
    }

    /// Gives up the store, keeping its hold (garbage collection stays away while it lives).
    pub(crate) fn into_hold(self) -> Option<StoreUse> {
        self.hold
    }

    /// Opens a store without a shared hold (garbage collection holds it exclusively).
    pub(crate) fn open_unlocked(path: &Path, durable: bool) -> Result<Self> {
        let repo = gix::open(path).map_err(|e| CheckpointError::store(path, e))?;
        Ok(Self { repo, path: path.to_path_buf(), durable, hold: None })
    }

    /// Opens the project's store if it exists.
    pub(crate) fn open_existing(place: &Place) -> Result<Option<Self>> {
        let path = place.store.clone();
        if !path.join("HEAD").is_file() {
            return Ok(None);
        }
        let hold = StoreUse::shared(&path)?;
        let repo = gix::open(&path).map_err(|e| CheckpointError::store(&path, e))?;
        Ok(Some(Self { repo, path, durable: place.durable, hold: Some(hold) }))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether writes are flushed to disk before returning.
    pub(crate) fn durable(&self) -> bool {
        self.durable
    }

    fn err(&self, e: impl std::fmt::Display) -> CheckpointError {
        CheckpointError::store(&self.path, e)
    }

    /// Writes a blob of exactly `size` bytes read from `from`, streamed: memory does not depend
    /// on the size.
    pub(crate) fn write_blob_stream(&self, size: u64, from: &mut dyn std::io::Read) -> Result<ObjectId> {
        use gix::objs::Write as _;
        let oid =
            self.repo.objects.write_stream(gix::objs::Kind::Blob, size, from).map_err(|e| self.err(e))?;
        if self.durable {
            let hex = oid.to_hex().to_string();
            let file = self.path.join("objects").join(&hex[..2]).join(&hex[2..]);
            crate::fs::sync_file_and_dir(&file)?;
        }
        Ok(oid)
    }

    pub(crate) fn has_object(&self, oid: &ObjectId) -> bool {
        self.repo.has_object(oid)
    }

    /// A pack for the new objects of one snapshot (see [`crate::pack`]).
    pub(crate) fn pack(&self) -> Result<PackWriter> {
        PackWriter::new(&self.path.join("objects"), self.durable)
    }

    /// Adds an object's data to `pack` unless the store (or the pack) already has it; its id.
    pub(crate) fn put(&self, pack: &mut PackWriter, kind: gix::objs::Kind, data: &[u8]) -> Result<ObjectId> {
        let id = gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, data).map_err(|e| self.err(e))?;
        if !pack.contains(&id) && !self.has_object(&id) {
            pack.add_with_id(id, kind, data)?;
        }
        Ok(id)
    }

    fn put_object(&self, pack: &mut PackWriter, object: &dyn gix::objs::WriteTo) -> Result<ObjectId> {
        let mut buf = Vec::with_capacity(usize::try_from(object.size()).unwrap_or(0));
        object.write_to(&mut buf).map_err(|e| self.err(e))?;
        self.put(pack, object.kind(), &buf)
    }

    /// Writes nested trees for `entries` (paths `/`-separated) into `pack`; the root tree.
    pub(crate) fn write_tree<'a>(
        &self,
        pack: &mut PackWriter,
        entries: impl IntoIterator<Item = (&'a [u8], EntryMode, ObjectId)>,
    ) -> Result<ObjectId> {
        let mut root = Dir::default();
        for (path, mode, oid) in entries {
            root.insert(path, mode, oid);
        }
        root.write(self, pack)
    }

    /// Writes a commit of `tree` (no parents) into `pack`, with a fixed identity: a bare store
    /// has no user.
    pub(crate) fn commit(
        &self,
        pack: &mut PackWriter,
        tree: ObjectId,
        message: &str,
        unix_seconds: i64,
    ) -> Result<ObjectId> {
        let sig = gix::actor::Signature {
            name: "codeframe".into(),
            email: "codeframe@localhost".into(),
            time: gix::date::Time::new(unix_seconds, 0),
        };
        let commit = gix::objs::Commit {
            tree,
            parents: Default::default(),
            author: sig.clone(),
            committer: sig,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        self.put_object(pack, &commit)
    }

    /// Creates the checkpoint's ref pointing at `commit`. Create-only: ids are never reused, so
    /// an existing ref belongs to another checkpoint and must never be overwritten.
    pub(crate) fn set_ref(&self, id: CheckpointId, commit: ObjectId) -> Result<()> {
        let name = checkpoint_ref(id);
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: false,
                    message: "checkpoint".into(),
                },
                expected: PreviousValue::MustNotExist,
                new: Target::Object(commit),
            },
            name: name.as_str().try_into().map_err(|e| self.err(e))?,
            deref: false,
        };
        self.repo.edit_reference(edit).map_err(|e| self.err(format!("{name}: {e}")))?;
        if self.durable {
            let file = self.path.join(&name);
            crate::fs::sync_file_and_dir(&file)?;
        }
        Ok(())
    }

    /// Removes a checkpoint's ref; absent is fine.
    pub(crate) fn delete_ref(&self, id: CheckpointId) -> Result<bool> {
        let name = checkpoint_ref(id);
        if self.repo.try_find_reference(name.as_str()).map_err(|e| self.err(e))?.is_none() {
            return Ok(false);
        }
        let edit = RefEdit {
            change: Change::Delete { expected: PreviousValue::Any, log: RefLog::AndReference },
            name: name.as_str().try_into().map_err(|e| self.err(e))?,
            deref: false,
        };
        self.repo.edit_reference(edit).map_err(|e| self.err(format!("{name}: {e}")))?;
        Ok(true)
    }

    /// The commit a checkpoint's ref points at, if the ref exists.
    pub(crate) fn ref_target(&self, id: CheckpointId) -> Result<Option<ObjectId>> {
        let found = self.repo.try_find_reference(checkpoint_ref(id).as_str()).map_err(|e| self.err(e))?;
        Ok(found.and_then(|r| r.target().try_id().map(ToOwned::to_owned)))
    }

    /// Every checkpoint ref: (checkpoint id, commit). Refs with a non-numeric name are skipped.
    pub(crate) fn list_refs(&self) -> Result<Vec<(CheckpointId, ObjectId)>> {
        let platform = self.repo.references().map_err(|e| self.err(e))?;
        let iter = platform.prefixed(REF_PREFIX).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in iter {
            let r = r.map_err(|e| self.err(e))?;
            let name = r.name().as_bstr().to_string();
            let Some(id) = name.strip_prefix(REF_PREFIX).and_then(|s| s.parse::<CheckpointId>().ok()) else {
                continue;
            };
            if let Some(oid) = r.target().try_id() {
                out.push((id, oid.to_owned()));
            }
        }
        out.sort_by_key(|(id, _)| *id);
        Ok(out)
    }

    /// The root tree of a commit.
    pub(crate) fn commit_tree(&self, commit: ObjectId) -> Result<ObjectId> {
        let c = self.repo.find_commit(commit).map_err(|e| self.err(format!("commit {commit}: {e}")))?;
        self.verified(commit, gix::object::Kind::Commit, &c.data)?;
        c.tree_id().map(|id| id.detach()).map_err(|e| self.err(format!("commit {commit}: {e}")))
    }

    /// Checks that `data` hashes to `oid`: the store is writable by code running in the
    /// project, so an object is trusted only once its content matches its name.
    fn verified(&self, oid: ObjectId, kind: gix::object::Kind, data: &[u8]) -> Result<()> {
        let actual = gix::objs::compute_hash(oid.kind(), kind, data)
            .map_err(|e| self.err(format!("{kind} {oid}: cannot hash it: {e}")))?;
        if actual != oid {
            return Err(self.err(format!("{kind} {oid} is corrupt: its content hashes to {actual}")));
        }
        Ok(())
    }

    /// The direct entries of a tree (not recursive).
    pub(crate) fn tree_entries(&self, tree: ObjectId) -> Result<Vec<RawEntry>> {
        let t = self.repo.find_tree(tree).map_err(|e| self.err(format!("tree {tree}: {e}")))?;
        self.verified(tree, gix::object::Kind::Tree, &t.data)?;
        let decoded = t.decode().map_err(|e| self.err(format!("tree {tree}: {e}")))?;
        Ok(decoded
            .entries
            .iter()
            .map(|e| RawEntry { path: e.filename.to_vec(), mode: e.mode, oid: e.oid.to_owned() })
            .collect())
    }

    /// The entry named `name` directly inside `tree`.
    pub(crate) fn child(&self, tree: ObjectId, name: &str) -> Result<Option<RawEntry>> {
        Ok(self.tree_entries(tree)?.into_iter().find(|e| e.path == name.as_bytes()))
    }

    /// An object's kind and data, checked against its id.
    pub(crate) fn read_verified(&self, oid: ObjectId) -> Result<(gix::objs::Kind, Vec<u8>)> {
        let object = self.repo.find_object(oid).map_err(|e| self.err(format!("object {oid}: {e}")))?;
        self.verified(oid, object.kind, &object.data)?;
        Ok((object.kind, object.data.clone()))
    }

    /// An object's size, from its header (its data is not read).
    pub(crate) fn object_size(&self, oid: ObjectId) -> Result<u64> {
        Ok(self.repo.find_header(oid).map_err(|e| self.err(format!("object {oid}: {e}")))?.size())
    }

    pub(crate) fn read_blob(&self, oid: ObjectId) -> Result<Vec<u8>> {
        let blob = self.repo.find_blob(oid).map_err(|e| self.err(format!("blob {oid}: {e}")))?;
        self.verified(oid, gix::object::Kind::Blob, &blob.data)?;
        Ok(blob.data.clone())
    }

    /// Reads every object reachable from `commit` and checks it against its id: returns how
    /// many were checked and what is missing, truncated or corrupt (empty: complete).
    pub(crate) fn check_objects(&self, commit: ObjectId) -> Result<(usize, Vec<String>)> {
        if !self.has_object(&commit) {
            return Ok((1, vec![format!("commit {commit} is missing")]));
        }
        let mut checked = 1;
        let mut problems = Vec::new();
        let tree = match self.commit_tree(commit) {
            Ok(tree) => tree,
            Err(e) => return Ok((checked, vec![e.to_string()])),
        };
        let mut stack = vec![(String::new(), tree)];
        while let Some((prefix, tree)) = stack.pop() {
            checked += 1;
            if !self.has_object(&tree) {
                problems.push(format!("tree {tree} ({prefix}) is missing"));
                continue;
            }
            let entries = match self.tree_entries(tree) {
                Ok(entries) => entries,
                Err(e) => {
                    problems.push(format!("{e} ({prefix})"));
                    continue;
                }
            };
            for e in entries {
                let path = format!("{prefix}/{}", String::from_utf8_lossy(&e.path));
                if e.mode.is_tree() {
                    stack.push((path, e.oid));
                } else if e.mode.is_commit() {
                    checked += 1; // a submodule commit lives elsewhere, as in git
                } else {
                    checked += 1;
                    if !self.has_object(&e.oid) {
                        problems.push(format!("blob {} ({path}) is missing", e.oid));
                    } else if let Err(err) = self.read_blob(e.oid) {
                        problems.push(format!("{err} ({path})"));
                    }
                }
            }
        }
        Ok((checked, problems))
    }
}
