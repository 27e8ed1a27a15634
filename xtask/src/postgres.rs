//! A throwaway PostgreSQL cluster for the test suites: `initdb` into a temporary directory (as
//! the unprivileged `postgres` user when running as root, since PostgreSQL refuses to run as
//! root), a server on a free port of 127.0.0.1 with trust authentication, stopped and removed
//! when the [`Cluster`] is dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// A running cluster; stopped and deleted on drop.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    /// `postgres://postgres@127.0.0.1:PORT` (no database: each test names its own).
    pub url: String,
}

/// Where `initdb` and `pg_ctl` are: on the PATH, else under Debian's `/usr/lib/postgresql/*/bin`.
pub fn find_bin() -> Option<PathBuf> {
    let on_path =
        std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"));
    on_path.chain(debian).find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}"))
}

impl Cluster {
    /// Starts a cluster with the binaries in `bin`. Not `durable`: commits skip fsync (for
    /// tests, whose data is thrown away); `durable`: PostgreSQL's defaults (for benchmarks).
    pub fn start(bin: &Path, durable: bool) -> Result<Self, String> {
        let as_postgres = is_root();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("codeframe-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut cluster = Self { dir, bin: bin.to_owned(), as_postgres, url: String::new() };
        if as_postgres {
            cluster.run(Command::new("chown").args(["postgres:postgres"]).arg(&cluster.dir), "chown")?;
        }
        let data = cluster.dir.join("data");
        let port = free_port()?;
        cluster.run(
            cluster
                .pg_command("initdb")
                .args([
                    "--auth=trust",
                    "--username=postgres",
                    "--no-locale",
                    "--encoding=UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
            "initdb",
        )?;
        let fast =
            if durable { "" } else { " -c fsync=off -c full_page_writes=off -c synchronous_commit=off" };
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -k {} -c max_connections=400 -c shared_buffers=128MB{fast}",
            cluster.dir.display()
        );
        cluster.run(
            cluster
                .pg_command("pg_ctl")
                .args(["start", "-w", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(cluster.dir.join("server.log"))
                .args(["-o", &options]),
            "pg_ctl start",
        )?;
        cluster.url = format!("postgres://postgres@127.0.0.1:{port}");
        Ok(cluster)
    }

    fn pg_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn run(&self, command: &mut Command, what: &str) -> Result<(), String> {
        let out = command.output().map_err(|e| format!("cannot run {what}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Err(format!(
            "{what} failed ({}): {}{}\n{log}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if !self.url.is_empty() {
            let _ = self.pg_command("pg_ctl").args(["stop", "-m", "immediate", "-D"]).arg(&data).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
