//! Tables and columns from SQLite's PRAGMAs; result columns of a custom query.

use fdi_connector::{ColumnInfo, ConnectorError, Result, SourceQuery};
use fdi_sql_core::describe::ResultColumns;
use fdi_sql_core::{Dialect, arrow_mapping, map_sqlx_error, select};
use sqlx::{Executor, Row, SqlSafeStr, SqlitePool, Statement};

pub async fn list_tables(pool: &SqlitePool, filter: Option<&str>) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")
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

pub async fn columns(pool: &SqlitePool, table: &str) -> Result<Vec<ColumnInfo>> {
    let d = Dialect::Sqlite;
    let quoted = d.quote_table(table);
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT name, type, \"notnull\", pk FROM pragma_table_info({})",
        d.string_literal(table)
    )))
    .fetch_all(pool)
    .await
    .map_err(|e| map_sqlx_error("columns", e))?;
    if rows.is_empty() {
        return Err(ConnectorError::user(format!(
            "table \"{table}\" does not exist"
        )));
    }
    // Single-column unique indexes (explicit or from UNIQUE constraints).
    let mut unique = Vec::new();
    let indexes = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT il.name, il.origin, (SELECT count(*) FROM pragma_index_info(il.name)), (SELECT name FROM pragma_index_info(il.name) LIMIT 1)
         FROM pragma_index_list({}) il WHERE il.\"unique\" = 1 AND il.partial = 0",
        d.string_literal(table)
    )))
    .fetch_all(pool)
    .await
    .map_err(|e| map_sqlx_error("keys", e))?;
    for i in indexes {
        let origin: String = i.try_get(1).map_err(|e| map_sqlx_error("keys", e))?;
        let n: i64 = i.try_get(2).map_err(|e| map_sqlx_error("keys", e))?;
        let col: Option<String> = i.try_get(3).map_err(|e| map_sqlx_error("keys", e))?;
        if origin != "pk"
            && n == 1
            && let Some(c) = col
        {
            unique.push(c);
        }
    }
    let _ = quoted;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let get_err = |e| map_sqlx_error("columns", e);
        let name: String = r.try_get(0).map_err(get_err)?;
        let declared: String = r.try_get(1).map_err(get_err)?;
        let notnull: i64 = r.try_get(2).map_err(get_err)?;
        let pk: i64 = r.try_get(3).map_err(get_err)?;
        let native = declared.to_ascii_lowercase();
        let (p, s) = fdi_sql_core::types::type_params(&native);
        let mapping = arrow_mapping(d, &native, &native, p, s);
        out.push(ColumnInfo {
            unique: unique.contains(&name),
            name,
            native_type: native.split('(').next().unwrap_or("").trim().to_string(),
            length: p,
            decimal_digits: s,
            nullable: notnull == 0 && pk == 0,
            primary: pk > 0,
            arrow_type: mapping.arrow_type,
        });
    }
    Ok(out)
}

/// Result columns of a query, from preparing it (no rows are fetched); columns read straight
/// from a table carry that table's nullability and keys.
pub async fn describe_query(pool: &SqlitePool, sql: &str) -> Result<Vec<ColumnInfo>> {
    let q = select::trim_query(sql).to_string();
    if q.is_empty() {
        return Err(ConnectorError::user("the SQL statement is empty"));
    }
    let stmt = pool
        .prepare(sqlx::AssertSqlSafe(q).into_sql_str())
        .await
        .map_err(|e| map_sqlx_error("invalid SQL", e))?;
    let mut described = ResultColumns::new(Dialect::Sqlite, stmt.columns());
    for table in described.origin_tables() {
        // A table that cannot be described leaves the defaults: the query itself was valid.
        if let Ok(cols) = columns(pool, &table).await {
            described.apply_table(&table, &cols);
        }
    }
    Ok(described.into_columns())
}

/// Rows reading `query` would return, as SQLite knows them without reading them: a whole table's
/// row count in `sqlite_stat1` (written by `ANALYZE`); None for a table never analysed, a
/// filtered table or a custom query (SQLite's planner gives no row estimates).
pub async fn estimate_rows(pool: &SqlitePool, query: &SourceQuery) -> Result<Option<u64>> {
    let SourceQuery::Table { table, filters, .. } = query else {
        return Ok(None);
    };
    if !filters.is_empty() {
        return Ok(None);
    }
    let analysed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat1'",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| map_sqlx_error("row estimate", e))?;
    if analysed == 0 {
        return Ok(None);
    }
    // `stat` starts with the table's row count ("10000 1" for an index, "10000" for the table).
    let stats: Vec<String> = sqlx::query_scalar("SELECT stat FROM sqlite_stat1 WHERE tbl = ?")
        .bind(table)
        .fetch_all(pool)
        .await
        .map_err(|e| map_sqlx_error("row estimate", e))?;
    Ok(stats
        .iter()
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .max())
}
