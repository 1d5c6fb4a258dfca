//! The ranking features: their names and order, and the one function that turns a request,
//! a book and a user into a feature vector.
//!
//! This crate is the code shared by training and serving. The feature job calls
//! [`assemble`] with the book's and user's state *as of each search* (replayed from the lake);
//! the ranking service calls it with the state of the online snapshot. Nothing here depends on
//! Polars, so the ranking service scores in microseconds without building data frames, and
//! builds without the data stack.

pub mod snapshot;
mod spec;

pub use snapshot::{OnlineSnapshot, SNAPSHOT_FORMAT, SnapshotError};
pub use spec::*;
