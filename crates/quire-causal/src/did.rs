//! Difference-in-differences on a balanced unit × period panel, with a pre-trend check.
//!
//! Each unit is collapsed to one number per comparison (its mean in the later window minus its
//! mean in the earlier one), and the groups' differences are compared by Welch's test: the
//! standard error then allows any serial correlation within a unit (Bertrand, Duflo and
//! Mullainathan 2004).

use std::ops::Range;

use serde::Serialize;

use crate::stats::{Welch, welch};
use crate::{Error, Result, check_finite, check_len, mean};

/// Outcomes of `units` units over `periods` periods, unit-major.
#[derive(Debug, Clone)]
pub struct Panel {
    treated: Vec<bool>,
    periods: usize,
    outcome: Vec<f64>,
}

impl Panel {
    pub fn new(treated: Vec<bool>, periods: usize, outcome: Vec<f64>) -> Result<Self> {
        check_len("panel outcomes", treated.len() * periods, outcome.len())?;
        check_finite("panel outcomes", &outcome)?;
        Ok(Self {
            treated,
            periods,
            outcome,
        })
    }

    fn unit(&self, u: usize) -> &[f64] {
        &self.outcome[u * self.periods..(u + 1) * self.periods]
    }

    fn check(&self, name: &'static str, r: &Range<usize>) -> Result<()> {
        if r.is_empty() || r.end > self.periods {
            return Err(Error::Argument {
                name,
                reason: format!("periods {r:?} outside the panel's 0..{}", self.periods),
            });
        }
        Ok(())
    }

    fn split(&self, f: impl Fn(&[f64]) -> f64) -> (Vec<f64>, Vec<f64>) {
        let (mut t, mut c) = (Vec::new(), Vec::new());
        for u in 0..self.treated.len() {
            let v = f(self.unit(u));
            if self.treated[u] {
                t.push(v)
            } else {
                c.push(v)
            }
        }
        (t, c)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Did {
    pub treated_units: usize,
    pub control_units: usize,
    /// Mean outcome per unit-period in each cell.
    pub treated_before: f64,
    pub treated_after: f64,
    pub control_before: f64,
    pub control_after: f64,
    /// Effect per treated unit and period, with Welch's test on the unit differences.
    pub effect: Welch,
    /// effect × treated units × periods of the later window: the total incremental outcome.
    pub total: f64,
}

/// DiD of the mean per period in `after` against `before`, treated against control units.
pub fn did(panel: &Panel, before: Range<usize>, after: Range<usize>) -> Result<Did> {
    panel.check("before", &before)?;
    panel.check("after", &after)?;
    let m = |r: &Range<usize>| {
        let r = r.clone();
        move |u: &[f64]| mean(&u[r.clone()])
    };
    let (tb, cb) = panel.split(m(&before));
    let (ta, ca) = panel.split(m(&after));
    let diff = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<f64>>();
    let effect = welch(&diff(&ta, &tb), &diff(&ca, &cb))?;
    Ok(Did {
        treated_units: tb.len(),
        control_units: cb.len(),
        treated_before: mean(&tb),
        treated_after: mean(&ta),
        control_before: mean(&cb),
        control_after: mean(&ca),
        total: effect.diff * tb.len() as f64 * after.len() as f64,
        effect,
    })
}

/// Pre-trend check: each unit's least-squares slope over the periods of `before`, treated against
/// control by Welch. A significant difference means the parallel-trends assumption is in doubt.
pub fn pre_trend(panel: &Panel, before: Range<usize>) -> Result<Welch> {
    panel.check("before", &before)?;
    if before.len() < 3 {
        return Err(Error::Argument {
            name: "before",
            reason: format!("a trend needs at least 3 periods, got {}", before.len()),
        });
    }
    let k = before.len() as f64;
    let xm = (k - 1.0) / 2.0;
    let sxx: f64 = (0..before.len()).map(|i| (i as f64 - xm).powi(2)).sum();
    let slope = move |u: &[f64]| {
        let w = &u[before.clone()];
        let ym = mean(w);
        w.iter()
            .enumerate()
            .map(|(i, y)| (i as f64 - xm) * (y - ym))
            .sum::<f64>()
            / sxx
    };
    let (t, c) = panel.split(slope);
    welch(&t, &c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_case() {
        // Two treated and two control units over 4 periods (before 0..2, after 2..4).
        // Treated: before means 10 and 12, after 15 and 19 → differences 5 and 7.
        // Control: before means 8 and 9, after 9 and 11 → differences 1 and 2.
        // DiD = 6 − 1.5 = 4.5; Welch se = sqrt(2/2 + 0.5/2) = 1.1180.
        let p = Panel::new(
            vec![true, true, false, false],
            4,
            vec![
                10.0, 10.0, 15.0, 15.0, //
                11.0, 13.0, 18.0, 20.0, //
                8.0, 8.0, 9.0, 9.0, //
                9.0, 9.0, 11.0, 11.0,
            ],
        )
        .unwrap();
        let d = did(&p, 0..2, 2..4).unwrap();
        assert!((d.effect.diff - 4.5).abs() < 1e-12);
        assert!((d.effect.se - 1.25f64.sqrt()).abs() < 1e-12);
        assert!((d.total - 4.5 * 2.0 * 2.0).abs() < 1e-12);
        assert!((d.treated_before - 11.0).abs() < 1e-12);
        assert!((d.control_after - 10.0).abs() < 1e-12);
        assert!(did(&p, 0..2, 2..5).is_err());
    }

    #[test]
    fn pre_trend_slopes() {
        // Treated units rise 2 and 4 per period, controls 1 and 1.5: slope difference 1.75.
        let p = Panel::new(
            vec![true, true, false, false],
            3,
            vec![0.0, 2.0, 4.0, 1.0, 5.0, 9.0, 3.0, 4.0, 5.0, 0.0, 1.5, 3.0],
        )
        .unwrap();
        let w = pre_trend(&p, 0..3).unwrap();
        assert!((w.diff - 1.75).abs() < 1e-12, "{}", w.diff);
    }
}
