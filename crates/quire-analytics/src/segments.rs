//! `quire analyze segments`: customers clustered by k-means (linfa) on standardized features,
//! segments named from their centroids by written rules, and per segment its size, purchasing
//! patterns, historical CLV and predicted CLV (BG/NBD × Gamma-Gamma, [`crate::clv`]).
//!
//! Features per customer (users with an order in the range): recency (days since the last
//! order), ln(1 + orders), ln(1 + spend), AOV, promo share, the share of units in each of the
//! six genres sold most, and the mobile share of sessions. Each is standardized (z-score).
//!
//! Naming rules, applied to each centroid in this order (values are z-scores):
//! 1. spend ≥ 1 and AOV ≥ 0.5 → "High-Spenders";
//! 2. promo share ≥ 1 → "Bargain Hunters";
//! 3. the largest genre share ≥ 0.8 → that genre's fans ("Fantasy Fans", "History Buffs",
//!    "Mystery Readers", otherwise "<Genre> Readers");
//! 4. recency ≥ 1 → "Lapsed";
//! 5. orders ≥ 1 → "Regulars";
//! 6. otherwise "Occasional Buyers".
//!
//! A name used twice gets a number (" 2").

use std::collections::HashMap;

use linfa::metrics::SilhouetteScore;
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::chart::{BarSeries, Chart, ChartKind};
use crate::clv::{BgNbd, GammaGamma, fit_bgnbd, fit_gamma_gamma};
use crate::customers::{Customers, customers};
use crate::output::{AnalysisResult, Table};
use crate::{Dataset, Error, Result};

/// Genres used as features (the most sold ones).
const GENRE_FEATURES: usize = 6;
/// Silhouette is computed on at most this many customers (it is quadratic).
const SILHOUETTE_SAMPLE: usize = 2_000;
/// At or below this best silhouette the structure is weak or artificial (Kaufman & Rousseeuw
/// 1990: 0.26–0.50 weak, ≤ 0.25 none), and the result says so.
pub const WEAK_SILHOUETTE: f64 = 0.5;

#[derive(Clone, Debug)]
pub struct SegmentParams {
    /// Number of segments; `None` = chosen by silhouette over 2..=`max_k`.
    pub k: Option<usize>,
    pub max_k: usize,
    pub seed: u64,
    /// Horizon of the predicted CLV, days.
    pub horizon_days: f64,
}

impl Default for SegmentParams {
    fn default() -> Self {
        SegmentParams {
            k: None,
            max_k: 8,
            seed: 42,
            horizon_days: 90.0,
        }
    }
}

/// The clustering of standardized rows.
#[derive(Clone, Debug)]
pub struct Clustering {
    pub k: usize,
    pub labels: Vec<usize>,
    /// Centroids in standardized units, `k × features`.
    pub centroids: Array2<f64>,
    /// Silhouette per tried k.
    pub silhouettes: Vec<(usize, f64)>,
}

/// Z-scores per column (a constant column becomes 0).
pub fn standardize(x: &Array2<f64>) -> Array2<f64> {
    let mut z = x.clone();
    for mut c in z.columns_mut() {
        let n = c.len() as f64;
        let mean = c.sum() / n;
        let sd = (c.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        c.mapv_inplace(|v| if sd > 0.0 { (v - mean) / sd } else { 0.0 });
    }
    z
}

fn silhouette(z: &Array2<f64>, labels: &[usize], seed: u64) -> Result<f64> {
    let mut idx: Vec<usize> = (0..z.nrows()).collect();
    if idx.len() > SILHOUETTE_SAMPLE {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x5111));
        idx.truncate(SILHOUETTE_SAMPLE);
    }
    let records = z.select(ndarray::Axis(0), &idx);
    let targets = Array1::from_iter(idx.iter().map(|&i| labels[i]));
    // linfa scores a member alone in its cluster 1; Rousseeuw (and scikit-learn) score it 0,
    // so that splitting off outliers does not look like structure: those are taken out of
    // the mean.
    let mut sizes: HashMap<usize, usize> = HashMap::new();
    for &t in &targets {
        *sizes.entry(t).or_default() += 1;
    }
    let alone = sizes.values().filter(|&&n| n == 1).count();
    let ds = DatasetBase::new(records, targets);
    let linfa = ds
        .silhouette_score()
        .map_err(|e| Error::NoAnswer(format!("silhouette: {e}")))?;
    Ok(linfa - alone as f64 / idx.len() as f64)
}

/// k-means on standardized rows `z`: k given, or the best silhouette over 2..=max_k.
pub fn cluster(z: &Array2<f64>, k: Option<usize>, max_k: usize, seed: u64) -> Result<Clustering> {
    let n = z.nrows();
    let ks: Vec<usize> = match k {
        Some(k) if k >= 1 && k <= n => vec![k],
        Some(k) => {
            return Err(Error::Invalid(format!(
                "--k {k}: must be between 1 and the number of customers ({n})"
            )));
        }
        None => (2..=max_k.min(n.saturating_sub(1))).collect(),
    };
    if ks.is_empty() {
        return Err(if n >= 3 {
            Error::Invalid(format!(
                "--max-k {max_k}: must be at least 2 to choose k (or give --k)"
            ))
        } else {
            Error::NoAnswer(format!("{n} customers are too few to segment"))
        });
    }
    let data = DatasetBase::from(z.clone());
    let mut best: Option<(f64, Clustering)> = None;
    let mut sils = Vec::new();
    for k in ks {
        let model = KMeans::params_with_rng(k, ChaCha8Rng::seed_from_u64(seed))
            .n_runs(3)
            .max_n_iterations(300)
            .tolerance(1e-6)
            .fit(&data)
            .map_err(|e| Error::NoAnswer(format!("k-means with k={k}: {e}")))?;
        let labels: Vec<usize> = model.predict(z).to_vec();
        let s = if k == 1 {
            0.0
        } else {
            silhouette(z, &labels, seed)?
        };
        sils.push((k, s));
        if best.as_ref().is_none_or(|b| s > b.0) {
            best = Some((
                s,
                Clustering {
                    k,
                    labels,
                    centroids: model.centroids().clone(),
                    silhouettes: Vec::new(),
                },
            ));
        }
    }
    let (_, mut c) = best.ok_or_else(|| Error::Internal("no clustering".into()))?;
    c.silhouettes = sils;
    Ok(c)
}

/// The name of a centroid by the module's rules; `features` names its columns.
pub fn name_segment(centroid: &[f64], features: &[String]) -> String {
    let get = |n: &str| {
        features
            .iter()
            .position(|f| f == n)
            .map_or(0.0, |i| centroid[i])
    };
    if get("spend") >= 1.0 && get("aov") >= 0.5 {
        return "High-Spenders".into();
    }
    if get("promo_share") >= 1.0 {
        return "Bargain Hunters".into();
    }
    let genre = features
        .iter()
        .enumerate()
        .filter(|(_, f)| f.starts_with("genre:"))
        .max_by(|a, b| centroid[a.0].total_cmp(&centroid[b.0]));
    if let Some((i, f)) = genre
        && centroid[i] >= 0.8
    {
        let g = &f["genre:".len()..];
        return match g {
            "Fantasy" => "Fantasy Fans".into(),
            "History" => "History Buffs".into(),
            "Mystery" => "Mystery Readers".into(),
            g => format!("{g} Readers"),
        };
    }
    if get("recency") >= 1.0 {
        return "Lapsed".into();
    }
    if get("orders") >= 1.0 {
        return "Regulars".into();
    }
    "Occasional Buyers".into()
}

/// The feature matrix (raw, before standardization) and its column names.
pub fn features(c: &Customers) -> (Array2<f64>, Vec<String>) {
    let g = c.genres.len().min(GENRE_FEATURES);
    let mut names: Vec<String> = ["recency", "orders", "spend", "aov", "promo_share"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    names.extend(c.genres[..g].iter().map(|x| format!("genre:{x}")));
    names.push("mobile_share".into());
    let mut x = Array2::zeros((c.rows.len(), names.len()));
    for (i, r) in c.rows.iter().enumerate() {
        let mut row = vec![
            r.recency_days,
            (r.orders as f64).ln_1p(),
            r.spend.ln_1p(),
            r.aov,
            r.promo_share,
        ];
        row.extend((0..g).map(|j| {
            if r.units > 0.0 {
                r.genre_units[j] / r.units
            } else {
                0.0
            }
        }));
        row.push(if r.mobile_share.is_nan() {
            0.0
        } else {
            r.mobile_share
        });
        for (j, v) in row.into_iter().enumerate() {
            x[[i, j]] = v;
        }
    }
    (x, names)
}

pub fn run(ds: &Dataset, p: &SegmentParams) -> Result<AnalysisResult> {
    let c = customers(ds)?;
    if c.rows.len() < 3 {
        return Err(Error::NoAnswer(format!(
            "{} customers in the range: too few to segment",
            c.rows.len()
        )));
    }
    let (x, names) = features(&c);
    let z = standardize(&x);
    let cl = cluster(&z, p.k, p.max_k, p.seed)?;
    // CLV models over every customer.
    let rfm: Vec<_> = c.rows.iter().map(|r| r.rfm).collect();
    let bg: Option<BgNbd> = fit_bgnbd(&rfm).ok();
    let gg: Option<GammaGamma> = fit_gamma_gamma(
        &c.rows
            .iter()
            .map(|r| (r.rfm.x, r.repeat_mean))
            .collect::<Vec<_>>(),
    )
    .ok();
    let predicted: Vec<f64> = c
        .rows
        .iter()
        .map(|r| match (&bg, &gg) {
            (Some(bg), Some(gg)) => {
                let spend = gg.expected_spend(
                    r.rfm.x,
                    if r.repeat_mean.is_nan() {
                        0.0
                    } else {
                        r.repeat_mean
                    },
                );
                bg.expected_purchases(&r.rfm, p.horizon_days) * spend
            }
            _ => f64::NAN,
        })
        .collect();
    let mut seg_names: Vec<String> = Vec::new();
    for s in 0..cl.k {
        let base = name_segment(cl.centroids.row(s).as_slice().unwrap_or(&[]), &names);
        let mut name = base.clone();
        let mut i = 2;
        while seg_names.contains(&name) {
            name = format!("{base} {i}");
            i += 1;
        }
        seg_names.push(name);
    }
    let mut r = AnalysisResult::new("segments", "Customer segments (k-means) with predicted CLV");
    r.fact("customers", c.rows.len() as u64);
    r.fact("k", cl.k as u64);
    r.fact("seed", p.seed);
    r.fact(
        "silhouette",
        cl.silhouettes
            .iter()
            .find(|s| s.0 == cl.k)
            .map_or(f64::NAN, |s| s.1),
    );
    r.fact("clv_horizon_days", p.horizon_days);
    if let Some(bg) = &bg {
        r.fact("bgnbd_r", bg.r);
        r.fact("bgnbd_alpha", bg.alpha);
        r.fact("bgnbd_a", bg.a);
        r.fact("bgnbd_b", bg.b);
        r.fact("bgnbd_log_likelihood", bg.log_likelihood);
        if bg.a / (bg.a + bg.b) < 1e-3 {
            r.warn(format!(
                "BG/NBD sees almost no dropout (mean dropout probability per purchase a/(a+b) = {:.1e}): the range is too short to see customers leave, so predicted CLV assumes they all stay",
                bg.a / (bg.a + bg.b)
            ));
        }
    } else {
        r.warn("BG/NBD could not be fitted: predicted CLV is missing");
    }
    if let Some(gg) = &gg {
        r.fact("gamma_gamma_p", gg.p);
        r.fact("gamma_gamma_q", gg.q);
        r.fact("gamma_gamma_v", gg.v);
    } else {
        r.warn(
            "Gamma-Gamma could not be fitted (too few repeat customers): predicted CLV is missing",
        );
    }
    let best_sil = cl.silhouettes.iter().map(|s| s.1).fold(f64::NAN, f64::max);
    if best_sil < WEAK_SILHOUETTE {
        r.warn(format!(
            "the best silhouette is {best_sil:.3} (≤ {WEAK_SILHOUETTE}): customers do not form clear clusters; treat the segments as a partition, not as types"
        ));
    }
    // Per segment.
    let k = cl.k;
    let mut size = vec![0u64; k];
    let mut sums = vec![[0.0f64; 7]; k]; // recency, orders, spend, aov, promo, hist clv, pred clv
    let mut pred_n = vec![0u64; k];
    let mut genre_units = vec![vec![0.0; c.genres.len()]; k];
    for (i, row) in c.rows.iter().enumerate() {
        let s = cl.labels[i];
        size[s] += 1;
        let v = [
            row.recency_days,
            row.orders as f64,
            row.spend,
            row.aov,
            row.promo_share,
            row.net_spend,
        ];
        for (j, x) in v.iter().enumerate() {
            sums[s][j] += x;
        }
        if predicted[i].is_finite() {
            sums[s][6] += predicted[i];
            pred_n[s] += 1;
        }
        for (j, u) in row.genre_units.iter().enumerate() {
            genre_units[s][j] += u;
        }
    }
    let mean = |s: usize, j: usize| sums[s][j] / size[s].max(1) as f64;
    let top_genre = |s: usize| {
        genre_units[s]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or("-".to_owned(), |(j, _)| c.genres[j].clone())
    };
    let order: Vec<usize> = {
        let mut o: Vec<usize> = (0..k).collect();
        o.sort_by(|&a, &b| size[b].cmp(&size[a]));
        o
    };
    let total = c.rows.len() as f64;
    r.tables.push(
        Table::new(
            "segments",
            "Segments: size, purchasing patterns, CLV (mean per customer)",
        )
        .int("segment", order.iter().map(|&s| s as i64))
        .text("name", order.iter().map(|&s| seg_names[s].clone()))
        .int("customers", order.iter().map(|&s| size[s] as i64))
        .pct("share", order.iter().map(|&s| size[s] as f64 / total))
        .float("recency_days", order.iter().map(|&s| mean(s, 0)), 1)
        .float("orders", order.iter().map(|&s| mean(s, 1)), 2)
        .float("aov", order.iter().map(|&s| mean(s, 3)), 2)
        .pct("promo_share", order.iter().map(|&s| mean(s, 4)))
        .text("top_genre", order.iter().map(|&s| top_genre(s)))
        .float("historical_clv", order.iter().map(|&s| mean(s, 5)), 2)
        .float(
            "predicted_clv",
            order.iter().map(|&s| {
                if pred_n[s] > 0 {
                    sums[s][6] / pred_n[s] as f64
                } else {
                    f64::NAN
                }
            }),
            2,
        ),
    );
    let mut cent = Table::new("centroids", "Centroids (z-scores of the features)")
        .int("segment", order.iter().map(|&s| s as i64))
        .text("name", order.iter().map(|&s| seg_names[s].clone()));
    for (j, n) in names.iter().enumerate() {
        let key = n
            .replace("genre:", "genre_")
            .to_lowercase()
            .replace([' ', '\''], "_");
        cent = cent.float(&key, order.iter().map(|&s| cl.centroids[[s, j]]), 2);
    }
    r.tables.push(cent);
    r.tables.push(
        Table::new("silhouette_by_k", "Silhouette by k")
            .int("k", cl.silhouettes.iter().map(|s| s.0 as i64))
            .float("silhouette", cl.silhouettes.iter().map(|s| s.1), 3),
    );
    r.tables.push(
        Table::new("members", "Customers with their segment")
            .text("user_id", c.rows.iter().map(|x| x.user_id.clone()))
            .int("segment", cl.labels.iter().map(|&s| s as i64))
            .text("name", cl.labels.iter().map(|&s| seg_names[s].clone()))
            .float("historical_clv", c.rows.iter().map(|x| x.net_spend), 2)
            .float("predicted_clv", predicted.iter().copied(), 2)
            .float(
                "p_alive",
                c.rows
                    .iter()
                    .map(|x| bg.as_ref().map_or(f64::NAN, |b| b.p_alive(&x.rfm))),
                3,
            ),
    );
    r.charts.push(Chart {
        name: "clv".into(),
        title: "CLV per customer by segment".into(),
        x_label: "segment".into(),
        y_label: "mean CLV".into(),
        kind: ChartKind::Bars {
            categories: order.iter().map(|&s| seg_names[s].clone()).collect(),
            series: vec![
                BarSeries {
                    name: "historical".into(),
                    values: order.iter().map(|&s| mean(s, 5)).collect(),
                    ci: None,
                },
                BarSeries {
                    name: format!("predicted, next {} days", p.horizon_days),
                    values: order
                        .iter()
                        .map(|&s| sums[s][6] / pred_n[s].max(1) as f64)
                        .collect(),
                    ci: None,
                },
            ],
        },
    });
    r.note(format!(
        "k-means (linfa, 3 runs, seed {}) on z-scored features: {}; k by the best silhouette unless --k is given",
        p.seed,
        names.join(", ")
    ));
    r.note("predicted CLV = BG/NBD expected orders in the horizon (order days, as Fader–Hardie count purchases) × Gamma-Gamma expected order value; undiscounted");
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rousseeuw's silhouette, by hand: A = {(0,0), (0,1)}, B = {(10,10)} alone.
    /// s(0,0) = 1 − 1/√200, s(0,1) = 1 − 1/√181, and 0 for the lone point.
    #[test]
    fn a_point_alone_in_its_cluster_scores_zero() {
        let z = ndarray::array![[0.0, 0.0], [0.0, 1.0], [10.0, 10.0]];
        let s = silhouette(&z, &[0, 0, 1], 1).unwrap();
        let want = ((1.0 - 1.0 / 200f64.sqrt()) + (1.0 - 1.0 / 181f64.sqrt())) / 3.0;
        assert!((s - want).abs() < 1e-9, "{s} vs {want}");
    }

    #[test]
    fn naming_rules_in_order() {
        let f: Vec<String> = [
            "recency",
            "orders",
            "spend",
            "aov",
            "promo_share",
            "genre:Fantasy",
            "genre:History",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        assert_eq!(
            name_segment(&[0., 0., 1.2, 0.6, 2., 2., 0.], &f),
            "High-Spenders"
        );
        assert_eq!(
            name_segment(&[0., 0., 1.2, 0.1, 2., 2., 0.], &f),
            "Bargain Hunters"
        );
        assert_eq!(
            name_segment(&[0., 0., 0., 0., 0., 0.9, 1.5], &f),
            "History Buffs"
        );
        assert_eq!(
            name_segment(&[0., 0., 0., 0., 0., 0.9, 0.2], &f),
            "Fantasy Fans"
        );
        assert_eq!(name_segment(&[1.5, 0., 0., 0., 0., 0.1, 0.2], &f), "Lapsed");
        assert_eq!(
            name_segment(&[0., 1.5, 0., 0., 0., 0.1, 0.2], &f),
            "Regulars"
        );
        assert_eq!(name_segment(&[0.; 7], &f), "Occasional Buyers");
    }

    fn blobs(centres: &[[f64; 2]], per: usize, spread: f64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        use rand_distr::{Distribution, Normal};
        let noise = Normal::new(0.0, spread).unwrap();
        let mut x = Array2::zeros((centres.len() * per, 2));
        for (c, centre) in centres.iter().enumerate() {
            for i in 0..per {
                for j in 0..2 {
                    x[[c * per + i, j]] = centre[j] + noise.sample(&mut rng);
                }
            }
        }
        x
    }

    #[test]
    fn silhouette_picks_the_planted_k_and_flags_no_structure() {
        let x = blobs(&[[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], 60, 1.0);
        let c = cluster(&standardize(&x), None, 6, 1).unwrap();
        assert_eq!(c.k, 3);
        assert!(
            c.silhouettes
                .iter()
                .any(|s| s.0 == 3 && s.1 > WEAK_SILHOUETTE)
        );
        // Each planted blob is one cluster.
        for b in 0..3 {
            let l = c.labels[b * 60];
            assert!(c.labels[b * 60..(b + 1) * 60].iter().all(|&x| x == l));
        }
        // One Gaussian blob: no k reaches a convincing silhouette.
        let x = blobs(&[[0.0, 0.0]], 300, 1.0);
        let c = cluster(&standardize(&x), None, 6, 1).unwrap();
        let best = c.silhouettes.iter().map(|s| s.1).fold(f64::NAN, f64::max);
        assert!(best < WEAK_SILHOUETTE, "{best}");
        assert!(cluster(&standardize(&x), Some(0), 6, 1).is_err());
    }
}
