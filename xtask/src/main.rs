//! Project automation, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: format check, clippy with warnings denied, then every test; with
//!   PostgreSQL installed, a throwaway cluster and the backend-neutral suites again on it.
//! - `cargo xtask postgres`: a throwaway cluster, its URL printed, until Enter.
//! - `cargo xtask bench [context|checkpoint|pause|api|all]`: the benchmarks, printing one
//!   JSON object per measure on stdout.

#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::process::{Command, ExitCode};

mod postgres;

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
        Some("postgres") => postgres_shell(),
        _ => {
            eprintln!(
                "usage: cargo xtask ci | cargo xtask bench [{}|all] | cargo xtask postgres",
                bench_names()
            );
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

/// A throwaway PostgreSQL cluster when the binaries are installed; `None` (with one line
/// saying so) when they are not, unless `CODEFRAME_REQUIRE_POSTGRES=1` makes that an error.
fn postgres_cluster(durable: bool) -> Result<Option<postgres::Cluster>, String> {
    let required = std::env::var("CODEFRAME_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let Some(bin) = postgres::find_bin() else {
        if required {
            return Err("PostgreSQL (initdb, pg_ctl) is required but not installed".into());
        }
        eprintln!(
            "xtask: PostgreSQL not found (initdb, pg_ctl): the PostgreSQL half of the tests is skipped"
        );
        return Ok(None);
    };
    match postgres::Cluster::start(&bin, durable) {
        Ok(cluster) => {
            eprintln!("xtask: throwaway PostgreSQL cluster at {}", cluster.url);
            Ok(Some(cluster))
        }
        Err(e) if !required => {
            eprintln!("xtask: cannot start PostgreSQL ({e}): the PostgreSQL half of the tests is skipped");
            Ok(None)
        }
        Err(e) => Err(format!("cannot start the PostgreSQL cluster the tests need: {e}")),
    }
}

fn cargo_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    eprintln!("xtask: {} cargo {}", shown.join(" "), args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    // All features: the crash tests need the core's fail points compiled in.
    cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"])?;
    let cluster = postgres_cluster(false)?;
    match &cluster {
        None => cargo(&["test", "--workspace", "--all-features"])?,
        Some(cluster) => {
            // Every suite on SQLite (the two-server test uses the cluster), then again with
            // the persistence, context, checkpoint, core and API suites on PostgreSQL. The
            // whole workspace both times, so both runs share one build (a narrower package
            // selection can unify features differently and rebuild); the command line's
            // suite, whose homes are SQLite files, simply runs twice.
            let url = cluster.url.as_str();
            let all = ["test", "--workspace", "--all-features"];
            cargo_with_env(&all, &[("CODEFRAME_TEST_POSTGRES_URL", url)])?;
            cargo_with_env(
                &all,
                &[("CODEFRAME_TEST_POSTGRES_URL", url), ("CODEFRAME_TEST_BACKEND", "postgres")],
            )?;
        }
    }
    drop(cluster);
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
    // The pause and API benchmarks also run on PostgreSQL when it is installed.
    let cluster = if selected.iter().any(|(name, _, _)| matches!(*name, "pause" | "api")) {
        postgres_cluster(true)?
    } else {
        None
    };
    let env: Vec<(&str, &str)> =
        cluster.iter().map(|c| ("CODEFRAME_BENCH_POSTGRES_URL", c.url.as_str())).collect();
    for (_, package, target) in selected {
        cargo_with_env(&["bench", "--quiet", "-p", package, "--bench", target], &env)?;
    }
    Ok(())
}

/// Starts a throwaway cluster and keeps it until Enter is pressed (for running a suite or a
/// benchmark against PostgreSQL by hand).
fn postgres_shell() -> Result<(), String> {
    let bin = postgres::find_bin().ok_or("PostgreSQL (initdb, pg_ctl) is not installed")?;
    let cluster = postgres::Cluster::start(&bin, false)?;
    println!("{}", cluster.url);
    eprintln!(
        "xtask: e.g. CODEFRAME_TEST_BACKEND=postgres CODEFRAME_TEST_POSTGRES_URL={} cargo test -p codeframe-core",
        cluster.url
    );
    eprintln!("xtask: press Enter to stop the cluster and remove it");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(cluster);
    Ok(())
}
