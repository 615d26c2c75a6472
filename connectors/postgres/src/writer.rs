//! Transactional PostgreSQL writer: `COPY ... FROM STDIN` for inserts, COPY into a temporary
//! staging table + `INSERT ... ON CONFLICT` for upserts.
//!
//! A large insert into a table the transaction truncated builds the table's indexes after the
//! rows ([`crate::deferred_indexes`]).
//!
//! Inserts stream into one COPY that stays open across batches, run by a task of its own: the
//! writer encodes batch n+1 while the task sends batch n and the server parses and inserts it.
//! The COPY is finished and restarted every [`COPY_ROLLOVER_BYTES`], so a server-side error
//! (constraint, length) surfaces after a bounded amount of data. Batches whose columns all have a
//! binary wire form ([`crate::binary`]) go as binary COPY, others as COPY text.
//!
//! The writer holds one connection and runs `BEGIN` / `COMMIT` / `ROLLBACK` itself. The
//! connection goes back to the pool only after a clean `COMMIT` or `ROLLBACK`; in any other case
//! (an interrupted COPY, a failed statement, the writer dropped inside its transaction) it is
//! closed, which makes the server roll back whatever is open. Any failed statement poisons the
//! writer: `commit` then refuses, so a failed run can never report success.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_connector::{
    ConnectorError, Result, SinkWriter, TableSetWriter, WriteMode, WriteSpec, WriteStats,
};
use fdi_sql_core::insert::{formatters, push_copy_line, upsert_suffix};
use fdi_sql_core::literal::Output;
use fdi_sql_core::table_set::{LendableWriter, TableSet};
use fdi_sql_core::{Dialect, map_sqlx_error};
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::{PgPool, Postgres};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::binary;
use crate::deferred_indexes::{self, DEFER_INDEX_ROWS, DeferredIndexes};

/// The staging table of an upsert (one per table of a [`TableSet`], which suffixes it).
const STAGE: &str = "fdi_stage";

/// An insert COPY is finished and a new one started after this many bytes.
const COPY_ROLLOVER_BYTES: u64 = 64 << 20;

/// Encoded batches queued for the COPY task (each about one batch, ~1-2 MB).
const COPY_QUEUE: usize = 2;

/// A pooled connection inside the writer's transaction. Dropped, it is closed rather than
/// pooled, unless [`TxConn::release`]d after the transaction ended cleanly.
pub struct TxConn(Option<PoolConnection<Postgres>>);

impl TxConn {
    fn conn(&mut self) -> &mut PgConnection {
        self.0.as_mut().expect("connection present until released")
    }

    /// The transaction ended cleanly: the connection may be pooled again.
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for TxConn {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            c.close_on_drop();
        }
    }
}

enum Msg {
    Data(Vec<u8>),
    /// Send the trailer and CopyDone; the task returns the connection.
    Finish,
}

/// A COPY in progress, owning the writer's connection until it ends.
struct CopyTask {
    tx: mpsc::Sender<Msg>,
    /// Buffers the task has sent, for reuse.
    spare: mpsc::UnboundedReceiver<Vec<u8>>,
    handle: JoinHandle<(TxConn, std::result::Result<u64, sqlx::Error>)>,
    binary: bool,
    sent: u64,
}

impl CopyTask {
    fn spawn(mut conn: TxConn, stmt: String, binary: bool) -> Self {
        let (tx, mut rx) = mpsc::channel::<Msg>(COPY_QUEUE);
        let (spare_tx, spare) = mpsc::unbounded_channel();
        let handle = tokio::spawn(async move {
            let r = async {
                let mut copy = conn.conn().copy_in_raw(&stmt).await?;
                if binary {
                    copy.send(binary::HEADER).await?;
                }
                loop {
                    match rx.recv().await {
                        Some(Msg::Data(buf)) => {
                            copy.send(buf.as_slice()).await?;
                            let _ = spare_tx.send(buf);
                        }
                        Some(Msg::Finish) => {
                            if binary {
                                copy.send(binary::TRAILER).await?;
                            }
                            return copy.finish().await;
                        }
                        None => {
                            // The writer went away without finishing: discard what was sent.
                            let _ = copy.abort("fdi: write abandoned").await;
                            return Err(sqlx::Error::Protocol("COPY abandoned".into()));
                        }
                    }
                }
            }
            .await;
            (conn, r)
        });
        Self {
            tx,
            spare,
            handle,
            binary,
            sent: 0,
        }
    }

    /// Wait for the task and take the connection back.
    async fn join(self) -> (Option<TxConn>, Result<()>) {
        drop(self.spare);
        match self.handle.await {
            Ok((conn, r)) => (
                Some(conn),
                r.map(|_| ()).map_err(|e| map_sqlx_error("copy", e)),
            ),
            Err(e) => (
                None,
                Err(ConnectorError::internal(format!("COPY task failed: {e}"))),
            ),
        }
    }
}

pub struct PgWriter {
    pool: PgPool,
    /// Quoted `"schema"."table"`.
    table_sql: String,
    columns: Vec<String>,
    spec: WriteSpec,
    /// This writer's staging table (upserts).
    stage: String,
    /// Binary kinds of the target columns, when they all have one.
    binary_kinds: Option<Vec<binary::Kind>>,
    /// The connection, inside `BEGIN` between `begin` and `commit`/`abort`, when no COPY has it.
    conn: Option<TxConn>,
    copy: Option<CopyTask>,
    /// A statement failed in this transaction: it can only be rolled back.
    failed: bool,
    /// A large load into the table this transaction truncated (`spec.clear_table`, which holds
    /// until the first commit) may build the indexes after the rows
    /// ([`crate::deferred_indexes`]). Off in a [`TableSet`], whose commit has no per-table step
    /// to rebuild them in.
    may_defer_indexes: bool,
    /// Rows inserted in this transaction.
    rows_in_tx: u64,
    /// Indexes dropped for this transaction's load, rebuilt before its commit.
    deferred: Option<DeferredIndexes>,
    text: String,
    /// Tests: COPY text only.
    #[cfg(test)]
    force_text: bool,
    /// Tests: a smaller rollover.
    #[cfg(test)]
    rollover: u64,
}

impl PgWriter {
    pub fn new(pool: PgPool, (schema, table): (String, String), spec: WriteSpec) -> Self {
        let d = Dialect::Postgres;
        let table_sql = format!("{}.{}", d.quote_ident(&schema), d.quote_ident(&table));
        let columns = spec.columns.iter().map(|c| c.name.clone()).collect();
        let natives: Vec<&str> = spec
            .columns
            .iter()
            .map(|c| c.native_type.as_str())
            .collect();
        let binary_kinds = binary::kinds_of(&natives);
        Self {
            pool,
            table_sql,
            columns,
            spec,
            stage: STAGE.to_string(),
            binary_kinds,
            conn: None,
            copy: None,
            failed: false,
            may_defer_indexes: true,
            rows_in_tx: 0,
            deferred: None,
            text: String::new(),
            #[cfg(test)]
            force_text: false,
            #[cfg(test)]
            rollover: COPY_ROLLOVER_BYTES,
        }
    }

    fn rollover(&self) -> u64 {
        #[cfg(test)]
        return self.rollover;
        #[cfg(not(test))]
        COPY_ROLLOVER_BYTES
    }

    fn column_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| Dialect::Postgres.quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Remember a failure: the transaction can no longer commit.
    fn check<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn take_conn(&mut self) -> Result<TxConn> {
        if self.failed {
            return Err(ConnectorError::external(
                "the transaction failed earlier and can only be rolled back",
            ));
        }
        self.conn
            .take()
            .ok_or_else(|| ConnectorError::internal("writer used outside begin/commit"))
    }

    async fn exec(&mut self, sql: &str) -> Result<()> {
        self.finish_copy().await?;
        let mut conn = self.take_conn()?;
        fdi_sql_core::statement_log::debug("pg write", sql);
        let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(conn.conn())
            .await
            .map(|_| ())
            .map_err(|e| map_sqlx_error("write", e));
        self.conn = Some(conn);
        self.check(r)
    }

    /// Start `COPY into FROM STDIN` (binary or text) in a task that owns the connection.
    fn open_copy(&mut self, into: &str, binary: bool) -> Result<()> {
        let conn = self.take_conn()?;
        let stmt = format!(
            "COPY {into} ({}) FROM STDIN{}",
            self.column_list(),
            if binary { " (FORMAT binary)" } else { "" }
        );
        self.copy = Some(CopyTask::spawn(conn, stmt, binary));
        Ok(())
    }

    /// Finish the open COPY (if any) and take the connection back; the server's errors for the
    /// copied rows (constraints, lengths) surface here.
    async fn finish_copy(&mut self) -> Result<()> {
        let Some(task) = self.copy.take() else {
            return Ok(());
        };
        // A failed send means the task already ended; join() says why.
        let _ = task.tx.send(Msg::Finish).await;
        let (conn, r) = task.join().await;
        self.conn = conn;
        self.check(r)
    }

    /// Encode `batch` and queue it on the open COPY. Returns the bytes queued.
    async fn send(&mut self, batch: &RecordBatch) -> Result<u64> {
        let Some(task) = self.copy.as_mut() else {
            return Err(ConnectorError::internal("no COPY in progress"));
        };
        let mut buf = task.spare.try_recv().unwrap_or_default();
        buf.clear();
        if task.binary {
            if !binary::encode(&mut buf, batch) {
                return self.check(Err(ConnectorError::internal(
                    "binary COPY encoding refused a batch",
                )));
            }
        } else {
            self.text.clear();
            let fmts = formatters(batch, Output::CopyText)?;
            for i in 0..batch.num_rows() {
                push_copy_line(&mut self.text, &fmts, i);
            }
            buf.extend_from_slice(self.text.as_bytes());
        }
        let bytes = buf.len() as u64;
        task.sent += bytes;
        if task.tx.send(Msg::Data(buf)).await.is_err() {
            // The task ended early: it failed, and join() has the cause.
            let task = self.copy.take().expect("copy task present");
            let (conn, r) = task.join().await;
            self.conn = conn;
            self.check(r)?;
            return self.check(Err(ConnectorError::internal("COPY ended early")));
        }
        Ok(bytes)
    }

    fn is_binary(&self, batch: &RecordBatch) -> bool {
        #[cfg(test)]
        if self.force_text {
            return false;
        }
        self.binary_kinds
            .as_deref()
            .is_some_and(|k| binary::fits(k, batch))
    }

    /// Insert: stream the batch into the long-lived COPY.
    async fn insert(&mut self, batch: &RecordBatch) -> Result<u64> {
        let before = self.rows_in_tx;
        self.rows_in_tx += batch.num_rows() as u64;
        // Decided once, by the batch that takes the load past the threshold.
        if self.may_defer_indexes
            && self.spec.clear_table
            && before < DEFER_INDEX_ROWS
            && self.rows_in_tx >= DEFER_INDEX_ROWS
        {
            self.defer_indexes().await?;
        }
        let binary = self.is_binary(batch);
        if let Some(task) = &self.copy
            && (task.binary != binary || task.sent >= self.rollover())
        {
            self.finish_copy().await?;
        }
        if self.copy.is_none() {
            let into = self.table_sql.clone();
            self.open_copy(&into, binary)?;
        }
        self.send(batch).await
    }

    /// The load has grown large: drop the indexes of the table this transaction emptied, to
    /// build them once over all its rows before the commit.
    async fn defer_indexes(&mut self) -> Result<()> {
        self.finish_copy().await?;
        let mut conn = self.take_conn()?;
        let r = deferred_indexes::defer(conn.conn(), &self.table_sql)
            .await
            .map_err(|e| map_sqlx_error("defer indexes", e));
        self.conn = Some(conn);
        self.deferred = self.check(r)?;
        Ok(())
    }

    /// Build the indexes dropped for this transaction's load.
    async fn rebuild_indexes(&mut self) -> Result<()> {
        let Some(deferred) = self.deferred.take() else {
            return Ok(());
        };
        self.finish_copy().await?;
        let mut conn = self.take_conn()?;
        let r = deferred
            .rebuild(conn.conn())
            .await
            .map_err(|e| map_sqlx_error("rebuild indexes", e));
        self.conn = Some(conn);
        self.check(r)
    }

    /// This writer's transaction ended (committed or rolled back).
    fn tx_ended(&mut self) {
        self.rows_in_tx = 0;
        self.deferred = None;
    }

    /// Upsert: COPY the batch into the staging table, then merge it.
    async fn upsert(&mut self, batch: &RecordBatch, keys: &[String], part: bool) -> Result<u64> {
        let binary = self.is_binary(batch);
        let stage = self.stage.clone();
        self.open_copy(&stage, binary)?;
        let bytes = self.send(batch).await?;
        self.finish_copy().await?;
        let cols = self.column_list();
        let suffix = upsert_suffix(Dialect::Postgres, &self.columns, keys, part);
        self.exec(&format!(
            "INSERT INTO {} AS fdi_t ({cols}) SELECT {cols} FROM {stage}{suffix}",
            self.table_sql
        ))
        .await?;
        self.exec(&format!("TRUNCATE {stage}")).await?;
        Ok(bytes)
    }
}

#[async_trait]
impl SinkWriter for PgWriter {
    async fn begin(&mut self) -> Result<()> {
        if self.conn.is_some() || self.copy.is_some() {
            return Err(ConnectorError::internal("begin called twice"));
        }
        let tx = self.open_tx().await?;
        self.adopt(tx, true).await
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats> {
        if batch.num_rows() == 0 {
            return Ok(WriteStats::default());
        }
        let rows = batch.num_rows() as u64;
        let bytes = match self.spec.mode.clone() {
            WriteMode::Insert => self.insert(&batch).await?,
            WriteMode::Upsert { keys, part_update } => {
                self.upsert(&batch, &keys, part_update).await?
            }
        };
        Ok(WriteStats {
            rows,
            bytes,
            dirty_rows: 0,
        })
    }

    async fn commit(&mut self) -> Result<()> {
        if self.conn.is_none() && self.copy.is_none() {
            return Err(ConnectorError::internal("commit without begin"));
        }
        self.finish_copy().await?;
        self.rebuild_indexes().await?;
        let conn = self.take_conn()?;
        let r = Self::commit_tx(conn).await;
        if r.is_ok() {
            self.committed();
        }
        self.check(r)
    }

    async fn delete(&mut self, keys: RecordBatch) -> Result<u64> {
        let statements = fdi_sql_core::insert::delete_statements(
            Dialect::Postgres,
            &self.table_sql,
            &keys,
            1000,
        )?;
        for sql in statements {
            self.exec(&sql).await?;
        }
        Ok(keys.num_rows() as u64)
    }

    async fn abort(&mut self) -> Result<()> {
        // After an interrupted COPY or a failed statement the connection is only closed (which
        // rolls back); otherwise it is rolled back and pooled again.
        let mut reusable = !self.failed;
        if let Some(task) = self.copy.take() {
            reusable = false;
            // Closing the queue makes the task abort its COPY.
            drop(task.tx);
            if let Ok((conn, _)) = task.handle.await {
                self.conn = Some(conn);
            }
        }
        self.failed = false;
        self.tx_ended();
        match self.conn.take() {
            Some(conn) => Self::rollback_tx(conn, reusable).await,
            None => Ok(()),
        }
    }
}

/// Run `sql` on a connection outside any writer.
async fn exec_on(conn: &mut TxConn, sql: &str, what: &str) -> Result<()> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(conn.conn())
        .await
        .map(|_| ())
        .map_err(|e| map_sqlx_error(what, e))
}

#[async_trait]
impl LendableWriter for PgWriter {
    type Tx = TxConn;

    async fn open_tx(&self) -> Result<TxConn> {
        let conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| map_sqlx_error("begin", e))?;
        let mut conn = TxConn(Some(conn));
        exec_on(&mut conn, "BEGIN", "begin").await?;
        Ok(conn)
    }

    async fn adopt(&mut self, tx: TxConn, first: bool) -> Result<()> {
        self.failed = false;
        self.conn = Some(tx);
        if !first {
            return Ok(());
        }
        if self.spec.clear_table {
            self.exec(&format!("TRUNCATE TABLE {}", self.table_sql))
                .await?;
        }
        if matches!(self.spec.mode, WriteMode::Upsert { .. }) {
            self.exec(&format!(
                "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA",
                self.stage,
                self.column_list(),
                self.table_sql
            ))
            .await?;
        }
        Ok(())
    }

    async fn give_back(&mut self) -> (Option<TxConn>, Result<()>) {
        let r = self.finish_copy().await;
        self.failed = false;
        (self.conn.take(), r)
    }

    async fn commit_tx(mut tx: TxConn) -> Result<()> {
        exec_on(&mut tx, "COMMIT", "commit").await?;
        tx.release();
        Ok(())
    }

    async fn rollback_tx(mut tx: TxConn, reusable: bool) -> Result<()> {
        exec_on(&mut tx, "ROLLBACK", "rollback").await?;
        if reusable {
            tx.release();
        }
        Ok(())
    }

    fn committed(&mut self) {
        // The table is emptied by the first transaction only (a streaming run commits again).
        self.spec.clear_table = false;
        self.tx_ended();
    }
}

/// Writers of several tables in one transaction on one connection.
pub fn table_set(
    pool: PgPool,
    tables: Vec<((String, String), WriteSpec)>,
) -> Box<dyn TableSetWriter> {
    let writers = tables
        .into_iter()
        .enumerate()
        .map(|(i, (table, spec))| {
            let mut w = PgWriter::new(pool.clone(), table, spec);
            w.stage = format!("{STAGE}_{i}");
            w.may_defer_indexes = false;
            w
        })
        .collect();
    Box::new(TableSet::new(writers))
}

#[cfg(test)]
mod tests {
    //! Against the real server (127.0.0.1:5432, user postgres, db test), like tests/postgres.rs.

    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use fdi_connector::{Connector, ConnectorFactory, ReadSpec, SourceQuery};
    use sqlx::postgres::PgPoolOptions;
    use tokio_util::sync::CancellationToken;

    use super::*;

    const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    fn connector() -> Arc<dyn Connector> {
        crate::Factory
            .create(&serde_json::json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}))
            .unwrap()
    }

    fn unique(p: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{p}_{}_{nanos}", std::process::id())
    }

    async fn pool() -> PgPool {
        PgPoolOptions::new().connect(URL).await.unwrap()
    }

    async fn exec(sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn scalar(sql: &str) -> String {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&pool().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn read_all(c: &Arc<dyn Connector>, table: &str) -> Vec<RecordBatch> {
        let mut reader = c
            .reader(ReadSpec {
                query: SourceQuery::Table {
                    table: table.into(),
                    columns: vec![],
                    filters: vec![],
                    order_by: None,
                },
                batch_rows: 100,
            })
            .await
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(1000);
        reader.read(tx, CancellationToken::new()).await.unwrap();
        collect(rx).await
    }

    async fn collect(
        mut rx: tokio::sync::mpsc::Receiver<fdi_connector::SourceBatch>,
    ) -> Vec<RecordBatch> {
        let mut v = Vec::new();
        while let Some(b) = rx.recv().await {
            v.push(b.rows);
        }
        v
    }

    async fn writer(
        c: &Arc<dyn Connector>,
        table: &str,
        mode: WriteMode,
        text: bool,
        pool: &PgPool,
    ) -> PgWriter {
        let spec = WriteSpec {
            table: table.into(),
            columns: c.columns(table).await.unwrap(),
            mode,
            clear_table: false,
        };
        let mut w = PgWriter::new(pool.clone(), ("public".into(), table.into()), spec);
        w.force_text = text;
        w.rollover = 4096;
        w
    }

    fn checksum(t: &str) -> String {
        format!(
            "SELECT coalesce(md5(string_agg(x::text, '|' ORDER BY id)), '') || ':' || count(*) FROM {t} x"
        )
    }

    /// Every binary-encoded type lands exactly as COPY text puts it (and as the source had it).
    #[tokio::test]
    async fn binary_copy_matches_text_copy() {
        let ddl = "id bigint PRIMARY KEY, flag boolean, s smallint, i int, r real, d double precision,
            amount numeric(12,2), huge numeric(38,10), tiny numeric(10,9), whole numeric(30,0), name varchar(64),
            note text, code char(5), payload bytea, born date, at_time time, created timestamp(6), created3 timestamp(3),
            created_tz timestamptz";
        let (src, bin, txt) = (
            unique("c_pgbin_src"),
            unique("c_pgbin_b"),
            unique("c_pgbin_t"),
        );
        exec(&format!(
            "CREATE TABLE {src} ({ddl}); CREATE TABLE {bin} ({ddl}); CREATE TABLE {txt} ({ddl});
             INSERT INTO {src} SELECT g, g % 3 = 0, (g % 30000) - 15000, g * 1000 - 500000, g / 7.0, g / 3.0 - 100,
               (g * 12.34 - 3000)::numeric(12,2), ('-1234567890123456789.' || g)::numeric(38,10), (g / 1000.0)::numeric(10,9) / 3,
               (10::numeric ^ (g % 25)) * g, 'name ' || g, repeat('ü名🚀 \\ 	 x', g % 5) || E'\\n\\r', left('c' || g, 5),
               decode(md5(g::text), 'hex') || '\\x00'::bytea, date '1970-01-01' + (g - 250) * 97,
               time '00:00:00' + g * interval '7 min 1.000001 s', timestamp '1960-02-29 23:59:59.999999' + g * interval '51 days 1 microsecond',
               timestamp '2000-01-01' - g * interval '1 hour 0.0005 s', timestamptz '2024-01-01 00:00:00+05' + g * interval '1 s 1 microsecond'
             FROM generate_series(1, 500) g;
             INSERT INTO {src} (id) VALUES (0);
             INSERT INTO {src} (id, amount, huge, tiny, whole, r, d) VALUES (-1, 0, 0, 0.000000001, 0, 'NaN', '-Infinity'),
               (-2, -0.01, -0.0000000001, -9.999999999, 999999999999999999999999999999, 'Infinity', 'NaN')"
        ))
        .await;
        let c = connector();
        let batches = read_all(&c, &src).await;
        assert!(batches.len() > 3);
        for (table, text) in [(&bin, false), (&txt, true)] {
            let mut w = writer(&c, table, WriteMode::Insert, text, &pool().await).await;
            assert!(w.binary_kinds.is_some());
            w.begin().await.unwrap();
            for b in &batches {
                assert_eq!(w.is_binary(b), !text);
                w.write(b.clone()).await.unwrap();
            }
            w.commit().await.unwrap();
        }
        let want = scalar(&checksum(&src)).await;
        assert!(want.ends_with(":503"), "{want}");
        assert_eq!(scalar(&checksum(&bin)).await, want, "binary copy");
        assert_eq!(scalar(&checksum(&txt)).await, want, "text copy");
        exec(&format!("DROP TABLE {src}, {bin}, {txt}")).await;
    }

    fn batch(ids: std::ops::Range<i64>, note: impl Fn(i64) -> String) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let id: ArrayRef = Arc::new(Int64Array::from_iter_values(ids.clone()));
        let n: ArrayRef = Arc::new(StringArray::from_iter_values(ids.map(note)));
        RecordBatch::try_new(schema, vec![id, n]).unwrap()
    }

    /// NUL characters are dropped (as COPY text does); a server-side error in a long-lived COPY
    /// fails the run at the latest at commit and leaves nothing; abort mid-COPY rolls back; upserts.
    #[tokio::test]
    async fn errors_abort_and_upsert() {
        let t = unique("c_pgbin_err");
        exec(&format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, note varchar(20))"
        ))
        .await;
        let c = connector();
        // One connection, reused by every writer: a connection pooled again in the middle of a
        // transaction would leak its rows into the next writer's commit.
        let p = PgPoolOptions::new()
            .max_connections(1)
            .connect(URL)
            .await
            .unwrap();
        for text in [false, true] {
            let mut w = writer(&c, &t, WriteMode::Insert, text, &p).await;
            w.begin().await.unwrap();
            w.write(batch(0..100, |i| format!("a\0b{i}")))
                .await
                .unwrap();
            w.write(batch(100..2000, |i| format!("n{i}")))
                .await
                .unwrap();
            // Duplicate keys: the COPY fails on the server.
            let mut failed = w.write(batch(5..6, |_| "dup".into())).await.is_err();
            for k in 0..50 {
                if failed {
                    break;
                }
                failed = w
                    .write(batch(3000 + k * 100..3100 + k * 100, |i| format!("m{i}")))
                    .await
                    .is_err();
            }
            if !failed {
                failed = w.commit().await.is_err();
            }
            assert!(failed, "a failed COPY must not commit");
            assert!(w.commit().await.is_err());
            w.abort().await.ok();
            assert_eq!(
                scalar(&format!("SELECT count(*)::text FROM {t}")).await,
                "0"
            );

            // Abort while a COPY is open.
            let mut w = writer(&c, &t, WriteMode::Insert, text, &p).await;
            w.begin().await.unwrap();
            w.write(batch(0..100, |i| format!("x{i}"))).await.unwrap();
            assert!(w.copy.is_some());
            w.abort().await.unwrap();
            assert_eq!(
                scalar(&format!("SELECT count(*)::text FROM {t}")).await,
                "0"
            );

            // Dropped while a COPY is open: nothing lands, the connection is not reused.
            let mut w = writer(&c, &t, WriteMode::Insert, text, &p).await;
            w.begin().await.unwrap();
            w.write(batch(0..100, |i| format!("x{i}"))).await.unwrap();
            drop(w);

            // Too long for varchar(20): fails.
            let mut w = writer(&c, &t, WriteMode::Insert, text, &p).await;
            w.begin().await.unwrap();
            let r = async {
                w.write(batch(0..10, |_| "y".repeat(21))).await?;
                w.commit().await
            }
            .await;
            assert!(r.is_err());
            w.abort().await.ok();
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(
            scalar(&format!("SELECT count(*)::text FROM {t}")).await,
            "0"
        );

        let mut w = writer(&c, &t, WriteMode::Insert, false, &p).await;
        w.begin().await.unwrap();
        w.write(batch(0..100, |i| format!("a\0b{i}")))
            .await
            .unwrap();
        w.commit().await.unwrap();
        assert_eq!(
            scalar(&format!("SELECT note FROM {t} WHERE id = 7")).await,
            "ab7"
        );
        for text in [false, true] {
            let mode = WriteMode::Upsert {
                keys: vec!["id".into()],
                part_update: true,
            };
            let mut w = writer(&c, &t, mode, text, &p).await;
            w.begin().await.unwrap();
            w.write(batch(50..150, |i| format!("u{i}"))).await.unwrap();
            w.write(batch(150..160, |i| format!("v{i}"))).await.unwrap();
            w.commit().await.unwrap();
        }
        assert_eq!(
            scalar(&format!("SELECT count(*) || ':' || string_agg(note, ',' ORDER BY id) FILTER (WHERE id IN (49, 50, 155)) FROM {t}")).await,
            "160:ab49,u50,v155"
        );
        // Many rollovers (4 KiB each) in one transaction.
        let mut w = writer(&c, &t, WriteMode::Insert, false, &p).await;
        w.begin().await.unwrap();
        for k in 0..40 {
            w.write(batch(1000 + k * 500..1500 + k * 500, |i| format!("r{i}")))
                .await
                .unwrap();
        }
        w.commit().await.unwrap();
        assert_eq!(
            scalar(&format!("SELECT count(*)::text FROM {t}")).await,
            "20160"
        );
        exec(&format!("DROP TABLE {t}")).await;
    }

    /// A table set commits every table in one transaction: nothing is visible before `commit`,
    /// a failure in one table leaves every table as it was, and the set can go on afterwards
    /// (clearing a table in the first transaction only).
    #[tokio::test]
    async fn table_set_commits_all_tables_at_once_or_none() {
        let (a, b) = (unique("c_set_a"), unique("c_set_b"));
        let count = |t: String| async move {
            scalar(&format!("SELECT count(*)::text FROM {t}"))
                .await
                .parse::<i64>()
                .unwrap()
        };
        let create = |sql: String| async move { exec(&sql).await };
        let rows = |r: std::ops::Range<i64>| batch(r, |i| format!("v{i}"));
        for t in [&a, &b] {
            create(format!(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, note varchar(300))"
            ))
            .await;
        }
        let c: Arc<dyn Connector> = crate::Factory
            .create(&serde_json::json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}))
            .unwrap();
        let mut seed = c
            .table_set_writer(vec![WriteSpec {
                table: a.clone(),
                columns: c.columns(&a).await.unwrap(),
                mode: WriteMode::Insert,
                clear_table: false,
            }])
            .await
            .unwrap()
            .expect("a table set");
        seed.begin().await.unwrap();
        seed.write(0, rows(0..10)).await.unwrap();
        seed.commit().await.unwrap();
        assert_eq!(count(a.clone()).await, 10);

        let specs = vec![
            WriteSpec {
                table: a.clone(),
                columns: c.columns(&a).await.unwrap(),
                mode: WriteMode::Upsert {
                    keys: vec!["id".into()],
                    part_update: false,
                },
                clear_table: false,
            },
            WriteSpec {
                table: b.clone(),
                columns: c.columns(&b).await.unwrap(),
                mode: WriteMode::Insert,
                clear_table: true,
            },
        ];
        let mut set = c
            .table_set_writer(specs)
            .await
            .unwrap()
            .expect("a table set");
        set.begin().await.unwrap();
        set.write(0, rows(5..15)).await.unwrap();
        let keys = rows(0..2).project(&[0]).unwrap();
        assert_eq!(set.delete(0, keys).await.unwrap(), 2);
        set.write(1, rows(0..100)).await.unwrap();
        set.write(0, rows(20..25)).await.unwrap();
        // (b is being cleared: TRUNCATE locks it until the commit.)
        assert_eq!(count(a.clone()).await, 10, "nothing visible before commit");
        set.commit().await.unwrap();
        assert_eq!((count(a.clone()).await, count(b.clone()).await), (18, 100));

        // A duplicate key in b: neither table changes.
        set.begin().await.unwrap();
        set.write(0, rows(100..110)).await.unwrap();
        let failed = match set.write(1, rows(50..51)).await {
            Err(_) => true,
            Ok(_) => set.commit().await.is_err(),
        };
        assert!(failed, "a duplicate key must fail the set");
        assert!(set.commit().await.is_err(), "a failed set must not commit");
        set.abort().await.unwrap();
        assert_eq!((count(a.clone()).await, count(b.clone()).await), (18, 100));

        // The set goes on; b is not cleared again.
        set.begin().await.unwrap();
        set.prepare(1).await.unwrap();
        set.write(0, rows(100..110)).await.unwrap();
        set.commit().await.unwrap();
        assert_eq!((count(a.clone()).await, count(b.clone()).await), (28, 100));
        for t in [&a, &b] {
            create(format!("DROP TABLE {t}")).await;
        }
    }

    /// The names, definitions and OIDs of a table's indexes, and its constraints.
    async fn index_state(t: &str) -> (String, String) {
        let defs = scalar(&format!(
            "SELECT string_agg(c.relname || ' ' || pg_get_indexdef(i.indexrelid), '; ' ORDER BY c.relname)
               || ' / ' || (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), '; ' ORDER BY conname)
                            FROM pg_constraint WHERE conrelid = '{t}'::regclass)
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '{t}'::regclass"
        ))
        .await;
        let oids = scalar(&format!(
            "SELECT string_agg(indexrelid::text, ',' ORDER BY indexrelid::regclass::text) FROM pg_index
             WHERE indrelid = '{t}'::regclass"
        ))
        .await;
        (defs, oids)
    }

    /// Load `rows` rows (ids 0..rows, note "n{id}", one duplicate id when `duplicate`) into `t`,
    /// clearing it first, 10,000 rows per batch.
    async fn cleared_load(
        c: &Arc<dyn Connector>,
        t: &str,
        rows: i64,
        duplicate: bool,
    ) -> Result<()> {
        let mut w = writer(c, t, WriteMode::Insert, false, &pool().await).await;
        w.spec.clear_table = true;
        w.rollover = COPY_ROLLOVER_BYTES;
        w.begin().await?;
        for start in (0..rows).step_by(10_000) {
            w.write(batch(start..(start + 10_000).min(rows), |i| {
                format!("n{i}")
            }))
            .await?;
        }
        if duplicate {
            w.write(batch(7..8, |_| "again".into())).await?;
        }
        match w.commit().await {
            Ok(()) => Ok(()),
            Err(e) => {
                w.abort().await.unwrap();
                Err(e)
            }
        }
    }

    /// A large load into a table the run clears builds the indexes after the rows: every index
    /// and constraint comes back with its name and definition (new OIDs show they were built
    /// again); a duplicate fails the run at the rebuild and leaves the table and its indexes as
    /// they were; a small load, or a table with a replica identity index, keeps them in place.
    #[tokio::test]
    async fn large_load_into_cleared_table_builds_indexes_after_the_rows() {
        let t = unique("c_pg_defer");
        exec(&format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, note text CONSTRAINT {t}_note_key UNIQUE DEFERRABLE);
             CREATE INDEX {t}_lower ON {t} (lower(note)) INCLUDE (id) WHERE id > 10;
             INSERT INTO {t} VALUES (-1, 'old')"
        ))
        .await;
        let c = connector();
        let before = index_state(&t).await;
        assert!(
            before.0.contains("UNIQUE") && before.0.contains("WHERE"),
            "{before:?}"
        );

        let rows = (DEFER_INDEX_ROWS + 20_000) as i64;
        cleared_load(&c, &t, rows, true).await.unwrap_err();
        assert_eq!(
            index_state(&t).await,
            before,
            "rolled back with the failed load"
        );
        assert_eq!(
            scalar(&format!("SELECT string_agg(note, ',') FROM {t}")).await,
            "old"
        );

        cleared_load(&c, &t, rows, false).await.unwrap();
        let after = index_state(&t).await;
        assert_eq!(after.0, before.0, "same names and definitions");
        assert_ne!(after.1, before.1, "built again");
        assert_eq!(
            scalar(&format!(
                "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || sum(id) || ' ' || min(note) FROM {t}"
            ))
            .await,
            format!("{rows} {rows} {} n0", rows * (rows - 1) / 2)
        );
        // The rebuilt indexes serve queries.
        assert_eq!(
            scalar(&format!(
                "SELECT note FROM {t} WHERE lower(note) = 'n99999' AND id > 10"
            ))
            .await,
            "n99999"
        );

        cleared_load(&c, &t, 5_000, false).await.unwrap();
        assert_eq!(
            index_state(&t).await,
            after,
            "a small load keeps the indexes"
        );

        exec(&format!(
            "CREATE UNIQUE INDEX {t}_rid ON {t} (id); ALTER TABLE {t} REPLICA IDENTITY USING INDEX {t}_rid"
        ))
        .await;
        let identity = index_state(&t).await;
        cleared_load(&c, &t, rows, false).await.unwrap();
        assert_eq!(
            index_state(&t).await,
            identity,
            "replica identity index: kept"
        );
        assert_eq!(
            scalar(&format!("SELECT count(*)::text FROM {t}")).await,
            rows.to_string()
        );
        exec(&format!("DROP TABLE {t}")).await;
    }
}
