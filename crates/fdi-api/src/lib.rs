//! The FDI HTTP API on axum: routes, one error mapping, auth, thin handlers.
//!
//! Handlers parse and validate the request (errors name the field), call the store / run manager
//! / connectors held in [`AppState`], and shape the response exactly as the reference's tables
//! and examples. Decisions where the reference is ambiguous are in `docs/api-decisions.md`.

pub mod auth;
pub mod error;
pub mod extract;
pub mod listener;
pub mod metrics_page;
pub mod validate;

mod apps;
pub mod backend;
mod datasources;
mod discovery;
mod dispatches;
mod monitors;
mod multi_tasks;
pub mod openapi;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::routing::{get, post, put};
use fdi_connector::ConnectorRegistry;
use fdi_types::ErrorCode;

pub use auth::AuthConfig;
pub use error::{Error, Result};
pub use listener::FdiListener;

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub store: fdi_store::Store,
    pub scheduler: Arc<fdi_scheduler::Scheduler>,
    /// Datasources with their secrets and connectors; resolves tasks for the scheduler too.
    pub catalog: fdi_catalog::Catalog,
}

impl AppState {
    /// Open the store at `store_url` and assemble the monitor log and the scheduler (not yet
    /// started: call `scheduler.start()`).
    pub async fn open(
        store_url: &str,
        data_dir: &std::path::Path,
        connectors: Arc<ConnectorRegistry>,
        cfg: fdi_scheduler::SchedulerConfig,
    ) -> std::result::Result<Self, fdi_store::StoreError> {
        let store = fdi_store::Store::open(store_url, data_dir).await?;
        let monitor = fdi_monitor::MonitorLog::new(store.clone());
        let catalog = fdi_catalog::Catalog::new(store.clone(), connectors);
        let scheduler =
            fdi_scheduler::Scheduler::new(store.clone(), monitor, Arc::new(catalog.clone()), cfg);
        Ok(Self {
            store,
            scheduler,
            catalog,
        })
    }
}

/// The whole API: FDI routes + apps routes, behind the token check; unknown routes and methods
/// answer 404/405 in the FDI error format; `GET /health` answers without a token. Every error
/// response carries the FDI error body.
pub fn router(state: AppState, auth: Arc<AuthConfig>) -> Router {
    Router::new()
        .route("/health", get(health))
        // Prometheus metrics: open on loopback or with --metrics-public, else the token.
        .merge(metrics_page::routes(Arc::clone(&auth)))
        // The OpenAPI 3.1 document of every route (no token).
        .route("/v2/openapi.json", get(openapi::serve))
        // The web console (`/` and `/console/*`): public; its API calls carry the token.
        .merge(fdi_console::router())
        .merge(api_routes(auth))
        .with_state(state)
        .layer(axum::middleware::map_response(fdi_error_bodies))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The routes that need a token.
fn api_routes(auth: Arc<AuthConfig>) -> Router<AppState> {
    const FDI: &str = "/v2/{project_id}/fdi/instances/{instance_id}";
    const APPS: &str = "/v2/{project_id}/instances/{instance_id}/apps";
    let f = |p: &str| format!("{FDI}{p}");
    Router::new()
        .route(
            &f("/datasources"),
            get(datasources::list).post(datasources::create),
        )
        .route(
            &f("/datasources/{datasource_id}"),
            get(datasources::get)
                .put(datasources::update)
                .delete(datasources::delete),
        )
        .route(
            &f("/datasources/{datasource_id}/tables"),
            get(discovery::tables),
        )
        .route(
            &f("/datasources/{datasource_id}/columns"),
            get(discovery::columns),
        )
        .route(
            &f("/datasources/{datasource_id}/test-connect"),
            post(discovery::test_connect),
        )
        .route(
            &f("/datasources/{datasource_id}/test-sql"),
            post(discovery::test_sql),
        )
        .route(&f("/tasks"), get(tasks::list).post(tasks::create))
        .route(
            &f("/tasks/{task_id}"),
            get(tasks::get).put(tasks::update).delete(tasks::delete),
        )
        .route(&f("/tasks/{task_id}/run"), post(tasks::run))
        .route(&f("/tasks/{task_id}/terminate"), post(tasks::terminate))
        .route(
            &f("/tasks/{task_id}/dispatches"),
            get(dispatches::get).post(dispatches::create),
        )
        .route(
            &f("/tasks/{task_id}/dispatches/{dispatch_id}"),
            axum::routing::put(dispatches::update),
        )
        .route(&f("/batch-operation/tasks"), post(dispatches::batch))
        .route(&f("/statistics/tasks"), get(tasks::statistics))
        .route(&f("/task-monitors"), get(monitors::task_monitors))
        .route(
            &f("/tasks/{task_id}/monitor-logs"),
            get(monitors::monitor_logs),
        )
        .route(
            &f("/tasks/{task_id}/monitor-logs/{tracking_id}"),
            get(monitors::monitor_log),
        )
        .route(
            &f("/tasks/{task_id}/monitor-logs/{tracking_id}/events"),
            get(monitors::monitor_events),
        )
        .route(
            &f("/tasks/{task_id}/monitor-overview"),
            get(monitors::overview),
        )
        .route(APPS, get(apps::list).post(apps::create))
        .route(
            "/v2/{project_id}/instances/{instance_id}/validate-apps",
            get(apps::validate),
        )
        .route(&f("/multi-tasks"), post(multi_tasks::create))
        .route(&f("/multi-tasks/init"), post(multi_tasks::init))
        .route(
            &f("/multi-tasks/{task_id}"),
            get(multi_tasks::get)
                .put(multi_tasks::update)
                .delete(multi_tasks::delete),
        )
        .route(&f("/multi-tasks/{task_id}/reset"), post(multi_tasks::reset))
        .route(
            &f("/multi-tasks/{task_id}/mappings"),
            get(multi_tasks::mappings_list).post(multi_tasks::mapping_create),
        )
        .route(
            &f("/multi-tasks/{task_id}/mappings/{mapping_id}"),
            put(multi_tasks::mapping_update).delete(multi_tasks::mapping_delete),
        )
        .route(
            "/v2/{project_id}/fdi/multi-tasks/mappings/auto",
            post(multi_tasks::mappings_auto),
        )
        .route(
            &format!("{APPS}/{{app_id}}"),
            get(apps::get).put(apps::update).delete(apps::delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_token,
        ))
}

/// For load balancers and probes (no token): 200 when the metadata store answers, else 503.
async fn health(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let health_of = |state| openapi::Health {
        status: state,
        store: state,
    };
    match s.store.ping().await {
        Ok(()) => axum::Json(health_of("UP")).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health: the metadata store does not answer");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(health_of("DOWN")),
            )
                .into_response()
        }
    }
}

/// Any error response that is not already an FDI body (a layer's or the framework's own,
/// e.g. 413 from a body limit) gets one matching its status.
///
/// A 413 also closes the connection: the rest of the body was never read, so the connection
/// cannot carry another request (a client that reused it would see a broken response).
async fn fdi_error_bodies(resp: axum::response::Response) -> axum::response::Response {
    let mut resp = fdi_error_body(resp);
    if resp.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}

fn fdi_error_body(resp: axum::response::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let code = match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        413 => ErrorCode::PayloadTooLarge,
        414 => ErrorCode::UriTooLong,
        431 => ErrorCode::HeadersTooLarge,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::InvalidParameters,
    };
    let mut e = fdi_types::ApiError::of(code);
    e.status = status.as_u16();
    Error(e).into_response()
}

async fn not_found(uri: Uri) -> Error {
    Error::new(ErrorCode::NotFound, format!("no route for {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    Error::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed on {}", uri.path()),
    )
    .into_response()
}
