//! Streaming MySQL reader: one SELECT, rows fetched as they arrive, cut into batches.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::{BatchSender, ReadSpec, Result, SourceReader};
use fdi_sql_core::reader::{ReadPlan, plan_read, pump_rows, read_as};
use fdi_sql_core::{BatchAssembler, Dialect};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::MySqlConnector;

pub struct MySqlReader {
    pool: MySqlPool,
    plan: ReadPlan,
    batch_rows: usize,
}

impl MySqlReader {
    pub async fn open(c: &MySqlConnector, spec: ReadSpec) -> Result<Self> {
        let plan = plan_read(Dialect::MySql, c, spec.query, |col| {
            read_as(Dialect::MySql, col)
        })
        .await?;
        Ok(Self {
            pool: c.pool.clone(),
            plan,
            batch_rows: spec.batch_rows,
        })
    }
}

#[async_trait]
impl SourceReader for MySqlReader {
    fn schema(&self) -> SchemaRef {
        self.plan.schema.clone()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        fdi_sql_core::statement_log::debug("mysql read", &self.plan.sql);
        let assembler = BatchAssembler::new(
            self.plan.schema.clone(),
            self.plan.kinds.clone(),
            self.batch_rows,
        );
        // A connection of its own, closed (not pooled) when the read ends: a terminated read
        // leaves a result set the protocol would have to drain row by row before the
        // connection could serve anything else.
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| fdi_sql_core::map_sqlx_error("read", e))?
            .detach();
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.plan.sql.clone())).fetch(&mut conn);
        pump_rows(rows, assembler, &out, &cancel).await
    }
}
