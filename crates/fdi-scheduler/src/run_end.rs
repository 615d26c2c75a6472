//! The run-end message of a task (`task_detail.afterImplementation`, action `KAFKA`): when a run
//! ends, one JSON message with the run's outcome is published to the task's topic.
//!
//! The message's members: `task_id`, `tracking_id` (the run id), `status` (SUCCESS / ERROR /
//! CANCELLED ...), `status_code`, `data_count`, `dirty_data_count`, `data_size` (bytes),
//! `start_time` / `end_time` (ms since the epoch), `remarks` and `message_content` (the task's
//! own text). A message that cannot be published does not change the run's outcome; the run's
//! remarks say why it was not sent.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use fdi_catalog::RunEndTarget;
use fdi_connector::{ColumnInfo, ConnectorError, WriteMode, WriteSpec};
use fdi_monitor::RunView;
use fdi_types::run_event::RunOutcome;

/// The message of one ended run, as a one-row batch and its columns.
fn message(run: &RunView, content: Option<&str>) -> (Vec<ColumnInfo>, RecordBatch) {
    let texts = [
        ("task_id", Some(run.task_id.as_str())),
        ("tracking_id", Some(run.id.as_str())),
        ("status", Some(run.execute_status.as_str())),
        ("remarks", Some(run.remarks.as_str())),
        ("message_content", content),
    ];
    let numbers = [
        ("status_code", Some(i64::from(run.status_code))),
        ("data_count", Some(run.data_count as i64)),
        ("dirty_data_count", Some(run.dirty_data_count as i64)),
        ("data_size", Some(run.data_bytes as i64)),
        ("start_time", Some(run.start_ms)),
        ("end_time", run.end_ms),
    ];
    let mut columns = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (name, v) in texts {
        columns.push(ColumnInfo::new(name, "string", DataType::Utf8));
        arrays.push(Arc::new(StringArray::from(vec![v])));
    }
    for (name, v) in numbers {
        columns.push(ColumnInfo::new(name, "long", DataType::Int64));
        arrays.push(Arc::new(Int64Array::from(vec![v])));
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(
        columns
            .iter()
            .map(|c| arrow::datatypes::Field::new(&c.name, c.arrow_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema, arrays).expect("columns match their arrays");
    (columns, batch)
}

/// Count the ended run in the metrics: runs by status, its duration, one active run less.
pub(crate) fn record_metrics(run: &RunView) {
    let end_ms = run.end_ms.unwrap_or_else(fdi_types::now_millis);
    let duration = std::time::Duration::from_millis((end_ms - run.start_ms).max(0) as u64);
    fdi_metrics::run_ended(&run.task_id, run.execute_status.as_str(), duration);
}

/// Add what one engine run (a window of a realtime run, a CDC run) read and committed to the
/// task's counters. Written rows and bytes are the committed ones: a window rolled back adds none.
pub(crate) fn record_moved(task_id: &str, outcome: &RunOutcome) {
    fdi_metrics::data_moved(
        task_id,
        fdi_metrics::Moved {
            rows_read: outcome.rows_read,
            bytes_read: outcome.bytes_read,
            rows_written: outcome.rows_committed,
            bytes_written: outcome.bytes_committed,
            dirty_rows: outcome.dirty_rows,
        },
    );
}

/// Publish the run-end message of `run` and wait for the broker to confirm it.
pub(crate) async fn publish(target: &RunEndTarget, run: &RunView) -> Result<(), ConnectorError> {
    let (columns, batch) = message(run, target.message_content.as_deref());
    let mut writer = target
        .endpoint
        .connector
        .writer(WriteSpec {
            table: target.topic.clone(),
            columns,
            mode: WriteMode::Insert,
            clear_table: false,
        })
        .await?;
    writer.begin().await?;
    let sent = match writer.write(batch).await {
        Ok(_) => writer.commit().await,
        Err(e) => Err(e),
    };
    if sent.is_err() {
        let _ = writer.abort().await;
    }
    sent
}
