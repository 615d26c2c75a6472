//! Dispatch plans (`tasks/{id}/dispatches`) and batch start/stop (`batch-operation/tasks`):
//! thin handlers over the scheduler.

use axum::Json;
use axum::extract::State;
use fdi_types::{ErrorCode, TaskType};
use serde_json::{Value, json};

use crate::AppState;
use crate::backend;
use crate::error::{Error, Result};
use crate::extract::{JsonBody, PathParams};
use crate::tasks;

async fn timing_task(s: &AppState, p: &PathParams) -> Result<backend::TaskView> {
    let t = tasks::load(s, p).await?;
    if t.task_type != TaskType::Timing {
        return Err(Error::new(
            ErrorCode::InvalidTaskType,
            format!(
                "task_id: {} is a REALTIME task; dispatch plans apply to TIMING tasks",
                t.id
            ),
        ));
    }
    Ok(t)
}

pub async fn create(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<Value>,
) -> Result<Json<Value>> {
    let t = timing_task(&s, &p).await?;
    let plan = s.scheduler.create_plan(&t.id, &b).await?;
    Ok(Json(json!(plan)))
}

/// The task's plan (the reference answers one object).
pub async fn get(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    let t = tasks::load(&s, &p).await?;
    let plan = s
        .scheduler
        .plans(&t.id)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            Error::new(
                ErrorCode::DispatchNotFound,
                format!("task_id: {} has no dispatch plan", t.id),
            )
        })?;
    Ok(Json(json!(plan)))
}

pub async fn update(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<Value>,
) -> Result<Json<Value>> {
    let t = timing_task(&s, &p).await?;
    let plan = s
        .scheduler
        .update_plan(&t.id, p.get("dispatch_id"), &b)
        .await?;
    Ok(Json(json!(plan)))
}

/// `{"action_id": "start"|"stop", "list": [{"task_id": ...}]}` -> per-task success / failure.
pub async fn batch(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<Value>,
) -> Result<Json<Value>> {
    let action = match b.get("action_id") {
        Some(Value::String(a)) if matches!(a.trim(), "start" | "stop") => a.trim().to_string(),
        Some(other) => {
            return Err(Error::new(
                ErrorCode::InvalidAction,
                format!("action_id: {other}"),
            ));
        }
        None => {
            return Err(Error::new(
                ErrorCode::InvalidAction,
                "action_id is required",
            ));
        }
    };
    let list = match b.get("list") {
        Some(Value::Array(l)) if !l.is_empty() => l,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err(Error::new(ErrorCode::TaskListEmpty, "list"));
        }
        Some(_) => return Err(Error::field("list", "must be an array of {\"task_id\"}")),
    };
    let mut ids = Vec::with_capacity(list.len());
    for (n, item) in list.iter().enumerate() {
        match item.get("task_id").and_then(Value::as_str).map(str::trim) {
            Some(id) if !id.is_empty() => ids.push(id.to_string()),
            _ => {
                return Err(Error::new(
                    ErrorCode::EmptyTaskIds,
                    format!("list[{n}].task_id"),
                ));
            }
        }
    }
    // Only tasks of this project/instance; others fail as "does not exist".
    let mut mine = Vec::new();
    let mut foreign = Vec::new();
    for id in ids {
        if backend::task_get(&s, p.project(), p.instance(), &id)
            .await?
            .is_some()
        {
            mine.push(id);
        } else {
            foreign.push(id);
        }
    }
    let mut res = s.scheduler.batch(&action, &mine).await?;
    for id in foreign {
        let e = fdi_types::ApiError::new(ErrorCode::TasksNotExist, format!("task_id: {id}"));
        res.failure.push(fdi_scheduler::BatchItem {
            task_id: id,
            task_name: String::new(),
            error_code: Some(e.code.to_string()),
            error_msg: Some(e.message),
        });
    }
    res.failure_count = res.failure.len();
    Ok(Json(json!(res)))
}
