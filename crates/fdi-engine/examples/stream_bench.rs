//! Stream benchmark driver (run by `benches/stream_bench.sh`): the engine between PostgreSQL and
//! a Kafka-protocol broker, with the real connectors.
//!
//! - `stream_bench copy pg <table> kafka <topic>` / `stream_bench copy kafka <topic> pg <table>`
//!   / `stream_bench copy pg <table> pg <table>`: one run (a fresh consumer group for a Kafka
//!   source, reading what the topic holds; a PostgreSQL target is cleared in the run). Prints
//!   `rows=<n> secs=<s> peak_rss_kb=<kb> status=<...> remarks=<...>`.
//! - `stream_bench lag <topic> <table> <msgs_per_s> <secs>`: a realtime run follows the topic into
//!   the table while this process produces messages at a steady rate; each message carries its
//!   sequence number, and the time it became visible in PostgreSQL (polled every 20 ms) minus
//!   the time it was produced is its lag. Prints `msgs=<n> lag_p50_ms=.. lag_p99_ms=..
//!   lag_max_ms=.. status=<...>`.
//!
//! The 8 columns are the copy benchmark's (`id, name, email, amount, qty, created_at,
//! updated_at, note`).

use std::time::{Duration, Instant};

#[path = "bench_util/mod.rs"]
mod bench_util;

use bench_util::{cpu_secs, peak_rss_kb};
use fdi_connector::ConnectorFactory;
use fdi_engine::{Endpoint, EngineOptions, RunOutcome, RunRequest};
use fdi_types::TaskDetail;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const BROKER: &str = "127.0.0.1:9092";
const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn endpoint(kind: &str) -> Result<Endpoint, String> {
    match kind {
        "pg" => Ok(Endpoint {
            datasource_type: fdi_connector_postgres::TYPE,
            connector: fdi_connector_postgres::Factory
                .create(&json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}))
                .map_err(|e| e.to_string())?,
        }),
        "kafka" => Ok(Endpoint {
            datasource_type: fdi_connector_kafka::TYPE,
            connector: fdi_connector_kafka::Factory
                .create(&json!({"broker": BROKER}))
                .map_err(|e| e.to_string())?,
        }),
        other => Err(format!("unknown endpoint {other} (pg or kafka)")),
    }
}

/// The copy benchmark's columns as message fields.
fn bench_fields() -> Value {
    json!({"dataSource": [
        {"name": "id", "type": "Long"}, {"name": "name", "type": "String"},
        {"name": "email", "type": "String"}, {"name": "amount", "type": "Decimal"},
        {"name": "qty", "type": "Integer"}, {"name": "created_at", "type": "Timestamp"},
        {"name": "updated_at", "type": "Timestamp"}, {"name": "note", "type": "String"}]})
}

async fn run(
    detail: Value,
    source: Endpoint,
    target: Endpoint,
    options: EngineOptions,
    cancel: CancellationToken,
) -> Result<RunOutcome, String> {
    let detail = TaskDetail::parse(&detail.to_string()).map_err(|e| e.to_string())?;
    let req = RunRequest {
        // A new consumer group per run: a Kafka source is read from its start.
        task_id: format!("bench-{}", fdi_types::new_id()),
        run_id: fdi_types::new_id(),
        detail,
        source,
        target,
        cancel,
        options,
        window: None,
        dirty: Default::default(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let out = fdi_engine::run(req, tx).await;
    let _ = drain.await;
    Ok(out)
}

async fn copy(args: &[String]) -> Result<(), String> {
    let [src, src_table, dst, dst_table] = args else {
        return Err("usage: stream_bench copy <pg|kafka> <source> <pg|kafka> <target>".into());
    };
    let mut source = json!({"sourceTable": src_table});
    if src == "kafka" {
        source["sourceMetaData"] = bench_fields();
    }
    let detail = json!({"sourceSelectedDatasource": source,
        "targetSelectedDatasource": {"targetTable": dst_table, "isSupportClearTab": dst == "pg"}});
    let t0 = Instant::now();
    let cpu0 = cpu_secs();
    let out = run(
        detail,
        endpoint(src)?,
        endpoint(dst)?,
        EngineOptions::default(),
        CancellationToken::new(),
    )
    .await?;
    println!(
        "rows={} secs={:.3} cpu_secs={:.2} peak_rss_kb={} status={} remarks={:?}",
        out.rows_written,
        t0.elapsed().as_secs_f64(),
        cpu_secs() - cpu0,
        peak_rss_kb(),
        out.status.as_str(),
        out.remarks
    );
    Ok(())
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn lag(args: &[String]) -> Result<(), String> {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let [topic, table, rate, secs] = args else {
        return Err("usage: stream_bench lag <topic> <table> <msgs_per_s> <secs>".into());
    };
    let rate: u64 = rate.parse().map_err(|_| "msgs_per_s: a number")?;
    let secs: u64 = secs.parse().map_err(|_| "secs: a number")?;
    let total = rate * secs;
    let pool = sqlx::PgPool::connect(PG_URL)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id bigint PRIMARY KEY, name varchar(64), email varchar(128),
           amount numeric(12,2), qty int, created_at timestamp, updated_at timestamp, note text)"
    )))
    .execute(&pool)
    .await
    .map_err(|e| e.to_string())?;

    // The realtime run, following the topic.
    let stop = CancellationToken::new();
    let options = EngineOptions {
        follow: true,
        stop: Some(stop.clone()),
        ..EngineOptions::default()
    };
    let detail = json!({"sourceSelectedDatasource": {"sourceTable": topic, "sourceMetaData": bench_fields()},
        "targetSelectedDatasource": {"targetTable": table}});
    let follower = tokio::spawn(run(
        detail,
        endpoint("kafka")?,
        endpoint("pg")?,
        options,
        CancellationToken::new(),
    ));
    // Let the consumer join its group before the clock starts.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("linger.ms", "5")
        .create()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let producing = {
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut produced_at = vec![0i64; total as usize];
            let mut pending = Vec::new();
            for seq in 0..total {
                let due = started + Duration::from_secs_f64(seq as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let body = json!({"id": seq, "name": format!("name {seq}"), "email": format!("user{seq}@example.com"),
                    "amount": format!("{}.25", seq % 1000), "qty": seq % 1000,
                    "created_at": "2024-01-01T00:00:00", "updated_at": "2024-06-01T12:00:00.123456",
                    "note": format!("note {seq:0>90}")})
                .to_string();
                produced_at[seq as usize] = fdi_types::now_millis();
                let key = seq.to_string();
                let record = FutureRecord::to(&topic).key(&key).payload(&body);
                match producer.send_result(record) {
                    Ok(delivery) => pending.push(delivery),
                    Err((e, _)) => return Err(format!("produce {seq}: {e}")),
                }
                if pending.len() >= 1000 {
                    for d in pending.drain(..) {
                        d.await
                            .map_err(|_| "delivery cancelled".to_string())?
                            .map_err(|(e, _)| format!("delivery: {e}"))?;
                    }
                }
            }
            for d in pending {
                d.await
                    .map_err(|_| "delivery cancelled".to_string())?
                    .map_err(|(e, _)| format!("delivery: {e}"))?;
            }
            Ok::<_, String>(produced_at)
        })
    };

    // Poll what became visible: ids above the contiguous watermark.
    let mut visible_at = vec![0i64; total as usize];
    let mut seen = vec![false; total as usize];
    let mut watermark: i64 = -1;
    let mut seen_count = 0u64;
    let deadline = Instant::now() + Duration::from_secs(secs + 60);
    while seen_count < total && Instant::now() < deadline {
        let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {table} WHERE id > $1"
        )))
        .bind(watermark)
        .fetch_all(&pool)
        .await
        .map_err(|e| e.to_string())?;
        let now = fdi_types::now_millis();
        for id in ids {
            let i = id as usize;
            if i < seen.len() && !seen[i] {
                seen[i] = true;
                visible_at[i] = now;
                seen_count += 1;
            }
        }
        while ((watermark + 1) as usize) < seen.len() && seen[(watermark + 1) as usize] {
            watermark += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let produced_at = producing.await.map_err(|e| e.to_string())??;
    stop.cancel();
    let out = follower.await.map_err(|e| e.to_string())??;
    let mut lags: Vec<i64> = (0..total as usize)
        .filter(|&i| seen[i])
        .map(|i| visible_at[i] - produced_at[i])
        .collect();
    lags.sort_unstable();
    println!(
        "msgs={total} landed={seen_count} rate={rate} lag_p50_ms={} lag_p99_ms={} lag_max_ms={} status={} rows_committed={} peak_rss_kb={}",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0),
        out.status.as_str(),
        out.rows_committed,
        peak_rss_kb()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// `stream_bench consume <topic> <n>`: the broker's own ceiling — a bare rdkafka consumer (new
/// group, from the start) that reads `n` messages and does nothing with them.
async fn consume(args: &[String]) -> Result<(), String> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    let [topic, n] = args else {
        return Err("usage: stream_bench consume <topic> <n>".into());
    };
    let n: u64 = n.parse().map_err(|_| "n: a number")?;
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", format!("bench-consume-{}", fdi_types::new_id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    consumer.subscribe(&[topic]).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..n {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .map_err(|_| "no message for 30 s")?
            .map_err(|e| e.to_string())?;
        bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
    }
    println!(
        "rows={n} secs={:.3} bytes={bytes} status=SUCCESS",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `stream_bench topic <name> <partitions>`: create a topic.
async fn topic(args: &[String]) -> Result<(), String> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let [name, partitions] = args else {
        return Err("usage: stream_bench topic <name> <partitions>".into());
    };
    let partitions: i32 = partitions.parse().map_err(|_| "partitions: a number")?;
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .create()
        .map_err(|e| e.to_string())?;
    for r in admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .map_err(|e| e.to_string())?
    {
        r.map_err(|(t, e)| format!("create topic {t}: {e}"))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("copy") => copy(&args[2..]).await,
        Some("lag") => lag(&args[2..]).await,
        Some("topic") => topic(&args[2..]).await,
        Some("consume") => consume(&args[2..]).await,
        _ => Err("usage: stream_bench copy ... | lag ... | topic ...".into()),
    }
}
