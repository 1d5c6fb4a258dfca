//! quire-analytics on the published fixtures (data/) and on simulated lakes.

mod fixtures;
mod sim;
