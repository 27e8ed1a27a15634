//! Fail points of the file restore, for crash tests (see `codeframe_core::failpoints`, which
//! configures them with the pause's and resume's from the `FAILPOINTS` variable).
//!
//! Compiled in only with the `failpoints` cargo feature. Points: `files::during_swap` (before
//! each rename of the swap: `2*off->return` fails the third), `files::after_swap` (every file
//! swapped in, the journal on disk, the transaction not yet committed).

/// Records that a point was reached: when `CODEFRAME_FAILPOINT_MARKER` names a file, appends
/// the point's name to it, so a test can tell a process sleeping at a point is there.
#[doc(hidden)]
pub fn reached(name: &str) {
    if let Ok(path) = std::env::var("CODEFRAME_FAILPOINT_MARKER") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{name}");
            let _ = f.sync_all();
        }
    }
}

/// A fail point: with the feature on, records the point and runs its configured action
/// (`return` fails the step with [`crate::CheckpointError::Injected`]).
macro_rules! failpoint {
    ($name:literal) => {{
        #[cfg(feature = "failpoints")]
        $crate::failpoints::reached($name);
        fail::fail_point!($name, |_| Err($crate::CheckpointError::Injected($name)));
    }};
}
pub(crate) use failpoint;
