//! Printing: JSON documents on stdout, and tables for people.

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use serde_json::Value;

/// Prints exactly one JSON document on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A plain table.
pub fn table<H, Hc, R, C>(header: H, rows: impl IntoIterator<Item = R>) -> Table
where
    H: IntoIterator<Item = Hc>,
    Hc: Into<comfy_table::Cell>,
    R: IntoIterator<Item = C>,
    C: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header);
    for r in rows {
        t.add_row(r);
    }
    t
}

fn money(v: &Value) -> String {
    v.as_f64().map_or("-".to_owned(), |x| format!("{x:.2}"))
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or("-".to_owned(), |x| format!("{:.1}%", x * 100.0))
}

fn int(v: &Value) -> String {
    v.as_i64()
        .map(|x| x.to_string())
        .or_else(|| v.as_f64().map(|x| format!("{x:.0}")))
        .unwrap_or_else(|| "-".to_owned())
}

/// The KPI report (kpis.md shape) as tables.
pub fn print_kpis(report: &Value) {
    let empty = Vec::new();
    let daily = report["daily"].as_array().unwrap_or(&empty);
    if daily.is_empty() {
        outln!("no sessions or orders in the range");
        return;
    }
    let rows = daily.iter().map(|d| {
        [
            d["date"].as_str().unwrap_or("-").to_owned(),
            money(&d["gmv"]),
            money(&d["net_gmv"]),
            money(&d["revenue"]),
            int(&d["orders"]),
            money(&d["aov"]),
            int(&d["sessions"]),
            format!("{}/{}", int(&d["new_users"]), int(&d["returning_users"])),
            pct(&d["cvr"]),
            pct(&d["bounce_rate"]),
            pct(&d["cart_abandonment_rate"]),
            pct(&d["search_usage"]),
            pct(&d["rec_ctr"]),
            money(&d["cac"]),
        ]
    });
    outln!(
        "{}",
        table(
            [
                "date",
                "gmv",
                "net gmv",
                "revenue",
                "orders",
                "aov",
                "sessions",
                "new/ret",
                "cvr",
                "bounce",
                "cart aband.",
                "search use",
                "rec ctr",
                "cac",
            ],
            rows,
        )
    );
    outln!("clv (historical): {}", money(&report["clv_historical"]));
    // Each leaderboard with the books' metrics over the range (`books`).
    let books: std::collections::HashMap<&str, &Value> = report["books"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(|b| Some((b["book_id"].as_str()?, b)))
        .collect();
    for (board, title) in [
        ("top_books_by_units", "top book by units"),
        ("top_books_by_gmv", "top book by gmv"),
    ] {
        let top = report[board].as_array().unwrap_or(&empty);
        if top.is_empty() {
            continue;
        }
        let rows = top.iter().map(|b| {
            let id = b["book_id"].as_str().unwrap_or("-");
            let m = books.get(id).copied().unwrap_or(&Value::Null);
            [
                id.to_owned(),
                int(&m["units_sold"]),
                money(&m["gmv"]),
                int(&m["views"]),
                pct(&m["view_to_cart_rate"]),
            ]
        });
        outln!(
            "{}",
            table([title, "units", "gmv", "views", "view→cart"], rows)
        );
    }
}

/// One line per headline figure of the whole lake, for the pipeline's closing report.
pub fn print_kpi_headline(report: &Value) {
    let Some(daily) = report["daily"].as_array() else {
        return;
    };
    let sum = |k: &str| daily.iter().filter_map(|d| d[k].as_f64()).sum::<f64>();
    let days = daily.len();
    if days == 0 {
        return;
    }
    outln!(
        "\n{} days: gmv {:.2}, net gmv {:.2}, revenue {:.2}, {} orders, {} sessions; clv {}",
        days,
        sum("gmv"),
        sum("net_gmv"),
        sum("revenue"),
        sum("orders"),
        sum("sessions"),
        money(&report["clv_historical"])
    );
}

/// Writes one line of the command's output to stdout. When the reader has gone (`quire kpis
/// --json | head`), the process ends at once with status 141, as a Unix tool killed by SIGPIPE
/// does, and cli.md's one-line reason on stderr: Rust ignores SIGPIPE, so the write fails, and
/// `println!` would panic with a multi-line message. Any other write error ends it with status
/// 1 and its reason. (The output is the command's last step: its work is done and committed.)
pub fn write_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        // Not `eprintln!`, which panics when stderr is the same closed pipe (`2>&1 | head`).
        let _ = writeln!(std::io::stderr(), "quire: writing to stdout: {e}");
        let broken = e.kind() == std::io::ErrorKind::BrokenPipe;
        std::process::exit(if broken { 141 } else { 1 });
    }
}
