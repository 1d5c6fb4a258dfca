//! The crate's error type.

/// Everything that can go wrong between Quire and LightGBM.
///
/// `LightGbm` carries LightGBM's own message (`LGBM_GetLastError`, read on the calling thread
/// right after the failing call); the other variants are checks this crate makes before calling
/// C, where LightGBM would crash, silently misread the input or give a vaguer message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A LightGBM C API call failed.
    #[error("lightgbm {call} failed: {message}")]
    LightGbm {
        /// The C function, e.g. `LGBM_BoosterCreate`.
        call: &'static str,
        /// LightGBM's message.
        message: String,
    },
    /// An input has the wrong length or shape.
    #[error("{what}: expected {expected}, got {actual}")]
    Shape {
        what: &'static str,
        expected: String,
        actual: String,
    },
    /// Query group sizes that do not describe the rows.
    #[error("query groups: {0}")]
    Groups(String),
    /// A label LightGBM cannot use (NaN, infinite, or outside what the objective allows).
    #[error("labels: {0}")]
    Label(String),
    /// A parameter string LightGBM would misread or that is known to crash it.
    #[error("parameters: {0}")]
    Params(String),
    /// A string handed to C contains a NUL byte.
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    /// A count does not fit LightGBM's 32-bit integers.
    #[error("{what} = {value} does not fit LightGBM's 32-bit counts")]
    TooLarge { what: &'static str, value: usize },
    /// A data file path LightGBM cannot be given (not UTF-8).
    #[error("path {0:?} is not valid UTF-8")]
    Path(std::path::PathBuf),
    /// A call this booster or dataset cannot take: a data index or iteration out of range, a
    /// change to a dataset already in use, early stopping without validation data.
    #[error("{0}")]
    Usage(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
