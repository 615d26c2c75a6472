//! Runs of combination (CDC) tasks: one long run per start, reading the source's change log into
//! the mapped target tables (see `fdi_cdc`), with the stream position kept in the store.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use fdi_cdc::mapping::{MappingBody, MappingStatus};
use fdi_cdc::{CdcOptions, CdcRequest, MultiTaskSettings, PositionStore, TableMapping};
use fdi_connector::SourcePosition;
use fdi_connector::change::ChangeOp;
use fdi_monitor::{RunRecord, RunView};
use fdi_store::Store;
use fdi_types::{ExecuteStatus, PositionStatus, StepCode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{ResolvedTask, Scheduler};

/// The task's position, in the store, written after each target commit.
struct StoredPosition {
    store: Store,
    task_id: String,
}

#[async_trait]
impl PositionStore for StoredPosition {
    async fn save(&self, position: &SourcePosition) -> Result<(), String> {
        self.store
            .set_cdc_position(
                &self.task_id,
                &position.0.to_string(),
                fdi_types::now_millis(),
            )
            .await
            .map_err(|e| e.to_string())
    }
}

impl Scheduler {
    /// The task's mappings that apply (every one but DELETE), as the pipeline takes them.
    async fn table_mappings(&self, task_id: &str) -> Result<Vec<TableMapping>, String> {
        let (_, rows) = self
            .store
            .mappings(task_id, 0, i64::MAX)
            .await
            .map_err(|e| format!("cannot read the mappings: {e}"))?;
        let mut tables = Vec::with_capacity(rows.len());
        for m in rows {
            if MappingStatus::parse(&m.status).is_some_and(|s| !s.applies()) {
                continue;
            }
            let body = MappingBody::parse(&m.body)?;
            tables.push(body.table_mapping(&m.source_table, &m.target_table)?);
        }
        Ok(tables)
    }

    /// One run of a combination task: until stopped (SUCCESS: what was read is committed),
    /// terminated (CANCELLED, likewise committed) or failed (ERROR; the supervisor restarts it
    /// with backoff from the last stored position).
    pub(crate) async fn drive_cdc(
        &self,
        task: ResolvedTask,
        run: &mut RunView,
        cancel: CancellationToken,
        stop: CancellationToken,
    ) {
        let settings = match MultiTaskSettings::parse(&task.raw_detail) {
            Ok(s) => s,
            Err(e) => return run.fail(StepCode::DISPATCH_FAILED, &e),
        };
        let server_id = match settings.server_id() {
            Ok(id) => id,
            Err(e) => return run.fail(StepCode::DISPATCH_FAILED, &e),
        };
        let tables = match self.table_mappings(&task.task_id).await {
            Ok(t) if t.is_empty() => {
                return run.fail(
                    StepCode::DISPATCH_FAILED,
                    "the task maps no table: add mappings (multi-tasks/{id}/mappings) before starting it",
                );
            }
            Ok(t) => t,
            Err(e) => return run.fail(StepCode::DISPATCH_FAILED, &e),
        };
        let resume = match self.store.cdc_position(&task.task_id).await {
            Ok(p) => p.and_then(|p| serde_json::from_str(&p).ok().map(SourcePosition)),
            Err(e) => {
                return run.fail(
                    StepCode::DISPATCH_FAILED,
                    &format!("cannot read the stream position: {e}"),
                );
            }
        };
        let operations: HashSet<ChangeOp> = if settings.operation_types.is_empty() {
            [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete].into()
        } else {
            settings.operation_types.iter().copied().collect()
        };
        run.add_step(
            StepCode::TASK_START,
            PositionStatus::Normal,
            &format!(
                "combination task started: {} tables, operations {}",
                tables.len(),
                ops_list(&operations)
            ),
        );
        let _ = self.monitor.save(run).await;
        // A stop ends the run like a terminate (the pipeline commits what it read first); the
        // run then counts as SUCCESS.
        let ending = cancel.child_token();
        let stopped = {
            let (ending, stop) = (ending.clone(), stop.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = stop.cancelled() => ending.cancel(),
                    _ = ending.cancelled() => {}
                }
            })
        };
        let req = CdcRequest {
            task_id: task.task_id.clone(),
            run_id: run.id.clone(),
            source: task.source.connector.clone(),
            target: task.target.connector.clone(),
            tables,
            operations,
            server_id,
            resume,
            positions: Arc::new(StoredPosition {
                store: self.store.clone(),
                task_id: task.task_id.clone(),
            }),
            cancel: ending.clone(),
            options: CdcOptions::default(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let pipeline = tokio::spawn(fdi_cdc::run(req, tx));
        self.fold_events(rx, run, true).await;
        ending.cancel();
        let _ = stopped.await;
        match pipeline.await {
            Ok(mut o) => {
                if o.status == ExecuteStatus::Cancelled
                    && stop.is_cancelled()
                    && !cancel.is_cancelled()
                {
                    o.status = ExecuteStatus::Success;
                    o.position_status = PositionStatus::TaskEnd;
                    o.status_code = StepCode::RUN_FINISHED;
                    o.remarks = format!(
                        "stopped: {} changes read, {} rows written",
                        o.rows_read, o.rows_written
                    );
                }
                let (code, remarks) = (o.status_code, o.remarks.clone());
                let status = o.status;
                run.finish(o);
                if status != ExecuteStatus::Error {
                    run.add_step(code, PositionStatus::Normal, &remarks);
                }
            }
            Err(e) => run.fail(StepCode::ABNORMAL, &format!("the run panicked: {e}")),
        }
    }
}

fn ops_list(ops: &HashSet<ChangeOp>) -> String {
    [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete]
        .into_iter()
        .filter(|o| ops.contains(o))
        .map(ChangeOp::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
