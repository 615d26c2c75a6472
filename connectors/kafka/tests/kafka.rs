//! The Kafka connector against the Kafka-protocol broker of `scripts/services.sh up kafka`
//! (127.0.0.1:9092): the compliance suite, discovery, and offsets committed only as acknowledged.

use std::sync::Arc;
use std::time::Duration;

use fdi_connector::{Connector, ConnectorFactory};
use fdi_connector_compliance::{
    MessageSubject, Read, columns_of, ids, insert_into, message_fields, message_spec, read_all,
    run_and_assert_compliance, standard_rows, strings, write_all,
};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use serde_json::json;

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

fn subject() -> MessageSubject {
    MessageSubject {
        factory: Arc::new(fdi_connector_kafka::Factory),
        content: content(),
        new_source: Arc::new(|| Box::pin(topic(3))),
        bad_contents: vec![
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
        ],
        // Binary values travel as arrow's JSON text of them and come back as that text's bytes.
        lossy_columns: &["data"],
        made: Default::default(),
    }
}

#[tokio::test]
async fn kafka_passes_the_compliance_suite() {
    run_and_assert_compliance(&subject()).await;
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
    let rows = standard_rows(to as usize).slice(from as usize, (to - from) as usize);
    write_all(&connector(), insert_into(topic, Vec::new()), [rows], true).await;
}

/// Reads every message of `topic` as `fields` in `group`, nothing acknowledged.
async fn read_topic(
    topic: &str,
    fields: &[(&str, &str, &str)],
    group: &str,
    batch_rows: usize,
) -> Read {
    let spec = message_spec(topic, message_fields(fields), false, batch_rows, group);
    read_all(&connector(), spec).await
}

#[tokio::test]
async fn the_group_resumes_after_the_last_acknowledged_batch() {
    let t = topic(1).await;
    produce(&t, 0, 100).await;
    let group = fdi_types::new_id();
    let fields = [("id", "Long", ""), ("p", "Integer", "@partition")];
    let first = read_topic(&t, &fields, &group, 30).await;
    assert_eq!(first.batch_sizes(), [30, 30, 30, 10]);
    // The target committed the first two batches only.
    first.ack_through(1).await;
    // The first run ends: its consumer leaves the group.
    drop(first);
    let again = read_topic(&t, &fields, &group, 100).await;
    assert_eq!(
        ids(&again.rows()),
        ids(&standard_rows(100))[60..],
        "exactly the 40 unacknowledged messages come again"
    );
}

/// Reads every message of `topic` as (id, @key) in a new group.
async fn ids_and_keys(topic: &str) -> Vec<(i64, Option<String>)> {
    let fields = [("id", "Long", ""), ("k", "String", "@key")];
    let rows = read_topic(topic, &fields, &fdi_types::new_id(), 1000)
        .await
        .rows();
    let mut out: Vec<(i64, Option<String>)> =
        ids(&rows).into_iter().zip(strings(&rows, 1)).collect();
    out.sort();
    out
}

#[tokio::test]
async fn each_message_is_keyed_by_the_first_primary_column() {
    let t = topic(3).await;
    let rows = standard_rows(40);
    // Only the first primary column is the key.
    let columns = columns_of(&rows.schema(), &["id", "name"]);
    let stats = write_all(&connector(), insert_into(&t, columns), [rows.clone()], true).await;
    assert_eq!((stats.rows, stats.dirty_rows), (40, 0));

    let mut want: Vec<(i64, Option<String>)> = ids(&rows)
        .into_iter()
        .map(|id| (id, Some(id.to_string())))
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
    let mut w = c.writer(insert_into(&t, Vec::new())).await.unwrap();
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
