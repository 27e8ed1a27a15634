//! Test and benchmark helpers shared by the codeframe crates: stock git run the same way
//! everywhere, a working tree read back for comparison, and the benchmarks' figures (median,
//! percentiles, peak memory, the JSON line each measure prints). Dev-only: a dev-dependency of
//! the crates' tests and benchmarks, never of their libraries.
#![allow(clippy::panic, clippy::print_stdout, clippy::expect_used)] // helpers for tests: failing loudly is their job

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs stock `git` in `dir` with a fixed identity and no user or system configuration (so a
/// developer's settings never change a test); its standard output. Panics when git fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run git: {e}"));
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file (and link) under `dir`, recursively, directories not listed.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => out.push(e.path()),
                Err(_) => {}
            }
        }
    }
    out
}

/// The working tree under `root` as codeframe snapshots it: every file outside `.git` and
/// `.codeframe`, as (path relative to the root, content), sorted.
pub fn tree_files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = files_under(root)
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(root).ok()?.to_string_lossy().into_owned();
            let ours = rel == ".git" || rel.starts_with(".git/") || rel.starts_with(".codeframe/");
            (!ours).then(|| (rel, std::fs::read(&p).unwrap_or_default()))
        })
        .collect();
    out.sort();
    out
}

/// What file restores left in codeframe's places of a project rooted at `root` (store in the
/// tree): staging folders `.codeframe/restore-*` and the journal `codeframe-restore.json`.
/// Empty once every restore is settled.
pub fn restore_leftovers(root: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(root.join(".codeframe"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    found.retain(|n| n.starts_with("restore-"));
    if root.join(".codeframe/snapshots.git/codeframe-restore.json").exists() {
        found.push("codeframe-restore.json".into());
    }
    found
}

/// Figures of the benchmarks.
pub mod bench {
    /// The `p` quantile (0–1) of `sorted` (nearest rank); 0 for no samples.
    pub fn percentile(sorted: &[f64], p: f64) -> f64 {
        if sorted.is_empty() {
            return 0.0;
        }
        sorted[(((sorted.len() as f64) * p).ceil() as usize).clamp(1, sorted.len()) - 1]
    }

    /// Median and 95th percentile of `samples`.
    pub fn median_p95(mut samples: Vec<f64>) -> (f64, f64) {
        samples.sort_by(|a, b| a.total_cmp(b));
        if samples.is_empty() {
            return (0.0, 0.0);
        }
        (samples[samples.len() / 2], percentile(&samples, 0.95))
    }

    /// Prints a measure as the one JSON line scripts read:
    /// `{"name", "params", "median", "p95", "unit", "runs"}` (figures to two decimals).
    pub fn emit(name: &str, params: &serde_json::Value, samples: Vec<f64>, unit: &str) {
        let runs = samples.len();
        let (median, p95) = median_p95(samples);
        let r = |v: f64| (v * 100.0).round() / 100.0;
        println!(
            "{}",
            serde_json::json!({"name": name, "params": params, "median": r(median), "p95": r(p95), "unit": unit, "runs": runs})
        );
    }

    /// Peak resident memory of this process in MB (Linux `VmHWM`; 0 elsewhere).
    pub fn peak_rss_mb() -> f64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kb: f64 = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        kb / 1024.0
    }

    /// Resets the peak to the current resident memory (Linux `clear_refs` 5).
    pub fn reset_peak_rss() {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn median_and_p95_by_nearest_rank() {
            let samples: Vec<f64> = (1..=20).rev().map(f64::from).collect();
            assert_eq!(median_p95(samples), (11.0, 19.0));
            assert_eq!(percentile(&[], 0.5), 0.0);
            assert_eq!(percentile(&[3.0], 0.99), 3.0);
        }
    }
}

/// Which database the suites run on: SQLite files (the default) or, with
/// `CODEFRAME_TEST_BACKEND=postgres`, fresh databases on the PostgreSQL server at
/// `CODEFRAME_TEST_POSTGRES_URL` (what `cargo xtask ci` sets for the second pass).
pub mod database {
    use std::path::Path;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// The PostgreSQL server the tests may use (`postgres://user@host:port`, no database).
    pub fn postgres_server() -> Option<String> {
        std::env::var("CODEFRAME_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty())
    }

    /// Whether the suites run on PostgreSQL.
    pub fn is_postgres() -> bool {
        std::env::var("CODEFRAME_TEST_BACKEND").is_ok_and(|b| b == "postgres")
    }

    /// A URL naming a database on `server` that no other test uses (`Db::open` creates it).
    pub fn fresh_postgres(server: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        format!("{}/cf_{}_{n}_{nanos}", server.trim_end_matches('/'), std::process::id())
    }

    /// The database a test opens: `dir/state.db` on SQLite, a fresh database on PostgreSQL.
    ///
    /// # Panics
    /// When `CODEFRAME_TEST_BACKEND=postgres` is set without `CODEFRAME_TEST_POSTGRES_URL`.
    pub fn location(dir: &Path) -> String {
        if is_postgres() {
            #[allow(clippy::expect_used)]
            let server =
                postgres_server().expect("CODEFRAME_TEST_BACKEND=postgres needs CODEFRAME_TEST_POSTGRES_URL");
            fresh_postgres(&server)
        } else {
            dir.join("state.db").to_string_lossy().into_owned()
        }
    }
}
