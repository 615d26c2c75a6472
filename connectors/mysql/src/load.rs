//! The MySQL writer of single-table runs: `LOAD DATA LOCAL INFILE` with the rows streamed from
//! memory on a `mysql_async` connection (sqlx cannot answer the server's local-file request).
//!
//! - **Insert**: each batch is one `LOAD DATA LOCAL INFILE … INTO TABLE t`.
//! - **Upsert**: each batch is loaded into a session temporary table (the target's columns, no
//!   keys), then `INSERT INTO t … SELECT … FROM stage ON DUPLICATE KEY UPDATE …` and the stage
//!   is emptied. In the transaction that cleared the table (`clear_table`) rows can only collide
//!   with rows of this load, so they go straight in with `LOAD DATA … REPLACE` (the last row of
//!   a key wins, as with the upsert).
//! - **Encoding**: MySQL's default LOAD DATA text, spelled out in the statement (fields ending in
//!   a tab, lines in `\n`, `\` escapes, `\N` for NULL; see [`Output::LoadData`]); binary values
//!   travel as hex through `UNHEX`, `BIT(1)` booleans through `CAST(… AS UNSIGNED)`. The
//!   connection's zone is UTC and `NO_BACKSLASH_ESCAPES` is off, as on the sqlx pool.
//! - **Warnings**: `LOAD DATA LOCAL` cannot stop the client mid-file, so the server turns errors
//!   (a too long value, a bad number, a duplicate key) into warnings and loads mangled or no rows,
//!   even in strict mode. After every statement the OK packet's warning count is checked: any
//!   warning fails the write naming the first one (`SHOW WARNINGS`), as does a LOAD that took
//!   fewer rows than were sent; the transaction can then only be rolled back.
//! - **Streaming**: rows are formatted into chunks of [`CHUNK`] bytes sent through a bounded
//!   channel to the statement's local-file stream; statements run on a task that owns the
//!   connection (as the sqlx writer's), so batch n+1 is formatted while the server loads batch n.
//!   Memory stays at a few chunks per queued batch whatever the table size.
//! - **Fallback**: the first `begin` probes with an empty `LOAD DATA LOCAL` inside the
//!   transaction. Where the server refuses it (`local_infile` off: 1148, 3948, 4166) or the
//!   driver cannot (no local-file capability), the transaction is rolled back and the writer
//!   becomes the multi-row INSERT writer ([`crate::writer::MySqlWriter`], sqlx) for good, logging
//!   the reason at info level. The connection takes the datasource URL's TLS options
//!   (`ssl-mode`, `ssl-ca`, ...) as the sqlx pool does ([`crate::tls`]).
//! - **Transaction**: `begin` takes a pooled connection, `START TRANSACTION`, clears the table
//!   with `DELETE` (not `TRUNCATE`, which would commit); any failure poisons the writer so
//!   `commit` refuses; `abort` rolls back. A connection goes back to the pool only after a clean
//!   `COMMIT` / `ROLLBACK`; after a failure it is closed (the server rolls back). The pool resets
//!   a returned connection (`COM_RESET_CONNECTION`: temporary tables dropped, session set up
//!   again).
//!
//! Combination (CDC) tasks' table sets keep the sqlx writer: several tables lend one transaction
//! there and their micro-batches are small.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bytes::Bytes;
use fdi_connector::{ConnectorError, Result, SinkWriter, WriteMode, WriteSpec, WriteStats};
use fdi_sql_core::Dialect;
use fdi_sql_core::content::ServerContent;
use fdi_sql_core::dialect::split_qualified;
use fdi_sql_core::insert::{formatters, push_copy_line, upsert_suffix};
use fdi_sql_core::literal::Output;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Pool, PoolConstraints, PoolOpts};
use sqlx::MySqlPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::async_conn::{AsyncOpts, map_err, within_connect_timeout};
use crate::writer::MySqlWriter;

/// Bytes of LOAD DATA text per chunk handed to the connection.
pub(crate) const CHUNK: usize = 256 << 10;
/// Chunks buffered per statement (a batch of ~8k ordinary rows fits).
const CHUNKS: usize = 8;
/// Statements queued for the executing task.
const QUEUE: usize = 2;

/// The server's answers to a LOAD DATA LOCAL it will not run: the command is not allowed
/// (`local_infile` off, MariaDB / old MySQL), local data is disabled (MySQL 8), the client did
/// not announce the capability (MariaDB).
const REFUSED: [u16; 3] = [1148, 3948, 4166];

/// The `mysql_async` pool of one datasource for LOAD DATA writers, created on first use (it
/// needs a runtime, and its options' TLS settled), or why there is none.
pub struct LoadPool {
    opts: AsyncOpts,
    pool: OnceLock<Pool>,
}

impl LoadPool {
    /// The options of `content` (see [`AsyncOpts`]), the session set up as the sqlx pool's
    /// (UTC, backslash escapes), at most 8 connections.
    pub fn new(content: &ServerContent) -> Self {
        let pool = PoolOpts::default()
            .with_constraints(PoolConstraints::new(0, 8).expect("0 <= 8"))
            .with_inactive_connection_ttl(Duration::from_secs(60))
            .with_reset_connection(true);
        Self {
            opts: AsyncOpts::new(content, |b| {
                b.pool_opts(pool).setup(vec![
                    "SET SESSION time_zone = '+00:00', \
                     SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
                ])
            }),
            pool: OnceLock::new(),
        }
    }

    /// Why LOAD DATA is not used for this datasource, if it is not.
    fn refused(&self) -> Option<&str> {
        self.opts.unusable()
    }

    /// A pooled connection (the pool made on first use).
    async fn get_conn(&self) -> Result<Conn> {
        let opts = self.opts.settled("begin").await?;
        let pool = self.pool.get_or_init(|| Pool::new(opts.clone()));
        within_connect_timeout("begin", opts, pool.get_conn()).await
    }

    pub async fn close(&self) {
        if let Some(p) = self.pool.get() {
            let _ = p.clone().disconnect().await;
        }
    }
}

/// Why the server or the driver will not run a LOAD DATA LOCAL, if that is what `e` says.
fn refusal(e: &mysql_async::Error) -> Option<String> {
    match e {
        mysql_async::Error::Server(s) if REFUSED.contains(&s.code) => Some(format!(
            "the server refuses LOAD DATA LOCAL ({} {})",
            s.code, s.message
        )),
        mysql_async::Error::Driver(mysql_async::DriverError::LocalInfile(e)) => {
            Some(format!("the driver refuses LOAD DATA LOCAL ({e})"))
        }
        _ => None,
    }
}

/// The statements of one transaction.
struct Statements {
    /// Target of the loads, for messages.
    table: String,
    load: String,
    /// After each load (upsert through the stage).
    after: Vec<String>,
    /// The load must report as many rows as were sent (not with REPLACE, which counts twice).
    check_count: bool,
}

enum Job {
    /// One LOAD DATA of the `rows` rows streamed through `data`.
    Load {
        data: mpsc::Receiver<io::Result<Bytes>>,
        rows: u64,
    },
    /// A statement run as it is (deletes).
    Sql(String),
}

/// Fail on the warnings of the statement that just ran, naming the first.
async fn check_warnings(conn: &mut Conn, what: &str) -> Result<()> {
    let n = conn.get_warnings();
    if n == 0 {
        return Ok(());
    }
    let first: Option<(String, u32, String)> = conn
        .query_first("SHOW WARNINGS LIMIT 1")
        .await
        .map_err(|e| map_err(what, e))?;
    let first = first
        .map(|(level, code, message)| format!("{level} {code}: {message}"))
        .unwrap_or_else(|| "not listed".into());
    Err(ConnectorError::user(format!(
        "{what}: the server reported {n} warning(s), refusing to commit mangled rows; first: {first}"
    )))
}

/// Run one LOAD DATA LOCAL with `data` as the file.
async fn load(
    conn: &mut Conn,
    sql: &str,
    data: mpsc::Receiver<io::Result<Bytes>>,
) -> mysql_async::Result<()> {
    conn.set_infile_handler(async move {
        Ok(futures::stream::unfold(data, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        })
        .boxed())
    });
    fdi_sql_core::statement_log::debug("mysql load", sql);
    let r = conn.query_drop(sql).await;
    if r.is_err() {
        // Refused before the server asked for the file: drop the handler (and the receiver) now,
        // so a writer still sending rows is told at once.
        conn.set_infile_handler(async { Err(mysql_async::LocalInfileError::NoHandler.into()) });
    }
    r
}

async fn run_job(conn: &mut Conn, s: &Statements, job: Job) -> Result<()> {
    match job {
        Job::Load { data, rows } => {
            let what = format!("LOAD DATA into {}", s.table);
            load(conn, &s.load, data)
                .await
                .map_err(|e| map_err(&what, e))?;
            check_warnings(conn, &what).await?;
            let loaded = conn.affected_rows();
            if s.check_count && loaded != rows {
                return Err(ConnectorError::user(format!(
                    "{what}: the server took {loaded} of {rows} rows"
                )));
            }
            for sql in &s.after {
                fdi_sql_core::statement_log::debug("mysql write", sql);
                conn.query_drop(sql)
                    .await
                    .map_err(|e| map_err("write", e))?;
                check_warnings(conn, "write").await?;
            }
        }
        Job::Sql(sql) => {
            fdi_sql_core::statement_log::debug("mysql write", &sql);
            conn.query_drop(sql)
                .await
                .map_err(|e| map_err("write", e))?;
            check_warnings(conn, "write").await?;
        }
    }
    Ok(())
}

/// The task running the statements, owning the connection until joined.
struct Executor {
    queue: mpsc::Sender<Job>,
    /// Set by abort: skip what is still queued.
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Conn, Result<()>)>,
}

impl Executor {
    fn spawn(mut conn: Conn, statements: Arc<Statements>) -> Self {
        let (queue, mut rx) = mpsc::channel::<Job>(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Err(e) = run_job(&mut conn, &statements, job).await {
                    return (conn, Err(e));
                }
            }
            (conn, Ok(()))
        });
        Self {
            queue,
            stop,
            handle,
        }
    }

    /// Wait until every queued statement ran (or one failed) and take the connection back.
    async fn join(self) -> (Option<Conn>, Result<()>) {
        drop(self.queue);
        match self.handle.await {
            Ok((conn, r)) => (Some(conn), r),
            Err(e) => (
                None,
                Err(ConnectorError::internal(format!(
                    "statement task failed: {e}"
                ))),
            ),
        }
    }
}

/// How the first `begin` went.
enum Opened {
    Ready(Conn),
    /// LOAD DATA LOCAL is refused: use the INSERT writer.
    Refused(String),
}

/// The single-table MySQL writer (see the module doc).
pub struct LoadWriter {
    load: Arc<LoadPool>,
    spec: WriteSpec,
    /// The multi-row INSERT writer, used when LOAD DATA LOCAL is not available.
    insert: MySqlWriter,
    /// Decided: the INSERT writer serves every transaction.
    use_insert: bool,
    /// LOAD DATA LOCAL worked once on this writer's server.
    probed: bool,
    /// Running statements (owns the connection) between begin and commit/abort.
    exec: Option<Executor>,
    /// The connection, when no executor has it (after a failure, until abort).
    conn: Option<Conn>,
    failed: Option<String>,
}

impl LoadWriter {
    pub fn new(load: Arc<LoadPool>, pool: MySqlPool, spec: WriteSpec) -> Self {
        Self {
            load,
            insert: MySqlWriter::new(pool, spec.clone()),
            spec,
            use_insert: false,
            probed: false,
            exec: None,
            conn: None,
            failed: None,
        }
    }

    /// The multi-row INSERT writer serves this writer (LOAD DATA LOCAL was refused).
    #[cfg(test)]
    pub(crate) fn uses_insert(&self) -> bool {
        self.use_insert
    }

    fn poisoned(&self) -> Result<()> {
        match &self.failed {
            Some(cause) => Err(ConnectorError::external(format!(
                "the transaction failed earlier ({cause}) and can only be rolled back"
            ))),
            None => Ok(()),
        }
    }

    fn fall_back(&mut self, reason: &str) {
        tracing::info!(
            table = %self.spec.table,
            "MySQL writer: multi-row INSERT instead of LOAD DATA LOCAL: {reason}"
        );
        self.use_insert = true;
    }

    /// `(columns and @variables, SET list)` of the LOAD statements.
    fn load_columns(&self) -> (String, String) {
        let d = Dialect::MySql;
        let mut cols = Vec::new();
        let mut sets = Vec::new();
        for (i, c) in self.spec.columns.iter().enumerate() {
            let name = d.quote_ident(&c.name);
            let via = match &c.arrow_type {
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                    Some("UNHEX({})")
                }
                DataType::FixedSizeBinary(_) => Some("UNHEX({})"),
                t if c.native_type.eq_ignore_ascii_case("bit")
                    && (t == &DataType::Boolean || t.is_integer()) =>
                {
                    Some("CAST({} AS UNSIGNED)")
                }
                _ => None,
            };
            match via {
                Some(expr) => {
                    let var = format!("@fdi_{i}");
                    sets.push(format!("{name} = {}", expr.replace("{}", &var)));
                    cols.push(var);
                }
                None => cols.push(name),
            }
        }
        let set = if sets.is_empty() {
            String::new()
        } else {
            format!(" SET {}", sets.join(", "))
        };
        (cols.join(", "), set)
    }

    /// The stage table of upserts: a session temporary table next to the target.
    fn stage_table(&self) -> String {
        let d = Dialect::MySql;
        match split_qualified(&self.spec.table) {
            (Some(schema), _) => format!("{}.`fdi_load_stage`", d.quote_ident(schema)),
            (None, _) => "`fdi_load_stage`".into(),
        }
    }

    /// The statements of this transaction and the setup ones run once at its start.
    fn statements(&self) -> (Statements, Vec<String>) {
        let d = Dialect::MySql;
        let target = d.quote_table(&self.spec.table);
        let columns: Vec<String> = self.spec.columns.iter().map(|c| c.name.clone()).collect();
        let col_list = columns
            .iter()
            .map(|c| d.quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let (load_cols, set) = self.load_columns();
        let load_into = |table: &str, replace: bool| {
            format!(
                "LOAD DATA LOCAL INFILE 'fdi-rows' {}INTO TABLE {table} CHARACTER SET utf8mb4 \
                 FIELDS TERMINATED BY '\\t' ENCLOSED BY '' ESCAPED BY '\\\\' \
                 LINES STARTING BY '' TERMINATED BY '\\n' ({load_cols}){set}",
                if replace { "REPLACE " } else { "" }
            )
        };
        let mut setup = Vec::new();
        if self.spec.clear_table {
            // DELETE, not TRUNCATE: TRUNCATE would commit implicitly.
            setup.push(format!("DELETE FROM {target}"));
        }
        let statements = match &self.spec.mode {
            WriteMode::Insert => Statements {
                table: self.spec.table.clone(),
                load: load_into(&target, false),
                after: Vec::new(),
                check_count: true,
            },
            // Emptied in this transaction: only rows of this load can collide.
            WriteMode::Upsert { .. } if self.spec.clear_table => Statements {
                table: self.spec.table.clone(),
                load: load_into(&target, true),
                after: Vec::new(),
                check_count: false,
            },
            WriteMode::Upsert { keys, part_update } => {
                let stage = self.stage_table();
                // No keys on the stage: a batch holding a key twice upserts both in order.
                setup.push(format!("DROP TEMPORARY TABLE IF EXISTS {stage}"));
                setup.push(format!(
                    "CREATE TEMPORARY TABLE {stage} AS SELECT {col_list} FROM {target} LIMIT 0"
                ));
                let suffix = upsert_suffix(d, &columns, keys, *part_update);
                Statements {
                    table: self.spec.table.clone(),
                    load: load_into(&stage, false),
                    after: vec![
                        format!(
                            "INSERT INTO {target} ({col_list}) SELECT {col_list} FROM {stage}{suffix}"
                        ),
                        format!("DELETE FROM {stage}"),
                    ],
                    check_count: true,
                }
            }
        };
        (statements, setup)
    }

    /// Take a connection, open the transaction and run its setup (and, the first time, the
    /// probe). On a failure the connection is kept for abort.
    async fn open(&mut self, statements: &Statements, setup: &[String]) -> Result<Opened> {
        if let Some(reason) = self.load.refused() {
            return Ok(Opened::Refused(reason.to_string()));
        }
        let mut conn = self.load.get_conn().await?;
        let r = async {
            conn.query_drop("START TRANSACTION")
                .await
                .map_err(|e| map_err("begin", e))?;
            for sql in setup {
                fdi_sql_core::statement_log::debug("mysql write", sql);
                conn.query_drop(sql)
                    .await
                    .map_err(|e| map_err("write", e))?;
            }
            if !self.probed {
                // An empty file: what the server and the driver say to LOAD DATA LOCAL.
                let (tx, rx) = mpsc::channel(1);
                drop(tx);
                match load(&mut conn, &statements.load, rx).await {
                    Ok(()) => self.probed = true,
                    Err(e) => match refusal(&e) {
                        Some(reason) => return Ok(Some(reason)),
                        None => {
                            return Err(map_err(
                                &format!("LOAD DATA into {}", statements.table),
                                e,
                            ));
                        }
                    },
                }
            }
            Ok(None)
        }
        .await;
        match r {
            Ok(None) => Ok(Opened::Ready(conn)),
            Ok(Some(reason)) => {
                // Nothing written yet: roll back and pool the connection again.
                match conn.query_drop("ROLLBACK").await {
                    Ok(()) => drop(conn),
                    Err(_) => {
                        let _ = conn.disconnect().await;
                    }
                }
                Ok(Opened::Refused(reason))
            }
            Err(e) => {
                self.conn = Some(conn);
                self.failed = Some(e.message.clone());
                Err(e)
            }
        }
    }

    /// Join the executing task, keeping the connection; a failure poisons the writer.
    async fn join(&mut self) -> Result<()> {
        let Some(exec) = self.exec.take() else {
            return Ok(());
        };
        let (conn, r) = exec.join().await;
        self.conn = conn;
        if let Err(e) = &r {
            self.failed.get_or_insert_with(|| e.message.clone());
        }
        r
    }

    /// Queue a job on the executing task.
    async fn send(&mut self, job: Job) -> Result<()> {
        let queue = match &self.exec {
            Some(e) => e.queue.clone(),
            None => return Err(ConnectorError::internal("writer used outside begin/commit")),
        };
        if queue.send(job).await.is_err() {
            return Err(self.ended_early().await);
        }
        Ok(())
    }

    /// The executing task stopped (at a failed statement): its cause, the writer poisoned.
    async fn ended_early(&mut self) -> ConnectorError {
        if let Err(e) = self.join().await {
            return e;
        }
        let e = ConnectorError::internal("statement task ended early");
        self.failed = Some(e.message.clone());
        e
    }
}

#[async_trait]
impl SinkWriter for LoadWriter {
    async fn begin(&mut self) -> Result<()> {
        if self.use_insert {
            return self.insert.begin().await;
        }
        if self.exec.is_some() || self.conn.is_some() {
            return Err(ConnectorError::internal("begin called twice"));
        }
        self.failed = None;
        let (statements, setup) = self.statements();
        match self.open(&statements, &setup).await? {
            Opened::Ready(conn) => {
                self.exec = Some(Executor::spawn(conn, Arc::new(statements)));
                Ok(())
            }
            Opened::Refused(reason) => {
                self.fall_back(&reason);
                self.insert.begin().await
            }
        }
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        if self.use_insert {
            return self.insert.write(batch).await;
        }
        self.poisoned()?;
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(WriteStats::default());
        }
        let (data, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS);
        self.send(Job::Load {
            data: rx,
            rows: rows as u64,
        })
        .await?;
        let mut bytes = 0u64;
        let mut next = 0;
        while next < rows {
            // The formatters are not Send: one set per chunk, dropped before awaiting.
            let mut chunk = {
                let fmts = formatters(&batch, Output::LoadData)?;
                let mut buf = String::with_capacity(CHUNK + (CHUNK >> 2));
                while next < rows && buf.len() < CHUNK {
                    push_copy_line(&mut buf, &fmts, next);
                    next += 1;
                }
                Bytes::from(buf.into_bytes())
            };
            bytes += chunk.len() as u64;
            // A long row makes a long chunk: hand it over in pieces (one packet each).
            while !chunk.is_empty() {
                let piece = chunk.split_to(chunk.len().min(CHUNK));
                if data.send(Ok(piece)).await.is_err() {
                    // The statement failed or the task stopped.
                    drop(data);
                    return Err(self.ended_early().await);
                }
            }
        }
        Ok(WriteStats {
            rows: rows as u64,
            bytes,
            dirty_rows: 0,
        })
    }

    async fn commit(&mut self) -> Result<()> {
        if self.use_insert {
            return self.insert.commit().await;
        }
        if self.exec.is_none() && self.conn.is_none() {
            return Err(ConnectorError::internal("commit without begin"));
        }
        self.join().await?;
        self.poisoned()?;
        let mut conn = self
            .conn
            .take()
            .ok_or_else(|| ConnectorError::internal("connection lost"))?;
        if let Err(e) = conn.query_drop("COMMIT").await {
            let e = map_err("commit", e);
            self.failed = Some(e.message.clone());
            let _ = conn.disconnect().await;
            return Err(e);
        }
        // Clean: back to the pool. The table is emptied by the first transaction only.
        drop(conn);
        self.spec.clear_table = false;
        Ok(())
    }

    async fn delete(&mut self, keys: RecordBatch) -> Result<u64> {
        if self.use_insert {
            return self.insert.delete(keys).await;
        }
        self.poisoned()?;
        let table = Dialect::MySql.quote_table(&self.spec.table);
        for sql in fdi_sql_core::insert::delete_statements(Dialect::MySql, &table, &keys, 1000)? {
            self.send(Job::Sql(sql)).await?;
        }
        Ok(keys.num_rows() as u64)
    }

    async fn abort(&mut self) -> Result<()> {
        if self.use_insert {
            return self.insert.abort().await;
        }
        if let Some(exec) = &self.exec {
            exec.stop.store(true, Ordering::Relaxed);
        }
        let clean = self.join().await.is_ok() && self.failed.is_none();
        self.failed = None;
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        if !clean {
            let _ = conn.disconnect().await;
            return Ok(());
        }
        match conn.query_drop("ROLLBACK").await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = conn.disconnect().await;
                Err(map_err("rollback", e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the real server (127.0.0.1:3306, root, db test). Sources are filled with SQL, read
    //! with the connector's reader (the batches a run would carry) and written with the writer;
    //! targets are then compared with their sources inside the server.

    use std::sync::Arc;

    use fdi_connector::{Connector, ConnectorFactory, ReadSpec, SourceQuery};
    use tokio_util::sync::CancellationToken;

    use super::*;

    const URL: &str = "mysql://root@127.0.0.1:3306/test";

    /// Held for writing by the test that switches `local_infile` off, for reading by the others
    /// (which would otherwise fall back while it is off).
    static LOCAL_INFILE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

    fn unique(p: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{p}_{}_{nanos}", std::process::id())
    }

    async fn exec(sql: &str) {
        let pool = MySqlPool::connect(URL).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
    }

    async fn scalar(sql: &str) -> String {
        let pool = MySqlPool::connect(URL).await.unwrap();
        let v: Option<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT CAST(({sql}) AS CHAR)")))
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        pool.close().await;
        v.unwrap_or_else(|| "NULL".into())
    }

    fn connector() -> Arc<dyn Connector> {
        crate::Factory
            .create(&serde_json::json!({"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}))
            .unwrap()
    }

    /// Every row of `table`, as the reader batches it.
    async fn read(c: &Arc<dyn Connector>, table: &str, batch_rows: usize) -> Vec<RecordBatch> {
        let mut r = c
            .reader(ReadSpec {
                query: SourceQuery::Table {
                    table: table.into(),
                    columns: vec![],
                    filters: vec![],
                    order_by: None,
                },
                batch_rows,
            })
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(1024);
        r.read(tx, CancellationToken::new()).await.unwrap();
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.push(b.rows);
        }
        out
    }

    /// The writer `Connector::writer` gives, as its own type.
    async fn load_writer(
        c: &Arc<dyn Connector>,
        table: &str,
        mode: WriteMode,
        clear_table: bool,
    ) -> LoadWriter {
        let content = ServerContent::parse(
            &serde_json::json!({"host": "127.0.0.1", "port": 3306, "user": "root", "database": "test"}),
            &["mysql"],
        )
        .unwrap();
        LoadWriter::new(
            Arc::new(LoadPool::new(&content)),
            MySqlPool::connect_lazy(URL).unwrap(),
            WriteSpec {
                table: table.into(),
                columns: c.columns(table).await.unwrap(),
                mode,
                clear_table,
            },
        )
    }

    fn upsert() -> WriteMode {
        WriteMode::Upsert {
            keys: vec!["id".into()],
            part_update: false,
        }
    }

    const DDL: &str = "id bigint PRIMARY KEY, t text, v varchar(40), e varchar(10), \
        d decimal(38,6), n decimal(38,0), f double, i int, flag boolean, on_off bit(1), \
        day date, tm time(6), dt datetime(6), ts timestamp(6) NULL, b blob, vb varbinary(16), j json";

    /// Rows 1..=n with every kind of value, NULLs in every nullable column of row 3, and the
    /// awkward ones (tabs, newlines, backslashes, `\N` as text, NUL, unicode, empty strings,
    /// bytes 0x00 0x09 0x0a 0x5c) in the first rows.
    async fn fill_source(t: &str, n: i64) {
        exec(&format!("CREATE TABLE {t} ({DDL}) DEFAULT CHARSET=utf8mb4")).await;
        exec(&format!(
            "INSERT INTO {t} VALUES
             (1, 'tab\\there\\nnew line\\\\ back\\\\N slash \\r cr', 'ünïcødé 😀 中文', '', \
              12345678901234567890123456789012.123456, -99999999999999999999999999999999999999, \
              1.0000000000000002, -2147483648, true, b'1', '1000-01-01', '00:00:00.000001', \
              '1000-01-01 00:00:00.000001', '1970-01-01 00:00:01.000001', \
              X'00090a5c0d5c4e00', X'', '{{\"k\": \"v\\\\t\"}}'),
             (2, '\\\\N', 'x\\0y', '\\\\', 0.000001, 1, -0.0, 0, false, b'0', '9999-12-31', \
              '23:59:59.999999', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999', \
              X'5c', X'0a09', '[]'),
             (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
              NULL, NULL, NULL)"
        ))
        .await;
        exec(&format!(
            "INSERT INTO {t} SELECT seq, CONCAT('row\\t', seq, REPEAT('é', seq % 7)), MD5(seq), \
             IF(seq % 2 = 0, '', 'x'), seq * 1000000.000001, seq * 100000000000000000000, \
             seq / 7, seq, seq % 2, seq % 2, '2024-02-29' + INTERVAL seq DAY, \
             SEC_TO_TIME(seq % 86400 + 0.5), TIMESTAMP'2024-01-01 00:00:00.123456' + INTERVAL seq SECOND, \
             TIMESTAMP'2024-06-01 12:00:00.654321' + INTERVAL seq SECOND, UNHEX(MD5(seq)), \
             UNHEX(LPAD(HEX(seq), 8, '0')), JSON_OBJECT('n', seq) FROM seq_4_to_{n}"
        ))
        .await;
    }

    /// Rows of `a` that have no identical row (every column, NULL-safe) in `b`.
    async fn differing(a: &str, b: &str) -> String {
        let cols = [
            "id", "t", "v", "e", "d", "n", "f", "i", "flag", "on_off", "day", "tm", "dt", "ts",
            "b", "vb", "j",
        ];
        let on = cols
            .iter()
            .map(|c| format!("x.{c} <=> y.{c} AND (x.{c} IS NULL OR BINARY x.{c} = BINARY y.{c})"))
            .collect::<Vec<_>>()
            .join(" AND ");
        scalar(&format!(
            "SELECT count(*) FROM {a} x WHERE NOT EXISTS (SELECT 1 FROM {b} y WHERE {on})"
        ))
        .await
    }

    async fn assert_same(src: &str, dst: &str) {
        assert_eq!(
            scalar(&format!("SELECT count(*) FROM {dst}")).await,
            scalar(&format!("SELECT count(*) FROM {src}")).await
        );
        assert_eq!(differing(src, dst).await, "0", "{src} -> {dst}");
        assert_eq!(differing(dst, src).await, "0", "{dst} -> {src}");
    }

    async fn copy(c: &Arc<dyn Connector>, src: &str, w: &mut dyn SinkWriter, rows: usize) {
        w.begin().await.unwrap();
        for b in read(c, src, rows).await {
            w.write(b).await.unwrap();
        }
        w.commit().await.unwrap();
    }

    /// Copy `src` with LOAD DATA (no fallback).
    async fn load(c: &Arc<dyn Connector>, src: &str, w: &mut LoadWriter, rows: usize) {
        copy(c, src, w, rows).await;
        assert!(!w.uses_insert(), "LOAD DATA LOCAL is on here");
    }

    #[tokio::test]
    async fn load_round_trips_every_type() {
        let _shared = LOCAL_INFILE.read().await;
        let (src, dst) = (unique("c_ld_src"), unique("c_ld_dst"));
        fill_source(&src, 3000).await;
        exec(&format!("CREATE TABLE {dst} LIKE {src}")).await;
        exec(&format!("INSERT INTO {dst} (id) VALUES (-1), (-2)")).await;
        let c = connector();
        let mut w = load_writer(&c, &dst, WriteMode::Insert, true).await;
        load(&c, &src, &mut w, 1000).await;
        assert_same(&src, &dst).await;
        // The awkward values, spelled out.
        let row = |id: i64, cols: &str| {
            let dst = dst.clone();
            let cols = cols.to_string();
            async move {
                scalar(&format!(
                    "SELECT CONCAT_WS('|', {cols}) FROM {dst} WHERE id = {id}"
                ))
                .await
            }
        };
        assert_eq!(
            row(1, "HEX(t), v, CONCAT('[', e, ']'), d, n, HEX(b), CONCAT('[', HEX(vb), ']'), dt, ts, tm").await,
            format!(
                "{}|ünïcødé 😀 中文|[]|12345678901234567890123456789012.123456|\
                 -99999999999999999999999999999999999999|00090A5C0D5C4E00|[]|\
                 1000-01-01 00:00:00.000001|1970-01-01 00:00:01.000001|00:00:00.000001",
                hex("tab\there\nnew line\\ back\\N slash \r cr")
            )
        );
        assert_eq!(
            row(2, "t, HEX(v), e, HEX(b), HEX(vb)").await,
            "\\N|780079|\\|5C|0A09"
        );
        assert_eq!(
            row(
                3,
                "COALESCE(t, v, e, d, n, f, i, flag, on_off, day, tm, dt, ts, b, vb, j, 'all null')"
            )
            .await,
            "all null"
        );
        // Streaming runs commit again on the same writer: no clearing the second time.
        let more = unique("c_ld_more");
        exec(&format!("CREATE TABLE {more} LIKE {src}")).await;
        exec(&format!("INSERT INTO {more} SELECT id + 10000, t, v, e, d, n, f, i, flag, on_off, day, tm, dt, ts, b, vb, j FROM {src}")).await;
        load(&c, &more, &mut w, 700).await;
        assert_eq!(scalar(&format!("SELECT count(*) FROM {dst}")).await, "6000");
        for t in [&src, &dst, &more] {
            exec(&format!("DROP TABLE {t}")).await;
        }
    }

    /// LOAD DATA over TLS with the datasource URL's options: the server's certificate checked
    /// against the test CA and a client certificate presented. The 3307 server's user `x509` is
    /// `REQUIRE X509`, so neither a connection in the clear nor one without the certificate
    /// would be let in; the server's LOAD counter shows the rows took LOAD DATA.
    #[tokio::test]
    async fn load_over_tls_with_a_client_certificate() {
        let d = crate::tls::tests::tls_dir();
        let url = format!(
            "mysql://x509@127.0.0.1:3307/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={d}/ca.pem\
             &ssl-cert={d}/client.pem&ssl-key={d}/client-key.pem"
        );
        let (src, dst) = (unique("c_tls_src"), unique("c_tls_dst"));
        fill_source(&src, 500).await;
        let remote = MySqlPool::connect(&url).await.unwrap();
        let on_remote = |sql: String| {
            let remote = remote.clone();
            async move {
                let v: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT CAST(({sql}) AS CHAR)"
                )))
                .fetch_one(&remote)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
                v.unwrap_or_default()
            }
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {dst} ({DDL}) DEFAULT CHARSET=utf8mb4"
        )))
        .execute(&remote)
        .await
        .unwrap();
        let loads = "SELECT variable_value FROM information_schema.global_status \
                     WHERE variable_name = 'COM_LOAD'";
        let before: u64 = on_remote(loads.into()).await.parse().unwrap();
        let target = crate::Factory
            .create(&serde_json::json!({ "url": url }))
            .unwrap();
        let content = ServerContent::parse(&serde_json::json!({ "url": url }), &["mysql"]).unwrap();
        let mut w = LoadWriter::new(
            Arc::new(LoadPool::new(&content)),
            remote.clone(),
            WriteSpec {
                table: dst.clone(),
                columns: target.columns(&dst).await.unwrap(),
                mode: WriteMode::Insert,
                clear_table: false,
            },
        );
        load(&connector(), &src, &mut w, 200).await;
        let after: u64 = on_remote(loads.into()).await.parse().unwrap();
        assert!(after >= before + 3, "LOAD statements: {before} -> {after}");
        // The same rows on both servers, by a checksum over every column's bytes.
        let sum = |t: &str| {
            format!(
                "SELECT CONCAT(count(*), ' ', SUM(CRC32(CONCAT_WS('|', {})))) FROM {t}",
                [
                    "id", "t", "v", "e", "d", "n", "f", "i", "flag", "on_off", "day", "tm", "dt",
                    "ts", "b", "vb", "j"
                ]
                .map(|c| format!("COALESCE(HEX(CAST({c} AS BINARY)), '~')"))
                .join(", ")
            )
        };
        let here = scalar(&sum(&src)).await;
        assert!(here.starts_with("500 "), "{here}");
        assert_eq!(on_remote(sum(&dst)).await, here);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {dst}")))
            .execute(&remote)
            .await
            .unwrap();
        exec(&format!("DROP TABLE {src}")).await;
    }

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02X}")).collect()
    }

    /// Upsert into a table holding half the rows with other values (and a row the source does
    /// not have), through the stage table; and the REPLACE load of a table cleared first.
    #[tokio::test]
    async fn upsert_updates_half_and_inserts_half() {
        let _shared = LOCAL_INFILE.read().await;
        let (src, dst) = (unique("c_lu_src"), unique("c_lu_dst"));
        fill_source(&src, 4000).await;
        exec(&format!("CREATE TABLE {dst} LIKE {src}")).await;
        exec(&format!(
            "INSERT INTO {dst} (id, t, v, d, b) SELECT id, 'old', 'old', 0, X'00' FROM {src} WHERE id % 2 = 0"
        ))
        .await;
        exec(&format!("INSERT INTO {dst} (id, t) VALUES (-5, 'kept')")).await;
        let c = connector();
        let mut w = load_writer(&c, &dst, upsert(), false).await;
        load(&c, &src, &mut w, 999).await;
        assert_eq!(
            scalar(&format!("SELECT t FROM {dst} WHERE id = -5")).await,
            "kept"
        );
        exec(&format!("DELETE FROM {dst} WHERE id = -5")).await;
        assert_same(&src, &dst).await;

        // Cleared in the transaction: straight LOAD … REPLACE; a key twice in one batch keeps
        // the last row, as the upsert does.
        exec(&format!("UPDATE {dst} SET t = 'stale'")).await;
        let mut w = load_writer(&c, &dst, upsert(), true).await;
        w.begin().await.unwrap();
        assert!(!w.uses_insert());
        let batches = read(&c, &src, 1000).await;
        let first = batches[0].slice(0, 10);
        for b in batches {
            w.write(b).await.unwrap();
        }
        w.write(first).await.unwrap();
        w.commit().await.unwrap();
        assert_same(&src, &dst).await;
        for t in [&src, &dst] {
            exec(&format!("DROP TABLE {t}")).await;
        }
    }

    /// A value too long for its column, or a duplicate key, is a warning to LOAD DATA LOCAL
    /// (the row is truncated or skipped): the write fails and nothing is committed.
    #[tokio::test]
    async fn warnings_fail_the_write() {
        let _shared = LOCAL_INFILE.read().await;
        let (src, dst) = (unique("c_lw_src"), unique("c_lw_dst"));
        exec(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, v varchar(40))"
        ))
        .await;
        exec(&format!(
            "INSERT INTO {src} SELECT seq, IF(seq = 1500, 'much too long for five', 'ok') FROM seq_1_to_3000"
        ))
        .await;
        exec(&format!(
            "CREATE TABLE {dst} (id bigint PRIMARY KEY, v varchar(5))"
        ))
        .await;
        exec(&format!("INSERT INTO {dst} VALUES (-1, 'seed')")).await;
        let c = connector();
        for (mode, clear_table) in [
            (WriteMode::Insert, true),
            (upsert(), true),
            (upsert(), false),
        ] {
            let mut w = load_writer(&c, &dst, mode.clone(), clear_table).await;
            w.begin().await.unwrap();
            let mut err = None;
            for b in read(&c, &src, 500).await {
                if let Err(e) = w.write(b).await {
                    err = Some(e);
                    break;
                }
            }
            let err = match err {
                Some(e) => e,
                None => w
                    .commit()
                    .await
                    .expect_err("a truncated value must not commit"),
            };
            assert!(
                err.message.contains("1406") || err.message.contains("1265"),
                "{mode:?}: {}",
                err.message
            );
            assert!(!w.uses_insert());
            eprintln!("{mode:?} clear {clear_table}: {}", err.message);
            assert!(w.commit().await.is_err(), "a failed write must not commit");
            w.abort().await.unwrap();
            assert_eq!(scalar(&format!("SELECT count(*) FROM {dst}")).await, "1");
        }

        // A duplicate key (insert mode): skipped by LOAD DATA LOCAL, refused here.
        exec(&format!("UPDATE {src} SET v = 'ok'")).await;
        let mut w = load_writer(&c, &dst, WriteMode::Insert, false).await;
        exec(&format!("INSERT INTO {dst} VALUES (2000, 'dup')")).await;
        w.begin().await.unwrap();
        let mut failed = false;
        for b in read(&c, &src, 500).await {
            if w.write(b).await.is_err() {
                failed = true;
                break;
            }
        }
        if !failed {
            failed = w.commit().await.is_err();
        }
        assert!(failed, "a duplicate key must fail the load");
        assert!(!w.uses_insert());
        w.abort().await.unwrap();
        assert_eq!(scalar(&format!("SELECT count(*) FROM {dst}")).await, "2");
        for t in [&src, &dst] {
            exec(&format!("DROP TABLE {t}")).await;
        }
    }

    /// Abort (with loads queued) and a writer dropped mid-run (a cancelled run) commit nothing;
    /// the pool's connections stay usable.
    #[tokio::test]
    async fn aborted_or_dropped_writes_commit_nothing() {
        let _shared = LOCAL_INFILE.read().await;
        let (src, dst) = (unique("c_la_src"), unique("c_la_dst"));
        fill_source(&src, 5000).await;
        exec(&format!("CREATE TABLE {dst} LIKE {src}")).await;
        exec(&format!("INSERT INTO {dst} (id) VALUES (-1)")).await;
        let c = connector();
        for mode in [WriteMode::Insert, upsert()] {
            let mut w = load_writer(&c, &dst, mode.clone(), true).await;
            w.begin().await.unwrap();
            assert!(!w.uses_insert());
            for b in read(&c, &src, 400).await {
                w.write(b).await.unwrap();
            }
            w.abort().await.unwrap();
            w.abort().await.unwrap();
            assert_eq!(scalar(&format!("SELECT count(*) FROM {dst}")).await, "1");

            let mut w = load_writer(&c, &dst, mode.clone(), false).await;
            w.begin().await.unwrap();
            for b in read(&c, &src, 400).await.into_iter().take(5) {
                w.write(b).await.unwrap();
            }
            drop(w);
            // A write cut off in the middle of its rows (the run's future dropped).
            let mut w = load_writer(&c, &dst, mode.clone(), false).await;
            w.begin().await.unwrap();
            let all = read(&c, &src, 5000).await;
            let big = arrow::compute::concat_batches(&all[0].schema(), &all).unwrap();
            let _ = tokio::time::timeout(Duration::from_millis(2), w.write(big)).await;
            drop(w);
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(scalar(&format!("SELECT count(*) FROM {dst}")).await, "1");
        }
        // The connections went back clean: a full load works.
        let mut w = load_writer(&c, &dst, upsert(), true).await;
        load(&c, &src, &mut w, 1000).await;
        assert_same(&src, &dst).await;
        for t in [&src, &dst] {
            exec(&format!("DROP TABLE {t}")).await;
        }
    }

    /// With `local_infile` off the writer falls back to multi-row INSERTs and lands the same
    /// rows as the LOAD path.
    #[tokio::test]
    async fn local_infile_off_falls_back_to_insert() {
        let _exclusive = LOCAL_INFILE.write().await;
        let (src, dst) = (unique("c_lf_src"), unique("c_lf_dst"));
        fill_source(&src, 3000).await;
        exec(&format!("CREATE TABLE {dst} LIKE {src}")).await;
        let c = connector();
        let mut w = load_writer(&c, &dst, upsert(), true).await;
        let before = scalar("SELECT @@GLOBAL.local_infile").await;
        exec("SET GLOBAL local_infile = 0").await;
        let begun = w.begin().await;
        // Restored at once: other sessions on this server may want it.
        exec(&format!("SET GLOBAL local_infile = {before}")).await;
        begun.unwrap();
        assert!(w.uses_insert(), "local_infile off: the INSERT path");
        for b in read(&c, &src, 1000).await {
            w.write(b).await.unwrap();
        }
        w.commit().await.unwrap();
        assert_same(&src, &dst).await;
        // It stays on the INSERT path (here with local_infile on again).
        copy(&c, &src, &mut w, 1000).await;
        assert!(w.uses_insert());
        assert_same(&src, &dst).await;
        for t in [&src, &dst] {
            exec(&format!("DROP TABLE {t}")).await;
        }
    }
}
