//! Predicted customer lifetime value: the BG/NBD purchase-count model (Fader, Hardie & Lee 2005,
//! "Counting your customers the easy way") and the Gamma-Gamma spend model (Fader, Hardie &
//! Lee 2005, "RFM and CLV"), both fitted by maximum likelihood.
//!
//! The BG/NBD likelihood is the closed form of the 2005 paper (no hypergeometric function);
//! the conditional expectation needs Gauss's 2F1, summed as its power series (its argument
//! t/(α+T+t) is below 1). The optimizer is [`nelder_mead`], written here: argmin's `Vec`
//! backend turns on `rand`/`getrandom` features that Polars shares, which recompiles Polars for
//! the whole workspace; a 4-parameter smooth likelihood needs nothing more than a simplex.

use statrs::function::gamma::ln_gamma;

use crate::{Error, Result};

/// One customer's summary: `x` repeat purchases, `t_x` time of the last purchase and `t_cap`
/// (T) the length of observation, both from the first purchase, in any one time unit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rfm {
    pub x: f64,
    pub t_x: f64,
    pub t_cap: f64,
}

/// BG/NBD parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
    /// Log-likelihood at the fit (sum over customers).
    pub log_likelihood: f64,
    pub iterations: usize,
}

fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// The BG/NBD log-likelihood of one customer (FHL 2005, eq. 6).
pub fn bgnbd_ll(r: f64, alpha: f64, a: f64, b: f64, c: &Rfm) -> f64 {
    let x = c.x;
    let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
    let a2 = ln_gamma(a + b) + ln_gamma(b + x) - ln_gamma(b) - ln_gamma(a + b + x);
    let a3 = -(r + x) * (alpha + c.t_cap).ln();
    let tail = if x > 0.0 {
        a.ln() - (b + x - 1.0).ln() - (r + x) * (alpha + c.t_x).ln()
    } else {
        f64::NEG_INFINITY
    };
    a1 + a2 + log_add_exp(a3, tail)
}

/// Minimizes `f` from `start` by the Nelder–Mead simplex (standard coefficients 1, 2, ½, ½),
/// restarting once from the best point; stops when the simplex's values differ by less than
/// `tol`. Returns the best point, its value and the iterations used.
pub fn nelder_mead(
    f: &dyn Fn(&[f64]) -> f64,
    start: &[f64],
    step: f64,
    tol: f64,
    max_iter: usize,
) -> (Vec<f64>, f64, usize) {
    let n = start.len();
    let mut best = start.to_vec();
    let mut total = 0;
    let mut best_v = f(&best);
    for _restart in 0..3 {
        let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
        simplex.push((best.clone(), f(&best)));
        for i in 0..n {
            let mut p = best.clone();
            p[i] += step;
            let v = f(&p);
            simplex.push((p, v));
        }
        let value = |p: &[f64]| {
            let v = f(p);
            if v.is_nan() { f64::INFINITY } else { v }
        };
        for _ in 0..max_iter {
            total += 1;
            simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
            if (simplex[n].1 - simplex[0].1).abs() < tol {
                break;
            }
            let centroid: Vec<f64> = (0..n)
                .map(|j| simplex[..n].iter().map(|p| p.0[j]).sum::<f64>() / n as f64)
                .collect();
            let toward = |coef: f64| -> Vec<f64> {
                (0..n)
                    .map(|j| centroid[j] + coef * (simplex[n].0[j] - centroid[j]))
                    .collect()
            };
            let refl = toward(-1.0);
            let fr = value(&refl);
            if fr < simplex[0].1 {
                let exp = toward(-2.0);
                let fe = value(&exp);
                simplex[n] = if fe < fr { (exp, fe) } else { (refl, fr) };
            } else if fr < simplex[n - 1].1 {
                simplex[n] = (refl, fr);
            } else {
                let con = if fr < simplex[n].1 {
                    toward(-0.5)
                } else {
                    toward(0.5)
                };
                let fc = value(&con);
                if fc < simplex[n].1.min(fr) {
                    simplex[n] = (con, fc);
                } else {
                    let b0 = simplex[0].0.clone();
                    for p in simplex.iter_mut().skip(1) {
                        for (x, b) in p.0.iter_mut().zip(&b0) {
                            *x = b + 0.5 * (*x - b);
                        }
                        p.1 = value(&p.0);
                    }
                }
            }
        }
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let improved = simplex[0].1 < best_v - tol;
        best = simplex[0].0.clone();
        best_v = simplex[0].1;
        if !improved {
            break;
        }
    }
    (best, best_v, total)
}

fn check_rfm(data: &[Rfm]) -> Result<()> {
    if data.is_empty() {
        return Err(Error::NoAnswer("no customers to fit".into()));
    }
    for (i, c) in data.iter().enumerate() {
        let ok = c.x >= 0.0 && c.t_x >= 0.0 && c.t_cap >= c.t_x;
        if !(ok && c.x.is_finite() && c.t_x.is_finite() && c.t_cap.is_finite()) {
            return Err(Error::Invalid(format!(
                "customer {i}: need frequency ≥ 0 and 0 ≤ recency ≤ T; got x={}, t_x={}, T={}",
                c.x, c.t_x, c.t_cap
            )));
        }
        if c.x == 0.0 && c.t_x != 0.0 {
            return Err(Error::Invalid(format!(
                "customer {i}: recency must be 0 without repeat purchases, got {}",
                c.t_x
            )));
        }
    }
    Ok(())
}

/// Fits BG/NBD by maximum likelihood (parameters on the log scale, Nelder–Mead).
pub fn fit_bgnbd(data: &[Rfm]) -> Result<BgNbd> {
    check_rfm(data)?;
    let nll = |p: &[f64]| {
        let (r, alpha, a, b) = (p[0].exp(), p[1].exp(), p[2].exp(), p[3].exp());
        -data
            .iter()
            .map(|c| bgnbd_ll(r, alpha, a, b, c))
            .sum::<f64>()
    };
    let (p, v, iterations) = nelder_mead(&nll, &[0.0, 0.0, 0.0, 0.0], 0.5, 1e-10, 5000);
    if !v.is_finite() {
        return Err(Error::NoAnswer(
            "BG/NBD: the likelihood did not converge".into(),
        ));
    }
    Ok(BgNbd {
        r: p[0].exp(),
        alpha: p[1].exp(),
        a: p[2].exp(),
        b: p[3].exp(),
        log_likelihood: -v,
        iterations,
    })
}

/// Gauss's hypergeometric 2F1(a, b; c; z) for |z| < 1 by its power series.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> f64 {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..100_000 {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        sum += term;
        if term.abs() < 1e-15 * sum.abs() {
            break;
        }
    }
    sum
}

impl BgNbd {
    /// P(alive | x, t_x, T) (FHL 2005, eq. 11 / the 2008 note's correction for x = 0).
    pub fn p_alive(&self, c: &Rfm) -> f64 {
        if c.x == 0.0 {
            return 1.0;
        }
        let ratio = ((self.alpha + c.t_cap) / (self.alpha + c.t_x)).powf(self.r + c.x);
        1.0 / (1.0 + self.a / (self.b + c.x - 1.0) * ratio)
    }

    /// E[purchases in the next `t` | x, t_x, T] (FHL 2005, eq. 10).
    pub fn expected_purchases(&self, c: &Rfm, t: f64) -> f64 {
        let (r, alpha, a, b) = (self.r, self.alpha, self.a, self.b);
        let x = c.x;
        let z = t / (alpha + c.t_cap + t);
        let head = (a + b + x - 1.0) / (a - 1.0);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z);
        let num = head * (1.0 - ((alpha + c.t_cap) / (alpha + c.t_cap + t)).powf(r + x) * f);
        let den = if x > 0.0 {
            1.0 + a / (b + x - 1.0) * ((alpha + c.t_cap) / (alpha + c.t_x)).powf(r + x)
        } else {
            1.0
        };
        num / den
    }
}

/// Gamma-Gamma spend parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub v: f64,
    pub log_likelihood: f64,
}

/// The Gamma-Gamma log-likelihood of one customer with `x ≥ 1` transactions of mean value `m`.
pub fn gg_ll(p: f64, q: f64, v: f64, x: f64, m: f64) -> f64 {
    ln_gamma(p * x + q) - ln_gamma(p * x) - ln_gamma(q)
        + q * v.ln()
        + (p * x - 1.0) * m.ln()
        + (p * x) * x.ln()
        - (p * x + q) * (v + x * m).ln()
}

/// Fits Gamma-Gamma to `(x, mean spend)` pairs of customers with at least one repeat purchase
/// and positive spend.
pub fn fit_gamma_gamma(data: &[(f64, f64)]) -> Result<GammaGamma> {
    let data: Vec<(f64, f64)> = data
        .iter()
        .copied()
        .filter(|&(x, m)| x >= 1.0 && m > 0.0 && m.is_finite())
        .collect();
    if data.len() < 10 {
        return Err(Error::NoAnswer(format!(
            "Gamma-Gamma needs at least 10 repeat customers with spend, got {}",
            data.len()
        )));
    }
    let nll = |w: &[f64]| {
        let (p, q, v) = (w[0].exp(), w[1].exp(), w[2].exp());
        -data.iter().map(|&(x, m)| gg_ll(p, q, v, x, m)).sum::<f64>()
    };
    let mean_m = data.iter().map(|d| d.1).sum::<f64>() / data.len() as f64;
    let (w, val, _) = nelder_mead(&nll, &[0.0, 1.0, mean_m.ln()], 0.5, 1e-10, 5000);
    if !val.is_finite() {
        return Err(Error::NoAnswer(
            "Gamma-Gamma: the likelihood did not converge".into(),
        ));
    }
    Ok(GammaGamma {
        p: w[0].exp(),
        q: w[1].exp(),
        v: w[2].exp(),
        log_likelihood: -val,
    })
}

impl GammaGamma {
    /// E[spend per transaction | x, m] (the population mean when x = 0).
    pub fn expected_spend(&self, x: f64, m: f64) -> f64 {
        if x <= 0.0 || self.q <= 1.0 {
            return self.p * self.v / (self.q - 1.0);
        }
        self.p * (self.v + x * m) / (self.p * x + self.q - 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Gamma};

    #[test]
    fn nelder_mead_finds_the_rosenbrock_minimum() {
        let f = |p: &[f64]| (1.0 - p[0]).powi(2) + 100.0 * (p[1] - p[0] * p[0]).powi(2);
        let (p, v, _) = nelder_mead(&f, &[-1.2, 1.0], 0.5, 1e-14, 10_000);
        assert!(v < 1e-8, "{v}");
        assert!(
            (p[0] - 1.0).abs() < 1e-3 && (p[1] - 1.0).abs() < 1e-3,
            "{p:?}"
        );
    }

    #[test]
    fn hyp2f1_matches_closed_forms() {
        // 2F1(1,1;2;z) = −ln(1−z)/z
        let z: f64 = 0.3;
        assert!((hyp2f1(1.0, 1.0, 2.0, z) - (-(1.0 - z).ln() / z)).abs() < 1e-12);
        // 2F1(a,b;b;z) = (1−z)^−a
        assert!((hyp2f1(2.5, 3.0, 3.0, 0.4) - 0.6f64.powf(-2.5)).abs() < 1e-12);
    }

    #[test]
    fn gamma_gamma_recovers_simulated_parameters() {
        // Each customer: ν ~ Gamma(q, rate γ); each spend ~ Gamma(p, rate ν).
        let (p, q, g) = (6.0, 4.0, 15.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let nu_d = Gamma::new(q, 1.0 / g).unwrap();
        let mut data = Vec::new();
        for i in 0..4000 {
            let nu: f64 = nu_d.sample(&mut rng);
            let x = 1 + i % 6;
            let z = Gamma::new(p, 1.0 / nu).unwrap();
            let m = (0..x).map(|_| z.sample(&mut rng)).sum::<f64>() / x as f64;
            data.push((x as f64, m));
        }
        let fit = fit_gamma_gamma(&data).unwrap();
        // Population mean spend p·γ/(q−1) = 30 is identified tightly; each parameter looser.
        let mean = fit.p * fit.v / (fit.q - 1.0);
        assert!((mean - 30.0).abs() < 1.5, "{fit:?}");
        assert!(
            (fit.p - p).abs() < 1.0 && (fit.q - q).abs() < 1.0,
            "{fit:?}"
        );
        assert!(fit_gamma_gamma(&data[..5]).is_err());
    }

    #[test]
    fn bad_rfm_rows_are_named() {
        let e = fit_bgnbd(&[Rfm {
            x: 1.0,
            t_x: 5.0,
            t_cap: 3.0,
        }])
        .unwrap_err();
        assert!(e.to_string().contains("customer 0"), "{e}");
    }
}
