//! Run statuses, positions and the monitor log's step status codes.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecuteStatus {
    Unstarted,
    Waiting,
    Running,
    Success,
    Cancelled,
    Error,
}

impl ExecuteStatus {
    pub const ALL: [ExecuteStatus; 6] = [
        Self::Unstarted,
        Self::Waiting,
        Self::Running,
        Self::Success,
        Self::Cancelled,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unstarted => "UNSTARTED",
            Self::Waiting => "WAITING",
            Self::Running => "RUNNING",
            Self::Success => "SUCCESS",
            Self::Cancelled => "CANCELLED",
            Self::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
    }

    /// WAITING or RUNNING: the run has not ended.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Waiting | Self::Running)
    }
}

/// Which stage of the run a status or step belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Position {
    Adapter,
    Reader,
    Writer,
}

impl Position {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adapter => "ADAPTER",
            Self::Reader => "READER",
            Self::Writer => "WRITER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Adapter, Self::Reader, Self::Writer]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PositionStatus {
    Normal,
    NodeEnd,
    RuntimeCancel,
    TaskEnd,
    RuntimeErr,
    InternalErr,
}

impl PositionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::NodeEnd => "NODE_END",
            Self::RuntimeCancel => "RUNTIME_CANCEL",
            Self::TaskEnd => "TASK_END",
            Self::RuntimeErr => "RUNTIME_ERR",
            Self::InternalErr => "INTERNAL_ERR",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Normal,
            Self::NodeEnd,
            Self::RuntimeCancel,
            Self::TaskEnd,
            Self::RuntimeErr,
            Self::InternalErr,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// The reference's step status codes (reader 100-499, writer 500-899, others 900+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepCode(pub u16);

impl StepCode {
    pub const FORCE_CANCELLED: StepCode = StepCode(16);
    pub const TASK_START: StepCode = StepCode(99);
    pub const READER_START: StepCode = StepCode(100);
    pub const READER_END: StepCode = StepCode(101);
    pub const READING: StepCode = StepCode(102);
    pub const SOURCE_ERROR: StepCode = StepCode(103);
    pub const READ_DONE: StepCode = StepCode(104);
    pub const READ_ZERO: StepCode = StepCode(105);
    pub const READER_CANCELLED: StepCode = StepCode(106);
    pub const READER_INTERRUPTED: StepCode = StepCode(107);
    pub const READER_RESUMED: StepCode = StepCode(108);
    pub const WRITER_START: StepCode = StepCode(500);
    pub const WRITER_END: StepCode = StepCode(501);
    pub const WRITING: StepCode = StepCode(502);
    pub const TARGET_ERROR: StepCode = StepCode(503);
    pub const WRITE_DONE: StepCode = StepCode(504);
    pub const WRITER_CANCELLED: StepCode = StepCode(505);
    pub const WRITER_INTERRUPTED: StepCode = StepCode(506);
    pub const WRITER_RESUMED: StepCode = StepCode(507);
    pub const DISPATCH_RECEIVED: StepCode = StepCode(900);
    pub const RUN_FINISHED: StepCode = StepCode(901);
    pub const READ_REJECTED_PREVIOUS_RUNNING: StepCode = StepCode(907);
    pub const READER_NOT_STARTED: StepCode = StepCode(911);
    pub const WRITER_NOT_STARTED: StepCode = StepCode(912);
    pub const DISPATCH_FAILED: StepCode = StepCode(913);
    pub const REJECTED_PREVIOUS_RUNNING: StepCode = StepCode(914);
    pub const ABNORMAL: StepCode = StepCode(915);
    pub const LOG_REPORT_FAILED: StepCode = StepCode(916);

    /// The position a code belongs to, by the reference's ranges.
    pub fn position(self) -> Position {
        match self.0 {
            100..=499 => Position::Reader,
            500..=899 => Position::Writer,
            _ => Position::Adapter,
        }
    }
}
