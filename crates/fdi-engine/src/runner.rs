//! One run: adapter -> reader task -> bounded channel -> mapping -> writer -> commit, reporting
//! ordered steps, progress, and an outcome. Cancellation aborts the writer (nothing committed).

use std::time::{Duration, Instant};

use fdi_connector::{ConnectorError, ErrorKind, SinkWriter, SourceBatch, SourcePosition};
use fdi_types::run_event::SubStep;
use fdi_types::{ExecuteStatus, Position, PositionStatus, StepCode, now_millis};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::dirty::DirtyLog;
use crate::in_server;
use crate::mapping::BatchMapper;
use crate::plan::{self, Side};
use crate::split;
use crate::{RunEvent, RunOutcome, RunRequest, StepRecord};

/// How long an abort (rollback) may take before the writer is simply dropped.
const ABORT_TIMEOUT: Duration = Duration::from_millis(1500);

/// Live counters of the run.
#[derive(Default)]
struct Counters {
    rows_read: u64,
    /// The size of the batches read (`batch_data_bytes`).
    bytes_read: u64,
    rows_written: u64,
    dirty_rows: u64,
    bytes_written: u64,
    /// What the target has committed (streaming runs commit in micro-batches).
    rows_committed: u64,
    bytes_committed: u64,
    read_ms: i64,
    write_ms: i64,
    /// The source's estimate of the rows this run reads (None: unknown).
    total_estimate: Option<u64>,
}

/// Emits steps with the run's stage names.
struct Trace {
    events: mpsc::UnboundedSender<RunEvent>,
    reader_stage: String,
    writer_stage: String,
}

impl Trace {
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        code: StepCode,
        status: PositionStatus,
        stage: &str,
        counts: (u64, u64, u64),
        begin_ms: i64,
        remarks: impl Into<String>,
    ) {
        self.step_with_parts(code, status, stage, counts, begin_ms, remarks, Vec::new());
    }

    /// A step of a run that has parts (the ranges of a split read), with where each part is.
    #[allow(clippy::too_many_arguments)]
    fn step_with_parts(
        &self,
        code: StepCode,
        status: PositionStatus,
        stage: &str,
        counts: (u64, u64, u64),
        begin_ms: i64,
        remarks: impl Into<String>,
        sub_steps: Vec<SubStep>,
    ) {
        let position = code.position();
        let _ = self.events.send(RunEvent::Step(StepRecord {
            code,
            position,
            position_status: status,
            stage: stage.to_string(),
            data_count: counts.0,
            dirty_data_count: counts.1,
            data_bytes: counts.2,
            begin_ms,
            end_ms: now_millis(),
            remarks: remarks.into(),
            sub_steps,
        }));
    }

    fn progress(&self, c: &Counters) {
        let _ = self.events.send(RunEvent::Progress {
            position: Position::Writer,
            rows_read: c.rows_read,
            rows_written: c.rows_written,
            dirty_rows: c.dirty_rows,
            bytes_written: c.bytes_written,
            total_estimate: c.total_estimate,
        });
    }
}

fn outcome(
    status: ExecuteStatus,
    position: Position,
    position_status: PositionStatus,
    code: StepCode,
    c: &Counters,
    remarks: String,
) -> RunOutcome {
    RunOutcome {
        status,
        position,
        position_status,
        status_code: code,
        rows_read: c.rows_read,
        bytes_read: c.bytes_read,
        rows_written: c.rows_written,
        dirty_rows: c.dirty_rows,
        bytes_written: c.bytes_written,
        rows_committed: c.rows_committed,
        bytes_committed: c.bytes_committed,
        read_ms: c.read_ms,
        write_ms: c.write_ms,
        remarks,
    }
}

/// The micro-batches of a run whose source has positions: rows written since the last commit,
/// and the position the next commit will acknowledge.
struct MicroBatches {
    ack: std::sync::Arc<dyn fdi_connector::Acknowledger>,
    rows_since_commit: u64,
    since: Instant,
    position: Option<SourcePosition>,
    /// The last position acknowledged, and whether a progress entry has shown it yet.
    acknowledged: Option<SourcePosition>,
    shown: bool,
    /// When the last progress entry (a step naming the position) was made.
    last_entry: Instant,
}

impl MicroBatches {
    fn due(&self, o: &crate::EngineOptions) -> bool {
        self.rows_since_commit > 0
            && (self.rows_since_commit >= o.commit_rows
                || self.since.elapsed() >= o.commit_interval)
    }
}

/// A progress entry of a streaming run (at most one per `position_interval`, and only when the
/// acknowledged position moved): rows committed so far and where the source stands.
fn position_entry(trace: &Trace, mb: &mut MicroBatches, c: &Counters, o: &crate::EngineOptions) {
    if mb.shown || mb.last_entry.elapsed() < o.position_interval {
        return;
    }
    let Some(p) = &mb.acknowledged else { return };
    let mut at = p.0.to_string();
    if at.len() > 500 {
        at.truncate(at.floor_char_boundary(500));
        at.push('…');
    }
    trace.step(
        StepCode::WRITING,
        PositionStatus::Normal,
        &trace.writer_stage,
        (c.rows_committed, c.dirty_rows, c.bytes_committed),
        now_millis(),
        format!(
            "progress: {} rows committed, {} read; source acknowledged up to {at}",
            c.rows_committed, c.rows_read
        ),
    );
    mb.shown = true;
    mb.last_entry = Instant::now();
}

/// Commit what the writer holds, acknowledge the source up to the batches it covered, and open
/// the next transaction. The acknowledgement never precedes the commit.
async fn commit_micro_batch(
    writer: &mut Box<dyn SinkWriter>,
    mb: &mut MicroBatches,
    dirty: &mut DirtyLog,
    c: &mut Counters,
) -> Result<(), Stop> {
    dirty
        .check_ratio(c.rows_read)
        .map_err(|e| Stop::TargetFailed(e.into()))?;
    dirty
        .sync()
        .await
        .map_err(|e| Stop::TargetFailed(e.into()))?;
    writer
        .commit()
        .await
        .map_err(|e| Stop::TargetFailed(Failure::of(&e).context("commit")))?;
    c.rows_committed = c.rows_written;
    c.bytes_committed = c.bytes_written;
    mb.rows_since_commit = 0;
    mb.since = Instant::now();
    if let Some(p) = mb.position.take() {
        mb.ack.ack(&p).await.map_err(|e| {
            Stop::SourceFailed(Failure {
                cause: format!(
                    "acknowledging committed rows: {} (they will be delivered again)",
                    e.message
                ),
                retryable: e.retryable,
            })
        })?;
        mb.acknowledged = Some(p);
        mb.shown = false;
    }
    writer.begin().await.map_err(|e| match e.kind {
        ErrorKind::Cancelled => Stop::Cancelled,
        _ => Stop::TargetFailed(Failure::of(&e)),
    })
}

async fn abort_writer(writer: &mut Box<dyn SinkWriter>) {
    match tokio::time::timeout(ABORT_TIMEOUT, writer.abort()).await {
        Ok(Ok(())) => tracing::info!("writer rolled back"),
        Ok(Err(e)) => tracing::warn!(error = %e, "writer rollback failed (nothing was committed)"),
        Err(_) => tracing::warn!(
            "writer rollback timed out (nothing was committed; the connection is dropped)"
        ),
    }
}

/// Aborts a spawned task when dropped (the run ended before it was needed).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long the source may take to estimate a run's rows; past it the total stays unknown.
const ESTIMATE_TIMEOUT: Duration = Duration::from_secs(3);

/// The source's row estimate for what the run reads, asked alongside the read (it never delays
/// it): the receiver gets the estimate, or None when the source has none, fails, or takes longer
/// than [`ESTIMATE_TIMEOUT`].
fn spawn_estimate(
    connector: std::sync::Arc<dyn fdi_connector::Connector>,
    query: fdi_connector::SourceQuery,
) -> (tokio::sync::oneshot::Receiver<Option<u64>>, AbortOnDrop<()>) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(tracing::Instrument::instrument(
        async move {
            let estimate =
                match tokio::time::timeout(ESTIMATE_TIMEOUT, connector.estimate_rows(&query)).await
                {
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "no row estimate from the source");
                        None
                    }
                    Err(_) => {
                        tracing::debug!("the source's row estimate timed out");
                        None
                    }
                };
            tracing::debug!(?estimate, "row estimate");
            let _ = tx.send(estimate);
        },
        tracing::Span::current(),
    ));
    (rx, AbortOnDrop(task))
}

/// Wait for the row estimate (its task gives up after [`ESTIMATE_TIMEOUT`]).
async fn await_estimate(
    pending: &mut Option<(tokio::sync::oneshot::Receiver<Option<u64>>, AbortOnDrop<()>)>,
    c: &mut Counters,
) {
    if let Some((rx, _)) = pending.as_mut() {
        c.total_estimate = rx.await.ok().flatten();
        *pending = None;
    }
}

/// Take the row estimate once it has arrived.
fn take_estimate(
    pending: &mut Option<(tokio::sync::oneshot::Receiver<Option<u64>>, AbortOnDrop<()>)>,
    c: &mut Counters,
) {
    use tokio::sync::oneshot::error::TryRecvError;
    let Some((rx, _)) = pending.as_mut() else {
        return;
    };
    match rx.try_recv() {
        Ok(estimate) => {
            c.total_estimate = estimate;
            *pending = None;
        }
        Err(TryRecvError::Empty) => {}
        Err(TryRecvError::Closed) => *pending = None,
    }
}

/// Run a one-row `count(*)` query on the source and return its value.
async fn count_rows(
    connector: std::sync::Arc<dyn fdi_connector::Connector>,
    spec: fdi_connector::ReadSpec,
    cancel: tokio_util::sync::CancellationToken,
) -> fdi_connector::Result<u64> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Int64Type};
    let mut reader = connector.reader(spec).await?;
    let (tx, mut rx) = mpsc::channel::<SourceBatch>(2);
    let first = async move {
        let mut first = None;
        while let Some(b) = rx.recv().await {
            if first.is_none() && b.rows.num_rows() > 0 {
                first = Some(b.rows);
            }
        }
        first
    };
    let (read, first) = tokio::join!(reader.read(tx, cancel), first);
    read?;
    let batch = first.ok_or_else(|| ConnectorError::internal("count(*) returned no row"))?;
    let col = arrow::compute::cast(batch.column(0), &DataType::Int64)
        .map_err(|e| ConnectorError::internal(format!("count(*): {e}")))?;
    let values = col.as_primitive::<Int64Type>();
    if values.is_null(0) {
        return Err(ConnectorError::internal("count(*) returned NULL"));
    }
    Ok(values.value(0).max(0) as u64)
}

/// Why the main loop stopped early.
enum Stop {
    Cancelled,
    /// A graceful stop (`EngineOptions::stop`): commit what was written.
    Stopped,
    SourceFailed(Failure),
    TargetFailed(Failure),
}

/// Why a run failed, and whether trying again may help (the connector's hint: a connection
/// refused or dropped, a server error; never bad input or a refused login).
struct Failure {
    cause: String,
    retryable: bool,
}

impl From<String> for Failure {
    fn from(cause: String) -> Self {
        Self {
            cause,
            retryable: false,
        }
    }
}

impl Failure {
    fn of(e: &ConnectorError) -> Self {
        Self {
            cause: e.message.clone(),
            retryable: e.retryable && e.kind == ErrorKind::External,
        }
    }
    fn context(mut self, context: &str) -> Self {
        self.cause = format!("{context}: {}", self.cause);
        self
    }
}

/// Which attempt of a run this is. A failure the connector marks retryable ends the attempt
/// with [`AttemptEnd::retry`] while attempts are left; the next one starts over (nothing of a
/// failed attempt was committed, except the acknowledged micro-batches of a streaming run,
/// which the source does not deliver again).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    pub number: u32,
    pub max: u32,
    /// The wait before the next attempt.
    pub backoff: Duration,
    /// The side whose failure the previous attempt was retried for.
    pub resumes: Option<Side>,
}

impl Attempt {
    fn retries_left(&self) -> bool {
        self.number < self.max
    }
}

pub(crate) struct AttemptEnd {
    pub outcome: RunOutcome,
    /// Set when the run failed in a way worth retrying and attempts are left.
    pub retry: Option<Side>,
}

impl From<RunOutcome> for AttemptEnd {
    fn from(outcome: RunOutcome) -> Self {
        Self {
            outcome,
            retry: None,
        }
    }
}

pub(crate) async fn execute(
    req: RunRequest,
    events: mpsc::UnboundedSender<RunEvent>,
    attempt: Attempt,
) -> AttemptEnd {
    let RunRequest {
        task_id,
        run_id,
        detail,
        source,
        target,
        cancel,
        options,
        window,
        dirty,
    } = req;
    let trace = Trace {
        events,
        reader_stage: source.datasource_type.reader_plugin(),
        writer_stage: target.datasource_type.writer_plugin(),
    };
    let mut c = Counters::default();
    let run_begin = now_millis();
    match attempt.resumes {
        None => trace.step(
            StepCode::TASK_START,
            PositionStatus::Normal,
            "adapter",
            (0, 0, 0),
            run_begin,
            "Task start",
        ),
        Some(side) => {
            let (code, stage, what) = match side {
                Side::Source => (StepCode::READER_RESUMED, &trace.reader_stage, "Reader"),
                Side::Target => (StepCode::WRITER_RESUMED, &trace.writer_stage, "Writer"),
            };
            trace.step(
                code,
                PositionStatus::Normal,
                stage,
                (0, 0, 0),
                run_begin,
                format!(
                    "{what} resumed: attempt {} of {}",
                    attempt.number, attempt.max
                ),
            );
        }
    }
    tracing::info!(source = %source.datasource_type, target = %target.datasource_type, "run started");

    let cancelled = |trace: &Trace, c: &Counters| {
        let now = now_millis();
        trace.step(
            StepCode::FORCE_CANCELLED,
            PositionStatus::RuntimeCancel,
            "adapter",
            (c.rows_written, c.dirty_rows, c.bytes_written),
            now,
            "Task cancelled",
        );
        trace.step(
            StepCode::READER_CANCELLED,
            PositionStatus::RuntimeCancel,
            &trace.reader_stage,
            (c.rows_read, 0, 0),
            now,
            "Reader cancelled",
        );
        trace.step(
            StepCode::WRITER_CANCELLED,
            PositionStatus::RuntimeCancel,
            &trace.writer_stage,
            (c.rows_written, c.dirty_rows, c.bytes_written),
            now,
            if c.rows_committed == 0 {
                "Writer cancelled, nothing committed".to_string()
            } else {
                format!(
                    "Writer cancelled: {} rows committed by earlier micro-batches, the rest rolled back",
                    c.rows_committed
                )
            },
        );
        tracing::info!("run cancelled");
        AttemptEnd::from(outcome(
            ExecuteStatus::Cancelled,
            Position::Writer,
            PositionStatus::RuntimeCancel,
            StepCode::FORCE_CANCELLED,
            c,
            "Task cancelled".into(),
        ))
    };
    // A failure ends the run (step 103 / 503), or, when retryable with attempts left, this
    // attempt (step 107 / 506 saying when the next one starts).
    let failed = |trace: &Trace, c: &Counters, begin: i64, side: Side, f: Failure| {
        let retry = f.retryable && attempt.retries_left();
        let (code, position, stage, counts) = match (side, retry) {
            (Side::Source, false) => (
                StepCode::SOURCE_ERROR,
                Position::Reader,
                &trace.reader_stage,
                (c.rows_read, 0, 0),
            ),
            (Side::Source, true) => (
                StepCode::READER_INTERRUPTED,
                Position::Reader,
                &trace.reader_stage,
                (c.rows_read, 0, 0),
            ),
            (Side::Target, false) => (
                StepCode::TARGET_ERROR,
                Position::Writer,
                &trace.writer_stage,
                (c.rows_written, c.dirty_rows, c.bytes_written),
            ),
            (Side::Target, true) => (
                StepCode::WRITER_INTERRUPTED,
                Position::Writer,
                &trace.writer_stage,
                (c.rows_written, c.dirty_rows, c.bytes_written),
            ),
        };
        let remarks = if retry {
            format!(
                "{}; attempt {} of {} starts in {} ms",
                f.cause,
                attempt.number + 1,
                attempt.max,
                attempt.backoff.as_millis()
            )
        } else {
            f.cause.clone()
        };
        trace.step(
            code,
            PositionStatus::RuntimeErr,
            stage,
            counts,
            begin,
            remarks,
        );
        tracing::warn!(cause = %f.cause, ?side, retry, "run failed");
        AttemptEnd {
            outcome: outcome(
                ExecuteStatus::Error,
                position,
                PositionStatus::RuntimeErr,
                code,
                c,
                f.cause,
            ),
            retry: retry.then_some(side),
        }
    };
    let source_failed = |trace: &Trace, c: &Counters, begin: i64, f: Failure| {
        failed(trace, c, begin, Side::Source, f)
    };
    let target_failed = |trace: &Trace, c: &Counters, begin: i64, f: Failure| {
        failed(trace, c, begin, Side::Target, f)
    };

    // Adapter: resolve the plan against the live databases.
    let plan = tokio::select! {
        biased;
        _ = cancel.cancelled() => return cancelled(&trace, &c),
        p = plan::build(&detail, &source, &target, &options, window.as_ref(), &task_id) => p,
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            let f = Failure {
                cause: e.error.message.clone(),
                retryable: e.retryable,
            };
            return failed(&trace, &c, run_begin, e.side, f);
        }
    };
    match in_server::shortcut(&detail, &plan, &source, &target, &dirty, &options, &run_id) {
        Ok(copy) => {
            let begin = now_millis();
            let started = Instant::now();
            let remarks = "(in-server copy: one INSERT ... SELECT inside the database server)";
            let reader_start = match &plan.window {
                Some(w) => format!("Reader start: {} {remarks}", w.description),
                None => format!("Reader start {remarks}"),
            };
            trace.step(
                StepCode::READER_START,
                PositionStatus::Normal,
                &trace.reader_stage,
                (0, 0, 0),
                begin,
                reader_start,
            );
            trace.step(
                StepCode::WRITER_START,
                PositionStatus::Normal,
                &trace.writer_stage,
                (0, 0, 0),
                begin,
                format!("Writer start {remarks}"),
            );
            let copying = async {
                match target.connector.in_server() {
                    Some(server) => server.copy_in_server(&copy, cancel.clone()).await,
                    None => Err(ConnectorError::internal(
                        "the target lost its in-server copy",
                    )),
                }
            };
            // Alongside the copy, as on a streamed window: the rows a window leaves out because
            // their cursor is NULL.
            let null_count = plan.window.as_ref().and_then(|w| w.null_count.clone());
            let counting = async {
                let nc = null_count?;
                let counted = count_rows(source.connector.clone(), nc.read, cancel.child_token())
                    .await
                    .map_err(|e| e.message);
                null_cursor_remark(&nc.column, counted)
            };
            let (copied, null_remark) = tokio::join!(copying, counting);
            let n = match copied {
                Ok(n) => n,
                Err(e) if e.kind == ErrorKind::Cancelled => return cancelled(&trace, &c),
                Err(e) => return target_failed(&trace, &c, begin, Failure::of(&e)),
            };
            let ms = started.elapsed().as_millis() as i64;
            (c.rows_read, c.rows_written, c.rows_committed) = (n, n, n);
            (c.read_ms, c.write_ms) = (ms, ms);
            let reader_end = null_remark.unwrap_or_else(|| "Reader end".to_string());
            for (code, ps, what) in [
                (
                    StepCode::READ_DONE,
                    PositionStatus::Normal,
                    "Read done".to_string(),
                ),
                (StepCode::READER_END, PositionStatus::NodeEnd, reader_end),
            ] {
                trace.step(code, ps, &trace.reader_stage, (n, 0, 0), begin, what);
            }
            return succeeded(&trace, &c, begin, run_begin, "Write done".into());
        }
        Err(why) => tracing::debug!(why, "rows stream out and back (no in-server copy)"),
    }
    let mapper = BatchMapper::new(&plan, &run_id);
    let mut dirty = DirtyLog::new(dirty, &task_id, &run_id, plan.row_key_columns());

    // Reader.
    let read_begin = now_millis();
    let read_started = Instant::now();
    let reader_start = match &plan.window {
        Some(w) => {
            tracing::info!(window = %w.description, "incremental read");
            format!("Reader start: {}", w.description)
        }
        None => "Reader start".to_string(),
    };
    trace.step(
        StepCode::READER_START,
        PositionStatus::Normal,
        &trace.reader_stage,
        (0, 0, 0),
        read_begin,
        reader_start,
    );
    // The total to measure progress against (not for message sources: they have no end).
    let mut estimate = (options.estimate_rows
        && !matches!(plan.read.query, fdi_connector::SourceQuery::Messages { .. }))
    .then(|| spawn_estimate(source.connector.clone(), plan.read.query.clone()));
    // A table split by its size waits for that same estimate (bounded by ESTIMATE_TIMEOUT).
    if plan.split.as_ref().is_some_and(|k| !k.asked) {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return cancelled(&trace, &c),
            _ = await_estimate(&mut estimate, &mut c) => {}
        }
    }
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => return cancelled(&trace, &c),
        r = open_readers(&plan, &source.connector, c.total_estimate) => r,
    };
    let (readers, split) = match opened {
        Ok(r) => r,
        Err(e) => return source_failed(&trace, &c, read_begin, Failure::of(&e)),
    };

    // Writer.
    let write_begin = now_millis();
    let write_started = Instant::now();
    trace.step(
        StepCode::WRITER_START,
        PositionStatus::Normal,
        &trace.writer_stage,
        (0, 0, 0),
        write_begin,
        "Writer start",
    );
    let opened = tokio::select! {
        biased;
        _ = cancel.cancelled() => return cancelled(&trace, &c),
        w = target.connector.writer(plan.write.clone()) => w,
    };
    let mut writer = match opened {
        Ok(w) => w,
        Err(e) => return target_failed(&trace, &c, write_begin, Failure::of(&e)),
    };
    let begun = tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(ConnectorError::cancelled()),
        b = writer.begin() => b,
    };
    if let Err(e) = begun {
        abort_writer(&mut writer).await;
        return if e.kind == ErrorKind::Cancelled {
            cancelled(&trace, &c)
        } else {
            target_failed(&trace, &c, write_begin, Failure::of(&e))
        };
    }

    // A source with positions is committed in micro-batches, each acknowledged after its commit.
    let mut micro = readers[0].acknowledger().map(|ack| MicroBatches {
        ack,
        rows_since_commit: 0,
        since: Instant::now(),
        position: None,
        acknowledged: None,
        shown: true,
        last_entry: Instant::now(),
    });

    // Reader task -> bounded channel -> this task (map + write).
    let (tx, mut rx) = mpsc::channel::<SourceBatch>(options.channel_batches.max(1));
    let reader_cancel = cancel.child_token();
    let reader_token = reader_cancel.clone();
    let span = tracing::Span::current();
    let mut reader_task: JoinHandle<fdi_connector::Result<Vec<u64>>> =
        tokio::spawn(tracing::Instrument::instrument(
            async move { split::read_all(readers, tx, reader_token).await },
            span.clone(),
        ));
    // Alongside the read: how many rows the window leaves out because their cursor is NULL.
    let mut null_count = plan
        .window
        .as_ref()
        .and_then(|w| w.null_count.clone())
        .map(|nc| {
            let connector = source.connector.clone();
            let token = reader_cancel.child_token();
            let column = nc.column.clone();
            let task = tokio::spawn(tracing::Instrument::instrument(
                async move { count_rows(connector, nc.read, token).await },
                span,
            ));
            (column, AbortOnDrop(task))
        });

    // A streaming run also wakes to commit in time (a stalled source waits for those acks).
    let tick = match &micro {
        Some(_) => options.progress_interval.min(options.commit_interval),
        None => options.progress_interval,
    };
    let mut ticker = tokio::time::interval(tick.max(Duration::from_millis(50)));
    let mut last_progress = Instant::now();
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let mut rows_received = 0u64;
    let mut first_batch = true;
    let mut first_write = true;

    let graceful = options.stop.clone().unwrap_or_default();
    let stop: Option<Stop> = loop {
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => break Some(Stop::Cancelled),
            _ = graceful.cancelled(), if options.stop.is_some() => break Some(Stop::Stopped),
            _ = ticker.tick() => {
                c.rows_read = rows_received;
                take_estimate(&mut estimate, &mut c);
                if last_progress.elapsed() >= options.progress_interval {
                    last_progress = Instant::now();
                    trace.progress(&c);
                }
                // A quiet stream still commits (and acknowledges) what it holds in time.
                if let Some(mb) = micro.as_mut().filter(|mb| mb.due(&options))
                    && let Err(stop) = commit_micro_batch(&mut writer, mb, &mut dirty, &mut c).await
                {
                    break Some(stop);
                }
                if let Some(mb) = micro.as_mut() {
                    position_entry(&trace, mb, &c, &options);
                }
                continue;
            }
            b = rx.recv() => b,
        };
        let Some(SourceBatch {
            rows: batch,
            position,
            rejected,
        }) = next
        else {
            break None;
        };
        if !rejected.is_empty() {
            // Read, but not rows: dirty rows (numbered after the rows before them).
            let recorded = dirty.record_rejected(rows_received, &rejected).await;
            c.dirty_rows = dirty.count;
            if let Err(e) = recorded {
                break Some(Stop::SourceFailed(e.into()));
            }
            rows_received += rejected.len() as u64;
        }
        rows_received += batch.num_rows() as u64;
        c.rows_read = rows_received;
        c.bytes_read += batch_data_bytes(&batch);
        if first_batch {
            first_batch = false;
            trace.step(
                StepCode::READING,
                PositionStatus::Normal,
                &trace.reader_stage,
                (rows_received, 0, batch_data_bytes(&batch)),
                read_begin,
                "Reading",
            );
        }
        let mapped = match mapper.map(&batch) {
            Ok(m) => m,
            Err(e) => break Some(Stop::TargetFailed(format!("mapping: {e}").into())),
        };
        let rows_before = rows_received - batch.num_rows() as u64;
        let recorded = dirty.record(&batch, rows_before, &mapped.dirty).await;
        c.dirty_rows = dirty.count;
        if let Err(e) = recorded {
            break Some(Stop::TargetFailed(e.into()));
        }
        drop(batch);
        if let (Some(mb), Some(p)) = (micro.as_mut(), position) {
            mb.position = Some(p);
        }
        if mapped.batch.num_rows() == 0 {
            continue;
        }
        let written = tokio::select! {
            biased;
            _ = cancel.cancelled() => break Some(Stop::Cancelled),
            w = writer.write(mapped.batch) => w,
        };
        match written {
            Ok(stats) => {
                c.rows_written += stats.rows;
                c.bytes_written += stats.bytes;
                let counted = dirty.count_rejected(stats.dirty_rows);
                c.dirty_rows = dirty.count;
                if let Err(e) = counted {
                    break Some(Stop::TargetFailed(e.into()));
                }
                if let Some(mb) = micro.as_mut() {
                    mb.rows_since_commit += stats.rows;
                    if mb.due(&options)
                        && let Err(stop) =
                            commit_micro_batch(&mut writer, mb, &mut dirty, &mut c).await
                    {
                        break Some(stop);
                    }
                }
                if first_write {
                    first_write = false;
                    trace.step(
                        StepCode::WRITING,
                        PositionStatus::Normal,
                        &trace.writer_stage,
                        (c.rows_written, c.dirty_rows, c.bytes_written),
                        write_begin,
                        "Writing",
                    );
                }
            }
            Err(e) if e.kind == ErrorKind::Cancelled => break Some(Stop::Cancelled),
            Err(e) => break Some(Stop::TargetFailed(Failure::of(&e))),
        }
    };
    drop(rx);

    // Reader result (the channel closed, or we stopped early).
    let stop = match stop {
        Some(Stop::Stopped) => {
            reader_cancel.cancel();
            reader_task.abort();
            c.rows_read = rows_received;
            c.read_ms = read_started.elapsed().as_millis() as i64;
            tracing::info!(
                rows = rows_received,
                "run stopped: committing what was written"
            );
            trace.step(
                StepCode::READER_END,
                PositionStatus::NodeEnd,
                &trace.reader_stage,
                (rows_received, 0, 0),
                read_begin,
                "Reader stopped: the run was stopped",
            );
            None
        }
        Some(s) => {
            reader_cancel.cancel();
            reader_task.abort();
            Some(s)
        }
        None => {
            let joined = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    reader_task.abort();
                    Err(Stop::Cancelled)
                }
                j = &mut reader_task => Ok(j),
            };
            match joined {
                Err(s) => Some(s),
                Ok(Ok(Ok(per_reader))) => 'read_ok: {
                    let n = per_reader.iter().sum();
                    c.rows_read = n;
                    c.read_ms = read_started.elapsed().as_millis() as i64;
                    let mut reader_end = match &split {
                        Some(split) => format!("Reader end: {}", split.described),
                        None => "Reader end".to_string(),
                    };
                    // A split read: the rows of each range.
                    let parts = split.as_ref().map_or_else(Vec::new, |split| {
                        split
                            .ranges
                            .iter()
                            .zip(&per_reader)
                            .map(|(range, &rows)| SubStep {
                                code: StepCode::READ_DONE,
                                stage: trace.reader_stage.clone(),
                                data_count: rows,
                                remarks: range.clone(),
                            })
                            .collect()
                    });
                    if let Some((column, task)) = null_count.as_mut() {
                        let counted = tokio::select! {
                            biased;
                            _ = cancel.cancelled() => break 'read_ok Some(Stop::Cancelled),
                            j = &mut task.0 => j,
                        };
                        let counted = match counted {
                            Ok(Ok(n)) => Ok(n),
                            Ok(Err(e)) => Err(e.message),
                            Err(e) => Err(e.to_string()),
                        };
                        if let Some(remark) = null_cursor_remark(column, counted) {
                            reader_end = remark;
                        }
                    }
                    let (code, remarks) = if n == 0 {
                        (StepCode::READ_ZERO, "Read 0 rows")
                    } else {
                        (StepCode::READ_DONE, "Read done")
                    };
                    trace.step_with_parts(
                        code,
                        PositionStatus::Normal,
                        &trace.reader_stage,
                        (n, 0, 0),
                        read_begin,
                        remarks,
                        parts,
                    );
                    trace.step(
                        StepCode::READER_END,
                        PositionStatus::NodeEnd,
                        &trace.reader_stage,
                        (n, 0, 0),
                        read_begin,
                        reader_end,
                    );
                    None
                }
                Ok(Ok(Err(e))) if e.kind == ErrorKind::Cancelled => Some(Stop::Cancelled),
                Ok(Ok(Err(e))) => Some(Stop::SourceFailed(Failure::of(&e))),
                Ok(Err(join)) => Some(Stop::SourceFailed(
                    format!("reader task failed: {join}").into(),
                )),
            }
        }
    };
    if c.read_ms == 0 {
        c.read_ms = read_started.elapsed().as_millis() as i64;
    }

    match stop {
        Some(Stop::Cancelled) => {
            abort_writer(&mut writer).await;
            c.write_ms = write_started.elapsed().as_millis() as i64;
            cancelled(&trace, &c)
        }
        Some(Stop::SourceFailed(cause)) => {
            abort_writer(&mut writer).await;
            c.write_ms = write_started.elapsed().as_millis() as i64;
            source_failed(&trace, &c, read_begin, cause)
        }
        Some(Stop::TargetFailed(cause)) => {
            abort_writer(&mut writer).await;
            c.write_ms = write_started.elapsed().as_millis() as i64;
            target_failed(&trace, &c, write_begin, cause)
        }
        // (A graceful stop was turned into the end of the read above.)
        Some(Stop::Stopped) | None => {
            if cancel.is_cancelled() {
                abort_writer(&mut writer).await;
                return cancelled(&trace, &c);
            }
            let dirty_ok = match dirty.check_ratio(c.rows_read) {
                Ok(()) => dirty.sync().await,
                Err(e) => Err(e),
            };
            if let Err(e) = dirty_ok {
                abort_writer(&mut writer).await;
                c.write_ms = write_started.elapsed().as_millis() as i64;
                return target_failed(&trace, &c, write_begin, e.into());
            }
            if let Err(e) = writer.commit().await {
                abort_writer(&mut writer).await;
                c.write_ms = write_started.elapsed().as_millis() as i64;
                return target_failed(&trace, &c, write_begin, Failure::of(&e).context("commit"));
            }
            c.rows_committed = c.rows_written;
            c.bytes_committed = c.bytes_written;
            if let Some(p) = micro.as_mut().and_then(|mb| mb.position.take())
                && let Some(mb) = micro.as_ref()
                && let Err(e) = mb.ack.ack(&p).await
            {
                return source_failed(
                    &trace,
                    &c,
                    read_begin,
                    format!(
                        "acknowledging committed rows: {} (they will be delivered again)",
                        e.message
                    )
                    .into(),
                );
            }
            c.write_ms = write_started.elapsed().as_millis() as i64;
            let write_done = match dirty.shown_file() {
                Some(f) => format!("Write done ({} dirty rows are in {f})", c.dirty_rows),
                None => "Write done".to_string(),
            };
            succeeded(&trace, &c, write_begin, run_begin, write_done)
        }
    }
}

/// The reader-end remark of a window that leaves out the rows whose cursor is NULL: how many
/// there are, or why they could not be counted. None when there are none.
fn null_cursor_remark(column: &str, counted: Result<u64, String>) -> Option<String> {
    match counted {
        Ok(0) => None,
        Ok(nulls) => {
            tracing::warn!(
                column = %column,
                rows = nulls,
                "rows with a NULL cursor are outside every window but the first"
            );
            Some(format!(
                "Reader end: {nulls} rows have NULL in {column} and are only loaded by the first run"
            ))
        }
        Err(e) => {
            tracing::warn!(column = %column, error = %e, "cannot count rows with a NULL cursor");
            Some(format!(
                "Reader end (rows with NULL in {column} not counted: {e})"
            ))
        }
    }
}

/// The run's readers: one, or one per key range of a split read (with its description).
async fn open_readers(
    plan: &plan::ExecPlan,
    source: &std::sync::Arc<dyn fdi_connector::Connector>,
    estimate: Option<u64>,
) -> fdi_connector::Result<(
    Vec<Box<dyn fdi_connector::SourceReader>>,
    Option<split::SplitRead>,
)> {
    let (specs, split) = split::read_specs(plan, source, estimate).await?;
    if let Some(split) = &split {
        tracing::info!(split = %split.described, "split read");
    }
    let readers = match <[_; 1]>::try_from(specs) {
        Ok([one]) => vec![source.reader(one).await?],
        Err(ranges) => source.split_readers(ranges).await?,
    };
    Ok((readers, split))
}

/// The end of a successful run: the writer's steps, the task's end, the outcome.
fn succeeded(
    trace: &Trace,
    c: &Counters,
    write_begin: i64,
    run_begin: i64,
    write_done: String,
) -> AttemptEnd {
    let counts = (c.rows_written, c.dirty_rows, c.bytes_written);
    trace.step(
        StepCode::WRITE_DONE,
        PositionStatus::Normal,
        &trace.writer_stage,
        counts,
        write_begin,
        write_done,
    );
    trace.step(
        StepCode::WRITER_END,
        PositionStatus::NodeEnd,
        &trace.writer_stage,
        counts,
        write_begin,
        "Writer end",
    );
    trace.step(
        StepCode::RUN_FINISHED,
        PositionStatus::TaskEnd,
        "adapter",
        counts,
        run_begin,
        "Task execute success",
    );
    trace.progress(c);
    tracing::info!(
        rows = c.rows_written,
        dirty = c.dirty_rows,
        bytes = c.bytes_written,
        read_ms = c.read_ms,
        write_ms = c.write_ms,
        "run succeeded"
    );
    outcome(
        ExecuteStatus::Success,
        Position::Writer,
        PositionStatus::TaskEnd,
        StepCode::RUN_FINISHED,
        c,
        "Task execute success".into(),
    )
    .into()
}

/// The bytes a batch's values take (values, offsets and validity of the rows it holds, not the
/// buffers' spare capacity): what a step reports as the size of the rows read.
fn batch_data_bytes(batch: &arrow::record_batch::RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
        .sum()
}
