//! Combination (CDC) tasks (reference 5.3.13-5.3.21): one source database's change log applied
//! to many target tables, one mapping per table.
//!
//! A combination task is a row of `fdi_tasks`: `MULTI_INIT` after `multi-tasks/init` (an id, a
//! source and a target datasource, mappings may be added; named by its id, absent from task
//! lists, monitors and statistics, cannot be started), `MULTI` after `POST multi-tasks` named it.
//! Its `task_detail` holds [`MultiTaskSettings`]. Runs, start / stop, terminate and monitor logs
//! go through the normal task endpoints (`tasks/{id}/run`, `batch-operation/tasks`, ...).
//!
//! Decisions where the reference is silent or ambiguous (also in `docs/api-decisions.md`):
//!
//! - **init** takes `source_datasource_id` / `target_datasource_id` (the table spells
//!   `source_data_source_id`: both accepted). Missing: 400 FDI.3146; unknown: 400 FDI.3147 naming
//!   the field (as normal tasks). The source's connector must have a change log (400 FDI.3002
//!   naming `source_datasource_id` and its type); the target must take rows into tables (a message
//!   target is refused naming `target_datasource_id`). The server's log settings (PostgreSQL
//!   `wal_level`, MySQL `binlog_format`) are not checked here: the first run reports them.
//!   `ext_info.server_id` (a string or a number) must be 1..4294967295; absent, the MySQL source
//!   derives one. `task_id` (3-50 letters, digits, `-`, `_`) may be given; one that exists is
//!   refused. The answer is an **array** of one MultiTaskInitElement, as table 5-200 says.
//! - **init with `auto_mapping: true`** maps the tables of the source's default schema
//!   (PostgreSQL: the datasource's `schema`, `public` by default; MySQL: its database) to the
//!   target's tables of the same name (in the target's default schema, else in the source's
//!   schema), pairing columns by name where the target's type can hold the source's (status AUTO,
//!   `mapping_percent` = share of the source columns paired). A source table without such a
//!   target table, or whose columns pair with none, is **not stored** (a running task could not
//!   apply it): it is listed in `unmapped_tables` (ours) with its would-be target and why. Other
//!   schemas: `multi-tasks/mappings/auto` with a selection. More than 2,000 tables: 400 naming
//!   `auto_mapping`. The task keeps `schema.*` as its selection: tables created there later are
//!   added by the running task as ADD mappings.
//! - **create** (`POST multi-tasks`) needs the `task_id` of an init (absent: 400 FDI.3149 saying
//!   to call init; unknown: 404 FDI.3081; a normal or an already created task: 400 naming
//!   `task_id`). `task_type` REALTIME (default) only: TIMING is 400 FDI.3144. `operation_types`:
//!   1-3 of INSERT / UPDATE / DELETE (case-insensitive, duplicates merged), else 400 naming it.
//!   `source_app_id` / `target_app_id`, when given, must be the datasources' apps (400 naming
//!   them). Answers `{"task_id"}`.
//! - **GET / DELETE multi-tasks/{id}** (not in the reference): GET answers the task (name, type,
//!   status, operation types, `stage` INIT or CREATED, whether a stream position is stored) with
//!   its init element (first 10 mappings, `mappings_total_count`). DELETE is refused with 400
//!   FDI.3139 while a run is active; otherwise the task, its mappings and position are deleted,
//!   then the source's reader (PostgreSQL's slot and publication) is dropped, best effort (a
//!   failure is logged: the task is gone either way). 204.
//! - **PUT multi-tasks/{id}** (created tasks only): every field optional (`operation_types`,
//!   `repulling_snapshot`, `description`, `task_tag`, `task_name`, and ours `ext_info.server_id`).
//!   `repulling_snapshot: true` forgets the stored position and drops the source's reader, so the
//!   next run copies the tables again. An active run is ended first when the change concerns it
//!   (repulling, operation types, server id): a started task is stopped (the run commits what it
//!   read), a manual run terminated; the request waits for the end (30 s, else 400 FDI.3139 and
//!   nothing changes), applies the change, and starts the task again if it was started — so the
//!   supervisor's next run uses it at once. Answers `{"task_id"}`.
//! - **reset** (created tasks only) `{date_from}`: epoch ms (a number or its text) or an RFC 3339
//!   time; absent = now (skip what the log holds). In the future: 400 naming `date_from`. The
//!   source's change log finds the position of the first change at or after it; a source that
//!   cannot go back there (PostgreSQL cannot rewind at all) is 400 naming `date_from` with its
//!   message and the advice to use `repulling_snapshot`. An active run is ended as for PUT
//!   (terminate-then-reset), the position stored, the task started again. `{"message": "Reset
//!   Success"}`.
//! - **mappings**: `source_table` `schema.table` (an unqualified name is in the source's default
//!   schema); `target_table` likewise (default: the source table's name in the target's default
//!   schema); stored qualified. `source_datasource_id` / `target_datasource_id`, when given, must
//!   be the task's (400 FDI.3037). `mapping_columns` pairs are checked against the live columns:
//!   a missing column, a target type that cannot hold the source's, or a target column used twice
//!   is 400 FDI.3037 naming `mapping_columns[i].source_column` / `.target_column`; without pairs the
//!   columns are paired by name. Types and lengths come from the datasources, not the request
//!   (`source_columns` / `target_columns` / `ext_info` in the body are ignored). Status MANUAL;
//!   percent = share of the source columns paired. A source table mapped already: 400 naming
//!   `source_table` (change it with PUT). PUT changes the target and pairs (stored pairs are kept,
//!   and checked again, while the target stays; a new target without pairs pairs by name); the
//!   source table cannot change; the status becomes MANUAL (which confirms an ADD or UPDATE
//!   mapping a run recorded). Unknown mapping: 404 FDI.3002 naming `mapping_id`. Mapping
//!   changes apply from the task's next start; a table added to a task that already streams is
//!   not copied (use `repulling_snapshot`).
//! - **GET mappings** pages with `offset` from 1 = page number (as the task list) and `limit`
//!   (default 10, at most 1000); filters `source_table`, `target_table`, `table_name` (either;
//!   case-insensitive substrings), `source_datasource_id` / `target_datasource_id` (another
//!   datasource: nothing). Answers the task's element as init does (`mappings` = the first 10 of
//!   the page, `mappings_total_count`) plus `{total, size, entities}` with the whole page.
//! - **mappings/auto** (no instance in the path): `task_id` is required (the task names the
//!   instance; 400 FDI.3149 otherwise); `source_ds_id` / `target_ds_id` must be the task's. JSON or
//!   a urlencoded form. `source_select_mapping_tables` (default: every table the source lists) and
//!   `target_select_mapping_tables` (default: the target's default schema, then the source
//!   table's schema) take `schema.t1,schema.t2` and `schema.*`; more than 2,000 selected source
//!   tables: 400 naming `source_select_mapping_tables`, nothing stored. Target name =
//!   `mapping_prefix` + source name + `mapping_suffix` (exact name first, then case-insensitive).
//!   Stored as AUTO in one transaction, replacing earlier mappings of those tables (same ids)
//!   except MANUAL ones, which are kept and reported. A given source selection (with prefix and
//!   suffix) is kept as the task's: new source tables it matches are added while it runs (ADD).
//!   Answers the reference's array of one element whose `mapping` lists every stored mapping with
//!   its percent and `mismatches`, and `unmapped_tables` every selected table not mapped, and why.
//! - A mapping never maps a table onto itself (same datasource, same table).

mod mappings;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use fdi_cdc::MultiTaskSettings;
use fdi_connector::change::{ChangeOp, TableId};
use fdi_types::{ErrorCode, ExecuteStatus, TaskKind, TaskType};
use serde::Deserialize;
use serde_json::{Value, json};

use mappings::{MAX_AUTO_TABLES, Side};
pub use mappings::{
    auto as mappings_auto, create as mapping_create, delete as mapping_delete,
    list as mappings_list, update as mapping_update,
};

use crate::AppState;
use crate::backend::{self, DatasourceView, MappingView, TaskView};
use crate::error::{Error, Result};
use crate::extract::{JsonBody, PathParams};
use crate::validate;

/// `ext_info` of the requests: MySQL's `server_id`, a string or a number.
#[derive(Deserialize, Default, Clone)]
pub struct ExtInfo {
    #[serde(default)]
    server_id: Option<Value>,
}

/// `ext_info.server_id`: None when absent or empty; 1..4294967295 else 400 naming it.
fn server_id(ext: &Option<ExtInfo>) -> Result<Option<String>> {
    const FIELD: &str = "ext_info.server_id";
    let raw = match ext.as_ref().and_then(|e| e.server_id.as_ref()) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(v) => return Err(Error::field(FIELD, format!("{v} is not a number"))),
    };
    match raw.parse::<u32>() {
        Ok(n) if n > 0 => Ok(Some(n.to_string())),
        _ => Err(Error::field(
            FIELD,
            format!("{raw:?} is not a number from 1 to 4294967295"),
        )),
    }
}

/// `operation_types`: 1-3 of INSERT / UPDATE / DELETE, in that order, duplicates merged.
fn operation_types(v: &[String]) -> Result<Vec<ChangeOp>> {
    const FIELD: &str = "operation_types";
    if v.is_empty() {
        return Err(Error::field(
            FIELD,
            "choose at least one of INSERT, UPDATE, DELETE",
        ));
    }
    let mut ops = Vec::new();
    for x in v {
        let op = match x.trim().to_ascii_uppercase().as_str() {
            "INSERT" => ChangeOp::Insert,
            "UPDATE" => ChangeOp::Update,
            "DELETE" => ChangeOp::Delete,
            _ => {
                return Err(Error::field(
                    FIELD,
                    format!("{x:?} (expected INSERT, UPDATE or DELETE)"),
                ));
            }
        };
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    ops.sort_by_key(|o| match o {
        ChangeOp::Insert => 0,
        ChangeOp::Update => 1,
        ChangeOp::Delete => 2,
    });
    Ok(ops)
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|x| !x.is_empty())
}

pub(crate) fn settings_of(t: &TaskView) -> Result<MultiTaskSettings> {
    MultiTaskSettings::parse(&t.task_detail).map_err(Error::internal)
}

fn settings_json(s: &MultiTaskSettings) -> String {
    serde_json::to_string(s).expect("settings serialize")
}

/// The combination task of the path, created or only initialised.
pub(crate) async fn load_multi(s: &AppState, p: &PathParams) -> Result<TaskView> {
    let id = p.get("task_id");
    let t = backend::task_get(s, p.project(), p.instance(), id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::TaskNotFound, format!("task_id: {id}")))?;
    if !t.kind.is_multi() {
        return Err(Error::new(
            ErrorCode::TaskNotFound,
            format!("task_id: {id} is a normal task: see tasks/{id}"),
        ));
    }
    Ok(t)
}

/// The combination task of the path, which `POST multi-tasks` created.
async fn load_created(s: &AppState, p: &PathParams) -> Result<TaskView> {
    let t = load_multi(s, p).await?;
    if t.kind == TaskKind::MultiInit {
        return Err(Error::new(
            ErrorCode::TaskNotFound,
            format!(
                "task_id: {} was initialised but not created: POST multi-tasks with this task_id first",
                t.id
            ),
        ));
    }
    Ok(t)
}

/// The datasources of a combination task, for answers and to open connectors.
pub(crate) struct Ends {
    instance: String,
    source: Option<DatasourceView>,
    target: Option<DatasourceView>,
}

impl Ends {
    pub async fn load(s: &AppState, project: &str, instance: &str, t: &TaskView) -> Result<Self> {
        Ok(Self {
            instance: instance.to_string(),
            source: backend::ds_get(s, project, instance, &t.source_datasource_id).await?,
            target: backend::ds_get(s, project, instance, &t.target_datasource_id).await?,
        })
    }

    pub fn source(&self) -> Option<&DatasourceView> {
        self.source.as_ref()
    }

    pub fn target(&self) -> Option<&DatasourceView> {
        self.target.as_ref()
    }

    /// Connectors for both ends (a datasource deleted under the task: 400 FDI.3147).
    pub async fn open(&self, s: &AppState) -> Result<(Side, Side)> {
        let missing = |field: &str| {
            Error::new(
                ErrorCode::DatasourceMissing,
                format!("{field}: the task's datasource no longer exists"),
            )
        };
        let src = self
            .source
            .clone()
            .ok_or_else(|| missing("source_datasource_id"))?;
        let dst = self
            .target
            .clone()
            .ok_or_else(|| missing("target_datasource_id"))?;
        let src = Side::open(s, src, "source_datasource_id").await?;
        match Side::open(s, dst, "target_datasource_id").await {
            Ok(dst) => Ok((src, dst)),
            Err(e) => {
                src.close().await;
                Err(e)
            }
        }
    }

    pub fn ext_info(&self, settings: &MultiTaskSettings) -> Value {
        json!({ "server_id": settings.server_id })
    }

    /// MultiTaskInitElement (table 5-201): `mappings` are the ones given (the first 10).
    pub fn element_json(
        &self,
        t: &TaskView,
        settings: &MultiTaskSettings,
        first: &[MappingView],
        total: u64,
    ) -> Value {
        let (src, dst) = (self.source(), self.target());
        let f = |d: Option<&DatasourceView>, g: fn(&DatasourceView) -> &str| {
            d.map(|d| g(d).to_string())
        };
        json!({
            "ext_info": self.ext_info(settings),
            "task_id": t.id,
            "source_datasource_id": t.source_datasource_id,
            "target_datasource_id": t.target_datasource_id,
            "source_group": "SOURCE_GROUP1",
            "target_group": "TARGET_GROUP1",
            "source_ds_id": t.source_datasource_id,
            "target_ds_id": t.target_datasource_id,
            "source_instance_id": self.instance,
            "target_instance_id": self.instance,
            "source_app_id": f(src, |d| &d.app_id),
            "target_app_id": f(dst, |d| &d.app_id),
            "source_datasource_name": f(src, |d| &d.name),
            "target_datasource_name": f(dst, |d| &d.name),
            "source_datasource_type": f(src, |d| &d.datasource_type),
            "target_datasource_type": f(dst, |d| &d.datasource_type),
            "mappings": first.iter().map(mappings::mapping_json).collect::<Vec<_>>(),
            "schema_mappings": [],
            "mappings_total_count": total,
        })
    }
}

// ---- init ---------------------------------------------------------------------------------

/// Body of `multi-tasks/init` (table 5-198).
#[derive(Deserialize)]
pub struct InitBody {
    #[serde(default, alias = "source_data_source_id")]
    source_datasource_id: Option<String>,
    #[serde(default, alias = "target_data_source_id")]
    target_datasource_id: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    auto_mapping: Option<bool>,
    #[serde(default)]
    ext_info: Option<ExtInfo>,
}

/// A task id given by the caller: 3-50 letters, digits, `-` or `_`.
fn check_task_id(id: &str) -> Result<()> {
    let ok = (3..=50).contains(&id.chars().count())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(Error::field(
            "task_id",
            format!("{id:?} (3-50 letters, digits, - or _)"),
        ))
    }
}

async fn datasource(
    s: &AppState,
    p: &PathParams,
    field: &str,
    id: &Option<String>,
) -> Result<DatasourceView> {
    let id = non_empty(id).ok_or_else(|| {
        Error::new(
            ErrorCode::SourceOrTargetEmpty,
            format!("{field}: is required"),
        )
    })?;
    backend::ds_get(s, p.project(), p.instance(), id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::DatasourceMissing, format!("{field}: {id}")))
}

pub async fn init(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<InitBody>,
) -> Result<Json<Value>> {
    let server_id = server_id(&b.ext_info)?;
    let given_id = non_empty(&b.task_id).map(str::to_string);
    if let Some(id) = &given_id {
        check_task_id(id)?;
    }
    let src = datasource(&s, &p, "source_datasource_id", &b.source_datasource_id).await?;
    let dst = datasource(&s, &p, "target_datasource_id", &b.target_datasource_id).await?;
    if let Some(id) = &given_id
        && backend::task_by_id(&s, id).await?.is_some()
    {
        return Err(Error::field(
            "task_id",
            format!("{id:?}: a task with this id exists"),
        ));
    }
    let id = given_id.unwrap_or_else(fdi_types::new_id);
    let mut settings = MultiTaskSettings {
        operation_types: Vec::new(),
        server_id,
        source_app_id: Some(src.app_id.clone()).filter(|a| !a.is_empty()),
        target_app_id: Some(dst.app_id.clone()).filter(|a| !a.is_empty()),
        ..Default::default()
    };
    if b.auto_mapping == Some(true)
        && let Some(schema) = mappings::schema_of(&s, &src)?
    {
        // New tables of the schema are added while the task runs (ADD).
        settings.selection = Some(format!("{schema}.*"));
    }
    let now = fdi_types::now_millis();
    let t = TaskView {
        id: id.clone(),
        kind: TaskKind::MultiInit,
        name: id.clone(),
        task_type: TaskType::Realtime,
        source_datasource_id: src.id.clone(),
        target_datasource_id: dst.id.clone(),
        description: None,
        task_tag: None,
        task_detail: settings_json(&settings),
        created_ms: now,
        updated_ms: now,
    };
    // The connectors: what the task can read and write, and the automatic mappings.
    let ends = Ends {
        instance: p.instance().to_string(),
        source: Some(src),
        target: Some(dst),
    };
    let (a, b_side) = ends.open(&s).await?;
    let r = async {
        if a.conn.change_log().is_none() {
            return Err(Error::field(
                "source_datasource_id",
                format!(
                    "datasource {:?} is of type {}, which has no change log: a combination task reads a database that has one (e.g. POSTGRESQL, MYSQL)",
                    a.ds.name, a.type_name
                ),
            ));
        }
        if b_side.conn.schemaless_target() {
            return Err(Error::field(
                "target_datasource_id",
                format!(
                    "datasource {:?} is of type {}: a combination task writes to database tables",
                    b_side.ds.name, b_side.type_name
                ),
            ));
        }
        if b.auto_mapping != Some(true) {
            return Ok(None);
        }
        let schema = a.default_schema.clone();
        let sources: Vec<TableId> = a
            .tables("auto_mapping")
            .await?
            .into_iter()
            .filter(|t| Some(&t.schema) == schema.as_ref())
            .collect();
        if sources.len() > MAX_AUTO_TABLES {
            return Err(Error::field(
                "auto_mapping",
                format!(
                    "the source's schema has {} tables; at most {MAX_AUTO_TABLES} are mapped at once: init without auto_mapping and use multi-tasks/mappings/auto with selections",
                    sources.len()
                ),
            ));
        }
        let req = mappings::AutoRequest {
            sources,
            target_selection: None,
            prefix: "",
            suffix: "",
            field: "auto_mapping",
        };
        mappings::auto_map(&a, &b_side, &id, req, &[]).await.map(Some)
    }
    .await;
    a.close().await;
    b_side.close().await;
    let outcome = r?;
    backend::multi_insert(&s, p.project(), p.instance(), &t).await?;
    let (rows, unmapped) = match outcome {
        Some(o) => (o.rows, o.unmapped),
        None => (Vec::new(), Vec::new()),
    };
    if !rows.is_empty()
        && let Err(e) = backend::mappings_put(&s, &rows).await
    {
        // Nothing half-done: the task goes with its mappings.
        let _ = backend::task_delete(&s, p.project(), p.instance(), &t.id).await;
        return Err(e);
    }
    let mut v = ends.element_json(
        &t,
        &settings,
        &rows[..rows.len().min(10)],
        rows.len() as u64,
    );
    v["unmapped_tables"] = unmapped.iter().map(|u| u.json()).collect();
    Ok(Json(json!([v])))
}

// ---- create -------------------------------------------------------------------------------

/// Body of `POST multi-tasks` (table 5-191).
#[derive(Deserialize)]
pub struct CreateBody {
    #[serde(default)]
    task_name: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    task_type: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    task_tag: Option<String>,
    #[serde(default)]
    operation_types: Option<Vec<String>>,
    #[serde(default)]
    source_app_id: Option<String>,
    #[serde(default)]
    target_app_id: Option<String>,
}

fn realtime_only(v: &Option<String>) -> Result<()> {
    match non_empty(v).map(str::to_ascii_uppercase).as_deref() {
        None | Some("REALTIME") => Ok(()),
        Some("TIMING") => Err(Error::new(
            ErrorCode::InvalidTaskType,
            "task_type: TIMING: combination tasks are REALTIME only",
        )),
        Some(x) => Err(Error::new(
            ErrorCode::InvalidTaskType,
            format!("task_type: {x:?} (expected REALTIME)"),
        )),
    }
}

pub async fn create(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<CreateBody>,
) -> Result<Json<Value>> {
    let name = b.task_name.clone().unwrap_or_default();
    validate::task_name_of("task_name", &name)?;
    let id = non_empty(&b.task_id).ok_or_else(|| {
        Error::new(
            ErrorCode::TaskIdEmpty,
            "task_id: is required: call multi-tasks/init first to allocate the task and choose its datasources",
        )
    })?;
    realtime_only(&b.task_type)?;
    let ops = operation_types(b.operation_types.as_deref().ok_or_else(|| {
        Error::field(
            "operation_types",
            "is required: one or more of INSERT, UPDATE, DELETE",
        )
    })?)?;
    if let Some(d) = &b.description {
        validate::description("description", d)?;
    }
    let tag = non_empty(&b.task_tag).map(str::to_string);
    if let Some(tag) = &tag {
        validate::task_tag_of("task_tag", tag)?;
    }
    let old = backend::task_get(&s, p.project(), p.instance(), id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::TaskNotFound,
                format!("task_id: {id} does not exist: call multi-tasks/init first"),
            )
        })?;
    match old.kind {
        TaskKind::MultiInit => {}
        TaskKind::Multi => {
            return Err(Error::field(
                "task_id",
                format!(
                    "{id}: the combination task was created already; change it with PUT multi-tasks/{id}"
                ),
            ));
        }
        TaskKind::Normal => {
            return Err(Error::field(
                "task_id",
                format!("{id} is a normal task, not an initialised combination task"),
            ));
        }
    }
    let mut settings = settings_of(&old)?;
    for (field, given, own) in [
        ("source_app_id", &b.source_app_id, &settings.source_app_id),
        ("target_app_id", &b.target_app_id, &settings.target_app_id),
    ] {
        if let Some(g) = non_empty(given)
            && Some(g) != own.as_deref()
        {
            return Err(Error::field(
                field,
                format!(
                    "{g:?} is not the app of the task's datasource ({})",
                    own.as_deref().unwrap_or("none")
                ),
            ));
        }
    }
    if backend::task_name_taken(&s, p.project(), p.instance(), &name, Some(id)).await? {
        return Err(Error::new(
            ErrorCode::TaskNameExists,
            format!("task_name: {name:?}"),
        ));
    }
    settings.operation_types = ops;
    let t = TaskView {
        kind: TaskKind::Multi,
        name,
        task_type: TaskType::Realtime,
        description: b.description.filter(|d| !d.is_empty()),
        task_tag: tag,
        task_detail: settings_json(&settings),
        updated_ms: fdi_types::now_millis(),
        ..old
    };
    backend::multi_update(&s, p.project(), p.instance(), &t, "task_name").await?;
    Ok(Json(json!({ "task_id": t.id })))
}

// ---- get / delete -------------------------------------------------------------------------

pub async fn get(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    let t = load_multi(&s, &p).await?;
    let settings = settings_of(&t)?;
    let ends = Ends::load(&s, p.project(), p.instance(), &t).await?;
    let (total, first) = backend::mappings_page(&s, &t.id, 0, 10).await?;
    let last = backend::last_run(&s, &t.id).await?;
    let running = backend::task_started(&s, &t.id).await?;
    let created = t.kind == TaskKind::Multi;
    let mut v = ends.element_json(&t, &settings, &first, total);
    let fields = json!({
        "project_id": p.project(),
        "task_name": created.then_some(&t.name),
        "task_type": t.task_type.as_str(),
        "task_mode": "CDC",
        "ext_type": "CDC",
        "stage": if created { "CREATED" } else { "INIT" },
        "status": if running { "running" } else { "stop" },
        "execute_status": last.as_ref().map(|r| r.execute_status.as_str()).unwrap_or(ExecuteStatus::Unstarted.as_str()),
        "operation_types": settings.operation_types.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
        "description": t.description,
        "task_tag": t.task_tag,
        "repulling_snapshot": false,
        "position_stored": backend::cdc_position_stored(&s, &t.id).await?,
        "created_date": t.created_ms,
        "last_modified_date": t.updated_ms,
    });
    for (k, x) in fields.as_object().expect("an object") {
        v[k] = x.clone();
    }
    Ok(Json(v))
}

/// Drop what the source keeps for the task's reader (PostgreSQL's slot and publication), best
/// effort: a failure is logged.
async fn drop_reader(s: &AppState, ends: &Ends, task_id: &str) {
    let Some(ds) = ends.source().cloned() else {
        return;
    };
    let side = match Side::open(s, ds, "source_datasource_id").await {
        Ok(side) => side,
        Err(e) => {
            tracing::warn!(task_id, error = %e, "cannot open the source to drop the task's reader");
            return;
        }
    };
    if let Some(log) = side.conn.change_log() {
        let name = fdi_cdc::reader_name(task_id);
        match log.drop_reader(&name).await {
            Ok(()) => tracing::info!(task_id, reader = name, "dropped the task's reader"),
            Err(e) => {
                tracing::warn!(task_id, reader = name, error = %e, "cannot drop the task's reader")
            }
        }
    }
    side.close().await;
}

pub async fn delete(State(s): State<AppState>, p: PathParams) -> Result<StatusCode> {
    let t = load_multi(&s, &p).await?;
    if backend::is_running(&s, &t.id).await? {
        return Err(Error::new(
            ErrorCode::TaskRunning,
            format!(
                "task_id: {} has a run in progress; terminate it first",
                t.id
            ),
        ));
    }
    let ends = Ends::load(&s, p.project(), p.instance(), &t).await?;
    backend::task_delete(&s, p.project(), p.instance(), &t.id).await?;
    // After the delete: no run can start and create the reader again.
    drop_reader(&s, &ends, &t.id).await;
    Ok(StatusCode::NO_CONTENT)
}

// ---- update -------------------------------------------------------------------------------

/// Body of `PUT multi-tasks/{id}` (table 5-212); every field optional.
#[derive(Deserialize)]
pub struct UpdateBody {
    #[serde(default)]
    task_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    task_tag: Option<String>,
    #[serde(default)]
    operation_types: Option<Vec<String>>,
    #[serde(default)]
    repulling_snapshot: Option<bool>,
    #[serde(default)]
    ext_info: Option<ExtInfo>,
}

pub async fn update(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<UpdateBody>,
) -> Result<Json<Value>> {
    let old = load_created(&s, &p).await?;
    let mut settings = settings_of(&old)?;
    let mut t = old.clone();
    if let Some(name) = &b.task_name {
        validate::task_name_of("task_name", name)?;
        if backend::task_name_taken(&s, p.project(), p.instance(), name, Some(&old.id)).await? {
            return Err(Error::new(
                ErrorCode::TaskNameExists,
                format!("task_name: {name:?}"),
            ));
        }
        t.name = name.clone();
    }
    if let Some(d) = &b.description {
        validate::description("description", d)?;
        t.description = Some(d.clone()).filter(|d| !d.is_empty());
    }
    if let Some(tag) = &b.task_tag {
        let tag = tag.trim();
        if !tag.is_empty() {
            validate::task_tag_of("task_tag", tag)?;
        }
        t.task_tag = Some(tag.to_string()).filter(|t| !t.is_empty());
    }
    let mut run_settings_changed = false;
    if let Some(ops) = &b.operation_types {
        let ops = operation_types(ops)?;
        run_settings_changed |= ops != settings.operation_types;
        settings.operation_types = ops;
    }
    if b.ext_info.as_ref().is_some_and(|e| e.server_id.is_some()) {
        let id = server_id(&b.ext_info)?;
        run_settings_changed |= id != settings.server_id;
        settings.server_id = id;
    }
    let repull = b.repulling_snapshot == Some(true);
    t.task_detail = settings_json(&settings);
    t.updated_ms = fdi_types::now_millis();
    let pause = repull || (run_settings_changed && backend::is_running(&s, &t.id).await?);
    let paused = if pause {
        Some(backend::pause_run(&s, &t).await?)
    } else {
        None
    };
    let r = async {
        backend::multi_update(&s, p.project(), p.instance(), &t, "task_name").await?;
        if repull {
            backend::clear_cdc_position(&s, &t.id).await?;
            let ends = Ends::load(&s, p.project(), p.instance(), &t).await?;
            drop_reader(&s, &ends, &t.id).await;
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Some(paused) = paused {
        backend::resume_run(&s, paused).await?;
    }
    r?;
    Ok(Json(json!({ "task_id": t.id })))
}

// ---- reset --------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct ResetBody {
    #[serde(default)]
    date_from: Option<Value>,
}

/// `date_from`: epoch ms (a number or its text) or an RFC 3339 time; absent = now.
fn date_from(v: &Option<Value>, now: i64) -> Result<i64> {
    const FIELD: &str = "date_from";
    let ms = match v {
        None | Some(Value::Null) => return Ok(now),
        Some(Value::String(x)) if x.trim().is_empty() => return Ok(now),
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| Error::field(FIELD, format!("{n} is not epoch milliseconds")))?,
        Some(Value::String(x)) => match x.trim().parse::<i64>() {
            Ok(n) => n,
            Err(_) => chrono::DateTime::parse_from_rfc3339(x.trim())
                .map(|d| d.timestamp_millis())
                .map_err(|_| {
                    Error::field(
                        FIELD,
                        format!("{x:?} is neither epoch milliseconds nor an RFC 3339 time"),
                    )
                })?,
        },
        Some(v) => {
            return Err(Error::field(
                FIELD,
                format!("{v} is not epoch milliseconds"),
            ));
        }
    };
    if ms < 1 {
        return Err(Error::field(FIELD, format!("{ms} must be at least 1")));
    }
    if ms > now + 60_000 {
        return Err(Error::field(FIELD, format!("{ms} is in the future")));
    }
    Ok(ms)
}

pub async fn reset(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<ResetBody>,
) -> Result<Json<Value>> {
    let t = load_created(&s, &p).await?;
    let at = date_from(&b.date_from, fdi_types::now_millis())?;
    let ends = Ends::load(&s, p.project(), p.instance(), &t).await?;
    let (src, dst) = ends.open(&s).await?;
    dst.close().await;
    let found = async {
        let log = src.conn.change_log().ok_or_else(|| {
            Error::field(
                "source_datasource_id",
                format!("datasource {:?} of type {} has no change log", src.ds.name, src.type_name),
            )
        })?;
        log.position_at(at).await.map_err(|e| {
            if e.kind == fdi_connector::ErrorKind::User {
                let mut msg = e.message.clone();
                if !msg.contains("repulling_snapshot") {
                    msg.push_str(&format!(
                        " (to copy the tables again instead: PUT multi-tasks/{} with repulling_snapshot: true)",
                        t.id
                    ));
                }
                Error::field("date_from", msg)
            } else {
                src.error(e, "date_from", ErrorCode::InvalidParameters)
            }
        })
    }
    .await;
    src.close().await;
    let position = found?;
    let paused = backend::pause_run(&s, &t).await?;
    let r = backend::set_cdc_position(&s, &t.id, &position.0.to_string()).await;
    backend::resume_run(&s, paused).await?;
    r?;
    Ok(Json(json!({ "message": "Reset Success" })))
}
