//! Message tasks end to end through the API, on the machine's RabbitMQ and MariaDB: a realtime
//! RABBITMQ -> MYSQL task follows its queue, acknowledges only what MySQL committed, and a stop
//! ends it with everything written committed.

use std::time::{Duration, Instant};

use fdi_e2e::*;
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::{Value, json};

const URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

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
        let name = unique("fdi_e2e_q");
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

    /// Publish ids `from..to` as `{"order": {"id": i}, "amount": "i.25", "who": "név i"}`.
    async fn publish(&self, from: i64, to: i64) {
        for i in from..to {
            let body =
                json!({"order": {"id": i}, "amount": format!("{i}.25"), "who": format!("név {i}")});
            self.channel
                .basic_publish(
                    "".into(),
                    self.name.as_str().into(),
                    BasicPublishOptions::default(),
                    body.to_string().as_bytes(),
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
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
}

async fn mysql_stats(table: &str) -> (i64, String) {
    let pool = mysql().await;
    let r: (i64, Option<String>) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), CAST(sum(amount) AS CHAR) FROM {table}"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (r.0, r.1.unwrap_or_default())
}

/// The sum of `i + 0.25` over `0..n`, as MySQL prints a decimal(12,2) sum.
fn amount_sum(n: i64) -> String {
    format!("{}.{:02}", n * (n - 1) / 2 + n / 4, (n % 4) * 25)
}

#[tokio::test]
async fn a_realtime_rabbitmq_task_follows_its_queue_into_mysql() {
    let s = TestServer::start_with_env(StoreKind::under_test(), &[("FDI_REALTIME_POLL_MS", "300")])
        .await;
    let q = Queue::new().await;
    let table = unique("mq_dst");
    mysql_exec(&format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, amount DECIMAL(12,2), who VARCHAR(64))"
    ))
    .await;
    let app = s.create_app().await;

    // The datasource: the reference's fields, the password masked, test-connect through the API.
    let (st, ds) = s
        .post(
            "/datasources",
            json!({"datasource_name": unique("mq"), "datasource_type": "RABBITMQ", "app_id": app,
                   "content": {"host": "127.0.0.1", "port": "5672", "user_name": "guest",
                               "password": "guest", "rabbitmq_virtual_host": "/"}}),
        )
        .await;
    assert_eq!(st, 201, "{ds}");
    assert_eq!(ds["content"]["password"], "******", "{ds}");
    let mq = ds["datasource_id"].as_str().unwrap().to_string();
    let (st, ok) = s
        .post(&format!("/datasources/{mq}/test-connect"), json!({}))
        .await;
    assert_eq!((st, &ok["result"]), (200, &Value::Bool(true)), "{ok}");
    let my = s.create_datasource(&app, "MYSQL", mysql_content()).await;

    let task = s
        .create_task_of_type(
            "REALTIME",
            &mq,
            &my,
            json!({
                "sourceSelectedDatasource": {"sourceTable": q.name, "sourceMetaData": {"dataSource": [
                    {"index": 0, "name": "id", "type": "Long", "path": "order.id"},
                    {"index": 1, "name": "amount", "type": "Decimal"},
                    {"index": 2, "name": "who", "type": "String"}]}},
                "targetSelectedDatasource": {"targetTable": table},
            }),
        )
        .await;
    q.publish(0, 500).await;
    s.start_task(&task).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while mysql_stats(&table).await.0 != 500 {
        if Instant::now() > deadline {
            let log = s.log();
            panic!(
                "timed out waiting for 500 rows in MySQL ({:?}); runs: {:?}\nlog: {}",
                mysql_stats(&table).await,
                s.runs(&task).await,
                &log[log.len().saturating_sub(4000)..]
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Messages arriving while it runs follow within seconds; the queue is drained by acks.
    q.publish(500, 800).await;
    let t = table.clone();
    wait_for("800 rows in MySQL", Duration::from_secs(10), || {
        let t = t.clone();
        async move { (mysql_stats(&t).await.0 == 800).then_some(()) }
    })
    .await;
    wait_for(
        "the queue drained by acks",
        Duration::from_secs(10),
        || async { (q.depth().await == 0).then_some(()) },
    )
    .await;
    assert_eq!(mysql_stats(&table).await, (800, amount_sum(800)));

    // Stop: the run ends SUCCESS with what it committed.
    let (st, body) = s
        .post(
            "/batch-operation/tasks",
            json!({"action_id": "stop", "list": [{"task_id": task}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let run = loop {
        let runs = s.runs(&task).await;
        if let Some(r) = runs.first().filter(|r| r["execute_status"] != "RUNNING") {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "the run did not end: {runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 800, "{run}");

    q.channel
        .queue_delete(q.name.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    mysql_exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test]
async fn postgres_to_kafka_then_kafka_to_postgres_in_realtime() {
    let s = TestServer::start_with_env(
        StoreKind::under_test(),
        &[
            ("FDI_REALTIME_POLL_MS", "300"),
            ("FDI_REALTIME_PROGRESS_MS", "300"),
        ],
    )
    .await;
    let app = s.create_app().await;
    let (st, ds) = s
        .post(
            "/datasources",
            json!({"datasource_name": unique("kafka"), "datasource_type": "KAFKA", "app_id": app,
                   "content": {"broker": "127.0.0.1:9092"}}),
        )
        .await;
    assert_eq!(st, 201, "{ds}");
    let kafka = ds["datasource_id"].as_str().unwrap().to_string();
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let topic = kafka_topic(3).await;
    // Topics are the datasource's tables.
    let (st, tables) = s
        .get(&format!("/datasources/{kafka}/tables?table_name={topic}"))
        .await;
    assert_eq!(st, 200, "{tables}");
    assert!(tables.to_string().contains(&topic), "{tables}");

    // PostgreSQL -> Kafka, a timing run: one message per row.
    let src = unique("pg_src");
    let dst = unique("pg_dst");
    pg_exec(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, amount numeric(12,2), who text);
         INSERT INTO {src} SELECT g, g + 0.25, 'név ' || g FROM generate_series(0, 1999) g;
         CREATE TABLE {dst} (id bigint PRIMARY KEY, amount numeric(12,2), who text);"
    ))
    .await;
    let out = s
        .create_task(
            &pg_ds,
            &kafka,
            json!({"sourceSelectedDatasource": {"sourceTable": src},
                   "targetSelectedDatasource": {"targetTable": topic}}),
        )
        .await;
    let run = s.run_to_end(&out).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 2000, "{run}");

    // Kafka -> PostgreSQL, realtime: the 2,000 messages, then 500 more produced meanwhile.
    let follow = s
        .create_task_of_type(
            "REALTIME",
            &kafka,
            &pg_ds,
            json!({
                "sourceSelectedDatasource": {"sourceTable": topic, "sourceMetaData": {"dataSource": [
                    {"name": "id", "type": "Long"}, {"name": "amount", "type": "Decimal"},
                    {"name": "who", "type": "String"}]}},
                "targetSelectedDatasource": {"targetTable": dst},
            }),
        )
        .await;
    s.start_task(&follow).await;
    let count = |t: String| async move {
        let pool = pg().await;
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    };
    let d = dst.clone();
    wait_for("2,000 rows in PostgreSQL", Duration::from_secs(40), || {
        let d = d.clone();
        async move { (count(d).await == 2000).then_some(()) }
    })
    .await;
    pg_exec(&format!(
        "INSERT INTO {src} SELECT g, g + 0.25, 'név ' || g FROM generate_series(2000, 2499) g"
    ))
    .await;
    let run = s.run_to_end(&out).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    let d = dst.clone();
    wait_for("2,500 rows in PostgreSQL", Duration::from_secs(20), || {
        let d = d.clone();
        async move { (count(d).await == 2500).then_some(()) }
    })
    .await;
    let pool = pg().await;
    let same: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT (SELECT md5(string_agg(id || ':' || amount || ':' || who, ',' ORDER BY id)) FROM {src}) = \
                (SELECT md5(string_agg(id || ':' || amount || ':' || who, ',' ORDER BY id)) FROM {dst})"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(same, "the target equals the source by checksum");
    // The running run's log shows progress entries with the committed rows and the offsets.
    let running = s.runs(&follow).await[0]["id"].as_str().unwrap().to_string();
    // (4,500 messages: the second PostgreSQL -> Kafka run sent all 2,500 rows again; the
    // target upserts them into 2,500.)
    let last = wait_for(
        "a progress entry at 4,500 messages",
        Duration::from_secs(10),
        || {
            let (s, follow, running) = (&s, &follow, &running);
            async move {
                let (_, detail) = s
                    .get(&format!("/tasks/{follow}/monitor-logs/{running}"))
                    .await;
                detail["detail_logs"]
                    .as_array()?
                    .iter()
                    .rev()
                    .find(|l| {
                        l["remarks"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("progress:"))
                    })
                    .filter(|l| l["data_count"] == 4500)
                    .cloned()
            }
        },
    )
    .await;
    let remarks = last["remarks"].as_str().unwrap();
    assert!(
        remarks.contains("source acknowledged up to") && remarks.contains("\"0\":"),
        "{last}"
    );
    s.post(
        "/batch-operation/tasks",
        json!({"action_id": "stop", "list": [{"task_id": follow}]}),
    )
    .await;
}

/// Produce `n` JSON messages `{"id": i, "v": i * 3}` to `topic`.
async fn produce_ids(topic: &str, n: i64) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let p: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    let mut pending = Vec::with_capacity(n as usize);
    for i in 0..n {
        let body = json!({"id": i, "v": i * 3}).to_string();
        let key = i.to_string();
        loop {
            match p.send_result(FutureRecord::to(topic).payload(&body).key(&key)) {
                Ok(f) => {
                    pending.push(f);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    for f in pending {
        f.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_kafka_stream_killed_mid_way_resumes_and_lands_every_message_exactly_once() {
    const N: i64 = 100_000;
    let mut s = TestServer::start_with_env(
        StoreKind::under_test(),
        &[("FDI_REALTIME_POLL_MS", "300"), ("FDI_LEASE_MS", "2000")],
    )
    .await;
    let app = s.create_app().await;
    let kafka = s
        .create_datasource(&app, "KAFKA", json!({"broker": "127.0.0.1:9092"}))
        .await;
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let topic = kafka_topic(3).await;
    produce_ids(&topic, N).await;
    let dst = unique("kafka_dst");
    pg_exec(&format!(
        "CREATE TABLE {dst} (id bigint PRIMARY KEY, v bigint)"
    ))
    .await;
    let task = s
        .create_task_of_type(
            "REALTIME",
            &kafka,
            &pg_ds,
            json!({
                "sourceSelectedDatasource": {"sourceTable": topic, "sourceMetaData": {"dataSource": [
                    {"name": "id", "type": "Long"}, {"name": "v", "type": "Long"}]}},
                "targetSelectedDatasource": {"targetTable": dst},
            }),
        )
        .await;
    s.start_task(&task).await;
    let stats = |t: String| async move {
        let pool = pg().await;
        let r: (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*)::bigint, count(DISTINCT id)::bigint, coalesce(sum(v), 0)::bigint FROM {t}"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        r
    };
    // Kill -9 once part of the stream landed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n, _, _) = stats(dst.clone()).await;
        if n > 0 && n < N {
            break;
        }
        assert!(n < N, "the stream finished before the kill: make it longer");
        assert!(Instant::now() < deadline, "nothing arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill9();
    let at_kill = stats(dst.clone()).await.0;
    s.spawn().await;
    // The restarted server takes the task over once the dead claim expires, and resumes from the
    // group's committed offsets.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (n, distinct, sum) = stats(dst.clone()).await;
        if n == N {
            assert_eq!(distinct, N);
            assert_eq!(sum, 3 * N * (N - 1) / 2, "every message's value, once");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {N} rows after the restart (had {at_kill} at the kill); runs: {:?}",
            s.runs(&task).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(at_kill < N, "the kill came mid-stream ({at_kill} rows)");
    s.post(
        "/batch-operation/tasks",
        json!({"action_id": "stop", "list": [{"task_id": task}]}),
    )
    .await;
}

#[tokio::test]
async fn a_sqlite_table_lands_in_redis_as_one_hash_per_row() {
    use redis::AsyncCommands;
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let file = s.files_dir().join("people.sqlite");
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::query(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL, note TEXT)",
        )
        .execute(&pool)
        .await
        .unwrap();
        for i in 1..=500i64 {
            sqlx::query("INSERT INTO people VALUES (?, ?, ?, ?)")
                .bind(i)
                .bind(format!("név {i} 🚀"))
                .bind(i as f64 / 4.0)
                .bind(if i % 10 == 0 {
                    None
                } else {
                    Some(format!("n{i}"))
                })
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
    let sqlite = s
        .create_datasource(&app, "SQLITE", sqlite_content(&file))
        .await;
    let redis_ds = s
        .create_datasource(&app, "REDIS", json!({"address": "127.0.0.1:6379"}))
        .await;
    let prefix = unique("e2e_people");
    let task = s
        .create_task(
            &sqlite,
            &redis_ds,
            json!({"sourceSelectedDatasource": {"sourceTable": "people"},
                   "targetSelectedDatasource": {"targetTable": format!("{prefix}:*")}}),
        )
        .await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 500, "{run}");

    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = con.keys(format!("{prefix}:*")).await.unwrap();
    assert_eq!(keys.len(), 500);
    let h: std::collections::HashMap<String, String> =
        con.hgetall(format!("{prefix}:7")).await.unwrap();
    assert_eq!(h.get("id").map(String::as_str), Some("7"));
    assert_eq!(h.get("name").map(String::as_str), Some("név 7 🚀"));
    assert_eq!(h.get("score").map(String::as_str), Some("1.75"));
    assert_eq!(h.get("note").map(String::as_str), Some("n7"));
    let h: std::collections::HashMap<String, String> =
        con.hgetall(format!("{prefix}:10")).await.unwrap();
    assert!(!h.contains_key("note"), "a NULL column is left out: {h:?}");
    let mut total = 0f64;
    for k in &keys {
        let score: String = con.hget(k, "score").await.unwrap();
        total += score.parse::<f64>().unwrap();
    }
    assert_eq!(total, (1..=500).map(|i| i as f64 / 4.0).sum::<f64>());
    let _: () = con.del(keys).await.unwrap();
}
