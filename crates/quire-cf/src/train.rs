//! Implicit ALS with a conjugate-gradient solver (Hu, Koren & Volinsky 2008; Takács et al. 2011).
//!
//! Each stored interaction `(u, i, r)` has preference `p = 1` and confidence
//! `c = 1 + alpha * r`; every other cell has `p = 0`, `c = 1`. The factors minimise
//! `Σ_{u,i} c_ui (p_ui − x_u·y_i)² + λ (Σ‖x_u‖² + Σ‖y_i‖²)`. One iteration solves every user
//! row given the items, then every item row given the users. For a user the normal equations
//! are `(YᵀY + Yᵀ(C_u − I)Y + λI) x_u = Yᵀ C_u p_u`; `YᵀY` is shared by all users, the
//! correction touches only the user's own items, and `cg_steps` conjugate-gradient steps from
//! the previous `x_u` approximate the solution — exactly the steps of `implicit`'s
//! `_least_squares_cg`, including its early exit when the residual's squared norm is below
//! 1e-20 and zero factors for rows without interactions.

use std::time::Instant;

use ndarray::ArrayView2;
use pulp::{Arch, Simd, WithSimd};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Deserialize;

use crate::csr::Csr;
use crate::error::{CfError, Result};
use crate::kernels::{axpy, dot, matvec};
use crate::model::AlsModel;

/// ALS hyper-parameters. Deserialises from a config table with every field optional
/// (defaults below: `implicit`'s, except `factors`, 100 there, and a fixed `seed`); an unknown
/// field is an error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlsConfig {
    /// Latent dimensions (≥ 1). Default 64.
    pub factors: usize,
    /// λ, the L2 penalty on every factor vector (≥ 0). Default 0.01.
    pub regularization: f32,
    /// Confidence slope: a stored value `r` has confidence `1 + alpha * r` (≥ 0). Default 1.
    pub alpha: f32,
    /// ALS sweeps, each solving users then items (≥ 1). Default 15.
    pub iterations: usize,
    /// Conjugate-gradient steps per row and sweep (≥ 1). Default 3.
    pub cg_steps: usize,
    /// Seed of the initial factors (uniform in [0, 0.01), as `implicit` does). Default 42.
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        Self {
            factors: 64,
            regularization: 0.01,
            alpha: 1.0,
            iterations: 15,
            cg_steps: 3,
            seed: 42,
        }
    }
}

impl AlsConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, problem: &str| {
            Err(CfError::Config {
                field,
                problem: problem.to_owned(),
            })
        };
        if self.factors == 0 || self.factors > 4096 {
            return bad(
                "factors",
                &format!("is {}; must be in 1..=4096", self.factors),
            );
        }
        if !(self.regularization.is_finite() && self.regularization >= 0.0) {
            return bad(
                "regularization",
                &format!("is {}; must be finite and >= 0", self.regularization),
            );
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad(
                "alpha",
                &format!("is {}; must be finite and >= 0", self.alpha),
            );
        }
        if self.iterations == 0 {
            return bad("iterations", "is 0; must be >= 1");
        }
        if self.cg_steps == 0 {
            return bad("cg_steps", "is 0; must be >= 1");
        }
        Ok(())
    }
}

/// What [`train_als`] reports after each iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterationStats {
    /// 1-based iteration number.
    pub iteration: usize,
    /// The training loss after this iteration (see [`AlsModel::loss`]).
    pub loss: f64,
    /// Wall time of the iteration: both half-sweeps and the loss.
    pub seconds: f64,
}

/// Fits an implicit ALS model to `interactions` (users × items, values ≥ 0, e.g. purchase
/// counts), calling `on_iteration` after every iteration.
///
/// Runs on the current rayon pool. The result depends only on the data and `config`, not on
/// the number of threads.
pub fn train_als(
    interactions: &Csr,
    config: &AlsConfig,
    mut on_iteration: impl FnMut(IterationStats),
) -> Result<AlsModel> {
    config.validate()?;
    if interactions.n_rows() == 0 || interactions.n_cols() == 0 {
        return Err(CfError::Shape(format!(
            "cannot train on a {} x {} interaction matrix",
            interactions.n_rows(),
            interactions.n_cols()
        )));
    }
    let user_conf = confidences(interactions, config.alpha)?;
    let item_conf = user_conf.transpose();
    let (n_users, n_items) = interactions.shape();
    let f = config.factors;

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut init =
        |rows: usize| -> Vec<f32> { (0..rows * f).map(|_| rng.r#gen::<f32>() * 0.01).collect() };
    let mut users = init(n_users);
    let mut items = init(n_items);

    for iteration in 1..=config.iterations {
        let start = Instant::now();
        cg_sweep(&user_conf, &mut users, &items, config);
        cg_sweep(&item_conf, &mut items, &users, config);
        let loss = weighted_loss(&user_conf, &users, &items, f, config.regularization);
        on_iteration(IterationStats {
            iteration,
            loss,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    AlsModel::from_row_major(users, items, f)
}

/// `interactions` with each value `r` replaced by its confidence `1 + alpha * r`.
pub(crate) fn confidences(interactions: &Csr, alpha: f32) -> Result<Csr> {
    for (row, col, value) in interactions.iter() {
        if value < 0.0 {
            return Err(CfError::NegativeValue {
                row: row as usize,
                col: col as usize,
                value,
            });
        }
    }
    Ok(interactions.map_values(|r| 1.0 + alpha * r))
}

/// `YᵀY + reg · I` (row-major, `f × f`) for row-major `y` with `f` columns.
fn gram(y: &[f32], f: usize, reg: f32) -> Vec<f32> {
    let rows = y.len() / f;
    let mut g = vec![0f32; f * f];
    if let Ok(view) = ArrayView2::from_shape((rows, f), y) {
        let product = view.t().dot(&view);
        for ((i, j), v) in product.indexed_iter() {
            g[i * f + j] = *v;
        }
    }
    for d in 0..f {
        g[d * f + d] += reg;
    }
    g
}

/// One half-sweep: every row of `x` (row-major, `f` columns) re-solved by CG given the other
/// side's factors `y`.
fn cg_sweep(conf: &Csr, x: &mut [f32], y: &[f32], config: &AlsConfig) {
    let f = config.factors;
    let a = gram(y, f, config.regularization);
    let arch = Arch::new();
    x.par_chunks_mut(f)
        .enumerate()
        .with_min_len(8)
        .for_each_init(
            || vec![0f32; 3 * f],
            |scratch, (row, xu)| {
                let (cols, confs) = conf.row(row);
                arch.dispatch(CgRow {
                    a: &a,
                    y,
                    cols,
                    confs,
                    x: xu,
                    cg_steps: config.cg_steps,
                    scratch,
                });
            },
        );
}

/// Conjugate-gradient steps on one row's normal equations, warm-started from `x`; a row
/// without interactions gets zero factors. `a` is `YᵀY + λI` (row-major, `f × f`), `y` the
/// other side's factors, `cols`/`confs` the row's stored columns and confidences, `scratch`
/// room for `3 f` floats.
struct CgRow<'a> {
    a: &'a [f32],
    y: &'a [f32],
    cols: &'a [u32],
    confs: &'a [f32],
    x: &'a mut [f32],
    cg_steps: usize,
    scratch: &'a mut [f32],
}

impl WithSimd for CgRow<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let CgRow {
            a,
            y,
            cols,
            confs,
            x,
            cg_steps,
            scratch,
        } = self;
        let f = x.len();
        if cols.is_empty() {
            x.fill(0.0);
            return;
        }
        let (r, rest) = scratch.split_at_mut(f);
        let (p, ap) = rest.split_at_mut(f);
        // r = b − A x with b = Σ c y_i and A x = (YᵀY + λI) x + Σ (c − 1)(y_i·x) y_i.
        matvec(simd, a, x, r);
        for v in r.iter_mut() {
            *v = -*v;
        }
        for (&i, &c) in cols.iter().zip(confs) {
            let yi = &y[i as usize * f..(i as usize + 1) * f];
            let t = c - (c - 1.0) * dot(simd, yi, x);
            axpy(simd, t, yi, r);
        }
        p.copy_from_slice(r);
        let mut rs_old = dot(simd, r, r);
        if rs_old < 1e-20 {
            return;
        }
        for _ in 0..cg_steps {
            matvec(simd, a, p, ap);
            for (&i, &c) in cols.iter().zip(confs) {
                let yi = &y[i as usize * f..(i as usize + 1) * f];
                axpy(simd, (c - 1.0) * dot(simd, yi, p), yi, ap);
            }
            let step = rs_old / dot(simd, p, ap);
            axpy(simd, step, p, x);
            axpy(simd, -step, ap, r);
            let rs_new = dot(simd, r, r);
            if rs_new < 1e-20 {
                break;
            }
            let beta = rs_new / rs_old;
            for (pi, &ri) in p.iter_mut().zip(r.iter()) {
                *pi = ri + beta * *pi;
            }
            rs_old = rs_new;
        }
    }
}

/// The loss `implicit` reports, given confidences and row-major factors with `f` columns:
/// `[Σ_{u,i} c_ui (p_ui − x_u·y_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²)] / Σ_{u,i} c_ui`, summing over every
/// cell of the matrix (unstored cells have c = 1, p = 0), computed without visiting them:
/// `Σ_i (x_u·y_i)² = x_uᵀ(YᵀY)x_u`. Summed per row in parallel, then in row order, so the
/// result does not depend on the number of threads.
pub(crate) fn weighted_loss(conf: &Csr, x: &[f32], y: &[f32], f: usize, reg: f32) -> f64 {
    let yty = gram(y, f, 0.0);
    let arch = Arch::new();
    let per_row: Vec<[f64; 3]> = x
        .par_chunks(f)
        .enumerate()
        .with_min_len(8)
        .map_init(
            || vec![0f32; f],
            |scratch, (row, xu)| {
                let (cols, confs) = conf.row(row);
                arch.dispatch(LossRow {
                    yty: &yty,
                    y,
                    cols,
                    confs,
                    x: xu,
                    scratch,
                })
            },
        )
        .collect();
    let mut loss = 0f64;
    let mut total_conf = 0f64;
    let mut user_norm = 0f64;
    for [l, c, n] in per_row {
        loss += l;
        total_conf += c;
        user_norm += n;
    }
    let item_norm: f64 = y.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    loss += f64::from(reg) * (user_norm + item_norm);
    let cells = conf.n_rows() as f64 * conf.n_cols() as f64;
    loss / (total_conf + cells - conf.nnz() as f64)
}

/// One row's share of the loss: `[Σ c + x(YᵀY)x + Σ ((c − 1)(y_i·x) − 2c)(y_i·x), Σ c, ‖x‖²]`.
struct LossRow<'a> {
    yty: &'a [f32],
    y: &'a [f32],
    cols: &'a [u32],
    confs: &'a [f32],
    x: &'a [f32],
    scratch: &'a mut [f32],
}

impl WithSimd for LossRow<'_> {
    type Output = [f64; 3];

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> [f64; 3] {
        let LossRow {
            yty,
            y,
            cols,
            confs,
            x,
            scratch: r,
        } = self;
        let f = x.len();
        matvec(simd, yty, x, r);
        let mut conf_sum = 0f64;
        for (&i, &c) in cols.iter().zip(confs) {
            let yi = &y[i as usize * f..(i as usize + 1) * f];
            let t = -2.0 * c + (c - 1.0) * dot(simd, yi, x);
            axpy(simd, t, yi, r);
            conf_sum += f64::from(c);
        }
        let loss = conf_sum + f64::from(dot(simd, r, x));
        [loss, conf_sum, f64::from(dot(simd, x, x))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Popularity, evaluate};

    /// A planted rank-4 preference matrix: item `i` has taste `i % 4`; user `u` likes taste
    /// `u % 4`, and also `(u + 1) % 4` when `u % 3 == 0`. P = A Bᵀ exactly (A users × 4 binary,
    /// B items × 4 one-hot). User `u` holds out its `(u / 4) % 8`-th liked item as test, so
    /// every item stays in some users' training rows.
    fn planted() -> (Csr, Csr, Vec<Vec<bool>>) {
        let (n_users, n_items) = (48, 32);
        let likes =
            |u: usize, i: usize| i % 4 == u % 4 || (u.is_multiple_of(3) && i % 4 == (u + 1) % 4);
        let mut train = Vec::new();
        let mut test = Vec::new();
        let mut dense = vec![vec![false; n_items]; n_users];
        for (u, dense_row) in dense.iter_mut().enumerate() {
            let liked = (0..n_items).filter(|&i| likes(u, i));
            for (k, i) in liked.enumerate() {
                dense_row[i] = true;
                let cell = (u as u32, i as u32, 1.0);
                if k == (u / 4) % 8 {
                    test.push(cell);
                } else {
                    train.push(cell);
                }
            }
        }
        (
            Csr::from_triplets(n_users, n_items, &train).unwrap(),
            Csr::from_triplets(n_users, n_items, &test).unwrap(),
            dense,
        )
    }

    fn config() -> AlsConfig {
        AlsConfig {
            factors: 4,
            regularization: 0.01,
            alpha: 10.0,
            iterations: 12,
            cg_steps: 3,
            seed: 7,
        }
    }

    #[test]
    fn loss_decreases_and_the_planted_matrix_is_recovered() {
        let (train, test, dense) = planted();
        let mut losses = Vec::new();
        let model = train_als(&train, &config(), |s| losses.push(s.loss)).unwrap();
        assert_eq!(losses.len(), 12);
        for w in losses.windows(2) {
            assert!(w[1] <= w[0] * (1.0 + 1e-5), "loss went up: {losses:?}");
        }
        assert!(losses[11] < 0.5 * losses[0], "{losses:?}");
        assert_eq!(model.loss(&train, &config()).unwrap(), losses[11]);

        // The reconstruction separates liked from not-liked cells, held-out cells included.
        let scores = model.user_factors.dot(&model.item_factors.t());
        let mut wrong = 0;
        for (u, row) in dense.iter().enumerate() {
            for (i, &liked) in row.iter().enumerate() {
                if (scores[[u, i]] > 0.5) != liked {
                    wrong += 1;
                }
            }
        }
        assert_eq!(wrong, 0, "misclassified cells of 48 x 32");

        // Every held-out item is ranked first among the items the user has not bought.
        let als = evaluate(&model, &train, &test, 1).unwrap();
        assert_eq!(als.users_evaluated, 48);
        assert_eq!(als.recall, 1.0);
        let pop = evaluate(&Popularity::fit(&train), &train, &test, 1).unwrap();
        assert!(pop.recall < 0.5, "{pop:?}");
    }

    #[test]
    fn training_is_deterministic_for_a_seed_and_any_thread_count() {
        let (train, _, _) = planted();
        let run = |threads: usize, seed: u64| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut losses = Vec::new();
                let m = train_als(&train, &AlsConfig { seed, ..config() }, |s| {
                    losses.push(s.loss)
                });
                (m.unwrap(), losses)
            })
        };
        let (a, la) = run(1, 7);
        let (b, lb) = run(3, 7);
        assert_eq!(a, b);
        assert_eq!(la, lb);
        let (c, _) = run(2, 8);
        assert_ne!(a, c);
    }

    /// Solves a small dense system by Gaussian elimination with partial pivoting.
    fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
        let n = b.len();
        for k in 0..n {
            let p = (k..n)
                .max_by(|&i, &j| a[i][k].abs().total_cmp(&a[j][k].abs()))
                .unwrap();
            a.swap(k, p);
            b.swap(k, p);
            let pivot = a[k].clone();
            for i in k + 1..n {
                let m = a[i][k] / pivot[k];
                for (aij, pj) in a[i].iter_mut().zip(&pivot).skip(k) {
                    *aij -= m * pj;
                }
                b[i] -= m * b[k];
            }
        }
        let mut x = vec![0.0; n];
        for k in (0..n).rev() {
            let s: f64 = (k + 1..n).map(|j| a[k][j] * x[j]).sum();
            x[k] = (b[k] - s) / a[k][k];
        }
        x
    }

    #[test]
    fn cg_with_enough_steps_solves_the_normal_equations() {
        let f = 4;
        let y: Vec<f32> = (0..6 * f)
            .map(|v| ((v * 7 % 11) as f32 - 5.0) / 10.0)
            .collect();
        let cols = [0u32, 2, 5];
        let confs = [2.0f32, 41.0, 5.5];
        let reg = 0.1;
        let a = gram(&y, f, reg);
        // Dense A = YᵀY + λI + Σ (c − 1) y_i y_iᵀ, b = Σ c y_i.
        let mut dense = vec![vec![0f64; f]; f];
        let mut rhs = vec![0f64; f];
        for r in 0..f {
            for c in 0..f {
                dense[r][c] = f64::from(a[r * f + c]);
            }
        }
        for (&i, &c) in cols.iter().zip(&confs) {
            let yi = &y[i as usize * f..(i as usize + 1) * f];
            for r in 0..f {
                rhs[r] += f64::from(c * yi[r]);
                for s in 0..f {
                    dense[r][s] += f64::from((c - 1.0) * yi[r] * yi[s]);
                }
            }
        }
        let exact = solve(dense, rhs);
        let mut x = vec![0.005f32; f];
        let mut scratch = vec![0f32; 3 * f];
        let mut solve = |cols: &[u32], confs: &[f32], x: &mut [f32]| {
            Arch::new().dispatch(CgRow {
                a: &a,
                y: &y,
                cols,
                confs,
                x,
                cg_steps: f + 2,
                scratch: &mut scratch,
            })
        };
        solve(&cols, &confs, &mut x);
        for (got, want) in x.iter().zip(&exact) {
            assert!(
                (f64::from(*got) - want).abs() < 1e-3 * want.abs().max(1.0),
                "{x:?} vs {exact:?}"
            );
        }
        // A row without interactions gets zero factors.
        solve(&[], &[], &mut x);
        assert_eq!(x, vec![0.0; f]);
    }

    #[test]
    fn loss_equals_the_sum_over_every_cell() {
        let interactions =
            Csr::from_triplets(3, 4, &[(0, 1, 2.0), (1, 3, 0.5), (2, 0, 1.0), (2, 1, 3.0)])
                .unwrap();
        let cfg = AlsConfig {
            factors: 2,
            regularization: 0.3,
            alpha: 4.0,
            ..AlsConfig::default()
        };
        let x = [0.1f32, -0.4, 0.7, 0.2, -0.3, 0.5];
        let y = [0.6f32, 0.1, -0.2, 0.9, 0.4, 0.4, -0.5, -0.1];
        let model = AlsModel::from_row_major(x.to_vec(), y.to_vec(), 2).unwrap();
        let mut num = 0f64;
        let mut den = 0f64;
        for u in 0..3 {
            let (cols, vals) = interactions.row(u);
            for i in 0..4 {
                let (p, c) = match cols.iter().position(|&c| c as usize == i) {
                    Some(k) => (1.0, 1.0 + 4.0 * f64::from(vals[k])),
                    None => (0.0, 1.0),
                };
                let s = f64::from(x[2 * u] * y[2 * i] + x[2 * u + 1] * y[2 * i + 1]);
                num += c * (p - s) * (p - s);
                den += c;
            }
        }
        let norms: f64 = x.iter().chain(&y).map(|v| f64::from(v * v)).sum();
        let expected = (num + 0.3 * norms) / den;
        let got = model.loss(&interactions, &cfg).unwrap();
        assert!((got - expected).abs() < 1e-6, "{got} vs {expected}");
    }

    #[test]
    fn config_parses_with_defaults_and_rejects_typos_and_bad_values() {
        let cfg: AlsConfig = toml::from_str("factors = 8\nalpha = 40.0").unwrap();
        assert_eq!(
            cfg,
            AlsConfig {
                factors: 8,
                alpha: 40.0,
                ..AlsConfig::default()
            }
        );
        assert_eq!(AlsConfig::default().factors, 64);
        assert!(toml::from_str::<AlsConfig>("factor = 8").is_err());
        for bad in [
            AlsConfig {
                factors: 0,
                ..AlsConfig::default()
            },
            AlsConfig {
                regularization: -1.0,
                ..AlsConfig::default()
            },
            AlsConfig {
                alpha: f32::NAN,
                ..AlsConfig::default()
            },
            AlsConfig {
                iterations: 0,
                ..AlsConfig::default()
            },
            AlsConfig {
                cg_steps: 0,
                ..AlsConfig::default()
            },
        ] {
            assert!(
                matches!(bad.validate(), Err(CfError::Config { .. })),
                "{bad:?}"
            );
        }
        let (train, _, _) = planted();
        let negative = Csr::from_triplets(2, 2, &[(1, 0, -1.0)]).unwrap();
        assert!(matches!(
            train_als(&negative, &AlsConfig::default(), |_| {}),
            Err(CfError::NegativeValue { row: 1, col: 0, .. })
        ));
        let empty = Csr::from_triplets(0, 3, &[]).unwrap();
        assert!(matches!(
            train_als(&empty, &AlsConfig::default(), |_| {}),
            Err(CfError::Shape(_))
        ));
        assert!(
            train_als(
                &train,
                &AlsConfig {
                    iterations: 1,
                    ..config()
                },
                |_| {}
            )
            .is_ok()
        );
    }
}
