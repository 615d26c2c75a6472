//! The only module that talks to the store and the run manager: handlers see small views.

use fdi_types::{DatasourceType, ExecuteStatus, Position, PositionStatus, TaskType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::localstore::{APP, DATASOURCE, RUN, TASK};

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepView {
    pub id: String,
    pub code: u16,
    pub position: Position,
    pub position_status: PositionStatus,
    pub stage: String,
    pub data_count: u64,
    pub dirty_data_count: u64,
    pub data_bytes: u64,
    pub remarks: String,
    pub begin_ms: i64,
    pub end_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunView {
    pub id: String,
    #[serde(default)]
    pub task_id: String,
    pub start_ms: i64,
    pub dispatch_ms: i64,
    pub end_ms: Option<i64>,
    pub execute_status: ExecuteStatus,
    pub position: Position,
    pub position_status: PositionStatus,
    pub status_code: u16,
    pub data_count: u64,
    pub dirty_data_count: u64,
    pub data_bytes: u64,
    pub read_ms: i64,
    pub write_ms: i64,
    pub remarks: String,
    pub steps: Vec<StepView>,
}

pub struct RunFilter {
    pub begin_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Default)]
pub struct RunCounts {
    pub total: u64,
    pub error: u64,
    pub success: u64,
    pub running: u64,
    pub cancelled: u64,
}

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
    s.store.get(APP, &scope(p, i), id).await
}

pub async fn app_update(s: &AppState, _p: &str, _i: &str, a: &AppView) -> Result<AppView> {
    let mut a = a.clone();
    a.updated_ms = fdi_types::now_millis();
    s.store.update(APP, &a.id, &a).await?;
    Ok(a)
}

pub async fn app_delete(s: &AppState, _p: &str, _i: &str, id: &str) -> Result<()> {
    s.store.delete(APP, id).await
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
    s.store.delete(DATASOURCE, id).await
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

fn task_from(id: String, created_ms: i64, t: NewTask) -> TaskView {
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
        updated_ms: fdi_types::now_millis(),
    }
}

pub async fn task_create(s: &AppState, p: &str, i: &str, t: NewTask) -> Result<TaskView> {
    let now = fdi_types::now_millis();
    let t = task_from(fdi_types::new_id(), now, t);
    s.store
        .insert(TASK, &t.id, &scope(p, i), "", now, &t)
        .await?;
    Ok(t)
}

pub async fn task_update(s: &AppState, p: &str, i: &str, id: &str, t: NewTask) -> Result<TaskView> {
    let old = task_get(s, p, i, id)
        .await?
        .ok_or_else(|| Error::code(fdi_types::ErrorCode::TaskNotFound))?;
    let t = task_from(old.id, old.created_ms, t);
    s.store.update(TASK, &t.id, &t).await?;
    Ok(t)
}

pub async fn task_get(s: &AppState, p: &str, i: &str, id: &str) -> Result<Option<TaskView>> {
    s.store.get(TASK, &scope(p, i), id).await
}

pub async fn task_all(s: &AppState, p: &str, i: &str) -> Result<Vec<TaskView>> {
    s.store.list(TASK, &scope(p, i)).await
}

pub async fn task_delete(s: &AppState, _p: &str, _i: &str, id: &str) -> Result<()> {
    s.store.delete(TASK, id).await?;
    s.store.delete_children(RUN, id).await
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
    s.store.first_child::<RunView>(RUN, task).await
}

pub async fn list_runs(s: &AppState, task: &str, f: RunFilter) -> Result<(u64, Vec<RunView>)> {
    let v: Vec<RunView> = s
        .store
        .children::<RunView>(RUN, task)
        .await?
        .into_iter()
        .filter(|r| {
            f.begin_ms.is_none_or(|b| r.start_ms >= b) && f.end_ms.is_none_or(|e| r.start_ms <= e)
        })
        .collect();
    Ok(page(v, f.offset, f.limit))
}

pub async fn get_run(s: &AppState, task: &str, run: &str) -> Result<Option<RunView>> {
    Ok(s.store
        .get::<RunView>(RUN, "", run)
        .await?
        .filter(|r| r.task_id == task))
}

pub async fn run_counts(s: &AppState, task: &str) -> Result<RunCounts> {
    let mut c = RunCounts::default();
    for r in s.store.children::<RunView>(RUN, task).await? {
        c.total += 1;
        match r.execute_status {
            ExecuteStatus::Error => c.error += 1,
            ExecuteStatus::Success => c.success += 1,
            ExecuteStatus::Cancelled => c.cancelled += 1,
            ExecuteStatus::Running | ExecuteStatus::Waiting => c.running += 1,
            ExecuteStatus::Unstarted => {}
        }
    }
    Ok(c)
}

pub async fn start_run(s: &AppState, p: &str, i: &str, t: &TaskView) -> Result<String> {
    let endpoint = |d: &DatasourceView| -> Result<fdi_engine::Endpoint> {
        let ty = DatasourceType::parse(&d.datasource_type)?;
        Ok(fdi_engine::Endpoint {
            datasource_type: ty,
            connector: crate::discovery::connector_for(s, ty, &d.content)?,
        })
    };
    let missing = |f: &str, id: &str| {
        Error::new(
            fdi_types::ErrorCode::DatasourceMissing,
            format!("{f}: {id}"),
        )
    };
    let src = ds_get(s, p, i, &t.source_datasource_id)
        .await?
        .ok_or_else(|| missing("task.source_datasource_id", &t.source_datasource_id))?;
    let dst = ds_get(s, p, i, &t.target_datasource_id)
        .await?
        .ok_or_else(|| missing("task.target_datasource_id", &t.target_datasource_id))?;
    s.runs
        .start(&t.id, &t.task_detail, endpoint(&src)?, endpoint(&dst)?)
        .await
}

pub async fn terminate(s: &AppState, t: &TaskView) -> Result<()> {
    s.runs.terminate(&t.id)
}
