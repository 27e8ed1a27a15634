//! Writing a checkpoint's rows and context back into the database.

use codeframe_models::{Checkpoint, CheckpointId, ContextItem, ProjectId};
use codeframe_persistence::{
    Executor, Tx, agents, checkpoints, context, projects, revisions, tasks, token_usage,
};
use gix::ObjectId;
use tracing::debug;

use crate::layout::{self};
use crate::state::{self, ProjectState};
use crate::store::Place;
use crate::{CheckpointError, Result};

use crate::git::GitCheckpointManager;
use crate::snapshot::*;
use crate::types::*;

impl GitCheckpointManager {
    /// Brings back the checkpoint's version of the items written since its revision, keeping
    /// items it does not hold; only the chunks holding such items are read, from the store and
    /// from the database. `None` when that cannot be known exactly (no recorded revision, items
    /// deleted since, no usable chunk index): the caller then reads everything. Returns the
    /// checkpoint's item count, as a full restore does.
    pub(crate) async fn restore_written_since(
        &self,
        tx: &mut Tx<'_>,
        project_id: ProjectId,
        cp: &Checkpoint,
        commit: ObjectId,
        place: &Place,
    ) -> Result<Option<usize>> {
        let Some(revision) = checkpoints::revision(tx, cp.id).await? else { return Ok(None) };
        if revisions::deleted_revision(tx, project_id).await? > revision {
            return Ok(None);
        }
        let written = context::ids_written_after(tx, project_id, revision).await?;
        let (place, checkpoint_id) = (place.clone(), cp.id);
        let read = blocking(move || {
            let store = open_store(&place, checkpoint_id)?;
            // No index, or one without a chunk (no item then): the whole read decides.
            let Some(chunks) = layout::read_index(&store, commit)?.filter(|c| !c.is_empty()) else {
                return Ok(None);
            };
            let dirty: std::collections::BTreeSet<usize> =
                written.iter().map(|id| layout::chunk_of(&chunks, id)).collect();
            let mut snapshot = read_state_rows(&store, checkpoint_id, commit)?;
            let mut ranges = Vec::with_capacity(dirty.len());
            for k in dirty {
                let (from, to) = layout::range_of(&chunks, k);
                ranges.push((from.map(str::to_owned), to.map(str::to_owned)));
                let name = format!("state/context/{k:06}.jsonl");
                let oid = chunks
                    .get(k)
                    .map(|c| c.oid)
                    .ok_or_else(|| layout::inconsistent("a chunk beyond the index"))?;
                snapshot
                    .context_items
                    .extend(state::parse_jsonl::<ContextItem>(&name, &store.read_blob(oid)?)?);
            }
            Ok(Some((snapshot, ranges)))
        })
        .await;
        let (snapshot, ranges) = match read {
            Ok(Some(found)) => found,
            Ok(None) => return Ok(None),
            Err(e) => return Err(unreadable_if_missing(cp.id, e)),
        };
        snapshot_belongs_to(&snapshot, project_id)
            .map_err(|reason| CheckpointError::Unreadable { id: cp.id, reason })?;
        let mut current = std::collections::HashMap::new();
        for (from, to) in &ranges {
            for item in context::list_id_range(tx, project_id, from.as_deref(), to.as_deref()).await? {
                current.insert(item.id.clone(), item);
            }
        }
        let changed: Vec<ContextItem> = snapshot
            .context_items
            .into_iter()
            .filter(|i| current.get(&i.id).is_none_or(|c| c != i))
            .collect();
        for a in &snapshot.agents {
            agents::insert_missing(tx, a).await?;
        }
        debug!(
            project_id = %project_id,
            checkpoint_id = %cp.id,
            revision,
            chunks_read = ranges.len(),
            changed = changed.len(),
            "context items differing from the checkpoint (written since it)"
        );
        context::upsert_many(tx, &changed).await?;
        Ok(Some(usize::try_from(cp.metadata.context_items_count).unwrap_or(0)))
    }

    /// Applies rows of a stored state through `ex`; returns the context items written.
    pub(crate) async fn apply_rows(
        ex: &mut impl Executor,
        project_id: ProjectId,
        checkpoint_id: CheckpointId,
        snapshot: ProjectState,
        what: RestoreWhat,
        now: time::OffsetDateTime,
    ) -> Result<usize> {
        snapshot_belongs_to(&snapshot, project_id)
            .map_err(|reason| CheckpointError::Unreadable { id: checkpoint_id, reason })?;
        if what.state {
            let current = projects::get(ex, project_id).await?;
            let restored = codeframe_models::Project {
                id: current.id,
                name: current.name.clone(),
                owner_id: current.owner_id,
                root_path: current.root_path.clone(),
                store_path: current.store_path.clone(),
                created_at: current.created_at,
                version: current.version,
                ..snapshot.project
            };
            projects::update(ex, &restored, now).await?;
            for a in &snapshot.agents {
                agents::upsert(ex, a).await?;
            }
            agents::replace_assignments(ex, project_id, &snapshot.assignments).await?;
            tasks::replace_for_project(ex, project_id, &snapshot.tasks).await?;
            token_usage::replace_for_project(ex, project_id, &snapshot.token_usage).await?;
        }
        let mut items = 0;
        if what.context {
            // Items need their agents to exist; an agent row that exists is shared with other
            // projects and stays as it is.
            for a in &snapshot.agents {
                agents::insert_missing(ex, a).await?;
            }
            items = snapshot.context_items.len();
            if what.keep_new_items {
                // Write back only what differs: after an untouched pause that is nothing, and
                // reading is far cheaper than rewriting every row.
                let current = context::list_for_project(ex, project_id).await?;
                let by_id: std::collections::HashMap<&str, &ContextItem> =
                    current.iter().map(|i| (i.id.as_str(), i)).collect();
                let changed: Vec<ContextItem> = snapshot
                    .context_items
                    .iter()
                    .filter(|i| by_id.get(i.id.as_str()).is_none_or(|c| *c != *i))
                    .cloned()
                    .collect();
                debug!(project_id = %project_id, changed = changed.len(), "context items differing from the checkpoint");
                context::upsert_many(ex, &changed).await?;
            } else {
                context::replace_for_project(ex, project_id, &snapshot.context_items).await?;
            }
        }
        Ok(items)
    }
}
