//! Copy one table through the engine with the real connectors and print throughput and peak RSS.
//!
//! `copy_bench <pg|mysql> <source_table> <pg|mysql> <target_table>` (tables must exist; the
//! target is cleared in the run's transaction). Prints one line:
//! `rows=<n> secs=<s> bytes=<b> peak_rss_kb=<kb> read_ms=<ms> write_ms=<ms> status=<SUCCESS|...>`
//! (`bytes`: what the writer sent; `read_ms`/`write_ms`: the engine's reader and writer spans).
//! `FDI_BATCH_ROWS` overrides the rows per batch; `FDI_UPSERT=1` upserts into the target's rows
//! instead of clearing it; `FDI_IN_SERVER=0` turns the same-server shortcut off. Driven by
//! `benches/copy_bench.sh`.

use std::time::Instant;

#[path = "bench_util/mod.rs"]
mod bench_util;

use bench_util::peak_rss_kb;
use fdi_connector::ConnectorFactory;
use fdi_engine::{Endpoint, EngineOptions, RunRequest};
use fdi_types::TaskDetail;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn endpoint(kind: &str) -> Result<Endpoint, String> {
    let host = |port: u16, user: &str| json!({"host": "127.0.0.1", "port": port, "user": user, "database": "test"});
    match kind {
        "pg" => Ok(Endpoint {
            datasource_type: fdi_connector_postgres::TYPE,
            connector: fdi_connector_postgres::Factory
                .create(&host(5432, "postgres"))
                .map_err(|e| e.to_string())?,
        }),
        "mysql" => Ok(Endpoint {
            datasource_type: fdi_connector_mysql::TYPE,
            connector: fdi_connector_mysql::Factory
                .create(&host(3306, "root"))
                .map_err(|e| e.to_string())?,
        }),
        other => Err(format!("unknown endpoint {other} (pg or mysql)")),
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: copy_bench <pg|mysql> <source_table> <pg|mysql> <target_table>".into());
    }
    // FDI_UPSERT=1: upsert into what the target holds (no clear); FDI_IN_SERVER=0: stream the
    // rows even where source and target are one server.
    let flag = |name: &str| std::env::var(name).ok();
    let upsert = flag("FDI_UPSERT").as_deref() == Some("1");
    let in_server = flag("FDI_IN_SERVER").as_deref() != Some("0");
    let detail = TaskDetail::parse(
        &json!({"sourceSelectedDatasource": {"sourceTable": args[2]},
            "targetSelectedDatasource": {"targetTable": args[4], "isSupportClearTab": !upsert, "isSupportInServerCopy": in_server}})
            .to_string(),
    )
    .map_err(|e| e.to_string())?;
    let mut options = EngineOptions::default();
    if let Some(b) = std::env::var("FDI_BATCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.batch_rows = b;
    }
    let req = RunRequest {
        task_id: "bench".into(),
        run_id: fdi_types::new_id(),
        detail,
        source: endpoint(&args[1])?,
        target: endpoint(&args[3])?,
        cancel: CancellationToken::new(),
        options,
        window: None,
        dirty: Default::default(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let t0 = Instant::now();
    let out = fdi_engine::run(req, tx).await;
    let secs = t0.elapsed().as_secs_f64();
    let _ = drain.await;
    println!(
        "rows={} secs={secs:.3} bytes={} peak_rss_kb={} read_ms={} write_ms={} status={} remarks={:?}",
        out.rows_written,
        out.bytes_written,
        peak_rss_kb(),
        out.read_ms,
        out.write_ms,
        out.status.as_str(),
        out.remarks
    );
    Ok(())
}
