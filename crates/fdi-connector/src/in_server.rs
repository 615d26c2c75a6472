//! Same-server copies: where a task's source and target are one database server reached with one
//! login, the whole copy can run inside the server as one `INSERT … SELECT` instead of streaming
//! the rows out and back in. The source connector writes its query as SQL the target's session can
//! run; the target connector runs it into its table inside one transaction.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::{Result, SourceQuery, WriteSpec};

/// One copy inside a server: `INSERT INTO write.table (write.columns) SELECT source_columns
/// [, batch_value] FROM (select_sql)`, in the upsert form `write.mode` asks for, after clearing the
/// table when `write.clear_table` says so.
#[derive(Debug, Clone)]
pub struct InServerCopy {
    /// The source's SELECT, with every table name qualified as the source connector reads it.
    pub select_sql: String,
    /// Output columns of `select_sql`, one per written column (in `write.columns` order, without
    /// the batch-number column).
    pub source_columns: Vec<String>,
    /// The batch number written into the last of `write.columns`, when the task has one.
    pub batch_value: Option<String>,
    pub write: WriteSpec,
}

/// A database that can run a copy between two of its own tables.
#[async_trait]
pub trait InServer: Send + Sync {
    /// The server, database and login this connector reaches (`postgres://user@host:port/db`):
    /// two connectors with equal scopes can read each other's tables in one statement. None
    /// where the scope is not known for sure (a Unix socket, say).
    fn server_scope(&self) -> Option<String>;
    /// `query` as a SELECT over fully qualified names; None when it cannot be written so.
    fn select_sql(&self, query: &SourceQuery) -> Option<String>;
    /// Run `copy` in one transaction and return the rows it wrote. Cancelling stops the statement
    /// on the server and commits nothing (`ErrorKind::Cancelled`).
    async fn copy_in_server(&self, copy: &InServerCopy, cancel: CancellationToken) -> Result<u64>;
}
