//! Runs of combination (CDC) tasks: one long run per start, reading the source's change log into
//! the mapped target tables (see `fdi_cdc`), with the stream position kept in the store.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use fdi_cdc::mapping::{
    MappedColumn, MappingBody, MappingStatus, Selection, auto_map, target_name,
};
use fdi_cdc::{
    CdcOptions, CdcRequest, MappingEvents, MultiTaskSettings, PositionStore, TableMapping,
};
use fdi_connector::change::{ChangeOp, TableId};
use fdi_connector::{ColumnInfo, Connector, SourcePosition};
use fdi_monitor::{RunRecord, RunView};
use fdi_store::{MappingRow, Store};
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

/// The task's mappings in the store, updated by schema drift.
struct StoredMappings {
    store: Store,
    task_id: String,
    target: Arc<dyn Connector>,
    prefix: String,
    suffix: String,
}

#[async_trait]
impl MappingEvents for StoredMappings {
    async fn mark(&self, source: &TableId, status: MappingStatus) -> Result<(), String> {
        self.store
            .set_mapping_status(
                &self.task_id,
                &source.to_string(),
                status.as_str(),
                fdi_types::now_millis(),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn added(&self, source: &TableId, columns: &[ColumnInfo]) -> Result<(), String> {
        let target_table = target_name(source, &self.prefix, &self.suffix);
        // Paired with the target table when it exists already; else it waits for one.
        let target_columns = self.target.columns(&target_table).await.unwrap_or_default();
        let auto = auto_map(columns, &target_columns);
        let body = MappingBody {
            source_columns: columns.iter().map(MappedColumn::from).collect(),
            target_columns: target_columns.iter().map(MappedColumn::from).collect(),
            mapping: auto.pairs,
            mismatches: auto.mismatches,
        };
        let now = fdi_types::now_millis();
        self.store
            .put_mappings(&[MappingRow {
                id: fdi_types::new_id(),
                task_id: self.task_id.clone(),
                source_table: source.to_string(),
                target_table,
                status: MappingStatus::Add.as_str().to_string(),
                mapping_percent: auto.percent,
                body: serde_json::to_string(&body).map_err(|e| e.to_string())?,
                created_ms: now,
                updated_ms: now,
            }])
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
            // A table gone from the source, or added by drift and not confirmed yet, waits.
            if MappingStatus::parse(&m.status)
                .is_some_and(|s| !s.applies() || s == MappingStatus::Add)
            {
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
        let selection = match settings
            .selection
            .as_deref()
            .map(|s| Selection::parse("selection", s))
        {
            Some(Ok(s)) => Some(s),
            Some(Err(e)) => return run.fail(StepCode::DISPATCH_FAILED, &e),
            None => None,
        };
        let mapping_events = Arc::new(StoredMappings {
            store: self.store.clone(),
            task_id: task.task_id.clone(),
            target: task.target.connector.clone(),
            prefix: settings.target_prefix.clone().unwrap_or_default(),
            suffix: settings.target_suffix.clone().unwrap_or_default(),
        });
        let req = CdcRequest {
            selection,
            mapping_events,
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
        let pipeline = tokio::spawn(tracing::Instrument::in_current_span(fdi_cdc::run(req, tx)));
        self.fold_events(rx, run, true).await;
        ending.cancel();
        let _ = stopped.await;
        match pipeline.await {
            Ok(mut o) => {
                crate::run_end::record_moved(&run.task_id, &o);
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
