//! Datasource and task kinds.

use crate::error::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// Datasource types this engine has a connector for. Every other type named by the reference is
/// refused with 400 FDI.3443 until its connector exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DatasourceType {
    Mysql,
    Postgresql,
    /// Our own extra type: `content.url` is a file path.
    Sqlite,
    Rabbitmq,
    Kafka,
    Redis,
}

/// Types the reference names but fdi has no connector for yet.
pub const KNOWN_UNSUPPORTED_TYPES: &[&str] = &[
    "ORACLE",
    "SQLSERVER",
    "DB2",
    "DWS",
    "OPENGAUSS",
    "GAUSS100",
    "TAURUS",
    "DM",
    "HANA",
    "HIVE",
    "CLICKHOUSE",
    "MQS",
    "ACTIVEMQ",
    "ARTEMISMQ",
    "IBMMQ",
    "ROCKETMQ",
    "MONGODB",
    "OBS",
    "FTP",
    "API",
    "WEBSOCKET",
    "LDAP",
    "SNMP",
    "SAP",
    "HL7",
];

impl DatasourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mysql => "MYSQL",
            Self::Postgresql => "POSTGRESQL",
            Self::Sqlite => "SQLITE",
            Self::Rabbitmq => "RABBITMQ",
            Self::Kafka => "KAFKA",
            Self::Redis => "REDIS",
        }
    }

    /// Parse a `datasource_type` from a request (case-insensitive). Unknown or not-yet-supported
    /// types are 400 FDI.3443 naming the field.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MYSQL" => Ok(Self::Mysql),
            "POSTGRESQL" | "POSTGRES" => Ok(Self::Postgresql),
            "SQLITE" => Ok(Self::Sqlite),
            "RABBITMQ" => Ok(Self::Rabbitmq),
            "KAFKA" => Ok(Self::Kafka),
            "REDIS" => Ok(Self::Redis),
            other if KNOWN_UNSUPPORTED_TYPES.contains(&other) || other.starts_with("MRS") => {
                Err(ApiError::new(
                    ErrorCode::InvalidDatasourceType,
                    format!(
                        "datasource_type: {other} has no connector in this engine yet (supported: MYSQL, POSTGRESQL, SQLITE, RABBITMQ, KAFKA, REDIS)"
                    ),
                ))
            }
            _ => Err(ApiError::new(
                ErrorCode::InvalidDatasourceType,
                format!(
                    "datasource_type: unknown type {s:?} (supported: MYSQL, POSTGRESQL, SQLITE, RABBITMQ, KAFKA, REDIS)"
                ),
            )),
        }
    }

    /// DataX-style plugin names shown as a step's `stage`.
    pub fn reader_plugin(self) -> &'static str {
        match self {
            Self::Mysql => "mysqlreader",
            Self::Postgresql => "pgreader",
            Self::Sqlite => "sqlitereader",
            Self::Rabbitmq => "rabbitmqreader",
            Self::Kafka => "kafkareader",
            Self::Redis => "redisreader",
        }
    }

    pub fn writer_plugin(self) -> &'static str {
        match self {
            Self::Mysql => "mysqlwriter",
            Self::Postgresql => "pgwriter",
            Self::Sqlite => "sqlitewriter",
            Self::Rabbitmq => "rabbitmqwriter",
            Self::Kafka => "kafkawriter",
            Self::Redis => "rediswriter",
        }
    }
}

impl std::fmt::Display for DatasourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `task_type`: REALTIME or TIMING (responses spell it lowercase, as the reference's examples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskType {
    Realtime,
    Timing,
}

impl TaskType {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "REALTIME" => Ok(Self::Realtime),
            "TIMING" => Ok(Self::Timing),
            _ => Err(ApiError::new(
                ErrorCode::InvalidTaskType,
                format!("task.task_type: {s:?} (expected REALTIME or TIMING)"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "REALTIME",
            Self::Timing => "TIMING",
        }
    }

    /// The lowercase spelling used in responses (`"task_type": "timing"`).
    pub fn as_response_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::Timing => "timing",
        }
    }
}
