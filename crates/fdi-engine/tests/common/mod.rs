//! Helpers for engine tests against the real servers (PostgreSQL, MariaDB, SQLite files).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use fdi_connector::{Connector, ConnectorFactory};
use fdi_engine::{Endpoint, EngineOptions, IncrementalWindow, RunEvent, RunOutcome, RunRequest};
use fdi_types::{StepCode, TaskDetail};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}_{}_{nanos}_{n}", std::process::id())
}

pub fn pg_content() -> Value {
    json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "", "database": "test"})
}

pub fn mysql_content() -> Value {
    json!({"host": "127.0.0.1", "port": "3306", "username": "root", "password": "", "database": "test"})
}

pub fn pg() -> Endpoint {
    Endpoint {
        datasource_type: fdi_connector_postgres::TYPE,
        connector: fdi_connector_postgres::Factory
            .create(&pg_content())
            .expect("pg connector"),
    }
}

pub fn mysql() -> Endpoint {
    Endpoint {
        datasource_type: fdi_connector_mysql::TYPE,
        connector: fdi_connector_mysql::Factory
            .create(&mysql_content())
            .expect("mysql connector"),
    }
}

pub fn sqlite(path: &std::path::Path) -> Endpoint {
    Endpoint {
        datasource_type: fdi_connector_sqlite::TYPE,
        connector: fdi_connector_sqlite::Factory::new(
            fdi_connector::FilesRoot::new(std::env::temp_dir()).unwrap(),
        )
        .create(&json!({"url": path.display().to_string()}))
        .expect("sqlite connector"),
    }
}

pub async fn pg_pool() -> sqlx::PgPool {
    sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .expect("pg")
}

pub async fn mysql_pool() -> sqlx::MySqlPool {
    sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
        .await
        .expect("mysql")
}

/// A new SQLite file (created) in the temp dir.
pub async fn sqlite_file(name: &str) -> (std::path::PathBuf, sqlx::SqlitePool) {
    let path = std::env::temp_dir().join(format!("{}.sqlite", unique(name)));
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.expect("sqlite");
    (path, pool)
}

pub async fn exec_pg(sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pg_pool().await)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub async fn exec_mysql(sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mysql_pool().await)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn options() -> EngineOptions {
    EngineOptions {
        batch_rows: 100,
        channel_batches: 2,
        progress_interval: std::time::Duration::from_millis(200),
        ..EngineOptions::default()
    }
}

/// A task detail as `v` says. Same-server runs here test the streaming path, so the same-server
/// shortcut is off unless `v` sets `isSupportInServerCopy` (tests/in_server.rs covers it).
pub fn detail(v: Value) -> TaskDetail {
    let mut d = TaskDetail::parse(&v.to_string()).expect("task_detail parses");
    d.target.in_server_copy.get_or_insert(false);
    d
}

pub struct Ran {
    pub outcome: RunOutcome,
    pub events: Vec<RunEvent>,
}

impl Ran {
    pub fn codes(&self) -> Vec<u16> {
        self.events
            .iter()
            .filter_map(|e| match e {
                RunEvent::Step(s) => Some(s.code.0),
                _ => None,
            })
            .collect()
    }

    pub fn step(&self, code: StepCode) -> Option<&fdi_engine::StepRecord> {
        self.events.iter().find_map(|e| match e {
            RunEvent::Step(s) if s.code == code => Some(s),
            _ => None,
        })
    }
}

pub async fn run_with(
    detail: TaskDetail,
    source: Endpoint,
    target: Endpoint,
    options: EngineOptions,
    cancel: CancellationToken,
) -> Ran {
    run_request(detail, source, target, options, cancel, None).await
}

/// One run reading one incremental window.
pub async fn run_window(
    detail: TaskDetail,
    source: Endpoint,
    target: Endpoint,
    window: IncrementalWindow,
) -> Ran {
    run_request(
        detail,
        source,
        target,
        options(),
        CancellationToken::new(),
        Some(window),
    )
    .await
}

pub async fn run_request(
    detail: TaskDetail,
    source: Endpoint,
    target: Endpoint,
    options: EngineOptions,
    cancel: CancellationToken,
    window: Option<IncrementalWindow>,
) -> Ran {
    execute(request(detail, source, target, options, cancel, window)).await
}

fn request(
    detail: TaskDetail,
    source: Endpoint,
    target: Endpoint,
    options: EngineOptions,
    cancel: CancellationToken,
    window: Option<IncrementalWindow>,
) -> RunRequest {
    RunRequest {
        task_id: "task-1".into(),
        run_id: fdi_types::new_id(),
        detail,
        source,
        target,
        cancel,
        options,
        window,
        dirty: Default::default(),
    }
}

/// A run whose dirty rows go as `dirty` says.
pub async fn run_with_dirty_policy(
    detail: TaskDetail,
    source: Endpoint,
    target: Endpoint,
    dirty: fdi_engine::DirtyDataPolicy,
) -> Ran {
    let mut req = request(
        detail,
        source,
        target,
        options(),
        CancellationToken::new(),
        None,
    );
    req.dirty = dirty;
    execute(req).await
}

async fn execute(req: RunRequest) -> Ran {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let outcome = fdi_engine::run(req, tx).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    Ran { outcome, events }
}

pub async fn run(detail: TaskDetail, source: Endpoint, target: Endpoint) -> Ran {
    run_with(detail, source, target, options(), CancellationToken::new()).await
}

pub fn connector(e: &Endpoint) -> Arc<dyn Connector> {
    e.connector.clone()
}

/// The run failed, and its remarks say `needle`.
#[track_caller]
pub fn assert_succeeded(ran: &Ran) {
    assert_eq!(
        ran.outcome.status,
        fdi_types::ExecuteStatus::Success,
        "{:?}",
        ran.outcome
    );
}

pub fn assert_failed_saying(ran: &Ran, needle: &str) {
    assert_eq!(
        ran.outcome.status,
        fdi_types::ExecuteStatus::Error,
        "{:?}",
        ran.outcome
    );
    assert!(
        ran.outcome.remarks.contains(needle),
        "remarks should say {needle:?}: {}",
        ran.outcome.remarks
    );
}
