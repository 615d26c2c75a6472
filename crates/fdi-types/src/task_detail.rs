//! The `task_detail` of a normal task (reference §11.6.1, RawFormDataRequest).
//!
//! `task_detail` arrives as a JSON *string*. Field names are accepted as the reference's examples
//! spell them (camelCase: `sourceTable`, `targetSelectedColumnList`, `mappingTable`, ...) and in
//! their snake_case forms (`source_table`, `target_selected_column_list`, `mapping_table`, ...).
//! Booleans and integers are also accepted as strings (`"true"`, `"11"`), as the reference's own
//! examples send them. Unknown fields are kept out of the model but tolerated.

use crate::error::{ApiError, ErrorCode};
use serde::{Deserialize, Deserializer, Serialize};

/// Maximum length of a custom query (FDI.3051).
pub const MAX_SQL_LEN: usize = 20_000;

/// Placeholder of an incremental custom query (`querySql`): the window's start (inclusive).
pub const BEGIN_PLACEHOLDER: &str = "${begin}";
/// Placeholder of an incremental custom query (`querySql`): the window's end (exclusive).
pub const END_PLACEHOLDER: &str = "${end}";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskDetail {
    #[serde(
        default,
        alias = "sourceSelectedDataSource",
        alias = "sourceSelectedDatasource",
        alias = "source_selected_datasource",
        alias = "source_selected_data_source"
    )]
    pub source: SourceConfig,
    #[serde(
        default,
        alias = "targetSelectedDataSource",
        alias = "targetSelectedDatasource",
        alias = "target_selected_datasource",
        alias = "target_selected_data_source"
    )]
    pub target: TargetConfig,
    #[serde(
        default,
        alias = "mappingTable",
        alias = "mapping_table",
        deserialize_with = "null_as_default"
    )]
    pub mapping: Vec<ColumnMapping>,
    /// Where dirty rows go (reference table 11-14). Without it the first dirty row fails the run.
    #[serde(
        default,
        alias = "errorHandler",
        deserialize_with = "one_or_first",
        skip_serializing_if = "Option::is_none"
    )]
    pub error_handler: Option<ErrorHandler>,
    /// A message published when a run ends (reference table 11-15). The reference's own example
    /// nests it inside `error_handler`; it is accepted there too.
    #[serde(
        default,
        alias = "after_implementation",
        rename = "afterImplementation",
        deserialize_with = "one_or_first",
        skip_serializing_if = "Option::is_none"
    )]
    pub after_implementation: Option<AfterImplementation>,
}

/// The default of [`ErrorHandler::max_dirty_rows`].
pub const DEFAULT_MAX_DIRTY_ROWS: u64 = 10_000;

/// Where the dirty rows of a run are kept, and how many a run may have (reference table 11-14
/// plus our limits).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorHandler {
    /// `LOCAL` (ours: a JSON-lines file per run under the files root). The reference's `OBS`
    /// needs an object-store connector this engine does not have yet.
    #[serde(default, deserialize_with = "opt_string")]
    pub mode: Option<String>,
    /// LOCAL: a directory under the files root; each run writes `<path>/<task id>/<tracking
    /// id>.jsonl`.
    #[serde(default, deserialize_with = "opt_string")]
    pub path: Option<String>,
    #[serde(default, alias = "datasourceId", deserialize_with = "opt_string")]
    pub datasource_id: Option<String>,
    #[serde(default, alias = "appId", deserialize_with = "opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub stop_task_when_obs_failure: bool,
    /// A run fails once it has more dirty rows than this (default [`DEFAULT_MAX_DIRTY_ROWS`]).
    #[serde(default, alias = "maxDirtyRows", deserialize_with = "opt_i64")]
    pub max_dirty_rows: Option<i64>,
    /// A run fails when dirty rows are more than this share (0..=1) of the rows read, checked at
    /// each commit and at the end (default: no ratio limit).
    #[serde(default, alias = "maxDirtyRatio", deserialize_with = "opt_f64")]
    pub max_dirty_ratio: Option<f64>,
    #[serde(
        default,
        rename = "afterImplementation",
        deserialize_with = "one_or_first",
        skip_serializing
    )]
    nested_after_implementation: Option<AfterImplementation>,
}

impl TaskDetail {
    /// The message to publish when a run ends: `afterImplementation`, or the one the reference's
    /// example nests inside `error_handler`.
    pub fn run_end_action(&self) -> Option<&AfterImplementation> {
        self.after_implementation.as_ref().or_else(|| {
            self.error_handler
                .as_ref()
                .and_then(|h| h.nested_after_implementation.as_ref())
        })
    }
}

impl ErrorHandler {
    const FIELD: &str = "task_detail.error_handler";

    fn validate(&self) -> Result<(), ApiError> {
        let f = Self::FIELD;
        match self.mode.as_deref().map(str::trim) {
            Some(m) if m.eq_ignore_ascii_case("LOCAL") => {}
            Some(m) if m.eq_ignore_ascii_case("OBS") => {
                return Err(ApiError::invalid_field(
                    &format!("{f}.mode"),
                    "OBS has no connector in this engine yet; use LOCAL (a JSON-lines file per run under the files root)",
                ));
            }
            Some(m) => {
                return Err(ApiError::invalid_field(
                    &format!("{f}.mode"),
                    format!("{m:?} (expected LOCAL)"),
                ));
            }
            None => {
                return Err(ApiError::invalid_field(
                    &format!("{f}.mode"),
                    "required (LOCAL)",
                ));
            }
        }
        if self.path.as_deref().is_none_or(|p| p.trim().is_empty()) {
            return Err(ApiError::invalid_field(
                &format!("{f}.path"),
                "required: the directory under the files root that receives the dirty rows",
            ));
        }
        if self.max_dirty_rows.is_some_and(|n| n < 0) {
            return Err(ApiError::invalid_field(
                &format!("{f}.max_dirty_rows"),
                "must not be negative",
            ));
        }
        if let Some(r) = self.max_dirty_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(ApiError::invalid_field(
                &format!("{f}.max_dirty_ratio"),
                format!("{r} (expected a share between 0 and 1)"),
            ));
        }
        Ok(())
    }

    pub fn max_dirty_rows(&self) -> u64 {
        self.max_dirty_rows
            .map_or(DEFAULT_MAX_DIRTY_ROWS, |n| n.max(0) as u64)
    }
}

impl AfterImplementation {
    fn validate(&self) -> Result<(), ApiError> {
        let f = "task_detail.afterImplementation";
        match self.action_type.as_deref().map(str::trim) {
            Some(a) if a.eq_ignore_ascii_case("KAFKA") => {}
            other => {
                return Err(ApiError::invalid_field(
                    &format!("{f}.actionType"),
                    format!("{:?} (expected KAFKA)", other.unwrap_or("")),
                ));
            }
        }
        if self
            .datasource_id
            .as_deref()
            .is_none_or(|d| d.trim().is_empty())
        {
            return Err(ApiError::invalid_field(
                &format!("{f}.datasourceId"),
                "required: the KAFKA datasource to publish to",
            ));
        }
        if self.topic.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err(ApiError::invalid_field(&format!("{f}.topic"), "required"));
        }
        Ok(())
    }
}

/// What to do when a run ends (reference table 11-15): publish one message to a topic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AfterImplementation {
    #[serde(
        default,
        rename = "projectId",
        alias = "project_id",
        deserialize_with = "opt_string"
    )]
    pub project_id: Option<String>,
    /// `KAFKA` (the only action of the reference this engine offers).
    #[serde(
        default,
        rename = "actionType",
        alias = "action_type",
        deserialize_with = "opt_string"
    )]
    pub action_type: Option<String>,
    /// (The reference's table spells it `appld`.)
    #[serde(
        default,
        rename = "appId",
        alias = "app_id",
        alias = "appld",
        deserialize_with = "opt_string"
    )]
    pub app_id: Option<String>,
    #[serde(
        default,
        rename = "datasourceId",
        alias = "datasource_id",
        deserialize_with = "opt_string"
    )]
    pub datasource_id: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub topic: Option<String>,
    #[serde(
        default,
        rename = "messageContent",
        alias = "message_content",
        deserialize_with = "opt_string"
    )]
    pub message_content: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceConfig {
    #[serde(
        default,
        alias = "sourceTable",
        alias = "source_table",
        deserialize_with = "opt_string"
    )]
    pub table: Option<String>,
    #[serde(
        default,
        alias = "sourceSchema",
        alias = "source_schema",
        deserialize_with = "opt_string"
    )]
    pub schema: Option<String>,
    #[serde(
        default,
        alias = "sourceSelectedColumnList",
        alias = "source_selected_column_list",
        deserialize_with = "column_list"
    )]
    pub columns: Vec<SelectedColumn>,
    #[serde(
        default,
        alias = "isAddSql",
        alias = "is_add_sql",
        deserialize_with = "lenient_bool"
    )]
    pub is_add_sql: bool,
    #[serde(
        default,
        alias = "querySql",
        alias = "query_sql",
        deserialize_with = "opt_string"
    )]
    pub query_sql: Option<String>,
    #[serde(default, rename = "where", deserialize_with = "null_as_default")]
    pub where_conditions: Vec<WhereCondition>,
    #[serde(
        default,
        alias = "orderColumn",
        alias = "order_column",
        deserialize_with = "opt_string"
    )]
    pub order_column: Option<String>,
    #[serde(
        default,
        alias = "orderType",
        alias = "order_type",
        deserialize_with = "opt_string"
    )]
    pub order_type: Option<String>,
    /// Ours, after DataX's `splitPk`: read the table in ranges of this integer, non-null column
    /// (the primary key), by several readers at once. Unset: chosen by table size.
    #[serde(
        default,
        alias = "splitPk",
        alias = "split_pk",
        deserialize_with = "opt_string"
    )]
    pub split_pk: Option<String>,
    /// Ours: how many ranges (readers) a split read uses; 1 turns splitting off.
    #[serde(
        default,
        alias = "splitCount",
        alias = "split_count",
        deserialize_with = "opt_i64"
    )]
    pub split_count: Option<i64>,
    // Incremental sync (scheduler issue); parsed and validated here, applied by the scheduler.
    #[serde(
        default,
        alias = "need_inc_migration",
        alias = "needIncMigration",
        alias = "need_incremental_migration",
        deserialize_with = "lenient_bool"
    )]
    pub need_inc_migration: bool,
    /// The fields of a message or document source (reference tables 11-9 / 11-10: `sourceMetaData`
    /// with its `dataSource` list; `meta_data` / `source_meta_data` also accepted): what a
    /// message's JSON value is parsed into.
    #[serde(
        default,
        alias = "sourceMetaData",
        alias = "source_meta_data",
        alias = "meta_data",
        deserialize_with = "meta_fields"
    )]
    pub meta_data: Vec<MetaField>,
    #[serde(
        default,
        alias = "sourceDateColumn",
        alias = "source_date_column",
        deserialize_with = "opt_string"
    )]
    pub date_column: Option<String>,
    #[serde(
        default,
        alias = "dataTimestamp",
        alias = "data_timestamp",
        deserialize_with = "opt_i64"
    )]
    pub data_timestamp: Option<i64>,
    #[serde(
        default,
        alias = "compensation_time",
        alias = "compensationTime",
        deserialize_with = "opt_i64"
    )]
    pub compensation_time: Option<i64>,
    #[serde(
        default,
        alias = "timeZone",
        alias = "time_zone",
        deserialize_with = "opt_string"
    )]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetConfig {
    #[serde(
        default,
        alias = "targetTable",
        alias = "target_table",
        deserialize_with = "opt_string"
    )]
    pub table: Option<String>,
    #[serde(
        default,
        alias = "targetSchema",
        alias = "target_schema",
        deserialize_with = "opt_string"
    )]
    pub schema: Option<String>,
    #[serde(
        default,
        alias = "targetSelectedColumnList",
        alias = "target_selected_column_list",
        deserialize_with = "column_list"
    )]
    pub columns: Vec<SelectedColumn>,
    /// Truncate the target before loading.
    #[serde(
        default,
        alias = "isSupportClearTab",
        alias = "is_support_clear_tab",
        alias = "is_support_clear_table",
        deserialize_with = "lenient_bool"
    )]
    pub clear_table: bool,
    /// A target column filled with one id per run.
    #[serde(
        default,
        alias = "batchNumber",
        alias = "batch_number",
        deserialize_with = "opt_string"
    )]
    pub batch_number_column: Option<String>,
    /// Upsert on the target's primary/unique key when that key is mapped.
    #[serde(
        default,
        alias = "supportPartUpdate",
        alias = "support_part_update",
        deserialize_with = "lenient_bool"
    )]
    pub support_part_update: bool,
    /// Ours: `false` turns off the same-server shortcut (one `INSERT … SELECT` inside the server
    /// when source and target are one database server and login); unset or `true` allows it.
    #[serde(
        default,
        alias = "isSupportInServerCopy",
        alias = "is_support_in_server_copy",
        deserialize_with = "opt_lenient_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub in_server_copy: Option<bool>,
}

/// One selected column (reference table 11-11). A bare string is accepted as the field name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SelectedColumn {
    #[serde(alias = "fieldName", alias = "name")]
    pub field_name: String,
    #[serde(default, alias = "fieldType", deserialize_with = "opt_string")]
    pub field_type: Option<String>,
}

/// One field of a message or document source (reference table 11-10).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetaField {
    /// The column name the field becomes.
    #[serde(alias = "field_name")]
    pub name: String,
    /// `String`, `Integer`, `Long`, `Double`, `Decimal`, `Boolean`, `Timestamp`, `Date`, `Binary`
    /// (case-insensitive; empty: `String`).
    #[serde(
        default,
        rename = "type",
        alias = "field_type",
        deserialize_with = "opt_string"
    )]
    pub field_type: Option<String>,
    /// Where the value is in the message: a dotted path into its JSON value (`order.id`, with or
    /// without a leading `$.`), or a property of the message itself (`@key`, `@timestamp`, ...,
    /// as the connector documents). Empty: the top-level member named like the field.
    #[serde(default, deserialize_with = "opt_string")]
    pub path: Option<String>,
    /// How a timestamp or date written as text is read (`unix_ms`, `unix_s`, or a chrono format).
    #[serde(default, deserialize_with = "opt_string")]
    pub format: Option<String>,
}

/// One source -> target column pair (reference table 11-3, camelCase as its examples).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnMapping {
    #[serde(alias = "sourceColumn")]
    pub source_column: String,
    #[serde(default, alias = "sourceColumnType", deserialize_with = "opt_string")]
    pub source_column_type: Option<String>,
    #[serde(alias = "targetColumn")]
    pub target_column: String,
    #[serde(default, alias = "targetColumnType", deserialize_with = "opt_string")]
    pub target_column_type: Option<String>,
}

/// A source filter (reference table 11-23).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhereCondition {
    /// `and` (default) or `or`, joining this condition to the previous ones.
    #[serde(default, deserialize_with = "opt_string")]
    pub andor: Option<String>,
    #[serde(alias = "fieldName")]
    pub field_name: String,
    #[serde(default, alias = "fieldType", deserialize_with = "opt_string")]
    pub field_type: Option<String>,
    pub op: WhereOp,
    #[serde(default, deserialize_with = "opt_string")]
    pub value: Option<String>,
    #[serde(
        default,
        alias = "minValue",
        alias = "min_value",
        deserialize_with = "opt_string"
    )]
    pub min_value: Option<String>,
    #[serde(
        default,
        alias = "maxValue",
        alias = "max_value",
        deserialize_with = "opt_string"
    )]
    pub max_value: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WhereOp {
    Equal,
    NotEqual,
    Less,
    LessEqual,
    More,
    MoreEqual,
    IsNull,
    NotNull,
    Between,
    NotBetween,
    InList,
    NotInList,
    /// Engine-internal, never read from (nor written to) a task_detail: the incremental window
    /// `min_value <= field < max_value` (half-open). The bounds are timestamp literals already
    /// rendered for the source's dialect, the cursor column's type and the task's time zone.
    #[serde(skip)]
    InWindow,
    /// As [`WhereOp::InWindow`], `OR field IS NULL`: the first window of a task also loads the
    /// rows whose cursor is NULL (later windows never see them).
    #[serde(skip)]
    InWindowOrNull,
}

impl WhereCondition {
    /// `inList` / `notInList` values: comma-separated in `value`.
    pub fn list_values(&self) -> Vec<String> {
        self.value
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn is_or(&self) -> bool {
        self.andor
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case("or"))
    }
}

impl TaskDetail {
    /// Parse and validate what can be checked without a connection (SQL placeholders, lengths,
    /// required fields, filter operands). Errors are 400 and name the field.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        if raw.trim().is_empty() {
            return Err(ApiError::of(ErrorCode::TaskDetailEmpty));
        }
        let detail: TaskDetail = serde_json::from_str(raw).map_err(|e| {
            ApiError::invalid_field(
                "task_detail",
                format!("not valid JSON for RawFormDataRequest: {e}"),
            )
        })?;
        detail.validate()?;
        Ok(detail)
    }

    pub fn validate(&self) -> Result<(), ApiError> {
        /// Most readers a split read may use.
        const MAX_SPLIT_COUNT: i64 = 32;
        let s = &self.source;
        let has_placeholders =
            |q: &str| q.contains(BEGIN_PLACEHOLDER) || q.contains(END_PLACEHOLDER);
        if s.is_add_sql {
            let q = s.query_sql.as_deref().unwrap_or("").trim();
            if q.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::SqlEmpty,
                    "task_detail.sourceSelectedDatasource.querySql is empty while isAddSql is true",
                ));
            }
            if q.chars().count() > MAX_SQL_LEN {
                return Err(ApiError::new(
                    ErrorCode::SqlTooLong,
                    "task_detail.sourceSelectedDatasource.querySql",
                ));
            }
            if s.need_inc_migration {
                if !(q.contains(BEGIN_PLACEHOLDER) && q.contains(END_PLACEHOLDER)) {
                    return Err(ApiError::new(
                        ErrorCode::IncrSqlMissingPlaceholder,
                        "task_detail.sourceSelectedDatasource.querySql",
                    ));
                }
            } else if has_placeholders(q) {
                return Err(ApiError::new(
                    ErrorCode::NonIncrSqlHasPlaceholder,
                    "task_detail.sourceSelectedDatasource.querySql",
                ));
            }
        } else if s.table.as_deref().unwrap_or("").trim().is_empty() {
            return Err(ApiError::new(
                ErrorCode::SourceOrTargetEmpty,
                "task_detail.sourceSelectedDatasource.sourceTable is required (or isAddSql with querySql)",
            ));
        }
        if self.target.table.as_deref().unwrap_or("").trim().is_empty() {
            return Err(ApiError::new(
                ErrorCode::SourceOrTargetEmpty,
                "task_detail.targetSelectedDatasource.targetTable is required",
            ));
        }
        if let Some(n) = s.split_count
            && !(1..=MAX_SPLIT_COUNT).contains(&n)
        {
            return Err(ApiError::invalid_field(
                "task_detail.sourceSelectedDatasource.splitCount",
                format!("must be between 1 and {MAX_SPLIT_COUNT}, got {n}"),
            ));
        }
        if s.split_pk.is_some() && s.is_add_sql {
            return Err(ApiError::invalid_field(
                "task_detail.sourceSelectedDatasource.splitPk",
                "splits a source table; a custom query (isAddSql) is read as one",
            ));
        }
        if s.need_inc_migration {
            if !s.is_add_sql && s.date_column.as_deref().unwrap_or("").is_empty() {
                return Err(ApiError::invalid_field(
                    "task_detail.sourceSelectedDatasource.sourceDateColumn",
                    "required when need_inc_migration is true",
                ));
            }
            if s.data_timestamp.is_none() {
                return Err(ApiError::invalid_field(
                    "task_detail.sourceSelectedDatasource.dataTimestamp",
                    "required when need_inc_migration is true",
                ));
            }
            match s.compensation_time {
                Some(c) if c >= 0 => {}
                _ => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidCompensation,
                        "task_detail.sourceSelectedDatasource.compensation_time must be a non-negative number",
                    ));
                }
            }
        }
        if let Some(o) = s.order_type.as_deref()
            && !o.is_empty()
            && !o.eq_ignore_ascii_case("asc")
            && !o.eq_ignore_ascii_case("desc")
        {
            return Err(ApiError::invalid_field(
                "task_detail.sourceSelectedDatasource.orderType",
                format!("{o:?} (expected ASC or DESC)"),
            ));
        }
        for (i, w) in s.where_conditions.iter().enumerate() {
            let field = format!("task_detail.sourceSelectedDatasource.where[{i}]");
            if w.field_name.trim().is_empty() {
                return Err(ApiError::invalid_field(
                    &format!("{field}.field_name"),
                    "is empty",
                ));
            }
            match w.op {
                WhereOp::IsNull | WhereOp::NotNull => {}
                WhereOp::Between
                | WhereOp::NotBetween
                | WhereOp::InWindow
                | WhereOp::InWindowOrNull => {
                    if w.min_value.is_none() || w.max_value.is_none() {
                        return Err(ApiError::invalid_field(
                            &format!("{field}.minValue/maxValue"),
                            "required for between/notBetween",
                        ));
                    }
                }
                WhereOp::InList | WhereOp::NotInList => {
                    if w.list_values().is_empty() {
                        return Err(ApiError::invalid_field(
                            &format!("{field}.value"),
                            "a comma-separated list is required for inList/notInList",
                        ));
                    }
                }
                _ => {
                    if w.value.is_none() {
                        return Err(ApiError::invalid_field(
                            &format!("{field}.value"),
                            "is required",
                        ));
                    }
                }
            }
            if let Some(a) = w.andor.as_deref()
                && !a.is_empty()
                && !a.eq_ignore_ascii_case("and")
                && !a.eq_ignore_ascii_case("or")
            {
                return Err(ApiError::invalid_field(
                    &format!("{field}.andor"),
                    format!("{a:?} (expected and/or)"),
                ));
            }
        }
        if let Some(h) = &self.error_handler {
            h.validate()?;
        }
        if let Some(a) = self.run_end_action() {
            a.validate()?;
        }
        for (i, m) in self.mapping.iter().enumerate() {
            if m.source_column.trim().is_empty() || m.target_column.trim().is_empty() {
                return Err(ApiError::new(
                    ErrorCode::InvalidMapping,
                    format!(
                        "task_detail.mappingTable[{i}]: source_column and target_column are required"
                    ),
                ));
            }
        }
        Ok(())
    }
}

// ---- lenient deserializers -------------------------------------------------------------------

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) if s.is_empty() => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    use serde::de::Error;
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(n.as_f64()),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected a number, got {s:?}"))),
        Some(other) => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

/// An object, or the reference's list of them (the first is used; an empty list is none).
fn one_or_first<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?.unwrap_or_default();
    let one = match v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) if s.trim().is_empty() => return Ok(None),
        serde_json::Value::Array(list) => match list.into_iter().next() {
            None => return Ok(None),
            Some(first) => first,
        },
        one => one,
    };
    serde_json::from_value(one)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    use serde::de::Error;
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(b),
        Some(serde_json::Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" | "" => Ok(false),
            _ => Err(D::Error::custom(format!("expected a boolean, got {s:?}"))),
        },
        Some(serde_json::Value::Number(n)) => Ok(n.as_i64().unwrap_or(0) != 0),
        Some(other) => Err(D::Error::custom(format!("expected a boolean, got {other}"))),
    }
}

/// A lenient boolean that stays unset when absent or null.
fn opt_lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => lenient_bool(v).map(Some).map_err(serde::de::Error::custom),
    }
}

fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("expected an integer, got {n}"))),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("expected an integer, got {s:?}"))),
        Some(other) => Err(D::Error::custom(format!(
            "expected an integer, got {other}"
        ))),
    }
}

/// A list of [`MetaField`]s, or the reference's object holding it as `dataSource` (an empty
/// string or null is no fields).
fn meta_fields<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<MetaField>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?.unwrap_or_default();
    let list = match v {
        serde_json::Value::Null => return Ok(Vec::new()),
        serde_json::Value::String(s) if s.trim().is_empty() => return Ok(Vec::new()),
        serde_json::Value::Object(mut o) => {
            match o.remove("dataSource").or_else(|| o.remove("data_source")) {
                None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
                Some(serde_json::Value::String(s)) if s.trim().is_empty() => return Ok(Vec::new()),
                Some(list) => list,
            }
        }
        list => list,
    };
    serde_json::from_value(list).map_err(serde::de::Error::custom)
}

fn column_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SelectedColumn>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Name(String),
        Column(SelectedColumn),
    }
    let v = Option::<Vec<Item>>::deserialize(d)?.unwrap_or_default();
    Ok(v.into_iter()
        .map(|i| match i {
            Item::Name(field_name) => SelectedColumn {
                field_name,
                field_type: None,
            },
            Item::Column(c) => c,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &str = r#""sourceTable":"a"},"targetSelectedDatasource":{"targetTable":"b"}"#;

    #[test]
    fn error_handler_and_run_end_action_as_the_reference_writes_them() {
        // As the reference's example: one object, afterImplementation nested inside it.
        let raw = format!(
            r#"{{"sourceSelectedDatasource":{{{TABLES},"error_handler":{{"path":"data1","mode":"LOCAL","stop_task_when_obs_failure":false,"afterImplementation":{{"actionType":"KAFKA","appId":"a1","datasourceId":"k1","topic":"t1","messageContent":"success"}}}}}}"#
        );
        let d = TaskDetail::parse(&raw).unwrap();
        let h = d.error_handler.as_ref().unwrap();
        assert_eq!(h.path.as_deref(), Some("data1"));
        assert_eq!(h.max_dirty_rows(), DEFAULT_MAX_DIRTY_ROWS);
        let a = d.run_end_action().unwrap();
        assert_eq!(
            (
                a.datasource_id.as_deref(),
                a.topic.as_deref(),
                a.message_content.as_deref()
            ),
            (Some("k1"), Some("t1"), Some("success"))
        );
        // As its tables type them: lists; the table's spelling `appld`; limits as strings.
        let raw = format!(
            r#"{{"sourceSelectedDatasource":{{{TABLES},"error_handler":[{{"path":"d","mode":"local","max_dirty_rows":"5","max_dirty_ratio":"0.5"}}],"afterImplementation":[{{"actionType":"kafka","appld":"a1","datasourceId":"k2","topic":"t2"}}]}}"#
        );
        let d = TaskDetail::parse(&raw).unwrap();
        let h = d.error_handler.as_ref().unwrap();
        assert_eq!((h.max_dirty_rows(), h.max_dirty_ratio), (5, Some(0.5)));
        let a = d.run_end_action().unwrap();
        assert_eq!(
            (a.app_id.as_deref(), a.datasource_id.as_deref()),
            (Some("a1"), Some("k2"))
        );
        // Empty lists are none.
        let raw = format!(
            r#"{{"sourceSelectedDatasource":{{{TABLES},"error_handler":[],"afterImplementation":""}}"#
        );
        let d = TaskDetail::parse(&raw).unwrap();
        assert!(d.error_handler.is_none() && d.run_end_action().is_none());
    }

    #[test]
    fn bad_error_handlers_name_their_field() {
        for (handler, field) in [
            (r#"{"mode":"OBS","path":"x"}"#, "error_handler.mode"),
            (r#"{"path":"x"}"#, "error_handler.mode"),
            (r#"{"mode":"LOCAL"}"#, "error_handler.path"),
            (
                r#"{"mode":"LOCAL","path":"x","max_dirty_rows":-1}"#,
                "error_handler.max_dirty_rows",
            ),
            (
                r#"{"mode":"LOCAL","path":"x","max_dirty_ratio":1.5}"#,
                "error_handler.max_dirty_ratio",
            ),
        ] {
            let raw =
                format!(r#"{{"sourceSelectedDatasource":{{{TABLES},"error_handler":{handler}}}"#);
            let e = TaskDetail::parse(&raw).unwrap_err();
            assert!(e.message.contains(field), "{handler}: {}", e.message);
        }
        for (action, field) in [
            (
                r#"{"actionType":"SMS","datasourceId":"k","topic":"t"}"#,
                "actionType",
            ),
            (r#"{"actionType":"KAFKA","topic":"t"}"#, "datasourceId"),
            (r#"{"actionType":"KAFKA","datasourceId":"k"}"#, "topic"),
        ] {
            let raw = format!(
                r#"{{"sourceSelectedDatasource":{{{TABLES},"afterImplementation":{action}}}"#
            );
            let e = TaskDetail::parse(&raw).unwrap_err();
            assert!(
                e.message.contains(&format!("afterImplementation.{field}")),
                "{action}: {}",
                e.message
            );
        }
    }

    #[test]
    fn parses_camel_and_snake_case() {
        let camel = r#"{"sourceSelectedDatasource":{"sourceTable":"a","sourceSelectedColumnList":[{"field_name":"id"},"name"],"isAddSql":"false"},
            "targetSelectedDatasource":{"targetTable":"b","isSupportClearTab":true,"batchNumber":"bn"},
            "mappingTable":[{"sourceColumn":"id","targetColumn":"id2","targetColumnType":"BIGINT"}]}"#;
        let snake = r#"{"source_selected_datasource":{"source_table":"a","source_selected_column_list":[{"field_name":"id"},{"field_name":"name"}]},
            "target_selected_datasource":{"target_table":"b","is_support_clear_tab":"true","batch_number":"bn"},
            "mapping_table":[{"source_column":"id","target_column":"id2","target_column_type":"BIGINT"}]}"#;
        let a = TaskDetail::parse(camel).unwrap();
        assert!(a.source.meta_data.is_empty());
        let b = TaskDetail::parse(snake).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.source.table.as_deref(), Some("a"));
        assert_eq!(a.source.columns.len(), 2);
        assert!(a.target.clear_table);
        assert_eq!(a.mapping[0].target_column, "id2");
    }

    #[test]
    fn refuses_bad_input_naming_the_field() {
        let e = TaskDetail::parse("{not json").unwrap_err();
        assert_eq!(e.code, "FDI.3002");
        assert!(e.message.contains("task_detail"));
        let e = TaskDetail::parse(r#"{"sourceSelectedDatasource":{"isAddSql":true,"querySql":"select * from t where x > ${begin}"},"targetSelectedDatasource":{"targetTable":"b"}}"#).unwrap_err();
        assert_eq!(e.code, "FDI.3074");
        let e =
            TaskDetail::parse(r#"{"sourceSelectedDatasource":{"sourceTable":"a"}}"#).unwrap_err();
        assert!(e.message.contains("targetTable"), "{}", e.message);
        let e = TaskDetail::parse(r#"{"sourceSelectedDatasource":{"sourceTable":"a","where":[{"field_name":"x","op":"between","minValue":"1"}]},"targetSelectedDatasource":{"targetTable":"b"}}"#).unwrap_err();
        assert!(e.message.contains("where[0]"), "{}", e.message);
    }

    #[test]
    fn window_ops_are_engine_internal() {
        for op in ["inWindow", "inWindowOrNull", "InWindow"] {
            let raw = format!(
                r#"{{"sourceSelectedDatasource":{{"sourceTable":"a","where":[{{"field_name":"x","op":"{op}","minValue":"1","maxValue":"2"}}]}},"targetSelectedDatasource":{{"targetTable":"b"}}}}"#
            );
            assert!(TaskDetail::parse(&raw).is_err(), "{op} parsed");
        }
    }

    #[test]
    fn source_metadata_in_the_reference_shapes() {
        let nested = r#"{"sourceSelectedDatasource":{"sourceTable":"q","sourceMetaData":{"dataSource":[
            {"index":"0","name":"id","type":"Long","path":"order.id"},{"index":1,"name":"at","type":"Timestamp","format":"unix_ms","path":""}]}},
            "targetSelectedDatasource":{"targetTable":"t"}}"#;
        let flat = r#"{"source_selected_datasource":{"source_table":"q","meta_data":[
            {"name":"id","type":"Long","path":"order.id"},{"name":"at","type":"Timestamp","format":"unix_ms"}]},
            "target_selected_datasource":{"target_table":"t"}}"#;
        let a = TaskDetail::parse(nested).unwrap();
        assert_eq!(
            a.source.meta_data,
            TaskDetail::parse(flat).unwrap().source.meta_data
        );
        assert_eq!(a.source.meta_data.len(), 2);
        assert_eq!(a.source.meta_data[0].path.as_deref(), Some("order.id"));
        assert_eq!(a.source.meta_data[1].path, None);
        let empty = r#"{"sourceSelectedDatasource":{"sourceTable":"t","sourceMetaData":{"dataSource":"","isAddSql":false}},
            "targetSelectedDatasource":{"targetTable":"t"}}"#;
        assert!(
            TaskDetail::parse(empty)
                .unwrap()
                .source
                .meta_data
                .is_empty()
        );
    }
}
