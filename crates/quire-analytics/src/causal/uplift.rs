//! `quire analyze uplift --treatment rec-click|review-read`: the effect of clicking a
//! recommendation (or reading a review) on the order decision, from observational sessions.
//!
//! Unit: a session that started checkout (the order decision is where both interactions act)
//! and had the chance to be treated before it (a recommendation module shown, a product page
//! viewed). Treated: the interaction happened before the session's first `checkout_started`. Outcomes:
//! the session placed an order; the session's order revenue. Pre-treatment covariates: device,
//! traffic source, logged in or anonymous, the user's first session or not, weekend, hour of day.
//! Estimates (ATT): naive, regression adjustment, IPW, AIPW with bootstrap intervals (users
//! resampled with all their sessions: a user's sessions are not independent); balance;
//! overlap and trimming; a placebo run on an outcome the treatment cannot affect (whether the
//! user's previous session converted).

use polars::prelude::*;
use quire_causal::Covariates;
use quire_causal::effects::{CausalData, Estimand, Options, Report, estimate};

use super::{
    Resampling, balance_table, bools, dummies, estimates_chart, estimates_table, f64s, i64s,
    overlap_facts, strs,
};
use crate::data::in_range;
use crate::output::{AnalysisResult, Table};
use crate::{Dataset, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    RecClick,
    ReviewRead,
}

impl Treatment {
    pub fn name(self) -> &'static str {
        match self {
            Treatment::RecClick => "rec-click",
            Treatment::ReviewRead => "review-read",
        }
    }

    /// The event that gives a session the chance to be treated.
    fn exposure_type(self) -> &'static str {
        match self {
            Treatment::RecClick => "recommendation_shown",
            Treatment::ReviewRead => "product_view",
        }
    }

    fn event_type(self) -> &'static str {
        match self {
            Treatment::RecClick => "recommendation_clicked",
            Treatment::ReviewRead => "review_viewed",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct UpliftParams {
    pub treatment: Treatment,
    /// Propensity trimming bound (rows outside [trim, 1 − trim] are dropped).
    pub trim: Option<f64>,
    pub resampling: Resampling,
}

/// The sessions that started checkout, with treatment, outcomes and covariates.
pub struct UpliftData {
    pub sessions: usize,
    pub conversion: CausalData,
    pub revenue: Vec<f64>,
    /// Whether the user's previous session placed an order (placebo outcome).
    pub placebo: Vec<f64>,
}

pub fn prepare(ds: &Dataset, treatment: Treatment) -> Result<UpliftData> {
    let ty = || col("event_type");
    let order_total = when(
        ty().eq(lit("order_placed"))
            .and(col("order_id").is_first_distinct()),
    )
    .then(col("total_price").fill_null(lit(0.0)))
    .otherwise(lit(0.0));
    let ts = || col("event_timestamp").cast(DataType::Int64);
    let first_ts = |t: &str| ts().filter(ty().eq(lit(t.to_owned()))).min();
    // Every session of the history (a user's previous session and first session may lie
    // before the range); those starting in the range are kept after.
    let df = quire_kpi::sessionize(quire_kpi::stage_events(ds.raw()))
        .with_columns([order_total.alias("_order_total")])
        .group_by([col("session_id")])
        .agg([
            col("user_id").first(),
            col("device").first(),
            col("traffic_source")
                .drop_nulls()
                .first()
                .alias("traffic_source"),
            col("session_start")
                .cast(DataType::Int64)
                .first()
                .alias("start"),
            first_ts("checkout_started").alias("checkout"),
            first_ts(treatment.event_type()).alias("treat"),
            first_ts(treatment.exposure_type()).alias("exposed"),
            ty().eq(lit("order_placed")).any(true).alias("ordered"),
            col("_order_total").sum().alias("revenue"),
        ])
        .sort(["user_id", "start"], SortMultipleOptions::default())
        .with_columns([
            col("ordered")
                .shift(lit(1))
                .over([col("user_id")])?
                .fill_null(lit(false))
                .alias("prev_ordered"),
            col("start")
                .shift(lit(1))
                .over([col("user_id")])?
                .is_null()
                .alias("first_session"),
        ])
        .filter(
            col("checkout")
                .is_not_null()
                .and(col("exposed").lt(col("checkout")))
                .and(in_range(
                    ds.range(),
                    col("start")
                        .cast(DataType::Datetime(TimeUnit::Milliseconds, None))
                        .dt()
                        .date(),
                )),
        )
        .with_columns([col("treat")
            .lt(col("checkout"))
            .fill_null(lit(false))
            .alias("treated")])
        .collect()?;
    let n = df.height();
    if n == 0 {
        return Err(Error::NoAnswer(
            "no session in the range started checkout after the chance to be treated".into(),
        ));
    }
    let users = strs(&df, "user_id")?;
    let start = i64s(&df, "start")?;
    let mut covs = dummies("device", &strs(&df, "device")?, 20);
    covs.extend(dummies("source", &strs(&df, "traffic_source")?, 20));
    covs.push((
        "anonymous".into(),
        users
            .iter()
            .map(|u| f64::from(u8::from(u.starts_with("anon_"))))
            .collect(),
    ));
    covs.push(("first_session".into(), f64s(&df, "first_session")?));
    let hour: Vec<f64> = start
        .iter()
        .map(|ms| (ms.rem_euclid(86_400_000) / 3_600_000) as f64)
        .collect();
    let angle = |h: &f64| h / 24.0 * std::f64::consts::TAU;
    covs.push((
        "hour_sin".into(),
        hour.iter().map(|h| angle(h).sin()).collect(),
    ));
    covs.push((
        "hour_cos".into(),
        hour.iter().map(|h| angle(h).cos()).collect(),
    ));
    // 1970-01-01 was a Thursday: day 2 and 3 of the week (mod 7) are Saturday and Sunday.
    covs.push((
        "weekend".into(),
        start
            .iter()
            .map(|ms| f64::from(u8::from(matches!(super::day_of(*ms).rem_euclid(7), 2 | 3))))
            .collect(),
    ));
    let x = Covariates::new(n, covs)?;
    Ok(UpliftData {
        sessions: n,
        // A user's sessions are not independent: the bootstrap resamples users.
        conversion: CausalData::new(f64s(&df, "ordered")?, bools(&df, "treated")?, x)?
            .with_clusters(user_clusters(&users))?,
        revenue: f64s(&df, "revenue")?,
        placebo: f64s(&df, "prev_ordered")?,
    })
}

/// Each row's user as a number (the cluster of its sessions).
fn user_clusters(users: &[String]) -> Vec<u32> {
    let mut ids: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    users
        .iter()
        .map(|u| {
            let next = ids.len() as u32;
            *ids.entry(u.as_str()).or_insert(next)
        })
        .collect()
}

/// The three effect reports: conversion, revenue, placebo.
pub struct UpliftReports {
    pub conversion: Report,
    pub revenue: Report,
    pub placebo: Report,
}

pub fn estimate_all(d: &UpliftData, p: &UpliftParams) -> Result<UpliftReports> {
    let opts = Options {
        estimand: Estimand::Att,
        trim: p.trim,
        ridge: 0.0,
        replicates: p.resampling.replicates,
        seed: p.resampling.seed,
    };
    let with = |y: &[f64]| {
        let data = CausalData::new(
            y.to_vec(),
            d.conversion.treated.clone(),
            d.conversion.covariates.clone(),
        )?;
        match &d.conversion.clusters {
            Some(c) => data.with_clusters(c.clone()),
            None => Ok(data),
        }
    };
    Ok(UpliftReports {
        conversion: estimate(&d.conversion, &opts)?,
        revenue: estimate(&with(&d.revenue)?, &opts)?,
        placebo: estimate(&with(&d.placebo)?, &opts)?,
    })
}

pub fn run(ds: &Dataset, p: &UpliftParams) -> Result<AnalysisResult> {
    let d = prepare(ds, p.treatment)?;
    let r = estimate_all(&d, p)?;
    let what = match p.treatment {
        Treatment::RecClick => "clicking a recommendation",
        Treatment::ReviewRead => "reading a review",
    };
    let mut res = AnalysisResult::new(
        "uplift",
        format!("Uplift of {what} before checkout on the order decision (ATT)"),
    );
    res.fact("treatment", p.treatment.name());
    res.fact("sessions", d.sessions as u64);
    res.fact("replicates", p.resampling.replicates as u64);
    res.fact("seed", p.resampling.seed);
    res.fact(
        "trim",
        p.trim
            .map_or(serde_json::Value::Null, serde_json::Value::from),
    );
    overlap_facts(&mut res, "", &r.conversion);
    res.tables.push(estimates_table(
        "conversion",
        "effect on the order probability (probability points)",
        &r.conversion,
        4,
    ));
    res.tables.push(estimates_table(
        "revenue",
        "effect on the session's order revenue",
        &r.revenue,
        2,
    ));
    res.tables.push(balance_table("balance", &r.conversion));
    let pl = &r.placebo;
    res.tables.push(
        Table::new(
            "placebo",
            "placebo: effect on whether the user's previous session ordered (should be 0)",
        )
        .text("method", ["naive difference", "doubly robust (AIPW)"])
        .float("estimate", [pl.naive.estimate, pl.aipw.estimate], 4)
        .opt_float(
            "ci95_low",
            vec![pl.naive.ci95.map(|c| c[0]), pl.aipw.ci95.map(|c| c[0])],
            4,
        )
        .opt_float(
            "ci95_high",
            vec![pl.naive.ci95.map(|c| c[1]), pl.aipw.ci95.map(|c| c[1])],
            4,
        ),
    );
    if pl.aipw.significant() {
        res.warn(
            "the placebo outcome shows an adjusted 'effect' whose 95% interval excludes 0: \
             the covariates may not capture what drives both the treatment and ordering",
        );
    }
    res.charts.push(estimates_chart(
        "conversion",
        &format!("Effect of {what} on the order probability"),
        "probability points",
        &r.conversion,
    ));
    res.note(
        "unit: sessions that started checkout after a recommendation module was shown (a product \
         page was viewed); treated: the interaction happened before the \
         first checkout_started; ATT = effect on the treated sessions; controls reweighted by \
         the propensity odds e/(1-e) from a logistic model of the covariates",
    );
    res.note(
        "intervals: percentile bootstrap, sessions resampled within each group; p-values from \
         the bootstrap standard error",
    );
    Ok(res)
}
