//! Integration applications (`/v2/{project_id}/instances/{instance_id}/apps`): an app owns
//! datasources.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fdi_types::ErrorCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::backend::{self, AppView};
use crate::error::{Error, Result};
use crate::extract::{JsonBody, Params, PathParams};
use crate::validate;

#[derive(Deserialize)]
pub struct CreateApp {
    name: Option<String>,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    secret: Option<String>,
    #[serde(default)]
    favorite: Option<bool>,
}

#[derive(Deserialize)]
pub struct UpdateApp {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default)]
    favorite: Option<bool>,
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// ServerAppInfo (apps reference table 4-11).
pub(crate) fn app_json(a: &AppView) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "remark": a.remark,
        "roles": ["read", "access", "delete", "modify", "admin"],
        "create_time": iso(a.created_ms),
        "update_time": iso(a.updated_ms),
        "created_user": {"user_id": "", "user_name": ""},
        "last_updated_user": {"user_id": "", "user_name": ""},
        "owner": true,
        "key": a.key,
        "favorite": a.favorite,
    })
}

fn remark_ok(r: &Option<String>) -> Result<()> {
    match r {
        Some(r) if r.chars().count() > 1024 => {
            Err(Error::field("remark", "must be at most 1024 characters"))
        }
        Some(r) => validate::description("remark", r),
        None => Ok(()),
    }
}

pub async fn create(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<CreateApp>,
) -> Result<Response> {
    let name = b.name.unwrap_or_default();
    validate::app_name(&name)?;
    remark_ok(&b.remark)?;
    if backend::app_name_taken(&s, p.project(), p.instance(), &name, None).await? {
        return Err(Error::field(
            "name",
            format!("an app named {name:?} already exists in this instance"),
        ));
    }
    let key = b
        .key
        .filter(|k| !k.trim().is_empty())
        .unwrap_or_else(fdi_types::new_id);
    let app = backend::app_create(
        &s,
        p.project(),
        p.instance(),
        &name,
        b.remark.as_deref().unwrap_or(""),
        &key,
        b.favorite.unwrap_or(false),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(app_json(&app))).into_response())
}

pub async fn list(State(s): State<AppState>, p: PathParams, q: Params) -> Result<Json<Value>> {
    let (offset, limit) = q.paging(100, 1000)?;
    let (total, apps) =
        backend::app_list(&s, p.project(), p.instance(), q.str("name"), offset, limit).await?;
    Ok(Json(json!({
        "total": total,
        "size": apps.len(),
        "apps": apps.iter().map(app_json).collect::<Vec<_>>(),
    })))
}

/// `GET validate-apps?name=&id=&key=` (apps reference 4.1.1): the app matching every given
/// criterion exactly, as `{id, name, remark}`; 404 when none matches; 400 when no criterion given.
pub async fn validate(State(s): State<AppState>, p: PathParams, q: Params) -> Result<Json<Value>> {
    let (name, id, key) = (q.str("name"), q.str("id"), q.str("key"));
    if name.is_none() && id.is_none() && key.is_none() {
        return Err(Error::field("name", "one of name, id or key is required"));
    }
    let (_, apps) = backend::app_list(&s, p.project(), p.instance(), name, 0, i64::MAX).await?;
    let found = apps.into_iter().find(|a| {
        name.is_none_or(|n| a.name == n)
            && id.is_none_or(|i| a.id == i)
            && key.is_none_or(|k| a.key == k)
    });
    match found {
        Some(a) => Ok(Json(
            json!({"id": a.id, "name": a.name, "remark": a.remark}),
        )),
        None => Err(Error::new(
            ErrorCode::AppNotFound,
            "no app matches the given name / id / key",
        )),
    }
}

async fn load(s: &AppState, p: &PathParams) -> Result<AppView> {
    backend::app_get(s, p.project(), p.instance(), p.get("app_id"))
        .await?
        .ok_or_else(|| {
            Error::new(
                ErrorCode::AppNotFound,
                format!("app_id: {}", p.get("app_id")),
            )
        })
}

pub async fn get(State(s): State<AppState>, p: PathParams) -> Result<Json<Value>> {
    Ok(Json(app_json(&load(&s, &p).await?)))
}

pub async fn update(
    State(s): State<AppState>,
    p: PathParams,
    JsonBody(b): JsonBody<UpdateApp>,
) -> Result<Json<Value>> {
    let mut app = load(&s, &p).await?;
    if let Some(name) = b.name {
        validate::app_name(&name)?;
        if name != app.name
            && backend::app_name_taken(&s, p.project(), p.instance(), &name, Some(&app.id)).await?
        {
            return Err(Error::field(
                "name",
                format!("an app named {name:?} already exists in this instance"),
            ));
        }
        app.name = name;
    }
    remark_ok(&b.remark)?;
    if let Some(r) = b.remark {
        app.remark = r;
    }
    if let Some(f) = b.favorite {
        app.favorite = f;
    }
    let app = backend::app_update(&s, p.project(), p.instance(), &app).await?;
    Ok(Json(app_json(&app)))
}

pub async fn delete(State(s): State<AppState>, p: PathParams) -> Result<StatusCode> {
    let app = load(&s, &p).await?;
    let used = backend::app_datasource_count(&s, p.project(), p.instance(), &app.id).await?;
    if used > 0 {
        return Err(Error::field(
            "app_id",
            format!("the app still owns {used} datasource(s); delete them first"),
        ));
    }
    backend::app_delete(&s, p.project(), p.instance(), &app.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
