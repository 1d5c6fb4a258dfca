//! Multiple testing: Benjamini–Hochberg false-discovery-rate adjusted p-values.

use crate::{Result, check_finite};

/// BH-adjusted p-values (q-values) in the input order: q₍ᵢ₎ = min over j ≥ i of p₍ⱼ₎·m/j,
/// capped at 1. A hypothesis is rejected at FDR level α when its q ≤ α.
pub fn benjamini_hochberg(p: &[f64]) -> Result<Vec<f64>> {
    check_finite("p-values", p)?;
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![0.0; m];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.min(1.0);
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_case() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") → 0.02 0.04 0.04 0.02
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]).unwrap();
        for (a, b) in q.iter().zip([0.02, 0.04, 0.04, 0.02]) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
        assert!(benjamini_hochberg(&[]).unwrap().is_empty());
        assert!(benjamini_hochberg(&[f64::NAN]).is_err());
    }
}
