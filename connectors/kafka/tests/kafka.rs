//! The Kafka connector against the Kafka-protocol broker of `scripts/services.sh up kafka`
//! (127.0.0.1:9092): the compliance suite, discovery, and offsets committed only as acknowledged.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use async_trait::async_trait;
use fdi_connector::{
    ColumnInfo, Connector, ConnectorFactory, MessageField, ReadSpec, SourceBatch, SourceQuery,
    WriteMode, WriteSpec,
};
use fdi_connector_compliance::{Subject, run_and_assert_compliance, standard_rows};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const BROKER: &str = "127.0.0.1:9092";

fn content() -> serde_json::Value {
    json!({"broker": BROKER})
}

fn connector() -> Arc<dyn Connector> {
    fdi_connector_kafka::Factory.create(&content()).unwrap()
}

/// A new topic with `partitions` partitions.
async fn topic(partitions: i32) -> String {
    let name = format!("fdi_test_{}", fdi_types::new_id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .create()
        .expect("admin client");
    let r = admin
        .create_topics(
            &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("the broker on 127.0.0.1:9092 (scripts/services.sh up kafka)");
    for t in r {
        t.expect("topic created");
    }
    name
}

fn fields(spec: &[(&str, &str, &str)]) -> Vec<MessageField> {
    fdi_connector_compliance::message_fields(spec)
}

const STANDARD: &[(&str, &str, &str)] = &[
    ("id", "Long", ""),
    ("name", "String", ""),
    ("amount", "Decimal", ""),
    ("at", "Timestamp", ""),
    ("ok", "Boolean", ""),
    ("data", "Binary", ""),
];

fn read_spec(
    topic: &str,
    f: Vec<MessageField>,
    follow: bool,
    batch_rows: usize,
    group: &str,
) -> ReadSpec {
    ReadSpec {
        query: SourceQuery::Messages {
            source: topic.into(),
            fields: f,
            follow,
            reader_name: group.into(),
        },
        batch_rows,
    }
}

struct Kafka;

#[async_trait]
impl Subject for Kafka {
    fn factory(&self) -> Arc<dyn ConnectorFactory> {
        Arc::new(fdi_connector_kafka::Factory)
    }

    fn content(&self) -> serde_json::Value {
        content()
    }

    async fn new_target(&self) -> String {
        topic(3).await
    }

    async fn write_columns(&self, _c: &Arc<dyn Connector>, _target: &str) -> Vec<ColumnInfo> {
        fields(STANDARD).iter().map(MessageField::column).collect()
    }

    fn read_spec(&self, target: &str, batch_rows: usize) -> ReadSpec {
        read_spec(
            target,
            fields(STANDARD),
            false,
            batch_rows,
            &fdi_types::new_id(),
        )
    }

    async fn endless_read(&self) -> ReadSpec {
        read_spec(
            &topic(1).await,
            fields(STANDARD),
            true,
            100,
            &fdi_types::new_id(),
        )
    }

    fn bad_contents(&self) -> Vec<(serde_json::Value, &'static str)> {
        vec![
            (json!({}), "content.broker"),
            (json!({"broker": "nohost"}), "content.broker"),
            (
                json!({"broker": "h:1", "ssl_enable": "true"}),
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
async fn kafka_passes_the_compliance_suite() {
    run_and_assert_compliance(&Kafka).await;
}

#[tokio::test]
async fn topics_are_the_tables() {
    let t = topic(2).await;
    let c = connector();
    c.test_connect().await.unwrap();
    let found = c.list_tables(Some(&t[..20])).await.unwrap();
    assert!(found.contains(&t), "{found:?}");
    let closed = fdi_connector_kafka::Factory
        .create(&json!({"broker": "127.0.0.1:1"}))
        .unwrap();
    assert!(closed.test_connect().await.is_err());
}

async fn produce(topic: &str, from: i64, to: i64) {
    let c = connector();
    let mut w = c
        .writer(WriteSpec {
            table: topic.into(),
            columns: Vec::new(),
            mode: WriteMode::Insert,
            clear_table: false,
        })
        .await
        .unwrap();
    w.begin().await.unwrap();
    let rows = standard_rows(to as usize).slice(from as usize, (to - from) as usize);
    w.write(rows).await.unwrap();
    w.commit().await.unwrap();
}

async fn read_batches(
    topic: &str,
    group: &str,
    batch_rows: usize,
) -> (
    Vec<SourceBatch>,
    Option<Arc<dyn fdi_connector::Acknowledger>>,
) {
    let c = connector();
    let mut r = c
        .reader(read_spec(
            topic,
            fields(&[("id", "Long", ""), ("p", "Integer", "@partition")]),
            false,
            batch_rows,
            group,
        ))
        .await
        .unwrap();
    let ack = r.acknowledger();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(64);
    r.read(tx, CancellationToken::new()).await.unwrap();
    let mut v = Vec::new();
    while let Some(b) = rx.recv().await {
        v.push(b);
    }
    (v, ack)
}

#[tokio::test]
async fn the_group_resumes_after_the_last_acknowledged_batch() {
    let t = topic(1).await;
    produce(&t, 0, 100).await;
    let group = fdi_types::new_id();
    let (batches, ack) = read_batches(&t, &group, 30).await;
    assert_eq!(
        batches
            .iter()
            .map(|b| b.rows.num_rows())
            .collect::<Vec<_>>(),
        [30, 30, 30, 10]
    );
    // The target committed the first two batches only.
    ack.unwrap()
        .ack(batches[1].position.as_ref().unwrap())
        .await
        .unwrap();
    let (again, _) = read_batches(&t, &group, 100).await;
    let ids: Vec<i64> = again
        .iter()
        .flat_map(|b| {
            b.rows
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    let want: Vec<i64> = standard_rows(100)
        .column(0)
        .as_primitive::<Int64Type>()
        .values()[60..]
        .to_vec();
    assert_eq!(
        ids, want,
        "exactly the 40 unacknowledged messages come again"
    );
}
