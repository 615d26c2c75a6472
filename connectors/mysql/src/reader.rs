//! Streaming MySQL reader: one SELECT, rows fetched as they arrive, cut into batches.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::{BatchSender, ColumnInfo, ReadSpec, Result, SourceQuery, SourceReader};
use fdi_sql_core::reader::pump_rows;
use fdi_sql_core::select::{SelectBuilder, SelectColumn, query_select, table_select};
use fdi_sql_core::types::{pick_columns, read_kind, schema_of};
use fdi_sql_core::{BatchAssembler, Dialect, ReadKind};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::discovery;

pub struct MySqlReader {
    pool: MySqlPool,
    sql: String,
    schema: SchemaRef,
    kinds: Vec<ReadKind>,
    batch_rows: usize,
}

impl MySqlReader {
    pub async fn open(pool: &MySqlPool, spec: ReadSpec) -> Result<Self> {
        let d = Dialect::MySql;
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
        let kinds: Vec<ReadKind> = columns.iter().map(|col| read_kind(d, col)).collect();
        let select_cols: Vec<SelectColumn<'_>> = columns
            .iter()
            .zip(&kinds)
            .map(|(col, k)| SelectColumn {
                name: &col.name,
                as_text: k.needs_text_cast(),
                cast_to: None,
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
impl SourceReader for MySqlReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        fdi_sql_core::statement_log::debug("mysql read", &self.sql);
        let assembler =
            BatchAssembler::new(self.schema.clone(), self.kinds.clone(), self.batch_rows);
        // A connection of its own, closed (not pooled) when the read ends: a terminated read
        // leaves a result set the protocol would have to drain row by row before the
        // connection could serve anything else.
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| fdi_sql_core::map_sqlx_error("read", e))?
            .detach();
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone())).fetch(&mut conn);
        pump_rows(rows, assembler, &out, &cancel).await
    }
}
