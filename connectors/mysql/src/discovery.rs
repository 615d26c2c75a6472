//! Tables and columns from information_schema; result columns of a custom query.

use std::collections::BTreeMap;

use fdi_connector::{ColumnInfo, ConnectorError, Result, SourceQuery};
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

/// Rows reading `query` would return, as MySQL estimates them without reading them: a whole
/// table's `information_schema.TABLES.TABLE_ROWS` (InnoDB's sampled estimate); a filtered table
/// or a custom query: the optimizer's `EXPLAIN` (rows x filtered % of its first table).
pub async fn estimate_rows(pool: &MySqlPool, query: &SourceQuery) -> Result<Option<u64>> {
    match query {
        SourceQuery::Table { table, filters, .. } if filters.is_empty() => {
            match table_rows(pool, table).await? {
                Some(n) => Ok(Some(n)),
                None => {
                    let sql = select::table_select(Dialect::MySql, table, &[], &[], None);
                    planned_rows(pool, &sql).await
                }
            }
        }
        SourceQuery::Table { table, filters, .. } => {
            let sql = select::table_select(Dialect::MySql, table, &[], filters, None);
            planned_rows(pool, &sql).await
        }
        SourceQuery::Sql(q) => planned_rows(pool, select::trim_query(q)).await,
        SourceQuery::Messages { .. } => Ok(None),
    }
}

/// `TABLE_ROWS` of a base table; None for views and tables without statistics.
async fn table_rows(pool: &MySqlPool, table: &str) -> Result<Option<u64>> {
    let (schema, name) = split_qualified(table);
    let rows: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT CAST(TABLE_ROWS AS SIGNED) FROM information_schema.TABLES
         WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND TABLE_TYPE = 'BASE TABLE'",
    )
    .bind(schema)
    .bind(name)
    .fetch_optional(pool)
    .await
    .map_err(|e| map_sqlx_error("row estimate", e))?;
    Ok(rows.flatten().filter(|n| *n > 0).map(|n| n as u64))
}

/// The optimizer's estimate of the rows `sql` returns: `rows` x `filtered` / 100 of the first
/// row of its `EXPLAIN` (MariaDB shows no `filtered` there: 100 %).
async fn planned_rows(pool: &MySqlPool, sql: &str) -> Result<Option<u64>> {
    let explain = format!("EXPLAIN {sql}");
    let first = sqlx::query(sqlx::AssertSqlSafe(explain))
        .fetch_optional(pool)
        .await
        .map_err(|e| map_sqlx_error("row estimate", e))?;
    let Some(first) = first else { return Ok(None) };
    let Some(rows) = explain_number(&first, "rows") else {
        return Ok(None);
    };
    let filtered = explain_number(&first, "filtered").unwrap_or(100.0);
    Ok(Some((rows * filtered / 100.0).round().max(0.0) as u64))
}

/// A numeric column of an `EXPLAIN` row, whichever type the server gives it.
fn explain_number(row: &sqlx::mysql::MySqlRow, column: &str) -> Option<f64> {
    if row.try_column(column).is_err() {
        return None;
    }
    if let Ok(v) = row.try_get::<Option<u64>, _>(column) {
        return v.map(|v| v as f64);
    }
    if let Ok(v) = row.try_get::<Option<i64>, _>(column) {
        return v.map(|v| v as f64);
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(column) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<f32>, _>(column) {
        return v.map(f64::from);
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(column) {
        return v.and_then(|s| s.trim().parse().ok());
    }
    None
}

#[cfg(test)]
mod estimate_tests {
    use fdi_connector::SourceQuery;
    use sqlx::MySqlPool;

    const URL: &str = "mysql://root@127.0.0.1:3306/test";

    #[tokio::test]
    async fn estimates_of_a_table_a_filter_and_a_query() {
        let pool = MySqlPool::connect(URL).await.unwrap();
        let t = format!("est_{}", std::process::id());
        for sql in [
            format!("DROP TABLE IF EXISTS {t}"),
            format!("CREATE TABLE {t} (id INT PRIMARY KEY, v INT)"),
            format!("INSERT INTO {t} SELECT seq, seq % 10 FROM seq_1_to_5000"),
            format!("ANALYZE TABLE {t}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        let table = SourceQuery::Table {
            table: t.clone(),
            columns: vec![],
            filters: vec![],
            order_by: None,
        };
        let whole = super::estimate_rows(&pool, &table).await.unwrap().unwrap();
        assert!((2500..=10000).contains(&whole), "table estimate {whole}");
        let sql = SourceQuery::Sql(format!("SELECT * FROM {t} WHERE id <= 100;"));
        let part = super::estimate_rows(&pool, &sql).await.unwrap().unwrap();
        assert!((1..=1000).contains(&part), "query estimate {part}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
            .execute(&pool)
            .await
            .unwrap();
    }
}
