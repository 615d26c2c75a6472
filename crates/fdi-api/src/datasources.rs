//! Datasources (reference 5.1.1-5.1.5): create / list / get / update / delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fdi_connector::ContentField;
use fdi_connector::content;
use fdi_types::{DatasourceType, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::backend::{self, DatasourceQuery, DatasourceView, NewDatasource};
use crate::error::{Error, Result};
use crate::extract::{JsonBody, Params, PathParams};
use crate::validate;

/// The body of create / update (reference table 5-3).
#[derive(Deserialize)]
pub struct DatasourceBody {
    pub datasource_name: Option<String>,
    pub datasource_type: Option<String>,
    pub app_id: Option<String>,
    pub content: Option<Map<String, Value>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// The content fields of type `t` (none when the binary has no connector for it).
pub(crate) fn content_fields(s: &AppState, t: DatasourceType) -> &'static [ContentField] {
    s.catalog.content_fields(t)
}

/// The content a client sent, as it will be stored: keys the type does not declare dropped, and
/// secrets sent back masked (or left out) taken from `stored` — the stored content of the same
/// datasource type, `None` for a new datasource or a type change (then the mask is refused).
pub(crate) fn content_to_store(
    s: &AppState,
    t: DatasourceType,
    mut content: Map<String, Value>,
    stored: Option<&Value>,
) -> Result<Value> {
    let fields = content_fields(s, t);
    content::retain_declared(&mut content, fields);
    content::keep_stored_secrets(&mut content, stored, fields)
        .map_err(|e| Error::new(ErrorCode::IncorrectContent, e.to_string()))?;
    Ok(Value::Object(content))
}

/// DataSourceRsp (reference table 5-17), secrets masked.
pub(crate) fn ds_json(s: &AppState, d: &DatasourceView) -> Value {
    let fields = s
        .catalog
        .parse_type(&d.datasource_type)
        .map_or(&[][..], |t| content_fields(s, t));
    let mut v = json!({
        "datasource_id": d.id,
        "datasource_name": d.name,
        "datasource_type": d.datasource_type,
        "app_id": d.app_id,
        "app_name": d.app_name,
        "instance_id": d.instance_id,
        "content": content::masked(&d.content, fields),
        "create_time": d.created_ms,
        "update_time": d.updated_ms,
        "app_permission": ["read", "access", "delete", "modify"],
    });
    if let Some(desc) = d.description.as_deref().filter(|d| !d.is_empty()) {
        v["description"] = json!(desc);
    }
    v
}

/// Check a create/update body: name, type (never stored when unsupported), app, content.
///
/// `old` is the stored datasource on update. A type change keeps no secret: the new type's
/// secrets must be sent, and a datasource used by tasks cannot change type.
async fn check_body(
    s: &AppState,
    p: &PathParams,
    b: DatasourceBody,
    old: Option<&DatasourceView>,
) -> Result<NewDatasource> {
    let id = old.map(|o| o.id.as_str());
    let name = b
        .datasource_name
        .ok_or_else(|| Error::field("datasource_name", "is required"))?;
    validate::datasource_name(&name)?;
    let t = s
        .catalog
        .parse_type(b.datasource_type.as_deref().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidDatasourceType,
                "datasource_type: is required",
            )
        })?)?;
    let app_id = b
        .app_id
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| Error::new(ErrorCode::InvalidAppId, "app_id: is required"))?;
    if backend::app_get(s, p.project(), p.instance(), &app_id)
        .await?
        .is_none()
    {
        return Err(Error::new(
            ErrorCode::InvalidAppId,
            format!("app_id: no app {app_id:?} in this instance"),
        ));
    }
    if let Some(d) = &b.description {
        validate::description("description", d)?;
    }
    let content = b
        .content
        .ok_or_else(|| Error::field("content", "is required"))?;
    let same_type = old.filter(|o| o.datasource_type == t.as_str());
    if let Some(old) = old
        && same_type.is_none()
    {
        let users = backend::tasks_using_datasource(s, p.project(), p.instance(), &old.id).await?;
        if !users.is_empty() {
            return Err(Error::field(
                "datasource_type",
                format!(
                    "cannot change {} to {t} while task(s) {} use this datasource",
                    old.datasource_type,
                    users.join(", ")
                ),
            ));
        }
    }
    let content = content_to_store(s, t, content, same_type.map(|o| &o.content))?;
    s.catalog
        .validate_content(t, &content)
        .map_err(|e| Error(e.into()))?;
    if backend::ds_name_taken(s, p.project(), p.instance(), &name, id).await? {
        return Err(Error::new(
            ErrorCode::TaskNameExists,
            format!("datasource_name: a datasource named {name:?} already exists"),
        ));
    }
    Ok(NewDatasource {
        name,
        datasource_type: t,
        app_id,
        content,
        description: b.description,
    })
}

pub async fn create(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<DatasourceBody>,
) -> Result<Response> {
    let new = check_body(&s, &p, b, None).await?;
    let d = backend::ds_create(&s, p.project(), p.instance(), new).await?;
    Ok((StatusCode::CREATED, Json(ds_json(&s, &d))).into_response())
}

pub async fn list(State(s): State<AppState>, p: PathParams, q: Params) -> Result<Json<Value>> {
    let (offset, limit) = q.paging_negative_offset_as_zero(10, 999)?;
    let datasource_type = match q.str("datasource_type") {
        Some(t) => Some(s.catalog.parse_type(t)?.as_str().to_string()),
        None => None,
    };
    let descending = match q.str("sort_type").map(|s| s.to_ascii_uppercase()) {
        None => true,
        Some(s) if s == "DESC" => true,
        Some(s) if s == "ASC" => false,
        Some(other) => {
            return Err(Error::new(
                ErrorCode::InvalidSort,
                format!("sort_type: {other:?} (expected ASC or DESC)"),
            ));
        }
    };
    match q.str("sort_field").map(|s| s.to_ascii_uppercase()) {
        None => {}
        Some(f) if f == "CREATED_DATE" => {}
        Some(other) => {
            return Err(Error::new(
                ErrorCode::InvalidSort,
                format!("sort_field: {other:?} (expected CREATED_DATE)"),
            ));
        }
    }
    let filter = DatasourceQuery {
        datasource_type,
        name: q.str("name").map(str::to_string),
        app_id: q.str("app_id").map(str::to_string),
        ascending: !descending,
        offset,
        limit,
    };
    let (total, items) = backend::ds_list(&s, p.project(), p.instance(), &filter).await?;
    Ok(Json(json!({
        "total": total,
        "size": items.len(),
        "entities": items.iter().map(|d| ds_json(&s, d)).collect::<Vec<_>>(),
    })))
}

pub(crate) async fn load(s: &AppState, p: &PathParams) -> Result<DatasourceView> {
    let id = p.get("datasource_id");
    backend::ds_get(s, p.project(), p.instance(), id)
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::DatasourceNotFound,
                format!("datasource_id: {id}"),
            )
        })
}

pub async fn get(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    Ok(Json(ds_json(&s, &load(&s, &p).await?)))
}

pub async fn update(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<DatasourceBody>,
) -> Result<Json<Value>> {
    let old = load(&s, &p).await?;
    let new = check_body(&s, &p, b, Some(&old)).await?;
    let d = backend::ds_update(&s, p.project(), p.instance(), &old.id, new).await?;
    Ok(Json(ds_json(&s, &d)))
}

pub async fn delete(State(s): State<AppState>, p: PathParams) -> Result<StatusCode> {
    let d = load(&s, &p).await?;
    let users = backend::tasks_using_datasource(&s, p.project(), p.instance(), &d.id).await?;
    if !users.is_empty() {
        return Err(Error::new(
            ErrorCode::DatasourceInUse,
            format!("datasource_id: still used by task(s) {}", users.join(", ")),
        ));
    }
    backend::ds_delete(&s, p.project(), p.instance(), &d.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
