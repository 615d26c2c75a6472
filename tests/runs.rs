//! End-to-end runs: data moved between the real PostgreSQL, MariaDB and SQLite through the `fdi`
//! process, checked against the source (counts, sums, NULLs, unicode, decimals, timestamps), the
//! monitor log, terminate, restart, crash recovery and graceful shutdown; on both metadata stores.

use std::time::{Duration, Instant};

use fdi_e2e::*;
use serde_json::{Value, json};
use sqlx::Row;

const ROWS: i64 = 1000;

/// A PostgreSQL source of `ROWS` rows with unicode text, NULLs, exact decimals and timestamps.
async fn make_pg_source(table: &str) {
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, name varchar(64), amount numeric(12,2), qty int,
           created_at timestamp, note text, active boolean);
         INSERT INTO {table}
           SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'naïve 名前 ' || g || ' 🚀' END,
                  (g * 1.25)::numeric(12,2) + 0.01, g % 7,
                  timestamp '2024-02-29 13:45:30.123456' + g * interval '1 minute',
                  repeat('x', (g % 50)), g % 2 = 0
           FROM generate_series(1, {ROWS}) g"
    ))
    .await;
}

/// Source checksums computed by PostgreSQL itself.
async fn pg_source_stats(table: &str, filter: &str) -> (i64, String, i64, i64) {
    let pool = pg().await;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*)::bigint, sum(amount)::text, count(name)::bigint, sum(length(name))::bigint FROM {table} {filter}"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get::<Option<i64>, _>(3).unwrap_or(0),
    )
}

fn steps(run: &Value) -> Vec<u64> {
    run["detail_logs"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["status"].as_u64()).collect())
        .unwrap_or_default()
}

/// One target row read back from SQLite: id and four nullable text columns.
type SqliteRow5 = (
    i32,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

#[tokio::test]
async fn pg_to_mysql_with_mapping_filter_and_monitor_log() {
    let s = TestServer::start(StoreKind::under_test()).await;
    pg_to_mysql_flow(&s).await;
}

#[tokio::test]
async fn pg_to_mysql_on_the_postgres_store() {
    let s = TestServer::start(StoreKind::Postgres).await;
    pg_to_mysql_flow(&s).await;
}

async fn pg_to_mysql_flow(s: &TestServer) {
    let app = s.create_app().await;
    let src = unique("r_src");
    let dst = unique("r_dst");
    make_pg_source(&src).await;
    mysql_exec(&format!(
        "CREATE TABLE {dst} (id bigint PRIMARY KEY, full_name varchar(64) CHARACTER SET utf8mb4, amount decimal(12,2),
           qty_text varchar(20), created_at datetime(6), note text, active tinyint(1)) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let my_ds = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let detail = json!({
        "sourceSelectedDatasource": {
            "sourceTable": src,
            "where": [{"field_name": "id", "op": "lessEqual", "value": "900"},
                      {"andor": "and", "field_name": "qty", "op": "notEqual", "value": "3"}],
            "orderColumn": "id", "orderType": "DESC"
        },
        "targetSelectedDatasource": {"targetTable": dst},
        "mappingTable": [
            {"sourceColumn": "id", "targetColumn": "id"},
            {"sourceColumn": "name", "targetColumn": "full_name"},
            {"sourceColumn": "amount", "targetColumn": "amount"},
            {"sourceColumn": "qty", "targetColumn": "qty_text", "targetColumnType": "VARCHAR"},
            {"sourceColumn": "created_at", "targetColumn": "created_at"},
            {"sourceColumn": "note", "targetColumn": "note"},
            {"sourceColumn": "active", "targetColumn": "active"}
        ]
    });
    let task = s.create_task(&pg_ds, &my_ds, detail).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}\n{}", s.log());

    let (count, sum, names, name_len) = pg_source_stats(&src, "WHERE id <= 900 AND qty <> 3").await;
    let my = mysql().await;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), CAST(sum(amount) AS CHAR), count(full_name), CAST(sum(char_length(full_name)) AS SIGNED),
                sum(CAST(qty_text AS SIGNED)), sum(active) FROM {dst}"
    )))
    .fetch_one(&my)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>(0), count);
    assert_eq!(row.get::<String, _>(1), sum, "exact decimal sum");
    assert_eq!(row.get::<i64, _>(2), names, "NULL names stay NULL");
    assert_eq!(row.get::<i64, _>(3), name_len, "unicode text intact");
    let one = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT full_name, CAST(amount AS CHAR), CAST(created_at AS CHAR), qty_text FROM {dst} WHERE id = 7"
    )))
    .fetch_one(&my)
    .await
    .unwrap();
    assert_eq!(one.get::<String, _>(0), "naïve 名前 7 🚀");
    assert_eq!(one.get::<String, _>(1), "8.76");
    assert_eq!(one.get::<String, _>(2), "2024-02-29 13:52:30.123456");
    assert_eq!(one.get::<String, _>(3), "0");

    // The monitor log: counts and ordered steps.
    assert_eq!(run["data_count"].as_i64(), Some(count), "{run}");
    assert_eq!(run["dirty_data_count"], 0);
    assert!(run["data_size"].as_f64().unwrap_or(0.0) > 0.0, "{run}");
    assert!(run["data_size_unit"].is_string());
    let codes = steps(&run);
    let pos = |c: u64| {
        codes
            .iter()
            .position(|x| *x == c)
            .unwrap_or_else(|| panic!("step {c} missing in {codes:?}"))
    };
    assert!(
        pos(99) < pos(100) && pos(100) < pos(104) && pos(104) < pos(101),
        "{codes:?}"
    );
    assert!(
        pos(500) < pos(504) && pos(504) < pos(501) && pos(501) < pos(901),
        "{codes:?}"
    );
    let stages: Vec<_> = run["detail_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        stages.iter().any(|s| s == "pgreader") && stages.iter().any(|s| s == "mysqlwriter"),
        "{stages:?}"
    );

    let tracking = run["id"].as_str().unwrap();
    let (st, one_run) = s
        .get(&format!("/tasks/{task}/monitor-logs/{tracking}"))
        .await;
    assert_eq!(st, 200, "{one_run}");
    assert!(one_run.to_string().contains("901"), "{one_run}");
    let r = s
        .get(&format!("/tasks/{task}/monitor-logs/not-a-run"))
        .await;
    assert_eq!(r.0, 404, "{:?}", r.1);

    // Time range: a window in the past finds nothing.
    let (_, none) = s
        .get(&format!(
            "/tasks/{task}/monitor-logs?begin_time=1000&end_time=2000"
        ))
        .await;
    assert_eq!(none["total"], 0, "{none}");
    let (st, overview) = s.get(&format!("/tasks/{task}/monitor-overview")).await;
    assert_eq!(st, 200, "{overview}");
    assert!(overview.to_string().contains('1'), "{overview}");
    let (_, mons) = s.get("/task-monitors?execute_statuses=SUCCESS").await;
    assert_eq!(mons["total"], 1, "{mons}");
    let (_, mons) = s.get("/task-monitors?execute_status=ERROR").await;
    assert_eq!(mons["total"], 0, "{mons}");

    pg_exec(&format!("DROP TABLE {src}")).await;
    mysql_exec(&format!("DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn sqlite_to_sqlite_survives_a_restart() {
    let mut s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let src_path = s.files_dir().join("src.sqlite");
    let dst_path = s.files_dir().join("dst.sqlite");
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&src_path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL, born TEXT)",
        )
        .execute(&pool)
        .await
        .unwrap();
        for i in 1..=250 {
            sqlx::query("INSERT INTO people VALUES (?, ?, ?, ?)")
                .bind(i)
                .bind(if i % 5 == 0 {
                    None
                } else {
                    Some(format!("person ü{i}"))
                })
                .bind(i as f64 / 4.0)
                .bind("2020-01-02 03:04:05")
                .execute(&pool)
                .await
                .unwrap();
        }
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&dst_path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        sqlx::raw_sql(
            "CREATE TABLE people_copy (id INTEGER PRIMARY KEY, name TEXT, score REAL, born TEXT)",
        )
        .execute(&pool)
        .await
        .unwrap();
    }
    let a = s
        .create_datasource(&app, "SQLITE", sqlite_content(&src_path))
        .await;
    let b = s
        .create_datasource(&app, "SQLITE", sqlite_content(&dst_path))
        .await;
    let task = s
        .create_task(&a, &b, json!({"sourceSelectedDatasource": {"sourceTable": "people"}, "targetSelectedDatasource": {"targetTable": "people_copy"}}))
        .await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 250);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dst_path.display()))
        .await
        .unwrap();
    let (n, names, total): (i64, i64, f64) =
        sqlx::query_as("SELECT count(*), count(name), sum(score) FROM people_copy")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (n, names, total),
        (250, 200, (1..=250).map(|i| i as f64 / 4.0).sum())
    );

    // Restart: the task, its datasources and its monitor log are still there.
    let status = s.terminate();
    assert!(
        status.success() || status.code().is_none(),
        "clean exit: {status:?}"
    );
    s.spawn().await;
    let (st, got) = s.get(&format!("/tasks/{task}")).await;
    assert_eq!(st, 200, "{got}");
    let runs = s.runs(&task).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["execute_status"], "SUCCESS");
    assert_eq!(runs[0]["data_count"], 250);
    // ...and the decrypted connection still works after restart (key file reused). The target's
    // primary key is mapped, so the second run upserts: the same 250 rows, no duplicates.
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 250, "{run}");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM people_copy")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 250, "upserted, not duplicated");
}

#[tokio::test]
async fn mysql_to_pg_clear_table_batch_number_and_upsert() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let src = unique("u_src");
    let dst = unique("u_dst");
    mysql_exec(&format!(
        "CREATE TABLE {src} (id int PRIMARY KEY, label varchar(40), price decimal(8,3), seen datetime) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    mysql_exec(&format!(
        "INSERT INTO {src} VALUES (1,'one',1.125,'2023-05-01 10:00:00'),(2,'two',2.250,NULL),(3,NULL,NULL,'2023-05-03 12:30:00')"
    ))
    .await;
    pg_exec(&format!(
        "CREATE TABLE {dst} (id int PRIMARY KEY, label text, price numeric(8,3), seen timestamp, batch_no varchar(64));
         INSERT INTO {dst} (id, label) VALUES (99, 'stale')"
    ))
    .await;
    let my_ds = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;

    // Clear table + batch number.
    let clear = s
        .create_task(
            &my_ds,
            &pg_ds,
            json!({"sourceSelectedDatasource": {"sourceTable": src, "sourceSelectedColumnList": [{"field_name": "id"}, {"field_name": "label"}, {"field_name": "price"}, {"field_name": "seen"}]},
                   "targetSelectedDatasource": {"targetTable": dst, "isSupportClearTab": true, "batchNumber": "batch_no",
                       "targetSelectedColumnList": [{"field_name": "id"}, {"field_name": "label"}, {"field_name": "price"}, {"field_name": "seen"}]}}),
        )
        .await;
    let run = s.run_to_end(&clear).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    let pool = pg().await;
    let rows: Vec<SqliteRow5> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, label, price::text, seen::text, batch_no FROM {dst} ORDER BY id"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3, "stale row cleared: {rows:?}");
    assert_eq!(rows[0].2.as_deref(), Some("1.125"));
    assert_eq!(rows[0].3.as_deref(), Some("2023-05-01 10:00:00"));
    assert_eq!(rows[1].3, None);
    assert_eq!(rows[2].1, None);
    let batch = rows[0].4.clone().expect("batch number filled");
    assert!(
        rows.iter().all(|r| r.4.as_deref() == Some(batch.as_str())),
        "one id per run"
    );

    // Upsert with part update: changed rows updated, new rows inserted, nothing duplicated.
    mysql_exec(&format!("UPDATE {src} SET label = 'TWO' WHERE id = 2; INSERT INTO {src} VALUES (4, 'four', 4.000, NULL)")).await;
    let upsert = s
        .create_task(
            &my_ds,
            &pg_ds,
            json!({"sourceSelectedDatasource": {"sourceTable": src},
                   "targetSelectedDatasource": {"targetTable": dst, "supportPartUpdate": true},
                   "mappingTable": [{"sourceColumn": "id", "targetColumn": "id"}, {"sourceColumn": "label", "targetColumn": "label"},
                                    {"sourceColumn": "price", "targetColumn": "price"}, {"sourceColumn": "seen", "targetColumn": "seen"}]}),
        )
        .await;
    let run = s.run_to_end(&upsert).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    let rows: Vec<(i32, Option<String>, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(
        format!("SELECT id, label, batch_no FROM {dst} ORDER BY id"),
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(rows[1].1.as_deref(), Some("TWO"));
    assert_eq!(rows[3].1.as_deref(), Some("four"));
    assert_eq!(
        rows[0].2.as_deref(),
        Some(batch.as_str()),
        "unmapped column untouched by the upsert"
    );

    // Custom SQL source.
    let sql_task = s
        .create_task(
            &my_ds,
            &pg_ds,
            json!({"sourceSelectedDatasource": {"isAddSql": true, "querySql": format!("SELECT id + 100 AS id, upper(label) AS label FROM {src} WHERE id <= 2")},
                   "targetSelectedDatasource": {"targetTable": dst},
                   "mappingTable": [{"sourceColumn": "id", "targetColumn": "id"}, {"sourceColumn": "label", "targetColumn": "label"}]}),
        )
        .await;
    let run = s.run_to_end(&sql_task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {dst} WHERE id > 100 AND label = upper(label)"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 2);

    mysql_exec(&format!("DROP TABLE {src}")).await;
    pg_exec(&format!("DROP TABLE {dst}")).await;
}

/// A source big enough that a run lasts several seconds.
async fn make_big_pg_source(table: &str, rows: i64) {
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, payload text);
         INSERT INTO {table} SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, {rows}) g"
    ))
    .await;
}

async fn long_task(s: &TestServer) -> (String, String, String) {
    let app = s.create_app().await;
    let src = unique("l_src");
    let dst = unique("l_dst");
    make_big_pg_source(&src, 3_000_000).await;
    mysql_exec(&format!(
        "CREATE TABLE {dst} (id bigint PRIMARY KEY, payload text)"
    ))
    .await;
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let my_ds = s.create_datasource(&app, "MYSQL", mysql_content()).await;
    let task = s
        .create_task(&pg_ds, &my_ds, json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst}}))
        .await;
    (task, src, dst)
}

async fn mysql_count(table: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mysql().await)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn terminate_cancels_within_two_seconds_and_commits_nothing() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let (task, src, dst) = long_task(&s).await;
    let (st, body) = s.post(&format!("/tasks/{task}/run"), json!({})).await;
    assert_eq!(st, 200, "{body}");
    s.wait_running(&task, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A second run while one is running is refused.
    let again = s.post(&format!("/tasks/{task}/run"), json!({})).await;
    assert_fdi_error(&again, 400, "FDI.3139", "");

    let t0 = Instant::now();
    let (st, body) = s.post(&format!("/tasks/{task}/terminate"), json!({})).await;
    assert_eq!(st, 200, "{body}");
    let run = s.wait_run_end(&task, 1, Duration::from_secs(10)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "cancelled in {:?}",
        t0.elapsed()
    );
    assert_eq!(run["execute_status"], "CANCELLED", "{run}");
    assert!(steps(&run).contains(&16), "force-cancel step: {run}");
    assert_eq!(
        mysql_count(&dst).await,
        0,
        "a cancelled run commits nothing"
    );
    // Terminating when nothing runs is an error.
    let r = s.post(&format!("/tasks/{task}/terminate"), json!({})).await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    pg_exec(&format!("DROP TABLE {src}")).await;
    mysql_exec(&format!("DROP TABLE {dst}")).await;
}

/// A datasource's connector and pool serve every run of it: terminating runs in the middle of
/// their binary COPY (source and target one datasource, so reader and writer share the pool)
/// must leave no connection inside that COPY for the next run (one that was failed later runs
/// with "table ... does not exist" or a protocol error: its next query read the COPY's rest).
#[tokio::test]
async fn runs_after_terminated_ones_get_clean_pooled_connections() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let src = unique("pool_src");
    let dst = unique("pool_dst");
    pg_exec(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, payload text);
         INSERT INTO {src} SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 1500000) g;
         CREATE TABLE {dst} (LIKE {src} INCLUDING ALL)"
    ))
    .await;
    let app = s.create_app().await;
    let ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task(
            &ds,
            &ds,
            json!({"sourceSelectedDatasource": {"sourceTable": src},
            "targetSelectedDatasource": {"targetTable": dst, "isSupportClearTab": true}}),
        )
        .await;
    for round in 1..=6 {
        let (st, body) = s.post(&format!("/tasks/{task}/run"), json!({})).await;
        assert_eq!(st, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.post(&format!("/tasks/{task}/terminate"), json!({})).await;
        let run = s
            .wait_run_end(&task, round as usize, Duration::from_secs(30))
            .await;
        // Terminated, or (on a fast machine) done before the terminate: never ERROR.
        let status = run["execute_status"].as_str().unwrap_or_default();
        assert!(
            status == "CANCELLED" || status == "SUCCESS",
            "round {round}: {run}"
        );
    }
    pg_exec(&format!("DROP TABLE {src}, {dst}")).await;
}

#[tokio::test]
async fn crash_mid_run_is_marked_915_at_next_start_and_sigterm_cancels() {
    let mut s = TestServer::start(StoreKind::under_test()).await;
    let (task, src, dst) = long_task(&s).await;
    s.post(&format!("/tasks/{task}/run"), json!({})).await;
    s.wait_running(&task, Duration::from_secs(30)).await;
    s.kill9();
    s.spawn().await;
    let runs = s.runs(&task).await;
    assert_eq!(runs[0]["execute_status"], "ERROR", "{:?}", runs[0]);
    assert!(steps(&runs[0]).contains(&915), "step 915: {:?}", runs[0]);
    assert_eq!(
        mysql_count(&dst).await,
        0,
        "the killed run committed nothing"
    );

    // Graceful shutdown while a run is active: it ends CANCELLED, not SUCCESS.
    s.post(&format!("/tasks/{task}/run"), json!({})).await;
    s.wait_running(&task, Duration::from_secs(30)).await;
    s.terminate();
    s.spawn().await;
    let runs = s.runs(&task).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["execute_status"], "CANCELLED", "{:?}", runs[0]);
    assert_eq!(mysql_count(&dst).await, 0);
    pg_exec(&format!("DROP TABLE {src}")).await;
    mysql_exec(&format!("DROP TABLE {dst}")).await;
}
