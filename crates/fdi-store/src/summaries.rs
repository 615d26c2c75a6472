//! Task summaries: a task with its two datasources, their apps, its last run, its started and
//! running state and its plan — the rows behind the task list, `task-monitors` and
//! `statistics/tasks`, each answered by a bounded number of queries (a count and a page), however
//! many tasks and runs are stored. A task's last run is kept in its `fdi_task_run_totals` row
//! by every write of runs, so no query here searches the runs.

use sqlx::Row;

use crate::catalog::{Scope, TaskRow, task_from_row};
use crate::{Pool, Result, Store, StoreError};

/// What a task list shows of a task's source or target datasource.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasourceBrief {
    pub name: String,
    pub app_id: String,
    pub app_name: String,
    pub instance_id: String,
}

/// What a task list shows of a task's newest run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunBrief {
    pub id: String,
    pub start_ms: i64,
    pub execute_status: String,
    pub position: String,
}

#[derive(Debug, Clone)]
pub struct TaskSummary {
    pub task: TaskRow,
    pub source: DatasourceBrief,
    pub target: DatasourceBrief,
    pub last_run: Option<RunBrief>,
    /// Started (plan enabled / realtime running).
    pub started: bool,
    /// A run is in progress (a claim exists).
    pub running: bool,
    /// The task's dispatch plan (its JSON body), if it has one.
    pub plan_body: Option<String>,
}

/// Which tasks, in which order.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery {
    /// Normal tasks only (the `tasks` list) or combination tasks only; None: both (monitors,
    /// statistics). Combination tasks not yet created (`multi-tasks/init` only) never show.
    pub kind: Option<fdi_types::TaskKind>,
    pub task_id: Option<String>,
    /// Substring of the name (case-sensitive).
    pub name: Option<String>,
    pub task_type: Option<String>,
    pub source_datasource_id: Option<String>,
    pub target_datasource_id: Option<String>,
    /// Either end.
    pub datasource_id: Option<String>,
    pub source_app_id: Option<String>,
    pub target_app_id: Option<String>,
    pub task_tag: Option<String>,
    /// The last run's execute status (UNSTARTED for a task never run) is one of these.
    pub execute_statuses: Option<Vec<String>>,
    /// Started or running (true) / neither (false).
    pub active: Option<bool>,
    /// Order by active first (then creation), instead of by creation.
    pub by_status: bool,
    pub ascending: bool,
    pub offset: i64,
    pub limit: i64,
}

const FROM: &str = "FROM fdi_tasks t \
     LEFT JOIN fdi_datasources sd ON sd.id = t.source_ds LEFT JOIN fdi_apps sa ON sa.id = sd.app_id \
     LEFT JOIN fdi_datasources td ON td.id = t.target_ds LEFT JOIN fdi_apps ta ON ta.id = td.app_id \
     LEFT JOIN fdi_task_run_totals lr ON lr.task_id = t.id \
     LEFT JOIN fdi_task_status ts ON ts.task_id = t.id \
     LEFT JOIN fdi_claims c ON c.task_id = t.id";

const ACTIVE: &str = "(COALESCE(ts.status, 0) = 1 OR c.task_id IS NOT NULL)";
const LAST_STATUS: &str = "COALESCE(lr.last_status, 'UNSTARTED')";

/// The WHERE clause of a query and its string parameters ($1, $2 are the scope).
fn where_clause(store: &Store, q: &TaskQuery) -> (String, Vec<String>) {
    let mut sql =
        String::from("t.project_id = $1 AND t.instance_id = $2 AND t.kind <> 'MULTI_INIT'");
    let mut params: Vec<String> = Vec::new();
    let next = |params: &mut Vec<String>, v: &str| {
        params.push(v.to_string());
        format!("${}", params.len() + 2)
    };
    if let Some(kind) = q.kind {
        let p = next(&mut params, kind.as_str());
        sql.push_str(&format!(" AND t.kind = {p}"));
    }
    let eq = [
        ("t.id", &q.task_id),
        ("t.task_type", &q.task_type),
        ("t.source_ds", &q.source_datasource_id),
        ("t.target_ds", &q.target_datasource_id),
        ("sd.app_id", &q.source_app_id),
        ("td.app_id", &q.target_app_id),
        ("t.task_tag", &q.task_tag),
    ];
    for (col, v) in eq {
        if let Some(v) = v {
            let p = next(&mut params, v);
            sql.push_str(&format!(" AND {col} = {p}"));
        }
    }
    if let Some(n) = &q.name {
        let p = next(&mut params, n);
        sql.push_str(&format!(" AND {}", store.contains_sql("t.name", &p)));
    }
    if let Some(d) = &q.datasource_id {
        let p = next(&mut params, d);
        sql.push_str(&format!(" AND (t.source_ds = {p} OR t.target_ds = {p})"));
    }
    if let Some(statuses) = &q.execute_statuses {
        let ps: Vec<String> = statuses.iter().map(|s| next(&mut params, s)).collect();
        if ps.is_empty() {
            sql.push_str(" AND 1 = 0");
        } else {
            sql.push_str(&format!(" AND {LAST_STATUS} IN ({})", ps.join(", ")));
        }
    }
    match q.active {
        Some(true) => sql.push_str(&format!(" AND {ACTIVE}")),
        Some(false) => sql.push_str(&format!(" AND NOT {ACTIVE}")),
        None => {}
    }
    (sql, params)
}

impl Store {
    /// Tasks of the scope as the query asks, with what their lists show; (total, page).
    pub async fn task_summaries(
        &self,
        scope: Scope<'_>,
        q: &TaskQuery,
    ) -> Result<(u64, Vec<TaskSummary>)> {
        let (filter, params) = where_clause(self, q);
        let dir = if q.ascending { "ASC" } else { "DESC" };
        let order = if q.by_status {
            format!("CASE WHEN {ACTIVE} THEN 1 ELSE 0 END {dir}, t.created {dir}, t.id {dir}")
        } else {
            format!("t.created {dir}, t.id {dir}")
        };
        let n = params.len();
        let count_sql = format!("SELECT COUNT(*) {FROM} WHERE {filter}");
        let page_sql = format!(
            "SELECT t.id, t.kind, t.name, t.task_type, t.source_ds, t.target_ds, t.description, t.task_tag, \
             t.task_detail, t.created, t.updated, \
             COALESCE(sd.name, '') AS s_name, COALESCE(sd.app_id, '') AS s_app, \
             COALESCE(sa.name, '') AS s_app_name, COALESCE(sd.instance_id, '') AS s_inst, \
             COALESCE(td.name, '') AS t_name, COALESCE(td.app_id, '') AS t_app, \
             COALESCE(ta.name, '') AS t_app_name, COALESCE(td.instance_id, '') AS t_inst, \
             lr.last_run_id AS lr_id, lr.last_start_ms AS lr_start, lr.last_status AS lr_status, lr.last_pos AS lr_pos, \
             COALESCE(ts.status, 0) AS started, \
             CASE WHEN c.task_id IS NULL THEN 0 ELSE 1 END AS running, \
             (SELECT pl.body FROM fdi_plans pl WHERE pl.task_id = t.id ORDER BY pl.created LIMIT 1) AS plan_body \
             {FROM} WHERE {filter} ORDER BY {order} LIMIT ${} OFFSET ${}",
            n + 3,
            n + 4
        );
        on_pool!(&self.pool, p => {
            let mut count = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count_sql.as_str()))
                .bind(scope.project).bind(scope.instance);
            for v in &params {
                count = count.bind(v.clone());
            }
            let total = count.fetch_one(p).await?;
            let mut page = sqlx::query(sqlx::AssertSqlSafe(page_sql.as_str()))
                .bind(scope.project).bind(scope.instance);
            for v in &params {
                page = page.bind(v.clone());
            }
            let rows = page.bind(q.limit.max(0)).bind(q.offset.max(0)).fetch_all(p).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let lr_id: Option<String> = r.try_get("lr_id")?;
                let last_run = match lr_id {
                    Some(id) => Some(RunBrief {
                        id,
                        start_ms: r.try_get("lr_start")?,
                        execute_status: r.try_get("lr_status")?,
                        position: r.try_get("lr_pos")?,
                    }),
                    None => None,
                };
                out.push(TaskSummary {
                    task: task_from_row!(r)?,
                    source: DatasourceBrief {
                        name: r.try_get("s_name")?,
                        app_id: r.try_get("s_app")?,
                        app_name: r.try_get("s_app_name")?,
                        instance_id: r.try_get("s_inst")?,
                    },
                    target: DatasourceBrief {
                        name: r.try_get("t_name")?,
                        app_id: r.try_get("t_app")?,
                        app_name: r.try_get("t_app_name")?,
                        instance_id: r.try_get("t_inst")?,
                    },
                    last_run,
                    started: r.try_get::<i32, _>("started")? == 1,
                    running: r.try_get::<i32, _>("running")? == 1,
                    plan_body: r.try_get("plan_body")?,
                });
            }
            Ok::<_, StoreError>((total as u64, out))
        })
    }

    /// How many tasks of the scope are in each state: running (a run in progress) or the last
    /// run's execute status (UNSTARTED when never run). One grouped query.
    /// How many tasks of `kind` are in each state (RUNNING while a run is active, else their last
    /// run's execute status).
    pub async fn task_state_counts(
        &self,
        scope: Scope<'_>,
        kind: fdi_types::TaskKind,
    ) -> Result<Vec<(String, u64)>> {
        let sql = format!(
            "SELECT CASE WHEN c.task_id IS NOT NULL THEN 'RUNNING' ELSE {LAST_STATUS} END AS state, \
             COUNT(*) AS n {FROM} WHERE t.project_id = $1 AND t.instance_id = $2 AND t.kind = $3 GROUP BY 1"
        );
        let rows: Vec<(String, i64)> = on_pool!(&self.pool, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(scope.project).bind(scope.instance).bind(kind.as_str()).fetch_all(p).await?);
        Ok(rows.into_iter().map(|(s, n)| (s, n as u64)).collect())
    }
}
