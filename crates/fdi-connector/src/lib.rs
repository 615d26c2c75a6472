//! The SPI every connector implements.
//!
//! A [`ConnectorFactory`] turns a datasource's `content` (JSON, secrets already decrypted) into a
//! [`Connector`]: discovery (tables, columns, test-connect, test-sql) plus [`SourceReader`] and
//! [`SinkWriter`] halves. Readers push Arrow `RecordBatch`es (with the source's position after
//! each, for sources that have one: see [`stream`]) into a bounded channel; writers take batches
//! whose columns are already named and typed as the target's columns.

pub mod change;
pub mod config;
pub mod content;
pub mod files;
pub mod in_server;
pub mod message;
pub mod stream;
pub mod window;

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use fdi_types::{DatasourceType, WhereCondition};
use tokio::sync::mpsc;

pub use content::{ContentField, FieldKind};
pub use files::FilesRoot;
pub use message::{FieldSource, MessageField};
pub use stream::{Acknowledger, RejectedRecord, SourceBatch, SourcePosition};
use tokio_util::sync::CancellationToken;

/// Why a connector call failed. `kind` says whose fault it is; `retryable` is a hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    pub kind: ErrorKind,
    pub message: String,
    pub retryable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad configuration or input from the user (bad content, missing table, bad SQL).
    User,
    /// The external system failed (connection refused, server error).
    External,
    /// A bug or unexpected state in fdi.
    Internal,
    /// The run was cancelled.
    Cancelled,
}

impl ConnectorError {
    pub fn user(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::User,
            message: message.into(),
            retryable: false,
        }
    }
    pub fn external(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::External,
            message: message.into(),
            retryable: true,
        }
    }
    /// The external system refused the login (bad credentials, unknown database): retrying will
    /// not help until the datasource is fixed.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::External,
            message: message.into(),
            retryable: false,
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
            retryable: false,
        }
    }
    pub fn cancelled() -> Self {
        Self {
            kind: ErrorKind::Cancelled,
            message: "cancelled".into(),
            retryable: false,
        }
    }
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// One column as discovery reports it (the API's column info fields) plus its Arrow type.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnInfo {
    pub name: String,
    /// The database's own type name, e.g. `varchar`, `numeric`, `bigint`.
    pub native_type: String,
    pub length: Option<i64>,
    pub decimal_digits: Option<i64>,
    pub nullable: bool,
    pub primary: bool,
    pub unique: bool,
    /// How the column travels between reader and writer.
    pub arrow_type: DataType,
}

impl ColumnInfo {
    /// A nullable column that is no key, without length or scale.
    pub fn new(
        name: impl Into<String>,
        native_type: impl Into<String>,
        arrow_type: DataType,
    ) -> Self {
        Self {
            name: name.into(),
            native_type: native_type.into(),
            length: None,
            decimal_digits: None,
            nullable: true,
            primary: false,
            unique: false,
            arrow_type,
        }
    }
}

/// What to read.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceQuery {
    /// A table (optionally `schema.table`), with selected columns (empty = all, in table order),
    /// filters and order.
    Table {
        table: String,
        columns: Vec<String>,
        filters: Vec<WhereCondition>,
        order_by: Option<OrderBy>,
    },
    /// A user's custom query (`isAddSql` + `querySql`), run as written.
    Sql(String),
    /// A message source (queue, topic, stream) parsed into `fields`. With `follow` the reader
    /// keeps waiting for new messages until cancelled (a realtime task); without it, it stops
    /// once it has read what the source held when it started.
    Messages {
        source: String,
        fields: Vec<MessageField>,
        follow: bool,
        /// A stable name for this reader's place in the source (the task id): Kafka keeps its
        /// consumer group's offsets under it.
        reader_name: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub column: String,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct ReadSpec {
    pub query: SourceQuery,
    /// Rows per RecordBatch (at most: see [`BATCH_BYTES`]).
    pub batch_rows: usize,
}

/// A reader cuts a batch once its values hold this many bytes, even with fewer than
/// `batch_rows` rows, so memory stays flat however wide the rows are (8,192 rows of a 1 MB
/// column would be 8 GB; a run holds about ten batches at once between its reader, channel and
/// writer). Measured on 1,000 rows of 1 MB text, PostgreSQL -> PostgreSQL: peak RSS 100 MB with
/// 4 MB batches, 59–63 MB with 2 MB, 44–48 MB with 1 MB, no slower; narrow rows (~150 bytes)
/// still fill 8,192-row batches' worth of about 7,000 rows.
pub const BATCH_BYTES: usize = 1 << 20;

/// How rows land in the target.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteMode {
    Insert,
    /// Insert or update on `keys` (the target's primary/unique key, all mapped).
    /// With `part_update`, only columns whose value changed are updated (same result, fewer writes
    /// where the database can tell).
    Upsert {
        keys: Vec<String>,
        part_update: bool,
    },
}

#[derive(Debug, Clone)]
pub struct WriteSpec {
    pub table: String,
    /// Target columns in the order of the batches' columns; batches arrive already cast to each
    /// column's `arrow_type`.
    pub columns: Vec<ColumnInfo>,
    pub mode: WriteMode,
    /// Empty the table (in the same transaction when the database allows it) before loading.
    pub clear_table: bool,
}

/// What a writer did with one batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub rows: u64,
    pub bytes: u64,
    pub dirty_rows: u64,
}

pub type BatchSender = mpsc::Sender<SourceBatch>;

#[async_trait]
pub trait SourceReader: Send {
    /// The schema of the batches this reader will send (known before the first row).
    fn schema(&self) -> SchemaRef;

    /// Stream every row into `out`, in batches of about `batch_rows`, until done, an error, or
    /// `cancel` fires (then return `ErrorKind::Cancelled` promptly). Returns rows read.
    async fn read(&mut self, out: BatchSender, cancel: CancellationToken) -> Result<u64>;

    /// For a source whose batches carry positions: how the engine acknowledges them once the
    /// target committed them (taken before `read` starts). The engine then commits the target in
    /// micro-batches and acknowledges after each commit. None (the default) for table sources.
    fn acknowledger(&self) -> Option<std::sync::Arc<dyn Acknowledger>> {
        None
    }
}

#[async_trait]
pub trait SinkWriter: Send {
    /// Open the transaction (and clear the table if asked). Called once before any `write`.
    async fn begin(&mut self) -> Result<()>;
    /// Write one batch inside the transaction.
    async fn write(&mut self, batch: RecordBatch) -> Result<WriteStats>;
    /// Make everything written visible. Only after this returns Ok may a run report success.
    /// A streaming run then calls `begin` again for its next micro-batch (`clear_table` applies
    /// to the first transaction only).
    async fn commit(&mut self) -> Result<()>;
    /// Discard everything written since `begin`. Idempotent.
    async fn abort(&mut self) -> Result<()>;
    /// Delete, inside the transaction, the rows whose key equals a row of `keys` (one column per
    /// key column, named as the target's columns and cast to their types): a change stream's
    /// deletes. Returns the rows asked to delete. Targets without keyed rows refuse.
    async fn delete(&mut self, keys: RecordBatch) -> Result<u64> {
        let _ = keys;
        Err(ConnectorError::user("this target cannot delete rows"))
    }
}

/// Writers of several tables that share one transaction: what `commit` makes visible, it makes
/// visible in every table at once (a change stream's micro-batch spanning tables never shows
/// half of a source transaction). Tables are addressed by their index in the specs the writer
/// was opened with; the specs' `clear_table` applies to the first transaction only.
#[async_trait]
pub trait TableSetWriter: Send {
    /// Open the transaction. Called before any other call of a micro-batch.
    async fn begin(&mut self) -> Result<()>;
    /// Run table `table`'s setup for this transaction (clearing it in the first one) even when
    /// nothing is written to it.
    async fn prepare(&mut self, table: usize) -> Result<()>;
    /// Write one batch into table `table` inside the transaction.
    async fn write(&mut self, table: usize, batch: RecordBatch) -> Result<WriteStats>;
    /// Delete table `table`'s rows whose key equals a row of `keys` (see [`SinkWriter::delete`]).
    async fn delete(&mut self, table: usize, keys: RecordBatch) -> Result<u64>;
    /// Make everything written since `begin` visible, in every table at once.
    async fn commit(&mut self) -> Result<()>;
    /// Discard everything written since `begin`. Idempotent.
    async fn abort(&mut self) -> Result<()>;
}

/// One configured datasource.
#[async_trait]
pub trait Connector: Send + Sync {
    fn datasource_type(&self) -> DatasourceType;
    /// Open a connection and run a trivial statement. The error message carries the driver's cause.
    async fn test_connect(&self) -> Result<()>;
    /// Table names (schema-qualified where the database has schemas other than the default),
    /// filtered by a case-insensitive substring when given.
    async fn list_tables(&self, filter: Option<&str>) -> Result<Vec<String>>;
    /// Columns of a table in table order. A missing table is `ErrorKind::User`.
    async fn columns(&self, table: &str) -> Result<Vec<ColumnInfo>>;
    /// Prepare/describe a query without fetching all of it; returns its result columns.
    async fn test_sql(&self, sql: &str) -> Result<Vec<ColumnInfo>>;
    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>>;
    /// The readers of the key ranges of one split read. Where the source can, they read one
    /// snapshot (the rows as of one moment, as a single read would); the default opens each with
    /// [`Connector::reader`], every one reading as of its own start.
    async fn split_readers(&self, specs: Vec<ReadSpec>) -> Result<Vec<Box<dyn SourceReader>>> {
        let mut readers = Vec::with_capacity(specs.len());
        for spec in specs {
            readers.push(self.reader(spec).await?);
        }
        Ok(readers)
    }
    /// How many rows reading `query` would return, as the source's statistics or query planner
    /// estimate it cheaply (never by reading the rows): the total that a run's progress is
    /// measured against. None (the default) when the source has no such estimate.
    async fn estimate_rows(&self, query: &SourceQuery) -> Result<Option<u64>> {
        let _ = query;
        Ok(None)
    }
    /// The smallest and largest value of the integer column `column` among the rows of `query`
    /// (a table query): the bounds a split read cuts into ranges. None when there are no rows or
    /// the source cannot tell.
    async fn key_range(&self, query: &SourceQuery, column: &str) -> Result<Option<(i64, i64)>> {
        let _ = (query, column);
        Ok(None)
    }
    /// A target that takes rows of any columns (a queue, a topic): a task writes the source's
    /// columns to it under their own names (or the mapping's target names).
    fn schemaless_target(&self) -> bool {
        false
    }
    /// How this source renders incremental windows in its SQL; None for sources that have no
    /// windows (an incremental task on them is refused naming `need_inc_migration`).
    fn window_sql(&self) -> Option<&dyn window::WindowSql> {
        None
    }
    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>>;
    /// One writer for several tables committing in one transaction; None (the default) where
    /// the target cannot (then each table gets its own [`Connector::writer`]).
    async fn table_set_writer(
        &self,
        specs: Vec<WriteSpec>,
    ) -> Result<Option<Box<dyn TableSetWriter>>> {
        let _ = specs;
        Ok(None)
    }
    /// The database's change log, for combination (CDC) tasks; None where there is none.
    fn change_log(&self) -> Option<&dyn change::ChangeLog> {
        None
    }
    /// Copies between two tables of this database's server, run inside it; None where the
    /// connector cannot.
    fn in_server(&self) -> Option<&dyn in_server::InServer> {
        None
    }
    /// Close pools.
    async fn close(&self) {}
}

/// Builds connectors of one datasource type from a datasource's `content`.
pub trait ConnectorFactory: Send + Sync {
    fn datasource_type(&self) -> DatasourceType;
    /// Check `content` without connecting (required fields, formats). Errors name the field,
    /// e.g. `content.url: ...`.
    fn validate(&self, content: &serde_json::Value) -> Result<()>;
    /// Build a connector (lazily connecting pools are fine).
    fn create(&self, content: &serde_json::Value) -> Result<Arc<dyn Connector>>;
    /// Every field `content` may hold, with the secrets and password-bearing URLs marked
    /// (masked in responses). Keys not listed are neither stored nor echoed.
    fn content_fields(&self) -> &'static [ContentField];
    /// Whether one connector built from a content may serve every run of that content (its
    /// pools then keep their idle connections between runs, within their idle timeout). False for
    /// connectors whose resources must not outlive a run (a file that may be replaced between
    /// runs, say).
    fn reusable_across_runs(&self) -> bool {
        false
    }
}

/// All factories the binary was built with, and the files root that file paths of datasources
/// and tasks are confined to.
#[derive(Default, Clone)]
pub struct ConnectorRegistry {
    factories: Vec<Arc<dyn ConnectorFactory>>,
    files: Option<FilesRoot>,
}

impl ConnectorRegistry {
    pub fn new() -> Self {
        Self::default()
    }
    /// Where local files of tasks (the error handler's dirty-data files) may go.
    pub fn with_files_root(mut self, files: FilesRoot) -> Self {
        self.files = Some(files);
        self
    }
    pub fn files_root(&self) -> Option<&FilesRoot> {
        self.files.as_ref()
    }
    pub fn register(&mut self, f: Arc<dyn ConnectorFactory>) {
        self.factories.push(f);
    }
    /// The types of the registered connectors, in registration order.
    pub fn types(&self) -> Vec<DatasourceType> {
        self.factories.iter().map(|f| f.datasource_type()).collect()
    }
    /// A `datasource_type` as a request or a stored datasource spells it: one of the registered
    /// types (400 FDI.3443 naming the field and the supported types otherwise).
    pub fn parse_type(&self, s: &str) -> Result<DatasourceType, fdi_types::ApiError> {
        DatasourceType::parse_among(s, &self.types())
    }
    pub fn get(&self, t: DatasourceType) -> Option<Arc<dyn ConnectorFactory>> {
        self.factories
            .iter()
            .find(|f| f.datasource_type() == t)
            .cloned()
    }
}
