//! Transactional MySQL writer: multi-row INSERT statements with escaped literals, sized to the
//! server's `max_allowed_packet`; upserts with `ON DUPLICATE KEY UPDATE`.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteMode, WriteSpec, WriteStats};
use fdi_sql_core::insert::{insert_prefix, insert_statements, upsert_suffix};
use fdi_sql_core::{Dialect, map_sqlx_error};
use sqlx::{MySql, MySqlPool, Row, Transaction};

/// Upper bound of one INSERT statement.
const MAX_STATEMENT_BYTES: usize = 4 << 20;

pub struct MySqlWriter {
    pool: MySqlPool,
    spec: WriteSpec,
    prefix: String,
    suffix: String,
    max_statement: usize,
    tx: Option<Transaction<'static, MySql>>,
}

impl MySqlWriter {
    pub fn new(pool: MySqlPool, spec: WriteSpec) -> Self {
        let d = Dialect::MySql;
        let columns: Vec<String> = spec.columns.iter().map(|c| c.name.clone()).collect();
        let prefix = insert_prefix(d, &spec.table, &columns);
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
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut **tx)
            .await
            .map(|_| ())
            .map_err(|e| map_sqlx_error("write", e))
    }
}

#[async_trait]
impl SinkWriter for MySqlWriter {
    async fn begin(&mut self) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| map_sqlx_error("begin", e))?;
        let packet: i64 = sqlx::query("SELECT CAST(@@max_allowed_packet AS SIGNED)")
            .fetch_one(&mut *tx)
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| map_sqlx_error("begin", e))?;
        self.max_statement = MAX_STATEMENT_BYTES.min((packet.max(64 << 10) as usize) / 2);
        self.tx = Some(tx);
        if self.spec.clear_table {
            // DELETE, not TRUNCATE: TRUNCATE would commit implicitly.
            self.exec(format!(
                "DELETE FROM {}",
                Dialect::MySql.quote_table(&self.spec.table)
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
            Dialect::MySql,
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
