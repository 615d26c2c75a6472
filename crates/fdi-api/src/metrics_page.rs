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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn scrape(app: &Router, token: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::get("/metrics");
        if let Some(t) = token {
            req = req.header("X-Auth-Token", t);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// One test: the exposure flag is process-wide.
    #[tokio::test]
    async fn the_token_is_needed_unless_metrics_are_public() {
        fdi_metrics::install().unwrap();
        let app: Router = routes(Arc::new(AuthConfig::parse("tok@p1")));
        set_public(false);
        let (status, body) = scrape(&app, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("FDI.1001"), "{body}");
        let (status, _) = scrape(&app, Some("wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, body) = scrape(&app, Some("tok")).await;
        assert_eq!(status, StatusCode::OK, "a project-scoped token may scrape");
        assert!(body.contains("fdi_active_runs 0"), "{body}");
        set_public(true);
        let (status, body) = scrape(&app, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("# TYPE fdi_active_runs gauge"), "{body}");
    }
}
