//! Tables and columns from PostgreSQL's catalogs; result columns of a custom query.

use fdi_connector::{ColumnInfo, ConnectorError, Result, SourceQuery};
use fdi_sql_core::describe::ResultColumns;
use fdi_sql_core::{Dialect, arrow_mapping, map_sqlx_error, select};
use sqlx::{Executor, Row, SqlSafeStr, Statement};

use crate::PgConnector;

pub async fn list_tables(c: &PgConnector, filter: Option<&str>) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables
         WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_toast%'
           AND table_schema NOT LIKE 'pg_temp%'
         ORDER BY table_schema, table_name",
    )
    .fetch_all(&c.pool)
    .await
    .map_err(|e| map_sqlx_error("list tables", e))?;
    let needle = filter.map(|f| f.to_lowercase()).filter(|f| !f.is_empty());
    let mut out = Vec::new();
    for r in rows {
        let schema: String = r.try_get(0).map_err(|e| map_sqlx_error("list tables", e))?;
        let table: String = r.try_get(1).map_err(|e| map_sqlx_error("list tables", e))?;
        let name = if schema == c.schema {
            table
        } else {
            format!("{schema}.{table}")
        };
        if needle
            .as_ref()
            .is_none_or(|n| name.to_lowercase().contains(n))
        {
            out.push(name);
        }
    }
    Ok(out)
}

pub async fn columns(c: &PgConnector, table: &str) -> Result<Vec<ColumnInfo>> {
    let (schema, name) = c.qualify(table);
    let rows = sqlx::query(
        "SELECT column_name::text, data_type::text, udt_name::text, character_maximum_length::int8,
                numeric_precision::int8, numeric_scale::int8, is_nullable::text = 'YES'
         FROM information_schema.columns WHERE table_schema = $1::name AND table_name = $2::name
         ORDER BY ordinal_position",
    )
    .bind(&schema)
    .bind(&name)
    .fetch_all(&c.pool)
    .await
    .map_err(|e| map_sqlx_error("columns", e))?;
    if rows.is_empty() {
        return Err(ConnectorError::user(format!(
            "table \"{schema}.{name}\" does not exist"
        )));
    }
    let regclass = format!(
        "{}.{}",
        Dialect::Postgres.quote_ident(&schema),
        Dialect::Postgres.quote_ident(&name)
    );
    let keys = sqlx::query(
        "SELECT a.attname::text, i.indisprimary, i.indnatts::int8 FROM pg_index i
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL",
    )
    .bind(&regclass)
    .fetch_all(&c.pool)
    .await
    .map_err(|e| map_sqlx_error("keys", e))?;
    let mut primary = Vec::new();
    let mut unique = Vec::new();
    for k in keys {
        let col: String = k.try_get(0).map_err(|e| map_sqlx_error("keys", e))?;
        let is_pk: bool = k.try_get(1).map_err(|e| map_sqlx_error("keys", e))?;
        let natts: i64 = k.try_get(2).map_err(|e| map_sqlx_error("keys", e))?;
        if is_pk {
            primary.push(col);
        } else if natts == 1 {
            unique.push(col);
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let get_err = |e| map_sqlx_error("columns", e);
        let col: String = r.try_get(0).map_err(get_err)?;
        let data_type: String = r.try_get(1).map_err(get_err)?;
        let udt: String = r.try_get(2).map_err(get_err)?;
        let char_len: Option<i64> = r.try_get(3).map_err(get_err)?;
        let precision: Option<i64> = r.try_get(4).map_err(get_err)?;
        let scale: Option<i64> = r.try_get(5).map_err(get_err)?;
        let nullable: bool = r.try_get(6).map_err(get_err)?;
        let native = if data_type == "USER-DEFINED" || data_type == "ARRAY" {
            udt.clone()
        } else {
            data_type.clone()
        };
        let mapping = arrow_mapping(Dialect::Postgres, &native, &udt, precision, scale);
        let is_numeric = matches!(udt.as_str(), "numeric");
        out.push(ColumnInfo {
            primary: primary.contains(&col),
            unique: unique.contains(&col),
            name: col,
            native_type: native,
            length: char_len.or(if is_numeric { precision } else { None }),
            // Only exact numerics carry decimal digits (date-time types: null, as the reference).
            decimal_digits: if is_numeric { scale } else { None },
            nullable,
            arrow_type: mapping.arrow_type,
        });
    }
    Ok(out)
}

/// Result columns of a query, from preparing it (no rows are fetched); columns read straight
/// from a table carry that table's nullability and keys.
pub async fn describe_query(c: &PgConnector, sql: &str) -> Result<Vec<ColumnInfo>> {
    let q = select::trim_query(sql).to_string();
    if q.is_empty() {
        return Err(ConnectorError::user("the SQL statement is empty"));
    }
    let stmt = c
        .pool
        .prepare(sqlx::AssertSqlSafe(q).into_sql_str())
        .await
        .map_err(|e| map_sqlx_error("invalid SQL", e))?;
    let mut described = ResultColumns::new(Dialect::Postgres, stmt.columns());
    for table in described.origin_tables() {
        // A table that cannot be described leaves the defaults: the query itself was valid.
        if let Ok(cols) = columns(c, &table).await {
            described.apply_table(&table, &cols);
        }
    }
    Ok(described.into_columns())
}

/// Rows reading `query` would return, as PostgreSQL estimates them without reading them: a whole
/// table's `pg_class.reltuples` (kept by ANALYZE and autovacuum); a filtered table, a custom
/// query, or a table never analysed: the planner's row estimate of the SELECT (`EXPLAIN`).
pub async fn estimate_rows(c: &PgConnector, query: &SourceQuery) -> Result<Option<u64>> {
    match query {
        SourceQuery::Table { table, filters, .. } if filters.is_empty() => {
            match table_rows(c, table).await? {
                Some(n) => Ok(Some(n)),
                None => {
                    planned_rows(
                        &c.pool,
                        &select::table_select(Dialect::Postgres, table, &[], &[], None),
                    )
                    .await
                }
            }
        }
        SourceQuery::Table { table, filters, .. } => {
            planned_rows(
                &c.pool,
                &select::table_select(Dialect::Postgres, table, &[], filters, None),
            )
            .await
        }
        SourceQuery::Sql(q) => planned_rows(&c.pool, select::trim_query(q)).await,
        SourceQuery::Messages { .. } => Ok(None),
    }
}

/// A table's rows as the planner counts them: `reltuples` (rows per page at the last ANALYZE)
/// scaled to the pages the table has now, so a table that grew since is not underestimated;
/// None when it was never analysed (-1, or 0 before PostgreSQL 14).
async fn table_rows(c: &PgConnector, table: &str) -> Result<Option<u64>> {
    let (schema, name) = c.qualify(table);
    let regclass = format!(
        "{}.{}",
        Dialect::Postgres.quote_ident(&schema),
        Dialect::Postgres.quote_ident(&name)
    );
    let reltuples: Option<f64> = sqlx::query_scalar(
        "SELECT CASE WHEN relpages > 0 THEN reltuples::float8 / relpages
                          * (pg_relation_size(oid) / current_setting('block_size')::float8)
                         ELSE reltuples::float8 END
             FROM pg_class WHERE oid = to_regclass($1)",
    )
    .bind(&regclass)
    .fetch_optional(&c.pool)
    .await
    .map_err(|e| map_sqlx_error("row estimate", e))?;
    Ok(reltuples.filter(|n| *n > 0.0).map(|n| n.round() as u64))
}

/// The planner's estimate of the rows `sql` returns: "Plan Rows" of its top plan node.
pub(crate) async fn planned_rows<'e>(
    on: impl sqlx::PgExecutor<'e>,
    sql: &str,
) -> Result<Option<u64>> {
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    let plan: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
        .fetch_one(on)
        .await
        .map_err(|e| map_sqlx_error("row estimate", e))?;
    Ok(plan_rows(&plan))
}

/// "Plan Rows" of the top node of an `EXPLAIN (FORMAT JSON)` result.
fn plan_rows(plan: &serde_json::Value) -> Option<u64> {
    plan.get(0)?
        .get("Plan")?
        .get("Plan Rows")?
        .as_f64()
        .filter(|n| *n >= 0.0)
        .map(|n| n.round() as u64)
}

#[cfg(test)]
mod estimate_tests {
    use fdi_connector::{ConnectorFactory, SourceQuery};
    use fdi_types::{WhereCondition, WhereOp};

    async fn exec(sql: &str) {
        let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
    }

    fn table(name: &str, filters: Vec<WhereCondition>) -> SourceQuery {
        SourceQuery::Table {
            table: name.to_string(),
            columns: vec![],
            filters,
            order_by: None,
        }
    }

    #[tokio::test]
    async fn estimates_follow_statistics_growth_filters_and_queries() {
        let c = crate::Factory
            .create(&serde_json::json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}))
            .unwrap();
        let t = format!("est_pg_{}", std::process::id());
        exec(&format!(
            "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (id bigint PRIMARY KEY, v int);
             ALTER TABLE {t} SET (autovacuum_enabled = false);
             INSERT INTO {t} SELECT g, g % 10 FROM generate_series(1, 20000) g"
        ))
        .await;
        // Never analysed: the planner's estimate from the table's size.
        let fresh = c.estimate_rows(&table(&t, vec![])).await.unwrap().unwrap();
        assert!((5_000..=60_000).contains(&fresh), "never analysed: {fresh}");
        exec(&format!("ANALYZE {t}")).await;
        let analysed = c.estimate_rows(&table(&t, vec![])).await.unwrap();
        assert_eq!(analysed, Some(20_000));
        // Grown since ANALYZE: scaled to the pages it has now.
        exec(&format!(
            "INSERT INTO {t} SELECT g, g % 10 FROM generate_series(20001, 40000) g"
        ))
        .await;
        let grown = c.estimate_rows(&table(&t, vec![])).await.unwrap().unwrap();
        assert!((36_000..=44_000).contains(&grown), "grown: {grown}");
        // A filter and a custom query: EXPLAIN of what the run reads.
        let filter = WhereCondition {
            andor: None,
            field_name: "v".into(),
            field_type: None,
            op: WhereOp::Equal,
            value: Some("3".into()),
            min_value: None,
            max_value: None,
        };
        let part = c
            .estimate_rows(&table(&t, vec![filter]))
            .await
            .unwrap()
            .unwrap();
        assert!((1_000..=8_000).contains(&part), "filtered: {part}");
        let q = c
            .estimate_rows(&SourceQuery::Sql(format!(
                "SELECT * FROM {t} WHERE id <= 100;"
            )))
            .await
            .unwrap()
            .unwrap();
        assert!((1..=1_000).contains(&q), "query: {q}");
        assert!(
            c.estimate_rows(&SourceQuery::Sql("SELECT * FROM no_such_table_x".into()))
                .await
                .is_err()
        );
        exec(&format!("DROP TABLE {t}")).await;
    }

    #[test]
    fn plan_rows_of_the_top_node() {
        let plan = serde_json::json!([{"Plan": {"Node Type": "Seq Scan", "Plan Rows": 1000000,
            "Plans": [{"Plan Rows": 3}]}}]);
        assert_eq!(super::plan_rows(&plan), Some(1_000_000));
        assert_eq!(super::plan_rows(&serde_json::json!([{}])), None);
    }
}
