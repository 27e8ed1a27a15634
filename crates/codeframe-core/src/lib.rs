//! codeframe-core: the project service — lifecycle state machine, run gate and the atomic
//! pause transaction — composing `codeframe-context` and `codeframe-checkpoint` through
//! their traits.
//!
//! This crate is filled by the core issue; it has no behaviour yet.
