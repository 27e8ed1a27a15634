//! Reading stored text back into domain types.

use std::str::FromStr;

use codeframe_models::timestamp;
use time::OffsetDateTime;

use crate::{DbError, Result};

pub(crate) fn ts(entity: &'static str, field: &'static str, value: &str) -> Result<OffsetDateTime> {
    timestamp::parse(value).map_err(|e| DbError::Corrupt {
        entity,
        field,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn opt_ts(
    entity: &'static str,
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<OffsetDateTime>> {
    value.map(|v| ts(entity, field, v)).transpose()
}

pub(crate) fn parse<T>(entity: &'static str, field: &'static str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| DbError::Corrupt {
        entity,
        field,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

pub(crate) fn fmt(t: OffsetDateTime) -> String {
    timestamp::format(t)
}

pub(crate) fn opt_fmt(t: Option<OffsetDateTime>) -> Option<String> {
    t.map(timestamp::format)
}
