//! The dashboard in a real headless Chromium: it loads without console errors, shows 24
//! bars with the live one marked, and a screenshot is saved as a test artifact
//! (`$CARGO_TARGET_DIR/test-artifacts/live-dashboard.png`).

use serde_json::Value;

use crate::harness::*;

/// Runs Chromium headless on `url` (`quire_testkit::chromium`) plus `extra`; returns (stdout,
/// stderr). Virtual time lets the page's fetches finish before the dump.
fn chromium(url: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["--virtual-time-budget=8000", "--window-size=1400,1900"];
    args.extend_from_slice(extra);
    let page = quire_testkit::chromium::run(url, &args);
    (page.stdout, page.stderr)
}

/// The value of attribute `name` (which may start with its tag, `<body data-state`) where it
/// first occurs.
fn attr<'a>(html: &'a str, name: &str) -> Option<&'a str> {
    let start = html.find(&format!("{name}=\""))? + name.len() + 2;
    let len = html[start..].find('"')?;
    Some(&html[start..start + len])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path());
    let svc = Service::start(options(&dir.path().join("lake"), &redis)).await;

    // A day and a bit of traffic: an order, views and a cart in every hour.
    let mut events: Vec<Value> = Vec::new();
    for h in 0..26 {
        let (day, hh) = (1 + h / 24, h % 24);
        let ts = |m: u32| format!("2025-10-{day:02}T{hh:02}:{m:02}:00Z");
        let user = format!("usr_{h}");
        events.push(page_view(&format!("v{h}"), &ts(1), &user));
        events.push(order(
            &format!("o{h}"),
            &ts(20),
            &user,
            &format!("ord{h}"),
            10.0 + f64::from(h),
        ));
    }
    svc.post_events(&events).await;
    wait_for(20, "the live KPIs", || async {
        let (_, d) = svc.get("/api/v1/dashboard").await;
        (d["hours"].as_array().is_some_and(|h| h.len() == 24) && d["today"]["kpis"].is_object())
            .then_some(())
    })
    .await;

    let url = format!("{}/", svc.base);
    let (dom, log) = chromium(&url, &["--dump-dom"]);
    assert_eq!(attr(&dom, "<body data-state"), Some("ready"), "{dom}");
    assert_eq!(attr(&dom, "data-bars"), Some("24"));
    assert_eq!(
        attr(&dom, "data-live-bars"),
        Some("2025-10-02T01:00:00Z"),
        "the newest hour is live"
    );
    assert_eq!(dom.matches("<tr class=\"live\">").count(), 1);
    // Console messages are logged as `CONSOLE(line)] "message"`; the page logs nothing on
    // success, so any is an error (an uncaught exception, a failed resource, …).
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(console.is_empty(), "console messages: {console:#?}");

    let shot = artifacts_dir().join("live-dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&url, &[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("the screenshot is written");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
    svc.stop().await;
}
