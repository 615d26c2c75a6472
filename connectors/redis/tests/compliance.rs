//! The connector compliance suite on the machine's Redis (127.0.0.1:6379), with streams as the
//! tables; every stream it makes is deleted at the end.

use std::sync::Arc;

use async_trait::async_trait;
use fdi_connector::{ColumnInfo, Connector, ConnectorFactory, MessageField, ReadSpec, SourceQuery};
use fdi_connector_compliance::{Subject, run_and_assert_compliance};
use serde_json::json;

struct Redis {
    streams: std::sync::Mutex<Vec<String>>,
}

/// The standard columns as a stream's fields.
fn fields() -> Vec<MessageField> {
    fdi_connector_compliance::message_fields(&[
        ("id", "Long", ""),
        ("name", "String", ""),
        ("amount", "Decimal", ""),
        ("at", "Timestamp", ""),
        ("ok", "Boolean", ""),
        ("data", "Binary", ""),
    ])
}

#[async_trait]
impl Subject for Redis {
    fn factory(&self) -> Arc<dyn ConnectorFactory> {
        Arc::new(fdi_connector_redis::Factory)
    }

    fn content(&self) -> serde_json::Value {
        json!({"address": "127.0.0.1:6379"})
    }

    async fn new_target(&self) -> String {
        let name = format!("fdi_compliance_{}", fdi_types::new_id());
        self.streams.lock().unwrap().push(name.clone());
        name
    }

    async fn write_columns(&self, _c: &Arc<dyn Connector>, _target: &str) -> Vec<ColumnInfo> {
        fields().iter().map(MessageField::column).collect()
    }

    fn read_spec(&self, target: &str, batch_rows: usize) -> ReadSpec {
        ReadSpec {
            query: SourceQuery::Messages {
                source: target.into(),
                fields: fields(),
                follow: false,
                reader_name: "test".into(),
            },
            batch_rows,
        }
    }

    async fn endless_read(&self) -> ReadSpec {
        ReadSpec {
            query: SourceQuery::Messages {
                source: self.new_target().await,
                fields: fields(),
                follow: true,
                reader_name: "test".into(),
            },
            batch_rows: 100,
        }
    }

    fn bad_contents(&self) -> Vec<(serde_json::Value, &'static str)> {
        vec![
            (json!({"redis_database": 0}), "content.address"),
            (json!({"address": "h:x"}), "content.address"),
            (json!({"address": "h:1,h:0"}), "content.address"),
            (
                json!({"address": "h:1", "redis_database": 99}),
                "content.redis_database",
            ),
            (
                json!({"address": "h:1", "redis_database": "one"}),
                "content.redis_database",
            ),
            (
                json!({"address": "h:1", "ssl_enable": true}),
                "content.ssl_enable",
            ),
        ]
    }

    fn transactional(&self) -> bool {
        false
    }

    /// Binary values are written as their bytes and come back as text (bytes that are not UTF-8
    /// become U+FFFD).
    fn lossy_columns(&self) -> &'static [&'static str] {
        &["data"]
    }
}

#[tokio::test]
async fn redis_passes_the_compliance_suite() {
    let s = Redis {
        streams: std::sync::Mutex::new(Vec::new()),
    };
    run_and_assert_compliance(&s).await;
    let streams = s.streams.lock().unwrap().clone();
    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let deleted: usize = redis::cmd("DEL")
        .arg(&streams)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(deleted >= 3, "the suite's streams existed: {deleted}");
}
