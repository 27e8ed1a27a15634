//! `codeframe serve --config FILE`: the server's settings in one TOML file.
//!
//! Precedence, highest first: command-line flags, `CODEFRAME_*` environment variables, the
//! file, the defaults. An unknown key is an error naming it, so a typo never passes silently.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::{Deserialize, Serialize};

use crate::{Cli, Command, LogFormat};

/// The file's contents. Every key is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServeFile {
    /// The home: `state.db` and the server-kept snapshot stores.
    pub home: Option<PathBuf>,
    /// The database in place of the home's `state.db` (a `postgres://` URL or a SQLite path).
    pub database: Option<String>,
    /// Address to listen on.
    pub addr: Option<SocketAddr>,
    /// Directories under which users may create projects over HTTP.
    pub workspace_roots: Option<Vec<PathBuf>>,
    /// A separate listener for `GET /metrics` (off when absent).
    pub metrics_addr: Option<SocketAddr>,
    /// `text` or `json`.
    pub log_format: Option<LogFormat>,
    /// Seconds a permit or a pause's hold on the gate lasts unless renewed.
    pub lease_ttl_seconds: Option<u64>,
    /// Files larger than this many MiB are left out of snapshots.
    pub max_file_mib: Option<u64>,
    /// Event log retention.
    #[serde(default)]
    pub events: EventsFile,
    /// Caps on what clients may hold at once.
    #[serde(default)]
    pub limits: LimitsFile,
}

/// `[events]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsFile {
    /// Days events are kept.
    pub max_age_days: Option<u64>,
    /// Events kept per project.
    pub max_per_project: Option<u32>,
}

/// `[limits]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsFile {
    /// WebSocket connections in total.
    pub ws_connections: Option<usize>,
    /// WebSocket connections per token.
    pub ws_connections_per_token: Option<usize>,
    /// HTTP requests served at once.
    pub http_concurrency: Option<usize>,
    /// Seconds a request waits for a free slot before a 503.
    pub http_queue_wait_seconds: Option<u64>,
    /// Seconds work in flight may still run on shutdown.
    pub shutdown_grace_seconds: Option<u64>,
}

impl ServeFile {
    /// Reads and checks a file; the error names the file and, for a bad key or value, the key.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: Self =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.to_string().trim()))?;
        file.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(file)
    }

    /// The ranges the command-line flags enforce, enforced on the file's values too.
    fn check(&self) -> Result<(), String> {
        let range = |key: &str, v: Option<u64>, lo: u64, hi: u64| match v {
            Some(n) if n < lo || n > hi => Err(format!("{key} = {n} is out of range ({lo}..={hi})")),
            _ => Ok(()),
        };
        range("lease_ttl_seconds", self.lease_ttl_seconds, 1, 86_400)?;
        range("max_file_mib", self.max_file_mib, 1, 1_048_576)?;
        range("events.max_age_days", self.events.max_age_days, 1, 36_500)?;
        range("events.max_per_project", self.events.max_per_project.map(u64::from), 1, u64::from(u32::MAX))?;
        let to_u64 = |v: Option<usize>| v.map(|n| u64::try_from(n).unwrap_or(u64::MAX));
        range("limits.ws_connections", to_u64(self.limits.ws_connections), 1, 1_000_000)?;
        range("limits.ws_connections_per_token", to_u64(self.limits.ws_connections_per_token), 1, 1_000_000)?;
        range("limits.http_concurrency", to_u64(self.limits.http_concurrency), 1, 1_000_000)?;
        range("limits.http_queue_wait_seconds", self.limits.http_queue_wait_seconds, 0, 3_600)?;
        range("limits.shutdown_grace_seconds", self.limits.shutdown_grace_seconds, 0, 3_600)?;
        Ok(())
    }

    /// The API limits: the file's values over the defaults.
    pub(crate) fn limits(&self) -> codeframe_api::Limits {
        let d = codeframe_api::Limits::default();
        let l = &self.limits;
        codeframe_api::Limits {
            ws_connections: l.ws_connections.unwrap_or(d.ws_connections),
            ws_connections_per_token: l.ws_connections_per_token.unwrap_or(d.ws_connections_per_token),
            http_concurrency: l.http_concurrency.unwrap_or(d.http_concurrency),
            http_queue_wait: l.http_queue_wait_seconds.map_or(d.http_queue_wait, Duration::from_secs),
            shutdown_grace: l.shutdown_grace_seconds.map_or(d.shutdown_grace, Duration::from_secs),
        }
    }
}

/// Whether the user set an argument (on the command line or through its variable).
fn given(matches: &ArgMatches, id: &str) -> bool {
    matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

/// Fills every setting the user did not give with the file's value.
pub(crate) fn apply(cli: &mut Cli, matches: &ArgMatches, file: &ServeFile) {
    if !given(matches, "home")
        && let Some(home) = &file.home
    {
        cli.home = Some(home.clone());
    }
    if !given(matches, "database")
        && let Some(database) = &file.database
    {
        cli.database = Some(database.clone());
    }
    if !given(matches, "log_format")
        && let Some(f) = file.log_format
    {
        cli.log_format = f;
    }
    if !given(matches, "lease_ttl")
        && let Some(v) = file.lease_ttl_seconds
    {
        cli.lease_ttl = v;
    }
    if !given(matches, "max_file_mib")
        && let Some(v) = file.max_file_mib
    {
        cli.max_file_mib = v;
    }
    if !given(matches, "events_max_age_days")
        && let Some(v) = file.events.max_age_days
    {
        cli.events_max_age_days = v;
    }
    if !given(matches, "events_max_per_project")
        && let Some(v) = file.events.max_per_project
    {
        cli.events_max_per_project = v;
    }
    let Some(serve) = matches.subcommand_matches("serve") else { return };
    if let Command::Serve { addr, workspace_roots, metrics_addr, .. } = &mut cli.command {
        if !given(serve, "addr")
            && let Some(a) = file.addr
        {
            *addr = a;
        }
        if !given(serve, "workspace_roots")
            && let Some(roots) = &file.workspace_roots
        {
            workspace_roots.clone_from(roots);
        }
        if !given(serve, "metrics_addr")
            && let Some(a) = file.metrics_addr
        {
            *metrics_addr = Some(a);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(text: &str) -> Result<ServeFile, String> {
        let dir = tempfile_dir();
        let path = dir.join("c.toml");
        std::fs::write(&path, text).unwrap();
        ServeFile::load(&path)
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "codeframe-config-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_key() {
        let e = parse("adress = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(e.contains("adress"), "{e}");
        let e = parse("[limits]\nws_conections = 3\n").unwrap_err();
        assert!(e.contains("ws_conections"), "{e}");
        let e = parse("lease_ttl_seconds = 0\n").unwrap_err();
        assert!(e.contains("lease_ttl_seconds"), "{e}");
        let e = parse("addr = \"not an address\"\n").unwrap_err();
        assert!(e.contains("addr"), "{e}");
        let e = parse("log_format = \"xml\"\n").unwrap_err();
        assert!(e.contains("xml"), "{e}");
    }

    #[test]
    fn a_full_file_parses_into_limits() {
        let f = parse(
            "home = \"/srv/cf\"\naddr = \"127.0.0.1:9000\"\nworkspace_roots = [\"/srv/work\"]\n\
             metrics_addr = \"127.0.0.1:9100\"\nlog_format = \"json\"\nlease_ttl_seconds = 12\nmax_file_mib = 5\n\
             [events]\nmax_age_days = 7\nmax_per_project = 10\n\
             [limits]\nws_connections = 9\nhttp_queue_wait_seconds = 2\nshutdown_grace_seconds = 4\n",
        )
        .unwrap();
        assert_eq!(f.log_format, Some(LogFormat::Json));
        let l = f.limits();
        assert_eq!(
            (l.ws_connections, l.http_queue_wait, l.shutdown_grace),
            (9, Duration::from_secs(2), Duration::from_secs(4))
        );
        assert_eq!(l.http_concurrency, codeframe_api::Limits::default().http_concurrency);
    }
}
