//! Mappings of combination tasks (reference 5.3.17-5.3.21): one source table to one target table
//! with column pairs. Made by hand (`multi-tasks/{id}/mappings`, status MANUAL) or by name
//! (`multi-tasks/init` with `auto_mapping`, `multi-tasks/mappings/auto`, status AUTO), always
//! checked against the live columns of both datasources. See the module above for the rules.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use fdi_cdc::mapping::{self, ColumnPair, MappedColumn, MappingBody, MappingStatus, Selection};
use fdi_connector::change::TableId;
use fdi_connector::{ColumnInfo, Connector, ConnectorError, ErrorKind};
use fdi_types::ErrorCode;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ends, ExtInfo, load_multi, settings_of};
use crate::AppState;
use crate::backend::{self, DatasourceView, MappingView, TaskView};
use crate::discovery::connector_for;
use crate::error::{Error, Result};
use crate::extract::{FormOrJson, JsonBody, Params, PathParams};

/// At most this many source tables per auto-mapping (the reference: "最大支持2000张表").
pub(crate) const MAX_AUTO_TABLES: usize = 2000;

/// Column lookups in flight at once per datasource during an auto-mapping.
const COLUMN_LOOKUPS: usize = 8;

/// One end of a combination task, opened: its datasource, a connector, and the schema its
/// unqualified table names are in.
pub(crate) struct Side {
    pub ds: DatasourceView,
    pub conn: Arc<dyn Connector>,
    /// The request field that names this datasource (`source_datasource_id`, ...).
    pub field: &'static str,
    pub type_name: &'static str,
    pub default_schema: Option<String>,
}

impl Side {
    pub async fn open(s: &AppState, ds: DatasourceView, field: &'static str) -> Result<Side> {
        let t = s.catalog.parse_type(&ds.datasource_type)?;
        let conn = connector_for(s, t, &ds.content)?;
        Ok(Side {
            default_schema: default_schema(t.as_str(), &ds.content),
            ds,
            conn,
            field,
            type_name: t.as_str(),
        })
    }

    pub async fn close(&self) {
        self.conn.close().await;
    }

    /// A connector failure: the user's input (a missing table) is 400 `user_code` naming
    /// `user_field`; an unreachable datasource is 400 FDI.3016 naming this side's field with the
    /// driver's cause in `detail`.
    pub fn error(&self, e: ConnectorError, user_field: &str, user_code: ErrorCode) -> Error {
        match e.kind {
            ErrorKind::User => Error::new(user_code, format!("{user_field}: {}", e.message)),
            ErrorKind::External => Error::new(
                ErrorCode::TestConnectFailed,
                format!(
                    "{}: cannot reach datasource {:?} ({})",
                    self.field, self.ds.name, self.ds.id
                ),
            )
            .with_detail(e.message),
            ErrorKind::Internal | ErrorKind::Cancelled => Error::internal(e.message),
        }
    }

    /// `schema.table` of a name as the user or the connector spells it (unqualified: the
    /// datasource's default schema). 400 FDI.3037 naming `field` when there is no default.
    pub fn qualify(&self, field: &str, name: &str) -> Result<TableId> {
        let name = name.trim();
        match name.split_once('.') {
            Some((schema, table)) if !schema.is_empty() && !table.is_empty() => {
                Ok(TableId::new(schema, table))
            }
            _ if name.is_empty() || name.contains('.') => Err(Error::new(
                ErrorCode::InvalidMapping,
                format!("{field}: {name:?} is not schema.table"),
            )),
            _ => match &self.default_schema {
                Some(schema) => Ok(TableId::new(schema.clone(), name)),
                None => Err(Error::new(
                    ErrorCode::InvalidMapping,
                    format!(
                        "{field}: {name:?} is not schema.table (datasource {:?} names no default database)",
                        self.ds.name
                    ),
                )),
            },
        }
    }

    /// Every table the datasource lists, qualified.
    pub async fn tables(&self, field: &str) -> Result<Vec<TableId>> {
        let names = self
            .conn
            .list_tables(None)
            .await
            .map_err(|e| self.error(e, field, ErrorCode::InvalidParameters))?;
        Ok(names
            .iter()
            .filter_map(|n| self.qualify(field, n).ok())
            .collect())
    }

    async fn columns(&self, t: &TableId) -> std::result::Result<Vec<ColumnInfo>, ConnectorError> {
        self.conn.columns(&t.to_string()).await
    }

    /// Columns of `t`: a missing table is 400 FDI.3037 naming `field`.
    pub async fn columns_of(&self, field: &str, t: &TableId) -> Result<Vec<ColumnInfo>> {
        self.columns(t)
            .await
            .map_err(|e| self.error(e, field, ErrorCode::InvalidMapping))
    }

    fn same_datasource(&self, other: &Side) -> bool {
        self.ds.id == other.ds.id
    }
}

/// The schema of the datasource's unqualified table names (see [`default_schema`]).
pub(crate) fn schema_of(s: &AppState, ds: &DatasourceView) -> Result<Option<String>> {
    let t = s.catalog.parse_type(&ds.datasource_type)?;
    Ok(default_schema(t.as_str(), &ds.content))
}

/// The schema of a datasource's unqualified table names: PostgreSQL's `schema` (default
/// `public`), else the database (`database_name` / `database` / `db`, or the URL's path) — the
/// connectors' own rule for unqualified names.
fn default_schema(type_name: &str, content: &Value) -> Option<String> {
    let field = |k: &str| match content.get(k) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    if type_name == "POSTGRESQL" {
        return Some(field("schema").unwrap_or_else(|| "public".to_string()));
    }
    field("database_name")
        .or_else(|| field("database"))
        .or_else(|| field("db"))
        .or_else(|| {
            let url = field("url")?;
            let rest = url.split_once("://")?.1;
            let path = rest.split_once('/')?.1;
            let db = path.split(['?', '/']).next()?;
            (!db.is_empty()).then(|| db.to_string())
        })
}

// ---- JSON of mappings -------------------------------------------------------------------------

fn length(l: &Option<String>) -> &str {
    l.as_deref().unwrap_or("0")
}

fn column_json(c: &MappedColumn) -> Value {
    json!({
        "field_name": c.field_name,
        "field_type": c.field_type,
        "field_length": length(&c.field_length),
    })
}

fn pair_json(p: &ColumnPair) -> Value {
    json!({
        "source_column": p.source_column,
        "source_column_type": p.source_column_type,
        "source_column_length": length(&p.source_column_length),
        "target_column": p.target_column,
        "target_column_type": p.target_column_type,
        "target_column_length": length(&p.target_column_length),
    })
}

/// MultiTaskMappingElement (table 5-203), plus `mismatches`: why source columns are unpaired.
pub(crate) fn mapping_json(m: &MappingView) -> Value {
    let body = MappingBody::parse(&m.body).unwrap_or_else(|e| {
        tracing::warn!(task_id = m.task_id, mapping_id = m.id, error = %e, "unreadable mapping");
        MappingBody::default()
    });
    json!({
        "id": m.id,
        "source_table": m.source_table,
        "target_table": m.target_table,
        "updated_time": m.updated_ms,
        "mapping_percent": m.mapping_percent,
        "status": m.status,
        "source_columns": body.source_columns.iter().map(column_json).collect::<Vec<_>>(),
        "target_columns": body.target_columns.iter().map(column_json).collect::<Vec<_>>(),
        "mapping": body.mapping.iter().map(pair_json).collect::<Vec<_>>(),
        "mismatches": body.mismatches,
    })
}

/// A source table that auto-mapping did not map, and why.
#[derive(Debug, Clone)]
pub(crate) struct Unmapped {
    source_table: TableId,
    /// The table it would map to (prefix + name + suffix), when that is known.
    target_table: String,
    mismatches: Vec<String>,
}

impl Unmapped {
    pub fn json(&self) -> Value {
        json!({
            "source_table": self.source_table.to_string(),
            "target_table": self.target_table,
            "mapping_percent": 0,
            "mismatches": self.mismatches,
        })
    }
}

// ---- the mapper ---------------------------------------------------------------------------

fn row(
    task_id: &str,
    id: Option<&MappingView>,
    source: &TableId,
    target: &TableId,
    status: MappingStatus,
    percent: i32,
    body: &MappingBody,
) -> MappingView {
    let now = fdi_types::now_millis();
    MappingView {
        id: id.map(|m| m.id.clone()).unwrap_or_else(fdi_types::new_id),
        task_id: task_id.to_string(),
        source_table: source.to_string(),
        target_table: target.to_string(),
        status: status.as_str().to_string(),
        mapping_percent: percent,
        body: serde_json::to_string(body).expect("a mapping body serializes"),
        created_ms: id.map(|m| m.created_ms).unwrap_or(now),
        updated_ms: now,
    }
}

/// What to auto-map: source tables, where their targets may be, and how their names change.
pub(crate) struct AutoRequest<'a> {
    pub sources: Vec<TableId>,
    /// Only these target tables are candidates; None: the target's default schema, then the
    /// source table's own schema.
    pub target_selection: Option<&'a Selection>,
    pub prefix: &'a str,
    pub suffix: &'a str,
    /// The request field the source tables came from (errors name it).
    pub field: &'a str,
}

pub(crate) struct AutoOutcome {
    /// What to store (existing ids kept), in source table order.
    pub rows: Vec<MappingView>,
    pub unmapped: Vec<Unmapped>,
}

/// Map each source table to the target table named prefix + its name + suffix, pairing columns
/// by name and type. A source table whose target table is missing, whose columns pair with none
/// of the target's, which is its own target, or which the task maps by hand (MANUAL) is not
/// mapped, and reported why.
pub(crate) async fn auto_map(
    src: &Side,
    dst: &Side,
    task_id: &str,
    req: AutoRequest<'_>,
    existing: &[MappingView],
) -> Result<AutoOutcome> {
    let existing: HashMap<&str, &MappingView> = existing
        .iter()
        .map(|m| (m.source_table.as_str(), m))
        .collect();
    // Candidates: the target's tables (within its selection), by lowercase name.
    let mut listed = dst.tables("target_datasource_id").await?;
    if let Some(sel) = req.target_selection {
        listed.retain(|t| sel.matches(t));
        for t in &sel.tables {
            if !listed.contains(t) {
                listed.push(t.clone());
            }
        }
    }
    let mut by_name: HashMap<String, Vec<TableId>> = HashMap::new();
    for t in listed {
        by_name.entry(t.name.to_lowercase()).or_default().push(t);
    }
    let mut unmapped = Vec::new();
    // (source, target) pairs to look at.
    let mut planned: Vec<(TableId, TableId)> = Vec::new();
    for source in req.sources {
        let wanted = mapping::target_name(&source, req.prefix, req.suffix);
        if let Some(m) = existing.get(source.to_string().as_str())
            && MappingStatus::parse(&m.status) == Some(MappingStatus::Manual)
        {
            unmapped.push(Unmapped {
                source_table: source,
                target_table: m.target_table.clone(),
                mismatches: vec![format!(
                    "kept: mapped by hand (mapping {}); delete that mapping to map the table automatically",
                    m.id
                )],
            });
            continue;
        }
        match pick_target(src, dst, &source, &wanted, &by_name, req.target_selection) {
            Some(t) => planned.push((source, t)),
            None => {
                let would_be = match (req.target_selection, &dst.default_schema) {
                    (None, Some(schema)) => format!("{schema}.{wanted}"),
                    _ => wanted.clone(),
                };
                unmapped.push(Unmapped {
                    mismatches: vec![format!("no target table named {wanted:?}")],
                    source_table: source,
                    target_table: would_be,
                });
            }
        }
    }
    // Columns of both sides, a few lookups at a time per datasource, both at once.
    let target_set: Vec<TableId> = {
        let mut seen = HashSet::new();
        planned
            .iter()
            .filter(|(_, t)| seen.insert(t.clone()))
            .map(|(_, t)| t.clone())
            .collect()
    };
    let (source_cols, target_cols) = tokio::join!(
        lookup_columns(src, planned.iter().map(|(s, _)| s.clone()).collect()),
        lookup_columns(dst, target_set),
    );
    let mut rows = Vec::new();
    for (source, target) in planned {
        let s_cols = match source_cols.get(&source) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                return Err(src.error(clone_err(e), req.field, ErrorCode::InvalidMapping));
            }
            None => unreachable!("every planned source table was looked up"),
        };
        let t_cols = match target_cols.get(&target) {
            Some(Ok(c)) => c,
            Some(Err(e)) if e.kind == ErrorKind::User => {
                unmapped.push(Unmapped {
                    mismatches: vec![format!("target table {target}: {}", e.message)],
                    source_table: source,
                    target_table: target.to_string(),
                });
                continue;
            }
            Some(Err(e)) => {
                return Err(dst.error(clone_err(e), req.field, ErrorCode::InvalidMapping));
            }
            None => unreachable!("every planned target table was looked up"),
        };
        let m = mapping::auto_map(s_cols, t_cols);
        if m.pairs.is_empty() {
            let mut mismatches = m.mismatches;
            if s_cols.is_empty() {
                mismatches.push("the source table has no columns".to_string());
            }
            unmapped.push(Unmapped {
                source_table: source,
                target_table: target.to_string(),
                mismatches,
            });
            continue;
        }
        let body = MappingBody {
            source_columns: s_cols.iter().map(MappedColumn::from).collect(),
            target_columns: t_cols.iter().map(MappedColumn::from).collect(),
            mapping: m.pairs,
            mismatches: m.mismatches,
        };
        let old = existing.get(source.to_string().as_str()).copied();
        rows.push(row(
            task_id,
            old,
            &source,
            &target,
            MappingStatus::Auto,
            m.percent,
            &body,
        ));
    }
    unmapped.sort_by(|a, b| a.source_table.cmp(&b.source_table));
    Ok(AutoOutcome { rows, unmapped })
}

fn clone_err(e: &ConnectorError) -> ConnectorError {
    ConnectorError {
        kind: e.kind,
        message: e.message.clone(),
        retryable: e.retryable,
    }
}

/// The target of `source` named `wanted`: the exact name before a case-insensitive match; among
/// several schemas, the target's default schema, then the source's schema, then the first by
/// name. Without a target selection only those two schemas are candidates. Never the source
/// table itself.
fn pick_target(
    src: &Side,
    dst: &Side,
    source: &TableId,
    wanted: &str,
    by_name: &HashMap<String, Vec<TableId>>,
    selection: Option<&Selection>,
) -> Option<TableId> {
    let same_ds = src.same_datasource(dst);
    let mut found: Vec<&TableId> = by_name
        .get(&wanted.to_lowercase())?
        .iter()
        .filter(|t| !(same_ds && *t == source))
        .filter(|t| {
            selection.is_some()
                || Some(&t.schema) == dst.default_schema.as_ref()
                || t.schema == source.schema
        })
        .collect();
    let rank = |t: &TableId| {
        (
            t.name != wanted,
            Some(&t.schema) != dst.default_schema.as_ref(),
            t.schema != source.schema,
            t.schema.clone(),
        )
    };
    found.sort_by_key(|t| rank(t));
    found.first().map(|t| (*t).clone())
}

async fn lookup_columns(
    side: &Side,
    tables: Vec<TableId>,
) -> HashMap<TableId, std::result::Result<Vec<ColumnInfo>, ConnectorError>> {
    let conn = side.conn.clone();
    futures::stream::iter(tables)
        .map(move |t| {
            let conn = conn.clone();
            async move {
                let c = conn.columns(&t.to_string()).await;
                (t, c)
            }
        })
        .buffer_unordered(COLUMN_LOOKUPS)
        .collect()
        .await
}

// ---- manual mappings ----------------------------------------------------------------------

/// One pair of a request's `mapping_columns` (MappingInfo): the types and lengths are taken
/// from the live columns, not from the request.
#[derive(Deserialize, Clone)]
pub struct PairIn {
    #[serde(default)]
    source_column: Option<String>,
    #[serde(default)]
    target_column: Option<String>,
}

/// The column of `cols` named `name`: exact, else the one matching case-insensitively.
fn find_column<'a>(cols: &'a [ColumnInfo], name: &str) -> Option<&'a ColumnInfo> {
    cols.iter().find(|c| c.name == name).or_else(|| {
        let mut it = cols.iter().filter(|c| c.name.eq_ignore_ascii_case(name));
        match (it.next(), it.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    })
}

/// A mapping made by hand: the given pairs checked against the live columns (both columns exist,
/// the target's type can hold the source's, no target column twice), or, without pairs, the
/// columns paired by name. Returns the percent (share of the source columns paired) and body.
async fn manual_body(
    src: &Side,
    dst: &Side,
    source: &TableId,
    target: &TableId,
    pairs: Option<&[PairIn]>,
) -> Result<(i32, MappingBody)> {
    let s_cols = src.columns_of("source_table", source).await?;
    let t_cols = dst.columns_of("target_table", target).await?;
    let (pairs, mismatches) = match pairs.filter(|p| !p.is_empty()) {
        None => {
            let m = mapping::auto_map(&s_cols, &t_cols);
            if m.pairs.is_empty() {
                return Err(Error::new(
                    ErrorCode::InvalidMapping,
                    format!(
                        "mapping_columns: no column of {source} matches one of {target} by name and type ({}); give mapping_columns",
                        m.mismatches.join("; ")
                    ),
                ));
            }
            (m.pairs, m.mismatches)
        }
        Some(given) => {
            let mut out: Vec<ColumnPair> = Vec::with_capacity(given.len());
            for (i, p) in given.iter().enumerate() {
                let f = |x: &str| format!("mapping_columns[{i}].{x}");
                let sname = p
                    .source_column
                    .as_deref()
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorCode::InvalidMapping,
                            format!("{}: is required", f("source_column")),
                        )
                    })?;
                let tname = p
                    .target_column
                    .as_deref()
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorCode::InvalidMapping,
                            format!("{}: is required", f("target_column")),
                        )
                    })?;
                let s = find_column(&s_cols, sname).ok_or_else(|| {
                    Error::new(
                        ErrorCode::InvalidMapping,
                        format!("{}: {source} has no column {sname:?}", f("source_column")),
                    )
                })?;
                let t = find_column(&t_cols, tname).ok_or_else(|| {
                    Error::new(
                        ErrorCode::InvalidMapping,
                        format!("{}: {target} has no column {tname:?}", f("target_column")),
                    )
                })?;
                if !mapping::compatible(&s.arrow_type, &t.arrow_type) {
                    return Err(Error::new(
                        ErrorCode::InvalidMapping,
                        format!(
                            "{}: {target}.{} ({}) cannot hold {source}.{} ({})",
                            f("target_column"),
                            t.name,
                            t.native_type,
                            s.name,
                            s.native_type
                        ),
                    ));
                }
                if let Some(j) = out.iter().position(|q| q.target_column == t.name) {
                    return Err(Error::new(
                        ErrorCode::InvalidMapping,
                        format!(
                            "{}: {:?} is already the target of mapping_columns[{j}]",
                            f("target_column"),
                            t.name
                        ),
                    ));
                }
                out.push(ColumnPair {
                    source_column: s.name.clone(),
                    source_column_type: s.native_type.clone(),
                    source_column_length: s.length.map(|l| l.to_string()),
                    target_column: t.name.clone(),
                    target_column_type: t.native_type.clone(),
                    target_column_length: t.length.map(|l| l.to_string()),
                });
            }
            let paired: HashSet<&str> = out.iter().map(|p| p.source_column.as_str()).collect();
            let mut mismatches: Vec<String> = s_cols
                .iter()
                .filter(|c| !paired.contains(c.name.as_str()))
                .map(|c| format!("{}: not mapped", c.name))
                .collect();
            mismatches.extend(fdi_cdc::mapping::key_notes(&t_cols, &out));
            (out, mismatches)
        }
    };
    let paired: HashSet<&str> = pairs.iter().map(|p| p.source_column.as_str()).collect();
    let percent = if s_cols.is_empty() {
        0
    } else {
        (paired.len() * 100 / s_cols.len()) as i32
    };
    Ok((
        percent,
        MappingBody {
            source_columns: s_cols.iter().map(MappedColumn::from).collect(),
            target_columns: t_cols.iter().map(MappedColumn::from).collect(),
            mapping: pairs,
            mismatches,
        },
    ))
}

/// POST / PUT body of one mapping (table 5-226). `source_columns`, `target_columns` and
/// `ext_info` are accepted and ignored: the columns are read from the datasources.
#[derive(Deserialize)]
pub struct MappingIn {
    #[serde(default, alias = "source_data_source_id")]
    source_datasource_id: Option<String>,
    #[serde(default, alias = "target_data_source_id")]
    target_datasource_id: Option<String>,
    #[serde(default)]
    source_table: Option<String>,
    #[serde(default)]
    target_table: Option<String>,
    #[serde(default, alias = "mapping")]
    mapping_columns: Option<Vec<PairIn>>,
    #[serde(default)]
    #[allow(dead_code)]
    ext_info: Option<ExtInfo>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|x| !x.is_empty())
}

/// The body's datasource ids, when given, must be the task's (400 FDI.3037 naming the field).
fn check_datasources(b: &MappingIn, t: &TaskView) -> Result<()> {
    for (field, given, own) in [
        (
            "source_datasource_id",
            &b.source_datasource_id,
            &t.source_datasource_id,
        ),
        (
            "target_datasource_id",
            &b.target_datasource_id,
            &t.target_datasource_id,
        ),
    ] {
        if let Some(g) = non_empty(given)
            && g != own
        {
            return Err(Error::new(
                ErrorCode::InvalidMapping,
                format!("{field}: {g:?} is not the task's datasource ({own})"),
            ));
        }
    }
    Ok(())
}

fn not_self(src: &Side, dst: &Side, source: &TableId, target: &TableId) -> Result<()> {
    if src.same_datasource(dst) && source == target {
        return Err(Error::new(
            ErrorCode::InvalidMapping,
            format!("target_table: {target} is the source table itself"),
        ));
    }
    Ok(())
}

pub async fn create(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<MappingIn>,
) -> Result<Json<Value>> {
    let t = load_multi(&s, &p).await?;
    check_datasources(&b, &t)?;
    let source_name = non_empty(&b.source_table)
        .ok_or_else(|| Error::new(ErrorCode::InvalidMapping, "source_table: is required"))?
        .to_string();
    let existing = backend::mappings_all(&s, &t.id).await?;
    let ends = Ends::load(&s, p.project(), p.instance(), &t).await?;
    let (src, dst) = ends.open(&s).await?;
    let (src, dst) = (&src, &dst);
    let r = async {
        let source = src.qualify("source_table", &source_name)?;
        if let Some(m) = existing
            .iter()
            .find(|m| m.source_table == source.to_string())
        {
            return Err(Error::new(
                ErrorCode::InvalidMapping,
                format!(
                    "source_table: {source} is already mapped (mapping {}); change it with PUT mappings/{}",
                    m.id, m.id
                ),
            ));
        }
        let target = match non_empty(&b.target_table) {
            Some(n) => dst.qualify("target_table", n)?,
            None => dst.qualify("target_table", &source.name)?,
        };
        not_self(src, dst, &source, &target)?;
        let (percent, body) =
            manual_body(src, dst, &source, &target, b.mapping_columns.as_deref()).await?;
        Ok(row(
            &t.id,
            None,
            &source,
            &target,
            MappingStatus::Manual,
            percent,
            &body,
        ))
    }
    .await;
    store_mapping(&s, src, dst, r).await
}

/// Close both sides, then store the mapping made with them and answer its id.
async fn store_mapping(
    s: &AppState,
    src: &Side,
    dst: &Side,
    made: Result<MappingView>,
) -> Result<Json<Value>> {
    src.close().await;
    dst.close().await;
    let row = made?;
    backend::mappings_put(s, std::slice::from_ref(&row)).await?;
    Ok(Json(json!({ "mapping_id": row.id })))
}

async fn load_mapping(s: &AppState, p: &PathParams, t: &TaskView) -> Result<MappingView> {
    let id = p.get("mapping_id");
    backend::mapping_get(s, &t.id, id).await?.ok_or_else(|| {
        Error::new(
            ErrorCode::NotFound,
            format!("mapping_id: {id} is not a mapping of task {}", t.id),
        )
    })
}

pub async fn update(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<MappingIn>,
) -> Result<Json<Value>> {
    let t = load_multi(&s, &p).await?;
    let old = load_mapping(&s, &p, &t).await?;
    check_datasources(&b, &t)?;
    let old_body = MappingBody::parse(&old.body).map_err(Error::internal)?;
    let ends = Ends::load(&s, p.project(), p.instance(), &t).await?;
    let (src, dst) = ends.open(&s).await?;
    let (src, dst) = (&src, &dst);
    let r = async {
        let source = src.qualify("source_table", &old.source_table)?;
        if let Some(n) = non_empty(&b.source_table)
            && src.qualify("source_table", n)? != source
        {
            return Err(Error::new(
                ErrorCode::InvalidMapping,
                format!(
                    "source_table: a mapping's source table cannot change (this one maps {source}); delete it and add another"
                ),
            ));
        }
        let old_target = dst.qualify("target_table", &old.target_table)?;
        let target = match non_empty(&b.target_table) {
            Some(n) => dst.qualify("target_table", n)?,
            None => old_target.clone(),
        };
        not_self(src, dst, &source, &target)?;
        // Pairs: the given ones; else the stored ones (checked again) while the target stays;
        // else paired by name against the new target.
        let kept: Vec<PairIn>;
        let pairs = match b.mapping_columns.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Some(p),
            None if target == old_target => {
                kept = old_body
                    .mapping
                    .iter()
                    .map(|p| PairIn {
                        source_column: Some(p.source_column.clone()),
                        target_column: Some(p.target_column.clone()),
                    })
                    .collect();
                Some(kept.as_slice())
            }
            None => None,
        };
        let (percent, body) = manual_body(src, dst, &source, &target, pairs).await?;
        Ok(row(
            &t.id,
            Some(&old),
            &source,
            &target,
            MappingStatus::Manual,
            percent,
            &body,
        ))
    }
    .await;
    store_mapping(&s, src, dst, r).await
}

pub async fn delete(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    let t = load_multi(&s, &p).await?;
    let m = load_mapping(&s, &p, &t).await?;
    backend::mapping_delete(&s, &t.id, &m.id).await?;
    Ok(Json(json!({ "mapping_id": m.id })))
}

/// GET mappings: the task's element (as `multi-tasks/init` answers it) with `mappings` the first
/// 10 of the page, plus the list convention `{total, size, entities}` with the whole page.
pub async fn list(State(s): State<AppState>, p: PathParams, q: Params) -> Result<Json<Value>> {
    let t = load_multi(&s, &p).await?;
    let (skip, limit) = q.page_paging(10, 1000)?;
    let needle = |k: &str| q.str(k).map(|v| v.to_lowercase());
    let (source_f, target_f, either_f) = (
        needle("source_table"),
        needle("target_table"),
        needle("table_name"),
    );
    let ds_mismatch = [
        ("source_datasource_id", &t.source_datasource_id),
        ("target_datasource_id", &t.target_datasource_id),
    ]
    .iter()
    .any(|(k, own)| q.str(k).is_some_and(|v| v != own.as_str()));
    let (total, page) = if ds_mismatch {
        (0, Vec::new())
    } else if source_f.is_none() && target_f.is_none() && either_f.is_none() {
        backend::mappings_page(&s, &t.id, skip, limit).await?
    } else {
        let has =
            |v: &str, n: &Option<String>| n.as_ref().is_none_or(|n| v.to_lowercase().contains(n));
        let all: Vec<MappingView> = backend::mappings_all(&s, &t.id)
            .await?
            .into_iter()
            .filter(|m| {
                has(&m.source_table, &source_f)
                    && has(&m.target_table, &target_f)
                    && (has(&m.source_table, &either_f) || has(&m.target_table, &either_f))
            })
            .collect();
        let total = all.len() as u64;
        let page = all
            .into_iter()
            .skip(skip.max(0) as usize)
            .take(limit.max(0) as usize)
            .collect();
        (total, page)
    };
    let ends = Ends::load(&s, p.project(), p.instance(), &t).await?;
    let settings = settings_of(&t)?;
    let entities: Vec<Value> = page.iter().map(mapping_json).collect();
    let mut v = ends.element_json(&t, &settings, &page[..page.len().min(10)], total);
    v["total"] = json!(total);
    v["size"] = json!(entities.len());
    v["entities"] = Value::Array(entities);
    Ok(Json(v))
}

// ---- POST /v2/{project_id}/fdi/multi-tasks/mappings/auto ----------------------------------

/// The auto-mapping body (table 5-263, "FormData"): JSON or a urlencoded form.
#[derive(Deserialize)]
pub struct AutoIn {
    #[serde(default, alias = "source_datasource_id")]
    source_ds_id: Option<String>,
    #[serde(default, alias = "target_datasource_id")]
    target_ds_id: Option<String>,
    #[serde(default)]
    source_group: Option<String>,
    #[serde(default)]
    target_group: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
    /// 1 REALTIME, 2 TIMING (a number, or its text in a form).
    #[serde(default)]
    task_type: Option<Value>,
    #[serde(default)]
    mapping_prefix: Option<String>,
    #[serde(default)]
    mapping_suffix: Option<String>,
    #[serde(default)]
    source_select_mapping_tables: Option<String>,
    #[serde(default)]
    target_select_mapping_tables: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    ext_info: Option<Value>,
}

fn group(field: &str, v: &Option<String>, default: &str) -> Result<String> {
    match non_empty(v) {
        None => Ok(default.to_string()),
        Some(g) if g.chars().count() > 64 => Err(Error::field(field, "at most 64 characters")),
        Some(g) => Ok(g.to_string()),
    }
}

/// A prefix or suffix: characters a table name can carry unquoted (letters, digits, `_`, `$`).
fn affix(field: &str, v: &Option<String>) -> Result<String> {
    let a = v.as_deref().unwrap_or("").trim().to_string();
    if a.chars().count() > 64 {
        return Err(Error::field(field, "at most 64 characters"));
    }
    if let Some(c) = a
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '$')))
    {
        return Err(Error::field(
            field,
            format!("{c:?} cannot be part of a table name here (letters, digits, _ or $)"),
        ));
    }
    Ok(a)
}

pub async fn auto(
    State(s): State<AppState>,
    p: PathParams,
    FormOrJson(b): FormOrJson<AutoIn>,
) -> Result<Json<Value>> {
    let task_id = non_empty(&b.task_id).ok_or_else(|| {
        Error::new(
            ErrorCode::TaskIdEmpty,
            "task_id: is required (this path names no instance: the task says which); call multi-tasks/init first to allocate one",
        )
    })?;
    let (project, instance, t) = backend::task_by_id(&s, task_id)
        .await?
        .filter(|(proj, _, t)| proj == p.project() && t.kind.is_multi())
        .ok_or_else(|| {
            Error::new(
                ErrorCode::TaskNotFound,
                format!(
                    "task_id: {task_id} is not a combination task of project {}",
                    p.project()
                ),
            )
        })?;
    for (field, given, own) in [
        ("source_ds_id", &b.source_ds_id, &t.source_datasource_id),
        ("target_ds_id", &b.target_ds_id, &t.target_datasource_id),
    ] {
        match non_empty(given) {
            None => {
                return Err(Error::new(
                    ErrorCode::SourceOrTargetEmpty,
                    format!("{field}: is required"),
                ));
            }
            Some(g) if g != own => {
                return Err(Error::new(
                    ErrorCode::InvalidMapping,
                    format!("{field}: {g:?} is not the datasource of task {task_id} ({own})"),
                ));
            }
            Some(_) => {}
        }
    }
    match &b.task_type {
        None | Some(Value::Null) => {}
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(x) if x.trim().is_empty() => Some(1),
                Value::String(x) => x.trim().parse::<i64>().ok(),
                _ => None,
            };
            match n {
                Some(1) => {}
                Some(2) => {
                    return Err(Error::new(
                        ErrorCode::InvalidTaskType,
                        "task_type: 2 (TIMING): combination tasks are REALTIME (1) only",
                    ));
                }
                _ => {
                    return Err(Error::new(
                        ErrorCode::InvalidTaskType,
                        format!("task_type: {v} (expected 1, REALTIME)"),
                    ));
                }
            }
        }
    }
    let source_group = group("source_group", &b.source_group, "SOURCE_GROUP1")?;
    let target_group = group("target_group", &b.target_group, "TARGET_GROUP1")?;
    let prefix = affix("mapping_prefix", &b.mapping_prefix)?;
    let suffix = affix("mapping_suffix", &b.mapping_suffix)?;
    const SRC_SEL: &str = "source_select_mapping_tables";
    const DST_SEL: &str = "target_select_mapping_tables";
    let source_sel = non_empty(&b.source_select_mapping_tables)
        .map(|v| Selection::parse(SRC_SEL, v))
        .transpose()
        .map_err(|e| Error::new(ErrorCode::InvalidMapping, e))?;
    let target_sel = non_empty(&b.target_select_mapping_tables)
        .map(|v| Selection::parse(DST_SEL, v))
        .transpose()
        .map_err(|e| Error::new(ErrorCode::InvalidMapping, e))?;
    let existing = backend::mappings_all(&s, &t.id).await?;
    let ends = Ends::load(&s, &project, &instance, &t).await?;
    let (src, dst) = ends.open(&s).await?;
    let (src, dst) = (&src, &dst);
    let r = async {
        // The selected source tables: the listed ones the selection matches, and the ones it
        // names (checked when their columns are read).
        let mut sources: Vec<TableId> = src.tables(SRC_SEL).await?;
        if let Some(sel) = &source_sel {
            sources.retain(|t| sel.matches(t));
            for t in &sel.tables {
                if !sources.contains(t) {
                    // Not listed (another database): it must exist.
                    src.columns_of(SRC_SEL, t).await?;
                    sources.push(t.clone());
                }
            }
        }
        sources.sort();
        if sources.len() > MAX_AUTO_TABLES {
            return Err(Error::new(
                ErrorCode::InvalidMapping,
                format!(
                    "{SRC_SEL}: selects {} tables; at most {MAX_AUTO_TABLES} per auto-mapping (select fewer, e.g. schema.t1,schema.t2, and call again)",
                    sources.len()
                ),
            ));
        }
        if sources.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidMapping,
                format!("{SRC_SEL}: selects no table of datasource {:?}", src.ds.name),
            ));
        }
        let req = AutoRequest {
            sources,
            target_selection: target_sel.as_ref(),
            prefix: &prefix,
            suffix: &suffix,
            field: SRC_SEL,
        };
        auto_map(src, dst, &t.id, req, &existing).await
    }
    .await;
    src.close().await;
    dst.close().await;
    let outcome = r?;
    backend::mappings_put(&s, &outcome.rows).await?;
    let mut settings = settings_of(&t)?;
    if let Some(sel) = non_empty(&b.source_select_mapping_tables) {
        // New source tables this selection matches are added while the task runs (ADD).
        settings.selection = Some(sel.to_string());
        settings.target_prefix = Some(prefix.clone()).filter(|x| !x.is_empty());
        settings.target_suffix = Some(suffix.clone()).filter(|x| !x.is_empty());
        let t = TaskView {
            task_detail: serde_json::to_string(&settings).map_err(Error::internal)?,
            updated_ms: fdi_types::now_millis(),
            ..t.clone()
        };
        backend::multi_update(&s, &project, &instance, &t, "task_id").await?;
    }
    let ext = ends.ext_info(&settings);
    let (src, dst) = (ends.source(), ends.target());
    let common = json!({
        "project_id": project,
        "task_id": t.id,
        "source_ds_id": t.source_datasource_id,
        "target_ds_id": t.target_datasource_id,
        "source_group": source_group,
        "target_group": target_group,
        "ext_info": ext,
    });
    let mappings: Vec<Value> = outcome
        .rows
        .iter()
        .map(|m| {
            let mut v = mapping_json(m);
            for (k, x) in common.as_object().expect("an object") {
                v[k] = x.clone();
            }
            v
        })
        .collect();
    Ok(Json(json!([{
        "task_id": t.id,
        "source_ds_id": t.source_datasource_id,
        "target_ds_id": t.target_datasource_id,
        "source_ds_name": src.map(|d| d.name.as_str()),
        "target_ds_name": dst.map(|d| d.name.as_str()),
        "source_ds_type": src.map(|d| d.datasource_type.as_str()),
        "target_ds_type": dst.map(|d| d.datasource_type.as_str()),
        "source_app_id": src.map(|d| d.app_id.as_str()),
        "target_app_id": dst.map(|d| d.app_id.as_str()),
        "source_instance_id": instance,
        "target_instance_id": instance,
        "source_group": source_group,
        "target_group": target_group,
        "ext_info": ext,
        "total": mappings.len(),
        "mapping": mappings,
        "unmapped_tables": outcome.unmapped.iter().map(Unmapped::json).collect::<Vec<_>>(),
    }])))
}
