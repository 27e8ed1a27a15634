//! The importance score and tier assignment, exactly as the reference defines them.
//!
//! score = 0.4 · type_weight + 0.4 · e^(−0.5 · age_days) + 0.2 · min(ln(access_count + 1) / 10, 1),
//! clamped to [0, 1]. HOT when score ≥ 0.8, WARM when ≥ 0.4, otherwise COLD.

use time::OffsetDateTime;

use crate::{ItemType, Tier};

/// Share of the score given by the item type's weight.
pub const TYPE_SHARE: f64 = 0.4;
/// Share of the score given by age decay.
pub const AGE_SHARE: f64 = 0.4;
/// Share of the score given by access frequency.
pub const ACCESS_SHARE: f64 = 0.2;
/// Exponential decay rate per day (half-life ≈ 1.386 days).
pub const DECAY_RATE: f64 = 0.5;
/// Scores at or above this are HOT.
pub const HOT_THRESHOLD: f64 = 0.8;
/// Scores at or above this (and below [`HOT_THRESHOLD`]) are WARM.
pub const WARM_THRESHOLD: f64 = 0.4;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// The weight of an item type: TASK 1.0, CODE 0.8, ERROR 0.7, TEST_RESULT 0.6, PRD_SECTION 0.5.
pub const fn type_weight(item_type: ItemType) -> f64 {
    match item_type {
        ItemType::Task => 1.0,
        ItemType::Code => 0.8,
        ItemType::Error => 0.7,
        ItemType::TestResult => 0.6,
        ItemType::PrdSection => 0.5,
    }
}

/// e^(−0.5 · age_days); a negative (or NaN) age counts as 0, giving 1.0.
pub fn age_decay(age_days: f64) -> f64 {
    let age = if age_days.is_nan() { 0.0 } else { age_days.max(0.0) };
    (-DECAY_RATE * age).exp()
}

/// min(ln(access_count + 1) / 10, 1); a negative count counts as 0.
pub fn access_boost(access_count: i64) -> f64 {
    // i64 → f64 loses precision only beyond 2^53 accesses, where the boost is 1.0 anyway.
    #[allow(clippy::cast_precision_loss)]
    let n = access_count.max(0) as f64;
    ((n + 1.0).ln() / 10.0).min(1.0)
}

/// Age in days (fractional) between `created_at` and `now`; negative when created in the future.
pub fn age_days(created_at: OffsetDateTime, now: OffsetDateTime) -> f64 {
    (now - created_at).as_seconds_f64() / SECONDS_PER_DAY
}

/// The score from its three components, clamped to [0, 1].
pub fn score(item_type: ItemType, age_days: f64, access_count: i64) -> f64 {
    let s = TYPE_SHARE * type_weight(item_type)
        + AGE_SHARE * age_decay(age_days)
        + ACCESS_SHARE * access_boost(access_count);
    s.clamp(0.0, 1.0)
}

/// The score of an item created at `created_at`, accessed `access_count` times, seen at `now`.
pub fn importance_score(
    item_type: ItemType,
    created_at: OffsetDateTime,
    access_count: i64,
    now: OffsetDateTime,
) -> f64 {
    score(item_type, age_days(created_at, now), access_count)
}

/// The tier of a score: HOT ≥ 0.8, WARM ≥ 0.4, else COLD (NaN is COLD).
pub fn assign_tier(score: f64) -> Tier {
    if score >= HOT_THRESHOLD {
        Tier::Hot
    } else if score >= WARM_THRESHOLD {
        Tier::Warm
    } else {
        Tier::Cold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const EPS: f64 = 1e-12;

    #[test]
    fn tier_boundaries_are_inclusive_at_the_threshold() {
        assert_eq!(assign_tier(0.8), Tier::Hot);
        assert_eq!(assign_tier(0.799_999), Tier::Warm);
        assert_eq!(assign_tier(0.800_001), Tier::Hot);
        assert_eq!(assign_tier(0.4), Tier::Warm);
        assert_eq!(assign_tier(0.399_999), Tier::Cold);
        assert_eq!(assign_tier(0.0), Tier::Cold);
        assert_eq!(assign_tier(1.0), Tier::Hot);
        assert_eq!(assign_tier(-1.0), Tier::Cold);
        assert_eq!(assign_tier(2.0), Tier::Hot);
        assert_eq!(assign_tier(f64::NAN), Tier::Cold);
    }

    #[test]
    fn a_fresh_task_never_accessed_scores_exactly_the_hot_threshold() {
        // 0.4·1.0 + 0.4·e^0 + 0.2·ln(1)/10 = 0.8 exactly in binary floating point.
        assert_eq!(score(ItemType::Task, 0.0, 0), 0.8);
        assert_eq!(assign_tier(score(ItemType::Task, 0.0, 0)), Tier::Hot);
    }

    #[test]
    fn an_ancient_task_scores_exactly_the_warm_threshold() {
        // e^(−0.5·2000) underflows to 0, leaving 0.4 · 1.0.
        assert_eq!(score(ItemType::Task, 2000.0, 0), 0.4);
        assert_eq!(assign_tier(score(ItemType::Task, 2000.0, 0)), Tier::Warm);
    }

    #[test]
    fn age_zero_and_negative_age_give_full_decay() {
        assert_eq!(age_decay(0.0), 1.0);
        assert_eq!(age_decay(-3.0), 1.0);
        assert_eq!(age_decay(f64::NAN), 1.0);
        assert_eq!(score(ItemType::Code, -10.0, 0), score(ItemType::Code, 0.0, 0));
    }

    #[test]
    fn decay_halves_at_ln4_days() {
        assert!((age_decay(4.0_f64.ln()) - 0.5).abs() < EPS);
        assert!((age_decay(1.0) - (-0.5_f64).exp()).abs() < EPS);
        assert!(age_decay(30.0) < 0.1);
    }

    #[test]
    fn access_boost_at_zero_negative_and_huge_counts() {
        assert_eq!(access_boost(0), 0.0);
        assert_eq!(access_boost(-5), 0.0);
        assert!((access_boost(9) - 10.0_f64.ln() / 10.0).abs() < EPS);
        assert!(access_boost(22_025) < 1.0);
        assert_eq!(access_boost(22_026), 1.0);
        assert_eq!(access_boost(i64::MAX), 1.0);
        assert!(score(ItemType::PrdSection, 0.0, i64::MAX) <= 1.0);
    }

    #[test]
    fn type_weights_are_the_reference_constants_in_order() {
        let w: Vec<f64> = ItemType::ALL.iter().map(|t| type_weight(*t)).collect();
        assert_eq!(w, [1.0, 0.8, 0.7, 0.6, 0.5]);
    }

    #[test]
    fn score_stays_within_zero_and_one() {
        for t in ItemType::ALL {
            for age in [-1.0, 0.0, 0.5, 3.0, 1e6] {
                for n in [0, 1, 1000, i64::MAX] {
                    let s = score(*t, age, n);
                    assert!((0.0..=1.0).contains(&s), "{t:?} {age} {n} -> {s}");
                }
            }
        }
    }

    #[test]
    fn code_turns_cold_after_about_three_point_two_two_days() {
        assert_eq!(assign_tier(score(ItemType::Code, 3.2, 0)), Tier::Warm);
        assert_eq!(assign_tier(score(ItemType::Code, 3.25, 0)), Tier::Cold);
        // A TASK can never become COLD.
        assert_eq!(assign_tier(score(ItemType::Task, 1e9, 0)), Tier::Warm);
    }

    #[test]
    fn importance_score_uses_the_age_between_creation_and_now() {
        let created = datetime!(2026-01-01 00:00 UTC);
        let now = created + Duration::days(2);
        assert!((age_days(created, now) - 2.0).abs() < EPS);
        assert_eq!(importance_score(ItemType::Error, created, 3, now), score(ItemType::Error, 2.0, 3));
        // Created in the future: age counts as 0.
        assert_eq!(importance_score(ItemType::Task, now, 0, created), 0.8);
    }
}
