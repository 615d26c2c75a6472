//! The only module that talks to the store and the run manager: handlers see small views.

use fdi_catalog::CatalogError;
pub use fdi_store::DatasourceQuery;
use fdi_store::{CatalogTable, Scope, StoreError};
use fdi_types::{TaskKind, TaskType};

use crate::AppState;
use crate::error::{Error, Result};

/// An integration app as stored.
pub type AppView = fdi_store::AppRow;

/// A task as stored.
pub type TaskView = fdi_store::TaskRow;

pub use fdi_catalog::{DatasourceView, NewDatasource};

pub struct NewTask {
    pub name: String,
    pub task_type: TaskType,
    pub source_datasource_id: String,
    pub target_datasource_id: String,
    pub description: Option<String>,
    pub task_tag: Option<String>,
    pub task_detail: String,
}

pub use fdi_monitor::{RunCounts, RunFilter, RunView, StepView};
pub use fdi_store::{TaskQuery, TaskSummary};

fn scope<'a>(p: &'a str, i: &'a str) -> Scope<'a> {
    Scope {
        project: p,
        instance: i,
    }
}

/// A name the database refused as taken: the API's error naming the field.
fn name_error(e: impl Into<CatalogError>, field: &str, name: &str) -> Error {
    let CatalogError::Store(e) = e.into() else {
        unreachable!("only store errors are passed here")
    };
    match e {
        StoreError::NameTaken("app") => Error::field(
            field,
            format!("an app named {name:?} already exists in this instance"),
        ),
        StoreError::NameTaken(what) => Error::new(
            fdi_types::ErrorCode::TaskNameExists,
            format!("{field}: a {what} named {name:?} already exists"),
        ),
        e => e.into(),
    }
}

// ---- apps ----------------------------------------------------------------------------------

pub async fn app_create(
    s: &AppState,
    p: &str,
    i: &str,
    name: &str,
    remark: &str,
    key: &str,
    fav: bool,
) -> Result<AppView> {
    let now = fdi_types::now_millis();
    let a = AppView {
        id: fdi_types::new_id(),
        name: name.into(),
        remark: remark.into(),
        key: key.into(),
        favorite: fav,
        created_ms: now,
        updated_ms: now,
    };
    s.store
        .insert_app(scope(p, i), &a)
        .await
        .map_err(|e| name_error(e, "name", name))?;
    Ok(a)
}

pub async fn app_list(
    s: &AppState,
    p: &str,
    i: &str,
    name: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(u64, Vec<AppView>)> {
    Ok(s.store.list_apps(scope(p, i), name, offset, limit).await?)
}

pub async fn app_get(s: &AppState, p: &str, i: &str, id: &str) -> Result<Option<AppView>> {
    Ok(s.store.app(scope(p, i), id).await?)
}

pub async fn app_update(s: &AppState, p: &str, i: &str, a: &AppView) -> Result<AppView> {
    let mut a = a.clone();
    a.updated_ms = fdi_types::now_millis();
    s.store
        .update_app(scope(p, i), &a)
        .await
        .map_err(|e| name_error(e, "name", &a.name))?;
    Ok(a)
}

pub async fn app_delete(s: &AppState, p: &str, i: &str, id: &str) -> Result<()> {
    Ok(s.store.delete_app(scope(p, i), id).await?)
}

/// Whether another app of the scope has this name (the database has the last word on races).
pub async fn app_name_taken(
    s: &AppState,
    p: &str,
    i: &str,
    name: &str,
    except: Option<&str>,
) -> Result<bool> {
    Ok(s.store
        .name_taken(CatalogTable::Apps, scope(p, i), name, except)
        .await?)
}

pub async fn app_datasource_count(s: &AppState, _p: &str, _i: &str, id: &str) -> Result<u64> {
    Ok(s.store.app_datasource_count(id).await?)
}

// ---- datasources ---------------------------------------------------------------------------

pub async fn ds_create(s: &AppState, p: &str, i: &str, d: NewDatasource) -> Result<DatasourceView> {
    let name = d.name.clone();
    s.catalog
        .create_datasource(scope(p, i), d)
        .await
        .map_err(|e| catalog_name_error(e, "datasource_name", &name))
}

pub async fn ds_update(
    s: &AppState,
    p: &str,
    i: &str,
    id: &str,
    d: NewDatasource,
) -> Result<DatasourceView> {
    let old = s
        .store
        .datasource(scope(p, i), id)
        .await?
        .ok_or_else(|| Error::code(fdi_types::ErrorCode::DatasourceNotFound))?;
    let name = d.name.clone();
    s.catalog
        .update_datasource(scope(p, i), id, old.created_ms, d)
        .await
        .map_err(|e| catalog_name_error(e, "datasource_name", &name))
}

/// A catalog error, with a taken name turned into the API's error naming the field.
fn catalog_name_error(e: CatalogError, field: &str, name: &str) -> Error {
    match e {
        CatalogError::Store(se @ StoreError::NameTaken(_)) => name_error(se, field, name),
        e => Error(e.into()),
    }
}

pub async fn ds_list(
    s: &AppState,
    p: &str,
    i: &str,
    q: &DatasourceQuery,
) -> Result<(u64, Vec<DatasourceView>)> {
    s.catalog
        .datasources(scope(p, i), q)
        .await
        .map_err(|e| Error(e.into()))
}

pub async fn ds_all(s: &AppState, p: &str, i: &str) -> Result<Vec<DatasourceView>> {
    s.catalog
        .all_datasources(scope(p, i))
        .await
        .map_err(|e| Error(e.into()))
}

pub async fn ds_get(s: &AppState, p: &str, i: &str, id: &str) -> Result<Option<DatasourceView>> {
    s.catalog
        .datasource(scope(p, i), id)
        .await
        .map_err(|e| Error(e.into()))
}

pub async fn ds_delete(s: &AppState, p: &str, i: &str, id: &str) -> Result<()> {
    Ok(s.store.delete_datasource(scope(p, i), id).await?)
}

/// Whether another datasource of the scope has this name (the database has the last word).
pub async fn ds_name_taken(
    s: &AppState,
    p: &str,
    i: &str,
    name: &str,
    except: Option<&str>,
) -> Result<bool> {
    Ok(s.store
        .name_taken(CatalogTable::Datasources, scope(p, i), name, except)
        .await?)
}

pub async fn tasks_using_datasource(
    s: &AppState,
    _p: &str,
    _i: &str,
    id: &str,
) -> Result<Vec<String>> {
    Ok(s.store.tasks_using_datasource(id).await?)
}

// ---- tasks ---------------------------------------------------------------------------------

fn task_from(id: String, created_ms: i64, updated_ms: i64, t: NewTask) -> TaskView {
    TaskView {
        id,
        kind: fdi_types::TaskKind::Normal,
        name: t.name,
        task_type: t.task_type,
        source_datasource_id: t.source_datasource_id,
        target_datasource_id: t.target_datasource_id,
        description: t.description,
        task_tag: t.task_tag,
        task_detail: t.task_detail,
        created_ms,
        updated_ms,
    }
}

pub async fn task_create(s: &AppState, p: &str, i: &str, t: NewTask) -> Result<TaskView> {
    let now = fdi_types::now_millis();
    let t = task_from(fdi_types::new_id(), now, now, t);
    s.store
        .insert_task(scope(p, i), &t)
        .await
        .map_err(|e| name_error(e, "task.task_name", &t.name))?;
    Ok(t)
}

pub async fn task_update(s: &AppState, p: &str, i: &str, id: &str, t: NewTask) -> Result<TaskView> {
    let old = task_get(s, p, i, id)
        .await?
        .ok_or_else(|| Error::code(fdi_types::ErrorCode::TaskNotFound))?;
    let t = task_from(old.id, old.created_ms, fdi_types::now_millis(), t);
    s.store
        .update_task(scope(p, i), &t)
        .await
        .map_err(|e| name_error(e, "task.task_name", &t.name))?;
    Ok(t)
}

pub async fn task_get(s: &AppState, p: &str, i: &str, id: &str) -> Result<Option<TaskView>> {
    Ok(s.store.task(scope(p, i), id).await?)
}

pub async fn task_all(s: &AppState, p: &str, i: &str) -> Result<Vec<TaskView>> {
    Ok(s.store.all_tasks(scope(p, i)).await?)
}

pub async fn task_delete(s: &AppState, p: &str, i: &str, id: &str) -> Result<()> {
    s.store.delete_task(scope(p, i), id).await?;
    s.scheduler.forget_task(id).await?;
    Ok(s.scheduler.monitor().delete_task_runs(id).await?)
}

/// Tasks with their datasources, last run, state and plan, as the query asks; (total, page).
pub async fn task_summaries(
    s: &AppState,
    p: &str,
    i: &str,
    q: &TaskQuery,
) -> Result<(u64, Vec<TaskSummary>)> {
    Ok(s.store.task_summaries(scope(p, i), q).await?)
}

/// How many tasks are in each state (RUNNING, or their last run's status).
pub async fn task_state_counts(
    s: &AppState,
    p: &str,
    i: &str,
    kind: TaskKind,
) -> Result<Vec<(String, u64)>> {
    Ok(s.store.task_state_counts(scope(p, i), kind).await?)
}

pub async fn task_name_taken(
    s: &AppState,
    p: &str,
    i: &str,
    name: &str,
    except: Option<&str>,
) -> Result<bool> {
    Ok(s.store
        .name_taken(CatalogTable::Tasks, scope(p, i), name, except)
        .await?)
}

// ---- runs ----------------------------------------------------------------------------------

pub async fn last_run(s: &AppState, task: &str) -> Result<Option<RunView>> {
    Ok(s.scheduler.monitor().last_run(task).await?)
}

pub async fn list_runs(s: &AppState, task: &str, f: RunFilter) -> Result<(u64, Vec<RunView>)> {
    Ok(s.scheduler.monitor().list_runs(task, f).await?)
}

pub async fn get_run(s: &AppState, task: &str, run: &str) -> Result<Option<RunView>> {
    Ok(s.scheduler.monitor().get_run(task, run).await?)
}

pub async fn run_counts(s: &AppState, task: &str) -> Result<RunCounts> {
    Ok(s.scheduler.monitor().run_counts(task).await?)
}

/// `status` 1 of task list / task-monitors: the task is started (plan enabled, realtime
/// running) or has a run in progress.
pub async fn task_started(s: &AppState, task: &str) -> Result<bool> {
    Ok(s.scheduler.task_status(task).await? == 1 || s.scheduler.is_running(task).await?)
}

pub async fn start_run(s: &AppState, _p: &str, _i: &str, t: &TaskView) -> Result<String> {
    Ok(s.scheduler.run_now(&t.id).await?)
}

pub async fn terminate(s: &AppState, t: &TaskView) -> Result<()> {
    Ok(s.scheduler.terminate(&t.id).await?)
}

/// What a task asks for around its runs resolves: the error handler's directory under the files
/// root and the run-end message's KAFKA datasource (errors name the field).
pub async fn check_run_extras(
    s: &AppState,
    p: &str,
    i: &str,
    detail: &fdi_types::TaskDetail,
) -> Result<()> {
    s.catalog.dirty_data_policy(detail, "check")?;
    if let Some(t) = s.catalog.run_end_target(scope(p, i), detail).await? {
        t.endpoint.connector.close().await;
    }
    Ok(())
}

// ---- combination (CDC) tasks ---------------------------------------------------------------

/// A combination task's mapping as stored.
pub type MappingView = fdi_store::MappingRow;

/// Store a combination task's row (a new MULTI_INIT one): its name is its id until
/// `POST multi-tasks` names it, so a taken name is a taken `task_id`.
pub async fn multi_insert(s: &AppState, p: &str, i: &str, t: &TaskView) -> Result<()> {
    s.store
        .insert_task(scope(p, i), t)
        .await
        .map_err(|e| name_error(e, "task_id", &t.name))
}

/// Store a combination task's new state (kind, name, settings); a taken name names `field`.
pub async fn multi_update(s: &AppState, p: &str, i: &str, t: &TaskView, field: &str) -> Result<()> {
    s.store
        .update_task(scope(p, i), t)
        .await
        .map_err(|e| name_error(e, field, &t.name))
}

/// A task whatever its instance, with its (project, instance): the auto-mapping path names no
/// instance.
pub async fn task_by_id(s: &AppState, id: &str) -> Result<Option<(String, String, TaskView)>> {
    Ok(s.store.task_by_id(id).await?)
}

pub async fn mappings_page(
    s: &AppState,
    task: &str,
    offset: i64,
    limit: i64,
) -> Result<(u64, Vec<MappingView>)> {
    Ok(s.store.mappings(task, offset, limit).await?)
}

/// Every mapping of the task, by source table.
pub async fn mappings_all(s: &AppState, task: &str) -> Result<Vec<MappingView>> {
    Ok(s.store.mappings(task, 0, i64::MAX).await?.1)
}

pub async fn mapping_get(s: &AppState, task: &str, id: &str) -> Result<Option<MappingView>> {
    Ok(s.store.mapping(task, id).await?)
}

/// Store mappings in one transaction (a source table the task maps already is replaced).
pub async fn mappings_put(s: &AppState, rows: &[MappingView]) -> Result<()> {
    Ok(s.store.put_mappings(rows).await?)
}

/// Whether the mapping existed.
pub async fn mapping_delete(s: &AppState, task: &str, id: &str) -> Result<bool> {
    Ok(s.store.delete_mapping(task, id).await?)
}

/// Whether the task has a stream position (it copied its tables and streams from there).
pub async fn cdc_position_stored(s: &AppState, task: &str) -> Result<bool> {
    Ok(s.store.cdc_position(task).await?.is_some())
}

pub async fn set_cdc_position(s: &AppState, task: &str, position: &str) -> Result<()> {
    Ok(s.store
        .set_cdc_position(task, position, fdi_types::now_millis())
        .await?)
}

pub async fn clear_cdc_position(s: &AppState, task: &str) -> Result<()> {
    Ok(s.store.clear_cdc_position(task).await?)
}

pub async fn is_running(s: &AppState, task: &str) -> Result<bool> {
    Ok(s.scheduler.is_running(task).await?)
}

/// A task whose active run was ended by [`pause_run`]: [`resume_run`] starts it again.
#[must_use = "resume the task with resume_run"]
pub struct Paused {
    task_id: String,
    /// The task was started (batch start): start it again, and the supervisor runs it.
    started: bool,
}

/// How long [`pause_run`] waits for the task's run to end.
const PAUSE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// End the task's active run (if any) and keep the supervisor from starting another until
/// [`resume_run`]: a started task is stopped (its run commits what it read and ends), a run of a
/// task that is not started (a manual run) is terminated. Waits until no run is active (on any
/// node); 400 FDI.3139 when the run does not end within 30 s (the task is started again then).
pub async fn pause_run(s: &AppState, t: &TaskView) -> Result<Paused> {
    let started = s.scheduler.task_status(&t.id).await? == 1;
    if started {
        stop_or_start(s, &t.id, "stop").await?;
    }
    let paused = Paused {
        task_id: t.id.clone(),
        started,
    };
    if !started && s.scheduler.is_running(&t.id).await? {
        match s.scheduler.terminate(&t.id).await {
            Ok(()) => {}
            // It ended in between.
            Err(e) if !s.scheduler.is_running(&t.id).await? => {
                tracing::debug!(task_id = t.id, error = %e, "run ended before terminate");
            }
            Err(e) => return Err(e.into()),
        }
    }
    let deadline = tokio::time::Instant::now() + PAUSE_WAIT;
    while s.scheduler.is_running(&t.id).await? {
        if tokio::time::Instant::now() >= deadline {
            resume_run(s, paused).await?;
            return Err(Error::new(
                fdi_types::ErrorCode::TaskRunning,
                format!(
                    "task_id: {} has a run that did not end within {} s; try again",
                    t.id,
                    PAUSE_WAIT.as_secs()
                ),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(paused)
}

/// Start a task paused by [`pause_run`] again (when it was started).
pub async fn resume_run(s: &AppState, p: Paused) -> Result<()> {
    if p.started {
        stop_or_start(s, &p.task_id, "start").await?;
    }
    Ok(())
}

async fn stop_or_start(s: &AppState, task_id: &str, action: &str) -> Result<()> {
    let r = s.scheduler.batch(action, &[task_id.to_string()]).await?;
    match r.failure.into_iter().next() {
        None => Ok(()),
        Some(f) => Err(Error::internal(format!(
            "task_id: {task_id}: cannot {action} the task: {} {}",
            f.error_code.unwrap_or_default(),
            f.error_msg.unwrap_or_default()
        ))),
    }
}
