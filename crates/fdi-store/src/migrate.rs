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
//!
//! The run documents of 0.1 are moved after the last migration, by the code that stores runs
//! today (with their tasks' totals and last runs): a move written against the run table of one
//! version would break at the next column added to it.

use sqlx::Row;

use crate::runs::{RunView, insert_counted_runs};
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
    /// Move every app, datasource and task document of `fdi_docs` into their tables.
    CatalogFromDocuments,
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

const V3_CATALOG_AS_ROWS: &[&str] = &[
    "CREATE TABLE fdi_apps (
        id TEXT PRIMARY KEY, project_id TEXT NOT NULL, instance_id TEXT NOT NULL,
        name TEXT NOT NULL, remark TEXT NOT NULL, app_key TEXT NOT NULL, favorite INTEGER NOT NULL,
        created BIGINT NOT NULL, updated BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX fdi_apps_name ON fdi_apps (project_id, instance_id, name)",
    "CREATE INDEX fdi_apps_created ON fdi_apps (project_id, instance_id, created)",
    "CREATE TABLE fdi_datasources (
        id TEXT PRIMARY KEY, project_id TEXT NOT NULL, instance_id TEXT NOT NULL,
        name TEXT NOT NULL, ds_type TEXT NOT NULL, app_id TEXT NOT NULL, sealed TEXT NOT NULL,
        description TEXT, created BIGINT NOT NULL, updated BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX fdi_datasources_name ON fdi_datasources (project_id, instance_id, name)",
    "CREATE INDEX fdi_datasources_created ON fdi_datasources (project_id, instance_id, created)",
    "CREATE INDEX fdi_datasources_app ON fdi_datasources (app_id)",
    "CREATE TABLE fdi_tasks (
        id TEXT PRIMARY KEY, project_id TEXT NOT NULL, instance_id TEXT NOT NULL,
        name TEXT NOT NULL, task_type TEXT NOT NULL, source_ds TEXT NOT NULL,
        target_ds TEXT NOT NULL, description TEXT, task_tag TEXT, task_detail TEXT NOT NULL,
        created BIGINT NOT NULL, updated BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX fdi_tasks_name ON fdi_tasks (project_id, instance_id, name)",
    "CREATE INDEX fdi_tasks_created ON fdi_tasks (project_id, instance_id, created)",
    "CREATE INDEX fdi_tasks_source ON fdi_tasks (source_ds)",
    "CREATE INDEX fdi_tasks_target ON fdi_tasks (target_ds)",
];

const V4_RUN_TOTALS: &[&str] = &[
    // How many runs each task has, kept with every insert and delete of runs: the total of a
    // task's monitor log without counting its runs.
    "CREATE TABLE fdi_task_run_totals (task_id TEXT PRIMARY KEY, runs BIGINT NOT NULL)",
    "INSERT INTO fdi_task_run_totals (task_id, runs) SELECT task_id, COUNT(*) FROM fdi_runs GROUP BY task_id",
];

const V5_LAST_RUN_PER_TASK: &[&str] = &[
    // Each task's newest run (by start, then id) and that run's status and position, kept with
    // every insert, save and delete of runs: task lists, task monitors and statistics read it
    // instead of searching the runs of every task.
    "ALTER TABLE fdi_task_run_totals ADD COLUMN last_run_id TEXT",
    "ALTER TABLE fdi_task_run_totals ADD COLUMN last_start_ms BIGINT",
    "ALTER TABLE fdi_task_run_totals ADD COLUMN last_status TEXT",
    "ALTER TABLE fdi_task_run_totals ADD COLUMN last_pos TEXT",
    crate::runs::REFRESH_LAST_RUN_OF_ALL,
];

const V6_WINDOW_NULLS: &[&str] = &[
    // Whether a run's incremental window also read the rows whose cursor is NULL (a first window).
    "ALTER TABLE fdi_runs ADD COLUMN window_nulls INTEGER NOT NULL DEFAULT 0",
];

const V7_COMBINATION_TASKS: &[&str] = &[
    // Combination (CDC) tasks live with the normal ones (runs, claims, status and monitors serve
    // both); `kind` tells them apart.
    "ALTER TABLE fdi_tasks ADD COLUMN kind TEXT NOT NULL DEFAULT 'NORMAL'",
    // A combination task's table mappings: source table -> target table with column pairs
    // (`body`, JSON), status and match percentage.
    "CREATE TABLE fdi_cdc_mappings (
        id TEXT PRIMARY KEY, task_id TEXT NOT NULL, source_table TEXT NOT NULL,
        target_table TEXT NOT NULL, status TEXT NOT NULL, mapping_percent INTEGER NOT NULL,
        body TEXT NOT NULL, created BIGINT NOT NULL, updated BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX fdi_cdc_mappings_source ON fdi_cdc_mappings (task_id, source_table)",
    // Where a combination task's change stream continues (stored after the target commit).
    "CREATE TABLE fdi_cdc_positions (
        task_id TEXT PRIMARY KEY, position TEXT NOT NULL, updated BIGINT NOT NULL)",
];

const V8_RUN_PROGRESS: &[&str] = &[
    // A run's live progress, kept after its end: rows read, the source's row estimate (NULL:
    // none), percent done (NULL: unknown), rows per second, the time left in ms (NULL: unknown).
    "ALTER TABLE fdi_runs ADD COLUMN read_count BIGINT NOT NULL DEFAULT 0",
    "ALTER TABLE fdi_runs ADD COLUMN total_count BIGINT",
    "ALTER TABLE fdi_runs ADD COLUMN progress INTEGER",
    "ALTER TABLE fdi_runs ADD COLUMN rows_per_second DOUBLE PRECISION NOT NULL DEFAULT 0",
    "ALTER TABLE fdi_runs ADD COLUMN remaining_ms BIGINT",
    // Runs that ended before this version: what they read is what they wrote, and a success is
    // done.
    "UPDATE fdi_runs SET read_count = data_count + dirty_count",
    "UPDATE fdi_runs SET progress = 100 WHERE exec_status = 'SUCCESS'",
];

const V9_STEP_PARTS: &[&str] = &[
    // The parts of a run at a step (a CDC run's tables), JSON; NULL for a step without parts.
    "ALTER TABLE fdi_run_steps ADD COLUMN sub_steps TEXT",
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
        data: DataStep::None,
    },
    Migration {
        version: 3,
        name: "apps, datasources and tasks as rows with unique names",
        statements: V3_CATALOG_AS_ROWS,
        data: DataStep::CatalogFromDocuments,
    },
    Migration {
        version: 4,
        name: "run totals per task",
        statements: V4_RUN_TOTALS,
        data: DataStep::None,
    },
    Migration {
        version: 5,
        name: "last run per task",
        statements: V5_LAST_RUN_PER_TASK,
        data: DataStep::None,
    },
    Migration {
        version: 6,
        name: "whether a run's window read NULL cursors",
        statements: V6_WINDOW_NULLS,
        data: DataStep::None,
    },
    Migration {
        version: 7,
        name: "combination (CDC) tasks: kind, mappings, stream positions",
        statements: V7_COMBINATION_TASKS,
        data: DataStep::None,
    },
    Migration {
        version: 8,
        name: "live progress of runs",
        statements: V8_RUN_PROGRESS,
        data: DataStep::None,
    },
    Migration {
        version: 9,
        name: "sub-steps of run steps",
        statements: V9_STEP_PARTS,
        data: DataStep::None,
    },
];

/// The 0.1 documents of the catalog, as that release wrote them.
mod v1 {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct App {
        pub id: String,
        pub name: String,
        #[serde(default)]
        pub remark: String,
        #[serde(default)]
        pub key: String,
        #[serde(default)]
        pub favorite: bool,
        pub created_ms: i64,
        pub updated_ms: i64,
    }

    #[derive(Deserialize)]
    pub struct Datasource {
        pub id: String,
        pub name: String,
        pub datasource_type: String,
        pub app_id: String,
        pub sealed: String,
        #[serde(default)]
        pub description: Option<String>,
        pub created_ms: i64,
        pub updated_ms: i64,
    }

    #[derive(Deserialize)]
    pub struct Task {
        pub id: String,
        pub name: String,
        pub task_type: String,
        pub source_datasource_id: String,
        pub target_datasource_id: String,
        #[serde(default)]
        pub description: Option<String>,
        #[serde(default)]
        pub task_tag: Option<String>,
        pub task_detail: String,
        pub created_ms: i64,
        pub updated_ms: i64,
    }
}

/// A name that is free in `table` for the scope: `name` itself, or (when 0.1 let two creates race
/// to the same name) `name-<id prefix>`, so the unique index can be built without losing a row.
macro_rules! free_name {
    ($tx:expr, $table:expr, $project:expr, $instance:expr, $name:expr, $id:expr) => {{
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE project_id = $1 AND instance_id = $2 AND name = $3",
            $table
        );
        let taken: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind($project)
            .bind($instance)
            .bind(&$name)
            .fetch_one(&mut *$tx)
            .await?;
        if taken == 0 {
            $name.clone()
        } else {
            let renamed = format!("{}-{}", $name, &$id[..$id.len().min(8)]);
            tracing::warn!(table = $table, id = %$id, from = %$name, to = %renamed, "duplicate name renamed during the upgrade");
            renamed
        }
    }};
}

/// Move the catalog documents of 0.1 into their tables (inside a migration's transaction).
macro_rules! catalog_from_documents {
    ($tx:expr) => {{
        let rows = sqlx::query(
            "SELECT kind, scope, body FROM fdi_docs WHERE kind IN ('app', 'datasource', 'task') ORDER BY created, id",
        )
        .fetch_all(&mut *$tx)
        .await?;
        for row in &rows {
            let kind: String = row.try_get("kind")?;
            let scope: String = row.try_get("scope")?;
            let body: String = row.try_get("body")?;
            let (project, instance) = scope.split_once('/').unwrap_or((scope.as_str(), ""));
            match kind.as_str() {
                "app" => {
                    let a: v1::App = serde_json::from_str(&body)?;
                    let name = free_name!($tx, "fdi_apps", project, instance, a.name, a.id);
                    sqlx::query("INSERT INTO fdi_apps (id, project_id, instance_id, name, remark, app_key, favorite, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
                        .bind(&a.id).bind(project).bind(instance).bind(&name).bind(&a.remark).bind(&a.key)
                        .bind(i32::from(a.favorite)).bind(a.created_ms).bind(a.updated_ms)
                        .execute(&mut *$tx).await?;
                }
                "datasource" => {
                    let d: v1::Datasource = serde_json::from_str(&body)?;
                    let name = free_name!($tx, "fdi_datasources", project, instance, d.name, d.id);
                    sqlx::query("INSERT INTO fdi_datasources (id, project_id, instance_id, name, ds_type, app_id, sealed, description, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
                        .bind(&d.id).bind(project).bind(instance).bind(&name).bind(&d.datasource_type)
                        .bind(&d.app_id).bind(&d.sealed).bind(&d.description).bind(d.created_ms).bind(d.updated_ms)
                        .execute(&mut *$tx).await?;
                }
                _ => {
                    let t: v1::Task = serde_json::from_str(&body)?;
                    let name = free_name!($tx, "fdi_tasks", project, instance, t.name, t.id);
                    sqlx::query("INSERT INTO fdi_tasks (id, project_id, instance_id, name, task_type, source_ds, target_ds, description, task_tag, task_detail, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
                        .bind(&t.id).bind(project).bind(instance).bind(&name).bind(&t.task_type)
                        .bind(&t.source_datasource_id).bind(&t.target_datasource_id).bind(&t.description)
                        .bind(&t.task_tag).bind(&t.task_detail).bind(t.created_ms).bind(t.updated_ms)
                        .execute(&mut *$tx).await?;
                }
            }
        }
        sqlx::query("DELETE FROM fdi_docs WHERE kind IN ('app', 'datasource', 'task')")
            .execute(&mut *$tx)
            .await?;
    }};
}

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
                sqlx::raw_sql(sqlx::AssertSqlSafe(lock))
                    .execute(&mut *tx)
                    .await?;
            }
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM fdi_schema_version")
                    .fetch_one(&mut *tx)
                    .await?;
            if applied.unwrap_or(0) >= m.version {
                continue;
            }
            tracing::info!(
                version = m.version,
                name = m.name,
                "migrating the metadata store"
            );
            for statement in m.statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
                    .execute(&mut *tx)
                    .await?;
            }
            if m.data == DataStep::CatalogFromDocuments {
                catalog_from_documents!(tx);
            }
            sqlx::query(
                "INSERT INTO fdi_schema_version (version, name, applied) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(fdi_types::now_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        move_run_documents!(conn);
        Ok::<(), StoreError>(())
    }};
}

/// Move the run documents 0.1 left in `fdi_docs` into runs and steps, in one transaction with
/// their removal (a crash leaves them all in place, moved again at the next start).
macro_rules! move_run_documents {
    ($conn:expr) => {{
        let mut tx = sqlx::Connection::begin(&mut *$conn).await?;
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
            let mut runs = Vec::with_capacity(rows.len());
            for row in &rows {
                let body: String = row.try_get("body")?;
                let mut run: RunView = serde_json::from_str(&body)?;
                // Early 0.1 documents name their task only in the `parent` column.
                if run.task_id.is_empty() {
                    run.task_id = row.try_get("parent")?;
                }
                runs.push(run);
            }
            insert_counted_runs!(tx, &runs);
        }
        if !after.is_empty() {
            tracing::info!("moved the run documents of release 0.1 into rows");
            sqlx::query("DELETE FROM fdi_docs WHERE kind = 'run'")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
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
