//! The RabbitMQ connector against the machine's RabbitMQ (127.0.0.1:5672, guest/guest): each test
//! declares its own queue and deletes it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, AsArray, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use fdi_connector::{
    Connector, ConnectorFactory, ErrorKind, MessageField, ReadSpec, SourceBatch, SourceQuery,
    WriteMode, WriteSpec,
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

/// A fresh durable queue, deleted when dropped.
struct Queue {
    name: String,
    channel: lapin::Channel,
    _conn: lapin::Connection,
}

impl Queue {
    async fn new() -> Queue {
        let conn = lapin::Connection::connect(URI, lapin::ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672");
        let channel = conn.create_channel().await.unwrap();
        let name = format!("fdi_test_{}", fdi_types::new_id());
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        Queue {
            name,
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

fn fields(spec: &[(&str, &str, &str)]) -> Vec<MessageField> {
    fdi_connector_compliance::message_fields(spec)
}

fn read_spec(queue: &str, f: Vec<MessageField>, follow: bool, batch_rows: usize) -> ReadSpec {
    ReadSpec {
        query: SourceQuery::Messages {
            source: queue.into(),
            fields: f,
            follow,
            reader_name: "test".into(),
        },
        batch_rows,
    }
}

/// Rows `from..to`: id, name (unicode, every 7th NULL), amount (38, 10), at, ok.
fn rows(from: i64, to: i64) -> RecordBatch {
    let ids: Vec<i64> = (from..to).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(38, 10), true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("ok", DataType::Boolean, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(ids.clone())),
            Arc::new(StringArray::from(
                ids.iter()
                    .map(|i| (i % 7 != 0).then(|| format!("név-{i}-漢字 \"q\"")))
                    .collect::<Vec<_>>(),
            )),
            Arc::new(
                Decimal128Array::from(
                    ids.iter()
                        .map(|i| Some(i128::from(*i) * 10_000_000_001))
                        .collect::<Vec<_>>(),
                )
                .with_precision_and_scale(38, 10)
                .unwrap(),
            ),
            Arc::new(
                TimestampMicrosecondArray::from(
                    ids.iter()
                        .map(|i| Some(1_709_251_200_000_000 + i * 1_000_000))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(BooleanArray::from(
                ids.iter().map(|i| Some(i % 2 == 0)).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

async fn publish(queue: &str, batch: RecordBatch) {
    let c = connector();
    let mut w = c
        .writer(WriteSpec {
            table: queue.into(),
            columns: Vec::new(),
            mode: WriteMode::Insert,
            clear_table: false,
        })
        .await
        .unwrap();
    w.begin().await.unwrap();
    let stats = w.write(batch.clone()).await.unwrap();
    assert_eq!(stats.rows, batch.num_rows() as u64);
    w.commit().await.unwrap();
}

const ALL_FIELDS: &[(&str, &str, &str)] = &[
    ("id", "Long", ""),
    ("name", "String", ""),
    ("amount", "Decimal", ""),
    ("at", "Timestamp", ""),
    ("ok", "Boolean", ""),
    ("rk", "String", "@routing_key"),
];

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
    let sent = rows(1, 251);
    publish(&q.name, sent.clone()).await;
    assert_eq!(q.depth().await, 250);

    let c = connector();
    let mut r = c
        .reader(read_spec(&q.name, fields(ALL_FIELDS), false, 100))
        .await
        .unwrap();
    let ack = r.acknowledger().expect("a queue is acknowledged");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(8);
    let n = r.read(tx, CancellationToken::new()).await.unwrap();
    assert_eq!(n, 250);
    let mut got = Vec::new();
    let mut last = None;
    while let Some(b) = rx.recv().await {
        assert!(b.rows.num_rows() <= 100);
        last = b.position.clone();
        got.push(b.rows);
    }
    let got = arrow::compute::concat_batches(&got[0].schema(), &got).unwrap();
    assert_eq!(got.num_rows(), 250);
    for (i, name) in ["id", "name", "amount", "at", "ok"].iter().enumerate() {
        let want = sent.column(i);
        let have = got.column(i);
        let have = arrow::compute::cast(have, want.data_type()).unwrap();
        assert_eq!(&have, want, "column {name}");
    }
    let rk = got.column(5).as_string::<i32>();
    assert!((0..rk.len()).all(|i| rk.value(i) == q.name));
    ack.ack(&last.unwrap()).await.unwrap();
    drop(ack);
    drop(r);
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
    publish(&q.name, rows(0, 100)).await;
    let c = connector();
    let f = fields(&[("id", "Long", ""), ("again", "Boolean", "@redelivered")]);
    let mut r = c
        .reader(read_spec(&q.name, f.clone(), false, 30))
        .await
        .unwrap();
    let ack = r.acknowledger().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(8);
    r.read(tx, CancellationToken::new()).await.unwrap();
    let mut batches = Vec::new();
    while let Some(b) = rx.recv().await {
        batches.push(b);
    }
    assert_eq!(
        batches
            .iter()
            .map(|b| b.rows.num_rows())
            .collect::<Vec<_>>(),
        [30, 30, 30, 10]
    );
    // The target committed the first two batches only.
    ack.ack(batches[1].position.as_ref().unwrap())
        .await
        .unwrap();
    drop((ack, r));
    wait_depth(&q, 40).await;

    // The other 40 come again, flagged redelivered, in order.
    let mut r = c.reader(read_spec(&q.name, f, false, 100)).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(8);
    assert_eq!(r.read(tx, CancellationToken::new()).await.unwrap(), 40);
    let b = rx.recv().await.unwrap().rows;
    let ids = b.column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.values().to_vec(), (60..100).collect::<Vec<i64>>());
    assert!(b.column(1).as_boolean().iter().all(|v| v == Some(true)));
    drop(r);
    wait_depth(&q, 40).await;
    q.delete().await;
}

#[tokio::test]
async fn a_message_that_does_not_convert_fails_the_read_naming_it() {
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
        .reader(read_spec(&q.name, fields(&[("id", "Long", "")]), false, 10))
        .await
        .unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel::<SourceBatch>(8);
    let e = r.read(tx, CancellationToken::new()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::User);
    assert!(
        e.message.contains("delivery tag 1")
            && e.message.contains("id: \"not a number\" is not an integer"),
        "{}",
        e.message
    );
    drop(r);
    wait_depth(&q, 1).await;
    q.delete().await;
}

#[tokio::test]
async fn a_following_reader_stops_within_two_seconds_of_cancel() {
    let q = Queue::new().await;
    let c = connector();
    let mut r = c
        .reader(read_spec(&q.name, fields(&[("id", "Long", "")]), true, 10))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(8);
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    let task = tokio::spawn(async move { r.read(tx, token).await });
    publish(&q.name, rows(0, 5)).await;
    let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.rows.num_rows(), 5, "a partial batch is not held back");
    let t = Instant::now();
    cancel.cancel();
    let e = task.await.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled);
    assert!(t.elapsed() < Duration::from_secs(2));
    q.delete().await;
}

#[tokio::test]
async fn bad_queue_and_bad_configuration_are_user_errors_naming_them() {
    let c = connector();
    let e = c
        .reader(read_spec(
            "fdi_no_such_queue",
            fields(&[("id", "Long", "")]),
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
    let e = fdi_connector_rabbitmq::Factory
        .validate(&json!({"host": "h", "port": 99999}))
        .unwrap_err();
    assert_eq!(e.message, "content.port: 99999 is not a port number");
    let mut w = c
        .writer(WriteSpec {
            table: "fdi_no_such_queue".into(),
            columns: Vec::new(),
            mode: WriteMode::Insert,
            clear_table: false,
        })
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
    publish(&target, rows(0, 60)).await;
    wait_depth(&q, 60).await;
    let c = connector();
    let mut r = c
        .reader(read_spec(
            &q.name,
            fields(&[
                ("id", "Long", ""),
                ("name", "String", ""),
                ("rk", "String", "@routing_key"),
                ("ex", "String", "@exchange"),
            ]),
            false,
            100,
        ))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<SourceBatch>(8);
    assert_eq!(r.read(tx, CancellationToken::new()).await.unwrap(), 60);
    let b = rx.recv().await.unwrap().rows;
    assert_eq!(
        b.column(0).as_primitive::<Int64Type>().values().to_vec(),
        (0..60).collect::<Vec<i64>>()
    );
    assert_eq!(b.column(1).as_string::<i32>().value(1), "név-1-漢字 \"q\"");
    let rk = b.column(2).as_string::<i32>();
    let ex = b.column(3).as_string::<i32>();
    assert!((0..60).all(|i| rk.value(i) == "key.a" && ex.value(i) == exchange));
    drop(r);

    // A key no binding matches: the broker returns the messages and the commit says so.
    let mut w = c
        .writer(WriteSpec {
            table: format!("{exchange}/other.b"),
            columns: Vec::new(),
            mode: WriteMode::Insert,
            clear_table: false,
        })
        .await
        .unwrap();
    w.begin().await.unwrap();
    w.write(rows(0, 3)).await.unwrap();
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
        .writer(WriteSpec {
            table: format!("{missing}/key.a"),
            columns: Vec::new(),
            mode: WriteMode::Insert,
            clear_table: false,
        })
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
        .writer(WriteSpec {
            table: "/key.a".into(),
            columns: Vec::new(),
            mode: WriteMode::Insert,
            clear_table: false,
        })
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
