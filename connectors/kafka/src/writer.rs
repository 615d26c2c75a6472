//! Produce one JSON message per row with an idempotent producer, keyed by the first primary
//! column; each write waits for its rows' delivery reports, so the rows the producer or the broker
//! refused one by one are counted as dirty rows of that write.

use std::time::Duration;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteSpec, WriteStats};
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use crate::{KafkaConfig, map_error, partitions};

/// How many refused rows a write logs with their reasons (the rest are only counted).
const LOGGED_REFUSALS: usize = 5;

pub struct KafkaWriter {
    config: KafkaConfig,
    topic: String,
    /// The column whose value is each message's key: the first primary write column.
    key_column: Option<String>,
    producer: Option<FutureProducer>,
}

impl KafkaWriter {
    pub fn new(config: KafkaConfig, spec: WriteSpec) -> Self {
        Self {
            config,
            key_column: spec
                .columns
                .iter()
                .find(|c| c.primary)
                .map(|c| c.name.clone()),
            topic: spec.table,
            producer: None,
        }
    }

    /// Each row's key: the key column's value as text (None: NULL), if the target has a key
    /// column and the batch carries it.
    fn keys(&self, batch: &RecordBatch) -> Result<Option<Vec<Option<String>>>> {
        let Some(i) = self
            .key_column
            .as_deref()
            .and_then(|name| batch.schema().index_of(name).ok())
        else {
            return Ok(None);
        };
        let column = batch.column(i);
        let options = FormatOptions::default();
        let f = ArrayFormatter::try_new(column.as_ref(), &options)
            .map_err(|e| ConnectorError::internal(format!("formatting the key column: {e}")))?;
        Ok(Some(
            (0..batch.num_rows())
                .map(|r| column.is_valid(r).then(|| f.value(r).to_string()))
                .collect(),
        ))
    }
}

/// A refusal that concerns one message only (its size, its content): the row is dirty and the
/// others go on. Anything else (an unknown topic or partition, a timeout, a lost connection, a
/// fatal producer error) fails the write.
fn refused_row(e: &KafkaError) -> bool {
    let code = match e {
        KafkaError::MessageProduction(c) => *c,
        _ => match e.rdkafka_error_code() {
            Some(c) => c,
            None => return false,
        },
    };
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::BadMessage
    )
}

#[async_trait]
impl SinkWriter for KafkaWriter {
    async fn begin(&mut self) -> Result<()> {
        if self.producer.is_none() {
            // Fail early, naming the topic (topics are not created on the fly).
            partitions(&self.config, &self.topic).await?;
            let mut client = self.config.client();
            client
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "5")
                .set("message.timeout.ms", "30000");
            if let Some(max) = self.config.max_message_bytes {
                client.set("message.max.bytes", max.to_string());
            }
            let p: FutureProducer = client
                .create()
                .map_err(|e| map_error("create a producer", e))?;
            self.producer = Some(p);
        }
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        let rows = fdi_message_core::encode_rows(&batch)?;
        let keys = self.keys(&batch)?;
        let producer = self
            .producer
            .as_ref()
            .ok_or_else(|| ConnectorError::internal("write before begin"))?;
        let mut stats = WriteStats::default();
        let mut refusals: Vec<(usize, String)> = Vec::new();
        // (row, its size, its delivery report)
        let mut pending: Vec<(usize, u64, DeliveryFuture)> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let key = keys.as_ref().and_then(|k| k[i].as_deref());
            let mut record = FutureRecord::<str, [u8]>::to(&self.topic).payload(row.as_slice());
            if let Some(k) = key {
                record = record.key(k);
            }
            // A full local queue: wait for deliveries to make room, then try again.
            let sent = loop {
                match producer.send_result(record) {
                    Ok(f) => break Ok(f),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(10));
                        tokio::task::yield_now().await;
                    }
                    Err((e, _)) => break Err(e),
                }
            };
            match sent {
                Ok(f) => pending.push((i, row.len() as u64, f)),
                Err(e) if refused_row(&e) => {
                    stats.dirty_rows += 1;
                    refusals.push((i, e.to_string()));
                }
                Err(e) => return Err(self.failed("produce", e)),
            }
        }
        for (i, size, f) in pending {
            match f.await {
                Ok(Ok(_)) => {
                    stats.rows += 1;
                    stats.bytes += size;
                }
                Ok(Err((e, _))) if refused_row(&e) => {
                    stats.dirty_rows += 1;
                    refusals.push((i, e.to_string()));
                }
                Ok(Err((e, _))) => return Err(self.failed("deliver", e)),
                Err(_) => {
                    return Err(ConnectorError::external(format!(
                        "topic \"{}\": the producer was closed before row {} was delivered",
                        self.topic,
                        i + 1
                    )));
                }
            }
        }
        for (i, why) in refusals.iter().take(LOGGED_REFUSALS) {
            tracing::warn!(topic = %self.topic, row = i + 1, reason = %why, "row refused: a dirty row");
        }
        Ok(stats)
    }

    /// Every write waited for its rows' delivery reports: what is left is the producer's queue,
    /// flushed so that nothing is left in flight.
    async fn commit(&mut self) -> Result<()> {
        let Some(p) = self.producer.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(30)))
            .await
            .map_err(|e| ConnectorError::internal(format!("flush task: {e}")))?
            .map_err(|e| self.failed("flush", e))
    }

    /// A topic has no transactions here: what was delivered stays delivered.
    async fn abort(&mut self) -> Result<()> {
        if let Some(p) = self.producer.take() {
            let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(1))).await;
        }
        Ok(())
    }
}

impl KafkaWriter {
    /// A failure of the whole write, naming the topic.
    fn failed(&self, what: &str, e: KafkaError) -> ConnectorError {
        map_error(&format!("topic \"{}\": {what}", self.topic), e)
    }
}
