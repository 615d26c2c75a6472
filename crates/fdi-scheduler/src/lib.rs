//! The scheduler: what makes fdi run jobs by itself, on time, once.
//!
//! - Runs (manual, plan fires, realtime) are claimed in the store ([`fdi_store::Claim`]): one
//!   active run per task and one node per run, whichever node asked. The claim carries a lease
//!   that its node renews every heartbeat; a node that dies stops renewing, and any other node
//!   ends its runs ERROR (915) once the lease has run out. A restarted node ends its own previous
//!   runs at once.
//! - `terminate` cancels a local run directly, or flags the claim so that the owning node cancels
//!   it at its next heartbeat.
//! - Dispatch plans keep their next fire time in the store; a node owns a fire by moving that
//!   time forward with a compare-and-set, so two nodes never fire the same instant. A fire that
//!   finds the previous run still active is recorded as CANCELLED with steps 907/914.
//! - Realtime tasks run under a supervisor: one long run per started task that reads successive
//!   incremental windows, restarted with backoff after a failure.

mod cdc;
mod plans;
mod realtime;
mod retention;
mod run_end;
mod runs;

pub use retention::RetentionPolicy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono_tz::Tz;
use fdi_monitor::MonitorLog;
use fdi_store::{PlanRow, Store, StoreError};
use fdi_types::{ApiError, ErrorCode, TaskType};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use plans::{MisfirePolicy, PlanDoc};

pub use fdi_catalog::{ResolvedTask, TaskBrief, TaskResolver};

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Refused(#[from] ApiError),
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::Store(s) if s.is_unavailable() => {
                ApiError::new(ErrorCode::StoreUnavailable, s.to_string())
            }
            SchedulerError::Store(s) => ApiError::internal(s.to_string()),
            SchedulerError::Refused(a) => a,
        }
    }
}

pub type Result<T, E = SchedulerError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This process's identity in the store (stable across restarts of one data dir).
    pub node_id: String,
    /// How long a claim holds without renewal (a dead node's runs end 915 after this).
    pub lease: Duration,
    /// How often leases are renewed and terminate requests from other nodes are picked up.
    pub heartbeat: Duration,
    /// Longest sleep of the plan loop (it also wakes when plans change on this node).
    pub plan_poll: Duration,
    /// How often a realtime run polls its source for a new window.
    pub realtime_poll: Duration,
    /// Longest gap between progress entries of a realtime run.
    pub realtime_progress: Duration,
    /// Zone of plans that do not name one.
    pub time_zone: Tz,
    /// Which runs the monitor log keeps.
    pub retention: RetentionPolicy,
}

impl SchedulerConfig {
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            lease: Duration::from_secs(10),
            heartbeat: Duration::from_millis(500),
            plan_poll: Duration::from_millis(1000),
            realtime_poll: Duration::from_secs(3),
            realtime_progress: Duration::from_secs(30),
            time_zone: Tz::UTC,
            retention: RetentionPolicy::default(),
        }
    }
}

/// A run executing on this node.
struct Active {
    run_id: String,
    /// Stop now (terminate, shutdown): the run aborts and ends CANCELLED.
    cancel: CancellationToken,
    /// Stop after the current window (realtime stop).
    stop: CancellationToken,
    handle: Option<tokio::task::JoinHandle<()>>,
    realtime: bool,
}

/// Per-task result of a batch start/stop.
#[derive(Debug, Clone, Serialize)]
pub struct BatchItem {
    pub task_id: String,
    pub task_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BatchResult {
    pub success_count: usize,
    pub failure_count: usize,
    pub failure: Vec<BatchItem>,
    pub success: Vec<BatchItem>,
}

pub struct Scheduler {
    store: Store,
    monitor: MonitorLog,
    resolver: Arc<dyn TaskResolver>,
    cfg: SchedulerConfig,
    active: Mutex<HashMap<String, Active>>,
    shutdown: CancellationToken,
    /// Cancelled once shutdown has waited for the active runs: leases are renewed until then.
    stopped: CancellationToken,
    plans_changed: Notify,
}

impl Scheduler {
    pub fn new(
        store: Store,
        monitor: MonitorLog,
        resolver: Arc<dyn TaskResolver>,
        cfg: SchedulerConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            monitor,
            resolver,
            cfg,
            active: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            stopped: CancellationToken::new(),
            plans_changed: Notify::new(),
        })
    }

    pub fn monitor(&self) -> &MonitorLog {
        &self.monitor
    }

    /// End what a previous life of this node left active, then start the background loops
    /// (heartbeat + orphan sweep, plan fires, realtime supervisor).
    pub async fn start(self: &Arc<Self>) -> Result<()> {
        let n = self.recover(true).await?;
        if n > 0 {
            tracing::warn!(
                node_id = self.cfg.node_id,
                runs = n,
                "ended runs left active by a stopped server (915)"
            );
        }
        let this = Arc::clone(self);
        tokio::spawn(async move { this.heartbeat_loop().await });
        let this = Arc::clone(self);
        tokio::spawn(async move { this.plan_loop().await });
        let this = Arc::clone(self);
        tokio::spawn(async move { this.realtime_loop().await });
        let this = Arc::clone(self);
        tokio::spawn(async move { this.retention_loop().await });
        Ok(())
    }

    /// Refuse new runs, cancel active ones and wait (bounded) until they have recorded their end.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let handles: Vec<_> = {
            let mut active = self.active.lock().unwrap();
            active
                .values_mut()
                .filter_map(|a| {
                    a.cancel.cancel();
                    a.handle.take()
                })
                .collect()
        };
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(20), h).await;
        }
        self.stopped.cancel();
    }

    // ---- runs -------------------------------------------------------------------------------

    /// Start one run of the task now (the API's `run`): its tracking id, or 400 FDI.3139 while
    /// the task has an active run on any node.
    pub async fn run_now(self: &Arc<Self>, task_id: &str) -> Result<String> {
        let task = self
            .resolver
            .resolve(task_id)
            .await?
            .ok_or_else(|| ApiError::of(ErrorCode::TaskNotFound))?;
        match self
            .launch(
                task,
                fdi_monitor::Trigger::Manual,
                fdi_types::now_millis(),
                None,
            )
            .await?
        {
            runs::Launch::Started(id) => Ok(id),
            runs::Launch::Busy(_) => Err(ApiError::new(
                ErrorCode::TaskRunning,
                format!("task_id: {task_id} already has a run in progress"),
            )
            .into()),
        }
    }

    /// Cancel the task's active run wherever it runs (400 FDI.3027 when there is none).
    pub async fn terminate(&self, task_id: &str) -> Result<()> {
        if let Some(a) = self.active.lock().unwrap().get(task_id) {
            a.cancel.cancel();
            return Ok(());
        }
        if self.store.request_cancel(task_id).await? {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::ManualStopFailed,
            format!("task_id: {task_id} has no run in progress"),
        )
        .into())
    }

    /// Whether the task has an active run (on any node).
    pub async fn is_running(&self, task_id: &str) -> Result<bool> {
        if self.active.lock().unwrap().contains_key(task_id) {
            return Ok(true);
        }
        Ok(self.store.claim_of(task_id).await?.is_some())
    }

    /// 1 when the task is started (plan enabled / realtime running), else 0.
    pub async fn task_status(&self, task_id: &str) -> Result<i32> {
        Ok(self.store.task_status(task_id).await?)
    }

    /// Forget everything the scheduler keeps about a deleted task.
    pub async fn forget_task(&self, task_id: &str) -> Result<()> {
        self.store.delete_task_state(task_id).await?;
        self.plans_changed.notify_one();
        Ok(())
    }

    /// Move an incremental task's start back: the next run reads from `dataTimestamp` again.
    pub async fn reset_watermark(&self, task_id: &str) -> Result<()> {
        Ok(self.store.clear_watermark(task_id).await?)
    }

    // ---- plans ------------------------------------------------------------------------------

    /// Create the task's dispatch plan (one per task; a second create replaces the timing of
    /// the first, as an update would).
    pub async fn create_plan(&self, task_id: &str, body: &Value) -> Result<PlanDoc> {
        let now = fdi_types::now_millis();
        if let Some(existing) = self.store.plans_of_task(task_id).await?.into_iter().next() {
            let id = existing.dispatch_id.clone();
            return self.update_plan(task_id, &id, body).await;
        }
        let mut doc = PlanDoc {
            dispatch_id: fdi_types::new_id(),
            task_id: task_id.to_string(),
            start_datetime: now,
            period: None,
            dispatch_interval: None,
            created_date: now,
            last_modified_date: now,
            remark: None,
            use_quartz_cron: false,
            cron: None,
            time_zone: None,
            misfire_policy: MisfirePolicy::FireOnceNow,
        };
        doc.apply(body, self.cfg.time_zone)?;
        let row = self.plan_row(&doc, now)?;
        self.store.insert_plan(&row).await?;
        self.plans_changed.notify_one();
        Ok(doc)
    }

    pub async fn plans(&self, task_id: &str) -> Result<Vec<PlanDoc>> {
        self.store
            .plans_of_task(task_id)
            .await?
            .iter()
            .map(|r| {
                serde_json::from_str::<PlanDoc>(&r.body)
                    .map_err(|e| SchedulerError::Store(StoreError::Json(e)))
            })
            .collect()
    }

    pub async fn update_plan(
        &self,
        task_id: &str,
        dispatch_id: &str,
        body: &Value,
    ) -> Result<PlanDoc> {
        let now = fdi_types::now_millis();
        let mut doc = self
            .plans(task_id)
            .await?
            .into_iter()
            .find(|p| p.dispatch_id == dispatch_id)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::DispatchNotFound,
                    format!("dispatch_id: {dispatch_id}"),
                )
            })?;
        doc.apply(body, self.cfg.time_zone)?;
        doc.last_modified_date = now;
        let row = self.plan_row(&doc, now)?;
        self.store.update_plan(&row).await?;
        self.plans_changed.notify_one();
        Ok(doc)
    }

    fn plan_row(&self, doc: &PlanDoc, now: i64) -> Result<PlanRow> {
        let timing = doc.timing(self.cfg.time_zone)?;
        Ok(PlanRow {
            dispatch_id: doc.dispatch_id.clone(),
            task_id: doc.task_id.clone(),
            body: serde_json::to_string(doc).map_err(StoreError::from)?,
            next_fire: plans::next_fire(&timing, now),
            created: doc.created_date,
        })
    }

    // ---- batch start / stop -----------------------------------------------------------------

    /// `batch-operation/tasks`: start enables a TIMING task's plan (FDI.3083 without one) or a
    /// REALTIME task's continuous run; stop disables it (a running scheduled run finishes unless
    /// terminated; a realtime run ends after its current window).
    pub async fn batch(&self, action: &str, task_ids: &[String]) -> Result<BatchResult> {
        let start = match action.trim().to_ascii_lowercase().as_str() {
            "start" => true,
            "stop" => false,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::InvalidAction,
                    format!("action_id: {action:?}"),
                )
                .into());
            }
        };
        let mut res = BatchResult {
            success_count: 0,
            failure_count: 0,
            failure: Vec::new(),
            success: Vec::new(),
        };
        for id in task_ids {
            let outcome = self.start_or_stop(id, start).await;
            match outcome {
                Ok(name) => res.success.push(BatchItem {
                    task_id: id.clone(),
                    task_name: name,
                    error_code: None,
                    error_msg: None,
                }),
                Err((name, e)) => res.failure.push(BatchItem {
                    task_id: id.clone(),
                    task_name: name,
                    error_code: Some(e.code.to_string()),
                    error_msg: Some(e.message),
                }),
            }
        }
        res.success_count = res.success.len();
        res.failure_count = res.failure.len();
        self.plans_changed.notify_one();
        Ok(res)
    }

    async fn start_or_stop(
        &self,
        task_id: &str,
        start: bool,
    ) -> Result<String, (String, ApiError)> {
        let internal = |e: StoreError| ApiError::internal(e.to_string());
        let TaskBrief {
            kind,
            task_type,
            name,
            raw_detail,
        } = match self.resolver.describe(task_id).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                return Err((
                    String::new(),
                    ApiError::new(ErrorCode::TasksNotExist, format!("task_id: {task_id}")),
                ));
            }
            Err(e) => return Err((String::new(), e)),
        };
        let now = fdi_types::now_millis();
        if start && kind == fdi_types::TaskKind::MultiInit {
            return Err((
                name,
                ApiError::new(
                    ErrorCode::TasksNotExist,
                    format!(
                        "task_id: {task_id} was initialised but not created (POST multi-tasks)"
                    ),
                ),
            ));
        }
        if start && task_type == TaskType::Realtime && kind == fdi_types::TaskKind::Normal {
            let detail =
                fdi_types::TaskDetail::parse(&raw_detail).map_err(|e| (name.clone(), e))?;
            // A message source follows its queue; a relational one polls windows.
            if detail.source.meta_data.is_empty() && !detail.source.need_inc_migration {
                return Err((
                    name,
                    ApiError::new(
                        ErrorCode::RealtimeUnsupported,
                        format!(
                            "task_id: {task_id}: a REALTIME task on a relational source needs task_detail need_inc_migration with sourceDateColumn"
                        ),
                    ),
                ));
            }
        }
        if start && task_type == TaskType::Timing {
            let rows = self
                .store
                .plans_of_task(task_id)
                .await
                .map_err(|e| (name.clone(), internal(e)))?;
            if rows.is_empty() {
                return Err((
                    name,
                    ApiError::new(ErrorCode::NoDispatchPlan, format!("task_id: {task_id}")),
                ));
            }
            // Enabling starts counting from now: fires planned while the task was stopped are
            // not misfires.
            for mut row in rows {
                let doc: PlanDoc = serde_json::from_str(&row.body)
                    .map_err(|e| (name.clone(), internal(StoreError::Json(e))))?;
                let timing = doc
                    .timing(self.cfg.time_zone)
                    .map_err(|e| (name.clone(), e))?;
                row.next_fire = plans::next_fire(&timing, now);
                self.store
                    .update_plan(&row)
                    .await
                    .map_err(|e| (name.clone(), internal(e)))?;
            }
        }
        self.store
            .set_task_status(
                task_id,
                i32::from(start),
                task_type == TaskType::Realtime,
                now,
            )
            .await
            .map_err(|e| (name.clone(), internal(e)))?;
        if !start
            && let Some(a) = self.active.lock().unwrap().get(task_id)
            && a.realtime
        {
            a.stop.cancel();
        }
        Ok(name)
    }
}
