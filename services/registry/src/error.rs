//! The crate's error type, and the one place errors become HTTP answers: MLflow's
//! `{"error_code", "message"}` with a non-200 status.

use std::net::SocketAddr;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::{error, info};

/// What can stop the server from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("opening the registry {url}")]
    Registry {
        url: String,
        source: quire_registry::Error,
    },
    #[error("opening the artifact store {path}")]
    Artifacts {
        path: String,
        source: quire_registry::Error,
    },
    #[error("listening on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error answer of the REST API.
///
/// MLflow's client retries 5xx answers for minutes, so only real server faults (the database
/// or the disk failing) are 5xx; everything a request can cause is 4xx.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// MLflow's `ErrorCode` name.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "RESOURCE_DOES_NOT_EXIST",
            message: message.into(),
        }
    }

    pub fn no_endpoint(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "ENDPOINT_NOT_FOUND",
            message: format!("no endpoint {method} {path} on this server"),
        }
    }
}

impl From<quire_registry::Error> for ApiError {
    fn from(e: quire_registry::Error) -> Self {
        use quire_registry::Error as E;
        let (status, code) = match &e {
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            E::AlreadyExists { .. } => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
            E::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            // Stored bytes that no longer match their digest: retrying cannot help, so this is
            // not a 5xx (which the client would retry for minutes).
            E::ChecksumMismatch { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "DATA_LOSS"),
            E::Database(_) | E::Migration(_) | E::Io { .. } | E::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR")
            }
        };
        Self {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            error!(code = self.code, message = %self.message, "request failed");
        } else {
            info!(status = self.status.as_u16(), code = self.code, message = %self.message, "request refused");
        }
        (
            self.status,
            Json(json!({"error_code": self.code, "message": self.message})),
        )
            .into_response()
    }
}
