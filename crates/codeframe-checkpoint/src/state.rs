//! The project's own rows as deterministic JSON: sorted keys, stable order, so identical state
//! gives identical blobs (and is stored once).

use codeframe_models::{
    Agent, AgentAssignment, ContextItem, FlashSaveId, Project, ProjectId, Task, TokenUsage,
};
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
        let mut state = Self::read_rows(ex, project_id).await?;
        state.context_items = context::list_for_project(ex, project_id).await?;
        Ok(state)
    }

    /// [`ProjectState::read`] without the context items (left empty).
    pub async fn read_rows(ex: &mut impl Executor, project_id: ProjectId) -> Result<Self> {
        let project =
            projects::find(ex, project_id).await?.ok_or(CheckpointError::UnknownProject(project_id))?;
        Ok(Self {
            project,
            agents: agents::list_for_project(ex, project_id).await?,
            assignments: agents::assignments(ex, project_id).await?,
            tasks: tasks::list(ex, project_id).await?,
            token_usage: token_usage::list(ex, project_id).await?,
            context_items: Vec::new(),
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

/// A context item with its fields declared in sorted order, so serde writes canonical JSON
/// directly (no intermediate `Value`): the hot path of every pause.
#[derive(Serialize)]
struct ItemRecord<'a> {
    access_count: i64,
    agent_id: &'a str,
    #[serde(with = "codeframe_models::timestamp::rfc3339::option")]
    archived_at: Option<time::OffsetDateTime>,
    archived_by_flash_save: Option<FlashSaveId>,
    content: &'a str,
    #[serde(with = "codeframe_models::timestamp::rfc3339")]
    created_at: time::OffsetDateTime,
    id: &'a str,
    importance_score: f64,
    item_type: codeframe_models::ItemType,
    #[serde(with = "codeframe_models::timestamp::rfc3339")]
    last_accessed: time::OffsetDateTime,
    project_id: ProjectId,
    tier: codeframe_models::Tier,
    token_count: i64,
}

impl<'a> From<&'a ContextItem> for ItemRecord<'a> {
    fn from(i: &'a ContextItem) -> Self {
        Self {
            access_count: i.access_count,
            agent_id: &i.agent_id,
            archived_at: i.archived_at,
            archived_by_flash_save: i.archived_by_flash_save,
            content: &i.content,
            created_at: i.created_at,
            id: &i.id,
            importance_score: i.importance_score,
            item_type: i.item_type,
            last_accessed: i.last_accessed,
            project_id: i.project_id,
            tier: i.tier,
            token_count: i.token_count,
        }
    }
}

/// Context items, one canonical JSON object per line, in the order given (by id).
pub(crate) fn items_jsonl(file: &str, items: &[ContextItem]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(items.len() * 640);
    for item in items {
        serde_json::to_writer(&mut out, &ItemRecord::from(item)).map_err(|e| state_err(file, e))?;
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
    fn item_lines_are_canonical_and_match_the_generic_form() {
        let item = ContextItem {
            id: "i1".into(),
            project_id: ProjectId(1),
            agent_id: "a".into(),
            item_type: codeframe_models::ItemType::Code,
            content: "fn «x»() {}\n".into(),
            token_count: 5,
            importance_score: 0.123_456_789_012_345_67,
            tier: codeframe_models::Tier::Cold,
            access_count: 2,
            created_at: time::macros::datetime!(2026-01-01 0:00 UTC),
            last_accessed: time::macros::datetime!(2026-01-02 0:00 UTC),
            archived_at: Some(time::macros::datetime!(2026-01-03 0:00 UTC)),
            archived_by_flash_save: Some(FlashSaveId(4)),
        };
        let fast = items_jsonl("t", std::slice::from_ref(&item)).ok();
        let mut generic = canonical_json("t", &item).ok().unwrap_or_default();
        generic.push(b'\n');
        assert_eq!(fast, Some(generic));
        let back: Option<Vec<ContextItem>> = fast.and_then(|b| parse_jsonl("t", &b).ok());
        assert_eq!(back, Some(vec![item]));
    }

    #[test]
    fn keys_are_sorted_at_every_level() {
        // Structs serialize their fields in declaration order: these are declared unsorted, so
        // plain serde_json output differs from the canonical form.
        #[derive(Serialize)]
        struct Inner {
            z: Vec<Leaf>,
            c: Option<u8>,
        }
        #[derive(Serialize)]
        struct Leaf {
            y: u8,
            x: u8,
        }
        #[derive(Serialize)]
        struct Outer {
            b: u8,
            a: Inner,
        }
        let v = Outer { b: 1, a: Inner { z: vec![Leaf { y: 1, x: 2 }], c: None } };
        let plain = serde_json::to_string(&v).ok();
        assert_eq!(plain.as_deref(), Some(r#"{"b":1,"a":{"z":[{"y":1,"x":2}],"c":null}}"#));
        let out = canonical_json("t", &v).ok().map(|b| String::from_utf8_lossy(&b).into_owned());
        assert_eq!(out.as_deref(), Some(r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#));
    }
}
