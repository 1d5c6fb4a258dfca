//! Feature jobs over the lake and the warehouse.
//!
//! - [`ltr::build_ltr`]: the learning-to-rank set, one row per (search, shown result), graded
//!   labels from the session, point-in-time features ([`state`]), and the online feature
//!   snapshot ([`OnlineSnapshot`]) the ranking service loads;
//! - [`cf::build_cf`]: the collaborative-filtering matrices: user × book implicit feedback with
//!   confidence weights per interaction type, a time-based split, id maps, and the
//!   "bought together" co-occurrence counts;
//! - [`spec`] (crate `quire-featspec`): the feature definitions shared by training and serving.
//!
//! Definitions and file layouts: docs/features.md.

pub mod cf;
pub mod ltr;
pub mod state;

/// The feature definitions (crate `quire-featspec`, shared with the ranking service).
pub use quire_featspec as spec;

pub use cf::{CfData, CfWeights, build_cf};
pub use ltr::{LtrOutput, build_ltr};
pub use quire_featspec::OnlineSnapshot;
pub use spec::{FEATURE_NAMES, FeatureSpec, FeatureTables, N_FEATURES};

/// Errors of the feature jobs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Polars {
        what: &'static str,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error(transparent)]
    Snapshot(#[from] quire_featspec::SnapshotError),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn polars(what: &'static str, source: polars::error::PolarsError) -> Self {
        Error::Polars { what, source }
    }
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Runs several plans as one query, so that what they share (the scan, the staging) is
/// computed once.
pub(crate) fn collect_all(
    plans: Vec<polars::prelude::LazyFrame>,
) -> polars::prelude::PolarsResult<Vec<polars::prelude::DataFrame>> {
    use polars::prelude::*;
    LazyFrame::collect_all_with_engine(
        plans.into_iter().map(|lf| lf.logical_plan).collect(),
        Engine::Auto,
        OptFlags::default(),
    )
}

/// The standing orders of a frame of staged events with a `ts` column: the earliest
/// `order_placed` per `order_id` (by time, then `event_id`), as the KPI facts count them.
pub(crate) fn standing_orders(staged: polars::prelude::LazyFrame) -> polars::prelude::LazyFrame {
    use polars::prelude::*;
    staged
        .filter(col("event_type").eq(lit("order_placed")))
        .sort(["ts", "event_id"], SortMultipleOptions::default())
        .filter(col("order_id").is_first_distinct())
}

/// One row per ordered item of `orders`: the columns `keep`, then `book_id` and `quantity`;
/// items without a book are dropped.
pub(crate) fn order_units(
    orders: polars::prelude::LazyFrame,
    keep: &[&str],
) -> polars::prelude::LazyFrame {
    use polars::prelude::*;
    let item = |f: &str| col("items").struct_().field_by_name(f).alias(f);
    let mut selected: Vec<Expr> = keep.iter().map(|c| col(*c)).collect();
    selected.push(col("items"));
    let mut out: Vec<Expr> = keep.iter().map(|c| col(*c)).collect();
    out.extend([item("book_id"), item("quantity")]);
    orders
        .select(selected)
        .explode(
            cols(["items"]),
            ExplodeOptions {
                empty_as_null: false,
                keep_nulls: false,
            },
        )
        .select(out)
        .filter(col("book_id").is_not_null())
}
