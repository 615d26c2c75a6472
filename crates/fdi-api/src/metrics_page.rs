//! `GET /metrics`: the Prometheus text exposition of [`fdi_metrics`].
//!
//! - Metrics off (`--metrics off`): 404 FDI.xxxx like any unknown route.
//! - Access: Prometheus scrapers rarely send custom headers, so the page is open when the server
//!   says so ([`set_public`]: it listens on loopback only, or `--metrics-public`); otherwise it
//!   needs a valid `X-Auth-Token`, like every API route (any project's token will do: metrics are
//!   not per project).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fdi_types::ErrorCode;

use crate::AuthConfig;
use crate::error::Error;

static PUBLIC: AtomicBool = AtomicBool::new(false);

/// Whether `/metrics` answers without a token (set once at start-up).
pub fn set_public(public: bool) {
    PUBLIC.store(public, Ordering::Relaxed);
}

/// The `/metrics` route, with its own token check.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(auth: Arc<AuthConfig>) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(auth)
}

async fn metrics(State(auth): State<Arc<AuthConfig>>, headers: HeaderMap) -> Response {
    let Some(exporter) = fdi_metrics::exporter() else {
        return Error::new(
            ErrorCode::NotFound,
            "no route for /metrics: metrics are off (--metrics off / FDI_METRICS=off)",
        )
        .into_response();
    };
    if !PUBLIC.load(Ordering::Relaxed) {
        let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
        if let Err(e) = auth.check(token, None) {
            return e.into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, fdi_metrics::CONTENT_TYPE)],
        exporter.render(),
    )
        .into_response()
}
