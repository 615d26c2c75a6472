//! Publish one persistent JSON message per row to a queue (default exchange) or to an exchange
//! with a routing key (`exchange/routing_key`), with publisher confirms.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteSpec, WriteStats};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Confirmation, PublisherConfirm};

use crate::{RabbitConfig, Session, map_error};

/// Where a target table's messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// A queue, through the default exchange (routing key = the queue's name).
    Queue(String),
    /// `exchange/routing_key`.
    Exchange {
        exchange: String,
        routing_key: String,
    },
}

impl Destination {
    /// The destination a target table names: `exchange/routing_key` (split at the first `/`), or
    /// a queue.
    pub(crate) fn of(table: &str) -> Result<Self> {
        match table.split_once('/') {
            None => Ok(Self::Queue(table.to_string())),
            Some((exchange, _)) if exchange.trim().is_empty() => {
                Err(ConnectorError::user(format!(
                    "target \"{table}\": the exchange before '/' is empty (name a queue, or exchange/routing_key)"
                )))
            }
            Some((exchange, routing_key)) => Ok(Self::Exchange {
                exchange: exchange.to_string(),
                routing_key: routing_key.to_string(),
            }),
        }
    }

    fn exchange(&self) -> &str {
        match self {
            Self::Queue(_) => "",
            Self::Exchange { exchange, .. } => exchange,
        }
    }

    fn routing_key(&self) -> &str {
        match self {
            Self::Queue(q) => q,
            Self::Exchange { routing_key, .. } => routing_key,
        }
    }
}

pub struct RabbitWriter {
    config: RabbitConfig,
    /// The target table as the task names it.
    target: String,
    destination: Destination,
    session: Option<Session>,
    /// Confirms of the messages published since the last commit.
    unconfirmed: Vec<PublisherConfirm>,
}

impl RabbitWriter {
    /// A writer to `spec.table` (a queue, or `exchange/routing_key`); connects in `begin`.
    pub fn new(config: RabbitConfig, spec: WriteSpec) -> Result<Self> {
        Ok(Self {
            config,
            destination: Destination::of(&spec.table)?,
            target: spec.table,
            session: None,
            unconfirmed: Vec::new(),
        })
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
            // Fail early, naming the queue or exchange, rather than have every message returned
            // unroutable.
            let found = match &self.destination {
                Destination::Queue(q) => s.queue_depth(q).await.map(|_| ()),
                Destination::Exchange { exchange, .. } => {
                    s.check_exchange(exchange, &self.target).await
                }
            };
            if let Err(e) = found {
                s.close().await;
                return Err(e);
            }
            s.channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(|e| map_error("confirm.select", e))?;
            self.session = Some(s);
        }
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        let rows = fdi_message_core::encode_rows(&batch)?;
        let mut bytes = 0u64;
        for row in &rows {
            let confirm = self
                .session()?
                .channel
                .basic_publish(
                    self.destination.exchange().into(),
                    self.destination.routing_key().into(),
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
            let why = match self.destination {
                Destination::Exchange { .. } => {
                    " (no queue is bound to the exchange with a matching key)"
                }
                Destination::Queue(_) => "",
            };
            return Err(ConnectorError::external(format!(
                "target \"{}\": the broker refused {refused} and returned {returned} messages unroutable{why}",
                self.target
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

#[cfg(test)]
mod tests {
    use super::Destination;

    #[test]
    fn a_slash_names_an_exchange_and_a_routing_key() {
        assert_eq!(
            Destination::of("orders").unwrap(),
            Destination::Queue("orders".into())
        );
        let d = Destination::of("events/order.created/eu").unwrap();
        assert_eq!(
            (d.exchange(), d.routing_key()),
            ("events", "order.created/eu")
        );
        let fanout = Destination::of("amq.fanout/").unwrap();
        assert_eq!(
            (fanout.exchange(), fanout.routing_key()),
            ("amq.fanout", "")
        );
        let q = Destination::of("orders").unwrap();
        assert_eq!((q.exchange(), q.routing_key()), ("", "orders"));
        assert!(
            Destination::of("/key")
                .unwrap_err()
                .message
                .contains("exchange before '/' is empty")
        );
    }
}
