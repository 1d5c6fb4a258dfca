//! `quire analyze top-customers --pct P`: the top P% of customers by spend — their share of
//! revenue and each attribute's mean as a ratio to the rest's, each with a percentile bootstrap
//! 95% interval over customers. Each resample chooses its top group again: the group is chosen
//! by spend, so an interval that took it as fixed (a delta method on the two groups as given)
//! would not cover — the top group's spend is high partly because it was picked for it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::customers::{Customer, customers};
use crate::output::{AnalysisResult, Table};
use crate::{Dataset, Error, Result};

/// Bootstrap resamples for the intervals.
pub const BOOTSTRAP: usize = 1_000;

/// Number of customers in the top `pct` percent of `n` (at least one).
pub fn top_count(n: usize, pct: f64) -> usize {
    ((n as f64 * pct / 100.0).ceil() as usize).clamp(1, n)
}

/// Share of the total held by the top `pct`% of `values`.
pub fn top_share(values: &[f64], pct: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| b.total_cmp(a));
    let total: f64 = v.iter().sum();
    if total <= 0.0 {
        return f64::NAN;
    }
    v[..top_count(v.len(), pct)].iter().sum::<f64>() / total
}

/// Percentile bootstrap 95% interval of [`top_share`] (resampling customers).
pub fn top_share_ci(values: &[f64], pct: f64, seed: u64, reps: usize) -> (f64, f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = values.len();
    let mut shares: Vec<f64> = (0..reps)
        .map(|_| {
            let s: Vec<f64> = (0..n).map(|_| values[rng.gen_range(0..n)]).collect();
            top_share(&s, pct)
        })
        .filter(|x| x.is_finite())
        .collect();
    if shares.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    shares.sort_by(f64::total_cmp);
    let q = |p: f64| shares[((shares.len() - 1) as f64 * p).round() as usize];
    (q(0.025), q(0.975))
}

/// One customer attribute compared between a group and the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeRatio {
    pub attribute: &'static str,
    pub group_mean: f64,
    pub rest_mean: f64,
    /// `group_mean / rest_mean`.
    pub ratio: f64,
    /// Its 95% interval ([`ratio_intervals`]); NaN when not computed.
    pub ci95: (f64, f64),
}

type Attr = (&'static str, fn(&Customer) -> f64);

/// The attributes compared: spend, orders, AOV, units, promo share, mobile share, recency.
const ATTRIBUTES: [Attr; 7] = [
    ("spend", |x| x.spend),
    ("orders", |x| x.orders as f64),
    ("aov", |x| x.aov),
    ("units", |x| x.units),
    ("promo_share", |x| x.promo_share),
    ("mobile_share", |x| {
        if x.mobile_share.is_nan() {
            0.0
        } else {
            x.mobile_share
        }
    }),
    ("recency_days", |x| x.recency_days),
];

fn mean_of(items: impl ExactSizeIterator<Item = f64>) -> f64 {
    let n = items.len() as f64;
    items.sum::<f64>() / n
}

/// Each attribute of `group` against `rest`: means and ratio of means (no interval).
pub fn compare(group: &[Customer], rest: &[Customer]) -> Vec<AttributeRatio> {
    ATTRIBUTES
        .iter()
        .map(|&(attribute, f)| {
            let (g, r) = (mean_of(group.iter().map(f)), mean_of(rest.iter().map(f)));
            AttributeRatio {
                attribute,
                group_mean: g,
                rest_mean: r,
                ratio: g / r,
                ci95: (f64::NAN, f64::NAN),
            }
        })
        .collect()
}

/// Percentile bootstrap 95% intervals of each attribute's ratio (in [`ATTRIBUTES`] order):
/// `reps` resamples of the customers with replacement, the top `pct`% by spend chosen again in
/// each (ties by position), the ratio of the two groups' means.
pub fn ratio_intervals(
    customers: &[Customer],
    pct: f64,
    seed: u64,
    reps: usize,
) -> Vec<(f64, f64)> {
    let n = customers.len();
    let k = top_count(n, pct);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ratios: Vec<Vec<f64>> = vec![Vec::with_capacity(reps); ATTRIBUTES.len()];
    let mut idx: Vec<usize> = vec![0; n];
    for _ in 0..reps {
        for i in idx.iter_mut() {
            *i = rng.gen_range(0..n);
        }
        idx.sort_by(|&a, &b| {
            customers[b]
                .spend
                .total_cmp(&customers[a].spend)
                .then(a.cmp(&b))
        });
        let (top, rest) = idx.split_at(k);
        if rest.is_empty() {
            continue;
        }
        for (j, &(_, f)) in ATTRIBUTES.iter().enumerate() {
            let g = mean_of(top.iter().map(|&i| f(&customers[i])));
            let r = mean_of(rest.iter().map(|&i| f(&customers[i])));
            let ratio = g / r;
            if ratio.is_finite() {
                ratios[j].push(ratio);
            }
        }
    }
    ratios
        .into_iter()
        .map(|mut v| {
            if v.is_empty() {
                return (f64::NAN, f64::NAN);
            }
            v.sort_by(f64::total_cmp);
            let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            (q(0.025), q(0.975))
        })
        .collect()
}

pub fn run(ds: &Dataset, pct: f64, seed: u64) -> Result<AnalysisResult> {
    if !(pct > 0.0 && pct < 100.0) {
        return Err(Error::Invalid(format!(
            "--pct {pct}: must be between 0 and 100 (exclusive)"
        )));
    }
    let mut c = customers(ds)?.rows;
    if c.len() < 2 {
        return Err(Error::NoAnswer(format!(
            "{} customers: need at least 2",
            c.len()
        )));
    }
    c.sort_by(|a, b| b.spend.total_cmp(&a.spend).then(a.user_id.cmp(&b.user_id)));
    let k = top_count(c.len(), pct);
    if k == c.len() {
        return Err(Error::NoAnswer(
            "the top group would hold every customer".into(),
        ));
    }
    let spend: Vec<f64> = c.iter().map(|x| x.spend).collect();
    let share = top_share(&spend, pct);
    let (lo, hi) = top_share_ci(&spend, pct, seed, BOOTSTRAP);
    let mut r = AnalysisResult::new("top-customers", format!("Top {pct}% of customers by spend"));
    r.fact("customers", c.len() as u64);
    r.fact("top_customers", k as u64);
    r.fact("revenue_share", share);
    r.fact("revenue_share_ci95", vec![lo, hi]);
    r.fact("seed", seed);
    let (top, rest) = c.split_at(k);
    let mut rows = compare(top, rest);
    for (row, ci) in rows
        .iter_mut()
        .zip(ratio_intervals(&c, pct, seed, BOOTSTRAP))
    {
        row.ci95 = ci;
    }
    r.tables.push(
        Table::new(
            "attributes",
            "Top group vs the rest: mean per customer and ratio",
        )
        .text("attribute", rows.iter().map(|x| x.attribute))
        .float("top_mean", rows.iter().map(|x| x.group_mean), 3)
        .float("rest_mean", rows.iter().map(|x| x.rest_mean), 3)
        .float("ratio", rows.iter().map(|x| x.ratio), 3)
        .float("ratio_lo", rows.iter().map(|x| x.ci95.0), 3)
        .float("ratio_hi", rows.iter().map(|x| x.ci95.1), 3),
    );
    r.charts.push(Chart {
        name: "ratios".into(),
        title: format!("Top {pct}% vs the rest (ratio of means, 95% CI)"),
        x_label: "attribute".into(),
        y_label: "ratio".into(),
        kind: ChartKind::Bars {
            categories: rows.iter().map(|x| x.attribute.to_owned()).collect(),
            series: vec![BarSeries {
                name: "ratio".into(),
                values: rows.iter().map(|x| x.ratio).collect(),
                ci: Some(rows.iter().map(|x| x.ci95).collect()),
            }],
        },
    });
    r.note(format!(
        "intervals: percentile bootstrap over customers, {BOOTSTRAP} resamples, seed {seed}, the top group chosen again in each resample"
    ));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_and_ratio_by_hand() {
        // 10 customers: one spends 91, nine spend 1 → top 10% holds 91/100.
        let mut v = vec![1.0; 9];
        v.push(91.0);
        assert_eq!(top_count(10, 10.0), 1);
        assert_eq!(top_count(11, 10.0), 2);
        assert!((top_share(&v, 10.0) - 0.91).abs() < 1e-12);
        let (lo, hi) = top_share_ci(&v, 10.0, 1, 500);
        assert!(lo <= 0.91 && 0.91 <= hi + 1e-12, "{lo} {hi}");
    }
}
