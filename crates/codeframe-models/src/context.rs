use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::status::wire_enum;
use crate::{AgentId, ContextItemId, FlashSaveId, ModelError, ProjectId, timestamp};

/// Kind of a context item; decides its weight in the importance score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ItemType {
    /// A task description or note (weight 1.0).
    Task,
    /// Source code (weight 0.8).
    Code,
    /// An error message (weight 0.7).
    Error,
    /// A test result (weight 0.6).
    TestResult,
    /// A section of a product requirements document (weight 0.5).
    PrdSection,
}

wire_enum!(ItemType, "item type", {
    Task => "TASK", Code => "CODE", Error => "ERROR",
    TestResult => "TEST_RESULT", PrdSection => "PRD_SECTION",
});

/// Importance tier of a context item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Tier {
    /// Score ≥ 0.8: always kept in the agent's working context.
    Hot,
    /// 0.4 ≤ score < 0.8.
    Warm,
    /// Score < 0.4: archived by a flash save.
    Cold,
}

wire_enum!(Tier, "tier", { Hot => "hot", Warm => "warm", Cold => "cold" });

/// One item of an agent's context, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContextItem {
    /// UUID of the item.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: ContextItemId,
    /// Project the item belongs to.
    pub project_id: ProjectId,
    /// Agent whose context holds the item.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    /// Kind of the item.
    pub item_type: ItemType,
    /// The text itself.
    pub content: String,
    /// `cl100k_base` token count of `content`, computed once when written.
    pub token_count: i64,
    /// Importance score in [0, 1] (see [`crate::scoring`]).
    pub importance_score: f64,
    /// Tier derived from the score when it was last computed.
    pub tier: Tier,
    /// Number of accesses.
    pub access_count: i64,
    /// When the item was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the item was last accessed.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub last_accessed: OffsetDateTime,
    /// When a flash save archived the item; `None` while active.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(with = "timestamp::rfc3339::option")]
    pub archived_at: Option<OffsetDateTime>,
    /// The flash save that archived the item.
    pub archived_by_flash_save: Option<FlashSaveId>,
}

impl ContextItem {
    /// Whether the item is in the active set (not archived).
    pub fn is_active(&self) -> bool {
        self.archived_at.is_none()
    }
}

/// What a caller supplies to add a context item; the rest is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewContextItem {
    /// Agent whose context receives the item.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    /// Kind of the item.
    pub item_type: ItemType,
    /// The text.
    pub content: String,
    /// Creation time, for imports; defaults to now.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    #[serde(default, with = "timestamp::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<OffsetDateTime>,
    /// Access count, for imports; defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_count: Option<i64>,
}

/// Item counts and token sums per tier, over active items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TierTotals {
    /// Active HOT items.
    pub hot_items: i64,
    /// Active WARM items.
    pub warm_items: i64,
    /// Active COLD items.
    pub cold_items: i64,
    /// Tokens in active HOT items.
    pub hot_tokens: i64,
    /// Tokens in active WARM items.
    pub warm_tokens: i64,
    /// Tokens in active COLD items.
    pub cold_tokens: i64,
}

impl TierTotals {
    /// Total active tokens.
    pub const fn total_tokens(&self) -> i64 {
        self.hot_tokens + self.warm_tokens + self.cold_tokens
    }

    /// Total active items.
    pub const fn total_items(&self) -> i64 {
        self.hot_items + self.warm_items + self.cold_items
    }

    /// Adds another set of totals to this one.
    pub fn add(&mut self, other: &TierTotals) {
        self.hot_items += other.hot_items;
        self.warm_items += other.warm_items;
        self.cold_items += other.cold_items;
        self.hot_tokens += other.hot_tokens;
        self.warm_tokens += other.warm_tokens;
        self.cold_tokens += other.cold_tokens;
    }
}

/// The record a flash save leaves (one `flash_saves` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlashSave {
    /// Row id.
    pub id: FlashSaveId,
    /// Project of the agent.
    pub project_id: ProjectId,
    /// Agent whose context was saved.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    /// Active tokens before archiving.
    pub tokens_before: i64,
    /// Active tokens after archiving.
    pub tokens_after: i64,
    /// Active items before archiving.
    pub items_count: i64,
    /// Items archived (the COLD ones).
    pub items_archived: i64,
    /// HOT items kept active.
    pub hot_items_retained: i64,
    /// WARM items kept active.
    pub warm_items_retained: i64,
    /// When it ran.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    #[serde(with = "timestamp::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The result of one flash save, with the reference's fields plus the record's id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlashSaveReport {
    /// Id of the `flash_saves` row (the reference's `checkpoint_id`).
    pub flash_save_id: FlashSaveId,
    /// Agent whose context was saved.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub agent_id: AgentId,
    /// Active tokens before.
    pub tokens_before: i64,
    /// Active tokens after.
    pub tokens_after: i64,
    /// (before − after) / before × 100, rounded to 2 decimals; 0 when before is 0.
    pub reduction_percentage: f64,
    /// COLD items archived.
    pub items_archived: i64,
    /// HOT items kept.
    pub hot_items_retained: i64,
    /// WARM items kept.
    pub warm_items_retained: i64,
}

/// (before − after) / before × 100, rounded to 2 decimals; 0.0 when `before` is 0.
pub fn reduction_percentage(before: i64, after: i64) -> f64 {
    if before <= 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let pct = (before - after) as f64 / before as f64 * 100.0;
    (pct * 100.0).round() / 100.0
}

impl FlashSaveReport {
    /// Builds the report of a flash-save record.
    pub fn from_record(r: &FlashSave) -> Self {
        Self {
            flash_save_id: r.id,
            agent_id: r.agent_id.clone(),
            tokens_before: r.tokens_before,
            tokens_after: r.tokens_after,
            reduction_percentage: reduction_percentage(r.tokens_before, r.tokens_after),
            items_archived: r.items_archived,
            hot_items_retained: r.hot_items_retained,
            warm_items_retained: r.warm_items_retained,
        }
    }
}

impl std::str::FromStr for NewContextItem {
    type Err = ModelError;

    /// Parses one JSON object (a line of an import file).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_str(s)
            .map_err(|e| ModelError::Invalid { field: "context item", reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_types_use_upper_case_wire_names() {
        assert_eq!(serde_json::to_string(&ItemType::TestResult).ok().as_deref(), Some("\"TEST_RESULT\""));
        assert_eq!("PRD_SECTION".parse::<ItemType>(), Ok(ItemType::PrdSection));
        for t in ItemType::ALL {
            assert_eq!(serde_json::from_value::<ItemType>(serde_json::json!(t.as_str())).ok(), Some(*t));
        }
    }

    #[test]
    fn unknown_item_type_is_rejected_at_parse_time() {
        assert!(matches!(
            "NOTE".parse::<ItemType>(),
            Err(ModelError::UnknownVariant { kind: "item type", .. })
        ));
        assert!("task".parse::<ItemType>().is_err(), "wire names are case sensitive");
        let line = r#"{"agent_id":"a","item_type":"NOTE","content":"x"}"#;
        assert!(line.parse::<NewContextItem>().is_err());
    }

    #[test]
    fn tiers_are_lower_case_on_the_wire() {
        assert_eq!(serde_json::to_string(&Tier::Hot).ok().as_deref(), Some("\"hot\""));
        assert!(serde_json::from_str::<Tier>("\"HOT\"").is_err());
    }

    #[test]
    fn reduction_percentage_rounds_to_two_decimals_and_handles_zero() {
        assert_eq!(reduction_percentage(0, 0), 0.0);
        assert_eq!(reduction_percentage(120_000, 45_000), 62.5);
        assert_eq!(reduction_percentage(3, 2), 33.33);
        assert_eq!(reduction_percentage(3, 1), 66.67);
        assert_eq!(reduction_percentage(10, 10), 0.0);
    }

    #[test]
    fn new_item_line_parses_optional_fields() {
        let line = r#"{"agent_id":"a","item_type":"CODE","content":"fn x","created_at":"2026-01-01T00:00:00Z","access_count":4}"#;
        let item: Result<NewContextItem, _> = line.parse();
        assert!(matches!(item, Ok(NewContextItem { access_count: Some(4), created_at: Some(_), .. })));
    }

    #[test]
    fn tier_totals_add_up() {
        let mut a = TierTotals { hot_items: 1, hot_tokens: 10, ..Default::default() };
        a.add(&TierTotals { cold_items: 2, cold_tokens: 5, ..Default::default() });
        assert_eq!((a.total_items(), a.total_tokens()), (3, 15));
    }
}
