//! Redis connector (`redis` 1.8, async, one multiplexed connection per reader, writer and
//! discovery call). A "table" is one of two things, told apart by its name:
//!
//! - **A key pattern** — a name holding a glob character `*`, `?` or `[` (`user:*`): its rows
//!   are the matching keys. Read with `SCAN MATCH`; each key's value is fetched by type, a page
//!   of keys per pipeline: a hash is one row `{key, field1, field2, ...}`; a string is
//!   `{key, value}` (and when the value is a JSON object, its members too); a list, set or
//!   sorted set is `{key, value}` with `value` the JSON array of its elements (members only for
//!   a sorted set); streams are skipped. The Redis key wins over a hash field or JSON member
//!   named `key`. Read as a table, every column is text (`key` the primary one, then the union
//!   of the fields of up to 100 sampled keys); read with `sourceMetaData`, the row object is the
//!   message the fields' JSON paths point into (`@key` and `@type` are properties). A key
//!   pattern has no change feed: a realtime (following) read is refused.
//!   Written to, the name is a key template with exactly one `*`, replaced by the row's value of
//!   the **key column** — the first written column marked primary, else the first column; each
//!   row becomes a hash (`HSET key col1 v1 col2 v2 ...`, every column including the key column;
//!   values as text, see below). NULL columns are left out; an upsert also removes them from the
//!   hash (`HDEL`) so the hash holds the row as written. A row whose key column is NULL is a
//!   dirty row. Each batch is one `MULTI`/`EXEC`. `clear_table` deletes the keys matching the
//!   template (`SCAN` + `UNLINK`) before the first batch.
//! - **A stream** — any other name: a Redis stream key. Read in the consumer group
//!   `fdi-<reader name>` (the task id; created at id `0` with `MKSTREAM` when missing) as
//!   consumer `fdi`. A reader first reads its own pending entries again (delivered before, never
//!   acknowledged: a crash mid-run), then new ones (`>`). Each entry's field/value map is the
//!   JSON object the task's fields read; `@id` (the entry id), `@timestamp` (its milliseconds)
//!   and `@stream` are properties. Each batch carries its last entry id; the engine acknowledges
//!   (`XACK` of every entry delivered up to that id) only after the target committed, so
//!   everything not yet committed is delivered again: **at-least-once**, effectively once into
//!   a target with an upsert key. A timing run reads the entries the stream held when it
//!   started; a realtime run follows it (`BLOCK` 200 ms) until stopped. Read as a table (no
//!   `sourceMetaData`), a stream is a snapshot `XRANGE` of every entry with text columns `id`
//!   and its fields, without a group. Written to, each row is one entry
//!   (`XADD key * col1 v1 ...`, NULL columns left out), a batch per `MULTI`/`EXEC`; the data is
//!   in Redis once the batch returns (how durable that is — AOF, RDB — is the server's
//!   configuration). `clear_table` empties the stream (`XTRIM MAXLEN 0`, its groups kept).
//!
//! Values written as text: numbers as their digits, decimals exactly, timestamps with a zone as
//! RFC 3339 in UTC (`2024-03-01T00:00:00.123456Z`), booleans `true`/`false`, binary as its raw
//! bytes (read back as text, bytes that are not UTF-8 become U+FFFD). Neither target has
//! transactions across batches: a failed or aborted run keeps the batches already written.
//!
//! - **Content**: `address` (`host:port`; several separated by `,` are tried in order and the
//!   first that answers is used — failover between standalone servers, not Redis Cluster or
//!   Sentinel), `password` (secret), `redis_database` (0..=15, default 0), `ssl_enable` (TLS is
//!   not built in yet: `true` is refused naming the field).
//! - **Discovery**: the stream keys and one `prefix:*` pattern per key prefix before the first
//!   `:` among the other keys (keys without a `:` are not listed), from the first 10,000 keys a
//!   `SCAN` returns; columns as described above. Test-connect sends `PING`.

mod keys;
mod reader;
mod text;
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
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo,
};
use serde::{Deserialize, Deserializer};

/// The datasource type this connector serves.
pub const TYPE: DatasourceType = DatasourceType::new("REDIS", "redis");

pub use reader::{KeyReader, StreamReader};
pub use writer::RedisWriter;

/// `content` of a REDIS datasource, as the reference names its fields.
const CONTENT_FIELDS: &[ContentField] = &[
    ContentField::plain("address"),
    ContentField::secret("password"),
    ContentField::plain("redis_database"),
    ContentField::plain("ssl_enable"),
];

/// What a query in SQL is answered.
const NO_SQL: &str = "REDIS has no SQL";

/// How long connecting to one address may take before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one command (or pipeline) may wait for its answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A REDIS datasource's configuration.
#[derive(Clone, Deserialize)]
pub struct RedisConfig {
    #[serde(deserialize_with = "de::text")]
    pub address: String,
    #[serde(default, deserialize_with = "de::opt_text")]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "database")]
    pub redis_database: u8,
    #[serde(default, deserialize_with = "de::flag")]
    pub ssl_enable: bool,
}

/// A database index: a number or its text, 0..=15 (absent, null or empty: 0).
fn database<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<u8, D::Error> {
    use serde::de::Error;
    let v = serde_json::Value::deserialize(d)?;
    let n = match &v {
        serde_json::Value::Null => return Ok(0),
        serde_json::Value::String(s) if s.trim().is_empty() => return Ok(0),
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n <= 15 => Ok(n as u8),
        _ => Err(D::Error::custom(format!(
            "{v} is not a database index (0 to 15)"
        ))),
    }
}

impl std::fmt::Debug for RedisConfig {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("address", &self.address)
            .field("redis_database", &self.redis_database)
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    pub fn parse(content: &serde_json::Value) -> Result<Self> {
        let c: Self = from_content(content)?;
        if c.ssl_enable {
            return Err(ConnectorError::user(
                "content.ssl_enable: TLS connections to Redis are not supported by this build yet",
            ));
        }
        c.addresses()?;
        Ok(c)
    }

    /// The addresses in the order they are tried (port 6379 when not given).
    pub fn addresses(&self) -> Result<Vec<(String, u16)>> {
        fdi_connector::config::address_list("content.address", &self.address, Some(6379))
    }
}

/// A redis error as the SPI's: a refused login is not retried, a wrong key type is the user's,
/// everything else is the server's (retryable).
pub(crate) fn map_error(context: &str, e: redis::RedisError) -> ConnectorError {
    let message = format!("{context}: {e}");
    let code = e.code().unwrap_or_default();
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM")
    {
        ConnectorError::refused(message)
    } else if code == "WRONGTYPE" {
        ConnectorError::user(message)
    } else {
        ConnectorError::external(message)
    }
}

/// Connect to the first address that answers (in order). A server that answers but refuses the
/// login or the database is not passed over: its refusal is the error.
pub(crate) async fn connect(config: &RedisConfig) -> Result<MultiplexedConnection> {
    let settings = {
        let s = RedisConnectionInfo::default().set_db(i64::from(config.redis_database));
        match config.password.as_deref() {
            Some(p) => s.set_password(p),
            None => s,
        }
    };
    let options = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut failures = Vec::new();
    for (host, port) in config.addresses()? {
        let info = ConnectionAddr::Tcp(host.clone(), port)
            .into_connection_info()
            .map_err(|e| ConnectorError::internal(format!("{host}:{port}: {e}")))?
            .set_redis_settings(settings.clone());
        let client = Client::open(info)
            .map_err(|e| ConnectorError::user(format!("content.address: {host}:{port}: {e}")))?;
        match client
            .get_multiplexed_async_connection_with_config(&options)
            .await
        {
            Ok(c) => {
                if !failures.is_empty() {
                    tracing::warn!(
                        address = %format!("{host}:{port}"),
                        unanswered = %failures.join("; "),
                        "Redis failover: connected to a later address"
                    );
                }
                return Ok(c);
            }
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                failures.push(format!("{host}:{port}: {e}"));
            }
            // The server answered and said no: not retried, with its own words.
            Err(e) if e.kind() == redis::ErrorKind::AuthenticationFailed => {
                let why = match config.password.as_deref() {
                    Some(p) => auth_refusal(&host, port, p, &options).await,
                    None => None,
                }
                .unwrap_or_else(|| e.to_string());
                return Err(ConnectorError::refused(format!(
                    "content.password: {host}:{port} refused the login: {why}"
                )));
            }
            Err(e) if e.to_string().contains("refused to switch database") => {
                return Err(ConnectorError::refused(format!(
                    "content.redis_database: {host}:{port} refused database {}: {e}",
                    config.redis_database
                )));
            }
            Err(e) => {
                let mut err = map_error(&format!("{host}:{port}"), e);
                err.retryable = false;
                return Err(err);
            }
        }
    }
    Err(ConnectorError::external(format!(
        "no Redis server answered: {}",
        failures.join("; ")
    )))
}

/// Why `host:port` refuses `password`, in the server's words (the driver reports only that the
/// login failed): `AUTH` sent again on a connection of its own.
async fn auth_refusal(
    host: &str,
    port: u16,
    password: &str,
    options: &AsyncConnectionConfig,
) -> Option<String> {
    let info = ConnectionAddr::Tcp(host.to_string(), port)
        .into_connection_info()
        .ok()?
        .set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name());
    let mut c = Client::open(info)
        .ok()?
        .get_multiplexed_async_connection_with_config(options)
        .await
        .ok()?;
    match redis::cmd("AUTH")
        .arg(password)
        .query_async::<()>(&mut c)
        .await
    {
        Ok(()) => None,
        Err(e) => Some(match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            _ => e.to_string(),
        }),
    }
}

/// What a table name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Table {
    /// Keys matching a glob pattern.
    Pattern(String),
    /// A stream key.
    Stream(String),
}

impl Table {
    pub fn of(name: &str) -> Self {
        if is_pattern(name) {
            Table::Pattern(name.to_string())
        } else {
            Table::Stream(name.to_string())
        }
    }
}

/// Whether a name is a key pattern (holds a glob character).
pub fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?', '['])
}

/// Builds Redis connectors (a type and a value, as a unit struct is).
pub type Factory = FactoryOf<RedisConnector>;
#[allow(non_upper_case_globals)]
pub const Factory: Factory = FactoryOf::new();

/// One configured Redis datasource (connections are opened per call, reader and writer).
pub struct RedisConnector {
    config: RedisConfig,
}

#[async_trait]
impl MessageConnector for RedisConnector {
    const TYPE: DatasourceType = TYPE;
    const CONTENT_FIELDS: &'static [ContentField] = CONTENT_FIELDS;
    const NO_SQL: &'static str = NO_SQL;

    fn parse(content: &serde_json::Value) -> Result<Self> {
        Ok(Self {
            config: RedisConfig::parse(content)?,
        })
    }

    async fn test_connect(&self) -> Result<()> {
        let mut c = connect(&self.config).await?;
        redis::cmd("PING")
            .query_async::<()>(&mut c)
            .await
            .map_err(|e| map_error("PING", e))
    }

    async fn list_tables(&self, filter: Option<&str>) -> Result<Vec<String>> {
        let mut c = connect(&self.config).await?;
        let needle = filter.map(str::to_lowercase);
        Ok(keys::tables(&mut c)
            .await?
            .into_iter()
            .filter(|t| {
                needle
                    .as_deref()
                    .is_none_or(|n| t.to_lowercase().contains(n))
            })
            .collect())
    }

    async fn columns(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        let mut c = connect(&self.config).await?;
        match Table::of(table) {
            Table::Pattern(p) => keys::pattern_columns(&mut c, &p).await,
            Table::Stream(s) => keys::stream_columns(&mut c, &s).await,
        }
    }

    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>> {
        let batch_rows = spec.batch_rows.max(1);
        match spec.query {
            SourceQuery::Messages {
                source,
                fields,
                follow,
                reader_name,
            } => match Table::of(&source) {
                Table::Pattern(p) => {
                    if follow {
                        return Err(ConnectorError::user(format!(
                            "\"{p}\" is a key pattern: it has no change feed to follow; a REALTIME task reads a stream"
                        )));
                    }
                    Ok(Box::new(
                        KeyReader::open(&self.config, &p, fields, batch_rows).await?,
                    ))
                }
                Table::Stream(s) => Ok(Box::new(
                    StreamReader::open(
                        &self.config,
                        &s,
                        fields,
                        follow,
                        Some(&reader_name),
                        batch_rows,
                    )
                    .await?,
                )),
            },
            SourceQuery::Table {
                table,
                columns,
                filters,
                order_by,
            } => {
                if !filters.is_empty() {
                    return Err(ConnectorError::user(format!(
                        "\"{table}\": REDIS sources cannot be filtered (no SQL): leave the task's conditions out"
                    )));
                }
                if order_by.is_some() {
                    return Err(ConnectorError::user(format!(
                        "\"{table}\": REDIS sources are read in their own order: leave orderColumn out"
                    )));
                }
                // No columns: all of them (as discovery reports them). Named columns a key or
                // entry does not have are NULL there.
                let names: Vec<String> = if columns.is_empty() {
                    self.columns(&table)
                        .await?
                        .into_iter()
                        .map(|c| c.name)
                        .collect()
                } else {
                    columns
                };
                match Table::of(&table) {
                    Table::Pattern(p) => Ok(Box::new(
                        KeyReader::open(
                            &self.config,
                            &p,
                            keys::text_fields(&names, "key"),
                            batch_rows,
                        )
                        .await?,
                    )),
                    // A snapshot of the stream, without a consumer group.
                    Table::Stream(s) => Ok(Box::new(
                        StreamReader::open(
                            &self.config,
                            &s,
                            keys::text_fields(&names, "id"),
                            false,
                            None,
                            batch_rows,
                        )
                        .await?,
                    )),
                }
            }
            SourceQuery::Sql(_) => Err(ConnectorError::user(NO_SQL)),
        }
    }

    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(RedisWriter::new(self.config.clone(), spec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_names_bad_fields() {
        let err = |v| RedisConfig::parse(&v).unwrap_err().message;
        assert_eq!(err(json!({})), "content.address: required");
        assert_eq!(
            err(json!({"address": "h:1, h:x"})),
            "content.address: \"h:x\" is not host:port"
        );
        assert_eq!(
            err(json!({"address": "h:70000"})),
            "content.address: \"h:70000\" is not host:port"
        );
        assert_eq!(
            err(json!({"address": "h:1", "redis_database": 99})),
            "content.redis_database: 99 is not a database index (0 to 15)"
        );
        assert_eq!(
            err(json!({"address": "h:1", "redis_database": "x"})),
            "content.redis_database: \"x\" is not a database index (0 to 15)"
        );
        assert!(
            err(json!({"address": "h:1", "ssl_enable": "true"})).starts_with("content.ssl_enable:")
        );
        let c = RedisConfig::parse(
            &json!({"address": "a:1, [::1]:2,b", "password": "s3cret", "redis_database": "3"}),
        )
        .unwrap();
        assert_eq!(
            c.addresses().unwrap(),
            [
                ("a".to_string(), 1),
                ("::1".to_string(), 2),
                ("b".to_string(), 6379)
            ]
        );
        assert_eq!(c.redis_database, 3);
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn names_with_glob_characters_are_key_patterns() {
        assert_eq!(Table::of("user:*"), Table::Pattern("user:*".into()));
        assert_eq!(Table::of("u?er"), Table::Pattern("u?er".into()));
        assert_eq!(Table::of("u[ab]"), Table::Pattern("u[ab]".into()));
        assert_eq!(Table::of("orders"), Table::Stream("orders".into()));
    }
}
