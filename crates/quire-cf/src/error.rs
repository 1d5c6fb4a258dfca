//! The crate's error type.

/// Everything that can go wrong in `quire-cf`. Messages say what and where.
#[derive(Debug, thiserror::Error)]
pub enum CfError {
    /// A triplet names a row or column outside the matrix.
    #[error("triplet {index}: ({row}, {col}) is outside the {n_rows} x {n_cols} matrix")]
    OutOfRange {
        index: usize,
        row: u32,
        col: u32,
        n_rows: usize,
        n_cols: usize,
    },
    /// A triplet's value is NaN or infinite.
    #[error("triplet {index}: value {value} at ({row}, {col}) is not finite")]
    NotFinite {
        index: usize,
        row: u32,
        col: u32,
        value: f32,
    },
    /// A matrix is too large for `u32` indices.
    #[error("matrix shape {n_rows} x {n_cols} is too large: at most 2^32 rows and columns")]
    TooLarge { n_rows: usize, n_cols: usize },
    /// A value the ALS confidence cannot use (`1 + alpha * value` needs `value >= 0`).
    #[error("interaction ({row}, {col}) has value {value}; ALS needs values >= 0")]
    NegativeValue { row: usize, col: usize, value: f32 },
    /// An [`crate::AlsConfig`] field out of its range.
    #[error("als config: {field} {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },
    /// Two inputs whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A model file that is not a valid Quire CF model.
    #[error("model file: {0}")]
    Format(String),
    /// Reading or writing a model failed.
    #[error("model file: i/o error while {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = CfError> = std::result::Result<T, E>;
