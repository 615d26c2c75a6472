//! The API's error body: HTTP status + `FDI.xxxx` code + message (+ optional detail).

use serde::Serialize;

/// FDI error codes from the reference's error-code table (§11.4.2), with their HTTP status
/// and English message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameters,         // 400 FDI.3002
    TestConnectFailed,         // 400 FDI.3016
    ManualStartFailed,         // 400 FDI.3026
    ManualStopFailed,          // 400 FDI.3027
    InvalidParameter,          // 400 FDI.3033
    InvalidSql,                // 400 FDI.3035
    InvalidMapping,            // 400 FDI.3037
    InvalidPaging,             // 400 FDI.3048
    InvalidSort,               // 400 FDI.3049
    InvalidExecuteStatus,      // 400 FDI.3050
    SqlTooLong,                // 400 FDI.3051
    TaskNameExists,            // 400 FDI.3058
    InvalidCompensation,       // 400 FDI.3063
    IncrSqlMissingPlaceholder, // 400 FDI.3071
    SqlEmpty,                  // 400 FDI.3073
    NonIncrSqlHasPlaceholder,  // 400 FDI.3074
    NoDispatchPlan,            // 400 FDI.3083
    InvalidDatasource,         // 400 FDI.3104
    TaskRunning,               // 400 FDI.3139
    DescriptionTooLong,        // 400 FDI.3142
    InvalidTaskType,           // 400 FDI.3144
    MappingEmpty,              // 400 FDI.3145
    SourceOrTargetEmpty,       // 400 FDI.3146
    DatasourceMissing,         // 400 FDI.3147
    TaskListEmpty,             // 400 FDI.3150
    InvalidTaskName,           // 400 FDI.3157
    InvalidAction,             // 400 FDI.3161
    TaskEmpty,                 // 400 FDI.3165
    TaskDetailEmpty,           // 400 FDI.3166
    InvalidAppId,              // 400 FDI.3435
    InvalidDatasourceType,     // 400 FDI.3443
    IncorrectContent,          // 400 FDI.3447
    InvalidTaskTag,            // 400 FDI.3557
    TasksNotExist,             // 400 FDI.3021
    EmptyTaskIds,              // 400 FDI.3022
    RealtimeUnsupported,       // 400 FDI.3059
    InvalidInterval,           // 400 FDI.3067
    TaskIdEmpty,               // 400 FDI.3149
    DispatchNotFound,          // 404 FDI.3109 (no dispatch-specific code in the table)
    TaskNotFound,              // 404 FDI.3081
    DatasourceNotFound,        // 404 FDI.3101
    AppNotFound,               // 404 FDI.3435 (the reference has no app-specific 404 code)
    TaskStarted,               // 500 FDI.3030
    DatasourceDeleteFailed,    // 500 FDI.3121
    DatasourceInUse,           // 400 FDI.3121 (delete refused: tasks still use it)
    Internal,                  // 500 FDI.9999
    Unauthorized,              // 401 FDI.1001 (no code in the table; ours)
    Forbidden,                 // 403 FDI.3478
    NotFound,                  // 404 FDI.3002 (unknown route)
    MethodNotAllowed,          // 405 FDI.3002
    PayloadTooLarge,           // 413 FDI.3002
    UriTooLong,                // 414 FDI.3002
    HeadersTooLarge,           // 431 FDI.3002
    NotImplemented,            // 501 FDI.3002 (an operation this engine does not offer yet)
    StoreUnavailable,          // 503 FDI.9999 (the metadata store cannot be reached)
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            TaskNotFound | DatasourceNotFound | AppNotFound | NotFound | DispatchNotFound => 404,
            TaskStarted | DatasourceDeleteFailed | Internal => 500,
            Unauthorized => 401,
            Forbidden => 403,
            MethodNotAllowed => 405,
            PayloadTooLarge => 413,
            UriTooLong => 414,
            HeadersTooLarge => 431,
            NotImplemented => 501,
            StoreUnavailable => 503,
            _ => 400,
        }
    }

    pub fn code(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidParameters | NotFound | MethodNotAllowed | PayloadTooLarge | UriTooLong
            | HeadersTooLarge | NotImplemented => "FDI.3002",
            TestConnectFailed => "FDI.3016",
            ManualStartFailed => "FDI.3026",
            ManualStopFailed => "FDI.3027",
            InvalidParameter => "FDI.3033",
            InvalidSql => "FDI.3035",
            InvalidMapping => "FDI.3037",
            InvalidPaging => "FDI.3048",
            InvalidSort => "FDI.3049",
            InvalidExecuteStatus => "FDI.3050",
            SqlTooLong => "FDI.3051",
            TaskNameExists => "FDI.3058",
            InvalidCompensation => "FDI.3063",
            IncrSqlMissingPlaceholder => "FDI.3071",
            SqlEmpty => "FDI.3073",
            NonIncrSqlHasPlaceholder => "FDI.3074",
            NoDispatchPlan => "FDI.3083",
            InvalidDatasource => "FDI.3104",
            TaskRunning => "FDI.3139",
            DescriptionTooLong => "FDI.3142",
            InvalidTaskType => "FDI.3144",
            MappingEmpty => "FDI.3145",
            SourceOrTargetEmpty => "FDI.3146",
            DatasourceMissing => "FDI.3147",
            TaskListEmpty => "FDI.3150",
            InvalidTaskName => "FDI.3157",
            InvalidAction => "FDI.3161",
            TaskEmpty => "FDI.3165",
            TaskDetailEmpty => "FDI.3166",
            InvalidAppId | AppNotFound => "FDI.3435",
            InvalidDatasourceType => "FDI.3443",
            IncorrectContent => "FDI.3447",
            InvalidTaskTag => "FDI.3557",
            TasksNotExist => "FDI.3021",
            EmptyTaskIds => "FDI.3022",
            RealtimeUnsupported => "FDI.3059",
            InvalidInterval => "FDI.3067",
            TaskIdEmpty => "FDI.3149",
            DispatchNotFound => "FDI.3109",
            TaskNotFound => "FDI.3081",
            DatasourceNotFound => "FDI.3101",
            TaskStarted => "FDI.3030",
            DatasourceDeleteFailed | DatasourceInUse => "FDI.3121",
            Internal | StoreUnavailable => "FDI.9999",
            Unauthorized => "FDI.1001",
            Forbidden => "FDI.3478",
        }
    }

    /// The reference's English message for the code.
    pub fn message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidParameters => "Invalid parameters.",
            NotFound => "The requested resource does not exist.",
            TestConnectFailed => "Failed to test the connectivity.",
            ManualStartFailed => "Failed to manually start the task.",
            ManualStopFailed => "Failed to manually stop the task.",
            InvalidParameter => "Invalid parameter.",
            InvalidSql => "Invalid SQL statement.",
            InvalidMapping => {
                "The parameter in mapping information is invalid or does not match the task."
            }
            InvalidPaging => "Invalid pagination parameters.",
            InvalidSort => "The parameter used for sorting is invalid.",
            InvalidExecuteStatus => "The running status is invalid.",
            SqlTooLong => "The length of an SQL statement cannot exceed 20000 characters.",
            TaskNameExists => "The task name already exists.",
            InvalidCompensation => "The parameter for setting the compensation period is invalid.",
            IncrSqlMissingPlaceholder => {
                "The SQL statement of incremental migration does not contain \"${begin}\" and \"${end}\"."
            }
            SqlEmpty => "The SQL statement is empty.",
            NonIncrSqlHasPlaceholder => {
                "The SQL statement in a non-incremental migration task cannot contain \"${begin}\" and \"${end}\"."
            }
            NoDispatchPlan => {
                "One or more scheduled tasks are not configured with scheduled plans."
            }
            InvalidDatasource => "Invalid data source.",
            TaskRunning => "The task is running.",
            DescriptionTooLong => "The description length cannot exceed 1024.",
            InvalidTaskType => "The integration mode can only be Scheduled or Real-Time.",
            MappingEmpty => "The mapping information is empty or invalid.",
            SourceOrTargetEmpty => "The source information or destination information is empty.",
            DatasourceMissing => "The data source does not exist.",
            TaskListEmpty => "The task list is empty.",
            InvalidTaskName => {
                "The task name must contain 3 to 100 characters and start with a letter or digit. It can consist of only letters, digits, periods (.), underscores (_), and hyphens (-)."
            }
            InvalidAction => "The action must be start or stop.",
            TaskEmpty => "The task cannot be empty.",
            TaskDetailEmpty => "The task details cannot be empty.",
            InvalidAppId => "The appId is invalid or can not find apps by this instance id.",
            AppNotFound => "The app does not exist.",
            InvalidDatasourceType => "Invalid data source type.",
            IncorrectContent => "Incorrect content.",
            InvalidTaskTag => "The task tag is illegal.",
            TasksNotExist => "One or more tasks do not exist.",
            EmptyTaskIds => "One or more tasks have empty task IDs.",
            RealtimeUnsupported => {
                "The data source does not support the real-time integration mode."
            }
            InvalidInterval => "The parameter for setting the time interval is invalid.",
            TaskIdEmpty => "The task ID is empty.",
            DispatchNotFound => "The dispatch plan does not exist.",
            TaskNotFound => "The task does not exist.",
            DatasourceNotFound => "The datasource does not exist.",
            TaskStarted => "The task is started.",
            DatasourceDeleteFailed => "Failed to delete the data source.",
            DatasourceInUse => "Failed to delete the data source: it is used by tasks.",
            MethodNotAllowed => "The method is not allowed on this resource.",
            PayloadTooLarge => "The request body is too large.",
            UriTooLong => "The request URI is too long.",
            HeadersTooLarge => "The request headers are too large.",
            NotImplemented => "The operation is not supported.",
            StoreUnavailable => "The metadata store is unavailable; retry later.",
            Internal => "Internal error.",
            Unauthorized => "The token is missing or invalid.",
            Forbidden => "You do not have permission to perform operations on this project.",
        }
    }
}

/// An error as the API returns it: `{"error_code", "error_msg", "detail"}` with an HTTP status.
/// `error_msg` is the code's message followed by the specific reason (which names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
}

#[derive(Serialize)]
pub struct ApiErrorBody<'a> {
    pub error_code: &'a str,
    pub error_msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'a str>,
}

impl ApiError {
    /// The code's own message, nothing more.
    pub fn of(code: ErrorCode) -> Self {
        Self {
            status: code.http_status(),
            code: code.code(),
            message: code.message().to_string(),
            detail: None,
        }
    }

    /// The code's message followed by a reason, e.g. `Invalid parameters. task.task_name: ...`.
    pub fn new(code: ErrorCode, reason: impl AsRef<str>) -> Self {
        let reason = reason.as_ref();
        let message = if reason.is_empty() {
            code.message().to_string()
        } else {
            format!("{} {}", code.message(), reason)
        };
        Self {
            status: code.http_status(),
            code: code.code(),
            message,
            detail: None,
        }
    }

    /// A 400 FDI.3002 naming the field that is wrong.
    pub fn invalid_field(field: &str, reason: impl AsRef<str>) -> Self {
        Self::new(
            ErrorCode::InvalidParameters,
            format!("{field}: {}", reason.as_ref()),
        )
    }

    pub fn internal(reason: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::Internal, reason)
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn body(&self) -> ApiErrorBody<'_> {
        ApiErrorBody {
            error_code: self.code,
            error_msg: &self.message,
            detail: self.detail.as_deref(),
        }
    }
}
