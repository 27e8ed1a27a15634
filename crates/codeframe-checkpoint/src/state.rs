//! The project's own rows as deterministic JSON: sorted keys, stable order, so identical state
//! gives identical blobs (and is stored once).

use codeframe_models::{Agent, AgentAssignment, ContextItem, Project, ProjectId, Task, TokenUsage};
use codeframe_persistence::{Executor, agents, context, projects, tasks, token_usage};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{CheckpointError, Result};

/// Context items per `state/context/NNNNNN.jsonl` blob: a change rewrites one chunk, not all.
pub(crate) const CONTEXT_CHUNK: usize = 1_000;

/// Everything a checkpoint holds of the database for one project.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectState {
    /// The project row.
    pub project: Project,
    /// Agents with any assignment to the project.
    pub agents: Vec<Agent>,
    /// The project's assignments, active and ended.
    pub assignments: Vec<AgentAssignment>,
    /// The project's tasks.
    pub tasks: Vec<Task>,
    /// The project's token usage.
    pub token_usage: Vec<TokenUsage>,
    /// Every context item of the project, active and archived, by id.
    pub context_items: Vec<ContextItem>,
}

impl ProjectState {
    /// Reads the project's rows through `ex` (inside a transaction, a consistent snapshot).
    pub async fn read(ex: &mut impl Executor, project_id: ProjectId) -> Result<Self> {
        let project =
            projects::find(ex, project_id).await?.ok_or(CheckpointError::UnknownProject(project_id))?;
        Ok(Self {
            project,
            agents: agents::list_for_project(ex, project_id).await?,
            assignments: agents::assignments(ex, project_id).await?,
            tasks: tasks::list(ex, project_id).await?,
            token_usage: token_usage::list(ex, project_id).await?,
            context_items: context::list_for_project(ex, project_id).await?,
        })
    }
}

/// Writes `v` as JSON with object keys sorted at every level.
pub(crate) fn canonical_json<T: Serialize>(file: &str, v: &T) -> Result<Vec<u8>> {
    let value = serde_json::to_value(v).map_err(|e| state_err(file, e))?;
    let mut out = Vec::new();
    write_canonical(&value, &mut out).map_err(|e| state_err(file, e))?;
    Ok(out)
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                if let Some(child) = map.get(k) {
                    write_canonical(child, out)?;
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

/// One item per line, in the order given (by id).
pub(crate) fn jsonl<T: Serialize>(file: &str, items: &[T]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(items.len() * 512);
    for item in items {
        out.extend(canonical_json(file, item)?);
        out.push(b'\n');
    }
    Ok(out)
}

pub(crate) fn parse<T: DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| state_err(file, e))
}

pub(crate) fn parse_jsonl<T: DeserializeOwned>(file: &str, bytes: &[u8]) -> Result<Vec<T>> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| state_err(file, e)))
        .collect()
}

fn state_err(file: &str, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::State { file: file.to_owned(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_at_every_level() {
        let v = serde_json::json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": null}});
        let out = canonical_json("t", &v).ok().map(|b| String::from_utf8_lossy(&b).into_owned());
        assert_eq!(out.as_deref(), Some(r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#));
    }
}
