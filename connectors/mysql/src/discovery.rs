//! Tables and columns from information_schema; result columns of a custom query.

use std::collections::BTreeMap;

use fdi_connector::{ColumnInfo, ConnectorError, Result};
use fdi_sql_core::describe::ResultColumns;
use fdi_sql_core::dialect::split_qualified;
use fdi_sql_core::{Dialect, arrow_mapping, map_sqlx_error, select};
use sqlx::{Executor, MySqlPool, Row, SqlSafeStr, Statement};

pub async fn list_tables(pool: &MySqlPool, filter: Option<&str>) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| map_sqlx_error("list tables", e))?;
    let needle = filter.map(|f| f.to_lowercase()).filter(|f| !f.is_empty());
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.try_get(0).map_err(|e| map_sqlx_error("list tables", e))?;
        if needle
            .as_ref()
            .is_none_or(|n| name.to_lowercase().contains(n))
        {
            out.push(name);
        }
    }
    Ok(out)
}

pub async fn columns(pool: &MySqlPool, table: &str) -> Result<Vec<ColumnInfo>> {
    let (schema, name) = split_qualified(table);
    let rows = sqlx::query(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR),
                CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED), CAST(NUMERIC_PRECISION AS SIGNED), CAST(NUMERIC_SCALE AS SIGNED),
                CAST(IS_NULLABLE AS CHAR)
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
         ORDER BY ORDINAL_POSITION",
    )
    .bind(schema)
    .bind(name)
    .fetch_all(pool)
    .await
    .map_err(|e| map_sqlx_error("columns", e))?;
    if rows.is_empty() {
        return Err(ConnectorError::user(format!(
            "table \"{table}\" does not exist"
        )));
    }
    let keys = sqlx::query(
        "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.STATISTICS
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0",
    )
    .bind(schema)
    .bind(name)
    .fetch_all(pool)
    .await
    .map_err(|e| map_sqlx_error("keys", e))?;
    let mut indexes: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in keys {
        let index: String = k.try_get(0).map_err(|e| map_sqlx_error("keys", e))?;
        let col: String = k.try_get(1).map_err(|e| map_sqlx_error("keys", e))?;
        indexes.entry(index).or_default().push(col);
    }
    let primary = indexes.get("PRIMARY").cloned().unwrap_or_default();
    let unique: Vec<String> = indexes
        .iter()
        .filter(|(n, cols)| n.as_str() != "PRIMARY" && cols.len() == 1)
        .map(|(_, cols)| cols[0].clone())
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let get_err = |e| map_sqlx_error("columns", e);
        let col: String = r.try_get(0).map_err(get_err)?;
        let data_type: String = r.try_get(1).map_err(get_err)?;
        let column_type: String = r.try_get(2).map_err(get_err)?;
        let char_len: Option<i64> = r.try_get(3).map_err(get_err)?;
        let precision: Option<i64> = r.try_get(4).map_err(get_err)?;
        let scale: Option<i64> = r.try_get(5).map_err(get_err)?;
        let nullable: String = r.try_get(6).map_err(get_err)?;
        let data_type = data_type.to_ascii_lowercase();
        let native = if column_type.to_ascii_lowercase().contains("unsigned") {
            format!("{data_type} unsigned")
        } else {
            data_type
        };
        let mapping = arrow_mapping(Dialect::MySql, &native, &column_type, precision, scale);
        let is_date_time = matches!(
            native.as_str(),
            "date" | "time" | "datetime" | "timestamp" | "year"
        );
        out.push(ColumnInfo {
            primary: primary.contains(&col),
            unique: unique.contains(&col),
            name: col,
            native_type: native,
            length: char_len.or(precision),
            // Date-time types carry no decimal digits (the reference shows null); their
            // fractional-second precision stays in the column type.
            decimal_digits: if is_date_time { None } else { scale },
            nullable: nullable.eq_ignore_ascii_case("YES"),
            arrow_type: mapping.arrow_type,
        });
    }
    Ok(out)
}

/// Result columns of a query, from preparing it (no rows are fetched); columns read straight
/// from a table carry that table's nullability and keys.
pub async fn describe_query(pool: &MySqlPool, sql: &str) -> Result<Vec<ColumnInfo>> {
    let q = select::trim_query(sql).to_string();
    if q.is_empty() {
        return Err(ConnectorError::user("the SQL statement is empty"));
    }
    let stmt = pool
        .prepare(sqlx::AssertSqlSafe(q).into_sql_str())
        .await
        .map_err(|e| map_sqlx_error("invalid SQL", e))?;
    let mut described = ResultColumns::new(Dialect::MySql, stmt.columns());
    for table in described.origin_tables() {
        // A table that cannot be described leaves the defaults: the query itself was valid.
        if let Ok(cols) = columns(pool, &table).await {
            described.apply_table(&table, &cols);
        }
    }
    Ok(described.into_columns())
}
