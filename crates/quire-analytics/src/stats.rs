//! The small statistics the analyses share. Distributions come from `statrs`; the formulas
//! below are a few lines each, written from their textbook definitions (cited per function).

/// The standard normal quantile for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// Φ(x), the standard normal CDF.
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-x / std::f64::consts::SQRT_2)
}

/// Wilson score interval for `k` successes in `n` trials (Wilson 1927), at `z`; with
/// `n == 0` the interval is the whole `[0, 1]`.
pub fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// A two-proportion comparison: difference `p1 − p2`, its unpooled 95% interval, and the
/// two-sided p-value of the pooled z-test. `None` when a group is empty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PropDiff {
    pub diff: f64,
    pub lo: f64,
    pub hi: f64,
    pub z: f64,
    pub p_value: f64,
}

pub fn two_proportions(k1: u64, n1: u64, k2: u64, n2: u64) -> Option<PropDiff> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (k1 as f64 / n1f, k2 as f64 / n2f);
    let diff = p1 - p2;
    let se_u = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).sqrt();
    let pool = (k1 + k2) as f64 / (n1f + n2f);
    let se_p = (pool * (1.0 - pool) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    let (z, p_value) = if se_p > 0.0 {
        let z = diff / se_p;
        (z, 2.0 * (1.0 - norm_cdf(z.abs())))
    } else {
        (0.0, 1.0)
    };
    Some(PropDiff {
        diff,
        lo: diff - Z95 * se_u,
        hi: diff + Z95 * se_u,
        z,
        p_value,
    })
}

/// Benjamini–Hochberg adjusted p-values (the step-up FDR procedure, 1995), in input order.
/// NaN p-values stay NaN and do not count as tests.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_finite()).collect();
    let m = idx.len() as f64;
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    let mut out = vec![f64::NAN; p.len()];
    let mut running = 1.0f64;
    for (r, &i) in idx.iter().enumerate() {
        let rank = m - r as f64; // ranks from the largest p down
        running = running.min(p[i] * m / rank);
        out[i] = running.min(1.0);
    }
    out
}

/// Mean and a normal-approximation 95% interval (t-free; for large samples).
pub fn mean_ci(x: &[f64]) -> Option<(f64, f64, f64)> {
    let n = x.len();
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let mean = x.iter().sum::<f64>() / nf;
    if n < 2 {
        return Some((mean, f64::NAN, f64::NAN));
    }
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (nf - 1.0);
    let half = Z95 * (var / nf).sqrt();
    Some((mean, mean - half, mean + half))
}

/// One step of a Kaplan–Meier curve: at time `t`, `at_risk` subjects, `events` events and
/// `censored` censorings; `surv` = Ŝ(t) after the events at t; `lo`/`hi` its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KmStep {
    pub t: f64,
    pub at_risk: u64,
    pub events: u64,
    pub censored: u64,
    pub surv: f64,
    pub lo: f64,
    pub hi: f64,
}

/// A Kaplan–Meier fit with its median.
#[derive(Clone, Debug, PartialEq)]
pub struct KmFit {
    pub n: u64,
    pub events: u64,
    pub censored: u64,
    pub steps: Vec<KmStep>,
    /// Smallest t with Ŝ(t) ≤ 0.5 (`None`: the curve never reaches one half).
    pub median: Option<f64>,
    /// The median's 95% interval (Brookmeyer–Crowley: the times the pointwise bands cross
    /// one half; `None` = not reached, i.e. unbounded).
    pub median_lo: Option<f64>,
    pub median_hi: Option<f64>,
}

/// Kaplan–Meier (1958) product-limit estimate of `(time, event)` observations (`event` false =
/// censored at that time; at tied times events come before censorings). Greenwood variance,
/// log–log transformed pointwise 95% intervals (Kalbfleisch–Prentice), which stay in [0, 1].
pub fn kaplan_meier(obs: &[(f64, bool)]) -> KmFit {
    let mut sorted: Vec<(f64, bool)> = obs.iter().copied().filter(|o| o.0.is_finite()).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let n = sorted.len() as u64;
    let mut at_risk = n;
    let mut surv = 1.0f64;
    let mut greenwood = 0.0f64;
    let mut steps = Vec::new();
    let (mut tot_events, mut tot_cens) = (0u64, 0u64);
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        let (mut d, mut c) = (0u64, 0u64);
        while i < sorted.len() && sorted[i].0 == t {
            if sorted[i].1 {
                d += 1;
            } else {
                c += 1;
            }
            i += 1;
        }
        if d > 0 {
            let r = at_risk as f64;
            surv *= 1.0 - d as f64 / r;
            if at_risk > d {
                greenwood += d as f64 / (r * (r - d as f64));
            }
        }
        let (lo, hi) = loglog_ci(surv, greenwood);
        steps.push(KmStep {
            t,
            at_risk,
            events: d,
            censored: c,
            surv,
            lo,
            hi,
        });
        tot_events += d;
        tot_cens += c;
        at_risk -= d + c;
    }
    let first_at_or_below = |f: &dyn Fn(&KmStep) -> f64| {
        steps
            .iter()
            .find(|s| s.events > 0 && f(s) <= 0.5)
            .map(|s| s.t)
    };
    KmFit {
        n,
        events: tot_events,
        censored: tot_cens,
        median: first_at_or_below(&|s| s.surv),
        median_lo: first_at_or_below(&|s| s.lo),
        median_hi: first_at_or_below(&|s| s.hi),
        steps,
    }
}

/// The log–log interval of Ŝ given Greenwood's Σ d/(r(r−d)).
fn loglog_ci(s: f64, gw: f64) -> (f64, f64) {
    if s <= 0.0 || s >= 1.0 {
        return (s, s);
    }
    let ls = s.ln();
    let se = gw.sqrt() / ls.abs();
    let (a, b) = ((-Z95 * se).exp(), (Z95 * se).exp());
    // S^{exp(±z·se)}: the larger exponent gives the lower bound.
    (s.powf(b), s.powf(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() < tol, "{a} vs {b}");
    }

    #[test]
    fn wilson_matches_the_textbook_example() {
        // Newcombe (1998), table I: 81/263 → 0.2553 to 0.3662.
        let (lo, hi) = wilson(81, 263, Z95);
        close(lo, 0.2553, 1e-4);
        close(hi, 0.3662, 1e-4);
        assert_eq!(wilson(0, 0, Z95), (0.0, 1.0));
        let (lo, hi) = wilson(0, 10, Z95);
        assert_eq!(lo, 0.0);
        close(hi, 0.2775, 1e-4);
    }

    #[test]
    fn two_proportion_test_by_hand() {
        // 60/100 vs 40/100: pooled p .5, se sqrt(.25*.02)=.0707107, z 2.828427, p .004678.
        let d = two_proportions(60, 100, 40, 100).unwrap();
        close(d.diff, 0.2, 1e-12);
        close(d.z, 2.828_427, 1e-6);
        close(d.p_value, 0.004_677_7, 1e-6);
        // unpooled se sqrt(.24/100*2) = .069282
        close(d.hi - d.diff, Z95 * 0.069_282_03, 1e-7);
        assert!(two_proportions(1, 0, 1, 2).is_none());
    }

    #[test]
    fn bh_matches_r_p_adjust() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005, NA), "BH") = 0.02 0.04 0.04 0.02 NA
        let adj = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, f64::NAN]);
        close(adj[0], 0.02, 1e-12);
        close(adj[1], 0.04, 1e-12);
        close(adj[2], 0.04, 1e-12);
        close(adj[3], 0.02, 1e-12);
        assert!(adj[4].is_nan());
    }

    #[test]
    fn kaplan_meier_by_hand() {
        // times 1, 2, 2(c), 3, 4(c), 5: S(1)=5/6, S(3)=5/6*3/4=0.625, S(5)=0.
        let km = kaplan_meier(&[
            (1.0, true),
            (2.0, false),
            (2.0, true),
            (3.0, true),
            (4.0, false),
            (5.0, true),
        ]);
        assert_eq!((km.n, km.events, km.censored), (6, 4, 2));
        // t=2: 5 at risk, 1 event (events before censorings): S = 5/6 * 4/5 = 2/3
        let s: Vec<f64> = km.steps.iter().map(|s| s.surv).collect();
        close(s[0], 5.0 / 6.0, 1e-12);
        close(s[1], 2.0 / 3.0, 1e-12);
        close(s[2], 2.0 / 3.0 * 2.0 / 3.0, 1e-12);
        close(s[4], 0.0, 1e-12);
        assert_eq!(km.steps[2].at_risk, 3);
        assert_eq!(km.median, Some(3.0));
        // The lower band reaches one half first: it bounds the median from below.
        let (lo, hi) = (km.median_lo.unwrap(), km.median_hi.unwrap_or(f64::INFINITY));
        assert!(lo <= 3.0 && 3.0 <= hi, "{lo} {hi}");
        // Greenwood at t=1: var = S² · 1/(6·5); log-log band by hand.
        let st = km.steps[0];
        let se = (1.0f64 / 30.0).sqrt() / (5.0f64 / 6.0).ln().abs();
        close(st.lo, (5.0f64 / 6.0).powf((Z95 * se).exp()), 1e-12);
        assert!(st.lo < st.surv && st.surv < st.hi && st.hi <= 1.0);
        // Nobody has an event: no median.
        let none = kaplan_meier(&[(1.0, false), (2.0, false)]);
        assert_eq!(none.median, None);
        assert_eq!(none.events, 0);
    }
}
