//! `quire analyze time-to-purchase`: first visit → first purchase → second purchase, by
//! Kaplan–Meier ([`crate::stats::kaplan_meier`]) so users who have not purchased (yet) count as
//! censored at the end of observation. The cohort is the users whose first session ever starts
//! inside the range; orders up to the end of the range's last session count.

use std::collections::HashMap;

use polars::prelude::*;

use crate::chart::{Chart, ChartKind, LineSeries};
use crate::customers::DAY_MS;
use crate::output::{AnalysisResult, Table};
use crate::stats::{KmFit, kaplan_meier};
use crate::{Dataset, Error, Result};

/// Time-to-event observations of the two stages, in days.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stages {
    pub to_first: Vec<(f64, bool)>,
    pub to_second: Vec<(f64, bool)>,
}

/// The two stages from each user's first visit and order times (epoch ms, any order), with
/// observation ending at `end`. Orders after `end` are not seen.
pub fn stages(users: &[(i64, Vec<i64>)], end: i64) -> Stages {
    let mut s = Stages::default();
    for (visit, orders) in users {
        let mut o: Vec<i64> = orders
            .iter()
            .copied()
            .filter(|&t| t <= end && t >= *visit)
            .collect();
        o.sort_unstable();
        let d = |a: i64, b: i64| (b - a) as f64 / DAY_MS;
        match o.first() {
            None => s.to_first.push((d(*visit, end), false)),
            Some(&first) => {
                s.to_first.push((d(*visit, first), true));
                match o.get(1) {
                    Some(&second) => s.to_second.push((d(first, second), true)),
                    None => s.to_second.push((d(first, end), false)),
                }
            }
        }
    }
    s
}

/// Days at which the curves are tabulated.
pub const GRID_DAYS: [f64; 10] = [1.0 / 24.0, 1.0, 2.0, 3.0, 7.0, 14.0, 21.0, 28.0, 60.0, 90.0];

/// Ŝ(t) and its interval at `t` (the last step at or before t; 1 before the first).
pub fn at(km: &KmFit, t: f64) -> (f64, f64, f64) {
    km.steps
        .iter()
        .take_while(|s| s.t <= t)
        .last()
        .map_or((1.0, 1.0, 1.0), |s| (s.surv, s.lo, s.hi))
}

fn km_table(name: &str, title: &str, km: &KmFit) -> Table {
    let horizon = km.steps.last().map_or(0.0, |s| s.t);
    let grid: Vec<f64> = GRID_DAYS
        .iter()
        .copied()
        .filter(|&t| t <= horizon)
        .collect();
    let v: Vec<(f64, f64, f64)> = grid.iter().map(|&t| at(km, t)).collect();
    let risk: Vec<i64> = grid
        .iter()
        .map(|&t| {
            km.steps
                .iter()
                .find(|s| s.t > t)
                .map_or(0, |s| s.at_risk as i64)
        })
        .collect();
    Table::new(name, title)
        .float("days", grid.iter().copied(), 2)
        .int("still_at_risk", risk)
        .pct("purchased", v.iter().map(|x| 1.0 - x.0))
        .pct("lo", v.iter().map(|x| 1.0 - x.2))
        .pct("hi", v.iter().map(|x| 1.0 - x.1))
}

/// The analysis over prepared stages.
pub fn analyze(s: &Stages) -> Result<AnalysisResult> {
    if s.to_first.is_empty() {
        return Err(Error::NoAnswer(
            "no user's first visit is in the range".into(),
        ));
    }
    let first = kaplan_meier(&s.to_first);
    let second = kaplan_meier(&s.to_second);
    let mut r = AnalysisResult::new(
        "time-to-purchase",
        "Time to first and second purchase (Kaplan–Meier)",
    );
    let stage_rows = [
        ("first visit → first purchase", &first),
        ("first → second purchase", &second),
    ];
    r.tables.push(
        Table::new(
            "medians",
            "Median days with 95% intervals (null = not reached)",
        )
        .text("stage", stage_rows.iter().map(|x| x.0))
        .int("users", stage_rows.iter().map(|x| x.1.n as i64))
        .int("events", stage_rows.iter().map(|x| x.1.events as i64))
        .int("censored", stage_rows.iter().map(|x| x.1.censored as i64))
        .opt_float(
            "median_days",
            stage_rows.iter().map(|x| x.1.median).collect(),
            2,
        )
        .opt_float(
            "median_lo",
            stage_rows.iter().map(|x| x.1.median_lo).collect(),
            2,
        )
        .opt_float(
            "median_hi",
            stage_rows.iter().map(|x| x.1.median_hi).collect(),
            2,
        ),
    );
    r.tables.push(km_table(
        "first_purchase_curve",
        "Share who purchased, by days since the first visit (KM, 95%)",
        &first,
    ));
    r.tables.push(km_table(
        "second_purchase_curve",
        "Share who purchased again, by days since the first purchase (KM, 95%)",
        &second,
    ));
    let curve = |name: &str, km: &KmFit| LineSeries {
        name: name.into(),
        points: std::iter::once((0.0, 1.0))
            .chain(
                km.steps
                    .iter()
                    .filter(|s| s.events > 0)
                    .map(|s| (s.t, s.surv)),
            )
            .collect(),
        step: true,
    };
    r.charts.push(Chart {
        name: "survival".into(),
        title: "Share of users who have not purchased yet".into(),
        x_label: "days".into(),
        y_label: "not yet purchased".into(),
        kind: ChartKind::Lines {
            series: vec![
                curve("to first purchase", &first),
                curve("to second purchase", &second),
            ],
        },
    });
    if first.median.is_none() {
        r.note("fewer than half of the cohort purchased within the observation: the median to the first purchase is not reached (the KM curve stays above one half)");
    }
    r.note("Kaplan–Meier with Greenwood variance and log–log intervals; median interval where the pointwise bands cross one half (Brookmeyer–Crowley)");
    if first.events < 10 {
        r.warn(format!(
            "only {} first purchases: the curve is very uncertain",
            first.events
        ));
    }
    Ok(r)
}

/// The lake side: the cohort and its orders, censored at the end of the range.
pub fn prepare(ds: &Dataset) -> Result<Stages> {
    let end = ds
        .end_ms()?
        .ok_or_else(|| Error::NoAnswer("no sessions in the range".into()))?;
    Ok(stages(&cohort(ds)?, end))
}

/// The cohort of the range (users whose first session ever starts in it): each user's first
/// visit and all their order times (epoch ms, the whole lake).
pub fn cohort(ds: &Dataset) -> Result<Vec<(i64, Vec<i64>)>> {
    let first = ds
        .sessions()?
        .lazy()
        .filter(col("is_first_session"))
        .select([
            col("user_id"),
            col("session_start").cast(DataType::Int64).alias("visit"),
        ])
        .collect()?;
    let orders = ds
        .models()
        .fct_orders
        .clone()
        .select([
            col("user_id"),
            col("order_timestamp").cast(DataType::Int64).alias("t"),
        ])
        .collect()?;
    let mut by_user: HashMap<&str, Vec<i64>> = HashMap::new();
    let ou = orders.column("user_id")?.str()?.clone();
    let ot = orders.column("t")?.i64()?.clone();
    for (u, t) in ou.iter().zip(ot.iter()) {
        if let (Some(u), Some(t)) = (u, t) {
            by_user.entry(u).or_default().push(t);
        }
    }
    let fu = first.column("user_id")?.str()?.clone();
    let fv = first.column("visit")?.i64()?.clone();
    let users: Vec<(i64, Vec<i64>)> = fu
        .iter()
        .zip(fv.iter())
        .filter_map(|(u, v)| Some((v?, by_user.get(u?).cloned().unwrap_or_default())))
        .collect();
    Ok(users)
}

pub fn run(ds: &Dataset) -> Result<AnalysisResult> {
    analyze(&prepare(ds)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_censor_at_the_end() {
        let d = DAY_MS as i64;
        let users = vec![
            (0, vec![2 * d, 5 * d]), // first after 2 days, second 3 days later
            (0, vec![d]),            // first after 1 day, censored 9 days later
            (0, vec![]),             // censored at 10 days
            (0, vec![11 * d]),       // after the end: not seen, censored
        ];
        let s = stages(&users, 10 * d);
        assert_eq!(
            s.to_first,
            vec![(2.0, true), (1.0, true), (10.0, false), (10.0, false)]
        );
        assert_eq!(s.to_second, vec![(3.0, true), (9.0, false)]);
        let r = analyze(&s).unwrap();
        let j = r.to_json();
        assert_eq!(j["medians"][0]["events"], 2);
        assert_eq!(j["medians"][0]["censored"], 2);
        // KM: S(1) = 3/4, S(2) = 3/4·2/3 = 1/2 → median 2 days.
        assert_eq!(j["medians"][0]["median_days"], 2.0);
    }
}
