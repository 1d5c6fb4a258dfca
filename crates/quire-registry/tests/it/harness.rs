//! Test registries: a SQLite file in a temporary directory, or a fresh database on a
//! PostgreSQL 15 server started once per test process from `/usr/lib/postgresql/15/bin`.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use quire_registry::{ArtifactStore, Registry};
use sqlx::{Connection, Executor};
use tempfile::TempDir;

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A registry and an artifact store that live as long as this value.
pub struct TestRegistry {
    pub registry: Registry,
    pub artifacts: ArtifactStore,
    /// The database URL, for tests that open a second handle.
    pub url: String,
    _dir: TempDir,
}

pub async fn sqlite() -> TestRegistry {
    let dir = tempfile::tempdir().expect("temporary directory");
    // A parent directory that does not exist yet: connect must create it.
    let url = format!("sqlite://{}/nested/registry.db", dir.path().display());
    open(url, dir).await
}

/// Connects to `url` and opens an artifact store in `dir` (kept alive with the registry).
async fn open(url: String, dir: tempfile::TempDir) -> TestRegistry {
    let registry = Registry::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("open the registry at {url}: {e}"));
    let artifacts = ArtifactStore::open(dir.path().join("models"))
        .await
        .expect("open the artifact store");
    TestRegistry {
        registry,
        artifacts,
        url,
        _dir: dir,
    }
}

pub async fn postgres() -> TestRegistry {
    let server = match SERVER.get_or_init(PgServer::start) {
        Ok(server) => server,
        Err(reason) => panic!("{reason}"),
    };
    let db = format!("quire_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::postgres::PgConnection::connect(&server.url("postgres"))
        .await
        .expect("connect to the test postgres server");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .expect("create the test database");
    admin.close().await.expect("close the admin connection");
    let url = server.url(&db);
    open(url, tempfile::tempdir().expect("temporary directory")).await
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// A PostgreSQL server in a temporary directory, on a free loopback port.
///
/// It lives as long as the test process: a watchdog shell holds the read end of a pipe whose
/// write end only this process holds; when the process exits (normally or not) the pipe
/// closes and the watchdog stops the server and removes its directory.
struct PgServer {
    port: u16,
    // Never written; dropping it (at process exit) is the stop signal.
    _watchdog: Mutex<Child>,
}

impl PgServer {
    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn start() -> Result<PgServer, String> {
        let bin = Path::new(PG_BIN);
        if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
            return Err(format!(
                "PostgreSQL 15 is not installed ({PG_BIN}/initdb and pg_ctl are missing): \
                 run scripts/setup.sh to install it (CI does); the registry suite must run \
                 against a real PostgreSQL server"
            ));
        }
        let dir: PathBuf = tempfile::Builder::new()
            .prefix("quire-pg-")
            .tempdir()
            .map_err(|e| format!("creating the postgres directory: {e}"))?
            .keep();
        let root = is_root();
        if root {
            run(
                Command::new("chown").arg("-R").arg("postgres").arg(&dir),
                "chown",
            )?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let d = dir.display();
        let initdb = format!(
            "{PG_BIN}/initdb -D {d}/data -U postgres --auth=trust -E UTF8 --no-sync >{d}/initdb.log 2>&1"
        );
        run(&mut as_postgres(root, &initdb), "initdb")
            .map_err(|e| format!("{e} (see {d}/initdb.log)"))?;
        let pg_ctl = format!(
            "{PG_BIN}/pg_ctl -D {d}/data -o \"-p {port} -k {d} -c listen_addresses=127.0.0.1 \
             -c fsync=off -c max_connections=200\" -l {d}/server.log -w start >/dev/null"
        );
        run(&mut as_postgres(root, &pg_ctl), "pg_ctl start")
            .map_err(|e| format!("{e} (see {d}/server.log)"))?;
        let stop = format!("{PG_BIN}/pg_ctl -D {d}/data -m fast -w stop >/dev/null 2>&1");
        let stop = if root {
            format!("su postgres -c '{stop}'")
        } else {
            stop
        };
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!("cat >/dev/null; {stop}; rm -rf {d}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the postgres watchdog: {e}"))?;
        // Keep the pipe open; a flush checks it is.
        if let Some(stdin) = watchdog.stdin.as_mut() {
            stdin.flush().map_err(|e| format!("watchdog pipe: {e}"))?;
        }
        Ok(PgServer {
            port,
            _watchdog: Mutex::new(watchdog),
        })
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn as_postgres(root: bool, script: &str) -> Command {
    let mut cmd;
    if root {
        cmd = Command::new("su");
        cmd.args(["postgres", "-c", script]);
    } else {
        cmd = Command::new("sh");
        cmd.args(["-c", script]);
    }
    cmd
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("{what} could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed with {status}"))
    }
}
