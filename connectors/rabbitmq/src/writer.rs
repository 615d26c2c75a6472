//! Publish one persistent JSON message per row to a queue, with publisher confirms.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteSpec, WriteStats};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation, PublisherConfirm};

use crate::{RabbitConfig, Session, map_error};

pub struct RabbitWriter {
    config: RabbitConfig,
    queue: String,
    session: Option<Session>,
    /// Confirms of the messages published since the last commit.
    unconfirmed: Vec<PublisherConfirm>,
}

impl RabbitWriter {
    pub fn new(config: RabbitConfig, spec: WriteSpec) -> Self {
        Self {
            config,
            queue: spec.table,
            session: None,
            unconfirmed: Vec::new(),
        }
    }

    fn session(&self) -> Result<&Session> {
        self.session
            .as_ref()
            .ok_or_else(|| ConnectorError::internal("write before begin"))
    }
}

#[async_trait]
impl SinkWriter for RabbitWriter {
    async fn begin(&mut self) -> Result<()> {
        if self.session.is_none() {
            let s = Session::open(&self.config).await?;
            // Fail early, naming the queue, rather than have every message returned unroutable.
            s.queue_depth(&self.queue).await?;
            s.channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| map_error("confirm.select", e))?;
            self.session = Some(s);
        }
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        let rows = fdi_message_core::encode_rows(&batch)
            .map_err(|e| ConnectorError::internal(format!("encoding rows as JSON: {e}")))?;
        let mut bytes = 0u64;
        for row in &rows {
            let confirm = self
                .session()?
                .channel
                .basic_publish(
                    "".into(),
                    self.queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    row,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into()),
                )
                .await
                .map_err(|e| map_error("basic.publish", e))?;
            self.unconfirmed.push(confirm);
            bytes += row.len() as u64;
        }
        Ok(WriteStats {
            rows: rows.len() as u64,
            bytes,
            dirty_rows: 0,
        })
    }

    /// Returns once the broker confirmed every message published since the last commit.
    async fn commit(&mut self) -> Result<()> {
        let mut refused = 0usize;
        let mut returned = 0usize;
        for confirm in self.unconfirmed.drain(..) {
            match confirm
                .await
                .map_err(|e| map_error("publisher confirm", e))?
            {
                Confirmation::Ack(None) => {}
                Confirmation::Ack(Some(_)) => returned += 1,
                Confirmation::Nack(_) => refused += 1,
                Confirmation::NotRequested => {
                    return Err(ConnectorError::internal("publisher confirms are off"));
                }
            }
        }
        if refused + returned > 0 {
            return Err(ConnectorError::external(format!(
                "queue \"{}\": the broker refused {refused} and returned {returned} messages unroutable",
                self.queue
            )));
        }
        Ok(())
    }

    /// A queue has no transactions: what was published stays published.
    async fn abort(&mut self) -> Result<()> {
        self.unconfirmed.clear();
        if let Some(s) = self.session.take() {
            s.close().await;
        }
        Ok(())
    }
}
