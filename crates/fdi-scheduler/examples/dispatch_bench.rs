//! Dispatch benchmark: many enabled plans, real runs (a one-row PostgreSQL -> PostgreSQL copy per
//! fire), measured from the monitor log.
//!
//! ```text
//! dispatch_bench --store URL --plans N --mode minute|second --secs S --nodes 1|2 [--idle-secs S]
//! ```
//! - `minute`: N plans of period MIN / interval 1 with start instants spread evenly over a minute
//!   (N/60 fires per second); `second`: N Quartz plans `* * * * * ?` (N fires per second).
//! - Lag = run start_time - dispatch_time (planned instant), over every plan-triggered run
//!   (rejected fires included). Double dispatch = two runs with the same task and dispatch_time.
//! - Idle CPU: with the same N plans enabled but due only next year, the process's CPU time over
//!   `--idle-secs` divided by wall time.
//!
//! Prints one line of `key=value` pairs for `benches/dispatch_bench.sh` to tabulate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fdi_connector::ConnectorFactory;
use fdi_engine::Endpoint;
use fdi_monitor::{MonitorLog, RunFilter, RunView, Trigger};
use fdi_scheduler::{ResolvedTask, Scheduler, SchedulerConfig, TaskBrief, TaskResolver};
use fdi_store::Store;
use fdi_types::{ApiError, TaskType};
use serde_json::json;

struct Args {
    store: String,
    plans: usize,
    mode: String,
    secs: u64,
    nodes: usize,
    idle_secs: u64,
}

fn args() -> Args {
    let mut a = Args {
        store: "postgres://postgres@127.0.0.1:5432/fdi_bench".into(),
        plans: 10_000,
        mode: "minute".into(),
        secs: 60,
        nodes: 1,
        idle_secs: 10,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    for p in v.chunks(2) {
        let val = p.get(1).cloned().unwrap_or_default();
        match p[0].as_str() {
            "--store" => a.store = val,
            "--plans" => a.plans = val.parse().expect("--plans"),
            "--mode" => a.mode = val,
            "--secs" => a.secs = val.parse().expect("--secs"),
            "--nodes" => a.nodes = val.parse().expect("--nodes"),
            "--idle-secs" => a.idle_secs = val.parse().expect("--idle-secs"),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// Every task copies the same one-row table into a sink table.
struct BenchResolver {
    source: Endpoint,
    target: Endpoint,
}

const DETAIL: &str = r#"{"sourceSelectedDatasource":{"sourceTable":"dispatch_bench_one"},"targetSelectedDatasource":{"targetTable":"dispatch_bench_sink"}}"#;

#[async_trait]
impl TaskResolver for BenchResolver {
    async fn resolve(&self, task_id: &str) -> Result<Option<ResolvedTask>, ApiError> {
        Ok(Some(ResolvedTask {
            kind: fdi_types::TaskKind::Normal,
            task_id: task_id.to_string(),
            task_type: TaskType::Timing,
            raw_detail: DETAIL.to_string(),
            source: self.source.clone(),
            target: self.target.clone(),
            dirty: Default::default(),
            run_end: None,
        }))
    }
    async fn describe(&self, task_id: &str) -> Result<Option<TaskBrief>, ApiError> {
        Ok(Some(TaskBrief {
            kind: fdi_types::TaskKind::Normal,
            task_type: TaskType::Timing,
            name: task_id.to_string(),
            raw_detail: DETAIL.to_string(),
        }))
    }
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (fields 14 and 15 of /proc/self/stat).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let a = args();
    let data_dir = PathBuf::from(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp/fdi-dispatch-bench".into()),
    );
    std::fs::create_dir_all(&data_dir).unwrap();
    let pg = fdi_connector_postgres::Factory;
    let content = json!({"host": "127.0.0.1", "port": "5432", "database_name": "test", "user_name": "postgres", "password": ""});
    let endpoint = || Endpoint {
        datasource_type: fdi_connector_postgres::TYPE,
        connector: pg.create(&content).expect("pg connector"),
    };
    let setup = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS dispatch_bench_one, dispatch_bench_sink;
         CREATE TABLE dispatch_bench_one (id bigint, note text);
         INSERT INTO dispatch_bench_one VALUES (1, 'one row');
         CREATE TABLE dispatch_bench_sink (id bigint, note text);",
    )
    .execute(&setup)
    .await
    .unwrap();

    let mut nodes = Vec::new();
    for n in 0..a.nodes {
        let store = Store::open(&a.store, &data_dir).await.expect("store");
        let resolver = Arc::new(BenchResolver {
            source: endpoint(),
            target: endpoint(),
        });
        let mut cfg = SchedulerConfig::new(format!("bench-node-{n}-{}", std::process::id()));
        cfg.plan_poll = Duration::from_millis(1000);
        let s = Scheduler::new(store.clone(), MonitorLog::new(store.clone()), resolver, cfg);
        nodes.push((store, s));
    }
    let (store, first) = (nodes[0].0.clone(), Arc::clone(&nodes[0].1));

    // Plans: due next year for the idle phase.
    let t0 = Instant::now();
    let now = fdi_types::now_millis();
    let ids: Vec<String> = (0..a.plans)
        .map(|i| format!("bench-{i:05}-{now}"))
        .collect();
    for id in &ids {
        first
            .create_plan(id, &json!({"use_quartz_cron": true, "cron": "0 0 3 1 1 ? 2099", "start_datetime": now}))
            .await
            .unwrap();
    }
    let started = first.batch("start", &ids).await.unwrap();
    assert_eq!(started.success_count, a.plans);
    let setup_secs = t0.elapsed().as_secs_f64();
    for (_, s) in &nodes {
        s.start().await.unwrap();
    }

    // Idle CPU.
    let (c0, w0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(a.idle_secs)).await;
    let idle_cpu = (cpu_seconds() - c0) / w0.elapsed().as_secs_f64() * 100.0;

    // Firing phase: retime every plan (the update recomputes next fire from now).
    let base = fdi_types::now_millis() + 2_000;
    for (i, id) in ids.iter().enumerate() {
        let d = first.plans(id).await.unwrap().remove(0);
        let body = if a.mode == "second" {
            json!({"use_quartz_cron": true, "cron": "* * * * * ?", "start_datetime": base})
        } else {
            let offset = (i as i64 * 60_000) / a.plans as i64;
            json!({"use_quartz_cron": false, "period": "MIN", "dispatch_interval": 1, "start_datetime": base + offset})
        };
        first.update_plan(id, &d.dispatch_id, &body).await.unwrap();
    }
    let fire_from = fdi_types::now_millis();
    let (c1, w1) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    let busy_cpu = (cpu_seconds() - c1) / w1.elapsed().as_secs_f64() * 100.0;
    first.batch("stop", &ids).await.unwrap();
    for (_, s) in &nodes {
        s.shutdown().await;
    }

    let mut all_runs: Vec<RunView> = Vec::new();
    for id in &ids {
        let every = RunFilter {
            begin_ms: None,
            end_ms: None,
            offset: 0,
            limit: i64::MAX,
        };
        all_runs.extend(store.list_runs(id, &every).await.unwrap().1);
    }
    let runs: Vec<RunView> = all_runs
        .into_iter()
        .filter(|r| r.trigger == Trigger::Plan)
        .filter(|r| r.dispatch_ms >= fire_from)
        .collect();
    let mut lags: Vec<i64> = runs.iter().map(|r| r.start_ms - r.dispatch_ms).collect();
    lags.sort_unstable();
    let mut seen: HashMap<(&str, i64), u32> = HashMap::new();
    for r in &runs {
        *seen.entry((r.task_id.as_str(), r.dispatch_ms)).or_default() += 1;
    }
    let doubles: u32 = seen.values().filter(|&&c| c > 1).map(|c| c - 1).sum();
    let rejected = runs.iter().filter(|r| r.status_code == 914).count();
    let ok = runs
        .iter()
        .filter(|r| r.execute_status == fdi_types::ExecuteStatus::Success)
        .count();
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for r in &runs {
        *per_node.entry(r.node_id.as_str()).or_default() += 1;
    }
    println!(
        "store={} mode={} plans={} nodes={} secs={} setup_s={:.1} fires={} success={} rejected_914={} double={} lag_p50_ms={} lag_p99_ms={} lag_max_ms={} idle_cpu_pct={:.2} busy_cpu_pct={:.1} per_node={:?}",
        if a.store.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        },
        a.mode,
        a.plans,
        a.nodes,
        a.secs,
        setup_secs,
        runs.len(),
        ok,
        rejected,
        doubles,
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(0),
        idle_cpu,
        busy_cpu,
        per_node.values().collect::<Vec<_>>(),
    );
}
