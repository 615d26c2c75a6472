//! Combination (CDC) tasks: the mapper (which source tables go to which target tables, with which
//! columns) and the change pipeline (a source's change log applied to many target tables, with
//! the position stored after each target commit).

pub mod apply;
pub mod events;
pub mod mapping;
mod pipeline;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fdi_connector::change::{ChangeOp, TableId};
use fdi_connector::{ColumnInfo, Connector, SourcePosition};
use fdi_types::run_event::RunEvent;
pub use fdi_types::run_event::RunOutcome;
use mapping::{MappingStatus, Selection};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use pipeline::run;

/// One mapped table as a running task applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableMapping {
    pub source: TableId,
    /// As the target connector names tables (`schema.table` or `table`).
    pub target_table: String,
    /// (source column, target column) pairs.
    pub columns: Vec<(String, String)>,
    /// The source table's columns when the mapping was made (empty: unknown): a change of
    /// them is reported as schema drift.
    pub source_columns: Vec<String>,
}

/// Where the state of a task's mappings is kept: schema drift seen by a run.
#[async_trait]
pub trait MappingEvents: Send + Sync {
    /// The mapping of `source` is now in `status` (UPDATE: its columns changed; DELETE: the
    /// table is gone; USING: applied by the run).
    async fn mark(&self, source: &TableId, status: MappingStatus) -> Result<(), String>;
    /// A source table not mapped yet matches the task's selection: record it (status ADD).
    async fn added(&self, source: &TableId, columns: &[ColumnInfo]) -> Result<(), String>;
}

/// A combination task's own settings, stored as its `task_detail` (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiTaskSettings {
    /// INSERT / UPDATE / DELETE: the operations applied.
    #[serde(default)]
    pub operation_types: Vec<ChangeOp>,
    /// MySQL: the reader's server id (`ext_info.server_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_app_id: Option<String>,
    /// The selection of the last auto-mapping (`schema.t1,schema.*`): new source tables it
    /// matches are added as mappings (status ADD) while the task runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<String>,
    /// Target name = prefix + source table name + suffix, for those added tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_suffix: Option<String>,
}

impl MultiTaskSettings {
    pub fn parse(detail: &str) -> Result<Self, String> {
        if detail.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_json::from_str(detail).map_err(|e| format!("combination task settings: {e}"))
    }

    /// The server id as a number (validated when stored).
    pub fn server_id(&self) -> Result<Option<u32>, String> {
        self.server_id
            .as_deref()
            .map(|s| {
                s.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        format!("ext_info.server_id: {s:?} is not a number from 1 to 4294967295")
                    })
            })
            .transpose()
    }
}

/// Where a task's stream position is kept between runs.
#[async_trait]
pub trait PositionStore: Send + Sync {
    /// Store the position after the targets committed everything before it.
    async fn save(&self, position: &SourcePosition) -> Result<(), String>;
}

#[derive(Debug, Clone)]
pub struct CdcOptions {
    /// Commit at least this often while changes arrive ...
    pub commit_interval: Duration,
    /// ... or once this many changes are pending ...
    pub commit_changes: usize,
    /// ... or once their values hold this many bytes (wide rows keep memory flat).
    pub commit_bytes: usize,
    /// A progress entry in the monitor log at most this often.
    pub progress_interval: Duration,
    pub snapshot_batch_rows: usize,
    /// How often the source's tables are listed for dropped and new tables.
    pub drift_interval: Duration,
}

impl Default for CdcOptions {
    fn default() -> Self {
        Self {
            commit_interval: Duration::from_millis(200),
            commit_changes: 20_000,
            commit_bytes: 32 << 20,
            progress_interval: Duration::from_secs(5),
            snapshot_batch_rows: 5_000,
            drift_interval: Duration::from_secs(30),
        }
    }
}

pub struct CdcRequest {
    pub task_id: String,
    pub run_id: String,
    pub source: Arc<dyn Connector>,
    pub target: Arc<dyn Connector>,
    pub tables: Vec<TableMapping>,
    /// Tables a `schema.*` selection of the task matches, for new tables (schema drift).
    pub selection: Option<Selection>,
    pub mapping_events: Arc<dyn MappingEvents>,
    /// The operations applied (the task's `operation_types`); others are skipped.
    pub operations: HashSet<ChangeOp>,
    /// MySQL: the reader's server id (`ext_info.server_id`).
    pub server_id: Option<u32>,
    /// Continue after this position; None: copy the tables first.
    pub resume: Option<SourcePosition>,
    pub positions: Arc<dyn PositionStore>,
    pub cancel: CancellationToken,
    pub options: CdcOptions,
}

/// The name of a task's place in its source (PostgreSQL's slot and publication): `fdi_` and the
/// task id's letters and digits, lowercase, at most 40 characters.
pub fn reader_name(task_id: &str) -> String {
    let id: String = task_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(36)
        .collect();
    format!("fdi_{id}")
}

pub(crate) type Events = mpsc::UnboundedSender<RunEvent>;
