//! PostgreSQL connector: discovery over the catalogs, a streaming reader (sqlx `fetch`) and a
//! transactional writer using `COPY ... FROM STDIN` (plain insert; binary COPY when every column
//! type allows it) or COPY into a temporary staging table + `INSERT ... ON CONFLICT` (upsert).
//! Combination (CDC) tasks read its change log by logical replication with pgoutput ([`cdc`]).

mod binary;
pub mod cdc;
mod deferred_indexes;
mod discovery;
mod in_server;
mod reader;
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
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The datasource type this connector serves.
pub const TYPE: DatasourceType =
    DatasourceType::new("POSTGRESQL", "pg").with_aliases(&["POSTGRES"]);

/// Builds PostgreSQL connectors from a datasource's `content`.
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
        let c = ServerContent::parse(content, &["postgres", "postgresql"])?;
        connect_options(&c).map(|_| ())
    }

    fn create(&self, content: &serde_json::Value) -> Result<Arc<dyn Connector>> {
        let c = ServerContent::parse(content, &["postgres", "postgresql"])?;
        let options = connect_options(&c)?;
        let url = c.url.as_deref();
        let replication = cdc::ReplicationTarget::new(
            &options,
            c.password
                .clone()
                .or_else(|| url.and_then(cdc::url_password))
                .as_deref(),
            url.and_then(|u| fdi_connector::content::url_param(u, "sslrootcert"))
                .as_deref(),
        );
        let schema = c.schema.unwrap_or_else(|| "public".to_string());
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(15))
            .idle_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Ok(Arc::new(PgConnector {
            cdc: cdc::PgChangeLog::new(pool.clone(), replication, schema.clone()),
            pool,
            schema,
        }))
    }
}

fn connect_options(c: &ServerContent) -> Result<PgConnectOptions> {
    let mut o = match &c.url {
        Some(url) => url
            .parse::<PgConnectOptions>()
            .map_err(|e| ConnectorError::user(format!("content.url: {e}")))?,
        None => PgConnectOptions::new_without_pgpass()
            .host(&c.host)
            .port(c.port.unwrap_or(5432)),
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
    Ok(fdi_sql_core::statement_log::quiet(
        o.application_name("fdi"),
    ))
}

/// One configured PostgreSQL datasource.
pub struct PgConnector {
    pool: PgPool,
    /// Schema of unqualified table names.
    schema: String,
    /// Logical replication for combination tasks.
    cdc: cdc::PgChangeLog,
}

impl PgConnector {
    /// `schema.table` for a possibly unqualified name.
    fn qualify(&self, table: &str) -> (String, String) {
        match fdi_sql_core::dialect::split_qualified(table) {
            (Some(s), t) => (s.to_string(), t.to_string()),
            (None, t) => (self.schema.clone(), t.to_string()),
        }
    }
}

#[async_trait]
impl Connector for PgConnector {
    fn datasource_type(&self) -> DatasourceType {
        TYPE
    }

    fn window_sql(&self) -> Option<&dyn fdi_connector::window::WindowSql> {
        Some(&fdi_sql_core::Dialect::Postgres)
    }

    async fn test_connect(&self) -> Result<()> {
        sqlx::raw_sql("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| map_sqlx_error("", e))
    }

    async fn list_tables(&self, filter: Option<&str>) -> Result<Vec<String>> {
        discovery::list_tables(self, filter).await
    }

    async fn columns(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        discovery::columns(self, table).await
    }

    async fn test_sql(&self, sql: &str) -> Result<Vec<ColumnInfo>> {
        discovery::describe_query(self, sql).await
    }

    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>> {
        Ok(Box::new(reader::PgReader::open(self, spec).await?))
    }

    /// The ranges read one snapshot, exported by a transaction held open while they read. A
    /// server that cannot export one (an old standby, say) gets ranges read independently.
    async fn split_readers(&self, specs: Vec<ReadSpec>) -> Result<Vec<Box<dyn SourceReader>>> {
        let snapshot = match reader::SharedSnapshot::export(&self.pool).await {
            Ok(s) => Some(std::sync::Arc::new(s)),
            Err(e) => {
                tracing::warn!(error = %e, "split ranges read without a shared snapshot");
                None
            }
        };
        let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(reader::reads_at_once(
            &self.pool,
        )));
        let mut readers: Vec<Box<dyn SourceReader>> = Vec::with_capacity(specs.len());
        for spec in specs {
            let reader = reader::PgReader::open(self, spec)
                .await?
                .taking_turns(turns.clone());
            readers.push(Box::new(match &snapshot {
                Some(s) => reader.in_snapshot(s.clone()),
                None => reader,
            }));
        }
        Ok(readers)
    }

    async fn key_range(
        &self,
        query: &fdi_connector::SourceQuery,
        column: &str,
    ) -> Result<Option<(i64, i64)>> {
        let fdi_connector::SourceQuery::Table { table, .. } = query else {
            return Ok(None);
        };
        let (schema, table) = self.qualify(table);
        let table = format!("{schema}.{table}");
        let Some(sql) = fdi_sql_core::select::key_range_select(
            fdi_sql_core::Dialect::Postgres,
            query,
            &table,
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
        discovery::estimate_rows(self, query).await
    }

    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>> {
        Ok(Box::new(writer::PgWriter::new(
            self.pool.clone(),
            self.qualify(&spec.table),
            spec,
        )))
    }

    async fn table_set_writer(
        &self,
        specs: Vec<WriteSpec>,
    ) -> Result<Option<Box<dyn fdi_connector::TableSetWriter>>> {
        let tables = specs
            .into_iter()
            .map(|spec| (self.qualify(&spec.table), spec))
            .collect();
        Ok(Some(writer::table_set(self.pool.clone(), tables)))
    }

    fn in_server(&self) -> Option<&dyn fdi_connector::in_server::InServer> {
        Some(self)
    }

    fn change_log(&self) -> Option<&dyn fdi_connector::change::ChangeLog> {
        Some(&self.cdc)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
