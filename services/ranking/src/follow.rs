//! The alias follower: polls the registry, loads and warms the version the alias points at,
//! swaps it in, and refuses versions that cannot be served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quire_registry::{ArtifactStore, Error as RegistryError, Registry};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::api::AppState;
use crate::metrics::{ModelLabels, ReasonLabels};
use crate::model;
use crate::{ModelAlias, RankingOptions};

/// A version that failed to load, and when.
#[derive(Debug, Clone, Copy)]
struct Failed {
    version: i64,
    at: Instant,
}

/// Follows `NAME@ALIAS` for the service's state.
#[derive(Debug)]
pub(crate) struct Follower {
    registry: Registry,
    /// The registry's URL for messages, without its password.
    registry_shown: String,
    store: ArtifactStore,
    target: ModelAlias,
    poll_interval: Duration,
    retry_interval: Duration,
    session_pool: usize,
    state: Arc<AppState>,
}

impl Follower {
    pub fn new(
        registry: Registry,
        store: ArtifactStore,
        opts: &RankingOptions,
        state: Arc<AppState>,
    ) -> Self {
        Self {
            registry,
            registry_shown: quire_registry::redacted_url(&opts.registry_url),
            store,
            target: opts.model.clone(),
            poll_interval: opts.poll_interval,
            retry_interval: opts.retry_interval,
            session_pool: opts.session_pool.max(1),
            state,
        }
    }

    /// Polls until `stop` turns true (or its sender is gone).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failed: Option<Failed> = None;
        let mut alias_missing_logged = false;
        loop {
            tokio::select! {
                // A load in progress is abandoned at shutdown: nothing is served any more.
                _ = stop.wait_for(|stop| *stop) => break,
                () = self.poll(&mut failed, &mut alias_missing_logged) => {}
            }
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
        self.registry.close().await;
    }

    /// One look at the alias; loads its version if it is new.
    async fn poll(&self, failed: &mut Option<Failed>, alias_missing_logged: &mut bool) {
        let (name, alias) = (&self.target.name, &self.target.alias);
        let version = match self.registry.get_version_by_alias(name, alias).await {
            Ok(v) => {
                *alias_missing_logged = false;
                v
            }
            Err(RegistryError::NotFound { .. }) => {
                if !*alias_missing_logged {
                    warn!(
                        model = %self.target,
                        registry = %self.registry_shown,
                        "the alias points at no version; waiting for it"
                    );
                    *alias_missing_logged = true;
                }
                return;
            }
            Err(e) => {
                self.state.metrics.registry_errors.inc();
                warn!(model = %self.target, error = %e, "cannot read the alias from the registry");
                return;
            }
        };
        let served = self.state.model.load().as_ref().map(|m| m.version);
        if served == Some(version.version) {
            return;
        }
        if let Some(f) = failed
            && f.version == version.version
            && f.at.elapsed() < self.retry_interval
        {
            return;
        }
        debug!(model = %self.target, version = version.version, "loading a new version");
        let started = Instant::now();
        match model::load(&self.store, &version, self.session_pool).await {
            Ok(loaded) => {
                *failed = None;
                let labels = ModelLabels {
                    name: loaded.name.clone(),
                    version: loaded.version.to_string(),
                    run_id: loaded.run_id.clone(),
                };
                let m = &self.state.metrics;
                let new_version = loaded.version;
                let old = self.state.model.swap(Some(Arc::new(loaded)));
                m.model_info.get_or_create(&labels).set(1);
                m.model_version.set(new_version);
                m.ready.set(1);
                if let Some(old) = old {
                    m.swaps.inc();
                    m.model_info.remove(&ModelLabels {
                        name: old.name.clone(),
                        version: old.version.to_string(),
                        run_id: old.run_id.clone(),
                    });
                    retire(old);
                }
                info!(
                    model = %self.target,
                    version = new_version,
                    previous = served,
                    load_ms = started.elapsed().as_millis() as u64,
                    "serving model version"
                );
            }
            Err(e) => {
                self.state
                    .metrics
                    .load_failures
                    .get_or_create(&ReasonLabels { reason: e.reason() })
                    .inc();
                error!(
                    model = %self.target,
                    version = version.version,
                    reason = e.reason(),
                    error = %e,
                    serving = served,
                    "refused model version; the served version (if any) stays"
                );
                *failed = Some(Failed {
                    version: version.version,
                    at: Instant::now(),
                });
            }
        }
    }
}

/// Frees a replaced version off the request path. Requests that started on it still hold it,
/// and whichever let go last would free its ONNX Runtime sessions and tables (milliseconds):
/// a request on its scoring thread before answering, or the follower on the runtime. Instead a
/// blocking thread waits until it holds the last reference (no new one can be taken once the
/// version is swapped out) and frees it there.
fn retire<T: Send + Sync + 'static>(old: Arc<T>) {
    tokio::task::spawn_blocking(move || {
        while Arc::strong_count(&old) > 1 {
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(old);
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::thread::ThreadId;

    use super::*;

    /// Records the thread it is dropped on.
    struct Droppy(Arc<Mutex<Option<ThreadId>>>);

    impl Drop for Droppy {
        fn drop(&mut self) {
            *self.0.lock().unwrap() = Some(std::thread::current().id());
        }
    }

    #[tokio::test]
    async fn a_retired_version_is_freed_off_the_request_once_its_requests_are_done() {
        let dropped_on = Arc::new(Mutex::new(None));
        let old = Arc::new(Droppy(dropped_on.clone()));
        let held_by_a_request = old.clone();
        retire(old);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(dropped_on.lock().unwrap().is_none(), "freed while in use");
        // The request ends: its reference goes, but the freeing is not its to do.
        let request_thread = std::thread::current().id();
        drop(held_by_a_request);
        let deadline = Instant::now() + Duration::from_secs(5);
        while dropped_on.lock().unwrap().is_none() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let on = dropped_on.lock().unwrap().expect("freed");
        assert_ne!(on, request_thread);
    }
}
