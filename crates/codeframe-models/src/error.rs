use thiserror::Error;

/// Why a value of the domain was rejected. Returned by parsing and by [`crate::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A required string was empty or only whitespace.
    #[error("{field} must not be empty")]
    Empty {
        /// The field that was empty.
        field: &'static str,
    },
    /// A string was longer than its limit (counted in characters, not bytes).
    #[error("{field} is {actual} characters long; the limit is {max}")]
    TooLong {
        /// The field that was too long.
        field: &'static str,
        /// The limit in characters.
        max: usize,
        /// The length that was given, in characters.
        actual: usize,
    },
    /// A string held characters the field does not allow.
    #[error("{field} is invalid: {reason}")]
    Invalid {
        /// The field that was rejected.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A name that is not one of an enumeration's values.
    #[error("unknown {kind} {value:?}; expected one of: {expected}")]
    UnknownVariant {
        /// The enumeration, e.g. `item type`.
        kind: &'static str,
        /// The value that was given.
        value: String,
        /// The accepted values, comma separated.
        expected: &'static str,
    },
    /// A timestamp that is not RFC 3339.
    #[error("invalid timestamp {value:?}: {reason}")]
    Timestamp {
        /// The text that was given.
        value: String,
        /// Why it could not be read.
        reason: String,
    },
}
