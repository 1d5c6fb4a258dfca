//! (Weighted) least squares for regression adjustment: outcome models μ(x).

use nalgebra::{DMatrix, DVector};

use crate::logistic::dot;
use crate::matrix::{Design, solve_symmetric};
use crate::{Covariates, Error, Result, check_len};

/// A fitted linear model y ≈ β₀ + Σ βⱼ xⱼ.
#[derive(Debug, Clone)]
pub struct Ols {
    design: Design,
    beta: Vec<f64>,
}

impl Ols {
    /// Fits on the rows `rows` of `x` and `y` (weights 1 when `weights` is `None`).
    pub fn fit(x: &Covariates, y: &[f64], rows: &[usize], weights: Option<&[f64]>) -> Result<Self> {
        check_len("outcome", x.rows(), y.len())?;
        if let Some(w) = weights {
            check_len("weights", x.rows(), w.len())?;
        }
        if rows.is_empty() {
            return Err(Error::Empty {
                what: "outcome model".into(),
            });
        }
        let design = x.design(Some(rows));
        let p = design.width();
        let mut xtx = DMatrix::<f64>::zeros(p, p);
        let mut xty = DVector::<f64>::zeros(p);
        let mut r = vec![0.0; p];
        for &i in rows {
            design.row(x, i, &mut r);
            let w = weights.map_or(1.0, |w| w[i]);
            for a in 0..p {
                xty[a] += w * r[a] * y[i];
                for b in a..p {
                    xtx[(a, b)] += w * r[a] * r[b];
                }
            }
        }
        for a in 0..p {
            for b in 0..a {
                xtx[(a, b)] = xtx[(b, a)];
            }
        }
        let beta = solve_symmetric(xtx, xty, "outcome model")?;
        Ok(Self {
            design,
            beta: beta.iter().copied().collect(),
        })
    }

    /// Predictions for every row of `x`.
    pub fn predict(&self, x: &Covariates) -> Vec<f64> {
        let mut r = vec![0.0; self.design.width()];
        (0..x.rows())
            .map(|i| {
                self.design.row(x, i, &mut r);
                dot(&r, &self.beta)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_and_collinear_dummies() {
        // y = 3 + 2x exactly; a duplicated column must not break the solve.
        let x: Vec<f64> = (0..6).map(f64::from).collect();
        let y: Vec<f64> = x.iter().map(|v| 3.0 + 2.0 * v).collect();
        let cov = Covariates::new(6, vec![("x".into(), x.clone()), ("x2".into(), x)]).unwrap();
        let rows: Vec<usize> = (0..6).collect();
        let fit = Ols::fit(&cov, &y, &rows, None).unwrap();
        for (p, t) in fit.predict(&cov).iter().zip(&y) {
            assert!((p - t).abs() < 1e-8, "{p} vs {t}");
        }
    }
}
