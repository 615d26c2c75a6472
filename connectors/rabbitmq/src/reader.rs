//! Consume a queue with manual acks: batches of messages parsed into fields, each tagged with the
//! channel's last delivery tag, acknowledged by the engine after the target commit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::stream::send_batch;
use fdi_connector::{
    Acknowledger, BatchSender, ConnectorError, MessageField, Result, SourceBatch, SourcePosition,
    SourceReader,
};
use fdi_message_core::{Message, MessageDecoder};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{RabbitConfig, Session, map_error};

/// How long a partial batch waits for more messages before it is sent.
const LINGER: Duration = Duration::from_millis(100);
/// A timing run stops when the queue stays silent this long although it held more messages when
/// the run started (another consumer took them).
const DRAINED_AFTER: Duration = Duration::from_secs(2);

pub struct RabbitReader {
    session: Arc<Session>,
    queue: String,
    decoder: MessageDecoder,
    follow: bool,
    batch_rows: usize,
    /// Messages the queue held at the start (what a timing run reads).
    depth: u32,
    prefetch: u64,
}

impl RabbitReader {
    pub async fn open(
        config: &RabbitConfig,
        queue: &str,
        fields: Vec<MessageField>,
        follow: bool,
        batch_rows: usize,
    ) -> Result<Self> {
        let session = Session::open(config).await?;
        let depth = session.queue_depth(queue).await?;
        // Unacknowledged deliveries the broker lets this consumer hold: room for the rows the
        // engine writes before its next commit, bounded so memory stays flat.
        let prefetch = (batch_rows.max(1) * 2).clamp(1_000, 20_000) as u16;
        session
            .channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| map_error("basic.qos", e))?;
        Ok(Self {
            session: Arc::new(session),
            queue: queue.to_string(),
            decoder: MessageDecoder::new(fields),
            follow,
            batch_rows: batch_rows.max(1),
            depth,
            prefetch: u64::from(prefetch),
        })
    }

    /// The batch of `pending` messages, tagged with the last one's delivery tag. A message that
    /// does not convert fails the read with its tag and the reason (it stays unacknowledged).
    fn batch(&self, pending: &[Message], tags: &[u64]) -> Result<SourceBatch> {
        let (rows, dirty) = self.decoder.decode(pending);
        if let Some(d) = dirty.first() {
            return Err(ConnectorError::user(format!(
                "queue \"{}\", message with delivery tag {}: {}",
                self.queue, tags[d.index], d.reason
            )));
        }
        Ok(SourceBatch {
            rows,
            position: tags.last().map(|tag| SourcePosition(Value::from(*tag))),
        })
    }
}

fn message(d: Delivery) -> (u64, Message) {
    let p = &d.properties;
    let mut properties: Vec<(&'static str, Value)> = vec![
        ("routing_key", Value::from(d.routing_key.as_str())),
        ("exchange", Value::from(d.exchange.as_str())),
        ("redelivered", Value::from(d.redelivered)),
        ("delivery_tag", Value::from(d.delivery_tag)),
    ];
    if let Some(ts) = p.timestamp() {
        properties.push(("timestamp", Value::from(ts.saturating_mul(1000))));
    }
    if let Some(id) = p.message_id() {
        properties.push(("message_id", Value::from(id.as_str())));
    }
    (
        d.delivery_tag,
        Message {
            payload: d.data,
            properties,
        },
    )
}

#[async_trait]
impl SourceReader for RabbitReader {
    fn schema(&self) -> SchemaRef {
        self.decoder.schema()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        let tag = format!("fdi-{}", fdi_types::new_id());
        let mut consumer = self
            .session
            .channel
            .basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| map_error("basic.consume", e))?;
        let mut pending: Vec<Message> = Vec::with_capacity(self.batch_rows);
        let mut tags: Vec<u64> = Vec::with_capacity(self.batch_rows);
        let mut left = u64::from(self.depth);
        let mut read = 0u64;
        let mut silent = Duration::ZERO;
        let mut last_tag = 0u64;
        loop {
            if !self.follow && left == 0 {
                break;
            }
            let next = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
                n = tokio::time::timeout(LINGER, consumer.next()) => n,
            };
            match next {
                Ok(Some(Ok(delivery))) => {
                    silent = Duration::ZERO;
                    last_tag = delivery.delivery_tag;
                    let (tag, m) = message(delivery);
                    tags.push(tag);
                    pending.push(m);
                    read += 1;
                    left = left.saturating_sub(1);
                    if pending.len() < self.batch_rows && (self.follow || left > 0) {
                        continue;
                    }
                }
                Ok(Some(Err(e))) => return Err(map_error("consume", e)),
                Ok(None) => break,
                Err(_) => {
                    // Silence while the prefetch window is full means waiting for acks, not an
                    // empty queue.
                    let unacked =
                        last_tag.saturating_sub(self.session.acked.load(Ordering::Relaxed));
                    if unacked < self.prefetch {
                        silent += LINGER;
                    }
                    if !self.follow && silent >= DRAINED_AFTER {
                        break;
                    }
                    if pending.is_empty() {
                        continue;
                    }
                }
            }
            let batch = self.batch(&pending, &tags)?;
            pending.clear();
            tags.clear();
            send_batch(&out, batch, &cancel).await?;
        }
        if !pending.is_empty() {
            let batch = self.batch(&pending, &tags)?;
            send_batch(&out, batch, &cancel).await?;
        }
        Ok(read)
    }

    fn acknowledger(&self) -> Option<Arc<dyn Acknowledger>> {
        Some(Arc::new(RabbitAck {
            session: self.session.clone(),
        }))
    }
}

/// Acknowledges every delivery up to a tag (`basic.ack` with `multiple`).
struct RabbitAck {
    session: Arc<Session>,
}

#[async_trait]
impl Acknowledger for RabbitAck {
    async fn ack(&self, up_to: &SourcePosition) -> Result<()> {
        let tag = up_to
            .0
            .as_u64()
            .ok_or_else(|| ConnectorError::internal(format!("not a delivery tag: {}", up_to.0)))?;
        self.session
            .channel
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .map_err(|e| map_error("basic.ack", e))?;
        self.session.acked.fetch_max(tag, Ordering::Relaxed);
        Ok(())
    }
}
