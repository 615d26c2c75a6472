//! The `fdi` server: configuration, wiring and CLI. The only crate allowed to use `anyhow`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "fdi",
    version,
    about = "fdi: a data-integration task execution engine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the FDI HTTP API.
    Serve(ServeArgs),
    /// The client commands: `ds`, `task`, `run` (crates/fdi-cli).
    #[command(flatten)]
    Client(fdi_cli::ClientCommand),
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "FDI_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the default SQLite store, the secret key file and the generated token file.
    #[arg(long, env = "FDI_DATA_DIR", default_value = "./fdi-data")]
    pub data_dir: PathBuf,
    /// Metadata store URL: `sqlite://PATH` or `postgres://...` (default: `<data-dir>/fdi.db`).
    #[arg(long, env = "FDI_STORE")]
    pub store: Option<String>,
    /// Accepted API tokens, comma-separated; `token@project` limits a token to one project.
    /// When unset, a token is generated once into `<data-dir>/auth-token` and printed.
    #[arg(long, env = "FDI_AUTH_TOKENS", hide_env_values = true)]
    pub auth_tokens: Option<String>,
    /// Zone of dispatch plans that do not name one (IANA name or `GMT+08:00`).
    #[arg(long, env = "FDI_TIME_ZONE", default_value = "UTC")]
    pub time_zone: String,
    /// This node's id in a shared store (default: generated once into `<data-dir>/node-id`).
    #[arg(long, env = "FDI_NODE_ID")]
    pub node_id: Option<String>,
    /// Run lease: a node silent for this long has its runs ended ERROR (915) by the others.
    #[arg(long, env = "FDI_LEASE_MS", default_value_t = 10_000)]
    pub lease_ms: u64,
    /// How often a realtime run polls its source for a new window.
    #[arg(long, env = "FDI_REALTIME_POLL_MS", default_value_t = 3_000)]
    pub realtime_poll_ms: u64,
    /// Longest gap between progress entries in a realtime run's monitor log.
    #[arg(long, env = "FDI_REALTIME_PROGRESS_MS", default_value_t = 30_000)]
    pub realtime_progress_ms: u64,
    /// The only directory file-backed datasources (SQLite) may point into; relative paths are
    /// relative to it (default: `<data-dir>/files`, created at start). The data dir, the store
    /// file and the key file are never reachable, whatever the root.
    #[arg(long, env = "FDI_FILES_ROOT")]
    pub files_root: Option<PathBuf>,
    /// Runs (with their steps) that started longer ago than this many days are pruned in the
    /// background; 0 keeps them whatever their age.
    #[arg(long, env = "FDI_RUN_RETENTION_DAYS", default_value_t = 30)]
    pub run_retention_days: u64,
    /// Only this many of each task's newest runs are kept; 0 keeps them all.
    #[arg(long, env = "FDI_RUN_RETENTION_PER_TASK", default_value_t = 10_000)]
    pub run_retention_per_task: u64,
    /// Log lines as human-readable text (no colours unless stderr is a terminal) or JSON.
    #[arg(long, env = "FDI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Record Prometheus metrics and serve them at `GET /metrics`; `off` does neither (the
    /// overhead benchmark compares the two).
    #[arg(long, env = "FDI_METRICS", value_enum, default_value_t = MetricsMode::On)]
    pub metrics: MetricsMode,
    /// Serve `/metrics` without a token even when listening beyond loopback (on a loopback
    /// address it is always open; otherwise it needs `X-Auth-Token` unless this is set).
    /// `FDI_METRICS_PUBLIC`: empty, `0`, `false`, `no`, `off` mean not set.
    #[arg(long, env = "FDI_METRICS_PUBLIC", value_parser = clap::builder::FalseyValueParser::new())]
    pub metrics_public: bool,
}

/// Whether metrics are recorded and served.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsMode {
    On,
    Off,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parse the command line and run.
pub fn cli_main() -> anyhow::Result<()> {
    let cli: Cli = fdi_cli::parse_args();
    match &cli.command {
        Command::Serve(args) => init_tracing(args.log_format),
        Command::Client(_) => {}
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    match cli.command {
        Command::Serve(args) => rt.block_on(serve(args)),
        Command::Client(c) => std::process::exit(rt.block_on(fdi_cli::run(c))),
    }
}

fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,pg_walstream=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// The tokens to accept: `--auth-tokens` / `FDI_AUTH_TOKENS`, else the token in
/// `<data-dir>/auth-token` (generated, owner-only, and printed once when first created).
pub fn resolve_auth(args: &ServeArgs) -> anyhow::Result<fdi_api::AuthConfig> {
    if let Some(spec) = args.auth_tokens.as_deref().filter(|s| !s.trim().is_empty()) {
        let auth = fdi_api::AuthConfig::parse(spec);
        anyhow::ensure!(!auth.is_empty(), "FDI_AUTH_TOKENS holds no token");
        return Ok(auth);
    }
    let path = args.data_dir.join("auth-token");
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => {
            tracing::warn!(file = %path.display(), "FDI_AUTH_TOKENS is not set: using the token stored in this file");
            t.trim().to_string()
        }
        _ => {
            let token = format!(
                "fdi-{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            fdi_store::write_private(&path, &token)
                .with_context(|| format!("write {}", path.display()))?;
            tracing::warn!(file = %path.display(), "FDI_AUTH_TOKENS is not set: generated an API token");
            println!(
                "fdi: FDI_AUTH_TOKENS is not set; generated an API token (kept in {}):\n  X-Auth-Token: {token}",
                path.display()
            );
            token
        }
    };
    Ok(fdi_api::AuthConfig::parse(&token))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received");
}

/// Scheduler settings from the command line; the node id defaults to `<data-dir>/node-id`.
pub fn scheduler_config(args: &ServeArgs) -> anyhow::Result<fdi_scheduler::SchedulerConfig> {
    let node_id = match args.node_id.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(n) => n.trim().to_string(),
        None => {
            let path = args.data_dir.join("node-id");
            match std::fs::read_to_string(&path) {
                Ok(n) if !n.trim().is_empty() => n.trim().to_string(),
                _ => {
                    let n = format!("node-{}", uuid::Uuid::new_v4().simple());
                    fdi_store::write_private(&path, &n)
                        .with_context(|| format!("write {}", path.display()))?;
                    n
                }
            }
        }
    };
    let mut cfg = fdi_scheduler::SchedulerConfig::new(node_id);
    cfg.time_zone = fdi_dispatch_plan::parse_time_zone(&args.time_zone)
        .map_err(|e| anyhow::anyhow!("--time-zone: {e}"))?;
    cfg.lease = std::time::Duration::from_millis(args.lease_ms.max(1_000));
    cfg.heartbeat = (cfg.lease / 5).min(std::time::Duration::from_millis(500));
    cfg.realtime_poll = std::time::Duration::from_millis(args.realtime_poll_ms.max(100));
    cfg.realtime_progress = std::time::Duration::from_millis(args.realtime_progress_ms.max(100));
    cfg.retention = fdi_scheduler::RetentionPolicy {
        max_age: (args.run_retention_days > 0)
            .then(|| std::time::Duration::from_secs(args.run_retention_days * 86_400)),
        per_task: (args.run_retention_per_task > 0).then_some(args.run_retention_per_task),
        ..Default::default()
    };
    Ok(cfg)
}

/// The store URL: `--store`, else the SQLite file `<data-dir>/fdi.db`.
pub fn store_url(args: &ServeArgs) -> String {
    match args.store.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", args.data_dir.join("fdi.db").display()),
    }
}

/// Where file-backed datasources may point: `--files-root` (default `<data-dir>/files`, created),
/// with the data dir, the SQLite store file and the key file off limits.
pub fn files_root(args: &ServeArgs) -> anyhow::Result<fdi_connector::FilesRoot> {
    let root = args
        .files_root
        .clone()
        .unwrap_or_else(|| args.data_dir.join("files"));
    let mut files = fdi_connector::FilesRoot::new(&root)
        .with_context(|| format!("--files-root {}", root.display()))?
        .protect_dir(&args.data_dir)
        .with_context(|| format!("--files-root {}", root.display()))?
        .protect_file(args.data_dir.join("secret.key"));
    if let Some(store) = fdi_store::sqlite_store_file(&store_url(args)) {
        files = files.protect_file(store);
    }
    Ok(files)
}

/// Install the metrics recorder (unless `--metrics off`) with its upkeep, and decide whether
/// `/metrics` needs a token.
fn start_metrics(args: &ServeArgs) -> anyhow::Result<()> {
    let public = args.metrics_public || args.listen.ip().is_loopback();
    fdi_api::metrics_page::set_public(public);
    if args.metrics == MetricsMode::Off {
        tracing::info!("metrics are off: nothing is recorded and /metrics answers 404");
        return Ok(());
    }
    let exporter = fdi_metrics::install().context("install the metrics recorder")?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            exporter.run_upkeep();
        }
    });
    tracing::info!(token_needed = !public, "metrics are served at /metrics");
    Ok(())
}

/// Every connector this binary was built with; file-backed ones confined to `files`.
pub fn connector_registry(files: fdi_connector::FilesRoot) -> fdi_connector::ConnectorRegistry {
    let mut r = fdi_connector::ConnectorRegistry::new().with_files_root(files.clone());
    r.register(Arc::new(fdi_connector_mysql::Factory));
    r.register(Arc::new(fdi_connector_postgres::Factory));
    r.register(Arc::new(fdi_connector_sqlite::Factory::new(files)));
    r.register(Arc::new(fdi_connector_rabbitmq::Factory));
    r.register(Arc::new(fdi_connector_kafka::Factory));
    r.register(Arc::new(fdi_connector_redis::Factory));
    r
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create data dir {}", args.data_dir.display()))?;
    start_metrics(&args)?;
    let auth = Arc::new(resolve_auth(&args)?);
    let url = store_url(&args);
    let files = files_root(&args)?;
    tracing::info!(files_root = %files.root().display(), "file-backed datasources are confined to the files root");
    let state = fdi_api::AppState::open(
        &url,
        &args.data_dir,
        Arc::new(connector_registry(files)),
        scheduler_config(&args)?,
    )
    .await
    .context("open the metadata store")?;
    let runs = Arc::clone(&state.scheduler);
    runs.start().await.context("start the scheduler")?;
    let app = fdi_api::router(state, auth);
    let listener = fdi_api::FdiListener(
        tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listen on {}", args.listen))?,
    );
    tracing::info!(listen = %args.listen, data_dir = %args.data_dir.display(), store = if url.starts_with("postgres") { "postgres" } else { "sqlite" }, "fdi is serving");
    let shutdown_runs = Arc::clone(&runs);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            shutdown_runs.shutdown().await;
        })
        .await
        .context("serve")?;
    runs.shutdown().await;
    tracing::info!("fdi stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &std::path::Path, tokens: Option<&str>) -> ServeArgs {
        ServeArgs {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.to_path_buf(),
            store: None,
            auth_tokens: tokens.map(str::to_string),
            time_zone: "UTC".into(),
            node_id: None,
            lease_ms: 10_000,
            realtime_poll_ms: 3_000,
            realtime_progress_ms: 30_000,
            files_root: None,
            log_format: LogFormat::Text,
            run_retention_days: 30,
            run_retention_per_task: 10_000,
            metrics: MetricsMode::On,
            metrics_public: false,
        }
    }

    #[test]
    fn generated_token_is_kept_and_reused() {
        let dir = std::env::temp_dir().join(format!("fdi-server-auth-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = resolve_auth(&args(&dir, None)).unwrap();
        let token = std::fs::read_to_string(dir.join("auth-token"))
            .unwrap()
            .trim()
            .to_string();
        assert!(token.starts_with("fdi-") && token.len() > 20);
        assert!(a.check(Some(&token), Some("any")).is_ok());
        assert!(a.check(Some("other"), Some("any")).is_err());
        let b = resolve_auth(&args(&dir, None)).unwrap();
        assert!(
            b.check(Some(&token), Some("p")).is_ok(),
            "same token after restart"
        );
        let c = resolve_auth(&args(&dir, Some("x1,x2@p2"))).unwrap();
        assert!(
            c.check(Some(&token), Some("p")).is_err(),
            "explicit tokens replace the file"
        );
        assert!(c.check(Some("x2"), Some("p2")).is_ok());
        assert_eq!(
            store_url(&args(&dir, None)),
            format!("sqlite://{}", dir.join("fdi.db").display())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
