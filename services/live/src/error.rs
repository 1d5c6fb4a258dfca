//! Why the service cannot start or stopped serving (request errors are `api::ApiError`).

use std::net::SocketAddr;

/// The service could not start, or accepting connections failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The lake cannot be opened or read.
    #[error("live service: {0}")]
    Lake(quire_lake::Error),
    /// Redis or the live state failed at start.
    #[error("live service: {0}")]
    Live(#[from] quire_live::Error),
    /// The listen address cannot be bound.
    #[error("live service: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The listening socket cannot tell its address.
    #[error("live service: serving failed: {0}")]
    Serve(std::io::Error),
}

/// The result type of the service's entry points.
pub type Result<T, E = Error> = std::result::Result<T, E>;
