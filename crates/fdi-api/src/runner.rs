//! Manual runs until `fdi-scheduler`'s RunManager is available: one run per task at a time, run
//! by `fdi_engine::run`, its events recorded as the run's steps; terminate; crash recovery (runs
//! left RUNNING are ended ERROR with step 915); shutdown cancels active runs and waits for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fdi_engine::{Endpoint, EngineOptions, RunEvent, RunRequest};
use fdi_types::{ErrorCode, ExecuteStatus, Position, PositionStatus, StepCode, TaskDetail};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::{RunView, StepView};
use crate::error::{Error, Result};
use crate::localstore::{LocalStore, RUN};

struct Active {
    cancel: CancellationToken,
    handle: Option<JoinHandle<()>>,
}

pub struct Runner {
    store: LocalStore,
    active: Mutex<HashMap<String, Active>>,
    shutdown: CancellationToken,
}

impl Runner {
    pub fn new(store: LocalStore) -> Self {
        Self {
            store,
            active: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
        }
    }

    pub fn is_running(&self, task_id: &str) -> bool {
        self.active.lock().unwrap().contains_key(task_id)
    }

    /// End every run a previous process left RUNNING/WAITING: ERROR, step 915.
    pub async fn recover_at_startup(&self) -> Result<usize> {
        let now = fdi_types::now_millis();
        let mut n = 0;
        for mut r in self.store.all::<RunView>(RUN).await? {
            if r.execute_status.is_active() {
                r.execute_status = ExecuteStatus::Error;
                r.position_status = PositionStatus::InternalErr;
                r.status_code = StepCode::ABNORMAL.0;
                r.end_ms = Some(now);
                r.remarks =
                    "The server stopped while the run was active; nothing was committed.".into();
                r.steps.push(StepView {
                    id: fdi_types::new_id(),
                    code: StepCode::ABNORMAL.0,
                    position: r.position,
                    position_status: PositionStatus::InternalErr,
                    stage: "adapter".into(),
                    data_count: 0,
                    dirty_data_count: 0,
                    data_bytes: 0,
                    remarks: "task ran abnormally: the server stopped during the run".into(),
                    begin_ms: now,
                    end_ms: now,
                });
                self.store.update(RUN, &r.id, &r).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Start one run now; the tracking id, or 400 FDI.3139 when one is already active.
    pub async fn start(
        self: &Arc<Self>,
        task_id: &str,
        raw_detail: &str,
        source: Endpoint,
        target: Endpoint,
    ) -> Result<String> {
        if self.shutdown.is_cancelled() {
            return Err(Error::new(
                ErrorCode::ManualStartFailed,
                "the server is shutting down",
            ));
        }
        let detail = TaskDetail::parse(raw_detail)?;
        let run_id = fdi_types::new_id();
        let cancel = self.shutdown.child_token();
        {
            let mut active = self.active.lock().unwrap();
            if active.contains_key(task_id) {
                return Err(Error::new(
                    ErrorCode::TaskRunning,
                    format!("task_id: {task_id} already has a run in progress"),
                ));
            }
            active.insert(
                task_id.to_string(),
                Active {
                    cancel: cancel.clone(),
                    handle: None,
                },
            );
        }
        let now = fdi_types::now_millis();
        let run = RunView {
            id: run_id.clone(),
            task_id: task_id.to_string(),
            start_ms: now,
            dispatch_ms: now,
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
        };
        if let Err(e) = self
            .store
            .insert(RUN, &run_id, "", task_id, now, &run)
            .await
        {
            self.active.lock().unwrap().remove(task_id);
            return Err(e);
        }
        let req = RunRequest {
            task_id: task_id.to_string(),
            run_id: run_id.clone(),
            detail,
            source,
            target,
            cancel: cancel.clone(),
            options: EngineOptions::default(),
        };
        let this = Arc::clone(self);
        let task = task_id.to_string();
        let handle = tokio::spawn(async move {
            this.drive(task.clone(), run, req).await;
            this.active.lock().unwrap().remove(&task);
        });
        if let Some(a) = self.active.lock().unwrap().get_mut(task_id) {
            a.handle = Some(handle);
        }
        Ok(run_id)
    }

    async fn drive(&self, task_id: String, mut run: RunView, req: RunRequest) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let engine = tokio::spawn(fdi_engine::run(req, tx));
        while let Some(ev) = rx.recv().await {
            match ev {
                RunEvent::Step(s) => {
                    run.position = s.position;
                    run.position_status = s.position_status;
                    run.status_code = s.code.0;
                    run.steps.push(StepView {
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
                    run.position = position;
                    run.data_count = rows_written;
                    run.dirty_data_count = dirty_rows;
                    run.data_bytes = bytes_written;
                }
            }
            if let Err(e) = self.store.update(RUN, &run.id, &run).await {
                tracing::warn!(task_id, run_id = run.id, error = %e, "cannot record run progress");
            }
        }
        let outcome = match engine.await {
            Ok(o) => o,
            Err(e) => {
                run.execute_status = ExecuteStatus::Error;
                run.position_status = PositionStatus::InternalErr;
                run.remarks = format!("the run panicked: {e}");
                run.end_ms = Some(fdi_types::now_millis());
                let _ = self.store.update(RUN, &run.id, &run).await;
                return;
            }
        };
        run.execute_status = outcome.status;
        run.position = outcome.position;
        run.position_status = outcome.position_status;
        run.status_code = outcome.status_code.0;
        run.data_count = outcome.rows_written;
        run.dirty_data_count = outcome.dirty_rows;
        run.data_bytes = outcome.bytes_written;
        run.read_ms = outcome.read_ms;
        run.write_ms = outcome.write_ms;
        run.remarks = outcome.remarks;
        run.end_ms = Some(fdi_types::now_millis());
        tracing::info!(
            task_id,
            run_id = run.id,
            status = run.execute_status.as_str(),
            rows = run.data_count,
            "run ended"
        );
        if let Err(e) = self.store.update(RUN, &run.id, &run).await {
            tracing::error!(task_id, run_id = run.id, error = %e, "cannot record the end of the run");
        }
    }

    /// Cancel the task's active run (400 FDI.3027 when none).
    pub fn terminate(&self, task_id: &str) -> Result<()> {
        match self.active.lock().unwrap().get(task_id) {
            Some(a) => {
                a.cancel.cancel();
                Ok(())
            }
            None => Err(Error::new(
                ErrorCode::ManualStopFailed,
                format!("task_id: {task_id} has no run in progress"),
            )),
        }
    }

    /// Refuse new runs, cancel active ones and wait (bounded) until they have recorded their end.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let handles: Vec<JoinHandle<()>> = self
            .active
            .lock()
            .unwrap()
            .values_mut()
            .filter_map(|a| a.handle.take())
            .collect();
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(20), h).await;
        }
    }
}
