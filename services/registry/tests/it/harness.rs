//! What the tests run against: a registry server on a free loopback port (SQLite in a
//! temporary directory, or a fresh database on a PostgreSQL 15 server this process starts),
//! the real `mlflow` client in a venv, and headless Chromium.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use quire_registry_server::{RegistryServer, RegistryServerOptions};
use sqlx::{Connection, Executor};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// What the client venv holds: the client the issue names, and what `mlflow.pyfunc` imports.
const CLIENT_REQUIREMENTS: &[&str] = &["mlflow-skinny==3.17.*", "numpy<3", "pandas<4"];

/// A running server and its state's directory; stopped when dropped.
pub struct TestServer {
    pub url: String,
    pub registry_url: String,
    pub artifacts: PathBuf,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestServer {
    pub async fn sqlite() -> TestServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/registry.db", dir.path().display());
        Self::start(url, dir).await
    }

    pub async fn postgres() -> TestServer {
        let server = match PG.get_or_init(PgServer::start) {
            Ok(server) => server,
            Err(reason) => panic!("{reason}"),
        };
        let db = format!("quire_server_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::postgres::PgConnection::connect(&server.url("postgres"))
            .await
            .expect("connect to the test postgres server");
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .await
            .expect("create the test database");
        admin.close().await.expect("close the admin connection");
        Self::start(
            server.url(&db),
            tempfile::tempdir().expect("temporary directory"),
        )
        .await
    }

    async fn start(registry_url: String, dir: TempDir) -> TestServer {
        let artifacts = dir.path().join("artifacts");
        let mut opts = RegistryServerOptions::new(registry_url.clone(), &artifacts);
        opts.listen = "127.0.0.1:0".parse().expect("an address");
        let server = RegistryServer::bind(opts)
            .await
            .unwrap_or_else(|e| panic!("start the registry server on {registry_url}: {e}"));
        let addr = server.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            url: format!("http://{addr}"),
            registry_url,
            artifacts,
            dir,
            stop: Some(stop),
        }
    }

    /// Runs a Python script (a file, or `-c CODE`) with the client venv's python and
    /// `MLFLOW_TRACKING_URI` pointing at this server, in a fresh working directory.
    pub fn python(&self, args: &[&str]) -> Output {
        let work = tempfile::tempdir_in(self.dir.path()).expect("working directory");
        Command::new(client_python())
            .args(args)
            .arg(work.path())
            .current_dir(work.path())
            .env("MLFLOW_TRACKING_URI", &self.url)
            // A test never waits minutes on retries.
            .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            .env("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .expect("run python")
    }
}

/// The target directory (`<target>/debug/deps/<test binary>` → `<target>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("the test binary lives in <target>/<profile>/deps")
}

/// The client venv's python: `QUIRE_MLFLOW_CLIENT_VENV`, else `<target>/venvs/mlflow-client`,
/// created on first use by `scripts/mlflow-venv.sh` (pip, from PyPI).
pub fn client_python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let got = PYTHON.get_or_init(|| {
        let dir = std::env::var_os("QUIRE_MLFLOW_CLIENT_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("venvs/mlflow-client"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mlflow-venv.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .args(CLIENT_REQUIREMENTS)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} could not create the mlflow client venv in {} ({}); it needs python3-venv and PyPI",
                script.display(),
                dir.display(),
                out.status
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    match got {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Loads `url` in headless Chromium; returns the DOM after load and Chromium's log lines
/// that report console messages (a page of this UI writes none).
pub fn chromium(url: &str) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().expect("chromium profile directory");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!("chromium could not start ({e}): run scripts/setup.sh, which installs it")
        });
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

// ---- PostgreSQL, as crates/quire-registry/tests/it/harness.rs starts it ----

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

static PG: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// A PostgreSQL server in a temporary directory on a free loopback port, stopped (and its
/// directory removed) by a watchdog when this process exits, however it exits.
struct PgServer {
    port: u16,
    _watchdog: Mutex<Child>,
}

impl PgServer {
    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn start() -> Result<PgServer, String> {
        if !Path::new(PG_BIN).join("initdb").exists() {
            return Err(format!(
                "PostgreSQL 15 is not installed ({PG_BIN}/initdb is missing): run scripts/setup.sh"
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("quire-pg-")
            .tempdir()
            .map_err(|e| format!("creating the postgres directory: {e}"))?
            .keep();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
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
        let as_pg = |script: String| {
            let mut cmd = Command::new(if root { "su" } else { "sh" });
            if root {
                cmd.args(["postgres", "-c", &script]);
            } else {
                cmd.args(["-c", &script]);
            }
            cmd
        };
        run(
            &mut as_pg(format!(
                "{PG_BIN}/initdb -D {d}/data -U postgres --auth=trust -E UTF8 --no-sync >{d}/initdb.log 2>&1"
            )),
            "initdb",
        )
        .map_err(|e| format!("{e} (see {d}/initdb.log)"))?;
        run(
            &mut as_pg(format!(
                "{PG_BIN}/pg_ctl -D {d}/data -o \"-p {port} -k {d} -c listen_addresses=127.0.0.1 \
                 -c fsync=off\" -l {d}/server.log -w start >/dev/null"
            )),
            "pg_ctl start",
        )
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
        if let Some(stdin) = watchdog.stdin.as_mut() {
            stdin.flush().map_err(|e| format!("watchdog pipe: {e}"))?;
        }
        Ok(PgServer {
            port,
            _watchdog: Mutex::new(watchdog),
        })
    }
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
