//! Checks on LightGBM parameter strings (`"key=value key=value"`) before they reach C.
//!
//! LightGBM splits the string on whitespace and each piece on `=`. A piece without `=` is only
//! a logged warning, so `eval_at=1, 3, 5` silently means `eval_at=1`; a value in brackets fails
//! later with a vaguer message. A few settings are known to crash training. This module turns
//! those into [`Error::Params`] with the fix in the message, and finds a parameter under any of
//! its aliases (only the few this crate looks at; the names are LightGBM 4.7's `config.h`).

use crate::{Error, Result};

/// `num_threads` and its aliases.
pub(crate) const NUM_THREADS: &[&str] =
    &["num_threads", "num_thread", "nthread", "nthreads", "n_jobs"];
/// `is_provide_training_metric` and its aliases.
pub(crate) const TRAINING_METRIC: &[&str] = &[
    "is_provide_training_metric",
    "training_metric",
    "is_training_metric",
    "train_metric",
];
/// `objective` and its aliases.
const OBJECTIVE: &[&str] = &["objective", "objective_type", "app", "application", "loss"];
/// `min_sum_hessian_in_leaf` and its aliases.
const MIN_SUM_HESSIAN: &[&str] = &[
    "min_sum_hessian_in_leaf",
    "min_sum_hessian_per_leaf",
    "min_sum_hessian",
    "min_hessian",
    "min_child_weight",
];

/// The canonical name of LightGBM parameter `name` (itself, or the parameter it is an alias of),
/// or `None` when LightGBM has no such parameter. From LightGBM's own table
/// (`LGBM_DumpParamAliases`), read once.
///
/// # Errors
/// [`Error::LightGbm`] if LightGBM cannot give its table (it always can).
pub fn canonical_param(name: &str) -> Result<Option<String>> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<String, String>> =
        std::sync::OnceLock::new();
    if let Some(t) = TABLE.get() {
        return Ok(t.get(name).cloned());
    }
    let json = crate::ffi::param_aliases()?;
    let parsed: std::collections::BTreeMap<String, Vec<String>> = serde_json::from_str(&json)
        .map_err(|e| Error::LightGbm {
            call: "LGBM_DumpParamAliases",
            message: format!("unexpected table: {e}"),
        })?;
    let mut table = std::collections::HashMap::new();
    for (canonical, aliases) in parsed {
        for alias in aliases {
            table.entry(alias).or_insert_with(|| canonical.clone());
        }
        table.insert(canonical.clone(), canonical);
    }
    Ok(TABLE.get_or_init(|| table).get(name).cloned())
}

/// A parsed parameter string: `(key, value)` pairs in order.
#[derive(Debug)]
pub(crate) struct Params<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Params<'a> {
    /// Parses and checks `params`: every whitespace-separated piece must be `key=value`, and no
    /// value may be a bracketed list.
    pub(crate) fn parse(params: &'a str) -> Result<Self> {
        let mut pairs = Vec::new();
        for piece in params.split_whitespace() {
            let Some((key, value)) = piece.split_once('=') else {
                return Err(Error::Params(format!(
                    "`{piece}` is not key=value (LightGBM would ignore it): write \
                     key=value pairs separated by spaces, lists without spaces, e.g. eval_at=1,3,5"
                )));
            };
            if key.is_empty() || value.contains('=') {
                return Err(Error::Params(format!("`{piece}` is not key=value")));
            }
            if value.starts_with('[') || value.ends_with(']') || value.ends_with(',') {
                return Err(Error::Params(format!(
                    "`{piece}`: write lists as comma-separated values without spaces or \
                     brackets, e.g. eval_at=1,3,5"
                )));
            }
            pairs.push((key, value));
        }
        Ok(Self { pairs })
    }

    /// The value of the parameter named by `names` (canonical name first, then aliases), as
    /// LightGBM resolves it: the canonical name wins over an alias, else the first alias given;
    /// the first value wins for a repeated key.
    pub(crate) fn get(&self, names: &[&str]) -> Option<&'a str> {
        names
            .iter()
            .find_map(|name| self.pairs.iter().find(|(k, _)| k == name).map(|&(_, v)| v))
    }

    /// Whether the boolean parameter named by `names` is on (`true` or `+`, any case, as
    /// LightGBM reads booleans).
    pub(crate) fn flag(&self, names: &[&str]) -> bool {
        self.get(names)
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "+")
    }

    /// Refuses settings known to break LightGBM 4.7 training: `min_sum_hessian_in_leaf=0`
    /// with the `lambdarank` objective can fail mid-training, depending on the data, with
    /// `Check failed: (best_split_info.left_count) > (0)` (LightGBM issues #2742, #4739): a
    /// split may leave one side with no rows once a zero hessian sum is allowed.
    pub(crate) fn check_known_crashes(&self) -> Result<()> {
        let lambdarank = self.get(OBJECTIVE) == Some("lambdarank");
        if let Some(v) = self.get(MIN_SUM_HESSIAN)
            && lambdarank
            && v.parse::<f64>().is_ok_and(|h| h <= 0.0)
        {
            return Err(Error::Params(format!(
                "min_sum_hessian_in_leaf={v} with objective=lambdarank can make LightGBM fail \
                 mid-training (`Check failed: (best_split_info.left_count) > (0)`); use a small \
                 positive value such as the default 1e-3"
            )));
        }
        Ok(())
    }

    /// The pairs back as a parameter string, keeping only keys in `names`.
    pub(crate) fn only(&self, names: &[&str]) -> String {
        self.pairs
            .iter()
            .filter(|(k, _)| names.contains(k))
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(params: &str) -> String {
        match Params::parse(params).and_then(|p| p.check_known_crashes()) {
            Ok(()) => panic!("{params:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_pairs_and_resolves_aliases() {
        let p = Params::parse("  objective=lambdarank\teval_at=1,3,5 nthread=2 num_threads=4\n")
            .unwrap();
        assert_eq!(p.get(OBJECTIVE), Some("lambdarank"));
        assert_eq!(p.get(&["eval_at"]), Some("1,3,5"));
        // The canonical name wins over an alias, wherever it is.
        assert_eq!(p.get(NUM_THREADS), Some("4"));
        assert_eq!(p.get(&["max_bin"]), None);
        assert_eq!(p.only(NUM_THREADS), "nthread=2 num_threads=4");
        assert_eq!(Params::parse("").unwrap().only(NUM_THREADS), "");
        let flag = |s| Params::parse(s).unwrap().flag(TRAINING_METRIC);
        assert!(flag("is_training_metric=TRUE") && flag("train_metric=+"));
        assert!(!flag("training_metric=false") && !flag("metric=ndcg"));
    }

    #[test]
    fn refuses_what_lightgbm_would_misread() {
        assert!(err("objective=lambdarank eval_at=1, 3, 5").contains("`eval_at=1,`: write lists"));
        assert!(err("eval_at=1 3").contains("`3` is not key=value"));
        assert!(err("eval_at=[1,3,5]").contains("without spaces or brackets"));
        assert!(err("eval_at=1,3,").contains("without spaces or brackets"));
        assert!(err("=3").contains("not key=value"));
        assert!(err("a=b=c").contains("not key=value"));
    }

    #[test]
    fn refuses_zero_hessian_with_lambdarank_under_any_alias() {
        for key in MIN_SUM_HESSIAN {
            let msg = err(&format!("objective=lambdarank {key}=0"));
            assert!(msg.contains("best_split_info.left_count"), "{msg}");
        }
        assert!(err("loss=lambdarank min_child_weight=0.0").contains("positive"));
        // Fine: positive, or another objective.
        for ok in [
            "objective=lambdarank min_sum_hessian_in_leaf=1e-3",
            "objective=regression min_sum_hessian_in_leaf=0",
            "objective=lambdarank",
        ] {
            Params::parse(ok).unwrap().check_known_crashes().unwrap();
        }
    }
}
