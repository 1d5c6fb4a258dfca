//! Training configs: the files data scientists edit in `training-configs/`.
//!
//! Typed and versioned; an unknown key, a missing one or a value out of range is an error
//! that names the file and the key. One file describes one run of one trainer: exactly one of
//! the `[ltr]` and `[cf]` tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The config format this code reads.
pub const CONFIG_VERSION: u32 = 1;

/// One training config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Format version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Registry experiment the run is logged under (created when missing).
    pub experiment: String,
    /// Registered model the trained model becomes a new version of.
    pub model: String,
    /// Optional run name (the registry generates one otherwise).
    #[serde(default)]
    pub run_name: Option<String>,
    /// A line on what this config is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Which events of the lake to learn from.
    #[serde(default)]
    pub data: DataConfig,
    /// Free-form tags for the run.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub ltr: Option<LtrConfig>,
    pub cf: Option<CfConfig>,
}

/// The lake's events to use: an inclusive range of UTC dates, unbounded when absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// LightGBM lambdarank on the learning-to-rank set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtrConfig {
    /// Share of searches, the latest by time, held out for early stopping.
    #[serde(default = "LtrConfig::default_valid")]
    pub valid_fraction: f64,
    /// Share of searches, the very latest, held out to report test metrics.
    #[serde(default = "LtrConfig::default_test")]
    pub test_fraction: f64,
    /// NDCG cut-offs to evaluate; early stopping watches the first.
    #[serde(default = "LtrConfig::default_eval_at")]
    pub eval_at: Vec<u32>,
    #[serde(default = "LtrConfig::default_rounds")]
    pub num_boost_round: u32,
    /// Stop when the validation NDCG at `eval_at[0]` has not improved for this many rounds.
    #[serde(default = "LtrConfig::default_patience")]
    pub early_stopping_rounds: u32,
    pub lightgbm: LightGbmParams,
}

impl LtrConfig {
    fn default_valid() -> f64 {
        0.15
    }
    fn default_test() -> f64 {
        0.15
    }
    fn default_eval_at() -> Vec<u32> {
        vec![5, 1, 3, 10]
    }
    fn default_rounds() -> u32 {
        300
    }
    fn default_patience() -> u32 {
        30
    }
}

/// LightGBM parameters (names as in LightGBM's docs). The objective is always `lambdarank`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightGbmParams {
    pub learning_rate: f64,
    pub num_leaves: u32,
    #[serde(default = "LightGbmParams::default_min_data")]
    pub min_data_in_leaf: u32,
    #[serde(default = "one")]
    pub feature_fraction: f64,
    #[serde(default = "one")]
    pub bagging_fraction: f64,
    #[serde(default)]
    pub bagging_freq: u32,
    #[serde(default)]
    pub lambda_l2: f64,
    #[serde(default = "LightGbmParams::default_max_bin")]
    pub max_bin: u32,
    #[serde(default = "LightGbmParams::default_seed")]
    pub seed: u64,
    /// 0 = LightGBM's default (all cores).
    #[serde(default)]
    pub num_threads: u32,
    /// Any other LightGBM parameter, passed as is (for example `lambdarank_truncation_level`).
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

fn one() -> f64 {
    1.0
}

impl LightGbmParams {
    fn default_min_data() -> u32 {
        20
    }
    fn default_max_bin() -> u32 {
        255
    }
    fn default_seed() -> u64 {
        42
    }
}

/// Implicit-feedback ALS on the CF matrices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CfConfig {
    pub factors: usize,
    /// f64 here though ALS computes in f32 (and the checks read it so): an f32 would be
    /// logged as its f64 expansion (0.05 as 0.05000000074505806).
    pub regularization: f64,
    /// Confidence = 1 + alpha × weight.
    pub alpha: f64,
    pub iterations: usize,
    #[serde(default = "CfConfig::default_cg_steps")]
    pub cg_steps: usize,
    #[serde(default = "CfConfig::default_seed")]
    pub seed: u64,
    /// The last days of the lake, held out to evaluate.
    #[serde(default = "CfConfig::default_test_days")]
    pub test_days: u32,
    /// Cut-off of precision/recall/NDCG.
    #[serde(default = "CfConfig::default_k")]
    pub k: usize,
    /// After evaluating, fit the registered model on all the data (train + test period).
    #[serde(default = "yes")]
    pub refit_on_all_data: bool,
    /// Confidence weight per interaction type.
    #[serde(default)]
    pub weights: quire_features::CfWeights,
}

fn yes() -> bool {
    true
}

impl CfConfig {
    fn default_cg_steps() -> usize {
        3
    }
    fn default_seed() -> u64 {
        42
    }
    fn default_test_days() -> u32 {
        3
    }
    fn default_k() -> usize {
        10
    }
}

/// Which trainer a config runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ltr,
    Cf,
}

impl TrainConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<(Self, String)> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let cfg =
            Self::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Ok((cfg, text))
    }

    /// Parses and checks a config's text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let cfg: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        cfg.check()?;
        Ok(cfg)
    }

    /// The trainer this config runs.
    pub fn kind(&self) -> Kind {
        if self.ltr.is_some() {
            Kind::Ltr
        } else {
            Kind::Cf
        }
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.version != CONFIG_VERSION {
            return Err(format!(
                "version = {}: this Quire reads config version {CONFIG_VERSION}",
                self.version
            ));
        }
        for (key, v) in [("experiment", &self.experiment), ("model", &self.model)] {
            if v.trim().is_empty() {
                return Err(format!("`{key}` must not be empty"));
            }
        }
        if let (Some(from), Some(to)) = (self.data.from, self.data.to)
            && from > to
        {
            return Err(format!("data: from = {from} is after to = {to}"));
        }
        match (&self.ltr, &self.cf) {
            (Some(_), Some(_)) => Err("both [ltr] and [cf]: one config trains one model".into()),
            (None, None) => Err("missing the trainer: an [ltr] or a [cf] table".into()),
            (Some(l), None) => l.check(),
            (None, Some(c)) => c.check(),
        }
    }
}

fn fraction(key: &str, x: f64) -> std::result::Result<(), String> {
    if (0.0..1.0).contains(&x) {
        Ok(())
    } else {
        Err(format!("{key} = {x}: must be in [0, 1)"))
    }
}

impl LtrConfig {
    fn check(&self) -> std::result::Result<(), String> {
        fraction("ltr.valid_fraction", self.valid_fraction)?;
        fraction("ltr.test_fraction", self.test_fraction)?;
        if self.valid_fraction <= 0.0 {
            return Err(
                "ltr.valid_fraction must be > 0 (early stopping needs a validation set)".into(),
            );
        }
        if self.valid_fraction + self.test_fraction >= 0.9 {
            return Err(
                "ltr.valid_fraction + ltr.test_fraction leave under 10% to train on".into(),
            );
        }
        if self.eval_at.is_empty() || self.eval_at.contains(&0) {
            return Err("ltr.eval_at must list cut-offs >= 1".into());
        }
        if self.num_boost_round == 0 {
            return Err("ltr.num_boost_round must be >= 1".into());
        }
        if self.early_stopping_rounds == 0 {
            return Err("ltr.early_stopping_rounds must be >= 1".into());
        }
        let p = &self.lightgbm;
        if !(p.learning_rate > 0.0 && p.learning_rate.is_finite()) {
            return Err(format!(
                "ltr.lightgbm.learning_rate = {}: must be > 0",
                p.learning_rate
            ));
        }
        if p.num_leaves < 2 {
            return Err("ltr.lightgbm.num_leaves must be >= 2".into());
        }
        if p.max_bin < 2 {
            return Err("ltr.lightgbm.max_bin must be >= 2".into());
        }
        if !(p.lambda_l2 >= 0.0 && p.lambda_l2.is_finite()) {
            return Err(format!(
                "ltr.lightgbm.lambda_l2 = {}: must be finite and >= 0",
                p.lambda_l2
            ));
        }
        // LightGBM reads its seed as a 32-bit int: a larger one would be cut, and the logged
        // param would not reproduce the run.
        if p.seed > i32::MAX as u64 {
            return Err(format!(
                "ltr.lightgbm.seed = {}: must be at most {}",
                p.seed,
                i32::MAX
            ));
        }
        for (k, x) in [
            ("feature_fraction", p.feature_fraction),
            ("bagging_fraction", p.bagging_fraction),
        ] {
            if !(x > 0.0 && x <= 1.0) {
                return Err(format!("ltr.lightgbm.{k} = {x}: must be in (0, 1]"));
            }
        }
        // LightGBM keeps the first of a repeated parameter and a canonical name over its
        // aliases, so an extra key naming a parameter Quire sets would be logged but ignored;
        // a misspelt one would be ignored with only a warning.
        for k in p.extra.keys() {
            let canonical = quire_lgbm::canonical_param(k)
                .map_err(|e| format!("ltr.lightgbm.extra.{k}: {e}"))?
                .ok_or_else(|| {
                    format!(
                        "ltr.lightgbm.extra.{k}: not a LightGBM parameter (nor an alias of one)"
                    )
                })?;
            let named = if canonical == *k {
                String::new()
            } else {
                format!(" (an alias of {canonical})")
            };
            if TYPED.contains(&canonical.as_str()) {
                return Err(format!(
                    "ltr.lightgbm.extra.{k}{named}: set it as ltr.lightgbm.{canonical}"
                ));
            }
            if let Some((_, how)) = RESERVED.iter().find(|(r, _)| *r == canonical) {
                return Err(format!("ltr.lightgbm.extra.{k}{named}: {how}"));
            }
        }
        Ok(())
    }
}

/// LightGBM parameters with a key of their own in `[ltr.lightgbm]`.
const TYPED: [&str; 10] = [
    "learning_rate",
    "num_leaves",
    "min_data_in_leaf",
    "feature_fraction",
    "bagging_fraction",
    "bagging_freq",
    "lambda_l2",
    "max_bin",
    "seed",
    "num_threads",
];

/// LightGBM parameters Quire sets itself, and where they come from.
const RESERVED: [(&str, &str); 12] = [
    ("objective", "set by Quire (always lambdarank)"),
    ("metric", "set by Quire (ndcg at ltr.eval_at)"),
    ("eval_at", "set it as ltr.eval_at"),
    (
        "label_gain",
        "set by Quire (the labels of docs/features.md)",
    ),
    ("data", "set by Quire (the feature job's training set)"),
    ("valid", "set by Quire (the feature job's validation set)"),
    ("num_iterations", "set it as ltr.num_boost_round"),
    (
        "early_stopping_round",
        "set it as ltr.early_stopping_rounds",
    ),
    (
        "deterministic",
        "set by Quire (always true: a run can be reproduced)",
    ),
    ("verbosity", "set by Quire"),
    ("task", "set by Quire (training)"),
    ("input_model", "set by Quire (a run trains from scratch)"),
];

impl CfConfig {
    fn check(&self) -> std::result::Result<(), String> {
        if self.factors == 0 || self.iterations == 0 || self.k == 0 {
            return Err("cf.factors, cf.iterations and cf.k must be >= 1".into());
        }
        // Checked as ALS computes them, in f32: 1e39 would be infinite there, 1e-50 zero.
        let (regularization, alpha) = (self.regularization as f32, self.alpha as f32);
        if !(regularization >= 0.0
            && regularization.is_finite()
            && alpha > 0.0
            && alpha.is_finite())
        {
            return Err(
                "cf.regularization must be finite and >= 0, cf.alpha finite and > 0".into(),
            );
        }
        if self.cg_steps == 0 {
            return Err("cf.cg_steps must be >= 1".into());
        }
        if self.test_days == 0 {
            return Err("cf.test_days must be >= 1".into());
        }
        let w = &self.weights;
        if [w.view, w.cart, w.purchase]
            .iter()
            .any(|&x| !(x >= 0.0 && (x as f32).is_finite()))
        {
            return Err("cf.weights must be finite and >= 0".into());
        }
        Ok(())
    }
}

/// Every `*.toml` in `dir`, sorted.
pub fn config_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?;
    for e in entries {
        let p = e
            .map_err(|e| Error::Config(format!("{}: {e}", dir.display())))?
            .path();
        if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LTR: &str = r#"
version = 1
experiment = "search-ranking"
model = "ltr"
[ltr]
[ltr.lightgbm]
learning_rate = 0.05
num_leaves = 31
"#;

    #[test]
    fn minimal_ltr_gets_defaults() {
        let c = TrainConfig::parse(LTR).unwrap();
        assert_eq!(c.kind(), Kind::Ltr);
        let l = c.ltr.unwrap();
        assert_eq!(l.eval_at, [5, 1, 3, 10]);
        assert_eq!(l.lightgbm.min_data_in_leaf, 20);
    }

    #[test]
    fn errors_name_the_key() {
        let typo = LTR.replace("num_leaves", "num_leafs");
        assert!(TrainConfig::parse(&typo).unwrap_err().contains("num_leafs"));
        let v2 = LTR.replace("version = 1", "version = 2");
        assert!(TrainConfig::parse(&v2).unwrap_err().contains("version"));
        let both = format!(
            "{LTR}\n[cf]\nfactors = 8\nregularization = 0.1\nalpha = 1.0\niterations = 3\n"
        );
        assert!(TrainConfig::parse(&both).unwrap_err().contains("both"));
        let none = "version = 1\nexperiment = \"e\"\nmodel = \"m\"\n";
        assert!(
            TrainConfig::parse(none)
                .unwrap_err()
                .contains("[ltr] or a [cf]")
        );
        let reserved = format!("{LTR}[ltr.lightgbm.extra]\nobjective = \"regression\"\n");
        assert!(
            TrainConfig::parse(&reserved)
                .unwrap_err()
                .contains("objective")
        );
        // Extra keys LightGBM would ignore: a typed key again (by an alias too), a key the
        // training loop sets, a misspelt one.
        for (line, want) in [
            (
                "learning_rate = \"0.9\"",
                "set it as ltr.lightgbm.learning_rate",
            ),
            ("eta = \"0.9\"", "eta (an alias of learning_rate)"),
            ("min_child_samples = \"1\"", "ltr.lightgbm.min_data_in_leaf"),
            ("num_trees = \"5\"", "ltr.num_boost_round"),
            ("early_stopping_rounds = \"5\"", "ltr.early_stopping_rounds"),
            (
                "lambdarank_truncaton_level = \"5\"",
                "not a LightGBM parameter",
            ),
        ] {
            let bad = format!("{LTR}[ltr.lightgbm.extra]\n{line}\n");
            let e = TrainConfig::parse(&bad).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        let fine = format!("{LTR}[ltr.lightgbm.extra]\nlambdarank_truncation_level = \"5\"\n");
        assert!(TrainConfig::parse(&fine).is_ok());
        let frac = LTR.replace("[ltr]\n", "[ltr]\nvalid_fraction = 1.5\n");
        assert!(
            TrainConfig::parse(&frac)
                .unwrap_err()
                .contains("valid_fraction")
        );
        // Values LightGBM or ALS would refuse late, cut or silently change.
        for (set, key) in [
            (
                "[ltr]\nearly_stopping_rounds = 0\n",
                "early_stopping_rounds",
            ),
            ("[ltr.lightgbm]\nlambda_l2 = -1.0\n", "lambda_l2"),
            ("[ltr.lightgbm]\nseed = 99999999999\n", "seed"),
        ] {
            let (table, line) = set.split_once('\n').unwrap();
            let bad = LTR.replace(&format!("{table}\n"), &format!("{table}\n{line}"));
            let e = TrainConfig::parse(&bad).unwrap_err();
            assert!(e.contains(key), "{set}: {e}");
        }
        let cf = "version = 1\nexperiment = \"e\"\nmodel = \"m\"\n[cf]\nfactors = 8\nregularization = 0.1\niterations = 3\n";
        assert!(TrainConfig::parse(&format!("{cf}alpha = 1.0\n")).is_ok());
        for (extra, key) in [
            ("alpha = inf\n", "alpha"),
            ("alpha = 1.0\ncg_steps = 0\n", "cg_steps"),
            ("alpha = 1e39\n", "alpha"),
            ("alpha = 1e-50\n", "alpha"),
        ] {
            let e = TrainConfig::parse(&format!("{cf}{extra}")).unwrap_err();
            assert!(e.contains(key), "{extra}: {e}");
        }
    }

    #[test]
    fn every_file_in_training_configs_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../training-configs");
        let files = config_files(&dir).unwrap();
        assert!(files.len() >= 2, "{files:?}");
        for f in files {
            TrainConfig::load(&f).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}
