//! End-to-end scheduling: dispatch plans (§5.3.9-5.3.11), batch start/stop (§5.3.12), cron
//! fires and their monitor log, fires rejected while the previous run is active (907/914),
//! misfires across a restart, several nodes sharing one PostgreSQL store (one node per fire,
//! terminate and FDI.3139 across nodes, a killed node's run ended 915), and incremental /
//! realtime tasks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fdi_e2e::*;
use serde_json::{Value, json};
use sqlx::Row;

// ---- helpers -----------------------------------------------------------------------------------

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Poll `f` every 100 ms until it yields a value; panics with `what` after `timeout`.
fn steps(run: &Value) -> Vec<u64> {
    run["detail_logs"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["status"].as_u64()).collect())
        .unwrap_or_default()
}

fn dispatch_time(run: &Value) -> i64 {
    run["dispatch_time"].as_i64().expect("dispatch_time")
}

fn start_time(run: &Value) -> i64 {
    run["start_time"].as_i64().expect("start_time")
}

fn exec(run: &Value) -> &str {
    run["execute_status"].as_str().unwrap_or("")
}

fn ended(run: &Value) -> bool {
    matches!(exec(run), "SUCCESS" | "ERROR" | "CANCELLED")
}

/// A fire recorded as rejected because the previous run was still active.
fn rejected(run: &Value) -> bool {
    exec(run) == "CANCELLED" && run["status"] == 914
}

fn dispatches(task: &str) -> String {
    format!("/tasks/{task}/dispatches")
}

async fn batch(s: &TestServer, action: &str, tasks: &[&str]) -> Value {
    let list: Vec<Value> = tasks.iter().map(|t| json!({ "task_id": t })).collect();
    let (st, body) = s
        .post(
            "/batch-operation/tasks",
            json!({"action_id": action, "list": list}),
        )
        .await;
    assert_eq!(st, 200, "batch {action}: {body}");
    body
}

async fn plan(s: &TestServer, task: &str, body: Value) -> Value {
    let (st, p) = s.post(&dispatches(task), body).await;
    assert_eq!(st, 200, "create plan: {p}");
    p
}

/// The task's `status` (0/1) in the task list and in task-monitors.
async fn statuses(s: &TestServer, task: &str) -> (i64, i64) {
    let (st, list) = s.get(&format!("/tasks?task_id={task}&limit=100")).await;
    assert_eq!(st, 200, "{list}");
    let in_list = list["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == task)
        .unwrap_or_else(|| panic!("{task} not in task list {list}"))["status"]
        .as_i64()
        .expect("status");
    let (st, mons) = s.get("/task-monitors?limit=999").await;
    assert_eq!(st, 200, "{mons}");
    let in_mons = mons["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_id"] == task)
        .unwrap_or_else(|| panic!("{task} not in task-monitors {mons}"))["status"]
        .as_i64()
        .expect("status");
    (in_list, in_mons)
}

/// Wait until the task shows status 0 (stopped and no run in progress on any node). A fire
/// already owned when the stop arrived still runs: its claim is taken before its monitor-log
/// entry exists, so "all runs ended" alone does not mean nothing runs.
async fn wait_stopped(s: &TestServer, task: &str, timeout: Duration) {
    wait_for("status 0", timeout, move || async move {
        (statuses(s, task).await == (0, 0)).then_some(())
    })
    .await
}

/// Wait until no run of the task is active; returns all runs (newest first).
async fn settle(s: &TestServer, task: &str, timeout: Duration) -> Vec<Value> {
    let (s, task) = (s, task);
    wait_for("runs to end", timeout, move || async move {
        let runs = s.runs(task).await;
        runs.iter().all(ended).then_some(runs)
    })
    .await
}

// ---- a fast SQLite -> SQLite task ----------------------------------------------------------------

const FAST_ROWS: i64 = 50;

struct FastTask {
    task: String,
    dst: PathBuf,
}

async fn sqlite_pool(path: &Path) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    sqlx::SqlitePool::connect_with(opts).await.unwrap()
}

/// Source `items` with `FAST_ROWS` rows (v = id * 3); target `items_copy` without a key, so every
/// run appends `FAST_ROWS` rows and the target tells how many runs wrote.
async fn fast_task(s: &TestServer) -> FastTask {
    let app = s.create_app().await;
    let src = s.files_dir().join(format!("{}.sqlite", unique("src")));
    let dst = s.files_dir().join(format!("{}.sqlite", unique("dst")));
    let pool = sqlite_pool(&src).await;
    sqlx::raw_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, v INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    for i in 1..=FAST_ROWS {
        sqlx::query("INSERT INTO items VALUES (?, ?)")
            .bind(i)
            .bind(i * 3)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let pool = sqlite_pool(&dst).await;
    sqlx::raw_sql("CREATE TABLE items_copy (id INTEGER, v INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let a = s
        .create_datasource(&app, "SQLITE", sqlite_content(&src))
        .await;
    let b = s
        .create_datasource(&app, "SQLITE", sqlite_content(&dst))
        .await;
    let task = s
        .create_task(
            &a,
            &b,
            json!({"sourceSelectedDatasource": {"sourceTable": "items"},
                   "targetSelectedDatasource": {"targetTable": "items_copy"}}),
        )
        .await;
    FastTask { task, dst }
}

const FAST_SUM: i64 = 3 * FAST_ROWS * (FAST_ROWS + 1) / 2;

/// (rows, sum of v, distinct ids) in the target.
async fn fast_target(t: &FastTask) -> (i64, i64, i64) {
    let pool = sqlite_pool(&t.dst).await;
    let r: (i64, Option<i64>, i64) =
        sqlx::query_as("SELECT count(*), sum(v), count(DISTINCT id) FROM items_copy")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    (r.0, r.1.unwrap_or(0), r.2)
}

// ---- a slow PostgreSQL -> PostgreSQL task ----------------------------------------------------------

/// A source view that yields one row per `delay` seconds (the delay is read from a control
/// table for every row, so a test can speed a run up), and a key-less target.
struct SlowTask {
    task: String,
    src: String,
    ctl: String,
    func: String,
    dst: String,
    rows: i64,
}

async fn slow_task(s: &TestServer, rows: i64, delay: f64) -> SlowTask {
    let app = s.create_app().await;
    let src = unique("slow_src");
    let ctl = unique("slow_ctl");
    let func = unique("slow_fn");
    let dst = unique("slow_dst");
    pg_exec(&format!(
        "CREATE TABLE {ctl} (delay float8 NOT NULL);
         INSERT INTO {ctl} VALUES ({delay});
         CREATE FUNCTION {func}(i bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
           BEGIN PERFORM pg_sleep((SELECT delay FROM {ctl})); RETURN i; END $$;
         CREATE VIEW {src} AS SELECT {func}(g) AS id, md5(g::text) AS payload
           FROM generate_series(1::bigint, {rows}::bigint) g;
         CREATE TABLE {dst} (id bigint, payload text);"
    ))
    .await;
    let a = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let b = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task(
            &a,
            &b,
            json!({"sourceSelectedDatasource": {"sourceTable": src},
                   "targetSelectedDatasource": {"targetTable": dst}}),
        )
        .await;
    SlowTask {
        task,
        src,
        ctl,
        func,
        dst,
        rows,
    }
}

impl SlowTask {
    async fn set_delay(&self, delay: f64) {
        pg_exec(&format!("UPDATE {} SET delay = {delay}", self.ctl)).await;
    }

    async fn target_rows(&self) -> i64 {
        pg_count(&self.dst).await
    }

    /// Stop whatever still reads the view (queries of killed or cancelled runs), drop it all.
    async fn drop_all(&self) {
        self.set_delay(0.0).await;
        pg_exec(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE pid <> pg_backend_pid() AND (query LIKE '%{src}%' OR query LIKE '%{dst}%')",
            src = self.src,
            dst = self.dst
        ))
        .await;
        pg_exec(&format!(
            "DROP VIEW {}; DROP FUNCTION {}(bigint); DROP TABLE {}, {}",
            self.src, self.func, self.ctl, self.dst
        ))
        .await;
    }
}

async fn pg_count(table: &str) -> i64 {
    let pool = pg().await;
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    n
}

// ---- 1. dispatch plan endpoints ------------------------------------------------------------------

#[tokio::test]
async fn dispatch_plans_round_trip_and_refuse_bad_input() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let t = fast_task(&s).await;
    let task = t.task.as_str();
    let url = dispatches(task);

    let none = s.get(&url).await;
    assert_fdi_error(&none, 404, "FDI.3109", task);

    // Create: every field comes back.
    let t0 = now_ms();
    let start = 1_893_456_000_000_i64; // 2030-01-01T00:00:00Z
    let created = plan(
        &s,
        task,
        json!({"start_datetime": start, "use_quartz_cron": false, "period": "HOUR",
               "dispatch_interval": 3, "remark": "every three hours", "time_zone": "Asia/Shanghai",
               "misfire_policy": "DO_NOTHING"}),
    )
    .await;
    let t1 = now_ms();
    let dispatch_id = created["dispatch_id"]
        .as_str()
        .expect("dispatch_id")
        .to_string();
    assert!(!dispatch_id.is_empty());
    assert_eq!(created["task_id"], task);
    assert_eq!(created["start_datetime"], start);
    assert_eq!(created["period"], "HOUR");
    assert_eq!(created["dispatch_interval"], 3);
    assert_eq!(created["remark"], "every three hours");
    assert_eq!(created["use_quartz_cron"], false);
    assert_eq!(created["time_zone"], "Asia/Shanghai");
    assert_eq!(created["misfire_policy"], "DO_NOTHING");
    assert!(
        created.get("cron").is_none(),
        "absent cron omitted: {created}"
    );
    let created_date = created["created_date"].as_i64().expect("created_date");
    assert!((t0..=t1).contains(&created_date), "{created}");
    assert_eq!(created["last_modified_date"], created_date);
    let (st, got) = s.get(&url).await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got, created, "GET answers what POST created");

    // task-monitors carry the plan's timing.
    let (_, mons) = s.get("/task-monitors?limit=999").await;
    let mon = mons["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["task_id"] == task)
        .cloned()
        .unwrap_or_else(|| panic!("{mons}"));
    assert_eq!(mon["use_quartz_cron"], false, "{mon}");
    assert_eq!(mon["period"], "HOUR", "{mon}");
    assert_eq!(mon["dispatch_interval"], 3, "{mon}");

    // PUT, partial: only the remark changes.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (st, upd) = s
        .put(
            &format!("{url}/{dispatch_id}"),
            json!({"remark": "changed"}),
        )
        .await;
    assert_eq!(st, 200, "{upd}");
    assert_eq!(upd["remark"], "changed");
    let mut expect = created.clone();
    expect["remark"] = json!("changed");
    expect["last_modified_date"] = upd["last_modified_date"].clone();
    assert_eq!(upd, expect, "a partial update keeps the other fields");
    assert!(
        upd["last_modified_date"].as_i64().unwrap() > created_date,
        "{upd}"
    );
    assert_eq!(s.get(&url).await.1, upd);

    // PUT: switch to Quartz cron with an RFC 3339 start; period/interval go away, the rest stays.
    let (st, cron) = s
        .put(
            &format!("{url}/{dispatch_id}"),
            json!({"use_quartz_cron": true, "cron": "0 */5 * * * ?", "start_datetime": "2031-06-01T08:30:00.250Z"}),
        )
        .await;
    assert_eq!(st, 200, "{cron}");
    let rfc_ms = chrono::DateTime::parse_from_rfc3339("2031-06-01T08:30:00.250Z")
        .unwrap()
        .timestamp_millis();
    assert_eq!(cron["start_datetime"], rfc_ms, "{cron}");
    assert_eq!(cron["use_quartz_cron"], true);
    assert_eq!(cron["cron"], "0 */5 * * * ?");
    assert!(
        cron.get("period").is_none() && cron.get("dispatch_interval").is_none(),
        "{cron}"
    );
    assert_eq!(cron["remark"], "changed");
    assert_eq!(cron["time_zone"], "Asia/Shanghai");
    assert_eq!(cron["misfire_policy"], "DO_NOTHING");
    assert_eq!(cron["dispatch_id"], dispatch_id.as_str());
    assert_eq!(cron["created_date"], created_date);

    // An RFC 3339 start with an offset is the same instant.
    let (st, off) = s
        .put(
            &format!("{url}/{dispatch_id}"),
            json!({"start_datetime": "2031-06-01T16:30:00.250+08:00"}),
        )
        .await;
    assert_eq!(st, 200, "{off}");
    assert_eq!(off["start_datetime"], rfc_ms, "{off}");

    // A second POST updates the one plan of the task.
    let again = plan(
        &s,
        task,
        json!({"use_quartz_cron": false, "period": "DAY", "dispatch_interval": 1,
               "time_zone": "GMT+08:00", "misfire_policy": "FIRE_ONCE_NOW"}),
    )
    .await;
    assert_eq!(again["dispatch_id"], dispatch_id.as_str(), "{again}");
    assert_eq!(again["created_date"], created_date);
    assert_eq!(again["period"], "DAY");
    assert_eq!(again["dispatch_interval"], 1);
    assert_eq!(again["time_zone"], "GMT+08:00");
    assert_eq!(again["misfire_policy"], "FIRE_ONCE_NOW");
    assert!(again.get("cron").is_none(), "{again}");
    assert_eq!(again["start_datetime"], rfc_ms, "start kept: {again}");

    // Defaults: a new plan without start/zone/policy starts now, FIRE_ONCE_NOW, no zone.
    let t2 = fast_task(&s).await;
    let t_before = now_ms();
    let dflt = plan(
        &s,
        &t2.task,
        json!({"use_quartz_cron": true, "cron": "0 0 12 * * ?"}),
    )
    .await;
    let sd = dflt["start_datetime"].as_i64().expect("start_datetime");
    assert!(sd >= t_before && sd <= now_ms(), "{dflt}");
    assert_eq!(dflt["misfire_policy"], "FIRE_ONCE_NOW", "{dflt}");
    for absent in ["time_zone", "remark", "period", "dispatch_interval"] {
        assert!(dflt.get(absent).is_none(), "{absent} omitted: {dflt}");
    }
    assert_ne!(dflt["dispatch_id"], dispatch_id.as_str());

    // Boundaries that are accepted.
    for ok in [
        json!({"start_datetime": 946_684_800_000_i64}),
        json!({"start_datetime": 2_147_512_447_000_i64}),
        json!({"dispatch_interval": 59}),
        json!({"dispatch_interval": 1}),
        json!({"remark": "x".repeat(36)}),
        json!({"remark": "调度计划".repeat(9)}),
        json!({"period": "MIN"}),
        json!({"period": "WEEK"}),
        json!({"period": "MON"}),
    ] {
        let (st, b) = s.put(&format!("{url}/{dispatch_id}"), ok.clone()).await;
        assert_eq!(st, 200, "{ok} -> {b}");
    }
    let before = s.get(&url).await.1;

    // Errors: status, code and the field named; nothing changes.
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            json!({"use_quartz_cron": true, "cron": "0 61 * * * ?"}),
            400,
            "FDI.3002",
            "cron",
        ),
        (
            json!({"use_quartz_cron": true, "cron": "not a cron"}),
            400,
            "FDI.3002",
            "cron",
        ),
        // Quartz has a seconds field: a five-field Unix cron is refused.
        (
            json!({"use_quartz_cron": true, "cron": "*/5 * * * *"}),
            400,
            "FDI.3002",
            "cron",
        ),
        (json!({"use_quartz_cron": true}), 400, "FDI.3002", "cron"),
        (
            json!({"use_quartz_cron": false, "period": "YEAR"}),
            400,
            "FDI.3002",
            "period",
        ),
        (
            json!({"dispatch_interval": 0}),
            400,
            "FDI.3067",
            "dispatch_interval",
        ),
        (
            json!({"dispatch_interval": 60}),
            400,
            "FDI.3067",
            "dispatch_interval",
        ),
        (
            json!({"start_datetime": 946_684_799_999_i64}),
            400,
            "FDI.3002",
            "start_datetime",
        ),
        (
            json!({"start_datetime": 2_147_512_447_001_i64}),
            400,
            "FDI.3002",
            "start_datetime",
        ),
        (
            json!({"start_datetime": "yesterday"}),
            400,
            "FDI.3002",
            "start_datetime",
        ),
        (json!({"remark": "y".repeat(37)}), 400, "FDI.3002", "remark"),
        (json!({"bogus_field": 1}), 400, "FDI.3002", "bogus_field"),
        (
            json!({"time_zone": "Mars/Olympus"}),
            400,
            "FDI.3002",
            "Mars/Olympus",
        ),
        (
            json!({"misfire_policy": "SOMETIMES"}),
            400,
            "FDI.3002",
            "misfire_policy",
        ),
    ];
    for (body, status, code, field) in &cases {
        let got = s.post(&url, body.clone()).await;
        assert_fdi_error(&got, *status, code, field);
        let got = s.put(&format!("{url}/{dispatch_id}"), body.clone()).await;
        assert_fdi_error(&got, *status, code, field);
    }
    assert_eq!(
        s.get(&url).await.1,
        before,
        "refused updates change nothing"
    );

    // Errors on a task's first plan store nothing.
    let t3 = fast_task(&s).await;
    let bad = s
        .post(
            &dispatches(&t3.task),
            json!({"use_quartz_cron": true, "cron": "0 61 * * * ?"}),
        )
        .await;
    assert_fdi_error(&bad, 400, "FDI.3002", "cron");
    assert_fdi_error(&s.get(&dispatches(&t3.task)).await, 404, "FDI.3109", "");

    // Unknown dispatch id / task; a REALTIME task.
    let got = s
        .put(
            &format!("{}/{}", dispatches(&t2.task), dispatch_id),
            json!({"remark": "x"}),
        )
        .await;
    assert_fdi_error(&got, 404, "FDI.3109", &dispatch_id);
    assert_eq!(
        s.get(&url).await.1,
        before,
        "another task's path changes nothing"
    );
    let got = s
        .put(&format!("{url}/no-such-dispatch"), json!({"remark": "x"}))
        .await;
    assert_fdi_error(&got, 404, "FDI.3109", "no-such-dispatch");
    let got = s
        .post(
            &dispatches("no-such-task"),
            json!({"period": "DAY", "dispatch_interval": 1}),
        )
        .await;
    assert_fdi_error(&got, 404, "FDI.3081", "no-such-task");
    assert_fdi_error(
        &s.get(&dispatches("no-such-task")).await,
        404,
        "FDI.3081",
        "",
    );
    let (a_ds, b_ds) = t_datasources(&s, task).await;
    let rt = s
        .create_task_of_type(
            "REALTIME",
            &a_ds,
            &b_ds,
            json!({"sourceSelectedDatasource": {"sourceTable": "items"},
                   "targetSelectedDatasource": {"targetTable": "items_copy"}}),
        )
        .await;
    let got = s
        .post(
            &dispatches(&rt),
            json!({"period": "DAY", "dispatch_interval": 1}),
        )
        .await;
    assert_fdi_error(&got, 400, "FDI.3144", &rt);
}

/// The source and target datasource ids of a task.
async fn t_datasources(s: &TestServer, task: &str) -> (String, String) {
    let (st, t) = s.get(&format!("/tasks/{task}")).await;
    assert_eq!(st, 200, "{t}");
    let src = t["task"]["source_datasource_id"]
        .as_str()
        .or_else(|| t["task"]["source_data_source_id"].as_str())
        .unwrap_or_else(|| panic!("{t}"))
        .to_string();
    let dst = t["task"]["target_datasource_id"]
        .as_str()
        .or_else(|| t["task"]["target_data_source_id"].as_str())
        .unwrap_or_else(|| panic!("{t}"))
        .to_string();
    (src, dst)
}

// ---- 2. batch start / stop -----------------------------------------------------------------------

#[tokio::test]
async fn batch_start_stop_reports_each_task_and_sets_status() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let planned = fast_task(&s).await;
    let planned2 = fast_task(&s).await;
    let unplanned = fast_task(&s).await;
    // Far-future fires: nothing runs during this test.
    for t in [&planned, &planned2] {
        plan(
            &s,
            &t.task,
            json!({"use_quartz_cron": true, "cron": "0 0 0 1 1 ? 2099"}),
        )
        .await;
    }
    let (a_ds, b_ds) = t_datasources(&s, &planned.task).await;
    let rt_plain = s
        .create_task_of_type(
            "REALTIME",
            &a_ds,
            &b_ds,
            json!({"sourceSelectedDatasource": {"sourceTable": "items"},
                   "targetSelectedDatasource": {"targetTable": "items_copy"}}),
        )
        .await;

    // Request errors.
    let url = "/batch-operation/tasks";
    let list = json!([{ "task_id": planned.task }]);
    for bad in [
        json!({"list": list}),
        json!({"action_id": "restart", "list": list}),
        json!({"action_id": "", "list": list}),
        json!({"action_id": 1, "list": list}),
    ] {
        assert_fdi_error(&s.post(url, bad).await, 400, "FDI.3161", "action_id");
    }
    for bad in [
        json!({"action_id": "start"}),
        json!({"action_id": "start", "list": []}),
        json!({"action_id": "stop", "list": null}),
    ] {
        assert_fdi_error(&s.post(url, bad).await, 400, "FDI.3150", "");
    }
    for bad in [
        json!({"action_id": "start", "list": [{"task_id": planned.task}, {}]}),
        json!({"action_id": "start", "list": [{"task_id": ""}]}),
        json!({"action_id": "start", "list": [{"name": "x"}]}),
    ] {
        assert_fdi_error(&s.post(url, bad).await, 400, "FDI.3022", "task_id");
    }
    // A refused request starts nothing.
    assert_eq!(statuses(&s, &planned.task).await, (0, 0));

    // A mix: two successes, three failures with their own codes.
    let res = batch(
        &s,
        "start",
        &[
            &planned.task,
            &unplanned.task,
            "no-such-task",
            &rt_plain,
            &planned2.task,
        ],
    )
    .await;
    assert_eq!(res["success_count"], 2, "{res}");
    assert_eq!(res["failure_count"], 3, "{res}");
    let ok: Vec<&str> = res["success"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ok.len(), 2, "{res}");
    assert!(
        ok.contains(&planned.task.as_str()) && ok.contains(&planned2.task.as_str()),
        "{res}"
    );
    for item in res["success"].as_array().unwrap() {
        assert!(
            item["task_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("task_")),
            "task_name in {item}"
        );
        assert!(item.get("error_code").is_none(), "{item}");
    }
    let failure = |id: &str| -> Value {
        res["failure"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["task_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in failures: {res}"))
    };
    let f = failure(&unplanned.task);
    assert_eq!(f["error_code"], "FDI.3083", "{f}");
    assert!(
        f["task_name"]
            .as_str()
            .is_some_and(|n| n.starts_with("task_")),
        "{f}"
    );
    assert!(
        f["error_msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{f}"
    );
    let f = failure("no-such-task");
    assert_eq!(f["error_code"], "FDI.3021", "{f}");
    let f = failure(&rt_plain);
    assert_eq!(f["error_code"], "FDI.3059", "{f}");
    assert!(
        f["error_msg"]
            .as_str()
            .is_some_and(|m| m.contains("need_inc_migration")),
        "{f}"
    );

    assert_eq!(statuses(&s, &planned.task).await, (1, 1));
    assert_eq!(statuses(&s, &planned2.task).await, (1, 1));
    assert_eq!(statuses(&s, &unplanned.task).await, (0, 0));
    assert_eq!(statuses(&s, &rt_plain).await, (0, 0));
    let (_, got) = s.get(&format!("/tasks/{}", planned.task)).await;
    assert_eq!(got["task"]["status"], "running", "{got}");
    let (_, list) = s.get("/tasks?status=1&limit=100").await;
    let ids: Vec<&str> = list["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "status=1 filter: {list}");

    // Starting again is idempotent; stop one.
    let res = batch(&s, "start", &[&planned.task]).await;
    assert_eq!(res["success_count"], 1, "{res}");
    let res = batch(&s, "stop", &[&planned.task, "no-such-task"]).await;
    assert_eq!(res["success_count"], 1, "{res}");
    assert_eq!(res["failure_count"], 1, "{res}");
    assert_eq!(res["failure"][0]["error_code"], "FDI.3021", "{res}");
    assert_eq!(statuses(&s, &planned.task).await, (0, 0));
    assert_eq!(statuses(&s, &planned2.task).await, (1, 1));
    let (_, got) = s.get(&format!("/tasks/{}", planned.task)).await;
    assert_eq!(got["task"]["status"], "stop", "{got}");
    // Stopping needs no plan (nothing to refuse).
    let res = batch(&s, "stop", &[&unplanned.task, &planned2.task]).await;
    assert_eq!(res["success_count"], 2, "{res}");
    assert_eq!(statuses(&s, &planned2.task).await, (0, 0));
    // Nothing fired.
    for t in [&planned, &planned2, &unplanned] {
        assert!(s.runs(&t.task).await.is_empty());
    }
}

// ---- 3. cron fires -------------------------------------------------------------------------------

#[tokio::test]
async fn cron_plan_fires_on_its_grid_and_stops() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let t = fast_task(&s).await;
    plan(
        &s,
        &t.task,
        json!({"use_quartz_cron": true, "cron": "*/2 * * * * ?"}),
    )
    .await;
    // Created but not started: no fire.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        s.runs(&t.task).await.is_empty(),
        "a plan fires only once started"
    );

    let t_start = now_ms();
    let res = batch(&s, "start", &[&t.task]).await;
    assert_eq!(res["success_count"], 1, "{res}");
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let res = batch(&s, "stop", &[&t.task]).await;
    assert_eq!(res["success_count"], 1, "{res}");
    let t_stop = now_ms();
    wait_stopped(&s, &t.task, Duration::from_secs(10)).await;
    let runs = settle(&s, &t.task, Duration::from_secs(10)).await;

    assert!(
        (3..=4).contains(&runs.len()),
        "7 s of */2: 3-4 runs, got {}: {runs:#?}",
        runs.len()
    );
    let mut times: Vec<i64> = runs.iter().map(dispatch_time).collect();
    for r in &runs {
        assert_eq!(exec(r), "SUCCESS", "{r}");
        assert_eq!(r["data_count"], FAST_ROWS, "{r}");
        let d = dispatch_time(r);
        assert_eq!(d % 2000, 0, "dispatch_time on the grid: {r}");
        assert!(
            d > t_start && d <= t_stop,
            "{d} within [{t_start}, {t_stop}]"
        );
        let lag = start_time(r) - d;
        assert!((0..1000).contains(&lag), "start lag {lag} ms: {r}");
        assert!(steps(r).contains(&900) && steps(r).contains(&901), "{r}");
    }
    times.sort();
    times.dedup();
    assert_eq!(times.len(), runs.len(), "distinct dispatch times");
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 2000),
        "one run per tick: {times:?}"
    );
    let n = runs.len() as i64;
    assert_eq!(
        fast_target(&t).await,
        (n * FAST_ROWS, n * FAST_SUM, FAST_ROWS),
        "every SUCCESS run wrote the whole source once"
    );
    assert_eq!(statuses(&s, &t.task).await, (0, 0));

    // Stopped: no new runs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        s.runs(&t.task).await.len(),
        runs.len(),
        "no fire after stop"
    );
    assert_eq!(fast_target(&t).await.0, n * FAST_ROWS);
}

#[tokio::test]
async fn plans_do_not_fire_before_their_start_datetime() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let cron = fast_task(&s).await;
    let every = fast_task(&s).await;
    let t0 = now_ms();
    // A */1 cron that starts in 3 s, and an every-minute plan whose first fire is its start.
    let cron_start = t0 + 3000;
    let every_start = t0 + 2345;
    plan(
        &s,
        &cron.task,
        json!({"use_quartz_cron": true, "cron": "*/1 * * * * ?", "start_datetime": cron_start}),
    )
    .await;
    let p = plan(
        &s,
        &every.task,
        json!({"use_quartz_cron": false, "period": "MIN", "dispatch_interval": 1, "start_datetime": every_start}),
    )
    .await;
    assert_eq!(p["start_datetime"], every_start);
    batch(&s, "start", &[&cron.task, &every.task]).await;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    batch(&s, "stop", &[&cron.task, &every.task]).await;
    let t_stop = now_ms();

    let runs = settle(&s, &cron.task, Duration::from_secs(5)).await;
    let mut times: Vec<i64> = runs.iter().map(dispatch_time).collect();
    times.sort();
    assert!(
        (2..=4).contains(&times.len()),
        "fires from {cron_start} to {t_stop}: {times:?}"
    );
    assert_eq!(
        times[0],
        (cron_start + 999) / 1000 * 1000,
        "first fire: the first tick at or after the start"
    );
    assert!(times.windows(2).all(|w| w[1] - w[0] == 1000), "{times:?}");

    let runs = settle(&s, &every.task, Duration::from_secs(5)).await;
    assert_eq!(runs.len(), 1, "one fire in the first minute: {runs:#?}");
    assert_eq!(dispatch_time(&runs[0]), every_start, "{:?}", runs[0]);
    assert!(start_time(&runs[0]) - every_start < 1000, "{:?}", runs[0]);
    assert_eq!(exec(&runs[0]), "SUCCESS");
    assert_eq!(fast_target(&every).await.0, FAST_ROWS);
}

/// Quartz's `start/step` form (`0/2` = from second 0 every 2 s; `0 0/5 * * * ?` = every five
/// minutes, the most common Quartz example) is standard Quartz syntax.
#[tokio::test]
async fn quartz_start_step_syntax_is_accepted_and_fires() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let t = fast_task(&s).await;
    for cron in [
        "0 0/5 * * * ?",
        "0 15/30 8-18 ? * MON-FRI",
        "0/10 * * * * ?",
    ] {
        let (st, body) = s
            .post(
                &dispatches(&t.task),
                json!({"use_quartz_cron": true, "cron": cron}),
            )
            .await;
        assert_eq!(st, 200, "{cron}: {body}");
        assert_eq!(body["cron"], cron);
    }
    // "1/2": odd seconds.
    plan(
        &s,
        &t.task,
        json!({"use_quartz_cron": true, "cron": "1/2 * * * * ?"}),
    )
    .await;
    batch(&s, "start", &[&t.task]).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    batch(&s, "stop", &[&t.task]).await;
    let runs = settle(&s, &t.task, Duration::from_secs(5)).await;
    assert!((2..=3).contains(&runs.len()), "{runs:#?}");
    for r in &runs {
        assert_eq!(dispatch_time(r) % 2000, 1000, "odd seconds: {r}");
        assert_eq!(exec(r), "SUCCESS");
    }
}

/// A client that sees its run ended (monitor log SUCCESS) may start the next run at once.
#[tokio::test]
async fn a_run_can_start_as_soon_as_the_previous_one_shows_ended() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let t = fast_task(&s).await;
    let mut refused = Vec::new();
    for i in 0..30 {
        let before = s.runs(&t.task).await.len();
        let (st, body) = s.post(&format!("/tasks/{}/run", t.task), json!({})).await;
        if st != 200 {
            refused.push((i, body));
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        // Poll tightly, as a client waiting for the end would.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let runs = s.runs(&t.task).await;
            if runs.len() > before && ended(&runs[0]) {
                assert_eq!(exec(&runs[0]), "SUCCESS", "{:?}", runs[0]);
                // ...and the task no longer shows as running.
                let (_, got) = s.get(&format!("/tasks/{}", t.task)).await;
                if got["task"]["status"] != "stop" {
                    refused.push((i, got["task"].clone()));
                }
                break;
            }
            assert!(Instant::now() < deadline);
        }
    }
    assert!(refused.is_empty(), "{} of 30: {refused:#?}", refused.len());
}

/// Deleting a task with a started plan stops its fires and forgets the plan.
#[tokio::test]
async fn deleting_a_started_task_stops_its_plan() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let t = fast_task(&s).await;
    plan(
        &s,
        &t.task,
        json!({"use_quartz_cron": true, "cron": "*/1 * * * * ?"}),
    )
    .await;
    batch(&s, "start", &[&t.task]).await;
    let (sr, task) = (&s, t.task.as_str());
    wait_for("two runs", Duration::from_secs(5), move || async move {
        let runs = sr.runs(task).await;
        (runs.iter().filter(|r| exec(r) == "SUCCESS").count() >= 2).then_some(())
    })
    .await;
    // A run may be in progress (FDI.3139): retry until the delete goes through.
    wait_for("the delete", Duration::from_secs(5), move || async move {
        let (st, body) = sr.delete(&format!("/tasks/{task}")).await;
        assert!(st == 204 || st == 400, "{st} {body}");
        (st == 204).then_some(())
    })
    .await;
    let rows = fast_target(&t).await.0;
    assert_fdi_error(&s.get(&dispatches(&t.task)).await, 404, "FDI.3081", "");
    let res = batch(&s, "start", &[&t.task]).await;
    assert_eq!(res["failure"][0]["error_code"], "FDI.3021", "{res}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(fast_target(&t).await.0, rows, "no run after the delete");
    assert!(
        !s.log().contains("plan fire failed"),
        "no failed fires for the deleted task:\n{}",
        s.log()
    );
}

// ---- 4. overlapping fires --------------------------------------------------------------------------

#[tokio::test]
async fn fires_while_a_run_is_active_are_rejected_with_914() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let t = slow_task(&s, 300, 0.05).await; // ~15 s
    plan(
        &s,
        &t.task,
        json!({"use_quartz_cron": true, "cron": "*/1 * * * * ?"}),
    )
    .await;
    batch(&s, "start", &[&t.task]).await;
    let first = s.wait_running(&t.task, Duration::from_secs(5)).await;
    let first_id = first["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(4200)).await;
    batch(&s, "stop", &[&t.task]).await;

    let runs = s.runs(&t.task).await;
    let active: Vec<&Value> = runs.iter().filter(|r| !rejected(r)).collect();
    assert_eq!(active.len(), 1, "one executed run at a time: {runs:#?}");
    assert_eq!(active[0]["id"], first_id.as_str());
    assert_eq!(exec(active[0]), "RUNNING", "{:?}", active[0]);
    let rej: Vec<&Value> = runs.iter().filter(|r| rejected(r)).collect();
    assert!(
        (3..=6).contains(&rej.len()),
        "~4 fires rejected while the first run is active: {runs:#?}"
    );
    let mut times: Vec<i64> = runs.iter().map(dispatch_time).collect();
    times.sort();
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 1000),
        "every tick recorded once: {times:?}"
    );
    for r in &rej {
        let codes = steps(r);
        assert!(codes.contains(&907) && codes.contains(&914), "{r}");
        let remarks = r["remarks"].as_str().unwrap_or("");
        assert!(
            remarks.contains("not ended") && remarks.contains(&first_id),
            "remarks name the active run: {r}"
        );
        assert!(dispatch_time(r) > dispatch_time(active[0]), "{r}");
        assert!(r["end_time"].is_i64(), "a rejected fire is ended: {r}");
        assert_eq!(r["data_count"], 0);
    }

    // Stopped, but a run is in progress: the task still shows as running.
    assert_eq!(statuses(&s, &t.task).await, (1, 1));

    // Stopped plan + terminate: the active run ends CANCELLED, nothing committed, nothing new.
    let (st, body) = s
        .post(&format!("/tasks/{}/terminate", t.task), json!({}))
        .await;
    assert_eq!(st, 200, "{body}");
    let runs = settle(&s, &t.task, Duration::from_secs(5)).await;
    let first = runs.iter().find(|r| r["id"] == first_id.as_str()).unwrap();
    assert_eq!(exec(first), "CANCELLED", "{first}");
    assert!(!rejected(first), "terminated, not rejected: {first}");
    assert_eq!(t.target_rows().await, 0, "a cancelled run commits nothing");
    wait_stopped(&s, &t.task, Duration::from_secs(2)).await;
    let n = runs.len();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(s.runs(&t.task).await.len(), n, "no fire after stop");
    t.drop_all().await;
}

// ---- 5. misfire across a restart ---------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Downtime {
    /// The process has exited.
    exit: i64,
    /// The new process is being started.
    spawn: i64,
    /// The new process answers HTTP.
    ready: i64,
    runs_before: usize,
}

/// Start a `*/2` plan with `policy`, let it run once, stop the server for ~7 s, restart it.
async fn plan_across_downtime(policy: Option<&str>) -> (TestServer, FastTask, Downtime) {
    let mut s = TestServer::start(StoreKind::under_test()).await;
    let t = fast_task(&s).await;
    let mut body = json!({"use_quartz_cron": true, "cron": "*/2 * * * * ?"});
    if let Some(p) = policy {
        body["misfire_policy"] = json!(p);
    }
    let p = plan(&s, &t.task, body).await;
    assert_eq!(
        p["misfire_policy"],
        policy.unwrap_or("FIRE_ONCE_NOW"),
        "{p}"
    );
    batch(&s, "start", &[&t.task]).await;
    let (sr, task) = (&s, t.task.as_str());
    wait_for("a first run", Duration::from_secs(5), move || async move {
        let runs = sr.runs(task).await;
        runs.iter().any(|r| exec(r) == "SUCCESS").then_some(())
    })
    .await;
    let status = s.terminate();
    assert!(status.success() || status.code().is_none(), "{status:?}");
    let exit = now_ms();
    tokio::time::sleep(Duration::from_millis(7000)).await;
    let spawn = now_ms();
    s.spawn().await;
    let ready = now_ms();
    let runs_before = s
        .runs(&t.task)
        .await
        .iter()
        .filter(|r| dispatch_time(r) < exit)
        .count();
    let missed = (exit / 2000 + 1..=spawn / 2000).count();
    assert!(
        missed >= 3,
        "the downtime spans several fire times ({missed})"
    );
    (
        s,
        t,
        Downtime {
            exit,
            spawn,
            ready,
            runs_before,
        },
    )
}

#[tokio::test]
async fn misfire_fire_once_now_fires_once_for_the_downtime() {
    let (s, t, d) = plan_across_downtime(None).await;
    let (sr, task) = (&s, t.task.as_str());
    let in_window = move |r: &Value| (d.exit..=d.ready).contains(&dispatch_time(r));
    let catch_up = wait_for(
        "the catch-up fire",
        Duration::from_secs(3),
        move || async move {
            let runs = sr.runs(task).await;
            runs.iter()
                .find(|r| (d.exit..=d.ready).contains(&dispatch_time(r)))
                .cloned()
        },
    )
    .await;
    assert!(
        now_ms() - d.ready <= 3000,
        "catch-up within 3 s of the restart"
    );
    // Then the regular cadence.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let runs = settle(&s, &t.task, Duration::from_secs(5)).await;
    let caught: Vec<&Value> = runs.iter().filter(|r| in_window(r)).collect();
    assert_eq!(
        caught.len(),
        1,
        "exactly one run for the missed window [{}, {}]: {runs:#?}",
        d.exit,
        d.ready
    );
    let c = caught[0];
    assert_eq!(c["id"], catch_up["id"]);
    assert_eq!(exec(c), "SUCCESS", "{c}");
    assert_eq!(dispatch_time(c) % 2000, 0, "the last missed instant: {c}");
    assert!(
        start_time(c) - dispatch_time(c) < 2500,
        "dispatch_time is the last missed instant, not the first: {c}"
    );
    let after: Vec<i64> = runs
        .iter()
        .map(dispatch_time)
        .filter(|x| *x > d.ready)
        .collect();
    assert!(
        (1..=3).contains(&after.len()),
        "cadence resumes after the catch-up: {after:?}"
    );
    for x in &after {
        assert_eq!(x % 2000, 0);
        assert!(*x > dispatch_time(c));
    }
    assert_eq!(
        runs.len(),
        d.runs_before + 1 + after.len(),
        "no other runs: {runs:#?}"
    );
    let n = runs.iter().filter(|r| exec(r) == "SUCCESS").count() as i64;
    assert_eq!(fast_target(&t).await.0, n * FAST_ROWS);
    let _ = d.spawn;
}

#[tokio::test]
async fn misfire_do_nothing_skips_the_downtime() {
    let (s, t, d) = plan_across_downtime(Some("DO_NOTHING")).await;
    let (sr, task) = (&s, t.task.as_str());
    let first_after = wait_for(
        "the next regular fire",
        Duration::from_secs(4),
        move || async move {
            let runs = sr.runs(task).await;
            runs.iter()
                .find(|r| dispatch_time(r) >= d.exit && ended(r))
                .cloned()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let runs = settle(&s, &t.task, Duration::from_secs(5)).await;
    let skipped: Vec<&Value> = runs
        .iter()
        .filter(|r| (d.exit..=d.spawn).contains(&dispatch_time(r)))
        .collect();
    assert!(
        skipped.is_empty(),
        "no run for the missed window: {skipped:#?}"
    );
    let fd = dispatch_time(&first_after);
    assert!(fd > d.spawn && fd % 2000 == 0, "{first_after}");
    assert!(
        fd <= d.ready + 2000,
        "next tick after the restart: {first_after}"
    );
    assert!(start_time(&first_after) - fd < 1000, "{first_after}");
    let after = runs.iter().filter(|r| dispatch_time(r) > d.spawn).count();
    assert!((2..=4).contains(&after), "cadence resumed: {runs:#?}");
    assert_eq!(runs.len(), d.runs_before + after, "{runs:#?}");
}

// ---- 6. several nodes ---------------------------------------------------------------------------------

const LEASE: &[(&str, &str)] = &[("FDI_LEASE_MS", "2000")];

/// Lines of the node's log that mention `needle` and the task.
fn log_lines(s: &TestServer, needle: &str, task: &str) -> usize {
    s.log()
        .lines()
        .filter(|l| l.contains(needle) && l.contains(task))
        .count()
}

#[tokio::test]
async fn two_nodes_execute_each_fire_once() {
    let a = TestServer::start_with_env(StoreKind::Postgres, LEASE).await;
    let b = a.join().await;
    let t = fast_task(&a).await;
    plan(
        &a,
        &t.task,
        json!({"use_quartz_cron": true, "cron": "*/1 * * * * ?"}),
    )
    .await;
    let t_start = now_ms();
    batch(&a, "start", &[&t.task]).await;
    // Both nodes see the same state.
    assert_eq!(statuses(&b, &t.task).await, (1, 1));
    tokio::time::sleep(Duration::from_millis(8000)).await;
    // Stopped through the other node.
    batch(&b, "stop", &[&t.task]).await;
    let t_stop = now_ms();
    wait_stopped(&a, &t.task, Duration::from_secs(10)).await;
    let runs = settle(&b, &t.task, Duration::from_secs(10)).await;
    assert_eq!(a.runs(&t.task).await.len(), runs.len(), "one monitor log");

    let mut times: Vec<i64> = runs.iter().map(dispatch_time).collect();
    times.sort();
    let mut distinct = times.clone();
    distinct.dedup();
    assert_eq!(distinct, times, "a dispatch_time in two runs: {runs:#?}");
    assert!(
        (7..=10).contains(&times.len()),
        "8 s of */1: {} runs {runs:#?}",
        times.len()
    );
    for x in &times {
        assert_eq!(x % 1000, 0);
        assert!(*x > t_start && *x <= t_stop, "{x}");
    }
    assert!(
        times.windows(2).all(|w| w[1] - w[0] == 1000),
        "every tick fired: {times:?}"
    );
    let executed = runs.iter().filter(|r| !rejected(r)).count();
    for r in runs.iter().filter(|r| !rejected(r)) {
        assert_eq!(exec(r), "SUCCESS", "{r}");
    }
    // Each executed fire was launched by exactly one node.
    let (fa, fb) = (
        log_lines(&a, "plan fired", &t.task),
        log_lines(&b, "plan fired", &t.task),
    );
    eprintln!("fires: node A {fa}, node B {fb}, runs {}", runs.len());
    assert_eq!(fa + fb, executed, "fires launched across nodes");
    assert_eq!(
        fast_target(&t).await.0,
        executed as i64 * FAST_ROWS,
        "every executed fire wrote once"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        a.runs(&t.task).await.len(),
        runs.len(),
        "no fire after stop"
    );
}

#[tokio::test]
async fn terminate_and_run_conflicts_work_across_nodes() {
    let a = TestServer::start_with_env(StoreKind::Postgres, LEASE).await;
    let b = a.join().await;
    let t = slow_task(&a, 400, 0.05).await; // ~20 s
    let (st, body) = a.post(&format!("/tasks/{}/run", t.task), json!({})).await;
    assert_eq!(st, 200, "{body}");
    let tracking = body["tracking_id"]
        .as_str()
        .expect("tracking_id")
        .to_string();
    let run = b.wait_running(&t.task, Duration::from_secs(10)).await;
    assert_eq!(run["id"], tracking.as_str(), "node B sees node A's run");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // (c) a second run through either node is refused.
    let again = b.post(&format!("/tasks/{}/run", t.task), json!({})).await;
    assert_fdi_error(&again, 400, "FDI.3139", &t.task);
    let again = a.post(&format!("/tasks/{}/run", t.task), json!({})).await;
    assert_fdi_error(&again, 400, "FDI.3139", &t.task);
    // Deleting the task through B is refused too.
    let del = b.delete(&format!("/tasks/{}", t.task)).await;
    assert_fdi_error(&del, 400, "FDI.3139", "");
    let (_, tk) = b.get(&format!("/tasks/{}", t.task)).await;
    assert_eq!(tk["task"]["status"], "running", "{tk}");

    // (b) terminate through B: node A cancels within ~3 s.
    let t0 = Instant::now();
    let (st, body) = b
        .post(&format!("/tasks/{}/terminate", t.task), json!({}))
        .await;
    assert_eq!(st, 200, "{body}");
    let run = b.wait_run_end(&t.task, 1, Duration::from_secs(10)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "cancelled in {took:?}");
    assert_eq!(run["id"], tracking.as_str());
    assert_eq!(exec(&run), "CANCELLED", "{run}");
    assert!(steps(&run).contains(&16), "force-cancel step: {run}");
    assert_eq!(t.target_rows().await, 0, "nothing committed");
    let r = b
        .post(&format!("/tasks/{}/terminate", t.task), json!({}))
        .await;
    assert_fdi_error(&r, 400, "FDI.3027", "");

    // A new run through B runs (and can be terminated through A).
    t.set_delay(0.0).await;
    let run = b.run_to_end(&t.task).await;
    assert_eq!(exec(&run), "SUCCESS", "{run}");
    assert_eq!(run["data_count"], t.rows);
    assert_eq!(t.target_rows().await, t.rows);
    t.drop_all().await;
}

#[tokio::test]
async fn killed_node_run_is_ended_915_by_another_node() {
    let mut a = TestServer::start_with_env(StoreKind::Postgres, LEASE).await;
    let b = a.join().await;
    let t = slow_task(&a, 400, 0.05).await;
    let (st, body) = a.post(&format!("/tasks/{}/run", t.task), json!({})).await;
    assert_eq!(st, 200, "{body}");
    let tracking = body["tracking_id"].as_str().unwrap().to_string();
    b.wait_running(&t.task, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let again = b.post(&format!("/tasks/{}/run", t.task), json!({})).await;
    assert_fdi_error(&again, 400, "FDI.3139", "");

    a.kill9();
    let t0 = Instant::now();
    let (br, task) = (&b, t.task.as_str());
    let run = wait_for(
        "node B to end the dead node's run",
        Duration::from_secs(10),
        move || async move {
            let runs = br.runs(task).await;
            runs.first().filter(|r| ended(r)).cloned()
        },
    )
    .await;
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(2000 + 3000),
        "ended {took:?} after the kill (lease 2 s)"
    );
    assert!(
        took > Duration::from_millis(1000),
        "ended {took:?} after the kill: before the lease ran out"
    );
    assert_eq!(run["id"], tracking.as_str());
    assert_eq!(exec(&run), "ERROR", "{run}");
    assert_eq!(run["status"], 915, "{run}");
    assert!(steps(&run).contains(&915), "{run}");

    // The task is free again: a run through B succeeds, and the killed run committed nothing.
    t.set_delay(0.0).await;
    let run = b.run_to_end(&t.task).await;
    assert_eq!(exec(&run), "SUCCESS", "{run}");
    assert_eq!(run["data_count"], t.rows);
    assert_eq!(t.target_rows().await, t.rows);
    let runs = b.runs(&t.task).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    t.drop_all().await;
}

// ---- 7. incremental and realtime ---------------------------------------------------------------------

struct IncTables {
    src: String,
    dst: String,
    /// `timeZone` of the task: the zone of the source's wall-clock timestamps.
    zone: &'static str,
    /// SQL for "now" in the cursor column's type.
    now_sql: String,
}

/// Source and target with an `updated_at` cursor of `col_type` (`timestamp` holds wall-clock
/// time in `zone`; `timestamptz` is absolute).
async fn inc_tables(col_type: &str, zone: &'static str) -> IncTables {
    let src = unique("inc_src");
    let dst = unique("inc_dst");
    pg_exec(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, amount numeric(12,2), updated_at {col_type});
         CREATE TABLE {dst} (id bigint PRIMARY KEY, amount numeric(12,2), updated_at {col_type});"
    ))
    .await;
    let now_sql = if col_type == "timestamptz" {
        "now()".to_string()
    } else {
        format!("(now() AT TIME ZONE '{zone}')")
    };
    IncTables {
        src,
        dst,
        zone,
        now_sql,
    }
}

impl IncTables {
    /// Insert ids `from..=to` stamped now.
    async fn insert(&self, from: i64, to: i64) {
        pg_exec(&format!(
            "INSERT INTO {} SELECT g, g * 1.5, {} FROM generate_series({from}, {to}) g",
            self.src, self.now_sql
        ))
        .await;
    }

    async fn stats(table: &str, filter: &str) -> (i64, String, i64) {
        let pool = pg().await;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT count(*)::bigint, coalesce(sum(amount), 0)::text, count(DISTINCT id)::bigint FROM {table} {filter}"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }

    async fn drop_all(&self) {
        pg_exec(&format!("DROP TABLE {}, {}", self.src, self.dst)).await;
    }

    fn detail(&self, data_timestamp: i64) -> Value {
        json!({
            "sourceSelectedDatasource": {"sourceTable": self.src, "need_inc_migration": true,
                "sourceDateColumn": "updated_at", "dataTimestamp": data_timestamp,
                "compensation_time": 0, "timeZone": self.zone},
            "targetSelectedDatasource": {"targetTable": self.dst, "supportPartUpdate": true},
            "mappingTable": [{"sourceColumn": "id", "targetColumn": "id"},
                             {"sourceColumn": "amount", "targetColumn": "amount"},
                             {"sourceColumn": "updated_at", "targetColumn": "updated_at"}]
        })
    }
}

#[tokio::test]
async fn incremental_runs_copy_only_their_window() {
    incremental_flow("timestamp", "UTC").await;
}

/// Wall-clock timestamps in a zone ahead of UTC: read in the task's `timeZone`, not as UTC
/// (as UTC they would lie 8 hours in the future and no window would reach them).
#[tokio::test]
async fn incremental_windows_read_wall_clock_in_the_task_zone() {
    incremental_flow("timestamp", "Asia/Shanghai").await;
}

#[tokio::test]
async fn incremental_windows_on_a_timestamptz_cursor() {
    incremental_flow("timestamptz", "America/New_York").await;
}

/// The watermark moves only when a run has committed: a failed run is retried from the same
/// point; `reset_incr_begin_time` moves it back to `dataTimestamp`.
#[tokio::test]
async fn incremental_failed_run_is_retried_and_reset_rereads() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let tb = inc_tables("timestamp", "UTC").await;
    tb.insert(1, 100).await;
    // A target constraint the window's rows break: the run fails.
    pg_exec(&format!(
        "ALTER TABLE {} ADD CONSTRAINT no_big CHECK (amount < 140)",
        tb.dst
    ))
    .await;
    let a = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let b = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let mut detail = tb.detail(now_ms() - 3600 * 1000);
    detail["targetSelectedDatasource"]["supportPartUpdate"] = json!(false);
    let task = s.create_task(&a, &b, detail.clone()).await;

    let run = s.run_to_end(&task).await;
    assert_eq!(exec(&run), "ERROR", "check constraint: {run}");
    assert_eq!(pg_count(&tb.dst).await, 0, "nothing committed");
    assert_eq!(
        run["data_count"], 0,
        "a rolled-back run reports 0 rows: {run}"
    );
    assert!(
        run["remarks"]
            .as_str()
            .is_some_and(|r| r.contains("rows read") && r.contains("nothing committed")),
        "{run}"
    );
    pg_exec(&format!("ALTER TABLE {} DROP CONSTRAINT no_big", tb.dst)).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(exec(&run), "SUCCESS", "{run}");
    assert_eq!(
        run["data_count"], 100,
        "the failed window is read again: {run}"
    );
    let run = s.run_to_end(&task).await;
    assert_eq!(run["data_count"], 0, "then the watermark moved: {run}");

    // Reset: the next run starts from dataTimestamp again.
    let mut reset = detail.clone();
    reset["sourceSelectedDatasource"]["reset_incr_begin_time"] = json!(true);
    let (st, body) = s
        .put(
            &format!("/tasks/{task}"),
            task_body(&unique("task"), &a, &b, &reset),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    pg_exec(&format!("DELETE FROM {}", tb.dst)).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(exec(&run), "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 100, "re-read from dataTimestamp: {run}");
    assert_eq!(
        IncTables::stats(&tb.dst, "").await,
        IncTables::stats(&tb.src, "").await
    );
    tb.drop_all().await;
}

/// Updates reach the target by default: a target whose primary key is mapped is upserted, so
/// after three windows with inserts and updates in between it equals the source (checksum), with
/// no `supportPartUpdate` in the task.
#[tokio::test]
async fn incremental_updates_reach_a_keyed_target_by_default() {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let tb = inc_tables("timestamp", "UTC").await;
    tb.insert(1, 50).await;
    let a = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let b = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let mut detail = tb.detail(now_ms() - 3600 * 1000);
    detail["targetSelectedDatasource"]
        .as_object_mut()
        .unwrap()
        .remove("supportPartUpdate");
    let task = s.create_task(&a, &b, detail).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(
        (exec(&run), run["data_count"].as_u64()),
        ("SUCCESS", Some(50)),
        "{run}"
    );

    let pause = || tokio::time::sleep(Duration::from_millis(50));
    pause().await;
    pg_exec(&format!(
        "UPDATE {src} SET amount = amount + 1000, updated_at = {now} WHERE id <= 10",
        src = tb.src,
        now = tb.now_sql
    ))
    .await;
    tb.insert(51, 60).await;
    pause().await;
    let run = s.run_to_end(&task).await;
    assert_eq!(
        (exec(&run), run["data_count"].as_u64()),
        ("SUCCESS", Some(20)),
        "{run}"
    );

    pause().await;
    pg_exec(&format!(
        "UPDATE {src} SET amount = amount + 7, updated_at = {now} WHERE id BETWEEN 55 AND 60",
        src = tb.src,
        now = tb.now_sql
    ))
    .await;
    tb.insert(61, 65).await;
    pause().await;
    let run = s.run_to_end(&task).await;
    assert_eq!(
        (exec(&run), run["data_count"].as_u64()),
        ("SUCCESS", Some(11)),
        "{run}"
    );
    assert_eq!(
        IncTables::stats(&tb.dst, "").await,
        IncTables::stats(&tb.src, "").await,
        "the target equals the source"
    );
    tb.drop_all().await;
}

async fn incremental_flow(col_type: &str, zone: &'static str) {
    let s = TestServer::start(StoreKind::under_test()).await;
    let app = s.create_app().await;
    let tb = inc_tables(col_type, zone).await;
    let data_ts = now_ms() - 24 * 3600 * 1000;
    tb.insert(1, 100).await;
    // One row older than dataTimestamp (never copied), one without a timestamp (initial load).
    pg_exec(&format!(
        "INSERT INTO {src} VALUES (101, 7.25, {now} - interval '2 days'), (102, 8.5, NULL)",
        src = tb.src,
        now = tb.now_sql
    ))
    .await;
    let a = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let b = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s.create_task(&a, &b, tb.detail(data_ts)).await;
    let expected = "WHERE id <> 101";

    let run = s.run_to_end(&task).await;
    assert_eq!(exec(&run), "SUCCESS", "{run}");
    assert_eq!(
        run["data_count"], 101,
        "100 in the window + the NULL row: {run}"
    );
    assert_eq!(
        IncTables::stats(&tb.dst, "").await,
        IncTables::stats(&tb.src, expected).await
    );

    // Updates and inserts between runs: only they are read, the target follows the source.
    tokio::time::sleep(Duration::from_millis(50)).await;
    pg_exec(&format!(
        "UPDATE {src} SET amount = amount + 1000, updated_at = {now} WHERE id <= 10",
        src = tb.src,
        now = tb.now_sql
    ))
    .await;
    tb.insert(103, 120).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let run = s.run_to_end(&task).await;
    assert_eq!(exec(&run), "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 28, "10 updated + 18 new rows: {run}");
    let (n, sum, distinct) = IncTables::stats(&tb.dst, "").await;
    assert_eq!(
        (n, sum.clone(), distinct),
        IncTables::stats(&tb.src, expected).await
    );
    assert_eq!(n, distinct, "no duplicates");

    // Nothing changed: an empty window.
    let run = s.run_to_end(&task).await;
    assert_eq!(exec(&run), "SUCCESS", "{run}");
    assert_eq!(run["data_count"], 0, "{run}");
    assert_eq!(IncTables::stats(&tb.dst, "").await, (n, sum, distinct));
    tb.drop_all().await;
}

#[tokio::test]
async fn realtime_task_streams_new_rows_until_stopped() {
    // Two nodes: the run lives on one of them, the stop goes through the other.
    let s = TestServer::start_with_env(
        StoreKind::Postgres,
        &[
            ("FDI_REALTIME_POLL_MS", "500"),
            ("FDI_REALTIME_PROGRESS_MS", "1000"),
            ("FDI_LEASE_MS", "2000"),
        ],
    )
    .await;
    let s2 = s.join().await;
    let app = s.create_app().await;
    let tb = inc_tables("timestamp", "UTC").await;
    tb.insert(1, 20).await;
    let a = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let b = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task_of_type("REALTIME", &a, &b, tb.detail(now_ms() - 3600 * 1000))
        .await;
    let res = batch(&s, "start", &[&task]).await;
    assert_eq!(res["success_count"], 1, "{res}");
    assert_eq!(statuses(&s, &task).await, (1, 1));

    let dst = tb.dst.clone();
    let dstr = dst.as_str();
    wait_for(
        "the initial rows",
        Duration::from_secs(6),
        move || async move { (pg_count(dstr).await == 20).then_some(()) },
    )
    .await;

    // New rows arrive within a few seconds.
    tb.insert(21, 35).await;
    let t0 = Instant::now();
    wait_for(
        "inserted rows",
        Duration::from_secs(5),
        move || async move { (pg_count(dstr).await == 35).then_some(()) },
    )
    .await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Updates too.
    pg_exec(&format!(
        "UPDATE {src} SET amount = amount + 100, updated_at = {now} WHERE id <= 5",
        src = tb.src,
        now = tb.now_sql
    ))
    .await;
    let (srcr, dstr2) = (tb.src.as_str(), dstr);
    wait_for("updated rows", Duration::from_secs(5), move || async move {
        (IncTables::stats(dstr2, "").await == IncTables::stats(srcr, "").await).then_some(())
    })
    .await;

    // One RUNNING run with progress entries.
    let (sr, tk) = (&s, task.as_str());
    let run = wait_for(
        "a progress entry",
        Duration::from_secs(5),
        move || async move {
            let runs = sr.runs(tk).await;
            runs.first()
                .filter(|r| {
                    r["detail_logs"].as_array().unwrap().iter().any(|st| {
                        st["status"] == 502
                            && st["remarks"]
                                .as_str()
                                .is_some_and(|x| x.starts_with("realtime progress"))
                    })
                })
                .cloned()
        },
    )
    .await;
    let runs = s.runs(&task).await;
    assert_eq!(runs.len(), 1, "one long run: {runs:#?}");
    assert_eq!(exec(&run), "RUNNING", "{run}");

    // Stop through the node that does not run it: the run ends SUCCESS after its window;
    // later rows are not copied.
    let on_first = log_lines(&s, "realtime run started", &task);
    let on_second = log_lines(&s2, "realtime run started", &task);
    assert_eq!(on_first + on_second, 1, "one node runs it");
    let other = if on_first == 1 { &s2 } else { &s };
    let res = batch(other, "stop", &[&task]).await;
    assert_eq!(res["success_count"], 1, "{res}");
    let run = s.wait_run_end(&task, 1, Duration::from_secs(5)).await;
    assert_eq!(exec(&run), "SUCCESS", "{run}");
    assert!(
        run["remarks"].as_str().unwrap_or("").contains("stopped"),
        "{run}"
    );
    wait_stopped(&s, &task, Duration::from_secs(2)).await;
    let before = IncTables::stats(&tb.dst, "").await;
    tb.insert(36, 50).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        IncTables::stats(&tb.dst, "").await,
        before,
        "nothing after stop"
    );
    let runs = s.runs(&task).await;
    assert_eq!(runs.len(), 1, "no new run after stop");
    tb.drop_all().await;
    // Every row was read once: 20 + 15 inserted + 5 updated (not the whole table per window).
    assert_eq!(
        runs[0]["data_count"], 40,
        "rows read once each: {:?}",
        runs[0]
    );
}

#[tokio::test]
async fn realtime_window_that_fails_is_rolled_back_and_uncounted() {
    let s = TestServer::start_with_env(StoreKind::under_test(), &[("FDI_REALTIME_POLL_MS", "300")])
        .await;
    let app = s.create_app().await;
    let tb = inc_tables("timestamp", "UTC").await;
    // The target refuses amounts from 100,000 on: the source's last row breaks its window.
    pg_exec(&format!(
        "ALTER TABLE {} ADD CONSTRAINT small_amount CHECK (amount < 100000)",
        tb.dst
    ))
    .await;
    tb.insert(1, 20).await;
    let a = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let b = s.create_datasource(&app, "POSTGRESQL", pg_content()).await;
    let task = s
        .create_task_of_type("REALTIME", &a, &b, tb.detail(now_ms() - 3600 * 1000))
        .await;
    batch(&s, "start", &[&task]).await;
    let dst = tb.dst.clone();
    let dstr = dst.as_str();
    wait_for(
        "the first window",
        Duration::from_secs(10),
        move || async move { (pg_count(dstr).await == 20).then_some(()) },
    )
    .await;
    // A window of 50,000 good rows (several batches written) and one bad row at its end, in one
    // source transaction (else a window may run between them and commit the good rows alone).
    pg_exec(&format!(
        "INSERT INTO {src} SELECT g, g * 1.5, {now} FROM generate_series(21, 50020) g
         UNION ALL SELECT 60000, 500000, {now}",
        src = tb.src,
        now = tb.now_sql
    ))
    .await;
    let (sr, tk) = (&s, task.as_str());
    let failed = wait_for(
        "the failed window",
        Duration::from_secs(60),
        move || async move { sr.runs(tk).await.into_iter().find(|r| exec(r) == "ERROR") },
    )
    .await;
    batch(&s, "stop", &[&task]).await;
    assert_eq!(
        pg_count(dstr).await,
        20,
        "the failed window committed nothing"
    );
    assert_eq!(
        failed["data_count"], 20,
        "only the rows committed by earlier windows count: {failed}"
    );
    let remarks = failed["remarks"].as_str().unwrap_or_default().to_string();
    assert!(
        remarks.contains("rolled back") && remarks.contains(" rows read"),
        "{remarks}"
    );
}
