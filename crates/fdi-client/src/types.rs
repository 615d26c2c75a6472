//! The requests and answers of the fdi API that this client uses. Answers keep the fields this
//! crate does not name in `rest`, so they print back unchanged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A page of a list answer: `{"total", "size", "entities"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page<T> {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub size: u64,
    #[serde(default = "Vec::new")]
    pub entities: Vec<T>,
}

/// Paging of a list request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageQuery {
    pub offset: Option<u64>,
    pub limit: Option<u64>,
}

/// A datasource as the server answers it (secrets masked).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Datasource {
    pub datasource_id: String,
    pub datasource_name: String,
    pub datasource_type: String,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub app_name: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The body of `POST datasources`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewDatasource {
    pub datasource_name: String,
    pub datasource_type: String,
    pub app_id: String,
    pub content: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The answer of `POST datasources/{id}/test-connect` when the connection works.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestConnect {
    pub result: bool,
}

/// A task in a task list (BriefTaskRespBean).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskBrief {
    pub task_id: String,
    pub task_name: String,
    #[serde(default)]
    pub task_type: Option<String>,
    /// 1 when the task is started or running.
    #[serde(default)]
    pub status: Option<i64>,
    /// The execute status of the task's last run.
    #[serde(default)]
    pub execute_status: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// A task with its detail: the answer of `GET tasks/{id}` and `POST tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    pub task: TaskBasic,
    /// The task detail as the JSON string it is stored as.
    #[serde(default)]
    pub task_detail: Value,
}

/// TaskBasicRsp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskBasic {
    pub task_id: String,
    pub task_name: String,
    #[serde(default)]
    pub task_type: Option<String>,
    /// `running` or `stop`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub execute_status: Option<String>,
    #[serde(default)]
    pub source_datasource_id: Option<String>,
    #[serde(default)]
    pub target_datasource_id: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// The body of `POST tasks`: `task_detail` is a JSON string, as in the reference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTask {
    pub task: NewTaskBasic,
    pub task_detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewTaskBasic {
    pub task_name: String,
    /// `TIMING` or `REALTIME`.
    pub task_type: String,
    pub source_datasource_id: String,
    pub target_datasource_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The answer of `POST tasks/{id}/run`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStarted {
    pub tracking_id: String,
    #[serde(default)]
    pub message: Option<String>,
}

/// What `POST batch-operation/tasks` does to each task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchAction {
    Start,
    Stop,
}

impl BatchAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchAction::Start => "start",
            BatchAction::Stop => "stop",
        }
    }
}

/// The answer of `POST batch-operation/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchResult {
    pub success_count: u64,
    pub failure_count: u64,
    #[serde(default)]
    pub success: Vec<BatchItem>,
    #[serde(default)]
    pub failure: Vec<BatchItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchItem {
    pub task_id: String,
    #[serde(default)]
    pub task_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

/// A step of a run: `current_step`, and the entries of `sub_steps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    #[serde(default)]
    pub status: Option<i64>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub remarks: Option<String>,
}

/// One run's monitor-log entry, with its live progress (fields absent on older servers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunEntry {
    /// The run's id: its tracking id.
    pub id: String,
    /// WAITING, RUNNING, SUCCESS, ERROR or CANCELLED.
    pub execute_status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty_data_count: Option<u64>,
    /// 0..100, or null when the source gave no row estimate.
    #[serde(default)]
    pub progress: Option<f64>,
    #[serde(default)]
    pub read_count: Option<u64>,
    #[serde(default)]
    pub total_count: Option<u64>,
    #[serde(default)]
    pub rows_per_second: Option<f64>,
    /// ETA in milliseconds.
    #[serde(default)]
    pub remaining_time: Option<u64>,
    #[serde(default)]
    pub current_step: Option<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl RunEntry {
    /// The run is over: SUCCESS, ERROR or CANCELLED.
    pub fn is_finished(&self) -> bool {
        RunOutcome::of(&self.execute_status).is_some()
    }

    /// Rows read so far: `read_count`, else the total `data_count`.
    pub fn rows(&self) -> u64 {
        self.read_count.or(self.data_count).unwrap_or(0)
    }
}

/// How a finished run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Success,
    Error,
    Cancelled,
}

impl RunOutcome {
    /// The outcome of an `execute_status`; none while the run goes on.
    pub fn of(execute_status: &str) -> Option<RunOutcome> {
        match execute_status {
            "SUCCESS" => Some(RunOutcome::Success),
            "ERROR" => Some(RunOutcome::Error),
            "CANCELLED" => Some(RunOutcome::Cancelled),
            _ => None,
        }
    }
}
