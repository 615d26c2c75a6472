//! Runs and their steps as rows: a run is one row in `fdi_runs` (status and counters, updated in
//! place), each step one row in `fdi_run_steps` (appended, never rewritten). Saving a run writes
//! what changed since the last save: its row and the steps added since — a run that lasts a month
//! is not a growing blob.

use fdi_types::{ExecuteStatus, IncrementalWindow, Position, PositionStatus};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Pool, Result, Store};

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
    /// The parts of a run that has parts (a CDC run's tables) at this step; empty otherwise.
    #[serde(default)]
    pub sub_steps: Vec<SubStepView>,
}

/// One part of a run at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubStepView {
    pub code: u16,
    pub stage: String,
    pub data_count: u64,
    pub remarks: String,
}

/// Sub-steps as stored: JSON, NULL when there are none.
pub(crate) fn sub_steps_column(steps: &[SubStepView]) -> Option<String> {
    (!steps.is_empty()).then(|| serde_json::to_string(steps).unwrap_or_default())
}

/// Sub-steps from their column (unreadable JSON: none).
pub(crate) fn sub_steps_of(column: Option<String>) -> Vec<SubStepView> {
    column
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
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

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Manual => "manual",
            Self::Plan => "plan",
            Self::Realtime => "realtime",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "plan" => Self::Plan,
            "realtime" => Self::Realtime,
            _ => Self::Manual,
        }
    }
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
    /// The steps not yet stored, after the `stored_steps` already stored (all of them when the
    /// run was read with its steps).
    pub steps: Vec<StepView>,
    #[serde(default)]
    pub trigger: Trigger,
    /// The node that ran it (several nodes may share one store).
    #[serde(default)]
    pub node_id: String,
    /// The incremental window the run read, if any.
    #[serde(default)]
    pub window: Option<IncrementalWindow>,
    /// Live progress (kept after the end): rows read so far.
    #[serde(default)]
    pub read_count: u64,
    /// The source's estimate of the rows the run reads; None when it gave none.
    #[serde(default)]
    pub total_count: Option<u64>,
    /// Percent done (0..=100): read / estimate while running, at most 99 until the run ends,
    /// 100 at SUCCESS; None when there is no estimate.
    #[serde(default)]
    pub progress: Option<u8>,
    /// Rows read per second over the last progress interval (over the whole run once ended).
    #[serde(default)]
    pub rows_per_second: f64,
    /// Estimated time left in ms; None without an estimate or a rate.
    #[serde(default)]
    pub remaining_ms: Option<i64>,
    /// The last progress sample (rows read, at ms) the rate is measured from; not stored.
    #[serde(skip)]
    pub rate_sample: Option<(u64, i64)>,
    /// How many steps of this run the store holds before `steps` (whose first element is step
    /// number `stored_steps`). Saving stores `steps` and moves them into this count.
    #[serde(skip)]
    pub stored_steps: u32,
}

/// Which runs of a task a list shows.
pub struct RunFilter {
    pub begin_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub offset: i64,
    pub limit: i64,
}

/// A task's runs by outcome.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunCounts {
    pub total: u64,
    pub error: u64,
    pub success: u64,
    pub running: u64,
    pub cancelled: u64,
}

pub(crate) const RUN_COLUMNS: &str = "id, task_id, start_ms, dispatch_ms, end_ms, exec_status, pos, pos_status, \
     status_code, data_count, dirty_count, data_bytes, read_ms, write_ms, remarks, run_trigger, \
     node_id, window_begin, window_end, window_nulls, read_count, total_count, progress, \
     rows_per_second, remaining_ms";

/// Add to a task's run total (negative to take off).
pub(crate) const ADD_TO_TOTAL: &str = "INSERT INTO fdi_task_run_totals (task_id, runs) VALUES ($1, $2) \
     ON CONFLICT (task_id) DO UPDATE SET runs = fdi_task_run_totals.runs + excluded.runs";

/// A task's newest run (`$1` task, then the run's id, start, status and position), unless its
/// newest run is newer still.
pub(crate) const NOTE_LAST_RUN: &str = "UPDATE fdi_task_run_totals SET last_run_id = $2, last_start_ms = $3, \
     last_status = $4, last_pos = $5 WHERE task_id = $1 AND (last_run_id IS NULL \
     OR last_start_ms < $3 OR (last_start_ms = $3 AND last_run_id <= $2))";

/// The status and position of a task's newest run (`$1` task, `$2` run), when it is that run.
const NOTE_LAST_RUN_STATE: &str = "UPDATE fdi_task_run_totals SET last_status = $3, last_pos = $4 \
     WHERE task_id = $1 AND last_run_id = $2";

/// Set each task's newest run from its runs (after the runs it was were deleted, and when the
/// columns were added); the WHERE clause, if any, follows.
macro_rules! refresh_last_run {
    () => {
        "UPDATE fdi_task_run_totals SET \
         last_run_id = (SELECT r.id FROM fdi_runs r WHERE r.task_id = fdi_task_run_totals.task_id \
             ORDER BY r.start_ms DESC, r.id DESC LIMIT 1), \
         last_start_ms = (SELECT r.start_ms FROM fdi_runs r WHERE r.task_id = fdi_task_run_totals.task_id \
             ORDER BY r.start_ms DESC, r.id DESC LIMIT 1), \
         last_status = (SELECT r.exec_status FROM fdi_runs r WHERE r.task_id = fdi_task_run_totals.task_id \
             ORDER BY r.start_ms DESC, r.id DESC LIMIT 1), \
         last_pos = (SELECT r.pos FROM fdi_runs r WHERE r.task_id = fdi_task_run_totals.task_id \
             ORDER BY r.start_ms DESC, r.id DESC LIMIT 1)"
    };
}

pub(crate) const REFRESH_LAST_RUN_OF_ALL: &str = refresh_last_run!();
const REFRESH_LAST_RUN_OF_TASK: &str = concat!(refresh_last_run!(), " WHERE task_id = $1");

/// The newest of these runs per task.
pub(crate) fn newest_per_task(runs: &[RunView]) -> Vec<&RunView> {
    let mut newest: std::collections::BTreeMap<&str, &RunView> = std::collections::BTreeMap::new();
    for r in runs {
        let slot = newest.entry(r.task_id.as_str()).or_insert(r);
        if (r.start_ms, r.id.as_str()) > (slot.start_ms, slot.id.as_str()) {
            *slot = r;
        }
    }
    newest.into_values().collect()
}

/// How many of these belong to each task.
pub(crate) fn per_task<'a>(tasks: impl Iterator<Item = &'a str>) -> Vec<(String, i64)> {
    let mut counts: std::collections::BTreeMap<&str, i64> = std::collections::BTreeMap::new();
    for t in tasks {
        *counts.entry(t).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(t, n)| (t.to_string(), n))
        .collect()
}

pub(crate) const STEP_COLUMNS: &str = "run_id, seq, id, code, pos, pos_status, stage, data_count, dirty_count, \
     data_bytes, remarks, begin_ms, end_ms, sub_steps";

/// A [`RunView`] (without steps) from a row selected with [`RUN_COLUMNS`].
macro_rules! run_from_row {
    ($r:expr) => {{
        let r = $r;
        let window = match (
            r.try_get::<Option<i64>, _>("window_begin")?,
            r.try_get::<Option<i64>, _>("window_end")?,
        ) {
            (Some(begin_ms), Some(end_ms)) => Some(fdi_types::IncrementalWindow {
                begin_ms,
                end_ms,
                include_nulls: r.try_get::<i32, _>("window_nulls")? == 1,
            }),
            _ => None,
        };
        Ok::<RunView, crate::StoreError>(RunView {
            id: r.try_get("id")?,
            task_id: r.try_get("task_id")?,
            start_ms: r.try_get("start_ms")?,
            dispatch_ms: r.try_get("dispatch_ms")?,
            end_ms: r.try_get("end_ms")?,
            execute_status: ExecuteStatus::parse(&r.try_get::<String, _>("exec_status")?)
                .unwrap_or(ExecuteStatus::Error),
            position: Position::parse(&r.try_get::<String, _>("pos")?).unwrap_or(Position::Adapter),
            position_status: PositionStatus::parse(&r.try_get::<String, _>("pos_status")?)
                .unwrap_or(PositionStatus::Normal),
            status_code: r.try_get::<i32, _>("status_code")? as u16,
            data_count: r.try_get::<i64, _>("data_count")? as u64,
            dirty_data_count: r.try_get::<i64, _>("dirty_count")? as u64,
            data_bytes: r.try_get::<i64, _>("data_bytes")? as u64,
            read_ms: r.try_get("read_ms")?,
            write_ms: r.try_get("write_ms")?,
            remarks: r.try_get("remarks")?,
            steps: Vec::new(),
            trigger: Trigger::parse(&r.try_get::<String, _>("run_trigger")?),
            node_id: r.try_get("node_id")?,
            window,
            read_count: r.try_get::<i64, _>("read_count")?.max(0) as u64,
            total_count: r
                .try_get::<Option<i64>, _>("total_count")?
                .map(|n| n.max(0) as u64),
            progress: r
                .try_get::<Option<i32>, _>("progress")?
                .map(|p| p.clamp(0, 100) as u8),
            rows_per_second: r.try_get("rows_per_second")?,
            remaining_ms: r.try_get("remaining_ms")?,
            rate_sample: None,
            stored_steps: 0,
        })
    }};
}

/// (run id, step) from a row selected with [`STEP_COLUMNS`].
macro_rules! step_from_row {
    ($r:expr) => {{
        let r = $r;
        Ok::<(String, StepView), crate::StoreError>((
            r.try_get("run_id")?,
            StepView {
                id: r.try_get("id")?,
                code: r.try_get::<i32, _>("code")? as u16,
                position: Position::parse(&r.try_get::<String, _>("pos")?)
                    .unwrap_or(Position::Adapter),
                position_status: PositionStatus::parse(&r.try_get::<String, _>("pos_status")?)
                    .unwrap_or(PositionStatus::Normal),
                stage: r.try_get("stage")?,
                data_count: r.try_get::<i64, _>("data_count")? as u64,
                dirty_data_count: r.try_get::<i64, _>("dirty_count")? as u64,
                data_bytes: r.try_get::<i64, _>("data_bytes")? as u64,
                remarks: r.try_get("remarks")?,
                begin_ms: r.try_get("begin_ms")?,
                end_ms: r.try_get("end_ms")?,
                sub_steps: $crate::runs::sub_steps_of(r.try_get("sub_steps")?),
            },
        ))
    }};
}

/// Insert step rows `(run id, seq, step)` in multi-row statements.
macro_rules! insert_step_rows {
    ($conn:expr, $rows:expr) => {{
        let rows: Vec<(&str, i64, &$crate::runs::StepView)> = $rows;
        for chunk in rows.chunks(200) {
            let mut qb = sqlx::QueryBuilder::new(format!(
                "INSERT INTO fdi_run_steps ({}) ",
                $crate::runs::STEP_COLUMNS
            ));
            qb.push_values(chunk.iter(), |mut b, (run_id, seq, s)| {
                b.push_bind(run_id.to_string())
                    .push_bind(*seq)
                    .push_bind(s.id.clone())
                    .push_bind(i32::from(s.code))
                    .push_bind(s.position.as_str())
                    .push_bind(s.position_status.as_str())
                    .push_bind(s.stage.clone())
                    .push_bind(s.data_count as i64)
                    .push_bind(s.dirty_data_count as i64)
                    .push_bind(s.data_bytes as i64)
                    .push_bind(s.remarks.clone())
                    .push_bind(s.begin_ms)
                    .push_bind(s.end_ms)
                    .push_bind($crate::runs::sub_steps_column(&s.sub_steps));
            });
            qb.build().execute(&mut *$conn).await?;
        }
    }};
}

/// Insert `steps` of `run_id`, numbered from `first_seq`.
macro_rules! insert_steps {
    ($conn:expr, $run_id:expr, $first_seq:expr, $steps:expr) => {{
        let run_id: &str = &$run_id;
        let first = $first_seq as i64;
        insert_step_rows!(
            $conn,
            $steps
                .iter()
                .enumerate()
                .map(|(i, s)| (run_id, first + i as i64, s))
                .collect()
        );
    }};
}

/// Insert whole runs (rows and steps, steps numbered from `stored_steps`) in multi-row
/// statements: the seeding of benchmarks and the move of 0.1 run documents.
macro_rules! insert_runs {
    ($conn:expr, $runs:expr) => {{
        let runs: &[$crate::runs::RunView] = $runs;
        for chunk in runs.chunks(400) {
            let mut qb = sqlx::QueryBuilder::new(format!(
                "INSERT INTO fdi_runs ({}) ",
                $crate::runs::RUN_COLUMNS
            ));
            qb.push_values(chunk.iter(), |mut b, r| {
                b.push_bind(r.id.clone())
                    .push_bind(r.task_id.clone())
                    .push_bind(r.start_ms)
                    .push_bind(r.dispatch_ms)
                    .push_bind(r.end_ms)
                    .push_bind(r.execute_status.as_str())
                    .push_bind(r.position.as_str())
                    .push_bind(r.position_status.as_str())
                    .push_bind(i32::from(r.status_code))
                    .push_bind(r.data_count as i64)
                    .push_bind(r.dirty_data_count as i64)
                    .push_bind(r.data_bytes as i64)
                    .push_bind(r.read_ms)
                    .push_bind(r.write_ms)
                    .push_bind(r.remarks.clone())
                    .push_bind(r.trigger.as_str())
                    .push_bind(r.node_id.clone())
                    .push_bind(r.window.map(|w| w.begin_ms))
                    .push_bind(r.window.map(|w| w.end_ms))
                    .push_bind(i32::from(r.window.is_some_and(|w| w.include_nulls)))
                    .push_bind(r.read_count as i64)
                    .push_bind(r.total_count.map(|n| n as i64))
                    .push_bind(r.progress.map(i32::from))
                    .push_bind(r.rows_per_second)
                    .push_bind(r.remaining_ms);
            });
            qb.build().execute(&mut *$conn).await?;
            $crate::runs::insert_step_rows!(
                $conn,
                chunk
                    .iter()
                    .flat_map(|r| {
                        let first = r.stored_steps as i64;
                        r.steps
                            .iter()
                            .enumerate()
                            .map(move |(i, s)| (r.id.as_str(), first + i as i64, s))
                    })
                    .collect()
            );
        }
    }};
}

/// Insert whole runs as [`insert_runs!`] does, and count them in their tasks' totals and last
/// runs.
macro_rules! insert_counted_runs {
    ($conn:expr, $runs:expr) => {{
        let runs: &[$crate::runs::RunView] = $runs;
        $crate::runs::insert_runs!($conn, runs);
        for (task, n) in $crate::runs::per_task(runs.iter().map(|r| r.task_id.as_str())) {
            sqlx::query($crate::runs::ADD_TO_TOTAL)
                .bind(task)
                .bind(n)
                .execute(&mut *$conn)
                .await?;
        }
        for r in $crate::runs::newest_per_task(runs) {
            sqlx::query($crate::runs::NOTE_LAST_RUN)
                .bind(&r.task_id)
                .bind(&r.id)
                .bind(r.start_ms)
                .bind(r.execute_status.as_str())
                .bind(r.position.as_str())
                .execute(&mut *$conn)
                .await?;
        }
    }};
}

pub(crate) use {insert_counted_runs, insert_runs, insert_step_rows};

impl Store {
    /// Store a new run with the steps it has so far.
    pub async fn insert_run(&self, run: &mut RunView) -> Result<()> {
        self.insert_runs(std::slice::from_ref(run)).await?;
        self.steps_stored(run);
        Ok(())
    }

    /// Store runs with their steps in bulk (multi-row statements, one transaction), and count
    /// them in their tasks' totals.
    pub async fn insert_runs(&self, runs: &[RunView]) -> Result<()> {
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            insert_counted_runs!(tx, runs);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Store the run's status and counters and the steps added since the last save.
    pub async fn save_run(&self, run: &mut RunView) -> Result<()> {
        let sql = "UPDATE fdi_runs SET end_ms = $1, exec_status = $2, pos = $3, pos_status = $4, \
             status_code = $5, data_count = $6, dirty_count = $7, data_bytes = $8, read_ms = $9, \
             write_ms = $10, remarks = $11, window_begin = $12, window_end = $13, \
             window_nulls = $14, read_count = $15, total_count = $16, progress = $17, \
             rows_per_second = $18, remaining_ms = $19 WHERE id = $20";
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            sqlx::query(sql)
                .bind(run.end_ms)
                .bind(run.execute_status.as_str())
                .bind(run.position.as_str())
                .bind(run.position_status.as_str())
                .bind(i32::from(run.status_code))
                .bind(run.data_count as i64)
                .bind(run.dirty_data_count as i64)
                .bind(run.data_bytes as i64)
                .bind(run.read_ms)
                .bind(run.write_ms)
                .bind(&run.remarks)
                .bind(run.window.map(|w| w.begin_ms))
                .bind(run.window.map(|w| w.end_ms))
                .bind(i32::from(run.window.is_some_and(|w| w.include_nulls)))
                .bind(run.read_count as i64)
                .bind(run.total_count.map(|n| n as i64))
                .bind(run.progress.map(i32::from))
                .bind(run.rows_per_second)
                .bind(run.remaining_ms)
                .bind(&run.id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(NOTE_LAST_RUN_STATE)
                .bind(&run.task_id).bind(&run.id)
                .bind(run.execute_status.as_str()).bind(run.position.as_str())
                .execute(&mut *tx).await?;
            insert_steps!(tx, run.id, run.stored_steps, run.steps);
            tx.commit().await?;
        });
        self.steps_stored(run);
        Ok(())
    }

    /// The steps just written are stored: only later ones are written by the next save.
    fn steps_stored(&self, run: &mut RunView) {
        run.stored_steps += run.steps.len() as u32;
        run.steps.clear();
    }

    /// A run without its steps (`stored_steps` says how many it has).
    pub async fn run_row(&self, run_id: &str) -> Result<Option<RunView>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS}, (SELECT COUNT(*) FROM fdi_run_steps s WHERE s.run_id = r.id) AS step_count FROM fdi_runs r WHERE id = $1"
        );
        on_pool!(&self.pool, p => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(run_id).fetch_optional(p).await?;
            row.map(|r| {
                let mut run = run_from_row!(&r)?;
                run.stored_steps = r.try_get::<i64, _>("step_count")? as u32;
                Ok(run)
            })
            .transpose()
        })
    }

    /// A task's run with every step.
    pub async fn run_with_steps(&self, task_id: &str, run_id: &str) -> Result<Option<RunView>> {
        let Some(run) = self.run_row(run_id).await?.filter(|r| r.task_id == task_id) else {
            return Ok(None);
        };
        let mut runs = vec![run];
        self.load_steps(&mut runs).await?;
        let mut run = runs.remove(0);
        run.stored_steps = 0;
        Ok(Some(run))
    }

    /// The task's newest run (by start time), without its steps.
    pub async fn last_run(&self, task_id: &str) -> Result<Option<RunView>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM fdi_runs WHERE task_id = $1 ORDER BY start_ms DESC, id DESC LIMIT 1"
        );
        on_pool!(&self.pool, p => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(task_id).fetch_optional(p).await?;
            row.map(|r| run_from_row!(&r)).transpose()
        })
    }

    /// The task's runs, newest first, started within the filter's range, with their steps;
    /// (total, page). Without a time range the total is the task's kept total (no counting);
    /// the page is index-backed, plus one query for its steps.
    pub async fn list_runs(&self, task_id: &str, f: &RunFilter) -> Result<(u64, Vec<RunView>)> {
        let begin = f.begin_ms.unwrap_or(i64::MIN);
        let end = f.end_ms.unwrap_or(i64::MAX);
        let count_sql = if f.begin_ms.is_none() && f.end_ms.is_none() {
            "SELECT COALESCE(MAX(runs), 0) FROM fdi_task_run_totals WHERE task_id = $1 AND $2 <= $3"
        } else {
            "SELECT COUNT(*) FROM fdi_runs WHERE task_id = $1 AND start_ms >= $2 AND start_ms <= $3"
        };
        let page_sql = format!(
            "SELECT {RUN_COLUMNS} FROM fdi_runs WHERE task_id = $1 AND start_ms >= $2 AND start_ms <= $3 \
             ORDER BY start_ms DESC, id DESC LIMIT $4 OFFSET $5"
        );
        let (total, mut runs) = on_pool!(&self.pool, p => {
            let total: i64 = sqlx::query_scalar(count_sql).bind(task_id).bind(begin).bind(end).fetch_one(p).await?;
            let rows = sqlx::query(sqlx::AssertSqlSafe(page_sql.as_str()))
                .bind(task_id).bind(begin).bind(end).bind(f.limit.max(0)).bind(f.offset.max(0))
                .fetch_all(p).await?;
            let runs = rows.iter().map(|r| run_from_row!(r)).collect::<Result<Vec<_>>>()?;
            (total, runs)
        });
        self.load_steps(&mut runs).await?;
        Ok((total as u64, runs))
    }

    /// Fill each run's `steps` with its stored steps, in order (one query for all of them).
    async fn load_steps(&self, runs: &mut [RunView]) -> Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let placeholders: Vec<String> = (1..=runs.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {STEP_COLUMNS} FROM fdi_run_steps WHERE run_id IN ({}) ORDER BY run_id, seq",
            placeholders.join(", ")
        );
        let steps: Vec<(String, StepView)> = on_pool!(&self.pool, p => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
            for r in runs.iter() {
                q = q.bind(r.id.clone());
            }
            q.fetch_all(p).await?.iter().map(|r| step_from_row!(r)).collect::<Result<Vec<_>>>()?
        });
        for (run_id, step) in steps {
            if let Some(r) = runs.iter_mut().find(|r| r.id == run_id) {
                r.steps.push(step);
            }
        }
        Ok(())
    }

    /// The task's runs by outcome (one grouped query).
    pub async fn run_counts(&self, task_id: &str) -> Result<RunCounts> {
        let sql =
            "SELECT exec_status, COUNT(*) FROM fdi_runs WHERE task_id = $1 GROUP BY exec_status";
        let rows: Vec<(String, i64)> =
            on_pool!(&self.pool, p => sqlx::query_as(sql).bind(task_id).fetch_all(p).await?);
        let mut c = RunCounts::default();
        for (status, n) in rows {
            let n = n as u64;
            c.total += n;
            match ExecuteStatus::parse(&status) {
                Some(ExecuteStatus::Error) => c.error += n,
                Some(ExecuteStatus::Success) => c.success += n,
                Some(ExecuteStatus::Cancelled) => c.cancelled += n,
                Some(ExecuteStatus::Running | ExecuteStatus::Waiting) => c.running += n,
                _ => {}
            }
        }
        Ok(c)
    }

    /// Delete a task's runs and their steps.
    pub async fn delete_task_runs(&self, task_id: &str) -> Result<()> {
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM fdi_run_steps WHERE run_id IN (SELECT id FROM fdi_runs WHERE task_id = $1)")
                .bind(task_id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM fdi_runs WHERE task_id = $1").bind(task_id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM fdi_task_run_totals WHERE task_id = $1").bind(task_id).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Delete up to `batch` ended runs (and their steps) that started before `before_ms`;
    /// returns how many. Active runs (RUNNING, WAITING) are never deleted.
    pub async fn prune_runs_before(&self, before_ms: i64, batch: i64) -> Result<u64> {
        let pick = "SELECT id FROM fdi_runs WHERE start_ms < $1 \
             AND exec_status NOT IN ('RUNNING', 'WAITING') ORDER BY start_ms LIMIT $2";
        let ids: Vec<String> = on_pool!(&self.pool, p => sqlx::query_scalar(pick)
            .bind(before_ms).bind(batch).fetch_all(p).await?);
        self.delete_runs(&ids).await
    }

    /// Tasks that hold more than `keep` runs.
    pub async fn tasks_with_runs_over(&self, keep: i64) -> Result<Vec<String>> {
        let sql = "SELECT task_id FROM fdi_task_run_totals WHERE runs > $1";
        Ok(on_pool!(&self.pool, p => sqlx::query_scalar(sql).bind(keep).fetch_all(p).await?))
    }

    /// Delete up to `batch` ended runs of the task beyond its `keep` newest; returns how many.
    pub async fn prune_task_runs_beyond(
        &self,
        task_id: &str,
        keep: i64,
        batch: i64,
    ) -> Result<u64> {
        let pick = "SELECT id FROM fdi_runs WHERE task_id = $1 \
             AND exec_status NOT IN ('RUNNING', 'WAITING') \
             AND id NOT IN (SELECT id FROM fdi_runs WHERE task_id = $1 ORDER BY start_ms DESC, id DESC LIMIT $2) \
             ORDER BY start_ms LIMIT $3";
        let ids: Vec<String> = on_pool!(&self.pool, p => sqlx::query_scalar(pick)
            .bind(task_id).bind(keep).bind(batch).fetch_all(p).await?);
        self.delete_runs(&ids).await
    }

    /// Delete these runs and their steps in one transaction, and take them off their tasks'
    /// totals.
    async fn delete_runs(&self, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let list = list.join(", ");
        let owners = format!("SELECT task_id FROM fdi_runs WHERE id IN ({list})");
        let steps = format!("DELETE FROM fdi_run_steps WHERE run_id IN ({list})");
        let runs = format!("DELETE FROM fdi_runs WHERE id IN ({list})");
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(owners.as_str()));
            for id in ids {
                q = q.bind(id.clone());
            }
            let owners = q.fetch_all(&mut *tx).await?;
            let owners = per_task(owners.iter().map(String::as_str));
            for (task, n) in &owners {
                sqlx::query(ADD_TO_TOTAL).bind(task.clone()).bind(-n).execute(&mut *tx).await?;
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(steps.as_str()));
            for id in ids {
                q = q.bind(id.clone());
            }
            q.execute(&mut *tx).await?;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(runs.as_str()));
            for id in ids {
                q = q.bind(id.clone());
            }
            q.execute(&mut *tx).await?;
            for (task, _) in &owners {
                sqlx::query(REFRESH_LAST_RUN_OF_TASK).bind(task.clone()).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(ids.len() as u64)
    }
}
