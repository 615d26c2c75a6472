//! The Kafka connector against the Kafka-protocol broker of `scripts/services.sh up kafka`
//! (127.0.0.1:9092): the compliance suite, discovery, and offsets committed only as acknowledged.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
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
                json!({"broker": "h:1", "ssl_enable": "yes please"}),
                "content.ssl_enable",
            ),
            (
                json!({"broker": "h:1", "ssl_username": "u"}),
                "content.ssl_password",
            ),
            (
                json!({"broker": "h:1", "ssl_username": "u", "ssl_password": "p",
                    "sasl_mechanism": "KERBEROS"}),
                "content.sasl_mechanism",
            ),
            (
                json!({"broker": "h:1", "max_message_bytes": 10}),
                "content.max_message_bytes",
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

/// Reads every message of `topic` as (id, @key) in a new group.
async fn ids_and_keys(topic: &str) -> Vec<(i64, Option<String>)> {
    let c = connector();
    let mut r = c
        .reader(read_spec(
            topic,
            fields(&[("id", "Long", ""), ("k", "String", "@key")]),
            false,
            1000,
            &fdi_types::new_id(),
        ))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(64);
    r.read(tx, CancellationToken::new()).await.unwrap();
    let mut out = Vec::new();
    while let Some(b) = rx.recv().await {
        let ids = b.rows.column(0).as_primitive::<Int64Type>();
        let keys = b.rows.column(1).as_string::<i32>();
        for i in 0..b.rows.num_rows() {
            out.push((
                ids.value(i),
                keys.is_valid(i).then(|| keys.value(i).to_string()),
            ));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn each_message_is_keyed_by_the_first_primary_column() {
    let t = topic(3).await;
    let mut columns: Vec<ColumnInfo> = fields(STANDARD).iter().map(MessageField::column).collect();
    columns[0].primary = true;
    columns[1].primary = true; // only the first primary column is the key
    let mut w = connector()
        .writer(WriteSpec {
            table: t.clone(),
            columns,
            mode: WriteMode::Insert,
            clear_table: false,
        })
        .await
        .unwrap();
    w.begin().await.unwrap();
    let rows = standard_rows(40);
    let stats = w.write(rows.clone()).await.unwrap();
    assert_eq!((stats.rows, stats.dirty_rows), (40, 0));
    w.commit().await.unwrap();

    let mut want: Vec<(i64, Option<String>)> = rows
        .column(0)
        .as_primitive::<Int64Type>()
        .values()
        .iter()
        .map(|id| (*id, Some(id.to_string())))
        .collect();
    want.sort();
    assert_eq!(ids_and_keys(&t).await, want);

    // Without a primary column, no key (as before).
    let plain = topic(1).await;
    produce(&plain, 0, 5).await;
    let got = ids_and_keys(&plain).await;
    assert_eq!(got.len(), 5);
    assert!(got.iter().all(|(_, k)| k.is_none()), "{got:?}");
}

#[tokio::test]
async fn a_row_larger_than_max_message_bytes_is_a_dirty_row_and_the_rest_arrive() {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    let t = topic(2).await;
    let c = fdi_connector_kafka::Factory
        .create(&json!({"broker": BROKER, "max_message_bytes": "1000"}))
        .unwrap();
    let n = 10i64;
    let names: Vec<String> = (0..n)
        .map(|i| {
            if i == 4 {
                "x".repeat(5000)
            } else {
                format!("row {i}")
            }
        })
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap();
    let mut w = c
        .writer(WriteSpec {
            table: t.clone(),
            columns: Vec::new(),
            mode: WriteMode::Insert,
            clear_table: false,
        })
        .await
        .unwrap();
    w.begin().await.unwrap();
    let stats = w.write(batch).await.unwrap();
    assert_eq!((stats.rows, stats.dirty_rows), (9, 1), "{stats:?}");
    w.commit().await.unwrap();
    let ids: Vec<i64> = ids_and_keys(&t)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 5, 6, 7, 8, 9]);
}

#[tokio::test]
async fn sasl_or_tls_against_the_plaintext_broker_fails_clearly_within_seconds() {
    for (content, says) in [
        (
            json!({"broker": BROKER, "ssl_username": "u", "ssl_password": "p"}),
            "SASL_PLAINTEXT, SASL mechanism PLAIN",
        ),
        (
            json!({"broker": BROKER, "ssl_username": "u", "ssl_password": "p",
                "sasl_mechanism": "SCRAM-SHA-256"}),
            "SASL mechanism SCRAM-SHA-256",
        ),
        (
            json!({"broker": BROKER, "ssl_enable": true}),
            "connecting with SSL",
        ),
    ] {
        let c = fdi_connector_kafka::Factory.create(&content).unwrap();
        let t = std::time::Instant::now();
        let e = c.test_connect().await.unwrap_err();
        assert!(
            t.elapsed() < Duration::from_secs(8),
            "{content}: {:?}",
            t.elapsed()
        );
        assert!(e.message.contains(says), "{content}: {}", e.message);
        if content.get("ssl_username").is_some() {
            assert!(
                e.message.contains("SASL") && !e.retryable,
                "a refused SASL handshake is not retried: {}",
                e.message
            );
        }
    }
}
