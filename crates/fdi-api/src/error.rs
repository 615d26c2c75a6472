//! The one place that turns errors into HTTP responses in the FDI error format.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fdi_types::{ApiError, ErrorCode};

/// An [`ApiError`] that axum can answer with: status + `{"error_code","error_msg","detail"}`.
#[derive(Debug)]
pub struct Error(pub ApiError);

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error(e)
    }
}

impl From<fdi_store::StoreError> for Error {
    fn from(e: fdi_store::StoreError) -> Self {
        if e.is_unavailable() {
            Error::new(ErrorCode::StoreUnavailable, e.to_string())
        } else {
            Error::internal(e)
        }
    }
}

impl From<fdi_scheduler::SchedulerError> for Error {
    fn from(e: fdi_scheduler::SchedulerError) -> Self {
        Error(e.into())
    }
}

impl Error {
    pub fn code(code: ErrorCode) -> Self {
        Error(ApiError::of(code))
    }
    pub fn new(code: ErrorCode, reason: impl AsRef<str>) -> Self {
        Error(ApiError::new(code, reason))
    }
    pub fn field(field: &str, reason: impl AsRef<str>) -> Self {
        Error(ApiError::invalid_field(field, reason))
    }
    pub fn internal(reason: impl std::fmt::Display) -> Self {
        Error(ApiError::internal(reason.to_string()))
    }
    pub fn with_detail(self, detail: impl Into<String>) -> Self {
        Error(self.0.with_detail(detail))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = self.0.code, message = %self.0.message, "request failed");
        } else {
            tracing::debug!(code = self.0.code, message = %self.0.message, "request refused");
        }
        (status, Json(self.0.body())).into_response()
    }
}
