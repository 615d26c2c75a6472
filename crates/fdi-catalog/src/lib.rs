//! The catalog: apps, datasources and tasks over the metadata store, with what every user of
//! them needs on top of the rows — datasource content unsealed (and sealed on write), connectors
//! built from it, and tasks resolved into runnable endpoints. The API, the scheduler and (later)
//! the CDC pipeline all go through it; it sits below them. Errors are domain errors
//! ([`CatalogError`]); which HTTP status they become is the API's business.

pub mod connector_cache;

use std::sync::Arc;

use async_trait::async_trait;
use fdi_connector::{Connector, ConnectorError, ConnectorRegistry, ContentField};
use fdi_engine::{DirtyDataDir, DirtyDataPolicy, Endpoint};
use fdi_store::{DatasourceQuery, DatasourceRow, Scope, Store, StoreError};
use fdi_types::{ApiError, DatasourceType, ErrorCode, TaskDetail, TaskKind, TaskType};
use serde_json::Value;

/// A datasource with its content in clear (responses mask the secrets).
#[derive(Debug, Clone)]
pub struct DatasourceView {
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub datasource_type: String,
    pub app_id: String,
    pub app_name: String,
    /// Secrets in clear: never sent as is.
    pub content: Value,
    pub description: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A datasource to create, or the new state of one to update.
pub struct NewDatasource {
    pub name: String,
    pub datasource_type: DatasourceType,
    pub app_id: String,
    pub content: Value,
    pub description: Option<String>,
}

/// Everything the scheduler needs to start one run of a task.
pub struct ResolvedTask {
    pub task_id: String,
    /// A normal or a combination (CDC) task.
    pub kind: TaskKind,
    pub task_type: TaskType,
    pub raw_detail: String,
    pub source: Endpoint,
    pub target: Endpoint,
    /// Where its dirty rows go (`task_detail.error_handler`).
    pub dirty: DirtyDataPolicy,
    /// Where a message goes when a run ends (`task_detail.afterImplementation`).
    pub run_end: Option<RunEndTarget>,
}

/// The topic a task's run-end message is published to, with the task's own text.
#[derive(Clone)]
pub struct RunEndTarget {
    pub endpoint: Endpoint,
    pub topic: String,
    pub message_content: Option<String>,
}

/// Looks tasks up, with their datasources opened, for the scheduler. [`Catalog`] is the real
/// one; benchmarks and tests may bring their own.
#[async_trait]
pub trait TaskResolver: Send + Sync {
    /// `Ok(None)` when the task does not exist (any more).
    async fn resolve(&self, task_id: &str) -> Result<Option<ResolvedTask>, ApiError>;
    /// What the task is, without opening its datasources.
    async fn describe(&self, task_id: &str) -> Result<Option<TaskBrief>, ApiError>;
}

/// A task's kind, type, name and raw task_detail.
#[derive(Debug, Clone)]
pub struct TaskBrief {
    pub kind: TaskKind,
    pub task_type: TaskType,
    pub name: String,
    pub raw_detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The binary has no connector for the type.
    #[error("datasource_type: no connector for {0}")]
    NoConnector(DatasourceType),
    /// The content does not make a connector (the message names the field).
    #[error("{0}")]
    Content(ConnectorError),
    /// A stored datasource names a type this binary does not know.
    #[error(transparent)]
    UnknownType(ApiError),
    /// A task names a datasource that is gone.
    #[error("{field}: {id}")]
    DatasourceMissing { field: &'static str, id: String },
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::Store(s) if s.is_unavailable() => {
                ApiError::new(ErrorCode::StoreUnavailable, s.to_string())
            }
            CatalogError::Store(s) => ApiError::internal(s.to_string()),
            CatalogError::NoConnector(_) => {
                ApiError::new(ErrorCode::InvalidDatasourceType, e.to_string())
            }
            CatalogError::Content(c) => ApiError::new(ErrorCode::IncorrectContent, c.message),
            CatalogError::UnknownType(a) => a,
            CatalogError::DatasourceMissing { .. } => {
                ApiError::new(ErrorCode::DatasourceMissing, e.to_string())
            }
        }
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The catalog over one store and the connectors this binary was built with.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
    connectors: Arc<ConnectorRegistry>,
    /// Connectors of runs, kept between runs where their factory allows it.
    run_connectors: Arc<connector_cache::ConnectorCache>,
}

impl Catalog {
    pub fn new(store: Store, connectors: Arc<ConnectorRegistry>) -> Self {
        Self {
            store,
            connectors,
            run_connectors: Arc::default(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A `datasource_type` among the types of this binary's connectors (400 FDI.3443 naming the
    /// field otherwise).
    pub fn parse_type(&self, s: &str) -> Result<DatasourceType, ApiError> {
        self.connectors.parse_type(s)
    }

    /// The content fields of type `t` (none when the binary has no connector for it).
    pub fn content_fields(&self, t: DatasourceType) -> &'static [ContentField] {
        self.connectors.get(t).map_or(&[], |f| f.content_fields())
    }

    /// Check `content` for type `t` without connecting (errors name the field).
    pub fn validate_content(&self, t: DatasourceType, content: &Value) -> Result<()> {
        let factory = self.connectors.get(t).ok_or(CatalogError::NoConnector(t))?;
        factory.validate(content).map_err(CatalogError::Content)
    }

    /// Validate `content` for type `t` and build its connector (pools connect lazily).
    pub fn open_connector(&self, t: DatasourceType, content: &Value) -> Result<Arc<dyn Connector>> {
        let factory = self.connectors.get(t).ok_or(CatalogError::NoConnector(t))?;
        factory.validate(content).map_err(CatalogError::Content)?;
        factory.create(content).map_err(CatalogError::Content)
    }

    /// A datasource's endpoint for a run or a plan check: its type and connector, the one an
    /// earlier run of the same content used where the connector type allows it. Shared: never
    /// `close()` it (its pools close when the cache drops it and the last run ends).
    pub fn endpoint(&self, d: &DatasourceView) -> Result<Endpoint> {
        let t = self
            .parse_type(&d.datasource_type)
            .map_err(CatalogError::UnknownType)?;
        let factory = self.connectors.get(t).ok_or(CatalogError::NoConnector(t))?;
        let connector = if factory.reusable_across_runs() {
            self.run_connectors
                .get_or_build(t, &d.content, || self.open_connector(t, &d.content))?
        } else {
            self.open_connector(t, &d.content)?
        };
        Ok(Endpoint {
            datasource_type: t,
            connector,
        })
    }

    fn view(&self, d: DatasourceRow) -> Result<DatasourceView> {
        Ok(DatasourceView {
            content: self.store.open_sealed(&d.sealed)?,
            id: d.id,
            instance_id: d.instance_id,
            name: d.name,
            datasource_type: d.datasource_type,
            app_id: d.app_id,
            app_name: d.app_name,
            description: d.description,
            created_ms: d.created_ms,
            updated_ms: d.updated_ms,
        })
    }

    fn row(
        &self,
        id: String,
        scope: Scope<'_>,
        d: NewDatasource,
        created_ms: i64,
    ) -> Result<DatasourceRow> {
        Ok(DatasourceRow {
            id,
            instance_id: scope.instance.into(),
            name: d.name,
            datasource_type: d.datasource_type.as_str().into(),
            app_id: d.app_id,
            app_name: String::new(),
            sealed: self.store.seal(&d.content)?,
            description: d.description,
            created_ms,
            updated_ms: fdi_types::now_millis(),
        })
    }

    pub async fn datasource(&self, scope: Scope<'_>, id: &str) -> Result<Option<DatasourceView>> {
        self.store
            .datasource(scope, id)
            .await?
            .map(|d| self.view(d))
            .transpose()
    }

    /// Datasources as the query asks; (total, page).
    pub async fn datasources(
        &self,
        scope: Scope<'_>,
        q: &DatasourceQuery,
    ) -> Result<(u64, Vec<DatasourceView>)> {
        let (total, rows) = self.store.list_datasources(scope, q).await?;
        let views = rows
            .into_iter()
            .map(|d| self.view(d))
            .collect::<Result<Vec<_>>>()?;
        Ok((total, views))
    }

    pub async fn all_datasources(&self, scope: Scope<'_>) -> Result<Vec<DatasourceView>> {
        self.store
            .all_datasources(scope)
            .await?
            .into_iter()
            .map(|d| self.view(d))
            .collect()
    }

    /// Store a new datasource, its content sealed. [`StoreError::NameTaken`] when the name is
    /// taken.
    pub async fn create_datasource(
        &self,
        scope: Scope<'_>,
        d: NewDatasource,
    ) -> Result<DatasourceView> {
        let row = self.row(fdi_types::new_id(), scope, d, fdi_types::now_millis())?;
        self.store.insert_datasource(scope, &row).await?;
        self.stored(scope, &row.id).await
    }

    /// Replace a datasource's definition (its id and creation time stay).
    pub async fn update_datasource(
        &self,
        scope: Scope<'_>,
        id: &str,
        created_ms: i64,
        d: NewDatasource,
    ) -> Result<DatasourceView> {
        let row = self.row(id.to_string(), scope, d, created_ms)?;
        self.store.update_datasource(scope, &row).await?;
        self.stored(scope, id).await
    }

    async fn stored(&self, scope: Scope<'_>, id: &str) -> Result<DatasourceView> {
        self.datasource(scope, id)
            .await?
            .ok_or_else(|| CatalogError::DatasourceMissing {
                field: "datasource_id",
                id: id.to_string(),
            })
    }

    /// Where a task's dirty rows go: `error_handler.path` under the files root, then the task id.
    /// Without an error handler the first dirty row fails a run.
    pub fn dirty_data_policy(
        &self,
        detail: &TaskDetail,
        task_id: &str,
    ) -> Result<DirtyDataPolicy, ApiError> {
        let Some(h) = &detail.error_handler else {
            return Ok(DirtyDataPolicy {
                dir: None,
                max_rows: 0,
                max_ratio: None,
            });
        };
        const FIELD: &str = "task_detail.error_handler.path";
        let files = self.connectors.files_root().ok_or_else(|| {
            ApiError::invalid_field(FIELD, "this server has no files root for LOCAL files")
        })?;
        let raw = h.path.as_deref().unwrap_or_default().trim();
        let dir = files
            .resolve(FIELD, raw)
            .map_err(|e| ApiError::invalid_field(FIELD, e.message))?;
        Ok(DirtyDataPolicy {
            dir: Some(DirtyDataDir {
                path: dir.join(task_id),
                shown: format!("{}/{task_id}", raw.trim_end_matches('/')),
            }),
            max_rows: h.max_dirty_rows(),
            max_ratio: h.max_dirty_ratio,
        })
    }

    /// The topic of a task's run-end message (`afterImplementation`): a KAFKA datasource of the
    /// task's instance.
    pub async fn run_end_target(
        &self,
        scope: Scope<'_>,
        detail: &TaskDetail,
    ) -> Result<Option<RunEndTarget>, ApiError> {
        let Some(a) = detail.run_end_action() else {
            return Ok(None);
        };
        const FIELD: &str = "task_detail.afterImplementation.datasourceId";
        let id = a.datasource_id.as_deref().unwrap_or_default().trim();
        let d =
            self.datasource(scope, id)
                .await?
                .ok_or_else(|| CatalogError::DatasourceMissing {
                    field: FIELD,
                    id: id.to_string(),
                })?;
        // The action names the type of datasource it publishes to (`KAFKA`).
        let action = a.action_type.as_deref().unwrap_or_default().trim();
        if !d.datasource_type.eq_ignore_ascii_case(action) {
            return Err(ApiError::new(
                ErrorCode::InvalidDatasource,
                format!(
                    "{FIELD}: datasource {id} is {}, not {action}",
                    d.datasource_type
                ),
            ));
        }
        Ok(Some(RunEndTarget {
            endpoint: self.endpoint(&d)?,
            topic: a.topic.as_deref().unwrap_or_default().trim().to_string(),
            message_content: a.message_content.clone(),
        }))
    }

    async fn task_endpoint(
        &self,
        scope: Scope<'_>,
        field: &'static str,
        id: &str,
    ) -> Result<Endpoint> {
        let d =
            self.datasource(scope, id)
                .await?
                .ok_or_else(|| CatalogError::DatasourceMissing {
                    field,
                    id: id.to_string(),
                })?;
        self.endpoint(&d)
    }
}

#[async_trait]
impl TaskResolver for Catalog {
    async fn resolve(&self, task_id: &str) -> Result<Option<ResolvedTask>, ApiError> {
        let Some((project, instance, t)) = self
            .store
            .task_by_id(task_id)
            .await
            .map_err(CatalogError::from)?
        else {
            return Ok(None);
        };
        let scope = Scope {
            project: &project,
            instance: &instance,
        };
        let source = self
            .task_endpoint(scope, "task.source_datasource_id", &t.source_datasource_id)
            .await?;
        let target = self
            .task_endpoint(scope, "task.target_datasource_id", &t.target_datasource_id)
            .await?;
        // (A task_detail that does not parse fails its run with the cause when it starts.)
        let (dirty, run_end) = match TaskDetail::parse(&t.task_detail) {
            Ok(detail) => (
                self.dirty_data_policy(&detail, &t.id)?,
                self.run_end_target(scope, &detail).await?,
            ),
            Err(_) => (DirtyDataPolicy::default(), None),
        };
        Ok(Some(ResolvedTask {
            task_id: t.id,
            kind: t.kind,
            task_type: t.task_type,
            raw_detail: t.task_detail,
            source,
            target,
            dirty,
            run_end,
        }))
    }

    async fn describe(&self, task_id: &str) -> Result<Option<TaskBrief>, ApiError> {
        Ok(self
            .store
            .task_by_id(task_id)
            .await
            .map_err(CatalogError::from)?
            .map(|(_, _, t)| TaskBrief {
                kind: t.kind,
                task_type: t.task_type,
                name: t.name,
                raw_detail: t.task_detail,
            }))
    }
}
