//! Produce one JSON message per row with an idempotent producer; the commit waits for every
//! delivery report.

use std::time::Duration;

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteSpec, WriteStats};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::{KafkaConfig, map_error, partitions};

pub struct KafkaWriter {
    config: KafkaConfig,
    topic: String,
    producer: Option<FutureProducer>,
    /// Delivery reports of the messages produced since the last commit.
    unconfirmed: Vec<DeliveryFuture>,
}

impl KafkaWriter {
    pub fn new(config: KafkaConfig, spec: WriteSpec) -> Self {
        Self {
            config,
            topic: spec.table,
            producer: None,
            unconfirmed: Vec::new(),
        }
    }
}

#[async_trait]
impl SinkWriter for KafkaWriter {
    async fn begin(&mut self) -> Result<()> {
        if self.producer.is_none() {
            // Fail early, naming the topic (topics are not created on the fly).
            partitions(&self.config, &self.topic).await?;
            let p: FutureProducer = self
                .config
                .client()
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "5")
                .set("message.timeout.ms", "30000")
                .create()
                .map_err(|e| map_error("create a producer", e))?;
            self.producer = Some(p);
        }
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        let rows = fdi_message_core::encode_rows(&batch)
            .map_err(|e| ConnectorError::internal(format!("encoding rows as JSON: {e}")))?;
        let producer = self
            .producer
            .as_ref()
            .ok_or_else(|| ConnectorError::internal("write before begin"))?;
        let mut bytes = 0u64;
        for row in &rows {
            let mut record = FutureRecord::<(), [u8]>::to(&self.topic).payload(row.as_slice());
            // A full local queue: wait for deliveries to make room, then try again.
            let future = loop {
                match producer.send_result(record) {
                    Ok(f) => break f,
                    Err((e, r)) => {
                        if !matches!(
                            e,
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull
                            )
                        ) {
                            return Err(map_error("produce", e));
                        }
                        record = r;
                        producer.poll(Duration::from_millis(10));
                        tokio::task::yield_now().await;
                    }
                }
            };
            self.unconfirmed.push(future);
            bytes += row.len() as u64;
        }
        Ok(WriteStats {
            rows: rows.len() as u64,
            bytes,
            dirty_rows: 0,
        })
    }

    /// Returns once the broker acknowledged every message produced since the last commit.
    async fn commit(&mut self) -> Result<()> {
        let mut failed = 0usize;
        let mut first = None;
        for f in self.unconfirmed.drain(..) {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    failed += 1;
                    first.get_or_insert(e.to_string());
                }
                Err(_) => {
                    failed += 1;
                    first.get_or_insert("the producer was closed".to_string());
                }
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err(ConnectorError::external(format!(
                "topic \"{}\": {failed} messages were not delivered: {e}",
                self.topic
            ))),
        }
    }

    /// A topic has no transactions here: what was delivered stays delivered.
    async fn abort(&mut self) -> Result<()> {
        self.unconfirmed.clear();
        if let Some(p) = self.producer.take() {
            let _ = p.flush(Duration::from_secs(1));
        }
        Ok(())
    }
}
