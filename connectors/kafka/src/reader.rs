//! Consume a topic with auto-commit off: batches of messages parsed into fields, each tagged with
//! the next offset of every partition read so far; the engine commits those offsets to the task's
//! consumer group after the target commit.
//!
//! A task has one reader at a time (the store's run lease sees to that), so the reader assigns
//! itself every partition of the topic at the group's committed offsets instead of joining the
//! group: no rebalance to wait for, and a task restarted after a crash (`kill -9`) reads at once
//! instead of waiting for the broker to expire the dead member's session. Partitions added to the
//! topic while a realtime run follows it are read from the next run on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use fdi_connector::{
    Acknowledger, BatchSender, ConnectorError, MessageField, Result, SourcePosition, SourceReader,
};
use fdi_message_core::{Batching, Feed, Message, MessageDecoder, pump};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{KafkaConfig, map_error, partitions};

/// How long a partial batch waits for more messages before it is sent.
const LINGER: Duration = Duration::from_millis(50);
/// A timing run stops when the topic stays silent this long after its last message ...
const DRAINED_AFTER: Duration = Duration::from_secs(3);
/// ... or this long before its first (the broker may take a moment to answer the first fetch).
const FIRST_MESSAGE_WITHIN: Duration = Duration::from_secs(30);
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

pub struct KafkaReader {
    feed: TopicFeed,
    decoder: MessageDecoder,
    follow: bool,
    batch_rows: usize,
}

/// The topic as [`pump`] reads it: one message at a time, with the next offset of every
/// partition read so far.
struct TopicFeed {
    consumer: Arc<StreamConsumer>,
    topic: String,
    /// Partition -> the next offset to read (the group's committed one, or the earliest).
    next: BTreeMap<i32, i64>,
    /// Partition -> the high watermark at the start (what a timing run reads up to).
    end: BTreeMap<i32, i64>,
}

impl KafkaReader {
    pub async fn open(
        config: &KafkaConfig,
        topic: &str,
        fields: Vec<MessageField>,
        follow: bool,
        reader_name: &str,
        batch_rows: usize,
    ) -> Result<Self> {
        let n = partitions(config, topic).await?;
        let consumer: StreamConsumer = config
            .client()
            .set("group.id", format!("fdi-{reader_name}"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // A fetch the broker holds for want of data returns after 50 ms, not librdkafka's
            // 500 ms: that wait is end-to-end lag of a realtime task.
            .set("fetch.wait.max.ms", "50")
            // What librdkafka prefetches ahead of the reader: at most 8 MB a partition (its default,
            // 64 MB, made a 1M-message backlog of 3 partitions cost 120 MB of RSS).
            .set("queued.max.messages.kbytes", "8192")
            .create()
            .map_err(|e| map_error("create a consumer", e))?;
        let consumer = Arc::new(consumer);
        let (next, end) = {
            let c = consumer.clone();
            let topic = topic.to_string();
            tokio::task::spawn_blocking(move || positions(&c, &topic, n))
                .await
                .map_err(|e| ConnectorError::internal(format!("watermarks: {e}")))??
        };
        let mut assignment = TopicPartitionList::new();
        for (p, o) in &next {
            assignment
                .add_partition_offset(topic, *p, Offset::Offset(*o))
                .map_err(|e| map_error("assign the partitions", e))?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| map_error("assign the partitions", e))?;
        Ok(Self {
            feed: TopicFeed {
                consumer,
                topic: topic.to_string(),
                next,
                end,
            },
            decoder: MessageDecoder::new(fields),
            follow,
            batch_rows,
        })
    }
}

impl Feed for TopicFeed {
    /// (partition, offset)
    type Origin = (i32, i64);

    async fn next(&mut self) -> Result<Option<((i32, i64), Message)>> {
        let m = self
            .consumer
            .recv()
            .await
            .map_err(|e| map_error("consume", e))?;
        let (p, o) = (m.partition(), m.offset());
        let mut properties: Vec<(&'static str, Value)> = vec![
            ("partition", Value::from(p)),
            ("offset", Value::from(o)),
            ("topic", Value::from(m.topic())),
        ];
        // A message without a key has a NULL @key.
        properties.push((
            "key",
            m.key().map_or(Value::Null, |k| {
                Value::from(String::from_utf8_lossy(k).into_owned())
            }),
        ));
        if let Some(ts) = m.timestamp().to_millis() {
            properties.push(("timestamp", Value::from(ts)));
        }
        let payload = m.payload().map(<[u8]>::to_vec).unwrap_or_default();
        drop(m);
        self.next.insert(p, o + 1);
        Ok(Some((
            (p, o),
            Message {
                payload,
                properties,
            },
        )))
    }

    fn drained(&self) -> bool {
        self.end
            .iter()
            .all(|(p, high)| self.next.get(p).is_some_and(|n| n >= high))
    }

    fn patience(&self, read: u64) -> Duration {
        if read == 0 {
            FIRST_MESSAGE_WITHIN
        } else {
            DRAINED_AFTER
        }
    }

    fn name(&self, (p, o): &(i32, i64)) -> String {
        format!("topic \"{}\", partition {p}, offset {o}", self.topic)
    }

    /// The next offset of every partition read so far.
    fn position(&self, _origins: &[(i32, i64)]) -> Option<SourcePosition> {
        let next: serde_json::Map<String, Value> = self
            .next
            .iter()
            .map(|(p, o)| (p.to_string(), Value::from(*o)))
            .collect();
        Some(SourcePosition(Value::Object(next)))
    }
}

/// Where the group stands on each partition (its committed offset, or the earliest one), and the
/// high watermarks now.
#[allow(clippy::type_complexity)]
fn positions(
    consumer: &StreamConsumer,
    topic: &str,
    partitions: usize,
) -> Result<(BTreeMap<i32, i64>, BTreeMap<i32, i64>)> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, WATERMARK_TIMEOUT)
        .map_err(|e| map_error("read the group's offsets", e))?;
    let mut next = BTreeMap::new();
    let mut end = BTreeMap::new();
    for p in 0..partitions as i32 {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, WATERMARK_TIMEOUT)
            .map_err(|e| map_error("read the watermarks", e))?;
        let from = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        next.insert(p, from);
        end.insert(p, high);
    }
    Ok((next, end))
}

#[async_trait]
impl SourceReader for KafkaReader {
    fn schema(&self) -> SchemaRef {
        self.decoder.schema()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        let batching = Batching {
            batch_rows: self.batch_rows,
            linger: LINGER,
            follow: self.follow,
        };
        pump(&mut self.feed, &self.decoder, batching, &out, &cancel).await
    }

    fn acknowledger(&self) -> Option<Arc<dyn Acknowledger>> {
        Some(Arc::new(KafkaAck {
            consumer: self.feed.consumer.clone(),
            topic: self.feed.topic.clone(),
        }))
    }
}

/// Commits the group's offsets (the next offset to read, per partition).
struct KafkaAck {
    consumer: Arc<StreamConsumer>,
    topic: String,
}

#[async_trait]
impl Acknowledger for KafkaAck {
    async fn ack(&self, up_to: &SourcePosition) -> Result<()> {
        let Value::Object(offsets) = &up_to.0 else {
            return Err(ConnectorError::internal(format!(
                "not a Kafka position: {}",
                up_to.0
            )));
        };
        let mut tpl = TopicPartitionList::new();
        for (p, o) in offsets {
            let (Ok(p), Some(o)) = (p.parse::<i32>(), o.as_i64()) else {
                return Err(ConnectorError::internal(format!(
                    "not a Kafka position: {}",
                    up_to.0
                )));
            };
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .map_err(|e| map_error("offsets", e))?;
        }
        let consumer = self.consumer.clone();
        tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| ConnectorError::internal(format!("commit task: {e}")))?
            .map_err(|e| map_error("commit the group's offsets", e))
    }
}
