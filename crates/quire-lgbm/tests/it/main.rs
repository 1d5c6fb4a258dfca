//! quire-lgbm against the real LightGBM: small synthetic ranking data, and LightGBM's own
//! lambdarank example checked against the Python package's figures.

mod errors;
mod model_io;
mod real_data;
mod synth;
mod training;
