//! Hypothesis tests and experiment statistics: Welch's t-test, two-proportion tests with the A/B
//! definitions of `contracts/cli.md`, the sample-ratio-mismatch chi-square, CUPED and the sample
//! size a test needs. Distributions come from statrs.

use serde::Serialize;
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

use crate::{Error, Result, check_finite, check_len, mean, variance};

/// z of a two-sided 95% interval, as cli.md writes it.
pub const Z95: f64 = 1.959964;

fn standard_normal() -> Normal {
    Normal::standard()
}

/// Two-sided p-value of a standard normal statistic.
pub fn normal_two_sided(z: f64) -> f64 {
    (2.0 * standard_normal().sf(z.abs())).min(1.0)
}

/// Welch's unequal-variance t-test of mean(a) − mean(b).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Welch {
    pub diff: f64,
    pub se: f64,
    pub t: f64,
    pub df: f64,
    pub p_value: f64,
    pub ci95: [f64; 2],
}

pub fn welch(a: &[f64], b: &[f64]) -> Result<Welch> {
    check_finite("welch sample a", a)?;
    check_finite("welch sample b", b)?;
    if a.len() < 2 || b.len() < 2 {
        return Err(Error::TooFewRows {
            what: "welch t-test".into(),
            needed: 2,
            treated: a.len(),
            control: b.len(),
        });
    }
    welch_from_moments(
        (mean(a), variance(a), a.len() as f64),
        (mean(b), variance(b), b.len() as f64),
    )
}

/// Welch's test from (mean, sample variance, n) of each group.
pub fn welch_from_moments(a: (f64, f64, f64), b: (f64, f64, f64)) -> Result<Welch> {
    let (va, vb) = (a.1 / a.2, b.1 / b.2);
    let diff = a.0 - b.0;
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return Err(Error::Degenerate {
            what: "welch t-test".into(),
            reason: "both samples have zero variance".into(),
        });
    }
    let df = (va + vb).powi(2) / (va * va / (a.2 - 1.0) + vb * vb / (b.2 - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).map_err(|e| Error::Degenerate {
        what: "welch t-test".into(),
        reason: e.to_string(),
    })?;
    let t = diff / se;
    let q = dist.inverse_cdf(0.975);
    Ok(Welch {
        diff,
        se,
        t,
        df,
        p_value: (2.0 * dist.sf(t.abs())).min(1.0),
        ci95: [diff - q * se, diff + q * se],
    })
}

/// A variant's conversion counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Arm {
    pub users: u64,
    pub conversions: u64,
}

impl Arm {
    pub fn rate(&self) -> Option<f64> {
        (self.users > 0).then(|| self.conversions as f64 / self.users as f64)
    }
}

/// The comparison of cli.md: `abs_diff` = p₁ − p₀, `rel_lift` = abs_diff / p₀ (None when p₀ = 0),
/// `ci95` unpooled, `p_value` from the pooled two-proportion z-test.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProportionTest {
    pub abs_diff: f64,
    pub rel_lift: Option<f64>,
    pub ci95: [f64; 2],
    pub p_value: f64,
}

pub fn two_proportions(treatment: Arm, control: Arm) -> Result<ProportionTest> {
    for (name, a) in [("treatment", treatment), ("control", control)] {
        if a.users == 0 || a.conversions > a.users {
            return Err(Error::Argument {
                name: "arm",
                reason: format!(
                    "{name} has {} conversions of {} users",
                    a.conversions, a.users
                ),
            });
        }
    }
    let (n1, n0) = (treatment.users as f64, control.users as f64);
    let (p1, p0) = (
        treatment.conversions as f64 / n1,
        control.conversions as f64 / n0,
    );
    let d = p1 - p0;
    let half = Z95 * (p1 * (1.0 - p1) / n1 + p0 * (1.0 - p0) / n0).sqrt();
    let pooled = (treatment.conversions + control.conversions) as f64 / (n1 + n0);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0)).sqrt();
    let p_value = if se > 0.0 {
        normal_two_sided(d / se)
    } else {
        1.0
    };
    Ok(ProportionTest {
        abs_diff: d,
        rel_lift: (p0 > 0.0).then(|| d / p0),
        ci95: [d - half, d + half],
        p_value,
    })
}

/// Sample-ratio mismatch: chi-square test of the user counts against an equal split.
pub fn srm_p_value(users: &[u64]) -> Result<f64> {
    let total: u64 = users.iter().sum();
    if users.len() < 2 || total == 0 {
        return Err(Error::Argument {
            name: "users",
            reason: format!("need two or more non-empty variants, got {users:?}"),
        });
    }
    let expected = total as f64 / users.len() as f64;
    let chi2: f64 = users
        .iter()
        .map(|&n| (n as f64 - expected).powi(2) / expected)
        .sum();
    let dist = ChiSquared::new((users.len() - 1) as f64).map_err(|e| Error::Degenerate {
        what: "srm test".into(),
        reason: e.to_string(),
    })?;
    Ok(dist.sf(chi2))
}

/// CUPED: the outcome adjusted by a pre-exposure covariate, y − θ(x − x̄), θ = cov(y, x)/var(x)
/// over both arms together; the difference of adjusted means is tested by Welch.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Cuped {
    pub theta: f64,
    /// 1 − var(adjusted)/var(raw) over all users: the share of variance removed.
    pub variance_reduction: f64,
    pub raw: Welch,
    pub adjusted: Welch,
}

/// `treatment` and `control` are (outcome, pre-exposure covariate) per user.
pub fn cuped(treatment: (&[f64], &[f64]), control: (&[f64], &[f64])) -> Result<Cuped> {
    check_len(
        "cuped treatment covariate",
        treatment.0.len(),
        treatment.1.len(),
    )?;
    check_len("cuped control covariate", control.0.len(), control.1.len())?;
    let y: Vec<f64> = treatment.0.iter().chain(control.0).copied().collect();
    let x: Vec<f64> = treatment.1.iter().chain(control.1).copied().collect();
    check_finite("cuped covariate", &x)?;
    let (my, mx) = (mean(&y), mean(&x));
    let n = y.len() as f64;
    let cov = y
        .iter()
        .zip(&x)
        .map(|(a, b)| (a - my) * (b - mx))
        .sum::<f64>()
        / (n - 1.0);
    let vx = variance(&x);
    let theta = if vx > 0.0 { cov / vx } else { 0.0 };
    let adjust = |(ys, xs): (&[f64], &[f64])| -> Vec<f64> {
        ys.iter()
            .zip(xs)
            .map(|(a, b)| a - theta * (b - mx))
            .collect()
    };
    let (at, ac) = (adjust(treatment), adjust(control));
    let all: Vec<f64> = at.iter().chain(&ac).copied().collect();
    let vy = variance(&y);
    Ok(Cuped {
        theta,
        variance_reduction: if vy > 0.0 {
            1.0 - variance(&all) / vy
        } else {
            0.0
        },
        raw: welch(treatment.0, control.0)?,
        adjusted: welch(&at, &ac)?,
    })
}

/// Users per arm a two-sided two-proportion test at level `alpha` needs to detect `baseline` →
/// `baseline + mde` with probability `power`.
pub fn sample_size_per_arm(baseline: f64, mde: f64, alpha: f64, power: f64) -> Result<u64> {
    let target = baseline + mde;
    if !(0.0..1.0).contains(&baseline) || !(0.0..1.0).contains(&target) || mde == 0.0 {
        return Err(Error::Argument {
            name: "mde",
            reason: format!(
                "baseline {baseline} and baseline + mde {target} must be distinct rates in [0, 1)"
            ),
        });
    }
    if !(0.0..1.0).contains(&alpha) || !(0.0..1.0).contains(&power) || alpha == 0.0 {
        return Err(Error::Argument {
            name: "alpha/power",
            reason: format!("must be in (0, 1), got {alpha} and {power}"),
        });
    }
    let n = standard_normal();
    let za = n.inverse_cdf(1.0 - alpha / 2.0);
    let zb = n.inverse_cdf(power);
    let pbar = (baseline + target) / 2.0;
    let num = za * (2.0 * pbar * (1.0 - pbar)).sqrt()
        + zb * (baseline * (1.0 - baseline) + target * (1.0 - target)).sqrt();
    Ok((num * num / (mde * mde)).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b}");
    }

    #[test]
    fn welch_hand_case() {
        // a: mean 3, var 2.5 (n 5); b: mean 6, var 10 (n 5).
        // se = sqrt(0.5 + 2) = 1.5811; t = −1.8974; df = 2.5² / (0.25/4 + 4/4) = 5.8824.
        let w = welch(&[1.0, 2.0, 3.0, 4.0, 5.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap();
        close(w.diff, -3.0, 1e-12);
        close(w.se, 2.5f64.sqrt(), 1e-12);
        close(w.df, 6.25 / 1.0625, 1e-9);
        // R: t.test(1:5, c(2,4,6,8,10)) → p-value = 0.1075
        close(w.p_value, 0.1075, 5e-4);
    }

    #[test]
    fn two_proportions_hand_case() {
        // 60/500 vs 50/500: d = 0.02, unpooled half-width 1.959964·sqrt(.12·.88/500 + .1·.9/500)
        // = 1.959964·0.019779 = 0.038766; pooled p = .11, se = sqrt(.11·.89·.004) = 0.019789,
        // z = 1.01066, p = 0.31218.
        let r = two_proportions(
            Arm {
                users: 500,
                conversions: 60,
            },
            Arm {
                users: 500,
                conversions: 50,
            },
        )
        .unwrap();
        close(r.abs_diff, 0.02, 1e-12);
        close(r.rel_lift.unwrap(), 0.2, 1e-12);
        close(r.ci95[1] - 0.02, 0.038766, 1e-5);
        close(r.p_value, 0.31218, 1e-4);
        assert!(
            two_proportions(
                Arm {
                    users: 0,
                    conversions: 0
                },
                Arm {
                    users: 1,
                    conversions: 0
                }
            )
            .is_err()
        );
    }

    #[test]
    fn srm_hand_case() {
        // 5,100 vs 4,900: chi² = 2·100²/5000 = 4 on 1 df → p = 0.0455.
        close(srm_p_value(&[5100, 4900]).unwrap(), 0.04550026, 1e-6);
        close(srm_p_value(&[5000, 5000]).unwrap(), 1.0, 1e-12);
    }

    #[test]
    fn cuped_hand_case() {
        // y = x + arm effect 1 exactly: θ = 1 and the adjusted outcome has only the arm effect.
        let xt = [1.0, 2.0, 3.0, 4.0];
        let xc = [1.5, 2.5, 3.5, 4.5];
        let yt: Vec<f64> = xt.iter().map(|x| x + 1.0).collect();
        let yc = xc.to_vec();
        let c = cuped((&yt, &xt), (&yc, &xc)).unwrap();
        // cov(y, x) / var(x) over the 8 users: y = x + t with t uncorrelated... compute exactly:
        let x: Vec<f64> = xt.iter().chain(&xc).copied().collect();
        let y: Vec<f64> = yt.iter().chain(&yc).copied().collect();
        let (mx, my) = (mean(&x), mean(&y));
        let cov = x
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - mx) * (b - my))
            .sum::<f64>()
            / 7.0;
        close(c.theta, cov / variance(&x), 1e-12);
        assert!(c.variance_reduction > 0.5, "{}", c.variance_reduction);
        assert!(c.adjusted.se < c.raw.se);
        close(c.raw.diff, 0.5, 1e-12);
    }

    #[test]
    fn sample_size_hand_case() {
        // 10% → 12%, α 0.05, power 0.8: the classic answer is 3,841 per arm.
        assert_eq!(sample_size_per_arm(0.10, 0.02, 0.05, 0.8).unwrap(), 3841);
    }

    #[test]
    fn normal_p_value() {
        close(normal_two_sided(1.959964), 0.05, 1e-6);
    }
}
