//! The statement of a same-server copy (`fdi_connector::in_server`): `INSERT … SELECT` from the
//! source's query, in the upsert form of the write mode, with the same upsert clauses as the
//! row-by-row writers.

use fdi_connector::in_server::InServerCopy;
use fdi_connector::{SourceQuery, WriteMode};

use crate::dialect::Dialect;
use crate::insert::{upsert_prefix, upsert_suffix};
use crate::select::{SelectColumn, table_select, trim_query};

/// `query` as a SELECT whose table names are qualified by `qualify` (custom SQL is used as
/// written: its names resolve in the source's session, so only a source and target sharing a
/// database and login may use it — what `server_scope` equality means). None for message sources.
pub fn select_sql(
    dialect: Dialect,
    query: &SourceQuery,
    qualify: impl Fn(&str) -> String,
) -> Option<String> {
    match query {
        SourceQuery::Table {
            table,
            columns,
            filters,
            order_by: _,
        } => {
            let cols: Vec<SelectColumn<'_>> = columns
                .iter()
                .map(|name| SelectColumn {
                    name,
                    as_text: false,
                    cast_to: None,
                })
                .collect();
            // (The order of an INSERT's rows means nothing: no ORDER BY.)
            Some(table_select(dialect, &qualify(table), &cols, filters, None))
        }
        SourceQuery::Sql(sql) => Some(trim_query(sql).to_string()),
        SourceQuery::Messages { .. } => None,
    }
}

/// `INSERT INTO target (cols) SELECT src_cols [, 'batch'] FROM (select) AS fdi_src [upsert]`.
pub fn insert_select(dialect: Dialect, copy: &InServerCopy) -> String {
    let columns: Vec<String> = copy.write.columns.iter().map(|c| c.name.clone()).collect();
    let mut values: Vec<String> = copy
        .source_columns
        .iter()
        .map(|c| format!("fdi_src.{}", dialect.quote_ident(c)))
        .collect();
    if let Some(b) = &copy.batch_value {
        values.push(dialect.string_literal(b));
    }
    let insert = upsert_prefix(dialect, &copy.write.table, &columns);
    let insert = insert
        .strip_suffix("VALUES ")
        .expect("an INSERT prefix ends with VALUES");
    let mut sql = format!(
        "{insert}SELECT {} FROM ({}) AS fdi_src",
        values.join(", "),
        copy.select_sql
    );
    if let WriteMode::Upsert { keys, part_update } = &copy.write.mode {
        if dialect == Dialect::Postgres {
            // PostgreSQL's parser needs this to tell ON CONFLICT from a join condition.
            sql.push_str(" WHERE true");
        }
        sql.push_str(&upsert_suffix(dialect, &columns, keys, *part_update));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdi_connector::{ColumnInfo, WriteSpec};
    use fdi_types::{WhereCondition, WhereOp};

    fn col(name: &str) -> ColumnInfo {
        ColumnInfo::new(name, "text", arrow::datatypes::DataType::Utf8)
    }

    fn copy(mode: WriteMode, batch: Option<&str>) -> InServerCopy {
        let mut columns = vec![col("id"), col("label")];
        if batch.is_some() {
            columns.push(col("batch"));
        }
        InServerCopy {
            select_sql: "SELECT \"id\", \"name\" FROM \"public\".\"src\"".into(),
            source_columns: vec!["id".into(), "name".into()],
            batch_value: batch.map(str::to_string),
            write: WriteSpec {
                table: "public.dst".into(),
                columns,
                mode,
                clear_table: false,
            },
        }
    }

    #[test]
    fn plain_insert_renames_and_adds_the_batch_number() {
        assert_eq!(
            insert_select(Dialect::Postgres, &copy(WriteMode::Insert, Some("run'1"))),
            "INSERT INTO \"public\".\"dst\" AS fdi_t (\"id\", \"label\", \"batch\") SELECT fdi_src.\"id\", fdi_src.\"name\", 'run''1' FROM (SELECT \"id\", \"name\" FROM \"public\".\"src\") AS fdi_src"
        );
    }

    #[test]
    fn upserts_take_the_writers_clauses() {
        let up = WriteMode::Upsert {
            keys: vec!["id".into()],
            part_update: true,
        };
        assert_eq!(
            insert_select(Dialect::Postgres, &copy(up.clone(), None)),
            "INSERT INTO \"public\".\"dst\" AS fdi_t (\"id\", \"label\") SELECT fdi_src.\"id\", fdi_src.\"name\" FROM (SELECT \"id\", \"name\" FROM \"public\".\"src\") AS fdi_src WHERE true ON CONFLICT (\"id\") DO UPDATE SET \"label\" = excluded.\"label\" WHERE fdi_t.\"label\" IS DISTINCT FROM excluded.\"label\""
        );
        let my = insert_select(Dialect::MySql, &copy(up, None));
        assert!(
            my.ends_with("AS fdi_src ON DUPLICATE KEY UPDATE `label` = VALUES(`label`)"),
            "{my}"
        );
    }

    #[test]
    fn table_queries_are_qualified_and_filtered_and_messages_have_no_sql() {
        let q = SourceQuery::Table {
            table: "src".into(),
            columns: vec!["id".into()],
            filters: vec![WhereCondition {
                andor: None,
                field_name: "id".into(),
                field_type: None,
                op: WhereOp::More,
                value: Some("5".into()),
                min_value: None,
                max_value: None,
            }],
            order_by: None,
        };
        let sql = select_sql(Dialect::Postgres, &q, |t| format!("public.{t}")).unwrap();
        assert!(
            sql.starts_with("SELECT \"id\" FROM \"public\".\"src\" WHERE"),
            "{sql}"
        );
        assert_eq!(
            select_sql(
                Dialect::Postgres,
                &SourceQuery::Sql("select 1;".into()),
                |t| t.into()
            ),
            Some("select 1".into())
        );
    }
}
