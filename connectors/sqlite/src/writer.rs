//! Transactional SQLite writer: multi-row INSERT statements with literals; upserts with
//! `INSERT ... ON CONFLICT (keys) DO UPDATE`.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteMode, WriteSpec, WriteStats};
use fdi_sql_core::insert::{insert_prefix, insert_statements, upsert_prefix, upsert_suffix};
use fdi_sql_core::{Dialect, map_sqlx_error};
use sqlx::{Sqlite, SqlitePool, Transaction};

/// Upper bound of one INSERT statement.
const MAX_STATEMENT_BYTES: usize = 512 << 10;

pub struct SqliteWriter {
    pool: SqlitePool,
    spec: WriteSpec,
    prefix: String,
    suffix: String,
    max_statement: usize,
    tx: Option<Transaction<'static, Sqlite>>,
}

impl SqliteWriter {
    pub fn new(pool: SqlitePool, spec: WriteSpec) -> Self {
        let d = Dialect::Sqlite;
        let columns: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
        let prefix = match &spec.mode {
            WriteMode::Insert => insert_prefix(d, &spec.table, &columns),
            WriteMode::Upsert { .. } => upsert_prefix(d, &spec.table, &columns),
        };
        let suffix = match &spec.mode {
            WriteMode::Insert => String::new(),
            WriteMode::Upsert { keys, part_update } => {
                upsert_suffix(d, &columns, keys, *part_update)
            }
        };
        Self {
            pool,
            spec,
            prefix,
            suffix,
            max_statement: MAX_STATEMENT_BYTES,
            tx: None,
        }
    }

    async fn exec(&mut self, sql: String) -> Result<()> {
        let tx = self
            .tx
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("writer used outside begin/commit"))?;
        fdi_sql_core::statement_log::debug("sqlite write", &sql);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .map_err(|e| map_sqlx_error("write", e))
    }
}

#[async_trait]
impl SinkWriter for SqliteWriter {
    async fn begin(&mut self) -> Result<()> {
        let tx = self
            .pool
            .begin()
            .await
            .map_err(|e| map_sqlx_error("begin", e))?;
        self.tx = Some(tx);
        if self.spec.clear_table {
            self.exec(format!(
                "DELETE FROM {}",
                Dialect::Sqlite.quote_table(&self.spec.table)
            ))
            .await?;
        }
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        if batch.num_rows() == 0 {
            return Ok(WriteStats::default());
        }
        let (statements, bytes) = insert_statements(
            &batch,
            Dialect::Sqlite,
            &self.prefix,
            &self.suffix,
            self.max_statement,
        )?;
        for s in statements {
            self.exec(s).await?;
        }
        Ok(WriteStats {
            rows: batch.num_rows() as u64,
            bytes,
            dirty_rows: 0,
        })
    }

    async fn commit(&mut self) -> Result<()> {
        let tx = self
            .tx
            .take()
            .ok_or_else(|| ConnectorError::internal("commit without begin"))?;
        tx.commit().await.map_err(|e| map_sqlx_error("commit", e))?;
        // The table is emptied by the first transaction only (a streaming run commits again).
        self.spec.clear_table = false;
        Ok(())
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
