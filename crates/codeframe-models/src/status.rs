use serde::{Deserialize, Serialize};

/// Generates `as_str`, `FromStr`, `Display` and `ALL` for a fieldless enum whose wire
/// names are given explicitly, so the database, JSON and CLI spell them the same way.
macro_rules! wire_enum {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The wire name (as stored in the database and sent in JSON).
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::ModelError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::ModelError::UnknownVariant {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: concat!($($name, " "),+),
                    }),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

/// Lifecycle status of a project (the reference's values; `stopped` is not one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProjectStatus {
    /// Created, not started.
    Init,
    /// Started, discovering requirements.
    Planning,
    /// Agents are running (the reference's HTTP start path).
    Running,
    /// Started with a plan; agents work.
    Active,
    /// Paused: agents hold, a pause checkpoint exists.
    Paused,
    /// Finished.
    Completed,
}

wire_enum!(ProjectStatus, "project status", {
    Init => "init", Planning => "planning", Running => "running",
    Active => "active", Paused => "paused", Completed => "completed",
});

impl ProjectStatus {
    /// Whether a project in this status may be paused (planning, running or active).
    pub const fn is_pausable(self) -> bool {
        matches!(self, Self::Planning | Self::Running | Self::Active)
    }
}

/// Phase of a project's work, independent of its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProjectPhase {
    /// Requirements are being discovered.
    Discovery,
    /// Work is being planned.
    Planning,
    /// Work is being done.
    Active,
    /// Work is being reviewed.
    Review,
    /// Done.
    Complete,
}

wire_enum!(ProjectPhase, "project phase", {
    Discovery => "discovery", Planning => "planning", Active => "active",
    Review => "review", Complete => "complete",
});

/// What an agent is doing (reported by the agent; not used by pause).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AgentStatus {
    /// Waiting for work.
    Idle,
    /// Doing work.
    Working,
    /// Waiting on something.
    Blocked,
    /// Not reachable.
    Offline,
}

wire_enum!(AgentStatus, "agent status", {
    Idle => "idle", Working => "working", Blocked => "blocked", Offline => "offline",
});

/// Status of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TaskStatus {
    /// Not yet assigned.
    Pending,
    /// Given to an agent.
    Assigned,
    /// Being worked on.
    InProgress,
    /// Waiting on something.
    Blocked,
    /// Done.
    Completed,
    /// Given up.
    Failed,
}

wire_enum!(TaskStatus, "task status", {
    Pending => "pending", Assigned => "assigned", InProgress => "in_progress",
    Blocked => "blocked", Completed => "completed", Failed => "failed",
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelError;

    #[test]
    fn statuses_round_trip_through_their_wire_names() {
        for s in ProjectStatus::ALL {
            assert_eq!(s.as_str().parse::<ProjectStatus>(), Ok(*s));
            assert_eq!(serde_json::to_string(s).ok(), Some(format!("\"{}\"", s.as_str())));
        }
        for t in TaskStatus::ALL {
            assert_eq!(serde_json::to_value(t).ok(), Some(serde_json::json!(t.as_str())));
        }
    }

    #[test]
    fn stopped_is_not_a_status() {
        assert!(matches!("stopped".parse::<ProjectStatus>(), Err(ModelError::UnknownVariant { .. })));
        assert!(serde_json::from_str::<ProjectStatus>("\"stopped\"").is_err());
    }

    #[test]
    fn only_planning_running_and_active_are_pausable() {
        let pausable: Vec<_> = ProjectStatus::ALL.iter().filter(|s| s.is_pausable()).collect();
        assert_eq!(pausable, [&ProjectStatus::Planning, &ProjectStatus::Running, &ProjectStatus::Active]);
    }
}
