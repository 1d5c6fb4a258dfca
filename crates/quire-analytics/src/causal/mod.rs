//! The causal analyses of `quire analyze` (issue 7, part D and the `gateway` question): the
//! lake-side preparation of each and its rendering; the estimators are in quire-causal.
//!
//! - [`uplift`]: effect of a recommendation click or a review read on the order decision;
//! - [`abtest`]: the A/B definition of `contracts/cli.md` with SRM, CUPED, Welch and a
//!   sample-size check;
//! - [`gateway`]: books whose purchase as a first book raises later spend;
//! - [`promotion`]: difference-in-differences of a promotion and its cannibalization.

pub mod abtest;
pub mod gateway;
pub mod promotion;
pub mod uplift;

use polars::prelude::*;
use quire_causal::effects::{Interval, Report};

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::output::{AnalysisResult, Table};
use crate::{Error, Result};

impl From<quire_causal::Error> for Error {
    fn from(e: quire_causal::Error) -> Self {
        Error::NoAnswer(e.to_string())
    }
}

/// Bootstrap settings shared by the analyses that resample.
#[derive(Debug, Clone, Copy)]
pub struct Resampling {
    pub replicates: usize,
    pub seed: u64,
}

impl Default for Resampling {
    fn default() -> Self {
        Resampling {
            replicates: 200,
            seed: 20_261_125,
        }
    }
}

/// A column as f64 (nulls as 0).
pub(crate) fn f64s(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let s = df.column(name)?.cast(&DataType::Float64)?;
    Ok(s.f64()?.iter().map(|v| v.unwrap_or(0.0)).collect())
}

/// A boolean column (nulls as false).
pub(crate) fn bools(df: &DataFrame, name: &str) -> Result<Vec<bool>> {
    Ok(df
        .column(name)?
        .bool()?
        .iter()
        .map(|v| v.unwrap_or(false))
        .collect())
}

/// A string column (nulls as "").
pub(crate) fn strs(df: &DataFrame, name: &str) -> Result<Vec<String>> {
    let s = df.column(name)?.cast(&DataType::String)?;
    Ok(s.str()?
        .iter()
        .map(|v| v.unwrap_or("").to_owned())
        .collect())
}

/// An i64 column (nulls as 0).
pub(crate) fn i64s(df: &DataFrame, name: &str) -> Result<Vec<i64>> {
    let s = df.column(name)?.cast(&DataType::Int64)?;
    Ok(s.i64()?.iter().map(|v| v.unwrap_or(0)).collect())
}

/// 0/1 indicator columns for a categorical variable, one per level except the most common (the
/// reference level), named `<prefix>=<level>`; levels with fewer than `min_count` rows are
/// pooled into the reference.
pub(crate) fn dummies(
    prefix: &str,
    values: &[String],
    min_count: usize,
) -> Vec<(String, Vec<f64>)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for v in values {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let reference = counts
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(k, _)| *k)
        .unwrap_or("");
    counts
        .iter()
        .filter(|(k, n)| **k != reference && **n >= min_count)
        .map(|(k, _)| {
            let label = if k.is_empty() { "(none)" } else { k };
            (
                format!("{prefix}={label}"),
                values.iter().map(|v| f64::from(u8::from(v == k))).collect(),
            )
        })
        .collect()
}

/// The estimates table (one row per method) of an effect report.
pub(crate) fn estimates_table(name: &str, title: &str, r: &Report, decimals: usize) -> Table {
    let rows: [(&str, &Interval); 4] = [
        ("naive difference", &r.naive),
        ("regression adjustment", &r.regression),
        ("inverse propensity weighting", &r.ipw),
        ("doubly robust (AIPW)", &r.aipw),
    ];
    Table::new(name, title)
        .text("method", rows.iter().map(|(m, _)| *m))
        .float("estimate", rows.iter().map(|(_, i)| i.estimate), decimals)
        .opt_float("se", rows.iter().map(|(_, i)| i.se).collect(), decimals)
        .opt_float(
            "ci95_low",
            rows.iter().map(|(_, i)| i.ci95.map(|c| c[0])).collect(),
            decimals,
        )
        .opt_float(
            "ci95_high",
            rows.iter().map(|(_, i)| i.ci95.map(|c| c[1])).collect(),
            decimals,
        )
        .opt_float(
            "p_value",
            rows.iter().map(|(_, i)| i.p_value()).collect(),
            4,
        )
}

/// The balance table (standardized mean differences before and after weighting).
pub(crate) fn balance_table(name: &str, r: &Report) -> Table {
    let b = &r.balance;
    Table::new(
        name,
        "covariate balance: standardized mean differences (|SMD| < 0.1 is balanced)",
    )
    .text("covariate", b.iter().map(|x| x.covariate.clone()))
    .float("mean_treated", b.iter().map(|x| x.mean_treated), 4)
    .float("mean_control", b.iter().map(|x| x.mean_control), 4)
    .opt_float("smd_before", b.iter().map(|x| x.smd_before).collect(), 3)
    .opt_float("smd_after", b.iter().map(|x| x.smd_after).collect(), 3)
}

/// Overlap figures of a report as summary facts, and warnings for imbalance left after weighting.
pub(crate) fn overlap_facts(res: &mut AnalysisResult, prefix: &str, r: &Report) {
    let o = &r.overlap;
    res.fact(&format!("{prefix}treated"), r.treated as u64);
    res.fact(&format!("{prefix}control"), r.control as u64);
    res.fact(
        &format!("{prefix}propensity_treated_p05_p95"),
        serde_json::json!([o.treated.p05, o.treated.p95]),
    );
    res.fact(
        &format!("{prefix}propensity_control_p05_p95"),
        serde_json::json!([o.control.p05, o.control.p95]),
    );
    res.fact(
        &format!("{prefix}trimmed_treated"),
        o.trimmed_treated as u64,
    );
    res.fact(
        &format!("{prefix}trimmed_control"),
        o.trimmed_control as u64,
    );
    res.fact(&format!("{prefix}effective_controls"), o.effective_controls);
    if r.failed_replicates > 0 {
        res.warn(format!(
            "{prefix}{} of {} bootstrap replicates could not be fitted and are left out",
            r.failed_replicates, r.replicates
        ));
    }
    for b in &r.balance {
        if let Some(s) = b.smd_after.filter(|s| s.abs() >= 0.1) {
            res.warn(format!(
                "{prefix}covariate {} is still unbalanced after weighting (SMD {s:.3})",
                b.covariate
            ));
        }
    }
}

/// A bar chart of the four estimates with their intervals.
pub(crate) fn estimates_chart(name: &str, title: &str, y_label: &str, r: &Report) -> Chart {
    let rows = [&r.naive, &r.regression, &r.ipw, &r.aipw];
    Chart {
        name: name.to_owned(),
        title: title.to_owned(),
        x_label: "method".into(),
        y_label: y_label.to_owned(),
        kind: ChartKind::Bars {
            categories: ["naive", "regression", "IPW", "AIPW"]
                .map(String::from)
                .to_vec(),
            series: vec![BarSeries {
                name: "estimate".into(),
                values: rows.iter().map(|i| i.estimate).collect(),
                ci: rows
                    .iter()
                    .map(|i| i.ci95.map(|c| (c[0], c[1])))
                    .collect::<Option<Vec<_>>>(),
            }],
        },
    }
}

/// The UTC day (days since the epoch) of an epoch-ms instant.
pub(crate) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Whether day number `day` (days since 1970-01-01, UTC) is inside `range`.
pub(crate) fn day_in_range(range: crate::DateRange, day: i64) -> bool {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let number = |d: chrono::NaiveDate| (d - epoch).num_days();
    range.from.is_none_or(|f| day >= number(f)) && range.to.is_none_or(|t| day <= number(t))
}

/// The date of a day number, for output.
pub(crate) fn date_of_day(day: i64) -> String {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    (epoch + chrono::TimeDelta::days(day))
        .format("%Y-%m-%d")
        .to_string()
}
