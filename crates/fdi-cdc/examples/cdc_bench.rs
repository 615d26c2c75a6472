//! CDC benchmark driver (run by `benches/cdc_bench.sh`): the fdi change pipeline from MariaDB
//! (binlog) and from PostgreSQL (logical replication) into PostgreSQL, against PostgreSQL's own
//! logical replication on the same workload.
//!
//! The work is split over processes so that the pipeline's peak RSS is its own:
//! - `cdc_bench setup <mysql|pg> <fdi|native>`: the 10 bench tables and the heartbeat table in the
//!   source (`ROWS` rows each) and in the target (empty for fdi, which copies them first; the same
//!   rows for native replication, which is started without a copy).
//! - `cdc_bench pipe <mysql|pg>`: the fdi pipeline (real connectors, an in-memory position
//!   store) in this process until SIGTERM / SIGINT; prints `READY` on stderr once the copy is
//!   committed, and at the end `status=.. changes_read=.. rows_written=.. peak_rss_kb=..
//!   cpu_secs=..` on stdout.
//! - `cdc_bench native-start`: `CREATE PUBLICATION` on the source, `CREATE SUBSCRIPTION` (no copy)
//!   on the target.
//! - `cdc_bench drive <mysql|pg> <secs> <rate,rate,..> <fixed|search>`: the load generator and
//!   the lag poller. `WORKERS` connections each commit transactions of 10 changes (60% update, 30%
//!   insert, 10% delete over the 10 tables) paced so that together they make `rate` changes/s;
//!   each transaction ends by setting its worker's heartbeat row to (seq, the server's clock in
//!   µs just before COMMIT). A poller reads the target's heartbeat rows every 10 ms; the lag of a
//!   transaction is the first poll that saw its seq (or a later one) minus its commit time. After
//!   each step it waits until every worker's last transaction is seen (`CATCHUP_SECS`, else the
//!   step failed). One line per step on stdout. `search` stops after the first step whose lag did
//!   not stay flat.
//! - `cdc_bench verify <mysql|pg>`: count + md5 over the rows in key order of every table, source
//!   against target (retried for 60 s); exit 1 when they differ.
//! - `cdc_bench cleanup`: drops the subscription, publications, replication slots and tables this
//!   benchmark creates (idempotent; used after every run and by the script's trap).
//!
//! Servers: `FDI_PG_CDC` (postgres://postgres@127.0.0.1:5433/test), `FDI_MYSQL_CDC`
//! (mysql://root@127.0.0.1:3307/test), `FDI_PG_TARGET` (postgres://postgres@127.0.0.1:5432/test).
//! Table names start with `PREFIX` (default `cdcb`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fdi_cdc::mapping::MappingStatus;
use fdi_cdc::{CdcOptions, CdcRequest, MappingEvents, PositionStore, TableMapping};
use fdi_connector::change::{ChangeOp, TableId};
use fdi_connector::{ColumnInfo, Connector, ConnectorFactory, SourcePosition};
use serde_json::json;
use sqlx::{Connection, Row};
use tokio_util::sync::CancellationToken;

const TABLES: usize = 10;
const CHANGES_PER_TX: usize = 10;
const POLL: Duration = Duration::from_millis(10);

type Res<T> = Result<T, String>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
fn env_num(name: &str, default: u64) -> Res<u64> {
    env(name, &default.to_string())
        .parse()
        .map_err(|_| format!("{name}: a number"))
}
fn pg_src_url() -> String {
    env("FDI_PG_CDC", "postgres://postgres@127.0.0.1:5433/test")
}
fn mysql_src_url() -> String {
    env("FDI_MYSQL_CDC", "mysql://root@127.0.0.1:3307/test")
}
fn target_url() -> String {
    env("FDI_PG_TARGET", "postgres://postgres@127.0.0.1:5432/test")
}
fn prefix() -> String {
    let p = env("PREFIX", "cdcb");
    assert!(
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "PREFIX: lowercase letters and digits"
    );
    p
}
fn table(i: usize) -> String {
    format!("{}_t{i}", prefix())
}
fn hb_table() -> String {
    format!("{}_hb", prefix())
}
/// The bench tables, heartbeat last (the pipeline commits its tables in mapping order, so a
/// heartbeat seen on the target means the rest of its source transaction landed too).
fn all_tables() -> Vec<String> {
    let mut t: Vec<String> = (0..TABLES).map(table).collect();
    t.push(hb_table());
    t
}
fn workers() -> Res<usize> {
    Ok(env_num("WORKERS", 8)?.max(1) as usize)
}
fn rows() -> Res<i64> {
    Ok(env_num("ROWS", 10_000)? as i64)
}
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
fn e(x: impl std::fmt::Display) -> String {
    x.to_string()
}
fn log(msg: &str) {
    eprintln!("[cdc_bench] {msg}");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    Mysql,
    Pg,
}

impl Src {
    fn parse(s: &str) -> Res<Self> {
        match s {
            "mysql" => Ok(Self::Mysql),
            "pg" => Ok(Self::Pg),
            o => Err(format!("unknown source {o:?} (mysql or pg)")),
        }
    }
}

// ---- SQL ---------------------------------------------------------------------------------------

async fn pg_conn(url: &str) -> Res<sqlx::PgConnection> {
    sqlx::PgConnection::connect(url)
        .await
        .map_err(|x| format!("{url}: {x}"))
}
async fn my_conn(url: &str) -> Res<sqlx::MySqlConnection> {
    sqlx::MySqlConnection::connect(url)
        .await
        .map_err(|x| format!("{url}: {x}"))
}

/// One connection to either source, for the little SQL the driver sends.
enum Conn {
    Pg(sqlx::PgConnection),
    My(sqlx::MySqlConnection),
}

impl Conn {
    async fn open(src: Src) -> Res<Self> {
        Ok(match src {
            Src::Pg => Self::Pg(pg_conn(&pg_src_url()).await?),
            Src::Mysql => Self::My(my_conn(&mysql_src_url()).await?),
        })
    }

    async fn exec(&mut self, sql: String) -> Res<()> {
        match self {
            Self::Pg(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut *c)
                .await
                .map(|_| ()),
            Self::My(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut *c)
                .await
                .map(|_| ()),
        }
        .map_err(|x| format!("{x}: {}", short(&sql)))
    }

    /// Run a transaction's SQL; the one value its last result row carries (the commit time).
    async fn tx(&mut self, sql: String) -> Res<i64> {
        let rows = match self {
            Self::Pg(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&mut *c)
                .await
                .map(|r| r.last().map(|r| r.try_get::<i64, _>(0))),
            Self::My(c) => sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .fetch_all(&mut *c)
                .await
                .map(|r| r.last().map(|r| r.try_get::<i64, _>(0))),
        }
        .map_err(|x| format!("{x}: {}", short(&sql)))?;
        match rows {
            Some(Ok(ts)) => Ok(ts),
            Some(Err(x)) => Err(format!("commit time: {x}")),
            None => Err(format!("no commit time returned: {}", short(&sql))),
        }
    }

    /// `count, md5` of a checksum query.
    async fn sum(&mut self, sql: String) -> Res<String> {
        let (n, s): (i64, Option<String>) = match self {
            Self::Pg(c) => {
                let r = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_one(&mut *c)
                    .await
                    .map_err(|x| format!("{x}: {}", short(&sql)))?;
                (r.try_get(0).map_err(e)?, r.try_get(1).map_err(e)?)
            }
            Self::My(c) => {
                let r = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .fetch_one(&mut *c)
                    .await
                    .map_err(|x| format!("{x}: {}", short(&sql)))?;
                (r.try_get(0).map_err(e)?, r.try_get(1).map_err(e)?)
            }
        };
        Ok(format!("{n} rows, md5 {}", s.unwrap_or_default()))
    }
}

fn short(sql: &str) -> String {
    sql.chars().take(300).collect()
}

const ROW_COLUMNS: &str = "id, name, email, amount, qty, created_at, updated_at, note";

fn create_sql(src: Src, t: &str) -> String {
    match src {
        Src::Pg => format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, name varchar(64) NOT NULL, email varchar(128) NOT NULL, \
             amount numeric(12,2) NOT NULL, qty int NOT NULL, created_at timestamp(6) NOT NULL, \
             updated_at timestamp(6) NOT NULL, note varchar(200) NOT NULL)"
        ),
        Src::Mysql => format!(
            "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(64) NOT NULL, email VARCHAR(128) NOT NULL, \
             amount DECIMAL(12,2) NOT NULL, qty INT NOT NULL, created_at DATETIME(6) NOT NULL, \
             updated_at DATETIME(6) NOT NULL, note VARCHAR(200) NOT NULL) ENGINE=InnoDB"
        ),
    }
}

fn hb_create_sql(src: Src) -> String {
    let hb = hb_table();
    match src {
        Src::Pg => format!(
            "CREATE TABLE {hb} (w int PRIMARY KEY, seq bigint NOT NULL, ts bigint NOT NULL)"
        ),
        Src::Mysql => format!(
            "CREATE TABLE {hb} (w INT PRIMARY KEY, seq BIGINT NOT NULL, ts BIGINT NOT NULL) ENGINE=InnoDB"
        ),
    }
}

fn fill_sql(src: Src, t: &str, rows: i64) -> String {
    match src {
        Src::Pg => format!(
            "INSERT INTO {t} SELECT g, 'name ' || g, 'user' || g || '@example.com', (g % 100000) / 100.0 + 0.01, \
             g % 1000, timestamp '2024-01-01 00:00:00' + g * interval '1 second', \
             timestamp '2024-06-01 12:00:00.123456' + g * interval '1 second', rpad('note ' || md5(g::text), 100, 'x') \
             FROM generate_series(1, {rows}) g"
        ),
        Src::Mysql => format!(
            "INSERT INTO {t} SELECT seq, CONCAT('name ', seq), CONCAT('user', seq, '@example.com'), \
             (seq % 100000) / 100 + 0.01, seq % 1000, TIMESTAMP'2024-01-01 00:00:00' + INTERVAL seq SECOND, \
             TIMESTAMP'2024-06-01 12:00:00.123456' + INTERVAL seq SECOND, RPAD(CONCAT('note ', MD5(seq)), 100, 'x') \
             FROM seq_1_to_{rows}"
        ),
    }
}

fn checksum_sql(src: Src, t: &str) -> String {
    let hb = t == hb_table();
    match src {
        Src::Pg => {
            let row = if hb {
                "concat_ws('|', w, seq, ts)".to_string()
            } else {
                "concat_ws('|', id, name, email, amount, qty, to_char(created_at, 'YYYY-MM-DD HH24:MI:SS.US'), \
                 to_char(updated_at, 'YYYY-MM-DD HH24:MI:SS.US'), note)"
                    .to_string()
            };
            let key = if hb { "w" } else { "id" };
            format!("SELECT count(*), md5(string_agg(md5({row}), '' ORDER BY {key})) FROM {t}")
        }
        Src::Mysql => {
            let row = if hb {
                "CONCAT_WS('|', w, seq, ts)".to_string()
            } else {
                "CONCAT_WS('|', id, name, email, amount, qty, DATE_FORMAT(created_at, '%Y-%m-%d %H:%i:%s.%f'), \
                 DATE_FORMAT(updated_at, '%Y-%m-%d %H:%i:%s.%f'), note)"
                    .to_string()
            };
            let key = if hb { "w" } else { "id" };
            format!(
                "SET STATEMENT group_concat_max_len = 4294967295 FOR \
                 SELECT COUNT(*), MD5(GROUP_CONCAT(MD5({row}) ORDER BY {key} SEPARATOR '')) FROM {t}"
            )
        }
    }
}

// ---- setup / cleanup / verify ------------------------------------------------------------------

async fn setup(args: &[String]) -> Res<()> {
    let [src, engine] = args else {
        return Err("usage: cdc_bench setup <mysql|pg> <fdi|native>".into());
    };
    let src = Src::parse(src)?;
    let native = match engine.as_str() {
        "fdi" => false,
        "native" => true,
        o => return Err(format!("unknown engine {o:?} (fdi or native)")),
    };
    if native && src != Src::Pg {
        return Err("native logical replication needs a PostgreSQL source".into());
    }
    let (rows, workers) = (rows()?, workers()?);
    let hb_rows: Vec<String> = (0..workers).map(|w| format!("({w}, 0, 0)")).collect();
    let mut s = Conn::open(src).await?;
    let mut d = pg_conn(&target_url()).await?;
    for t in all_tables() {
        s.exec(format!("DROP TABLE IF EXISTS {t}")).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {t}")))
            .execute(&mut d)
            .await
            .map_err(e)?;
    }
    for i in 0..TABLES {
        let t = table(i);
        s.exec(create_sql(src, &t)).await?;
        s.exec(fill_sql(src, &t, rows)).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(create_sql(Src::Pg, &t)))
            .execute(&mut d)
            .await
            .map_err(e)?;
        if native {
            sqlx::raw_sql(sqlx::AssertSqlSafe(fill_sql(Src::Pg, &t, rows)))
                .execute(&mut d)
                .await
                .map_err(e)?;
        }
    }
    let hb = hb_table();
    s.exec(hb_create_sql(src)).await?;
    s.exec(format!("INSERT INTO {hb} VALUES {}", hb_rows.join(",")))
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(hb_create_sql(Src::Pg)))
        .execute(&mut d)
        .await
        .map_err(e)?;
    if native {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {hb} VALUES {}",
            hb_rows.join(",")
        )))
        .execute(&mut d)
        .await
        .map_err(e)?;
    }
    let analyze = all_tables().join(", ");
    match src {
        Src::Pg => s.exec(format!("VACUUM ANALYZE {analyze}")).await?,
        Src::Mysql => s.exec(format!("ANALYZE TABLE {analyze}")).await?,
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {analyze}")))
        .execute(&mut d)
        .await
        .map_err(e)?;
    log(&format!(
        "setup: {TABLES} tables of {rows} rows + {hb} ({workers} rows) in the source; target {}",
        if native { "the same" } else { "empty" }
    ));
    Ok(())
}

fn publication() -> String {
    format!("{}_pub", prefix())
}
fn subscription() -> String {
    format!("{}_sub", prefix())
}
fn task_id(src: Src) -> String {
    format!(
        "{}{}",
        prefix(),
        match src {
            Src::Pg => "pg",
            Src::Mysql => "mysql",
        }
    )
}

async fn native_start() -> Res<()> {
    let (publ, sub) = (publication(), subscription());
    let mut s = pg_conn(&pg_src_url()).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE PUBLICATION {publ} FOR TABLE {}",
        all_tables().join(", ")
    )))
    .execute(&mut s)
    .await
    .map_err(e)?;
    // The subscription connects to the source as the server sees it.
    let conn = env(
        "NATIVE_CONNINFO",
        "host=127.0.0.1 port=5433 user=postgres dbname=test",
    );
    let mut d = pg_conn(&target_url()).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SUBSCRIPTION {sub} CONNECTION '{conn}' PUBLICATION {publ} WITH (copy_data = false)"
    )))
    .execute(&mut d)
    .await
    .map_err(e)?;
    // Wait until the apply worker streams (its slot on the source is active).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let active: Option<bool> =
            sqlx::query_scalar("SELECT active FROM pg_replication_slots WHERE slot_name = $1")
                .bind(&sub)
                .fetch_optional(&mut s)
                .await
                .map_err(e)?;
        if active == Some(true) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "subscription {sub}: its slot is not active after 60 s"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    log(&format!(
        "native: publication {publ} -> subscription {sub} streaming"
    ));
    Ok(())
}

/// Everything this benchmark creates, gone. Errors are reported, and the rest still tried.
async fn cleanup() -> Res<()> {
    let p = prefix();
    let mut errors = Vec::new();
    let mut note = |what: &str, r: Res<()>| {
        if let Err(x) = r {
            errors.push(format!("{what}: {x}"));
        }
    };
    let drop_tables = all_tables()
        .iter()
        .map(|t| format!("DROP TABLE IF EXISTS {t};"))
        .collect::<String>();
    match pg_conn(&target_url()).await {
        Ok(mut d) => {
            let sub = subscription();
            let exists: Res<Option<String>> =
                sqlx::query_scalar("SELECT subname::text FROM pg_subscription WHERE subname = $1")
                    .bind(&sub)
                    .fetch_optional(&mut d)
                    .await
                    .map_err(e);
            if let Ok(Some(_)) = exists {
                let r = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SUBSCRIPTION {sub}")))
                    .execute(&mut d)
                    .await;
                if r.is_err() {
                    // The source is gone: drop it without its slot (dropped below when reachable).
                    let r = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "ALTER SUBSCRIPTION {sub} DISABLE; ALTER SUBSCRIPTION {sub} SET (slot_name = NONE); DROP SUBSCRIPTION {sub}"
                    )))
                    .execute(&mut d)
                    .await;
                    note("target: drop subscription", r.map(|_| ()).map_err(e));
                }
            }
            let r = sqlx::raw_sql(sqlx::AssertSqlSafe(drop_tables.clone()))
                .execute(&mut d)
                .await;
            note("target: drop tables", r.map(|_| ()).map_err(e));
        }
        Err(x) => note("target", Err(x)),
    }
    match pg_conn(&pg_src_url()).await {
        Ok(mut s) => {
            let pattern = format!("{p}\\_%");
            let fdi_pattern = format!("fdi\\_{p}%");
            // Readers still attached (a pipeline killed hard) are ended first.
            let r = sqlx::query(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE (slot_name LIKE $1 OR slot_name LIKE $2) AND active_pid IS NOT NULL",
            )
            .bind(&pattern)
            .bind(&fdi_pattern)
            .execute(&mut s)
            .await;
            note("source: end readers", r.map(|_| ()).map_err(e));
            for _ in 0..50 {
                let r: Result<Vec<(String, bool)>, _> = sqlx::query_as(
                    "SELECT slot_name::text, active FROM pg_replication_slots WHERE slot_name LIKE $1 OR slot_name LIKE $2",
                )
                .bind(&pattern)
                .bind(&fdi_pattern)
                .fetch_all(&mut s)
                .await;
                let Ok(slots) = r else { break };
                if slots.is_empty() {
                    break;
                }
                for (slot, active) in slots {
                    if !active {
                        let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
                            .bind(&slot)
                            .execute(&mut s)
                            .await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let left: Vec<String> = sqlx::query_scalar(
                "SELECT slot_name::text FROM pg_replication_slots WHERE slot_name LIKE $1 OR slot_name LIKE $2",
            )
            .bind(&pattern)
            .bind(&fdi_pattern)
            .fetch_all(&mut s)
            .await
            .unwrap_or_default();
            if !left.is_empty() {
                note("source: slots", Err(format!("still there: {left:?}")));
            }
            let pubs: Vec<String> = sqlx::query_scalar(
                "SELECT pubname::text FROM pg_publication WHERE pubname LIKE $1 OR pubname LIKE $2",
            )
            .bind(&pattern)
            .bind(&fdi_pattern)
            .fetch_all(&mut s)
            .await
            .unwrap_or_default();
            for publ in pubs {
                let r = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP PUBLICATION {publ}")))
                    .execute(&mut s)
                    .await;
                note("source: drop publication", r.map(|_| ()).map_err(e));
            }
            let r = sqlx::raw_sql(sqlx::AssertSqlSafe(drop_tables.clone()))
                .execute(&mut s)
                .await;
            note("pg source: drop tables", r.map(|_| ()).map_err(e));
        }
        Err(x) => note("pg source", Err(x)),
    }
    match my_conn(&mysql_src_url()).await {
        Ok(mut m) => {
            let r = sqlx::raw_sql(sqlx::AssertSqlSafe(drop_tables))
                .execute(&mut m)
                .await;
            note("mysql source: drop tables", r.map(|_| ()).map_err(e));
        }
        Err(x) => note("mysql source", Err(x)),
    }
    if errors.is_empty() {
        log("cleanup: done");
        Ok(())
    } else {
        Err(format!("cleanup: {}", errors.join("; ")))
    }
}

async fn verify(args: &[String]) -> Res<()> {
    let [src] = args else {
        return Err("usage: cdc_bench verify <mysql|pg>".into());
    };
    let src = Src::parse(src)?;
    let mut s = Conn::open(src).await?;
    let mut d = Conn::Pg(pg_conn(&target_url()).await?);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut diff = None;
        let mut total = 0u64;
        for t in all_tables() {
            let a = s.sum(checksum_sql(src, &t)).await?;
            let b = d.sum(checksum_sql(Src::Pg, &t)).await?;
            if a != b {
                diff = Some(format!("{t}: source {a}, target {b}"));
                break;
            }
            total += a
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
        match diff {
            None => {
                println!("verified tables={} rows={total}", all_tables().len());
                return Ok(());
            }
            Some(x) if Instant::now() > deadline => {
                return Err(format!("target differs from the source after 60 s: {x}"));
            }
            Some(x) => {
                log(&format!("verify: not equal yet ({x})"));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

// ---- the fdi pipeline ---------------------------------------------------------------------------

/// Peak resident set size of this process so far, in KB (`VmHWM`).
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process has used so far.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Keeps the last position; says READY (stderr) at the first one: the copy is committed.
#[derive(Default)]
struct MemoryPosition(Mutex<Option<SourcePosition>>);

#[async_trait]
impl PositionStore for MemoryPosition {
    async fn save(&self, position: &SourcePosition) -> Result<(), String> {
        let mut p = self.0.lock().unwrap_or_else(|x| x.into_inner());
        if p.is_none() {
            eprintln!(
                "READY position={} peak_rss_kb={} cpu_secs={:.2}",
                position.0,
                peak_rss_kb(),
                cpu_secs()
            );
        }
        *p = Some(position.clone());
        Ok(())
    }
}

/// Schema drift is not expected here: it is logged.
struct LoggedMappings;

#[async_trait]
impl MappingEvents for LoggedMappings {
    async fn mark(&self, source: &TableId, status: MappingStatus) -> Result<(), String> {
        log(&format!("mapping of {source}: {}", status.as_str()));
        Ok(())
    }
    async fn added(&self, source: &TableId, _columns: &[ColumnInfo]) -> Result<(), String> {
        log(&format!("new source table {source}"));
        Ok(())
    }
}

fn connector(src: Option<Src>) -> Res<Arc<dyn Connector>> {
    match src {
        Some(Src::Mysql) => fdi_connector_mysql::Factory.create(&json!({ "url": mysql_src_url() })),
        Some(Src::Pg) => fdi_connector_postgres::Factory.create(&json!({ "url": pg_src_url() })),
        None => fdi_connector_postgres::Factory.create(&json!({ "url": target_url() })),
    }
    .map_err(e)
}

async fn pipe(args: &[String]) -> Res<()> {
    let [src] = args else {
        return Err("usage: cdc_bench pipe <mysql|pg>".into());
    };
    let src = Src::parse(src)?;
    let schema = match src {
        Src::Pg => "public".to_string(),
        Src::Mysql => mysql_src_url()
            .rsplit('/')
            .next()
            .and_then(|d| d.split('?').next())
            .unwrap_or("test")
            .to_string(),
    };
    let columns = |t: &str| -> Vec<(String, String)> {
        let cols: &[&str] = if t == hb_table() {
            &["w", "seq", "ts"]
        } else {
            &[
                "id",
                "name",
                "email",
                "amount",
                "qty",
                "created_at",
                "updated_at",
                "note",
            ]
        };
        cols.iter()
            .map(|c| (c.to_string(), c.to_string()))
            .collect()
    };
    let tables: Vec<TableMapping> = all_tables()
        .iter()
        .map(|t| TableMapping {
            source: TableId::new(schema.clone(), t.clone()),
            target_table: t.clone(),
            columns: columns(t),
            source_columns: columns(t).into_iter().map(|(s, _)| s).collect(),
        })
        .collect();
    let source = connector(Some(src))?;
    let target = connector(None)?;
    let cancel = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let events = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let fdi_types::run_event::RunEvent::Step(s) = ev {
                eprintln!("[step {}] {}", s.code.0, s.remarks);
            }
        }
    });
    let mut options = CdcOptions::default();
    // The pipeline's defaults unless asked otherwise (for experiments).
    if let Ok(ms) = std::env::var("CDC_COMMIT_MS") {
        options.commit_interval = Duration::from_millis(ms.parse().map_err(|_| "CDC_COMMIT_MS")?);
    }
    if let Ok(ms) = std::env::var("CDC_PROGRESS_MS") {
        options.progress_interval =
            Duration::from_millis(ms.parse().map_err(|_| "CDC_PROGRESS_MS")?);
    }
    let task = task_id(src);
    let req = CdcRequest {
        task_id: task.clone(),
        run_id: fdi_types::new_id(),
        source: source.clone(),
        target,
        tables,
        selection: None,
        mapping_events: Arc::new(LoggedMappings),
        operations: [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete]
            .into_iter()
            .collect::<HashSet<_>>(),
        server_id: None,
        resume: None,
        positions: Arc::new(MemoryPosition::default()),
        cancel: cancel.clone(),
        options,
    };
    let t0 = Instant::now();
    let run = tokio::spawn(fdi_cdc::run(req, tx));
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(e)?;
        let mut int = signal(SignalKind::interrupt()).map_err(e)?;
        let stopped = tokio::select! {
            _ = term.recv() => true,
            _ = int.recv() => true,
            _ = cancel.cancelled() => false,
        };
        if stopped {
            cancel.cancel();
        }
    }
    let out = tokio::select! {
        r = run => r.map_err(e)?,
        _ = tokio::time::sleep(Duration::from_secs(60)) => return Err("the pipeline did not end within 60 s of its cancel".into()),
    };
    let _ = events.await;
    let rss = peak_rss_kb();
    let cpu = cpu_secs();
    if let Some(changes) = source.change_log()
        && let Err(x) = changes.drop_reader(&fdi_cdc::reader_name(&task)).await
    {
        log(&format!("drop reader: {x}"));
    }
    println!(
        "status={} changes_read={} rows_written={} write_secs={:.1} peak_rss_kb={rss} cpu_secs={cpu:.2} secs={:.1} remarks={:?}",
        out.status.as_str(),
        out.rows_read,
        out.rows_written,
        out.write_ms as f64 / 1000.0,
        t0.elapsed().as_secs_f64(),
        out.remarks
    );
    if out.status == fdi_types::ExecuteStatus::Cancelled {
        Ok(())
    } else {
        Err(format!(
            "the pipeline ended {}: {}",
            out.status.as_str(),
            out.remarks
        ))
    }
}

// ---- the load generator and the lag poller -----------------------------------------------------

/// xorshift64*: cheap and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A generator connection and the keys it owns (`id % workers == w`, so workers never touch the
/// same row and never wait for each other).
struct Worker {
    w: usize,
    conn: Conn,
    src: Src,
    rng: Rng,
    live: Vec<Vec<i64>>,
    next_id: Vec<i64>,
    seq: i64,
    step: usize,
    sql: String,
}

/// One committed generator transaction.
#[derive(Clone, Copy)]
struct Committed {
    seq: i64,
    commit_us: i64,
}

impl Worker {
    async fn new(src: Src, w: usize, workers: usize, rows: i64) -> Res<Self> {
        let mut conn = Conn::open(src).await?;
        if src == Src::Pg {
            conn.exec("SET application_name = 'cdc_bench generator'".into())
                .await?;
        }
        let owned: Vec<i64> = (1..=rows)
            .filter(|id| (*id as usize) % workers == w)
            .collect();
        let mut first_new = rows + 1;
        while (first_new as usize) % workers != w {
            first_new += 1;
        }
        Ok(Self {
            w,
            conn,
            src,
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ ((w as u64 + 1) * 0x1000_0001)),
            live: vec![owned; TABLES],
            next_id: vec![first_new; TABLES],
            seq: 0,
            step: workers,
            sql: String::new(),
        })
    }

    fn change(&mut self) {
        use std::fmt::Write;
        let t = self.rng.below(TABLES as u64) as usize;
        let roll = self.rng.below(100);
        let n = self.seq;
        let r = self.rng.next();
        let ts = format!(
            "2025-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            1 + r % 12,
            1 + (r >> 4) % 28,
            (r >> 9) % 24,
            (r >> 14) % 60,
            (r >> 20) % 60,
            (r >> 26) % 1_000_000
        );
        let amount = format!("{}.{:02}", (r >> 8) % 100_000, r % 100);
        let name = table(t);
        let live = &mut self.live[t];
        if roll < 30 || live.is_empty() {
            let id = self.next_id[t];
            self.next_id[t] += self.step as i64;
            live.push(id);
            let _ = write!(
                self.sql,
                "INSERT INTO {name} ({ROW_COLUMNS}) VALUES ({id}, 'name {id}', 'user{id}@example.com', {amount}, {}, \
                 '{ts}', '{ts}', 'new {n:0>60}');",
                r % 1000
            );
        } else if roll < 40 {
            let i = self.rng.below(live.len() as u64) as usize;
            let id = live.swap_remove(i);
            let _ = write!(self.sql, "DELETE FROM {name} WHERE id = {id};");
        } else {
            let i = self.rng.below(live.len() as u64) as usize;
            let id = live[i];
            let _ = write!(
                self.sql,
                "UPDATE {name} SET qty = qty + 1, amount = {amount}, updated_at = '{ts}', \
                 note = 'upd {n:0>60}' WHERE id = {id};"
            );
        }
    }

    /// One transaction: CHANGES_PER_TX changes, then the heartbeat, then COMMIT.
    async fn transaction(&mut self) -> Res<Committed> {
        self.seq += 1;
        self.sql.clear();
        self.sql.push_str(match self.src {
            Src::Pg => "BEGIN;",
            Src::Mysql => "START TRANSACTION;",
        });
        for _ in 0..CHANGES_PER_TX {
            self.change();
        }
        let (hb, w, seq) = (hb_table(), self.w, self.seq);
        self.sql.push_str(&match self.src {
            Src::Pg => format!(
                "UPDATE {hb} SET seq = {seq}, ts = (extract(epoch FROM clock_timestamp()) * 1000000)::bigint \
                 WHERE w = {w} RETURNING ts; COMMIT;"
            ),
            Src::Mysql => format!(
                "SET @ts = CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED); \
                 UPDATE {hb} SET seq = {seq}, ts = @ts WHERE w = {w}; COMMIT; SELECT @ts;"
            ),
        });
        let sql = std::mem::take(&mut self.sql);
        let r = self.conn.tx(sql.clone()).await;
        self.sql = sql;
        Ok(Committed { seq, commit_us: r? })
    }
}

/// What the poller saw: per worker, (seq, first time seen) whenever it moved.
type Seen = Arc<Mutex<Vec<Vec<(i64, i64)>>>>;

async fn poller(workers: usize, seen: Seen, stop: CancellationToken) -> Res<()> {
    let mut d = pg_conn(&target_url()).await?;
    let sql = format!("SELECT w, seq FROM {}", hb_table());
    let mut last = vec![i64::MIN; workers];
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A failed poll is logged and retried on a new connection; 30 s of failures end the poller.
    let mut failing_since: Option<Instant> = None;
    while !stop.is_cancelled() {
        tick.tick().await;
        let t = now_us();
        let rows: Vec<(i32, i64)> = match sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_all(&mut d)
            .await
        {
            Ok(rows) => {
                failing_since = None;
                rows
            }
            Err(x) => {
                log(&format!("poller: {x}"));
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(30) {
                    return Err(format!("the target cannot be polled for 30 s: {x}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(c) = pg_conn(&target_url()).await {
                    d = c;
                }
                continue;
            }
        };
        let mut s = seen.lock().unwrap_or_else(|x| x.into_inner());
        for (w, seq) in rows {
            let w = w as usize;
            if w < workers && seq > last[w] {
                last[w] = seq;
                s[w].push((seq, t));
            }
        }
    }
    Ok(())
}

fn pct(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(((sorted.len() - 1) as f64) * q).round() as usize]
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

/// Lag of a committed transaction: first poll that saw its seq or a later one, minus its commit.
fn seen_at(seen: &[(i64, i64)], seq: i64) -> Option<i64> {
    let i = seen.partition_point(|(s, _)| *s < seq);
    seen.get(i).map(|(_, t)| *t)
}

async fn drive(args: &[String]) -> Res<()> {
    let [src, secs, rates, mode] = args else {
        return Err(
            "usage: cdc_bench drive <mysql|pg> <secs> <rate,rate,..> <fixed|search>".into(),
        );
    };
    let src = Src::parse(src)?;
    let secs: f64 = secs.parse().map_err(|_| "secs: a number")?;
    let rates: Vec<u64> = rates
        .split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(|r| r.parse().map_err(|_| format!("rate {r:?}: a number")))
        .collect::<Res<_>>()?;
    let search = match mode.as_str() {
        "fixed" => false,
        "search" => true,
        o => return Err(format!("mode {o:?}: fixed or search")),
    };
    let (workers, rows) = (workers()?, rows()?);
    let catchup = Duration::from_secs(env_num("CATCHUP_SECS", 300)?);
    let mut ws = Vec::with_capacity(workers);
    for w in 0..workers {
        ws.push(Worker::new(src, w, workers, rows).await?);
    }
    let seen: Seen = Arc::new(Mutex::new(vec![Vec::new(); workers]));
    let stop = CancellationToken::new();
    let poll = tokio::spawn(poller(workers, seen.clone(), stop.clone()));
    // A warm-up at the first rate, not measured: the pipeline's first changes after its copy
    // can wait for a commit deadline set while it was idle (see the report), which is not the
    // steady state the steps measure.
    let warmup = env_num("WARMUP_SECS", 5)? as f64;
    if rates.is_empty() || rates.contains(&0) {
        return Err("rates: at least one, none 0".into());
    }
    let mut plan: Vec<(u64, f64, bool)> = Vec::new();
    if warmup > 0.0 {
        plan.push((rates[0], warmup, false));
    }
    plan.extend(rates.iter().map(|&r| (r, secs, true)));
    let mut result = Ok(());
    for (rate, secs, measured) in plan {
        // Transactions of the whole step, paced as one stream: transaction k is due at
        // k * CHANGES_PER_TX / rate seconds, and worker k % workers sends it.
        let period = CHANGES_PER_TX as f64 / rate as f64;
        let total_tx = ((secs / period).round() as u64).max(1);
        let start = Instant::now();
        let start_us = now_us();
        let mut handles = Vec::with_capacity(workers);
        for (w, mut worker) in ws.drain(..).enumerate() {
            handles.push(tokio::spawn(async move {
                let mut done = Vec::new();
                let mut k = w as u64;
                let mut err = None;
                while k < total_tx {
                    let due = start + Duration::from_secs_f64(k as f64 * period);
                    tokio::time::sleep_until(due.into()).await;
                    match worker.transaction().await {
                        Ok(c) => done.push(c),
                        Err(x) => {
                            err = Some(x);
                            break;
                        }
                    }
                    k += workers as u64;
                }
                (worker, done, err)
            }));
        }
        let mut committed: Vec<Vec<Committed>> = Vec::with_capacity(workers);
        let mut failure = None;
        for h in handles {
            let (worker, done, err) = h.await.map_err(e)?;
            ws.push(worker);
            committed.push(done);
            if let Some(x) = err {
                failure.get_or_insert(x);
            }
        }
        let gen_secs = start.elapsed().as_secs_f64();
        if let Some(x) = failure {
            result = Err(format!("generator at {rate}/s: {x}"));
            break;
        }
        let changes = committed.iter().map(Vec::len).sum::<usize>() * CHANGES_PER_TX;
        // Catch up: every worker's last transaction seen on the target.
        let deadline = Instant::now() + catchup;
        let caught_up = loop {
            let all = {
                let s = seen.lock().unwrap_or_else(|x| x.into_inner());
                committed.iter().zip(s.iter()).all(|(c, s)| {
                    c.last()
                        .is_none_or(|l| s.last().is_some_and(|(q, _)| *q >= l.seq))
                })
            };
            if all {
                break true;
            }
            if Instant::now() > deadline || poll.is_finished() {
                break false;
            }
            tokio::time::sleep(POLL).await;
        };
        let s = seen.lock().unwrap_or_else(|x| x.into_inner()).clone();
        // Lags in commit order (for the first / last quarter), and when the last one landed.
        let mut by_commit: Vec<(i64, i64)> = Vec::new();
        let (mut first_seen, mut last_seen) = (i64::MAX, start_us);
        let mut unseen = 0usize;
        for (c, s) in committed.iter().zip(&s) {
            for t in c {
                match seen_at(s, t.seq) {
                    Some(at) => {
                        by_commit.push((t.commit_us, (at - t.commit_us).max(0)));
                        first_seen = first_seen.min(at);
                        last_seen = last_seen.max(at);
                    }
                    None => unseen += 1,
                }
            }
        }
        by_commit.sort_unstable();
        let lags = sorted(by_commit.iter().map(|x| x.1).collect());
        let q = by_commit.len() / 4;
        let first = sorted(by_commit[..q].iter().map(|x| x.1).collect());
        let last = sorted(
            by_commit[by_commit.len() - q..]
                .iter()
                .map(|x| x.1)
                .collect(),
        );
        let gen_rate = changes as f64 / gen_secs;
        // From the first transaction seen on the target to the last: a steady lag does not count
        // against the rate, falling behind does.
        let applied_secs = (last_seen - first_seen.min(last_seen)) as f64 / 1e6;
        let applied_rate = if caught_up {
            changes as f64 / applied_secs.max(gen_secs * 0.5).max(1e-3)
        } else {
            0.0
        };
        let ms = |us: i64| us as f64 / 1000.0;
        // Lag stayed flat: the last quarter's median within 250 ms of the first quarter's, and
        // its p99 under 2 s. The generator kept the rate (else the source is the limit).
        let flat = caught_up
            && pct(&last, 0.5) <= pct(&first, 0.5) + 250_000
            && pct(&last, 0.99) < 2_000_000;
        let gen_ok = gen_rate >= 0.97 * rate as f64;
        if !measured {
            log(&format!(
                "warm-up {rate}/s for {secs} s: lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, caught up {caught_up}",
                ms(pct(&lags, 0.5)),
                ms(pct(&lags, 0.99)),
                ms(lags.last().copied().unwrap_or(0))
            ));
            if !caught_up {
                result = Err(format!(
                    "the warm-up at {rate}/s did not catch up{}",
                    if poll.is_finished() {
                        " (the poller ended, see its error below)"
                    } else {
                        ""
                    }
                ));
                break;
            }
            continue;
        }
        println!(
            "rate={rate} secs={secs} changes={changes} gen_rate={gen_rate:.0} gen_ok={} applied_rate={applied_rate:.0} \
             caught_up={} catchup_secs={:.1} lag_p50_ms={:.1} lag_p99_ms={:.1} lag_max_ms={:.1} \
             first_q_p50_ms={:.1} last_q_p50_ms={:.1} last_q_p99_ms={:.1} flat={}",
            gen_ok as u8,
            caught_up as u8,
            ((last_seen - start_us) as f64 / 1e6 - gen_secs).max(0.0),
            ms(pct(&lags, 0.5)),
            ms(pct(&lags, 0.99)),
            ms(lags.last().copied().unwrap_or(0)),
            ms(pct(&first, 0.5)),
            ms(pct(&last, 0.5)),
            ms(pct(&last, 0.99)),
            flat as u8
        );
        log(&format!(
            "step {rate}/s: generated {gen_rate:.0}/s, applied {applied_rate:.0}/s, lag p50 {:.0} ms p99 {:.0} ms, flat {flat}",
            ms(pct(&lags, 0.5)),
            ms(pct(&lags, 0.99))
        ));
        if !caught_up {
            result = Err(if poll.is_finished() {
                "the poller ended (see its error below)".to_string()
            } else {
                format!(
                    "at {rate}/s the target did not catch up within {} s ({unseen} transactions not seen)",
                    catchup.as_secs()
                )
            });
            break;
        }
        if search && (!flat || !gen_ok) {
            break;
        }
    }
    stop.cancel();
    if let Err(x) = poll.await.map_err(e)? {
        log(&format!("poller: {x}"));
        result = result.and(Err(format!("poller: {x}")));
    }
    result
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let rest = args.get(2..).unwrap_or(&[]);
    match args.get(1).map(String::as_str) {
        Some("setup") => setup(rest).await,
        Some("pipe") => pipe(rest).await,
        Some("native-start") => native_start().await,
        Some("drive") => drive(rest).await,
        Some("verify") => verify(rest).await,
        Some("cleanup") => cleanup().await,
        _ => Err("usage: cdc_bench setup | pipe | native-start | drive | verify | cleanup (see the file's doc)".into()),
    }
}
