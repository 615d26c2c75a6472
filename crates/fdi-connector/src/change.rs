//! The change-log SPI: how a database's change log (PostgreSQL logical replication, MySQL /
//! MariaDB binlog) feeds a combination (CDC) task.
//!
//! A connector whose database has a change log answers [`Connector::change_log`](crate::Connector)
//! with a [`ChangeLog`]. The CDC pipeline opens a [`ChangeSource`] for a task's tables and reads
//! [`ChangeEvent`]s from it:
//!
//! 1. without a `resume` position (a new task, or `repulling_snapshot`), first the rows of every
//!    table as they were at one consistent point ([`ChangeEvent::SnapshotRows`]), then
//!    [`ChangeEvent::SnapshotDone`] with the position the stream continues from exactly;
//! 2. then committed source transactions, in commit order ([`ChangeEvent::Transaction`]), each
//!    with the position just after it, and [`ChangeEvent::Heartbeat`]s with the position reached
//!    while nothing of the task's tables changed.
//!
//! The pipeline applies events to the targets, commits, stores the position, and only then
//! acknowledges it through the source's [`Acknowledger`] (PostgreSQL: the slot's confirmed flush
//! LSN, so the server keeps WAL until then; MySQL: nothing, the binlog is not consumed).
//! Restarting from a stored position re-delivers what came after it: at-least-once, and exactly
//! the target state with key-based apply.
//!
//! Values travel as [`ChangeValue`]s in a text form every target can parse (see its docs); the
//! pipeline casts them to the target columns' Arrow types.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{Acknowledger, Result, SourcePosition};

/// A table of the source: `schema.name` (MySQL: database.table; PostgreSQL: schema.table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    pub schema: String,
    pub name: String,
}

impl TableId {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

/// One column of a source table as the change log describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeColumn {
    pub name: String,
    /// The database's type name (`int4`, `numeric`, `varchar`, `bigint unsigned`, ...).
    pub native_type: String,
    /// Part of the key that identifies a row in the change log (primary key, or PostgreSQL's
    /// replica identity index).
    pub key: bool,
}

/// The columns of a source table, in table order, as of the changes that carry it. Shared by
/// every change of the table until its schema changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeTable {
    pub id: TableId,
    pub columns: Vec<ChangeColumn>,
}

/// One value of a changed row, in a form independent of the source:
///
/// - integers and decimals: their decimal text, exact (`-12`, `18446744073709551615`,
///   `12345678901234567890.123456789`); unsigned MySQL columns are already unsigned here;
/// - floats: shortest text that reads back the same (`1.5`, `NaN`, `Infinity`, `-Infinity`);
/// - booleans: `true` / `false`;
/// - dates `YYYY-MM-DD`; times `HH:MM:SS[.ffffff]`; timestamps without zone
///   `YYYY-MM-DD HH:MM:SS[.ffffff]`; timestamps with zone in UTC as
///   `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`;
/// - binary columns: [`ChangeValue::Bytes`] with the raw bytes;
/// - everything else (text, JSON, UUID, enums, ...): its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeValue {
    Null,
    Text(String),
    Bytes(Vec<u8>),
    /// The source did not send this value because it did not change (PostgreSQL's unchanged
    /// TOAST values when the old row is not known): the target keeps what it has.
    Unchanged,
}

impl ChangeValue {
    /// Bytes the value holds (what batches are bounded by).
    pub fn size(&self) -> usize {
        match self {
            ChangeValue::Text(t) => t.len(),
            ChangeValue::Bytes(b) => b.len(),
            ChangeValue::Null | ChangeValue::Unchanged => 0,
        }
    }
}

/// Bytes of a row's values, plus a small per-value overhead.
pub fn row_size(row: &[ChangeValue]) -> usize {
    row.iter().map(|v| v.size() + 8).sum()
}

/// A snapshot batch is cut at this many bytes of values even before its row count is reached:
/// wide rows keep memory flat.
pub const SNAPSHOT_BATCH_BYTES: usize = 8 << 20;

/// Rows of a table's copy, cut into batches of at most `max_rows` rows or about
/// [`SNAPSHOT_BATCH_BYTES`].
pub struct SnapshotBatcher {
    rows: Vec<Vec<ChangeValue>>,
    bytes: usize,
    max_rows: usize,
}

impl SnapshotBatcher {
    pub fn new(max_rows: usize) -> Self {
        Self {
            rows: Vec::with_capacity(max_rows.clamp(1, 4096)),
            bytes: 0,
            max_rows: max_rows.max(1),
        }
    }

    /// Add a row; a full batch comes back to be sent.
    pub fn push(&mut self, row: Vec<ChangeValue>) -> Option<Vec<Vec<ChangeValue>>> {
        self.bytes += row_size(&row);
        self.rows.push(row);
        (self.rows.len() >= self.max_rows || self.bytes >= SNAPSHOT_BATCH_BYTES)
            .then(|| self.take())
    }

    /// What is left (possibly nothing).
    pub fn take(&mut self) -> Vec<Vec<ChangeValue>> {
        self.bytes = 0;
        std::mem::replace(&mut self.rows, Vec::with_capacity(self.max_rows.min(4096)))
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

impl ChangeOp {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "INSERT",
            ChangeOp::Update => "UPDATE",
            ChangeOp::Delete => "DELETE",
        }
    }
}

/// One changed row. `before` is the old row where the log has it (a DELETE always has at least
/// the key columns, other columns then [`ChangeValue::Null`]; an UPDATE has it when the key changed
/// or the table logs full old rows); `after` the new row (INSERT, UPDATE). Both hold one value per
/// column of `table`, in its order.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub table: Arc<ChangeTable>,
    pub op: ChangeOp,
    pub before: Option<Vec<ChangeValue>>,
    pub after: Option<Vec<ChangeValue>>,
}

/// A committed source transaction: its changes in log order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeTransaction {
    pub changes: Vec<RowChange>,
    /// The source's commit time (epoch milliseconds).
    pub commit_ms: i64,
    /// Resuming from here re-reads nothing of this transaction.
    pub position: SourcePosition,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChangeEvent {
    /// Rows of the initial copy of one table (each a full row in `table`'s column order). A
    /// table's rows may come in several events; tables come one after the other.
    SnapshotRows {
        table: Arc<ChangeTable>,
        rows: Vec<Vec<ChangeValue>>,
    },
    /// Every table was copied; the stream continues from `position`, exactly after the copy.
    SnapshotDone {
        position: SourcePosition,
    },
    Transaction(ChangeTransaction),
    /// The log advanced to `position` without changes of the task's tables.
    Heartbeat {
        position: SourcePosition,
    },
}

/// What a CDC task reads from one source.
#[derive(Debug, Clone)]
pub struct ChangeSpec {
    /// A stable name for the task's place in the source (derived from the task id; PostgreSQL's
    /// slot and publication are named after it). ASCII letters, digits and `_`, at most 40.
    pub reader_name: String,
    /// The tables whose changes are wanted (changes of other tables are skipped).
    pub tables: Vec<TableId>,
    /// Continue after this position; None: copy the tables first, then stream.
    pub resume: Option<SourcePosition>,
    /// MySQL / MariaDB: this reader's server id as a replica (`ext_info.server_id`).
    pub server_id: Option<u32>,
    /// Rows per [`ChangeEvent::SnapshotRows`].
    pub snapshot_batch_rows: usize,
}

#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// Check that the server can serve a change log (PostgreSQL `wal_level=logical`, MySQL
    /// `binlog_format=ROW` with `binlog_row_image=FULL`), naming the setting that is missing.
    async fn check(&self) -> Result<()>;
    /// Start reading (creating what the source needs for `spec.reader_name`, e.g. a slot).
    async fn open(&self, spec: ChangeSpec) -> Result<Box<dyn ChangeSource>>;
    /// Remove what `open` created for `reader_name` (a task deleted or re-copied). Idempotent.
    async fn drop_reader(&self, reader_name: &str) -> Result<()>;
    /// The position of the first change committed at or after `at_ms` (a task's reset), or a
    /// user error when the log cannot go back there (naming the oldest time it has, or saying
    /// that this source cannot rewind at all).
    async fn position_at(&self, at_ms: i64) -> Result<SourcePosition>;
}

#[async_trait]
pub trait ChangeSource: Send {
    /// Send events into `out` until `cancel` fires (then return `ErrorKind::Cancelled` promptly)
    /// or an error.
    async fn run(
        &mut self,
        out: mpsc::Sender<ChangeEvent>,
        cancel: CancellationToken,
    ) -> Result<()>;
    /// How the pipeline confirms a position once the targets committed everything up to it
    /// (taken before `run` starts).
    fn acknowledger(&self) -> Arc<dyn Acknowledger>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_batches_are_cut_by_rows_and_by_bytes() {
        let mut b = SnapshotBatcher::new(3);
        let small = || vec![ChangeValue::Text("x".into()), ChangeValue::Null];
        assert!(b.push(small()).is_none());
        assert!(b.push(small()).is_none());
        assert_eq!(b.push(small()).map(|r| r.len()), Some(3));
        assert!(b.is_empty());

        // 3 MB rows: the third passes 8 MB, long before 1,000 rows.
        let mut b = SnapshotBatcher::new(1000);
        let wide = || vec![ChangeValue::Bytes(vec![7; 3 << 20])];
        assert!(b.push(wide()).is_none());
        assert!(b.push(wide()).is_none());
        assert_eq!(b.push(wide()).map(|r| r.len()), Some(3));
        assert!(b.push(wide()).is_none());
        assert_eq!(b.take().len(), 1);
        assert!(b.take().is_empty());
    }
}
