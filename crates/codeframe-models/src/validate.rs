//! Validation of user-facing strings. Lengths count characters (Unicode scalar values).

use crate::ModelError;

/// Longest project name.
pub const PROJECT_NAME_MAX: usize = 100;
/// Longest pause reason.
pub const PAUSE_REASON_MAX: usize = 500;
/// Longest checkpoint name.
pub const CHECKPOINT_NAME_MAX: usize = 100;
/// Longest checkpoint description.
pub const CHECKPOINT_DESCRIPTION_MAX: usize = 500;
/// Longest agent id.
pub const AGENT_ID_MAX: usize = 128;
/// Longest user name (API token owner).
pub const USER_NAME_MAX: usize = 100;
/// Longest short label (an agent's type, provider or role).
pub const LABEL_MAX: usize = 64;

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), ModelError> {
    let actual = value.chars().count();
    if actual > max {
        return Err(ModelError::TooLong { field, max, actual });
    }
    Ok(())
}

fn non_empty(field: &'static str, value: &str) -> Result<(), ModelError> {
    if value.trim().is_empty() {
        return Err(ModelError::Empty { field });
    }
    Ok(())
}

fn no_control_chars(field: &'static str, value: &str) -> Result<(), ModelError> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(ModelError::Invalid { field, reason: format!("contains the control character {c:?}") });
    }
    Ok(())
}

/// A project name: 1–100 characters, not blank, no control characters.
pub fn project_name(name: &str) -> Result<(), ModelError> {
    non_empty("project name", name)?;
    bounded("project name", name, PROJECT_NAME_MAX)?;
    no_control_chars("project name", name)
}

/// A user name (the owner of API tokens and projects): 1–100 characters, not blank, no
/// control characters.
pub fn user_name(name: &str) -> Result<(), ModelError> {
    non_empty("user name", name)?;
    bounded("user name", name, USER_NAME_MAX)?;
    no_control_chars("user name", name)
}

/// A short label (an agent's type, provider or role): 1–64 characters, no control characters.
pub fn label(field: &'static str, value: &str) -> Result<(), ModelError> {
    non_empty(field, value)?;
    bounded(field, value, LABEL_MAX)?;
    no_control_chars(field, value)
}

/// A pause reason: at most 500 characters (it may be empty).
pub fn pause_reason(reason: &str) -> Result<(), ModelError> {
    bounded("pause reason", reason, PAUSE_REASON_MAX)
}

/// A checkpoint name: 1–100 characters, not blank, no NUL (SQL counts a string only up to its
/// first NUL, so the database would see another name than the one given).
pub fn checkpoint_name(name: &str) -> Result<(), ModelError> {
    non_empty("checkpoint name", name)?;
    bounded("checkpoint name", name, CHECKPOINT_NAME_MAX)?;
    if name.contains('\0') {
        return Err(ModelError::Invalid { field: "checkpoint name", reason: "contains NUL".into() });
    }
    Ok(())
}

/// A checkpoint description: at most 500 characters.
pub fn checkpoint_description(description: &str) -> Result<(), ModelError> {
    bounded("checkpoint description", description, CHECKPOINT_DESCRIPTION_MAX)
}

/// An agent id: 1–128 characters of ASCII letters, digits, `.`, `_` and `-`.
pub fn agent_id(id: &str) -> Result<(), ModelError> {
    non_empty("agent id", id)?;
    bounded("agent id", id, AGENT_ID_MAX)?;
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(ModelError::Invalid {
            field: "agent id",
            reason: format!("{c:?} is not allowed (use letters, digits, '.', '_' and '-')"),
        });
    }
    Ok(())
}

/// Truncates to at most `max` characters (on a character boundary).
pub fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_reason_of_500_chars_is_accepted_and_501_rejected() {
        assert!(pause_reason(&"é".repeat(500)).is_ok());
        assert_eq!(
            pause_reason(&"x".repeat(501)),
            Err(ModelError::TooLong { field: "pause reason", max: 500, actual: 501 })
        );
        assert!(pause_reason("").is_ok());
    }

    #[test]
    fn checkpoint_name_limits() {
        assert!(checkpoint_name(&"n".repeat(100)).is_ok());
        assert!(matches!(checkpoint_name(&"n".repeat(101)), Err(ModelError::TooLong { max: 100, .. })));
        assert_eq!(checkpoint_name("  "), Err(ModelError::Empty { field: "checkpoint name" }));
        assert!(checkpoint_description(&"d".repeat(501)).is_err());
        // Found by the API's schema-driven tester: a name of "\0" reached the database's check.
        assert!(matches!(checkpoint_name("\0"), Err(ModelError::Invalid { .. })));
        assert!(matches!(checkpoint_name("a\0b"), Err(ModelError::Invalid { .. })));
        assert!(checkpoint_name("tab\there").is_ok());
    }

    #[test]
    fn project_name_rules() {
        assert!(
            project_name("my project; DROP TABLE projects;--").is_ok(),
            "SQL meta-characters are just text"
        );
        assert!(project_name("日本語のプロジェクト 🚀").is_ok());
        assert_eq!(project_name(""), Err(ModelError::Empty { field: "project name" }));
        assert!(project_name("a\nb").is_err());
        assert!(project_name(&"p".repeat(101)).is_err());
    }

    #[test]
    fn agent_id_rules() {
        assert!(agent_id("backend-worker-001").is_ok());
        assert!(agent_id("../etc").is_err());
        assert!(agent_id("a b").is_err());
        assert!(agent_id(&"a".repeat(129)).is_err());
    }

    #[test]
    fn truncate_respects_characters() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
    }
}
