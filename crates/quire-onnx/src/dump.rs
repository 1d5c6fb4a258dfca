//! LightGBM's JSON model dump (`LGBM_BoosterDumpModel`), as far as the exporter reads it.
//!
//! The layout is the one LightGBM 4 writes (`GBDT::DumpModel`, `Tree::ToJSON`): a header
//! (`num_class`, `objective`, `average_output`, `feature_names`, …) and `tree_info`, one entry
//! per tree, each with a nested `tree_structure`. Unknown fields are ignored (the dump also
//! carries gains, counts and feature importances). Every node is read into one struct with
//! optional fields, so the exporter can say exactly which tree and node is malformed instead
//! of serde's "did not match any variant". serde_json's recursion limit (128 nested values)
//! bounds the tree depth it can read to about 125 levels: a deeper tree (possible only with
//! very large `num_leaves` and no `max_depth`) is refused as invalid JSON, naming the limit.
//!
//! Numbers are parsed with serde_json's `float_roundtrip` feature: LightGBM prints doubles with
//! 17 significant digits, and only a correctly rounded parse gives back the exact threshold
//! (a threshold one ulp off can send a row down the other branch).

use serde::Deserialize;

/// The model header and its trees.
#[derive(Debug, Deserialize)]
pub(crate) struct Dump {
    pub num_class: u32,
    pub num_tree_per_iteration: u32,
    pub max_feature_idx: i64,
    /// Absent when the model was trained with a custom objective (`objective=none`).
    #[serde(default)]
    pub objective: Option<String>,
    #[serde(default)]
    pub average_output: bool,
    pub feature_names: Vec<String>,
    pub tree_info: Vec<TreeInfo>,
}

/// One tree of `tree_info`.
#[derive(Debug, Deserialize)]
pub(crate) struct TreeInfo {
    pub tree_index: usize,
    pub tree_structure: Node,
}

/// A split node (has `split_index`) or a leaf (has `leaf_value`).
#[derive(Debug, Deserialize)]
pub(crate) struct Node {
    pub split_index: Option<i64>,
    pub split_feature: Option<i64>,
    /// A number for `<=` splits, a string such as `"1||4"` for categorical (`==`) splits.
    pub threshold: Option<serde_json::Value>,
    pub decision_type: Option<String>,
    pub default_left: Option<bool>,
    pub missing_type: Option<String>,
    pub left_child: Option<Box<Node>>,
    pub right_child: Option<Box<Node>>,
    pub leaf_value: Option<f64>,
    /// Present on every leaf of a linear tree (`linear_tree=true`), whose output is
    /// `leaf_const + Σ leaf_coeff·x` rather than `leaf_value`.
    pub leaf_const: Option<f64>,
}
