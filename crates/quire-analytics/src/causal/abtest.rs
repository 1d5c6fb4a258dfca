//! `quire analyze abtest --experiment E --control V`: exactly the definition of
//! `contracts/cli.md` (user variant from the earliest event carrying E, mixed users left out,
//! both over the whole history; `--from`/`--to` select the users first exposed in the range,
//! conversion = an order at or after exposure, unpooled CI, pooled z-test, SRM chi-square), plus
//! revenue per user with Welch's test, CUPED with the users' pre-exposure spend and a warning
//! when the test is read before its planned sample size.

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;
use quire_causal::stats::{Arm, cuped, sample_size_per_arm, srm_p_value, two_proportions, welch};
use serde_json::{Value, json};

use super::{f64s, i64s, strs};
use crate::chart::{BarSeries, Chart, ChartKind};
use crate::data::in_range;
use crate::output::{AnalysisResult, Table};
use crate::{Dataset, DateRange, Error, Result};

#[derive(Debug, Clone)]
pub struct AbParams {
    pub experiment: String,
    pub control: String,
    /// Planned users per variant; when `None`, the users needed to detect `mde` (relative
    /// lift of the control's conversion) at α = 0.05 with 80% power.
    pub planned_users: Option<u64>,
    pub mde: f64,
}

/// One user of the experiment.
#[derive(Debug, Clone)]
struct User {
    variant: String,
    exposure: i64,
    mixed: bool,
    converted: bool,
    revenue: f64,
    pre_spend: f64,
}

pub fn run(ds: &Dataset, p: &AbParams) -> Result<AnalysisResult> {
    if p.experiment.is_empty() || p.control.is_empty() {
        return Err(Error::Invalid(
            "--experiment and --control must not be empty".into(),
        ));
    }
    if p.mde.is_nan() || p.mde <= 0.0 {
        return Err(Error::Invalid(format!("--mde must be > 0, got {}", p.mde)));
    }
    let key = serde_json::to_string(&p.experiment).map_err(|e| Error::Internal(e.to_string()))?;
    // Every exposure of the history: a user's variant and exposure are those of their
    // earliest event ever (cli.md), and a later event with another variant makes them mixed.
    let exposures = quire_kpi::stage_events(ds.raw())
        .filter(col("experiments").str().contains_literal(lit(key)))
        .select([
            col("user_id"),
            col("event_timestamp").cast(DataType::Int64).alias("ts"),
            col("event_id"),
            col("experiments"),
        ])
        .sort(["ts", "event_id"], SortMultipleOptions::default())
        .collect()?;
    let (uid, ts, exps) = (
        strs(&exposures, "user_id")?,
        i64s(&exposures, "ts")?,
        strs(&exposures, "experiments")?,
    );
    let mut users: HashMap<String, User> = HashMap::new();
    for i in 0..exposures.height() {
        let parsed: Value = serde_json::from_str(&exps[i]).map_err(|e| {
            Error::Invalid(format!("experiments of an event of user {}: {e}", uid[i]))
        })?;
        let Some(variant) = parsed.get(&p.experiment).and_then(Value::as_str) else {
            continue;
        };
        match users.get_mut(&uid[i]) {
            Some(u) => u.mixed |= u.variant != variant,
            None => {
                users.insert(
                    uid[i].clone(),
                    User {
                        variant: variant.to_owned(),
                        exposure: ts[i],
                        mixed: false,
                        converted: false,
                        revenue: 0.0,
                        pre_spend: 0.0,
                    },
                );
            }
        }
    }
    // The range picks the users first exposed inside it; their spend before exposure (the
    // CUPED covariate) is then truly before the test, whatever `--from` is.
    users.retain(|_, u| super::day_in_range(ds.range(), super::day_of(u.exposure)));
    if users.is_empty() {
        return Err(Error::NoAnswer(format!(
            "no user was first exposed to experiment {} in the range",
            p.experiment
        )));
    }
    // Orders of the whole history: those before exposure are the CUPED covariate (spend before
    // the test); those at or after it, up to the end of the range, are the outcome.
    let orders = ds
        .models()
        .fct_orders
        .clone()
        .select([
            col("user_id"),
            col("order_timestamp").cast(DataType::Int64).alias("ts"),
            col("date"),
            col("total_price"),
        ])
        .with_columns([in_range(
            DateRange {
                from: None,
                to: ds.range().to,
            },
            col("date"),
        )
        .alias("_until_end")])
        .collect()?;
    let (ou, ots, ototal, until_end) = (
        strs(&orders, "user_id")?,
        i64s(&orders, "ts")?,
        f64s(&orders, "total_price")?,
        super::bools(&orders, "_until_end")?,
    );
    for i in 0..orders.height() {
        if let Some(u) = users.get_mut(&ou[i]) {
            if ots[i] < u.exposure {
                u.pre_spend += ototal[i];
            } else if until_end[i] {
                u.converted = true;
                u.revenue += ototal[i];
            }
        }
    }
    analyze(users.into_values(), p)
}

struct Variant {
    users: u64,
    conversions: u64,
    revenue: Vec<f64>,
    pre_spend: Vec<f64>,
}

fn analyze(users: impl Iterator<Item = User>, p: &AbParams) -> Result<AnalysisResult> {
    let mut mixed = 0u64;
    let mut variants: BTreeMap<String, Variant> = BTreeMap::new();
    for u in users {
        if u.mixed {
            mixed += 1;
            continue;
        }
        let v = variants.entry(u.variant).or_insert(Variant {
            users: 0,
            conversions: 0,
            revenue: Vec::new(),
            pre_spend: Vec::new(),
        });
        v.users += 1;
        v.conversions += u64::from(u.converted);
        v.revenue.push(u.revenue);
        v.pre_spend.push(u.pre_spend);
    }
    let Some(control) = variants.get(&p.control) else {
        return Err(Error::Invalid(format!(
            "control variant {} not seen in experiment {} (variants: {})",
            p.control,
            p.experiment,
            variants.keys().cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    let c_arm = Arm {
        users: control.users,
        conversions: control.conversions,
    };
    let mut res = AnalysisResult::new(
        "abtest",
        format!("A/B test {} (control {})", p.experiment, p.control),
    );
    res.fact("experiment", p.experiment.clone());
    res.fact("control", p.control.clone());
    res.fact("mixed_users", mixed);
    let counts: Vec<u64> = variants.values().map(|v| v.users).collect();
    let srm = if counts.len() >= 2 {
        Some(srm_p_value(&counts)?)
    } else {
        None
    };
    let mut vjson = serde_json::Map::new();
    for (name, v) in &variants {
        vjson.insert(
            name.clone(),
            json!({
                "users": v.users,
                "conversions": v.conversions,
                "cvr": v.conversions as f64 / v.users as f64,
                "revenue_per_user": v.revenue.iter().sum::<f64>() / v.users as f64,
            }),
        );
    }
    res.fact("variants", Value::Object(vjson));
    res.fact("srm_p_value", srm.map_or(Value::Null, Value::from));
    if let Some(s) = srm.filter(|s| *s < 0.001) {
        res.warn(format!(
            "sample ratio mismatch: user counts {counts:?} are unlikely under an equal split \
             (chi-square p = {s:.2e}); the assignment or the logging may be broken, so the \
             comparison may be biased"
        ));
    }
    let baseline = c_arm.conversions as f64 / c_arm.users as f64;
    let planned = match p.planned_users {
        Some(n) => Some(n),
        None if baseline > 0.0 && baseline * (1.0 + p.mde) < 1.0 => {
            Some(sample_size_per_arm(baseline, baseline * p.mde, 0.05, 0.8)?)
        }
        None => None,
    };
    res.fact(
        "planned_users_per_variant",
        planned.map_or(Value::Null, Value::from),
    );
    if let Some(n) = planned
        && let Some(min) = counts.iter().min().filter(|m| **m < n)
    {
        res.warn(format!(
            "read before the planned sample size: the smallest variant has {min} users of the \
             {n} planned; stopping early on a significant result inflates the false-positive \
             rate (peeking)"
        ));
    }
    let mut comparisons = serde_json::Map::new();
    let mut rows: Vec<(String, [f64; 12])> = Vec::new();
    for (name, v) in variants.iter().filter(|(n, _)| **n != p.control) {
        let t = two_proportions(
            Arm {
                users: v.users,
                conversions: v.conversions,
            },
            c_arm,
        )?;
        // The revenue tests go beyond the contract's figures: when they cannot be computed
        // (an arm under 2 users, no variance in either) their fields are null, with a
        // warning, and the conversion comparison stands.
        let rev = welch(&v.revenue, &control.revenue)
            .map_err(|e| res.warn(format!("{name}: revenue per user not tested ({e})")))
            .ok();
        let cu = cuped(
            (&v.revenue, &v.pre_spend),
            (&control.revenue, &control.pre_spend),
        )
        .map_err(|e| res.warn(format!("{name}: no CUPED revenue test ({e})")))
        .ok();
        comparisons.insert(
            name.clone(),
            json!({
                "abs_diff": t.abs_diff,
                "rel_lift": t.rel_lift,
                "ci95": t.ci95,
                "p_value": t.p_value,
                "revenue_per_user_diff": rev.as_ref().map(|r| r.diff),
                "revenue_ci95": rev.as_ref().map(|r| r.ci95),
                "revenue_p_value": rev.as_ref().map(|r| r.p_value),
                "cuped_theta": cu.as_ref().map(|c| c.theta),
                "cuped_variance_reduction": cu.as_ref().map(|c| c.variance_reduction),
                "cuped_revenue_diff": cu.as_ref().map(|c| c.adjusted.diff),
                "cuped_revenue_ci95": cu.as_ref().map(|c| c.adjusted.ci95),
                "cuped_revenue_p_value": cu.as_ref().map(|c| c.adjusted.p_value),
            }),
        );
        let or_nan = |x: Option<f64>| x.unwrap_or(f64::NAN);
        rows.push((
            name.clone(),
            [
                t.abs_diff,
                or_nan(t.rel_lift),
                t.ci95[0],
                t.ci95[1],
                t.p_value,
                or_nan(rev.as_ref().map(|r| r.diff)),
                or_nan(rev.as_ref().map(|r| r.ci95[0])),
                or_nan(rev.as_ref().map(|r| r.ci95[1])),
                or_nan(rev.as_ref().map(|r| r.p_value)),
                or_nan(cu.as_ref().map(|c| c.adjusted.diff)),
                or_nan(cu.as_ref().map(|c| c.adjusted.p_value)),
                or_nan(cu.as_ref().map(|c| c.variance_reduction)),
            ],
        ));
    }
    res.fact("comparisons", Value::Object(comparisons));
    if variants
        .values()
        .all(|v| v.pre_spend.iter().all(|x| *x == 0.0))
    {
        res.warn(
            "no user spent anything before exposure, so CUPED cannot reduce the variance: \
             analyze the users first exposed later, when they have a history (--from)",
        );
    }
    let names: Vec<&String> = variants.keys().collect();
    res.tables.push(
        Table::new("arms", "users, conversion and revenue per variant")
            .text("variant", names.iter().map(|s| s.as_str()))
            .int("users", variants.values().map(|v| v.users as i64))
            .int(
                "conversions",
                variants.values().map(|v| v.conversions as i64),
            )
            .pct(
                "cvr",
                variants
                    .values()
                    .map(|v| v.conversions as f64 / v.users as f64),
            )
            .float(
                "revenue_per_user",
                variants
                    .values()
                    .map(|v| v.revenue.iter().sum::<f64>() / v.users as f64),
                3,
            ),
    );
    let col = |k: usize| rows.iter().map(move |r| r.1[k]);
    res.tables.push(
        Table::new("tests", "each variant against the control")
            .text("variant", rows.iter().map(|r| r.0.clone()))
            .float("abs_diff", col(0), 5)
            .pct("rel_lift", col(1))
            .float("ci95_low", col(2), 5)
            .float("ci95_high", col(3), 5)
            .float("p_value", col(4), 4)
            .float("revenue_diff", col(5), 3)
            .float("revenue_ci95_low", col(6), 3)
            .float("revenue_ci95_high", col(7), 3)
            .float("revenue_p_value", col(8), 4)
            .float("cuped_revenue_diff", col(9), 3)
            .float("cuped_p_value", col(10), 4)
            .pct("cuped_variance_reduction", col(11)),
    );
    res.charts.push(Chart {
        name: "cvr".into(),
        title: format!("Conversion per variant of {}", p.experiment),
        x_label: "variant".into(),
        y_label: "conversion rate".into(),
        kind: ChartKind::Bars {
            categories: names.iter().map(|s| s.to_string()).collect(),
            series: vec![BarSeries {
                name: "cvr".into(),
                values: variants
                    .values()
                    .map(|v| v.conversions as f64 / v.users as f64)
                    .collect(),
                ci: Some(
                    variants
                        .values()
                        .map(|v| {
                            let r = v.conversions as f64 / v.users as f64;
                            let h =
                                quire_causal::stats::Z95 * (r * (1.0 - r) / v.users as f64).sqrt();
                            (r - h, r + h)
                        })
                        .collect(),
                ),
            }],
        },
    });
    res.note(
        "contracts/cli.md: variant from the earliest event carrying the experiment, users seen \
         with two variants left out (mixed_users); conversion = an order at or after exposure; \
         ci95 unpooled, p_value pooled two-proportion z-test; srm_p_value chi-square against an \
         equal split",
    );
    res.note(
        "revenue per user: Welch's t-test; CUPED adjusts each user's revenue by theta x (spend \
         before exposure − its mean), theta = cov/var over all users; variance reduction = share \
         of the revenue variance removed",
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(variant: &str, converted: bool, revenue: f64, pre: f64) -> User {
        User {
            variant: variant.into(),
            exposure: 0,
            mixed: false,
            converted,
            revenue,
            pre_spend: pre,
        }
    }

    #[test]
    fn cli_shape_and_hand_figures() {
        // control: 4 users, 1 converts; treatment: 4 users, 2 convert; one mixed user.
        let mut users = vec![
            user("a", true, 10.0, 5.0),
            user("a", false, 0.0, 1.0),
            user("a", false, 0.0, 0.0),
            user("a", false, 0.0, 2.0),
            user("b", true, 12.0, 4.0),
            user("b", true, 8.0, 3.0),
            user("b", false, 0.0, 0.0),
            user("b", false, 0.0, 1.0),
        ];
        let mut m = user("a", true, 1.0, 0.0);
        m.mixed = true;
        users.push(m);
        let p = AbParams {
            experiment: "e".into(),
            control: "a".into(),
            planned_users: Some(100),
            mde: 0.05,
        };
        let r = analyze(users.into_iter(), &p).unwrap();
        let j = r.to_json();
        assert_eq!(j["mixed_users"], 1);
        assert_eq!(j["variants"]["a"]["users"], 4);
        assert_eq!(j["variants"]["b"]["conversions"], 2);
        assert!((j["variants"]["b"]["revenue_per_user"].as_f64().unwrap() - 5.0).abs() < 1e-12);
        assert!((j["comparisons"]["b"]["abs_diff"].as_f64().unwrap() - 0.25).abs() < 1e-12);
        assert!((j["comparisons"]["b"]["rel_lift"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(j["srm_p_value"], 1.0);
        assert!(r.warnings.iter().any(|w| w.contains("planned sample size")));
        for k in [
            "experiment",
            "control",
            "mixed_users",
            "variants",
            "srm_p_value",
            "comparisons",
        ] {
            assert!(j.get(k).is_some(), "{k}");
        }
        let bad = AbParams {
            control: "zz".into(),
            ..p
        };
        let users = vec![user("a", true, 1.0, 0.0), user("b", false, 0.0, 0.0)];
        let e = analyze(users.into_iter(), &bad).unwrap_err().to_string();
        assert!(e.contains("control variant zz"), "{e}");
    }

    #[test]
    fn no_conversions_and_a_one_user_arm_still_compare() {
        // 2 users per arm, none converting (no revenue variance), and a variant of 1 user.
        let users = vec![
            user("a", false, 0.0, 0.0),
            user("a", false, 0.0, 0.0),
            user("b", false, 0.0, 0.0),
            user("b", false, 0.0, 0.0),
            user("c", true, 9.0, 0.0),
        ];
        let p = AbParams {
            experiment: "e".into(),
            control: "a".into(),
            planned_users: None,
            mde: 0.05,
        };
        let r = analyze(users.into_iter(), &p).unwrap();
        let j = r.to_json();
        // b against a: 0/2 vs 0/2 (cli.md: rel_lift null when the control's rate is 0).
        let b = &j["comparisons"]["b"];
        assert_eq!(b["abs_diff"], 0.0);
        assert!(b["rel_lift"].is_null());
        assert_eq!(b["ci95"], json!([0.0, 0.0]));
        assert_eq!(b["p_value"], 1.0);
        assert!(b["revenue_p_value"].is_null());
        // c against a: 1/1 vs 0/2, d = 1, unpooled half-width 0.
        let c = &j["comparisons"]["c"];
        assert_eq!(c["abs_diff"], 1.0);
        assert_eq!(c["ci95"], json!([1.0, 1.0]));
        assert!(c["revenue_ci95"].is_null() && c["cuped_revenue_diff"].is_null());
        for v in ["b", "c"] {
            assert!(
                r.warnings
                    .iter()
                    .any(|w| w.starts_with(&format!("{v}: revenue per user not tested"))),
                "{:?}",
                r.warnings
            );
        }
    }
}
