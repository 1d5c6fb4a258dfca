//! End-to-end: the real `quire` binary, from simulated or hand-written events to KPIs.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use quire_tests::{quire, quire_command, quire_json, quire_ok};
use serde_json::Value;

fn simulate(dir: &Path) -> Value {
    quire_json(
        dir,
        &[
            "simulate", "--days", "3", "--users", "300", "--seed", "7", "--out", "sim", "--json",
        ],
    )
}

/// A directory with a small simulated bookstore ingested into `lake/`.
fn simulated_lake() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    simulate(tmp.path());
    quire_ok(
        tmp.path(),
        &["ingest", "--lake", "lake", "sim/events.jsonl"],
    );
    tmp
}

#[test]
fn simulate_ingest_dims_kpis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let sim = simulate(dir);
    assert!(sim["events"].as_u64().expect("events") > 1_000, "{sim}");

    let ingest = quire_json(
        dir,
        &["ingest", "--lake", "lake", "sim/events.jsonl", "--json"],
    );
    let mut keys: Vec<&str> = ingest
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["duplicates", "invalid", "lines", "test", "valid"]);
    assert_eq!(
        ingest["lines"], sim["lines"],
        "every simulated line is read"
    );
    assert_eq!(
        ingest["invalid"], sim["malformed"],
        "exactly the malformed lines are bad rows"
    );
    assert!(ingest["duplicates"].as_u64().expect("n") >= sim["duplicates"].as_u64().expect("n"));

    // the same file again changes nothing
    let again = quire_json(
        dir,
        &["ingest", "--lake", "lake", "sim/events.jsonl", "--json"],
    );
    assert_eq!(again["valid"], ingest["valid"]);
    assert_eq!(again["duplicates"], ingest["valid"]);

    let bad = quire_json(
        dir,
        &["badrows", "--lake", "lake", "--limit", "1000", "--json"],
    );
    let bad = bad.as_array().expect("array");
    assert_eq!(
        bad.len() as u64,
        ingest["invalid"].as_u64().expect("n"),
        "bad rows stored once"
    );
    for row in bad {
        assert!(
            row["reason"].as_str().expect("reason").contains(':'),
            "{row}"
        );
        assert!(row["line_number"].as_i64().expect("line") >= 1);
    }

    let dims = quire_json(
        dir,
        &[
            "dims",
            "load",
            "--lake",
            "lake",
            "--books",
            "sim/books.csv",
            "--users",
            "sim/users.csv",
            "--marketing-spend",
            "sim/marketing_spend.csv",
            "--json",
        ],
    );
    assert_eq!(dims["books"], 10_000);
    assert!(dims["users"].as_u64().expect("users") > 0);

    let k = quire_json(dir, &["kpis", "--lake", "lake", "--json"]);
    let daily = k["daily"].as_array().expect("daily");
    assert!(daily.len() >= 3, "{} days", daily.len());
    for key in [
        "date",
        "gmv",
        "net_gmv",
        "orders",
        "aov",
        "revenue",
        "units",
        "sessions",
        "users",
        "new_users",
        "returning_users",
        "bounce_rate",
        "cvr",
        "funnel",
        "cart_abandonment_rate",
        "search_usage",
        "search_cvr",
        "non_search_cvr",
        "no_results_rate",
        "rec_ctr",
        "rec_driven_gmv",
        "cac",
        "sessions_by_source",
        "sessions_by_device",
    ] {
        assert!(
            daily[0].get(key).is_some(),
            "daily entry lacks {key}: {}",
            daily[0]
        );
    }
    for key in [
        "landed",
        "viewed_product",
        "added_to_cart",
        "started_checkout",
        "purchased",
    ] {
        assert!(daily[0]["funnel"].get(key).is_some(), "funnel lacks {key}");
    }
    assert!(k["clv_historical"].as_f64().expect("clv") > 0.0);
    let hourly = k["hourly_gmv"].as_array().expect("hourly");
    let by_hours: f64 = hourly.iter().map(|h| h["gmv"].as_f64().expect("gmv")).sum();
    let by_days: f64 = daily.iter().map(|d| d["gmv"].as_f64().expect("gmv")).sum();
    assert!(
        (by_hours - by_days).abs() < 1e-6 * by_days.max(1.0),
        "{by_hours} vs {by_days}"
    );
    assert!(!k["top_books_by_units"].as_array().expect("top").is_empty());

    // a date range narrows the days
    let first = daily[0]["date"].as_str().expect("date").to_owned();
    let one = quire_json(
        dir,
        &[
            "kpis", "--lake", "lake", "--from", &first, "--to", &first, "--json",
        ],
    );
    assert_eq!(one["daily"].as_array().expect("daily").len(), 1);
    assert_eq!(
        one["daily"][0], daily[0],
        "a day's figures do not depend on the range"
    );

    // the warehouse layers are materialized as Parquet
    quire_ok(dir, &["warehouse", "build", "--lake", "lake"]);
    for table in [
        "staging/stg_events",
        "facts/fct_sessions",
        "facts/fct_orders",
        "facts/fct_order_items",
        "aggregates/agg_daily_kpis",
        "aggregates/agg_hourly_gmv",
    ] {
        let p = dir.join("lake/warehouse").join(format!("{table}.parquet"));
        assert!(p.exists(), "{} missing", p.display());
    }
}

#[test]
fn hand_written_events_give_hand_computed_kpis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let lines = [
        // usr_a: one session (gap of exactly 30 minutes), buys 2 × 10 + 1 × 5, pays 25
        r#"{"event_id":"a1","event_type":"page_view","event_timestamp":"2025-10-01T10:00:00Z","user_id":"usr_a","device":"desktop","traffic_source":"email","page":"home"}"#,
        r#"{"event_id":"a2","event_type":"add_to_cart","event_timestamp":"2025-10-01T12:30:00+02:00","user_id":"usr_a","device":"desktop","book_id":"bk_1","quantity":2,"unit_price":10}"#,
        r#"{"event_id":"a3","event_type":"order_placed","event_timestamp":"2025-10-01T10:40:00Z","user_id":"usr_a","device":"desktop","order_id":"o1","items":[{"book_id":"bk_1","quantity":2,"unit_price":10},{"book_id":"bk_2","quantity":1,"unit_price":5}],"total_price":25,"fees":1}"#,
        // a retried order_placed: counts once
        r#"{"event_id":"a4","event_type":"order_placed","event_timestamp":"2025-10-01T10:40:03Z","user_id":"usr_a","device":"desktop","order_id":"o1","items":[{"book_id":"bk_1","quantity":2,"unit_price":10},{"book_id":"bk_2","quantity":1,"unit_price":5}],"total_price":25,"fees":1}"#,
        // a duplicate line
        r#"{"event_id":"a1","event_type":"page_view","event_timestamp":"2025-10-01T10:00:00Z","user_id":"usr_a","device":"desktop","traffic_source":"email","page":"home"}"#,
        // usr_b: a bounce session on mobile
        r#"{"event_id":"b1","event_type":"page_view","event_timestamp":"2025-10-01T11:00:00Z","user_id":"usr_b","device":"mobile","page":"home"}"#,
        // test traffic: ignored by every KPI
        r#"{"event_id":"t1","event_type":"order_placed","event_timestamp":"2025-10-01T11:00:00Z","user_id":"usr_t","device":"mobile","is_test":true,"order_id":"ot","items":[{"book_id":"bk_1","quantity":1,"unit_price":99}],"total_price":99}"#,
        // a return larger than the order, a day later: capped at 25, counted on the order's day
        r#"{"event_id":"r1","event_type":"order_returned","event_timestamp":"2025-10-02T09:00:00Z","user_id":"usr_a","device":"desktop","order_id":"o1","refund_amount":40}"#,
        r#"{"event_id":"bad","event_type":"add_to_cart","event_timestamp":"2025-10-01T11:00:00Z","user_id":"usr_b","device":"mobile","book_id":"bk_1","quantity":0,"unit_price":1}"#,
    ];
    fs::write(dir.join("events.jsonl"), lines.join("\n")).expect("write");
    let ingest = quire_json(dir, &["ingest", "--lake", "lake", "events.jsonl", "--json"]);
    assert_eq!(
        ingest,
        serde_json::json!({"lines": 9, "valid": 8, "invalid": 1, "duplicates": 1, "test": 1})
    );
    fs::write(
        dir.join("books.csv"),
        "book_id,title,author,genre,series,series_index,price,unit_cost,publication_year,average_rating,ratings_count\n\
         bk_1,One,A,Fantasy,,,10,4,2001,4.1,10\n",
    )
    .expect("write books");
    quire_ok(
        dir,
        &["dims", "load", "--lake", "lake", "--books", "books.csv"],
    );
    let k = quire_json(dir, &["kpis", "--lake", "lake", "--json"]);
    let d = &k["daily"][0];
    assert_eq!(
        k["daily"].as_array().expect("daily").len(),
        1,
        "the return's day has no sessions or orders"
    );
    assert_eq!(d["date"], "2025-10-01");
    assert_eq!(d["gmv"], 25.0);
    assert_eq!(d["orders"], 1);
    assert_eq!(d["net_gmv"], 0.0);
    // revenue = net_gmv − fees − cogs = 0 − 1 − 2 × 4 (bk_2 is unknown: cost 0)
    assert_eq!(d["revenue"], -9.0);
    assert_eq!(d["units"], 3);
    assert_eq!(d["sessions"], 2);
    assert_eq!(d["bounce_rate"], 0.5);
    assert_eq!(d["cvr"], 0.5);
    assert_eq!(d["cart_abandonment_rate"], 0.0);
    assert_eq!(d["sessions_by_source"]["email"], 1);
    assert_eq!(d["sessions_by_source"]["direct"], 1);
    assert_eq!(d["sessions_by_device"]["mobile"], 1);
    assert_eq!(k["hourly_gmv"][0]["hour"], "2025-10-01T10:00:00Z");
    assert_eq!(k["hourly_gmv"][0]["net_gmv"], 0.0);
    assert_eq!(
        k["top_books_by_units"][0],
        serde_json::json!({"book_id": "bk_1", "units": 2})
    );
}

/// Runs `quire args` in `dir`, which must fail with one line on stderr (cli.md); the line.
fn one_line_error(dir: &Path, args: &[&str]) -> String {
    let out = quire(dir, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    err
}

/// A reader that stops early (`quire kpis --json | head`): quire ends with 141, the status of
/// a Unix tool killed by SIGPIPE, and a one-line reason, not with a panic.
#[test]
fn a_closed_stdout_ends_quire_with_one_line() {
    let tmp = simulated_lake();
    let dir = tmp.path();
    let mut child = std::process::Command::new(quire_tests::quire_bin())
        .current_dir(dir)
        .args(["kpis", "--lake", "lake", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("quire starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("quire ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("writing to stdout"), "{stderr}");
}

#[test]
fn errors_are_one_line_and_name_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = one_line_error(tmp.path(), &["ingest", "--lake", "lake", "missing.jsonl"]);
    assert!(err.contains("missing.jsonl"), "{err}");
    // A PostgreSQL registry that refuses says so at once, without the URL's password.
    let err = one_line_error(
        tmp.path(),
        &[
            "models",
            "list",
            "--registry",
            "postgres://quire:s3cret@127.0.0.1:1/quire",
        ],
    );
    assert!(err.contains("Connection refused"), "{err}");
    assert!(
        err.contains("quire:***@") && !err.contains("s3cret"),
        "{err}"
    );
    // Nor does a recommendations publish show its Redis password, whatever fails.
    let publish_error = |redis: &str, more: &[&str]| {
        let mut args = vec!["recs", "publish", "--model", "cf@production", "--no-lake"];
        args.extend(["--redis", redis]);
        args.extend(more);
        one_line_error(tmp.path(), &args)
    };
    let err = publish_error("redis://:hunter2@127.0.0.1:1/0", &[]);
    // (An unreachable Redis is found first, before the model is looked up.)
    assert!(
        err.contains("cannot connect to redis at 127.0.0.1:1") && !err.contains("hunter2"),
        "{err}"
    );
    // A grace period too short for readers of the previous set is refused.
    let err = publish_error("redis://127.0.0.1:1/0", &["--grace-seconds", "0"]);
    assert!(err.contains("--grace-seconds"), "{err}");
    // A file that is no ONNX Runtime library stops the ranking service at its start, named
    // as the host's fault (not a model version's, refused one after the other).
    let fake = tmp.path().join("fake-onnxruntime.so");
    fs::write(&fake, "not a library").expect("write");
    let out = std::process::Command::new(quire_tests::quire_bin())
        .current_dir(tmp.path())
        .env("ORT_DYLIB_PATH", &fake)
        .args(["serve", "ranking", "--model", "ltr@production"])
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .expect("quire runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("cannot start ONNX Runtime from") && err.contains("fake-onnxruntime.so"),
        "{err}"
    );
    // A command that reads the lake does not make one at a mistyped path.
    for args in [
        &["kpis", "--lake", "typo"][..],
        &["badrows", "--lake", "typo"],
        &["warehouse", "build", "--lake", "typo"],
        &["analyze", "top-customers", "--lake", "typo"],
    ] {
        let err = one_line_error(tmp.path(), args);
        assert!(err.contains("no lake at typo"), "{args:?}: {err}");
    }
    assert!(!tmp.path().join("typo").exists());
    // A missing file among several stops the run before any is committed.
    fs::write(
        tmp.path().join("good.jsonl"),
        r#"{"event_id":"g1","event_type":"checkout_started","event_timestamp":"2025-10-01T07:00:00Z","user_id":"usr_1","device":"mobile"}"#,
    )
    .expect("write");
    let err = one_line_error(
        tmp.path(),
        &["ingest", "--lake", "lake", "good.jsonl", "missing.jsonl"],
    );
    assert!(err.contains("missing.jsonl"), "{err}");
    let out = quire(
        tmp.path(),
        &["ingest", "--lake", "lake", "good.jsonl", "--json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        (&report["valid"], &report["duplicates"]),
        (&1.into(), &0.into()),
        "good.jsonl was committed before"
    );

    fs::write(
        tmp.path().join("spend.csv"),
        "date,channel,spend\n2025-10-01,tv,3\n",
    )
    .expect("write");
    let dims_load = |tables: &[&str]| {
        let args = ["dims", "load", "--lake", "lake"];
        quire(tmp.path(), &[&args[..], tables].concat())
    };
    let out = dims_load(&["--marketing-spend", "spend.csv"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spend.csv: line 2: column channel"), "{err}");
    // A load that fails on one table replaces none.
    fs::write(
        tmp.path().join("users.csv"),
        "user_id,signup_date,country\nusr_1,2025-01-01,DE\n",
    )
    .expect("write");
    let out = dims_load(&["--users", "users.csv", "--marketing-spend", "spend.csv"]);
    assert!(!out.status.success());
    assert!(
        !tmp.path()
            .join("lake/warehouse/dims/users.parquet")
            .exists(),
        "users were replaced by a failed load"
    );

    let serve_ranking = [
        "serve",
        "ranking",
        "--model",
        "ltr@production",
        "--scoring-threads",
        "0",
    ];
    let err = one_line_error(tmp.path(), &serve_ranking);
    assert!(
        err.contains("--scoring-threads must be at least 1"),
        "{err}"
    );

    // Errors whose text has several lines are one line too: clap's, a TOML parse error's.
    let err = one_line_error(tmp.path(), &["ingest", "--no-such-flag"]);
    assert!(err.contains("--no-such-flag"), "{err}");
    assert_eq!(
        quire(tmp.path(), &["ingest", "--no-such-flag"])
            .status
            .code(),
        Some(2)
    );
    // A missing subcommand shows the help, as clap does.
    let out = quire(tmp.path(), &["serve"]);
    assert!(!out.status.success());
    let help = String::from_utf8_lossy(&out.stderr);
    assert!(
        help.contains("ranking") && help.lines().count() > 3,
        "{help}"
    );
    fs::write(tmp.path().join("bad.toml"), "[ltr\nname = 1\n").expect("write");
    let err = one_line_error(tmp.path(), &["train", "--config", "bad.toml"]);
    assert!(err.contains("bad.toml"), "{err}");
    // Reading a registry that is not there names it and creates nothing.
    let typo = tmp.path().join("typo/registry.db");
    let url = format!("sqlite://{}", typo.display());
    for cmd in [["models", "list"], ["runs", "list"]] {
        let err = one_line_error(tmp.path(), &[cmd[0], cmd[1], "--registry", &url]);
        assert!(err.contains("registry database"), "{err}");
        assert!(err.contains("not found"), "{err}");
        assert!(err.contains("typo/registry.db"), "{err}");
    }
    assert!(!typo.exists() && !tmp.path().join("typo").exists());
    // Help is still clap's, on stdout, with success.
    let out = quire(tmp.path(), &["train", "--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
}

/// `quire pipeline run` on a small simulated store (4 days, 300 users) under `w/`.
const SMALL_PIPELINE: [&str; 10] = [
    "pipeline",
    "run",
    "--work",
    "w",
    "--lake",
    "w/lake",
    "--days",
    "4",
    "--sim-users",
    "300",
];

/// Small training configs for the end-to-end tests (few rounds: the tests check the wiring;
/// the trainers' quality is measured in the benchmarks).
fn small_configs(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let ltr = dir.join("ltr.toml");
    std::fs::write(
        &ltr,
        r#"version = 1
experiment = "search-ranking"
model = "ltr"
[ltr]
num_boost_round = 20
early_stopping_rounds = 5
eval_at = [5, 1, 3]
[ltr.lightgbm]
learning_rate = 0.1
num_leaves = 15
min_data_in_leaf = 5
num_threads = 2
"#,
    )
    .expect("write ltr.toml");
    let cf = dir.join("cf.toml");
    std::fs::write(
        &cf,
        r#"version = 1
experiment = "recommendations"
model = "cf"
[cf]
factors = 8
regularization = 0.05
alpha = 2.0
iterations = 4
test_days = 1
"#,
    )
    .expect("write cf.toml");
    (ltr, cf)
}

#[test]
fn pipeline_runs_then_skips_unchanged_steps() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (ltr, cf) = small_configs(dir);
    let registry = format!("sqlite://{}", dir.join("models/registry.db").display());
    let args = [
        SMALL_PIPELINE.as_slice(),
        &[
            "--train-config",
            ltr.to_str().expect("path"),
            "--train-config",
            cf.to_str().expect("path"),
            "--registry",
            &registry,
            "--artifacts",
            "models/artifacts",
            "--json",
        ],
    ]
    .concat();
    let first = quire_json(dir, &args);
    let status = |r: &Value| -> Vec<(String, String)> {
        r["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s["step"].as_str().expect("step").to_owned(),
                    s["status"].as_str().expect("status").to_owned(),
                )
            })
            .collect()
    };
    let ran: Vec<(String, String)> = [
        "simulate",
        "ingest",
        "dims",
        "warehouse",
        "train ltr",
        "train cf",
        "promote",
    ]
    .iter()
    .map(|s| ((*s).to_owned(), "ran".to_owned()))
    .collect();
    assert_eq!(status(&first), ran);
    assert!(first["kpis"]["daily"].as_array().expect("daily").len() >= 4);
    assert!(dir.join("w/reports/kpis.json").exists());

    // Both models registered, their first versions in production, every artifact checksummed.
    let models = quire_json(dir, &["models", "list", "--registry", &registry, "--json"]);
    let models = models.as_array().expect("models");
    let names: Vec<&str> = models
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["cf", "ltr"]);
    for m in models {
        let v = &m["versions"][0];
        assert_eq!(v["version"], 1);
        assert_eq!(v["aliases"], serde_json::json!(["production"]));
        let artifacts = v["artifacts"].as_array().expect("artifacts");
        assert!(artifacts.len() >= 2, "{m}");
        for a in artifacts {
            assert!(a["uri"].as_str().expect("uri").starts_with("file://"));
            assert_eq!(a["sha256"].as_str().expect("sha256").len(), 64);
        }
    }
    let ltr_names: Vec<&str> = models[1]["versions"][0]["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["name"].as_str().expect("name"))
        .collect();
    for want in [
        "model.txt",
        "model.onnx",
        "feature_spec.json",
        "feature_snapshot.json",
    ] {
        assert!(ltr_names.contains(&want), "{ltr_names:?}");
    }

    let second = quire_json(dir, &args);
    assert!(
        status(&second).iter().all(|(_, s)| s == "skipped"),
        "{:?}",
        status(&second)
    );
    assert_eq!(first["kpis"], second["kpis"]);

    // The registry gone, the models are trained and promoted again; the warehouse gone, it is
    // rebuilt: a step is skipped only when its outputs are there.
    std::fs::remove_dir_all(dir.join("models")).expect("remove the registry");
    std::fs::remove_dir_all(dir.join("w/lake/warehouse/aggregates")).expect("remove");
    let third = quire_json(dir, &args);
    let ran_again: Vec<(String, String)> = status(&third)
        .into_iter()
        .filter(|(_, s)| s == "ran")
        .collect();
    let names: Vec<&str> = ran_again.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["warehouse", "train ltr", "train cf", "promote"]);
    let models = quire_json(dir, &["models", "list", "--registry", &registry, "--json"]);
    for m in models.as_array().expect("models") {
        assert_eq!(
            m["versions"][0]["aliases"],
            serde_json::json!(["production"])
        );
    }
}

/// A pipeline asked for another simulated store refuses to add it to the lake of the first.
#[test]
fn pipeline_refuses_to_mix_two_simulated_stores() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let no_train = [SMALL_PIPELINE.as_slice(), &["--no-train"]].concat();
    quire_ok(dir, &no_train);
    let err = one_line_error(dir, &[no_train.as_slice(), &["--seed", "43"]].concat());
    assert!(
        err.contains("already holds a store simulated with other settings"),
        "{err}"
    );
    // The same settings again are fine (the same file, already in the lake).
    quire_ok(dir, &no_train);
}

/// A child process, killed if the test fails while it runs (a `quire train` of
/// [`long_training`] would train for hours).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `quire train` of a CF config with iterations enough to be training still when the
/// test signals it (stderr piped), in `dir`, on the registry `dir/reg.db`, and waits until its
/// run is RUNNING. Returns the child, the run's id and the registry flags.
fn long_training(dir: &Path) -> (KillOnDrop, String, [String; 2]) {
    let (_, cf) = small_configs(dir);
    quire_ok(dir, &[SMALL_PIPELINE.as_slice(), &["--no-train"]].concat());
    let long = fs::read_to_string(&cf)
        .expect("read cf.toml")
        .replace("iterations = 4", "iterations = 100000000");
    fs::write(dir.join("cf_long.toml"), long).expect("write");
    let registry = [
        "--registry".to_owned(),
        format!("sqlite://{}", dir.join("reg.db").display()),
    ];
    let child = quire_command(
        dir,
        &[
            &["train", "--config", "cf_long.toml", "--lake", "w/lake"],
            &[registry[0].as_str(), registry[1].as_str()][..],
            &["--artifacts", "art"],
        ]
        .concat(),
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("quire train starts");
    let child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let listed = quire(
            dir,
            &[
                "runs",
                "list",
                "--json",
                registry[0].as_str(),
                registry[1].as_str(),
            ],
        );
        let running = serde_json::from_slice::<Value>(&listed.stdout)
            .ok()
            .and_then(|runs| runs.get(0).cloned())
            .filter(|r| r["info"]["status"] == "RUNNING");
        if let Some(r) = running {
            break r["info"]["run_id"].as_str().expect("run id").to_owned();
        }
        assert!(Instant::now() < deadline, "no run started");
        std::thread::sleep(Duration::from_millis(100));
    };
    (child, run, registry)
}

/// Sends SIGINT to `child`, `times` times at once (one `kill` naming it that often).
fn interrupt(child: &KillOnDrop, times: usize) {
    let pid = child.0.id().to_string();
    let sent = std::process::Command::new("kill")
        .arg("-INT")
        .args(std::iter::repeat_n(pid.as_str(), times))
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

/// Waits for `child` to end: its exit status and its stderr.
fn ended(child: &mut KillOnDrop) -> (std::process::ExitStatus, String) {
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().expect("piped stderr"), &mut stderr)
        .expect("read stderr");
    (child.0.wait().expect("the child ends"), stderr)
}

/// Interrupted while it trains, `quire train` marks its run KILLED, with an end time, and ends
/// by the signal, as MLflow's client does for Ctrl-C (the run used to stay RUNNING).
#[test]
fn an_interrupted_training_run_is_marked_killed() {
    use std::os::unix::process::ExitStatusExt;

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut child, run, registry) = long_training(dir);
    // A run is recorded as open when it is created (under the lock the signal's handler
    // takes): no wait is needed for the handler to find it. The interrupt arrives twice at
    // once, as when a wrapper forwards the terminal's: still one interrupt.
    interrupt(&child, 2);
    let (status, stderr) = ended(&mut child);
    assert_eq!(status.signal(), Some(2), "{status:?}: {stderr}");
    assert!(
        stderr.contains(&format!("run {run} marked KILLED")),
        "{stderr}"
    );
    let shown = quire_json(
        dir,
        &[
            "runs",
            "show",
            run.as_str(),
            "--json",
            registry[0].as_str(),
            registry[1].as_str(),
        ],
    );
    assert_eq!(shown["info"]["status"], "KILLED");
    assert!(shown["info"]["end_time"].as_i64().is_some(), "{shown}");
}

/// A second interrupt while the run is being marked ends `quire train` at once. Here another
/// process holds the registry's write lock, so the marking alone would wait its 5 s.
#[test]
fn a_second_interrupt_ends_training_without_waiting_for_the_registry() {
    use std::os::unix::process::ExitStatusExt;

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (mut child, _, _) = long_training(dir);
    let locker = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys, time\n\
             c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             time.sleep(120)",
        ])
        .arg(dir.join("reg.db"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut locker = KillOnDrop(locker);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(locker.0.stdout.as_mut().expect("piped stdout")),
        &mut line,
    )
    .expect("read the locker's line");
    assert_eq!(line.trim(), "locked");
    interrupt(&child, 1);
    // Once the first is handled, and later than a repeat of it would come (250 ms).
    let mut stderr = std::io::BufReader::new(child.0.stderr.take().expect("piped stderr"));
    let mut first = String::new();
    while !first.contains("interrupt again to quit") {
        first.clear();
        let read = std::io::BufRead::read_line(&mut stderr, &mut first).expect("read stderr");
        assert!(read > 0, "quire ended before handling the first interrupt");
    }
    std::thread::sleep(Duration::from_millis(300));
    let again = Instant::now();
    interrupt(&child, 1);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).expect("read stderr");
    let status = child.0.wait().expect("quire train ends");
    let stderr = first + &rest;
    assert_eq!(status.signal(), Some(2), "{status:?}: {stderr}");
    assert!(stderr.contains("interrupted again"), "{stderr}");
    assert!(
        again.elapsed() < Duration::from_secs(4),
        "ended {:?} after the second signal: {stderr}",
        again.elapsed()
    );
    drop(locker);
}

/// `quire train --json` prints cli.md's shape; runs are listed, shown and compared; promotion
/// moves the alias and its history records both moves; a damaged artifact fails verification.
#[test]
fn train_runs_and_models_commands() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (ltr, _) = small_configs(dir);
    quire_ok(dir, &[SMALL_PIPELINE.as_slice(), &["--no-train"]].concat());
    let reg = format!("sqlite://{}", dir.join("reg.db").display());
    let train = |n: &str| {
        let out = quire_json(
            dir,
            &[
                "train",
                "--config",
                ltr.to_str().expect("path"),
                "--lake",
                "w/lake",
                "--registry",
                &reg,
                "--artifacts",
                "art",
                "--json",
            ],
        );
        assert_eq!(out["model"]["name"], "ltr", "{n}");
        out
    };
    let first = train("first");
    let second = train("second");
    assert_eq!(first["model"]["version"], 1);
    assert_eq!(second["model"]["version"], 2);
    let mut keys: Vec<&String> = first.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["artifact_uri", "metrics", "model", "run_id"]);
    let m = &first["metrics"];
    for k in ["test_ndcg_at_5", "bm25_test_ndcg_at_5", "best_iteration"] {
        assert!(m[k].as_f64().is_some(), "{k} in {m}");
    }
    // Same data, same seed, same config: the same model.
    assert_eq!(first["metrics"], second["metrics"]);

    let run1 = first["run_id"].as_str().expect("run id");
    let run2 = second["run_id"].as_str().expect("run id");
    let shown = quire_json(dir, &["runs", "show", run1, "--registry", &reg, "--json"]);
    assert_eq!(shown["info"]["status"], "FINISHED");
    assert!(
        shown["info"]["source_config"]
            .as_str()
            .expect("config")
            .contains("num_leaves = 15")
    );
    assert_eq!(shown["data"]["params"]["ltr.lightgbm.num_leaves"], "15");
    // Each metric `quire train` printed is the run's latest value in the registry, those with
    // a per-iteration history (valid_*) included.
    let latest: std::collections::BTreeMap<&str, f64> = shown["data"]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            (
                m["key"].as_str().expect("key"),
                m["value"].as_f64().expect("value"),
            )
        })
        .collect();
    let printed = m.as_object().expect("metrics");
    assert!(printed.keys().any(|k| k.starts_with("valid_")), "{m}");
    for (k, v) in printed {
        assert_eq!(latest.get(k.as_str()).copied(), v.as_f64(), "{k}");
    }
    let listed = quire_json(
        dir,
        &[
            "runs",
            "list",
            "--experiment",
            "search-ranking",
            "--registry",
            &reg,
            "--json",
        ],
    );
    assert_eq!(listed.as_array().expect("runs").len(), 2);
    quire_ok(dir, &["runs", "compare", run1, run2, "--registry", &reg]);

    quire_ok(
        dir,
        &[
            "models",
            "promote",
            "ltr",
            "1",
            "--alias",
            "production",
            "--registry",
            &reg,
        ],
    );
    quire_ok(
        dir,
        &[
            "models",
            "promote",
            "ltr",
            "2",
            "--alias",
            "production",
            "--registry",
            &reg,
        ],
    );
    let history = quire_json(
        dir,
        &["models", "history", "ltr", "--registry", &reg, "--json"],
    );
    let moves: Vec<(Value, Value)> = history
        .as_array()
        .expect("moves")
        .iter()
        .map(|m| (m["from_version"].clone(), m["to_version"].clone()))
        .collect();
    assert_eq!(moves, [(Value::Null, 1.into()), (1.into(), 2.into())]);
    // An alias never set, or an unknown model: an error, not an empty history.
    let err = one_line_error(
        dir,
        &[
            "models",
            "history",
            "ltr",
            "--alias",
            "nosuch",
            "--registry",
            &reg,
        ],
    );
    assert!(err.contains("never had an alias \"nosuch\""), "{err}");
    let err = one_line_error(dir, &["models", "history", "nope", "--registry", &reg]);
    assert!(err.contains("\"nope\" not found"), "{err}");

    quire_ok(
        dir,
        &[
            "models",
            "verify",
            "ltr",
            "2",
            "--registry",
            &reg,
            "--artifacts",
            "art",
        ],
    );
    // Damage one stored artifact: verification names it and fails.
    let versions = quire_json(
        dir,
        &["models", "versions", "ltr", "--registry", &reg, "--json"],
    );
    let uri = versions[1]["artifacts"][0]["uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    let path = uri.trim_start_matches("file://");
    std::fs::write(path, b"tampered").expect("tamper");
    let out = quire(
        dir,
        &[
            "models",
            "verify",
            "ltr",
            "2",
            "--registry",
            &reg,
            "--artifacts",
            "art",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checksum mismatch"), "{err}");
}

/// A real redis-server on a free loopback port, stopped on drop.
struct Redis {
    child: std::process::Child,
    port: u16,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (make setup installs it)");
        let redis = Redis { child, port };
        for _ in 0..100 {
            if redis.cli(&["PING"]) == "PONG" {
                return redis;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("redis-server did not answer on port {port}");
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `quire recs publish` from the production CF model: the pointer names a complete set in the
/// contract's layout, users never get a book they bought, a re-run changes nothing, and an
/// unreachable Redis is a one-line error naming the address.
#[test]
fn recs_publish_from_the_registry_to_redis() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let (_, cf) = small_configs(dir);
    let redis = Redis::start(dir);
    let reg = format!("sqlite://{}", dir.join("reg.db").display());
    let url = redis.url();
    let args = [
        SMALL_PIPELINE.as_slice(),
        &[
            "--train-config",
            cf.to_str().expect("path"),
            "--registry",
            &reg,
            "--artifacts",
            "art",
            "--redis",
            &url,
            "--json",
        ],
    ]
    .concat();
    let report = quire_json(dir, &args);
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("step"))
        .collect();
    assert_eq!(steps.last(), Some(&"publish recs"), "{steps:?}");

    // The CF trainer learns from `data.from` on: a window after every event has nothing.
    let mut future = fs::read_to_string(&cf).expect("read cf.toml");
    future.push_str("[data]\nfrom = \"2100-01-01\"\n");
    fs::write(dir.join("cf_future.toml"), future).expect("write");
    let err = one_line_error(
        dir,
        &[
            "train",
            "--config",
            "cf_future.toml",
            "--lake",
            "w/lake",
            "--registry",
            &reg,
            "--artifacts",
            "art",
        ],
    );
    assert!(err.contains("0 training and 0 test interactions"), "{err}");

    let set = redis.cli(&["GET", "quire:recs:current"]);
    assert!(set.contains("-cf-v1"), "{set}");
    let meta: Value = serde_json::from_str(&redis.cli(&["GET", &format!("quire:recs:{set}:meta")]))
        .expect("meta json");
    assert_eq!(meta["n"], 50, "{meta}");
    let popular: Value =
        serde_json::from_str(&redis.cli(&["GET", &format!("quire:recs:{set}:popular")]))
            .expect("popular");
    let items = popular["items"].as_array().expect("items");
    assert!(!items.is_empty() && items.len() <= 50);
    let scores: Vec<f64> = items
        .iter()
        .map(|i| i["score"].as_f64().expect("score"))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Publishing the same model again: same set, nothing rewritten.
    let publish = [
        "recs",
        "publish",
        "--model",
        "cf@production",
        "--redis",
        &url,
        "--registry",
        &reg,
        "--artifacts",
        "art",
        "--no-lake",
        "--json",
    ];
    let again = quire_json(dir, &publish);
    assert_eq!(again["set"], set.as_str());
    assert_eq!(again["summary"]["unchanged"], true);
    for k in ["set", "users", "items", "seconds"] {
        assert!(!again[k].is_null(), "{k} in {again}");
    }

    // A user buys the first book of their list after the model was trained: a publish that
    // reads the lake leaves it out (a new set), one with --no-lake (the model alone) does not.
    let user_key = redis
        .cli(&["KEYS", &format!("quire:recs:{set}:user:*")])
        .lines()
        .next()
        .expect("a user list")
        .to_owned();
    let user = user_key
        .rsplit(":user:")
        .next()
        .expect("user id")
        .to_owned();
    let list = |key: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(&redis.cli(&["GET", key])).expect("list json");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["book_id"].as_str().expect("book").to_owned())
            .collect()
    };
    let book = list(&user_key)[0].clone();
    let order = serde_json::json!({
        "event_id": "e2e-late-order", "event_type": "order_placed",
        "event_timestamp": "2030-01-01T00:00:00Z", "user_id": user, "device": "desktop",
        "order_id": "e2e-late-order", "total_price": 9.5,
        "items": [{"book_id": book, "quantity": 1, "unit_price": 9.5}],
    });
    fs::write(dir.join("late.jsonl"), format!("{order}\n")).expect("write");
    quire_ok(dir, &["ingest", "--lake", "w/lake", "late.jsonl"]);
    let without_lake = quire_json(dir, &publish);
    assert_eq!(without_lake["summary"]["unchanged"], true);
    // Without --lake the default lake is read, never created: here there is none.
    let reads_lake = &publish[..publish.len() - 2];
    let err = one_line_error(dir, reads_lake);
    assert!(
        err.contains("no lake at .quire/lake") && err.contains("--no-lake"),
        "{err}"
    );
    assert!(!dir.join(".quire").exists());
    let with_lake = quire_json(dir, &[reads_lake, &["--lake", "w/lake", "--json"]].concat());
    assert_eq!(with_lake["summary"]["unchanged"], false);
    let new_set = with_lake["set"].as_str().expect("set");
    assert_ne!(new_set, set);
    let after = list(&format!("quire:recs:{new_set}:user:{user}"));
    assert!(!after.contains(&book), "{book} still in {after:?}");

    let err = one_line_error(
        dir,
        &[
            "recs",
            "publish",
            "--model",
            "cf@production",
            "--redis",
            "redis://127.0.0.1:1/0",
            "--registry",
            &reg,
            "--artifacts",
            "art",
            "--no-lake",
        ],
    );
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

/// `quire analyze`: the basket contract of cli.md through the binary (arules' 410 groceries
/// rules, exact thresholds, the JSON shape sorted by lift), an analysis and the report on a
/// simulated lake with `--out`, and bad input refused with a one-line reason.
#[test]
fn analyze_basket_contract_report_and_bad_input() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let groceries = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/groceries/groceries.csv");
    let basket = quire_json(
        dir,
        &[
            "analyze",
            "basket",
            "--transactions",
            groceries.to_str().expect("utf-8 path"),
            "--min-support",
            "0.001",
            "--min-confidence",
            "0.8",
            "--json",
        ],
    );
    // Every rule by default (arules' 410, of up to 6 books).
    assert_eq!(basket["transactions"], 9835);
    let rules = basket["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 410);
    let mut keys: Vec<&str> = rules[0]
        .as_object()
        .expect("rule")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "antecedent",
            "confidence",
            "consequent",
            "count",
            "lift",
            "support"
        ]
    );
    assert!(
        rules
            .windows(2)
            .all(|w| w[0]["lift"].as_f64() >= w[1]["lift"].as_f64())
    );
    assert!(
        rules
            .iter()
            .all(|r| r["consequent"].as_array().map(Vec::len) == Some(1))
    );

    simulate(dir);
    quire_ok(
        dir,
        &["ingest", "--lake", "lake", "sim/events.jsonl", "--json"],
    );
    // cli.md's shape has all three tables; those not given loaded 0 rows.
    let dims = quire_json(
        dir,
        &[
            "dims",
            "load",
            "--lake",
            "lake",
            "--books",
            "sim/books.csv",
            "--json",
        ],
    );
    assert!(dims["books"].as_u64().is_some_and(|n| n > 0), "{dims}");
    assert_eq!(dims["users"], 0, "{dims}");
    assert_eq!(dims["marketing_spend"], 0, "{dims}");
    let devices = quire_json(
        dir,
        &[
            "analyze", "devices", "--lake", "lake", "--json", "--out", "out",
        ],
    );
    assert_eq!(devices["analysis"], "devices");
    assert!(dir.join("out/devices.rates.parquet").exists());
    assert!(dir.join("out/devices.cvr.svg").exists());
    quire_ok(
        dir,
        &["analyze", "report", "--lake", "lake", "--out", "report"],
    );
    let html = fs::read_to_string(dir.join("report/report.html")).expect("report.html");
    assert_eq!(
        html.matches("<section").count(),
        12,
        "eight analyses and the four causal ones in the report"
    );
    // The A/B contract of cli.md through the binary.
    let ab = quire_json(
        dir,
        &[
            "analyze",
            "abtest",
            "--lake",
            "lake",
            "--experiment",
            "search_ranker",
            "--control",
            "bm25",
            "--json",
        ],
    );
    for key in [
        "experiment",
        "control",
        "mixed_users",
        "variants",
        "srm_p_value",
        "comparisons",
    ] {
        assert!(ab.get(key).is_some(), "abtest --json lacks {key}: {ab}");
    }
    for key in ["users", "conversions", "cvr", "revenue_per_user"] {
        assert!(ab["variants"]["bm25"].get(key).is_some(), "{key}");
    }
    let ltr = &ab["comparisons"]["ltr"];
    assert_eq!(ltr["ci95"].as_array().map(Vec::len), Some(2));
    for key in ["abs_diff", "rel_lift", "p_value"] {
        assert!(ltr.get(key).is_some(), "{key}");
    }
    // The simulator's A/B truth counts users and conversions as cli.md does: on the whole
    // lake they agree to the unit (anonymous visitors with two sessions in a day included).
    let truth: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("sim/truth.json")).expect("truth.json"))
            .expect("truth.json is JSON");
    for arm in ["bm25", "ltr"] {
        for count in ["users", "conversions"] {
            assert_eq!(
                ab["variants"][arm][count], truth["experiment"][arm][count],
                "{arm} {count}"
            );
        }
    }
    assert!(html.contains("<svg"));
    // A range without orders: no transactions, no rules, and success.
    let empty = quire_json(
        dir,
        &[
            "analyze",
            "basket",
            "--lake",
            "lake",
            "--from",
            "2100-01-01",
            "--json",
        ],
    );
    assert_eq!(empty["transactions"], 0, "{empty}");
    assert_eq!(empty["rules"], serde_json::json!([]), "{empty}");

    for (args, reason) in [
        (
            vec![
                "analyze",
                "basket",
                "--lake",
                "lake",
                "--min-support",
                "1.5",
            ],
            "--min-support",
        ),
        (
            vec![
                "analyze",
                "devices",
                "--lake",
                "lake",
                "--from",
                "2025-10-05",
                "--to",
                "2025-10-01",
            ],
            "after --to",
        ),
        (
            vec!["analyze", "top-customers", "--lake", "lake", "--pct", "0"],
            "--pct",
        ),
    ] {
        let out = quire(dir, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(reason) && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
}

/// `curl -s URL [args]`: (HTTP status, body).
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// `quire serve live`: Redis from `QUIRE_REDIS`, the lake from `--lake`; it starts from the
/// lake (its closed hours are the replay's), takes an event over HTTP, archives it, and
/// stops on SIGTERM with status 0; an unreachable Redis is a one-line error naming it.
#[test]
fn serve_live_starts_from_the_lake_and_takes_events() {
    let tmp = simulated_lake();
    let dir = tmp.path();
    let kpis = quire_json(dir, &["kpis", "--lake", "lake", "--json"]);

    let err = one_line_error(
        dir,
        &[
            "serve",
            "live",
            "--lake",
            "lake",
            "--redis",
            "redis://127.0.0.1:1/0",
        ],
    );
    assert!(err.contains("redis://127.0.0.1:1/0"), "{err}");

    let redis = Redis::start(dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = std::process::Command::new(quire_tests::quire_bin())
        .current_dir(dir)
        .args(["serve", "live", "--lake", "lake", "--listen"])
        // A host name is resolved (localhost: 127.0.0.1).
        .arg(format!("localhost:{port}"))
        .env("QUIRE_REDIS", redis.url())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("quire serve live");
    let ready = (0..150).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        curl(&format!("{base}/health/ready"), &[]).0 == 200
    });
    assert!(ready, "the live service did not become ready");

    // The live window (the newest event's day and the day before), as the live path emits
    // it from the lake, is the replay's.
    let (_, status) = curl(&format!("{base}/api/v1/status"), &[]);
    let status: Value = serde_json::from_str(&status).expect("status JSON");
    let today = &status["max_event_time"].as_str().expect("max_event_time")[..10];
    let days: Vec<&str> = kpis["daily"]
        .as_array()
        .expect("daily")
        .iter()
        .filter_map(|d| d["date"].as_str())
        .collect();
    let at = days
        .iter()
        .position(|d| *d == today)
        .expect("today in the replay");
    let from = days[at - 1];
    let hourly = kpis["hourly_gmv"].as_array().expect("hourly_gmv");
    let (status, body) = curl(
        &format!("{base}/api/v1/hourly-gmv?from={from}T00&to={today}T23"),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    let live: Vec<Value> = serde_json::from_str(&body).expect("JSON");
    let replay: Vec<&Value> = hourly
        .iter()
        .filter(|h| {
            h["hour"]
                .as_str()
                .is_some_and(|t| t >= from && &t[..10] <= today)
        })
        .collect();
    assert_eq!(live.len(), replay.len(), "{body}");
    for (l, r) in live.iter().zip(&replay) {
        assert_eq!(l["hour"], r["hour"]);
        let (a, b) = (
            l["net_gmv"].as_f64().expect("n"),
            r["net_gmv"].as_f64().expect("n"),
        );
        assert!((a - b).abs() < 1e-6, "{l} vs {r}");
    }

    let event = r#"{"event_id":"e2e-live-1","event_type":"page_view","event_timestamp":"2025-10-03T23:59:00Z","user_id":"usr_e2e","device":"tablet","page":"home"}"#;
    let (status, body) = curl(
        &format!("{base}/v1/events"),
        &["-H", "content-type: application/json", "-d", event],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accepted\":1"), "{body}");
    // The archiver commits it: the replay sees one more tablet session that day.
    let tablets = |k: &Value| {
        k["daily"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["date"] == "2025-10-03"))
            .and_then(|d| d["sessions_by_device"]["tablet"].as_i64())
            .unwrap_or(0)
    };
    let before = tablets(&kpis);
    let archived = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let out = quire(dir, &["kpis", "--lake", "lake", "--json"]);
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|k| tablets(&k) == before + 1)
    });
    assert!(archived, "the posted event never reached the lake");

    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = child.wait().expect("the service exits");
    assert!(status.success(), "{status}");
}

/// `quire serve registry` on the default locations of `quire train` (models/ under the working
/// directory): MLflow's REST API answers with the `Default` experiment, the UI renders, an
/// unknown endpoint is a JSON 404.
#[test]
fn serve_registry_answers_mlflow_rest_and_ui() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn get(port: u16, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut answer = String::new();
        s.read_to_string(&mut answer).ok()?;
        let status = answer.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, answer))
    }

    let dir = tempfile::tempdir().expect("temporary directory");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut server = std::process::Command::new(quire_tests::quire_bin())
        .current_dir(dir.path())
        .args([
            "serve",
            "registry",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("QUIRE_REGISTRY")
        .env_remove("QUIRE_ARTIFACTS")
        .spawn()
        .expect("start quire serve registry");
    let deadline = Instant::now() + Duration::from_secs(30);
    let default = loop {
        if let Some(answer) = get(
            port,
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default",
        ) {
            break answer;
        }
        if let Some(status) = server.try_wait().expect("poll the server") {
            panic!("quire serve registry exited with {status} before answering");
        }
        assert!(
            Instant::now() < deadline,
            "quire serve registry did not answer within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let ui = get(port, "/ui").expect("the UI answers");
    let unknown = get(port, "/api/2.0/mlflow/nothing-here").expect("an answer");
    server.kill().expect("stop the server");
    server.wait().expect("reap the server");

    assert_eq!(default.0, 200, "{}", default.1);
    assert!(
        default.1.contains(r#""experiment_id":"0""#),
        "{}",
        default.1
    );
    assert!(
        dir.path().join("models/registry.db").exists(),
        "the default registry location"
    );
    assert_eq!(ui.0, 200);
    assert!(ui.1.contains("Experiments"), "{}", ui.1);
    assert_eq!(unknown.0, 404);
    assert!(unknown.1.contains("ENDPOINT_NOT_FOUND"), "{}", unknown.1);
}
