//! One run of one normal task: resolve the plan (adapter), stream source batches through a
//! bounded channel, map/cast columns, write, commit; report ordered steps as [`RunEvent`]s.
//!
//! Public surface used by the server/scheduler:
//! - [`resolve_plan`]: checks a task_detail against the real source and target (tables, columns,
//!   type compatibility). Used at task create/update (errors become 400 naming the field) and as
//!   the ADAPTER step of each run.
//! - [`run`]: executes one run and returns its [`RunOutcome`]; emits [`RunEvent`]s as it goes.
//!   With an [`IncrementalWindow`] the run reads exactly that window of the source (the
//!   scheduler decides the windows and keeps the watermark).

mod dirty;
mod in_server;
mod mapping;
mod plan;
mod runner;
mod split;

use std::sync::Arc;

use fdi_connector::Connector;
use fdi_types::{ApiError, DatasourceType, TaskDetail};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A source/target pair ready to run.
#[derive(Clone)]
pub struct Endpoint {
    pub datasource_type: DatasourceType,
    pub connector: Arc<dyn Connector>,
}

/// Tuning knobs; defaults are what the server uses.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Rows per RecordBatch.
    pub batch_rows: usize,
    /// Batches in flight between reader and writer (bounds memory).
    pub channel_batches: usize,
    /// How often a RUNNING run reports progress (102 / 502 steps updated).
    pub progress_interval: std::time::Duration,
    /// Ask the source how many rows the run reads: the total its progress is measured against.
    /// Off for the windows of a realtime run (each is a part of one run without an end).
    pub estimate_rows: bool,
    /// A run whose source has positions (a message source) commits the target and acknowledges
    /// the source once this many rows are written since the last commit...
    pub commit_rows: u64,
    /// ... or once this long has passed since it with rows waiting.
    pub commit_interval: std::time::Duration,
    /// Read message sources continuously until the run is stopped (realtime tasks); otherwise
    /// a run reads what the source held when it started.
    pub follow: bool,
    /// A graceful stop: the reader stops, what was written is committed (and acknowledged), and
    /// the run ends SUCCESS. Batches read but not yet written are not acknowledged, so the
    /// source delivers them again to the next run.
    pub stop: Option<tokio_util::sync::CancellationToken>,
    /// A streaming run (a source with positions) adds a progress entry (a WRITING step with the
    /// rows committed and the acknowledged position) at most this often, when it moved.
    pub position_interval: std::time::Duration,
    /// Attempts a run makes when it fails in a way the connector marks retryable (a connection
    /// refused or dropped, a server error; never bad input or a refused login). 1: no retry.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles for each further one (at most 30 s).
    pub retry_backoff: std::time::Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            batch_rows: 8192,
            channel_batches: 4,
            progress_interval: std::time::Duration::from_secs(1),
            estimate_rows: true,
            commit_rows: 50_000,
            commit_interval: std::time::Duration::from_millis(100),
            follow: false,
            stop: None,
            position_interval: std::time::Duration::from_secs(30),
            attempts: 3,
            retry_backoff: std::time::Duration::from_secs(1),
        }
    }
}

#[derive(Clone)]
pub struct RunRequest {
    pub task_id: String,
    /// The run's tracking id.
    pub run_id: String,
    pub detail: TaskDetail,
    pub source: Endpoint,
    pub target: Endpoint,
    pub cancel: CancellationToken,
    pub options: EngineOptions,
    /// The incremental window this run reads; None reads everything the task selects.
    pub window: Option<IncrementalWindow>,
    /// What to do with rows that do not convert (the task's `error_handler`).
    pub dirty: DirtyDataPolicy,
}

pub use dirty::{DirtyDataDir, DirtyDataPolicy};

pub use fdi_types::IncrementalWindow;
pub use fdi_types::run_event::{RunEvent, RunOutcome, StepRecord};

/// What `resolve_plan` found: the column pairs that will be moved and how.
#[derive(Debug, Clone)]
pub struct ResolvedPlan {
    pub source_columns: Vec<String>,
    pub target_columns: Vec<String>,
    pub upsert_keys: Vec<String>,
}

/// Check a task_detail against the live source and target. Errors are 400s naming the field
/// (e.g. `task_detail.mappingTable[2].targetColumn: column "x" does not exist in table "t"`).
pub async fn resolve_plan(
    detail: &TaskDetail,
    source: &Endpoint,
    target: &Endpoint,
) -> Result<ResolvedPlan, ApiError> {
    // An incremental task is checked as if reading its first window (time zone, cursor column,
    // placeholders substituted so a custom query can be described).
    let window = detail.source.need_inc_migration.then(|| {
        let at = detail.source.data_timestamp.unwrap_or(0);
        IncrementalWindow {
            begin_ms: at,
            end_ms: at,
            include_nulls: true,
        }
    });
    let plan = plan::build(
        detail,
        source,
        target,
        &EngineOptions::default(),
        window.as_ref(),
        "validation",
    )
    .await
    .map_err(|e| e.error)?;
    Ok(ResolvedPlan {
        source_columns: plan.pairs.iter().map(|p| p.source.name.clone()).collect(),
        target_columns: plan.pairs.iter().map(|p| p.target.name.clone()).collect(),
        upsert_keys: plan.upsert_keys,
    })
}

pub use mapping::convertible;

/// Execute one run. Never panics on connector errors: they end the run as ERROR with the cause
/// in `remarks`. Cancellation ends it CANCELLED with nothing committed.
///
/// A failure the connector marks retryable is retried in the same run, up to
/// [`EngineOptions::attempts`] attempts with a doubling backoff: the failed attempt's step says
/// when the next one starts (107 reader / 506 writer interrupted), the next attempt starts with
/// 108 / 507 (resumed) and reads again from the start (or, for a message source, from its last
/// acknowledged position). The outcome's committed counts include what earlier attempts'
/// micro-batches committed.
pub async fn run(req: RunRequest, events: mpsc::UnboundedSender<RunEvent>) -> RunOutcome {
    use tracing::Instrument;
    let span = tracing::info_span!("run", task_id = %req.task_id, run_id = %req.run_id);
    run_attempts(req, events).instrument(span).await
}

async fn run_attempts(req: RunRequest, events: mpsc::UnboundedSender<RunEvent>) -> RunOutcome {
    const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);
    let max = req.options.attempts.max(1);
    let mut attempt = runner::Attempt {
        number: 1,
        max,
        backoff: req.options.retry_backoff.min(MAX_BACKOFF),
        resumes: None,
    };
    // Rows and bytes committed by earlier attempts (micro-batches of a streaming run).
    let mut earlier = (0u64, 0u64);
    loop {
        let end = runner::execute(req.clone(), events.clone(), attempt).await;
        let mut outcome = end.outcome;
        outcome.rows_committed += earlier.0;
        outcome.bytes_committed += earlier.1;
        if outcome.status == fdi_types::ExecuteStatus::Success {
            outcome.rows_written += earlier.0;
            outcome.bytes_written += earlier.1;
        }
        let Some(side) = end.retry else {
            return outcome;
        };
        earlier = (outcome.rows_committed, outcome.bytes_committed);
        tracing::info!(
            attempt = attempt.number + 1,
            wait_ms = attempt.backoff.as_millis() as u64,
            "retrying the run"
        );
        // A terminate during the wait: the next attempt sees it at once and ends CANCELLED.
        tokio::select! {
            _ = req.cancel.cancelled() => {}
            _ = tokio::time::sleep(attempt.backoff) => {}
        }
        attempt = runner::Attempt {
            number: attempt.number + 1,
            max,
            backoff: (attempt.backoff * 2).min(MAX_BACKOFF),
            resumes: Some(side),
        };
    }
}
