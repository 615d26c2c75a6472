//! What the SQL readers share: planning a read ([`plan_read`]: the columns, their read kinds
//! and the SELECT, from the connector's own discovery) and the streaming read loop
//! ([`pump_rows`]: rows -> batches -> bounded channel, stopping promptly when the run is
//! cancelled).

use arrow::datatypes::SchemaRef;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use fdi_connector::{BatchSender, ColumnInfo, Connector, ConnectorError, Result, SourceQuery};
use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx::{ColumnIndex, Decode, Row, Type};
use tokio_util::sync::CancellationToken;

use crate::dialect::Dialect;
use crate::error::map_sqlx_error;
use crate::rows::{BatchAssembler, ReadKind};
use crate::select::{SelectBuilder, SelectColumn, query_select, table_select};
use crate::types::{pick_columns, read_kind, schema_of};

pub use fdi_connector::stream::send_batch;

/// How a reader reads one column: its kind, and how the select list casts it.
#[derive(Debug, Clone)]
pub struct ColumnRead {
    pub kind: ReadKind,
    /// Cast to text in SQL (the reader parses it into its Arrow type).
    pub as_text: bool,
    /// Or cast to this SQL type.
    pub cast_to: Option<&'static str>,
}

/// A column as `d` reads it by default: of its [`read_kind`], cast to text where that kind
/// parses text.
pub fn read_as(d: Dialect, column: &ColumnInfo) -> ColumnRead {
    let kind = read_kind(d, column);
    ColumnRead {
        as_text: kind.needs_text_cast(),
        kind,
        cast_to: None,
    }
}

/// One read, planned: its SELECT, and the schema and kinds of its rows.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub sql: String,
    pub schema: SchemaRef,
    pub kinds: Vec<ReadKind>,
}

/// Plan reading `query` from a source of dialect `d`: a table's columns (all, or those named)
/// filtered and ordered, or a custom query as written, each column read as `read` says. The
/// columns are what `connector` discovers (`columns`, `test_sql`). A message query is refused:
/// a SQL source has no messages.
pub async fn plan_read(
    d: Dialect,
    connector: &dyn Connector,
    query: SourceQuery,
    read: impl Fn(&ColumnInfo) -> ColumnRead,
) -> Result<ReadPlan> {
    let (columns, sql): (Vec<ColumnInfo>, SelectBuilder) = match query {
        SourceQuery::Table {
            table,
            columns,
            filters,
            order_by,
        } => {
            let all = connector.columns(&table).await?;
            let picked = pick_columns(&table, &all, &columns)?;
            (
                picked,
                Box::new(move |sel| table_select(d, &table, sel, &filters, order_by.as_ref())),
            )
        }
        SourceQuery::Sql(q) => {
            let cols = connector.test_sql(&q).await?;
            (cols, Box::new(move |sel| query_select(d, &q, sel)))
        }
        SourceQuery::Messages { source, .. } => {
            return Err(ConnectorError::user(format!(
                "{source}: a SQL source reads tables and queries, not messages (remove sourceMetaData)"
            )));
        }
    };
    let reads: Vec<ColumnRead> = columns.iter().map(read).collect();
    let select: Vec<SelectColumn<'_>> = columns
        .iter()
        .zip(&reads)
        .map(|(col, r)| SelectColumn {
            name: &col.name,
            as_text: r.as_text,
            cast_to: r.cast_to,
        })
        .collect();
    Ok(ReadPlan {
        sql: sql(&select),
        schema: schema_of(&columns),
        kinds: reads.into_iter().map(|r| r.kind).collect(),
    })
}

/// Drain `rows` into batches of the assembler's size and send them. Returns rows read.
pub async fn pump_rows<R>(
    mut rows: BoxStream<'_, std::result::Result<R, sqlx::Error>>,
    mut assembler: BatchAssembler,
    out: &BatchSender,
    cancel: &CancellationToken,
) -> Result<u64>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i8: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i16: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> &'r [u8]: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> NaiveDate: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> NaiveDateTime: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> DateTime<Utc>: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut total = 0u64;
    // One waiter for the whole loop (not one registration per row), polled only while the
    // rows wait for the server: a row already there is taken without looking at it (3% of a
    // fast read's CPU went to that), and every full batch is sent by `send_batch`, which
    // stops on a cancel.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let next = tokio::select! {
            biased;
            next = rows.next() => next,
            _ = &mut cancelled => return Err(ConnectorError::cancelled()),
        };
        match next {
            Some(Ok(row)) => {
                assembler.append(&row)?;
                total += 1;
                if assembler.is_full()
                    && let Some(batch) = assembler.flush()?
                {
                    send_batch(out, batch, cancel).await?;
                }
            }
            Some(Err(e)) => return Err(map_sqlx_error("read", e)),
            None => break,
        }
    }
    if let Some(batch) = assembler.flush()? {
        send_batch(out, batch, cancel).await?;
    }
    Ok(total)
}
