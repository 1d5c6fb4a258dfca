//! quire-onnx: LightGBM models as ONNX files, and scoring with them.
//!
//! - [`export`] turns LightGBM's JSON model dump into an ONNX model (`float` input cast to
//!   `double`, one `ai.onnx.ml.TreeEnsembleRegressor` node), written by Quire itself
//!   (hand-declared protobuf messages, no converter of another language), with the feature
//!   names and order, the training run and the model's name and version as ONNX metadata.
//!   Splits LightGBM makes are reproduced exactly — its `<=` against double thresholds,
//!   `default_left`, NaN handling, its zero band — or refused with an error naming the tree,
//!   split and feature (categorical splits, zero-as-missing); leaves are summed in double.
//! - [`OnnxScorer`] loads such a file into a small pool of single-threaded ONNX Runtime
//!   sessions (through `ort`, with ONNX Runtime loaded at run time from `ORT_DYLIB_PATH`),
//!   reads its metadata back and scores row-major `f32` feature matrices.
//!
//! Architecture Invariant: `ort` is a dependency of this crate only; the ranking service gets
//! ONNX Runtime through [`OnnxScorer`].

mod dump;
mod export;
mod proto;
mod scorer;

pub use export::{
    ExportError, ExportMeta, INPUT_NAME, META_FEATURE_NAMES, META_MODEL_NAME, META_MODEL_VERSION,
    META_OBJECTIVE, META_QUIRE_VERSION, META_RUN_ID, OUTPUT_NAME, export,
};
pub use scorer::{ModelInfo, ORT_DYLIB_VAR, OnnxScorer, Result, ScorerError, start_runtime};
