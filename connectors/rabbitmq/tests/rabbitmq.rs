//! The RabbitMQ connector against the machine's RabbitMQ (127.0.0.1:5672, guest/guest): each test
//! declares its own queue and deletes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use fdi_connector::{Connector, ConnectorFactory, ErrorKind, MessageField, ReadSpec, SourceBatch};
use fdi_connector_compliance::{
    MessageSubject, Running, STANDARD_FIELDS, ids, insert_into, message_fields, message_spec,
    numbered_name, numbered_rows, read_all, refusal, run_and_assert_compliance, strings, write_all,
};
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn content() -> serde_json::Value {
    json!({"host": "127.0.0.1", "port": "5672", "user_name": "guest", "password": "guest"})
}

fn connector() -> Arc<dyn Connector> {
    fdi_connector_rabbitmq::Factory.create(&content()).unwrap()
}

/// A channel on a connection of the test's own.
async fn channel() -> (lapin::Channel, lapin::Connection) {
    let conn = lapin::Connection::connect(URI, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672");
    (conn.create_channel().await.unwrap(), conn)
}

/// A new durable queue named `{prefix}_<id>`.
async fn declare(channel: &lapin::Channel, prefix: &str) -> String {
    let name = format!("{prefix}_{}", fdi_types::new_id());
    channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    name
}

#[tokio::test]
async fn rabbitmq_passes_the_compliance_suite() {
    let (channel, _conn) = channel().await;
    let declaring = channel.clone();
    let s = MessageSubject {
        factory: Arc::new(fdi_connector_rabbitmq::Factory),
        content: content(),
        new_source: Arc::new(move || {
            let channel = declaring.clone();
            Box::pin(async move { declare(&channel, "fdi_compliance").await })
        }),
        bad_contents: vec![
            (json!({"port": 5672}), "content.host"),
            (json!({"host": "h", "port": "x"}), "content.port"),
            (
                json!({"host": "h", "ssl_enable": "yes please"}),
                "content.ssl_enable",
            ),
        ],
        // Binary values travel as arrow's JSON text of them and come back as that text's bytes.
        lossy_columns: &["data"],
        made: Default::default(),
    };
    run_and_assert_compliance(&s).await;
    for q in s.made.into_inner().unwrap() {
        let _ = channel
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
}

/// A fresh durable queue, deleted when dropped.
struct Queue {
    name: String,
    channel: lapin::Channel,
    _conn: lapin::Connection,
}

impl Queue {
    async fn new() -> Queue {
        let (channel, conn) = channel().await;
        Queue {
            name: declare(&channel, "fdi_test").await,
            channel,
            _conn: conn,
        }
    }

    async fn depth(&self) -> u32 {
        self.channel
            .queue_declare(
                self.name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    async fn delete(self) {
        self.channel
            .queue_delete(self.name.as_str().into(), QueueDeleteOptions::default())
            .await
            .unwrap();
    }
}

fn read_spec(queue: &str, f: Vec<MessageField>, follow: bool, batch_rows: usize) -> ReadSpec {
    message_spec(queue, f, follow, batch_rows, "test")
}

async fn publish(queue: &str, batch: RecordBatch) {
    write_all(&connector(), insert_into(queue, Vec::new()), [batch], true).await;
}

#[tokio::test]
async fn test_connect_checks_the_login() {
    connector().test_connect().await.unwrap();
    let bad = fdi_connector_rabbitmq::Factory
        .create(&json!({"host": "127.0.0.1", "user_name": "guest", "password": "wrong"}))
        .unwrap();
    let e = bad.test_connect().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::External);
    assert!(
        !e.retryable,
        "a refused login is not retried: {}",
        e.message
    );
    let closed = fdi_connector_rabbitmq::Factory
        .create(&json!({"host": "127.0.0.1", "port": 1}))
        .unwrap();
    let e = closed.test_connect().await.unwrap_err();
    assert!(e.retryable, "{}", e.message);
}

#[tokio::test]
async fn rows_round_trip_through_a_queue() {
    let q = Queue::new().await;
    let sent = numbered_rows(1, 251);
    publish(&q.name, sent.clone()).await;
    assert_eq!(q.depth().await, 250);

    let read = read_all(
        &connector(),
        // The columns of numbered_rows, and the routing key.
        read_spec(
            &q.name,
            message_fields(&[&STANDARD_FIELDS[..5], &[("rk", "String", "@routing_key")]].concat()),
            false,
            100,
        ),
    )
    .await;
    let got = read.rows();
    assert_eq!(got.num_rows(), 250);
    for (i, name) in ["id", "name", "amount", "at", "ok"].iter().enumerate() {
        let want = sent.column(i);
        let have = got.column(i);
        let have = arrow::compute::cast(have, want.data_type()).unwrap();
        assert_eq!(&have, want, "column {name}");
    }
    let rk = got.column(5).as_string::<i32>();
    assert!((0..rk.len()).all(|i| rk.value(i) == q.name));
    assert!(read.ack.is_some(), "a queue is acknowledged");
    read.ack_all().await;
    drop(read);
    wait_depth(&q, 0).await;
    q.delete().await;
}

/// The queue's depth becomes `want` (a closed channel requeues asynchronously).
async fn wait_depth(q: &Queue, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = q.depth().await;
        if d == want {
            return;
        }
        assert!(Instant::now() < deadline, "queue depth {d}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn only_acknowledged_messages_leave_the_queue() {
    let q = Queue::new().await;
    publish(&q.name, numbered_rows(0, 100)).await;
    let c = connector();
    let f = message_fields(&[("id", "Long", ""), ("again", "Boolean", "@redelivered")]);
    let first = read_all(&c, read_spec(&q.name, f.clone(), false, 30)).await;
    assert_eq!(first.batch_sizes(), [30, 30, 30, 10]);
    // The target committed the first two batches only.
    first.ack_through(1).await;
    drop(first);
    wait_depth(&q, 40).await;

    // The other 40 come again, flagged redelivered, in order.
    let again = read_all(&c, read_spec(&q.name, f, false, 100)).await;
    let b = again.rows();
    assert_eq!(ids(&b), (60..100).collect::<Vec<i64>>());
    assert!(b.column(1).as_boolean().iter().all(|v| v == Some(true)));
    drop(again);
    wait_depth(&q, 40).await;
    q.delete().await;
}

#[tokio::test]
async fn a_message_that_does_not_convert_travels_as_a_rejected_record_naming_it() {
    let q = Queue::new().await;
    q.channel
        .basic_publish(
            "".into(),
            q.name.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            br#"{"id": "not a number"}"#,
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap();
    wait_depth(&q, 1).await;
    let c = connector();
    let mut r = c
        .reader(read_spec(
            &q.name,
            message_fields(&[("id", "Long", "")]),
            false,
            10,
        ))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(8);
    let read = r.read(tx, CancellationToken::new()).await.unwrap();
    assert_eq!(read, 1);
    let batch = rx.recv().await.unwrap();
    assert_eq!(batch.rows.num_rows(), 0);
    assert_eq!(batch.rejected.len(), 1);
    let rejected = &batch.rejected[0];
    assert!(
        rejected.origin.contains("delivery tag 1")
            && rejected
                .reason
                .contains("id: \"not a number\" is not an integer"),
        "{rejected:?}"
    );
    assert_eq!(rejected.data, serde_json::json!({"id": "not a number"}));
    // The reader acknowledges nothing itself: the engine does, after the run decides.
    drop(r);
    wait_depth(&q, 1).await;
    q.delete().await;
}

#[tokio::test]
async fn a_following_reader_stops_within_two_seconds_of_cancel() {
    let q = Queue::new().await;
    let spec = read_spec(&q.name, message_fields(&[("id", "Long", "")]), true, 10);
    let mut r = Running::start(&connector(), spec).await;
    publish(&q.name, numbered_rows(0, 5)).await;
    let first = r.next(Duration::from_secs(5)).await;
    assert_eq!(first.rows.num_rows(), 5, "a partial batch is not held back");
    r.assert_cancels_within_2s().await;
    q.delete().await;
}

#[tokio::test]
async fn bad_queue_and_bad_configuration_are_user_errors_naming_them() {
    let c = connector();
    let e = c
        .reader(read_spec(
            "fdi_no_such_queue",
            message_fields(&[("id", "Long", "")]),
            false,
            10,
        ))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::User);
    assert!(
        e.message.contains("\"fdi_no_such_queue\" does not exist"),
        "{}",
        e.message
    );
    let e = refusal(
        &fdi_connector_rabbitmq::Factory,
        &json!({"host": "h", "port": 99999}),
    );
    assert_eq!(e.message, "content.port: 99999 is not a port number");
    let mut w = c
        .writer(insert_into("fdi_no_such_queue", Vec::new()))
        .await
        .unwrap();
    let e = w.begin().await.unwrap_err();
    assert!(e.message.contains("does not exist"), "{}", e.message);
}

#[tokio::test]
async fn exchange_slash_routing_key_publishes_through_the_exchange() {
    let q = Queue::new().await;
    let exchange = format!("fdi_test_ex_{}", fdi_types::new_id());
    q.channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    q.channel
        .queue_bind(
            q.name.as_str().into(),
            exchange.as_str().into(),
            "key.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let target = format!("{exchange}/key.a");
    publish(&target, numbered_rows(0, 60)).await;
    wait_depth(&q, 60).await;
    let c = connector();
    let read = read_all(
        &c,
        read_spec(
            &q.name,
            message_fields(&[
                ("id", "Long", ""),
                ("name", "String", ""),
                ("rk", "String", "@routing_key"),
                ("ex", "String", "@exchange"),
            ]),
            false,
            100,
        ),
    )
    .await;
    let b = read.rows();
    assert_eq!(ids(&b), (0..60).collect::<Vec<i64>>());
    assert_eq!(strings(&b, 1)[1], numbered_name(1));
    let rk = b.column(2).as_string::<i32>();
    let ex = b.column(3).as_string::<i32>();
    assert!((0..60).all(|i| rk.value(i) == "key.a" && ex.value(i) == exchange));
    drop(read);

    // A key no binding matches: the broker returns the messages and the commit says so.
    let mut w = c
        .writer(insert_into(&format!("{exchange}/other.b"), Vec::new()))
        .await
        .unwrap();
    w.begin().await.unwrap();
    w.write(numbered_rows(0, 3)).await.unwrap();
    let e = w.commit().await.unwrap_err();
    assert!(
        e.message.contains("returned 3 messages unroutable")
            && e.message.contains("no queue is bound"),
        "{}",
        e.message
    );
    w.abort().await.unwrap();

    // A missing exchange fails the writer's start, naming it and the target.
    let missing = format!("fdi_no_such_exchange_{}", fdi_types::new_id());
    let mut w = c
        .writer(insert_into(&format!("{missing}/key.a"), Vec::new()))
        .await
        .unwrap();
    let e = w.begin().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::User, "{}", e.message);
    assert!(
        e.message
            .contains(&format!("exchange \"{missing}\" does not exist"))
            && e.message.contains(&format!("target \"{missing}/key.a\"")),
        "{}",
        e.message
    );
    let e = c
        .writer(insert_into("/key.a", Vec::new()))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::User);

    q.channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    q.delete().await;
}

#[tokio::test]
async fn tls_against_the_plaintext_port_fails_clearly_within_seconds() {
    let tls = fdi_connector_rabbitmq::Factory
        .create(
            &json!({"host": "127.0.0.1", "port": 5672, "user_name": "guest",
            "password": "guest", "ssl_enable": true}),
        )
        .unwrap();
    let t = Instant::now();
    let e = tls.test_connect().await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(12), "{:?}", t.elapsed());
    assert_eq!(e.kind, ErrorKind::External);
    assert!(!e.retryable, "a failed TLS handshake is not retried");
    assert!(
        e.message.contains("127.0.0.1:5672") && e.message.contains("content.ssl_enable"),
        "{}",
        e.message
    );
    // Without a port, TLS goes to 5671 (nothing listens there on this machine).
    let tls = fdi_connector_rabbitmq::Factory
        .create(&json!({"host": "127.0.0.1", "ssl_enable": "true"}))
        .unwrap();
    let e = tls.test_connect().await.unwrap_err();
    assert!(e.message.contains("127.0.0.1:5671"), "{}", e.message);
}
