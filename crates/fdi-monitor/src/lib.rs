//! The monitor log: turns an engine run's [`RunEvent`]s into a stored run with ordered steps,
//! records runs that never started (rejected fires, runs ended by a crash), and answers the
//! queries behind `task-monitors`, `monitor-logs`, `monitor-logs/{tracking_id}` and
//! `monitor-overview`.

pub mod progress;

use fdi_store::{Store, StoreError};
use fdi_types::run_event::{RunEvent, RunOutcome};
use fdi_types::{ExecuteStatus, Position, PositionStatus, StepCode};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub use fdi_store::{RunCounts, RunFilter, RunView, StepView, SubStepView, Trigger};

/// How the monitor log builds and ends a run.
pub trait RunRecord {
    /// A run that is about to start on `node_id`: RUNNING at the adapter, with step 900.
    fn starting(
        task_id: &str,
        run_id: &str,
        trigger: Trigger,
        dispatch_ms: i64,
        node_id: &str,
    ) -> Self;
    /// Append a step at the run's current position, stamped now; it becomes the run's status.
    fn add_step(&mut self, code: StepCode, ps: PositionStatus, remarks: &str);
    /// Fold one engine event into the run.
    fn apply(&mut self, ev: RunEvent);
    /// Note the rows read so far (at `at_ms`) and the source's estimate, if any: the run's
    /// percent done, rows per second over the interval since the last note, time left.
    fn note_progress(&mut self, rows_read: u64, total_estimate: Option<u64>, at_ms: i64);
    /// Record the engine's outcome as the run's end.
    fn finish(&mut self, o: RunOutcome);
    /// End the run as ERROR with `code` (915 after a crash, 913 when it could not be dispatched).
    fn fail(&mut self, code: StepCode, remarks: &str);
}

impl RunRecord for RunView {
    fn starting(
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
            read_count: 0,
            total_count: None,
            progress: None,
            rows_per_second: 0.0,
            remaining_ms: None,
            rate_sample: None,
            stored_steps: 0,
        };
        push_step(
            &mut run,
            StepCode::DISPATCH_RECEIVED,
            PositionStatus::Normal,
            "dispatch request received",
            now,
        );
        run
    }

    fn add_step(&mut self, code: StepCode, ps: PositionStatus, remarks: &str) {
        self.status_code = code.0;
        push_step(self, code, ps, remarks, fdi_types::now_millis());
    }

    fn apply(&mut self, ev: RunEvent) {
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
                    sub_steps: s
                        .sub_steps
                        .into_iter()
                        .map(|p| SubStepView {
                            code: p.code.0,
                            stage: p.stage,
                            data_count: p.data_count,
                            remarks: p.remarks,
                        })
                        .collect(),
                });
            }
            RunEvent::Progress {
                position,
                rows_read,
                rows_written,
                dirty_rows,
                bytes_written,
                total_estimate,
            } => {
                self.position = position;
                self.data_count = rows_written;
                self.dirty_data_count = dirty_rows;
                self.data_bytes = bytes_written;
                self.note_progress(rows_read, total_estimate, fdi_types::now_millis());
            }
        }
    }

    fn note_progress(&mut self, rows_read: u64, total_estimate: Option<u64>, at_ms: i64) {
        use progress::Sample;
        self.read_count = rows_read;
        if total_estimate.is_some() {
            self.total_count = total_estimate;
        }
        // Never backwards (a retried attempt reads again from the start).
        let pct = progress::running_percent(rows_read, self.total_count);
        self.progress = self.progress.max(pct);
        let now = Sample { rows_read, at_ms };
        match self.rate_sample {
            None => {
                self.rate_sample = Some((rows_read, at_ms));
                self.rows_per_second = progress::average_rate(rows_read, at_ms - self.start_ms);
            }
            Some((rows, at)) => {
                let previous = Sample {
                    rows_read: rows,
                    at_ms: at,
                };
                if let Some(rate) = progress::rate(previous, now) {
                    self.rows_per_second = rate;
                    self.rate_sample = Some((rows_read, at_ms));
                }
            }
        }
        self.remaining_ms =
            progress::remaining_ms(rows_read, self.total_count, self.rows_per_second);
    }

    fn finish(&mut self, o: RunOutcome) {
        // The counts are what the target committed: everything after a success; after a failure
        // or a terminate, 0 for a run that writes in one transaction, or what the micro-batches
        // of a streaming run committed before it stopped (the remarks say how far it got).
        let success = o.status == ExecuteStatus::Success;
        self.execute_status = o.status;
        self.position = o.position;
        self.position_status = o.position_status;
        self.status_code = o.status_code.0;
        self.data_count = o.rows_committed;
        self.dirty_data_count = o.dirty_rows;
        self.data_bytes = o.bytes_committed;
        self.read_ms = o.read_ms;
        self.write_ms = o.write_ms;
        self.read_count = o.rows_read;
        self.rows_per_second = progress::average_rate(o.rows_read, o.read_ms);
        if success {
            self.progress = Some(100);
            self.remaining_ms = Some(0);
        } else {
            self.remaining_ms = None;
        }
        self.remarks = if success {
            o.remarks
        } else if o.rows_committed == 0 {
            format!(
                "{} ({} rows read, {} written before the run stopped; rolled back, nothing committed)",
                o.remarks, o.rows_read, o.rows_written
            )
        } else {
            format!(
                "{} ({} rows read, {} written before the run stopped; {} committed, the rest rolled back)",
                o.remarks, o.rows_read, o.rows_written, o.rows_committed
            )
        };
        self.end_ms = Some(fdi_types::now_millis());
    }

    fn fail(&mut self, code: StepCode, remarks: &str) {
        let now = fdi_types::now_millis();
        self.execute_status = ExecuteStatus::Error;
        self.position_status = PositionStatus::InternalErr;
        self.status_code = code.0;
        self.end_ms = Some(now);
        self.remarks = remarks.to_string();
        self.remaining_ms = None;
        push_step(self, code, PositionStatus::InternalErr, remarks, now);
    }
}

/// Append an adapter step at the run's current position and counters.
fn push_step(run: &mut RunView, code: StepCode, ps: PositionStatus, remarks: &str, at: i64) {
    run.steps.push(StepView {
        id: fdi_types::new_id(),
        code: code.0,
        position: run.position,
        position_status: ps,
        stage: "adapter".into(),
        data_count: run.data_count,
        dirty_data_count: run.dirty_data_count,
        data_bytes: run.data_bytes,
        remarks: remarks.to_string(),
        begin_ms: at,
        end_ms: at,
        sub_steps: Vec::new(),
    });
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

    /// Store a new run (and the steps it has so far).
    pub async fn create(&self, run: &mut RunView) -> Result<()> {
        self.store.insert_run(run).await
    }

    /// Store what changed in the run since it was last stored: its status and counters, and the
    /// steps added since.
    pub async fn save(&self, run: &mut RunView) -> Result<()> {
        self.store.save_run(run).await
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
        push_step(
            &mut run,
            StepCode::READ_REJECTED_PREVIOUS_RUNNING,
            PositionStatus::Normal,
            &remarks,
            now,
        );
        push_step(
            &mut run,
            StepCode::REJECTED_PREVIOUS_RUNNING,
            PositionStatus::Normal,
            &remarks,
            now,
        );
        run.execute_status = ExecuteStatus::Cancelled;
        run.status_code = StepCode::REJECTED_PREVIOUS_RUNNING.0;
        run.remarks = remarks;
        run.end_ms = Some(now);
        self.create(&mut run).await?;
        Ok(run)
    }

    /// End a run whose node died (or whose process stopped) while it was active: ERROR, 915.
    /// Nothing happens when the run has already ended.
    pub async fn end_abnormally(&self, run_id: &str, why: &str) -> Result<bool> {
        let Some(mut run) = self.store.run_row(run_id).await? else {
            return Ok(false);
        };
        if !run.execute_status.is_active() {
            return Ok(false);
        }
        run.fail(StepCode::ABNORMAL, why);
        self.save(&mut run).await?;
        Ok(true)
    }

    /// The task's newest run, without its steps.
    pub async fn last_run(&self, task_id: &str) -> Result<Option<RunView>> {
        self.store.last_run(task_id).await
    }

    /// The task's runs, newest first, started within the filter's range, with their steps;
    /// (total, page).
    pub async fn list_runs(&self, task_id: &str, f: RunFilter) -> Result<(u64, Vec<RunView>)> {
        self.store.list_runs(task_id, &f).await
    }

    /// One run of the task with its steps.
    pub async fn get_run(&self, task_id: &str, run_id: &str) -> Result<Option<RunView>> {
        self.store.run_with_steps(task_id, run_id).await
    }

    pub async fn run_counts(&self, task_id: &str) -> Result<RunCounts> {
        self.store.run_counts(task_id).await
    }

    pub async fn delete_task_runs(&self, task_id: &str) -> Result<()> {
        self.store.delete_task_runs(task_id).await
    }
}
