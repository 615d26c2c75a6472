//! The monitor log: turns an engine run's [`RunEvent`]s into a stored run with ordered steps,
//! records runs that never started (rejected fires, runs ended by a crash), and answers the
//! queries behind `task-monitors`, `monitor-logs`, `monitor-logs/{tracking_id}` and
//! `monitor-overview`.

use fdi_engine::{RunEvent, RunOutcome};
use fdi_store::{RUN, Store, StoreError};
use fdi_types::{ExecuteStatus, Position, PositionStatus, StepCode};
use serde::{Deserialize, Serialize};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One step of a run, in the order it happened.
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

/// Why a run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    #[default]
    Manual,
    /// A dispatch plan fired.
    Plan,
    /// A realtime task's supervisor started the run.
    Realtime,
}

/// One run of a task (a tracking id) as the monitor log keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunView {
    pub id: String,
    #[serde(default)]
    pub task_id: String,
    pub start_ms: i64,
    /// The planned instant for plan fires; the request time for manual runs.
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
    #[serde(default)]
    pub trigger: Trigger,
    /// The node that ran it (several nodes may share one store).
    #[serde(default)]
    pub node_id: String,
    /// The incremental window [begin, end) the run read, if any.
    #[serde(default)]
    pub window: Option<(i64, i64)>,
}

impl RunView {
    /// A run that is about to start on `node_id`: RUNNING at the adapter, with step 900.
    pub fn starting(
        task_id: &str,
        run_id: &str,
        trigger: Trigger,
        dispatch_ms: i64,
        node_id: &str,
    ) -> Self {
        let now = fdi_types::now_millis();
        let mut run = RunView {
            id: run_id.to_string(),
            task_id: task_id.to_string(),
            start_ms: now,
            dispatch_ms,
            end_ms: None,
            execute_status: ExecuteStatus::Running,
            position: Position::Adapter,
            position_status: PositionStatus::Normal,
            status_code: StepCode::DISPATCH_RECEIVED.0,
            data_count: 0,
            dirty_data_count: 0,
            data_bytes: 0,
            read_ms: 0,
            write_ms: 0,
            remarks: String::new(),
            steps: Vec::new(),
            trigger,
            node_id: node_id.to_string(),
            window: None,
        };
        run.push_step(
            StepCode::DISPATCH_RECEIVED,
            PositionStatus::Normal,
            "dispatch request received",
            now,
        );
        run
    }

    /// Append a step at the run's current position, stamped now; it becomes the run's status.
    pub fn add_step(&mut self, code: StepCode, ps: PositionStatus, remarks: &str) {
        self.status_code = code.0;
        self.push_step(code, ps, remarks, fdi_types::now_millis());
    }

    fn push_step(&mut self, code: StepCode, ps: PositionStatus, remarks: &str, at: i64) {
        self.steps.push(StepView {
            id: fdi_types::new_id(),
            code: code.0,
            position: self.position,
            position_status: ps,
            stage: "adapter".into(),
            data_count: self.data_count,
            dirty_data_count: self.dirty_data_count,
            data_bytes: self.data_bytes,
            remarks: remarks.to_string(),
            begin_ms: at,
            end_ms: at,
        });
    }

    /// Fold one engine event into the run.
    pub fn apply(&mut self, ev: RunEvent) {
        match ev {
            RunEvent::Step(s) => {
                self.position = s.position;
                self.position_status = s.position_status;
                self.status_code = s.code.0;
                self.steps.push(StepView {
                    id: fdi_types::new_id(),
                    code: s.code.0,
                    position: s.position,
                    position_status: s.position_status,
                    stage: s.stage,
                    data_count: s.data_count,
                    dirty_data_count: s.dirty_data_count,
                    data_bytes: s.data_bytes,
                    remarks: s.remarks,
                    begin_ms: s.begin_ms,
                    end_ms: s.end_ms,
                });
            }
            RunEvent::Progress {
                position,
                rows_written,
                dirty_rows,
                bytes_written,
                ..
            } => {
                self.position = position;
                self.data_count = rows_written;
                self.dirty_data_count = dirty_rows;
                self.data_bytes = bytes_written;
            }
        }
    }

    /// Record the engine's outcome as the run's end.
    pub fn finish(&mut self, o: RunOutcome) {
        self.execute_status = o.status;
        self.position = o.position;
        self.position_status = o.position_status;
        self.status_code = o.status_code.0;
        self.data_count = o.rows_written;
        self.dirty_data_count = o.dirty_rows;
        self.data_bytes = o.bytes_written;
        self.read_ms = o.read_ms;
        self.write_ms = o.write_ms;
        self.remarks = o.remarks;
        self.end_ms = Some(fdi_types::now_millis());
    }

    /// End the run as ERROR with `code` (915 after a crash, 913 when it could not be dispatched).
    pub fn fail(&mut self, code: StepCode, remarks: &str) {
        let now = fdi_types::now_millis();
        self.execute_status = ExecuteStatus::Error;
        self.position_status = PositionStatus::InternalErr;
        self.status_code = code.0;
        self.end_ms = Some(now);
        self.remarks = remarks.to_string();
        self.push_step(code, PositionStatus::InternalErr, remarks, now);
    }
}

pub struct RunFilter {
    pub begin_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct RunCounts {
    pub total: u64,
    pub error: u64,
    pub success: u64,
    pub running: u64,
    pub cancelled: u64,
}

/// The monitor log over the metadata store.
#[derive(Clone)]
pub struct MonitorLog {
    store: Store,
}

impl MonitorLog {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Store a new run.
    pub async fn create(&self, run: &RunView) -> Result<()> {
        self.store
            .insert(RUN, &run.id, "", &run.task_id, run.start_ms, run)
            .await
    }

    /// Store the run's current state.
    pub async fn save(&self, run: &RunView) -> Result<()> {
        self.store.update(RUN, &run.id, run).await
    }

    /// Record a fire that was refused because the task's previous run has not ended: execute
    /// status CANCELLED with steps 907 and 914 (reference: "rejected, the previous dispatch has
    /// not ended").
    pub async fn record_rejected(
        &self,
        task_id: &str,
        dispatch_ms: i64,
        node_id: &str,
        running_run: &str,
    ) -> Result<RunView> {
        let mut run = RunView::starting(
            task_id,
            &fdi_types::new_id(),
            Trigger::Plan,
            dispatch_ms,
            node_id,
        );
        let now = fdi_types::now_millis();
        let remarks = format!(
            "rejected: the previous run ({running_run}) of the task has not ended; this fire was not executed"
        );
        run.push_step(
            StepCode::READ_REJECTED_PREVIOUS_RUNNING,
            PositionStatus::Normal,
            &remarks,
            now,
        );
        run.push_step(
            StepCode::REJECTED_PREVIOUS_RUNNING,
            PositionStatus::Normal,
            &remarks,
            now,
        );
        run.execute_status = ExecuteStatus::Cancelled;
        run.status_code = StepCode::REJECTED_PREVIOUS_RUNNING.0;
        run.remarks = remarks;
        run.end_ms = Some(now);
        self.create(&run).await?;
        Ok(run)
    }

    /// End a run whose node died (or whose process stopped) while it was active: ERROR, 915.
    /// Nothing happens when the run has already ended.
    pub async fn end_abnormally(&self, run_id: &str, why: &str) -> Result<bool> {
        let Some(mut run) = self.store.get::<RunView>(RUN, "", run_id).await? else {
            return Ok(false);
        };
        if !run.execute_status.is_active() {
            return Ok(false);
        }
        run.fail(StepCode::ABNORMAL, why);
        self.save(&run).await?;
        Ok(true)
    }

    pub async fn last_run(&self, task_id: &str) -> Result<Option<RunView>> {
        self.store.first_child::<RunView>(RUN, task_id).await
    }

    /// The task's runs, newest first, started within the filter's range; (total, page).
    pub async fn list_runs(&self, task_id: &str, f: RunFilter) -> Result<(u64, Vec<RunView>)> {
        let v: Vec<RunView> = self
            .store
            .children::<RunView>(RUN, task_id)
            .await?
            .into_iter()
            .filter(|r| {
                f.begin_ms.is_none_or(|b| r.start_ms >= b)
                    && f.end_ms.is_none_or(|e| r.start_ms <= e)
            })
            .collect();
        let total = v.len() as u64;
        let page = v
            .into_iter()
            .skip(f.offset.max(0) as usize)
            .take(f.limit.max(0) as usize)
            .collect();
        Ok((total, page))
    }

    pub async fn get_run(&self, task_id: &str, run_id: &str) -> Result<Option<RunView>> {
        Ok(self
            .store
            .get::<RunView>(RUN, "", run_id)
            .await?
            .filter(|r| r.task_id == task_id))
    }

    pub async fn run_counts(&self, task_id: &str) -> Result<RunCounts> {
        let mut c = RunCounts::default();
        for r in self.store.children::<RunView>(RUN, task_id).await? {
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

    pub async fn delete_task_runs(&self, task_id: &str) -> Result<()> {
        self.store.delete_children(RUN, task_id).await
    }
}
