//! codeframe-cli: the `codeframe` command (init, status, pause, resume, checkpoints, context,
//! serve) over `codeframe-core` and `codeframe-api`.
//!
//! This crate is filled by the CLI issue; it has no behaviour yet.
