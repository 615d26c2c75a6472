//! Transactional PostgreSQL writer: `COPY ... FROM STDIN` for inserts, COPY into a temporary
//! staging table + `INSERT ... ON CONFLICT` for upserts.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteMode, WriteSpec, WriteStats};
use fdi_sql_core::insert::{formatters, push_copy_line, upsert_suffix};
use fdi_sql_core::literal::Output;
use fdi_sql_core::{Dialect, map_sqlx_error};
use sqlx::{PgPool, Postgres, Transaction};

const STAGE: &str = "fdi_stage";

pub struct PgWriter {
    pool: PgPool,
    /// Quoted `"schema"."table"`.
    table_sql: String,
    columns: Vec<String>,
    spec: WriteSpec,
    tx: Option<Transaction<'static, Postgres>>,
    buf: String,
}

impl PgWriter {
    pub fn new(pool: PgPool, (schema, table): (String, String), spec: WriteSpec) -> Self {
        let d = Dialect::Postgres;
        let table_sql = format!("{}.{}", d.quote_ident(&schema), d.quote_ident(&table));
        let columns = spec.columns.iter().map(|c| c.name.clone()).collect();
        Self {
            pool,
            table_sql,
            columns,
            spec,
            tx: None,
            buf: String::new(),
        }
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| Dialect::Postgres.quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn tx(&mut self) -> Result<&mut Transaction<'static, Postgres>> {
        self.tx
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("writer used outside begin/commit"))
    }

    async fn exec(&mut self, sql: String) -> Result<()> {
        let tx = self.tx()?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .map_err(|e| map_sqlx_error("write", e))
    }

    /// COPY the batch (as COPY text) into `into`.
    async fn copy_batch(&mut self, into: String, batch: &RecordBatch) -> Result<u64> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        {
            let fmts = formatters(batch, Output::CopyText)?;
            for i in 0..batch.num_rows() {
                push_copy_line(&mut buf, &fmts, i);
            }
        }
        let bytes = buf.len() as u64;
        let stmt = format!("COPY {into} ({}) FROM STDIN", self.column_list());
        let tx = self.tx()?;
        let result = async {
            let mut copy = tx.copy_in_raw(&stmt).await?;
            if let Err(e) = copy.send(buf.as_bytes()).await {
                let _ = copy.abort("fdi: send failed").await;
                return Err(e);
            }
            copy.finish().await
        }
        .await;
        self.buf = buf;
        result.map_err(|e| map_sqlx_error("copy", e))?;
        Ok(bytes)
    }
}

#[async_trait]
impl SinkWriter for PgWriter {
    async fn begin(&mut self) -> Result<()> {
        let tx = self
            .pool
            .begin()
            .await
            .map_err(|e| map_sqlx_error("begin", e))?;
        self.tx = Some(tx);
        if self.spec.clear_table {
            self.exec(format!("TRUNCATE TABLE {}", self.table_sql))
                .await?;
        }
        if matches!(self.spec.mode, WriteMode::Upsert { .. }) {
            self.exec(format!(
                "CREATE TEMP TABLE {STAGE} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
                self.column_list(),
                self.table_sql
            ))
            .await?;
        }
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        if batch.num_rows() == 0 {
            return Ok(WriteStats::default());
        }
        let rows = batch.num_rows() as u64;
        match self.spec.mode.clone() {
            WriteMode::Insert => {
                let bytes = self.copy_batch(self.table_sql.clone(), &batch).await?;
                Ok(WriteStats {
                    rows,
                    bytes,
                    dirty_rows: 0,
                })
            }
            WriteMode::Upsert { keys, part_update } => {
                let bytes = self.copy_batch(STAGE.to_string(), &batch).await?;
                let cols = self.column_list();
                let suffix = upsert_suffix(Dialect::Postgres, &self.columns, &keys, part_update);
                self.exec(format!(
                    "INSERT INTO {} AS fdi_t ({cols}) SELECT {cols} FROM {STAGE}{suffix}",
                    self.table_sql
                ))
                .await?;
                self.exec(format!("TRUNCATE {STAGE}")).await?;
                Ok(WriteStats {
                    rows,
                    bytes,
                    dirty_rows: 0,
                })
            }
        }
    }

    async fn commit(&mut self) -> Result<()> {
        let tx = self
            .tx
            .take()
            .ok_or_else(|| ConnectorError::internal("commit without begin"))?;
        tx.commit().await.map_err(|e| map_sqlx_error("commit", e))
    }

    async fn abort(&mut self) -> Result<()> {
        match self.tx.take() {
            Some(tx) => tx
                .rollback()
                .await
                .map_err(|e| map_sqlx_error("rollback", e)),
            None => Ok(()),
        }
    }
}
