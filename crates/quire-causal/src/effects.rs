//! Effect of a binary treatment on an outcome from observational data: naive difference,
//! regression adjustment, normalized inverse propensity weighting and doubly robust AIPW, with
//! overlap diagnostics and trimming, covariate balance and seeded bootstrap intervals.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::logistic::Logit;
use crate::ols::Ols;
use crate::{Covariates, Error, Result, check_finite, check_len, mean, variance};

/// Which average effect is estimated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimand {
    /// Average effect on the treated: controls are reweighted to look like the treated.
    Att,
    /// Average effect over everyone.
    Ate,
}

/// Outcome, treatment and pre-treatment covariates of the same rows.
#[derive(Debug, Clone)]
pub struct CausalData {
    pub outcome: Vec<f64>,
    pub treated: Vec<bool>,
    pub covariates: Covariates,
    /// The cluster of each row (e.g. the user of a session), when rows are not independent:
    /// the bootstrap then resamples whole clusters. `None`: rows are independent.
    pub clusters: Option<Vec<u32>>,
}

impl CausalData {
    pub fn new(outcome: Vec<f64>, treated: Vec<bool>, covariates: Covariates) -> Result<Self> {
        check_len("outcome", covariates.rows(), outcome.len())?;
        check_len("treatment", covariates.rows(), treated.len())?;
        check_finite("outcome", &outcome)?;
        Ok(Self {
            outcome,
            treated,
            covariates,
            clusters: None,
        })
    }

    /// The same data with the cluster of each row (see [`CausalData::clusters`]).
    pub fn with_clusters(mut self, clusters: Vec<u32>) -> Result<Self> {
        check_len("clusters", self.outcome.len(), clusters.len())?;
        self.clusters = Some(clusters);
        Ok(self)
    }

    fn select(&self, idx: &[usize]) -> Self {
        Self {
            outcome: idx.iter().map(|&i| self.outcome[i]).collect(),
            treated: idx.iter().map(|&i| self.treated[i]).collect(),
            covariates: self.covariates.select(idx),
            clusters: None,
        }
    }

    fn counts(&self) -> (usize, usize) {
        let t = self.treated.iter().filter(|&&v| v).count();
        (t, self.treated.len() - t)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub estimand: Estimand,
    /// Drop rows whose propensity is outside [trim, 1 − trim] (Crump et al.); `None` keeps all.
    pub trim: Option<f64>,
    /// L2 penalty of the propensity model (0: maximum likelihood; see [`Logit::fit_ridge`]).
    pub ridge: f64,
    /// Bootstrap replicates (0: no intervals).
    pub replicates: usize,
    pub seed: u64,
}

/// Minimum rows per group for a model to be fitted.
pub const MIN_GROUP: usize = 5;

/// The four point estimates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    pub naive: f64,
    pub regression: f64,
    pub ipw: f64,
    pub aipw: f64,
}

impl Point {
    fn get(&self, k: usize) -> f64 {
        [self.naive, self.regression, self.ipw, self.aipw][k]
    }
}

/// An estimate with its bootstrap standard error and 95% percentile interval.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Interval {
    pub estimate: f64,
    pub se: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

impl Interval {
    /// True when the 95% interval excludes zero.
    pub fn significant(&self) -> bool {
        self.ci95.is_some_and(|[lo, hi]| lo > 0.0 || hi < 0.0)
    }

    /// Two-sided p-value from the normal approximation estimate / se.
    pub fn p_value(&self) -> Option<f64> {
        let se = self.se.filter(|s| *s > 0.0)?;
        Some(crate::stats::normal_two_sided(self.estimate / se))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    pub covariate: String,
    pub mean_treated: f64,
    pub mean_control: f64,
    /// Standardized mean difference before weighting (pooled unweighted SD); `None` when the
    /// covariate is constant in both groups.
    pub smd_before: Option<f64>,
    /// The same after propensity weighting (same denominator).
    pub smd_after: Option<f64>,
}

/// Quantiles of the propensity score in a group.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub min: f64,
    pub p05: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overlap {
    pub treated: Spread,
    pub control: Spread,
    pub trim: Option<f64>,
    pub trimmed_treated: usize,
    pub trimmed_control: usize,
    /// Kish effective sample size of the weighted controls (ATT) or of all rows (ATE).
    pub effective_controls: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub estimand: Estimand,
    pub treated: usize,
    pub control: usize,
    pub naive: Interval,
    pub regression: Interval,
    pub ipw: Interval,
    pub aipw: Interval,
    pub balance: Vec<Balance>,
    pub overlap: Overlap,
    pub replicates: usize,
    /// Replicates whose models could not be fitted (left out of the intervals).
    pub failed_replicates: usize,
    pub seed: u64,
}

/// Everything of one fit that the report needs besides the point estimates.
struct Fit {
    point: Point,
    propensity: Vec<f64>,
    kept: Vec<usize>,
    weights: Vec<f64>,
}

fn fit(data: &CausalData, opts: &Options) -> Result<Fit> {
    let (nt, nc) = data.counts();
    if nt < MIN_GROUP || nc < MIN_GROUP {
        return Err(Error::TooFewRows {
            what: "effect estimate".into(),
            needed: MIN_GROUP,
            treated: nt,
            control: nc,
        });
    }
    let y = &data.outcome;
    let t = &data.treated;
    let group_mean = |rows: &mut dyn Iterator<Item = usize>| {
        let (s, n) = rows.fold((0.0, 0usize), |(s, n), i| (s + y[i], n + 1));
        s / n as f64
    };
    let all = 0..y.len();
    let naive = group_mean(&mut all.clone().filter(|&i| t[i]))
        - group_mean(&mut all.clone().filter(|&i| !t[i]));

    let e = Logit::fit_ridge(&data.covariates, t, opts.ridge)?.predict(&data.covariates);
    let kept: Vec<usize> = match opts.trim {
        Some(a) => all.filter(|&i| e[i] >= a && e[i] <= 1.0 - a).collect(),
        None => all.collect(),
    };
    let treated_rows: Vec<usize> = kept.iter().copied().filter(|&i| t[i]).collect();
    let control_rows: Vec<usize> = kept.iter().copied().filter(|&i| !t[i]).collect();
    if treated_rows.len() < MIN_GROUP || control_rows.len() < MIN_GROUP {
        return Err(Error::TooFewRows {
            what: "effect estimate after trimming".into(),
            needed: MIN_GROUP,
            treated: treated_rows.len(),
            control: control_rows.len(),
        });
    }
    let m0 = Ols::fit(&data.covariates, y, &control_rows, None)?.predict(&data.covariates);
    // Bounded away from 0 and 1 so an untrimmed extreme score cannot give an infinite weight.
    let clip = |p: f64| p.clamp(1e-6, 1.0 - 1e-6);
    let mut weights = vec![0.0; y.len()];
    let wmean = |rows: &[usize], w: &[f64], f: &dyn Fn(usize) -> f64| {
        let (s, sw) = rows
            .iter()
            .fold((0.0, 0.0), |(s, sw), &i| (s + w[i] * f(i), sw + w[i]));
        s / sw
    };
    let point = match opts.estimand {
        Estimand::Att => {
            for &i in &kept {
                weights[i] = if t[i] {
                    1.0
                } else {
                    clip(e[i]) / (1.0 - clip(e[i]))
                };
            }
            let resid = |i: usize| y[i] - m0[i];
            let yt = wmean(&treated_rows, &weights, &|i| y[i]);
            let rt = wmean(&treated_rows, &weights, &resid);
            Point {
                naive,
                regression: rt,
                ipw: yt - wmean(&control_rows, &weights, &|i| y[i]),
                aipw: rt - wmean(&control_rows, &weights, &resid),
            }
        }
        Estimand::Ate => {
            let m1 = Ols::fit(&data.covariates, y, &treated_rows, None)?.predict(&data.covariates);
            for &i in &kept {
                weights[i] = if t[i] {
                    1.0 / clip(e[i])
                } else {
                    1.0 / (1.0 - clip(e[i]))
                };
            }
            let reg = kept.iter().map(|&i| m1[i] - m0[i]).sum::<f64>() / kept.len() as f64;
            Point {
                naive,
                regression: reg,
                ipw: wmean(&treated_rows, &weights, &|i| y[i])
                    - wmean(&control_rows, &weights, &|i| y[i]),
                aipw: reg + wmean(&treated_rows, &weights, &|i| y[i] - m1[i])
                    - wmean(&control_rows, &weights, &|i| y[i] - m0[i]),
            }
        }
    };
    Ok(Fit {
        point,
        propensity: e,
        kept,
        weights,
    })
}

/// The four point estimates without diagnostics or intervals.
pub fn point_estimates(data: &CausalData, opts: &Options) -> Result<Point> {
    fit(data, opts).map(|f| f.point)
}

/// Point estimates, bootstrap intervals (rows resampled within each group, so every replicate
/// has the observed group sizes; with [`CausalData::clusters`], whole clusters resampled, so a
/// cluster's correlated rows count as the one draw they are), balance and overlap.
pub fn estimate(data: &CausalData, opts: &Options) -> Result<Report> {
    if let Some(a) = opts.trim
        && !(0.0..0.5).contains(&a)
    {
        return Err(Error::Argument {
            name: "trim",
            reason: format!("must be in [0, 0.5), got {a}"),
        });
    }
    let f = fit(data, opts)?;
    let t = &data.treated;
    let treated: Vec<usize> = (0..t.len()).filter(|&i| t[i]).collect();
    let control: Vec<usize> = (0..t.len()).filter(|&i| !t[i]).collect();
    // The rows of each cluster, in cluster order.
    let clusters: Vec<Vec<usize>> = match &data.clusters {
        Some(c) => {
            let mut by: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
            for (i, &k) in c.iter().enumerate() {
                by.entry(k).or_default().push(i);
            }
            by.into_values().collect()
        }
        None => Vec::new(),
    };

    let reps: Vec<Option<Point>> = (0..opts.replicates)
        .into_par_iter()
        .map(|r| {
            let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
            rng.set_stream(r as u64);
            let mut idx = Vec::with_capacity(t.len());
            if clusters.is_empty() {
                for group in [&treated, &control] {
                    idx.extend((0..group.len()).map(|_| group[rng.gen_range(0..group.len())]));
                }
            } else {
                for _ in 0..clusters.len() {
                    idx.extend_from_slice(&clusters[rng.gen_range(0..clusters.len())]);
                }
            }
            fit(&data.select(&idx), opts).ok().map(|f| f.point)
        })
        .collect();
    let ok: Vec<Point> = reps.iter().flatten().copied().collect();
    let interval = |k: usize| {
        let estimate = f.point.get(k);
        if ok.len() < 2 {
            return Interval {
                estimate,
                se: None,
                ci95: None,
            };
        }
        let mut v: Vec<f64> = ok.iter().map(|p| p.get(k)).collect();
        let se = variance(&v).sqrt();
        v.sort_by(f64::total_cmp);
        Interval {
            estimate,
            se: Some(se),
            ci95: Some([quantile(&v, 0.025), quantile(&v, 0.975)]),
        }
    };

    let kept_t: Vec<usize> = f.kept.iter().copied().filter(|&i| t[i]).collect();
    let kept_c: Vec<usize> = f.kept.iter().copied().filter(|&i| !t[i]).collect();
    let x = &data.covariates;
    let balance = (0..x.width())
        .map(|j| {
            balance_row(
                x.names()[j].clone(),
                x.column(j),
                &kept_t,
                &kept_c,
                &f.weights,
            )
        })
        .collect();
    let spread = |rows: &[usize]| {
        let mut v: Vec<f64> = rows.iter().map(|&i| f.propensity[i]).collect();
        v.sort_by(f64::total_cmp);
        Spread {
            min: v[0],
            p05: quantile(&v, 0.05),
            median: quantile(&v, 0.5),
            p95: quantile(&v, 0.95),
            max: v[v.len() - 1],
        }
    };
    let ess_rows: &[usize] = match opts.estimand {
        Estimand::Att => &kept_c,
        Estimand::Ate => &f.kept,
    };
    let (sw, sw2) = ess_rows.iter().fold((0.0, 0.0), |(a, b), &i| {
        (a + f.weights[i], b + f.weights[i] * f.weights[i])
    });
    Ok(Report {
        estimand: opts.estimand,
        treated: treated.len(),
        control: control.len(),
        naive: interval(0),
        regression: interval(1),
        ipw: interval(2),
        aipw: interval(3),
        balance,
        overlap: Overlap {
            treated: spread(&treated),
            control: spread(&control),
            trim: opts.trim,
            trimmed_treated: treated.len() - kept_t.len(),
            trimmed_control: control.len() - kept_c.len(),
            effective_controls: sw * sw / sw2,
        },
        replicates: opts.replicates,
        failed_replicates: reps.len() - ok.len(),
        seed: opts.seed,
    })
}

fn balance_row(name: String, col: &[f64], t: &[usize], c: &[usize], w: &[f64]) -> Balance {
    let vals = |rows: &[usize]| rows.iter().map(|&i| col[i]).collect::<Vec<f64>>();
    let (vt, vc) = (vals(t), vals(c));
    let (mt, mc) = (mean(&vt), mean(&vc));
    let sd = ((variance(&vt) + variance(&vc)) / 2.0).sqrt();
    let wm = |rows: &[usize]| {
        let (s, sw) = rows
            .iter()
            .fold((0.0, 0.0), |(s, sw), &i| (s + w[i] * col[i], sw + w[i]));
        s / sw
    };
    let smd = |d: f64| (sd > 1e-12).then(|| d / sd);
    Balance {
        covariate: name,
        mean_treated: mt,
        mean_control: mc,
        smd_before: smd(mt - mc),
        smd_after: smd(wm(t) - wm(c)),
    }
}

/// Linear-interpolated quantile of sorted values (type 7, as R's default).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One binary confounder x: P(t | x=0) = 1/4, P(t | x=1) = 3/4, effect 2 for everyone,
    /// y = 10·x + 2·t. Every adjusted estimator must give exactly 2; the naive one is biased:
    /// treated mean = (1·0 + 3·10)/4 + 2 = 9.5, control mean = (3·0 + 1·10)/4 = 2.5 → 7.
    fn confounded() -> CausalData {
        let mut x = Vec::new();
        let mut t = Vec::new();
        for block in 0..2 {
            for i in 0..8 {
                x.push(f64::from(block));
                t.push(if block == 0 { i < 2 } else { i < 6 });
            }
        }
        let y = x
            .iter()
            .zip(&t)
            .map(|(x, t)| 10.0 * x + if *t { 2.0 } else { 0.0 })
            .collect();
        CausalData::new(y, t, Covariates::new(16, vec![("x".into(), x)]).unwrap()).unwrap()
    }

    #[test]
    fn adjusted_estimators_remove_a_known_confounder() {
        for estimand in [Estimand::Att, Estimand::Ate] {
            let opts = Options {
                estimand,
                trim: None,
                ridge: 0.0,
                replicates: 0,
                seed: 1,
            };
            let p = point_estimates(&confounded(), &opts).unwrap();
            assert!((p.naive - 7.0).abs() < 1e-9, "{p:?}");
            for v in [p.regression, p.ipw, p.aipw] {
                assert!((v - 2.0).abs() < 1e-6, "{estimand:?} {p:?}");
            }
        }
    }

    #[test]
    fn weighting_balances_the_confounder() {
        let opts = Options {
            estimand: Estimand::Att,
            trim: None,
            ridge: 0.0,
            replicates: 20,
            seed: 7,
        };
        let r = estimate(&confounded(), &opts).unwrap();
        let b = &r.balance[0];
        // Treated mean of x is 3/4, control 1/4; both SDs: sqrt(3/16 · 8/7).
        let sd = (3.0f64 / 16.0 * 8.0 / 7.0).sqrt();
        assert!((b.smd_before.unwrap() - 0.5 / sd).abs() < 1e-9);
        assert!(b.smd_after.unwrap().abs() < 1e-9);
        assert_eq!((r.treated, r.control), (8, 8));
    }

    /// 150 clusters of 5 identical rows: the rows carry the information of 150 draws, not
    /// 750. Resampling rows treats the copies as independent and gives a standard error about
    /// √5 too small; resampling clusters does not.
    #[test]
    fn a_cluster_bootstrap_counts_a_cluster_once() {
        use rand::{Rng, SeedableRng};
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (mut x, mut t, mut y, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for k in 0..150u32 {
            let xi: f64 = rng.gen_range(0.0..1.0);
            let ti = rng.gen_bool(0.5);
            let yi = xi + if ti { 1.0 } else { 0.0 } + rng.gen_range(-1.0..1.0);
            for _ in 0..5 {
                x.push(xi);
                t.push(ti);
                y.push(yi);
                c.push(k);
            }
        }
        let rows =
            CausalData::new(y, t, Covariates::new(750, vec![("x".into(), x)]).unwrap()).unwrap();
        let clustered = rows.clone().with_clusters(c).unwrap();
        let opts = Options {
            estimand: Estimand::Att,
            trim: None,
            ridge: 0.0,
            replicates: 300,
            seed: 1,
        };
        let se = |d: &CausalData| estimate(d, &opts).unwrap().aipw.se.unwrap();
        let ratio = se(&clustered) / se(&rows);
        assert!(
            (1.7..3.0).contains(&ratio),
            "cluster / row bootstrap se: {ratio}"
        );
    }

    #[test]
    fn too_few_rows_is_named() {
        let cov = Covariates::new(3, vec![("x".into(), vec![1.0, 2.0, 3.0])]).unwrap();
        let d = CausalData::new(vec![1.0, 2.0, 3.0], vec![true, false, false], cov).unwrap();
        let opts = Options {
            estimand: Estimand::Att,
            trim: None,
            ridge: 0.0,
            replicates: 0,
            seed: 0,
        };
        let e = point_estimates(&d, &opts).unwrap_err().to_string();
        assert!(e.contains("1 treated and 2 control"), "{e}");
    }
}
