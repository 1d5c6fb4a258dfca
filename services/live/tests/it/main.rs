//! Integration tests of the live path with real parts: a Redis server of their own (AOF on,
//! as the Makefile's), the service on 127.0.0.1:0 with a lake in a temporary directory, the
//! simulator's events, and the dashboard in a real headless Chromium.

mod browser;
mod bus;
mod exactly_once;
mod harness;
mod intake;
mod late;
mod skew;
