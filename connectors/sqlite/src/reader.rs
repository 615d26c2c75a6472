//! Streaming SQLite reader. Every column is cast to its storage class in SQL so values of mixed
//! storage classes in one column still decode.

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::{BatchSender, ReadSpec, Result, SourceReader};
use fdi_sql_core::reader::{ColumnRead, ReadPlan, plan_read, pump_rows};
use fdi_sql_core::types::read_kind;
use fdi_sql_core::{BatchAssembler, Dialect, ReadKind};
use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

use crate::SqliteConnector;

pub struct SqliteReader {
    pool: SqlitePool,
    plan: ReadPlan,
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
    pub async fn open(c: &SqliteConnector, spec: ReadSpec) -> Result<Self> {
        let d = Dialect::Sqlite;
        let plan = plan_read(d, c, spec.query, |col| {
            let kind = match read_kind(d, col) {
                // Dates and timestamps are stored as text; all text goes through one path.
                ReadKind::Date32 | ReadKind::Timestamp | ReadKind::TimestampTz => {
                    ReadKind::TextAs(col.arrow_type.clone())
                }
                k => k,
            };
            ColumnRead {
                as_text: false,
                cast_to: Some(storage_cast(&kind)),
                kind,
            }
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
impl SourceReader for SqliteReader {
    fn schema(&self) -> SchemaRef {
        self.plan.schema.clone()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        fdi_sql_core::statement_log::debug("sqlite read", &self.plan.sql);
        let assembler = BatchAssembler::new(
            self.plan.schema.clone(),
            self.plan.kinds.clone(),
            self.batch_rows,
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.plan.sql.clone())).fetch(&self.pool);
        pump_rows(rows, assembler, &out, &cancel).await
    }
}
