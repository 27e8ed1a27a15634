use std::fmt;

use thiserror::Error;

/// An error from the persistence layer. sqlx errors never cross this crate's boundary.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DbError {
    /// The database could not be opened or created.
    #[error("cannot open database {location}: {source}")]
    Open {
        /// Path or URL that was given.
        location: String,
        /// What went wrong.
        #[source]
        source: BackendError,
    },
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] BackendError),
    /// The row asked for does not exist.
    #[error("{entity} {id} not found")]
    NotFound {
        /// Kind of row (`project`, `checkpoint`, …).
        entity: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// An update expected a version of the row that is no longer current; nothing changed.
    #[error("{entity} {id} was changed concurrently (expected version {expected}, found {actual})")]
    Conflict {
        /// Kind of row.
        entity: &'static str,
        /// Its id.
        id: String,
        /// The version the update expected.
        expected: i64,
        /// The version in the database.
        actual: i64,
    },
    /// A schema constraint rejected the row; nothing was written.
    #[error("{kind} constraint {constraint} violated")]
    Constraint {
        /// Which kind of constraint.
        kind: ConstraintKind,
        /// Its name (e.g. `ck_projects_status`, `projects.name`).
        constraint: String,
    },
    /// A stored value could not be read back into the domain type.
    #[error("stored {entity}.{field} value {value:?} is invalid: {reason}")]
    Corrupt {
        /// Table.
        entity: &'static str,
        /// Column.
        field: &'static str,
        /// The stored text.
        value: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The database was written by a newer codeframe: its schema has migrations this
    /// program does not know. Nothing was changed.
    #[error(
        "the database at {location} has schema version {found}, newer than this codeframe knows ({supported}): \
         upgrade codeframe (or restore a backup made by this version)"
    )]
    TooNew {
        /// Where the database is.
        location: String,
        /// The newest migration applied to it.
        found: i64,
        /// The newest migration this program has.
        supported: i64,
    },
    /// Another connection (another process) has the database open, so it cannot be replaced.
    #[error(
        "the database at {location} is in use by another process (stop `codeframe serve` and other codeframe processes first)"
    )]
    InUse {
        /// Where the database is.
        location: String,
    },
    /// The backend cannot do this (a file backup of a PostgreSQL database, …); nothing changed.
    #[error("{operation} is not supported on {backend}")]
    Unsupported {
        /// What was asked.
        operation: &'static str,
        /// The database's backend.
        backend: crate::Backend,
    },
    /// A value the database cannot store (PostgreSQL: text holding NUL); nothing was written.
    #[error("the database cannot store this value: {0}")]
    Unrepresentable(String),
    /// Any other database failure (I/O, locking, SQL).
    #[error("database error: {0}")]
    Backend(#[source] BackendError),
}

impl DbError {
    /// Whether this is a `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether this is a stale-version `Conflict`.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// The constraint's name, when a constraint was violated.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            Self::Constraint { constraint, .. } => Some(constraint),
            _ => None,
        }
    }

    pub(crate) fn not_found(entity: &'static str, id: impl ToString) -> Self {
        Self::NotFound { entity, id: id.to_string() }
    }
}

/// Kind of schema constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConstraintKind {
    /// UNIQUE or PRIMARY KEY.
    Unique,
    /// FOREIGN KEY.
    ForeignKey,
    /// NOT NULL.
    NotNull,
    /// CHECK.
    Check,
}

impl fmt::Display for ConstraintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unique => "unique",
            Self::ForeignKey => "foreign key",
            Self::NotNull => "not-null",
            Self::Check => "check",
        })
    }
}

/// An opaque error from the database driver, kept as a source for diagnostics.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    pub(crate) fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(e))
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            // 22021 character_not_in_repertoire, 22P05 untranslatable_character.
            if matches!(db.code().as_deref(), Some("22021" | "22P05")) {
                return Self::Unrepresentable(db.message().to_owned());
            }
            let kind = match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => Some(ConstraintKind::Unique),
                sqlx::error::ErrorKind::ForeignKeyViolation => Some(ConstraintKind::ForeignKey),
                sqlx::error::ErrorKind::NotNullViolation => Some(ConstraintKind::NotNull),
                sqlx::error::ErrorKind::CheckViolation => Some(ConstraintKind::Check),
                _ => None,
            };
            if let Some(kind) = kind {
                // PostgreSQL names the constraint (a NOT NULL one by its column); SQLite only
                // in its message.
                let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
                let name = match (db.constraint(), pg) {
                    (Some(name), _) => name.to_owned(),
                    (None, Some(pg)) => match (pg.table(), pg.column()) {
                        (Some(table), Some(column)) => format!("{table}.{column}"),
                        _ => constraint_name(kind, db.message()),
                    },
                    (None, None) => constraint_name(kind, db.message()),
                };
                return Self::Constraint { kind, constraint: name };
            }
        }
        Self::Backend(BackendError::new(e))
    }
}

/// SQLite names the constraint after the colon: `CHECK constraint failed: ck_projects_status`,
/// `UNIQUE constraint failed: projects.name`, `UNIQUE constraint failed: index 'uq_…'`.
/// Foreign keys are reported without a name.
fn constraint_name(kind: ConstraintKind, message: &str) -> String {
    match message.split_once(": ") {
        Some((_, name)) => {
            let name = name.trim();
            name.strip_prefix("index ").map(|n| n.trim_matches('\'')).unwrap_or(name).to_owned()
        }
        None if kind == ConstraintKind::ForeignKey => "foreign_key".to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_are_taken_from_sqlite_messages() {
        assert_eq!(
            constraint_name(ConstraintKind::Check, "CHECK constraint failed: ck_projects_status"),
            "ck_projects_status"
        );
        assert_eq!(
            constraint_name(
                ConstraintKind::Unique,
                "UNIQUE constraint failed: index 'uq_project_agents_active'"
            ),
            "uq_project_agents_active"
        );
        assert_eq!(
            constraint_name(ConstraintKind::ForeignKey, "FOREIGN KEY constraint failed"),
            "foreign_key"
        );
    }
}
