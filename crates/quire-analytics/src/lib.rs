//! quire-analytics: the deep-dive questions of `quire analyze` (issue 7, parts A–C), their
//! estimators, and the output layer every analysis shares.
//!
//! - [`Dataset`]: a date range of the lake, staged and sessionized by quire-kpi's functions
//!   (no test traffic, duplicates once, sessions as `contracts/kpis.md` defines them);
//! - [`output`]: an [`AnalysisResult`] is named [`Table`]s of typed columns + [`Chart`]s +
//!   summary figures, notes and warnings; printed for people, as one JSON document, or written
//!   as Parquet tables and SVG charts;
//! - [`report`]: `quire analyze report`, every analysis in one self-contained HTML page; an
//!   analysis joins the report by adding a [`report::Entry`] to the list;
//! - the analyses, each a library function over plain tables (tested on published data and
//!   hand-computed cases) plus its lake-side preparation: [`segments`] (k-means, BG/NBD +
//!   Gamma-Gamma CLV in [`clv`]), [`top`], [`ttp`] (Kaplan–Meier), [`paths`], [`abandon`],
//!   [`devices`], [`basket`] (FP-growth) and [`sequences`] (transitions, PrefixSpan);
//! - [`causal`]: the causal analyses (`gateway`, `uplift`, `abtest`, `promotion`) over the
//!   estimators of quire-causal;
//! - [`stats`]: the small statistics they share (Wilson, two-proportion tests,
//!   Benjamini–Hochberg, Kaplan–Meier).

pub mod abandon;
pub mod basket;
pub mod causal;
pub mod chart;
pub mod clv;
pub mod customers;
mod data;
pub mod devices;
pub mod output;
pub mod paths;
pub mod report;
pub mod segments;
pub mod sequences;
pub mod stats;
pub mod top;
pub mod ttp;

pub use chart::{BarSeries, Chart, ChartKind, LineSeries};
pub use data::Dataset;
pub use output::{AnalysisResult, Fmt, Table, Values};
pub use quire_kpi::DateRange;

/// The errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
    #[error(transparent)]
    Kpi(#[from] quire_kpi::Error),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Bad input: names what and where.
    #[error("{0}")]
    Invalid(String),
    /// An estimator could not produce an answer from this data (too few rows, no convergence).
    #[error("{0}")]
    NoAnswer(String),
    #[error("chart: {0}")]
    Chart(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;
