//! Runs whose source has positions (RabbitMQ, on the machine's server) into PostgreSQL: the target
//! commits in micro-batches and the source is acknowledged only after each commit, so a failed
//! run loses nothing and a rerun completes the target exactly once (upsert key).

mod common;

use std::time::{Duration, Instant};

use common::*;
use fdi_connector::ConnectorFactory;
use fdi_engine::{Endpoint, EngineOptions};
use fdi_types::{DatasourceType, ExecuteStatus};
use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn rabbit() -> Endpoint {
    Endpoint {
        datasource_type: DatasourceType::Rabbitmq,
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
    let queue = unique("fdi_stream");
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for i in 0..1000i64 {
        let body = json!({"id": i, "v": i * 2}).to_string();
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
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
    assert_eq!(
        second.outcome.status,
        ExecuteStatus::Success,
        "{:?}",
        second.outcome
    );
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
