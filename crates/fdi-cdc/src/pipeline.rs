//! One run of a combination task: open the targets, read the source's change log (snapshot first
//! when there is no position yet: each target table is emptied in the transaction of its first
//! copied rows, so that nothing of an earlier, interrupted copy survives), apply changes per
//! target table in micro-batches, and after
//! every commit store the position and acknowledge it to the source. A run lasts until it is
//! stopped (CANCELLED, what was read before the stop committed) or fails (ERROR, nothing after
//! the last stored position counts as done: the next run reads it again).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use fdi_connector::change::{ChangeEvent, ChangeSpec, TableId, row_size};
use fdi_connector::{
    Acknowledger, ColumnInfo, ConnectorError, ErrorKind, SourcePosition, TableSetWriter, WriteMode,
    WriteSpec,
};
use fdi_types::run_event::{RunEvent, RunOutcome, StepRecord, SubStep};
use fdi_types::{ExecuteStatus, Position, PositionStatus, StepCode, now_millis};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::apply::{OpCounts, TableSink, commit_table_set};
use crate::events::{EventSink, event_columns};
use crate::mapping::MappingStatus;
use crate::{CdcRequest, Events, TableMapping, reader_name};

/// Target tables written at the same time by one commit.
const CONCURRENT_FLUSHES: usize = 8;

/// Run a combination task until it is cancelled or fails.
pub async fn run(req: CdcRequest, events: Events) -> RunOutcome {
    let started = now_millis();
    let reader_stage = format!(
        "{}cdcreader",
        req.source.datasource_type().as_str().to_ascii_lowercase()
    );
    let writer_stage = format!(
        "{}cdcwriter",
        req.target.datasource_type().as_str().to_ascii_lowercase()
    );
    let mut p = Pipeline {
        trace: Trace {
            events,
            reader_stage,
            writer_stage,
        },
        sinks: Vec::new(),
        table_set: None,
        route: HashMap::new(),
        counters: Counters::default(),
        pending_position: None,
        pending_changes: 0,
        pending_bytes: 0,
        uncommitted_commits: Vec::new(),
        lags: Vec::new(),
        lag_gauge: fdi_metrics::LagGauge::cdc(&req.task_id),
        positions: req.positions.clone(),
        last_entry: Instant::now(),
        acked: None,
    };
    let r = p.execute(&req).await;
    for s in &mut p.sinks {
        s.discard().await;
    }
    if let Some(set) = p.table_set.as_mut() {
        let _ = set.abort().await;
    }
    let c = &p.counters;
    let (status, position, pos_status, code, remarks) = match r {
        Ok(()) => (
            ExecuteStatus::Cancelled,
            Position::Writer,
            PositionStatus::RuntimeCancel,
            StepCode::FORCE_CANCELLED,
            "Task cancelled".to_string(),
        ),
        Err(Failure { code, error }) => {
            let position = code.position();
            p.trace
                .step(code, PositionStatus::RuntimeErr, started, &error.message);
            (
                ExecuteStatus::Error,
                position,
                PositionStatus::RuntimeErr,
                code,
                error.message,
            )
        }
    };
    RunOutcome {
        status,
        position,
        position_status: pos_status,
        status_code: code,
        rows_read: c.changes_read,
        // (Not measured: changes arrive as text, their size as read is not kept.)
        bytes_read: 0,
        rows_written: c.rows_written,
        dirty_rows: c.skipped,
        bytes_written: c.bytes_written,
        rows_committed: c.rows_written,
        bytes_committed: c.bytes_written,
        read_ms: 0,
        write_ms: c.write_ms,
        remarks,
    }
}

#[derive(Default)]
struct Counters {
    changes_read: u64,
    rows_written: u64,
    bytes_written: u64,
    skipped: u64,
    write_ms: i64,
}

struct Failure {
    code: StepCode,
    error: ConnectorError,
}

fn fail(code: StepCode) -> impl FnOnce(ConnectorError) -> Failure {
    move |error| Failure { code, error }
}

struct Trace {
    events: Events,
    reader_stage: String,
    writer_stage: String,
}

impl Trace {
    fn step(&self, code: StepCode, status: PositionStatus, begin_ms: i64, remarks: &str) {
        self.step_counts(code, status, begin_ms, (0, 0, 0), remarks)
    }

    fn step_counts(
        &self,
        code: StepCode,
        status: PositionStatus,
        begin_ms: i64,
        counts: (u64, u64, u64),
        remarks: &str,
    ) {
        self.step_parts(code, status, begin_ms, counts, remarks, Vec::new())
    }

    /// A step with its parts (the tables) as sub-steps.
    fn step_parts(
        &self,
        code: StepCode,
        status: PositionStatus,
        begin_ms: i64,
        counts: (u64, u64, u64),
        remarks: &str,
        sub_steps: Vec<SubStep>,
    ) {
        let position = code.position();
        let stage = match position {
            Position::Reader => self.reader_stage.clone(),
            Position::Writer => self.writer_stage.clone(),
            Position::Adapter => "adapter".to_string(),
        };
        let _ = self.events.send(RunEvent::Step(StepRecord {
            code,
            position,
            position_status: status,
            stage,
            data_count: counts.0,
            dirty_data_count: counts.1,
            data_bytes: counts.2,
            begin_ms,
            end_ms: now_millis(),
            remarks: remarks.to_string(),
            sub_steps,
        }));
    }
}

struct Pipeline {
    trace: Trace,
    sinks: Vec<Sink>,
    /// The target's writer of every table in one transaction (then `sinks` are all rows, table
    /// `i` of the set being `sinks[i]`); None: each table commits on its own.
    table_set: Option<Box<dyn TableSetWriter>>,
    route: HashMap<TableId, usize>,
    counters: Counters,
    /// The position the next commit stores.
    pending_position: Option<SourcePosition>,
    pending_changes: usize,
    /// Bytes of the values of the pending changes.
    pending_bytes: usize,
    /// Source commit times of the transactions read since the last commit.
    uncommitted_commits: Vec<i64>,
    /// Source commit -> target commit, ms, of the transactions committed since the last entry.
    lags: Vec<i64>,
    /// `fdi_cdc_lag_seconds` of this task: the lag of the newest change committed.
    lag_gauge: fdi_metrics::LagGauge,
    positions: Arc<dyn crate::PositionStore>,
    last_entry: Instant,
    acked: Option<SourcePosition>,
}

impl Pipeline {
    async fn execute(&mut self, req: &CdcRequest) -> Result<(), Failure> {
        let begin = now_millis();
        let log = req.source.change_log().ok_or_else(|| Failure {
            code: StepCode::READER_NOT_STARTED,
            error: ConnectorError::user(format!(
                "source datasource: {} has no change log a combination task can read",
                req.source.datasource_type().as_str()
            )),
        })?;
        log.check()
            .await
            .map_err(fail(StepCode::READER_NOT_STARTED))?;
        let (sinks, set) = open_sinks(req)
            .await
            .map_err(fail(StepCode::WRITER_NOT_STARTED))?;
        for (i, m) in req.tables.iter().enumerate() {
            self.route.insert(m.source.clone(), i);
        }
        self.sinks = sinks;
        self.table_set = set;
        let tables: Vec<TableId> = req.tables.iter().map(|m| m.source.clone()).collect();
        let spec = ChangeSpec {
            reader_name: reader_name(&req.task_id),
            tables,
            resume: req.resume.clone(),
            server_id: req.server_id,
            snapshot_batch_rows: req.options.snapshot_batch_rows,
        };
        let snapshot = spec.resume.is_none();
        let mut source = log
            .open(spec)
            .await
            .map_err(fail(StepCode::READER_NOT_STARTED))?;
        let ack = source.acknowledger();
        self.trace.step(
            StepCode::READER_START,
            PositionStatus::Normal,
            begin,
            &match &req.resume {
                None => format!(
                    "Reader start: change log of {} tables, copying them first",
                    req.tables.len()
                ),
                Some(p) => format!(
                    "Reader start: change log of {} tables from {}",
                    req.tables.len(),
                    p.0
                ),
            },
        );
        self.trace.step(
            StepCode::WRITER_START,
            PositionStatus::Normal,
            begin,
            &format!("Writer start: {} target tables", self.sinks.len()),
        );
        let (tx, mut rx) = mpsc::channel::<ChangeEvent>(16);
        let source_cancel = req.cancel.child_token();
        let token = source_cancel.clone();
        // In the run's span: the connector's log lines carry the task and run ids.
        let reader = tokio::spawn(tracing::Instrument::in_current_span(async move {
            source.run(tx, token).await
        }));
        let mut snapshot_rows = 0u64;
        let snapshot_begin = now_millis();
        let mut deadline: Option<Instant> = None;
        let mut drift_check = tokio::time::interval_at(
            (Instant::now() + req.options.drift_interval).into(),
            req.options.drift_interval,
        );
        drift_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drift = TableDrift::default();
        let result = loop {
            let ev = tokio::select! {
                biased;
                _ = req.cancel.cancelled() => break Ok(()),
                _ = drift_check.tick() => {
                    self.check_tables(req, &mut drift).await;
                    continue;
                }
                _ = sleep_until(deadline) => {
                    deadline = None;
                    if let Err(f) = self.commit(&*ack).await { break Err(f); }
                    continue;
                }
                ev = rx.recv() => ev,
            };
            let Some(ev) = ev else {
                // The source stopped: its error, or an end the stream should never have.
                break Err(match reader.await {
                    Ok(Err(e)) if e.kind == ErrorKind::Cancelled => break Ok(()),
                    Ok(Err(e)) => Failure {
                        code: StepCode::SOURCE_ERROR,
                        error: e,
                    },
                    Ok(Ok(())) => Failure {
                        code: StepCode::SOURCE_ERROR,
                        error: ConnectorError::external("the change log ended"),
                    },
                    Err(e) => Failure {
                        code: StepCode::SOURCE_ERROR,
                        error: ConnectorError::internal(format!("the change reader panicked: {e}")),
                    },
                });
            };
            match ev {
                ChangeEvent::SnapshotRows { table, rows } => {
                    let Some(&i) = self.route.get(&table.id) else {
                        continue;
                    };
                    let n = rows.len();
                    if let Err(e) = self.sinks[i].add_snapshot_rows(&table, &rows) {
                        break Err(Failure {
                            code: StepCode::SOURCE_ERROR,
                            error: e,
                        });
                    }
                    self.report_drift(req, i).await;
                    snapshot_rows += n as u64;
                    self.counters.changes_read += n as u64;
                    self.pending_changes += n;
                    self.pending_bytes += rows.iter().map(|r| row_size(r)).sum::<usize>();
                    if self.batch_full(&req.options)
                        && let Err(f) = self.write_pending().await
                    {
                        break Err(f);
                    }
                }
                ChangeEvent::SnapshotDone { position } => {
                    self.pending_position = Some(position);
                    if let Err(f) = self.commit(&*ack).await {
                        break Err(f);
                    }
                    self.trace.step_counts(
                        StepCode::READ_DONE,
                        PositionStatus::Normal,
                        snapshot_begin,
                        (snapshot_rows, 0, 0),
                        &format!(
                            "Snapshot done: {snapshot_rows} rows of {} tables copied; streaming changes from {}",
                            self.sinks.len(),
                            self.acked.as_ref().map(|p| p.0.to_string()).unwrap_or_default()
                        ),
                    );
                }
                ChangeEvent::Transaction(t) => {
                    let mut r = Ok(());
                    for change in &t.changes {
                        if !req.operations.contains(&change.op) {
                            continue;
                        }
                        let Some(&i) = self.route.get(&change.table.id) else {
                            continue;
                        };
                        self.counters.changes_read += 1;
                        self.pending_changes += 1;
                        self.pending_bytes += change.before.as_deref().map_or(0, row_size)
                            + change.after.as_deref().map_or(0, row_size);
                        if let Err(e) = self.sinks[i].add_change(change, t.commit_ms, &t.position) {
                            r = Err(Failure {
                                code: StepCode::SOURCE_ERROR,
                                error: e,
                            });
                            break;
                        }
                        self.report_drift(req, i).await;
                    }
                    if let Err(f) = r {
                        break Err(f);
                    }
                    self.pending_position = Some(t.position);
                    self.uncommitted_commits.push(t.commit_ms);
                    if self.batch_full(&req.options) {
                        if let Err(f) = self.commit(&*ack).await {
                            break Err(f);
                        }
                    } else {
                        // Due within the commit interval, also when a quiet stream's heartbeat
                        // had set a later deadline.
                        let due = Instant::now() + req.options.commit_interval;
                        deadline = Some(deadline.map_or(due, |d| d.min(due)));
                    }
                }
                ChangeEvent::Heartbeat { position } => {
                    if self.pending_changes == 0 {
                        self.pending_position = Some(position);
                        if deadline.is_none() {
                            // A quiet stream stores its position now and then, not per heartbeat.
                            deadline = Some(Instant::now() + req.options.progress_interval);
                        }
                    }
                }
            }
            if self.last_entry.elapsed() >= req.options.progress_interval
                && !snapshot_pending(snapshot, &self.acked)
            {
                self.progress_entry();
            }
        };
        source_cancel.cancel();
        if result.is_ok() {
            // Stopped: what was read is committed and acknowledged before the run ends.
            self.commit(&*ack).await?;
            self.progress_entry();
        }
        result
    }

    /// Report a change of a source table's columns: mapping status UPDATE and a log entry.
    async fn report_drift(&mut self, req: &CdcRequest, sink: usize) {
        let Some(note) = self.sinks[sink].take_drift() else {
            return;
        };
        let source = self.sinks[sink].mapping().source.clone();
        let marked = req
            .mapping_events
            .mark(&source, MappingStatus::Update)
            .await;
        self.drift_entry(&note, marked);
    }

    fn drift_entry(&self, note: &str, recorded: Result<(), String>) {
        let remarks = match recorded {
            Ok(()) => format!("Schema drift: {note}"),
            Err(e) => format!("Schema drift: {note} (the mapping could not be updated: {e})"),
        };
        self.trace.step(
            StepCode::READING,
            PositionStatus::Normal,
            now_millis(),
            &remarks,
        );
    }

    /// List the source's tables: a mapped table that is gone marks its mapping DELETE; a new
    /// table matching the task's `schema.*` selection is recorded as an ADD mapping.
    async fn check_tables(&mut self, req: &CdcRequest, drift: &mut TableDrift) {
        let listed = match req.source.list_tables(None).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(task_id = req.task_id, error = %e.message, "cannot list the source's tables");
                return;
            }
        };
        let mapped: Vec<TableId> = self
            .sinks
            .iter()
            .map(|s| s.mapping().source.clone())
            .collect();
        let present = |t: &TableId| {
            listed
                .iter()
                .any(|l| l.eq_ignore_ascii_case(&t.to_string()) || l.eq_ignore_ascii_case(&t.name))
        };
        for t in &mapped {
            if !present(t) {
                if drift.gone.insert(t.clone()) {
                    let marked = req.mapping_events.mark(t, MappingStatus::Delete).await;
                    self.drift_entry(&format!("the source table {t} is gone"), marked);
                }
            } else {
                drift.gone.remove(t);
            }
        }
        let Some(selection) = &req.selection else {
            return;
        };
        // Unqualified names are in the source's default schema: the schema of a mapped table
        // listed without one.
        let default_schema = mapped
            .iter()
            .find(|t| listed.iter().any(|l| l == &t.name))
            .map(|t| t.schema.clone());
        for l in &listed {
            let id = match l.split_once('.') {
                Some((schema, name)) => TableId::new(schema, name),
                None => match &default_schema {
                    Some(s) => TableId::new(s.clone(), l.clone()),
                    None => continue,
                },
            };
            if !selection.matches(&id) || self.route.contains_key(&id) || drift.added.contains(&id)
            {
                continue;
            }
            let Ok(columns) = req.source.columns(l).await else {
                continue;
            };
            drift.added.insert(id.clone());
            let recorded = req.mapping_events.added(&id, &columns).await;
            self.drift_entry(
                &format!("a new source table {id} matches the selection: mapping added (status ADD; applied once the task restarts)"),
                recorded,
            );
        }
    }

    /// Enough is pending to write it now: by count or by bytes.
    fn batch_full(&self, o: &crate::CdcOptions) -> bool {
        self.pending_changes >= o.commit_changes || self.pending_bytes >= o.commit_bytes
    }

    /// Write every table's pending changes: in one transaction where the target has a table
    /// set writer, else each table in its own.
    async fn write_pending(&mut self) -> Result<(), Failure> {
        let t = Instant::now();
        let results: Vec<_> = match self.table_set.as_mut() {
            Some(set) => {
                let mut tables: Vec<&mut TableSink> = self
                    .sinks
                    .iter_mut()
                    .filter_map(|s| match s {
                        Sink::Rows(s) => Some(s.as_mut()),
                        Sink::Events(_) => None,
                    })
                    .collect();
                vec![commit_table_set(set.as_mut(), &mut tables).await]
            }
            // The tables are written side by side (each its own transaction and connection).
            None => {
                futures::stream::iter(self.sinks.iter_mut().map(Sink::flush))
                    .buffer_unordered(CONCURRENT_FLUSHES)
                    .collect()
                    .await
            }
        };
        for r in results {
            let stats = r.map_err(fail(StepCode::TARGET_ERROR))?;
            self.counters.rows_written += stats.rows;
            self.counters.bytes_written += stats.bytes;
        }
        self.counters.skipped = self.sinks.iter().map(Sink::skipped).sum();
        self.counters.write_ms += t.elapsed().as_millis() as i64;
        self.pending_changes = 0;
        self.pending_bytes = 0;
        let _ = self.trace.events.send(RunEvent::Progress {
            position: Position::Writer,
            rows_read: self.counters.changes_read,
            rows_written: self.counters.rows_written,
            dirty_rows: self.counters.skipped,
            bytes_written: self.counters.bytes_written,
            // A change stream has no end to measure progress against.
            total_estimate: None,
        });
        Ok(())
    }

    /// Write what is pending, then store and acknowledge the position it reached.
    async fn commit(&mut self, ack: &dyn Acknowledger) -> Result<(), Failure> {
        self.write_pending().await?;
        let now = now_millis();
        if let Some(newest) = self.uncommitted_commits.iter().max() {
            self.lag_gauge.set_ms(now - newest);
        }
        self.lags
            .extend(self.uncommitted_commits.drain(..).map(|c| (now - c).max(0)));
        let Some(position) = self.pending_position.take() else {
            return Ok(());
        };
        if self.acked.as_ref() == Some(&position) {
            return Ok(());
        }
        self.positions.save(&position).await.map_err(|e| Failure {
            code: StepCode::TARGET_ERROR,
            error: ConnectorError::external(format!("cannot store the stream position: {e}")),
        })?;
        ack.ack(&position)
            .await
            .map_err(fail(StepCode::SOURCE_ERROR))?;
        self.acked = Some(position);
        Ok(())
    }

    /// A READING entry: per-table counts, the position, and lag percentiles since the last one.
    fn progress_entry(&mut self) {
        self.last_entry = Instant::now();
        let mut lags = std::mem::take(&mut self.lags);
        lags.sort_unstable();
        let pct = |q: f64| {
            lags.get(((lags.len() as f64 - 1.0) * q).round() as usize)
                .copied()
        };
        let tables: Vec<String> = self
            .sinks
            .iter()
            .filter(|s| s.applied().total() > 0 || s.skipped() > 0)
            .map(|s| table_counts(s.mapping(), s.applied(), s.skipped()))
            .collect();
        let lag = match (pct(0.5), pct(0.99)) {
            (Some(p50), Some(p99)) => format!("lag p50 {p50} ms, p99 {p99} ms"),
            _ => "no changes since the last entry".to_string(),
        };
        let mut remarks = format!(
            "Streaming: {} changes read, {} rows written; {lag}; position {}",
            self.counters.changes_read,
            self.counters.rows_written,
            self.acked
                .as_ref()
                .map(|p| p.0.to_string())
                .unwrap_or_else(|| "none yet".into()),
        );
        if !tables.is_empty() {
            remarks.push_str("; ");
            remarks.push_str(&tables.join(", "));
        }
        if let Some(reason) = self.sinks.iter().find_map(Sink::skip_reason) {
            remarks.push_str(&format!("; skipped changes, first: {reason}"));
        }
        let parts = self
            .sinks
            .iter()
            .filter(|s| s.applied().total() > 0 || s.skipped() > 0)
            .take(MAX_SUB_STEPS)
            .map(|s| table_part(s.mapping(), s.applied(), s.skipped()))
            .collect();
        self.trace.step_parts(
            StepCode::READING,
            PositionStatus::Normal,
            now_millis(),
            (
                self.counters.rows_written,
                self.counters.skipped,
                self.counters.bytes_written,
            ),
            &remarks,
            parts,
        );
    }
}

/// Where one mapped table's changes go: rows of a target table (collapsed per key, upserts and
/// deletes), or events of a topic (each change, in order).
enum Sink {
    Rows(Box<TableSink>),
    Events(Box<EventSink>),
}

impl Sink {
    fn mapping(&self) -> &TableMapping {
        match self {
            Sink::Rows(s) => &s.mapping,
            Sink::Events(s) => &s.mapping,
        }
    }
    fn applied(&self) -> OpCounts {
        match self {
            Sink::Rows(s) => s.applied,
            Sink::Events(s) => s.applied,
        }
    }
    fn skipped(&self) -> u64 {
        match self {
            Sink::Rows(s) => s.skipped,
            Sink::Events(s) => s.skipped,
        }
    }
    fn skip_reason(&self) -> Option<String> {
        match self {
            Sink::Rows(s) => s.skip_reason.clone(),
            Sink::Events(s) => (s.skipped > 0).then(|| "the target refused events".to_string()),
        }
    }
    fn take_drift(&mut self) -> Option<String> {
        match self {
            Sink::Rows(s) => s.drift.take(),
            Sink::Events(_) => None,
        }
    }
    fn add_snapshot_rows(
        &mut self,
        table: &fdi_connector::change::ChangeTable,
        rows: &[Vec<fdi_connector::change::ChangeValue>],
    ) -> fdi_connector::Result<()> {
        match self {
            Sink::Rows(s) => s.add_snapshot_rows(table, rows),
            Sink::Events(s) => {
                s.add_snapshot_rows(table, rows);
                Ok(())
            }
        }
    }
    fn add_change(
        &mut self,
        change: &fdi_connector::change::RowChange,
        commit_ms: i64,
        position: &SourcePosition,
    ) -> fdi_connector::Result<()> {
        match self {
            Sink::Rows(s) => s.add_change(change),
            Sink::Events(s) => {
                s.add_change(change, commit_ms, position);
                Ok(())
            }
        }
    }
    async fn flush(&mut self) -> fdi_connector::Result<fdi_connector::WriteStats> {
        match self {
            Sink::Rows(s) => s.flush().await,
            Sink::Events(s) => s.flush().await,
        }
    }
    async fn discard(&mut self) {
        match self {
            Sink::Rows(s) => s.discard().await,
            Sink::Events(s) => s.discard().await,
        }
    }
}

/// Tables the drift check has reported (each once per run).
#[derive(Default)]
struct TableDrift {
    gone: std::collections::HashSet<TableId>,
    added: std::collections::HashSet<TableId>,
}

fn snapshot_pending(snapshot: bool, acked: &Option<SourcePosition>) -> bool {
    snapshot && acked.is_none()
}

/// At most this many tables are a progress entry's sub-steps (those that applied or skipped
/// changes, in mapping order).
const MAX_SUB_STEPS: usize = 200;

/// One table of a progress entry as a sub-step: its changes applied so far.
fn table_part(m: &TableMapping, c: OpCounts, skipped: u64) -> SubStep {
    let mut remarks = format!(
        "{} inserts, {} updates, {} deletes",
        c.inserts, c.updates, c.deletes
    );
    if skipped > 0 {
        remarks.push_str(&format!(", {skipped} skipped"));
    }
    SubStep {
        code: StepCode::READING,
        stage: format!("{} -> {}", m.source, m.target_table),
        data_count: c.total(),
        remarks,
    }
}

fn table_counts(m: &TableMapping, c: OpCounts, skipped: u64) -> String {
    let mut s = format!(
        "{} -> {}: {} inserts, {} updates, {} deletes",
        m.source, m.target_table, c.inserts, c.updates, c.deletes
    );
    if skipped > 0 {
        s.push_str(&format!(", {skipped} skipped"));
    }
    s
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The writers of the mapped tables, in mapping order: one per table, or, where the target
/// can, one table set writing every table in one transaction.
async fn open_sinks(
    req: &CdcRequest,
) -> fdi_connector::Result<(Vec<Sink>, Option<Box<dyn TableSetWriter>>)> {
    if req.target.schemaless_target() {
        let mut sinks = Vec::with_capacity(req.tables.len());
        for m in &req.tables {
            let writer = req
                .target
                .writer(WriteSpec {
                    table: m.target_table.clone(),
                    columns: event_columns(),
                    mode: WriteMode::Insert,
                    clear_table: false,
                })
                .await?;
            sinks.push(Sink::Events(Box::new(EventSink::new(m.clone(), writer))));
        }
        return Ok((sinks, None));
    }
    let mut plans = Vec::with_capacity(req.tables.len());
    for m in &req.tables {
        plans.push(plan_rows(req, m).await?);
    }
    let specs: Vec<WriteSpec> = plans.iter().map(|p| p.spec.clone()).collect();
    let set = match specs.is_empty() {
        true => None,
        false => req.target.table_set_writer(specs).await?,
    };
    let mut sinks = Vec::with_capacity(plans.len());
    for (m, plan) in req.tables.iter().zip(plans) {
        let writer = match set {
            Some(_) => None,
            None => Some(req.target.writer(plan.spec).await?),
        };
        sinks.push(Sink::Rows(Box::new(TableSink::new(
            m.clone(),
            plan.columns,
            &plan.key,
            writer,
            req.resume.is_none(),
        ))));
    }
    Ok((sinks, set))
}

/// How one mapped table is written: upserts on the target's primary key (plain inserts when it
/// has none: then only INSERTs can be applied).
struct RowsPlan {
    spec: WriteSpec,
    columns: Vec<ColumnInfo>,
    key: Vec<String>,
}

async fn plan_rows(req: &CdcRequest, m: &TableMapping) -> fdi_connector::Result<RowsPlan> {
    let all = req.target.columns(&m.target_table).await?;
    let mut columns: Vec<ColumnInfo> = Vec::with_capacity(m.columns.len());
    for (_, t) in &m.columns {
        let c = all.iter().find(|c| &c.name == t).ok_or_else(|| {
            ConnectorError::user(format!(
                "mapping of {}: the target table {} has no column {t:?}",
                m.source, m.target_table
            ))
        })?;
        columns.push(c.clone());
    }
    let key: Vec<String> = all
        .iter()
        .filter(|c| c.primary)
        .map(|c| c.name.clone())
        .collect();
    if let Some(k) = key.iter().find(|k| !columns.iter().any(|c| &c.name == *k)) {
        return Err(ConnectorError::user(format!(
            "mapping of {}: the target's key column {k:?} of {} is not mapped",
            m.source, m.target_table
        )));
    }
    let mode = if key.is_empty() {
        WriteMode::Insert
    } else {
        WriteMode::Upsert {
            keys: key.clone(),
            part_update: false,
        }
    };
    Ok(RowsPlan {
        spec: WriteSpec {
            table: m.target_table.clone(),
            columns: columns.clone(),
            mode,
            clear_table: req.resume.is_none(),
        },
        columns,
        key,
    })
}
