//! The web UI: server-rendered HTML (maud escapes every value), metric charts as inline SVG,
//! no script and no external resource, so a page is complete as served.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use quire_registry::{Metric, Run, SearchLoggedModels, SearchRuns, ViewType};

use crate::App;

type St = State<Arc<App>>;

/// The UI's routes, all under `/ui`.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/ui", get(experiments))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route("/ui/experiments/{id}", get(experiment))
        .route("/ui/runs/{id}", get(run))
        .route("/ui/compare", get(compare))
        .route("/ui/models", get(models))
        .route("/ui/models/{name}", get(model))
}

/// An error page.
pub struct UiError {
    status: StatusCode,
    message: String,
}

impl From<quire_registry::Error> for UiError {
    fn from(e: quire_registry::Error) -> Self {
        let status = match &e {
            quire_registry::Error::NotFound { .. } => StatusCode::NOT_FOUND,
            quire_registry::Error::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        UiError {
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("error");
        (
            self.status,
            Html(page(title, html! { p.error { (self.message) } }).into_string()),
        )
            .into_response()
    }
}

/// The page for a path nothing answers.
pub fn not_found(path: &str) -> UiError {
    UiError {
        status: StatusCode::NOT_FOUND,
        message: format!("nothing at {path}"),
    }
}

type Page = Result<Html<String>, UiError>;

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;color:#1d2433;background:#f7f8fa}
header{background:#1d2433;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.4rem;align-items:baseline}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700}
main{padding:1rem 1.4rem;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;background:#fff;margin:.4rem 0;font-size:.9rem}
th,td{border:1px solid #dde1e8;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:.85rem}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{background:#fff;border:1px solid #dde1e8;padding:.4rem}
.chart h3{font-size:.9rem;margin:.2rem 0}.diff{background:#fff4d6}.error{color:#a3261b}
.muted{color:#6b7385}button{margin:.4rem 0}
";

const COLORS: [&str; 8] = [
    "#2f6fdf", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#0b7285", "#e67700", "#495057",
];

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Quire registry" }
                // No favicon request: every resource of a page is in the page.
                link rel="icon" href="data:,";
                style { (STYLE) }
            }
            body {
                header {
                    a.brand href="/ui" { "Quire registry" }
                    a href="/ui" { "Experiments" }
                    a href="/ui/models" { "Models" }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn ok(title: &str, body: Markup) -> Page {
    Ok(Html(page(title, body).into_string()))
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn duration(start: i64, end: Option<i64>) -> String {
    match end {
        Some(end) if end >= start => {
            let s = (end - start) as f64 / 1000.0;
            if s < 60.0 {
                format!("{s:.1}s")
            } else {
                format!("{:.1}min", s / 60.0)
            }
        }
        _ => "—".into(),
    }
}

/// A number as people read it: up to 6 significant digits.
fn num(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_owned()
    }
}

async fn experiments(State(app): St) -> Page {
    let exps = app
        .registry
        .search_experiments(None, ViewType::ActiveOnly)
        .await?;
    ok(
        "Experiments",
        html! {
            @if exps.is_empty() { p.muted { "No experiments yet." } }
            @else {
                table {
                    tr { th { "id" } th { "name" } th { "artifact location" } th { "created" } }
                    @for e in &exps {
                        tr {
                            td.num { (e.experiment_id) }
                            td { a href={ "/ui/experiments/" (e.experiment_id) } { (e.name) } }
                            td.mono { (e.artifact_location) }
                            td { (time(e.creation_time)) }
                        }
                    }
                }
            }
        },
    )
}

/// The first keys (sorted) over runs, at most `max`.
fn keys<'a>(runs: &'a [Run], pick: impl Fn(&'a Run) -> Vec<&'a str>, max: usize) -> Vec<&'a str> {
    let all: BTreeSet<&str> = runs.iter().flat_map(pick).collect();
    all.into_iter().take(max).collect()
}

fn latest<'a>(run: &'a Run, key: &str) -> Option<&'a Metric> {
    run.data.metrics.iter().find(|m| m.key == key)
}

async fn experiment(State(app): St, Path(id): Path<String>) -> Page {
    let id: i64 = id.parse().map_err(|_| UiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("{id:?} is not an experiment id"),
    })?;
    let exp = app.registry.get_experiment(id).await?;
    let page_of_runs = app
        .registry
        .search_runs(&SearchRuns {
            experiment_ids: vec![id],
            max_results: 500,
            ..SearchRuns::default()
        })
        .await?;
    let runs = page_of_runs.runs;
    let params = keys(
        &runs,
        |r| r.data.params.keys().map(String::as_str).collect(),
        6,
    );
    let metrics = keys(
        &runs,
        |r| r.data.metrics.iter().map(|m| m.key.as_str()).collect(),
        8,
    );
    ok(
        &format!("Experiment {}", exp.name),
        html! {
            p.muted { "id " (exp.experiment_id) " · " (exp.artifact_location) " · created " (time(exp.creation_time)) }
            @if runs.is_empty() { p.muted { "No runs yet." } }
            @else {
                form method="get" action="/ui/compare" {
                    table {
                        tr {
                            th { "compare" } th { "run" } th { "status" } th { "started" } th { "duration" }
                            @for p in &params { th { "params." (p) } }
                            @for m in &metrics { th { "metrics." (m) } }
                        }
                        @for r in &runs {
                            tr {
                                td { input type="checkbox" name="run" value=(r.info.run_id) aria-label={ "compare " (r.info.run_name) }; }
                                td { a href={ "/ui/runs/" (r.info.run_id) } { (r.info.run_name) } }
                                td { (r.info.status.as_str()) }
                                td { (time(r.info.start_time)) }
                                td { (duration(r.info.start_time, r.info.end_time)) }
                                @for p in &params { td { (r.data.params.get(*p).map(String::as_str).unwrap_or("")) } }
                                @for m in &metrics { td.num { (latest(r, m).map(|m| num(m.value)).unwrap_or_default()) } }
                            }
                        }
                    }
                    button type="submit" { "Compare selected runs" }
                }
                @if page_of_runs.next_page_token.is_some() { p.muted { "Showing the newest 500 runs." } }
            }
        },
    )
}

/// A line chart of metric series over steps, as inline SVG.
fn chart(title: &str, series: &[(String, Vec<Metric>)]) -> Markup {
    const W: f64 = 440.0;
    const H: f64 = 200.0;
    const L: f64 = 56.0;
    const R: f64 = 12.0;
    const T: f64 = 10.0;
    const B: f64 = 28.0;
    let points: Vec<&Metric> = series.iter().flat_map(|(_, h)| h).collect();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for m in &points {
        x0 = x0.min(m.step as f64);
        x1 = x1.max(m.step as f64);
        if m.value.is_finite() {
            y0 = y0.min(m.value);
            y1 = y1.max(m.value);
        }
    }
    if x1 <= x0 {
        // One step: centre it.
        (x0, x1) = (x0 - 1.0, x0 + 1.0);
    }
    if y1 < y0 {
        (y0, y1) = (0.0, 1.0);
    } else if y1 == y0 {
        (y0, y1) = (y0 - 0.5, y1 + 0.5);
    }
    let sx = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
    let sy = |y: f64| H - B - (y - y0) / (y1 - y0) * (H - T - B);
    html! {
        div.chart {
            h3 { (title) }
            svg width=(W) height=(H) viewBox={ "0 0 " (W) " " (H) } role="img" aria-label={ "chart of " (title) } {
                line x1=(L) y1=(H - B) x2=(W - R) y2=(H - B) stroke="#8891a1" {}
                line x1=(L) y1=(T) x2=(L) y2=(H - B) stroke="#8891a1" {}
                text x=(L - 4.0) y=(T + 8.0) text-anchor="end" font-size="10" { (num(y1)) }
                text x=(L - 4.0) y=(H - B) text-anchor="end" font-size="10" { (num(y0)) }
                text x=(L) y=(H - 10.0) font-size="10" { "step " (num(x0)) }
                text x=(W - R) y=(H - 10.0) text-anchor="end" font-size="10" { "step " (num(x1)) }
                @for (i, (_, history)) in series.iter().enumerate() {
                    @let color = COLORS[i % COLORS.len()];
                    @let finite: Vec<&Metric> = history.iter().filter(|m| m.value.is_finite()).collect();
                    polyline fill="none" stroke=(color) stroke-width="1.6"
                        points=(finite.iter().map(|m| format!("{:.1},{:.1}", sx(m.step as f64), sy(m.value))).collect::<Vec<_>>().join(" ")) {}
                    @if finite.len() <= 60 {
                        @for m in &finite {
                            circle cx=(format!("{:.1}", sx(m.step as f64))) cy=(format!("{:.1}", sy(m.value))) r="2.4" fill=(color) {
                                title { "step " (m.step) ": " (num(m.value)) }
                            }
                        }
                    }
                }
            }
            @if series.len() > 1 {
                div {
                    @for (i, (label, _)) in series.iter().enumerate() {
                        span style={ "color:" (COLORS[i % COLORS.len()]) "; margin-right:.8rem" } { "■ " (label) }
                    }
                }
            }
        }
    }
}

async fn run(State(app): St, Path(id): Path<String>) -> Page {
    let run = app.registry.get_run(&id).await?;
    let exp = app.registry.get_experiment(run.info.experiment_id).await?;
    let mut charts = Vec::new();
    for m in &run.data.metrics {
        let history = app.registry.get_metric_history(&id, &m.key).await?;
        charts.push((m.key.clone(), history));
    }
    let root = run
        .info
        .artifact_uri
        .strip_prefix("mlflow-artifacts:")
        .map(|p| p.trim_matches('/').to_owned());
    let files = match &root {
        Some(root) => app.registry.list_artifact_files(root).await?,
        None => Vec::new(),
    };
    let (models, _) = app
        .registry
        .search_logged_models(&SearchLoggedModels {
            source_run_id: Some(id.clone()),
            max_results: 1000,
            ..SearchLoggedModels::default()
        })
        .await?;
    let versions = app.registry.search_model_versions(None, Some(&id)).await?;
    ok(
        &format!("Run {}", run.info.run_name),
        html! {
            p {
                "experiment " a href={ "/ui/experiments/" (exp.experiment_id) } { (exp.name) }
                " · " span.mono { (run.info.run_id) }
            }
            table {
                tr { th { "status" } td { (run.info.status.as_str()) } }
                tr { th { "started" } td { (time(run.info.start_time)) } }
                tr { th { "duration" } td { (duration(run.info.start_time, run.info.end_time)) } }
                tr { th { "user" } td { (run.info.user_id) } }
                tr { th { "artifact uri" } td.mono { (run.info.artifact_uri) } }
                @if let Some(commit) = &run.info.git_commit { tr { th { "git commit" } td.mono { (commit) } } }
            }
            h2 { "Parameters" }
            @if run.data.params.is_empty() { p.muted { "none" } }
            @else {
                table {
                    tr { th { "key" } th { "value" } }
                    @for (k, v) in &run.data.params { tr { td { (k) } td.mono { (v) } } }
                }
            }
            h2 { "Metrics" }
            @if run.data.metrics.is_empty() { p.muted { "none" } }
            @else {
                table {
                    tr { th { "key" } th { "latest" } th { "step" } th { "values logged" } }
                    @for (m, (_, h)) in run.data.metrics.iter().zip(&charts) {
                        tr { td { (m.key) } td.num { (num(m.value)) } td.num { (m.step) } td.num { (h.len()) } }
                    }
                }
                div.charts {
                    @for (key, history) in &charts {
                        (chart(key, &[(run.info.run_name.clone(), history.clone())]))
                    }
                }
            }
            h2 { "Tags" }
            table {
                tr { th { "key" } th { "value" } }
                @for (k, v) in &run.data.tags { tr { td { (k) } td.mono { (v) } } }
            }
            h2 { "Artifacts" }
            @if files.is_empty() { p.muted { "none" } }
            @else {
                table {
                    tr { th { "path" } th { "size" } th { "sha256" } }
                    @for f in &files {
                        tr {
                            td { a href={ "/api/2.0/mlflow-artifacts/artifacts/" (f.path) } {
                                (root.as_deref().and_then(|r| f.path.strip_prefix(r)).unwrap_or(&f.path).trim_start_matches('/'))
                            } }
                            td.num { (f.artifact.size) }
                            td.mono { (f.artifact.sha256) }
                        }
                    }
                }
            }
            @if !models.is_empty() {
                h2 { "Logged models" }
                table {
                    tr { th { "model id" } th { "name" } th { "type" } th { "status" } }
                    @for m in &models {
                        tr { td.mono { (m.model_id) } td { (m.name) } td { (m.model_type) } td { (m.status) } }
                    }
                }
            }
            @if !versions.is_empty() {
                h2 { "Registered as" }
                ul {
                    @for v in &versions {
                        li { a href={ "/ui/models/" (path_segment(&v.name)) } { (v.name) " version " (v.version) } }
                    }
                }
            }
        },
    )
}

async fn compare(State(app): St, RawQuery(query): RawQuery) -> Page {
    let ids: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "run")
        .map(|(_, v)| v.into_owned())
        .collect();
    if ids.is_empty() {
        return Err(UiError {
            status: StatusCode::BAD_REQUEST,
            message: "choose runs to compare: /ui/compare?run=<id>&run=<id>".into(),
        });
    }
    let runs = app.registry.get_runs(&ids).await?;
    let params = keys(
        &runs,
        |r| r.data.params.keys().map(String::as_str).collect(),
        usize::MAX,
    );
    let metrics = keys(
        &runs,
        |r| r.data.metrics.iter().map(|m| m.key.as_str()).collect(),
        usize::MAX,
    );
    let mut charts: BTreeMap<&str, Vec<(String, Vec<Metric>)>> = BTreeMap::new();
    for key in &metrics {
        for r in &runs {
            if latest(r, key).is_some() {
                let history = app.registry.get_metric_history(&r.info.run_id, key).await?;
                charts
                    .entry(key)
                    .or_default()
                    .push((r.info.run_name.clone(), history));
            }
        }
    }
    let differs = |values: &[Option<String>]| values.iter().collect::<BTreeSet<_>>().len() > 1;
    ok(
        &format!("Comparing {} runs", runs.len()),
        html! {
            table {
                tr {
                    th { "" }
                    @for r in &runs { th { a href={ "/ui/runs/" (r.info.run_id) } { (r.info.run_name) } } }
                }
                tr { th { "status" } @for r in &runs { td { (r.info.status.as_str()) } } }
                tr { th { "started" } @for r in &runs { td { (time(r.info.start_time)) } } }
                @for p in &params {
                    @let values: Vec<Option<String>> = runs.iter().map(|r| r.data.params.get(*p).cloned()).collect();
                    tr class=[differs(&values).then_some("diff")] {
                        th { "params." (p) }
                        @for v in &values { td.mono { (v.as_deref().unwrap_or("")) } }
                    }
                }
                @for m in &metrics {
                    @let values: Vec<Option<String>> = runs.iter().map(|r| latest(r, m).map(|m| num(m.value))).collect();
                    tr class=[differs(&values).then_some("diff")] {
                        th { "metrics." (m) }
                        @for v in &values { td.num { (v.as_deref().unwrap_or("")) } }
                    }
                }
            }
            p.muted { "Highlighted rows differ between runs." }
            div.charts {
                @for (key, series) in &charts { (chart(key, series)) }
            }
        },
    )
}

async fn models(State(app): St) -> Page {
    let models = app.registry.search_registered_models(None).await?;
    ok(
        "Registered models",
        html! {
            @if models.is_empty() { p.muted { "No registered models yet." } }
            @else {
                table {
                    tr { th { "name" } th { "latest version" } th { "aliases" } th { "updated" } th { "description" } }
                    @for m in &models {
                        tr {
                            td { a href={ "/ui/models/" (path_segment(&m.name)) } { (m.name) } }
                            td.num { (m.latest_version) }
                            td { @for (alias, v) in &m.aliases { code { (alias) " → v" (v) } " " } }
                            td { (time(m.last_updated_time)) }
                            td { (m.description) }
                        }
                    }
                }
            }
        },
    )
}

async fn model(State(app): St, Path(name): Path<String>) -> Page {
    let m = app.registry.get_registered_model(&name).await?;
    let mut versions = app
        .registry
        .search_model_versions(Some(&name), None)
        .await?;
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    let history = app.registry.model_alias_history(&name).await?;
    ok(
        &format!("Model {}", m.name),
        html! {
            @if !m.description.is_empty() { p { (m.description) } }
            h2 { "Aliases" }
            @if m.aliases.is_empty() { p.muted { "none" } }
            @else {
                table {
                    tr { th { "alias" } th { "version" } }
                    @for (alias, v) in &m.aliases { tr { td { code { (alias) } } td.num { (v) } } }
                }
            }
            h2 { "Versions" }
            table {
                tr { th { "version" } th { "created" } th { "run" } th { "status" } th { "aliases" } th { "tags" } th { "artifacts (sha256)" } }
                @for v in &versions {
                    tr id={ "v" (v.version) } {
                        td.num { (v.version) }
                        td { (time(v.creation_time)) }
                        td { @if let Some(run) = &v.run_id { a.mono href={ "/ui/runs/" (run) } { (run.get(..8).unwrap_or(run)) } } }
                        td { (v.status) }
                        td { @for a in &v.aliases { code { (a) } " " } }
                        td { @for (k, val) in &v.tags { code { (k) "=" (val) } br; } }
                        td {
                            @for a in &v.artifacts {
                                a href={ "/api/2.0/quire/model-versions/artifact?name=" (form_encode(&v.name)) "&version=" (v.version) "&artifact=" (form_encode(&a.name)) } { (a.name) }
                                " " span.mono.muted { (a.artifact.sha256.get(..12).unwrap_or(&a.artifact.sha256)) "…" } br;
                            }
                        }
                    }
                }
            }
            h2 { "Alias history" }
            @if history.is_empty() { p.muted { "no alias was ever set" } }
            @else {
                table {
                    tr { th { "when" } th { "alias" } th { "from" } th { "to" } th { "by" } }
                    @for h in &history {
                        tr {
                            td { (time(h.moved_at)) }
                            td { code { (h.alias) } }
                            td.num { (h.from_version.map(|v| v.to_string()).unwrap_or_else(|| "—".into())) }
                            td.num { (h.to_version.map(|v| v.to_string()).unwrap_or_else(|| "deleted".into())) }
                            td { (h.moved_by) }
                        }
                    }
                }
            }
        },
    )
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `s` as one URL path segment (a space is `%20` there, not `+`).
fn path_segment(s: &str) -> String {
    form_encode(s).replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_are_encoded_in_links() {
        assert_eq!(path_segment("ltr"), "ltr");
        assert_eq!(path_segment("my model/v2"), "my%20model%2Fv2");
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(0.123456789), "0.123457");
        assert_eq!(num(0.5), "0.5");
        assert_eq!(duration(1000, Some(3500)), "2.5s");
        assert_eq!(duration(0, Some(120_000)), "2.0min");
        assert_eq!(duration(5, None), "—");
    }

    #[test]
    fn charts_escape_labels_and_draw_every_series() {
        let h = |v: &[f64]| -> Vec<Metric> {
            v.iter()
                .enumerate()
                .map(|(i, &value)| Metric {
                    key: "loss".into(),
                    value,
                    timestamp: 0,
                    step: i as i64,
                })
                .collect()
        };
        let svg = chart(
            "<loss>",
            &[
                ("a".into(), h(&[1.0, 0.5, 0.25])),
                ("b&c".into(), h(&[2.0])),
            ],
        )
        .into_string();
        assert!(svg.contains("&lt;loss&gt;"), "{svg}");
        assert!(svg.contains("b&amp;c"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
    }
}
