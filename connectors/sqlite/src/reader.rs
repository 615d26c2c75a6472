//! Streaming SQLite reader. Every column is cast to its storage class in SQL so values of mixed
//! storage classes in one column still decode.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::{BatchSender, ColumnInfo, ReadSpec, Result, SourceQuery, SourceReader};
use fdi_sql_core::reader::pump_rows;
use fdi_sql_core::select::{SelectBuilder, SelectColumn, query_select, table_select};
use fdi_sql_core::types::{pick_columns, read_kind, schema_of};
use fdi_sql_core::{BatchAssembler, Dialect, ReadKind};
use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

use crate::discovery;

pub struct SqliteReader {
    pool: SqlitePool,
    sql: String,
    schema: SchemaRef,
    kinds: Vec<ReadKind>,
    batch_rows: usize,
}

fn storage_cast(kind: &ReadKind) -> &'static str {
    match kind {
        ReadKind::Bool | ReadKind::Int8 | ReadKind::Int16 | ReadKind::Int32 | ReadKind::Int64 => {
            "INTEGER"
        }
        ReadKind::Float32 | ReadKind::Float64 => "REAL",
        ReadKind::Binary => "BLOB",
        _ => "TEXT",
    }
}

impl SqliteReader {
    pub async fn open(pool: &SqlitePool, spec: ReadSpec) -> Result<Self> {
        let d = Dialect::Sqlite;
        let (columns, sql): (Vec<ColumnInfo>, SelectBuilder) = match spec.query {
            SourceQuery::Table {
                table,
                columns,
                filters,
                order_by,
            } => {
                let all = discovery::columns(pool, &table).await?;
                let picked = pick_columns(&table, &all, &columns)?;
                (
                    picked,
                    Box::new(move |sel| table_select(d, &table, sel, &filters, order_by.as_ref())),
                )
            }
            SourceQuery::Sql(q) => {
                let cols = discovery::describe_query(pool, &q).await?;
                (cols, Box::new(move |sel| query_select(d, &q, sel)))
            }
            SourceQuery::Messages { source, .. } => {
                return Err(fdi_connector::ConnectorError::user(format!(
                    "{source}: a SQL source reads tables and queries, not messages (remove sourceMetaData)"
                )));
            }
        };
        let kinds: Vec<ReadKind> = columns
            .iter()
            .map(|col| match read_kind(d, col) {
                // Dates and timestamps are stored as text; all text goes through one path.
                ReadKind::Date32 | ReadKind::Timestamp | ReadKind::TimestampTz => {
                    ReadKind::TextAs(col.arrow_type.clone())
                }
                k => k,
            })
            .collect();
        let select_cols: Vec<SelectColumn<'_>> = columns
            .iter()
            .zip(&kinds)
            .map(|(col, k)| SelectColumn {
                name: &col.name,
                as_text: false,
                cast_to: Some(storage_cast(k)),
            })
            .collect();
        let sql = sql(&select_cols);
        Ok(Self {
            pool: pool.clone(),
            sql,
            schema: schema_of(&columns),
            kinds,
            batch_rows: spec.batch_rows,
        })
    }
}

#[async_trait]
impl SourceReader for SqliteReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        fdi_sql_core::statement_log::debug("sqlite read", &self.sql);
        let assembler =
            BatchAssembler::new(self.schema.clone(), self.kinds.clone(), self.batch_rows);
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone())).fetch(&self.pool);
        pump_rows(rows, assembler, &out, &cancel).await
    }
}
