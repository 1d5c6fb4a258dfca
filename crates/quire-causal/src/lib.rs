//! Causal-inference and experiment estimators over plain tables (vectors and named covariate
//! columns), with no dependency on the lake or Polars so they can be tested on published data.
//!
//! - [`logistic`]: propensity scores by maximum-likelihood logistic regression.
//! - [`ols`]: (weighted) least squares for regression adjustment.
//! - [`effects`]: naive difference, regression adjustment, normalized IPW and doubly robust AIPW
//!   for the ATT or the ATE, with overlap/trimming, covariate balance (standardized mean
//!   differences before and after weighting), seeded bootstrap CIs (rayon) and a placebo run.
//! - [`stats`]: Welch's t-test, two-proportion tests, the A/B definitions of `contracts/cli.md`
//!   (unpooled CI, pooled z p-value, sample-ratio-mismatch chi-square), CUPED, sample size.
//! - [`did`]: difference-in-differences on a unit × period panel with a pre-trend check.
//! - [`multiple`]: Benjamini–Hochberg adjusted p-values.

pub mod did;
pub mod effects;
pub mod logistic;
mod matrix;
pub mod multiple;
pub mod ols;
pub mod stats;

pub use matrix::Covariates;

/// Errors of the estimators: bad input is named, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: no rows")]
    Empty { what: String },
    #[error("{what}: expected {expected} values, got {got}")]
    Length {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("{what}: value at row {row} is not finite ({value})")]
    NotFinite {
        what: String,
        row: usize,
        value: f64,
    },
    #[error(
        "{what}: needs at least {needed} rows in each group, got {treated} treated and {control} control"
    )]
    TooFewRows {
        what: String,
        needed: usize,
        treated: usize,
        control: usize,
    },
    #[error("invalid argument {name}: {reason}")]
    Argument { name: &'static str, reason: String },
    #[error(
        "logistic regression did not converge in {iterations} Newton steps (the groups may be perfectly separated by the covariates)"
    )]
    NotConverged { iterations: usize },
    #[error("{what}: {reason}")]
    Degenerate { what: String, reason: String },
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn check_finite(what: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(row) => Err(Error::NotFinite {
            what: what.to_string(),
            row,
            value: values[row],
        }),
        None => Ok(()),
    }
}

pub(crate) fn check_len(what: &str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Length {
            what: what.to_string(),
            expected,
            got,
        })
    }
}

pub(crate) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample variance (n − 1 denominator); 0 for fewer than two values.
pub(crate) fn variance(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64
}
