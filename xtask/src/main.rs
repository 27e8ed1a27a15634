//! Project automation, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: format check, clippy with warnings denied, then every test.
//! - `cargo xtask bench [context|checkpoint|pause|api|all]`: the benchmarks, printing one
//!   JSON object per measure on stdout.

#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::process::{Command, ExitCode};

/// Benchmarks: (name given to `xtask bench`, package, bench target).
const BENCHES: &[(&str, &str, &str)] = &[
    ("context", "codeframe-context", "context"),
    ("checkpoint", "codeframe-checkpoint", "checkpoint"),
    ("pause", "codeframe-core", "pause"),
    ("api", "codeframe-api", "api"),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(args.get(1).map(String::as_str).unwrap_or("all")),
        _ => {
            eprintln!("usage: cargo xtask ci | cargo xtask bench [{}|all]", bench_names());
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn bench_names() -> String {
    BENCHES.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join("|")
}

fn cargo(args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(&cargo).args(args).status().map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    // All features: the crash tests need the core's fail points compiled in.
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    cargo(&["test", "--workspace", "--all-features"])?;
    // The documentation builds without a warning (broken links, bad HTML).
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps");
    let doc = Command::new(&cargo_bin)
        .args(["doc", "--workspace", "--no-deps", "--quiet"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()
        .map_err(|e| format!("cannot run {cargo_bin}: {e}"))?;
    if !doc.success() {
        return Err(format!("`cargo doc --workspace --no-deps` has warnings ({doc})"));
    }
    // Each library crate can be packaged on its own (its files, migrations included).
    for krate in LIBRARY_CRATES {
        cargo(&["package", "--quiet", "--list", "--allow-dirty", "-p", krate]).map(drop)?;
    }
    Ok(())
}

/// The crates other teams may take alone.
const LIBRARY_CRATES: [&str; 6] = [
    "codeframe-models",
    "codeframe-persistence",
    "codeframe-context",
    "codeframe-checkpoint",
    "codeframe-core",
    "codeframe-api",
];

fn bench(which: &str) -> Result<(), String> {
    let selected: Vec<_> = BENCHES.iter().filter(|(name, _, _)| which == "all" || *name == which).collect();
    if selected.is_empty() {
        return Err(format!("unknown benchmark {which:?}; expected one of {}|all", bench_names()));
    }
    for (_, package, target) in selected {
        cargo(&["bench", "--quiet", "-p", package, "--bench", target])?;
    }
    Ok(())
}
