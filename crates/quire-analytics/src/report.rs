//! `quire analyze report`: every analysis into one self-contained HTML page (tables, notes,
//! warnings and the SVG charts inline; no scripts, no external files).
//!
//! The report is a list of [`Entry`]s: a name and a function of the [`Dataset`]. Another crate
//! (the causal analyses) plugs its analyses in by appending its own entries to
//! [`entries`]'s list; nothing here knows the analyses by name. A failing analysis becomes a
//! section that says why, and the others still run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::output::{AnalysisResult, scalar_text};
use crate::{Dataset, Error, Result};

/// Any error an entry's function may return (each crate keeps its own error type).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The function behind an entry: one analysis with its report defaults.
pub type RunFn =
    Box<dyn Fn(&Dataset) -> std::result::Result<AnalysisResult, BoxError> + Send + Sync>;

/// One analysis of the report.
pub struct Entry {
    /// The subcommand name (`basket`, …), also the section anchor.
    pub name: &'static str,
    pub run: RunFn,
}

impl Entry {
    pub fn new(
        name: &'static str,
        run: impl Fn(&Dataset) -> std::result::Result<AnalysisResult, BoxError> + Send + Sync + 'static,
    ) -> Self {
        Entry {
            name,
            run: Box::new(run),
        }
    }
}

/// One section of the report: the result, or why there is none.
pub struct Section {
    pub name: String,
    pub outcome: std::result::Result<AnalysisResult, String>,
}

/// The analyses of this crate with their report defaults, in report order.
pub fn entries() -> Vec<Entry> {
    use crate::{abandon, basket, devices, paths, segments, sequences, top, ttp};
    vec![
        Entry::new("segments", |ds| {
            Ok(segments::run(ds, &segments::SegmentParams::default())?)
        }),
        Entry::new("top-customers", |ds| Ok(top::run(ds, 10.0, 42)?)),
        Entry::new("time-to-purchase", |ds| Ok(ttp::run(ds)?)),
        Entry::new("paths", |ds| Ok(paths::run(ds, 30)?)),
        Entry::new("after-abandon", |ds| Ok(abandon::run(ds)?)),
        Entry::new("devices", |ds| Ok(devices::run(ds)?)),
        Entry::new("basket", |ds| {
            Ok(basket::run(ds, &basket::BasketParams::report_default())?)
        }),
        Entry::new("sequences", |ds| {
            Ok(sequences::run(ds, &sequences::SequenceParams::default())?)
        }),
    ]
}

/// Runs every entry (each error is kept in its section); `progress` is told each name first.
pub fn run_entries(ds: &Dataset, entries: &[Entry], progress: &dyn Fn(&str)) -> Vec<Section> {
    entries
        .iter()
        .map(|e| {
            progress(e.name);
            let outcome = (e.run)(ds)
                .map_err(|err| err.to_string())
                .and_then(|r| r.check().map(|()| r).map_err(|err| err.to_string()));
            Section {
                name: e.name.to_owned(),
                outcome,
            }
        })
        .collect()
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Rows of each table shown in the page (all rows are in the Parquet files).
pub const HTML_MAX_ROWS: usize = 50;

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}\
td:first-child,th:first-child{text-align:left}.warn{color:#a40}.err{color:#b00}\
nav a{margin-right:1em}section{border-top:2px solid #ddd;margin-top:2em}\
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}";

/// The whole page. `facts` are shown under the title (lake, range, generated at).
pub fn render_html(
    title: &str,
    facts: &[(String, String)],
    sections: &[Section],
) -> Result<String> {
    let mut h = String::new();
    let w = |e: std::fmt::Error| Error::Internal(format!("formatting the report: {e}"));
    write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1><dl>",
        esc(title),
        esc(title)
    )
    .map_err(w)?;
    for (k, v) in facts {
        write!(h, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v)).map_err(w)?;
    }
    h.push_str("</dl><nav>");
    for s in sections {
        write!(h, "<a href=\"#{0}\">{0}</a>", esc(&s.name)).map_err(w)?;
    }
    h.push_str("</nav>");
    for s in sections {
        write!(h, "<section id=\"{}\">", esc(&s.name)).map_err(w)?;
        match &s.outcome {
            Err(e) => write!(
                h,
                "<h2>{}</h2><p class=\"err\">not computed: {}</p>",
                esc(&s.name),
                esc(e)
            )
            .map_err(w)?,
            Ok(r) => section_html(&mut h, r).map_err(w)?,
        }
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

fn section_html(h: &mut String, r: &AnalysisResult) -> std::fmt::Result {
    write!(
        h,
        "<h2>{} <small>({})</small></h2>",
        esc(&r.title),
        esc(&r.name)
    )?;
    for wmsg in &r.warnings {
        write!(h, "<p class=\"warn\">warning: {}</p>", esc(wmsg))?;
    }
    if !r.summary.is_empty() {
        h.push_str("<dl>");
        for (k, v) in &r.summary {
            write!(h, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(&scalar_text(v)))?;
        }
        h.push_str("</dl>");
    }
    for c in &r.charts {
        match c.to_svg() {
            Ok(svg) => write!(h, "<figure>{svg}</figure>")?,
            Err(e) => write!(
                h,
                "<p class=\"err\">chart {}: {}</p>",
                esc(&c.name),
                esc(&e.to_string())
            )?,
        }
    }
    for t in &r.tables {
        write!(h, "<h3>{}</h3><table><tr>", esc(&t.title))?;
        for c in &t.columns {
            write!(h, "<th>{}</th>", esc(&c.name))?;
        }
        h.push_str("</tr>");
        for i in 0..t.rows().min(HTML_MAX_ROWS) {
            h.push_str("<tr>");
            for cell in t.cells(i) {
                write!(h, "<td>{}</td>", esc(&cell))?;
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
        if t.rows() > HTML_MAX_ROWS {
            write!(
                h,
                "<p>{} more rows in {}.{}.parquet</p>",
                t.rows() - HTML_MAX_ROWS,
                esc(&r.name),
                esc(&t.name)
            )?;
        }
    }
    for n in &r.notes {
        write!(h, "<p><em>{}</em></p>", esc(n))?;
    }
    Ok(())
}

/// Writes `DIR/report.html` and every section's tables and charts (`AnalysisResult::write_out`)
/// into DIR; returns the page's path.
pub fn write_report(
    dir: &Path,
    title: &str,
    facts: &[(String, String)],
    sections: &[Section],
) -> Result<PathBuf> {
    let html = render_html(title, facts, sections)?;
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        action: "creating",
        path: dir.to_owned(),
        source,
    })?;
    for s in sections {
        if let Ok(r) = &s.outcome {
            r.write_out(dir)?;
        }
    }
    let path = dir.join("report.html");
    std::fs::write(&path, html).map_err(|source| Error::Io {
        action: "writing",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::{BarSeries, Chart, ChartKind};
    use crate::output::Table;

    #[test]
    fn page_is_self_contained_and_escaped() {
        let mut r = AnalysisResult::new("demo", "A <demo>");
        r.fact("n", 2);
        r.warn("small & noisy");
        r.tables
            .push(Table::new("t", "T").text("k", ["<b>"]).int("v", [1]));
        r.charts.push(Chart {
            name: "c".into(),
            title: "C".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            kind: ChartKind::Bars {
                categories: vec!["a".into()],
                series: vec![BarSeries {
                    name: "s".into(),
                    values: vec![1.0],
                    ci: None,
                }],
            },
        });
        let sections = vec![
            Section {
                name: "demo".into(),
                outcome: Ok(r),
            },
            Section {
                name: "broken".into(),
                outcome: Err("no orders in the range".into()),
            },
        ];
        let html = render_html("Report", &[("lake".into(), "/x".into())], &sections).unwrap();
        assert!(html.contains("A &lt;demo&gt;"));
        assert!(html.contains("&lt;b&gt;"));
        assert!(html.contains("<svg"));
        assert!(html.contains("small &amp; noisy"));
        assert!(html.contains("not computed: no orders in the range"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src=\""));
    }
}
