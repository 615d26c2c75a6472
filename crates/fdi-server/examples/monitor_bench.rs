//! Monitor-store benchmark (issue: catalog and monitor store): seed tasks and runs (10 steps
//! each) straight through the store layer, then time the monitor endpoints over the HTTP API
//! (p50 / p99 of sequential calls), the store's size on disk, and the latency of writing one step
//! while 50 runs are active. Prints one line of `key=value` pairs; `benches/monitor_bench.sh`
//! runs it at two scales on both stores and prints the table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fdi_store::{AppRow, DatasourceRow, RunView, Scope, StepView, Store, TaskRow, Trigger};
use fdi_types::{ExecuteStatus, Position, PositionStatus, TaskType};

struct Args {
    store: String,
    data_dir: std::path::PathBuf,
    tasks: usize,
    runs: usize,
    big_task_runs: usize,
    calls: usize,
    /// Keep a store seeded by an earlier call with the same data dir (iterating on queries).
    reuse: bool,
}

fn args() -> Args {
    let mut a = Args {
        store: String::new(),
        data_dir: std::env::temp_dir().join("fdi-monitor-bench"),
        tasks: 1_000,
        runs: 1_000,
        big_task_runs: 100,
        calls: 200,
        reuse: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--store" => a.store = v,
            "--data-dir" => a.data_dir = v.into(),
            "--tasks" => a.tasks = v.parse().unwrap(),
            "--runs" => a.runs = v.parse().unwrap(),
            "--big-task-runs" => a.big_task_runs = v.parse().unwrap(),
            "--calls" => a.calls = v.parse().unwrap(),
            "--reuse" => a.reuse = v.parse().unwrap(),
            _ => panic!("unknown argument {k}"),
        }
    }
    assert!(!a.store.is_empty(), "--store is required");
    a
}

const SCOPE: Scope<'static> = Scope {
    project: "bench",
    instance: "inst",
};

fn step(code: u16, at: i64, remarks: &str) -> StepView {
    StepView {
        id: fdi_types::new_id(),
        code,
        position: Position::Reader,
        position_status: PositionStatus::Normal,
        stage: "pgreader".into(),
        data_count: 1_000,
        dirty_data_count: 0,
        data_bytes: 64_000,
        remarks: remarks.into(),
        begin_ms: at,
        end_ms: at + 5,
        sub_steps: Vec::new(),
    }
}

/// A finished run with the ten steps of a normal run.
fn finished_run(task_id: &str, start_ms: i64, ok: bool) -> RunView {
    let codes = [900, 99, 100, 102, 104, 101, 500, 502, 504, 501];
    RunView {
        id: fdi_types::new_id(),
        task_id: task_id.into(),
        start_ms,
        dispatch_ms: start_ms,
        end_ms: Some(start_ms + 900),
        execute_status: if ok {
            ExecuteStatus::Success
        } else {
            ExecuteStatus::Error
        },
        position: Position::Writer,
        position_status: PositionStatus::Normal,
        status_code: 901,
        data_count: 1_000,
        dirty_data_count: 0,
        data_bytes: 64_000,
        read_ms: 300,
        write_ms: 400,
        remarks: String::new(),
        steps: codes
            .iter()
            .enumerate()
            .map(|(i, c)| step(*c, start_ms + i as i64 * 10, "step"))
            .collect(),
        trigger: Trigger::Plan,
        node_id: "bench-node".into(),
        window: None,
        read_count: 0,
        total_count: None,
        progress: None,
        rows_per_second: 0.0,
        remaining_ms: None,
        rate_sample: None,
        stored_steps: 0,
    }
}

async fn seed(store: &Store, a: &Args) -> (String, String) {
    let now = fdi_types::now_millis();
    let app = AppRow {
        id: fdi_types::new_id(),
        name: "bench-app".into(),
        remark: String::new(),
        key: "k".into(),
        favorite: false,
        created_ms: now,
        updated_ms: now,
    };
    store.insert_app(SCOPE, &app).await.unwrap();
    let mut ds_ids = Vec::new();
    for n in ["src", "dst"] {
        let d = DatasourceRow {
            id: fdi_types::new_id(),
            instance_id: SCOPE.instance.into(),
            name: n.into(),
            datasource_type: "SQLITE".into(),
            app_id: app.id.clone(),
            app_name: String::new(),
            sealed: store
                .seal(&serde_json::json!({"url": format!("{n}.sqlite")}))
                .unwrap(),
            description: None,
            created_ms: now,
            updated_ms: now,
        };
        store.insert_datasource(SCOPE, &d).await.unwrap();
        ds_ids.push(d.id);
    }
    let mut task_ids = Vec::new();
    for i in 0..a.tasks {
        let t = TaskRow {
            id: fdi_types::new_id(),
            kind: fdi_types::TaskKind::Normal,
            name: format!("task-{i:05}"),
            task_type: TaskType::Timing,
            source_datasource_id: ds_ids[0].clone(),
            target_datasource_id: ds_ids[1].clone(),
            description: None,
            task_tag: None,
            task_detail: r#"{"sourceSelectedDatasource":{"sourceTable":"a"},"targetSelectedDatasource":{"targetTable":"b"}}"#.into(),
            created_ms: now + i as i64,
            updated_ms: now + i as i64,
        };
        store.insert_task(SCOPE, &t).await.unwrap();
        task_ids.push(t.id);
    }
    let big = task_ids[0].clone();
    let rest = a.runs - a.big_task_runs;
    let (each, extra) = (rest / (a.tasks - 1).max(1), rest % (a.tasks - 1).max(1));
    let mut batch = Vec::with_capacity(5_000);
    let mut n = 0usize;
    let base = now - 365 * 86_400_000;
    for (ti, t) in task_ids.iter().enumerate() {
        let count = match ti {
            0 => a.big_task_runs,
            i if i <= extra => each + 1,
            _ => each,
        };
        for r in 0..count {
            n += 1;
            batch.push(finished_run(
                t,
                base + (r as i64) * 60_000 + ti as i64,
                r % 10 != 0,
            ));
            if batch.len() == 5_000 {
                store.insert_runs(&batch).await.unwrap();
                batch.clear();
            }
        }
    }
    store.insert_runs(&batch).await.unwrap();
    eprintln!("seeded {n} runs");
    let (_, runs) = store
        .list_runs(
            &big,
            &fdi_store::RunFilter {
                begin_ms: None,
                end_ms: None,
                offset: 0,
                limit: 1,
            },
        )
        .await
        .unwrap();
    (big, runs[0].id.clone())
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn time_calls(http: &reqwest::Client, url: &str, calls: usize) -> (f64, f64) {
    let mut ms = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = http
            .get(url)
            .header("X-Auth-Token", "bench")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{url}");
        let _ = r.bytes().await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1_000.0);
    }
    (pct(&mut ms, 0.5), pct(&mut ms, 0.99))
}

/// p50 / p99 of saving one new step of a run while 50 runs save theirs concurrently.
/// 50 runs active at once, each saving a new step at the pace the scheduler saves a running run
/// (every 500 ms, phases spread over the interval): the latency of one save.
async fn step_write_latency(store: &Store, task_id: &str) -> (f64, f64) {
    let mut handles = Vec::new();
    for k in 0..50u64 {
        let store = store.clone();
        let task_id = task_id.to_string();
        handles.push(tokio::spawn(async move {
            let mut run = finished_run(&task_id, fdi_types::now_millis(), true);
            run.execute_status = ExecuteStatus::Running;
            run.steps.truncate(2);
            store.insert_run(&mut run).await.unwrap();
            tokio::time::sleep(Duration::from_millis(k * 10)).await;
            let mut ms = Vec::new();
            for i in 0..20 {
                run.steps
                    .push(step(102, fdi_types::now_millis(), "progress"));
                run.data_count += i;
                let t = Instant::now();
                store.save_run(&mut run).await.unwrap();
                ms.push(t.elapsed().as_secs_f64() * 1_000.0);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            ms
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    (pct(&mut all, 0.5), pct(&mut all, 0.99))
}

/// What a store that grew over time has and a bulk-loaded one lacks: planner statistics (and on
/// PostgreSQL the visibility map that lets index-only scans skip the heap), as autovacuum /
/// `PRAGMA optimize` would leave them.
async fn refresh_statistics(a: &Args) {
    match fdi_store::sqlite_store_file(&a.store) {
        Some(_) => {
            let p = sqlx::SqlitePool::connect(&a.store).await.unwrap();
            sqlx::raw_sql("ANALYZE").execute(&p).await.unwrap();
            p.close().await;
        }
        None => {
            let p = sqlx::PgPool::connect(&a.store).await.unwrap();
            sqlx::raw_sql("VACUUM ANALYZE").execute(&p).await.unwrap();
            p.close().await;
        }
    }
}

async fn store_size(a: &Args) -> u64 {
    match fdi_store::sqlite_store_file(&a.store) {
        Some(f) => ["", "-wal", "-shm"]
            .iter()
            .map(|s| {
                std::fs::metadata(format!("{}{s}", f.display()))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum(),
        None => {
            let p = sqlx::PgPool::connect(&a.store).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                .fetch_one(&p)
                .await
                .unwrap();
            n as u64
        }
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    std::fs::create_dir_all(&a.data_dir).unwrap();
    let store = Store::open(&a.store, &a.data_dir).await.unwrap();
    let t = Instant::now();
    let seeded = a.data_dir.join("bench-seed.txt");
    let (big, run_id) = match std::fs::read_to_string(&seeded).ok().filter(|_| a.reuse) {
        Some(ids) => {
            let (big, run) = ids.trim().split_once(' ').expect("bench-seed.txt: two ids");
            (big.to_string(), run.to_string())
        }
        None => {
            let ids = seed(&store, &a).await;
            refresh_statistics(&a).await;
            std::fs::write(&seeded, format!("{} {}", ids.0, ids.1)).unwrap();
            ids
        }
    };
    let seed_s = t.elapsed().as_secs_f64();

    let registry = Arc::new(fdi_server::connector_registry(
        fdi_connector::FilesRoot::new(a.data_dir.join("files")).unwrap(),
    ));
    let state = fdi_api::AppState::open(
        &a.store,
        &a.data_dir,
        registry,
        fdi_scheduler::SchedulerConfig::new("bench-node"),
    )
    .await
    .unwrap();
    let app = fdi_api::router(state, Arc::new(fdi_api::AuthConfig::parse("bench")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let api = format!(
        "http://{addr}/v2/{}/fdi/instances/{}",
        SCOPE.project, SCOPE.instance
    );
    let endpoints = [
        ("logs10", format!("{api}/tasks/{big}/monitor-logs?limit=10")),
        (
            "log_one",
            format!("{api}/tasks/{big}/monitor-logs/{run_id}"),
        ),
        ("monitors100", format!("{api}/task-monitors?limit=100")),
        ("stats", format!("{api}/statistics/tasks")),
        ("tasks100", format!("{api}/tasks?limit=100")),
        ("overview", format!("{api}/tasks/{big}/monitor-overview")),
    ];
    let mut line = format!(
        "store={} tasks={} runs={} big_task_runs={} seed_s={seed_s:.1}",
        if a.store.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        },
        a.tasks,
        a.runs,
        a.big_task_runs
    );
    for (name, url) in &endpoints {
        // Warm up once (connection, caches), then time.
        let _ = time_calls(&http, url, 1).await;
        let (p50, p99) = time_calls(&http, url, a.calls).await;
        line.push_str(&format!(" {name}_p50_ms={p50:.2} {name}_p99_ms={p99:.2}"));
    }
    let (w50, w99) = step_write_latency(&store, &big).await;
    line.push_str(&format!(
        " step_write_p50_ms={w50:.2} step_write_p99_ms={w99:.2} size_mb={:.1}",
        store_size(&a).await as f64 / 1_048_576.0
    ));
    println!("{line}");
}
