//! Propensity scores: logistic regression by maximum likelihood (Newton–Raphson).
//!
//! Written here rather than taken from linfa-logistic: that crate minimizes a (by default
//! L2-penalized) loss with argmin's L-BFGS to a gradient tolerance, while a propensity model
//! wants the unpenalized maximum-likelihood fit; with a dozen covariates Newton's method reaches
//! it to machine precision in a handful of steps, needs only the p × p normal equations (solved by
//! nalgebra) and reports non-convergence under separation instead of returning a partial fit.

use nalgebra::{DMatrix, DVector};

use crate::matrix::{Design, solve_symmetric};
use crate::{Covariates, Error, Result, check_len};

const MAX_ITERATIONS: usize = 100;

/// A fitted logistic regression of a binary treatment on covariates (with an intercept).
#[derive(Debug, Clone)]
pub struct Logit {
    design: Design,
    beta: Vec<f64>,
    pub iterations: usize,
    pub log_likelihood: f64,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// log(1 + e^z) without overflow.
fn log1p_exp(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

impl Logit {
    /// Fits P(t = 1 | x) by maximum likelihood. Covariates are standardized internally;
    /// constant ones are dropped.
    pub fn fit(x: &Covariates, t: &[bool]) -> Result<Self> {
        Self::fit_ridge(x, t, 0.0)
    }

    /// Fits with an L2 penalty `ridge/2 · Σβⱼ²` on the standardized slopes (not the intercept).
    /// A positive penalty keeps the fit finite when few treated units are (quasi-)separated
    /// from the controls by the covariates; 0 is plain maximum likelihood.
    pub fn fit_ridge(x: &Covariates, t: &[bool], ridge: f64) -> Result<Self> {
        if !(ridge >= 0.0 && ridge.is_finite()) {
            return Err(Error::Argument {
                name: "ridge",
                reason: format!("must be a finite value >= 0, got {ridge}"),
            });
        }
        check_len("treatment", x.rows(), t.len())?;
        let treated = t.iter().filter(|&&v| v).count();
        if treated == 0 || treated == t.len() {
            return Err(Error::TooFewRows {
                what: "propensity model".into(),
                needed: 1,
                treated,
                control: t.len() - treated,
            });
        }
        let design = x.design(None);
        let p = design.width();
        let n = x.rows();
        let mut rows = vec![0.0; n * p];
        for i in 0..n {
            design.row(x, i, &mut rows[i * p..(i + 1) * p]);
        }
        let y: Vec<f64> = t.iter().map(|&v| f64::from(u8::from(v))).collect();
        let log_lik = |beta: &[f64]| -> f64 {
            (0..n)
                .map(|i| {
                    let z = dot(&rows[i * p..(i + 1) * p], beta);
                    y[i] * z - log1p_exp(z)
                })
                .sum::<f64>()
                - 0.5 * ridge * beta[1..].iter().map(|b| b * b).sum::<f64>()
        };
        // Start from the intercept that matches the treated share.
        let share = treated as f64 / n as f64;
        let mut beta = vec![0.0; p];
        beta[0] = (share / (1.0 - share)).ln();
        let mut ll = log_lik(&beta);
        for iteration in 1..=MAX_ITERATIONS {
            let mut grad = DVector::<f64>::zeros(p);
            let mut hess = DMatrix::<f64>::zeros(p, p);
            for i in 0..n {
                let r = &rows[i * p..(i + 1) * p];
                let mu = sigmoid(dot(r, &beta));
                let w = (mu * (1.0 - mu)).max(1e-12);
                for a in 0..p {
                    grad[a] += (y[i] - mu) * r[a];
                    for b in a..p {
                        hess[(a, b)] += w * r[a] * r[b];
                    }
                }
            }
            for a in 0..p {
                for b in 0..a {
                    hess[(a, b)] = hess[(b, a)];
                }
            }
            for a in 1..p {
                grad[a] -= ridge * beta[a];
                hess[(a, a)] += ridge;
            }
            let step = solve_symmetric(hess, grad, "propensity model")?;
            // Step halving keeps every accepted step an ascent step.
            let mut scale = 1.0;
            let (next, next_ll) = loop {
                let cand: Vec<f64> = beta
                    .iter()
                    .zip(step.iter())
                    .map(|(b, s)| b + scale * s)
                    .collect();
                let cand_ll = log_lik(&cand);
                if cand_ll >= ll - 1e-12 * ll.abs() || scale < 1e-6 {
                    break (cand, cand_ll);
                }
                scale *= 0.5;
            };
            let change = (next_ll - ll).abs();
            let max_step = step.amax() * scale;
            beta = next;
            ll = next_ll;
            if max_step < 1e-8 || change < 1e-10 * (1.0 + ll.abs()) {
                if ridge == 0.0 && beta.iter().any(|b| b.abs() > 30.0) {
                    return Err(Error::NotConverged {
                        iterations: iteration,
                    });
                }
                return Ok(Self {
                    design,
                    beta,
                    iterations: iteration,
                    log_likelihood: ll,
                });
            }
        }
        Err(Error::NotConverged {
            iterations: MAX_ITERATIONS,
        })
    }

    /// Fitted probabilities for every row of `x` (same covariate columns as the fit).
    pub fn predict(&self, x: &Covariates) -> Vec<f64> {
        let mut r = vec![0.0; self.design.width()];
        (0..x.rows())
            .map(|i| {
                self.design.row(x, i, &mut r);
                sigmoid(dot(&r, &self.beta))
            })
            .collect()
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_two_group_log_odds() {
        // x = 0: 2 of 8 treated; x = 1: 6 of 8 treated. The MLE reproduces the group shares.
        let x: Vec<f64> = (0..16).map(|i| f64::from(u8::from(i >= 8))).collect();
        let t: Vec<bool> = (0..16)
            .map(|i| if i < 8 { i < 2 } else { i < 14 })
            .collect();
        let cov = Covariates::new(16, vec![("x".into(), x)]).unwrap();
        let fit = Logit::fit(&cov, &t).unwrap();
        let p = fit.predict(&cov);
        assert!((p[0] - 0.25).abs() < 1e-9, "{}", p[0]);
        assert!((p[15] - 0.75).abs() < 1e-9, "{}", p[15]);
        // LL = 2·(2 ln .25 + 6 ln .75)
        let ll = 2.0 * (2.0 * 0.25f64.ln() + 6.0 * 0.75f64.ln());
        assert!((fit.log_likelihood - ll).abs() < 1e-9);
    }

    #[test]
    fn separation_is_an_error() {
        let x: Vec<f64> = (0..10).map(f64::from).collect();
        let t: Vec<bool> = (0..10).map(|i| i >= 5).collect();
        let cov = Covariates::new(10, vec![("x".into(), x)]).unwrap();
        assert!(matches!(
            Logit::fit(&cov, &t),
            Err(Error::NotConverged { .. })
        ));
    }
}
