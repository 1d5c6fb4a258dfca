//! Named covariate columns and the small dense algebra the estimators need (nalgebra).

use nalgebra::{DMatrix, DVector};

use crate::{Error, Result, check_finite, check_len};

/// Pre-treatment covariates: named columns of equal length, all finite.
#[derive(Debug, Clone)]
pub struct Covariates {
    names: Vec<String>,
    columns: Vec<Vec<f64>>,
    rows: usize,
}

impl Covariates {
    /// Checks that every column has `rows` finite values.
    pub fn new(rows: usize, columns: Vec<(String, Vec<f64>)>) -> Result<Self> {
        let mut names = Vec::with_capacity(columns.len());
        let mut cols = Vec::with_capacity(columns.len());
        for (name, col) in columns {
            check_len(&format!("covariate {name}"), rows, col.len())?;
            check_finite(&format!("covariate {name}"), &col)?;
            names.push(name);
            cols.push(col);
        }
        Ok(Self {
            names,
            columns: cols,
            rows,
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn column(&self, j: usize) -> &[f64] {
        &self.columns[j]
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn width(&self) -> usize {
        self.columns.len()
    }

    /// The rows at `idx` (repeats allowed: bootstrap resamples).
    pub fn select(&self, idx: &[usize]) -> Self {
        Self {
            names: self.names.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| idx.iter().map(|&i| c[i]).collect())
                .collect(),
            rows: idx.len(),
        }
    }

    /// Design matrix: an intercept column, then each covariate standardized by the mean and
    /// standard deviation of `basis` rows (all rows when `None`); constant columns are dropped
    /// (they carry no information and would make the normal equations singular).
    pub(crate) fn design(&self, basis: Option<&[usize]>) -> Design {
        let mut keep = Vec::new();
        for (j, col) in self.columns.iter().enumerate() {
            let (m, sd) = match basis {
                Some(rows) => moments(rows.iter().map(|&i| col[i])),
                None => moments(col.iter().copied()),
            };
            if sd > 1e-12 {
                keep.push((j, m, sd));
            }
        }
        Design { keep }
    }
}

fn moments(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = values.clone().count() as f64;
    if n < 2.0 {
        return (0.0, 0.0);
    }
    let m = values.clone().sum::<f64>() / n;
    let v = values.map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
    (m, v.sqrt())
}

/// Which covariates enter a model and how they are scaled.
#[derive(Debug, Clone)]
pub(crate) struct Design {
    keep: Vec<(usize, f64, f64)>,
}

impl Design {
    pub(crate) fn width(&self) -> usize {
        self.keep.len() + 1
    }

    /// Writes row `i` of the design (intercept first) into `out`.
    pub(crate) fn row(&self, x: &Covariates, i: usize, out: &mut [f64]) {
        out[0] = 1.0;
        for (k, &(j, m, sd)) in self.keep.iter().enumerate() {
            out[k + 1] = (x.columns[j][i] - m) / sd;
        }
    }
}

/// Solves the symmetric system `a · b = rhs` by a pseudo-inverse (SVD), so collinear covariates
/// (dummies that sum to another) give the minimum-norm solution instead of an error.
pub(crate) fn solve_symmetric(
    a: DMatrix<f64>,
    rhs: DVector<f64>,
    what: &str,
) -> Result<DVector<f64>> {
    let scale = a.diagonal().amax().max(1e-300);
    let svd = a.svd(true, true);
    svd.solve(&rhs, scale * 1e-10)
        .map_err(|reason| Error::Degenerate {
            what: what.to_string(),
            reason: reason.to_string(),
        })
}
