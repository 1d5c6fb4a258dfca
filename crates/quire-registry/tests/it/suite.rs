//! The behaviour suite, written once and run against every backend.

use std::collections::BTreeSet;

use quire_registry::{
    ArtifactRef, Error, Metric, NamedArtifact, NewModelVersion, NewRun, Registry, RunStatus,
    SearchRuns, ViewType,
};
use sqlx::AssertSqlSafe;

use crate::harness::TestRegistry;

async fn experiment(reg: &Registry, name: &str) -> i64 {
    reg.create_experiment(name, None)
        .await
        .expect("create experiment")
}

async fn run(reg: &Registry, experiment_id: i64, name: &str) -> String {
    reg.create_run(NewRun {
        experiment_id,
        run_name: name.into(),
        ..NewRun::default()
    })
    .await
    .expect("create run")
    .info
    .run_id
}

fn metric(key: &str, value: f64, step: i64, timestamp: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp,
        step,
    }
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_owned(), v.to_owned())
}

pub async fn connect_migrates_and_reconnects(t: &TestRegistry) {
    let id = experiment(&t.registry, "persisted").await;
    // A second handle on the same database: migrations are already applied and data is there.
    let again = Registry::connect(&t.url).await.expect("reconnect");
    assert_eq!(again.get_experiment(id).await.unwrap().name, "persisted");
    again.close().await;
    assert!(matches!(
        Registry::connect("mysql://localhost/x").await,
        Err(Error::InvalidParameter(_))
    ));
}

pub async fn experiments_create_get_search(t: &TestRegistry) {
    let reg = &t.registry;
    let a = experiment(reg, "ranking").await;
    let b = reg
        .create_experiment("recs", Some("file:///srv/artifacts/recs"))
        .await
        .unwrap();
    assert_ne!(a, b);
    let got = reg.get_experiment(a).await.unwrap();
    assert_eq!(got.name, "ranking");
    assert_eq!(got.artifact_location, format!("mlflow-artifacts:/{a}"));
    assert_eq!(got.lifecycle_stage, "active");
    assert_eq!(
        reg.get_experiment_by_name("recs")
            .await
            .unwrap()
            .artifact_location,
        "file:///srv/artifacts/recs"
    );
    match reg.create_experiment("ranking", None).await {
        Err(Error::AlreadyExists { what, id }) => {
            assert_eq!((what, id.as_str()), ("experiment", "ranking"));
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let err = reg.get_experiment(9999).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotFound {
                what: "experiment",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.to_string(), "experiment \"9999\" not found");
    assert!(reg.get_experiment_by_name("nope").await.is_err());
    let all: Vec<String> = reg
        .search_experiments(None, ViewType::ActiveOnly)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(all, ["ranking", "recs"]);
    let some = reg
        .search_experiments(Some("rank%"), ViewType::All)
        .await
        .unwrap();
    assert_eq!(some.len(), 1);

    reg.set_experiment_lifecycle(b, true).await.unwrap();
    assert_eq!(
        reg.get_experiment(b).await.unwrap().lifecycle_stage,
        "deleted"
    );
    let active = reg
        .search_experiments(None, ViewType::ActiveOnly)
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    let deleted = reg
        .search_experiments(None, ViewType::DeletedOnly)
        .await
        .unwrap();
    assert_eq!(deleted[0].experiment_id, b);
    assert!(matches!(
        reg.create_run(NewRun {
            experiment_id: b,
            ..NewRun::default()
        })
        .await,
        Err(Error::InvalidParameter(_))
    ));
    reg.set_experiment_lifecycle(b, false).await.unwrap();

    reg.set_experiment_tag(a, "owner", "search").await.unwrap();
    reg.set_experiment_tag(a, "owner", "ranking").await.unwrap();
    assert_eq!(
        reg.get_experiment(a).await.unwrap().tags["owner"],
        "ranking"
    );
    reg.delete_experiment_tag(a, "owner").await.unwrap();
    assert!(reg.get_experiment(a).await.unwrap().tags.is_empty());
    assert!(matches!(
        reg.delete_experiment_tag(a, "owner").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        reg.set_experiment_tag(4242, "k", "v").await,
        Err(Error::NotFound {
            what: "experiment",
            ..
        })
    ));
    assert!(matches!(
        reg.set_experiment_lifecycle(4242, true).await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn runs_carry_info_tags_and_status(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "ranking").await;
    let created = reg
        .create_run(NewRun {
            experiment_id: exp,
            run_name: "lgbm-1".into(),
            user_id: "ana".into(),
            start_time: Some(1_700_000_000_000),
            tags: vec![kv("team", "search")],
            source_config: Some("version = 1\nobjective = \"lambdarank\"\n".into()),
            git_commit: Some("0123abcd".into()),
        })
        .await
        .unwrap();
    let id = &created.info.run_id;
    assert_eq!(id.len(), 32);
    assert_eq!(created.info.status, RunStatus::Running);
    assert_eq!(created.info.start_time, 1_700_000_000_000);
    assert_eq!(created.info.end_time, None);
    assert_eq!(
        created.info.artifact_uri,
        format!("mlflow-artifacts:/{exp}/{id}/artifacts")
    );
    assert_eq!(created.info.git_commit.as_deref(), Some("0123abcd"));
    assert!(created.info.source_config.unwrap().contains("lambdarank"));
    let tags = &created.data.tags;
    assert_eq!(tags["team"], "search");
    assert_eq!(tags["mlflow.runName"], "lgbm-1");
    assert_eq!(tags["mlflow.user"], "ana");
    assert_eq!(tags["mlflow.source.git.commit"], "0123abcd");

    reg.set_tag(id, "team", "ranking").await.unwrap();
    let info = reg
        .update_run(
            id,
            RunStatus::Finished,
            Some(1_700_000_100_000),
            Some("lgbm-final"),
        )
        .await
        .unwrap();
    assert_eq!(info.status, RunStatus::Finished);
    assert_eq!(info.end_time, Some(1_700_000_100_000));
    assert_eq!(info.run_name, "lgbm-final");
    let run = reg.get_run(id).await.unwrap();
    assert_eq!(run.data.tags["team"], "ranking");
    assert_eq!(run.data.tags["mlflow.runName"], "lgbm-final");
    reg.delete_tag(id, "team").await.unwrap();
    assert!(
        !reg.get_run(id)
            .await
            .unwrap()
            .data
            .tags
            .contains_key("team")
    );
    assert!(matches!(
        reg.delete_tag(id, "team").await,
        Err(Error::NotFound { .. })
    ));

    assert!(matches!(
        reg.create_run(NewRun {
            experiment_id: 777,
            ..NewRun::default()
        })
        .await,
        Err(Error::NotFound {
            what: "experiment",
            ..
        })
    ));
    assert!(matches!(
        reg.get_run("missing").await,
        Err(Error::NotFound { what: "run", .. })
    ));
    assert!(matches!(
        reg.set_tag("missing", "k", "v").await,
        Err(Error::NotFound { .. })
    ));

    // Deleted runs take no more data and leave default searches.
    reg.set_run_lifecycle(id, true).await.unwrap();
    assert!(reg.set_tag(id, "k", "v").await.is_err());
    let page = reg
        .search_runs(&SearchRuns {
            experiment_ids: vec![exp],
            ..SearchRuns::default()
        })
        .await
        .unwrap();
    assert!(page.runs.is_empty());
    let deleted = reg
        .search_runs(&SearchRuns {
            experiment_ids: vec![exp],
            view: ViewType::DeletedOnly,
            ..SearchRuns::default()
        })
        .await
        .unwrap();
    assert_eq!(deleted.runs.len(), 1);
    reg.set_run_lifecycle(id, false).await.unwrap();
    reg.set_tag(id, "k", "v").await.unwrap();
}

pub async fn params_are_immutable(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "e").await;
    let id = run(reg, exp, "r").await;
    reg.log_params(
        &id,
        &[kv("objective", "lambdarank"), kv("num_leaves", "31")],
    )
    .await
    .unwrap();
    // The same value again is a no-op.
    reg.log_params(&id, &[kv("objective", "lambdarank")])
        .await
        .unwrap();
    // A different value is refused and names both values.
    let err = reg
        .log_params(&id, &[kv("objective", "regression")])
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidParameter(_)), "{msg}");
    assert!(
        msg.contains("lambdarank") && msg.contains("regression"),
        "{msg}"
    );
    let params = reg.get_run(&id).await.unwrap().data.params;
    assert_eq!(params.len(), 2);
    assert_eq!(params["objective"], "lambdarank");
    assert_eq!(params["num_leaves"], "31");
    assert!(matches!(
        reg.log_params(&id, &[kv("", "x")]).await,
        Err(Error::InvalidParameter(_))
    ));
}

pub async fn metric_history_and_latest(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "e").await;
    let id = run(reg, exp, "r").await;
    // Logged out of order: the latest is the highest step, whatever the logging order.
    for (value, step, ts) in [
        (0.50, 0, 1000),
        (0.62, 2, 1002),
        (0.58, 1, 1003),
        (0.61, 2, 1001),
    ] {
        reg.log_metric(&id, &metric("ndcg_5", value, step, ts))
            .await
            .unwrap();
    }
    reg.log_metric(&id, &metric("loss", 1.5, 0, 1000))
        .await
        .unwrap();
    // Same step, same timestamp, logged twice: both stay in the history.
    reg.log_metric(&id, &metric("loss", 1.5, 0, 1000))
        .await
        .unwrap();

    let history = reg.get_metric_history(&id, "ndcg_5").await.unwrap();
    let seen: Vec<(i64, i64, f64)> = history
        .iter()
        .map(|m| (m.step, m.timestamp, m.value))
        .collect();
    assert_eq!(
        seen,
        [
            (0, 1000, 0.50),
            (1, 1003, 0.58),
            (2, 1001, 0.61),
            (2, 1002, 0.62)
        ]
    );
    assert_eq!(reg.get_metric_history(&id, "loss").await.unwrap().len(), 2);
    assert!(
        reg.get_metric_history(&id, "absent")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        reg.get_metric_history("missing", "loss").await,
        Err(Error::NotFound { .. })
    ));

    let latest = reg.get_run(&id).await.unwrap().data.metrics;
    assert_eq!(
        latest,
        [
            metric("loss", 1.5, 0, 1000),
            metric("ndcg_5", 0.62, 2, 1002)
        ]
    );
}

/// NaN and infinite values are stored as logged (MLflow stores them; a training that diverges
/// logs a NaN loss). A NaN passes no filter and sorts last, with the runs that lack the metric;
/// in a tie of step and timestamp, a NaN loses to a number.
pub async fn non_finite_metrics_are_kept(t: &TestRegistry) {
    async fn search(
        reg: &Registry,
        exp: i64,
        filter: &str,
        order: &[&str],
    ) -> Vec<quire_registry::Run> {
        reg.search_runs(&SearchRuns {
            experiment_ids: vec![exp],
            filter: filter.into(),
            order_by: order.iter().map(|o| (*o).to_owned()).collect(),
            ..SearchRuns::default()
        })
        .await
        .unwrap()
        .runs
    }
    let reg = &t.registry;
    let exp = experiment(reg, "e").await;
    let diverged = run(reg, exp, "diverged").await;
    let fine = run(reg, exp, "fine").await;
    let none = run(reg, exp, "none").await;
    reg.log_metric(&diverged, &metric("loss", 0.9, 0, 1000))
        .await
        .unwrap();
    reg.log_metric(&diverged, &metric("loss", f64::NAN, 1, 1001))
        .await
        .unwrap();
    reg.log_metric(&diverged, &metric("grad", f64::INFINITY, 1, 1001))
        .await
        .unwrap();
    // In a tie of step and timestamp a NaN loses to any number, within a batch and against
    // the stored value, in either order.
    reg.log_metric(&diverged, &metric("tie", f64::NAN, 0, 5))
        .await
        .unwrap();
    reg.log_batch(
        &diverged,
        &[metric("tie", 2.0, 0, 5), metric("tie", f64::NAN, 0, 5)],
        &[],
        &[],
    )
    .await
    .unwrap();
    reg.log_metric(&diverged, &metric("tie", f64::NAN, 0, 5))
        .await
        .unwrap();
    reg.log_metric(&fine, &metric("loss", 0.5, 1, 1001))
        .await
        .unwrap();
    reg.log_metric(&none, &metric("other", 1.0, 0, 1000))
        .await
        .unwrap();

    let history = reg.get_metric_history(&diverged, "loss").await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].value, 0.9);
    assert!(history[1].value.is_nan(), "{history:?}");
    let latest = reg.get_run(&diverged).await.unwrap().data.metrics;
    let value = |key: &str| latest.iter().find(|m| m.key == key).unwrap().value;
    assert!(value("loss").is_nan());
    assert_eq!(value("grad"), f64::INFINITY);
    assert_eq!(value("tie"), 2.0, "{latest:?}");
    assert_eq!(
        reg.get_metric_history(&diverged, "tie")
            .await
            .unwrap()
            .len(),
        4
    );
    // Searches read the values as they are.
    let found = search(reg, exp, "", &[]).await;
    let found = found.iter().find(|r| r.info.run_id == diverged).unwrap();
    let loss = found.data.metrics.iter().find(|m| m.key == "loss").unwrap();
    assert!(loss.value.is_nan());

    // No comparison holds for NaN.
    for (filter, want) in [
        ("metrics.loss < 1", vec![fine.clone()]),
        ("metrics.loss >= 0", vec![fine.clone()]),
        ("metrics.loss != 0.5", vec![]),
    ] {
        let ids: Vec<String> = search(reg, exp, filter, &[])
            .await
            .into_iter()
            .map(|r| r.info.run_id)
            .collect();
        assert_eq!(ids, want, "{filter}");
    }
    // Last in either direction, with the run that lacks the metric (by name here), both on
    // SQLite's walk of the metric's index and on the general query.
    for order in [
        ["metrics.loss ASC", "attributes.run_name DESC"],
        ["metrics.loss DESC", "attributes.run_name DESC"],
    ] {
        let ids: Vec<String> = search(reg, exp, "", &order)
            .await
            .into_iter()
            .map(|r| r.info.run_id)
            .collect();
        assert_eq!(
            ids,
            [fine.clone(), none.clone(), diverged.clone()],
            "{order:?}"
        );
    }
}

pub async fn log_batch_is_all_or_nothing(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "e").await;
    let id = run(reg, exp, "r").await;
    reg.log_batch(
        &id,
        &[metric("a", 1.0, 0, 1), metric("b", 2.0, 0, 1)],
        &[kv("p", "1")],
        &[kv("t", "x")],
    )
    .await
    .unwrap();
    // A conflicting param fails the whole batch: the metric and tag beside it are not kept.
    let err = reg
        .log_batch(
            &id,
            &[metric("c", 3.0, 0, 1)],
            &[kv("p", "2")],
            &[kv("u", "y")],
        )
        .await;
    assert!(matches!(err, Err(Error::InvalidParameter(_))));
    let data = reg.get_run(&id).await.unwrap().data;
    assert_eq!(data.metrics.len(), 2);
    assert_eq!(data.params.len(), 1);
    assert!(!data.tags.contains_key("u"));
}

/// A batch goes to the database as few queries as the backend allows; whatever the split, a
/// missing or deleted run is "not found", a key logged twice in one batch with two values is
/// refused, nothing of a refused batch stays, and a batch too large for one SQLite query
/// (more than 16,000 values) is stored whole.
pub async fn log_batch_checks_whatever_its_size(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "e").await;
    let id = run(reg, exp, "r").await;
    let one = [metric("a", 1.0, 0, 1)];
    let err = reg
        .log_batch("missing", &one, &[kv("p", "1")], &[kv("t", "x")])
        .await;
    assert!(
        matches!(
            err,
            Err(Error::NotFound {
                what: "active run",
                ..
            })
        ),
        "{err:?}"
    );

    reg.set_run_lifecycle(&id, true).await.unwrap();
    let err = reg.log_batch(&id, &one, &[kv("p", "1")], &[]).await;
    assert!(
        matches!(
            err,
            Err(Error::NotFound {
                what: "active run",
                ..
            })
        ),
        "{err:?}"
    );
    reg.set_run_lifecycle(&id, false).await.unwrap();
    let data = reg.get_run(&id).await.unwrap().data;
    assert!(data.metrics.is_empty() && data.params.is_empty());

    let err = reg
        .log_batch(&id, &one, &[kv("p", "1"), kv("p", "2")], &[])
        .await;
    assert!(matches!(err, Err(Error::InvalidParameter(_))), "{err:?}");
    // The same value twice is one param.
    reg.log_batch(&id, &[], &[kv("p", "1"), kv("p", "1")], &[])
        .await
        .unwrap();

    let metrics: Vec<Metric> = (0..2_000)
        .map(|i| metric(&format!("k{i:04}"), f64::from(i), 0, 1))
        .collect();
    let params: Vec<(String, String)> = (0..250)
        .map(|i| kv(&format!("q{i:03}"), &i.to_string()))
        .collect();
    let tags: Vec<(String, String)> = (0..50).map(|i| kv(&format!("t{i:02}"), "v")).collect();
    reg.log_batch(&id, &metrics, &params, &tags).await.unwrap();
    let data = reg.get_run(&id).await.unwrap().data;
    assert_eq!(data.metrics.len(), 2_000);
    assert_eq!(data.params.len(), 251);
    assert_eq!(data.params["q249"], "249");
    assert!(data.tags.contains_key("t49"));
    // A changed param at the end of the large batch still refuses all of it.
    let mut changed = params.clone();
    changed.push(kv("q000", "changed"));
    let more: Vec<Metric> = (0..2_000)
        .map(|i| metric(&format!("k{i:04}"), 0.0, 1, 2))
        .collect();
    let err = reg.log_batch(&id, &more, &changed, &[]).await;
    assert!(matches!(err, Err(Error::InvalidParameter(_))), "{err:?}");
    assert_eq!(reg.get_metric_history(&id, "k0007").await.unwrap().len(), 1);
}

/// One batch with a key at several steps, and more metrics than one statement takes: every
/// value is in the history, and the latest is the highest (step, timestamp, value), whichever
/// order the batch lists them in and whatever was stored before.
pub async fn log_batch_keeps_history_and_latest(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "batch").await;
    let id = run(reg, exp, "r").await;
    reg.log_metric(&id, &metric("loss", 9.0, 5, 50))
        .await
        .unwrap();
    let mut batch = vec![
        metric("loss", 1.0, 7, 70),
        metric("loss", 2.0, 3, 30), // older than the stored step 5: history only
        metric("loss", 0.5, 7, 70), // same step and time, lower value: not the latest
        metric("acc", 0.1, 1, 10),
        metric("acc", 0.3, 1, 11),
    ];
    batch.extend((0..250).map(|i| metric(&format!("m{i:03}"), f64::from(i), 0, 1)));
    reg.log_batch(&id, &batch, &[], &[]).await.unwrap();

    let history = reg.get_metric_history(&id, "loss").await.unwrap();
    assert_eq!(history.len(), 4);
    let latest = reg.get_run(&id).await.unwrap().data.metrics;
    assert_eq!(latest.len(), 252);
    let get = |k: &str| latest.iter().find(|m| m.key == k).unwrap().clone();
    assert_eq!(get("loss"), metric("loss", 1.0, 7, 70));
    assert_eq!(get("acc"), metric("acc", 0.3, 1, 11));
    assert_eq!(get("m249"), metric("m249", 249.0, 0, 1));

    // A later batch with only older values changes the history, not the latest.
    reg.log_batch(&id, &[metric("loss", 0.0, 6, 99)], &[], &[])
        .await
        .unwrap();
    let latest = reg.get_run(&id).await.unwrap().data.metrics;
    assert_eq!(
        latest.iter().find(|m| m.key == "loss").unwrap(),
        &metric("loss", 1.0, 7, 70)
    );
}

async fn seed_runs(reg: &Registry) -> (i64, i64, Vec<String>) {
    let exp = experiment(reg, "search").await;
    let other = experiment(reg, "other").await;
    let mut ids = Vec::new();
    for (i, (ndcg, objective, team)) in [
        (0.55, "lambdarank", "a"),
        (0.65, "lambdarank", "b"),
        (0.70, "regression", "a"),
        (0.61, "lambdarank", "a"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = reg
            .create_run(NewRun {
                experiment_id: exp,
                run_name: format!("run-{i}"),
                start_time: Some(1000 + i as i64),
                ..NewRun::default()
            })
            .await
            .unwrap();
        let id = r.info.run_id;
        reg.log_batch(
            &id,
            &[metric("ndcg_5", ndcg, 0, 1)],
            &[kv("objective", objective)],
            &[kv("team", team)],
        )
        .await
        .unwrap();
        ids.push(id);
    }
    // A run without ndcg_5, and one in another experiment.
    ids.push(run(reg, exp, "bare").await);
    let foreign = run(reg, other, "foreign").await;
    reg.log_metric(&foreign, &metric("ndcg_5", 0.99, 0, 1))
        .await
        .unwrap();
    (exp, other, ids)
}

async fn model_names(reg: &Registry) -> Vec<String> {
    reg.search_registered_models(None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect()
}

fn names(page: &quire_registry::RunsPage) -> Vec<&str> {
    page.runs.iter().map(|r| r.info.run_name.as_str()).collect()
}

pub async fn search_runs_filters_order_and_pages(t: &TestRegistry) {
    let reg = &t.registry;
    let (exp, other, _) = seed_runs(reg).await;
    let search = |filter: &str, order: &[&str]| SearchRuns {
        experiment_ids: vec![exp],
        filter: filter.into(),
        order_by: order.iter().map(|s| s.to_string()).collect(),
        ..SearchRuns::default()
    };
    // Default order: newest start first.
    let all = reg.search_runs(&search("", &[])).await.unwrap();
    assert_eq!(names(&all), ["bare", "run-3", "run-2", "run-1", "run-0"]);
    assert_eq!(all.next_page_token, None);

    let page = reg
        .search_runs(&search(
            "metrics.ndcg_5 > 0.6 and params.objective = 'lambdarank'",
            &["metrics.ndcg_5 DESC"],
        ))
        .await
        .unwrap();
    assert_eq!(names(&page), ["run-1", "run-3"]);

    let page = reg
        .search_runs(&search(
            "tags.team = 'a' AND metrics.`ndcg_5` <= 0.61",
            &["metrics.ndcg_5"],
        ))
        .await
        .unwrap();
    assert_eq!(names(&page), ["run-0", "run-3"]);

    let page = reg
        .search_runs(&search(
            "params.objective LIKE 'lambda%'",
            &["attributes.start_time ASC"],
        ))
        .await
        .unwrap();
    assert_eq!(names(&page), ["run-0", "run-1", "run-3"]);
    // LIKE is case-sensitive on both backends; ILIKE is not.
    let page = reg
        .search_runs(&search("params.objective LIKE 'LAMBDA%'", &[]))
        .await
        .unwrap();
    assert!(page.runs.is_empty());
    let page = reg
        .search_runs(&search("params.objective ILIKE 'LAMBDA%'", &[]))
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 3);
    // `\` makes the next character literal on both backends (SQLite has no escape of its own).
    for (filter, want) in [
        (r"attributes.run_name LIKE 'run_%'", 4),
        (r"attributes.run_name LIKE 'run\_%'", 0),
        (r"attributes.run_name LIKE 'run\-0'", 1),
        (r"attributes.run_name ILIKE 'RUN\-%'", 4),
    ] {
        let page = reg.search_runs(&search(filter, &[])).await.unwrap();
        assert_eq!(page.runs.len(), want, "{filter}");
    }
    let err = reg
        .search_runs(&search(r"attributes.run_name LIKE 'run\'", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidParameter(m) if m.contains("escape character")),
        "{err}"
    );

    let page = reg
        .search_runs(&search(
            "attributes.run_name != 'bare' AND start_time >= 1002",
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(names(&page), ["run-3", "run-2"]);
    let page = reg
        .search_runs(&search("status = 'RUNNING'", &[]))
        .await
        .unwrap();
    assert_eq!(page.runs.len(), 5);

    // Runs without the metric sort last, ascending and descending.
    let asc = reg
        .search_runs(&search("", &["metrics.ndcg_5 ASC"]))
        .await
        .unwrap();
    assert_eq!(names(&asc), ["run-0", "run-3", "run-1", "run-2", "bare"]);
    let desc = reg
        .search_runs(&search("", &["metrics.ndcg_5 DESC"]))
        .await
        .unwrap();
    assert_eq!(names(&desc), ["run-2", "run-1", "run-3", "run-0", "bare"]);
    let by_param = reg
        .search_runs(&search(
            "",
            &["params.objective DESC", "metrics.ndcg_5 DESC"],
        ))
        .await
        .unwrap();
    assert_eq!(
        names(&by_param),
        ["run-2", "run-1", "run-3", "run-0", "bare"]
    );

    // Pages of two, following the token.
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = reg
            .search_runs(&SearchRuns {
                max_results: 2,
                page_token: token.clone(),
                ..search("", &["metrics.ndcg_5 DESC"])
            })
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.runs.iter().map(|r| r.info.run_name.clone()));
        token = page.next_page_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["run-2", "run-1", "run-3", "run-0", "bare"]);

    // Experiment filter: both experiments, or all when none is named.
    let both = reg
        .search_runs(&SearchRuns {
            experiment_ids: vec![exp, other],
            filter: "metrics.ndcg_5 > 0.9".into(),
            ..SearchRuns::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&both), ["foreign"]);
    let everywhere = reg.search_runs(&SearchRuns::default()).await.unwrap();
    assert_eq!(everywhere.runs.len(), 6);
}

/// Metric orderings page through exactly the order MLflow defines — runs by the metric's latest
/// value (missing last), then newest start, then id — including ties on the value and on the
/// start, runs without the metric, filters, a deleted run and another experiment's run, with
/// every page size; the expected order is computed here from the seeded values.
pub async fn search_runs_metric_order_pages(t: &TestRegistry) {
    struct Seed {
        start: i64,
        score: Option<f64>,
        other: f64,
        kind: &'static str,
        deleted: bool,
    }
    let reg = &t.registry;
    let exp = experiment(reg, "metric-order").await;
    let foreign_exp = experiment(reg, "metric-order-other").await;
    let seeds: Vec<Seed> = (0..14)
        .map(|i: i64| Seed {
            start: 1000 + i / 3,
            score: (i % 5 != 2).then(|| [0.2, 0.5, 0.5, 0.9][(i % 4) as usize]),
            other: if i % 3 == 0 { 0.8 } else { 0.1 },
            kind: if i % 2 == 0 { "a" } else { "b" },
            deleted: i == 7,
        })
        .collect();
    let mut runs = Vec::new();
    for (i, seed) in seeds.iter().enumerate() {
        let id = reg
            .create_run(NewRun {
                experiment_id: exp,
                run_name: format!("run-{i}"),
                start_time: Some(seed.start),
                ..NewRun::default()
            })
            .await
            .unwrap()
            .info
            .run_id;
        let mut metrics = vec![metric("other", seed.other, 0, 1)];
        if let Some(score) = seed.score {
            // An older value first: the latest (highest step) is what orders.
            metrics.push(metric("score", -1.0, 0, 1));
            metrics.push(metric("score", score, 1, 1));
        }
        reg.log_batch(&id, &metrics, &[kv("kind", seed.kind)], &[])
            .await
            .unwrap();
        if seed.deleted {
            reg.set_run_lifecycle(&id, true).await.unwrap();
        }
        runs.push(id);
    }
    let foreign = run(reg, foreign_exp, "foreign").await;
    reg.log_metric(&foreign, &metric("score", 0.7, 0, 1))
        .await
        .unwrap();

    type Keep = fn(&Seed) -> bool;
    let filters: [(&str, Keep); 3] = [
        ("", |_| true),
        ("metrics.other > 0.5", |s| s.other > 0.5),
        ("params.kind = 'a'", |s| s.kind == "a"),
    ];
    for (filter, keep) in filters {
        for descending in [true, false] {
            let mut expected: Vec<usize> = (0..seeds.len())
                .filter(|&i| !seeds[i].deleted && keep(&seeds[i]))
                .collect();
            expected.sort_by(|&a, &b| {
                let (sa, sb) = (seeds[a].score, seeds[b].score);
                let by_score = match (sa, sb) {
                    (Some(x), Some(y)) if descending => y.total_cmp(&x),
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                };
                by_score
                    .then(seeds[b].start.cmp(&seeds[a].start))
                    .then(runs[a].cmp(&runs[b]))
            });
            let expected: Vec<&str> = expected.iter().map(|&i| runs[i].as_str()).collect();
            let order = format!("metrics.score {}", if descending { "DESC" } else { "ASC" });
            for page_size in [1, 2, 3, 4, 5, 1000] {
                let mut seen = Vec::new();
                let mut token = None;
                loop {
                    let page = reg
                        .search_runs(&SearchRuns {
                            experiment_ids: vec![exp],
                            filter: filter.into(),
                            order_by: vec![order.clone()],
                            max_results: page_size,
                            page_token: token.clone(),
                            ..SearchRuns::default()
                        })
                        .await
                        .unwrap();
                    assert!(page.runs.len() as i64 <= page_size);
                    seen.extend(page.runs.into_iter().map(|r| r.info.run_id));
                    token = page.next_page_token;
                    if token.is_none() {
                        break;
                    }
                }
                assert_eq!(
                    seen, expected,
                    "filter {filter:?}, order {order:?}, pages of {page_size}"
                );
            }
        }
    }
    // A second ordering term breaks ties on the metric before the start time does.
    let page = reg
        .search_runs(&SearchRuns {
            experiment_ids: vec![exp],
            order_by: vec!["metrics.score DESC".into(), "params.kind DESC".into()],
            max_results: 7,
            ..SearchRuns::default()
        })
        .await
        .unwrap();
    let top: Vec<(Option<f64>, &str)> = page
        .runs
        .iter()
        .map(|r| {
            let i = runs.iter().position(|id| *id == r.info.run_id).unwrap();
            (seeds[i].score, seeds[i].kind)
        })
        .collect();
    let b = |score| (Some(score), "b");
    assert_eq!(
        top,
        [
            b(0.9),
            b(0.9),
            b(0.5),
            b(0.5),
            b(0.5),
            b(0.5),
            (Some(0.5), "a")
        ]
    );
}

pub async fn search_filter_rejects_bad_input(t: &TestRegistry) {
    let reg = &t.registry;
    let (exp, _, _) = seed_runs(reg).await;
    for bad in [
        "metrics.ndcg_5 > 'high'",
        "params.objective > 'a'",
        "params.objective = lambdarank",
        "nonsense.x = 'y'",
        "metrics.ndcg_5 >",
        "metrics.ndcg_5 > 0.5 OR params.a = 'b'",
        "attributes.password = 'x'",
        "params.objective = 'unterminated",
        "metrics.ndcg_5 > 0.5; DROP TABLE runs",
        // Not finite: NaN compares as NULL on SQLite and above every number on PostgreSQL.
        "metrics.ndcg_5 < +nan",
        "metrics.ndcg_5 > -inf",
        "metrics.ndcg_5 < 1e999",
    ] {
        let result = reg
            .search_runs(&SearchRuns {
                experiment_ids: vec![exp],
                filter: bad.into(),
                ..SearchRuns::default()
            })
            .await;
        assert!(
            matches!(result, Err(Error::InvalidParameter(_))),
            "{bad:?} gave {result:?}"
        );
    }
    for bad_order in ["metrics.ndcg_5 sideways", "password"] {
        let result = reg
            .search_runs(&SearchRuns {
                order_by: vec![bad_order.into()],
                ..SearchRuns::default()
            })
            .await;
        assert!(
            matches!(result, Err(Error::InvalidParameter(_))),
            "{bad_order:?}"
        );
    }
    let result = reg
        .search_runs(&SearchRuns {
            page_token: Some("x".into()),
            ..SearchRuns::default()
        })
        .await;
    assert!(matches!(result, Err(Error::InvalidParameter(_))));
    // A value that looks like SQL is only ever a value.
    let page = reg
        .search_runs(&SearchRuns {
            experiment_ids: vec![exp],
            filter: "params.objective = 'x'' OR ''1''=''1'".into(),
            ..SearchRuns::default()
        })
        .await
        .unwrap();
    assert!(page.runs.is_empty());
    assert_eq!(
        reg.get_run(&run(reg, exp, "still-here").await)
            .await
            .unwrap()
            .info
            .run_name,
        "still-here"
    );
}

async fn stored_artifacts(t: &TestRegistry, tag: &str) -> Vec<NamedArtifact> {
    let mut out = Vec::new();
    for (name, bytes) in [
        ("model.txt", format!("tree\nversion=v4\n{tag}\n")),
        ("features.json", format!("[\"price\", \"{tag}\"]")),
    ] {
        let artifact = t.artifacts.put(bytes.as_bytes()).await.unwrap();
        out.push(NamedArtifact {
            name: name.into(),
            artifact,
        });
    }
    out
}

pub async fn model_versions_with_artifacts(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "e").await;
    let run_id = run(reg, exp, "train").await;
    let model = reg
        .create_registered_model("ranker", "lambdarank")
        .await
        .unwrap();
    assert_eq!(model.latest_version, 0);
    assert!(matches!(
        reg.create_registered_model("ranker", "").await,
        Err(Error::AlreadyExists {
            what: "registered model",
            ..
        })
    ));
    let artifacts = stored_artifacts(t, "one").await;
    let v1 = reg
        .create_model_version(&NewModelVersion {
            name: "ranker".into(),
            source: artifacts[1].artifact.uri.clone(),
            run_id: Some(run_id.clone()),
            description: "first".into(),
            artifacts: artifacts.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.status, "READY");
    assert_eq!(v1.run_id.as_deref(), Some(run_id.as_str()));
    // Stored by name, each with its digest.
    let by_name: Vec<&str> = v1.artifacts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(by_name, ["features.json", "model.txt"]);
    for a in &v1.artifacts {
        assert!(a.artifact.uri.starts_with("file:///"));
        assert_eq!(a.artifact.sha256.len(), 64);
        let bytes = t.artifacts.get(&a.artifact).await.unwrap();
        assert_eq!(bytes.len() as i64, a.artifact.size);
    }
    let v2 = reg
        .create_model_version(&NewModelVersion {
            name: "ranker".into(),
            source: "file:///elsewhere".into(),
            artifacts: stored_artifacts(t, "two").await,
            ..NewModelVersion::default()
        })
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(
        reg.get_registered_model("ranker")
            .await
            .unwrap()
            .latest_version,
        2
    );

    reg.set_model_version_tag("ranker", 1, "validated", "yes")
        .await
        .unwrap();
    reg.set_model_version_tag("ranker", 1, "validated", "twice")
        .await
        .unwrap();
    let got = reg.get_model_version("ranker", 1).await.unwrap();
    assert_eq!(got.tags["validated"], "twice");
    assert_eq!(got.artifacts, v1.artifacts);
    assert!(matches!(
        reg.set_model_version_tag("ranker", 9, "k", "v").await,
        Err(Error::NotFound {
            what: "model version",
            ..
        })
    ));
    assert!(matches!(
        reg.get_model_version("ranker", 3).await,
        Err(Error::NotFound {
            what: "model version",
            ..
        })
    ));
    assert!(matches!(
        reg.create_model_version(&NewModelVersion {
            name: "nope".into(),
            ..NewModelVersion::default()
        })
        .await,
        Err(Error::NotFound {
            what: "registered model",
            ..
        })
    ));
    assert!(matches!(
        reg.create_model_version(&NewModelVersion {
            name: "ranker".into(),
            run_id: Some("missing".into()),
            ..NewModelVersion::default()
        })
        .await,
        Err(Error::NotFound { what: "run", .. })
    ));

    let from_run = reg
        .search_model_versions(None, Some(&run_id))
        .await
        .unwrap();
    assert_eq!(from_run.len(), 1);
    assert_eq!(from_run[0].version, 1);
    assert_eq!(
        reg.search_model_versions(Some("ranker"), None)
            .await
            .unwrap()
            .len(),
        2
    );
    reg.create_registered_model("recs", "").await.unwrap();
    assert_eq!(model_names(reg).await, ["ranker", "recs"]);
    assert_eq!(
        reg.search_registered_models(Some("rec%"))
            .await
            .unwrap()
            .len(),
        1
    );

    reg.update_registered_model("ranker", "ndcg-tuned")
        .await
        .unwrap();
    reg.set_registered_model_tag("ranker", "domain", "books")
        .await
        .unwrap();
    assert_eq!(
        reg.get_registered_model("ranker").await.unwrap().tags["domain"],
        "books"
    );
    reg.delete_registered_model_tag("ranker", "domain")
        .await
        .unwrap();
    assert!(
        reg.get_registered_model("ranker")
            .await
            .unwrap()
            .tags
            .is_empty()
    );
    assert!(matches!(
        reg.set_registered_model_tag("nope", "k", "v").await,
        Err(Error::NotFound {
            what: "registered model",
            ..
        })
    ));
    reg.delete_model_version_tag("ranker", 1, "validated")
        .await
        .unwrap();
    assert!(
        reg.get_model_version("ranker", 1)
            .await
            .unwrap()
            .tags
            .is_empty()
    );
    assert!(
        reg.delete_model_version_tag("ranker", 1, "validated")
            .await
            .is_err()
    );
    reg.set_registered_model_tag("ranker", "kept", "until delete")
        .await
        .unwrap();
    assert_eq!(
        reg.get_registered_model("ranker")
            .await
            .unwrap()
            .description,
        "ndcg-tuned"
    );
    reg.update_model_version("ranker", 2, "second")
        .await
        .unwrap();
    assert_eq!(
        reg.get_model_version("ranker", 2)
            .await
            .unwrap()
            .description,
        "second"
    );
    assert!(reg.update_model_version("ranker", 7, "x").await.is_err());
    assert!(reg.update_registered_model("nope", "x").await.is_err());

    // Deleting a version drops its aliases (recorded in the history); numbers are not reused.
    reg.set_alias("ranker", "staging", 2, "ana").await.unwrap();
    reg.delete_model_version("ranker", 2, "bo").await.unwrap();
    assert!(reg.get_model_version("ranker", 2).await.is_err());
    assert!(reg.get_version_by_alias("ranker", "staging").await.is_err());
    let staging = reg.alias_history("ranker", "staging").await.unwrap();
    assert_eq!(
        staging.last().map(|m| (m.from_version, m.to_version)),
        Some((Some(2), None))
    );
    assert!(matches!(
        reg.delete_model_version("ranker", 2, "bo").await,
        Err(Error::NotFound {
            what: "model version",
            ..
        })
    ));
    // Tags come with the version, in its transaction: a bad one refuses the whole version,
    // which takes no number.
    assert!(matches!(
        reg.create_model_version(&NewModelVersion {
            name: "ranker".into(),
            tags: vec![("ok".into(), "1".into()), ("k".repeat(251), "v".into())],
            ..NewModelVersion::default()
        })
        .await,
        Err(Error::InvalidParameter(_))
    ));
    let v3 = reg
        .create_model_version(&NewModelVersion {
            name: "ranker".into(),
            source: "file:///third".into(),
            tags: vec![("dataset".into(), "2026-11".into())],
            ..NewModelVersion::default()
        })
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(v3.tags.get("dataset").map(String::as_str), Some("2026-11"));

    reg.set_alias("ranker", "production", 1, "ana")
        .await
        .unwrap();
    reg.delete_registered_model("ranker").await.unwrap();
    assert!(reg.get_registered_model("ranker").await.is_err());
    assert!(
        reg.search_model_versions(Some("ranker"), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        reg.alias_history("ranker", "production")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        reg.delete_registered_model("ranker").await,
        Err(Error::NotFound { .. })
    ));
}

pub async fn aliases_move_and_keep_history(t: &TestRegistry) {
    let reg = &t.registry;
    reg.create_registered_model("ranker", "").await.unwrap();
    for _ in 0..3 {
        reg.create_model_version(&NewModelVersion {
            name: "ranker".into(),
            source: "file:///m".into(),
            ..NewModelVersion::default()
        })
        .await
        .unwrap();
    }
    reg.set_alias("ranker", "production", 1, "ana")
        .await
        .unwrap();
    reg.set_alias("ranker", "staging", 2, "ana").await.unwrap();
    assert_eq!(
        reg.get_version_by_alias("ranker", "production")
            .await
            .unwrap()
            .version,
        1
    );
    // Moving to where it already points records nothing.
    reg.set_alias("ranker", "production", 1, "ana")
        .await
        .unwrap();
    reg.set_alias("ranker", "production", 2, "bo")
        .await
        .unwrap();
    reg.set_alias("ranker", "production", 3, "cy")
        .await
        .unwrap();
    let v3 = reg
        .get_version_by_alias("ranker", "production")
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(v3.aliases, ["production"]);
    let model = reg.get_registered_model("ranker").await.unwrap();
    assert_eq!(model.aliases.get("production"), Some(&3));
    assert_eq!(model.aliases.get("staging"), Some(&2));

    reg.delete_alias("ranker", "production", "dee")
        .await
        .unwrap();
    assert!(matches!(
        reg.get_version_by_alias("ranker", "production").await,
        Err(Error::NotFound { what: "alias", .. })
    ));
    assert!(matches!(
        reg.delete_alias("ranker", "production", "dee").await,
        Err(Error::NotFound { .. })
    ));

    let history = reg.alias_history("ranker", "production").await.unwrap();
    let moves: Vec<(Option<i64>, Option<i64>, &str)> = history
        .iter()
        .map(|m| (m.from_version, m.to_version, m.moved_by.as_str()))
        .collect();
    assert_eq!(
        moves,
        [
            (None, Some(1), "ana"),
            (Some(1), Some(2), "bo"),
            (Some(2), Some(3), "cy"),
            (Some(3), None, "dee"),
        ]
    );
    assert!(history.windows(2).all(|w| w[0].moved_at <= w[1].moved_at));
    assert!(
        history
            .iter()
            .all(|m| m.name == "ranker" && m.alias == "production")
    );
    assert_eq!(
        reg.alias_history("ranker", "staging").await.unwrap().len(),
        1
    );

    for bad in ["", "latest", "v2", "V10"] {
        assert!(
            matches!(
                reg.set_alias("ranker", bad, 1, "x").await,
                Err(Error::InvalidParameter(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        reg.set_alias("ranker", "production", 9, "x").await,
        Err(Error::NotFound {
            what: "model version",
            ..
        })
    ));
    assert!(matches!(
        reg.set_alias("nope", "production", 1, "x").await,
        Err(Error::NotFound {
            what: "registered model",
            ..
        })
    ));
}

pub async fn checksum_mismatch_is_refused(t: &TestRegistry) {
    let reg = &t.registry;
    reg.create_registered_model("ranker", "").await.unwrap();
    let artifacts = stored_artifacts(t, "tamper").await;
    // The same bytes stored twice land at the same address.
    let again = t
        .artifacts
        .put(b"tree\nversion=v4\ntamper\n")
        .await
        .unwrap();
    assert_eq!(again, artifacts[0].artifact);
    let path = quire_registry::local_path(&again.uri).unwrap();
    assert!(path.starts_with(t.artifacts.root().join("sha256").join(&again.sha256[..2])));
    reg.create_model_version(&NewModelVersion {
        name: "ranker".into(),
        source: again.uri.clone(),
        artifacts,
        ..NewModelVersion::default()
    })
    .await
    .unwrap();

    std::fs::write(&path, b"tree\nversion=v4\nevil\n").unwrap();
    let recorded = reg.get_model_version("ranker", 1).await.unwrap();
    let model_txt = recorded
        .artifacts
        .iter()
        .find(|a| a.name == "model.txt")
        .unwrap();
    let err = t.artifacts.get(&model_txt.artifact).await.unwrap_err();
    let msg = err.to_string();
    match &err {
        Error::ChecksumMismatch {
            artifact,
            expected,
            actual,
        } => {
            assert_eq!(artifact, &model_txt.artifact.uri);
            assert_eq!(expected, &model_txt.artifact.sha256);
            assert_ne!(actual, expected);
            assert!(
                msg.contains(expected.as_str()) && msg.contains(actual.as_str()),
                "{msg}"
            );
            assert!(msg.contains(artifact.as_str()), "{msg}");
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // The untouched artifact still loads. A file missing where recorded is read from the
    // store's copy of its digest; with no copy, it is an i/o error naming the path.
    let features = recorded
        .artifacts
        .iter()
        .find(|a| a.name == "features.json")
        .unwrap();
    let bytes = t.artifacts.get(&features.artifact).await.unwrap();
    let elsewhere = ArtifactRef {
        uri: format!("file://{}/nowhere", t.artifacts.root().display()),
        ..features.artifact.clone()
    };
    assert_eq!(t.artifacts.get(&elsewhere).await.unwrap(), bytes);
    let missing = ArtifactRef {
        sha256: "0".repeat(64),
        ..elsewhere
    };
    assert!(matches!(
        t.artifacts.get(&missing).await,
        Err(Error::Io { path, .. }) if path.ends_with("nowhere")
    ));
}

/// Batches logged at the same moment (on SQLite, written together in one transaction) each get
/// their own answer: a bad one — a missing run, a deleted run, a changed param — fails alone,
/// with its own error, and every good one lands whole.
pub async fn concurrent_batches_fail_alone(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "group").await;
    let mut good = Vec::new();
    for i in 0..6 {
        good.push(run(reg, exp, &format!("good-{i}")).await);
    }
    let deleted = run(reg, exp, "deleted").await;
    reg.set_run_lifecycle(&deleted, true).await.unwrap();
    reg.log_params(&good[0], &[kv("lr", "0.1")]).await.unwrap();

    // The first call takes the write turn; the rest queue behind it and go out together.
    let mut calls = Vec::new();
    for (i, id) in good.iter().enumerate() {
        let m = vec![metric("loss", i as f64, 1, 10), metric("loss", 9.0, 0, 10)];
        calls.push((id.clone(), m, vec![kv("depth", &i.to_string())]));
        // A second batch for the same run, in the same group: a newer step wins.
        calls.push((id.clone(), vec![metric("loss", 0.5, 2, 10)], vec![]));
    }
    calls.push((
        "no-such-run".into(),
        vec![metric("loss", 1.0, 0, 0)],
        vec![],
    ));
    calls.push((deleted.clone(), vec![metric("loss", 1.0, 0, 0)], vec![]));
    calls.push((
        good[0].clone(),
        vec![metric("x", 1.0, 0, 0)],
        vec![kv("lr", "0.2")],
    ));
    let results = futures_util::future::join_all(
        calls
            .iter()
            .map(|(id, metrics, params)| reg.log_batch(id, metrics, params, &[])),
    )
    .await;
    let n = good.len() * 2;
    for (i, r) in results[..n].iter().enumerate() {
        assert!(r.is_ok(), "batch {i}: {r:?}");
    }
    assert!(
        matches!(&results[n], Err(Error::NotFound { id, .. }) if id == "no-such-run"),
        "{:?}",
        results[n]
    );
    assert!(
        matches!(&results[n + 1], Err(Error::NotFound { id, .. }) if *id == deleted),
        "{:?}",
        results[n + 1]
    );
    assert!(
        matches!(&results[n + 2], Err(Error::InvalidParameter(m)) if m.contains("\"lr\"")),
        "{:?}",
        results[n + 2]
    );
    for (i, id) in good.iter().enumerate() {
        let run = reg.get_run(id).await.unwrap();
        let keys: Vec<&str> = run.data.metrics.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["loss"], "run {i}: the refused batch wrote nothing");
        assert_eq!(run.data.metrics[0].value, 0.5);
        assert_eq!(run.data.metrics[0].step, 2);
        assert_eq!(run.data.params.get("depth"), Some(&i.to_string()));
        let history = reg.get_metric_history(id, "loss").await.unwrap();
        assert_eq!(history.len(), 3, "run {i}");
    }
    assert_eq!(
        reg.get_run(&good[0]).await.unwrap().data.params.get("lr"),
        Some(&"0.1".to_owned())
    );
    assert!(reg.get_run(&deleted).await.unwrap().data.metrics.is_empty());
}

pub async fn concurrent_writers_lose_nothing(t: &TestRegistry) {
    const TASKS: i64 = 8;
    const LOGS: i64 = 200;
    let reg = &t.registry;
    let exp = experiment(reg, "e").await;
    let id = run(reg, exp, "r").await;
    let mut handles = Vec::new();
    for task in 0..TASKS {
        // Half the tasks share the registry's pool, half open their own handle on the
        // same database, as separate processes would.
        let reg = if task % 2 == 0 {
            reg.clone()
        } else {
            Registry::connect(&t.url).await.unwrap()
        };
        let id = id.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..LOGS {
                let m = metric(&format!("task_{task}"), i as f64, i, 1_000 + i);
                reg.log_metric(&id, &m).await.unwrap();
                reg.log_metric(&id, &metric("shared", (task * LOGS + i) as f64, i, 0))
                    .await
                    .unwrap();
            }
            reg.log_params(&id, &[(format!("p{task}"), task.to_string())])
                .await
                .unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    for task in 0..TASKS {
        let history = reg
            .get_metric_history(&id, &format!("task_{task}"))
            .await
            .unwrap();
        let steps: Vec<i64> = history.iter().map(|m| m.step).collect();
        assert_eq!(steps, (0..LOGS).collect::<Vec<_>>(), "task {task}");
    }
    let shared = reg.get_metric_history(&id, "shared").await.unwrap();
    let values: BTreeSet<i64> = shared.iter().map(|m| m.value as i64).collect();
    assert_eq!(values.len() as i64, TASKS * LOGS);
    let run = reg.get_run(&id).await.unwrap();
    assert_eq!(run.data.params.len() as i64, TASKS);
    assert_eq!(run.data.metrics.len() as i64, TASKS + 1);
    let shared_latest = run.data.metrics.iter().find(|m| m.key == "shared").unwrap();
    assert_eq!(shared_latest.step, LOGS - 1);
    // Of the values logged at the last step, the largest wins the tie.
    assert_eq!(shared_latest.value as i64, (TASKS - 1) * LOGS + LOGS - 1);
}

pub async fn concurrent_registrations_get_distinct_versions(t: &TestRegistry) {
    let reg = &t.registry;
    reg.create_registered_model("ranker", "").await.unwrap();
    let mut handles = Vec::new();
    for task in 0..8 {
        let reg = reg.clone();
        handles.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..5 {
                let v = reg
                    .create_model_version(&NewModelVersion {
                        name: "ranker".into(),
                        source: format!("file:///m/{task}/{i}"),
                        ..NewModelVersion::default()
                    })
                    .await
                    .unwrap();
                reg.set_alias("ranker", "production", v.version, &format!("task-{task}"))
                    .await
                    .unwrap();
                versions.push(v.version);
            }
            versions
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=40).collect::<Vec<_>>());
    // The history is a chain: each move starts where the previous one ended.
    let history = reg.alias_history("ranker", "production").await.unwrap();
    assert_eq!(history[0].from_version, None);
    assert!(
        history
            .windows(2)
            .all(|w| w[0].to_version == w[1].from_version)
    );
    let current = reg
        .get_version_by_alias("ranker", "production")
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().to_version, Some(current.version));
}

/// Deleting a model while another writer has rows of it in flight waits for that writer,
/// then deletes what it added too. Three writers: one holding the model's row and adding a
/// model tag (as a registration or an alias move holds it), one adding a model tag alone, one
/// adding a version tag alone. On PostgreSQL the delete used to remove the children first and
/// fail on the row a tag committed meanwhile refers to.
pub async fn delete_waits_for_writers_of_the_model(t: &TestRegistry) {
    use sqlx::Connection;
    let reg = &t.registry;
    let artifacts = stored_artifacts(t, "doomed").await;
    sqlx::any::install_default_drivers();
    let mut other = sqlx::AnyConnection::connect(&t.url).await.unwrap();
    let cases: [(&str, &[&str]); 3] = [
        (
            "holds-the-model",
            &[
                "UPDATE registered_models SET last_updated_time = 1 WHERE name = 'holds-the-model'",
                "INSERT INTO registered_model_tags (name, key, value) VALUES ('holds-the-model', 'k', 'v')",
            ],
        ),
        (
            "model-tag",
            &[
                "INSERT INTO registered_model_tags (name, key, value) VALUES ('model-tag', 'k', 'v')",
            ],
        ),
        (
            "version-tag",
            &[
                "INSERT INTO model_version_tags (name, version, key, value) VALUES ('version-tag', 1, 'k', 'v')",
            ],
        ),
    ];
    for (model, writes) in cases {
        reg.create_registered_model(model, "").await.unwrap();
        reg.create_model_version(&NewModelVersion {
            name: model.into(),
            source: artifacts[0].artifact.uri.clone(),
            artifacts: artifacts.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut writer = other.begin().await.unwrap();
        for sql in writes {
            sqlx::query(AssertSqlSafe(*sql))
                .execute(&mut *writer)
                .await
                .unwrap();
        }
        let deleting = tokio::spawn({
            let (reg, model) = (reg.clone(), model.to_owned());
            async move { reg.delete_registered_model(&model).await }
        });
        wait_for_a_blocked_writer(t).await;
        writer.commit().await.unwrap();
        deleting
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        assert!(
            matches!(
                reg.get_registered_model(model).await,
                Err(Error::NotFound { .. })
            ),
            "{model}"
        );
        for table in [
            "registered_model_tags",
            "model_version_tags",
            "model_versions",
        ] {
            let left: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table} WHERE name = '{model}'"
            )))
            .fetch_one(&mut other)
            .await
            .unwrap();
            assert_eq!(left, 0, "{model}: {table}");
        }
    }
    // A model that is not there is still not found.
    assert!(matches!(
        reg.delete_registered_model("holds-the-model").await,
        Err(Error::NotFound { .. })
    ));
}

/// Returns once another session of the test's database waits for a lock (PostgreSQL), or
/// after 300 ms (SQLite has no view of its waiters; a writer there waits on the busy timeout).
async fn wait_for_a_blocked_writer(t: &TestRegistry) {
    use sqlx::Connection;
    if !t.url.starts_with("postgres") {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        return;
    }
    let mut watcher = sqlx::AnyConnection::connect(&t.url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the delete never waited for the writer"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Text sorts by its bytes on both backends, whatever the PostgreSQL database's collation (the
/// test server's databases sort by ICU's `en-US`, which puts `adamw` before `SGD`): the same
/// search pages the same way everywhere.
pub async fn text_sorts_by_its_bytes(t: &TestRegistry) {
    let reg = &t.registry;
    let exp = experiment(reg, "collation").await;
    for (name, optimizer) in [("b-run", "SGD"), ("C-run", "adamw"), ("A-run", "Adam")] {
        let id = run(reg, exp, name).await;
        reg.log_params(&id, &[("optimizer".into(), optimizer.into())])
            .await
            .unwrap();
    }
    for (order, want) in [
        ("params.optimizer ASC", ["A-run", "b-run", "C-run"]),
        ("attributes.run_name DESC", ["b-run", "C-run", "A-run"]),
    ] {
        let page = reg
            .search_runs(&SearchRuns {
                experiment_ids: vec![exp],
                order_by: vec![order.into()],
                ..SearchRuns::default()
            })
            .await
            .unwrap();
        assert_eq!(names(&page), want, "{order}");
    }
    for model in ["b-model", "C-model", "A-model"] {
        reg.create_registered_model(model, "").await.unwrap();
    }
    assert_eq!(model_names(reg).await, ["A-model", "C-model", "b-model"]);
    let err = reg.search_registered_models(Some("b\\")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidParameter(_)), "{err}");
}

/// A version read by its alias while the alias moves on and the old version is deleted (the
/// usual clean-up after a promotion) is always a whole version: the alias and the version are
/// read from one snapshot. Before, the alias could name a version deleted before it was read:
/// `NotFound` although the alias existed throughout.
pub async fn reading_by_alias_during_promotions_always_finds_a_version(t: &TestRegistry) {
    const PROMOTIONS: i64 = 120;
    let reg = &t.registry;
    let artifacts = stored_artifacts(t, "promoted").await;
    reg.create_registered_model("live", "").await.unwrap();
    let register = || NewModelVersion {
        name: "live".into(),
        source: artifacts[0].artifact.uri.clone(),
        artifacts: artifacts.clone(),
        ..Default::default()
    };
    let first = reg.create_model_version(&register()).await.unwrap();
    reg.set_alias("live", "production", first.version, "test")
        .await
        .unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = tokio::spawn({
        let (reg, done) = (reg.clone(), done.clone());
        async move {
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let mv = reg
                    .get_version_by_alias("live", "production")
                    .await
                    .unwrap_or_else(|e| panic!("after {reads} reads: {e}"));
                assert_eq!(mv.artifacts.len(), 2, "a version read whole");
                reads += 1;
            }
            reads
        }
    });
    let mut previous = first.version;
    for _ in 0..PROMOTIONS {
        let next = reg.create_model_version(&register()).await.unwrap();
        reg.set_alias("live", "production", next.version, "test")
            .await
            .unwrap();
        reg.delete_model_version("live", previous, "test")
            .await
            .unwrap();
        previous = next.version;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.await.unwrap();
    assert!(reads > 0);
}
