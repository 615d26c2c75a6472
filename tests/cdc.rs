//! Combination (CDC) tasks end to end through the API, against the logical-replication
//! PostgreSQL and the binlog MariaDB of `scripts/services.sh up pg-cdc mysql-cdc`: a task keeps
//! the target tables equal to the source under a continuous mixed load while the server is
//! killed (`kill -9`) three times, during the copy and during the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fdi_e2e::*;
use serde_json::{Value, json};
use sqlx::{Executor, Row};

const PG_CDC_URL: &str = "postgres://postgres@127.0.0.1:5433/test";
const MYSQL_CDC_URL: &str = "mysql://root@127.0.0.1:3307/test";

fn pg_cdc_content() -> Value {
    json!({"host": "127.0.0.1", "port": "5433", "database_name": "test", "user_name": "postgres", "password": ""})
}

fn mysql_cdc_content() -> Value {
    json!({"host": "127.0.0.1", "port": "3307", "database_name": "test", "user_name": "root", "password": ""})
}

/// A pseudo-random number in `0..n` (no seed to keep: the kill points differ run to run).
fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (nanos
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        >> 33)
        % n.max(1)
}

/// The replication slot (and publication) of a task: `fdi_` and its id's letters and digits.
fn slot_name(task_id: &str) -> String {
    let id: String = task_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    format!("fdi_{id}")
}

/// Delete a combination task whose run has ended (its claim is released just after the run's
/// end is recorded: a delete in between is refused as running, FDI.3139).
async fn delete_task(s: &TestServer, task: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (st, body) = s.delete(&format!("/multi-tasks/{task}")).await;
        if st == 204 || st == 200 {
            return;
        }
        assert!(
            body["error_code"] == "FDI.3139" && Instant::now() < deadline,
            "delete: {st} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Create a combination task through init, one mapping per table, create; start it.
async fn combination_task(
    s: &TestServer,
    source: &str,
    target: &str,
    tables: &[(&str, &str)],
    operation_types: &[&str],
) -> String {
    let (st, body) = s
        .post(
            "/multi-tasks/init",
            json!({"source_datasource_id": source, "target_datasource_id": target}),
        )
        .await;
    assert_eq!(st, 200, "init: {body}");
    let task_id = body[0]["task_id"].as_str().expect("task_id").to_string();
    for (source_table, target_table) in tables {
        let (st, body) = s
            .post(
                &format!("/multi-tasks/{task_id}/mappings"),
                json!({"source_table": source_table, "target_table": target_table}),
            )
            .await;
        assert_eq!(st, 200, "mapping {source_table}: {body}");
    }
    let (st, body) = s
        .post(
            "/multi-tasks",
            json!({"task_name": unique("cdc"), "task_id": task_id, "task_type": "REALTIME",
                   "operation_types": operation_types}),
        )
        .await;
    assert_eq!(st, 200, "create: {body}");
    s.start_task(&task_id).await;
    task_id
}

/// `SELECT COUNT(*), md5(...)` of a table in key order, the same text on both servers.
fn pg_checksums(tables: &[String]) -> Vec<String> {
    tables
        .iter()
        .map(|t| {
            if t.contains("comp") {
                format!(
                    "SELECT COUNT(*), md5(string_agg(concat_ws('|', a, b, c), ',' ORDER BY a, b)) FROM {t}"
                )
            } else {
                format!(
                    "SELECT COUNT(*), md5(string_agg(concat_ws('|', id, v, n::text, (extract(epoch from at) * 1000000)::bigint, encode(data, 'hex')), ',' ORDER BY id)) FROM {t}"
                )
            }
        })
        .collect()
}

async fn pg_sum(pool: &sqlx::PgPool, sql: &str) -> String {
    let r = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap();
    let n: i64 = r.get(0);
    let s: Option<String> = r.get(1);
    format!("{n} rows, {}", s.unwrap_or_default())
}

/// Wait until every checksum of the target equals the source's.
async fn wait_equal(s: &TestServer, src: &sqlx::PgPool, dst: &sqlx::PgPool, sums: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut diff = None;
        for sql in sums {
            let (a, b) = (pg_sum(src, sql).await, pg_sum(dst, sql).await);
            if a != b {
                diff = Some(format!("{sql}: source {a}, target {b}"));
                break;
            }
        }
        let Some(diff) = diff else { return };
        assert!(
            Instant::now() < deadline,
            "the target did not catch up: {diff}\nlog:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Mixed changes (60% update, 30% insert, 10% delete) over the tables, a few per transaction,
/// until `stop`; returns how many transactions committed.
fn mixed_load(
    pool: sqlx::PgPool,
    big: String,
    comp: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next_id = 10_000_000i64;
        while !stop.load(Ordering::Relaxed) {
            let r = random_below(100);
            let k = random_below(300_000) as i64 + 1;
            let sql = if r < 60 {
                format!(
                    "BEGIN; UPDATE {big} SET v = v || 'u', n = n + 1 WHERE id = {k}; \
                     UPDATE {comp} SET c = c + 1 WHERE a = {}; COMMIT;",
                    k % 1000
                )
            } else if r < 90 {
                next_id += 1;
                format!(
                    "BEGIN; INSERT INTO {big} VALUES ({next_id}, 'new', 1.5, now(), '\\x01'); \
                     INSERT INTO {comp} VALUES ({next_id}, 'x', 1) ON CONFLICT DO NOTHING; COMMIT;"
                )
            } else {
                format!(
                    "BEGIN; DELETE FROM {big} WHERE id = {k}; DELETE FROM {comp} WHERE a = {} AND b = 'b{}'; COMMIT;",
                    k % 1000,
                    k % 7
                )
            };
            if pool.execute(sqlx::AssertSqlSafe(sql)).await.is_ok() {
                done.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

#[tokio::test]
async fn a_postgres_database_stays_equal_through_three_kill9_restarts() {
    let mut s = TestServer::start(StoreKind::under_test()).await;
    let src = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect(PG_CDC_URL)
        .await
        .expect("the logical-replication PostgreSQL (scripts/services.sh up pg-cdc)");
    let dst = pg().await;
    let big = unique("cdc_big");
    let comp = unique("cdc_comp");
    for (pool, source) in [(&src, true), (&dst, false)] {
        pool.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {big} (id bigint PRIMARY KEY, v text, n numeric(20,4), at timestamptz, data bytea);
             CREATE TABLE {comp} (a int, b text, c bigint, PRIMARY KEY (a, b));"
        )))
        .await
        .unwrap();
        if source {
            pool.execute(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {big} SELECT g, 'v' || g || ' ü', g / 3.0, timestamptz '2024-05-01 00:00:00+00' + g * interval '1 second', \
                 CASE WHEN g % 5 = 0 THEN NULL ELSE int4send(g::int) END FROM generate_series(1, 300000) g;
                 INSERT INTO {comp} SELECT g / 7, 'b' || (g % 7), g FROM generate_series(0, 6999) g;"
            )))
            .await
            .unwrap();
        }
    }
    let app = s.create_app().await;
    let source = s
        .create_datasource(&app, "POSTGRESQL", pg_cdc_content())
        .await;
    let target = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = combination_task(
        &s,
        &source,
        &target,
        &[
            (&format!("public.{big}"), &format!("public.{big}")),
            (&format!("public.{comp}"), &format!("public.{comp}")),
        ],
        &["INSERT", "UPDATE", "DELETE"],
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let load = mixed_load(
        src.clone(),
        big.clone(),
        comp.clone(),
        stop.clone(),
        done.clone(),
    );
    // Three kills: the first while the 300,000-row copy runs, the others while streaming.
    for round in 0..3 {
        s.wait_running(&task, Duration::from_secs(60)).await;
        let wait = if round == 0 {
            300 + random_below(700)
        } else {
            1000 + random_below(3000)
        };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        s.kill9();
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.spawn().await;
    }
    s.wait_running(&task, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(
        done.load(Ordering::Relaxed) > 100,
        "the load ran ({} transactions)",
        done.load(Ordering::Relaxed)
    );
    wait_equal(&s, &src, &dst, &pg_checksums(&[big.clone(), comp.clone()])).await;
    // Each kill ended a run abnormally; the last run is still following the log.
    let runs = s.runs(&task).await;
    assert!(runs.len() >= 4, "one run per start: {runs:?}");
    assert_eq!(runs[0]["execute_status"], "RUNNING", "{runs:?}");
    let abnormal = runs
        .iter()
        .filter(|r| r["execute_status"] == "ERROR")
        .count();
    assert!(abnormal >= 3, "the killed runs ended ERROR: {runs:?}");
    // The task shows in the CDC half of the statistics while it runs.
    let (_, stats) = s.get("/statistics/tasks").await;
    assert!(
        stats["cdc_task_details"]["running_tasks_count"].as_u64() >= Some(1),
        "{stats}"
    );
    // Stop: the run ends SUCCESS after committing what it read; delete drops the slot.
    let (st, body) = s
        .post(
            "/batch-operation/tasks",
            json!({"action_id": "stop", "list": [{"task_id": task}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let last = s
        .wait_run_end(&task, runs.len(), Duration::from_secs(60))
        .await;
    assert_eq!(last["execute_status"], "SUCCESS", "{last}");
    delete_task(&s, &task).await;
    let slots: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_replication_slots WHERE slot_name = $1")
            .bind(format!(
                "fdi_{}",
                task.to_ascii_lowercase().replace(['-', '_'], "")
            ))
            .fetch_one(&src)
            .await
            .unwrap();
    assert_eq!(slots, 0, "the task's replication slot is dropped with it");
    for pool in [&src, &dst] {
        pool.execute(sqlx::AssertSqlSafe(format!(
            "DROP TABLE {big}; DROP TABLE {comp};"
        )))
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_mariadb_table_follows_into_postgres_without_deletes() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let src = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(MYSQL_CDC_URL)
        .await
        .expect("the binlog MariaDB (scripts/services.sh up mysql-cdc)");
    let dst = pg().await;
    let t = unique("cdc_my");
    src.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {t} (id INT UNSIGNED PRIMARY KEY, name VARCHAR(50), amount DECIMAL(12,2));
         INSERT INTO {t} VALUES (1, 'a', 1.10), (2, 'b', 2.20), (3, 'c', 3.30), (4294967295, 'max', 0);"
    )))
    .await
    .unwrap();
    dst.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {t} (id bigint PRIMARY KEY, name text, amount numeric(12,2))"
    )))
    .await
    .unwrap();
    let app = s.create_app().await;
    let source = s
        .create_datasource(&app, "MYSQL", mysql_cdc_content())
        .await;
    let target = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = combination_task(
        &s,
        &source,
        &target,
        &[(&format!("test.{t}"), &format!("public.{t}"))],
        &["INSERT", "UPDATE"],
    )
    .await;
    let target_rows = || async {
        let got: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT string_agg(concat_ws('|', id, name, amount), ',' ORDER BY id) FROM {t}"
        )))
        .fetch_one(&dst)
        .await
        .unwrap();
        got.unwrap_or_default()
    };
    let server = &s;
    let wait_for = |expected: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = target_rows().await;
            if got == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "target {got:?}, expected {expected}\nlog:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    wait_for("1|a|1.10,2|b|2.20,3|c|3.30,4294967295|max|0.00").await;
    src.execute(sqlx::AssertSqlSafe(format!(
        "UPDATE {t} SET amount = amount * 10 WHERE id <= 2; DELETE FROM {t} WHERE id = 3; INSERT INTO {t} VALUES (5, 'e', 5.55);"
    )))
    .await
    .unwrap();
    // The DELETE is not applied: the task's operation_types have none.
    wait_for("1|a|11.00,2|b|22.00,3|c|3.30,5|e|5.55,4294967295|max|0.00").await;
    // The run's progress entries name the tables and counts.
    // (The rows can land before the run's next progress entry is stored: wait up to 10 s.)
    let run = s.wait_running(&task, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let detail = loop {
        let (_, detail) = s
            .get(&format!(
                "/tasks/{task}/monitor-logs/{}",
                run["id"].as_str().unwrap()
            ))
            .await;
        if detail.to_string().contains("Snapshot done") || std::time::Instant::now() > deadline {
            break detail;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = detail.to_string();
    assert!(text.contains("Snapshot done"), "{detail}");
    src.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
        .await
        .unwrap();
    dst.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
        .await
        .unwrap();
}

#[tokio::test]
async fn two_nodes_on_one_store_run_a_combination_task_once() {
    let a = TestServer::start(StoreKind::Postgres).await;
    let b = a.join().await;
    let src = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(PG_CDC_URL)
        .await
        .expect("the logical-replication PostgreSQL (scripts/services.sh up pg-cdc)");
    let dst = pg().await;
    let t = unique("cdc_nodes");
    for pool in [&src, &dst] {
        pool.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {t} (id int PRIMARY KEY, v text)"
        )))
        .await
        .unwrap();
    }
    let app = a.create_app().await;
    let source = a
        .create_datasource(&app, "POSTGRESQL", pg_cdc_content())
        .await;
    let target = a.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let table = format!("public.{t}");
    let task = combination_task(
        &a,
        &source,
        &target,
        &[(&table, &table)],
        &["INSERT", "UPDATE", "DELETE"],
    )
    .await;
    a.wait_running(&task, Duration::from_secs(60)).await;
    // Both nodes' supervisors see the started task for a while: still one run, one reader.
    tokio::time::sleep(Duration::from_secs(4)).await;
    src.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {t} SELECT g, 'v' || g FROM generate_series(1, 500) g"
    )))
    .await
    .unwrap();
    let sums = vec![format!(
        "SELECT COUNT(*), md5(string_agg(concat_ws('|', id, v), ',' ORDER BY id)) FROM {t}"
    )];
    wait_equal(&a, &src, &dst, &sums).await;
    for node in [&a, &b] {
        let runs = node.runs(&task).await;
        assert_eq!(
            runs.len(),
            1,
            "one run of the task in the cluster: {runs:?}"
        );
        assert_eq!(runs[0]["execute_status"], "RUNNING");
    }
    let readers: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_replication_slots WHERE slot_name = $1 AND active",
    )
    .bind(slot_name(&task))
    .fetch_one(&src)
    .await
    .unwrap();
    assert_eq!(readers, 1, "one reader of the task's slot");
    let (st, body) = a
        .post(
            "/batch-operation/tasks",
            json!({"action_id": "stop", "list": [{"task_id": task}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    a.wait_run_end(&task, 1, Duration::from_secs(60)).await;
    delete_task(&a, &task).await;
    for pool in [&src, &dst] {
        pool.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
            .await
            .unwrap();
    }
}
