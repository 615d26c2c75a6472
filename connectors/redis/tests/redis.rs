//! The Redis connector against the machine's Redis (127.0.0.1:6379, database 0, no password):
//! stream acknowledgements, key-pattern round trips, discovery and configuration errors. Every
//! test works under its own random key prefix and deletes its keys.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type, Schema};
use fdi_connector::{Connector, ConnectorFactory, ErrorKind, WriteMode, WriteSpec};
use fdi_connector_compliance::{
    MessageSubject, Running, columns_of, ids, message_fields, message_spec, numbered_amount,
    numbered_at, numbered_name, numbered_rows, read_all, run_and_assert_compliance, strings,
    table_spec, write_all,
};
use redis::aio::MultiplexedConnection;
use serde_json::json;

fn content() -> serde_json::Value {
    json!({"address": "127.0.0.1:6379", "redis_database": "0"})
}

fn connector() -> Arc<dyn Connector> {
    fdi_connector_redis::Factory.create(&content()).unwrap()
}

async fn raw() -> MultiplexedConnection {
    redis::Client::open("redis://127.0.0.1:6379/0")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379")
}

/// A random prefix for one test's keys (no glob characters).
fn prefix() -> String {
    format!("fdi_test_{}", fdi_types::new_id().replace('-', ""))
}

/// Delete every key under `prefix`.
async fn cleanup(prefix: &str) {
    let mut c = raw().await;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut c)
                .await
                .unwrap();
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
}

/// The suite with streams as the tables; every stream it makes is deleted at the end.
#[tokio::test]
async fn redis_passes_the_compliance_suite() {
    let s = MessageSubject {
        factory: Arc::new(fdi_connector_redis::Factory),
        content: json!({"address": "127.0.0.1:6379"}),
        new_source: Arc::new(|| {
            Box::pin(async { format!("fdi_compliance_{}", fdi_types::new_id()) })
        }),
        bad_contents: vec![
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
        ],
        // Binary values are written as their bytes and come back as text (bytes that are not
        // UTF-8 become U+FFFD).
        lossy_columns: &["data"],
        made: Default::default(),
    };
    run_and_assert_compliance(&s).await;
    let streams = s.made.into_inner().unwrap();
    let deleted: usize = redis::cmd("DEL")
        .arg(&streams)
        .query_async(&mut raw().await)
        .await
        .unwrap();
    assert!(deleted >= 3, "the suite's streams existed: {deleted}");
}

/// [`numbered_rows`] into `table`, keyed by `id`.
fn write_spec(table: &str, mode: WriteMode, clear_table: bool) -> WriteSpec {
    WriteSpec {
        table: table.into(),
        columns: columns_of(&numbered_rows(0, 0).schema(), &["id"]),
        mode,
        clear_table,
    }
}

async fn write(c: &Arc<dyn Connector>, spec: WriteSpec, batches: Vec<RecordBatch>) -> u64 {
    write_all(c, spec, batches, true).await.rows
}

async fn pending_count(stream: &str, group: &str) -> i64 {
    let mut c = raw().await;
    let v: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query_async(&mut c)
        .await
        .unwrap();
    match v.first() {
        Some(redis::Value::Int(n)) => *n,
        other => panic!("XPENDING: {other:?}"),
    }
}

#[tokio::test]
async fn a_stream_delivers_again_exactly_what_was_not_acknowledged() {
    let p = prefix();
    let stream = format!("{p}_orders");
    let c = connector();
    assert_eq!(
        write(
            &c,
            write_spec(&stream, WriteMode::Insert, false),
            vec![numbered_rows(0, 60), numbered_rows(60, 100)]
        )
        .await,
        100
    );
    let f = || {
        message_fields(&[
            ("id", "Long", ""),
            ("name", "String", ""),
            ("entry", "String", "@id"),
            ("amount", "Decimal", ""),
        ])
    };
    let task = "task-1";
    let first = read_all(&c, message_spec(&stream, f(), false, 10, task)).await;
    assert_eq!(
        first.batch_sizes(),
        [10; 10],
        "100 entries in batches of 10"
    );
    let rows = first.rows();
    assert_eq!(ids(&rows), (0..100).collect::<Vec<_>>());
    let first_entries: Vec<String> = strings(&rows, 2).into_iter().map(Option::unwrap).collect();
    assert_eq!(pending_count(&stream, "fdi-task-1").await, 100);
    // The target committed the first half only; then the run died.
    first.ack_through(4).await;
    assert_eq!(pending_count(&stream, "fdi-task-1").await, 50);

    let again = read_all(&c, message_spec(&stream, f(), false, 1000, task)).await;
    let rows = again.rows();
    assert_eq!(
        ids(&rows),
        (50..100).collect::<Vec<_>>(),
        "exactly the 50 unacknowledged entries come again"
    );
    let again_entries: Vec<String> = strings(&rows, 2).into_iter().map(Option::unwrap).collect();
    assert_eq!(again_entries, first_entries[50..]);
    let names = strings(&rows, 1);
    assert_eq!(names[0].as_deref(), Some("név 50 漢字 \"q\""));
    assert_eq!(names[1], None, "51 % 3 == 0: NULL left out, read back NULL");
    let amounts = rows.column(3).as_primitive::<Decimal128Type>();
    assert_eq!(amounts.value(0), 123_456_789_012_345_678_900_000_000_050);
    again.ack_all().await;
    assert_eq!(pending_count(&stream, "fdi-task-1").await, 0);

    // Everything acknowledged: nothing more for this task, everything for another one.
    let none = read_all(&c, message_spec(&stream, f(), false, 1000, task)).await;
    assert_eq!(ids(&none.rows()), Vec::<i64>::new());
    let other = read_all(&c, message_spec(&stream, f(), false, 1000, "task-2")).await;
    assert_eq!(ids(&other.rows()).len(), 100);
    cleanup(&p).await;
}

#[tokio::test]
async fn key_patterns_round_trip_as_hashes() {
    let p = prefix();
    let pattern = format!("{p}:*");
    let c = connector();
    let written = write(
        &c,
        write_spec(&pattern, WriteMode::Insert, false),
        vec![numbered_rows(0, 25), numbered_rows(25, 40)],
    )
    .await;
    assert_eq!(written, 40);
    let mut r = raw().await;
    let hash = |key: String| async move {
        let h: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut raw().await)
            .await
            .unwrap();
        h
    };
    assert_eq!(
        hash(format!("{p}:1")).await,
        BTreeMap::from([
            ("id".to_string(), "1".to_string()),
            ("name".to_string(), "név 1 漢字 \"q\"".to_string()),
            (
                "amount".to_string(),
                "12345678901234567890.0000000001".to_string()
            ),
            ("at".to_string(), "2024-03-01T00:00:01.000001Z".to_string()),
            ("ok".to_string(), "false".to_string()),
        ])
    );
    let h3 = hash(format!("{p}:3")).await;
    assert!(
        !h3.contains_key("name"),
        "a NULL column is left out: {h3:?}"
    );

    // As a table: every column text, `key` the Redis key.
    let cols = c.columns(&pattern).await.unwrap();
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names[0], "key");
    assert_eq!(
        names.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["key", "id", "name", "amount", "at", "ok"])
    );
    assert!(cols[0].primary && cols.iter().all(|c| c.arrow_type == DataType::Utf8));
    // At most 7 rows a batch (read_all checks it).
    let read = read_all(
        &c,
        table_spec(&pattern, &["key", "id", "name", "amount"], 7),
    )
    .await;
    assert!(read.ack.is_none(), "a key pattern has no positions");
    let rows = read.rows();
    let (k, i, n, a) = (
        strings(&rows, 0),
        strings(&rows, 1),
        strings(&rows, 2),
        strings(&rows, 3),
    );
    let mut got: Vec<(String, String, Option<String>, String)> = (0..k.len())
        .map(|r| {
            (
                k[r].clone().unwrap(),
                i[r].clone().unwrap(),
                n[r].clone(),
                a[r].clone().unwrap(),
            )
        })
        .collect();
    got.sort_by_key(|r| r.1.parse::<i64>().unwrap());
    assert_eq!(got.len(), 40);
    for (i, row) in got.iter().enumerate() {
        assert_eq!(
            row,
            &(
                format!("{p}:{i}"),
                i.to_string(),
                numbered_name(i as i64),
                format!("12345678901234567890.00000000{i:02}")
            )
        );
    }

    // With sourceMetaData: typed fields by JSON path and the @key property.
    let f = message_fields(&[
        ("id", "Long", ""),
        ("k", "String", "@key"),
        ("amount", "Decimal", "amount"),
        ("at", "Timestamp", ""),
        ("missing", "String", "nope"),
    ]);
    let rows = read_all(&c, message_spec(&pattern, f, false, 16, "unused"))
        .await
        .rows();
    let id = rows.column(0).as_primitive::<Int64Type>();
    let k = rows.column(1).as_string::<i32>();
    let a = rows.column(2).as_primitive::<Decimal128Type>();
    let at = rows
        .column(3)
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
    let mut typed: Vec<(i64, String, i128, i64, bool)> = (0..id.len())
        .map(|r| {
            (
                id.value(r),
                k.value(r).to_string(),
                a.value(r),
                at.value(r),
                rows.column(4).is_null(r),
            )
        })
        .collect();
    typed.sort();
    assert_eq!(typed.len(), 40);
    assert_eq!(
        typed[39],
        (
            39,
            format!("{p}:39"),
            numbered_amount(39),
            numbered_at(39),
            true
        )
    );

    // An upsert makes the hash hold the row as written (a NULL removes the field); a row
    // without a key is dirty; clear_table empties the pattern first.
    let mut row2 = numbered_rows(2, 4);
    row2 = RecordBatch::try_new(
        row2.schema(),
        vec![
            row2.column(0).clone(),
            Arc::new(StringArray::from(vec![None::<&str>, Some("x")])),
            row2.column(2).clone(),
            row2.column(3).clone(),
            row2.column(4).clone(),
        ],
    )
    .unwrap();
    write(
        &c,
        write_spec(
            &pattern,
            WriteMode::Upsert {
                keys: vec!["id".into()],
                part_update: false,
            },
            false,
        ),
        vec![row2],
    )
    .await;
    let name2: Option<String> = redis::cmd("HGET")
        .arg(format!("{p}:2"))
        .arg("name")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(name2, None);
    let mut w = c
        .writer(write_spec(&pattern, WriteMode::Insert, true))
        .await
        .unwrap();
    w.begin().await.unwrap();
    let nokey = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![Some(7), None])),
            Arc::new(StringArray::from(vec!["seven", "lost"])),
        ],
    )
    .unwrap();
    let stats = w.write(nokey).await.unwrap();
    assert_eq!((stats.rows, stats.dirty_rows), (1, 1));
    w.commit().await.unwrap();
    let left = strings(
        &read_all(&c, table_spec(&pattern, &["key", "name"], 7))
            .await
            .rows(),
        0,
    );
    assert_eq!(
        left,
        vec![Some(format!("{p}:7"))],
        "clear_table removed the 40 keys"
    );
    cleanup(&p).await;
}

#[tokio::test]
async fn discovery_lists_streams_and_key_prefixes() {
    let p = prefix();
    let stream = format!("{p}_events");
    let mut r = raw().await;
    let _: () = redis::pipe()
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("x")
        .cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("a")
        .arg("2")
        .arg("c")
        .arg("{\"n\":1}")
        .cmd("HSET")
        .arg(format!("{p}:h"))
        .arg("f1")
        .arg("v1")
        .arg("f2")
        .arg("v2")
        .cmd("SET")
        .arg(format!("{p}:s"))
        .arg("{\"j\": 5, \"f1\": \"from json\"}")
        .cmd("RPUSH")
        .arg(format!("{p}:l"))
        .arg("one")
        .arg("two")
        .cmd("SADD")
        .arg(format!("{p}:set"))
        .arg("only")
        .query_async(&mut r)
        .await
        .unwrap();
    let c = connector();
    c.test_connect().await.unwrap();
    let found = c.list_tables(Some(&p.to_uppercase())).await.unwrap();
    assert_eq!(found, vec![format!("{p}:*"), stream.clone()]);

    let cols = c.columns(&stream).await.unwrap();
    assert_eq!(
        cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["id", "a", "b", "c"]
    );
    assert!(cols[0].primary && !cols[1].primary);
    let cols = c.columns(&format!("{p}:*")).await.unwrap();
    assert_eq!(
        cols.iter()
            .map(|c| c.name.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["key", "f1", "f2", "value", "j"])
    );
    let e = c.columns(&format!("{p}_nothing:*")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::User);
    assert!(
        e.message.contains(&format!("{p}_nothing:*")),
        "{}",
        e.message
    );
    let e = c.columns(&format!("{p}_nothing")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::User);
    assert!(e.message.contains(&format!("{p}_nothing")), "{}", e.message);
    let e = c.columns(&format!("{p}:h")).await.unwrap_err();
    assert!(e.message.contains("hash"), "{}", e.message);

    // The pattern as a table: one row per key, lists and sets as JSON arrays.
    let all = read_all(&c, table_spec(&format!("{p}:*"), &[], 7))
        .await
        .rows();
    let column = |n: &str| strings(&all, all.schema().index_of(n).unwrap());
    let mut rows: BTreeMap<String, BTreeMap<String, Option<String>>> = BTreeMap::new();
    for (i, key) in column("key").into_iter().enumerate() {
        let row = ["f1", "f2", "value", "j"]
            .iter()
            .map(|n| (n.to_string(), column(n)[i].clone()))
            .collect();
        rows.insert(key.unwrap(), row);
    }
    assert_eq!(rows.len(), 4);
    let row = |k: &str, n: &str| rows[&format!("{p}:{k}")][n].clone();
    assert_eq!(row("h", "f1").as_deref(), Some("v1"));
    assert_eq!(row("h", "value"), None);
    assert_eq!(row("s", "j").as_deref(), Some("5"));
    assert_eq!(row("s", "f1").as_deref(), Some("from json"));
    assert_eq!(
        row("s", "value").as_deref(),
        Some("{\"j\": 5, \"f1\": \"from json\"}")
    );
    assert_eq!(row("l", "value").as_deref(), Some("[\"one\",\"two\"]"));
    assert_eq!(row("set", "value").as_deref(), Some("[\"only\"]"));

    // The stream as a table: a snapshot of its entries, no group.
    let read = read_all(&c, table_spec(&stream, &["id", "a", "c"], 7)).await;
    assert!(read.ack.is_none());
    let rows = read.rows();
    let got: Vec<(Option<String>, Option<String>)> = strings(&rows, 1)
        .into_iter()
        .zip(strings(&rows, 2))
        .collect();
    assert_eq!(
        got,
        vec![
            (Some("1".into()), None),
            (Some("2".into()), Some("{\"n\":1}".into()))
        ]
    );
    let groups: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(&stream)
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(groups.is_empty(), "a table read makes no group");
    cleanup(&p).await;
}

#[tokio::test]
async fn bad_configurations_name_the_field_or_the_cause() {
    // (Refused contents: the unit tests and the compliance suite.)
    let f = fdi_connector_redis::Factory;

    // A password against a server without one: refused with the server's words, not retried.
    let c = f
        .create(&json!({"address": "127.0.0.1:6379", "password": "secret"}))
        .unwrap();
    let e = c.test_connect().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::External);
    assert!(!e.retryable, "{}", e.message);
    assert!(
        e.message.contains("without any password configured"),
        "{}",
        e.message
    );
    assert!(
        e.message.starts_with("content.password: 127.0.0.1:6379"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("secret"));

    // A closed port: the cause, retryable.
    let c = f.create(&json!({"address": "127.0.0.1:1"})).unwrap();
    let e = c.test_connect().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::External);
    assert!(e.retryable);
    assert!(e.message.contains("127.0.0.1:1"), "{}", e.message);
    assert!(
        e.message.to_lowercase().contains("refused"),
        "{}",
        e.message
    );

    // Failover: the first address that answers is used.
    let c = f
        .create(&json!({"address": "127.0.0.1:1, 127.0.0.1:6379", "redis_database": 15}))
        .unwrap();
    c.test_connect().await.unwrap();
    let e = c.test_sql("select 1").await.unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::User, "REDIS has no SQL")
    );
    let e = c
        .reader(message_spec("user:*", Vec::new(), false, 10, "x"))
        .await
        .err()
        .map(|e| e.kind);
    assert_eq!(e, None, "a key pattern read without follow opens");
    let e = c
        .reader(message_spec("user:*", Vec::new(), true, 10, "x"))
        .await
        .err()
        .expect("a key pattern cannot be followed");
    assert_eq!(e.kind, ErrorKind::User);
}

#[tokio::test]
async fn a_following_read_takes_new_entries_until_cancelled() {
    let p = prefix();
    let stream = format!("{p}_live");
    let c = connector();
    write(
        &c,
        write_spec(&stream, WriteMode::Insert, false),
        vec![numbered_rows(0, 3)],
    )
    .await;
    let spec = message_spec(
        &stream,
        message_fields(&[("id", "Long", "")]),
        true,
        100,
        "live",
    );
    let mut r = Running::start(&c, spec).await;
    let ack = r.ack.clone().unwrap();
    let mut got = Vec::new();
    let mut last = None;
    while got.len() < 3 {
        let b = r.next(Duration::from_secs(5)).await;
        got.extend(ids(&b.rows));
        last = b.position.clone();
    }
    // Entries written while the reader waits arrive too.
    write(
        &c,
        write_spec(&stream, WriteMode::Insert, false),
        vec![numbered_rows(3, 8)],
    )
    .await;
    while got.len() < 8 {
        let b = r.next(Duration::from_secs(5)).await;
        got.extend(ids(&b.rows));
        last = b.position.clone();
    }
    assert_eq!(got, (0..8).collect::<Vec<_>>());
    ack.ack(last.as_ref().unwrap()).await.unwrap();
    assert_eq!(pending_count(&stream, "fdi-live").await, 0);
    // Acknowledging an older position again changes nothing.
    ack.ack(last.as_ref().unwrap()).await.unwrap();
    r.assert_cancels_within_2s().await;
    cleanup(&p).await;
}
