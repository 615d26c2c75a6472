//! MySQL / MariaDB change log: the binlog, read as a replica reads it (`mysql_async` with its
//! `binlog` feature), for combination (CDC) tasks.
//!
//! **Server.** `log_bin` on, `binlog_format=ROW`, `binlog_row_image=FULL` ([`ChangeLog::check`]
//! names the one that is missing; MariaDB's `log_bin_compress` must be off). The user needs
//! `REPLICATION SLAVE` (and `REPLICATION CLIENT` / `BINLOG MONITOR` for `SHOW BINARY LOGS`),
//! `SELECT` on the tables and on information_schema.
//!
//! **Server id.** The reader registers as a replica with `ChangeSpec::server_id`, or else with a
//! number derived from `reader_name` (FNV-1a, folded into 1073741824..=2147483647): stable across
//! restarts of a task, different between tasks, and never the small ids servers are given (1 is
//! the server's own). Two readers with the same id kick each other off (the server keeps one dump
//! thread per replica id: the loser's run fails with an external error); an id equal to the
//! server's own is refused at `open`.
//! [`ChangeLog::position_at`] probes with short-lived ids of 1056964608..=1073741823.
//!
//! **Positions.** JSON `{"file": "mysql-bin.000003", "pos": 1178, "gtid": "0-1-46"}`: resuming
//! reads the event at `pos` of `file` first. `gtid` (MariaDB) is the GTID state there (all
//! domains, as `BINLOG_GTID_POS` gives it), present when the server has GTIDs. A position always
//! sits between event groups (after a commit, a DDL, or a rotate), never inside a transaction.
//!
//! **GTID.** When a resume position has a GTID state, it is preferred: the reader connects with
//! `@mariadb_slave_capability=4`, `@slave_connect_state=<gtid>` and an empty file name, so the
//! server finds the place itself (this survives binlog renames and fail-over to a replica of the
//! same GTID history); without one it uses file / pos. MariaDB's GTID event (type 162) is decoded
//! from the raw event and starts a group; the GTID state advances when the group commits.
//!
//! **Snapshot.** Without a resume position, the tables are copied in one `START TRANSACTION WITH
//! CONSISTENT SNAPSHOT`; MariaDB's `binlog_snapshot_file` / `binlog_snapshot_position` give its
//! exact binlog position without locking (MySQL: a brief `FLUSH TABLES WITH READ LOCK`, untested
//! here). Rows committed during the copy are not in it and come from the binlog once. Only
//! transactional (InnoDB) tables are consistent; MyISAM tables are copied as they are read.
//!
//! **Columns.** The binlog's table map has types but no names (unless
//! `binlog_row_metadata=FULL`, which is not relied on): names, keys (the primary key, else the
//! first unique index over NOT NULL columns) and value kinds come from information_schema,
//! cached per table and re-read when a table map's column count differs (a column added or
//! dropped) or after a DDL statement naming the table passes. They are the table's *current* columns: events older
//! than columns appended since are named by the first columns; columns dropped since cannot be
//! named (an error). `ChangeColumn::native_type` is `COLUMN_TYPE` (`int(10) unsigned`,
//! `decimal(38,10)`, `enum('a','b')`).
//!
//! **Values** ([`ChangeValue`](fdi_connector::change::ChangeValue) text): unsigned integers
//! arrive signed from the binlog (no signedness metadata) and are fixed with the column's
//! declared width; decimals exact with the column's scale; floats shortest round-trip text;
//! BIT as its unsigned number (`5`, BIT(1) `0`/`1`); YEAR its number; DATE / DATETIME / TIME as
//! `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS[.ffffff]`, `[-]HH:MM:SS[.ffffff]` (fraction only when not
//! zero); TIMESTAMP in UTC `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`; zero dates NULL; ENUM / SET their
//! member names (`a,c`); text columns decoded from their character set (utf8*, ascii, latin1 as
//! Windows-1252; others as UTF-8, lossily); binary / blob columns bytes; JSON text (MariaDB
//! stores it as LONGTEXT; MySQL's binary JSON is rendered to text).
//!
//! **Events.** Rows of captured tables are grouped into their transaction (a GTID or BEGIN
//! starts one; XID, COMMIT, XA PREPARE or a standalone statement ends it) and sent as one
//! `Transaction` when it commits, with the commit event's header time (seconds, as ms) and the
//! position after the commit; transactions without captured changes send nothing. A
//! `Heartbeat` with the current position goes at most once a second while other tables' events
//! pass, and while the stream is idle (the server is asked for a heartbeat event every second).
//! A transaction is held in memory until it commits.
//!
//! XA transactions are delivered at `XA PREPARE` (a later `XA ROLLBACK` is not undone).
//!
//! **Delivery.** Nothing is acknowledged to the server (the binlog is not consumed; its expiry
//! is the server's `binlog_expire_logs_seconds`). Resuming from a stored position re-reads
//! everything after it: at-least-once. [`ChangeLog::position_at`] has file granularity: the
//! latest binlog file that started at or before the time, so it may re-deliver changes from
//! before the time, never miss one after it.

mod position;
mod schema;
mod snapshot;
mod stream;
mod value;

use std::sync::Arc;

use async_trait::async_trait;
use fdi_connector::change::{ChangeEvent, ChangeLog, ChangeSource, ChangeSpec, TableId};
use fdi_connector::{Acknowledger, ConnectorError, Result, SourcePosition};
use fdi_sql_core::content::ServerContent;
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Opts};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub(crate) use crate::async_conn::map_err;
use crate::async_conn::{AsyncOpts, CONNECT_TIMEOUT, within_connect_timeout};

pub use position::{BinlogPosition, GtidState};

/// The binlog of one MySQL / MariaDB datasource.
pub struct MySqlChangeLog {
    /// Connection options (see [`AsyncOpts`]).
    opts: AsyncOpts,
}

impl MySqlChangeLog {
    pub fn new(content: &ServerContent) -> Self {
        Self {
            opts: AsyncOpts::new(content, |b| b),
        }
    }

    async fn opts(&self) -> Result<&Opts> {
        self.opts.settled("connecting").await
    }
}

async fn connect(opts: &Opts) -> Result<Conn> {
    within_connect_timeout("connecting", opts, Conn::new(opts.clone())).await
}

async fn send(out: &mpsc::Sender<ChangeEvent>, ev: ChangeEvent) -> Result<()> {
    out.send(ev)
        .await
        .map_err(|_| ConnectorError::internal("change event receiver closed"))
}

/// The replica server id of a reader without `ext_info.server_id`: FNV-1a of its name in
/// 1073741824..=2147483647 (bit 30 set, bit 31 clear).
pub fn default_server_id(reader_name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in reader_name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    0x4000_0000 | (h & 0x3FFF_FFFF)
}

/// A short-lived server id for probing binlog files: 1056964608..=1073741823.
fn probe_server_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    0x3F00_0000 | ((nanos ^ n.wrapping_mul(0x9E37_79B9) ^ std::process::id()) & 0x00FF_FFFF)
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[async_trait]
impl ChangeLog for MySqlChangeLog {
    async fn check(&self) -> Result<()> {
        let mut conn = connect(self.opts().await?).await?;
        let vars: Vec<(String, String)> = conn
            .query(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', \
                 'binlog_row_image', 'log_bin_compress', 'binlog_row_value_options')",
            )
            .await
            .map_err(|e| map_err("reading the binlog settings", e))?;
        let _ = conn.disconnect().await;
        let get = |name: &str| {
            vars.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_ascii_uppercase())
        };
        let log_bin = get("log_bin").unwrap_or_default();
        if log_bin != "ON" && log_bin != "1" {
            return Err(ConnectorError::user(format!(
                "log_bin is {}: the server must write a binary log (start it with --log-bin) \
                 for change capture",
                if log_bin.is_empty() { "OFF" } else { &log_bin }
            )));
        }
        let format = get("binlog_format").unwrap_or_default();
        if format != "ROW" {
            return Err(ConnectorError::user(format!(
                "binlog_format is {format}: change capture needs binlog_format=ROW"
            )));
        }
        let image = get("binlog_row_image").unwrap_or_default();
        if image != "FULL" {
            return Err(ConnectorError::user(format!(
                "binlog_row_image is {image}: change capture needs binlog_row_image=FULL"
            )));
        }
        if get("log_bin_compress").as_deref() == Some("ON") {
            return Err(ConnectorError::user(
                "log_bin_compress is ON: change capture cannot read compressed binlog events",
            ));
        }
        if get("binlog_row_value_options").is_some_and(|v| v.contains("PARTIAL_JSON")) {
            return Err(ConnectorError::user(
                "binlog_row_value_options is PARTIAL_JSON: change capture needs full JSON values",
            ));
        }
        Ok(())
    }

    async fn open(&self, spec: ChangeSpec) -> Result<Box<dyn ChangeSource>> {
        let opts = self.opts().await?.clone();
        let default_db = opts.db_name().map(str::to_string);
        let mut tables = Vec::with_capacity(spec.tables.len());
        for t in &spec.tables {
            let schema = match (&t.schema, &default_db) {
                (s, _) if !s.is_empty() => s.clone(),
                (_, Some(d)) => d.clone(),
                (_, None) => {
                    return Err(ConnectorError::user(format!(
                        "table {}: no database (name it as database.table or set the \
                         datasource's database_name)",
                        t.name
                    )));
                }
            };
            tables.push(TableId::new(schema, t.name.clone()));
        }
        let mut conn = connect(&opts).await?;
        let server: Option<(u32, u32)> = conn
            .query_first("SELECT @@server_id, @@lower_case_table_names")
            .await
            .map_err(|e| map_err("SELECT @@server_id", e))?;
        let (own, fold_case) = match server {
            Some((id, lctn)) => (Some(id), lctn != 0),
            None => (None, false),
        };
        let server_id = spec
            .server_id
            .unwrap_or_else(|| default_server_id(&spec.reader_name));
        if server_id == 0 || Some(server_id) == own {
            return Err(ConnectorError::user(format!(
                "server_id {server_id}: a change reader needs a replica id other than 0 and the \
                 server's own"
            )));
        }
        let mut loaded = Vec::with_capacity(tables.len());
        for t in &tables {
            loaded.push(schema::require(&mut conn, t).await?);
        }
        let resume = spec
            .resume
            .as_ref()
            .map(BinlogPosition::from_source)
            .transpose()?;
        let _ = conn.disconnect().await;
        Ok(Box::new(MySqlChangeSource {
            opts,
            server_id,
            batch_rows: spec.snapshot_batch_rows.max(1),
            tables: stream::Tables::new(loaded.clone(), fold_case),
            order: loaded,
            position: resume,
        }))
    }

    async fn drop_reader(&self, _reader_name: &str) -> Result<()> {
        // A binlog reader leaves nothing on the server.
        Ok(())
    }

    /// The start of the latest binlog file that began at or before `at_ms` (file granularity:
    /// changes between the file's start and `at_ms` come again, none after it is missed).
    async fn position_at(&self, at_ms: i64) -> Result<SourcePosition> {
        let opts = self.opts().await?;
        let mut conn = connect(opts).await?;
        let logs: Vec<mysql_async::Row> = conn
            .query("SHOW BINARY LOGS")
            .await
            .map_err(|e| map_err("SHOW BINARY LOGS", e))?;
        let files: Vec<String> = logs.iter().filter_map(|r| r.get(0)).collect();
        if files.is_empty() {
            return Err(ConnectorError::user(
                "the server has no binary log files (log_bin is off)",
            ));
        }
        // Files start in order: find the last one starting at or before at_ms.
        let oldest = file_start_ms(opts, &files[0]).await?;
        if oldest > at_ms {
            return Err(ConnectorError::user(format!(
                "the binlog cannot go back to {}: its oldest file ({}) starts at {}",
                iso(at_ms),
                files[0],
                iso(oldest)
            )));
        }
        let (mut lo, mut hi) = (0usize, files.len() - 1);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if file_start_ms(opts, &files[mid]).await? <= at_ms {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let gtid = snapshot::gtid_at(&mut conn, &files[lo], 4).await;
        let _ = conn.disconnect().await;
        Ok(BinlogPosition::new(files[lo].clone(), 4, gtid.as_ref()).to_source())
    }
}

/// When a binlog file was started: its format description event's time (epoch ms).
async fn file_start_ms(opts: &Opts, file: &str) -> Result<i64> {
    let mut conn = connect(opts).await?;
    conn.query_drop("SET @mariadb_slave_capability = 4")
        .await
        .map_err(|e| map_err("SET @mariadb_slave_capability", e))?;
    let request = BinlogStreamRequest::new(probe_server_id())
        .with_filename(file.as_bytes())
        .with_pos(4)
        .with_non_blocking();
    let context = format!("reading the start of binlog file {file}");
    let mut stream = conn
        .get_binlog_stream(request)
        .await
        .map_err(|e| map_err(&context, e))?;
    let found = tokio::time::timeout(CONNECT_TIMEOUT, async {
        while let Some(ev) = stream.next().await {
            let ev = ev.map_err(|e| map_err(&context, e))?;
            let h = ev.header();
            if h.event_type_raw() == 15 && h.timestamp() != 0 {
                return Ok(Some(i64::from(h.timestamp()) * 1000));
            }
        }
        Ok(None)
    })
    .await
    .map_err(|_| ConnectorError::external(format!("{context}: no answer")))?;
    let _ = stream.close().await;
    found?
        .ok_or_else(|| ConnectorError::external(format!("{context}: no format description event")))
}

/// One reader of the binlog for one task.
pub struct MySqlChangeSource {
    opts: Opts,
    server_id: u32,
    batch_rows: usize,
    tables: stream::Tables,
    /// The tables in the task's order (the snapshot copies them so).
    order: Vec<schema::TableSchema>,
    /// Where the next run continues (None: copy first); moves with every event sent.
    position: Option<BinlogPosition>,
}

impl MySqlChangeSource {
    async fn run_inner(&mut self, out: &mpsc::Sender<ChangeEvent>) -> Result<()> {
        let start = match self.position.clone() {
            Some(p) => p,
            None => {
                let p = snapshot::copy(&self.opts, &self.order, self.batch_rows, out).await?;
                send(
                    out,
                    ChangeEvent::SnapshotDone {
                        position: p.to_source(),
                    },
                )
                .await?;
                p
            }
        };
        // The GTID state to follow: the position's, else the server's at that place (None on
        // MySQL: positions then have no GTID).
        let gtid = match &start.gtid {
            Some(g) => Some(GtidState::parse(g)?),
            None => {
                let mut conn = connect(&self.opts).await?;
                let g = snapshot::gtid_at(&mut conn, &start.file, start.pos).await;
                let _ = conn.disconnect().await;
                g
            }
        };
        let (mut binlog, checksum) = stream::open(&self.opts, self.server_id, &start).await?;
        // Every event sent moves the stored position, so a run stopped anywhere (an error, a
        // cancel) continues after what it sent.
        let sent = self.position.insert(start);
        let mut reader = stream::Reader::new(&self.opts, &mut self.tables, sent, gtid, checksum);
        reader.run(&mut binlog, out).await
    }
}

#[async_trait]
impl ChangeSource for MySqlChangeSource {
    async fn run(
        &mut self,
        out: mpsc::Sender<ChangeEvent>,
        cancel: CancellationToken,
    ) -> Result<()> {
        let result = fdi_connector::stream::cancellable(&cancel, self.run_inner(&out)).await;
        match result {
            Err(_) if cancel.is_cancelled() => Err(ConnectorError::cancelled()),
            r => r,
        }
    }

    fn acknowledger(&self) -> Arc<dyn Acknowledger> {
        Arc::new(NoAck)
    }
}

/// The binlog is not consumed: nothing to confirm.
struct NoAck;

#[async_trait]
impl Acknowledger for NoAck {
    async fn ack(&self, _up_to: &SourcePosition) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_server_ids_are_stable_and_in_range() {
        let a = default_server_id("task_1");
        assert_eq!(a, default_server_id("task_1"));
        assert_ne!(a, default_server_id("task_2"));
        for name in ["", "a", "task_123456789", "x_y_z"] {
            let id = default_server_id(name);
            assert!((0x4000_0000..0x8000_0000).contains(&id), "{id}");
        }
        let p = probe_server_id();
        assert!((0x3F00_0000..0x4000_0000).contains(&p), "{p}");
    }
}
