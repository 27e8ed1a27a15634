//! `doctor`: what is wrong with a home, and the command that fixes each thing.

use std::path::Path;

use codeframe_models::{CheckpointId, Project, ProjectId};
use codeframe_persistence::{projects, schema_version};
use serde::Serialize;
use tracing::info;

use crate::{ProjectService, Result};

/// What [`ProjectService::doctor`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DoctorReport {
    /// No finding needs a fix.
    pub healthy: bool,
    /// The database's schema version.
    pub schema_version: i64,
    /// Projects looked at.
    pub projects_checked: usize,
    /// Checkpoints verified (every object read and checked against its id).
    pub checkpoints_checked: usize,
    /// What was found, worst first within each project.
    pub findings: Vec<Finding>,
}

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// `database_damaged`, `root_missing`, `commit_missing`, `checkpoint_damaged`, or, repaired
    /// while checking (no fix needed), `orphan_refs_removed` and `interrupted_restore_settled`.
    pub kind: &'static str,
    /// The project concerned.
    pub project_id: Option<ProjectId>,
    /// The checkpoint concerned.
    pub checkpoint_id: Option<CheckpointId>,
    /// What is wrong.
    pub message: String,
    /// The command that fixes it (`None`: nothing to do).
    pub fix: Option<String>,
}

impl ProjectService {
    /// Checks the whole home: the database's integrity, every project's root, every
    /// checkpoint's objects; removes refs left by transactions that never committed and settles
    /// file restores a crash interrupted (as opening a project does). Changes nothing else.
    pub async fn doctor(&self) -> Result<DoctorReport> {
        let mut findings = Vec::new();
        let integrity = self.inner.db.integrity_check().await?;
        if integrity != ["ok"] {
            findings.push(Finding {
                kind: "database_damaged",
                project_id: None,
                checkpoint_id: None,
                message: format!("integrity check: {}", integrity.join("; ")),
                fix: Some(
                    "codeframe restore-backup FILE --yes (with every codeframe process stopped)".into(),
                ),
            });
        }
        let all = projects::list(&mut self.inner.db.conn().await?).await?;
        let mut checkpoints_checked = 0;
        for p in &all {
            checkpoints_checked += self.check_project(p, &mut findings).await?;
        }
        let healthy = findings.iter().all(|f| f.fix.is_none());
        info!(
            healthy,
            projects = all.len(),
            checkpoints = checkpoints_checked,
            findings = findings.len(),
            "doctor done"
        );
        Ok(DoctorReport {
            healthy,
            schema_version: schema_version(),
            projects_checked: all.len(),
            checkpoints_checked,
            findings,
        })
    }

    async fn check_project(&self, p: &Project, findings: &mut Vec<Finding>) -> Result<usize> {
        let on = |kind, checkpoint_id, message, fix| Finding {
            kind,
            project_id: Some(p.id),
            checkpoint_id,
            message,
            fix,
        };
        let who = format!("codeframe --project {}", p.id);
        if !Path::new(&p.root_path).is_dir() {
            findings.push(on(
                "root_missing",
                None,
                format!("project {} ({}): its root {} is not a directory", p.id, p.name, p.root_path),
                Some(format!("{who} project move --root DIR   (the directory's new place)")),
            ));
            if p.store_path.is_none() {
                // Its store was in the tree: nothing more to check until it is found.
                return Ok(0);
            }
        }
        let checkpoints = &self.inner.checkpoints;
        let reconciled = checkpoints.reconcile(p.id).await?;
        if !reconciled.removed_refs.is_empty() {
            findings.push(on(
                "orphan_refs_removed",
                None,
                format!(
                    "project {}: removed refs of checkpoints that never committed: {:?}",
                    p.id, reconciled.removed_refs
                ),
                None,
            ));
        }
        if let Some(settled) = &reconciled.interrupted_restore {
            findings.push(on(
                "interrupted_restore_settled",
                None,
                format!(
                    "project {}: a restore of {} files was interrupted by a crash; {}",
                    p.id,
                    settled.files,
                    if settled.committed {
                        "it had committed, and was completed"
                    } else {
                        "it had not committed, and every file was put back"
                    }
                ),
                None,
            ));
        }
        let fix_for = |id: CheckpointId| {
            if p.pause_checkpoint_id == Some(id) {
                format!("{who} resume --force   (the pause checkpoint cannot be read)")
            } else {
                format!("{who} checkpoints delete {id}")
            }
        };
        for id in &reconciled.missing_commits {
            findings.push(on(
                "commit_missing",
                Some(*id),
                format!("project {}: checkpoint {id} names a commit the store does not have", p.id),
                Some(fix_for(*id)),
            ));
        }
        let mut checked = 0;
        for cp in checkpoints.list(p.id).await? {
            if reconciled.missing_commits.contains(&cp.id) {
                continue;
            }
            checked += 1;
            let report = checkpoints.verify(p.id, cp.id).await?;
            if !report.ok() {
                let mut problems = report.problems.clone();
                problems.truncate(5);
                findings.push(on(
                    "checkpoint_damaged",
                    Some(cp.id),
                    format!("project {}: checkpoint {}: {}", p.id, cp.id, problems.join("; ")),
                    Some(fix_for(cp.id)),
                ));
            }
        }
        Ok(checked)
    }
}
