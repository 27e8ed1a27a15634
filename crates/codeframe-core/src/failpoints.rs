//! Fail points of the pause and resume transactions, for crash tests.
//!
//! Compiled in only with the `failpoints` cargo feature. At run time they are configured by
//! the `FAILPOINTS` environment variable, in the `fail` crate's syntax:
//! `FAILPOINTS='pause::before_commit=sleep(60000)'` or `pause::after_flash_save=panic`
//! (several separated by `;`). `return` makes the step fail with [`crate::CoreError::Injected`].
//!
//! Points: `pause::after_validate`, `pause::after_drain`, `pause::after_state_read`,
//! `pause::after_objects_written` (the snapshot's objects are in the store, outside any
//! transaction), `pause::after_flash_save`, `pause::after_checkpoint_row`,
//! `pause::after_ref_written`, `pause::before_commit`, `pause::after_commit`,
//! `resume::before_commit`.
//!
//! File restores (see [`FILE_RESTORE`]) add `files::during_swap` (before each rename of the
//! swap), `files::after_swap` (from the checkpoint crate), `resume::after_commit` and
//! `restore::after_commit` (the transaction committed, its files not yet settled).
//!
//! When `CODEFRAME_FAILPOINT_MARKER` names a file, each point appends its name to it as it is
//! reached, so a test can tell when a process sleeping at a point is there.

/// Every fail point, in the order a pause (then a resume) reaches them.
pub const ALL: [&str; 10] = [
    "pause::after_validate",
    "pause::after_drain",
    "pause::after_state_read",
    "pause::after_objects_written",
    "pause::after_flash_save",
    "pause::after_checkpoint_row",
    "pause::after_ref_written",
    "pause::before_commit",
    "pause::after_commit",
    "resume::before_commit",
];

/// The fail points a file restore reaches (`resume --restore-files`, a checkpoint restore), in
/// order; `files::during_swap` is reached once per rename.
pub const FILE_RESTORE: [&str; 5] = [
    "files::during_swap",
    "files::after_swap",
    "resume::before_commit",
    "resume::after_commit",
    "restore::after_commit",
];

/// Whether fail points are compiled in.
pub const ENABLED: bool = cfg!(feature = "failpoints");

/// Applies `FAILPOINTS` from the environment. An error when it is set but fail points are not
/// compiled in, or when an entry cannot be read.
pub fn configure_from_env() -> Result<(), String> {
    let Ok(spec) = std::env::var("FAILPOINTS") else { return Ok(()) };
    if spec.trim().is_empty() {
        return Ok(());
    }
    if !ENABLED {
        return Err(
            "FAILPOINTS is set but this build has no fail points (build with --features failpoints)".into()
        );
    }
    for entry in spec.split(';').filter(|e| !e.trim().is_empty()) {
        let (name, actions) =
            entry.split_once('=').ok_or_else(|| format!("FAILPOINTS entry {entry:?} is not name=actions"))?;
        fail::cfg(name.trim(), actions.trim()).map_err(|e| format!("FAILPOINTS entry {entry:?}: {e}"))?;
    }
    Ok(())
}

/// Records that a point was reached (see the module docs).
#[doc(hidden)]
pub fn reached(name: &str) {
    codeframe_checkpoint::failpoints::reached(name);
}

/// A fail point: with the feature on, records the point and runs its configured action.
macro_rules! failpoint {
    ($name:literal) => {{
        #[cfg(feature = "failpoints")]
        $crate::failpoints::reached($name);
        fail::fail_point!($name, |_| Err($crate::CoreError::Injected($name)));
    }};
}
pub(crate) use failpoint;
