//! Errors, exit codes and printing.

use std::process::ExitCode;

use codeframe_core::{CoreError, ErrorClass};
use serde::Serialize;

/// A failure, with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Exit 1.
    Runtime(String),
    /// Exit 2.
    Usage(String),
    /// Exit 3.
    Conflict(String),
    /// Exit 4.
    NotFound(String),
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            Self::Runtime(_) => 1,
            Self::Usage(_) => 2,
            Self::Conflict(_) => 3,
            Self::NotFound(_) => 4,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Runtime(_) => "runtime",
            Self::Usage(_) => "usage",
            Self::Conflict(_) => "conflict",
            Self::NotFound(_) => "not_found",
        }
    }

    fn message(&self) -> &str {
        match self {
            Self::Runtime(m) | Self::Usage(m) | Self::Conflict(m) | Self::NotFound(m) => m,
        }
    }
}

impl From<CoreError> for CliError {
    /// The exit code follows [`codeframe_core::ErrorClass`], the mapping the API's HTTP
    /// statuses follow too.
    fn from(e: CoreError) -> Self {
        let m = e.to_string();
        match e.class() {
            ErrorClass::Invalid | ErrorClass::Forbidden => Self::Usage(m),
            ErrorClass::NotFound | ErrorClass::Gone => Self::NotFound(m),
            ErrorClass::Conflict => Self::Conflict(m),
            ErrorClass::Internal => Self::Runtime(m),
        }
    }
}

impl From<codeframe_core::DbError> for CliError {
    fn from(e: codeframe_core::DbError) -> Self {
        CoreError::from(e).into()
    }
}

/// Prints the error (one line, or JSON) on stderr and returns its exit code.
pub(crate) fn fail(json: bool, e: &CliError) -> ExitCode {
    if json {
        eprintln!("{}", serde_json::json!({"error": {"code": e.kind(), "message": e.message()}}));
    } else {
        eprintln!("codeframe: {}", e.message());
    }
    ExitCode::from(e.code())
}

/// Prints `value` as the one JSON document, or the human text.
pub(crate) fn print(
    json: bool,
    value: &impl Serialize,
    human: impl FnOnce() -> String,
) -> Result<(), CliError> {
    if json {
        let s = serde_json::to_string_pretty(value).map_err(|e| CliError::Runtime(e.to_string()))?;
        println!("{s}");
    } else {
        let text = human();
        if !text.is_empty() {
            println!("{text}");
        }
    }
    Ok(())
}

/// `12,345`.
pub(crate) fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `3h 12m`, `45s`.
pub(crate) fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m"),
    }
}

/// The first 7 hex digits of a commit.
pub(crate) fn short(commit: Option<&str>) -> &str {
    commit.map_or("-------", |c| c.get(..7).unwrap_or(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeframe_models::{CheckpointId, ProjectId};

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(-1000), "-1,000");
        assert_eq!(duration(45), "45s");
        assert_eq!(duration(192), "3m 12s");
        assert_eq!(duration(7300), "2h 1m");
        assert_eq!(short(Some("0123456789abcdef")), "0123456");
    }

    #[test]
    fn exit_codes_follow_the_core_error_class() {
        use codeframe_core::{CheckpointError, ConflictKind};
        let errors = [
            CoreError::NotFound { entity: "project", id: "1".into() },
            CoreError::Conflict(ConflictKind::Concurrent),
            CoreError::Paused(ProjectId(1)),
            CoreError::Pausing(ProjectId(1)),
            CoreError::Checkpoint(CheckpointError::Unreadable { id: CheckpointId(1), reason: "gone".into() }),
            CoreError::Invalid(codeframe_models::ModelError::Empty { field: "name" }),
            CoreError::EventGap { project_id: ProjectId(1), since: 1, pruned_through: 5, head: 9 },
            CoreError::Injected("x"),
        ];
        for e in errors {
            let class = e.class();
            assert_eq!(CliError::from(e).code(), class.exit_code(), "{class:?}");
        }
    }
}
