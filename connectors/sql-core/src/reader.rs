//! The streaming read loop shared by the SQL readers: rows -> batches -> bounded channel,
//! stopping promptly when the run is cancelled.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use fdi_connector::{BatchSender, ConnectorError, Result};
use futures::StreamExt;
use futures::stream::BoxStream;
use sqlx::{ColumnIndex, Decode, Row, Type};
use tokio_util::sync::CancellationToken;

use crate::error::map_sqlx_error;
use crate::rows::BatchAssembler;

pub use fdi_connector::stream::send_batch;

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
    // One waiter for the whole loop (not one registration per row).
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut cancelled => return Err(ConnectorError::cancelled()),
            next = rows.next() => next,
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
