//! Kafka connector (`rdkafka`, bundled librdkafka built with OpenSSL): a topic is a table.
//!
//! - **Content**: `broker` (`host:port`, several separated by `,` or `;`), `ssl_enable`,
//!   `ssl_username`, `ssl_password` (a secret), and two of ours, both optional:
//!   `sasl_mechanism` (`PLAIN`, the default, `SCRAM-SHA-256` or `SCRAM-SHA-512`) and
//!   `max_message_bytes` (the largest message the writer produces, librdkafka's
//!   `message.max.bytes`: 1000 to 1000000000, default 1000000).
//!   How they map to the client's security settings:
//!
//!   | `ssl_enable` | `ssl_username` + `ssl_password` | `security.protocol` | `sasl.mechanisms` |
//!   |---|---|---|---|
//!   | false | — | `PLAINTEXT` | — |
//!   | false | given | `SASL_PLAINTEXT` | `sasl_mechanism` (PLAIN) |
//!   | true | — | `SSL` | — |
//!   | true | given | `SASL_SSL` | `sasl_mechanism` (PLAIN) |
//!
//!   A user name without a password (or the reverse) is refused naming the missing field, and
//!   so is a `sasl_mechanism` without them. TLS checks the broker's certificate against the
//!   system's root certificates (OpenSSL's default paths) and its host name.
//! - **Discovery**: topics are the tables (internal `__` topics left out); test-connect reads
//!   the broker's metadata (within 5 s; a failure carries the broker's last error, e.g. a SASL
//!   handshake the broker refused). A topic's columns come from the task's `sourceMetaData`.
//! - **Reader**: a consumer group per reader name (the task: `fdi-<task id>`), auto-commit off.
//!   JSON values are parsed into the task's fields; `@key`, `@partition`, `@offset`,
//!   `@timestamp` (epoch ms) and `@topic` are fields too (`@key` is NULL for a message without
//!   a key). Each batch carries the next offset of every partition read so far; the engine
//!   commits those offsets for the group only after the target committed the batch, so a restart resumes after the last committed row
//!   (at-least-once; effectively once into a target with an upsert key). A timing run reads up
//!   to the high watermarks of its start; a realtime run follows the topic until stopped.
//! - **Writer**: one JSON message per row (see `fdi-message-core`), idempotent producer
//!   (`acks=all`). Each write returns once every delivery report of its rows arrived.
//!   - **Key**: the value, as text, of the first write column marked `primary` (a topic target
//!     takes the source's columns, its primary key with them); no primary column, or a NULL
//!     value: no key. The key picks the partition, so one row's changes stay in order.
//!   - **Dirty rows**: a row refused for a reason of its own is a dirty row of the write
//!     (`WriteStats.dirty_rows`, not counted in `rows`); the engine's error handler decides
//!     whether the run goes on. The producer refuses a row whose message is larger than
//!     `max_message_bytes` before sending it; the broker's refusals of records (too large,
//!     invalid) count the same way, for every row of the request it refused. Every other
//!     failure (an unknown topic or partition, a lost connection, a timeout) fails the write.
//!
//!   A topic has no transactions here: messages delivered before a failed run are not taken
//!   back.

mod reader;
mod writer;

use std::time::Duration;

use async_trait::async_trait;
use fdi_connector::config::{de, from_content};
use fdi_connector::{
    ColumnInfo, ConnectorError, ContentField, ReadSpec, Result, SinkWriter, SourceQuery,
    SourceReader, WriteSpec,
};
use fdi_message_core::{FactoryOf, MessageConnector};
use fdi_types::DatasourceType;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use serde::{Deserialize, Deserializer, de::Error as _};

/// The datasource type this connector serves.
pub const TYPE: DatasourceType = DatasourceType::new("KAFKA", "kafka");

pub use reader::KafkaReader;
pub use writer::KafkaWriter;

/// `content` of a KAFKA datasource, as the reference names its fields.
const CONTENT_FIELDS: &[ContentField] = &[
    ContentField::plain("broker"),
    ContentField::plain("ssl_enable"),
    ContentField::plain("ssl_username"),
    ContentField::secret("ssl_password"),
    ContentField::plain("sasl_mechanism"),
    ContentField::plain("max_message_bytes"),
];

/// The SASL mechanisms a datasource may name (librdkafka's spelling).
const SASL_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// librdkafka's bounds of `message.max.bytes`.
const MESSAGE_BYTES: std::ops::RangeInclusive<u64> = 1_000..=1_000_000_000;

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
    /// Ours: `PLAIN` (the default), `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    #[serde(default, deserialize_with = "sasl_mechanism")]
    pub sasl_mechanism: Option<String>,
    /// Ours: the producer's `message.max.bytes`.
    #[serde(default, deserialize_with = "message_bytes")]
    pub max_message_bytes: Option<u64>,
}

/// One of [`SASL_MECHANISMS`], any case.
fn sasl_mechanism<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(m) = de::opt_text(d)? else {
        return Ok(None);
    };
    let upper = m.trim().to_ascii_uppercase().replace('_', "-");
    if SASL_MECHANISMS.contains(&upper.as_str()) {
        Ok(Some(upper))
    } else {
        Err(D::Error::custom(format!(
            "{m:?} is not one of {}",
            SASL_MECHANISMS.join(", ")
        )))
    }
}

/// A byte count within [`MESSAGE_BYTES`], as a number or its text.
fn message_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let n = match &v {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) if s.trim().is_empty() => return Ok(None),
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if MESSAGE_BYTES.contains(&n) => Ok(Some(n)),
        _ => Err(D::Error::custom(format!(
            "{v} is not a byte count from {} to {}",
            MESSAGE_BYTES.start(),
            MESSAGE_BYTES.end()
        ))),
    }
}

impl std::fmt::Debug for KafkaConfig {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("broker", &self.broker)
            .field("ssl_enable", &self.ssl_enable)
            .field("ssl_username", &self.ssl_username)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("max_message_bytes", &self.max_message_bytes)
            .finish_non_exhaustive()
    }
}

impl KafkaConfig {
    pub fn parse(content: &serde_json::Value) -> Result<Self> {
        let c: Self = from_content(content)?;
        match (&c.ssl_username, &c.ssl_password) {
            (Some(_), None) => {
                return Err(ConnectorError::user(
                    "content.ssl_password: required with content.ssl_username (SASL)",
                ));
            }
            (None, Some(_)) => {
                return Err(ConnectorError::user(
                    "content.ssl_username: required with content.ssl_password (SASL)",
                ));
            }
            (None, None) if c.sasl_mechanism.is_some() => {
                return Err(ConnectorError::user(
                    "content.sasl_mechanism: needs content.ssl_username and content.ssl_password",
                ));
            }
            _ => {}
        }
        fdi_connector::config::address_list("content.broker", &c.broker, None)?;
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

    /// Whether the client authenticates with SASL (a user name and password are given).
    fn sasl(&self) -> bool {
        self.ssl_username.is_some() && self.ssl_password.is_some()
    }

    /// `security.protocol` (see the crate's table).
    fn security_protocol(&self) -> &'static str {
        match (self.ssl_enable, self.sasl()) {
            (false, false) => "PLAINTEXT",
            (false, true) => "SASL_PLAINTEXT",
            (true, false) => "SSL",
            (true, true) => "SASL_SSL",
        }
    }

    /// The client settings every consumer and producer starts from.
    pub(crate) fn client(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers())
            .set("socket.timeout.ms", "10000")
            .set("log_level", "3")
            .set("security.protocol", self.security_protocol());
        if let (Some(user), Some(password)) = (&self.ssl_username, &self.ssl_password) {
            c.set(
                "sasl.mechanisms",
                self.sasl_mechanism.as_deref().unwrap_or("PLAIN"),
            )
            .set("sasl.username", user)
            .set("sasl.password", password);
        }
        c
    }

    /// What a failure to reach the brokers may be due to, for its message.
    fn security_hint(&self) -> String {
        match self.security_protocol() {
            "PLAINTEXT" => String::new(),
            p if self.sasl() => format!(
                " (connecting with {p}, SASL mechanism {}: content.ssl_enable, content.ssl_username, content.sasl_mechanism)",
                self.sasl_mechanism.as_deref().unwrap_or("PLAIN")
            ),
            p => format!(" (connecting with {p}: content.ssl_enable)"),
        }
    }
}

/// A client context that keeps the last error librdkafka reported (a refused SASL handshake,
/// a TLS failure, a broker that went away), for the message of a failure that follows.
#[derive(Default)]
pub(crate) struct Context {
    last_error: std::sync::Mutex<Option<String>>,
}

impl Context {
    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Context {
    fn keep(&self, message: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.to_string());
    }
}

impl ClientContext for Context {
    /// Called from librdkafka's own threads as it logs (up to `log_level`: errors).
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, log_message, "librdkafka");
        if matches!(
            level,
            RDKafkaLogLevel::Emerg
                | RDKafkaLogLevel::Alert
                | RDKafkaLogLevel::Critical
                | RDKafkaLogLevel::Error
        ) {
            self.keep(log_message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka");
        self.keep(reason);
    }
}

impl ConsumerContext for Context {}

/// An rdkafka error as the SPI's (the broker's side: retryable).
pub(crate) fn map_error(context: &str, e: rdkafka::error::KafkaError) -> ConnectorError {
    ConnectorError::external(format!("{context}: {e}"))
}

/// The topics of the cluster (blocking: run it off the async threads).
fn topics(config: &KafkaConfig) -> Result<Vec<(String, usize)>> {
    let consumer: BaseConsumer<Context> = config
        .client()
        .create_with_context(Context::default())
        .map_err(|e| map_error("create a client", e))?;
    let md = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| {
            let mut err = map_error("read the broker's metadata", e);
            // librdkafka queues its logs and errors as events: serve them to the context.
            for _ in 0..1_000 {
                if consumer.poll(Duration::ZERO).is_none()
                    && consumer.context().last_error().is_some()
                {
                    break;
                }
            }
            if let Some(last) = consumer.context().last_error() {
                // A refused login or TLS handshake: retrying will not help until the datasource
                // is fixed.
                let lower = last.to_ascii_lowercase();
                if ["sasl", "ssl handshake", "certificate"]
                    .iter()
                    .any(|w| lower.contains(w))
                {
                    err.retryable = false;
                }
                err.message.push_str(&format!(": {last}"));
            }
            err.message.push_str(&config.security_hint());
            err
        })?;
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

/// Builds Kafka connectors (a type and a value, as a unit struct is).
pub type Factory = FactoryOf<KafkaConnector>;
#[allow(non_upper_case_globals)]
pub const Factory: Factory = FactoryOf::new();

/// One configured Kafka datasource.
pub struct KafkaConnector {
    config: KafkaConfig,
}

#[async_trait]
impl MessageConnector for KafkaConnector {
    const TYPE: DatasourceType = TYPE;
    const CONTENT_FIELDS: &'static [ContentField] = CONTENT_FIELDS;
    const NO_SQL: &'static str = "KAFKA runs no SQL";

    fn parse(content: &serde_json::Value) -> Result<Self> {
        Ok(Self {
            config: KafkaConfig::parse(content)?,
        })
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
            err(json!({"broker": "h:1", "ssl_enable": "maybe"})).starts_with("content.ssl_enable:")
        );
        assert_eq!(
            err(json!({"broker": "h:1", "ssl_username": "u"})),
            "content.ssl_password: required with content.ssl_username (SASL)"
        );
        assert!(
            err(json!({"broker": "h:1", "ssl_password": "p"})).starts_with("content.ssl_username:")
        );
        assert!(
            err(json!({"broker": "h:1", "sasl_mechanism": "PLAIN"}))
                .starts_with("content.sasl_mechanism: needs")
        );
        assert_eq!(
            err(
                json!({"broker": "h:1", "ssl_username": "u", "ssl_password": "p",
                "sasl_mechanism": "GSSAPI"})
            ),
            "content.sasl_mechanism: \"GSSAPI\" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
        );
        assert_eq!(
            err(json!({"broker": "h:1", "max_message_bytes": 999})),
            "content.max_message_bytes: 999 is not a byte count from 1000 to 1000000000"
        );
        assert!(
            err(json!({"broker": "h:1", "max_message_bytes": "lots"}))
                .starts_with("content.max_message_bytes:")
        );
        let c = KafkaConfig::parse(&json!({"broker": "a:1; b:2,c:3", "max_message_bytes": "2048"}))
            .unwrap();
        assert_eq!(c.brokers(), "a:1,b:2,c:3");
        assert_eq!(c.max_message_bytes, Some(2048));
        let c = KafkaConfig::parse(
            &json!({"broker": "h:1", "ssl_username": "u", "ssl_password": "s3cret"}),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn ssl_and_credentials_map_to_the_security_protocol() {
        let client = |v: serde_json::Value| KafkaConfig::parse(&v).unwrap().client();
        let get = |c: &ClientConfig, k: &str| c.get(k).map(str::to_string);

        let plain = client(json!({"broker": "h:1"}));
        assert_eq!(
            get(&plain, "security.protocol").as_deref(),
            Some("PLAINTEXT")
        );
        assert_eq!(get(&plain, "sasl.mechanisms"), None);
        assert_eq!(get(&plain, "sasl.username"), None);

        let c = client(json!({"broker": "h:1", "ssl_username": "u", "ssl_password": "p"}));
        assert_eq!(
            get(&c, "security.protocol").as_deref(),
            Some("SASL_PLAINTEXT")
        );
        assert_eq!(get(&c, "sasl.mechanisms").as_deref(), Some("PLAIN"));
        assert_eq!(get(&c, "sasl.username").as_deref(), Some("u"));
        assert_eq!(get(&c, "sasl.password").as_deref(), Some("p"));

        let c = client(
            json!({"broker": "h:1", "ssl_enable": "true", "ssl_username": "u",
            "ssl_password": "p", "sasl_mechanism": "scram-sha-512"}),
        );
        assert_eq!(get(&c, "security.protocol").as_deref(), Some("SASL_SSL"));
        assert_eq!(get(&c, "sasl.mechanisms").as_deref(), Some("SCRAM-SHA-512"));

        let c = client(
            json!({"broker": "h:1", "ssl_enable": true, "ssl_username": "u",
            "ssl_password": "p", "sasl_mechanism": "SCRAM_SHA_256"}),
        );
        assert_eq!(get(&c, "sasl.mechanisms").as_deref(), Some("SCRAM-SHA-256"));

        let c = client(json!({"broker": "h:1", "ssl_enable": 1}));
        assert_eq!(get(&c, "security.protocol").as_deref(), Some("SSL"));
        assert_eq!(get(&c, "sasl.mechanisms"), None);
    }

    #[test]
    fn this_librdkafka_can_do_tls_and_scram() {
        // Creating a client checks its configuration against what librdkafka was built with:
        // without OpenSSL, SSL and the SCRAM mechanisms are refused here.
        for content in [
            json!({"broker": "127.0.0.1:9", "ssl_enable": true}),
            json!({"broker": "127.0.0.1:9", "ssl_enable": true, "ssl_username": "u",
                "ssl_password": "p", "sasl_mechanism": "SCRAM-SHA-256"}),
        ] {
            let c = KafkaConfig::parse(&content).unwrap();
            let made: std::result::Result<BaseConsumer, _> = c.client().create();
            assert!(made.is_ok(), "{content}: {:?}", made.err());
        }
    }
}
