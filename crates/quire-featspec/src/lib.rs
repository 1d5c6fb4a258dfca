//! The ranking features: their names and order, and the one function that turns a request,
//! a book and a user into a feature vector.
//!
//! This crate is the code shared by training and serving. The feature job calls
//! [`assemble`] with the book's and user's state *as of each search* (replayed from the lake);
//! the ranking service computes the same vectors with [`ServingTables`] (the snapshot resolved
//! once: [`assemble`]'s request-independent parts cached, ids and tokens interned), which ends in
//! [`assemble_parts`] as `assemble` does, and is tested bit for bit against it. Nothing here depends on
//! Polars, so the ranking service scores in microseconds without building data frames, and
//! builds without the data stack.

mod serving;
pub mod snapshot;
mod spec;

pub use serving::{ServingTables, catalog_info};
pub use snapshot::{OnlineSnapshot, SNAPSHOT_FORMAT, SnapshotError};
pub use spec::*;
