//! Timestamps: UTC, microsecond precision, RFC 3339 with a fixed width.
//!
//! One format everywhere (database, JSON, checkpoint state) keeps stored values sortable as
//! text and makes a round trip through any of them byte-identical:
//! `2026-11-28T06:51:32.123456Z`.

use std::sync::{Arc, Mutex};

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::ModelError;

const FIXED: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Normalises a time to UTC and truncates it to whole microseconds, the precision stored.
pub fn normalize(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    let micros = t.microsecond();
    t.replace_nanosecond(micros * 1_000).unwrap_or(t)
}

/// The current time, normalised (see [`normalize`]).
pub fn now_utc() -> OffsetDateTime {
    normalize(OffsetDateTime::now_utc())
}

/// Formats a time in the fixed-width RFC 3339 form, in UTC.
pub fn format(t: OffsetDateTime) -> String {
    let t = normalize(t);
    // The fixed description only fails for years outside 0..=9999, which `normalize`'d
    // times from `time` with default features cannot hold; fall back to the general form.
    t.format(FIXED).or_else(|_| t.format(&Rfc3339)).unwrap_or_else(|_| t.to_string())
}

/// Parses any RFC 3339 timestamp (any offset) and normalises it to UTC microseconds.
pub fn parse(s: &str) -> Result<OffsetDateTime, ModelError> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(normalize)
        .map_err(|e| ModelError::Timestamp { value: s.to_owned(), reason: e.to_string() })
}

/// Serde support for a required timestamp field: `#[serde(with = "codeframe_models::timestamp::rfc3339")]`.
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Serialises in the fixed-width form.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*t))
    }

    /// Deserialises any RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }

    /// The same for an optional field (`null` when absent).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        /// Serialises `Some` in the fixed-width form and `None` as `null`.
        pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::format(*t)),
                None => s.serialize_none(),
            }
        }

        /// Deserialises `null` or an RFC 3339 string.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| super::super::parse(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// A source of the current time, injected so tests can control ages and timestamps.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time, in UTC, truncated to microseconds.
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        now_utc()
    }
}

/// A clock that stands still until told to move; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock showing `start` (normalised).
    pub fn new(start: OffsetDateTime) -> Self {
        Self { now: Arc::new(Mutex::new(normalize(start))) }
    }

    /// Moves the clock forward (or back, for a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = normalize(*now + by);
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = normalize(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn format_is_fixed_width_utc_with_microseconds() {
        assert_eq!(format(datetime!(2026-01-02 03:04:05 UTC)), "2026-01-02T03:04:05.000000Z");
        assert_eq!(format(datetime!(2026-01-02 03:04:05.123456789 +02:00)), "2026-01-02T01:04:05.123456Z");
    }

    #[test]
    fn parse_accepts_offsets_and_round_trips() {
        let t = parse("2025-11-23T14:30:00+01:00").ok();
        assert_eq!(t, Some(datetime!(2025-11-23 13:30:00 UTC)));
        let s = "2025-11-23T14:30:00.000001Z";
        assert_eq!(parse(s).map(format).ok().as_deref(), Some(s));
    }

    #[test]
    fn parse_rejects_non_rfc3339() {
        assert!(matches!(parse("2025-11-23 14:30:00"), Err(ModelError::Timestamp { .. })));
        assert!(parse("").is_err());
    }

    #[test]
    fn manual_clock_advances_and_is_shared_by_clones() {
        let c = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        let c2 = c.clone();
        c.advance(Duration::days(2));
        assert_eq!(c2.now(), datetime!(2026-01-03 00:00 UTC));
    }
}
