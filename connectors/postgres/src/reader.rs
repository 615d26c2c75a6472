//! Streaming PostgreSQL reader: one SELECT, rows fetched as they arrive, cut into batches.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::{BatchSender, ReadSpec, Result, SourceReader};
use fdi_sql_core::reader::{ReadPlan, plan_read, pump_rows, read_as};
use fdi_sql_core::{BatchAssembler, Dialect};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::PgConnector;

pub struct PgReader {
    pool: PgPool,
    plan: ReadPlan,
    batch_rows: usize,
}

impl PgReader {
    pub async fn open(c: &PgConnector, spec: ReadSpec) -> Result<Self> {
        let plan = plan_read(Dialect::Postgres, c, spec.query, |col| {
            read_as(Dialect::Postgres, col)
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
impl SourceReader for PgReader {
    fn schema(&self) -> SchemaRef {
        self.plan.schema.clone()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        fdi_sql_core::statement_log::debug("pg read", &self.plan.sql);
        let assembler = BatchAssembler::new(
            self.plan.schema.clone(),
            self.plan.kinds.clone(),
            self.batch_rows,
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.plan.sql.clone())).fetch(&self.pool);
        pump_rows(rows, assembler, &out, &cancel).await
    }
}
