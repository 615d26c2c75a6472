//! The FDI HTTP API on axum: routes, one error mapping, auth, thin handlers.
//!
//! Handlers parse and validate the request (errors name the field), call the store / run manager
//! / connectors held in [`AppState`], and shape the response exactly as the reference's tables
//! and examples. Decisions where the reference is ambiguous are in `docs/api-decisions.md`.

pub mod auth;
pub mod error;
pub mod extract;
pub mod validate;

mod apps;
pub mod backend;
mod datasources;
mod discovery;
mod dispatches;
mod monitors;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::http::Uri;
use axum::routing::{get, post};
use fdi_connector::ConnectorRegistry;
use fdi_types::ErrorCode;

pub use auth::AuthConfig;
pub use error::{Error, Result};

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub store: fdi_store::Store,
    pub scheduler: Arc<fdi_scheduler::Scheduler>,
    pub connectors: Arc<ConnectorRegistry>,
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
        let resolver = Arc::new(backend::StoreTaskResolver {
            store: store.clone(),
            connectors: Arc::clone(&connectors),
        });
        let scheduler = fdi_scheduler::Scheduler::new(store.clone(), monitor, resolver, cfg);
        Ok(Self {
            store,
            scheduler,
            connectors,
        })
    }
}

/// The whole API: FDI routes + apps routes, behind the token check; unknown routes and methods
/// answer 404/405 in the FDI error format.
pub fn router(state: AppState, auth: Arc<AuthConfig>) -> Router {
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
            &f("/tasks/{task_id}/monitor-overview"),
            get(monitors::overview),
        )
        .route(APPS, get(apps::list).post(apps::create))
        .route(
            &format!("{APPS}/{{app_id}}"),
            get(apps::get).put(apps::update).delete(apps::delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::require_token,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn not_found(uri: Uri) -> Error {
    Error::new(ErrorCode::NotFound, format!("no route for {}", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut e = fdi_types::ApiError::new(
        ErrorCode::InvalidParameters,
        format!("method not allowed on {}", uri.path()),
    );
    e.status = 405;
    Error(e).into_response()
}
