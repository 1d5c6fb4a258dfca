//! `quire analyze devices`: desktop vs mobile vs tablet — session conversion, bounce, funnel step
//! rates (Wilson intervals), AOV and session length (normal intervals), each device against
//! desktop (two-proportion tests), and the conversion difference stratified by traffic source
//! (Mantel–Haenszel risk difference) as a guard against Simpson's paradox: when the crude and
//! the stratified differences disagree in sign, the result warns.

use std::collections::BTreeMap;

use polars::prelude::*;

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::customers::{bools, f64s, strs};
use crate::output::{AnalysisResult, Table};
use crate::stats::{Z95, mean_ci, norm_cdf, two_proportions, wilson};
use crate::{Dataset, Error, Result};

/// One session: device, source (`(none)` when missing), funnel flags, length in minutes, and
/// the value of its orders (empty when none).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRow {
    pub device: String,
    pub source: String,
    pub product_view: bool,
    pub add_to_cart: bool,
    pub checkout: bool,
    pub order: bool,
    pub bounce: bool,
    pub minutes: f64,
    pub order_values: Vec<f64>,
}

/// A Mantel–Haenszel risk difference over strata `(k1, n1, k0, n0)`, with a 95% interval
/// (variance Σ w²·(p1q1/n1 + p0q0/n0) / (Σ w)², w = n1·n0/(n1+n0)) and a two-sided p-value.
pub fn mantel_haenszel_rd(strata: &[(u64, u64, u64, u64)]) -> Option<(f64, f64, f64, f64)> {
    let (mut num, mut den, mut var) = (0.0, 0.0, 0.0);
    for &(k1, n1, k0, n0) in strata {
        if n1 == 0 || n0 == 0 {
            continue;
        }
        let (n1f, n0f) = (n1 as f64, n0 as f64);
        let (p1, p0) = (k1 as f64 / n1f, k0 as f64 / n0f);
        let w = n1f * n0f / (n1f + n0f);
        num += w * (p1 - p0);
        den += w;
        var += w * w * (p1 * (1.0 - p1) / n1f + p0 * (1.0 - p0) / n0f);
    }
    if den == 0.0 {
        return None;
    }
    let rd = num / den;
    let se = var.sqrt() / den;
    let p = if se > 0.0 {
        2.0 * (1.0 - norm_cdf((rd / se).abs()))
    } else {
        1.0
    };
    Some((rd, rd - Z95 * se, rd + Z95 * se, p))
}

const STEPS: [&str; 5] = ["product_view", "add_to_cart", "checkout", "order", "bounce"];

fn flag(s: &SessionRow, step: &str) -> bool {
    match step {
        "product_view" => s.product_view,
        "add_to_cart" => s.add_to_cart,
        "checkout" => s.checkout,
        "order" => s.order,
        _ => s.bounce,
    }
}

/// The analysis over session rows; `reference` is the device the others are compared with.
pub fn analyze(rows: &[SessionRow], reference: &str) -> Result<AnalysisResult> {
    if rows.is_empty() {
        return Err(Error::NoAnswer("no sessions in the range".into()));
    }
    let mut by_dev: BTreeMap<&str, Vec<&SessionRow>> = BTreeMap::new();
    for s in rows {
        by_dev.entry(s.device.as_str()).or_default().push(s);
    }
    let devices: Vec<&str> = by_dev.keys().copied().collect();
    let mut r = AnalysisResult::new(
        "devices",
        "Devices: conversion, funnel, AOV and session length",
    );
    r.fact("sessions", rows.len() as u64);
    r.fact("reference_device", reference);
    // Rates with Wilson intervals, one row per device × metric.
    let (mut dv, mut metric, mut k, mut n, mut rate, mut lo, mut hi) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for d in &devices {
        let ss = &by_dev[d];
        for step in STEPS {
            let c = ss.iter().filter(|s| flag(s, step)).count() as u64;
            let (l, h) = wilson(c, ss.len() as u64, Z95);
            dv.push(d.to_string());
            metric.push(if step == "order" {
                "cvr".to_owned()
            } else {
                format!("{step}_rate")
            });
            k.push(c as i64);
            n.push(ss.len() as i64);
            rate.push(c as f64 / ss.len() as f64);
            lo.push(l);
            hi.push(h);
        }
    }
    r.tables.push(
        Table::new("rates", "Session rates by device (Wilson 95% intervals)")
            .text("device", dv)
            .text("metric", metric)
            .int("count", k)
            .int("sessions", n)
            .pct("rate", rate)
            .pct("lo", lo)
            .pct("hi", hi),
    );
    // Means: AOV over orders, session minutes over sessions.
    let (mut md, mut mm, mut mn, mut mean, mut mlo, mut mhi) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for d in &devices {
        let ss = &by_dev[d];
        let orders: Vec<f64> = ss
            .iter()
            .flat_map(|s| s.order_values.iter().copied())
            .collect();
        let minutes: Vec<f64> = ss.iter().map(|s| s.minutes).collect();
        for (name, x) in [("aov", orders), ("session_minutes", minutes)] {
            let (m, l, h) = mean_ci(&x).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
            md.push(d.to_string());
            mm.push(name.to_owned());
            mn.push(x.len() as i64);
            mean.push(m);
            mlo.push(l);
            mhi.push(h);
        }
    }
    r.tables.push(
        Table::new(
            "means",
            "AOV (per order) and session length (minutes) by device, 95% intervals",
        )
        .text("device", md)
        .text("metric", mm)
        .int("n", mn)
        .float("mean", mean, 2)
        .float("lo", mlo, 2)
        .float("hi", mhi, 2),
    );
    // Each device against the reference: crude and source-stratified conversion difference.
    let sources: Vec<&str> = {
        let mut s: Vec<&str> = rows.iter().map(|x| x.source.as_str()).collect();
        s.sort_unstable();
        s.dedup();
        s
    };
    let count = |d: &str, src: Option<&str>| {
        let ss = by_dev.get(d).map(Vec::as_slice).unwrap_or(&[]);
        let sel: Vec<&&SessionRow> = ss
            .iter()
            .filter(|s| src.is_none_or(|x| s.source == x))
            .collect();
        (
            sel.iter().filter(|s| s.order).count() as u64,
            sel.len() as u64,
        )
    };
    let mut cmp_rows = Vec::new();
    let mut strat_rows = Vec::new();
    for d in devices.iter().filter(|d| **d != reference) {
        let (k1, n1) = count(d, None);
        let (k0, n0) = count(reference, None);
        let Some(crude) = two_proportions(k1, n1, k0, n0) else {
            continue;
        };
        let strata: Vec<(u64, u64, u64, u64)> = sources
            .iter()
            .map(|s| {
                let (a, b) = count(d, Some(s));
                let (c, e) = count(reference, Some(s));
                (a, b, c, e)
            })
            .collect();
        for (s, &(a, b, c, e)) in sources.iter().zip(&strata) {
            if let Some(x) = two_proportions(a, b, c, e) {
                strat_rows.push((d.to_string(), s.to_string(), b, e, x));
            }
        }
        let mh = mantel_haenszel_rd(&strata);
        if let Some((rd, _, _, p)) = mh
            && crude.diff.signum() != rd.signum()
            && (crude.p_value < 0.05 || p < 0.05)
        {
            r.warn(format!(
                "Simpson's paradox: {d} vs {reference} converts {:+.2} points overall but {:+.2} points within traffic sources; the mix of sources drives the crude difference",
                crude.diff * 100.0,
                rd * 100.0
            ));
        }
        cmp_rows.push((d.to_string(), crude, mh));
    }
    r.tables.push(
        Table::new("comparison", format!("Conversion vs {reference}: crude and stratified by traffic source (Mantel–Haenszel)"))
            .text("device", cmp_rows.iter().map(|x| x.0.clone()))
            .float("crude_diff", cmp_rows.iter().map(|x| x.1.diff), 4)
            .float("crude_lo", cmp_rows.iter().map(|x| x.1.lo), 4)
            .float("crude_hi", cmp_rows.iter().map(|x| x.1.hi), 4)
            .float("crude_p", cmp_rows.iter().map(|x| x.1.p_value), 4)
            .opt_float("stratified_diff", cmp_rows.iter().map(|x| x.2.map(|m| m.0)).collect(), 4)
            .opt_float("stratified_lo", cmp_rows.iter().map(|x| x.2.map(|m| m.1)).collect(), 4)
            .opt_float("stratified_hi", cmp_rows.iter().map(|x| x.2.map(|m| m.2)).collect(), 4)
            .opt_float("stratified_p", cmp_rows.iter().map(|x| x.2.map(|m| m.3)).collect(), 4),
    );
    r.tables.push(
        Table::new(
            "by_source",
            format!("Conversion difference vs {reference} within each traffic source"),
        )
        .text("device", strat_rows.iter().map(|x| x.0.clone()))
        .text("source", strat_rows.iter().map(|x| x.1.clone()))
        .int("sessions", strat_rows.iter().map(|x| x.2 as i64))
        .int("reference_sessions", strat_rows.iter().map(|x| x.3 as i64))
        .float("diff", strat_rows.iter().map(|x| x.4.diff), 4)
        .float("lo", strat_rows.iter().map(|x| x.4.lo), 4)
        .float("hi", strat_rows.iter().map(|x| x.4.hi), 4)
        .float("p_value", strat_rows.iter().map(|x| x.4.p_value), 4),
    );
    let cvr: Vec<(f64, (f64, f64))> = devices
        .iter()
        .map(|d| {
            let (k, n) = count(d, None);
            (k as f64 / n as f64, wilson(k, n, Z95))
        })
        .collect();
    r.charts.push(Chart {
        name: "cvr".into(),
        title: "Session conversion by device (95% Wilson intervals)".into(),
        x_label: "device".into(),
        y_label: "conversion rate".into(),
        kind: ChartKind::Bars {
            categories: devices.iter().map(|d| d.to_string()).collect(),
            series: vec![BarSeries {
                name: "cvr".into(),
                values: cvr.iter().map(|x| x.0).collect(),
                ci: Some(cvr.iter().map(|x| x.1).collect()),
            }],
        },
    });
    r.note("a session converts when it has an order; bounce = one-event session; funnel rates are shares of sessions reaching each step; stratified difference = Mantel–Haenszel risk difference over traffic sources (sessions without a source form their own stratum)");
    Ok(r)
}

/// The lake side: the range's sessions with their orders.
pub fn prepare(ds: &Dataset) -> Result<Vec<SessionRow>> {
    let s = ds
        .sessions()?
        .lazy()
        .with_columns([((col("session_end").cast(DataType::Int64)
            - col("session_start").cast(DataType::Int64))
        .cast(DataType::Float64)
            / lit(60_000.0))
        .alias("_minutes")])
        .collect()?;
    let orders = ds.orders()?;
    let mut values: std::collections::HashMap<String, Vec<f64>> = Default::default();
    for (sid, v) in strs(&orders, "session_id")?
        .into_iter()
        .zip(f64s(&orders, "total_price")?)
    {
        if let (Some(sid), Some(v)) = (sid, v) {
            values.entry(sid).or_default().push(v);
        }
    }
    let ids = strs(&s, "session_id")?;
    let dev = strs(&s, "device")?;
    let src = strs(&s, "traffic_source")?;
    let mins = f64s(&s, "_minutes")?;
    let (pv, atc, co, ord, bo) = (
        bools(&s, "has_product_view")?,
        bools(&s, "has_add_to_cart")?,
        bools(&s, "has_checkout")?,
        bools(&s, "has_order")?,
        bools(&s, "is_bounce")?,
    );
    Ok((0..s.height())
        .map(|i| SessionRow {
            device: dev[i].clone().unwrap_or_else(|| "(none)".into()),
            source: src[i].clone().unwrap_or_else(|| "(none)".into()),
            product_view: pv[i],
            add_to_cart: atc[i],
            checkout: co[i],
            order: ord[i],
            bounce: bo[i],
            minutes: mins[i].unwrap_or(0.0),
            order_values: ids[i]
                .as_ref()
                .and_then(|x| values.get(x))
                .cloned()
                .unwrap_or_default(),
        })
        .collect())
}

pub fn run(ds: &Dataset) -> Result<AnalysisResult> {
    analyze(&prepare(ds)?, "desktop")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(device: &str, source: &str, orders: usize, n: usize) -> Vec<SessionRow> {
        (0..n)
            .map(|i| SessionRow {
                device: device.into(),
                source: source.into(),
                product_view: true,
                add_to_cart: i < orders,
                checkout: i < orders,
                order: i < orders,
                bounce: false,
                minutes: 5.0,
                order_values: if i < orders { vec![20.0] } else { vec![] },
            })
            .collect()
    }

    #[test]
    fn simpson_paradox_is_flagged() {
        // Mobile converts better within each source, worse overall (it comes mostly from the
        // low-converting source).
        let mut s = rows("mobile", "email", 18, 20); // 90%
        s.extend(rows("mobile", "social", 20, 200)); // 10%
        s.extend(rows("desktop", "email", 160, 200)); // 80%
        s.extend(rows("desktop", "social", 1, 20)); // 5%
        let r = analyze(&s, "desktop").unwrap();
        let j = r.to_json();
        let c = &j["comparison"][0];
        assert!(c["crude_diff"].as_f64().unwrap() < 0.0);
        assert!(c["stratified_diff"].as_f64().unwrap() > 0.0);
        assert!(
            r.warnings.iter().any(|w| w.contains("Simpson")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn mantel_haenszel_by_hand() {
        // One stratum: MH = the plain difference 0.6 − 0.4.
        let (rd, lo, hi, _) = mantel_haenszel_rd(&[(60, 100, 40, 100)]).unwrap();
        assert!((rd - 0.2).abs() < 1e-12);
        assert!((hi - rd - Z95 * (0.0048f64).sqrt()).abs() < 1e-9);
        assert!((rd - lo - (hi - rd)).abs() < 1e-12);
        // Two equal strata with differences 0.2 and 0.0 → 0.1.
        let (rd, ..) = mantel_haenszel_rd(&[(60, 100, 40, 100), (50, 100, 50, 100)]).unwrap();
        assert!((rd - 0.1).abs() < 1e-12);
        assert!(mantel_haenszel_rd(&[(1, 0, 1, 1)]).is_none());
    }
}
