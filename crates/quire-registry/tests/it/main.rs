//! One behaviour suite for the registry, run against SQLite and against a real PostgreSQL 15
//! server that the harness starts itself.

mod harness;
mod suite;

/// Generates one test per suite function and backend: `sqlite::<name>` and `postgres::<name>`.
macro_rules! backend_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let registry = crate::harness::sqlite().await;
                    crate::suite::$name(&registry).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let registry = crate::harness::postgres().await;
                    crate::suite::$name(&registry).await;
                }
            )*
        }
    };
}

backend_suite!(
    connect_migrates_and_reconnects,
    experiments_create_get_search,
    runs_carry_info_tags_and_status,
    params_are_immutable,
    metric_history_and_latest,
    non_finite_metrics_are_kept,
    log_batch_is_all_or_nothing,
    log_batch_checks_whatever_its_size,
    log_batch_keeps_history_and_latest,
    search_runs_filters_order_and_pages,
    search_runs_metric_order_pages,
    search_filter_rejects_bad_input,
    model_versions_with_artifacts,
    aliases_move_and_keep_history,
    checksum_mismatch_is_refused,
    concurrent_batches_fail_alone,
    concurrent_writers_lose_nothing,
    concurrent_registrations_get_distinct_versions,
    delete_waits_for_writers_of_the_model,
    text_sorts_by_its_bytes,
    reading_by_alias_during_promotions_always_finds_a_version,
);

/// SQLite only: several processes may open a registry file that does not exist yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_first_connects_race_safely() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/fresh/registry.db", dir.path().display());
    let mut handles = Vec::new();
    for _ in 0..6 {
        let url = url.clone();
        handles.push(tokio::spawn(async move {
            quire_registry::Registry::connect(&url).await
        }));
    }
    for h in handles {
        let registry = h.await.expect("join").expect("connect to a fresh registry");
        registry
            .search_experiments(None, quire_registry::ViewType::All)
            .await
            .expect("query");
    }
}
