//! Normal tasks (reference 5.3.1-5.3.8): create / list / get / update / delete, statistics,
//! manual run and terminate.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use fdi_engine::Endpoint;
use fdi_types::{ErrorCode, ExecuteStatus, TaskDetail, TaskKind, TaskType};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::backend::{self, DatasourceView, NewTask, RunView, TaskQuery, TaskSummary, TaskView};
use crate::discovery::connector_for;
use crate::error::{Error, Result};
use crate::extract::{JsonBody, Params, PathParams};
use crate::openapi;
use crate::validate;

#[derive(Deserialize)]
pub struct TaskBody {
    #[serde(default)]
    task: Option<TaskBasic>,
    #[serde(default)]
    task_detail: Option<Value>,
}

/// TaskBasicRequestBody (table 5-109). The table spells `source_data_source_id`, the example
/// `source_datasource_id`: both are accepted.
#[derive(Deserialize)]
pub struct TaskBasic {
    #[serde(default)]
    task_name: Option<String>,
    #[serde(default)]
    task_type: Option<String>,
    #[serde(default, alias = "source_data_source_id")]
    source_datasource_id: Option<String>,
    #[serde(default, alias = "target_data_source_id")]
    target_datasource_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    task_tag: Option<String>,
}

/// Everything about a task request that can be checked, including the plan against the live
/// datasources. Nothing is stored until this passes.
async fn check_body(
    s: &AppState,
    p: &PathParams,
    b: TaskBody,
    id: Option<&str>,
) -> Result<NewTask> {
    let t = b
        .task
        .ok_or_else(|| Error::new(ErrorCode::TaskEmpty, "task"))?;
    let name = t.task_name.unwrap_or_default();
    validate::task_name(&name)?;
    let task_type = TaskType::parse(t.task_type.as_deref().unwrap_or(""))?;
    if let Some(d) = &t.description {
        validate::description("task.description", d)?;
    }
    let tag = t.task_tag.filter(|t| !t.is_empty());
    if let Some(tag) = &tag {
        validate::task_tag(tag)?;
    }
    let raw = match b.task_detail {
        None | Some(Value::Null) => {
            return Err(Error::new(ErrorCode::TaskDetailEmpty, "task_detail"));
        }
        Some(Value::String(s)) => s,
        Some(v @ Value::Object(_)) => v.to_string(),
        Some(_) => {
            return Err(Error::field(
                "task_detail",
                "must be a JSON string (RawFormDataRequest)",
            ));
        }
    };
    let detail = TaskDetail::parse(&raw)?;
    let src_id = t.source_datasource_id.filter(|x| !x.trim().is_empty());
    let dst_id = t.target_datasource_id.filter(|x| !x.trim().is_empty());
    let (Some(src_id), Some(dst_id)) = (src_id, dst_id) else {
        return Err(Error::new(
            ErrorCode::SourceOrTargetEmpty,
            "task.source_datasource_id and task.target_datasource_id are required",
        ));
    };
    let src = backend::ds_get(s, p.project(), p.instance(), &src_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::DatasourceMissing,
                format!("task.source_datasource_id: {src_id}"),
            )
        })?;
    let dst = backend::ds_get(s, p.project(), p.instance(), &dst_id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::DatasourceMissing,
                format!("task.target_datasource_id: {dst_id}"),
            )
        })?;
    if backend::task_name_taken(s, p.project(), p.instance(), &name, id).await? {
        return Err(Error::new(
            ErrorCode::TaskNameExists,
            format!("task.task_name: {name:?}"),
        ));
    }
    resolve(s, &detail, &src, &dst).await?;
    backend::check_run_extras(s, p.project(), p.instance(), &detail).await?;
    Ok(NewTask {
        name,
        task_type,
        source_datasource_id: src.id,
        target_datasource_id: dst.id,
        description: t.description,
        task_tag: tag,
        task_detail: raw,
    })
}

fn endpoint(s: &AppState, d: &DatasourceView) -> Result<Endpoint> {
    let t = s.catalog.parse_type(&d.datasource_type)?;
    Ok(Endpoint {
        datasource_type: t,
        connector: connector_for(s, t, &d.content)?,
    })
}

/// `fdi_engine::resolve_plan` against the live datasources: 400 FDI.3016 naming the side when a
/// datasource cannot be reached or refuses the login, 400 naming the field when a table or
/// column is missing or a mapping is incompatible.
async fn resolve(
    s: &AppState,
    detail: &TaskDetail,
    src: &DatasourceView,
    dst: &DatasourceView,
) -> Result<()> {
    let a = endpoint(s, src)?;
    let b = endpoint(s, dst)?;
    let r = async {
        reachable(&a, "task.source_datasource_id", src).await?;
        reachable(&b, "task.target_datasource_id", dst).await?;
        fdi_engine::resolve_plan(detail, &a, &b)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }
    .await;
    a.connector.close().await;
    b.connector.close().await;
    r
}

/// Test-connect one side of a task: 400 FDI.3016 naming the field and the datasource.
async fn reachable(e: &Endpoint, field: &str, d: &DatasourceView) -> Result<()> {
    e.connector.test_connect().await.map_err(|err| {
        Error::new(
            ErrorCode::TestConnectFailed,
            format!(
                "{field}: cannot connect to datasource {:?} ({})",
                d.name, d.id
            ),
        )
        .with_detail(err.message)
    })
}

/// Names and apps of the datasources a task points at, for responses.
struct Ends {
    ds: HashMap<String, DatasourceView>,
}

impl Ends {
    async fn load(s: &AppState, p: &PathParams) -> Result<Self> {
        let ds = backend::ds_all(s, p.project(), p.instance())
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        Ok(Self { ds })
    }
    fn get(&self, id: &str) -> Option<&DatasourceView> {
        self.ds.get(id)
    }
    fn field<'a>(&'a self, id: &str, f: impl Fn(&'a DatasourceView) -> &'a str) -> &'a str {
        self.get(id).map(f).unwrap_or("")
    }
}

/// TaskBasicRsp (table 5-111): `task_type` and `status` lowercase as the example.
fn task_json(t: &TaskView, ends: &Ends, last: Option<&RunView>, running: bool) -> Value {
    let mut v = json!({
        "task_id": t.id,
        "task_name": t.name,
        "task_type": t.task_type.as_response_str(),
        "status": if running { "running" } else { "stop" },
        "source_datasource_id": t.source_datasource_id,
        "target_datasource_id": t.target_datasource_id,
        "source_datasource_name": ends.field(&t.source_datasource_id, |d| &d.name),
        "target_datasource_name": ends.field(&t.target_datasource_id, |d| &d.name),
        "source_app_id": ends.field(&t.source_datasource_id, |d| &d.app_id),
        "target_app_id": ends.field(&t.target_datasource_id, |d| &d.app_id),
        "source_app_name": ends.field(&t.source_datasource_id, |d| &d.app_name),
        "target_app_name": ends.field(&t.target_datasource_id, |d| &d.app_name),
        "created_date": t.created_ms,
        "last_modified_date": t.updated_ms,
        "task_mode": "NORMAL",
        "execute_status": last.map(|r| r.execute_status.as_str()).unwrap_or(ExecuteStatus::Unstarted.as_str()),
        "repulling_snapshot": false,
    });
    if let Some(d) = t.description.as_deref().filter(|d| !d.is_empty()) {
        v["description"] = json!(d);
    }
    if let Some(tag) = t.task_tag.as_deref().filter(|d| !d.is_empty()) {
        v["task_tag"] = json!(tag);
    }
    v
}

async fn full_json(s: &AppState, p: &PathParams, t: &TaskView) -> Result<Value> {
    let ends = Ends::load(s, p).await?;
    let last = backend::last_run(s, &t.id).await?;
    let running = backend::task_started(s, &t.id).await?;
    let mut task = task_json(t, &ends, last.as_ref(), running);
    task["project_id"] = json!(p.project());
    Ok(json!({ "task": task, "task_detail": t.task_detail }))
}

pub async fn create(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<TaskBody>,
) -> Result<Json<Value>> {
    let new = check_body(&s, &p, b, None).await?;
    let t = backend::task_create(&s, p.project(), p.instance(), new).await?;
    Ok(Json(full_json(&s, &p, &t).await?))
}

/// The task of the path, normal or combination (monitor logs, run, terminate, start / stop); a
/// combination task that was only initialised is not a task yet.
pub(crate) async fn load(s: &AppState, p: &PathParams) -> Result<TaskView> {
    let id = p.get("task_id");
    backend::task_get(s, p.project(), p.instance(), id)
        .await?
        .filter(|t| t.kind != TaskKind::MultiInit)
        .ok_or_else(|| Error::new(ErrorCode::TaskNotFound, format!("task_id: {id}")))
}

/// The normal task of the path (what `tasks/{id}` shows, changes and deletes): a combination
/// task is not found here, the error says where it is.
pub(crate) async fn load_normal(s: &AppState, p: &PathParams) -> Result<TaskView> {
    let t = load(s, p).await?;
    if t.kind != TaskKind::Normal {
        return Err(Error::new(
            ErrorCode::TaskNotFound,
            format!(
                "task_id: {} is a combination task: see multi-tasks/{}",
                t.id, t.id
            ),
        ));
    }
    Ok(t)
}

pub async fn get(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    let t = load_normal(&s, &p).await?;
    Ok(Json(full_json(&s, &p, &t).await?))
}

pub async fn update(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<TaskBody>,
) -> Result<Json<Value>> {
    let old = load_normal(&s, &p).await?;
    let new = check_body(&s, &p, b, Some(&old.id)).await?;
    let t = backend::task_update(&s, p.project(), p.instance(), &old.id, new).await?;
    if asks_incremental_reset(&t.task_detail) {
        s.scheduler.reset_watermark(&t.id).await?;
    }
    Ok(Json(full_json(&s, &p, &t).await?))
}

/// `reset_incr_begin_time: true` in an updated task_detail (in `sourceSelectedDatasource`, or at
/// the top level): the next incremental run starts again from `dataTimestamp`.
fn asks_incremental_reset(raw_detail: &str) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(raw_detail) else {
        return false;
    };
    let truthy = |x: Option<&Value>| match x {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    };
    truthy(v.get("reset_incr_begin_time"))
        || ["sourceSelectedDatasource", "source_selected_datasource"]
            .iter()
            .any(|k| truthy(v.get(*k).and_then(|s| s.get("reset_incr_begin_time"))))
}

pub async fn delete(State(s): State<AppState>, p: PathParams) -> Result<StatusCode> {
    let t = load_normal(&s, &p).await?;
    if s.scheduler.is_running(&t.id).await? {
        return Err(Error::new(
            ErrorCode::TaskRunning,
            format!(
                "task_id: {} has a run in progress; terminate it first",
                t.id
            ),
        ));
    }
    backend::task_delete(&s, p.project(), p.instance(), &t.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `execute_statuses` / `execute_status`: one status or a comma-separated list (FDI.3050).
pub(crate) fn parse_statuses(q: &Params) -> Result<Option<Vec<ExecuteStatus>>> {
    let Some(raw) = q.str_any(&["execute_statuses", "execute_status"]) else {
        return Ok(None);
    };
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            ExecuteStatus::parse(s).ok_or_else(|| {
                Error::new(
                    ErrorCode::InvalidExecuteStatus,
                    format!("execute_statuses: {s:?}"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// BriefTaskRespBean (table 5-119) as the example spells it.
fn brief_json(t: &TaskSummary) -> Value {
    let mut v = json!({
        "task_id": t.task.id,
        "task_name": t.task.name,
        "task_type": t.task.task_type.as_str(),
        "status": i32::from(t.started || t.running),
        "created_date": t.task.created_ms.to_string(),
        "version": "1",
        "last_modified_time": t.task.updated_ms,
        "execute_status": last_status(t),
        "source_app_id": t.source.app_id,
        "target_app_id": t.target.app_id,
        "source_instance_id": t.source.instance_id,
        "target_instance_id": t.target.instance_id,
        // The reference: "CDC" for a combination task, else null.
        "ext_type": if t.task.kind.is_multi() { json!("CDC") } else { Value::Null },
        "enterprise_project_id": "0",
    });
    if let Some(tag) = t.task.task_tag.as_deref().filter(|d| !d.is_empty()) {
        v["task_tag"] = json!(tag);
    }
    v
}

/// The execute status of the task's last run (UNSTARTED when it never ran).
pub(crate) fn last_status(t: &TaskSummary) -> &str {
    t.last_run
        .as_ref()
        .map(|r| r.execute_status.as_str())
        .unwrap_or(ExecuteStatus::Unstarted.as_str())
}

/// The filters every task list shares: `execute_statuses` / `execute_status`.
pub(crate) fn status_names(q: &Params) -> Result<Option<Vec<String>>> {
    Ok(parse_statuses(q)?.map(|v| v.iter().map(|s| s.as_str().to_string()).collect()))
}

pub async fn list(State(s): State<AppState>, p: PathParams, q: Params) -> Result<Json<Value>> {
    let (skip, limit) = q.page_paging(10, 1000)?;
    let status = q.i64("status")?;
    if status.is_some_and(|x| !(0..=1).contains(&x)) {
        return Err(Error::field("status", "must be 0 or 1"));
    }
    let task_type = q.str("task_type").map(TaskType::parse).transpose()?;
    let sort_field = q.str("sort_field").map(|x| x.to_ascii_uppercase());
    if let Some(f) = &sort_field
        && f != "CREATED_DATE"
        && f != "STATUS"
    {
        return Err(Error::new(
            ErrorCode::InvalidSort,
            format!("sort_field: {f:?} (expected CREATED_DATE or STATUS)"),
        ));
    }
    let ascending = match q.str("sort_type").map(|x| x.to_ascii_uppercase()) {
        None => false,
        Some(x) if x == "ASC" => true,
        Some(x) if x == "DESC" => false,
        Some(x) => {
            return Err(Error::new(
                ErrorCode::InvalidSort,
                format!("sort_type: {x:?} (expected ASC or DESC)"),
            ));
        }
    };
    if let Some(mode) = q.str("task_mode")
        && !mode.eq_ignore_ascii_case("NORMAL")
        && !matches!(mode.to_ascii_uppercase().as_str(), "CDC" | "FLOW")
    {
        return Err(Error::field(
            "task_mode",
            format!("{mode:?} (expected NORMAL, CDC or FLOW)"),
        ));
    }
    // task_mode NORMAL: normal tasks; CDC: combination tasks; none: both. There are no FLOW
    // (orchestration) tasks.
    if q.str("task_mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("FLOW"))
    {
        return Ok(Json(json!({ "total": 0, "size": 0, "entities": [] })));
    }
    let kind = q.str("task_mode").map(|m| {
        if m.eq_ignore_ascii_case("NORMAL") {
            TaskKind::Normal
        } else {
            TaskKind::Multi
        }
    });
    let opt = |name: &str| q.str(name).map(str::to_string);
    let query = TaskQuery {
        kind,
        task_id: opt("task_id"),
        name: q.str_any(&["task_name", "name"]).map(str::to_string),
        task_type: task_type.map(|t| t.as_str().to_string()),
        source_datasource_id: opt("source_datasource_id"),
        target_datasource_id: opt("target_datasource_id"),
        datasource_id: opt("datasource_id"),
        source_app_id: opt("source_app_id"),
        target_app_id: opt("target_app_id"),
        task_tag: opt("task_tag"),
        execute_statuses: status_names(&q)?,
        active: status.map(|st| st == 1),
        by_status: sort_field.as_deref() == Some("STATUS"),
        ascending,
        offset: skip,
        limit,
    };
    let (total, rows) = backend::task_summaries(&s, p.project(), p.instance(), &query).await?;
    let page: Vec<Value> = rows.iter().map(brief_json).collect();
    Ok(Json(
        json!({ "total": total, "size": page.len(), "entities": page }),
    ))
}

/// Counts of normal and of combination (CDC) tasks by their last run's outcome (a run in
/// progress counts as running). One grouped query each.
pub async fn statistics(
    State(s): State<AppState>,
    p: PathParams,
) -> Result<Json<openapi::TaskStatistics>> {
    let common = state_counts(&s, &p, TaskKind::Normal).await?;
    let cdc = state_counts(&s, &p, TaskKind::Multi).await?;
    Ok(Json(openapi::TaskStatistics {
        common_task_details: Some(common),
        cdc_task_details: Some(cdc),
    }))
}

/// The tasks of `kind` by their last run's outcome.
async fn state_counts(
    s: &AppState,
    p: &PathParams,
    kind: TaskKind,
) -> Result<openapi::TaskStateCounts> {
    let mut c = openapi::TaskStateCounts {
        running_tasks_count: 0,
        abnormal_tasks_count: 0,
        terminated_tasks_count: 0,
        completed_tasks_count: 0,
    };
    for (state, n) in backend::task_state_counts(s, p.project(), p.instance(), kind).await? {
        let n = n as i64;
        match ExecuteStatus::parse(&state) {
            Some(ExecuteStatus::Running | ExecuteStatus::Waiting) => c.running_tasks_count += n,
            Some(ExecuteStatus::Error) => c.abnormal_tasks_count += n,
            Some(ExecuteStatus::Cancelled) => c.terminated_tasks_count += n,
            Some(ExecuteStatus::Success) => c.completed_tasks_count += n,
            Some(ExecuteStatus::Unstarted) | None => {}
        }
    }
    Ok(c)
}

pub async fn run(State(s): State<AppState>, p: PathParams) -> Result<Json<openapi::RunStarted>> {
    let t = load(&s, &p).await?;
    let tracking_id = backend::start_run(&s, p.project(), p.instance(), &t).await?;
    Ok(Json(openapi::RunStarted {
        message: "success".into(),
        tracking_id,
    }))
}

pub async fn terminate(State(s): State<AppState>, p: PathParams) -> Result<Json<openapi::Message>> {
    let t = load(&s, &p).await?;
    backend::terminate(&s, &t).await?;
    Ok(Json(openapi::Message {
        message: "success".into(),
    }))
}
