//! codeframe-api: the HTTP + WebSocket service over `codeframe-core` (axum), with bearer-token
//! auth and an OpenAPI document.
//!
//! This crate is filled by the API issue; it has no behaviour yet.
