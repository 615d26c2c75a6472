//! Dirty rows and run-end messages through the API: a task with an `error_handler` keeps its
//! dirty rows in a JSON-lines file under the files root and fails past its limit; a task with
//! `afterImplementation` publishes one message per run to its Kafka topic.

use std::time::Duration;

use fdi_e2e::*;
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use serde_json::{Value, json};

/// The next `n` JSON messages of a topic, read from its start.
async fn read_topic(topic: &str, n: usize) -> Vec<Value> {
    let consumer: StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .set("group.id", unique("fdi_e2e_reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("a run-end message within 30 s")
            .unwrap();
        out.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
    }
    out
}

fn detail(src: &str, dst: &str, extra: Value) -> Value {
    let mut d = json!({"sourceSelectedDatasource": {"sourceTable": src},
                       "targetSelectedDatasource": {"targetTable": dst}});
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

#[tokio::test]
async fn dirty_rows_land_in_the_handler_file_and_each_run_announces_its_end_on_kafka() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let kafka = s
        .create_datasource(&app, "KAFKA", json!({"broker": "127.0.0.1:9092"}))
        .await;
    let topic = kafka_topic(1).await;
    let src = unique("dirty_src");
    let dst = unique("dirty_dst");
    pg_exec(&format!(
        "CREATE TABLE {src} (id int PRIMARY KEY, qty text);
         INSERT INTO {src} SELECT g, CASE WHEN g % 100 = 7 THEN 'n/a ' || g ELSE g::text END
             FROM generate_series(1, 1000) g;
         CREATE TABLE {dst} (id int PRIMARY KEY, qty int);"
    ))
    .await;

    // Ten dirty rows of 1,000, kept with their reasons; the run-end message says so.
    let task = s
        .create_task(
            &pg_ds,
            &pg_ds,
            detail(
                &src,
                &dst,
                json!({"error_handler": {"mode": "LOCAL", "path": "dirty"},
                       "afterImplementation": {"actionType": "KAFKA", "datasourceId": kafka,
                                               "topic": topic, "messageContent": "nightly load"}}),
            ),
        )
        .await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(
        (&run["data_count"], &run["dirty_data_count"]),
        (&json!(990), &json!(10)),
        "{run}"
    );
    let run_id = run["id"].as_str().unwrap();
    let file = s.files_dir().join(format!("dirty/{task}/{run_id}.jsonl"));
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| l["data"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, (0..10).map(|i| i * 100 + 7).collect::<Vec<_>>());
    assert_eq!(lines[0]["data"]["qty"], "n/a 7");
    assert_eq!(lines[0]["run_id"], run_id);
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("column qty"),
        "{}",
        lines[0]
    );
    let pool = pg().await;
    let (n, sum): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), sum(qty)::bigint FROM {dst}"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (n, sum),
        (990, 500_500 - (0..10).map(|i| i * 100 + 7).sum::<i64>())
    );

    let msg = &read_topic(&topic, 1).await[0];
    assert_eq!(msg["task_id"], task.as_str(), "{msg}");
    assert_eq!(msg["tracking_id"], run_id, "{msg}");
    assert_eq!(msg["status"], "SUCCESS", "{msg}");
    assert_eq!(
        (&msg["data_count"], &msg["dirty_data_count"]),
        (&json!(990), &json!(10)),
        "{msg}"
    );
    assert_eq!(msg["message_content"], "nightly load", "{msg}");
    assert!(
        msg["end_time"].as_i64().unwrap() >= msg["start_time"].as_i64().unwrap(),
        "{msg}"
    );

    // Past its limit the run fails, commits nothing, and its message says ERROR.
    let (st, body) = s
        .put(
            &format!("/tasks/{task}"),
            task_body(
                &unique("task"),
                &pg_ds,
                &pg_ds,
                &detail(
                    &src,
                    &dst,
                    json!({"error_handler": {"mode": "LOCAL", "path": "dirty", "max_dirty_rows": 5},
                           "afterImplementation": {"actionType": "KAFKA", "datasourceId": kafka,
                                                   "topic": topic}}),
                ),
            ),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    pg_exec(&format!("TRUNCATE {dst}")).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "ERROR", "{run}");
    assert!(
        run["remarks"]
            .as_str()
            .unwrap()
            .contains("10 dirty rows passed the limit of 5"),
        "{run}"
    );
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {dst}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "a failed run commits nothing");
    let msg = &read_topic(&topic, 2).await[1];
    assert_eq!(msg["status"], "ERROR", "{msg}");
    assert_eq!(msg["tracking_id"], run["id"], "{msg}");
    assert!(msg["message_content"].is_null(), "{msg}");

    // Without an error handler the first dirty row fails the run, naming the row.
    let strict = s
        .create_task(&pg_ds, &pg_ds, detail(&src, &dst, json!({})))
        .await;
    let run = s.run_to_end(&strict).await;
    assert_eq!(run["execute_status"], "ERROR", "{run}");
    assert!(
        run["remarks"]
            .as_str()
            .unwrap()
            .contains("dirty row 7 (id=7)"),
        "{run}"
    );
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
    pool.close().await;
}

#[tokio::test]
async fn bad_error_handlers_and_run_end_actions_are_refused_naming_the_field() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let t = unique("eh_t");
    pg_exec(&format!("CREATE TABLE {t} (id int PRIMARY KEY)")).await;
    let create = |extra: Value| {
        let body = task_body(&unique("task"), &pg_ds, &pg_ds, &detail(&t, &t, extra));
        let s = &s;
        async move { s.post("/tasks", body).await }
    };
    assert_fdi_error(
        &create(json!({"error_handler": {"mode": "OBS", "path": "x"}})).await,
        400,
        "FDI.3002",
        "task_detail.error_handler.mode",
    );
    assert_fdi_error(
        &create(json!({"error_handler": {"mode": "LOCAL"}})).await,
        400,
        "FDI.3002",
        "task_detail.error_handler.path",
    );
    assert_fdi_error(
        &create(json!({"error_handler": {"mode": "LOCAL", "path": "../../etc"}})).await,
        400,
        "FDI.3002",
        "task_detail.error_handler.path",
    );
    assert_fdi_error(
        &create(json!({"error_handler": {"mode": "LOCAL", "path": "d", "max_dirty_ratio": 2}}))
            .await,
        400,
        "FDI.3002",
        "task_detail.error_handler.max_dirty_ratio",
    );
    assert_fdi_error(
        &create(json!({"afterImplementation": {"actionType": "KAFKA", "datasourceId": pg_ds, "topic": "t"}})).await,
        400,
        "FDI.3104",
        "task_detail.afterImplementation.datasourceId",
    );
    assert_fdi_error(
        &create(json!({"afterImplementation": {"actionType": "SMS", "datasourceId": pg_ds, "topic": "t"}})).await,
        400,
        "FDI.3002",
        "task_detail.afterImplementation.actionType",
    );
    assert_fdi_error(
        &create(json!({"afterImplementation": {"actionType": "KAFKA", "datasourceId": "nope", "topic": "t"}})).await,
        400,
        "FDI.3147",
        "task_detail.afterImplementation.datasourceId",
    );
    let (st, body) = s.get("/tasks?limit=10").await;
    assert_eq!(st, 200);
    assert_eq!(body["total"], 0, "nothing stored: {body}");
    pg_exec(&format!("DROP TABLE {t}")).await;
}
