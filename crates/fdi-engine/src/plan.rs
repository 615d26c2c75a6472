//! The adapter's work: check a task_detail against the live source and target and decide what
//! is read, how columns pair up, and how rows land.

use fdi_connector::window::{
    CursorKind, WindowSql, Zone, has_placeholders, null_cursor_filter, wall_clock, window_filter,
};
use fdi_connector::{
    ColumnInfo, ConnectorError, ErrorKind, MessageField, OrderBy, ReadSpec, SourceQuery, WriteMode,
    WriteSpec,
};
use fdi_types::{ApiError, ErrorCode, TaskDetail};

use crate::mapping::convertible;
use crate::{Endpoint, IncrementalWindow};

/// Which side a plan error is about (decides the step code of a failed run: 103 or 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Target,
}

#[derive(Debug, Clone)]
pub struct PlanError {
    pub side: Side,
    pub error: ApiError,
    /// The connector says trying again may help (a connection refused, a server error).
    pub retryable: bool,
}

const SRC: &str = "task_detail.sourceSelectedDatasource";
const DST: &str = "task_detail.targetSelectedDatasource";

fn field_error(side: Side, code: ErrorCode, field: &str, reason: impl AsRef<str>) -> PlanError {
    PlanError {
        side,
        error: ApiError::new(code, format!("{field}: {}", reason.as_ref())),
        retryable: false,
    }
}

fn connector_error(side: Side, field: &str, e: ConnectorError) -> PlanError {
    let code = match e.kind {
        ErrorKind::User => ErrorCode::InvalidParameters,
        ErrorKind::External => ErrorCode::TestConnectFailed,
        _ => ErrorCode::InvalidDatasource,
    };
    PlanError {
        retryable: e.retryable && e.kind == ErrorKind::External,
        ..field_error(side, code, field, e.message)
    }
}

/// One source column moved into one target column.
#[derive(Debug, Clone)]
pub struct ColumnPair {
    /// Index of the source column in the reader's batches.
    pub source_index: usize,
    pub source: ColumnInfo,
    pub target: ColumnInfo,
}

/// Everything a run needs, decided before any row moves.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    pub read: ReadSpec,
    pub pairs: Vec<ColumnPair>,
    pub batch_number: Option<ColumnInfo>,
    pub write: WriteSpec,
    pub upsert_keys: Vec<String>,
    /// The incremental window the read is limited to (None: a full read).
    pub window: Option<WindowPlan>,
    /// The column a split read cuts into ranges, where the read may be split.
    pub split: Option<SplitKey>,
}

/// How a table read may be split into ranges read at once (`crate::split`).
#[derive(Debug, Clone)]
pub struct SplitKey {
    /// An integer, non-null source column (the task's `splitPk`, else the table's one-column
    /// integer primary key).
    pub column: String,
    /// The task named it (`splitPk`): split whatever the table's size.
    pub asked: bool,
    /// Readers asked for (`splitCount`); None: the engine's default.
    pub count: Option<usize>,
}

impl ExecPlan {
    /// The source columns (name, index) that name a row in messages: the upsert key, else the
    /// source's primary key columns that are read.
    pub fn row_key_columns(&self) -> Vec<(String, usize)> {
        let by_upsert: Vec<_> = self
            .upsert_keys
            .iter()
            .filter_map(|k| self.pairs.iter().find(|p| &p.target.name == k))
            .map(|p| (p.source.name.clone(), p.source_index))
            .collect();
        if !by_upsert.is_empty() {
            return by_upsert;
        }
        self.pairs
            .iter()
            .filter(|p| p.source.primary)
            .map(|p| (p.source.name.clone(), p.source_index))
            .collect()
    }
}

/// How a run reads its incremental window.
#[derive(Debug, Clone)]
pub struct WindowPlan {
    /// For the reader-start step, e.g. `window [2024-03-01 08:00:00, 2024-03-01 09:00:00)
    /// GMT+08:00 on "updated_at"`.
    pub description: String,
    /// Counts the rows the window leaves out because their cursor is NULL (table sources
    /// when the window does not include them).
    pub null_count: Option<NullCount>,
}

/// `SELECT count(*)` of the rows with a NULL cursor that the task's filters select.
#[derive(Debug, Clone)]
pub struct NullCount {
    pub column: String,
    pub read: ReadSpec,
}

/// The window's zone, the source's SQL for it, and checked bounds.
struct WindowContext<'a> {
    window: &'a IncrementalWindow,
    sql: &'a dyn WindowSql,
    zone: Zone,
}

fn window_context<'a>(
    detail: &TaskDetail,
    source: &'a Endpoint,
    window: Option<&'a IncrementalWindow>,
) -> Result<Option<WindowContext<'a>>, PlanError> {
    let Some(window) = window else {
        return Ok(None);
    };
    let sql = source.connector.window_sql().ok_or_else(|| {
        field_error(
            Side::Source,
            ErrorCode::InvalidParameters,
            &format!("{SRC}.need_inc_migration"),
            format!(
                "incremental windows need a relational source, not {}",
                source.datasource_type
            ),
        )
    })?;
    let zone = Zone::parse(detail.source.time_zone.as_deref()).map_err(|e| {
        field_error(
            Side::Source,
            ErrorCode::InvalidParameters,
            &format!("{SRC}.timeZone"),
            e,
        )
    })?;
    if window.begin_ms > window.end_ms {
        return Err(PlanError {
            retryable: false,
            side: Side::Source,
            error: ApiError::new(
                ErrorCode::InvalidParameters,
                format!(
                    "incremental window: begin {} is after end {}",
                    window.begin_ms, window.end_ms
                ),
            ),
        });
    }
    for ms in [window.begin_ms, window.end_ms] {
        wall_clock(ms, &zone).map_err(|e| {
            field_error(
                Side::Source,
                ErrorCode::InvalidParameters,
                &format!("{SRC}.dataTimestamp"),
                format!("incremental window bound {e}"),
            )
        })?;
    }
    Ok(Some(WindowContext { window, sql, zone }))
}

impl WindowContext<'_> {
    fn describe(&self, on: &str) -> String {
        let w = |ms| wall_clock(ms, &self.zone).unwrap_or_else(|_| ms.to_string());
        format!(
            "window [{}, {}) {} {on}",
            w(self.window.begin_ms),
            w(self.window.end_ms),
            self.zone
        )
    }
}

fn qualified(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(s) if !s.trim().is_empty() && !table.contains('.') => format!("{}.{table}", s.trim()),
        _ => table.to_string(),
    }
}

fn find<'a>(cols: &'a [ColumnInfo], name: &str) -> Option<&'a ColumnInfo> {
    cols.iter()
        .find(|c| c.name == name)
        .or_else(|| cols.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
}

fn missing(kind: &str, name: &str, table: &str) -> String {
    format!("column \"{name}\" does not exist in {kind} table \"{table}\"")
}

/// Build the plan of a run; see [`crate::resolve_plan`].
pub async fn build(
    detail: &TaskDetail,
    source: &Endpoint,
    target: &Endpoint,
    options: &crate::EngineOptions,
    window: Option<&IncrementalWindow>,
    reader_name: &str,
) -> Result<ExecPlan, PlanError> {
    let batch_rows = options.batch_rows;
    let s = &detail.source;
    let t = &detail.target;
    // A message source: its columns are the fields its metadata declares.
    let message_fields: Option<Vec<MessageField>> = if s.meta_data.is_empty() {
        None
    } else {
        if window.is_some() {
            return Err(field_error(
                Side::Source,
                ErrorCode::InvalidParameters,
                &format!("{SRC}.need_inc_migration"),
                "a message source (sourceMetaData) has no incremental windows: it resumes from its acknowledged position",
            ));
        }
        let fields = s
            .meta_data
            .iter()
            .enumerate()
            .map(|(i, m)| MessageField::from_meta(i, m))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PlanError {
                retryable: false,
                side: Side::Source,
                error: ApiError::new(ErrorCode::InvalidParameters, e.message),
            })?;
        Some(fields)
    };
    let window = window_context(detail, source, window)?;

    // Source: a table, a custom query or a message source, and the columns it offers.
    let (source_name, source_all, query_sql) = if let Some(fields) = &message_fields {
        let name = s
            .table
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                field_error(
                    Side::Source,
                    ErrorCode::SourceOrTargetEmpty,
                    &format!("{SRC}.sourceTable"),
                    "required (the queue or topic to read)",
                )
            })?;
        (
            name.to_string(),
            fields.iter().map(MessageField::column).collect(),
            None,
        )
    } else if s.is_add_sql {
        let q = s.query_sql.clone().unwrap_or_default();
        if q.trim().is_empty() {
            return Err(field_error(
                Side::Source,
                ErrorCode::SqlEmpty,
                &format!("{SRC}.querySql"),
                "is empty",
            ));
        }
        let q = match &window {
            Some(w) if has_placeholders(&q) => w
                .sql
                .substitute_placeholders(&q, w.window.begin_ms, w.window.end_ms, &w.zone)
                .map_err(|e| {
                    field_error(
                        Side::Source,
                        ErrorCode::InvalidParameters,
                        &format!("{SRC}.querySql"),
                        e,
                    )
                })?,
            Some(_) => {
                return Err(field_error(
                    Side::Source,
                    ErrorCode::IncrSqlMissingPlaceholder,
                    &format!("{SRC}.querySql"),
                    "has no ${begin}/${end} placeholders, so an incremental window cannot be applied",
                ));
            }
            None if has_placeholders(&q) => {
                return Err(field_error(
                    Side::Source,
                    ErrorCode::NonIncrSqlHasPlaceholder,
                    &format!("{SRC}.querySql"),
                    "has ${begin}/${end} placeholders but this run has no incremental window",
                ));
            }
            None => q,
        };
        let cols = source.connector.test_sql(&q).await.map_err(|e| PlanError {
            retryable: e.retryable && e.kind == ErrorKind::External,
            side: Side::Source,
            error: ApiError::new(
                ErrorCode::InvalidSql,
                format!("{SRC}.querySql: {}", e.message),
            ),
        })?;
        ("(querySql)".to_string(), cols, Some(q))
    } else {
        let table = s
            .table
            .as_deref()
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| {
                field_error(
                    Side::Source,
                    ErrorCode::SourceOrTargetEmpty,
                    &format!("{SRC}.sourceTable"),
                    "required",
                )
            })?;
        let table = qualified(s.schema.as_deref(), table);
        let cols = source
            .connector
            .columns(&table)
            .await
            .map_err(|e| connector_error(Side::Source, &format!("{SRC}.sourceTable"), e))?;
        (table, cols, None)
    };

    let target_table = t
        .table
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            field_error(
                Side::Target,
                ErrorCode::SourceOrTargetEmpty,
                &format!("{DST}.targetTable"),
                "required",
            )
        })?;
    let target_table = qualified(t.schema.as_deref(), target_table);
    let target_all = if target.connector.schemaless_target() {
        // A queue or topic takes the source's columns (renamed by a mapping if it has one).
        let mut cols = source_all.clone();
        for m in &detail.mapping {
            if let Some(c) = source_all.iter().find(|c| c.name == m.source_column.trim()) {
                let mut renamed = c.clone();
                renamed.name = m.target_column.trim().to_string();
                cols.push(renamed);
            }
        }
        cols
    } else {
        target
            .connector
            .columns(&target_table)
            .await
            .map_err(|e| connector_error(Side::Target, &format!("{DST}.targetTable"), e))?
    };

    // Selected columns must exist.
    let mut selected_source = Vec::new();
    for (i, c) in s.columns.iter().enumerate() {
        let col = find(&source_all, &c.field_name).ok_or_else(|| {
            field_error(
                Side::Source,
                ErrorCode::InvalidParameters,
                &format!("{SRC}.sourceSelectedColumnList[{i}]"),
                missing("source", &c.field_name, &source_name),
            )
        })?;
        selected_source.push(col.clone());
    }
    let mut selected_target = Vec::new();
    for (i, c) in t.columns.iter().enumerate() {
        let col = find(&target_all, &c.field_name).ok_or_else(|| {
            field_error(
                Side::Target,
                ErrorCode::InvalidParameters,
                &format!("{DST}.targetSelectedColumnList[{i}]"),
                missing("target", &c.field_name, &target_table),
            )
        })?;
        selected_target.push(col.clone());
    }

    // Pairs (source column, target column, the field that defined them).
    let mut raw_pairs: Vec<(ColumnInfo, ColumnInfo, String)> = Vec::new();
    if !detail.mapping.is_empty() {
        for (i, m) in detail.mapping.iter().enumerate() {
            let field = format!("task_detail.mappingTable[{i}]");
            let src = find(&source_all, m.source_column.trim()).ok_or_else(|| {
                field_error(
                    Side::Source,
                    ErrorCode::InvalidMapping,
                    &format!("{field}.sourceColumn"),
                    missing("source", &m.source_column, &source_name),
                )
            })?;
            let dst = find(&target_all, m.target_column.trim()).ok_or_else(|| {
                field_error(
                    Side::Target,
                    ErrorCode::InvalidMapping,
                    &format!("{field}.targetColumn"),
                    missing("target", &m.target_column, &target_table),
                )
            })?;
            raw_pairs.push((src.clone(), dst.clone(), field));
        }
    } else if !selected_source.is_empty() && !selected_target.is_empty() {
        if selected_source.len() != selected_target.len() {
            return Err(field_error(
                Side::Target,
                ErrorCode::InvalidMapping,
                &format!("{DST}.targetSelectedColumnList"),
                format!(
                    "{} target columns for {} source columns (they pair by position)",
                    selected_target.len(),
                    selected_source.len()
                ),
            ));
        }
        for (i, (a, b)) in selected_source.iter().zip(&selected_target).enumerate() {
            raw_pairs.push((
                a.clone(),
                b.clone(),
                format!("{DST}.targetSelectedColumnList[{i}]"),
            ));
        }
    } else if !selected_source.is_empty() {
        for (i, a) in selected_source.iter().enumerate() {
            let field = format!("{SRC}.sourceSelectedColumnList[{i}]");
            let b = find(&target_all, &a.name).ok_or_else(|| {
                field_error(
                    Side::Target,
                    ErrorCode::InvalidMapping,
                    &field,
                    missing("target", &a.name, &target_table),
                )
            })?;
            raw_pairs.push((a.clone(), b.clone(), field));
        }
    } else if !selected_target.is_empty() {
        for (i, b) in selected_target.iter().enumerate() {
            let field = format!("{DST}.targetSelectedColumnList[{i}]");
            let a = find(&source_all, &b.name).ok_or_else(|| {
                field_error(
                    Side::Source,
                    ErrorCode::InvalidMapping,
                    &field,
                    missing("source", &b.name, &source_name),
                )
            })?;
            raw_pairs.push((a.clone(), b.clone(), field));
        }
    } else {
        for a in &source_all {
            if let Some(b) = find(&target_all, &a.name)
                && t.batch_number_column
                    .as_deref()
                    .is_none_or(|bn| !bn.eq_ignore_ascii_case(&b.name))
            {
                raw_pairs.push((a.clone(), b.clone(), format!("{SRC}.sourceTable")));
            }
        }
        if raw_pairs.is_empty() {
            return Err(PlanError {
                retryable: false,
                side: Side::Target,
                error: ApiError::new(
                    ErrorCode::MappingEmpty,
                    format!(
                        "task_detail.mappingTable: no column of the source has a same-named column in target table \"{target_table}\""
                    ),
                ),
            });
        }
    }

    // Types must be convertible; a target column is written once.
    for (i, (a, b, field)) in raw_pairs.iter().enumerate() {
        if !convertible(&a.arrow_type, &b.arrow_type) {
            return Err(field_error(
                Side::Target,
                ErrorCode::InvalidMapping,
                field,
                format!(
                    "source column \"{}\" ({}) cannot be converted to target column \"{}\" ({})",
                    a.name, a.native_type, b.name, b.native_type
                ),
            ));
        }
        if raw_pairs[..i]
            .iter()
            .any(|(_, prev, _)| prev.name == b.name)
        {
            return Err(field_error(
                Side::Target,
                ErrorCode::InvalidMapping,
                field,
                format!("target column \"{}\" is mapped twice", b.name),
            ));
        }
    }

    // The batch number column.
    let batch_number = match t
        .batch_number_column
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
    {
        None => None,
        Some(bn) => {
            let field = format!("{DST}.batchNumber");
            let col = find(&target_all, bn).ok_or_else(|| {
                field_error(
                    Side::Target,
                    ErrorCode::InvalidParameters,
                    &field,
                    missing("target", bn, &target_table),
                )
            })?;
            if raw_pairs.iter().any(|(_, b, _)| b.name == col.name) {
                return Err(field_error(
                    Side::Target,
                    ErrorCode::InvalidParameters,
                    &field,
                    format!("column \"{}\" is also a mapped target column", col.name),
                ));
            }
            if !convertible(&arrow::datatypes::DataType::Utf8, &col.arrow_type) {
                return Err(field_error(
                    Side::Target,
                    ErrorCode::InvalidParameters,
                    &field,
                    format!("column \"{}\" cannot hold a text id", col.name),
                ));
            }
            Some(col.clone())
        }
    };

    // Upsert keys: a target with a primary (or unique) key whose columns are all mapped is
    // loaded as upsert, so that updated source rows reach it (the reference's supportPartUpdate
    // only chooses between updating the changed columns and updating all of them). Without such
    // a key the load is a plain insert — an error when supportPartUpdate asks for updates.
    let mapped: Vec<&str> = raw_pairs.iter().map(|(_, b, _)| b.name.as_str()).collect();
    let primary: Vec<String> = target_all
        .iter()
        .filter(|c| c.primary)
        .map(|c| c.name.clone())
        .collect();
    let upsert_keys = if !primary.is_empty() && primary.iter().all(|k| mapped.contains(&k.as_str()))
    {
        primary
    } else if let Some(u) = target_all
        .iter()
        .find(|c| c.unique && mapped.contains(&c.name.as_str()))
    {
        vec![u.name.clone()]
    } else if t.support_part_update {
        return Err(field_error(
            Side::Target,
            ErrorCode::InvalidParameters,
            &format!("{DST}.supportPartUpdate"),
            format!(
                "target table \"{target_table}\" has no primary or unique key whose columns are all mapped"
            ),
        ));
    } else {
        Vec::new()
    };

    // Filters and order refer to source table columns.
    if query_sql.is_none() {
        for (i, w) in s.where_conditions.iter().enumerate() {
            if find(&source_all, &w.field_name).is_none() {
                return Err(field_error(
                    Side::Source,
                    ErrorCode::InvalidParameters,
                    &format!("{SRC}.where[{i}].field_name"),
                    missing("source", &w.field_name, &source_name),
                ));
            }
        }
        if let Some(o) = s.order_column.as_deref().filter(|o| !o.trim().is_empty())
            && find(&source_all, o).is_none()
        {
            return Err(field_error(
                Side::Source,
                ErrorCode::InvalidSort,
                &format!("{SRC}.orderColumn"),
                missing("source", o, &source_name),
            ));
        }
    }

    // What the reader reads: each needed source column once, in first-use order.
    let mut read_columns: Vec<ColumnInfo> = Vec::new();
    let mut pairs = Vec::with_capacity(raw_pairs.len());
    let reads_whole_query = query_sql.is_some();
    for (a, b, _) in raw_pairs {
        let idx = if reads_whole_query {
            // A custom query is read as written: every result column, in its order.
            source_all
                .iter()
                .position(|c| c.name == a.name)
                .ok_or_else(|| PlanError {
                    retryable: false,
                    side: Side::Source,
                    error: ApiError::internal(format!("query column {} vanished", a.name)),
                })?
        } else {
            match read_columns.iter().position(|c| c.name == a.name) {
                Some(i) => i,
                None => {
                    read_columns.push(a.clone());
                    read_columns.len() - 1
                }
            }
        };
        pairs.push(ColumnPair {
            source_index: idx,
            source: a,
            target: b,
        });
    }
    let task_filters: Vec<_> = s
        .where_conditions
        .iter()
        .map(|w| {
            let mut w = w.clone();
            if let Some(c) = find(&source_all, &w.field_name) {
                w.field_name = c.name.clone();
            }
            w
        })
        .collect();
    let mut filters = task_filters.clone();
    let window_plan = match &window {
        None => None,
        Some(w) if query_sql.is_some() => Some(WindowPlan {
            description: w.describe("in querySql"),
            null_count: None,
        }),
        Some(w) => {
            let field = format!("{SRC}.sourceDateColumn");
            let name = s
                .date_column
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    field_error(
                        Side::Source,
                        ErrorCode::InvalidParameters,
                        &field,
                        "required for an incremental run",
                    )
                })?;
            let col = find(&source_all, name).ok_or_else(|| {
                field_error(
                    Side::Source,
                    ErrorCode::InvalidParameters,
                    &field,
                    missing("source", name, &source_name),
                )
            })?;
            let kind = CursorKind::of(&col.arrow_type).ok_or_else(|| {
                field_error(
                    Side::Source,
                    ErrorCode::InvalidParameters,
                    &field,
                    format!(
                        "column \"{}\" ({}) is not a date, timestamp or text column",
                        col.name, col.native_type
                    ),
                )
            })?;
            let bound = |ms| {
                w.sql.bound_text(kind, ms, &w.zone).map_err(|e| {
                    field_error(
                        Side::Source,
                        ErrorCode::InvalidParameters,
                        &field,
                        format!("window bound {e}"),
                    )
                })
            };
            filters.push(window_filter(
                &col.name,
                bound(w.window.begin_ms)?,
                bound(w.window.end_ms)?,
                w.window.include_nulls,
            ));
            let null_count = (!w.window.include_nulls && col.nullable).then(|| {
                let mut f = task_filters.clone();
                f.push(null_cursor_filter(&col.name));
                NullCount {
                    column: col.name.clone(),
                    read: ReadSpec {
                        query: SourceQuery::Sql(w.sql.count_select(&source_name, &f)),
                        batch_rows: 16,
                    },
                }
            });
            let nulls = if w.window.include_nulls {
                format!(" (and rows where \"{}\" IS NULL)", col.name)
            } else {
                String::new()
            };
            Some(WindowPlan {
                description: w.describe(&format!("on \"{}\"{nulls}", col.name)),
                null_count,
            })
        }
    };
    let query = match (query_sql, message_fields) {
        (Some(q), _) => SourceQuery::Sql(q),
        (None, Some(fields)) => SourceQuery::Messages {
            source: source_name.clone(),
            fields: read_columns
                .iter()
                .filter_map(|c| fields.iter().find(|f| f.name == c.name).cloned())
                .collect(),
            follow: options.follow,
            reader_name: reader_name.to_string(),
        },
        (None, None) => SourceQuery::Table {
            table: source_name.clone(),
            columns: read_columns.iter().map(|c| c.name.clone()).collect(),
            filters,
            order_by: s
                .order_column
                .as_deref()
                .filter(|o| !o.trim().is_empty())
                .and_then(|o| find(&source_all, o))
                .map(|c| OrderBy {
                    column: c.name.clone(),
                    descending: s
                        .order_type
                        .as_deref()
                        .is_some_and(|t| t.eq_ignore_ascii_case("desc")),
                }),
        },
    };
    let split = split_key(s, &query, &source_all, &source_name)?;
    let mut write_columns: Vec<ColumnInfo> = pairs.iter().map(|p| p.target.clone()).collect();
    if let Some(bn) = &batch_number {
        write_columns.push(bn.clone());
    }
    // A target emptied in the same transaction holds nothing to collide with: plain bulk load.
    let mode = if upsert_keys.is_empty() || t.clear_table {
        WriteMode::Insert
    } else {
        WriteMode::Upsert {
            keys: upsert_keys.clone(),
            part_update: t.support_part_update,
        }
    };
    Ok(ExecPlan {
        read: ReadSpec { query, batch_rows },
        pairs,
        batch_number,
        write: WriteSpec {
            table: target_table,
            columns: write_columns,
            mode,
            clear_table: t.clear_table,
        },
        upsert_keys,
        window: window_plan,
        split,
    })
}

/// Whether an Arrow type is an integer (what a split key must be).
fn is_integer(t: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType::*;
    matches!(
        t,
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64
    )
}

/// The split key of a table read: the task's `splitPk` (checked: an integer, non-null column of
/// the source table), else the table's primary key when it is one integer column. None for
/// custom queries, ordered reads and message sources, and when `splitCount` is 1.
fn split_key(
    s: &fdi_types::SourceConfig,
    query: &SourceQuery,
    source_all: &[ColumnInfo],
    source_name: &str,
) -> Result<Option<SplitKey>, PlanError> {
    let count = s.split_count.map(|n| n.max(1) as usize);
    let SourceQuery::Table { order_by: None, .. } = query else {
        return Ok(None);
    };
    if count == Some(1) {
        return Ok(None);
    }
    if let Some(name) = s.split_pk.as_deref().filter(|n| !n.trim().is_empty()) {
        let field = format!("{SRC}.splitPk");
        let col = find(source_all, name).ok_or_else(|| {
            field_error(
                Side::Source,
                ErrorCode::InvalidParameters,
                &field,
                missing("source", name, source_name),
            )
        })?;
        if !is_integer(&col.arrow_type) || col.nullable {
            return Err(field_error(
                Side::Source,
                ErrorCode::InvalidParameters,
                &field,
                format!(
                    "{name} is {} {}: a split key must be an integer column without NULLs",
                    if col.nullable { "a nullable" } else { "a" },
                    col.native_type
                ),
            ));
        }
        return Ok(Some(SplitKey {
            column: col.name.clone(),
            asked: true,
            count,
        }));
    }
    let mut keys = source_all.iter().filter(|c| c.primary);
    Ok(match (keys.next(), keys.next()) {
        (Some(k), None) if is_integer(&k.arrow_type) && !k.nullable => Some(SplitKey {
            column: k.name.clone(),
            asked: false,
            count,
        }),
        _ => None,
    })
}
