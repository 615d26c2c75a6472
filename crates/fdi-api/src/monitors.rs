//! Task monitoring (reference 5.2.1-5.2.4): task-monitors, monitor-logs, one run's steps,
//! overview; a run's live progress as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use fdi_types::ErrorCode;
use futures::Stream;
use serde_json::{Value, json};

use crate::AppState;
use crate::backend::{self, RunFilter, RunView, StepView, TaskQuery, TaskSummary};
use crate::error::{Error, Result};
use crate::extract::{Params, PathParams};
use crate::tasks;

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

/// TaskMonitorDetailLog (table 5-92), with `sub_steps` where the run has parts.
fn step_json(st: &StepView) -> Value {
    let (data_size, unit) = size(st.data_bytes);
    let mut v = json!({
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
    });
    if !st.sub_steps.is_empty() {
        v["sub_steps"] = st
            .sub_steps
            .iter()
            .map(|p| {
                json!({
                    "status": p.code,
                    "stage": p.stage,
                    "remarks": p.remarks,
                    "data_count": p.data_count,
                })
            })
            .collect();
    }
    v
}

/// The step a run is at (its last one) as `{status, stage, remarks}`; null before any step.
fn current_step_json(r: &RunView) -> Value {
    r.steps.last().map_or(
        Value::Null,
        |st| json!({ "status": st.code, "stage": st.stage, "remarks": st.remarks }),
    )
}

/// A run's live progress fields (see docs/api-decisions.md, "Live progress of a run"), added to
/// its monitor-log entry and its detail.
fn add_progress(v: &mut Value, r: &RunView) {
    v["progress"] = json!(r.progress);
    v["read_count"] = json!(r.read_count);
    v["total_count"] = json!(r.total_count);
    v["rows_per_second"] = json!((r.rows_per_second * 10.0).round() / 10.0);
    v["remaining_time"] = json!(r.remaining_ms);
    v["current_step"] = current_step_json(r);
}

/// TaskMonitorLog (table 5-91), with the example's spellings (`execute_status`,
/// `position_status`), and the run's live progress.
fn run_json(r: &RunView) -> Value {
    let mut v = reference_run_json(r);
    add_progress(&mut v, r);
    v
}

/// TaskMonitorLog (table 5-91) as the reference has it.
fn reference_run_json(r: &RunView) -> Value {
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

/// TaskMonitorInfo (table 5-84) for every task, newest first, filtered by `task_name`
/// (substring, case sensitive) and `execute_statuses` / `execute_status`: a count and a page
/// query, however many tasks and runs exist.
pub async fn task_monitors(
    State(s): State<AppState>,
    p: PathParams,
    q: Params,
) -> Result<Json<Value>> {
    let (skip, limit) = q.page_paging(10, 999)?;
    let query = TaskQuery {
        name: q.str("task_name").map(str::to_string),
        execute_statuses: tasks::status_names(&q)?,
        offset: skip,
        limit,
        ..Default::default()
    };
    let (total, rows) = backend::task_summaries(&s, p.project(), p.instance(), &query).await?;
    let page: Vec<Value> = rows.iter().map(monitor_json).collect::<Result<_>>()?;
    Ok(Json(
        json!({ "total": total, "size": page.len(), "entities": page }),
    ))
}

/// TaskMonitorInfo of one task.
fn monitor_json(t: &TaskSummary) -> Result<Value> {
    let last = t.last_run.as_ref();
    let mut v = json!({
        "task_id": t.task.id,
        "task_name": t.task.name,
        "task_type": t.task.task_type.as_str(),
        "status": i32::from(t.started || t.running),
        "last_execute_time": last.map(|r| r.start_ms),
        "position": last.map(|r| r.position.as_str()),
        "execute_status": tasks::last_status(t),
        "source_app_id": t.source.app_id,
        "source_app_name": t.source.app_name,
        "source_instance_id": t.source.instance_id,
        "target_app_id": t.target.app_id,
        "target_app_name": t.target.app_name,
        "target_instance_id": t.target.instance_id,
        // The reference: "CDC" for a combination task, else null.
        "ext_type": if t.task.kind.is_multi() { json!("CDC") } else { Value::Null },
        "enterprise_project_id": "0",
    });
    if let Some(tag) = t.task.task_tag.as_deref().filter(|x| !x.is_empty()) {
        v["task_tag"] = json!(tag);
    }
    if let Some(body) = &t.plan_body {
        let plan: Value = serde_json::from_str(body).map_err(Error::internal)?;
        for key in ["use_quartz_cron", "cron", "period", "dispatch_interval"] {
            if let Some(x) = plan.get(key).filter(|x| !x.is_null()) {
                v[key] = x.clone();
            }
        }
    }
    Ok(v)
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

/// The task's run `tracking_id` with its steps (404 naming `tracking_id` when there is none).
async fn load_run(s: &AppState, task_id: &str, tracking: &str) -> Result<RunView> {
    backend::get_run(s, task_id, tracking)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::NotFound,
                format!("tracking_id: no run {tracking} for task {task_id}"),
            )
        })
}

/// One run's steps (table 5-98), and its live progress.
pub async fn monitor_log(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    let t = tasks::load(&s, &p).await?;
    let r = load_run(&s, &t.id, p.get("tracking_id")).await?;
    let mut v = json!({
        "id": r.id,
        "execute_status": r.execute_status.as_str(),
        "dirty_data_count": r.dirty_data_count,
        "detail_logs": r.steps.iter().map(step_json).collect::<Vec<_>>(),
    });
    add_progress(&mut v, &r);
    Ok(Json(v))
}

/// How often the event stream reads the run from the store.
const EVENTS_POLL: Duration = Duration::from_millis(500);
/// A comment line this often keeps proxies from closing a quiet stream.
const EVENTS_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// A run's monitor-log entry as Server-Sent Events: `progress` whenever it changed (read from
/// the store every 500 ms, so a run on any node of the store is followed), then `end` with the
/// final entry once the run has ended, then the stream closes. `id` counts the events from 1.
pub async fn monitor_events(
    State(s): State<AppState>,
    p: PathParams,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let t = tasks::load(&s, &p).await?;
    let first = load_run(&s, &t.id, p.get("tracking_id")).await?;
    let events = RunEvents {
        stopped: s.scheduler.stopped(),
        state: s,
        task_id: t.id,
        run_id: first.id.clone(),
        next: Some(first),
        last: None,
        seq: 0,
        ended: false,
    };
    let stream = futures::stream::unfold(events, |mut e| async move {
        let event = e.next_event().await?;
        Some((Ok(event), e))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(EVENTS_KEEP_ALIVE)))
}

/// Where an event stream of one run is.
struct RunEvents {
    state: AppState,
    /// The node is stopping: the stream closes (after `end` when the run has ended).
    stopped: tokio_util::sync::CancellationToken,
    task_id: String,
    run_id: String,
    /// The run as read already and not yet looked at.
    next: Option<RunView>,
    /// The last entry sent (without its ever-growing `spend_time`).
    last: Option<Value>,
    seq: u64,
    ended: bool,
}

impl RunEvents {
    /// The next event: the entry when it changed, `end` once the run ended; None after `end`,
    /// when the run is gone (its task was deleted), or when this node stops while the run goes
    /// on (on another node).
    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if self.ended {
                return None;
            }
            let run = match self.next.take() {
                Some(r) => r,
                None => {
                    tokio::select! {
                        _ = self.stopped.cancelled() => {}
                        _ = tokio::time::sleep(EVENTS_POLL) => {}
                    }
                    let id = &self.run_id;
                    match backend::get_run(&self.state, &self.task_id, id).await {
                        Ok(Some(r)) => r,
                        Ok(None) => return None,
                        Err(_) if self.stopped.is_cancelled() => return None,
                        // The store is briefly unreachable: try again at the next poll.
                        Err(e) => {
                            tracing::warn!(task_id = %self.task_id, run_id = %id, error = ?e, "run events: cannot read the run");
                            continue;
                        }
                    }
                }
            };
            let entry = run_json(&run);
            let mut compared = entry.clone();
            if let Some(o) = compared.as_object_mut() {
                o.remove("spend_time");
            }
            let ended = !run.execute_status.is_active();
            if !ended && self.stopped.is_cancelled() {
                return None;
            }
            if !ended && self.last.as_ref() == Some(&compared) {
                continue;
            }
            self.last = Some(compared);
            self.ended = ended;
            self.seq += 1;
            let event = Event::default()
                .event(if ended { "end" } else { "progress" })
                .id(self.seq.to_string())
                .data(entry.to_string());
            return Some(event);
        }
    }
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
