//! LightGBM JSON dump → ONNX graph `X float[N, F] → Cast(double) →
//! ai.onnx.ml.TreeEnsembleRegressor → Y float[N, 1]` (plus a `Sigmoid` for binary objectives).
//!
//! # Exact decisions, double-precision sums
//! LightGBM widens each `f32` feature to `f64`, sends a row left when `x <= threshold` with an
//! `f64` threshold, and sums leaf values in `f64`. ONNX Runtime's tree ensemble compares and
//! sums in the type of its input: with `float` input it holds `f32` thresholds and sums in
//! `f32`. So the graph casts the input to `double` and the thresholds and leaf values are
//! written as `double` tensors (`nodes_values_as_tensor`, `target_weights_as_tensor`): every
//! comparison is then LightGBM's own, against its exact threshold, and the one rounding left is
//! the final sum to `f32`. (With `f32` attributes each threshold would have to be rounded
//! *down* to the largest `f32` not above it — rounding to nearest can land above the threshold
//! and send rows equal to that `f32` the wrong way — and the `f32` sum drifts: up to 7e-6 from
//! LightGBM over 150 trees, close to the 1e-5 budget and growing with the number of trees.)
//!
//! Two more of LightGBM's predict-time rules are reproduced (see [`onnx_threshold`]):
//! - Missing values: with `missing_type = NaN`, NaN goes to the `default_left` side; with
//!   `None`, NaN is read as `0.0`, so it goes left iff `0.0 <= threshold`. Either becomes
//!   `nodes_missing_value_tracks_true`. `missing_type = Zero` (`zero_as_missing=true`) sends
//!   zeros *and* NaN to the default side, which one `BRANCH_LEQ` cannot express: refused.
//! - The zero band: LightGBM's dense predict turns every `|x| <= 1e-35` (`kZeroThreshold`)
//!   into `0.0` before the trees see it. Thresholds inside that band (LightGBM puts bin
//!   boundaries at exactly `±kZeroThreshold`) are moved to the band's edge so that all of the
//!   band goes where `0.0` goes.
//!
//! Categorical splits (`decision_type "=="`) truncate `x` to an integer and test a bitset;
//! ONNX comparisons reproduce that only with a copy of the left subtree per category range, so
//! they are refused, naming the feature. So are linear trees, multi-class models and
//! objectives whose output transform the exporter does not implement.
//!
//! # Outputs
//! Leaf values already include the learning rate, and `boost_from_average` is folded into
//! the first tree's leaves by LightGBM, so the dump has no separate initial score: the sum of
//! the leaves is LightGBM's raw score (an `init_score` given to a training `Dataset` is not
//! part of the model and LightGBM's predict does not add it either). `average_output`
//! (random-forest mode) becomes `aggregate_function = AVERAGE`, which divides by the number of
//! trees exactly as LightGBM divides by the number of iterations. `binary` (`sigmoid:s`) and
//! `cross_entropy` get a `Sigmoid` node after the ensemble, with `s` folded into the leaf
//! values. (Not `post_transform = LOGISTIC`: ONNX Runtime ignores every `post_transform` but
//! `PROBIT` when the regressor has one target, so LOGISTIC would silently return raw scores.)

use std::collections::BTreeSet;

use prost::Message;

use crate::dump::{Dump, Node};
use crate::proto::{
    AttributeProto, Dimension, ELEM_TYPE_DOUBLE, ELEM_TYPE_FLOAT, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto, attribute_type,
};

/// Metadata key: the model's feature names in input-column order, as a JSON array of strings.
pub const META_FEATURE_NAMES: &str = "quire.feature_names";
/// Metadata key: the registry run that trained the model.
pub const META_RUN_ID: &str = "quire.run_id";
/// Metadata key: the registered model's name.
pub const META_MODEL_NAME: &str = "quire.model_name";
/// Metadata key: the registered model's version (decimal), when known at export time.
pub const META_MODEL_VERSION: &str = "quire.model_version";
/// Metadata key: the quire-onnx version that wrote the file.
pub const META_QUIRE_VERSION: &str = "quire.version";
/// Metadata key: LightGBM's objective string (`lambdarank`, `binary sigmoid:1`, …; `none`
/// for a custom objective).
pub const META_OBJECTIVE: &str = "quire.objective";

/// Name of the graph input: `float[N, F]`, one row per item, columns in feature-name order.
pub const INPUT_NAME: &str = "X";
/// Name of the graph output: `float[N, 1]`, the model's score per row.
pub const OUTPUT_NAME: &str = "Y";

/// The input cast to `double`, which the ensemble reads.
const DOUBLE_INPUT_NAME: &str = "X_double";
/// The ensemble's output when a `Sigmoid` node follows it.
const RAW_SCORE_NAME: &str = "raw_score";

/// ONNX IR version written (ONNX 1.13+ readers, ONNX Runtime 1.14+).
const IR_VERSION: i64 = 8;
/// Default-domain opset (`Cast`, `Sigmoid`).
const ONNX_OPSET: i64 = 17;
/// `ai.onnx.ml` opset: `TreeEnsembleRegressor` version 3.
const ML_DOMAIN: &str = "ai.onnx.ml";
const ML_OPSET: i64 = 3;

/// LightGBM's `kZeroThreshold` (`1e-35f`): its dense predict reads `|x| <= ZERO_BAND` as `0.0`.
const ZERO_BAND: f32 = 1e-35;

/// What the exported file says about where the model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMeta {
    /// The registry run that trained the model (required).
    pub run_id: String,
    /// The registered model's name, e.g. `ltr` (required; also the ONNX graph name).
    pub model_name: String,
    /// The registered version, when it is known before the file is written.
    pub model_version: Option<i64>,
    /// More metadata pairs, written as given; keys must not repeat or reuse a `quire.*` key
    /// written by the exporter.
    pub extra: Vec<(String, String)>,
}

/// Why a LightGBM model could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The text is not JSON of the expected shape.
    #[error("lightgbm model dump is not valid json of a model: {0}")]
    Json(#[from] serde_json::Error),
    /// The dump is JSON but contradicts itself or misses a field.
    #[error("lightgbm model dump is malformed: {0}")]
    Malformed(String),
    /// The model has no trees.
    #[error("lightgbm model dump has no trees")]
    NoTrees,
    /// Multi-class models have one tree per class and iteration.
    #[error(
        "lightgbm model has {num_class} classes and {num_tree_per_iteration} trees per iteration; \
         only single-output models (regression, ranking, binary) can be exported"
    )]
    MultiOutput {
        /// `num_class` of the dump.
        num_class: u32,
        /// `num_tree_per_iteration` of the dump.
        num_tree_per_iteration: u32,
    },
    /// The objective's output transform is not implemented by the exporter.
    #[error("lightgbm objective `{objective}` cannot be exported: {reason}")]
    UnsupportedObjective {
        /// The dump's objective string.
        objective: String,
        /// What about it is not supported.
        reason: &'static str,
    },
    /// A categorical split (`decision_type "=="`).
    #[error(
        "tree {tree}, split {split}: categorical split on feature `{feature}` (column {column}) \
         cannot be exported; train with this feature as numerical (leave it out of categorical_feature)"
    )]
    CategoricalSplit {
        /// LightGBM's tree index.
        tree: usize,
        /// LightGBM's `split_index` within the tree.
        split: i64,
        /// The feature's name.
        feature: String,
        /// The feature's input column.
        column: usize,
    },
    /// A split with `missing_type "Zero"` (trained with `zero_as_missing=true`).
    #[error(
        "tree {tree}, split {split}: feature `{feature}` (column {column}) treats zero as missing \
         (zero_as_missing=true), which cannot be exported; train with zero_as_missing=false"
    )]
    ZeroAsMissing {
        /// LightGBM's tree index.
        tree: usize,
        /// LightGBM's `split_index` within the tree.
        split: i64,
        /// The feature's name.
        feature: String,
        /// The feature's input column.
        column: usize,
    },
    /// A tree with linear models in its leaves (`linear_tree=true`).
    #[error("tree {tree} has linear leaves (linear_tree=true), which cannot be exported")]
    LinearTree {
        /// LightGBM's tree index.
        tree: usize,
    },
    /// The [`ExportMeta`] is incomplete or its keys collide.
    #[error("export metadata: {0}")]
    InvalidMeta(String),
}

/// Converts LightGBM's JSON model dump (`LGBM_BoosterDumpModel`) into a serialized ONNX
/// `ModelProto`: input [`INPUT_NAME`] `float[N, F]` (F = the dump's `feature_names`, in order),
/// cast to `double`, one `TreeEnsembleRegressor` node (and a `Sigmoid` for binary objectives),
/// output [`OUTPUT_NAME`] `float[N, 1]`: LightGBM's own `predict` (normal, not raw: the
/// objective's transform is applied) rounded to `f32`. The metadata carries the feature names, the run
/// id, the model name and version, the objective and the exporter's version (see the `META_*`
/// keys), plus `meta.extra`.
///
/// # Errors
/// [`ExportError`] for invalid JSON, and for anything the exporter cannot reproduce exactly —
/// categorical splits, zero-as-missing, linear trees, multi-class models, unsupported
/// objectives — naming the tree, split and feature where there is one.
pub fn export(model_json: &str, meta: &ExportMeta) -> Result<Vec<u8>, ExportError> {
    let dump: Dump = serde_json::from_str(model_json)?;
    let metadata = metadata_props(&dump, meta)?;
    if dump.num_class != 1 || dump.num_tree_per_iteration != 1 {
        return Err(ExportError::MultiOutput {
            num_class: dump.num_class,
            num_tree_per_iteration: dump.num_tree_per_iteration,
        });
    }
    let output = output_transform(dump.objective.as_deref())?;
    let n_features = dump.feature_names.len();
    if dump.max_feature_idx.checked_add(1) != i64::try_from(n_features).ok() || n_features == 0 {
        return Err(ExportError::Malformed(format!(
            "max_feature_idx is {} but feature_names has {} names",
            dump.max_feature_idx, n_features
        )));
    }
    if dump.tree_info.is_empty() {
        return Err(ExportError::NoTrees);
    }

    let mut ensemble = Ensemble::default();
    for (tree_id, tree) in dump.tree_info.iter().enumerate() {
        let mut walk = TreeWalk {
            dump: &dump,
            tree: tree.tree_index,
            tree_id: tree_id as i64,
            next_id: 0,
            leaf_scale: output.leaf_scale(),
            out: &mut ensemble,
        };
        walk.node(&tree.tree_structure)?;
    }

    let nodes = graph_nodes(ensemble.attributes(dump.average_output), output);
    let objective = dump.objective.as_deref().unwrap_or("none");
    let graph = GraphProto {
        node: nodes,
        name: meta.model_name.clone(),
        doc_string: String::new(),
        input: vec![float_matrix(INPUT_NAME, n_features as i64)],
        output: vec![float_matrix(OUTPUT_NAME, 1)],
    };
    let model = ModelProto {
        ir_version: IR_VERSION,
        producer_name: "quire-onnx".to_owned(),
        producer_version: env!("CARGO_PKG_VERSION").to_owned(),
        domain: String::new(),
        model_version: meta.model_version.unwrap_or(0),
        doc_string: format!(
            "LightGBM model `{}` ({} trees, objective `{objective}`) from run {}, exported by quire-onnx",
            meta.model_name,
            dump.tree_info.len(),
            meta.run_id
        ),
        graph: Some(graph),
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: ONNX_OPSET,
            },
            OperatorSetIdProto {
                domain: ML_DOMAIN.to_owned(),
                version: ML_OPSET,
            },
        ],
        metadata_props: metadata,
    };
    Ok(model.encode_to_vec())
}

/// `X → Cast(double) → TreeEnsembleRegressor → Y`, with a `Sigmoid` before `Y` for
/// [`Output::Logistic`].
fn graph_nodes(ensemble: Vec<AttributeProto>, output: Output) -> Vec<NodeProto> {
    let node = |name: &str, op_type: &str, domain: &str, input: &str, output: &str| NodeProto {
        input: vec![input.to_owned()],
        output: vec![output.to_owned()],
        name: name.to_owned(),
        op_type: op_type.to_owned(),
        attribute: Vec::new(),
        domain: domain.to_owned(),
    };
    let cast = NodeProto {
        attribute: vec![int_attr("to", i64::from(ELEM_TYPE_DOUBLE))],
        ..node("to_double", "Cast", "", INPUT_NAME, DOUBLE_INPUT_NAME)
    };
    let trees = |output: &str| NodeProto {
        attribute: ensemble,
        ..node(
            "lightgbm_trees",
            "TreeEnsembleRegressor",
            ML_DOMAIN,
            DOUBLE_INPUT_NAME,
            output,
        )
    };
    match output {
        Output::Raw => vec![cast, trees(OUTPUT_NAME)],
        Output::Logistic { .. } => vec![
            cast,
            trees(RAW_SCORE_NAME),
            node("sigmoid", "Sigmoid", "", RAW_SCORE_NAME, OUTPUT_NAME),
        ],
    }
}

/// The threshold that makes ONNX's `x <= t'` (on the input widened to `f64`) agree with
/// LightGBM's predict for every `f32` input `x`: `t` itself, except inside LightGBM's zero
/// band, where the threshold moves to the band's edge so that the whole band goes where `0.0`
/// goes (see the module docs).
fn onnx_threshold(t: f64) -> f64 {
    let band = f64::from(ZERO_BAND);
    if (-band..0.0).contains(&t) {
        // 0.0 <= t is false: the whole band goes right, everything below it left.
        f64::from((-ZERO_BAND).next_down())
    } else if (0.0..band).contains(&t) {
        // 0.0 <= t is true: the whole band goes left, everything above it right.
        band
    } else {
        t
    }
}

/// How LightGBM turns the raw score into its prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Output {
    /// Identity: regression, ranking, custom objectives.
    Raw,
    /// `1 / (1 + exp(-scale · raw))`: a `Sigmoid` node after the ensemble.
    Logistic { scale: f64 },
}

impl Output {
    fn leaf_scale(self) -> f64 {
        match self {
            Output::Raw => 1.0,
            Output::Logistic { scale } => scale,
        }
    }
}

/// Reads LightGBM's objective string (`ObjectiveFunction::ToString`: the name, then
/// `key:value` parameters and flags such as `sqrt`).
fn output_transform(objective: Option<&str>) -> Result<Output, ExportError> {
    let Some(objective) = objective else {
        return Ok(Output::Raw);
    };
    let unsupported = |reason| ExportError::UnsupportedObjective {
        objective: objective.to_owned(),
        reason,
    };
    let mut tokens = objective.split_whitespace();
    let name = tokens.next().unwrap_or("");
    let params: Vec<&str> = tokens.collect();
    match name {
        "lambdarank" | "rank_xendcg" | "regression" | "regression_l1" | "huber" | "fair"
        | "quantile" | "mape" => {
            if params.contains(&"sqrt") {
                Err(unsupported(
                    "its prediction squares the raw score (reg_sqrt), which the exporter does not implement",
                ))
            } else {
                Ok(Output::Raw)
            }
        }
        "cross_entropy" => Ok(Output::Logistic { scale: 1.0 }),
        "binary" => {
            let sigmoid = params
                .iter()
                .find_map(|p| p.strip_prefix("sigmoid:"))
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    unsupported("binary objective without a positive sigmoid:<value>")
                })?;
            Ok(Output::Logistic { scale: sigmoid })
        }
        "poisson" | "gamma" | "tweedie" => Err(unsupported(
            "its prediction is exp(raw score), which the exporter does not implement",
        )),
        "cross_entropy_lambda" => Err(unsupported(
            "its prediction is log(1 + exp(raw score)), which the exporter does not implement",
        )),
        _ => Err(unsupported(
            "not a single-output objective the exporter knows",
        )),
    }
}

/// The metadata pairs, in a fixed order: the exporter's keys, then `meta.extra`.
fn metadata_props(
    dump: &Dump,
    meta: &ExportMeta,
) -> Result<Vec<StringStringEntryProto>, ExportError> {
    if meta.run_id.trim().is_empty() {
        return Err(ExportError::InvalidMeta("run_id is empty".to_owned()));
    }
    if meta.model_name.trim().is_empty() {
        return Err(ExportError::InvalidMeta("model_name is empty".to_owned()));
    }
    let feature_names = serde_json::to_string(&dump.feature_names)
        .map_err(|e| ExportError::Malformed(format!("feature_names: {e}")))?;
    let mut pairs = vec![
        (META_FEATURE_NAMES.to_owned(), feature_names),
        (META_RUN_ID.to_owned(), meta.run_id.clone()),
        (META_MODEL_NAME.to_owned(), meta.model_name.clone()),
    ];
    if let Some(version) = meta.model_version {
        pairs.push((META_MODEL_VERSION.to_owned(), version.to_string()));
    }
    pairs.push((
        META_QUIRE_VERSION.to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
    ));
    pairs.push((
        META_OBJECTIVE.to_owned(),
        dump.objective.clone().unwrap_or_else(|| "none".to_owned()),
    ));
    pairs.extend(meta.extra.iter().cloned());

    let mut seen = BTreeSet::new();
    for (key, _) in &pairs {
        if key.is_empty() {
            return Err(ExportError::InvalidMeta(
                "an extra metadata key is empty".to_owned(),
            ));
        }
        if !seen.insert(key.as_str()) {
            return Err(ExportError::InvalidMeta(format!(
                "metadata key `{key}` appears twice"
            )));
        }
    }
    Ok(pairs
        .into_iter()
        .map(|(key, value)| StringStringEntryProto { key, value })
        .collect())
}

/// A graph input/output `float[N, width]` with a symbolic batch dimension.
fn float_matrix(name: &str, width: i64) -> ValueInfoProto {
    let dims = vec![
        Dimension {
            dim_value: None,
            dim_param: Some("N".to_owned()),
        },
        Dimension {
            dim_value: Some(width),
            dim_param: None,
        },
    ];
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: ELEM_TYPE_FLOAT,
                shape: Some(TensorShapeProto { dim: dims }),
            }),
        }),
    }
}

/// The `nodes_*` and `target_*` attribute columns of the ensemble, one entry per node / leaf.
#[derive(Debug, Default)]
struct Ensemble {
    tree_ids: Vec<i64>,
    node_ids: Vec<i64>,
    feature_ids: Vec<i64>,
    modes: Vec<&'static str>,
    values: Vec<f64>,
    true_ids: Vec<i64>,
    false_ids: Vec<i64>,
    missing_tracks_true: Vec<i64>,
    target_tree_ids: Vec<i64>,
    target_node_ids: Vec<i64>,
    target_weights: Vec<f64>,
}

impl Ensemble {
    fn attributes(self, average: bool) -> Vec<AttributeProto> {
        let n_leaves = self.target_weights.len();
        vec![
            string_attr(
                "aggregate_function",
                if average { "AVERAGE" } else { "SUM" },
            ),
            int_attr("n_targets", 1),
            ints_attr("nodes_falsenodeids", self.false_ids),
            ints_attr("nodes_featureids", self.feature_ids),
            ints_attr("nodes_missing_value_tracks_true", self.missing_tracks_true),
            strings_attr("nodes_modes", &self.modes),
            ints_attr("nodes_nodeids", self.node_ids),
            ints_attr("nodes_treeids", self.tree_ids),
            ints_attr("nodes_truenodeids", self.true_ids),
            doubles_attr("nodes_values_as_tensor", self.values),
            string_attr("post_transform", "NONE"),
            ints_attr("target_ids", vec![0; n_leaves]),
            ints_attr("target_nodeids", self.target_node_ids),
            ints_attr("target_treeids", self.target_tree_ids),
            doubles_attr("target_weights_as_tensor", self.target_weights),
        ]
    }
}

/// Walks one tree depth-first, numbering nodes in pre-order from 0 (the root), as ONNX
/// requires, with the left (`<=`) child as the true branch.
struct TreeWalk<'a> {
    dump: &'a Dump,
    /// LightGBM's tree index, for messages.
    tree: usize,
    tree_id: i64,
    next_id: i64,
    leaf_scale: f64,
    out: &'a mut Ensemble,
}

impl TreeWalk<'_> {
    /// Appends `node` and its subtree; returns its id.
    fn node(&mut self, node: &Node) -> Result<i64, ExportError> {
        let id = self.next_id;
        self.next_id += 1;
        let pos = self.out.node_ids.len();
        self.out.tree_ids.push(self.tree_id);
        self.out.node_ids.push(id);
        match (node.split_index, node.leaf_value) {
            (Some(split), _) => self.split(node, split, pos)?,
            (None, Some(value)) => self.leaf(node, id, value)?,
            (None, None) => {
                return Err(
                    self.malformed(format!("node {id} has neither split_index nor leaf_value"))
                );
            }
        }
        Ok(id)
    }

    fn split(&mut self, node: &Node, split: i64, pos: usize) -> Result<(), ExportError> {
        let at = |what: &str| format!("split {split}: {what}");
        let column = node
            .split_feature
            .and_then(|f| usize::try_from(f).ok())
            .filter(|&f| f < self.dump.feature_names.len())
            .ok_or_else(|| self.malformed(at("split_feature missing or out of range")))?;
        let feature = &self.dump.feature_names[column];
        match node.decision_type.as_deref() {
            Some("<=") => {}
            Some("==") => {
                return Err(ExportError::CategoricalSplit {
                    tree: self.tree,
                    split,
                    feature: feature.clone(),
                    column,
                });
            }
            other => return Err(self.malformed(at(&format!("unknown decision_type {other:?}")))),
        }
        let threshold = node
            .threshold
            .as_ref()
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| self.malformed(at("threshold is not a number")))?;
        let default_left = node
            .default_left
            .ok_or_else(|| self.malformed(at("default_left missing")))?;
        let missing_goes_left = match node.missing_type.as_deref() {
            Some("NaN") => default_left,
            Some("None") => 0.0 <= threshold,
            Some("Zero") => {
                return Err(ExportError::ZeroAsMissing {
                    tree: self.tree,
                    split,
                    feature: feature.clone(),
                    column,
                });
            }
            other => return Err(self.malformed(at(&format!("unknown missing_type {other:?}")))),
        };
        let (Some(left), Some(right)) = (&node.left_child, &node.right_child) else {
            return Err(self.malformed(at("a child is missing")));
        };

        self.out.feature_ids.push(column as i64);
        self.out.modes.push("BRANCH_LEQ");
        self.out.values.push(onnx_threshold(threshold));
        self.out
            .missing_tracks_true
            .push(i64::from(missing_goes_left));
        // Children ids are known only after their subtrees are numbered.
        self.out.true_ids.push(-1);
        self.out.false_ids.push(-1);
        let true_id = self.node(left)?;
        let false_id = self.node(right)?;
        self.out.true_ids[pos] = true_id;
        self.out.false_ids[pos] = false_id;
        Ok(())
    }

    fn leaf(&mut self, node: &Node, id: i64, value: f64) -> Result<(), ExportError> {
        if node.leaf_const.is_some() {
            return Err(ExportError::LinearTree { tree: self.tree });
        }
        self.out.feature_ids.push(0);
        self.out.modes.push("LEAF");
        self.out.values.push(0.0);
        self.out.missing_tracks_true.push(0);
        self.out.true_ids.push(0);
        self.out.false_ids.push(0);
        self.out.target_tree_ids.push(self.tree_id);
        self.out.target_node_ids.push(id);
        self.out.target_weights.push(value * self.leaf_scale);
        Ok(())
    }

    fn malformed(&self, what: String) -> ExportError {
        ExportError::Malformed(format!("tree {}, {what}", self.tree))
    }
}

fn attr(name: &str, r#type: i32) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        r#type,
        ..AttributeProto::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        i,
        ..attr(name, attribute_type::INT)
    }
}

fn string_attr(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        s: s.as_bytes().to_vec(),
        ..attr(name, attribute_type::STRING)
    }
}

fn ints_attr(name: &str, ints: Vec<i64>) -> AttributeProto {
    AttributeProto {
        ints,
        ..attr(name, attribute_type::INTS)
    }
}

/// A 1-D `double` tensor attribute (the `*_as_tensor` attributes).
fn doubles_attr(name: &str, values: Vec<f64>) -> AttributeProto {
    let tensor = TensorProto {
        dims: vec![values.len() as i64],
        data_type: ELEM_TYPE_DOUBLE,
        double_data: values,
    };
    AttributeProto {
        t: Some(tensor),
        ..attr(name, attribute_type::TENSOR)
    }
}

fn strings_attr(name: &str, strings: &[&str]) -> AttributeProto {
    AttributeProto {
        strings: strings.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..attr(name, attribute_type::STRINGS)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn meta() -> ExportMeta {
        ExportMeta {
            run_id: "0123456789abcdef0123456789abcdef".to_owned(),
            model_name: "ltr".to_owned(),
            model_version: Some(7),
            extra: vec![("quire.feature_spec_sha256".to_owned(), "ab12".to_owned())],
        }
    }

    fn leaf(value: f64) -> Value {
        json!({"leaf_index": 0, "leaf_value": value, "leaf_weight": 1.0, "leaf_count": 10})
    }

    /// A `<=` split the way `Tree::NodeToJSON` writes it.
    fn split(
        index: i64,
        feature: i64,
        threshold: f64,
        default_left: bool,
        missing: &str,
        left: Value,
        right: Value,
    ) -> Value {
        json!({
            "split_index": index, "split_feature": feature, "split_gain": 1.5,
            "threshold": threshold, "decision_type": "<=", "default_left": default_left,
            "missing_type": missing, "internal_value": 0.0, "internal_weight": 1.0,
            "internal_count": 20, "left_child": left, "right_child": right
        })
    }

    fn dump_with(header: Value, trees: Vec<Value>) -> String {
        let mut dump = json!({
            "name": "tree", "version": "v4", "num_class": 1, "num_tree_per_iteration": 1,
            "label_index": 0, "max_feature_idx": 2, "objective": "lambdarank",
            "average_output": false, "feature_names": ["bm25", "price", "genre"],
            "monotone_constraints": [], "feature_infos": {},
            "tree_info": trees.into_iter().enumerate().map(|(i, t)| json!({
                "tree_index": i, "num_leaves": 2, "num_cat": 0, "shrinkage": 0.1,
                "tree_structure": t
            })).collect::<Vec<_>>(),
            "feature_importances": {}, "pandas_categorical": null
        });
        for (key, value) in header.as_object().unwrap() {
            dump[key] = value.clone();
        }
        dump.to_string()
    }

    fn dump(trees: Vec<Value>) -> String {
        dump_with(json!({}), trees)
    }

    fn decode(bytes: &[u8]) -> ModelProto {
        ModelProto::decode(bytes).unwrap()
    }

    /// The ensemble node.
    fn node_of(model: &ModelProto) -> &NodeProto {
        let graph = model.graph.as_ref().unwrap();
        graph
            .node
            .iter()
            .find(|n| n.op_type == "TreeEnsembleRegressor")
            .unwrap()
    }

    fn attribute<'m>(model: &'m ModelProto, name: &str) -> &'m AttributeProto {
        node_of(model)
            .attribute
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no attribute {name}"))
    }

    fn ints(model: &ModelProto, name: &str) -> Vec<i64> {
        attribute(model, name).ints.clone()
    }

    /// A `*_as_tensor` attribute: a 1-D double tensor.
    fn doubles(model: &ModelProto, name: &str) -> Vec<f64> {
        let a = attribute(model, &format!("{name}_as_tensor"));
        assert_eq!(a.r#type, attribute_type::TENSOR);
        let t = a.t.as_ref().unwrap();
        assert_eq!(
            (t.data_type, t.dims.as_slice()),
            (ELEM_TYPE_DOUBLE, &[t.double_data.len() as i64][..])
        );
        t.double_data.clone()
    }

    fn string(model: &ModelProto, name: &str) -> String {
        String::from_utf8(attribute(model, name).s.clone()).unwrap()
    }

    fn strings(model: &ModelProto, name: &str) -> Vec<String> {
        let a = attribute(model, name);
        a.strings
            .iter()
            .map(|s| String::from_utf8(s.clone()).unwrap())
            .collect()
    }

    fn export_ok(json: &str) -> ModelProto {
        decode(&export(json, &meta()).unwrap())
    }

    fn export_err(json: &str) -> ExportError {
        export(json, &meta()).unwrap_err()
    }

    #[test]
    fn one_split_becomes_a_branch_with_left_as_true() {
        let m = export_ok(&dump(vec![split(
            0,
            1,
            12.5,
            true,
            "None",
            leaf(-1.0),
            leaf(2.0),
        )]));
        assert_eq!(ints(&m, "nodes_treeids"), [0, 0, 0]);
        assert_eq!(ints(&m, "nodes_nodeids"), [0, 1, 2]);
        assert_eq!(ints(&m, "nodes_featureids"), [1, 0, 0]);
        assert_eq!(strings(&m, "nodes_modes"), ["BRANCH_LEQ", "LEAF", "LEAF"]);
        assert_eq!(doubles(&m, "nodes_values"), [12.5, 0.0, 0.0]);
        assert_eq!(ints(&m, "nodes_truenodeids"), [1, 0, 0]);
        assert_eq!(ints(&m, "nodes_falsenodeids"), [2, 0, 0]);
        assert_eq!(ints(&m, "nodes_missing_value_tracks_true"), [1, 0, 0]);
        assert_eq!(ints(&m, "target_treeids"), [0, 0]);
        assert_eq!(ints(&m, "target_nodeids"), [1, 2]);
        assert_eq!(ints(&m, "target_ids"), [0, 0]);
        assert_eq!(doubles(&m, "target_weights"), [-1.0, 2.0]);
        assert_eq!(attribute(&m, "n_targets").i, 1);
        assert_eq!(string(&m, "aggregate_function"), "SUM");
        assert_eq!(string(&m, "post_transform"), "NONE");

        let graph = m.graph.as_ref().unwrap();
        let nodes: Vec<_> = graph
            .node
            .iter()
            .map(|n| {
                (
                    n.op_type.as_str(),
                    n.domain.as_str(),
                    n.input.join(","),
                    n.output.join(","),
                )
            })
            .collect();
        assert_eq!(
            nodes,
            [
                ("Cast", "", "X".to_owned(), "X_double".to_owned()),
                (
                    "TreeEnsembleRegressor",
                    "ai.onnx.ml",
                    "X_double".to_owned(),
                    "Y".to_owned()
                )
            ]
        );
        let cast = &graph.node[0].attribute[0];
        assert_eq!(
            (cast.name.as_str(), cast.r#type, cast.i),
            ("to", attribute_type::INT, 11)
        );
        // Only the double forms of values and weights: ONNX allows one of each pair.
        assert!(
            node_of(&m)
                .attribute
                .iter()
                .all(|a| a.name != "nodes_values" && a.name != "target_weights")
        );
        assert_eq!(m.ir_version, 8);
        let opsets: Vec<_> = m
            .opset_import
            .iter()
            .map(|o| (o.domain.as_str(), o.version))
            .collect();
        assert_eq!(opsets, [("", 17), ("ai.onnx.ml", 3)]);
        let graph = m.graph.as_ref().unwrap();
        assert_eq!(graph.name, "ltr");
        let dims = |v: &ValueInfoProto| {
            let t = v.r#type.as_ref().unwrap().tensor_type.as_ref().unwrap();
            assert_eq!(t.elem_type, ELEM_TYPE_FLOAT);
            t.shape
                .as_ref()
                .unwrap()
                .dim
                .iter()
                .map(|d| (d.dim_param.clone(), d.dim_value))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            dims(&graph.input[0]),
            [(Some("N".to_owned()), None), (None, Some(3))]
        );
        assert_eq!(
            dims(&graph.output[0]),
            [(Some("N".to_owned()), None), (None, Some(1))]
        );
        assert_eq!(m.model_version, 7);
    }

    #[test]
    fn missing_values_follow_default_left_or_zero() {
        // (missing_type, threshold, default_left) → does NaN take the true (left) branch?
        let cases = [
            ("NaN", 0.5, true, 1),
            ("NaN", 0.5, false, 0),
            ("NaN", -0.5, true, 1),
            // None: NaN is read as 0.0, whatever default_left says.
            ("None", 0.5, false, 1),
            ("None", -0.5, true, 0),
            ("None", 0.0, false, 1),
        ];
        for (missing, threshold, default_left, expected) in cases {
            let m = export_ok(&dump(vec![split(
                0,
                0,
                threshold,
                default_left,
                missing,
                leaf(1.0),
                leaf(2.0),
            )]));
            assert_eq!(
                ints(&m, "nodes_missing_value_tracks_true")[0],
                expected,
                "{missing} {threshold} {default_left}"
            );
        }
    }

    #[test]
    fn thresholds_are_kept_exactly_outside_the_zero_band() {
        let ulp = f64::from(f32::EPSILON); // f32 ulp at 1.0 = 2^-23
        // Doubles that are no f32 (0.1, halfway between two f32s, just below one), f32 values,
        // and LightGBM's ±1e300 for infinite bounds: all kept bit for bit.
        for t in [
            0.1,
            -0.7,
            1.0 + 1.5 * ulp,
            2.0 - 1e-12,
            1.5,
            -3.0,
            1e300,
            -1e300,
            2e-35,
            -2e-35,
        ] {
            assert_eq!(onnx_threshold(t).to_bits(), t.to_bits(), "threshold {t:e}");
        }
        // So the nearest f32 of 0.1, which lies above 0.1, goes right as in LightGBM.
        assert!(f64::from(0.1_f32) > onnx_threshold(0.1));
    }

    #[test]
    fn thresholds_in_lightgbm_zero_band_move_to_its_edge() {
        let band = 1e-35_f32;
        let below_band = f64::from((-band).next_down());
        let cases = [
            // LightGBM's bin boundaries around zero are exactly ±kZeroThreshold.
            (f64::from(-band), below_band),
            (f64::from(band), f64::from(band)),
            (0.0, f64::from(band)),
            (-0.0, f64::from(band)),
            (-1e-40, below_band),
            (5e-36, f64::from(band)),
            // Outside the band: kept.
            (2e-35, 2e-35),
            (-2e-35, -2e-35),
        ];
        for (t, expected) in cases {
            assert_eq!(onnx_threshold(t), expected, "threshold {t:e}");
        }
    }

    /// LightGBM's predict: `|x| <= kZeroThreshold` reads as 0, then `x <= t` in f64.
    fn lightgbm_goes_left(x: f32, t: f64) -> bool {
        let x = if x.abs() <= 1e-35 { 0.0 } else { f64::from(x) };
        x <= t
    }

    /// f32 values near `t`: its nearest f32 and up to 3 ulps either side.
    fn near(t: f64) -> impl Strategy<Value = f32> {
        (-3i32..=3).prop_map(move |k| {
            let mut x = t as f32;
            for _ in 0..k.unsigned_abs() {
                x = if k > 0 { x.next_up() } else { x.next_down() };
            }
            x
        })
    }

    fn any_threshold() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>().prop_filter("finite", |t| t.is_finite()),
            -1e3..1e3_f64,
            -1e-30..1e-30_f64,
            Just(f64::from(1e-35_f32)),
            Just(f64::from(-1e-35_f32)),
        ]
    }

    proptest! {
        #[test]
        fn onnx_threshold_agrees_with_lightgbm(
            (t, x) in any_threshold().prop_flat_map(|t| {
                (Just(t), prop_oneof![near(t), any::<f32>(), near(0.0), near(1e-35), near(-1e-35)])
            })
        ) {
            prop_assume!(!x.is_nan());
            // ONNX Runtime widens the input to double (the Cast node) and compares.
            prop_assert_eq!(f64::from(x) <= onnx_threshold(t), lightgbm_goes_left(x, t), "x = {:e}, t = {:e}", x, t);
        }
    }

    #[test]
    fn trees_are_numbered_preorder_and_each_from_zero() {
        let deep = split(
            0,
            0,
            1.0,
            true,
            "NaN",
            split(1, 2, 3.0, false, "NaN", leaf(0.1), leaf(0.2)),
            leaf(0.3),
        );
        let single = json!({"leaf_value": 0.25, "leaf_count": 100});
        let m = export_ok(&dump(vec![deep, single]));
        assert_eq!(ints(&m, "nodes_treeids"), [0, 0, 0, 0, 0, 1]);
        assert_eq!(ints(&m, "nodes_nodeids"), [0, 1, 2, 3, 4, 0]);
        assert_eq!(ints(&m, "nodes_featureids"), [0, 2, 0, 0, 0, 0]);
        assert_eq!(
            strings(&m, "nodes_modes"),
            ["BRANCH_LEQ", "BRANCH_LEQ", "LEAF", "LEAF", "LEAF", "LEAF"]
        );
        assert_eq!(ints(&m, "nodes_truenodeids"), [1, 2, 0, 0, 0, 0]);
        assert_eq!(ints(&m, "nodes_falsenodeids"), [4, 3, 0, 0, 0, 0]);
        assert_eq!(
            ints(&m, "nodes_missing_value_tracks_true"),
            [1, 0, 0, 0, 0, 0]
        );
        assert_eq!(ints(&m, "target_treeids"), [0, 0, 0, 1]);
        assert_eq!(ints(&m, "target_nodeids"), [2, 3, 4, 0]);
        assert_eq!(doubles(&m, "target_weights"), [0.1, 0.2, 0.3, 0.25]);
    }

    #[test]
    fn single_leaf_model_exports_one_leaf() {
        let m = export_ok(&dump(vec![json!({"leaf_value": -0.5, "leaf_count": 3})]));
        assert_eq!(strings(&m, "nodes_modes"), ["LEAF"]);
        assert_eq!(doubles(&m, "target_weights"), [-0.5]);
    }

    #[test]
    fn output_transforms() {
        let t = || vec![split(0, 0, 1.0, true, "None", leaf(0.5), leaf(-0.25))];
        let (raw, sigmoid) = (false, true);
        let cases = [
            (json!({"objective": "lambdarank"}), "SUM", raw, [0.5, -0.25]),
            (json!({"objective": "regression"}), "SUM", raw, [0.5, -0.25]),
            (
                json!({"objective": "rank_xendcg"}),
                "SUM",
                raw,
                [0.5, -0.25],
            ),
            (
                json!({"objective": "binary sigmoid:1"}),
                "SUM",
                sigmoid,
                [0.5, -0.25],
            ),
            // sigmoid:2 is folded into the leaves: 1/(1+exp(-2·Σ)) = Sigmoid(Σ 2·leaf).
            (
                json!({"objective": "binary sigmoid:2"}),
                "SUM",
                sigmoid,
                [1.0, -0.5],
            ),
            (
                json!({"objective": "cross_entropy"}),
                "SUM",
                sigmoid,
                [0.5, -0.25],
            ),
            (
                json!({"objective": "regression", "average_output": true}),
                "AVERAGE",
                raw,
                [0.5, -0.25],
            ),
        ];
        for (header, aggregate, has_sigmoid, weights) in cases {
            let m = export_ok(&dump_with(header.clone(), t()));
            assert_eq!(string(&m, "aggregate_function"), aggregate, "{header}");
            assert_eq!(string(&m, "post_transform"), "NONE", "{header}");
            assert_eq!(doubles(&m, "target_weights"), weights, "{header}");
            let graph = m.graph.as_ref().unwrap();
            let chain: Vec<_> = graph
                .node
                .iter()
                .map(|n| {
                    (
                        n.op_type.as_str(),
                        n.input[0].as_str(),
                        n.output[0].as_str(),
                    )
                })
                .collect();
            let expected = if has_sigmoid {
                vec![
                    ("Cast", "X", "X_double"),
                    ("TreeEnsembleRegressor", "X_double", "raw_score"),
                    ("Sigmoid", "raw_score", "Y"),
                ]
            } else {
                vec![
                    ("Cast", "X", "X_double"),
                    ("TreeEnsembleRegressor", "X_double", "Y"),
                ]
            };
            assert_eq!(chain, expected, "{header}");
        }
        // A custom objective leaves no `objective` in the dump: raw scores.
        let mut custom: Value = serde_json::from_str(&dump(t())).unwrap();
        custom.as_object_mut().unwrap().remove("objective");
        let m = export_ok(&custom.to_string());
        assert_eq!(m.graph.as_ref().unwrap().node.len(), 2);
        let objective = m
            .metadata_props
            .iter()
            .find(|p| p.key == META_OBJECTIVE)
            .unwrap();
        assert_eq!(objective.value, "none");
    }

    #[test]
    fn unsupported_objectives_are_refused_by_name() {
        let t = || vec![leaf(1.0)];
        for objective in [
            "poisson",
            "gamma",
            "tweedie",
            "cross_entropy_lambda",
            "regression sqrt",
            "binary",
            "custom_thing",
        ] {
            let err = export_err(&dump_with(json!({"objective": objective}), t()));
            assert!(
                matches!(err, ExportError::UnsupportedObjective { .. }),
                "{objective}: {err}"
            );
            assert!(err.to_string().contains(&format!("`{objective}`")), "{err}");
        }
        let err = export_err(&dump_with(
            json!({"objective": "multiclass num_class:3", "num_class": 3, "num_tree_per_iteration": 3}),
            t(),
        ));
        assert!(
            matches!(err, ExportError::MultiOutput { num_class: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("3 classes"), "{err}");
    }

    #[test]
    fn categorical_split_is_refused_naming_feature_tree_and_split() {
        let mut categorical = split(4, 2, 0.0, false, "None", leaf(1.0), leaf(2.0));
        categorical["threshold"] = json!("1||3||7");
        categorical["decision_type"] = json!("==");
        let trees = vec![
            leaf(0.0),
            split(0, 0, 1.0, true, "NaN", categorical, leaf(3.0)),
        ];
        let err = export_err(&dump(trees));
        assert!(
            matches!(&err, ExportError::CategoricalSplit { tree: 1, split: 4, feature, column: 2 } if feature == "genre"),
            "{err:?}"
        );
        let message = err.to_string();
        for part in ["tree 1", "split 4", "`genre`", "categorical"] {
            assert!(message.contains(part), "{message}");
        }
    }

    #[test]
    fn zero_as_missing_is_refused_naming_the_feature() {
        let err = export_err(&dump(vec![split(
            0,
            1,
            0.5,
            true,
            "Zero",
            leaf(1.0),
            leaf(2.0),
        )]));
        assert!(
            matches!(&err, ExportError::ZeroAsMissing { tree: 0, split: 0, feature, column: 1 } if feature == "price"),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("`price`") && err.to_string().contains("zero_as_missing"),
            "{err}"
        );
    }

    #[test]
    fn linear_trees_are_refused() {
        let mut linear = leaf(1.0);
        linear["leaf_const"] = json!(0.5);
        linear["leaf_features"] = json!([0]);
        linear["leaf_coeff"] = json!([0.1]);
        let err = export_err(&dump(vec![split(
            0,
            0,
            1.0,
            true,
            "None",
            linear,
            leaf(2.0),
        )]));
        assert!(matches!(err, ExportError::LinearTree { tree: 0 }), "{err}");
    }

    #[test]
    fn malformed_dumps_say_where() {
        let err = export_err(&dump(vec![
            leaf(1.0),
            split(3, 9, 1.0, true, "None", leaf(1.0), leaf(2.0)),
        ]));
        assert!(
            err.to_string().contains("tree 1, split 3: split_feature"),
            "{err}"
        );

        let mut no_threshold = split(0, 0, 1.0, true, "None", leaf(1.0), leaf(2.0));
        no_threshold.as_object_mut().unwrap().remove("threshold");
        let err = export_err(&dump(vec![no_threshold]));
        assert!(
            err.to_string().contains("tree 0, split 0: threshold"),
            "{err}"
        );

        let mut odd_missing = split(0, 0, 1.0, true, "Sometimes", leaf(1.0), leaf(2.0));
        odd_missing["left_child"] = leaf(1.0);
        let err = export_err(&dump(vec![odd_missing]));
        assert!(
            err.to_string().contains("missing_type Some(\"Sometimes\")"),
            "{err}"
        );

        let err = export_err(&dump(vec![json!({"leaf_count": 1})]));
        assert!(
            err.to_string()
                .contains("neither split_index nor leaf_value"),
            "{err}"
        );

        let err = export_err(&dump_with(json!({"max_feature_idx": 5}), vec![leaf(1.0)]));
        assert!(
            err.to_string()
                .contains("max_feature_idx is 5 but feature_names has 3"),
            "{err}"
        );

        assert!(matches!(export_err(&dump(vec![])), ExportError::NoTrees));
        assert!(matches!(
            export_err("{\"num_class\": 1"),
            ExportError::Json(_)
        ));
        assert!(matches!(export_err("[]"), ExportError::Json(_)));
    }

    #[test]
    fn too_deep_trees_are_refused_as_json() {
        let mut tree = leaf(1.0);
        for i in 0..200 {
            tree = split(i, 0, f64::from(i as i32), true, "None", tree, leaf(2.0));
        }
        let err = export_err(&dump(vec![tree]));
        assert!(
            matches!(err, ExportError::Json(_)) && err.to_string().contains("recursion limit"),
            "{err}"
        );
    }

    #[test]
    fn metadata_carries_features_run_and_model() {
        let m = export_ok(&dump(vec![leaf(1.0)]));
        let props: Vec<(&str, &str)> = m
            .metadata_props
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(
            props,
            [
                (META_FEATURE_NAMES, r#"["bm25","price","genre"]"#),
                (META_RUN_ID, "0123456789abcdef0123456789abcdef"),
                (META_MODEL_NAME, "ltr"),
                (META_MODEL_VERSION, "7"),
                (META_QUIRE_VERSION, env!("CARGO_PKG_VERSION")),
                (META_OBJECTIVE, "lambdarank"),
                ("quire.feature_spec_sha256", "ab12"),
            ]
        );
        assert_eq!(m.producer_name, "quire-onnx");

        let no_version = ExportMeta {
            model_version: None,
            ..meta()
        };
        let m = decode(&export(&dump(vec![leaf(1.0)]), &no_version).unwrap());
        assert!(m.metadata_props.iter().all(|p| p.key != META_MODEL_VERSION));
        assert_eq!(m.model_version, 0);
    }

    #[test]
    fn metadata_is_checked() {
        let json = dump(vec![leaf(1.0)]);
        let cases = [
            (
                ExportMeta {
                    run_id: " ".to_owned(),
                    ..meta()
                },
                "run_id is empty",
            ),
            (
                ExportMeta {
                    model_name: String::new(),
                    ..meta()
                },
                "model_name is empty",
            ),
            (
                ExportMeta {
                    extra: vec![(META_RUN_ID.to_owned(), "x".to_owned())],
                    ..meta()
                },
                "`quire.run_id` appears twice",
            ),
            (
                ExportMeta {
                    extra: vec![
                        ("a".to_owned(), "1".to_owned()),
                        ("a".to_owned(), "2".to_owned()),
                    ],
                    ..meta()
                },
                "`a` appears twice",
            ),
            (
                ExportMeta {
                    extra: vec![(String::new(), "1".to_owned())],
                    ..meta()
                },
                "key is empty",
            ),
        ];
        for (bad, message) in cases {
            let err = export(&json, &bad).unwrap_err();
            assert!(
                matches!(err, ExportError::InvalidMeta(_)) && err.to_string().contains(message),
                "{err}"
            );
        }
    }

    #[test]
    fn thresholds_parse_to_the_exact_double_lightgbm_printed() {
        // LightGBM prints doubles with 17 significant digits; a correctly rounded parse gives
        // each back bit for bit (serde_json's default, faster parse is not always exact).
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let thresholds: Vec<f64> = (0..500)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
                (unit - 0.5) * 10f64.powi((state % 13) as i32 - 4)
            })
            .collect();
        let trees: Vec<String> = thresholds
            .iter()
            .enumerate()
            .map(|(i, t)| {
                format!(
                    r#"{{"tree_index":{i},"num_leaves":2,"num_cat":0,"shrinkage":0.1,"tree_structure":{{
                    "split_index":0,"split_feature":0,"split_gain":1,"threshold":{t:.16e},
                    "decision_type":"<=","default_left":true,"missing_type":"None",
                    "left_child":{{"leaf_index":0,"leaf_value":1}},"right_child":{{"leaf_index":1,"leaf_value":2}}}}}}"#
                )
            })
            .collect();
        let json = format!(
            r#"{{"num_class":1,"num_tree_per_iteration":1,"max_feature_idx":0,"objective":"lambdarank",
            "feature_names":["x"],"tree_info":[{}]}}"#,
            trees.join(",")
        );
        let m = export_ok(&json);
        let values = doubles(&m, "nodes_values");
        let parsed: Vec<f64> = values.iter().step_by(3).copied().collect();
        assert_eq!(parsed.len(), thresholds.len());
        for (p, t) in parsed.iter().zip(&thresholds) {
            assert_eq!(p.to_bits(), onnx_threshold(*t).to_bits(), "{t:.16e}");
        }
    }
}
