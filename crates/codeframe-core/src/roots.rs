//! Project roots a server accepts: confined to its workspace roots, never overlapping another
//! project, and described in errors without revealing anything outside the allowed area.

use std::path::{Component, Path, PathBuf};

use codeframe_models::{NewProject, Project, ProjectId, validate};
use codeframe_persistence::projects;
use tracing::info;

use crate::{ConflictKind, CoreError, ProjectService, Result};

/// Longest root path accepted.
const ROOT_PATH_MAX: usize = 4096;

/// `path` with `.` and `..` resolved without touching the filesystem; `None` unless absolute.
fn lexically_normal(path: &Path) -> Option<PathBuf> {
    if !path.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => out.push(c.as_os_str()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
        }
    }
    Some(out)
}

/// Whether two roots are the same, or one contains the other.
fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

impl ProjectService {
    fn forbidden_root(&self) -> CoreError {
        if self.inner.config.workspace_roots.is_empty() {
            return CoreError::Forbidden(
                "this server does not create projects: start it with --workspace-root DIR to allow project roots \
                 under DIR"
                    .into(),
            );
        }
        CoreError::Forbidden(
            "a project root must be a directory under one of the server's workspace roots".into(),
        )
    }

    /// A project root a server accepts: a directory under a workspace root (not the root
    /// itself), checked lexically first and again after following links.
    fn served_root(&self, root_path: &str) -> Result<PathBuf> {
        let workspaces = &self.inner.config.workspace_roots;
        // Lexically first: nothing outside the allowed area is ever looked at.
        let normal = lexically_normal(Path::new(root_path)).ok_or_else(|| self.forbidden_root())?;
        if !workspaces.iter().any(|w| normal.starts_with(w) && normal != *w) {
            return Err(self.forbidden_root());
        }
        let canonical = normal.canonicalize().map_err(|_| CoreError::BadRoot {
            path: root_path.to_owned(),
            reason: "no such directory".into(),
        })?;
        // A symbolic link inside a workspace may point anywhere: check where it led.
        if !workspaces.iter().any(|w| canonical.starts_with(w) && canonical != *w) {
            return Err(self.forbidden_root());
        }
        if !canonical.is_dir() {
            return Err(CoreError::BadRoot { path: root_path.to_owned(), reason: "not a directory".into() });
        }
        Ok(canonical)
    }

    /// Re-points a project whose directory moved (paused or not): its root becomes `root`, an
    /// existing directory, stored canonical. A root overlapping another project's is refused.
    /// A store kept in the project tree (`.codeframe/snapshots.git`) moved with it; a store
    /// kept by a server stays where it is.
    pub async fn move_project(&self, id: ProjectId, root: &Path) -> Result<Project> {
        let path = root.to_string_lossy().into_owned();
        let canonical = root
            .canonicalize()
            .map_err(|e| CoreError::BadRoot { path: path.clone(), reason: e.to_string() })?;
        if !canonical.is_dir() {
            return Err(CoreError::BadRoot { path, reason: "not a directory".into() });
        }
        self.repoint(id, &canonical).await
    }

    /// [`ProjectService::move_project`] under a server's rules: the new root must lie under a
    /// workspace root, as for [`ProjectService::create_served_project`].
    pub async fn move_served_project(&self, id: ProjectId, root_path: &str) -> Result<Project> {
        if root_path.len() > ROOT_PATH_MAX {
            return Err(CoreError::Invalid(codeframe_models::ModelError::Invalid {
                field: "root_path",
                reason: format!("limited to {ROOT_PATH_MAX} bytes"),
            }));
        }
        let canonical = self.served_root(root_path)?;
        self.repoint(id, &canonical).await
    }

    async fn repoint(&self, id: ProjectId, canonical: &Path) -> Result<Project> {
        let now = self.now();
        let mut tx = self.inner.db.begin().await?;
        let mut project =
            projects::find(&mut tx, id).await?.ok_or_else(|| CoreError::project_not_found(id))?;
        let others = projects::list(&mut tx).await?;
        if others.iter().any(|p| p.id != id && overlaps(Path::new(&p.root_path), canonical)) {
            return Err(CoreError::Conflict(ConflictKind::RootOverlaps));
        }
        let from = std::mem::replace(&mut project.root_path, canonical.to_string_lossy().into_owned());
        let moved = projects::update(&mut tx, &project, now).await?;
        tx.commit().await?;
        info!(project_id = %id, from = %from, to = %moved.root_path, "project root moved");
        Ok(moved)
    }

    /// Creates a project for a server's user: the root must lie under one of the configured
    /// workspace roots (after resolving symbolic links), and may not equal, contain or lie
    /// inside another project's root. Its snapshot store goes under the configured stores
    /// directory, out of reach of the code running in the tree. An error about a root outside
    /// the workspace roots says only that: never whether the path exists.
    pub async fn create_served_project(&self, mut new: NewProject) -> Result<Project> {
        validate::project_name(&new.name)?;
        if new.root_path.len() > ROOT_PATH_MAX || new.description.chars().count() > 2000 {
            return Err(CoreError::Invalid(codeframe_models::ModelError::Invalid {
                field: "project",
                reason: format!(
                    "root_path is limited to {ROOT_PATH_MAX} bytes and description to 2000 characters"
                ),
            }));
        }
        let canonical = self.served_root(&new.root_path)?;
        new.root_path = canonical.to_string_lossy().into_owned();
        let now = self.now();
        let mut tx = self.inner.db.begin().await?;
        // Decided under the write lock: no other project can be created in between.
        if projects::list(&mut tx).await?.iter().any(|p| overlaps(Path::new(&p.root_path), &canonical)) {
            return Err(CoreError::Conflict(ConflictKind::RootOverlaps));
        }
        let name = new.name.clone();
        let mut p = projects::insert(&mut tx, &new, now)
            .await
            .map_err(|e| CoreError::from_unique(e, || ConflictKind::NameTaken { name }))?;
        if let Some(dir) = &self.inner.config.stores_dir {
            let store = dir.join(format!("{}.git", p.id)).to_string_lossy().into_owned();
            projects::set_store_path(&mut tx, p.id, &store).await?;
            p.store_path = Some(store);
        }
        tx.commit().await?;
        info!(project_id = %p.id, name = %p.name, root = %p.root_path, owner = ?p.owner_id, "served project created");
        Ok(p)
    }
}

/// Checks a server's settings: workspace roots are existing directories (returned resolved),
/// and `home` (the server's own data) lies in none of them, where code running in a project
/// tree could reach it.
pub fn resolve_workspace_roots(roots: &[PathBuf], home: &Path) -> Result<Vec<PathBuf>> {
    let home = home.canonicalize().map_err(|e| CoreError::BadRoot {
        path: home.display().to_string(),
        reason: format!("the server's home: {e}"),
    })?;
    let mut resolved = Vec::new();
    for root in roots {
        let canonical = root.canonicalize().ok().filter(|r| r.is_dir()).ok_or_else(|| {
            CoreError::BadRoot { path: root.display().to_string(), reason: "not a directory".into() }
        })?;
        if home.starts_with(&canonical) {
            return Err(CoreError::Forbidden(format!(
                "the server's home {} lies inside the workspace root {}: code running in a project could reach it",
                home.display(),
                canonical.display()
            )));
        }
        resolved.push(canonical);
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_are_normalised_without_the_filesystem() {
        assert_eq!(lexically_normal(Path::new("/a/./b/../c")), Some(PathBuf::from("/a/c")));
        assert_eq!(lexically_normal(Path::new("/../../etc")), Some(PathBuf::from("/etc")));
        assert_eq!(lexically_normal(Path::new("relative/x")), None);
        assert!(overlaps(Path::new("/w/a"), Path::new("/w/a/b")));
        assert!(overlaps(Path::new("/w/a/b"), Path::new("/w/a")));
        assert!(overlaps(Path::new("/w/a"), Path::new("/w/a")));
        assert!(!overlaps(Path::new("/w/a"), Path::new("/w/ab")), "a sibling with a longer name");
    }
}
