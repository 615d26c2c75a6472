//! PostgreSQL change source for combination (CDC) tasks: logical replication with `pgoutput`.
//!
//! # What it creates
//! For a reader named `fdi_<task>` (the SPI's `ChangeSpec::reader_name`, lower-cased because
//! slot names may only hold `a-z`, `0-9` and `_`):
//! - a **publication** of that name `FOR TABLE` the task's tables, publishing inserts, updates
//!   and deletes (not `TRUNCATE`; `publish_via_partition_root` on PostgreSQL 13+, so a
//!   partitioned table's changes carry the parent's name). It is created when missing, and its
//!   table list is set again (`ALTER PUBLICATION ... SET TABLE`) when the task's tables changed.
//!   A table added later is captured from that point on; copying its old rows needs a new
//!   snapshot (`repulling_snapshot`).
//! - a **logical replication slot** of that name with the `pgoutput` plugin.
//!
//! [`ChangeLog::drop_reader`] drops both (idempotent; it waits up to 5 s for a reader that was
//! just stopped to release the slot).
//!
//! # Snapshot, then stream
//! Without a resume position, `run` drops any slot of that name (a copy that did not finish must
//! be redone), creates it again exporting a snapshot, and reads every table on an ordinary
//! connection under that snapshot (`REPEATABLE READ`, `SET TRANSACTION SNAPSHOT`) while the
//! replication connection that created it stays open and idle. The rows come as
//! `SnapshotRows` of `snapshot_batch_rows` (an empty table sends one empty batch, so its columns
//! are known), then `SnapshotDone` with the slot's consistent point, then the stream starts
//! there: a change committed while the copy ran is not in the copy and comes once in the
//! stream. With a resume position the stream starts there (a stored position older than the
//! slot's confirmed position starts at the confirmed one: the server does not keep more).
//! PostgreSQL cannot rewind a slot: `position_at` (a reset to a time) is refused.
//!
//! # Stream
//! pgoutput protocol 1, no streaming of in-progress transactions: each committed transaction
//! touching the task's tables becomes one `Transaction` (its changes in order, the commit time,
//! the position after its commit). Transactions of other tables, empty ones and the server's
//! keepalives become `Heartbeat`s with the position reached (at most one a second, only when it
//! moved). A transaction is held in memory until its commit arrives.
//!
//! Positions are `{"lsn": "0/16B3748"}`: a WAL position in PostgreSQL's notation; for a
//! transaction the end of its commit record, so resuming there re-reads nothing of it.
//!
//! # Values
//! Column types are PostgreSQL's `typname`s (`int4`, `numeric`, `timestamptz`, `_int4`, a
//! domain's own name). Values are PostgreSQL's text output made to follow
//! [`ChangeValue`](fdi_connector::change::ChangeValue)'s conventions (see `values.rs`): both the
//! replication session and the snapshot session set `DateStyle = ISO`, `TimeZone = UTC`,
//! `bytea_output = hex` and `extra_float_digits = 1`; booleans become `true` / `false`,
//! `timestamptz` becomes UTC `...Z`, `bytea` becomes bytes.
//!
//! # Keys, old rows and REPLICA IDENTITY
//! A column's `key` flag is the table's replica identity: the primary key (`DEFAULT`), the chosen
//! index (`USING INDEX`), nothing (`NOTHING`); for `FULL` the primary key when there is one, else
//! every column. PostgreSQL logs the old row of an UPDATE / DELETE only as far as the replica
//! identity says: with `DEFAULT` a DELETE carries the key (other columns come as NULL) and an
//! UPDATE carries `before` only when its key changed; with `FULL` both carry the whole old row.
//! A table without primary key needs `REPLICA IDENTITY FULL` (or `USING INDEX`): PostgreSQL
//! refuses UPDATE and DELETE on a published table without replica identity.
//!
//! # TOAST
//! pgoutput does not resend a large (TOASTed) value an UPDATE did not change. It is taken from
//! the old row when the log has it (`FULL`), else it is `ChangeValue::Unchanged` and the target
//! keeps what it has.
//!
//! # Acknowledgement: at-least-once
//! `ack(position)` moves the slot's `confirmed_flush_lsn` there: by a standby status update on the
//! replication connection while `run` streams, or, once the stream has closed (the pipeline
//! commits and acknowledges after stopping the source), by `pg_replication_slot_advance` over
//! SQL; never both at once. Until then the server keeps the WAL, and a reader started again from
//! the last acknowledged position gets everything after it again: at-least-once delivery,
//! exactly the source state after key-based apply. Acknowledging a heartbeat's position lets the
//! server drop WAL of other tables' changes.
//!
//! # Connections
//! The replication connection is pg_walstream's pure-Rust client (rustls on aws-lc-rs; no libpq,
//! no OpenSSL, no ring), built from the datasource's host, port, user, password, database and
//! `sslmode` (a Unix socket cannot replicate). Catalog work, the copy and `check` use the
//! connector's sqlx pool. The user needs the `REPLICATION` attribute (or superuser), and to own
//! the tables (or be superuser) to create the publication.
//!
//! Only pg_walstream's connection (slot creation with snapshot export, `START_REPLICATION`,
//! CopyData, standby status updates) and its pgoutput parser are used, not its
//! `LogicalReplicationStream`: that one answers keepalives itself (no heartbeats), sends
//! feedback on its own schedule (acks must be exactly the pipeline's) and reconnects by itself
//! (a reconnect here is the pipeline's restart from its stored position). Its blocking commands
//! run on tokio's blocking pool (`conn.rs`).

mod catalog;
mod conn;
mod stream;
mod values;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fdi_connector::change::{ChangeLog, ChangeSource, ChangeSpec, TableId};
use fdi_connector::{Acknowledger, ConnectorError, Result, SourcePosition};
use sqlx::PgPool;
use tokio::sync::Notify;

pub use conn::{ReplicationTarget, url_password};

/// The change log of one PostgreSQL datasource.
pub struct PgChangeLog {
    pool: PgPool,
    target: ReplicationTarget,
    /// Schema of tables named without one.
    schema: String,
}

impl PgChangeLog {
    pub fn new(pool: PgPool, target: ReplicationTarget, schema: String) -> Self {
        Self {
            pool,
            target,
            schema,
        }
    }
}

/// The slot / publication name of a reader: checked and lower-cased.
fn object_name(reader_name: &str) -> Result<String> {
    if reader_name.is_empty()
        || reader_name.len() > 63
        || !reader_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(ConnectorError::user(format!(
            "change reader name {reader_name:?}: needs 1 to 63 ASCII letters, digits or '_'"
        )));
    }
    Ok(reader_name.to_ascii_lowercase())
}

/// `{"lsn": "0/16B3748"}`.
pub fn lsn_position(lsn: u64) -> SourcePosition {
    SourcePosition(serde_json::json!({ "lsn": pg_walstream::format_lsn(lsn) }))
}

/// The LSN of a position made by [`lsn_position`].
pub fn position_lsn(p: &SourcePosition) -> Result<u64> {
    p.0.get("lsn")
        .and_then(|v| v.as_str())
        .and_then(|s| pg_walstream::parse_lsn(s).ok())
        .ok_or_else(|| {
            ConnectorError::user(format!(
                "PostgreSQL change position {}: needs {{\"lsn\": \"X/X\"}}",
                p.0
            ))
        })
}

#[async_trait]
impl ChangeLog for PgChangeLog {
    async fn check(&self) -> Result<()> {
        catalog::check_settings(&self.pool).await
    }

    async fn open(&self, spec: ChangeSpec) -> Result<Box<dyn ChangeSource>> {
        let name = object_name(&spec.reader_name)?;
        let resume = spec.resume.as_ref().map(position_lsn).transpose()?;
        catalog::check_settings(&self.pool).await?;
        let mut tables: Vec<TableId> = Vec::with_capacity(spec.tables.len());
        for t in &spec.tables {
            let t = if t.schema.is_empty() {
                TableId::new(self.schema.clone(), t.name.clone())
            } else {
                t.clone()
            };
            if !tables.contains(&t) {
                tables.push(t);
            }
        }
        catalog::ensure_publication(&self.pool, &name, &tables).await?;
        if resume.is_some() {
            match catalog::slot_state(&self.pool, &name).await? {
                None => {
                    return Err(ConnectorError::user(format!(
                        "replication slot {name} does not exist (dropped?): the task must copy \
                         its tables again (repulling_snapshot)"
                    )));
                }
                Some(s) if s.wal_status.as_deref() == Some("lost") => {
                    return Err(ConnectorError::user(format!(
                        "replication slot {name} lost the WAL it needs (max_slot_wal_keep_size?): \
                         the task must copy its tables again (repulling_snapshot)"
                    )));
                }
                Some(_) => {}
            }
        }
        let ack = Arc::new(AckShared {
            state: Mutex::new(AckState::default()),
            notify: Notify::new(),
            pool: self.pool.clone(),
            slot: name.clone(),
        });
        Ok(Box::new(stream::PgChangeSource::new(
            self.pool.clone(),
            self.target.clone(),
            name,
            tables,
            resume,
            spec.snapshot_batch_rows.max(1),
            ack,
        )))
    }

    async fn drop_reader(&self, reader_name: &str) -> Result<()> {
        let name = object_name(reader_name)?;
        catalog::drop_slot(&self.pool, &name).await?;
        catalog::drop_publication(&self.pool, &name).await
    }

    async fn position_at(&self, _at_ms: i64) -> Result<SourcePosition> {
        Err(ConnectorError::user(
            "PostgreSQL cannot rewind a replication slot to a point in time: reset the task with \
             repulling_snapshot to copy its tables again",
        ))
    }
}

/// Where the stream is, for acknowledgements.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not streaming yet (connecting, copying): acks are kept for when it streams.
    #[default]
    Starting,
    /// `run` streams: it sends acks as status updates.
    Streaming,
    /// The replication connection is closed: acks go over SQL.
    Closed,
}

#[derive(Debug, Default)]
struct AckState {
    /// The highest position acknowledged.
    acked: u64,
    /// The highest position the server was told (or already had confirmed).
    sent: u64,
    phase: Phase,
}

/// Shared by the source's `run` and its acknowledger.
struct AckShared {
    state: Mutex<AckState>,
    notify: Notify,
    pool: PgPool,
    slot: String,
}

impl AckShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, AckState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream closed: from now on acks go over SQL, and one that arrived but was not sent
    /// is sent that way now.
    fn close(self: &Arc<Self>) {
        let pending = {
            let mut s = self.lock();
            s.phase = Phase::Closed;
            (s.acked > s.sent).then_some(s.acked)
        };
        if let Some(lsn) = pending
            && let Ok(h) = tokio::runtime::Handle::try_current()
        {
            let this = self.clone();
            h.spawn(async move {
                if let Err(e) = this.advance(lsn).await {
                    tracing::warn!(slot = %this.slot, "confirming the last position: {e}");
                }
            });
        }
    }

    async fn advance(&self, lsn: u64) -> Result<()> {
        catalog::advance_slot(&self.pool, &self.slot, lsn).await?;
        let mut s = self.lock();
        s.sent = s.sent.max(lsn);
        Ok(())
    }
}

struct PgAcknowledger(Arc<AckShared>);

#[async_trait]
impl Acknowledger for PgAcknowledger {
    async fn ack(&self, up_to: &SourcePosition) -> Result<()> {
        let lsn = position_lsn(up_to)?;
        let phase = {
            let mut s = self.0.lock();
            s.acked = s.acked.max(lsn);
            s.phase
        };
        match phase {
            Phase::Closed => self.0.advance(lsn).await,
            Phase::Starting | Phase::Streaming => {
                self.0.notify.notify_one();
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let p = lsn_position(0x016B_3748);
        assert_eq!(p.0, serde_json::json!({"lsn": "0/16B3748"}));
        assert_eq!(position_lsn(&p).unwrap(), 0x16B3748);
        let big = lsn_position((3u64 << 32) | 0xABC);
        assert_eq!(big.0, serde_json::json!({"lsn": "3/ABC"}));
        assert!(position_lsn(&SourcePosition(serde_json::json!({"file": "x"}))).is_err());
    }

    #[test]
    fn reader_names() {
        assert_eq!(object_name("fdi_Task7").unwrap(), "fdi_task7");
        assert!(object_name("fdi-7").is_err());
        assert!(object_name("").is_err());
    }
}
