//! Why the service cannot start or stopped serving (request errors are [`crate::api::ApiError`],
//! model load errors [`crate::LoadError`]).

use std::net::SocketAddr;

/// The service could not start, or accepting connections failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--model` is not `NAME@ALIAS`.
    #[error("model {0:?} is not NAME@ALIAS (e.g. ltr@production)")]
    ModelAlias(String),
    /// ONNX Runtime's library cannot be found or started.
    #[error("ranking service: {0}")]
    Runtime(#[from] quire_onnx::ScorerError),
    /// The registry or the artifact store cannot be opened.
    #[error("ranking service: {0}")]
    Registry(#[from] quire_registry::Error),
    /// The listen address cannot be bound.
    #[error("ranking service: cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The scoring threads could not be started.
    #[error("ranking service: cannot start the scoring threads: {0}")]
    Threads(std::io::Error),
    /// The listening socket cannot tell its address.
    #[error("ranking service: serving failed: {0}")]
    Serve(std::io::Error),
}

/// The result type of the service's entry points.
pub type Result<T, E = Error> = std::result::Result<T, E>;
