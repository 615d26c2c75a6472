//! SQLite connector (`content.url` is a file path): discovery over PRAGMAs, a streaming reader
//! and a transactional writer using multi-row INSERT (upsert: `ON CONFLICT ... DO UPDATE`).

mod discovery;
mod reader;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fdi_connector::{
    ColumnInfo, Connector, ConnectorError, ConnectorFactory, ContentField, FilesRoot, ReadSpec,
    Result, SinkWriter, SourceReader, WriteSpec,
};
use fdi_sql_core::content::str_field;
use fdi_sql_core::map_sqlx_error;
use fdi_types::DatasourceType;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};

/// The datasource type this connector serves.
pub const TYPE: DatasourceType = DatasourceType::new("SQLITE", "sqlite");

/// Builds SQLite connectors from a datasource's `content`. Every file lies under the files root.
#[derive(Debug, Clone)]
pub struct Factory {
    files: FilesRoot,
}

impl Factory {
    /// SQLite files are confined to `files` (see [`FilesRoot`]).
    pub fn new(files: FilesRoot) -> Self {
        Self { files }
    }

    /// The database file named by `content.url` (a path, optionally prefixed `sqlite://` /
    /// `file:`; relative to the files root), resolved inside the root.
    fn file_path(&self, content: &serde_json::Value) -> Result<PathBuf> {
        if !content.is_object() {
            return Err(ConnectorError::user("content: must be a JSON object"));
        }
        let url = str_field(content, "url").ok_or_else(|| {
            ConnectorError::user("content.url: required (path of the SQLite file)")
        })?;
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .or_else(|| url.strip_prefix("file:"))
            .unwrap_or(&url);
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err(ConnectorError::user("content.url: empty path"));
        }
        self.files.resolve("content.url", path)
    }
}

/// `content` of a SQLite datasource: the file (`url`) and the reference's `mode`.
const CONTENT_FIELDS: &[ContentField] = &[ContentField::plain("url"), ContentField::plain("mode")];

impl ConnectorFactory for Factory {
    fn datasource_type(&self) -> DatasourceType {
        TYPE
    }

    fn content_fields(&self) -> &'static [ContentField] {
        CONTENT_FIELDS
    }

    fn validate(&self, content: &serde_json::Value) -> Result<()> {
        self.file_path(content).map(|_| ())
    }

    fn create(&self, content: &serde_json::Value) -> Result<Arc<dyn Connector>> {
        let path = self.file_path(content)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(15))
            .idle_timeout(Duration::from_secs(30))
            .connect_lazy_with(fdi_sql_core::statement_log::quiet(options));
        Ok(Arc::new(SqliteConnector { pool, path }))
    }
}

/// One configured SQLite file.
pub struct SqliteConnector {
    pool: SqlitePool,
    path: PathBuf,
}

impl SqliteConnector {
    fn check_file(&self) -> Result<()> {
        if self.path.exists() {
            Ok(())
        } else {
            Err(ConnectorError::user(format!(
                "content.url: SQLite file {} does not exist",
                self.path.display()
            )))
        }
    }
}

#[async_trait]
impl Connector for SqliteConnector {
    fn datasource_type(&self) -> DatasourceType {
        TYPE
    }

    fn window_sql(&self) -> Option<&dyn fdi_connector::window::WindowSql> {
        Some(&fdi_sql_core::Dialect::Sqlite)
    }

    async fn test_connect(&self) -> Result<()> {
        self.check_file()?;
        sqlx::raw_sql("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| map_sqlx_error("", e))
    }

    async fn list_tables(&self, filter: Option<&str>) -> Result<Vec<String>> {
        self.check_file()?;
        discovery::list_tables(&self.pool, filter).await
    }

    async fn columns(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        self.check_file()?;
        discovery::columns(&self.pool, table).await
    }

    async fn test_sql(&self, sql: &str) -> Result<Vec<ColumnInfo>> {
        self.check_file()?;
        discovery::describe_query(&self.pool, sql).await
    }

    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>> {
        self.check_file()?;
        Ok(Box::new(reader::SqliteReader::open(self, spec).await?))
    }

    async fn estimate_rows(&self, query: &fdi_connector::SourceQuery) -> Result<Option<u64>> {
        self.check_file()?;
        discovery::estimate_rows(&self.pool, query).await
    }

    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>> {
        self.check_file()?;
        Ok(Box::new(writer::SqliteWriter::new(self.pool.clone(), spec)))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
