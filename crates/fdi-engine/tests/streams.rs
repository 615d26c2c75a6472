//! Runs whose source has positions (RabbitMQ, on the machine's server) into PostgreSQL: the target
//! commits in micro-batches and the source is acknowledged only after each commit, so a failed
//! run loses nothing and a rerun completes the target exactly once (upsert key).

mod common;

use std::time::{Duration, Instant};

use common::*;
use fdi_connector::ConnectorFactory;
use fdi_engine::{Endpoint, EngineOptions};
use fdi_types::{ExecuteStatus, StepCode};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn rabbit() -> Endpoint {
    Endpoint {
        datasource_type: fdi_connector_rabbitmq::TYPE,
        connector: fdi_connector_rabbitmq::Factory
            .create(&json!({"host": "127.0.0.1", "user_name": "guest", "password": "guest"}))
            .unwrap(),
    }
}

async fn channel() -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(URI, lapin::ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672");
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

/// A new durable queue holding `bodies` as persistent messages.
async fn queue_with(ch: &lapin::Channel, prefix: &str, bodies: &[String]) -> String {
    let queue = unique(prefix);
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(ch, &queue, bodies).await;
    queue
}

async fn publish(ch: &lapin::Channel, queue: &str, bodies: &[String]) {
    for body in bodies {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
}

/// `{"id": i, "v": v(i)}` for each i.
fn id_messages(ids: std::ops::Range<i64>, v: impl Fn(i64) -> i64) -> Vec<String> {
    ids.map(|i| json!({"id": i, "v": v(i)}).to_string())
        .collect()
}

async fn depth(ch: &lapin::Channel, queue: &str) -> u32 {
    ch.queue_declare(
        queue.into(),
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

/// The queue's depth becomes `want` (a closed channel requeues asynchronously).
async fn wait_depth(ch: &lapin::Channel, queue: &str, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = depth(ch, queue).await;
        if d == want {
            return;
        }
        assert!(Instant::now() < deadline, "queue depth {d}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn pg_stats(table: &str) -> (i64, i64) {
    let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    let r: (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*)::bigint, coalesce(sum(v), 0)::bigint FROM {table}"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    r
}

async fn pg_exec(sql: &str) {
    let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn a_failed_stream_loses_nothing_and_a_rerun_completes_it_exactly_once() {
    let (_conn, ch) = channel().await;
    let queue = queue_with(&ch, "fdi_stream", &id_messages(0..1000, |i| i * 2)).await;
    let table = unique("stream_dst");
    // The target refuses v >= 1400: the message with id 700 breaks the run.
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint CONSTRAINT small CHECK (v < 1400))"
    ))
    .await;
    let d = detail(json!({
        "sourceSelectedDatasource": {"sourceTable": queue,
            "sourceMetaData": {"dataSource": [{"name": "id", "type": "Long"}, {"name": "v", "type": "Long"}]}},
        "targetSelectedDatasource": {"targetTable": table},
    }));
    let opts = || EngineOptions {
        batch_rows: 100,
        commit_rows: 100,
        ..options()
    };
    let first = run_with(d.clone(), rabbit(), pg(), opts(), CancellationToken::new()).await;
    assert_eq!(
        first.outcome.status,
        ExecuteStatus::Error,
        "{:?}",
        first.outcome
    );
    // Every micro-batch before the bad one was committed, and only those were acknowledged.
    assert_eq!(first.outcome.rows_committed, 700, "{:?}", first.outcome);
    assert_eq!(pg_stats(&table).await, (700, (0..700).map(|i| i * 2).sum()));
    wait_depth(&ch, &queue, 300).await;

    pg_exec(&format!("ALTER TABLE {table} DROP CONSTRAINT small")).await;
    let second = run_with(d, rabbit(), pg(), opts(), CancellationToken::new()).await;
    assert_succeeded(&second);
    assert_eq!(second.outcome.rows_committed, 300);
    assert_eq!(
        pg_stats(&table).await,
        (1000, (0..1000).map(|i| i * 2).sum())
    );
    wait_depth(&ch, &queue, 0).await;

    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    pg_exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test]
async fn a_following_run_reports_its_committed_rows_and_acknowledged_position_as_it_goes() {
    let (_conn, ch) = channel().await;
    let queue = queue_with(&ch, "fdi_follow", &id_messages(0..300, |i| i)).await;
    let table = unique("follow_dst");
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint)"
    ))
    .await;
    let d = detail(json!({
        "sourceSelectedDatasource": {"sourceTable": queue,
            "sourceMetaData": {"dataSource": [{"name": "id", "type": "Long"}, {"name": "v", "type": "Long"}]}},
        "targetSelectedDatasource": {"targetTable": table},
    }));
    let stop = CancellationToken::new();
    let opts = EngineOptions {
        batch_rows: 100,
        commit_interval: std::time::Duration::from_millis(50),
        position_interval: std::time::Duration::from_millis(100),
        follow: true,
        stop: Some(stop.clone()),
        ..options()
    };
    let run = tokio::spawn(run_with(d, rabbit(), pg(), opts, CancellationToken::new()));
    let t = table.clone();
    let landed = |n: i64| {
        let t = t.clone();
        async move {
            for _ in 0..200 {
                if pg_stats(&t).await.0 == n {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            panic!("{n} rows did not land");
        }
    };
    landed(300).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    publish(&ch, &queue, &id_messages(300..500, |i| i)).await;
    landed(500).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.cancel();
    let ran = run.await.unwrap();
    assert_succeeded(&ran);
    assert_eq!(ran.outcome.rows_committed, 500);
    let entries: Vec<(u64, String)> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            fdi_engine::RunEvent::Step(s)
                if s.code == StepCode::WRITING && s.remarks.starts_with("progress:") =>
            {
                Some((s.data_count, s.remarks.clone()))
            }
            _ => None,
        })
        .collect();
    // One entry once the first 300 were acknowledged, one after the next 200.
    assert!(entries.len() >= 2, "{entries:?}");
    assert!(entries.iter().any(|(n, _)| *n == 300), "{entries:?}");
    assert_eq!(entries.last().unwrap().0, 500, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|(_, r)| r.contains("source acknowledged up to")),
        "{entries:?}"
    );
    assert!(
        entries.windows(2).all(|w| w[0].0 <= w[1].0),
        "monotonic: {entries:?}"
    );
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    pg_exec(&format!("DROP TABLE {table}")).await;
}

#[tokio::test]
async fn messages_that_are_not_rows_are_dirty_rows_kept_with_their_origin_or_fail_the_run() {
    let (_conn, ch) = channel().await;
    let mut bodies = id_messages(0..10, |i| i * 2);
    bodies[4] = "not json {".to_string();
    bodies[7] = json!({"id": 7, "v": "seven"}).to_string();
    let queue = queue_with(&ch, "fdi_dirty_msgs", &bodies).await;
    let table = unique("dirty_msgs_dst");
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint)"
    ))
    .await;
    let d = detail(json!({
        "sourceSelectedDatasource": {"sourceTable": queue,
            "sourceMetaData": {"dataSource": [{"name": "id", "type": "Long"}, {"name": "v", "type": "Long"}]}},
        "targetSelectedDatasource": {"targetTable": table},
    }));

    // Without an error handler: the run fails naming the message, nothing is acknowledged.
    let ran = run_with(
        d.clone(),
        rabbit(),
        pg(),
        options(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        ran.outcome.status,
        ExecuteStatus::Error,
        "{:?}",
        ran.outcome
    );
    assert!(
        ran.outcome.remarks.contains("dirty record 5")
            && ran.outcome.remarks.contains("not JSON")
            && ran.outcome.remarks.contains("task_detail.error_handler"),
        "{}",
        ran.outcome.remarks
    );
    assert_eq!(pg_stats(&table).await.0, 0);
    wait_depth(&ch, &queue, 10).await;

    // With one: 8 rows land, the 2 others are in the file with where they came from.
    let dir = std::env::temp_dir().join(unique("fdi_dirty_msgs"));
    let policy = fdi_engine::DirtyDataPolicy {
        dir: Some(fdi_engine::DirtyDataDir {
            path: dir.clone(),
            shown: "dirty".into(),
        }),
        max_rows: 100,
        max_ratio: None,
    };
    let ran = run_with_dirty_policy(d, rabbit(), pg(), policy).await;
    assert_succeeded(&ran);
    assert_eq!(
        (
            ran.outcome.rows_read,
            ran.outcome.rows_written,
            ran.outcome.dirty_rows
        ),
        (10, 8, 2)
    );
    assert_eq!(
        pg_stats(&table).await,
        (
            8,
            (0..10).filter(|i| *i != 4 && *i != 7).map(|i| i * 2).sum()
        )
    );
    wait_depth(&ch, &queue, 0).await;
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["data"], "not json {");
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("not JSON"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["data"], json!({"id": 7, "v": "seven"}));
    assert!(
        lines
            .iter()
            .all(|l| l["source"].as_str().unwrap().contains(&queue)),
        "{lines:?}"
    );
    ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    pg_exec(&format!("DROP TABLE {table}")).await;
    let _ = std::fs::remove_dir_all(dir);
}
