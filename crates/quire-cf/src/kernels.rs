//! Short dense vector kernels for the per-row solvers (vectors of `factors` floats).
//!
//! Written by hand rather than with `ndarray`'s 1-D `dot`: the solvers call these millions of
//! times on 32–256-float slices, where a view's construction and stride checks cost as much as
//! the arithmetic. They are generic over `pulp`'s [`Simd`] so that the callers, dispatched once
//! per row through [`pulp::Arch::dispatch`], run with the widest vector instructions the CPU
//! has (AVX2 + FMA on current x86-64; plain scalar code elsewhere), chosen at run time and
//! without `unsafe` here. Everything is `#[inline(always)]` so it is compiled inside the
//! dispatched function, with its target features.
//!
//! Sums are accumulated lane-wise, so results can differ in the last bits between CPUs with
//! different vector widths; on one machine they are deterministic.

use pulp::Simd;

/// `a · b` over the common length.
#[inline(always)]
pub(crate) fn dot<S: Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a_head, a_tail) = S::as_simd_f32s(&a[..n]);
    let (b_head, b_tail) = S::as_simd_f32s(&b[..n]);
    // Two accumulators hide part of the FMA latency.
    let (a_pairs, a_odd) = pulp::as_arrays::<2, _>(a_head);
    let (b_pairs, b_odd) = pulp::as_arrays::<2, _>(b_head);
    let mut acc0 = simd.splat_f32s(0.0);
    let mut acc1 = simd.splat_f32s(0.0);
    for ([a0, a1], [b0, b1]) in a_pairs.iter().zip(b_pairs) {
        acc0 = simd.mul_add_e_f32s(*a0, *b0, acc0);
        acc1 = simd.mul_add_e_f32s(*a1, *b1, acc1);
    }
    for (x, y) in a_odd.iter().zip(b_odd) {
        acc0 = simd.mul_add_e_f32s(*x, *y, acc0);
    }
    let mut sum = simd.reduce_sum_f32s(simd.add_f32s(acc0, acc1));
    for (x, y) in a_tail.iter().zip(b_tail) {
        sum += x * y;
    }
    sum
}

/// `y += alpha * x` over the common length.
#[inline(always)]
pub(crate) fn axpy<S: Simd>(simd: S, alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    let (x_head, x_tail) = S::as_simd_f32s(&x[..n]);
    let (y_head, y_tail) = S::as_mut_simd_f32s(&mut y[..n]);
    let a = simd.splat_f32s(alpha);
    for (yi, xi) in y_head.iter_mut().zip(x_head) {
        *yi = simd.mul_add_e_f32s(a, *xi, *yi);
    }
    for (yi, xi) in y_tail.iter_mut().zip(x_tail) {
        *yi += alpha * xi;
    }
}

/// `out = a · x` for a row-major square matrix `a` of side `x.len()`.
#[inline(always)]
pub(crate) fn matvec<S: Simd>(simd: S, a: &[f32], x: &[f32], out: &mut [f32]) {
    let n = x.len();
    for (o, row) in out.iter_mut().zip(a.chunks_exact(n)) {
        *o = dot(simd, row, x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::{Arch, WithSimd};

    struct Check;

    impl WithSimd for Check {
        type Output = ();

        #[inline(always)]
        fn with_simd<S: Simd>(self, simd: S) {
            for n in [1usize, 7, 8, 16, 33, 64] {
                let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
                let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
                let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
                assert!((dot(simd, &a, &b) - naive).abs() < 1e-4, "n={n}");

                let mut y = b.clone();
                axpy(simd, 2.0, &a, &mut y);
                for i in 0..n {
                    assert!((y[i] - (b[i] + 2.0 * a[i])).abs() < 1e-6);
                }

                let m: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 - 2.0).collect();
                let mut out = vec![0f32; n];
                matvec(simd, &m, &a, &mut out);
                for i in 0..n {
                    let expected: f32 = (0..n).map(|j| m[i * n + j] * a[j]).sum();
                    assert!((out[i] - expected).abs() < 1e-3, "n={n} i={i}");
                }
            }
        }
    }

    #[test]
    fn kernels_match_naive_loops_scalar_and_dispatched() {
        Check.with_simd(pulp::Scalar::new());
        Arch::new().dispatch(Check);
    }
}
