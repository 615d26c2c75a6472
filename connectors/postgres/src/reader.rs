//! Streaming PostgreSQL reader. Both of its paths read the same plan (`plan_read`: the columns,
//! filters, order, incremental window or custom SQL, each column cast as the plan says) and cut
//! batches of `batch_rows` rows:
//!
//! - **binary COPY** (the default): `COPY (<plan SQL>) TO STDOUT (FORMAT binary)` on one pooled
//!   connection; the stream is decoded straight into Arrow builders
//!   ([`crate::binary::decode`]), a batch also being cut once it holds [`BATCH_BYTES`] of data so
//!   a table of wide rows stays flat in memory. Values come out exactly as on the row path.
//! - **rows** (the fallback): the plan's SELECT through sqlx `fetch`, rows decoded one by one
//!   into `BatchAssembler` by `pump_rows`.
//!
//! Columns without a binary decoder: the plan already casts every column whose type has no
//! direct read kind to text in its SELECT list (`TextAs`: json, jsonb, uuid, intervals, arrays,
//! enums, unconstrained numeric, ...), and text has a decoder, so every column of a PostgreSQL
//! plan decodes in binary. Two such columns are instead read natively on the COPY path, because
//! their binary form is cheaper than text and decodes to the same value: `numeric(p, s)` (into
//! `Decimal128(p, s)`) and `time` (into `Time64(µs)`). A plan that still had a column without a
//! decoder (a read kind PostgreSQL has no type for, `Int8`) is planned again for the row path,
//! and that read takes it. `FDI_PG_READ=rows` in the environment makes every read take the row
//! path (an escape hatch, not a tuning knob).
//!
//! A COPY stopped before its end (cancelled, a decode error, the batch receiver gone) leaves
//! its connection in the middle of the COPY: that connection is dropped, not pooled again, and
//! its query is cancelled on the server (`pg_cancel_backend` with the pid the read asked for
//! before starting the COPY; one round trip per read).
//!
//! The ranges of a split read hold a pooled connection each while they read, and the pool is
//! shared with the split's snapshot holder, the run's writer (when the target is this
//! datasource) and other runs. So that a split with more ranges than free connections does not
//! time out waiting for one (the pool gives up after 15 s), its readers take turns: at most
//! [`reads_at_once`] of them read at a time, the others waiting (cancellably, without a time
//! limit) for one of them to finish.

use std::sync::Mutex;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use async_trait::async_trait;
use fdi_connector::stream::send_batch;
use fdi_connector::{BatchSender, ColumnInfo, ConnectorError, ReadSpec, Result, SourceReader};
use fdi_sql_core::reader::{ColumnRead, ReadPlan, plan_read, pump_rows, read_as};
use fdi_sql_core::{BatchAssembler, Dialect, ReadKind, map_sqlx_error};
use futures::StreamExt;
use sqlx::pool::PoolConnection;
use sqlx::postgres::PgConnection;
use sqlx::{PgPool, Postgres};
use tokio_util::sync::CancellationToken;

use crate::PgConnector;
use crate::binary::Kind;
use crate::binary::decode::{ColumnWire, CopyDecoder};

use fdi_connector::BATCH_BYTES;

/// How a read fetches its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPath {
    /// `COPY (...) TO STDOUT (FORMAT binary)`, decoded into Arrow builders.
    BinaryCopy,
    /// The SELECT through sqlx `fetch`, row by row.
    Rows,
}

impl ReadPath {
    /// The binary COPY unless `FDI_PG_READ=rows`.
    fn default_path() -> Self {
        match std::env::var("FDI_PG_READ") {
            Ok(v) if v.eq_ignore_ascii_case("rows") => ReadPath::Rows,
            _ => ReadPath::BinaryCopy,
        }
    }
}

/// A snapshot the reads of one split share: a `REPEATABLE READ` transaction that exported it
/// ([`pg_export_snapshot`]) and stays open, on a connection of its own, until the last reader
/// holding it is dropped; each read imports it (`SET TRANSACTION SNAPSHOT`) before its COPY, so
/// the ranges together see the rows of one moment, as one read would.
///
/// [`pg_export_snapshot`]: https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-SNAPSHOT-SYNCHRONIZATION
pub struct SharedSnapshot {
    id: String,
    /// Closed (not pooled) when dropped: its transaction ends with it.
    _holder: PoolConnection<Postgres>,
}

impl SharedSnapshot {
    pub async fn export(pool: &PgPool) -> Result<Self> {
        let mut holder = pool
            .acquire()
            .await
            .map_err(|e| map_sqlx_error("export snapshot", e))?;
        holder.close_on_drop();
        sqlx::raw_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *holder)
            .await
            .map_err(|e| map_sqlx_error("export snapshot", e))?;
        let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
            .fetch_one(&mut *holder)
            .await
            .map_err(|e| map_sqlx_error("export snapshot", e))?;
        Ok(Self {
            id,
            _holder: holder,
        })
    }

    /// Starts a read's transaction in this snapshot.
    fn begin_sql(&self) -> String {
        format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            Dialect::Postgres.string_literal(&self.id)
        )
    }
}

/// The ranges of one split read that may read at once on `pool`: its connections less one for
/// the snapshot holder and one for a writer on the same datasource, at least one.
pub fn reads_at_once(pool: &PgPool) -> usize {
    (pool.options().get_max_connections() as usize)
        .saturating_sub(2)
        .max(1)
}

pub struct PgReader {
    pool: PgPool,
    /// The snapshot this read shares with the other ranges of a split read.
    snapshot: Option<std::sync::Arc<SharedSnapshot>>,
    /// The turns of a split read's ranges ([`reads_at_once`]): a read holds one while it reads.
    turns: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    plan: ReadPlan,
    batch_rows: usize,
    /// The binary COPY path: how each column arrives. None: the row path.
    copy: Option<Vec<ColumnWire>>,
    /// Tests: a smaller byte bound per batch.
    batch_bytes: usize,
}

/// A column as the binary COPY path reads it, and the binary kind it then arrives as.
fn copy_read(col: &ColumnInfo) -> (ColumnRead, Option<Kind>) {
    let mut read = read_as(Dialect::Postgres, col);
    let native = Kind::of_native(&col.native_type);
    let wire = match (&read.kind, native) {
        (ReadKind::TextAs(DataType::Decimal128(..)), Some(Kind::Numeric))
        | (ReadKind::TextAs(DataType::Time64(TimeUnit::Microsecond)), Some(Kind::Time)) => {
            read.as_text = false;
            native
        }
        (kind, _) => Kind::of_read(kind),
    };
    (read, wire)
}

impl PgReader {
    pub async fn open(c: &PgConnector, spec: ReadSpec) -> Result<Self> {
        Self::open_with(c, spec, ReadPath::default_path()).await
    }

    pub async fn open_with(c: &PgConnector, spec: ReadSpec, path: ReadPath) -> Result<Self> {
        if path == ReadPath::BinaryCopy {
            let wires = Mutex::new(Vec::new());
            let plan = plan_read(Dialect::Postgres, c, spec.query.clone(), |col| {
                let (read, wire) = copy_read(col);
                wires
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((col.name.clone(), wire));
                read
            })
            .await?;
            let wires = wires.into_inner().unwrap_or_else(|e| e.into_inner());
            let columns: Option<Vec<ColumnWire>> = wires
                .into_iter()
                .zip(&plan.kinds)
                .map(|((name, wire), read)| {
                    let c = ColumnWire {
                        name,
                        wire: wire?,
                        read: read.clone(),
                    };
                    c.decodable().then_some(c)
                })
                .collect();
            match columns {
                Some(columns) if columns.len() == plan.kinds.len() => {
                    return Ok(Self {
                        pool: c.pool.clone(),
                        snapshot: None,
                        turns: None,
                        plan,
                        batch_rows: spec.batch_rows,
                        copy: Some(columns),
                        batch_bytes: BATCH_BYTES,
                    });
                }
                _ => tracing::debug!("a column has no binary COPY decoder: reading rows"),
            }
        }
        let plan = plan_read(Dialect::Postgres, c, spec.query, |col| {
            read_as(Dialect::Postgres, col)
        })
        .await?;
        Ok(Self {
            pool: c.pool.clone(),
            snapshot: None,
            turns: None,
            plan,
            batch_rows: spec.batch_rows,
            copy: None,
            batch_bytes: BATCH_BYTES,
        })
    }

    /// This read as part of a split read sharing `snapshot`. Only the binary COPY path takes
    /// it: a read on the row path (`FDI_PG_READ=rows`) reads as of its own start.
    pub fn in_snapshot(mut self, snapshot: std::sync::Arc<SharedSnapshot>) -> Self {
        if self.copy.is_some() {
            self.snapshot = Some(snapshot);
        } else {
            tracing::warn!("a split range on the row path reads without the shared snapshot");
        }
        self
    }

    /// This read as one range of a split read taking `turns` with the others.
    pub fn taking_turns(mut self, turns: std::sync::Arc<tokio::sync::Semaphore>) -> Self {
        self.turns = Some(turns);
        self
    }

    /// The path this reader takes.
    #[cfg(test)]
    pub fn path(&self) -> ReadPath {
        if self.copy.is_some() {
            ReadPath::BinaryCopy
        } else {
            ReadPath::Rows
        }
    }

    /// The row path: pump_rows over sqlx `fetch`.
    async fn read_rows(&self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        fdi_sql_core::statement_log::debug("pg read", &self.plan.sql);
        let assembler = BatchAssembler::new(
            self.plan.schema.clone(),
            self.plan.kinds.clone(),
            self.batch_rows,
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(self.plan.sql.clone())).fetch(&self.pool);
        pump_rows(rows, assembler, &out, &cancel).await
    }

    /// The binary COPY path.
    async fn read_copy(
        &self,
        columns: &[ColumnWire],
        out: BatchSender,
        cancel: CancellationToken,
    ) -> Result<u64> {
        let sql = format!("COPY ({}) TO STDOUT (FORMAT binary)", self.plan.sql);
        fdi_sql_core::statement_log::debug("pg read", &sql);
        let decoder = CopyDecoder::new(
            self.plan.schema.clone(),
            columns.to_vec(),
            self.batch_rows,
            self.batch_bytes,
        )?;
        let mut conn = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
            c = self.pool.acquire() => c.map_err(|e| map_sqlx_error("read", e))?,
        };
        // The backend's pid, to stop its query should the COPY be left in the middle.
        let pid: i32 = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
            p = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *conn) => {
                p.map_err(|e| map_sqlx_error("read", e))?
            }
        };
        if let Some(snapshot) = &self.snapshot {
            sqlx::raw_sql(sqlx::AssertSqlSafe(snapshot.begin_sql()))
                .execute(&mut *conn)
                .await
                .map_err(|e| map_sqlx_error("read (import snapshot)", e))?;
        }
        let mut copying = CopyConn {
            conn: Some(conn),
            ended: false,
            pool: self.pool.clone(),
            pid,
        };
        let conn = copying.conn.as_mut().expect("just set");
        let read = copy_out(conn, &sql, decoder, &out, &cancel, &mut copying.ended).await;
        if self.snapshot.is_some() && copying.ended {
            // End the snapshot's transaction before the connection goes back to the pool.
            let conn = copying.conn.as_mut().expect("still held");
            if let Err(e) = sqlx::raw_sql("COMMIT").execute(&mut **conn).await {
                copying.ended = false;
                return Err(map_sqlx_error("read (end snapshot)", e));
            }
        }
        read
    }
}

/// The connection of a binary COPY. Left inside the COPY (an error, a cancel, or this read's
/// future dropped: the run's reader task aborted), it cannot serve anything else, and pooled
/// again it would hand the next user the rest of this COPY: it is closed instead (no graceful
/// close: that would wait for the server's next message) and its query cancelled, which would
/// otherwise run on until it next writes to the closed socket.
struct CopyConn {
    conn: Option<PoolConnection<Postgres>>,
    /// The server ended the COPY: the connection is usable again.
    ended: bool,
    pool: PgPool,
    pid: i32,
}

impl Drop for CopyConn {
    fn drop(&mut self) {
        if !self.ended
            && let Some(conn) = self.conn.take()
        {
            drop(conn.detach());
            cancel_backend(&self.pool, self.pid);
        }
    }
}

/// Stop the query of backend `pid` (in the background, from another connection of `pool`).
pub(crate) fn cancel_backend(pool: &PgPool, pid: i32) {
    // (Outside a runtime, when it is shutting down, the server notices the closed socket.)
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pool = pool.clone();
    runtime.spawn(async move {
        // Only a backend still there: cancelling a pid that already ended makes the server
        // send a WARNING notice, which sqlx logs.
        let stop =
            sqlx::query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .execute(&pool);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stop).await;
    });
}

/// Run `sql` (a COPY TO STDOUT in binary) on `conn` and send its rows as batches. `ended` is set
/// once the server ended the COPY (the connection is usable again).
async fn copy_out(
    conn: &mut PgConnection,
    sql: &str,
    mut decoder: CopyDecoder,
    out: &BatchSender,
    cancel: &CancellationToken,
    ended: &mut bool,
) -> Result<u64> {
    // One waiter for the whole loop (not one registration per chunk).
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let mut stream = tokio::select! {
        biased;
        _ = &mut cancelled => return Err(ConnectorError::cancelled()),
        s = conn.copy_out_raw(sql) => s.map_err(|e| map_sqlx_error("read", e))?,
    };
    let mut batches = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut cancelled => return Err(ConnectorError::cancelled()),
            next = stream.next() => next,
        };
        match next {
            Some(Ok(chunk)) => {
                decoder.feed(&chunk, &mut batches)?;
                for b in batches.drain(..) {
                    send_batch(out, b, cancel).await?;
                }
            }
            Some(Err(e)) => {
                // sqlx read the server's error and the end of the statement.
                *ended = true;
                return Err(map_sqlx_error("read", e));
            }
            None => break,
        }
    }
    *ended = true;
    if let Some(b) = decoder.finish()? {
        send_batch(out, b, cancel).await?;
    }
    Ok(decoder.total())
}

#[async_trait]
impl SourceReader for PgReader {
    fn schema(&self) -> SchemaRef {
        self.plan.schema.clone()
    }

    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64> {
        let _turn = match &self.turns {
            Some(turns) => Some(tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(ConnectorError::cancelled()),
                t = turns.clone().acquire_owned() => {
                    t.map_err(|e| ConnectorError::internal(format!("read turn: {e}")))?
                }
            }),
            None => None,
        };
        match &self.copy {
            Some(columns) => self.read_copy(columns, out, cancel).await,
            None => self.read_rows(out, cancel).await,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against the real server (127.0.0.1:5432, user postgres, db test), like writer.rs: the
    //! binary COPY path reads what the row path reads, value for value.

    use std::time::{Duration, Instant};

    use arrow::compute::concat_batches;
    use arrow::record_batch::RecordBatch;
    use fdi_connector::{ErrorKind, OrderBy, SourceQuery};
    use fdi_sql_core::content::ServerContent;
    use fdi_types::{WhereCondition, WhereOp};
    use sqlx::postgres::PgPoolOptions;

    use super::*;

    fn connector() -> PgConnector {
        connector_on(PgPoolOptions::new().max_connections(4))
    }

    fn connector_on(pool: PgPoolOptions) -> PgConnector {
        let content = serde_json::json!({"host": "127.0.0.1", "port": 5432, "user": "postgres",
                                         "database": "test"});
        let c = ServerContent::parse(&content, &["postgres"]).unwrap();
        let options = crate::connect_options(&c).unwrap();
        let pool = pool.connect_lazy_with(options.clone());
        PgConnector {
            cdc: crate::cdc::PgChangeLog::new(
                pool.clone(),
                crate::cdc::ReplicationTarget::new(&options, None, None),
                "public".into(),
            ),
            pool,
            schema: "public".into(),
        }
    }

    fn unique(p: &str) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{p}_{}_{nanos}", std::process::id())
    }

    async fn exec(c: &PgConnector, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&c.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn table(name: &str) -> SourceQuery {
        SourceQuery::Table {
            table: name.into(),
            columns: vec![],
            filters: vec![],
            order_by: None,
        }
    }

    async fn open(c: &PgConnector, query: SourceQuery, path: ReadPath, rows: usize) -> PgReader {
        let spec = ReadSpec {
            query,
            batch_rows: rows,
        };
        let r = PgReader::open_with(c, spec, path).await.unwrap();
        assert_eq!(r.path(), path);
        r
    }

    async fn drain(r: &mut PgReader) -> Result<(Vec<RecordBatch>, u64)> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(100_000);
        let n = r.read(tx, CancellationToken::new()).await?;
        let mut v = Vec::new();
        while let Some(b) = rx.recv().await {
            v.push(b.rows);
        }
        Ok((v, n))
    }

    /// Both paths' rows of `query`, each concatenated; asserts they are equal.
    async fn both(c: &PgConnector, query: SourceQuery, rows: usize) -> RecordBatch {
        let mut bin = open(c, query.clone(), ReadPath::BinaryCopy, rows).await;
        let mut row = open(c, query, ReadPath::Rows, rows).await;
        assert_eq!(bin.schema(), row.schema());
        let (b, nb) = drain(&mut bin).await.unwrap();
        let (r, nr) = drain(&mut row).await.unwrap();
        assert_eq!(nb, nr);
        assert_eq!(b.len(), r.len(), "same batch cuts");
        let schema = bin.schema();
        let (b, r) = (
            concat_batches(&schema, &b).unwrap(),
            concat_batches(&schema, &r).unwrap(),
        );
        assert_eq!(b.num_rows() as u64, nb);
        for (i, f) in schema.fields().iter().enumerate() {
            assert_eq!(b.column(i), r.column(i), "column {}", f.name());
        }
        assert_eq!(b, r);
        b
    }

    const ALL_TYPES: &str = "id bigint PRIMARY KEY, flag boolean, s smallint, i int, r real,
        d double precision, amount numeric(12,2), huge numeric(38,10), tiny numeric(10,9),
        whole numeric(30,0), wide numeric(38,0), free numeric, name varchar(64), note text,
        code char(5), payload bytea, born date, at_time time, created timestamp(6),
        created3 timestamp(3), created_tz timestamptz, doc json, docb jsonb, uid uuid,
        span interval, tags text[], ttz timetz, nm name, addr inet";

    async fn all_types_table(c: &PgConnector, rows: i64) -> String {
        let t = unique("c_pgread_all");
        exec(c, &format!(
            "CREATE TABLE {t} ({ALL_TYPES});
             INSERT INTO {t} SELECT g, g % 3 = 0, (g % 30000) - 15000, g * 1000 - 500000, g / 7.0, g / 3.0 - 100,
               (g * 12.34 - 3000)::numeric(12,2), ('-1234567890123456789.' || g)::numeric(38,10),
               (g / 1000.0)::numeric(10,9) / 3, (10::numeric ^ (g % 25)) * g, (7::numeric ^ (g % 45)) * -1,
               (g::numeric / 7) ^ 3, 'name ' || g, repeat('ü名🚀 \\ 	 x', g % 5) || E'\\n\\r',
               left('c' || g, 5), decode(md5(g::text), 'hex') || '\\x00'::bytea,
               date '1970-01-01' + (g - 250) * 97, time '00:00:00' + g * interval '7 min 1.000001 s',
               timestamp '1960-02-29 23:59:59.999999' + g * interval '51 days 1 microsecond',
               timestamp '2000-01-01' - g * interval '1 hour 0.0005 s',
               timestamptz '2024-01-01 00:00:00+05' + g * interval '1 s 1 microsecond',
               json_build_object('g', g, 's', 'ü' || g), jsonb_build_object('g', g, 'a', jsonb_build_array(g, 'x')),
               md5(g::text)::uuid, g * interval '1 day 3 min 0.5 s', ARRAY['a' || g, 'ü'], timetz '12:00:00+02' + g * interval '1 min',
               ('n' || g)::name, ('10.0.' || (g % 256) || '.1')::inet
             FROM generate_series(1, {rows}) g;
             INSERT INTO {t} (id) VALUES (0);
             INSERT INTO {t} VALUES (-1, false, 0, 0, 'NaN', '-Infinity', 'NaN', 'NaN', 'NaN', 'NaN', 'NaN', 'NaN',
               '', '', '', '\\x', '1970-01-01', '24:00:00', '2000-01-01 00:00:00', '1999-12-31 23:59:59.999',
               '1970-01-01 00:00:00+00', '{{}}', '{{}}', '00000000-0000-0000-0000-000000000000', '0', '{{}}',
               '00:00:00+00', '', '::1'),
               (-2, true, -32768, -2147483648, 'Infinity', 'NaN', -9999999999.99, '-1234567890123456789012345678.1234567890',
               -9.999999999, -999999999999999999999999999999, -99999999999999999999999999999999999999,
               '-123456789012345678901234567890123456789.123456789', 'ü名🚀', '  leading and trailing  ', 'ü', '\\xff00',
               '0001-01-01', '23:59:59.999999', '1900-01-01 00:00:00.000001', '2262-04-11 23:47:16.854',
               '1969-12-31 23:59:59.999999+00', '{{\"a\": [1, 2.50]}}', '{{\"a\": [1, 2.50]}}',
               'ffffffff-ffff-ffff-ffff-ffffffffffff', '-178000000 years', '{{NULL,\"\"}}', '23:59:59.999999-12', 'ü', '255.255.255.255/32'),
               (-3, NULL, 32767, 2147483647, -0.0, 1e308, 0.01, 0.0000000001, 0.000000001, 1, 99999999999999999999999999999999999999,
               0, NULL, NULL, NULL, NULL, '9999-12-31', '00:00:00.000001', '9999-12-31 23:59:59.999999', NULL,
               '1900-06-30 12:00:00.5+07:30', 'null', 'null', NULL, NULL, NULL, NULL, NULL, NULL)"
        ))
        .await;
        t
    }

    /// Every type the copy tests cover (NULLs, unicode, 30+ digit and negative decimals, NaN,
    /// microsecond timestamps, bytea, empty strings, json, uuid...): the binary COPY reads
    /// exactly what the row path reads, in the same batches.
    #[tokio::test]
    async fn binary_copy_reads_what_rows_read() {
        let c = connector();
        let t = all_types_table(&c, 700).await;
        let b = both(&c, table(&t), 128).await;
        assert_eq!(b.num_rows(), 704);
        // Spot checks of the values themselves.
        let check = |col: &str, sql_id: i64, want: &str| {
            let i = b.schema().index_of(col).unwrap();
            let ids = b
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap();
            let row = (0..b.num_rows()).find(|&k| ids.value(k) == sql_id).unwrap();
            let got = arrow::util::display::array_value_to_string(b.column(i), row).unwrap();
            assert_eq!(got, want, "{col} of {sql_id}");
        };
        check("huge", -2, "-1234567890123456789012345678.1234567890");
        check("wide", -2, "-99999999999999999999999999999999999999");
        check("whole", -2, "-999999999999999999999999999999");
        check(
            "free",
            -2,
            "-123456789012345678901234567890123456789.123456789",
        );
        check("amount", -1, ""); // NaN: NULL, as on the row path
        check("at_time", -1, ""); // 24:00:00: NULL, as on the row path
        check("at_time", -2, "23:59:59.999999");
        check("name", -1, "");
        check("code", -1, "     ");
        check("note", -2, "  leading and trailing  ");
        check("name", -2, "ü名🚀");
        check("created", -2, "1900-01-01T00:00:00.000001");
        let tz = b.column(b.schema().index_of("created_tz").unwrap());
        let tz = tz
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .unwrap();
        let want = chrono::NaiveDate::from_ymd_opt(1900, 6, 30)
            .and_then(|d| d.and_hms_micro_opt(4, 30, 0, 500_000))
            .unwrap()
            .and_utc()
            .timestamp_micros();
        let at = ids(&b).iter().position(|&i| i == -3).unwrap();
        assert_eq!(tz.value(at), want, "created_tz of -3 (UTC)");
        check("payload", -2, "ff00");
        check("docb", -2, "{\"a\": [1, 2.50]}");
        let nulls = (0..b.num_columns())
            .filter(|&k| b.column(k).null_count() > 0)
            .count();
        assert_eq!(
            nulls,
            b.num_columns() - 1,
            "every column but the key has NULLs"
        );

        // Cut by bytes too: more, smaller batches, the same rows.
        let mut r = open(&c, table(&t), ReadPath::BinaryCopy, 10_000).await;
        r.batch_bytes = 16 << 10;
        let (batches, n) = drain(&mut r).await.unwrap();
        assert_eq!(n, 704);
        assert!(batches.len() >= 5, "{}", batches.len());
        assert_eq!(concat_batches(&r.schema(), &batches).unwrap(), b);
        exec(&c, &format!("DROP TABLE {t}")).await;
    }

    /// The server's own stream, cut at every offset, decodes to the same batches.
    #[tokio::test]
    async fn server_stream_cut_at_every_offset() {
        let c = connector();
        let t = all_types_table(&c, 12).await;
        let r = open(&c, table(&t), ReadPath::BinaryCopy, 4).await;
        let columns = r.copy.clone().unwrap();
        let mut conn = c.pool.acquire().await.unwrap();
        let sql = format!("COPY ({}) TO STDOUT (FORMAT binary)", r.plan.sql);
        let mut chunks = Vec::new();
        {
            let mut s = conn.copy_out_raw(&sql).await.unwrap();
            while let Some(chunk) = s.next().await {
                chunks.push(chunk.unwrap());
            }
        }
        assert!(chunks.len() > 10, "one message per row: {}", chunks.len());
        let stream: Vec<u8> = chunks.concat();
        let decode = |parts: &[&[u8]]| {
            let mut d = CopyDecoder::new(r.schema(), columns.clone(), 4, BATCH_BYTES).unwrap();
            let mut out = Vec::new();
            for p in parts {
                d.feed(p, &mut out).unwrap();
            }
            out.extend(d.finish().unwrap());
            out
        };
        let whole = decode(&[&stream]);
        assert_eq!(whole.len(), 4);
        assert_eq!(
            decode(&chunks.iter().map(|c| &c[..]).collect::<Vec<_>>()),
            whole
        );
        for cut in 0..=stream.len() {
            assert_eq!(
                decode(&[&stream[..cut], &stream[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        let (rows, _) = drain(&mut open(&c, table(&t), ReadPath::Rows, 4).await)
            .await
            .unwrap();
        assert_eq!(whole, rows);
        exec(&c, &format!("DROP TABLE {t}")).await;
    }

    fn cond(andor: Option<&str>, field: &str, op: WhereOp, v: Option<&str>) -> WhereCondition {
        WhereCondition {
            andor: andor.map(str::to_string),
            field_name: field.into(),
            field_type: None,
            op,
            value: v.map(str::to_string),
            min_value: Some("2024-01-01 00:10:00".into()),
            max_value: Some("2024-01-01 00:20:00".into()),
        }
    }

    fn ids(b: &RecordBatch) -> Vec<i64> {
        let a = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        a.iter().map(|v| v.unwrap()).collect()
    }

    /// Selected columns, filters, order, an incremental window and custom SQL hold on the COPY
    /// path (and match the row path).
    #[tokio::test]
    async fn filters_order_window_and_custom_sql() {
        let c = connector();
        let t = unique("c_pgread_f");
        exec(&c, &format!(
            "CREATE TABLE {t} (id bigint PRIMARY KEY, name text, amount numeric(12,2), at timestamp);
             INSERT INTO {t} SELECT g, 'n' || g, g * 1.5, timestamp '2024-01-01' + g * interval '1 min'
             FROM generate_series(1, 1000) g; INSERT INTO {t} VALUES (1001, 'x', NULL, NULL)"
        ))
        .await;
        let q = SourceQuery::Table {
            table: t.clone(),
            columns: vec!["id".into(), "amount".into()],
            filters: vec![
                cond(None, "id", WhereOp::LessEqual, Some("30")),
                cond(Some("or"), "name", WhereOp::Equal, Some("x")),
                cond(Some("and"), "id", WhereOp::NotInList, Some("3,4,5")),
            ],
            order_by: Some(OrderBy {
                column: "id".into(),
                descending: true,
            }),
        };
        let b = both(&c, q, 8).await;
        assert_eq!(b.num_columns(), 2);
        let mut want: Vec<i64> = (1..=30).filter(|i| !(3..=5).contains(i)).collect();
        want.push(1001);
        want.reverse();
        assert_eq!(ids(&b), want);

        let window = SourceQuery::Table {
            table: t.clone(),
            columns: vec![],
            filters: vec![cond(None, "at", WhereOp::InWindowOrNull, None)],
            order_by: Some(OrderBy {
                column: "id".into(),
                descending: false,
            }),
        };
        let b = both(&c, window, 100).await;
        let mut want: Vec<i64> = (10..20).collect();
        want.push(1001);
        assert_eq!(ids(&b), want);

        let sql = SourceQuery::Sql(format!(
            "SELECT id, amount * 3 AS triple, name || 'ü' AS name, at::date AS day, amount
             FROM {t} WHERE id % 7 = 0 ORDER BY id DESC;"
        ));
        let b = both(&c, sql, 50).await;
        assert_eq!(
            ids(&b),
            (1..=1001).rev().filter(|i| i % 7 == 0).collect::<Vec<_>>()
        );
        exec(&c, &format!("DROP TABLE {t}")).await;
    }

    /// A cancelled COPY returns at once, its query ends on the server, and the reader's pool
    /// serves the next read; an error in the middle of the stream fails the read cleanly.
    #[tokio::test]
    async fn cancel_and_errors() {
        let c = connector();
        let marker = 999_999_937;
        // generate_series in the select list streams (in FROM it is materialized first).
        let q = SourceQuery::Sql(format!(
            "SELECT g, md5(g::text) AS h FROM (SELECT generate_series(1, {marker}) AS g) s"
        ));
        for _ in 0..3 {
            let mut r = open(&c, q.clone(), ReadPath::BinaryCopy, 1000).await;
            let (tx, mut rx) = tokio::sync::mpsc::channel(2);
            let cancel = CancellationToken::new();
            let task = {
                let cancel = cancel.clone();
                tokio::spawn(async move { r.read(tx, cancel).await })
            };
            assert_eq!(rx.recv().await.unwrap().rows.num_rows(), 1000);
            let t0 = Instant::now();
            cancel.cancel();
            let e = tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .expect("cancelled within 2 s")
                .unwrap()
                .unwrap_err();
            assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
            assert!(t0.elapsed() < Duration::from_secs(2));
        }
        // The server ends the COPYs whose connection went away.
        let active = format!(
            "SELECT count(*)::int8 FROM pg_stat_activity WHERE query LIKE '%generate_series(1, {marker})%'
             AND state = 'active' AND query NOT LIKE '%pg_stat_activity%'"
        );
        let mut n: i64 = -1;
        for _ in 0..50 {
            n = sqlx::query_scalar(sqlx::AssertSqlSafe(active.clone()))
                .fetch_one(&c.pool)
                .await
                .unwrap();
            if n == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(n, 0, "COPY queries still running");

        // Cancelled before the first row arrives.
        let slow = SourceQuery::Sql("SELECT pg_sleep(30)::text AS x /* c_pgread_sleep */".into());
        let mut r = open(&c, slow, ReadPath::BinaryCopy, 10).await;
        let (tx, _rx) = tokio::sync::mpsc::channel(2);
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.cancel();
        });
        let t0 = Instant::now();
        let e = r.read(tx, cancel).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Cancelled);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        let sleeping =
            "SELECT count(*)::int8 FROM pg_stat_activity WHERE query LIKE '%c_pgread_sleep%'
             AND state = 'active' AND query NOT LIKE '%pg_stat_activity%'";
        let mut n: i64 = -1;
        for _ in 0..50 {
            n = sqlx::query_scalar(sleeping)
                .fetch_one(&c.pool)
                .await
                .unwrap();
            if n == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(n, 0, "the cancelled COPY still sleeps on the server");

        // A server error after some rows: the read fails, the connection stays usable.
        let bad = SourceQuery::Sql(
            "SELECT g, 1000 / (g - 4000) AS q FROM generate_series(1, 5000) g".into(),
        );
        let mut r = open(&c, bad, ReadPath::BinaryCopy, 100).await;
        let e = drain(&mut r).await.unwrap_err();
        assert!(e.to_string().contains("division by zero"), "{e}");
        let ok = SourceQuery::Sql("SELECT g FROM generate_series(1, 10) g".into());
        for _ in 0..8 {
            let (b, n) = drain(&mut open(&c, ok.clone(), ReadPath::BinaryCopy, 3).await)
                .await
                .unwrap();
            assert_eq!((b.len(), n), (4, 10));
        }
    }

    /// More split ranges than the pool has connections: the ranges take turns instead of
    /// waiting on the pool, which gives up after its acquire timeout (here 300 ms, while the
    /// batches wait 1.5 s for a consumer). Every range reads all its rows.
    #[tokio::test]
    async fn split_ranges_take_turns_on_a_small_pool() {
        use fdi_connector::Connector;
        let c = connector_on(
            PgPoolOptions::new()
                .max_connections(3)
                .acquire_timeout(Duration::from_millis(300)),
        );
        assert_eq!(reads_at_once(&c.pool), 1);
        let t = unique("c_pgread_turns");
        exec(
            &c,
            &format!(
                "CREATE TABLE {t} (id bigint PRIMARY KEY, v int);
             INSERT INTO {t} SELECT g, g FROM generate_series(1, 4000) g"
            ),
        )
        .await;
        let range = |from: i64| ReadSpec {
            query: SourceQuery::Table {
                table: t.clone(),
                columns: vec![],
                filters: vec![
                    cond(None, "id", WhereOp::MoreEqual, Some(&from.to_string())),
                    cond(
                        Some("and"),
                        "id",
                        WhereOp::Less,
                        Some(&(from + 1000).to_string()),
                    ),
                ],
                order_by: None,
            },
            batch_rows: 100,
        };
        let readers = c
            .split_readers((0..4).map(|i| range(1 + i * 1000)).collect())
            .await
            .unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let tasks: Vec<_> = readers
            .into_iter()
            .map(|mut r| {
                let tx = tx.clone();
                tokio::spawn(async move { r.read(tx, CancellationToken::new()).await })
            })
            .collect();
        drop(tx);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut seen = Vec::new();
        while let Some(b) = rx.recv().await {
            seen.extend(ids(&b.rows));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), 1000);
        }
        seen.sort();
        assert_eq!(seen, (1..=4000).collect::<Vec<i64>>());
        exec(&c, &format!("DROP TABLE {t}")).await;
    }
}
