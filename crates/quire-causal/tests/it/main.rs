//! Integration tests of the estimators on published data.

mod lalonde;
