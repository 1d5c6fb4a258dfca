//! What the tests run against: a registry server on a free loopback port (SQLite in a
//! temporary directory, or a fresh database on a PostgreSQL 15 server this process starts),
//! the real `mlflow` client in a venv, and headless Chromium.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use quire_registry_server::{RegistryServer, RegistryServerOptions};
use quire_testkit::postgres::PgServer;
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
        let url = PgServer::shared().fresh_database("quire_server").await;
        Self::start(url, tempfile::tempdir().expect("temporary directory")).await
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
    let page = quire_testkit::chromium::run(url, &["--dump-dom"]);
    let console = page.console().into_iter().map(str::to_owned).collect();
    (page.stdout, console)
}
