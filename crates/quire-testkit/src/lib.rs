//! Real servers for the tests (never mocks): a PostgreSQL 15 server started once per test
//! process from Debian's package, and headless Chromium run as this environment needs it.
//! A dev-dependency only; `scripts/setup.sh` installs both programs.

pub mod chromium;
pub mod postgres;
