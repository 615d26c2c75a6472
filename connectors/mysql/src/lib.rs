//! MySQL / MariaDB connector: discovery over information_schema, a streaming reader (sqlx
//! `fetch`), a transactional writer streaming `LOAD DATA LOCAL INFILE` on `mysql_async` (upsert:
//! through a temporary table and `ON DUPLICATE KEY UPDATE`; multi-row INSERT where the server
//! refuses local files; see `load.rs`), table sets of CDC tasks writing multi-row INSERTs
//! (`writer.rs`), and the binlog change log for combination (CDC) tasks ([`cdc`]).

mod async_conn;
pub mod cdc;
mod discovery;
mod in_server;
mod load;
mod reader;
mod tls;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fdi_connector::{
    ColumnInfo, Connector, ConnectorError, ConnectorFactory, ContentField, ReadSpec, Result,
    SinkWriter, SourceReader, WriteSpec,
};
use fdi_sql_core::content::{SERVER_CONTENT_FIELDS, ServerContent};
use fdi_sql_core::map_sqlx_error;
use fdi_types::DatasourceType;
use sqlx::Executor;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};

/// The datasource type this connector serves.
pub const TYPE: DatasourceType = DatasourceType::new("MYSQL", "mysql");

/// Builds MySQL connectors from a datasource's `content`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Factory;

impl ConnectorFactory for Factory {
    fn datasource_type(&self) -> DatasourceType {
        TYPE
    }

    fn content_fields(&self) -> &'static [ContentField] {
        SERVER_CONTENT_FIELDS
    }

    /// Runs of one datasource share its pool: a run after the first finds idle connections
    /// (no TCP and TLS handshakes, no authentication).
    fn reusable_across_runs(&self) -> bool {
        true
    }

    fn validate(&self, content: &serde_json::Value) -> Result<()> {
        let c = ServerContent::parse(content, &["mysql", "mariadb"])?;
        connect_options(&c)?;
        tls::UrlTls::of_url(c.url.as_deref())
            .map(|_| ())
            .map_err(ConnectorError::user)
    }

    fn create(&self, content: &serde_json::Value) -> Result<Arc<dyn Connector>> {
        let c = ServerContent::parse(content, &["mysql", "mariadb"])?;
        let options = connect_options(&c)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(15))
            .idle_timeout(Duration::from_secs(60))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Literals are escaped with backslashes: make sure the server reads them so.
                    conn.execute(
                        "SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_lazy_with(options);
        let change_log = cdc::MySqlChangeLog::new(&c);
        let load = Arc::new(load::LoadPool::new(&c));
        Ok(Arc::new(MySqlConnector {
            pool,
            load,
            change_log,
        }))
    }
}

fn connect_options(c: &ServerContent) -> Result<MySqlConnectOptions> {
    let mut o = match &c.url {
        Some(url) => url
            .replacen("mariadb://", "mysql://", 1)
            .parse::<MySqlConnectOptions>()
            .map_err(|e| ConnectorError::user(format!("content.url: {e}")))?,
        None => MySqlConnectOptions::new()
            .host(&c.host)
            .port(c.port.unwrap_or(3306)),
    };
    if let Some(u) = &c.user {
        o = o.username(u);
    }
    if let Some(p) = &c.password {
        o = o.password(p);
    }
    if let Some(d) = &c.database {
        o = o.database(d);
    }
    Ok(fdi_sql_core::statement_log::quiet(o.charset("utf8mb4")))
}

/// One configured MySQL datasource.
pub struct MySqlConnector {
    pool: MySqlPool,
    /// Connections of the LOAD DATA writers.
    load: Arc<load::LoadPool>,
    change_log: cdc::MySqlChangeLog,
}

#[async_trait]
impl Connector for MySqlConnector {
    fn datasource_type(&self) -> DatasourceType {
        TYPE
    }

    fn window_sql(&self) -> Option<&dyn fdi_connector::window::WindowSql> {
        Some(&fdi_sql_core::Dialect::MySql)
    }

    async fn test_connect(&self) -> Result<()> {
        sqlx::raw_sql("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| map_sqlx_error("", e))
    }

    async fn list_tables(&self, filter: Option<&str>) -> Result<Vec<String>> {
        discovery::list_tables(&self.pool, filter).await
    }

    async fn columns(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        discovery::columns(&self.pool, table).await
    }

    async fn test_sql(&self, sql: &str) -> Result<Vec<ColumnInfo>> {
        discovery::describe_query(&self.pool, sql).await
    }

    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>> {
        Ok(Box::new(reader::MySqlReader::open(self, spec).await?))
    }

    async fn key_range(
        &self,
        query: &fdi_connector::SourceQuery,
        column: &str,
    ) -> Result<Option<(i64, i64)>> {
        let fdi_connector::SourceQuery::Table { table, .. } = query else {
            return Ok(None);
        };

        let Some(sql) = fdi_sql_core::select::key_range_select(
            fdi_sql_core::Dialect::MySql,
            query,
            table,
            column,
        ) else {
            return Ok(None);
        };
        let (lo, hi): (Option<i64>, Option<i64>) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| fdi_sql_core::map_sqlx_error("key range", e))?;
        Ok(lo.zip(hi))
    }

    async fn estimate_rows(&self, query: &fdi_connector::SourceQuery) -> Result<Option<u64>> {
        discovery::estimate_rows(&self.pool, query).await
    }

    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(load::LoadWriter::new(
            self.load.clone(),
            self.pool.clone(),
            spec,
        )))
    }

    async fn table_set_writer(
        &self,
        specs: Vec<WriteSpec>,
    ) -> Result<Option<Box<dyn fdi_connector::TableSetWriter>>> {
        Ok(Some(writer::table_set(self.pool.clone(), specs)))
    }

    fn in_server(&self) -> Option<&dyn fdi_connector::in_server::InServer> {
        Some(self)
    }

    fn change_log(&self) -> Option<&dyn fdi_connector::change::ChangeLog> {
        Some(&self.change_log)
    }

    async fn close(&self) {
        self.pool.close().await;
        self.load.close().await;
    }
}
