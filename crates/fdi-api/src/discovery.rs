//! Datasource discovery (reference 5.1.6-5.1.9): tables, columns, test-connect, test-sql.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use fdi_connector::{ColumnInfo, Connector, ConnectorError, ErrorKind};
use fdi_types::{DatasourceType, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::datasources::{self, content_to_store};
use crate::error::{Error, Result};
use crate::extract::{JsonBody, Params, PathParams};

/// Build a connector for a datasource's (clear) content: 400 naming the field when the content
/// does not make one.
pub(crate) fn connector_for(
    s: &AppState,
    t: DatasourceType,
    content: &Value,
) -> Result<Arc<dyn Connector>> {
    s.catalog
        .open_connector(t, content)
        .map_err(|e| Error(e.into()))
}

async fn stored_connector(
    s: &AppState,
    p: &PathParams,
) -> Result<(Arc<dyn Connector>, DatasourceType)> {
    let d = datasources::load(s, p).await?;
    let t = s.catalog.parse_type(&d.datasource_type)?;
    Ok((connector_for(s, t, &d.content)?, t))
}

/// A connector failure during discovery: the user's input (missing table, bad SQL) is a 400
/// naming `field`; an unreachable datasource is 400 FDI.3016 with the driver's cause in `detail`.
fn discovery_error(e: ConnectorError, field: &str, user_code: ErrorCode) -> Error {
    match e.kind {
        ErrorKind::User => {
            Error::new(user_code, format!("{field}: {}", e.message)).with_detail(e.message)
        }
        ErrorKind::External => Error::new(ErrorCode::TestConnectFailed, "").with_detail(e.message),
        ErrorKind::Internal | ErrorKind::Cancelled => Error::internal(e.message),
    }
}

fn direction(q: &Params) -> Result<()> {
    match q.str("direction_type").map(|d| d.to_ascii_uppercase()) {
        None => Ok(()),
        Some(d) if d == "SOURCE" || d == "TARGET" => Ok(()),
        Some(d) => Err(Error::field(
            "direction_type",
            format!("{d:?} (expected SOURCE or TARGET)"),
        )),
    }
}

pub async fn tables(State(s): State<AppState>, p: PathParams, q: Params) -> Result<Json<Value>> {
    direction(&q)?;
    let (c, _) = stored_connector(&s, &p).await?;
    let r = c.list_tables(q.str("filter")).await;
    c.close().await;
    let tables = r.map_err(|e| discovery_error(e, "filter", ErrorCode::InvalidParameters))?;
    Ok(Json(json!({ "tables": tables })))
}

/// ColumnInfo (reference table 5-60): flags and numbers as strings, as the reference types them
/// (`"1"`/`"0"` like its task_detail examples).
pub(crate) fn column_json(c: &ColumnInfo) -> Value {
    let flag = |b: bool| if b { "1" } else { "0" };
    json!({
        "field_name": c.name,
        "field_type": c.native_type,
        // Always a string: "0" where the type has no length (the reference's TIMESTAMP(6)).
        "field_length": c.length.unwrap_or(0).to_string(),
        "null_able": flag(c.nullable),
        "is_partition": false,
        "primary": flag(c.primary),
        "unique": flag(c.unique),
        "decimal_digits": c.decimal_digits.map(|d| d.to_string()),
    })
}

pub async fn columns(State(s): State<AppState>, p: PathParams, q: Params) -> Result<Json<Value>> {
    direction(&q)?;
    let table = q
        .str("table_name")
        .ok_or_else(|| Error::field("table_name", "is required"))?
        .to_string();
    let (c, _) = stored_connector(&s, &p).await?;
    let r = c.columns(&table).await;
    c.close().await;
    let cols = r.map_err(|e| discovery_error(e, "table_name", ErrorCode::InvalidParameters))?;
    Ok(Json(
        json!({ "columns": cols.iter().map(column_json).collect::<Vec<_>>() }),
    ))
}

/// test-connect body: a datasource definition; every part optional (the stored one fills in).
#[derive(Deserialize, Default)]
pub struct TestConnectBody {
    #[serde(default)]
    #[allow(dead_code)]
    datasource_name: Option<String>,
    #[serde(default)]
    datasource_type: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    app_id: Option<String>,
    #[serde(default)]
    content: Option<Map<String, Value>>,
}

pub async fn test_connect(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<TestConnectBody>,
) -> Result<Json<Value>> {
    let stored = datasources::load(&s, &p).await?;
    let t = match b.datasource_type.as_deref() {
        Some(t) => s.catalog.parse_type(t)?,
        None => s.catalog.parse_type(&stored.datasource_type)?,
    };
    let same_type = (stored.datasource_type == t.as_str()).then_some(&stored.content);
    let content = match b.content {
        None if same_type.is_some() => stored.content.clone(),
        None => {
            return Err(Error::field(
                "content",
                "is required when datasource_type changes",
            ));
        }
        Some(c) => content_to_store(&s, t, c, same_type)?,
    };
    let c = connector_for(&s, t, &content)?;
    let r = c.test_connect().await;
    c.close().await;
    match r {
        Ok(()) => Ok(Json(json!({ "result": true }))),
        Err(e) => Err(Error::new(ErrorCode::TestConnectFailed, "").with_detail(e.message)),
    }
}

#[derive(Deserialize)]
pub struct TestSqlBody {
    #[serde(default)]
    sql: Option<String>,
}

pub async fn test_sql(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<TestSqlBody>,
) -> Result<Json<Value>> {
    let sql = b.sql.unwrap_or_default();
    if sql.trim().is_empty() {
        return Err(Error::new(ErrorCode::SqlEmpty, "sql"));
    }
    if sql.chars().count() > fdi_types::task_detail::MAX_SQL_LEN {
        return Err(Error::new(ErrorCode::SqlTooLong, "sql"));
    }
    let (c, _) = stored_connector(&s, &p).await?;
    let r = c.test_sql(&sql).await;
    c.close().await;
    let cols = r.map_err(|e| discovery_error(e, "sql", ErrorCode::InvalidSql))?;
    Ok(Json(
        json!({ "columns": cols.iter().map(column_json).collect::<Vec<_>>() }),
    ))
}
