//! Apps, datasources and tasks as rows: one table each, names unique within a project/instance
//! (enforced by the database, so concurrent creates with one name give exactly one row), lists
//! filtered, sorted and paged in SQL.

use fdi_types::{TaskKind, TaskType};
use sqlx::Row;

use crate::{Pool, Result, Store, StoreError};

/// A project and instance: every catalog row belongs to one.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub project: &'a str,
    pub instance: &'a str,
}

/// An integration app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRow {
    pub id: String,
    pub name: String,
    pub remark: String,
    pub key: String,
    pub favorite: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A datasource, its content sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasourceRow {
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub datasource_type: String,
    pub app_id: String,
    /// The owning app's name ("" when the app is gone).
    pub app_name: String,
    /// The content, sealed with the store's key ([`Store::seal`]).
    pub sealed: String,
    pub description: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A task: a normal one, or a combination (CDC) task (`kind`), whose `task_detail` is then its
/// combination settings as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: String,
    pub kind: TaskKind,
    pub name: String,
    pub task_type: TaskType,
    pub source_datasource_id: String,
    pub target_datasource_id: String,
    pub description: Option<String>,
    pub task_tag: Option<String>,
    pub task_detail: String,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Which datasources a list shows (newest first unless `ascending`).
#[derive(Debug, Clone, Default)]
pub struct DatasourceQuery {
    pub datasource_type: Option<String>,
    /// Substring of the name (case-sensitive).
    pub name: Option<String>,
    pub app_id: Option<String>,
    pub ascending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// The catalog's tables with names unique per scope.
#[derive(Debug, Clone, Copy)]
pub enum CatalogTable {
    Apps,
    Datasources,
    Tasks,
}

impl CatalogTable {
    fn name(self) -> &'static str {
        match self {
            Self::Apps => "fdi_apps",
            Self::Datasources => "fdi_datasources",
            Self::Tasks => "fdi_tasks",
        }
    }
}

/// The unique index whose violation means "this name is taken".
fn name_taken(e: sqlx::Error, what: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::NameTaken(what),
        _ => StoreError::Db(e),
    }
}

const APP_COLUMNS: &str = "id, name, remark, app_key, favorite, created, updated";
const DS_COLUMNS: &str = "d.id, d.instance_id, d.name, d.ds_type, d.app_id, \
     COALESCE(a.name, '') AS app_name, d.sealed, d.description, d.created, d.updated";
const TASK_COLUMNS: &str = "id, kind, name, task_type, source_ds, target_ds, description, task_tag, \
     task_detail, created, updated";

macro_rules! app_from_row {
    ($r:expr) => {{
        let r = $r;
        Ok::<AppRow, StoreError>(AppRow {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            remark: r.try_get("remark")?,
            key: r.try_get("app_key")?,
            favorite: r.try_get::<i32, _>("favorite")? != 0,
            created_ms: r.try_get("created")?,
            updated_ms: r.try_get("updated")?,
        })
    }};
}

macro_rules! ds_from_row {
    ($r:expr) => {{
        let r = $r;
        Ok::<DatasourceRow, StoreError>(DatasourceRow {
            id: r.try_get("id")?,
            instance_id: r.try_get("instance_id")?,
            name: r.try_get("name")?,
            datasource_type: r.try_get("ds_type")?,
            app_id: r.try_get("app_id")?,
            app_name: r.try_get("app_name")?,
            sealed: r.try_get("sealed")?,
            description: r.try_get("description")?,
            created_ms: r.try_get("created")?,
            updated_ms: r.try_get("updated")?,
        })
    }};
}

macro_rules! task_from_row {
    ($r:expr) => {{
        let r = $r;
        let task_type: String = r.try_get("task_type")?;
        let kind: String = r.try_get("kind")?;
        Ok::<TaskRow, StoreError>(TaskRow {
            id: r.try_get("id")?,
            kind: fdi_types::TaskKind::parse(&kind).unwrap_or(fdi_types::TaskKind::Normal),
            name: r.try_get("name")?,
            task_type: fdi_types::TaskType::parse(&task_type)
                .unwrap_or(fdi_types::TaskType::Timing),
            source_datasource_id: r.try_get("source_ds")?,
            target_datasource_id: r.try_get("target_ds")?,
            description: r.try_get("description")?,
            task_tag: r.try_get("task_tag")?,
            task_detail: r.try_get("task_detail")?,
            created_ms: r.try_get("created")?,
            updated_ms: r.try_get("updated")?,
        })
    }};
}

pub(crate) use task_from_row;

impl Store {
    /// `col` contains `param` (case-sensitive substring) in this store's SQL dialect.
    pub(crate) fn contains_sql(&self, col: &str, param: &str) -> String {
        match self.pool {
            Pool::Sqlite(_) => format!("instr({col}, {param}) > 0"),
            Pool::Pg(_) => format!("strpos({col}, {param}) > 0"),
        }
    }

    /// Whether another row of `table` (`fdi_apps`, `fdi_datasources`, `fdi_tasks`) in the scope has
    /// this name: one lookup on the unique index (the insert has the last word on races).
    pub async fn name_taken(
        &self,
        table: CatalogTable,
        scope: Scope<'_>,
        name: &str,
        except_id: Option<&str>,
    ) -> Result<bool> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE project_id = $1 AND instance_id = $2 AND name = $3 AND id <> $4",
            table.name()
        );
        let n: i64 = on_pool!(&self.pool, p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(scope.project).bind(scope.instance).bind(name).bind(except_id.unwrap_or(""))
            .fetch_one(p).await?);
        Ok(n > 0)
    }

    // ---- apps ---------------------------------------------------------------------------------

    /// Store a new app; [`StoreError::NameTaken`] when the scope has an app of that name.
    pub async fn insert_app(&self, scope: Scope<'_>, a: &AppRow) -> Result<()> {
        let sql = "INSERT INTO fdi_apps (id, project_id, instance_id, name, remark, app_key, favorite, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        on_pool!(&self.pool, p => sqlx::query(sql)
            .bind(&a.id).bind(scope.project).bind(scope.instance).bind(&a.name).bind(&a.remark)
            .bind(&a.key).bind(i32::from(a.favorite)).bind(a.created_ms).bind(a.updated_ms)
            .execute(p).await.map(|_| ()).map_err(|e| name_taken(e, "app"))?);
        Ok(())
    }

    pub async fn update_app(&self, scope: Scope<'_>, a: &AppRow) -> Result<()> {
        let sql = "UPDATE fdi_apps SET name = $1, remark = $2, favorite = $3, updated = $4 \
             WHERE id = $5 AND project_id = $6 AND instance_id = $7";
        on_pool!(&self.pool, p => sqlx::query(sql)
            .bind(&a.name).bind(&a.remark).bind(i32::from(a.favorite)).bind(a.updated_ms)
            .bind(&a.id).bind(scope.project).bind(scope.instance)
            .execute(p).await.map(|_| ()).map_err(|e| name_taken(e, "app"))?);
        Ok(())
    }

    pub async fn delete_app(&self, scope: Scope<'_>, id: &str) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query("DELETE FROM fdi_apps WHERE id = $1 AND project_id = $2 AND instance_id = $3")
            .bind(id).bind(scope.project).bind(scope.instance).execute(p).await.map(|_| ())?);
        Ok(())
    }

    pub async fn app(&self, scope: Scope<'_>, id: &str) -> Result<Option<AppRow>> {
        let sql = format!(
            "SELECT {APP_COLUMNS} FROM fdi_apps WHERE id = $1 AND project_id = $2 AND instance_id = $3"
        );
        on_pool!(&self.pool, p => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).bind(scope.project).bind(scope.instance)
                .fetch_optional(p).await?;
            row.map(|r| app_from_row!(&r)).transpose()
        })
    }

    /// Apps of the scope, oldest first, whose name contains `name`; (total, page).
    pub async fn list_apps(
        &self,
        scope: Scope<'_>,
        name: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<(u64, Vec<AppRow>)> {
        let filter = format!(
            "project_id = $1 AND instance_id = $2 AND ($3 = '' OR {})",
            self.contains_sql("name", "$3")
        );
        let count_sql = format!("SELECT COUNT(*) FROM fdi_apps WHERE {filter}");
        let page_sql = format!(
            "SELECT {APP_COLUMNS} FROM fdi_apps WHERE {filter} ORDER BY created, id LIMIT $4 OFFSET $5"
        );
        let name = name.unwrap_or("");
        on_pool!(&self.pool, p => {
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str()))
                .bind(scope.project).bind(scope.instance).bind(name).fetch_one(p).await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(page_sql.as_str()))
                .bind(scope.project).bind(scope.instance).bind(name).bind(limit.max(0)).bind(offset.max(0))
                .fetch_all(p).await?;
            Ok((total as u64, rows.iter().map(|r| app_from_row!(r)).collect::<Result<Vec<_>>>()?))
        })
    }

    /// How many datasources the app owns.
    pub async fn app_datasource_count(&self, app_id: &str) -> Result<u64> {
        let n: i64 = on_pool!(&self.pool, p => sqlx::query_scalar("SELECT COUNT(*) FROM fdi_datasources WHERE app_id = $1")
            .bind(app_id).fetch_one(p).await?);
        Ok(n as u64)
    }

    // ---- datasources --------------------------------------------------------------------------

    /// Store a new datasource; [`StoreError::NameTaken`] when the scope has one of that name.
    pub async fn insert_datasource(&self, scope: Scope<'_>, d: &DatasourceRow) -> Result<()> {
        let sql = "INSERT INTO fdi_datasources (id, project_id, instance_id, name, ds_type, app_id, sealed, description, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        on_pool!(&self.pool, p => sqlx::query(sql)
            .bind(&d.id).bind(scope.project).bind(scope.instance).bind(&d.name).bind(&d.datasource_type)
            .bind(&d.app_id).bind(&d.sealed).bind(&d.description).bind(d.created_ms).bind(d.updated_ms)
            .execute(p).await.map(|_| ()).map_err(|e| name_taken(e, "datasource"))?);
        Ok(())
    }

    pub async fn update_datasource(&self, scope: Scope<'_>, d: &DatasourceRow) -> Result<()> {
        let sql = "UPDATE fdi_datasources SET name = $1, ds_type = $2, app_id = $3, sealed = $4, description = $5, updated = $6 \
             WHERE id = $7 AND project_id = $8 AND instance_id = $9";
        on_pool!(&self.pool, p => sqlx::query(sql)
            .bind(&d.name).bind(&d.datasource_type).bind(&d.app_id).bind(&d.sealed).bind(&d.description)
            .bind(d.updated_ms).bind(&d.id).bind(scope.project).bind(scope.instance)
            .execute(p).await.map(|_| ()).map_err(|e| name_taken(e, "datasource"))?);
        Ok(())
    }

    pub async fn delete_datasource(&self, scope: Scope<'_>, id: &str) -> Result<()> {
        on_pool!(&self.pool, p => sqlx::query("DELETE FROM fdi_datasources WHERE id = $1 AND project_id = $2 AND instance_id = $3")
            .bind(id).bind(scope.project).bind(scope.instance).execute(p).await.map(|_| ())?);
        Ok(())
    }

    pub async fn datasource(&self, scope: Scope<'_>, id: &str) -> Result<Option<DatasourceRow>> {
        let sql = format!(
            "SELECT {DS_COLUMNS} FROM fdi_datasources d LEFT JOIN fdi_apps a ON a.id = d.app_id \
             WHERE d.id = $1 AND d.project_id = $2 AND d.instance_id = $3"
        );
        on_pool!(&self.pool, p => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).bind(scope.project).bind(scope.instance)
                .fetch_optional(p).await?;
            row.map(|r| ds_from_row!(&r)).transpose()
        })
    }

    /// Datasources of the scope as the query asks; (total, page).
    pub async fn list_datasources(
        &self,
        scope: Scope<'_>,
        q: &DatasourceQuery,
    ) -> Result<(u64, Vec<DatasourceRow>)> {
        let filter = format!(
            "d.project_id = $1 AND d.instance_id = $2 AND ($3 = '' OR d.ds_type = $3) \
             AND ($4 = '' OR {}) AND ($5 = '' OR d.app_id = $5)",
            self.contains_sql("d.name", "$4")
        );
        let order = if q.ascending { "ASC" } else { "DESC" };
        let count_sql = format!("SELECT COUNT(*) FROM fdi_datasources d WHERE {filter}");
        let page_sql = format!(
            "SELECT {DS_COLUMNS} FROM fdi_datasources d LEFT JOIN fdi_apps a ON a.id = d.app_id \
             WHERE {filter} ORDER BY d.created {order}, d.id {order} LIMIT $6 OFFSET $7"
        );
        let (t, n, a) = (
            q.datasource_type.as_deref().unwrap_or(""),
            q.name.as_deref().unwrap_or(""),
            q.app_id.as_deref().unwrap_or(""),
        );
        on_pool!(&self.pool, p => {
            let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.as_str()))
                .bind(scope.project).bind(scope.instance).bind(t).bind(n).bind(a).fetch_one(p).await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(page_sql.as_str()))
                .bind(scope.project).bind(scope.instance).bind(t).bind(n).bind(a)
                .bind(q.limit.max(0)).bind(q.offset.max(0))
                .fetch_all(p).await?;
            Ok((total as u64, rows.iter().map(|r| ds_from_row!(r)).collect::<Result<Vec<_>>>()?))
        })
    }

    /// Every datasource of the scope (for joining names onto task lists).
    pub async fn all_datasources(&self, scope: Scope<'_>) -> Result<Vec<DatasourceRow>> {
        let q = DatasourceQuery {
            ascending: true,
            limit: i64::MAX,
            ..Default::default()
        };
        Ok(self.list_datasources(scope, &q).await?.1)
    }

    /// Ids of the tasks that read from or write to the datasource.
    pub async fn tasks_using_datasource(&self, datasource_id: &str) -> Result<Vec<String>> {
        let ids: Vec<String> = on_pool!(&self.pool, p => sqlx::query_scalar(
            "SELECT id FROM fdi_tasks WHERE source_ds = $1 UNION SELECT id FROM fdi_tasks WHERE target_ds = $1 ORDER BY 1")
            .bind(datasource_id).fetch_all(p).await?);
        Ok(ids)
    }

    // ---- tasks --------------------------------------------------------------------------------

    /// Store a new task; [`StoreError::NameTaken`] when the scope has one of that name.
    pub async fn insert_task(&self, scope: Scope<'_>, t: &TaskRow) -> Result<()> {
        let sql = "INSERT INTO fdi_tasks (id, project_id, instance_id, name, task_type, source_ds, target_ds, description, task_tag, task_detail, created, updated, kind) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
        on_pool!(&self.pool, p => sqlx::query(sql)
            .bind(&t.id).bind(scope.project).bind(scope.instance).bind(&t.name).bind(t.task_type.as_str())
            .bind(&t.source_datasource_id).bind(&t.target_datasource_id).bind(&t.description)
            .bind(&t.task_tag).bind(&t.task_detail).bind(t.created_ms).bind(t.updated_ms).bind(t.kind.as_str())
            .execute(p).await.map(|_| ()).map_err(|e| name_taken(e, "task"))?);
        Ok(())
    }

    pub async fn update_task(&self, scope: Scope<'_>, t: &TaskRow) -> Result<()> {
        let sql = "UPDATE fdi_tasks SET name = $1, task_type = $2, source_ds = $3, target_ds = $4, description = $5, \
             task_tag = $6, task_detail = $7, updated = $8, kind = $9 WHERE id = $10 AND project_id = $11 AND instance_id = $12";
        on_pool!(&self.pool, p => sqlx::query(sql)
            .bind(&t.name).bind(t.task_type.as_str()).bind(&t.source_datasource_id).bind(&t.target_datasource_id)
            .bind(&t.description).bind(&t.task_tag).bind(&t.task_detail).bind(t.updated_ms).bind(t.kind.as_str())
            .bind(&t.id).bind(scope.project).bind(scope.instance)
            .execute(p).await.map(|_| ()).map_err(|e| name_taken(e, "task"))?);
        Ok(())
    }

    /// Delete the task, and a combination task's mappings and stream position with it.
    pub async fn delete_task(&self, scope: Scope<'_>, id: &str) -> Result<()> {
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query("DELETE FROM fdi_tasks WHERE id = $1 AND project_id = $2 AND instance_id = $3")
                .bind(id).bind(scope.project).bind(scope.instance).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query("DELETE FROM fdi_cdc_mappings WHERE task_id = $1").bind(id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM fdi_cdc_positions WHERE task_id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub async fn task(&self, scope: Scope<'_>, id: &str) -> Result<Option<TaskRow>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM fdi_tasks WHERE id = $1 AND project_id = $2 AND instance_id = $3"
        );
        on_pool!(&self.pool, p => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).bind(scope.project).bind(scope.instance)
                .fetch_optional(p).await?;
            row.map(|r| task_from_row!(&r)).transpose()
        })
    }

    /// A task whatever its scope, with its (project, instance).
    pub async fn task_by_id(&self, id: &str) -> Result<Option<(String, String, TaskRow)>> {
        let sql =
            format!("SELECT project_id, instance_id, {TASK_COLUMNS} FROM fdi_tasks WHERE id = $1");
        on_pool!(&self.pool, p => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await?;
            row.map(|r| Ok((r.try_get("project_id")?, r.try_get("instance_id")?, task_from_row!(&r)?))).transpose()
        })
    }

    /// A datasource whatever its scope (for a task being resolved).
    pub async fn datasource_in(
        &self,
        project: &str,
        instance: &str,
        id: &str,
    ) -> Result<Option<DatasourceRow>> {
        self.datasource(Scope { project, instance }, id).await
    }

    /// Every task of the scope, oldest first.
    pub async fn all_tasks(&self, scope: Scope<'_>) -> Result<Vec<TaskRow>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM fdi_tasks WHERE project_id = $1 AND instance_id = $2 ORDER BY created, id"
        );
        on_pool!(&self.pool, p => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(scope.project).bind(scope.instance)
                .fetch_all(p).await?;
            rows.iter().map(|r| task_from_row!(r)).collect()
        })
    }
}
