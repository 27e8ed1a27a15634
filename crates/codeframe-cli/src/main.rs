//! `codeframe`: pause, checkpoint and resume coding-agent projects from the command line.
//!
//! Every reporting command takes `--json` and then prints exactly one JSON document on
//! stdout (`events` prints JSON lines, one per event). Exit codes: 0 success, 1 runtime failure, 2 bad usage, 3 conflict, 4 not found.
// A command-line program: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;
mod config;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use codeframe_models::CheckpointId;

use crate::output::CliError;

const EXAMPLES: &str = "\
Examples:
  codeframe init .                      # make this directory a codeframe project
  codeframe agent add coder-1 --type backend
  codeframe context add --agent coder-1 --type TASK --content 'Add login page'
  codeframe start
  codeframe pause --reason 'lunch'      # atomic: flash save + checkpoint + paused
  codeframe status --json
  codeframe resume                      # files edited while paused are kept and listed
  codeframe checkpoints list
  codeframe events --follow             # what happens, from any process
  codeframe serve --addr 127.0.0.1:8080 # HTTP + WebSocket API
  codeframe demo                        # a whole walkthrough in a scratch directory";

/// Pause, checkpoint and resume coding-agent projects, with nothing lost.
#[derive(Parser, Debug)]
#[command(name = "codeframe", version, about, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// Home directory holding `state.db` (default: $CODEFRAME_HOME, else the nearest
    /// `.codeframe/` above the current directory).
    #[arg(long, global = true, env = "CODEFRAME_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// The database, in place of the home's `state.db`: a `postgres://user:pass@host/db` URL
    /// (several servers share one; the database is created if missing) or a SQLite path.
    #[arg(long, global = true, env = "CODEFRAME_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database: Option<String>,
    /// The project to act on, by name or id (needed only when the home holds several).
    #[arg(long, global = true, value_name = "NAME|ID")]
    pub project: Option<String>,
    /// Print exactly one JSON document on stdout (errors as JSON on stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds a run-gate permit, or a pause's hold on the gate, lasts unless renewed: how
    /// long a killed holder on another machine can block a pause.
    #[arg(long, global = true, env = "CODEFRAME_LEASE_TTL", value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub lease_ttl: u64,
    /// Days events are kept in the event log.
    #[arg(long, global = true, env = "CODEFRAME_EVENTS_MAX_AGE_DAYS", value_name = "DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub events_max_age_days: u64,
    /// Events kept per project in the event log (older ones are deleted first).
    #[arg(long, global = true, env = "CODEFRAME_EVENTS_MAX_PER_PROJECT", value_name = "N",
          default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub events_max_per_project: u32,
    /// Files larger than this many MiB are left out of snapshots (and listed in the checkpoint).
    #[arg(long, global = true, env = "CODEFRAME_MAX_FILE_MIB", value_name = "MIB", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_file_mib: u64,
    /// How hard writes reach the disk: `full` flushes snapshot objects, refs, restored files
    /// and every database commit before going on (survives power loss; the default of
    /// `serve`); `normal` survives a killed process (the default of other commands).
    #[arg(long, global = true, env = "CODEFRAME_DURABILITY", value_name = "LEVEL")]
    pub durability: Option<DurabilityLevel>,
    /// Log lines as human-readable text or as JSON objects (one per line, on stderr).
    #[arg(long, global = true, env = "CODEFRAME_LOG_FORMAT", value_name = "FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `--durability` (see [`codeframe_core::Durability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DurabilityLevel {
    /// Survives a killed process.
    Normal,
    /// Survives a power loss.
    Full,
}

impl Cli {
    /// The durability in effect: the flag, else `full` for `serve` and `normal` otherwise.
    pub(crate) fn durability(&self) -> codeframe_core::Durability {
        match (self.durability, &self.command) {
            (Some(DurabilityLevel::Full), _) | (None, Command::Serve { .. }) => {
                codeframe_core::Durability::Full
            }
            _ => codeframe_core::Durability::Normal,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// For people.
    Text,
    /// For log collectors: one JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create the home (`DIR/.codeframe`) and register the project rooted at DIR.
    #[command(after_help = "Example: codeframe init ~/src/shop --name shop")]
    Init {
        /// Project root (default: the current directory).
        dir: Option<PathBuf>,
        /// Project name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Start the project (init → planning).
    Start,
    /// Show status, pause details, agents and context totals.
    #[command(after_help = "Example: codeframe status --json | jq .paused_at")]
    Status,
    /// Pause: drain agents, flash-save their context, checkpoint, mark paused — all or nothing.
    #[command(after_help = "Example: codeframe pause --reason 'nightly budget reached' --drain-timeout 10")]
    Pause {
        /// Why (at most 500 characters).
        #[arg(long)]
        reason: Option<String>,
        /// Seconds to wait for agents' work in flight (default 30).
        #[arg(long, value_name = "SECS")]
        drain_timeout: Option<u64>,
    },
    /// Resume a paused project from its pause checkpoint (or another).
    #[command(after_help = "Example: codeframe resume --checkpoint 3 --restore-files")]
    Resume {
        /// Checkpoint to restore from (default: the pause checkpoint).
        #[arg(long, value_name = "ID")]
        checkpoint: Option<CheckpointId>,
        /// Also put the checkpoint's files back (otherwise edits made while paused are kept).
        #[arg(long)]
        restore_files: bool,
        /// Resume even if the checkpoint cannot be read (lost objects, a missing store): the
        /// status comes back, context stays as it is in the database, warnings say what was not
        /// restored.
        #[arg(long)]
        force: bool,
    },
    /// List, inspect, compare, verify and restore checkpoints.
    Checkpoints {
        #[command(subcommand)]
        command: CheckpointCommand,
    },
    /// Register, list and deactivate agents.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Add, import, export and count context items.
    Context {
        #[command(subcommand)]
        command: ContextCommand,
    },
    /// Run-gate permits for agents outside this program (shell scripts, other languages): take
    /// one before a unit of work, renew it while working, release it when done.
    #[command(
        after_help = "Example:\n  ID=$(codeframe permit take --agent coder-1 --json | jq .permit_id)\n  \
        codeframe context add --agent coder-1 --type CODE --file out.rs --permit $ID\n  codeframe permit release $ID"
    )]
    Permit {
        #[command(subcommand)]
        command: PermitCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print the project's events (pauses, resumes, checkpoints, agents, context), or follow
    /// them as any process commits them. With --json: one JSON object per line.
    #[command(
        after_help = "Examples:\n  codeframe events --since 120\n  codeframe events --follow --json | jq .type"
    )]
    Events {
        /// Only events after this seq (default: every event kept).
        #[arg(long, value_name = "SEQ", value_parser = clap::value_parser!(i64).range(0..))]
        since: Option<i64>,
        /// Keep running and print new events as they are committed (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
    },
    /// Serve the HTTP + WebSocket API over this home's database.
    #[command(
        after_help = "Example: codeframe --home /srv/codeframe serve --addr 127.0.0.1:8080 --workspace-root /srv/work"
    )]
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// A directory under which users may create projects over HTTP (repeatable). Without
        /// one, creating projects over HTTP is refused. The home may not lie inside one.
        #[arg(long = "workspace-root", value_name = "DIR")]
        workspace_roots: Vec<PathBuf>,
        /// Serve `GET /metrics` (Prometheus text format, no token) on this separate address;
        /// off by default. Bind it to an address only your monitoring can reach.
        #[arg(long, env = "CODEFRAME_METRICS_ADDR", value_name = "ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
        /// Read settings from this TOML file (flags and CODEFRAME_* variables override it; see
        /// docs/OPERATIONS.md for every key).
        #[arg(long, env = "CODEFRAME_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Write a consistent copy of the home's database to FILE while servers keep running.
    #[command(
        after_help = "Example: codeframe --home /srv/codeframe backup --to /backups/codeframe-$(date +%F).db"
    )]
    Backup {
        /// The file to write (must not exist).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Put a backup in place of the home's database (every codeframe process on the home must be
    /// stopped; the replaced database is kept beside it as `state.db.replaced-<time>`).
    #[command(
        after_help = "Example: codeframe --home /srv/codeframe restore-backup /backups/codeframe-2026-11-30.db --yes"
    )]
    RestoreBackup {
        /// The backup file (left unchanged; an older version's is migrated).
        file: PathBuf,
        /// Confirm replacing the database.
        #[arg(long)]
        yes: bool,
    },
    /// Check the home: database integrity, every project's root, every checkpoint's objects.
    /// Prints each finding with the command that fixes it; exit 1 when something needs fixing.
    #[command(after_help = "Example: codeframe --home /srv/codeframe doctor --json | jq .findings")]
    Doctor,
    /// Project maintenance.
    Project {
        #[command(subcommand)]
        command: ProjectCommand,
    },
    /// Check configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run the whole walkthrough in a scratch directory: init, agents, context, pause, resume.
    #[command(after_help = "Example: codeframe demo /tmp/codeframe-demo")]
    Demo {
        /// Directory to create the demo project in (default: a new temporary directory).
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ProjectCommand {
    /// Re-point the project at its directory after the directory moved (works while paused).
    #[command(
        after_help = "Example: mv ~/src/shop ~/work/shop && cd ~/work/shop && codeframe project move --root ."
    )]
    Move {
        /// The project's directory now.
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Validate a `serve --config` file without starting anything (exit 2 naming the bad key).
    #[command(after_help = "Example: codeframe config check /etc/codeframe/codeframe.toml")]
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum CheckpointCommand {
    /// List checkpoints, newest first.
    List,
    /// Show one checkpoint.
    Show {
        /// Checkpoint id.
        id: CheckpointId,
    },
    /// Files changed in the working tree since a checkpoint.
    Diff {
        /// Checkpoint id.
        id: CheckpointId,
        /// Include unified text diffs.
        #[arg(long)]
        unified: bool,
    },
    /// Show the retention policy, or change the parts given (then prune by it).
    #[command(
        after_help = "Example: codeframe checkpoints policy --keep-last 20 --keep-within 7d --keep-daily 30"
    )]
    Policy {
        /// Keep the newest N checkpoints (at least 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        keep_last: Option<u32>,
        /// Keep every checkpoint younger than this (`7d`, `12h`, `0` for none).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        keep_within: Option<std::time::Duration>,
        /// Keep the newest checkpoint of each of the last DAYS days (0 for none).
        #[arg(long, value_name = "DAYS")]
        keep_daily: Option<u32>,
    },
    /// Pin a checkpoint: retention never prunes it.
    Pin {
        /// Checkpoint id.
        id: CheckpointId,
    },
    /// Unpin a checkpoint.
    Unpin {
        /// Checkpoint id.
        id: CheckpointId,
    },
    /// Delete the checkpoints the retention policy does not keep (never pinned ones, never the
    /// current pause's).
    Prune {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove snapshot objects no checkpoint needs any more and pack the others into one pack
    /// (`prune` does it too when it deleted something). Refused (exit 3) while a checkpoint
    /// of the project is being written.
    #[command(after_help = "Example: codeframe checkpoints gc --json")]
    Gc,
    /// Take the last restore back: files, rows and context as they were just before it (from
    /// the checkpoint every restore makes first). An undo can itself be undone.
    #[command(after_help = "Example: codeframe checkpoints undo --json")]
    Undo,
    /// Restore parts of a checkpoint (previews the changes and asks unless --yes).
    #[command(after_help = "Example: codeframe checkpoints restore 2 --files --yes")]
    Restore {
        /// Checkpoint id.
        id: CheckpointId,
        /// Restore files.
        #[arg(long)]
        files: bool,
        /// Restore the project's rows (project, agents, tasks, token usage).
        #[arg(long)]
        state: bool,
        /// Restore context items.
        #[arg(long)]
        context: bool,
        /// Overwrite files changed since the latest checkpoint (refused otherwise, listing
        /// them; they are checkpointed first either way, so `checkpoints undo` brings them back).
        #[arg(long)]
        force: bool,
        /// Do not ask.
        #[arg(long, short)]
        yes: bool,
    },
    /// Check that a checkpoint's commit and every object it needs are present.
    Verify {
        /// Checkpoint id.
        id: CheckpointId,
    },
    /// Delete a checkpoint (its row and ref; the pause checkpoint of a paused project is kept).
    Delete {
        /// Checkpoint id.
        id: CheckpointId,
    },
    /// Make a manual checkpoint.
    Create {
        /// Name (at most 100 characters).
        #[arg(long)]
        name: String,
        /// Description (at most 500 characters).
        #[arg(long, default_value = "")]
        description: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum AgentCommand {
    /// Register an agent (if new) and assign it to the project.
    Add {
        /// Agent id (letters, digits, `.`, `_`, `-`).
        id: String,
        /// Kind of agent.
        #[arg(long = "type", default_value = "worker")]
        agent_type: String,
    },
    /// List the project's active agents.
    List,
    /// End an agent's assignment (its context is kept).
    Deactivate {
        /// Agent id.
        id: String,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub(crate) struct ContentSource {
    /// The content.
    #[arg(long)]
    pub content: Option<String>,
    /// Read the content from a file.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ContextCommand {
    /// Add one item to an agent's context.
    #[command(after_help = "Example: codeframe context add --agent coder-1 --type CODE --file src/lib.rs")]
    Add {
        /// Agent id.
        #[arg(long)]
        agent: String,
        /// TASK, CODE, ERROR, TEST_RESULT or PRD_SECTION.
        #[arg(long = "type", value_name = "TYPE")]
        item_type: String,
        #[command(flatten)]
        source: ContentSource,
        /// The permit this write is made under (lets it through while a pause drains).
        #[arg(long, value_name = "ID")]
        permit: Option<i64>,
    },
    /// Import items from JSON lines (agent_id, item_type, content, optional created_at and
    /// access_count). All lines or none.
    Import {
        /// The JSONL file.
        file: PathBuf,
    },
    /// Export every item, active and archived, as JSON lines.
    Export {
        /// The JSONL file to write.
        file: PathBuf,
    },
    /// Item and token counts per tier, in total and per agent.
    Stats,
}

#[derive(Subcommand, Debug)]
pub(crate) enum PermitCommand {
    /// Take a permit (refused, exit 3, while the project is paused or being paused).
    Take {
        /// The agent doing the work.
        #[arg(long)]
        agent: String,
        /// Seconds the permit lasts unless renewed (1–3600; default: the lease TTL).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
    },
    /// Extend a permit; says whether a pause has begun (then finish up and release).
    Renew {
        /// Permit id.
        id: i64,
        /// Seconds from now (1–3600; default: the lease TTL).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
    },
    /// End a permit: a pause waiting for it goes on.
    Release {
        /// Permit id.
        id: i64,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Create an API token (shown once). With --home (or CODEFRAME_HOME) naming a fresh
    /// directory, the home is created: a server can be set up before its first project.
    #[command(
        after_help = "Example: codeframe --home /srv/codeframe token create --name ci --user bob --expires-in 90d"
    )]
    Create {
        /// A label for the token.
        #[arg(long)]
        name: String,
        /// The user owning it (default: the local user, who owns projects made by `init`).
        #[arg(long, default_value = codeframe_core::auth::LOCAL_USER)]
        user: String,
        /// Lifetime: a number with s, m, h or d (`90d`, `12h`); default: no expiry.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List tokens (never the tokens themselves): id, user, label, last use, expiry.
    List {
        /// Only this user's tokens.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token: every process serving this home refuses it within a second.
    Revoke {
        /// Token id (from `token list`).
        id: i64,
    },
}

/// `90d`, `12h`, `30m`, `45s` or plain seconds.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration like 90d, 12h, 30m or 45s"))?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration like 90d, 12h, 30m or 45s"))?;
    Ok(std::time::Duration::from_secs(seconds))
}

fn main() -> ExitCode {
    let parsed = Cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let (mut cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One clear line (the full usage is one `--help` away), as JSON with --json.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("bad usage");
            let message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
            let json = std::env::args().any(|a| a == "--json");
            return output::fail(json, &CliError::Usage(format!("{message} (see --help)")));
        }
    };
    if let Command::Serve { config: Some(path), .. } = &cli.command {
        match config::ServeFile::load(path) {
            Ok(file) => config::apply(&mut cli, &matches, &file),
            Err(e) => return output::fail(cli.json, &CliError::Usage(e)),
        }
    }
    init_logging(cli.log_format);
    if let Err(e) = codeframe_core::failpoints::configure_from_env() {
        return output::fail(cli.json, &CliError::Usage(e));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return output::fail(cli.json, &CliError::Runtime(format!("cannot start the runtime: {e}")));
        }
    };
    let json = cli.json;
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => output::fail(json, &e),
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CODEFRAME_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    // A span's close line carries its duration (`time.busy`, `time.idle`): the pause, the
    // resume and each checkpoint step are spans, so their timings need no field of their own.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs.json().try_init(),
    };
}
