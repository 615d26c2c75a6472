//! Versioned migrations, one list for SQLite and PostgreSQL.
//!
//! `fdi_schema_version` holds one row per applied migration. At start every migration above the
//! highest applied version runs in its own transaction (DDL, then its data step, then its version
//! row), so a crash mid-way leaves the store at the previous version, never half migrated. On
//! PostgreSQL an advisory lock serialises nodes that start together.
//!
//! Version 1 is the store of the 0.1 release (documents in `fdi_docs`, claims, plans, task status,
//! watermarks): its statements are idempotent, so a data dir written by 0.1 is recognised as
//! version 1 and upgraded from there.

use sqlx::Row;

use crate::runs::{RunView, insert_steps};
use crate::{Pool, Result, Store, StoreError};

/// One migration: its DDL, and what to move or fill once the DDL ran.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub statements: &'static [&'static str],
    pub data: DataStep,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataStep {
    None,
    /// Move every run document of `fdi_docs` into `fdi_runs` / `fdi_run_steps`.
    RunsFromDocuments,
}

const V1_RELEASE_0_1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS fdi_docs (
        kind TEXT NOT NULL, id TEXT NOT NULL, scope TEXT NOT NULL, parent TEXT NOT NULL,
        created BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id))",
    "CREATE INDEX IF NOT EXISTS fdi_docs_parent ON fdi_docs (kind, parent, created)",
    "CREATE INDEX IF NOT EXISTS fdi_docs_scope ON fdi_docs (kind, scope, created)",
    // One row per task with an active run: which run, which node runs it, until when its lease
    // holds, and whether a terminate was asked (by any node).
    "CREATE TABLE IF NOT EXISTS fdi_claims (
        task_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, node_id TEXT NOT NULL,
        lease_until BIGINT NOT NULL, cancel_requested INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS fdi_plans (
        dispatch_id TEXT PRIMARY KEY, task_id TEXT NOT NULL, body TEXT NOT NULL,
        next_fire BIGINT, created BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS fdi_plans_task ON fdi_plans (task_id)",
    "CREATE INDEX IF NOT EXISTS fdi_plans_next ON fdi_plans (next_fire)",
    // status 1 = started (plan enabled / realtime running), 0 = stopped.
    "CREATE TABLE IF NOT EXISTS fdi_task_status (
        task_id TEXT PRIMARY KEY, status INTEGER NOT NULL, realtime INTEGER NOT NULL DEFAULT 0,
        updated BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fdi_watermarks (
        task_id TEXT PRIMARY KEY, end_ms BIGINT NOT NULL, updated BIGINT NOT NULL)",
];

const V2_RUNS_AS_ROWS: &[&str] = &[
    "CREATE TABLE fdi_runs (
        id TEXT PRIMARY KEY, task_id TEXT NOT NULL, start_ms BIGINT NOT NULL,
        dispatch_ms BIGINT NOT NULL, end_ms BIGINT, exec_status TEXT NOT NULL, pos TEXT NOT NULL,
        pos_status TEXT NOT NULL, status_code INTEGER NOT NULL, data_count BIGINT NOT NULL,
        dirty_count BIGINT NOT NULL, data_bytes BIGINT NOT NULL, read_ms BIGINT NOT NULL,
        write_ms BIGINT NOT NULL, remarks TEXT NOT NULL, run_trigger TEXT NOT NULL,
        node_id TEXT NOT NULL, window_begin BIGINT, window_end BIGINT)",
    // The newest runs of a task, and a task's last run, by index.
    "CREATE INDEX fdi_runs_task_start ON fdi_runs (task_id, start_ms, id)",
    // Counts by outcome per task.
    "CREATE INDEX fdi_runs_task_status ON fdi_runs (task_id, exec_status)",
    // Retention by age.
    "CREATE INDEX fdi_runs_start ON fdi_runs (start_ms)",
    "CREATE TABLE fdi_run_steps (
        run_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, code INTEGER NOT NULL,
        pos TEXT NOT NULL, pos_status TEXT NOT NULL, stage TEXT NOT NULL,
        data_count BIGINT NOT NULL, dirty_count BIGINT NOT NULL, data_bytes BIGINT NOT NULL,
        remarks TEXT NOT NULL, begin_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
        PRIMARY KEY (run_id, seq))",
];

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0.1 release: documents, claims, plans, task status, watermarks",
        statements: V1_RELEASE_0_1,
        data: DataStep::None,
    },
    Migration {
        version: 2,
        name: "runs and their steps as rows",
        statements: V2_RUNS_AS_ROWS,
        data: DataStep::RunsFromDocuments,
    },
];

/// Run documents moved per round trip by the data step.
const MOVE_BATCH: i64 = 500;

/// Apply every pending migration of [`MIGRATIONS`] inside one connection's transactions.
macro_rules! migrate_on {
    ($p:expr, $lock:expr) => {{
        let mut conn = $p.acquire().await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS fdi_schema_version (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied BIGINT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        for m in MIGRATIONS {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            if let Some(lock) = $lock {
                sqlx::raw_sql(sqlx::AssertSqlSafe(lock)).execute(&mut *tx).await?;
            }
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM fdi_schema_version")
                    .fetch_one(&mut *tx)
                    .await?;
            if applied.unwrap_or(0) >= m.version {
                continue;
            }
            tracing::info!(version = m.version, name = m.name, "migrating the metadata store");
            for statement in m.statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*statement)).execute(&mut *tx).await?;
            }
            if m.data == DataStep::RunsFromDocuments {
                let mut after = String::new();
                loop {
                    let rows = sqlx::query(
                        "SELECT id, parent, body FROM fdi_docs WHERE kind = 'run' AND id > $1 ORDER BY id LIMIT $2",
                    )
                    .bind(&after)
                    .bind(MOVE_BATCH)
                    .fetch_all(&mut *tx)
                    .await?;
                    let Some(last) = rows.last() else { break };
                    after = last.try_get("id")?;
                    for row in &rows {
                        let body: String = row.try_get("body")?;
                        let mut run: RunView = serde_json::from_str(&body)?;
                        // Early 0.1 documents name their task only in the `parent` column.
                        if run.task_id.is_empty() {
                            run.task_id = row.try_get("parent")?;
                        }
                        insert_run_row!(tx, run);
                        insert_steps!(tx, run.id, 0u32, run.steps);
                    }
                }
                sqlx::query("DELETE FROM fdi_docs WHERE kind = 'run'")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO fdi_schema_version (version, name, applied) VALUES ($1, $2, $3)")
                .bind(m.version)
                .bind(m.name)
                .bind(fdi_types::now_millis())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok::<(), StoreError>(())
    }};
}

/// Insert one run's row (no steps) inside a migration's transaction.
macro_rules! insert_run_row {
    ($tx:expr, $run:expr) => {{
        let sql = format!(
            "INSERT INTO fdi_runs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
            crate::runs::RUN_COLUMNS
        );
        crate::runs::bind_run!(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), $run)
            .execute(&mut *$tx)
            .await?;
    }};
}

impl Store {
    /// Bring the store to the newest schema version.
    pub(crate) async fn migrate(&self) -> Result<()> {
        match &self.pool {
            // Several nodes may start at once against one database: serialise the migrations.
            Pool::Pg(p) => migrate_on!(p, Some("SELECT pg_advisory_xact_lock(72210531)")),
            Pool::Sqlite(p) => migrate_on!(p, None::<&str>),
        }
    }

    /// The schema version the store is at.
    pub async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> = on_pool!(&self.pool, p => sqlx::query_scalar("SELECT MAX(version) FROM fdi_schema_version").fetch_one(p).await?);
        Ok(v.unwrap_or(0))
    }
}
