//! The only module that talks to the store and the run manager: handlers see small views.

use std::sync::Arc;

use async_trait::async_trait;
use fdi_connector::ConnectorRegistry;
use fdi_scheduler::{ResolvedTask, TaskResolver};
use fdi_store::Store;
use fdi_types::{ApiError, DatasourceType, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use fdi_store::{APP, DATASOURCE, TASK};

use crate::AppState;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppView {
    pub id: String,
    pub name: String,
    pub remark: String,
    pub key: String,
    pub favorite: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone)]
pub struct DatasourceView {
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub datasource_type: String,
    pub app_id: String,
    pub app_name: String,
    /// Secrets in clear (never sent as is: responses mask them).
    pub content: Value,
    pub description: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

pub struct NewDatasource {
    pub name: String,
    pub datasource_type: DatasourceType,
    pub app_id: String,
    pub content: Value,
    pub description: Option<String>,
}

pub struct DatasourceFilter {
    pub datasource_type: Option<String>,
    pub name: Option<String>,
    pub app_id: Option<String>,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskView {
    pub id: String,
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

/// What the store keeps of a datasource: the content sealed.
#[derive(Serialize, Deserialize)]
struct DsDoc {
    id: String,
    instance_id: String,
    name: String,
    datasource_type: String,
    app_id: String,
    sealed: String,
    description: Option<String>,
    created_ms: i64,
    updated_ms: i64,
}

fn scope(p: &str, i: &str) -> String {
    format!("{p}/{i}")
}

fn page<T>(v: Vec<T>, offset: i64, limit: i64) -> (u64, Vec<T>) {
    let total = v.len() as u64;
    (
        total,
        v.into_iter()
            .skip(offset.max(0) as usize)
            .take(limit.max(0) as usize)
            .collect(),
    )
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
        .insert(APP, &a.id, &scope(p, i), "", now, &a)
        .await?;
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
    let all: Vec<AppView> = s.store.list(APP, &scope(p, i)).await?;
    let v = all
        .into_iter()
        .filter(|a| name.is_none_or(|n| a.name.contains(n)))
        .collect();
    Ok(page(v, offset, limit))
}

pub async fn app_get(s: &AppState, p: &str, i: &str, id: &str) -> Result<Option<AppView>> {
    Ok(s.store.get(APP, &scope(p, i), id).await?)
}

pub async fn app_update(s: &AppState, _p: &str, _i: &str, a: &AppView) -> Result<AppView> {
    let mut a = a.clone();
    a.updated_ms = fdi_types::now_millis();
    s.store.update(APP, &a.id, &a).await?;
    Ok(a)
}

pub async fn app_delete(s: &AppState, _p: &str, _i: &str, id: &str) -> Result<()> {
    Ok(s.store.delete(APP, id).await?)
}

pub async fn app_name_taken(
    s: &AppState,
    p: &str,
    i: &str,
    name: &str,
    except: Option<&str>,
) -> Result<bool> {
    let all: Vec<AppView> = s.store.list(APP, &scope(p, i)).await?;
    Ok(all
        .iter()
        .any(|a| a.name == name && Some(a.id.as_str()) != except))
}

pub async fn app_datasource_count(s: &AppState, p: &str, i: &str, id: &str) -> Result<u64> {
    Ok(ds_all(s, p, i)
        .await?
        .iter()
        .filter(|d| d.app_id == id)
        .count() as u64)
}

// ---- datasources ---------------------------------------------------------------------------

async fn ds_view(s: &AppState, p: &str, i: &str, d: DsDoc) -> Result<DatasourceView> {
    let app_name = app_get(s, p, i, &d.app_id)
        .await?
        .map(|a| a.name)
        .unwrap_or_default();
    Ok(DatasourceView {
        content: s.store.open_sealed(&d.sealed)?,
        id: d.id,
        instance_id: d.instance_id,
        name: d.name,
        datasource_type: d.datasource_type,
        app_id: d.app_id,
        app_name,
        description: d.description,
        created_ms: d.created_ms,
        updated_ms: d.updated_ms,
    })
}

pub async fn ds_create(s: &AppState, p: &str, i: &str, d: NewDatasource) -> Result<DatasourceView> {
    let now = fdi_types::now_millis();
    let doc = DsDoc {
        id: fdi_types::new_id(),
        instance_id: i.into(),
        name: d.name,
        datasource_type: d.datasource_type.as_str().into(),
        app_id: d.app_id,
        sealed: s.store.seal(&d.content)?,
        description: d.description,
        created_ms: now,
        updated_ms: now,
    };
    s.store
        .insert(DATASOURCE, &doc.id, &scope(p, i), "", now, &doc)
        .await?;
    ds_view(s, p, i, doc).await
}

pub async fn ds_update(
    s: &AppState,
    p: &str,
    i: &str,
    id: &str,
    d: NewDatasource,
) -> Result<DatasourceView> {
    let old: DsDoc = s
        .store
        .get(DATASOURCE, &scope(p, i), id)
        .await?
        .ok_or_else(|| Error::code(fdi_types::ErrorCode::DatasourceNotFound))?;
    let doc = DsDoc {
        id: old.id,
        instance_id: old.instance_id,
        name: d.name,
        datasource_type: d.datasource_type.as_str().into(),
        app_id: d.app_id,
        sealed: s.store.seal(&d.content)?,
        description: d.description,
        created_ms: old.created_ms,
        updated_ms: fdi_types::now_millis(),
    };
    s.store.update(DATASOURCE, &doc.id, &doc).await?;
    ds_view(s, p, i, doc).await
}

pub async fn ds_list(
    s: &AppState,
    p: &str,
    i: &str,
    f: DatasourceFilter,
) -> Result<(u64, Vec<DatasourceView>)> {
    let mut v: Vec<DatasourceView> = ds_all(s, p, i)
        .await?
        .into_iter()
        .filter(|d| {
            f.datasource_type
                .as_deref()
                .is_none_or(|t| d.datasource_type == t)
        })
        .filter(|d| f.name.as_deref().is_none_or(|n| d.name.contains(n)))
        .filter(|d| f.app_id.as_deref().is_none_or(|a| d.app_id == a))
        .collect();
    if f.descending {
        v.reverse();
    }
    Ok(page(v, f.offset, f.limit))
}

pub async fn ds_all(s: &AppState, p: &str, i: &str) -> Result<Vec<DatasourceView>> {
    let docs: Vec<DsDoc> = s.store.list(DATASOURCE, &scope(p, i)).await?;
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        out.push(ds_view(s, p, i, d).await?);
    }
    Ok(out)
}

pub async fn ds_get(s: &AppState, p: &str, i: &str, id: &str) -> Result<Option<DatasourceView>> {
    match s.store.get::<DsDoc>(DATASOURCE, &scope(p, i), id).await? {
        Some(d) => Ok(Some(ds_view(s, p, i, d).await?)),
        None => Ok(None),
    }
}

pub async fn ds_delete(s: &AppState, _p: &str, _i: &str, id: &str) -> Result<()> {
    Ok(s.store.delete(DATASOURCE, id).await?)
}

pub async fn ds_name_taken(
    s: &AppState,
    p: &str,
    i: &str,
    name: &str,
    except: Option<&str>,
) -> Result<bool> {
    let docs: Vec<DsDoc> = s.store.list(DATASOURCE, &scope(p, i)).await?;
    Ok(docs
        .iter()
        .any(|d| d.name == name && Some(d.id.as_str()) != except))
}

pub async fn tasks_using_datasource(
    s: &AppState,
    p: &str,
    i: &str,
    id: &str,
) -> Result<Vec<String>> {
    Ok(task_all(s, p, i)
        .await?
        .into_iter()
        .filter(|t| t.source_datasource_id == id || t.target_datasource_id == id)
        .map(|t| t.id)
        .collect())
}

// ---- tasks ---------------------------------------------------------------------------------

fn task_from(id: String, created_ms: i64, updated_ms: i64, t: NewTask) -> TaskView {
    TaskView {
        id,
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
        .insert(TASK, &t.id, &scope(p, i), "", now, &t)
        .await?;
    Ok(t)
}

pub async fn task_update(s: &AppState, p: &str, i: &str, id: &str, t: NewTask) -> Result<TaskView> {
    let old = task_get(s, p, i, id)
        .await?
        .ok_or_else(|| Error::code(fdi_types::ErrorCode::TaskNotFound))?;
    let t = task_from(old.id, old.created_ms, fdi_types::now_millis(), t);
    s.store.update(TASK, &t.id, &t).await?;
    Ok(t)
}

pub async fn task_get(s: &AppState, p: &str, i: &str, id: &str) -> Result<Option<TaskView>> {
    Ok(s.store.get(TASK, &scope(p, i), id).await?)
}

pub async fn task_all(s: &AppState, p: &str, i: &str) -> Result<Vec<TaskView>> {
    Ok(s.store.list(TASK, &scope(p, i)).await?)
}

pub async fn task_delete(s: &AppState, _p: &str, _i: &str, id: &str) -> Result<()> {
    s.store.delete(TASK, id).await?;
    s.scheduler.forget_task(id).await?;
    Ok(s.scheduler.monitor().delete_task_runs(id).await?)
}

pub async fn task_name_taken(
    s: &AppState,
    p: &str,
    i: &str,
    name: &str,
    except: Option<&str>,
) -> Result<bool> {
    Ok(task_all(s, p, i)
        .await?
        .iter()
        .any(|t| t.name == name && Some(t.id.as_str()) != except))
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

/// Opens tasks for the scheduler: the task document, its two datasources (secrets unsealed) and
/// their connectors.
pub struct StoreTaskResolver {
    pub store: Store,
    pub connectors: Arc<ConnectorRegistry>,
}

impl StoreTaskResolver {
    async fn task(&self, task_id: &str) -> Result<Option<(String, TaskView)>, ApiError> {
        self.store
            .get_by_id::<TaskView>(TASK, task_id)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    async fn endpoint(
        &self,
        scope: &str,
        field: &str,
        id: &str,
    ) -> Result<fdi_engine::Endpoint, ApiError> {
        let doc: DsDoc = self
            .store
            .get(DATASOURCE, scope, id)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .ok_or_else(|| {
                ApiError::new(
                    fdi_types::ErrorCode::DatasourceMissing,
                    format!("{field}: {id}"),
                )
            })?;
        let content = self
            .store
            .open_sealed(&doc.sealed)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let ty = DatasourceType::parse(&doc.datasource_type)?;
        Ok(fdi_engine::Endpoint {
            datasource_type: ty,
            connector: crate::discovery::open_connector(&self.connectors, ty, &content)
                .map_err(|e| e.0)?,
        })
    }
}

#[async_trait]
impl TaskResolver for StoreTaskResolver {
    async fn resolve(&self, task_id: &str) -> Result<Option<ResolvedTask>, ApiError> {
        let Some((scope, t)) = self.task(task_id).await? else {
            return Ok(None);
        };
        let source = self
            .endpoint(&scope, "task.source_datasource_id", &t.source_datasource_id)
            .await?;
        let target = self
            .endpoint(&scope, "task.target_datasource_id", &t.target_datasource_id)
            .await?;
        Ok(Some(ResolvedTask {
            task_id: t.id,
            task_type: t.task_type,
            raw_detail: t.task_detail,
            source,
            target,
        }))
    }

    async fn describe(
        &self,
        task_id: &str,
    ) -> Result<Option<(TaskType, String, String)>, ApiError> {
        Ok(self
            .task(task_id)
            .await?
            .map(|(_, t)| (t.task_type, t.name, t.task_detail)))
    }
}
