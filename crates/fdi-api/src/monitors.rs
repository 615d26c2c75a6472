//! Task monitoring (reference 5.2.1-5.2.4): task-monitors, monitor-logs, one run's steps,
//! overview.

use axum::Json;
use axum::extract::State;
use fdi_types::{ErrorCode, ExecuteStatus};
use serde_json::{Value, json};

use crate::AppState;
use crate::backend::{self, RunFilter, RunView, StepView};
use crate::error::{Error, Result};
use crate::extract::{Params, PathParams};
use crate::tasks::{self, parse_statuses};

/// Bytes as the reference's `data_size` + `data_size_unit` (B, KB, MB, GB).
pub(crate) fn size(bytes: u64) -> (f64, &'static str) {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    ((v * 100.0).round() / 100.0, UNITS[i])
}

/// TaskMonitorDetailLog (table 5-92).
fn step_json(st: &StepView) -> Value {
    let (data_size, unit) = size(st.data_bytes);
    json!({
        "id": st.id,
        "status": st.code,
        "position": st.position.as_str(),
        "position_status": st.position_status.as_str(),
        "stage": st.stage,
        "dirty_data_count": st.dirty_data_count,
        "data_count": st.data_count,
        "data_size": data_size,
        "data_size_unit": unit,
        "spend_time": (st.end_ms - st.begin_ms).max(0),
        "remarks": st.remarks,
        "step_begin_time": st.begin_ms,
        "step_end_time": st.end_ms,
    })
}

/// TaskMonitorLog (table 5-91), with the example's spellings (`execute_status`,
/// `position_status`).
fn run_json(r: &RunView) -> Value {
    let (data_size, unit) = size(r.data_bytes);
    let end = r.end_ms;
    let spend = end.unwrap_or_else(fdi_types::now_millis) - r.start_ms;
    json!({
        "id": r.id,
        "start_time": r.start_ms,
        "dispatch_time": r.dispatch_ms,
        "end_time": end,
        "execute_status": r.execute_status.as_str(),
        "position": r.position.as_str(),
        "position_status": r.position_status.as_str(),
        "status": r.status_code,
        "dirty_data_count": r.dirty_data_count,
        "data_count": r.data_count,
        "data_size": data_size,
        "data_size_unit": unit,
        "spend_time": spend.max(0),
        "read_spend_time": r.read_ms,
        "write_spend_time": r.write_ms,
        "remarks": r.remarks,
        "detail_logs": r.steps.iter().map(step_json).collect::<Vec<_>>(),
    })
}

/// TaskMonitorInfo (table 5-84) for every task, filtered by `task_name` (substring, case
/// sensitive) and `execute_statuses` / `execute_status`.
pub async fn task_monitors(
    State(s): State<AppState>,
    p: PathParams,
    q: Params,
) -> Result<Json<Value>> {
    let (skip, limit) = q.page_paging(10, 999)?;
    let statuses = parse_statuses(&q)?;
    let name = q.str("task_name");
    let ends: std::collections::HashMap<String, backend::DatasourceView> =
        backend::ds_all(&s, p.project(), p.instance())
            .await?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
    let field = |id: &str, f: fn(&backend::DatasourceView) -> &str| {
        ends.get(id).map(f).unwrap_or("").to_string()
    };
    let mut rows = Vec::new();
    for t in backend::task_all(&s, p.project(), p.instance()).await? {
        if name.is_some_and(|n| !t.name.contains(n)) {
            continue;
        }
        let last = backend::last_run(&s, &t.id).await?;
        let exec = last
            .as_ref()
            .map(|r| r.execute_status)
            .unwrap_or(ExecuteStatus::Unstarted);
        if statuses.as_ref().is_some_and(|v| !v.contains(&exec)) {
            continue;
        }
        let mut v = json!({
            "task_id": t.id,
            "task_name": t.name,
            "task_type": t.task_type.as_str(),
            "status": i32::from(backend::task_started(&s, &t.id).await?),
            "last_execute_time": last.as_ref().map(|r| r.start_ms),
            "position": last.as_ref().map(|r| r.position.as_str()),
            "execute_status": exec.as_str(),
            "source_app_id": field(&t.source_datasource_id, |d| &d.app_id),
            "source_app_name": field(&t.source_datasource_id, |d| &d.app_name),
            "source_instance_id": field(&t.source_datasource_id, |d| &d.instance_id),
            "target_app_id": field(&t.target_datasource_id, |d| &d.app_id),
            "target_app_name": field(&t.target_datasource_id, |d| &d.app_name),
            "target_instance_id": field(&t.target_datasource_id, |d| &d.instance_id),
            "ext_type": Value::Null,
            "enterprise_project_id": "0",
        });
        if let Some(tag) = t.task_tag.as_deref().filter(|x| !x.is_empty()) {
            v["task_tag"] = json!(tag);
        }
        if let Some(plan) = s.scheduler.plans(&t.id).await?.into_iter().next() {
            v["use_quartz_cron"] = json!(plan.use_quartz_cron);
            if let Some(c) = plan.cron {
                v["cron"] = json!(c);
            }
            if let Some(p) = plan.period {
                v["period"] = json!(p);
            }
            if let Some(i) = plan.dispatch_interval {
                v["dispatch_interval"] = json!(i);
            }
        }
        rows.push((t.created_ms, v));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let total = rows.len();
    let page: Vec<Value> = rows
        .into_iter()
        .skip(skip as usize)
        .take(limit as usize)
        .map(|(_, v)| v)
        .collect();
    Ok(Json(
        json!({ "total": total, "size": page.len(), "entities": page }),
    ))
}

/// One entry per run of the task, newest first, within `begin_time`..=`end_time` (start time).
pub async fn monitor_logs(
    State(s): State<AppState>,
    p: PathParams,
    q: Params,
) -> Result<Json<Value>> {
    let t = tasks::load(&s, &p).await?;
    let (skip, limit) = q.page_paging(10, 999)?;
    let begin = q.i64("begin_time")?;
    let end = q.i64("end_time")?;
    for (n, v) in [("begin_time", begin), ("end_time", end)] {
        if v.is_some_and(|v| v < 0) {
            return Err(Error::field(n, "must be a timestamp in ms >= 0"));
        }
    }
    if let (Some(b), Some(e)) = (begin, end)
        && b > e
    {
        return Err(Error::field("begin_time", "must not be after end_time"));
    }
    let (total, runs) = backend::list_runs(
        &s,
        &t.id,
        RunFilter {
            begin_ms: begin,
            end_ms: end,
            offset: skip,
            limit,
        },
    )
    .await?;
    Ok(Json(json!({
        "total": total,
        "size": runs.len(),
        "entities": runs.iter().map(run_json).collect::<Vec<_>>(),
    })))
}

/// One run's steps (table 5-98).
pub async fn monitor_log(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    let t = tasks::load(&s, &p).await?;
    let tracking = p.get("tracking_id");
    let r = backend::get_run(&s, &t.id, tracking)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("tracking_id: no run {tracking} for task {}", t.id),
            )
        })?;
    Ok(Json(json!({
        "id": r.id,
        "execute_status": r.execute_status.as_str(),
        "dirty_data_count": r.dirty_data_count,
        "detail_logs": r.steps.iter().map(step_json).collect::<Vec<_>>(),
    })))
}

/// Totals of the task's runs by outcome (table 5-105).
pub async fn overview(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    let t = tasks::load(&s, &p).await?;
    let c = backend::run_counts(&s, &t.id).await?;
    Ok(Json(json!({
        "task_name": t.name,
        "total_num": c.total,
        "error_num": c.error,
        "success_num": c.success,
        "running_num": c.running,
        "cancel_num": c.cancelled,
    })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::size(0), (0.0, "B"));
        assert_eq!(super::size(2048), (2.0, "KB"));
        assert_eq!(super::size(1536 * 1024), (1.5, "MB"));
    }
}
