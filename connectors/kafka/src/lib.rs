//! Kafka connector (`rdkafka`, bundled librdkafka): a topic is a table.
//!
//! - **Content**: `broker` (`host:port`, several separated by `,` or `;`), `ssl_enable`,
//!   `ssl_username`, `ssl_password` (SASL over TLS is not built in yet: `ssl_enable` true is
//!   refused naming the field).
//! - **Discovery**: topics are the tables (internal `__` topics left out); test-connect reads
//!   the broker's metadata. A topic's columns come from the task's `sourceMetaData`.
//! - **Reader**: a consumer group per reader name (the task: `fdi-<task id>`), auto-commit off.
//!   JSON values are parsed into the task's fields; `@key`, `@partition`, `@offset`,
//!   `@timestamp` (epoch ms) and `@topic` are fields too. Each batch carries the next offset of
//!   every partition read so far; the engine commits those offsets for the group only after the
//!   target committed the batch, so a restart resumes after the last committed row
//!   (at-least-once; effectively once into a target with an upsert key). A timing run reads up
//!   to the high watermarks of its start; a realtime run follows the topic until stopped.
//! - **Writer**: one JSON message per row (see `fdi-message-core`), idempotent producer
//!   (`acks=all`); the commit returns once every delivery report arrived, and a failed delivery
//!   fails the commit. A topic has no transactions here: messages delivered before a failed run
//!   are not taken back.

mod reader;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fdi_connector::config::{de, from_content};
use fdi_connector::{
    ColumnInfo, Connector, ConnectorError, ConnectorFactory, ContentField, ReadSpec, Result,
    SinkWriter, SourceQuery, SourceReader, WriteSpec,
};
use fdi_types::DatasourceType;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Deserialize;

pub use reader::KafkaReader;
pub use writer::KafkaWriter;

/// `content` of a KAFKA datasource, as the reference names its fields.
const CONTENT_FIELDS: &[ContentField] = &[
    ContentField::plain("broker"),
    ContentField::plain("ssl_enable"),
    ContentField::plain("ssl_username"),
    ContentField::secret("ssl_password"),
];

/// How long a metadata request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// A KAFKA datasource's configuration.
#[derive(Clone, Deserialize)]
pub struct KafkaConfig {
    #[serde(deserialize_with = "de::text")]
    pub broker: String,
    #[serde(default, deserialize_with = "de::flag")]
    pub ssl_enable: bool,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub ssl_username: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub ssl_password: Option<String>,
}

impl std::fmt::Debug for KafkaConfig {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("broker", &self.broker)
            .field("ssl_enable", &self.ssl_enable)
            .finish_non_exhaustive()
    }
}

impl KafkaConfig {
    pub fn parse(content: &serde_json::Value) -> Result<Self> {
        let c: Self = from_content(content)?;
        if c.ssl_enable {
            return Err(ConnectorError::user(
                "content.ssl_enable: SASL/TLS connections to Kafka are not supported by this build yet",
            ));
        }
        for b in c.brokers().split(',') {
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(ConnectorError::user(format!(
                    "content.broker: {b:?} is not host:port"
                )));
            }
        }
        Ok(c)
    }

    /// The bootstrap list as librdkafka takes it.
    fn brokers(&self) -> String {
        self.broker
            .split([',', ';'])
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(crate) fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers())
            .set("socket.timeout.ms", "10000")
            .set("log_level", "3");
        c
    }
}

/// An rdkafka error as the SPI's (the broker's side: retryable).
pub(crate) fn map_error(context: &str, e: rdkafka::error::KafkaError) -> ConnectorError {
    ConnectorError::external(format!("{context}: {e}"))
}

/// The topics of the cluster (blocking: run it off the async threads).
fn topics(config: &KafkaConfig) -> Result<Vec<(String, usize)>> {
    let consumer: BaseConsumer = config
        .client()
        .create()
        .map_err(|e| map_error("create a client", e))?;
    let md = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| map_error("read the broker's metadata", e))?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

pub(crate) async fn topics_async(config: &KafkaConfig) -> Result<Vec<(String, usize)>> {
    let c = config.clone();
    tokio::task::spawn_blocking(move || topics(&c))
        .await
        .map_err(|e| ConnectorError::internal(format!("metadata task: {e}")))?
}

/// The number of partitions of `topic`; a missing topic is a user error naming it.
pub(crate) async fn partitions(config: &KafkaConfig, topic: &str) -> Result<usize> {
    topics_async(config)
        .await?
        .into_iter()
        .find(|(t, _)| t == topic)
        .map(|(_, n)| n)
        .filter(|n| *n > 0)
        .ok_or_else(|| ConnectorError::user(format!("topic \"{topic}\" does not exist")))
}

/// Builds Kafka connectors.
#[derive(Debug, Clone, Default)]
pub struct Factory;

impl ConnectorFactory for Factory {
    fn datasource_type(&self) -> DatasourceType {
        DatasourceType::Kafka
    }

    fn content_fields(&self) -> &'static [ContentField] {
        CONTENT_FIELDS
    }

    fn validate(&self, content: &serde_json::Value) -> Result<()> {
        KafkaConfig::parse(content).map(|_| ())
    }

    fn create(&self, content: &serde_json::Value) -> Result<Arc<dyn Connector>> {
        Ok(Arc::new(KafkaConnector {
            config: KafkaConfig::parse(content)?,
        }))
    }
}

/// One configured Kafka datasource.
pub struct KafkaConnector {
    config: KafkaConfig,
}

#[async_trait]
impl Connector for KafkaConnector {
    fn datasource_type(&self) -> DatasourceType {
        DatasourceType::Kafka
    }

    async fn test_connect(&self) -> Result<()> {
        topics_async(&self.config).await.map(|_| ())
    }

    async fn list_tables(&self, filter: Option<&str>) -> Result<Vec<String>> {
        let needle = filter.map(str::to_lowercase);
        let mut names: Vec<String> = topics_async(&self.config)
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| {
                needle
                    .as_deref()
                    .is_none_or(|n| t.to_lowercase().contains(n))
            })
            .collect();
        names.sort();
        Ok(names)
    }

    async fn columns(&self, _table: &str) -> Result<Vec<ColumnInfo>> {
        Err(ConnectorError::user(
            "a KAFKA topic's fields come from the task's sourceMetaData",
        ))
    }

    fn schemaless_target(&self) -> bool {
        true
    }

    async fn test_sql(&self, _sql: &str) -> Result<Vec<ColumnInfo>> {
        Err(ConnectorError::user("KAFKA runs no SQL"))
    }

    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>> {
        match spec.query {
            SourceQuery::Messages {
                source,
                fields,
                follow,
                reader_name,
            } => Ok(Box::new(
                KafkaReader::open(
                    &self.config,
                    &source,
                    fields,
                    follow,
                    &reader_name,
                    spec.batch_rows,
                )
                .await?,
            )),
            _ => Err(ConnectorError::user(
                "a KAFKA source reads a topic: give its fields in sourceMetaData",
            )),
        }
    }

    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(KafkaWriter::new(self.config.clone(), spec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_names_bad_fields() {
        let err = |v| KafkaConfig::parse(&v).unwrap_err().message;
        assert_eq!(err(json!({})), "content.broker: required");
        assert_eq!(
            err(json!({"broker": "h:1;nohost"})),
            "content.broker: \"nohost\" is not host:port"
        );
        assert!(
            err(json!({"broker": "h:1", "ssl_enable": true})).starts_with("content.ssl_enable:")
        );
        let c = KafkaConfig::parse(&json!({"broker": "a:1; b:2,c:3", "ssl_password": "s3cret"}))
            .unwrap();
        assert_eq!(c.brokers(), "a:1,b:2,c:3");
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
