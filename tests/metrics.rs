//! Prometheus metrics and JSON logs of the real `fdi` process: `/metrics` parsed after real
//! PostgreSQL -> PostgreSQL runs and its counters checked against the runs and the target table;
//! `--metrics off`; every JSON log line of a run carrying its task_id and run_id.

use std::collections::BTreeMap;

use fdi_e2e::*;
use serde_json::{Value, json};

const ROWS: i64 = 750;

/// One sample of the text exposition: `name{label="value",...} number`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A small parser of the text exposition format (comments skipped; label values unescaped).
fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_sample(l).unwrap_or_else(|| panic!("not a sample line: {l:?}")))
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let mut key = String::new();
        let close;
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    close = i;
                    break;
                }
                ',' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.insert(std::mem::take(&mut key), value);
                }
                other => key.push(other),
            }
        }
        rest = &body[close + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// The value of `name` with exactly these labels (besides none other), if the series exists.
fn series(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// `GET /metrics` without a token: status, content type, body.
async fn scrape(s: &TestServer) -> (u16, String, String) {
    let resp = reqwest::get(format!("{}/metrics", s.base))
        .await
        .expect("GET /metrics");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, resp.text().await.unwrap())
}

/// `GET /metrics` once no run is active any more: a run's end is in the monitor log a moment
/// before its metrics (which are recorded once its claim is released), and every ended run is
/// counted before `fdi_active_runs` drops.
async fn scrape_settled(s: &TestServer) -> (u16, String, String) {
    wait_for(
        "fdi_active_runs 0",
        std::time::Duration::from_secs(10),
        || async {
            let scraped = scrape(s).await;
            (series(&parse_exposition(&scraped.2), "fdi_active_runs", &[]) == Some(0.0))
                .then_some(scraped)
        },
    )
    .await
}

/// A PostgreSQL source of `ROWS` rows and an empty target without a key (each run appends).
async fn pg_tables() -> (String, String) {
    let src = unique("m_src");
    let dst = unique("m_dst");
    pg_exec(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, name text, amount numeric(12,2));
         INSERT INTO {src} SELECT g, 'name ' || g, g * 1.5 FROM generate_series(1, {ROWS}) g;
         CREATE TABLE {dst} (id bigint, name text, amount numeric(12,2));"
    ))
    .await;
    (src, dst)
}

async fn pg_count(table: &str) -> i64 {
    let pool = pg().await;
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap()
}

async fn pg_task(s: &TestServer, src: &str, dst: &str) -> String {
    let app = s.create_app().await;
    let source = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let target = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    s.create_task(
        &source,
        &target,
        json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst}}),
    )
    .await
}

#[tokio::test]
async fn metrics_count_the_runs_that_happened() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let (src, dst) = pg_tables().await;
    let task = pg_task(&s, &src, &dst).await;
    for _ in 0..2 {
        let run = s.run_to_end(&task).await;
        assert_eq!(run["execute_status"], "SUCCESS", "{run}\n{}", s.log());
    }
    // The third run fails: its source table is gone.
    pg_exec(&format!("DROP TABLE {src}")).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "ERROR", "{run}");

    let (status, content_type, text) = scrape_settled(&s).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "content type {content_type:?}"
    );
    let samples = parse_exposition(&text);
    let t = task.as_str();
    let copied = pg_count(&dst).await;
    assert_eq!(copied, 2 * ROWS, "two successful runs appended the source");
    assert_eq!(
        series(
            &samples,
            "fdi_runs_total",
            &[("task_id", t), ("status", "SUCCESS")]
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        series(
            &samples,
            "fdi_runs_total",
            &[("task_id", t), ("status", "ERROR")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(&samples, "fdi_rows_written_total", &[("task_id", t)]),
        Some(copied as f64),
        "rows written == rows in the target\n{text}"
    );
    assert_eq!(
        series(&samples, "fdi_rows_read_total", &[("task_id", t)]),
        Some((2 * ROWS) as f64),
        "{text}"
    );
    assert!(
        series(&samples, "fdi_bytes_written_total", &[("task_id", t)]).unwrap_or(0.0) > 0.0,
        "{text}"
    );
    // Every row read carries at least its 8-byte id.
    assert!(
        series(&samples, "fdi_bytes_read_total", &[("task_id", t)]).unwrap_or(0.0)
            >= (2 * ROWS * 8) as f64,
        "{text}"
    );
    assert_eq!(
        series(&samples, "fdi_dirty_rows_total", &[("task_id", t)]),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series(
            &samples,
            "fdi_run_duration_seconds_count",
            &[("task_id", t)]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        series(
            &samples,
            "fdi_run_duration_seconds_bucket",
            &[("task_id", t), ("le", "+Inf")]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        series(&samples, "fdi_active_runs", &[]),
        Some(0.0),
        "{text}"
    );
    assert!(
        series(&samples, "fdi_store_query_duration_seconds_count", &[]).unwrap_or(0.0) > 10.0,
        "every store query is timed\n{text}"
    );
    assert!(
        text.contains("# TYPE fdi_runs_total counter")
            && text.contains("# TYPE fdi_run_duration_seconds histogram")
            && text.contains("# HELP fdi_active_runs "),
        "{text}"
    );
    pg_exec(&format!("DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn active_runs_counts_a_run_in_progress() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let src = unique("m_big");
    let dst = unique("m_big_dst");
    pg_exec(&format!(
        "CREATE TABLE {src} (id bigint, pad text);
         INSERT INTO {src} SELECT g, repeat('x', 200) FROM generate_series(1, 1500000) g;
         CREATE TABLE {dst} (id bigint, pad text);"
    ))
    .await;
    let task = pg_task(&s, &src, &dst).await;
    let (st, body) = s.post(&format!("/tasks/{task}/run"), json!({})).await;
    assert_eq!(st, 200, "{body}");
    s.wait_running(&task, std::time::Duration::from_secs(60))
        .await;
    let (_, _, text) = scrape(&s).await;
    let during = series(&parse_exposition(&text), "fdi_active_runs", &[]);
    let (st, body) = s.post(&format!("/tasks/{task}/terminate"), json!({})).await;
    assert_eq!(st, 200, "{body}");
    s.wait_run_end(&task, 1, std::time::Duration::from_secs(60))
        .await;
    let (_, _, text) = scrape_settled(&s).await;
    let samples = parse_exposition(&text);
    assert_eq!(during, Some(1.0), "one run in progress");
    assert_eq!(series(&samples, "fdi_active_runs", &[]), Some(0.0));
    assert_eq!(
        series(
            &samples,
            "fdi_runs_total",
            &[("task_id", task.as_str()), ("status", "CANCELLED")]
        ),
        Some(1.0),
        "{text}"
    );
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn metrics_off_records_and_serves_nothing() {
    let s = TestServer::start_with_env(StoreKind::under_test(), &[("FDI_METRICS", "off")]).await;
    let (status, _, text) = scrape(&s).await;
    assert_eq!(status, 404, "{text}");
    let body: Value = serde_json::from_str(&text).expect("an FDI error body");
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap_or_default()
            .contains("metrics are off"),
        "{body}"
    );
    // The API still works.
    let (st, body) = s.get("/tasks").await;
    assert_eq!(st, 200, "{body}");
}

/// The ids a JSON log line carries, as fields of the event or of any span it is in.
fn ids_of(line: &Value) -> (Option<String>, Option<String>) {
    let mut scopes: Vec<&Value> = vec![&line["fields"], &line["span"]];
    if let Some(spans) = line["spans"].as_array() {
        scopes.extend(spans);
    }
    let find = |key: &str| {
        scopes
            .iter()
            .find_map(|s| s[key].as_str().map(str::to_string))
    };
    (find("task_id"), find("run_id"))
}

#[tokio::test]
async fn json_log_lines_of_a_run_carry_its_task_and_run_ids() {
    let s = TestServer::start_with_env(
        StoreKind::under_test(),
        &[
            ("FDI_LOG_FORMAT", "json"),
            // The run's own crates at debug: lines from the tasks a run spawns show too.
            ("RUST_LOG", "info,fdi_engine=debug,fdi_scheduler=debug,fdi_connector_postgres=debug,fdi_sql_core=debug,fdi::sql=debug"),
        ],
    )
    .await;
    let (src, dst) = pg_tables().await;
    let task = pg_task(&s, &src, &dst).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}\n{}", s.log());
    let run_id = run["tracking_id"]
        .as_str()
        .or_else(|| run["id"].as_str())
        .expect("tracking_id")
        .to_string();
    // The run's end is logged after its record is saved: wait for it.
    wait_for(
        "the run's end in the log",
        std::time::Duration::from_secs(10),
        || async { s.log().contains("run ended").then_some(()) },
    )
    .await;

    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    // A run's lines: those that name the run or the task anywhere, and every line of the crates
    // that execute runs (only this one run happened).
    const RUN_TARGETS: [&str; 5] = [
        "fdi_engine",
        "fdi_scheduler::runs",
        "fdi_connector_postgres",
        "fdi_sql_core",
        "fdi::sql",
    ];
    let of_run: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            let text = l.to_string();
            let target = l["target"].as_str().unwrap_or_default();
            text.contains(&run_id)
                || text.contains(&task)
                || RUN_TARGETS.iter().any(|t| target.starts_with(t))
        })
        .collect();
    assert!(
        of_run.len() >= 3,
        "the run logs its start, its stages and its end: {of_run:#?}"
    );
    for line in &of_run {
        let (t, r) = ids_of(line);
        assert_eq!(t.as_deref(), Some(task.as_str()), "task_id field: {line}");
        assert_eq!(r.as_deref(), Some(run_id.as_str()), "run_id field: {line}");
    }
    let ended = of_run
        .iter()
        .find(|l| l["fields"]["message"] == "run ended")
        .expect("a 'run ended' line");
    assert_eq!(ended["fields"]["status"], "SUCCESS", "{ended}");
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

fn ms(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Dispatch lag: one histogram sample per fire that started a run, summing to what the monitor
/// log says (start_time - dispatch_time of each run).
#[tokio::test]
async fn dispatch_lag_is_recorded_per_fire() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let (src, dst) = pg_tables().await;
    let task = pg_task(&s, &src, &dst).await;
    let (st, body) = s
        .post(
            &format!("/tasks/{task}/dispatches"),
            json!({"use_quartz_cron": true, "cron": "*/2 * * * * ?"}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    s.start_task(&task).await;
    wait_for(
        "two fired runs",
        std::time::Duration::from_secs(30),
        || async {
            let runs = s.runs(&task).await;
            (runs
                .iter()
                .filter(|r| r["execute_status"] == "SUCCESS")
                .count()
                >= 2)
                .then_some(())
        },
    )
    .await;
    let (st, body) = s
        .post(
            "/batch-operation/tasks",
            json!({"action_id": "stop", "list": [{"task_id": task}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    // Let a fire owned before the stop end too.
    let runs = wait_for(
        "no run in progress",
        std::time::Duration::from_secs(30),
        || async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let runs = s.runs(&task).await;
            runs.iter()
                .all(|r| {
                    matches!(
                        r["execute_status"].as_str(),
                        Some("SUCCESS" | "ERROR" | "CANCELLED")
                    )
                })
                .then_some(runs)
        },
    )
    .await;
    let (_, _, text) = scrape_settled(&s).await;
    let samples = parse_exposition(&text);
    let started: Vec<&Value> = runs
        .iter()
        .filter(|r| r["execute_status"] == "SUCCESS")
        .collect();
    let lag_sum: f64 = started
        .iter()
        .map(|r| (ms(r, "start_time") - ms(r, "dispatch_time")) as f64 / 1000.0)
        .sum();
    let count = series(&samples, "fdi_dispatch_lag_seconds_count", &[]);
    assert_eq!(count, Some(started.len() as f64), "{runs:#?}\n{text}");
    let sum = series(&samples, "fdi_dispatch_lag_seconds_sum", &[]).unwrap();
    assert!(
        (sum - lag_sum).abs() < 0.1 * started.len() as f64,
        "metric sum {sum} s vs monitor log {lag_sum} s\n{text}"
    );
    assert_eq!(
        series(
            &samples,
            "fdi_runs_total",
            &[("task_id", task.as_str()), ("status", "SUCCESS")]
        ),
        Some(started.len() as f64),
        "{text}"
    );
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

/// A realtime (window-polling) task: its counters move window by window while it runs, and its
/// lag gauge says how far behind the last copied window ends.
#[tokio::test]
async fn realtime_windows_count_as_they_commit_and_set_the_lag() {
    let s = TestServer::start_with_env(StoreKind::under_test(), &[("FDI_REALTIME_POLL_MS", "200")])
        .await;
    let src = unique("m_rt_src");
    let dst = unique("m_rt_dst");
    pg_exec(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, amount numeric(12,2), updated_at timestamp);
         CREATE TABLE {dst} (id bigint PRIMARY KEY, amount numeric(12,2), updated_at timestamp);
         INSERT INTO {src} SELECT g, g * 1.5, now() AT TIME ZONE 'UTC' - interval '1 minute' FROM generate_series(1, 300) g;"
    ))
    .await;
    let app = s.create_app().await;
    let a = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let b = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let start_ms = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let detail = json!({
        "sourceSelectedDatasource": {"sourceTable": src, "need_inc_migration": true,
            "sourceDateColumn": "updated_at", "dataTimestamp": start_ms,
            "compensation_time": 0, "timeZone": "UTC"},
        "targetSelectedDatasource": {"targetTable": dst, "supportPartUpdate": true}
    });
    let task = s.create_task_of_type("REALTIME", &a, &b, detail).await;
    s.start_task(&task).await;
    wait_for(
        "the first window",
        std::time::Duration::from_secs(30),
        || async { (pg_count(&dst).await == 300).then_some(()) },
    )
    .await;
    pg_exec(&format!(
        "INSERT INTO {src} SELECT g, g * 1.5, now() AT TIME ZONE 'UTC' FROM generate_series(301, 420) g"
    ))
    .await;
    wait_for(
        "the second window",
        std::time::Duration::from_secs(30),
        || async { (pg_count(&dst).await == 420).then_some(()) },
    )
    .await;
    // The run is still going: its windows are counted as they commit, not at its end.
    let samples = wait_for(
        "the counters",
        std::time::Duration::from_secs(10),
        || async {
            let (_, _, text) = scrape(&s).await;
            let samples = parse_exposition(&text);
            (series(
                &samples,
                "fdi_rows_written_total",
                &[("task_id", task.as_str())],
            ) == Some(420.0))
            .then_some(samples)
        },
    )
    .await;
    assert_eq!(series(&samples, "fdi_active_runs", &[]), Some(1.0));
    assert_eq!(
        series(
            &samples,
            "fdi_rows_read_total",
            &[("task_id", task.as_str())]
        ),
        Some(420.0)
    );
    let lag = series(
        &samples,
        "fdi_realtime_lag_seconds",
        &[("task_id", task.as_str())],
    )
    .expect("a realtime lag gauge");
    assert!((0.0..5.0).contains(&lag), "lag {lag} s with a 200 ms poll");
    let (st, body) = s
        .post(
            "/batch-operation/tasks",
            json!({"action_id": "stop", "list": [{"task_id": task}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    s.wait_run_end(&task, 1, std::time::Duration::from_secs(30))
        .await;
    let (_, _, text) = scrape_settled(&s).await;
    let samples = parse_exposition(&text);
    assert_eq!(
        series(
            &samples,
            "fdi_runs_total",
            &[("task_id", task.as_str()), ("status", "SUCCESS")]
        ),
        Some(1.0),
        "a stopped realtime run ends SUCCESS\n{text}"
    );
    assert_eq!(series(&samples, "fdi_active_runs", &[]), Some(0.0));
    pg_exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

const PG_CDC_URL: &str = "postgres://postgres@127.0.0.1:5433/test";

/// A combination (CDC) task from the logical-replication PostgreSQL (`scripts/services.sh up
/// pg-cdc`): its lag gauge is set as changes commit, its rows count once it ends, and every JSON
/// log line of the pipeline and of its change-log reader carries the task and run ids.
#[tokio::test]
async fn a_cdc_run_sets_its_lag_and_logs_in_its_span() {
    use sqlx::Executor;
    let s = TestServer::start_with_env(
        StoreKind::under_test(),
        &[
            ("FDI_LOG_FORMAT", "json"),
            (
                "RUST_LOG",
                "info,fdi_cdc=debug,fdi_connector_postgres=debug",
            ),
        ],
    )
    .await;
    let src = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(PG_CDC_URL)
        .await
        .expect("the logical-replication PostgreSQL (scripts/services.sh up pg-cdc)");
    let table = unique("m_cdc");
    src.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, v text);
         INSERT INTO {table} SELECT g, 'v' || g FROM generate_series(1, 200) g;"
    )))
    .await
    .unwrap();
    pg_exec(&format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, v text)"
    ))
    .await;
    let app = s.create_app().await;
    let source = s
        .create_datasource(
            &app,
            "POSTGRESQL",
            json!({"host": "127.0.0.1", "port": "5433", "database_name": "test", "user_name": "postgres", "password": ""}),
        )
        .await;
    let target = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let (st, body) = s
        .post(
            "/multi-tasks/init",
            json!({"source_datasource_id": source, "target_datasource_id": target}),
        )
        .await;
    assert_eq!(st, 200, "init: {body}");
    let task = body[0]["task_id"].as_str().expect("task_id").to_string();
    let (st, body) = s
        .post(
            &format!("/multi-tasks/{task}/mappings"),
            json!({"source_table": format!("public.{table}"), "target_table": format!("public.{table}")}),
        )
        .await;
    assert_eq!(st, 200, "mapping: {body}");
    let (st, body) = s
        .post(
            "/multi-tasks",
            json!({"task_name": unique("cdc"), "task_id": task, "task_type": "REALTIME",
                   "operation_types": ["INSERT", "UPDATE", "DELETE"]}),
        )
        .await;
    assert_eq!(st, 200, "create: {body}");
    s.start_task(&task).await;
    wait_for(
        "the snapshot",
        std::time::Duration::from_secs(60),
        || async { (pg_count(&table).await == 200).then_some(()) },
    )
    .await;
    src.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} SELECT g, 'v' || g FROM generate_series(201, 260) g"
    )))
    .await
    .unwrap();
    wait_for(
        "the streamed inserts",
        std::time::Duration::from_secs(60),
        || async { (pg_count(&table).await == 260).then_some(()) },
    )
    .await;
    let lag = wait_for(
        "the CDC lag gauge",
        std::time::Duration::from_secs(10),
        || async {
            let (_, _, text) = scrape(&s).await;
            series(
                &parse_exposition(&text),
                "fdi_cdc_lag_seconds",
                &[("task_id", task.as_str())],
            )
        },
    )
    .await;
    assert!((0.0..30.0).contains(&lag), "lag {lag} s");
    let (st, body) = s
        .post(
            "/batch-operation/tasks",
            json!({"action_id": "stop", "list": [{"task_id": task}]}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let run = s
        .wait_run_end(&task, 1, std::time::Duration::from_secs(60))
        .await;
    assert_eq!(run["execute_status"], "SUCCESS", "{run}");
    let run_id = run["id"].as_str().expect("id").to_string();
    let (_, _, text) = scrape_settled(&s).await;
    let samples = parse_exposition(&text);
    assert_eq!(
        series(
            &samples,
            "fdi_runs_total",
            &[("task_id", task.as_str()), ("status", "SUCCESS")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        series(
            &samples,
            "fdi_rows_written_total",
            &[("task_id", task.as_str())]
        ),
        Some(260.0),
        "snapshot + streamed rows\n{text}"
    );

    let log = s.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let of_run: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            let target = l["target"].as_str().unwrap_or_default();
            target.starts_with("fdi_cdc") || target.starts_with("fdi_connector_postgres")
        })
        .collect();
    assert!(
        of_run.iter().any(|l| l["target"]
            .as_str()
            .unwrap_or_default()
            .starts_with("fdi_connector_postgres")),
        "the change-log reader logs (slot, streaming): {lines:#?}"
    );
    for line in &of_run {
        let (t, r) = ids_of(line);
        assert_eq!(t.as_deref(), Some(task.as_str()), "task_id field: {line}");
        assert_eq!(r.as_deref(), Some(run_id.as_str()), "run_id field: {line}");
    }
    // Deleting the task drops its replication slot.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let (st, body) = s.delete(&format!("/multi-tasks/{task}")).await;
        if st == 200 || st == 204 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "delete: {st} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    src.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .await
        .unwrap();
    pg_exec(&format!("DROP TABLE {table}")).await;
}

/// Beyond loopback `/metrics` needs the token unless `--metrics-public` / `FDI_METRICS_PUBLIC`
/// (an empty value counts as unset). The harness listens on loopback only: these servers are
/// started here on all interfaces.
#[tokio::test]
async fn beyond_loopback_metrics_need_the_token_unless_public() {
    for (env_public, flag, open) in [
        (None, false, false),
        (Some(""), false, false),
        (Some("true"), false, true),
        (None, true, true),
    ] {
        let dir = std::env::temp_dir().join(unique("fdi-metrics-public"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = std::process::Command::new(server_binary());
        cmd.args([
            "serve",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--data-dir",
        ])
        .arg(&dir)
        .args(["--auth-tokens", "metrics-token"])
        .env_remove("FDI_METRICS_PUBLIC")
        .env_remove("FDI_METRICS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        if let Some(v) = env_public {
            cmd.env("FDI_METRICS_PUBLIC", v);
        }
        if flag {
            cmd.arg("--metrics-public");
        }
        let mut child = cmd.spawn().expect("spawn fdi");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let (http_ref, base_ref) = (&http, &base);
        wait_for("the server", std::time::Duration::from_secs(30), || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("fdi exited ({st}) with FDI_METRICS_PUBLIC={env_public:?}");
            }
            async move {
                http_ref
                    .get(format!("{base_ref}/health"))
                    .send()
                    .await
                    .ok()
                    .filter(|r| r.status().is_success())
            }
        })
        .await;
        let anonymous = http.get(format!("{base}/metrics")).send().await.unwrap();
        let with_token = http
            .get(format!("{base}/metrics"))
            .header("X-Auth-Token", "metrics-token")
            .send()
            .await
            .unwrap();
        let case = format!("FDI_METRICS_PUBLIC={env_public:?}, --metrics-public {flag}");
        assert_eq!(
            anonymous.status().as_u16(),
            if open { 200 } else { 401 },
            "{case}"
        );
        assert_eq!(with_token.status().as_u16(), 200, "{case}");
        assert!(
            with_token.text().await.unwrap().contains("fdi_active_runs"),
            "{case}"
        );
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
