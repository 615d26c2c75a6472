//! Datasource and task kinds.

use crate::error::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// A datasource type (`datasource_type`), as a connector names itself: its name in the API
/// (`MYSQL`, `KAFKA`, ...), other spellings requests may use, and the prefix of the reader /
/// writer stage names of its runs' steps (`pg` -> `pgreader` / `pgwriter`). There is no list of
/// types here: which exist is what the binary's connector registry holds, so adding a connector
/// edits no match anywhere else. Types the reference names without a connector here are refused
/// with 400 FDI.3443 ([`KNOWN_UNSUPPORTED_TYPES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DatasourceType {
    name: &'static str,
    aliases: &'static [&'static str],
    stage: &'static str,
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
    /// `name` in upper case as the API spells it; `stage` prefixes the reader / writer stage
    /// names (`mysql` -> `mysqlreader`).
    pub const fn new(name: &'static str, stage: &'static str) -> Self {
        Self {
            name,
            aliases: &[],
            stage,
        }
    }

    /// Other spellings a request may use (upper case).
    pub const fn with_aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    pub fn as_str(self) -> &'static str {
        self.name
    }

    pub fn reader_plugin(self) -> String {
        format!("{}reader", self.stage)
    }

    pub fn writer_plugin(self) -> String {
        format!("{}writer", self.stage)
    }

    /// Parse a `datasource_type` (case-insensitive) among the types this binary has. Unknown
    /// or not-yet-supported types are 400 FDI.3443 naming the field and the supported ones.
    pub fn parse_among(s: &str, supported: &[DatasourceType]) -> Result<Self, ApiError> {
        let wanted = s.trim().to_ascii_uppercase();
        if let Some(t) = supported
            .iter()
            .find(|t| t.name == wanted || t.aliases.contains(&wanted.as_str()))
        {
            return Ok(*t);
        }
        let names: Vec<&str> = supported.iter().map(|t| t.name).collect();
        let names = names.join(", ");
        let known = KNOWN_UNSUPPORTED_TYPES.contains(&wanted.as_str()) || wanted.starts_with("MRS");
        Err(ApiError::new(
            ErrorCode::InvalidDatasourceType,
            if known {
                format!(
                    "datasource_type: {wanted} has no connector in this engine yet (supported: {names})"
                )
            } else {
                format!("datasource_type: unknown type {s:?} (supported: {names})")
            },
        ))
    }
}

impl std::fmt::Display for DatasourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which API a task belongs to: a normal task (one source table -> one target table, `tasks`),
/// or a combination (CDC) task (`multi-tasks`: many tables through a change log). A combination
/// task is `MultiInit` from `multi-tasks/init` (datasources chosen, id allocated) until
/// `POST multi-tasks` names it; only then does it show in monitors and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskKind {
    Normal,
    Multi,
    MultiInit,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Multi => "MULTI",
            Self::MultiInit => "MULTI_INIT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "NORMAL" => Some(Self::Normal),
            "MULTI" => Some(Self::Multi),
            "MULTI_INIT" => Some(Self::MultiInit),
            _ => None,
        }
    }

    /// A combination task, named or not yet.
    pub fn is_multi(self) -> bool {
        self != Self::Normal
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

#[cfg(test)]
mod tests {
    use super::*;

    const PG: DatasourceType = DatasourceType::new("POSTGRESQL", "pg").with_aliases(&["POSTGRES"]);
    const KAFKA: DatasourceType = DatasourceType::new("KAFKA", "kafka");

    #[test]
    fn types_are_parsed_among_the_registered_ones() {
        let supported = [PG, KAFKA];
        assert_eq!(
            DatasourceType::parse_among(" postgres ", &supported).unwrap(),
            PG
        );
        assert_eq!(
            DatasourceType::parse_among("Kafka", &supported).unwrap(),
            KAFKA
        );
        assert_eq!(PG.reader_plugin(), "pgreader");
        assert_eq!(KAFKA.writer_plugin(), "kafkawriter");
        let e = DatasourceType::parse_among("oracle", &supported).unwrap_err();
        assert_eq!(e.code, "FDI.3443");
        assert!(
            e.message.contains(
                "ORACLE has no connector in this engine yet (supported: POSTGRESQL, KAFKA)"
            ),
            "{}",
            e.message
        );
        let e = DatasourceType::parse_among("nope", &supported).unwrap_err();
        assert!(e.message.contains("unknown type \"nope\""), "{}", e.message);
        // A type this binary was built without is refused even if another binary has it.
        assert!(DatasourceType::parse_among("MYSQL", &supported).is_err());
    }
}
