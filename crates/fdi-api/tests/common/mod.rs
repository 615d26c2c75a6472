//! An in-process app over a real SQLite store in a temp dir, called through `tower::oneshot`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const TOKEN: &str = "t-all";
pub const SCOPED: &str = "t-other";
pub const PROJECT: &str = "p1";
pub const INSTANCE: &str = "i1";

static N: AtomicU32 = AtomicU32::new(0);

pub struct TestApp {
    pub router: Router,
    pub dir: PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestApp {
    pub async fn new() -> TestApp {
        let dir = std::env::temp_dir().join(format!(
            "fdi-api-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state = build_state(&dir).await;
        let auth = Arc::new(fdi_api::AuthConfig::parse(&format!(
            "{TOKEN},{SCOPED}@other"
        )));
        TestApp {
            router: fdi_api::router(state, auth),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("/v2/{PROJECT}/fdi/instances/{INSTANCE}{path}")
    }

    pub fn apps_url(&self, path: &str) -> String {
        format!("/v2/{PROJECT}/instances/{INSTANCE}/apps{path}")
    }

    pub async fn call(&self, method: &str, uri: &str, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, uri, body, Some(TOKEN)).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        let body = body
            .map(|b| Body::from(b.to_string()))
            .unwrap_or_else(Body::empty);
        self.send(req.body(body).unwrap()).await
    }

    pub async fn raw(&self, method: &str, uri: &str, body: &str) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .header("x-auth-token", TOKEN)
            .body(Body::from(body.to_string()))
            .unwrap();
        self.send(req).await
    }

    async fn send(&self, req: Request<Body>) -> (u16, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        (status, v)
    }

    pub async fn app(&self) -> String {
        let name = format!("app-{}", N.fetch_add(1, Ordering::Relaxed));
        let (st, b) = self
            .call("POST", &self.apps_url(""), Some(json!({"name": name})))
            .await;
        assert_eq!(st, 201, "{b}");
        b["id"].as_str().unwrap().to_string()
    }

    /// Two SQLite datasources: `people` (source) and an empty `people_copy` (target).
    pub async fn sqlite_pair(&self, app: &str) -> (String, String) {
        let src = self.dir.join("files/src.sqlite");
        let dst = self.dir.join("files/dst.sqlite");
        for (path, sql) in [
            (
                &src,
                "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO people VALUES (1, 'a'), (2, 'b');",
            ),
            (
                &dst,
                "CREATE TABLE people_copy (id INTEGER PRIMARY KEY, name TEXT);",
            ),
        ] {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        let mut ids = Vec::new();
        for (n, path) in [("src", &src), ("dst", &dst)] {
            let (st, b) = self
                .call(
                    "POST",
                    &self.url("/datasources"),
                    Some(json!({"datasource_name": n, "datasource_type": "SQLITE", "app_id": app, "content": {"url": path.to_string_lossy()}})),
                )
                .await;
            assert_eq!(st, 201, "{b}");
            ids.push(b["datasource_id"].as_str().unwrap().to_string());
        }
        (ids.remove(0), ids.remove(0))
    }
}

async fn build_state(dir: &std::path::Path) -> fdi_api::AppState {
    let url = format!("sqlite://{}", dir.join("fdi.db").display());
    let mut reg = fdi_connector::ConnectorRegistry::new();
    reg.register(Arc::new(fdi_connector_mysql::Factory));
    reg.register(Arc::new(fdi_connector_postgres::Factory));
    let files = fdi_connector::FilesRoot::new(dir.join("files"))
        .unwrap()
        .protect_dir(dir)
        .unwrap()
        .protect_file(dir.join("fdi.db"));
    reg.register(Arc::new(fdi_connector_sqlite::Factory::new(files)));
    let cfg = fdi_scheduler::SchedulerConfig::new("test-node");
    let state = fdi_api::AppState::open(&url, dir, Arc::new(reg), cfg)
        .await
        .unwrap();
    state.scheduler.start().await.unwrap();
    state
}
