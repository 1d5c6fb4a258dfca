//! Test registries: a SQLite file in a temporary directory, or a fresh database on a
//! PostgreSQL 15 server started once per test process (`quire_testkit::postgres`).

use quire_registry::{ArtifactStore, Registry};
use quire_testkit::postgres::PgServer;
use tempfile::TempDir;

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
    let url = PgServer::shared().fresh_database("quire_test").await;
    open(url, tempfile::tempdir().expect("temporary directory")).await
}
