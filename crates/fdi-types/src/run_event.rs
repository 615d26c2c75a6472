//! What one run reports as it goes (steps, progress) and how it ended: the engine emits these, the
//! monitor log stores them. Here, in the leaf crate, so that neither depends on the other.

use crate::{ExecuteStatus, Position, PositionStatus, StepCode};

/// One step of the run's trace, as the monitor log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub code: StepCode,
    pub position: Position,
    pub position_status: PositionStatus,
    /// Plugin name, e.g. `adapter`, `mysqlreader`, `pgwriter`.
    pub stage: String,
    pub data_count: u64,
    pub dirty_data_count: u64,
    pub data_bytes: u64,
    pub begin_ms: i64,
    pub end_ms: i64,
    pub remarks: String,
    /// Where the parts of a run that has parts (the tables of a CDC run) are at this step;
    /// empty for a run of one part.
    pub sub_steps: Vec<SubStep>,
}

/// One part of a run at a step: what it is (`stage`), its code, rows and remarks.
#[derive(Debug, Clone, PartialEq)]
pub struct SubStep {
    pub code: StepCode,
    pub stage: String,
    pub data_count: u64,
    pub remarks: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// A new step (append to the run's ordered steps).
    Step(StepRecord),
    /// Progress counters while RUNNING (update the run's live counts and the current 102/502 step).
    Progress {
        position: Position,
        rows_read: u64,
        rows_written: u64,
        dirty_rows: u64,
        bytes_written: u64,
        /// Rows the source estimated the run will read (its statistics or query plan, taken once
        /// at the run's start), or None when the source gave none: progress is then unknown,
        /// never invented.
        total_estimate: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// SUCCESS, ERROR or CANCELLED.
    pub status: ExecuteStatus,
    /// Last position reached and its status (e.g. WRITER / TASK_END).
    pub position: Position,
    pub position_status: PositionStatus,
    /// The run's detail status code (e.g. 901 on success, 103/503 on errors, 16 on terminate).
    pub status_code: StepCode,
    pub rows_read: u64,
    /// The size of the rows read, as the engine holds them (Arrow values); 0 where not measured
    /// (combination tasks).
    pub bytes_read: u64,
    pub rows_written: u64,
    pub dirty_rows: u64,
    pub bytes_written: u64,
    /// Rows and bytes the target committed: all of them after a success; after a failure or a
    /// terminate, what earlier micro-batches of a streaming run committed (0 for a run that
    /// writes in one transaction).
    pub rows_committed: u64,
    pub bytes_committed: u64,
    pub read_ms: i64,
    pub write_ms: i64,
    pub remarks: String,
}
