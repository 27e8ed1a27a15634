//! Row ids as types of their own, so a project id and a checkpoint id cannot be swapped. Each
//! is an `i64` on the wire (`serde(transparent)`) and in the database (with the `sqlx`
//! feature, `sqlx(transparent)`), so neither format changes.

use std::fmt;
use std::str::FromStr;

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type))]
        #[cfg_attr(feature = "sqlx", sqlx(transparent))]
        pub struct $name(pub i64);

        impl $name {
            /// The row id as a number.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

row_id! {
    /// Identifier of a project (a database row id).
    ProjectId
}

row_id! {
    /// Identifier of a checkpoint (a database row id).
    CheckpointId
}

row_id! {
    /// Identifier of a flash-save record (a database row id).
    FlashSaveId
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_numbers_on_the_wire_and_in_text() {
        let id = ProjectId(42);
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
        assert_eq!(serde_json::from_str::<CheckpointId>("7").unwrap(), CheckpointId(7));
        assert!(serde_json::from_str::<CheckpointId>("\"7\"").is_err());
        assert_eq!(id.to_string(), "42");
        assert_eq!("42".parse::<ProjectId>().unwrap(), id);
        assert_eq!(i64::from(FlashSaveId::from(3)), 3);
    }
}
