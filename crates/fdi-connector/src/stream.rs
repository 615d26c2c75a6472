//! Positions and acknowledgements: how a source learns that what it emitted is durable in the
//! target.
//!
//! A source that can resume (a Kafka consumer group, a RabbitMQ queue read with manual acks, a
//! Redis stream consumer group) tags each batch with the position it reached. The engine writes
//! the batches, commits the target (flush and confirms for targets without transactions), and
//! only then acknowledges the last committed position through the reader's [`Acknowledger`].
//! Nothing is acknowledged on receipt: after a crash, everything past the last acknowledged
//! position is delivered again. Delivery is at-least-once, and effectively once into a target
//! that upserts on a key. Table sources (a `SELECT`) carry no position and need no acks.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{BatchSender, ConnectorError, Result};

/// Where a source stood after a batch; opaque to the engine (Kafka: offset per partition;
/// RabbitMQ: the last delivery tag of the channel; Redis: the last stream entry id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourcePosition(pub serde_json::Value);

/// A batch of rows read from a source, and the source's position after it (None for sources
/// without positions).
#[derive(Debug, Clone)]
pub struct SourceBatch {
    pub rows: RecordBatch,
    pub position: Option<SourcePosition>,
    /// What the source read but could not turn into rows (a message that is not JSON, a value
    /// that does not fit its field): the engine keeps them as dirty rows (or fails the run when
    /// the task has no error handler). They are covered by `position` like the rows.
    pub rejected: Vec<RejectedRecord>,
}

/// A record of the source that is not a row: why, where it came from and what it held.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRecord {
    /// Its place among the batch's records as read (rows and rejected ones together, from 0).
    pub index: usize,
    pub reason: String,
    /// Which record (`topic "t", partition 0, offset 7`).
    pub origin: String,
    /// The record as read: its JSON when it is JSON, else its text.
    pub data: serde_json::Value,
}

impl SourceBatch {
    pub fn new(rows: RecordBatch, position: Option<SourcePosition>) -> Self {
        Self {
            rows,
            position,
            rejected: Vec::new(),
        }
    }
}

impl From<RecordBatch> for SourceBatch {
    fn from(rows: RecordBatch) -> Self {
        Self::new(rows, None)
    }
}

/// Tells a source that every row up to a position is durable in the target. Called by the engine
/// after each commit of the target, with the position of the last batch that commit covered;
/// positions only move forward. Usable while the reader still reads.
#[async_trait]
pub trait Acknowledger: Send + Sync {
    async fn ack(&self, up_to: &SourcePosition) -> Result<()>;
}

/// Run `f` unless `cancel` fires first (then `ErrorKind::Cancelled`).
pub async fn cancellable<T>(
    cancel: &tokio_util::sync::CancellationToken,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(ConnectorError::cancelled()),
        r = f => r,
    }
}

/// Send a batch to the engine, giving up when the run is cancelled or the receiver is gone: the
/// one way every reader hands over its batches.
pub async fn send_batch(
    out: &BatchSender,
    batch: impl Into<SourceBatch>,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<()> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(ConnectorError::cancelled()),
        r = out.send(batch.into()) => r.map_err(|_| {
            if cancel.is_cancelled() {
                ConnectorError::cancelled()
            } else {
                ConnectorError::internal("batch receiver closed")
            }
        }),
    }
}
