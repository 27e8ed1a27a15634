//! Validation of paths read from a checkpoint tree, before anything is written.

use gix::ObjectId;

use crate::store::{FileEntry, FileKind, Store};
use crate::{CheckpointError, Result};

/// The longest file name Linux filesystems take, in bytes.
const NAME_MAX: usize = 255;

/// Whether a single tree entry name is safe to create inside a directory.
fn check_name(parent: &[u8], name: &[u8]) -> Result<()> {
    let shown = || {
        let mut p = parent.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(name);
        p
    };
    let reason = if name.is_empty() {
        Some("empty name")
    } else if name == b"." || name == b".." {
        Some("a `.` or `..` component")
    } else if name.contains(&b'/') {
        Some("a `/` inside a name (an absolute or nested path)")
    } else if name.contains(&0) {
        Some("a NUL byte")
    } else if name.len() > NAME_MAX {
        Some("a name longer than a file name may be (255 bytes)")
    } else if name.eq_ignore_ascii_case(b".git") {
        Some("a `.git` entry")
    } else if name.eq_ignore_ascii_case(b".codeframe") {
        Some("a `.codeframe` entry")
    } else {
        None
    };
    match reason {
        Some(r) => Err(CheckpointError::unsafe_path(&shown(), r)),
        None => Ok(()),
    }
}

/// Every file under the `files/` tree, each name validated, duplicates refused.
/// Submodule entries (commits) are skipped, as git does without the submodule.
pub(crate) fn files_of(store: &Store, files_tree: ObjectId) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let mut stack = vec![(Vec::<u8>::new(), files_tree)];
    while let Some((prefix, tree)) = stack.pop() {
        let entries = store.tree_entries(tree)?;
        let mut names: Vec<&[u8]> = entries.iter().map(|e| e.path.as_slice()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(CheckpointError::unsafe_path(w[0], "the same name twice in one directory"));
        }
        for e in entries {
            check_name(&prefix, &e.path)?;
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&e.path);
            if e.mode.is_tree() {
                stack.push((path, e.oid));
            } else if let Some(kind) = FileKind::from_mode(e.mode) {
                out.push(FileEntry { path, kind, oid: e.oid });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc", b"x\0y", b".git", b".GIT", b".codeframe"] {
            assert!(check_name(b"dir", bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        for good in [&b"a"[..], b"..a", b".gitignore", b"\xff\xfe", b"with space"] {
            assert!(check_name(b"", good).is_ok());
        }
    }

    /// Whether joining `name` to a root could leave it, or name anything but one entry of it.
    fn escapes(name: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let root = std::path::Path::new("/project/root");
        let joined = root.join(std::ffi::OsStr::from_bytes(name));
        let parts: Vec<_> = joined.components().collect();
        joined.parent() != Some(root)
            || parts.len() != root.components().count() + 1
            || parts
                .iter()
                .any(|c| !matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_)))
    }

    /// Hostile names: traversal, separators, NUL, backslashes, overlong names, Unicode
    /// look-alikes of `.` and `/`, and arbitrary bytes.
    fn hostile() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let pieces = prop_oneof![
            Just(b"..".to_vec()),
            Just(b".".to_vec()),
            Just(b"/".to_vec()),
            Just(b"\\".to_vec()),
            Just(vec![0u8]),
            Just("\u{FF0E}\u{FF0E}".as_bytes().to_vec()), // fullwidth full stops
            Just("\u{2215}".as_bytes().to_vec()),         // division slash
            Just("\u{2024}\u{2024}".as_bytes().to_vec()), // one dot leaders
            Just(b".git".to_vec()),
            Just(b".GiT".to_vec()),
            Just(b".codeframe".to_vec()),
            proptest::collection::vec(any::<u8>(), 1..8),
            "[a-z]{1,8}".prop_map(String::into_bytes),
        ];
        proptest::collection::vec(pieces, 1..6).prop_map(|v| v.concat())
    }

    proptest::proptest! {
        #[test]
        fn an_accepted_name_never_leaves_its_directory(name in hostile()) {
            if check_name(b"dir", &name).is_ok() {
                proptest::prop_assert!(!escapes(&name), "accepted {:?}", String::from_utf8_lossy(&name));
                proptest::prop_assert!(name.len() <= NAME_MAX);
                proptest::prop_assert!(!name.contains(&0));
            }
        }

        #[test]
        fn traversal_separators_nul_and_overlong_names_are_refused(
            name in hostile(),
            pad in 0usize..300,
        ) {
            let mut long = name.clone();
            long.extend(std::iter::repeat_n(b'x', pad));
            for candidate in [name, long] {
                let must_refuse = candidate.is_empty()
                    || candidate == b"."
                    || candidate == b".."
                    || candidate.contains(&b'/')
                    || candidate.contains(&0)
                    || candidate.len() > NAME_MAX
                    || candidate.eq_ignore_ascii_case(b".git")
                    || candidate.eq_ignore_ascii_case(b".codeframe");
                if must_refuse {
                    proptest::prop_assert!(check_name(b"dir", &candidate).is_err());
                }
            }
        }
    }
}
