//! The factory and the [`Connector`] every message connector (a queue, a topic, a stream)
//! builds the same way: validate and create through the connector's typed configuration, report
//! its type, take rows of any columns as a target, refuse SQL. A connector implements
//! [`MessageConnector`] (what is its own) and names its factory as a unit struct would be, a
//! type and a value:
//!
//! ```text
//! pub type Factory = fdi_message_core::FactoryOf<KafkaConnector>;
//! #[allow(non_upper_case_globals)]
//! pub const Factory: Factory = fdi_message_core::FactoryOf::new();
//! ```

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use fdi_connector::{
    ColumnInfo, Connector, ConnectorError, ConnectorFactory, ContentField, ReadSpec, Result,
    SinkWriter, SourceReader, WriteSpec,
};
use fdi_types::DatasourceType;

/// What a message connector has of its own; [`FactoryOf`] and [`ConnectorOf`] do the rest.
#[async_trait]
pub trait MessageConnector: Send + Sync + Sized + 'static {
    /// The datasource type the connector serves.
    const TYPE: DatasourceType;
    /// Every field `content` may hold (see [`ConnectorFactory::content_fields`]).
    const CONTENT_FIELDS: &'static [ContentField];
    /// The user error `test_sql` answers.
    const NO_SQL: &'static str;

    /// The connector of `content` parsed as its typed configuration, without connecting
    /// (connections are opened per call, reader and writer); errors name the field.
    fn parse(content: &serde_json::Value) -> Result<Self>;

    async fn test_connect(&self) -> Result<()>;
    async fn list_tables(&self, filter: Option<&str>) -> Result<Vec<String>>;
    async fn columns(&self, table: &str) -> Result<Vec<ColumnInfo>>;
    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>>;
    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>>;
}

/// Builds the connectors of `C`.
pub struct FactoryOf<C>(PhantomData<fn() -> C>);

impl<C> FactoryOf<C> {
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<C> Default for FactoryOf<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> Clone for FactoryOf<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for FactoryOf<C> {}

impl<C: MessageConnector> std::fmt::Debug for FactoryOf<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Factory({})", C::TYPE.as_str())
    }
}

impl<C: MessageConnector> ConnectorFactory for FactoryOf<C> {
    fn datasource_type(&self) -> DatasourceType {
        C::TYPE
    }

    fn content_fields(&self) -> &'static [ContentField] {
        C::CONTENT_FIELDS
    }

    fn validate(&self, content: &serde_json::Value) -> Result<()> {
        C::parse(content).map(|_| ())
    }

    fn create(&self, content: &serde_json::Value) -> Result<Arc<dyn Connector>> {
        Ok(Arc::new(ConnectorOf(C::parse(content)?)))
    }
}

/// A message connector as the SPI's [`Connector`].
pub struct ConnectorOf<C>(pub C);

#[async_trait]
impl<C: MessageConnector> Connector for ConnectorOf<C> {
    fn datasource_type(&self) -> DatasourceType {
        C::TYPE
    }

    async fn test_connect(&self) -> Result<()> {
        self.0.test_connect().await
    }

    async fn list_tables(&self, filter: Option<&str>) -> Result<Vec<String>> {
        self.0.list_tables(filter).await
    }

    async fn columns(&self, table: &str) -> Result<Vec<ColumnInfo>> {
        self.0.columns(table).await
    }

    /// A queue, a topic or a stream takes the source's columns under their own names.
    fn schemaless_target(&self) -> bool {
        true
    }

    async fn test_sql(&self, _sql: &str) -> Result<Vec<ColumnInfo>> {
        Err(ConnectorError::user(C::NO_SQL))
    }

    async fn reader(&self, spec: ReadSpec) -> Result<Box<dyn SourceReader>> {
        self.0.reader(spec).await
    }

    async fn writer(&self, spec: WriteSpec) -> Result<Box<dyn SinkWriter>> {
        self.0.writer(spec).await
    }
}
