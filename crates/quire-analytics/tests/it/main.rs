//! quire-analytics on the published fixtures (data/) and on simulated lakes.

mod causal;
mod fixtures;
mod range;
mod sim;
