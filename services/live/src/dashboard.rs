//! The dashboard page and its assets, compiled into the binary (it works offline and from a
//! clean clone: no npm at build time). Chart.js 4.6.1 is vendored in `assets/` with its
//! license (`assets/chart.js-VERSION` says where it came from).

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = include_str!("../assets/dashboard.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const CHART_JS: &str = include_str!("../assets/chart.umd.min.js");

pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

fn javascript(body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn script() -> Response {
    javascript(SCRIPT)
}

pub(crate) async fn chart_js() -> Response {
    javascript(CHART_JS)
}
