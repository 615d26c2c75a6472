//! RabbitMQ connector (`lapin`, AMQP 0-9-1): a queue is a table.
//!
//! - **Content**: `host`, `port` (default 5672, or 5671 with TLS), `user_name`, `password`,
//!   `rabbitmq_virtual_host` (default `/`), `ssl_enable`: `true` connects with TLS (`amqps`,
//!   rustls on aws-lc-rs, the server's certificate checked against the system's root
//!   certificates and the host name).
//! - **Reader**: consumes the queue named by the task's `sourceTable` with manual acks and a
//!   bounded prefetch, parses each message's JSON body into the task's `sourceMetaData` fields
//!   (see `fdi-message-core`), and tags each batch with the channel's last delivery tag. Nothing
//!   is acknowledged on receipt: the engine acknowledges (`basic.ack`, `multiple`) only after
//!   the target committed the batch, so a crash redelivers everything not yet committed
//!   (at-least-once; effectively once into a target with an upsert key). A timing run reads the
//!   messages the queue held when it started; a realtime run follows the queue until stopped.
//!   Message properties as fields: `@routing_key`, `@exchange`, `@redelivered`,
//!   `@delivery_tag`, `@timestamp` (epoch ms, from the AMQP timestamp in seconds),
//!   `@message_id`, `@body` (the raw body as text).
//! - **Writer**: one persistent JSON message per row (column name -> value), `mandatory`, with
//!   publisher confirms; the commit returns once the broker confirmed every message, and fails
//!   if the broker refused one or returned one unroutable. Where it goes is the `targetTable`:
//!   - a plain name (`orders`) is a queue: published to the default exchange with the queue's
//!     name as routing key; the queue must exist (checked when the writer opens);
//!   - `exchange/routing_key` (the first `/` splits them: `events/order.created`) publishes to
//!     that exchange with that routing key (it may be empty, for a fanout exchange). The
//!     exchange must exist (a passive declare when the writer opens; a missing one is a user
//!     error naming the target), and the routing key must reach a queue bound to it.
//!
//!   A queue has no transactions: messages published before a failed run are not taken back.
//! - **Discovery**: AMQP cannot list queues or their columns; the task names the queue and its
//!   fields.

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
use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde::Deserialize;

/// The datasource type this connector serves.
pub const TYPE: DatasourceType = DatasourceType::new("RABBITMQ", "rabbitmq");

pub use reader::RabbitReader;
pub use writer::RabbitWriter;

/// `content` of a RABBITMQ datasource, as the reference names its fields.
const CONTENT_FIELDS: &[ContentField] = &[
    ContentField::plain("host"),
    ContentField::plain("port"),
    ContentField::plain("user_name"),
    ContentField::secret("password"),
    ContentField::plain("rabbitmq_virtual_host"),
    ContentField::plain("ssl_enable"),
];

/// How long opening a connection (TCP, TLS and the AMQP handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A RABBITMQ datasource's configuration.
#[derive(Clone, Deserialize)]
pub struct RabbitConfig {
    #[serde(deserialize_with = "de::text")]
    pub host: String,
    #[serde(default, deserialize_with = "de::opt_port")]
    pub port: Option<u16>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub user_name: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub rabbitmq_virtual_host: Option<String>,
    #[serde(default, deserialize_with = "de::flag")]
    pub ssl_enable: bool,
}

impl std::fmt::Debug for RabbitConfig {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user_name", &self.user_name)
            .field("rabbitmq_virtual_host", &self.rabbitmq_virtual_host)
            .finish_non_exhaustive()
    }
}

impl RabbitConfig {
    pub fn parse(content: &serde_json::Value) -> Result<Self> {
        from_content(content)
    }

    /// The port to connect to: the given one, else AMQP's (5672) or AMQPS's (5671).
    fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.ssl_enable { 5671 } else { 5672 })
    }

    /// `amqp[s]://user:password@host:port/vhost`, every part percent-encoded.
    fn uri(&self) -> String {
        let user = self.user_name.as_deref().unwrap_or("guest");
        let password = self.password.as_deref().unwrap_or("guest");
        format!(
            "{}://{}:{}@{}:{}/{}",
            if self.ssl_enable { "amqps" } else { "amqp" },
            encode(user),
            encode(password),
            self.host.trim(),
            self.port(),
            encode(self.rabbitmq_virtual_host.as_deref().unwrap_or("/"))
        )
    }
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A lapin error as the SPI's: a refused login is not retried, everything else external is.
pub(crate) fn map_error(context: &str, e: lapin::Error) -> ConnectorError {
    let text = e.to_string();
    let message = if context.is_empty() {
        text.clone()
    } else {
        format!("{context}: {text}")
    };
    if text.contains("ACCESS_REFUSED") || text.contains("NOT_ALLOWED") {
        ConnectorError::refused(message)
    } else if text.contains("NOT_FOUND") {
        ConnectorError::user(message)
    } else {
        ConnectorError::external(message)
    }
}

/// A failed connection attempt, saying where to look when TLS was the cause.
fn connect_error(config: &RabbitConfig, at: &str, e: lapin::Error) -> ConnectorError {
    let mut err = map_error(&format!("connect to {at}"), e);
    let text = err.message.to_ascii_lowercase();
    let tls = ["tls", "ssl", "certificate", "handshake", "corrupt", "alert"]
        .iter()
        .any(|w| text.contains(w));
    if config.ssl_enable || tls {
        err.message.push_str(&tls_hint(config));
    }
    if config.ssl_enable && tls {
        // A failed TLS handshake (a plaintext port, an untrusted certificate) fails again.
        err.retryable = false;
    }
    err
}

fn tls_hint(config: &RabbitConfig) -> String {
    if config.ssl_enable {
        format!(
            " (content.ssl_enable is true: port {} must speak AMQPS, TLS; RabbitMQ's is usually 5671)",
            config.port()
        )
    } else {
        String::new()
    }
}

/// One AMQP connection and a channel on it, shared by a reader and its acknowledger.
pub(crate) struct Session {
    pub connection: Connection,
    pub channel: Channel,
    /// The highest delivery tag acknowledged on the channel.
    pub acked: std::sync::atomic::AtomicU64,
}

impl Session {
    pub async fn open(config: &RabbitConfig) -> Result<Self> {
        let at = format!("{}:{}", config.host.trim(), config.port());
        let connection = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&config.uri(), ConnectionProperties::default()),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(connect_error(config, &at, e)),
            Err(_) => {
                return Err(ConnectorError::external(format!(
                    "connect to {at}: no AMQP{} handshake within {} s{}",
                    if config.ssl_enable { "S (TLS)" } else { "" },
                    CONNECT_TIMEOUT.as_secs(),
                    tls_hint(config)
                )));
            }
        };
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| map_error("open a channel", e))?;
        Ok(Self {
            connection,
            channel,
            acked: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many messages `queue` holds (a passive declare: a missing queue is a user error).
    pub async fn queue_depth(&self, queue: &str) -> Result<u32> {
        let q = self
            .channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| match map_error("", e) {
                err if err.message.contains("NOT_FOUND") => {
                    ConnectorError::user(format!("queue \"{queue}\" does not exist"))
                }
                err => err,
            })?;
        Ok(q.message_count())
    }

    /// Whether `exchange` exists (a passive declare: a missing one is a user error naming
    /// `target`, the task's target table).
    pub async fn check_exchange(&self, exchange: &str, target: &str) -> Result<()> {
        self.channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| match map_error("", e) {
                err if err.message.contains("NOT_FOUND") => ConnectorError::user(format!(
                    "target \"{target}\": exchange \"{exchange}\" does not exist (a target named exchange/routing_key publishes to an existing exchange)"
                )),
                err => err,
            })
    }

    pub async fn close(&self) {
        let _ = self.channel.close(200, "done".into()).await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Builds RabbitMQ connectors (a type and a value, as a unit struct is).
pub type Factory = FactoryOf<RabbitConnector>;
#[allow(non_upper_case_globals)]
pub const Factory: Factory = FactoryOf::new();

/// One configured RabbitMQ datasource (connections are opened per test, reader and writer).
pub struct RabbitConnector {
    config: RabbitConfig,
}

const NO_DISCOVERY: &str = "RABBITMQ cannot list queues or their fields over AMQP: name the queue as the task's sourceTable / targetTable and its fields in sourceMetaData";

#[async_trait]
impl MessageConnector for RabbitConnector {
    const TYPE: DatasourceType = TYPE;
    const CONTENT_FIELDS: &'static [ContentField] = CONTENT_FIELDS;
    const NO_SQL: &'static str = "RABBITMQ runs no SQL";

    fn parse(content: &serde_json::Value) -> Result<Self> {
        Ok(Self {
            config: RabbitConfig::parse(content)?,
        })
    }

    async fn test_connect(&self) -> Result<()> {
        let s = Session::open(&self.config).await?;
        s.close().await;
        Ok(())
    }

    async fn list_tables(&self, _filter: Option<&str>) -> Result<Vec<String>> {
        Err(ConnectorError::user(NO_DISCOVERY))
    }

    async fn columns(&self, _table: &str) -> Result<Vec<ColumnInfo>> {
        Err(ConnectorError::user(NO_DISCOVERY))
    }

    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>> {
        match spec.query {
            SourceQuery::Messages {
                source,
                fields,
                follow,
                ..
            } => Ok(Box::new(
                RabbitReader::open(&self.config, &source, fields, follow, spec.batch_rows).await?,
            )),
            _ => Err(ConnectorError::user(
                "a RABBITMQ source reads a queue: give its fields in sourceMetaData",
            )),
        }
    }

    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(RabbitWriter::new(self.config.clone(), spec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_names_bad_fields_and_encodes_the_uri() {
        let err = |v| RabbitConfig::parse(&v).unwrap_err().message;
        assert_eq!(err(json!({"port": "5672"})), "content.host: required");
        assert_eq!(
            err(json!({"host": "h", "port": "none"})),
            "content.port: \"none\" is not a port number"
        );
        assert!(
            err(json!({"host": "h", "ssl_enable": "maybe"})).starts_with("content.ssl_enable:")
        );
        let c = RabbitConfig::parse(
            &json!({"host": "h", "user_name": "u@x", "password": "p/w:1",
            "rabbitmq_virtual_host": "/"}),
        )
        .unwrap();
        assert_eq!(c.uri(), "amqp://u%40x:p%2Fw%3A1@h:5672/%2F");
        let tls = RabbitConfig::parse(&json!({"host": "h", "ssl_enable": "true"})).unwrap();
        assert_eq!(tls.uri(), "amqps://guest:guest@h:5671/%2F");
        let tls =
            RabbitConfig::parse(&json!({"host": "h", "port": 5672, "ssl_enable": true})).unwrap();
        assert_eq!(tls.uri(), "amqps://guest:guest@h:5672/%2F");
        assert!(
            tls.uri().parse::<lapin::uri::AMQPUri>().is_ok(),
            "lapin takes the URI"
        );
        assert!(
            !format!("{c:?}").contains("p/w"),
            "Debug hides the password"
        );
    }
}
