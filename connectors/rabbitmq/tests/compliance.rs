//! The connector compliance suite on the machine's RabbitMQ (127.0.0.1:5672, guest/guest).

use std::sync::Arc;

use async_trait::async_trait;
use fdi_connector::{ColumnInfo, Connector, ConnectorFactory, MessageField, ReadSpec, SourceQuery};
use fdi_connector_compliance::{Subject, run_and_assert_compliance};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::json;

struct Rabbit {
    channel: lapin::Channel,
    _conn: lapin::Connection,
    queues: std::sync::Mutex<Vec<String>>,
}

/// The standard columns as a queue's fields.
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
impl Subject for Rabbit {
    fn factory(&self) -> Arc<dyn ConnectorFactory> {
        Arc::new(fdi_connector_rabbitmq::Factory)
    }

    fn content(&self) -> serde_json::Value {
        json!({"host": "127.0.0.1", "port": "5672", "user_name": "guest", "password": "guest"})
    }

    async fn new_target(&self) -> String {
        let name = format!("fdi_compliance_{}", fdi_types::new_id());
        self.channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.queues.lock().unwrap().push(name.clone());
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
        let queue = self.new_target().await;
        ReadSpec {
            query: SourceQuery::Messages {
                source: queue,
                fields: fields(),
                follow: true,
                reader_name: "test".into(),
            },
            batch_rows: 100,
        }
    }

    fn bad_contents(&self) -> Vec<(serde_json::Value, &'static str)> {
        vec![
            (json!({"port": 5672}), "content.host"),
            (json!({"host": "h", "port": "x"}), "content.port"),
            (
                json!({"host": "h", "ssl_enable": "yes please"}),
                "content.ssl_enable",
            ),
        ]
    }

    fn transactional(&self) -> bool {
        false
    }

    /// Binary values travel as arrow's JSON text of them and come back as that text's bytes.
    fn lossy_columns(&self) -> &'static [&'static str] {
        &["data"]
    }
}

#[tokio::test]
async fn rabbitmq_passes_the_compliance_suite() {
    let conn = lapin::Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ on 127.0.0.1:5672");
    let channel = conn.create_channel().await.unwrap();
    let s = Rabbit {
        channel,
        _conn: conn,
        queues: std::sync::Mutex::new(Vec::new()),
    };
    run_and_assert_compliance(&s).await;
    let queues = s.queues.lock().unwrap().clone();
    for q in queues {
        let _ = s
            .channel
            .queue_delete(
                q.as_str().into(),
                lapin::options::QueueDeleteOptions::default(),
            )
            .await;
    }
}
