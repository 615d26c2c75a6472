//! Live progress of a run: the monitor-log entry's `progress`, `read_count`, `total_count`,
//! `rows_per_second`, `remaining_time` and `current_step` while a run runs and after it ended,
//! and the same entry as Server-Sent Events (`.../monitor-logs/{tracking_id}/events`).

use std::time::{Duration, Instant};

use fdi_e2e::*;
use serde_json::{Value, json};

const BIG: i64 = 1_000_000;

/// A PostgreSQL table of `rows` narrow rows, analysed (its `reltuples` is the row count).
async fn analysed_pg_table(table: &str, rows: i64) {
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, v int);
         INSERT INTO {table} SELECT g, g % 1000 FROM generate_series(1, {rows}) g;
         ANALYZE {table}"
    ))
    .await;
}

/// A PG -> PG task copying `rows` analysed rows; (task id, source table, target table).
async fn pg_copy_task(s: &TestServer, rows: i64) -> (String, String, String) {
    let app = s.create_app().await;
    let src = unique("p_src");
    let dst = unique("p_dst");
    analysed_pg_table(&src, rows).await;
    pg_exec(&format!(
        "CREATE TABLE {dst} (id bigint PRIMARY KEY, v int)"
    ))
    .await;
    let ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task(
            &ds,
            &ds,
            // Rows stream through fdi (not one INSERT ... SELECT inside the server): what is measured.
            json!({"sourceSelectedDatasource": {"sourceTable": src},
                   "targetSelectedDatasource": {"targetTable": dst, "isSupportInServerCopy": false}}),
        )
        .await;
    (task, src, dst)
}

/// Start a run of the task; its tracking id.
async fn start_run(s: &TestServer, task: &str) -> String {
    let (st, body) = s.post(&format!("/tasks/{task}/run"), json!({})).await;
    assert_eq!(st, 200, "run: {body}");
    body["tracking_id"]
        .as_str()
        .expect("tracking_id")
        .to_string()
}

/// The run's monitor-log entry.
async fn entry(s: &TestServer, task: &str, run: &str) -> Value {
    s.runs(task)
        .await
        .into_iter()
        .find(|r| r["id"] == run)
        .unwrap_or_else(|| panic!("run {run} is not in the monitor log"))
}

/// Poll the run's entry every 100 ms until it ended; every entry seen, the last one ended.
async fn poll_to_end(s: &TestServer, task: &str, run: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = Vec::new();
    loop {
        let e = entry(s, task, run).await;
        let ended = e["execute_status"] != "RUNNING";
        seen.push(e);
        if ended {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "run did not end in time\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A row estimate within 1 % of [`BIG`].
fn near_big(v: &Value) -> bool {
    v.as_i64().is_some_and(|n| (n - BIG).abs() <= BIG / 100)
}

/// `progress` as a number, or -1 for null.
fn progress(e: &Value) -> i64 {
    e["progress"].as_i64().unwrap_or(-1)
}

#[tokio::test]
async fn pg_run_progress_moves_monotonically_to_100() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let (task, src, dst) = pg_copy_task(&s, BIG).await;
    let started = Instant::now();
    let run = start_run(&s, &task).await;
    let seen = poll_to_end(&s, &task, &run).await;
    let took = started.elapsed();

    let last = seen.last().unwrap();
    assert_eq!(last["execute_status"], "SUCCESS", "{last}\n{}", s.log());
    assert_eq!(last["progress"], 100, "{last}");
    assert_eq!(last["read_count"], BIG, "{last}");
    assert_eq!(last["data_count"], BIG, "{last}");
    assert_eq!(last["remaining_time"], 0, "{last}");
    // ANALYZE'd: reltuples is the row count (sampled: within 1 %).
    assert!(near_big(&last["total_count"]), "{last}");
    assert_eq!(last["current_step"]["status"], 901, "{last}");
    assert!(last["rows_per_second"].as_f64().unwrap() > 0.0, "{last}");

    let mut intermediate = std::collections::BTreeSet::new();
    let mut rate_seen = false;
    let mut eta_seen = false;
    for pair in seen.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            progress(b) >= progress(a),
            "progress went back: {a}\n-> {b}"
        );
        assert!(
            b["read_count"].as_u64() >= a["read_count"].as_u64(),
            "read_count went back: {a}\n-> {b}"
        );
    }
    for e in seen.iter().filter(|e| e["execute_status"] == "RUNNING") {
        let p = progress(e);
        assert!(p <= 99, "a running run is at most 99: {e}");
        if p > 0 {
            intermediate.insert(p);
            assert!(near_big(&e["total_count"]), "{e}");
        }
        if e["rows_per_second"].as_f64().unwrap_or(0.0) > 0.0 {
            rate_seen = true;
        }
        if let (Some(left), Some(read)) = (e["remaining_time"].as_i64(), e["read_count"].as_i64())
            && read > 0
        {
            assert!(left >= 0, "{e}");
            eta_seen |= left > 0;
        }
        assert!(e["current_step"]["status"].is_u64(), "{e}");
    }
    println!(
        "1M-row PG->PG run: {took:?}, {} polls, intermediate progress values {intermediate:?}, final rows/s {}",
        seen.len(),
        last["rows_per_second"]
    );
    assert!(
        intermediate.len() >= 3,
        "at least 3 distinct progress values while running, saw {intermediate:?} in {} polls over {took:?}",
        seen.len()
    );
    assert!(rate_seen, "rows_per_second > 0 while running");
    assert!(eta_seen, "remaining_time > 0 while running");
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

/// One Server-Sent Event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    id: Option<u64>,
    data: String,
}

/// Parse the complete events in `buf` (up to its last blank line) and keep the rest there.
fn parse_events(buf: &mut String) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut e = SseEvent {
            event: "message".into(),
            id: None,
            data: String::new(),
        };
        let mut any = false;
        for line in block.lines() {
            if line.starts_with(':') || line.is_empty() {
                continue; // a keep-alive comment
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "event" => e.event = value.to_string(),
                "id" => e.id = value.parse().ok(),
                "data" => e.data.push_str(value),
                _ => {}
            }
        }
        if any {
            out.push(e);
        }
    }
    out
}

/// Read the event stream of a run until the server closes it.
async fn read_events(s: &TestServer, task: &str, run: &str) -> Vec<SseEvent> {
    events_at(s.url(&format!("/tasks/{task}/monitor-logs/{run}/events"))).await
}

/// Read the event stream at `url` until the server closes it (2 minutes at most).
async fn events_at(url: String) -> Vec<SseEvent> {
    let mut resp = reqwest::Client::new()
        .get(&url)
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .expect("events request");
    assert_eq!(resp.status().as_u16(), 200);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let mut buf = String::new();
    let mut events = Vec::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.expect("event stream") {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            events.extend(parse_events(&mut buf));
        }
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the event stream did not close after the run ended");
    events
}

#[tokio::test]
async fn events_stream_progress_in_order_and_close_at_the_end() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let (task, src, dst) = pg_copy_task(&s, 400_000).await;
    let run = start_run(&s, &task).await;
    let events = read_events(&s, &task, &run).await;

    assert!(events.len() >= 2, "{events:?}");
    let ids: Vec<u64> = events.iter().map(|e| e.id.expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "ids increase: {ids:?}");
    let last = events.last().unwrap();
    assert_eq!(last.event, "end", "{events:?}");
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e.event == "progress"),
        "{events:?}"
    );
    let entries: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.data).expect("data is the entry JSON"))
        .collect();
    for pair in entries.windows(2) {
        assert!(progress(&pair[1]) >= progress(&pair[0]), "{pair:?}");
        assert!(pair[1]["read_count"].as_u64() >= pair[0]["read_count"].as_u64());
    }
    let end = entries.last().unwrap();
    assert_eq!(end["id"], run.as_str());
    assert_eq!(end["execute_status"], "SUCCESS", "{end}");
    assert_eq!(end["progress"], 100);
    assert_eq!(end["read_count"], 400_000);
    assert!(entries.iter().all(|e| e["id"] == run.as_str()));
    assert!(
        entries[..entries.len() - 1]
            .iter()
            .all(|e| e["execute_status"] == "RUNNING"),
        "{entries:?}"
    );
    println!("{} events for a 400k-row run", events.len());

    // An ended run: its `end` at once, then the stream closes.
    let again = read_events(&s, &task, &run).await;
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!((again[0].event.as_str(), again[0].id), ("end", Some(1)));

    // Unknown run, unknown task: 404 FDI bodies.
    let missing = s
        .get(&format!("/tasks/{task}/monitor-logs/no-such-run/events"))
        .await;
    assert_fdi_error(&missing, 404, "FDI.3002", "tracking_id");
    let missing = s
        .get(&format!("/tasks/no-such-task/monitor-logs/{run}/events"))
        .await;
    assert_eq!(missing.0, 404, "{missing:?}");
    assert!(
        missing.1["error_code"]
            .as_str()
            .unwrap_or("")
            .starts_with("FDI."),
        "{missing:?}"
    );
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn a_source_without_estimate_has_null_progress_until_success() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let path = s.files_dir().join("noestimate.sqlite");
    const ROWS: i64 = 300_000;
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        // Never analysed: no sqlite_stat1, no estimate.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE rows_src (id INTEGER PRIMARY KEY, v INTEGER);
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS})
             INSERT INTO rows_src SELECT x, x % 7 FROM c"
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let dst = unique("n_dst");
    pg_exec(&format!(
        "CREATE TABLE {dst} (id bigint PRIMARY KEY, v int)"
    ))
    .await;
    let lite = s
        .create_datasource(&app, "SQLITE", sqlite_content(&path))
        .await;
    let pg_ds = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task(
            &lite,
            &pg_ds,
            json!({"sourceSelectedDatasource": {"sourceTable": "rows_src"}, "targetSelectedDatasource": {"targetTable": dst}}),
        )
        .await;
    let run = start_run(&s, &task).await;
    let seen = poll_to_end(&s, &task, &run).await;
    let running: Vec<&Value> = seen
        .iter()
        .filter(|e| e["execute_status"] == "RUNNING")
        .collect();
    assert!(!running.is_empty(), "the run was never seen running");
    for e in &running {
        assert!(e["progress"].is_null(), "no estimate, no progress: {e}");
        assert!(e["total_count"].is_null(), "{e}");
        assert!(e["remaining_time"].is_null(), "{e}");
    }
    let last = seen.last().unwrap();
    assert_eq!(last["execute_status"], "SUCCESS", "{last}\n{}", s.log());
    assert_eq!(last["progress"], 100, "{last}");
    assert!(last["total_count"].is_null(), "{last}");
    assert_eq!(last["read_count"], ROWS, "{last}");
    // The run's own detail carries the same fields.
    let (st, detail) = s.get(&format!("/tasks/{task}/monitor-logs/{run}")).await;
    assert_eq!(st, 200, "{detail}");
    assert_eq!(detail["progress"], 100, "{detail}");
    assert_eq!(detail["read_count"], ROWS, "{detail}");
    assert_eq!(detail["current_step"]["status"], 901, "{detail}");
    pg_exec(&format!("DROP TABLE {dst}")).await;
}

/// A node that stops closes the event streams it serves for runs of another node (they would
/// hold its graceful shutdown until those runs end), after following them from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_closes_its_streams_of_runs_on_another_node() {
    let a = TestServer::start(StoreKind::Postgres).await;
    let mut b = a.join().await;
    let app = a.create_app().await;
    let dst = unique("s_dst");
    pg_exec(&format!(
        "CREATE TABLE {dst} (id bigint PRIMARY KEY, v int)"
    ))
    .await;
    let ds = a.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    // A read that waits 40 s in the source before its first row.
    let task = a
        .create_task(
            &ds,
            &ds,
            json!({"sourceSelectedDatasource": {"isAddSql": true,
                     "querySql": "SELECT g::int8 AS id, g::int4 AS v FROM generate_series(1, 10) g CROSS JOIN pg_sleep(40)"},
                   "targetSelectedDatasource": {"targetTable": dst}}),
        )
        .await;
    let run = start_run(&a, &task).await;
    a.wait_running(&task, Duration::from_secs(30)).await;
    // Node b follows the run of node a through the store.
    let url = b.url(&format!("/tasks/{task}/monitor-logs/{run}/events"));
    let follower = tokio::spawn(events_at(url));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = Instant::now();
    let status = tokio::task::block_in_place(|| b.terminate());
    let stopped_in = stopping.elapsed();
    assert!(status.success(), "{status:?}");
    let events = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("the stream closed when its node stopped")
        .unwrap();
    assert!(!events.is_empty(), "node b followed the run of node a");
    assert!(events.iter().all(|e| e.event == "progress"), "{events:?}");
    let first: Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(
        (first["id"].as_str(), first["execute_status"].as_str()),
        (Some(run.as_str()), Some("RUNNING"))
    );
    assert!(
        stopped_in < Duration::from_secs(15),
        "node b stopped in {stopped_in:?}"
    );
    // The run goes on on node a; its own stream still ends with `end`.
    assert_eq!(entry(&a, &task, &run).await["execute_status"], "RUNNING");
    let (st, body) = a.post(&format!("/tasks/{task}/terminate"), json!({})).await;
    assert_eq!(st, 200, "{body}");
    let events = read_events(&a, &task, &run).await;
    let end: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(events.last().unwrap().event, "end");
    assert_eq!(end["execute_status"], "CANCELLED", "{end}");
    pg_exec(&format!("DROP TABLE {dst}")).await;
}
