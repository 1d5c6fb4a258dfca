//! quire-analytics on the published fixtures (data/) and on simulated lakes.

mod abtest;
mod causal;
mod customers;
mod fixtures;
mod range;
mod sim;
