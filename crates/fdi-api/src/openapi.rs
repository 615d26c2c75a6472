//! The API's OpenAPI 3.1 document (`GET /v2/openapi.json`), generated with `utoipa`.
//!
//! Most handlers build their JSON with `json!`; the schema types here describe exactly what
//! they answer (the small answers — health, run / terminate, statistics — are these types) (field names, types, which fields may be null or absent). Each operation is
//! declared on a stub function next to its schemas, so the whole contract reads in one place;
//! `crates/fdi-api/tests/openapi.rs` fails when a route of the router is missing from it and
//! `tests/openapi/run.sh` fuzzes a live server against it with schemathesis.
//!
//! Every operation behind the token gets, from [`CommonErrors`], the security requirement
//! (`X-Auth-Token`) and the error responses every such route can answer: 400 (a parameter or
//! the path), 401 (no or unknown token), 403 (a token bound to another project), 404 (unknown
//! route or resource), 413 (a body over the limit, operations with a body) and 503 (the
//! metadata store does not answer). Error bodies are always [`ErrorBody`].
//!
//! Response objects are closed (`deny_unknown_fields` = `additionalProperties: false`), so a
//! field a handler adds without documenting it here is a schemathesis finding; request bodies are
//! open (the server ignores fields it does not know). The combination-task element stays open
//! because the answers that extend it are `allOf` compositions.

#![allow(dead_code)] // the stub functions only carry the path attributes

use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// The document, built per request (it is small and cheap to build).
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serializes");
    describe_event_stream(&mut doc);
    doc
}

/// `GET /v2/openapi.json` (no token).
pub async fn serve() -> axum::Json<Value> {
    axum::Json(document())
}

/// The run's event stream: each event is `{event, id, data}` with `data` a [`MonitorLog`] as
/// JSON text (`contentMediaType` + `contentSchema`, which utoipa cannot express).
fn describe_event_stream(doc: &mut Value) {
    const EVENTS: &str = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/monitor-logs/{tracking_id}/events";
    let Some(media) = doc
        .pointer_mut(&format!(
            "/paths/{}/get/responses/200/content/text~1event-stream",
            EVENTS.replace('~', "~0").replace('/', "~1")
        ))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    media.insert(
        "schema".into(),
        serde_json::json!({
            "description": "One event: `progress` while the run goes on, then `end` with the final entry.",
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"type": "string", "enum": ["progress", "end"]},
                "id": {"type": "string", "pattern": "^[0-9]+$"},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": {"$ref": "#/components/schemas/MonitorLog"}
                }
            }
        }),
    );
}

/// Paths answered without a token.
const PUBLIC_PATHS: &[&str] = &[
    "/health",
    "/v2/openapi.json",
    "/metrics",
    "/",
    "/console/{file}",
];

/// The name of the security scheme in `components.securitySchemes`.
const TOKEN_SCHEME: &str = "token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FDI data integration API",
        description = "The FDI HTTP API (datasources, tasks, dispatch plans, monitoring, combination (CDC) tasks, apps). Errors are `{error_code, error_msg, detail?}`.",
    ),
    paths(
        health,
        openapi_json,
        metrics,
        console_index,
        console_file,
        datasources_list,
        datasources_create,
        datasources_get,
        datasources_update,
        datasources_delete,
        datasource_tables,
        datasource_columns,
        datasource_test_connect,
        datasource_test_sql,
        tasks_list,
        tasks_create,
        tasks_get,
        tasks_update,
        tasks_delete,
        task_run,
        task_terminate,
        dispatches_get,
        dispatches_create,
        dispatches_update,
        batch_operation,
        task_statistics,
        task_monitors,
        monitor_logs,
        monitor_log,
        monitor_log_events,
        monitor_overview,
        apps_list,
        apps_create,
        apps_get,
        apps_update,
        apps_delete,
        apps_validate,
        multi_tasks_create,
        multi_tasks_init,
        multi_tasks_get,
        multi_tasks_update,
        multi_tasks_delete,
        multi_tasks_reset,
        mappings_list,
        mappings_create,
        mappings_update,
        mappings_delete,
        mappings_auto,
    ),
    modifiers(&CommonErrors),
    tags(
        (name = "meta", description = "Health, metrics, this document and the web console (no token)"),
        (name = "datasources", description = "Datasources and their discovery (reference 5.1)"),
        (name = "tasks", description = "Normal tasks, runs and dispatch plans (reference 5.3)"),
        (name = "monitoring", description = "Task monitors and run logs (reference 5.2)"),
        (name = "multi-tasks", description = "Combination (CDC) tasks and their mappings"),
        (name = "apps", description = "Integration applications"),
    )
)]
struct ApiDoc;

/// Adds the token scheme, its requirement and the common error responses (see the module doc).
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            TOKEN_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Auth-Token",
                "A token given to `fdi serve --tokens` (`TOKEN` or `TOKEN@project_id`).",
            ))),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if PUBLIC_PATHS.contains(&path.as_str()) {
                continue;
            }
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(vec![SecurityRequirement::new::<_, _, String>(
                    TOKEN_SCHEME,
                    [],
                )]);
                let mut errors = vec![
                    (400, "Invalid parameter: `error_msg` names it"),
                    (401, "X-Auth-Token missing or unknown (FDI.1001)"),
                    (403, "The token is bound to another project (FDI.3478)"),
                    (404, "No such route or resource"),
                    (503, "The metadata store does not answer (FDI.9999)"),
                ];
                if op.request_body.is_some() {
                    errors.push((413, "The body is over the size limit"));
                }
                for (status, description) in errors {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

// ---- common schemas -------------------------------------------------------------------------

/// Every error response: an FDI code, a message naming the field when one is at fault, and
/// sometimes the cause (e.g. a driver's error in `detail`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// `FDI.xxxx`.
    #[schema(example = "FDI.3002")]
    pub error_code: String,
    pub error_msg: String,
    pub detail: Option<String>,
}

/// The path of every FDI and apps route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InstancePath {
    /// The project.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub project_id: String,
    /// The FDI instance.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub instance_id: String,
}

/// `{"message": "success"}`-like answers.
#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub message: String,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// `UP` or `DOWN`.
    pub status: &'static str,
    /// `UP` or `DOWN`.
    pub store: &'static str,
}

// ---- datasources ----------------------------------------------------------------------------

/// DataSourceRsp (reference table 5-17); secrets in `content` are masked.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Datasource {
    pub datasource_id: String,
    pub datasource_name: String,
    pub datasource_type: String,
    pub app_id: String,
    pub app_name: String,
    pub instance_id: String,
    /// The type's connection fields (host, port, user, ...); secrets masked.
    #[schema(value_type = Object)]
    pub content: Value,
    /// Epoch ms.
    pub create_time: i64,
    /// Epoch ms.
    pub update_time: i64,
    pub app_permission: Vec<String>,
    /// Absent when empty.
    pub description: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasourceList {
    pub total: i64,
    pub size: i64,
    pub entities: Vec<Datasource>,
}

/// Create / update body (reference table 5-3). Every field is checked by the server and named
/// in the error when wrong.
#[derive(ToSchema)]
pub struct DatasourceBody {
    pub datasource_name: Option<String>,
    /// e.g. `MYSQL`, `POSTGRESQL`, `SQLITE`, `KAFKA`.
    pub datasource_type: Option<String>,
    pub app_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub content: Option<Value>,
    pub description: Option<String>,
}

/// test-connect body: every part optional (the stored datasource fills in).
#[derive(ToSchema)]
pub struct TestConnectBody {
    pub datasource_name: Option<String>,
    pub datasource_type: Option<String>,
    pub app_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub content: Option<Value>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestConnectResult {
    pub result: bool,
}

#[derive(ToSchema)]
pub struct TestSqlBody {
    pub sql: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tables {
    pub tables: Vec<String>,
}

/// ColumnInfo (reference table 5-60): flags and numbers as strings.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub field_name: String,
    pub field_type: String,
    /// `"0"` when the type has no length.
    pub field_length: String,
    /// `"1"` or `"0"`.
    pub null_able: String,
    pub is_partition: bool,
    /// `"1"` or `"0"`.
    pub primary: String,
    /// `"1"` or `"0"`.
    pub unique: String,
    pub decimal_digits: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Columns {
    pub columns: Vec<Column>,
}

// ---- tasks ----------------------------------------------------------------------------------

/// TaskBasicRequestBody (table 5-109); `source_data_source_id` is accepted for
/// `source_datasource_id` (and the same for target).
#[derive(ToSchema)]
pub struct TaskBasicBody {
    pub task_name: Option<String>,
    /// `TIMING` or `REALTIME`.
    pub task_type: Option<String>,
    pub source_datasource_id: Option<String>,
    pub target_datasource_id: Option<String>,
    pub description: Option<String>,
    pub task_tag: Option<String>,
}

#[derive(ToSchema)]
pub struct TaskBody {
    pub task: Option<TaskBasicBody>,
    /// The task detail (source, target, mappings) as JSON text (RawFormDataRequest) or as an
    /// object; checked against the live datasources.
    pub task_detail: Option<Value>,
}

/// TaskBasicRsp (table 5-111).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskBasic {
    pub task_id: String,
    pub task_name: String,
    /// `timing` or `realtime`.
    pub task_type: String,
    /// `running` or `stop`.
    pub status: String,
    pub source_datasource_id: String,
    pub target_datasource_id: String,
    pub source_datasource_name: String,
    pub target_datasource_name: String,
    pub source_app_id: String,
    pub target_app_id: String,
    pub source_app_name: String,
    pub target_app_name: String,
    pub created_date: i64,
    pub last_modified_date: i64,
    pub task_mode: String,
    pub execute_status: String,
    pub repulling_snapshot: bool,
    pub description: Option<String>,
    pub task_tag: Option<String>,
    pub project_id: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub task: TaskBasic,
    /// The stored task detail, as JSON text.
    pub task_detail: String,
}

/// BriefTaskRespBean (table 5-119).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskBrief {
    pub task_id: String,
    pub task_name: String,
    pub task_type: String,
    /// 1 when started or running, else 0.
    pub status: i32,
    /// Epoch ms as text.
    pub created_date: String,
    pub version: String,
    pub last_modified_time: i64,
    pub execute_status: String,
    pub source_app_id: String,
    pub target_app_id: String,
    pub source_instance_id: String,
    pub target_instance_id: String,
    /// `CDC` for a combination task, else null.
    pub ext_type: Option<String>,
    pub enterprise_project_id: String,
    pub task_tag: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskList {
    pub total: i64,
    pub size: i64,
    pub entities: Vec<TaskBrief>,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskStateCounts {
    pub running_tasks_count: i64,
    pub abnormal_tasks_count: i64,
    pub terminated_tasks_count: i64,
    pub completed_tasks_count: i64,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskStatistics {
    pub common_task_details: Option<TaskStateCounts>,
    pub cdc_task_details: Option<TaskStateCounts>,
}

#[derive(ToSchema, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunStarted {
    pub message: String,
    pub tracking_id: String,
}

/// A dispatch plan (create/update body and answer).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchPlan {
    pub dispatch_id: String,
    pub task_id: String,
    pub start_datetime: i64,
    pub period: Option<String>,
    pub dispatch_interval: Option<i64>,
    pub created_date: i64,
    pub last_modified_date: i64,
    pub remark: Option<String>,
    pub use_quartz_cron: bool,
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub misfire_policy: Option<String>,
}

/// Create / update a plan: `start_datetime`, `period` + `dispatch_interval` or
/// `use_quartz_cron` + `cron`, `time_zone`, `remark`, `misfire_policy`.
#[derive(ToSchema)]
pub struct DispatchPlanBody {
    pub start_datetime: Option<i64>,
    pub period: Option<String>,
    pub dispatch_interval: Option<i64>,
    pub use_quartz_cron: Option<bool>,
    pub cron: Option<String>,
    pub time_zone: Option<String>,
    pub remark: Option<String>,
    pub misfire_policy: Option<String>,
}

#[derive(ToSchema)]
pub struct BatchTaskRef {
    pub task_id: Option<String>,
}

#[derive(ToSchema)]
pub struct BatchBody {
    /// `start` or `stop`.
    pub action_id: Option<String>,
    pub list: Option<Vec<BatchTaskRef>>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    pub task_id: String,
    pub task_name: String,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchResult {
    pub success_count: i64,
    pub failure_count: i64,
    pub failure: Vec<BatchItem>,
    pub success: Vec<BatchItem>,
}

// ---- monitoring -----------------------------------------------------------------------------

/// TaskMonitorInfo (table 5-84).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskMonitor {
    pub task_id: String,
    pub task_name: String,
    pub task_type: String,
    pub status: i32,
    pub last_execute_time: Option<i64>,
    pub position: Option<String>,
    pub execute_status: String,
    pub source_app_id: String,
    pub source_app_name: String,
    pub source_instance_id: String,
    pub target_app_id: String,
    pub target_app_name: String,
    pub target_instance_id: String,
    pub ext_type: Option<String>,
    pub enterprise_project_id: String,
    pub task_tag: Option<String>,
    pub use_quartz_cron: Option<bool>,
    pub cron: Option<String>,
    pub period: Option<String>,
    pub dispatch_interval: Option<i64>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskMonitorList {
    pub total: i64,
    pub size: i64,
    pub entities: Vec<TaskMonitor>,
}

/// A step of a run as the live fields show it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepState {
    /// The step code.
    pub status: i32,
    pub stage: String,
    pub remarks: String,
}

/// One part of a step (a split, a CDC table, a file).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubStep {
    /// The step code.
    pub status: i32,
    pub stage: String,
    pub remarks: String,
    /// Rows of this part.
    pub data_count: i64,
}

/// TaskMonitorDetailLog (table 5-92).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailLog {
    pub id: String,
    pub status: i32,
    /// ADAPTER, READER or WRITER.
    pub position: String,
    pub position_status: String,
    pub stage: String,
    pub dirty_data_count: i64,
    pub data_count: i64,
    pub data_size: f64,
    /// B, KB, MB or GB.
    pub data_size_unit: String,
    pub spend_time: i64,
    pub remarks: String,
    pub step_begin_time: i64,
    pub step_end_time: i64,
    /// The parts of the step where a run has parts (splits, CDC tables, files); absent when
    /// it has none.
    pub sub_steps: Option<Vec<SubStep>>,
}

/// TaskMonitorLog (table 5-91) with the live progress of the run.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorLog {
    pub id: String,
    pub start_time: i64,
    pub dispatch_time: i64,
    pub end_time: Option<i64>,
    pub execute_status: String,
    pub position: String,
    pub position_status: String,
    pub status: i32,
    pub dirty_data_count: i64,
    pub data_count: i64,
    pub data_size: f64,
    pub data_size_unit: String,
    pub spend_time: i64,
    pub read_spend_time: i64,
    pub write_spend_time: i64,
    pub remarks: String,
    pub detail_logs: Vec<DetailLog>,
    /// 0..100 from the source's row estimate; null when the source gave none; 100 at SUCCESS.
    #[schema(minimum = 0, maximum = 100)]
    pub progress: Option<i32>,
    /// Rows read so far.
    pub read_count: Option<i64>,
    /// The source's row estimate, or null.
    pub total_count: Option<i64>,
    /// Rows per second over the last interval.
    pub rows_per_second: Option<f64>,
    /// Estimated ms to the end, or null.
    pub remaining_time: Option<i64>,
    pub current_step: Option<StepState>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorLogList {
    pub total: i64,
    pub size: i64,
    pub entities: Vec<MonitorLog>,
}

/// One run's steps (table 5-98).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSteps {
    pub id: String,
    pub execute_status: String,
    pub dirty_data_count: i64,
    pub detail_logs: Vec<DetailLog>,
    /// As in [`MonitorLog`].
    #[schema(minimum = 0, maximum = 100)]
    pub progress: Option<i32>,
    pub read_count: Option<i64>,
    pub total_count: Option<i64>,
    pub rows_per_second: Option<f64>,
    pub remaining_time: Option<i64>,
    pub current_step: Option<StepState>,
}

/// Totals of a task's runs by outcome (table 5-105).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MonitorOverview {
    pub task_name: String,
    pub total_num: i64,
    pub error_num: i64,
    pub success_num: i64,
    pub running_num: i64,
    pub cancel_num: i64,
}

// ---- apps -----------------------------------------------------------------------------------

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    pub user_id: String,
    pub user_name: String,
}

/// ServerAppInfo (apps reference table 4-11).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub id: String,
    pub name: String,
    pub remark: String,
    pub roles: Vec<String>,
    /// ISO 8601 UTC.
    pub create_time: String,
    /// ISO 8601 UTC.
    pub update_time: String,
    pub created_user: UserRef,
    pub last_updated_user: UserRef,
    pub owner: bool,
    pub key: String,
    pub favorite: bool,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppList {
    pub total: i64,
    pub size: i64,
    pub apps: Vec<App>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppBrief {
    pub id: String,
    pub name: String,
    pub remark: String,
}

#[derive(ToSchema)]
pub struct CreateAppBody {
    pub name: Option<String>,
    pub remark: Option<String>,
    pub key: Option<String>,
    pub secret: Option<String>,
    pub favorite: Option<bool>,
}

#[derive(ToSchema)]
pub struct UpdateAppBody {
    pub name: Option<String>,
    pub remark: Option<String>,
    pub favorite: Option<bool>,
}

// ---- multi-tasks ----------------------------------------------------------------------------

/// `ext_info`: MySQL's `server_id` (a string or a number).
#[derive(ToSchema)]
pub struct ExtInfo {
    #[schema(value_type = Option<Object>)]
    pub server_id: Option<Value>,
}

#[derive(ToSchema)]
pub struct MultiInitBody {
    pub source_datasource_id: Option<String>,
    pub target_datasource_id: Option<String>,
    pub task_id: Option<String>,
    pub auto_mapping: Option<bool>,
    pub ext_info: Option<ExtInfo>,
}

#[derive(ToSchema)]
pub struct MultiCreateBody {
    pub task_name: Option<String>,
    pub task_id: Option<String>,
    pub task_type: Option<String>,
    pub description: Option<String>,
    pub task_tag: Option<String>,
    pub operation_types: Option<Vec<String>>,
    pub source_app_id: Option<String>,
    pub target_app_id: Option<String>,
}

#[derive(ToSchema)]
pub struct MultiUpdateBody {
    pub task_name: Option<String>,
    pub description: Option<String>,
    pub task_tag: Option<String>,
    pub operation_types: Option<Vec<String>>,
    pub repulling_snapshot: Option<bool>,
    pub ext_info: Option<ExtInfo>,
}

#[derive(ToSchema)]
pub struct MultiResetBody {
    /// Epoch ms (a number or its text) or an RFC 3339 time; absent = now.
    #[schema(value_type = Option<Object>)]
    pub date_from: Option<Value>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskIdResult {
    pub task_id: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingIdResult {
    pub mapping_id: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappedColumn {
    pub field_name: String,
    pub field_type: String,
    pub field_length: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnPair {
    pub source_column: String,
    pub source_column_type: String,
    pub source_column_length: String,
    pub target_column: String,
    pub target_column_type: String,
    pub target_column_length: String,
}

/// MultiTaskMappingElement (table 5-203) plus `mismatches`: why source columns are unpaired.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub id: String,
    pub source_table: String,
    pub target_table: String,
    pub updated_time: i64,
    pub mapping_percent: i32,
    pub status: String,
    pub source_columns: Vec<MappedColumn>,
    pub target_columns: Vec<MappedColumn>,
    pub mapping: Vec<ColumnPair>,
    pub mismatches: Vec<String>,
}

/// MultiTaskInitElement (table 5-201); `mappings` are the first 10.
#[derive(ToSchema)]
pub struct MultiTaskElement {
    #[schema(value_type = Object)]
    pub ext_info: Value,
    pub task_id: String,
    pub source_datasource_id: Option<String>,
    pub target_datasource_id: Option<String>,
    pub source_group: String,
    pub target_group: String,
    pub source_ds_id: Option<String>,
    pub target_ds_id: Option<String>,
    pub source_instance_id: String,
    pub target_instance_id: String,
    pub source_app_id: Option<String>,
    pub target_app_id: Option<String>,
    pub source_datasource_name: Option<String>,
    pub target_datasource_name: Option<String>,
    pub source_datasource_type: Option<String>,
    pub target_datasource_type: Option<String>,
    pub mappings: Vec<Mapping>,
    #[schema(value_type = Vec<Object>)]
    pub schema_mappings: Vec<Value>,
    pub mappings_total_count: i64,
}

/// A source table that auto-mapping did not map, and why.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnmappedTable {
    pub source_table: String,
    pub target_table: String,
    pub mapping_percent: i32,
    pub mismatches: Vec<String>,
}

/// `multi-tasks/init` answers one element with the tables auto-mapping left out.
#[derive(ToSchema)]
pub struct MultiInitElement {
    #[schema(inline)]
    #[serde(flatten)]
    pub element: MultiTaskElement,
    pub unmapped_tables: Vec<UnmappedTable>,
}

/// A combination task: its element plus its settings and state.
#[derive(ToSchema)]
pub struct MultiTask {
    #[serde(flatten)]
    pub element: MultiTaskElement,
    pub project_id: String,
    /// Null while only initialised.
    pub task_name: Option<String>,
    pub task_type: String,
    pub task_mode: String,
    pub ext_type: String,
    /// `INIT` or `CREATED`.
    pub stage: String,
    /// `running` or `stop`.
    pub status: String,
    pub execute_status: String,
    pub operation_types: Vec<String>,
    pub description: Option<String>,
    pub task_tag: Option<String>,
    pub repulling_snapshot: bool,
    pub position_stored: bool,
    pub created_date: i64,
    pub last_modified_date: i64,
}

/// GET mappings: the task's element plus the page of mappings.
#[derive(ToSchema)]
pub struct MappingList {
    #[serde(flatten)]
    pub element: MultiTaskElement,
    pub total: i64,
    pub size: i64,
    pub entities: Vec<Mapping>,
}

/// A column pair of a mapping body.
#[derive(ToSchema)]
pub struct ColumnPairBody {
    pub source_column: Option<String>,
    pub target_column: Option<String>,
}

/// Create / update one mapping (`mapping` is accepted for `mapping_columns`).
#[derive(ToSchema)]
pub struct MappingBody {
    pub source_datasource_id: Option<String>,
    pub target_datasource_id: Option<String>,
    pub source_table: Option<String>,
    pub target_table: Option<String>,
    pub mapping_columns: Option<Vec<ColumnPairBody>>,
    pub ext_info: Option<ExtInfo>,
}

/// `multi-tasks/mappings/auto` body (table 5-263): JSON or an urlencoded form.
#[derive(ToSchema)]
pub struct AutoMappingBody {
    pub source_ds_id: Option<String>,
    pub target_ds_id: Option<String>,
    pub source_group: Option<String>,
    pub target_group: Option<String>,
    pub task_id: Option<String>,
    /// 1 REALTIME, 2 TIMING (a number, or its text).
    #[schema(value_type = Option<Object>)]
    pub task_type: Option<Value>,
    pub mapping_prefix: Option<String>,
    pub mapping_suffix: Option<String>,
    /// Comma-separated table names.
    pub source_select_mapping_tables: Option<String>,
    pub target_select_mapping_tables: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub ext_info: Option<Value>,
}

/// A mapping made by auto-mapping: the mapping element plus the task's ends.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoMappedTable {
    pub id: String,
    pub source_table: String,
    pub target_table: String,
    pub updated_time: i64,
    pub mapping_percent: i32,
    pub status: String,
    pub source_columns: Vec<MappedColumn>,
    pub target_columns: Vec<MappedColumn>,
    pub mapping: Vec<ColumnPair>,
    pub mismatches: Vec<String>,
    pub project_id: String,
    pub task_id: String,
    pub source_ds_id: String,
    pub target_ds_id: String,
    pub source_group: String,
    pub target_group: String,
    #[schema(value_type = Object)]
    pub ext_info: Value,
}

/// The auto-mapping answer (one element).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoMappingResult {
    pub task_id: String,
    pub source_ds_id: String,
    pub target_ds_id: String,
    pub source_ds_name: Option<String>,
    pub target_ds_name: Option<String>,
    pub source_ds_type: Option<String>,
    pub target_ds_type: Option<String>,
    pub source_app_id: Option<String>,
    pub target_app_id: Option<String>,
    pub source_instance_id: String,
    pub target_instance_id: String,
    pub source_group: String,
    pub target_group: String,
    #[schema(value_type = Object)]
    pub ext_info: Value,
    /// How many tables were mapped (the length of `mapping`).
    pub total: i64,
    pub mapping: Vec<AutoMappedTable>,
    pub unmapped_tables: Vec<UnmappedTable>,
}

// ---- operations -----------------------------------------------------------------------------

/// Health of the server and its metadata store (no token).
#[utoipa::path(get, path = "/health", tag = "meta", security(()),
    responses(
        (status = 200, description = "The store answers", body = Health),
        (status = 503, description = "The store does not answer", body = Health),
    ))]
fn health() {}

/// This document (no token).
#[utoipa::path(get, path = "/v2/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
fn openapi_json() {}

/// Prometheus metrics (text exposition format). Open when the server listens on loopback or
/// with `--metrics-public`, else it needs a token (any project's).
#[utoipa::path(get, path = "/metrics", tag = "meta", security((), ("token" = [])),
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain", body = String),
        (status = 401, description = "Not public and X-Auth-Token missing or unknown", body = ErrorBody),
        (status = 404, description = "Metrics are off (`--metrics off`)", body = ErrorBody),
    ))]
fn metrics() {}

/// The web console's page (no token; its API calls carry the token).
#[utoipa::path(get, path = "/", tag = "meta", security(()),
    responses(
        (status = 200, description = "The console", content_type = "text/html", body = String),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
    ))]
fn console_index() {}

/// A file of the web console (scripts, styles), embedded in the binary.
#[utoipa::path(get, path = "/console/{file}", tag = "meta", security(()),
    params(("file" = String, Path, description = "The asset's name, e.g. `app.js`")),
    responses(
        (status = 200, description = "The file, with its content type", content_type = "*/*", body = String),
        (status = 304, description = "Not modified (If-None-Match matched the ETag)"),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
fn console_file() {}

const DS: &str = "datasources";

/// List datasources (reference 5.1.2).
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources", tag = DS,
    params(InstancePath,
        ("offset" = Option<i64>, Query, description = "Rows to skip (negative = 0)"),
        ("limit" = Option<i64>, Query, description = "Page size, default 10, at most 999"),
        ("datasource_type" = Option<String>, Query),
        ("name" = Option<String>, Query, description = "Name substring"),
        ("app_id" = Option<String>, Query),
        ("sort_type" = Option<String>, Query, description = "ASC or DESC"),
        ("sort_field" = Option<String>, Query, description = "CREATED_DATE"),
    ),
    responses((status = 200, body = DatasourceList)))]
fn datasources_list() {}

/// Create a datasource (reference 5.1.1).
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources", tag = DS,
    params(InstancePath), request_body = DatasourceBody,
    responses((status = 201, body = Datasource)))]
fn datasources_create() {}

/// One datasource (reference 5.1.3).
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources/{datasource_id}", tag = DS,
    params(InstancePath, ("datasource_id" = String, Path)),
    responses((status = 200, body = Datasource)))]
fn datasources_get() {}

/// Update a datasource (reference 5.1.4).
#[utoipa::path(put, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources/{datasource_id}", tag = DS,
    params(InstancePath, ("datasource_id" = String, Path)), request_body = DatasourceBody,
    responses((status = 200, body = Datasource)))]
fn datasources_update() {}

/// Delete a datasource no task uses (reference 5.1.5).
#[utoipa::path(delete, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources/{datasource_id}", tag = DS,
    params(InstancePath, ("datasource_id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
fn datasources_delete() {}

/// The datasource's tables (reference 5.1.6); 400 FDI.3016 when it cannot be reached.
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources/{datasource_id}/tables", tag = DS,
    params(InstancePath, ("datasource_id" = String, Path),
        ("filter" = Option<String>, Query, description = "Table name substring"),
        ("direction_type" = Option<String>, Query, description = "SOURCE or TARGET"),
    ),
    responses((status = 200, body = Tables)))]
fn datasource_tables() {}

/// A table's columns (reference 5.1.7).
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources/{datasource_id}/columns", tag = DS,
    params(InstancePath, ("datasource_id" = String, Path),
        ("table_name" = String, Query),
        ("direction_type" = Option<String>, Query, description = "SOURCE or TARGET"),
    ),
    responses((status = 200, body = Columns)))]
fn datasource_columns() {}

/// Test the connection (reference 5.1.8): 400 FDI.3016 with the cause in `detail` on failure.
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources/{datasource_id}/test-connect", tag = DS,
    params(InstancePath, ("datasource_id" = String, Path)), request_body = TestConnectBody,
    responses((status = 200, body = TestConnectResult)))]
fn datasource_test_connect() {}

/// Describe a query's result columns (reference 5.1.9).
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/datasources/{datasource_id}/test-sql", tag = DS,
    params(InstancePath, ("datasource_id" = String, Path)), request_body = TestSqlBody,
    responses((status = 200, body = Columns)))]
fn datasource_test_sql() {}

const TASKS: &str = "tasks";

/// List tasks (reference 5.3.2).
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks", tag = TASKS,
    params(InstancePath,
        ("offset" = Option<i64>, Query, description = "Page number from 1"),
        ("limit" = Option<i64>, Query, description = "Page size, default 10, at most 1000"),
        ("status" = Option<i64>, Query, description = "0 or 1"),
        ("task_type" = Option<String>, Query),
        ("task_mode" = Option<String>, Query, description = "NORMAL, CDC or FLOW"),
        ("task_id" = Option<String>, Query),
        ("task_name" = Option<String>, Query),
        ("source_datasource_id" = Option<String>, Query),
        ("target_datasource_id" = Option<String>, Query),
        ("datasource_id" = Option<String>, Query),
        ("source_app_id" = Option<String>, Query),
        ("target_app_id" = Option<String>, Query),
        ("task_tag" = Option<String>, Query),
        ("execute_statuses" = Option<String>, Query, description = "Comma-separated execute statuses"),
        ("sort_field" = Option<String>, Query, description = "CREATED_DATE or STATUS"),
        ("sort_type" = Option<String>, Query, description = "ASC or DESC"),
    ),
    responses((status = 200, body = TaskList)))]
fn tasks_list() {}

/// Create a task (reference 5.3.1); the plan is checked against the live datasources.
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks", tag = TASKS,
    params(InstancePath), request_body = TaskBody,
    responses((status = 200, body = Task)))]
fn tasks_create() {}

/// One task (reference 5.3.3).
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}", tag = TASKS,
    params(InstancePath, ("task_id" = String, Path)),
    responses((status = 200, body = Task)))]
fn tasks_get() {}

/// Update a task (reference 5.3.4).
#[utoipa::path(put, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}", tag = TASKS,
    params(InstancePath, ("task_id" = String, Path)), request_body = TaskBody,
    responses((status = 200, body = Task)))]
fn tasks_update() {}

/// Delete a task that is not running (reference 5.3.5).
#[utoipa::path(delete, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}", tag = TASKS,
    params(InstancePath, ("task_id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
fn tasks_delete() {}

/// Start a run now (reference 5.3.7).
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/run", tag = TASKS,
    params(InstancePath, ("task_id" = String, Path)),
    responses((status = 200, body = RunStarted)))]
fn task_run() {}

/// Terminate the running run (reference 5.3.8).
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/terminate", tag = TASKS,
    params(InstancePath, ("task_id" = String, Path)),
    responses((status = 200, body = Message)))]
fn task_terminate() {}

/// The task's dispatch plan.
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/dispatches", tag = TASKS,
    params(InstancePath, ("task_id" = String, Path)),
    responses((status = 200, body = DispatchPlan)))]
fn dispatches_get() {}

/// Create (or replace) the dispatch plan of a TIMING task.
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/dispatches", tag = TASKS,
    params(InstancePath, ("task_id" = String, Path)), request_body = DispatchPlanBody,
    responses((status = 200, body = DispatchPlan)))]
fn dispatches_create() {}

/// Update a dispatch plan.
#[utoipa::path(put, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/dispatches/{dispatch_id}", tag = TASKS,
    params(InstancePath, ("task_id" = String, Path), ("dispatch_id" = String, Path)),
    request_body = DispatchPlanBody,
    responses((status = 200, body = DispatchPlan)))]
fn dispatches_update() {}

/// Start or stop several tasks: per-task success / failure.
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/batch-operation/tasks", tag = TASKS,
    params(InstancePath), request_body = BatchBody,
    responses((status = 200, body = BatchResult)))]
fn batch_operation() {}

/// Task counts by last outcome, normal and combination.
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/statistics/tasks", tag = TASKS,
    params(InstancePath),
    responses((status = 200, body = TaskStatistics)))]
fn task_statistics() {}

const MON: &str = "monitoring";

/// Every task with its last run (reference 5.2.1).
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/task-monitors", tag = MON,
    params(InstancePath,
        ("offset" = Option<i64>, Query, description = "Page number from 1"),
        ("limit" = Option<i64>, Query, description = "Page size, default 10, at most 999"),
        ("task_name" = Option<String>, Query),
        ("execute_statuses" = Option<String>, Query, description = "Comma-separated execute statuses"),
    ),
    responses((status = 200, body = TaskMonitorList)))]
fn task_monitors() {}

/// The task's runs, newest first (reference 5.2.2), with their live progress.
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/monitor-logs", tag = MON,
    params(InstancePath, ("task_id" = String, Path),
        ("offset" = Option<i64>, Query, description = "Page number from 1"),
        ("limit" = Option<i64>, Query, description = "Page size, default 10, at most 999"),
        ("begin_time" = Option<i64>, Query, description = "Epoch ms, runs started at or after"),
        ("end_time" = Option<i64>, Query, description = "Epoch ms, runs started at or before"),
    ),
    responses((status = 200, body = MonitorLogList)))]
fn monitor_logs() {}

/// One run's steps (reference 5.2.3).
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/monitor-logs/{tracking_id}", tag = MON,
    params(InstancePath, ("task_id" = String, Path), ("tracking_id" = String, Path)),
    responses((status = 200, body = RunSteps)))]
fn monitor_log() {}

/// Server-Sent Events of one run: `event: progress` with `data:` the monitor-log entry (one
/// line) whenever it changed, then `event: end` with the final entry, then the stream closes.
/// `id:` is an increasing sequence number.
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/monitor-logs/{tracking_id}/events", tag = MON,
    params(InstancePath, ("task_id" = String, Path), ("tracking_id" = String, Path)),
    responses((status = 200, description = "An event stream whose `data:` lines are MonitorLog JSON", content_type = "text/event-stream", body = String)))]
fn monitor_log_events() {}

/// Totals of the task's runs by outcome (reference 5.2.4).
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/tasks/{task_id}/monitor-overview", tag = MON,
    params(InstancePath, ("task_id" = String, Path)),
    responses((status = 200, body = MonitorOverview)))]
fn monitor_overview() {}

const APPS: &str = "apps";

/// List apps.
#[utoipa::path(get, path = "/v2/{project_id}/instances/{instance_id}/apps", tag = APPS,
    params(InstancePath,
        ("offset" = Option<i64>, Query, description = "Rows to skip"),
        ("limit" = Option<i64>, Query, description = "Page size, default 100, at most 1000"),
        ("name" = Option<String>, Query),
    ),
    responses((status = 200, body = AppList)))]
fn apps_list() {}

/// Create an app.
#[utoipa::path(post, path = "/v2/{project_id}/instances/{instance_id}/apps", tag = APPS,
    params(InstancePath), request_body = CreateAppBody,
    responses((status = 201, body = App)))]
fn apps_create() {}

/// One app.
#[utoipa::path(get, path = "/v2/{project_id}/instances/{instance_id}/apps/{app_id}", tag = APPS,
    params(InstancePath, ("app_id" = String, Path)),
    responses((status = 200, body = App)))]
fn apps_get() {}

/// Update an app.
#[utoipa::path(put, path = "/v2/{project_id}/instances/{instance_id}/apps/{app_id}", tag = APPS,
    params(InstancePath, ("app_id" = String, Path)), request_body = UpdateAppBody,
    responses((status = 200, body = App)))]
fn apps_update() {}

/// Delete an app that owns no datasource.
#[utoipa::path(delete, path = "/v2/{project_id}/instances/{instance_id}/apps/{app_id}", tag = APPS,
    params(InstancePath, ("app_id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
fn apps_delete() {}

/// The app matching every given criterion (apps reference 4.1.1); 404 when none.
#[utoipa::path(get, path = "/v2/{project_id}/instances/{instance_id}/validate-apps", tag = APPS,
    params(InstancePath,
        ("name" = Option<String>, Query), ("id" = Option<String>, Query), ("key" = Option<String>, Query),
    ),
    responses((status = 200, body = AppBrief)))]
fn apps_validate() {}

const MULTI: &str = "multi-tasks";

/// Create a combination task from an initialised one.
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks", tag = MULTI,
    params(InstancePath), request_body = MultiCreateBody,
    responses((status = 200, body = TaskIdResult)))]
fn multi_tasks_create() {}

/// Initialise a combination task (source, target, optional auto-mapping).
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/init", tag = MULTI,
    params(InstancePath), request_body = MultiInitBody,
    responses((status = 200, body = Vec<MultiInitElement>)))]
fn multi_tasks_init() {}

/// One combination task.
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}", tag = MULTI,
    params(InstancePath, ("task_id" = String, Path)),
    responses((status = 200, body = MultiTask)))]
fn multi_tasks_get() {}

/// Update a combination task.
#[utoipa::path(put, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}", tag = MULTI,
    params(InstancePath, ("task_id" = String, Path)), request_body = MultiUpdateBody,
    responses((status = 200, body = TaskIdResult)))]
fn multi_tasks_update() {}

/// Delete a combination task.
#[utoipa::path(delete, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}", tag = MULTI,
    params(InstancePath, ("task_id" = String, Path)),
    responses((status = 204, description = "Deleted")))]
fn multi_tasks_delete() {}

/// Reset the task's CDC position to a time.
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}/reset", tag = MULTI,
    params(InstancePath, ("task_id" = String, Path)), request_body = MultiResetBody,
    responses((status = 200, body = Message)))]
fn multi_tasks_reset() {}

/// The task's mappings, paged.
#[utoipa::path(get, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}/mappings", tag = MULTI,
    params(InstancePath, ("task_id" = String, Path),
        ("offset" = Option<i64>, Query, description = "Page number from 1"),
        ("limit" = Option<i64>, Query, description = "Page size, default 10, at most 1000"),
        ("source_table" = Option<String>, Query),
        ("target_table" = Option<String>, Query),
        ("table_name" = Option<String>, Query),
        ("source_datasource_id" = Option<String>, Query),
        ("target_datasource_id" = Option<String>, Query),
    ),
    responses((status = 200, body = MappingList)))]
fn mappings_list() {}

/// Add a mapping.
#[utoipa::path(post, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}/mappings", tag = MULTI,
    params(InstancePath, ("task_id" = String, Path)), request_body = MappingBody,
    responses((status = 200, body = MappingIdResult)))]
fn mappings_create() {}

/// Change a mapping.
#[utoipa::path(put, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}/mappings/{mapping_id}", tag = MULTI,
    params(InstancePath, ("task_id" = String, Path), ("mapping_id" = String, Path)),
    request_body = MappingBody,
    responses((status = 200, body = MappingIdResult)))]
fn mappings_update() {}

/// Remove a mapping.
#[utoipa::path(delete, path = "/v2/{project_id}/fdi/instances/{instance_id}/multi-tasks/{task_id}/mappings/{mapping_id}", tag = MULTI,
    params(InstancePath, ("task_id" = String, Path), ("mapping_id" = String, Path)),
    responses((status = 200, body = MappingIdResult)))]
fn mappings_delete() {}

/// Map tables automatically.
#[utoipa::path(post, path = "/v2/{project_id}/fdi/multi-tasks/mappings/auto", tag = MULTI,
    params(("project_id" = String, Path, pattern = "^[A-Za-z0-9_-]{1,64}$")),
    request_body = AutoMappingBody,
    responses((status = 200, body = Vec<AutoMappingResult>)))]
fn mappings_auto() {}
