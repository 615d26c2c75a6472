//! Consume a queue with manual acks: batches of messages parsed into fields, each tagged with the
//! channel's last delivery tag, acknowledged by the engine after the target commit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::{
    Acknowledger, BatchSender, ConnectorError, MessageField, Result, SourcePosition, SourceReader,
};
use fdi_message_core::{Batching, Feed, Message, MessageDecoder, pump};
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
}

/// A consumer of the queue as [`pump`] reads it.
struct QueueFeed<'a> {
    consumer: lapin::Consumer,
    session: &'a Session,
    queue: &'a str,
    prefetch: u64,
    /// Messages a timing run has still to read.
    left: u64,
    /// The delivery tag of the last message received.
    last_tag: u64,
}

impl Feed for QueueFeed<'_> {
    /// The delivery tag.
    type Origin = u64;

    async fn next(&mut self) -> Result<Option<(u64, Message)>> {
        match self.consumer.next().await {
            Some(Ok(delivery)) => {
                self.last_tag = delivery.delivery_tag;
                self.left = self.left.saturating_sub(1);
                Ok(Some(message(delivery)))
            }
            Some(Err(e)) => Err(map_error("consume", e)),
            None => Ok(None),
        }
    }

    fn drained(&self) -> bool {
        self.left == 0
    }

    fn patience(&self, _read: u64) -> Duration {
        DRAINED_AFTER
    }

    /// Silence while the prefetch window is full means waiting for acks, not an empty queue.
    fn counts_silence(&self) -> bool {
        let unacked = self
            .last_tag
            .saturating_sub(self.session.acked.load(Ordering::Relaxed));
        unacked < self.prefetch
    }

    fn name(&self, tag: &u64) -> String {
        format!("queue \"{}\", message with delivery tag {tag}", self.queue)
    }

    /// The last delivery tag: acknowledged (`multiple`), it covers every message before it.
    fn position(&self, tags: &[u64]) -> Option<SourcePosition> {
        tags.last().map(|tag| SourcePosition(Value::from(*tag)))
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
        let consumer = self
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
        let mut feed = QueueFeed {
            consumer,
            session: &self.session,
            queue: &self.queue,
            prefetch: self.prefetch,
            left: u64::from(self.depth),
            last_tag: 0,
        };
        let batching = Batching {
            batch_rows: self.batch_rows,
            linger: LINGER,
            follow: self.follow,
        };
        pump(&mut feed, &self.decoder, batching, &out, &cancel).await
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
