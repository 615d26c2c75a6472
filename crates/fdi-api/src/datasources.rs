//! Datasources (reference 5.1.1-5.1.5): create / list / get / update / delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fdi_types::{DatasourceType, ErrorCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::backend::{self, DatasourceFilter, DatasourceView, NewDatasource};
use crate::error::{Error, Result};
use crate::extract::{JsonBody, Params, PathParams};
use crate::validate;

/// What every endpoint shows instead of a secret.
pub const MASK: &str = "******";

/// Content fields that are secrets whatever the type (the factory may name more).
const SECRET_FIELDS: &[&str] = &[
    "password",
    "sk",
    "ssl_password",
    "secret",
    "token",
    "app_secret",
    "client_secret",
    "trust_store_password",
    "key_store_password",
    "key_store_key_password",
    "snmp_community",
    "config_file_content",
];

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

pub(crate) fn secret_fields(s: &AppState, t: DatasourceType) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = SECRET_FIELDS.to_vec();
    if let Some(f) = s.connectors.get(t) {
        v.extend(f.secret_fields().iter().copied());
    }
    v
}

/// Replace every secret (at any depth, e.g. `api_auth_detail.password`) by `"******"`.
pub(crate) fn mask(content: &Value, secrets: &[&str]) -> Value {
    match content {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let masked = if secrets.contains(&k.as_str()) && !v.is_null() && !v.is_object()
                    {
                        Value::String(MASK.into())
                    } else {
                        mask(v, secrets)
                    };
                    (k.clone(), masked)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| mask(v, secrets)).collect()),
        other => other.clone(),
    }
}

/// Where the new content sends back a secret as `"******"` or leaves it out, keep the stored one.
pub(crate) fn keep_secrets(new: &mut Map<String, Value>, stored: &Value, secrets: &[&str]) {
    let Some(stored) = stored.as_object() else {
        return;
    };
    for (k, old) in stored {
        if secrets.contains(&k.as_str()) {
            let masked_or_absent = match new.get(k) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s == MASK,
                _ => false,
            };
            if masked_or_absent {
                new.insert(k.clone(), old.clone());
            }
        } else if let (Some(Value::Object(n)), Value::Object(_)) = (new.get_mut(k), old) {
            keep_secrets(n, old, secrets);
        }
    }
}

/// DataSourceRsp (reference table 5-17), secrets masked.
pub(crate) fn ds_json(s: &AppState, d: &DatasourceView) -> Value {
    let secrets = DatasourceType::parse(&d.datasource_type)
        .map(|t| secret_fields(s, t))
        .unwrap_or_else(|_| SECRET_FIELDS.to_vec());
    let mut v = json!({
        "datasource_id": d.id,
        "datasource_name": d.name,
        "datasource_type": d.datasource_type,
        "app_id": d.app_id,
        "app_name": d.app_name,
        "instance_id": d.instance_id,
        "content": mask(&d.content, &secrets),
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
async fn check_body(
    s: &AppState,
    p: &PathParams,
    b: DatasourceBody,
    id: Option<&str>,
) -> Result<NewDatasource> {
    let name = b
        .datasource_name
        .ok_or_else(|| Error::field("datasource_name", "is required"))?;
    validate::datasource_name(&name)?;
    let t = DatasourceType::parse(b.datasource_type.as_deref().ok_or_else(|| {
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
    let mut content = b
        .content
        .ok_or_else(|| Error::field("content", "is required"))?;
    if let Some(id) = id
        && let Some(old) = backend::ds_get(s, p.project(), p.instance(), id).await?
        && old.datasource_type == t.as_str()
    {
        keep_secrets(&mut content, &old.content, &secret_fields(s, t));
    }
    let content = Value::Object(content);
    let factory = s.connectors.get(t).ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidDatasourceType,
            format!("datasource_type: no connector for {t}"),
        )
    })?;
    factory
        .validate(&content)
        .map_err(|e| Error::new(ErrorCode::IncorrectContent, e.message))?;
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
    let (offset, limit) = q.paging(10, 999)?;
    let datasource_type = match q.str("datasource_type") {
        Some(t) => Some(DatasourceType::parse(t)?.as_str().to_string()),
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
    let filter = DatasourceFilter {
        datasource_type,
        name: q.str("name").map(str::to_string),
        app_id: q.str("app_id").map(str::to_string),
        descending,
        offset,
        limit,
    };
    let (total, items) = backend::ds_list(&s, p.project(), p.instance(), filter).await?;
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
    let new = check_body(&s, &p, b, Some(&old.id)).await?;
    let d = backend::ds_update(&s, p.project(), p.instance(), &old.id, new).await?;
    Ok(Json(ds_json(&s, &d)))
}

pub async fn delete(State(s): State<AppState>, p: PathParams) -> Result<StatusCode> {
    let d = load(&s, &p).await?;
    let users = backend::tasks_using_datasource(&s, p.project(), p.instance(), &d.id).await?;
    if !users.is_empty() {
        return Err(Error::new(
            ErrorCode::DatasourceDeleteFailed,
            format!("datasource_id: still used by task(s) {}", users.join(", ")),
        ));
    }
    backend::ds_delete(&s, p.project(), p.instance(), &d.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_keeps_secrets() {
        let c = json!({"host": "h", "password": "pw", "api_auth_detail": {"password": "x", "user_name": "u"}, "empty": null});
        let m = mask(&c, SECRET_FIELDS);
        assert_eq!(m["password"], MASK);
        assert_eq!(m["api_auth_detail"]["password"], MASK);
        assert_eq!(m["api_auth_detail"]["user_name"], "u");
        assert_eq!(m["host"], "h");
        let mut new =
            json!({"host": "h2", "password": MASK, "api_auth_detail": {"user_name": "u"}})
                .as_object()
                .unwrap()
                .clone();
        keep_secrets(&mut new, &c, SECRET_FIELDS);
        assert_eq!(new["password"], "pw");
        assert_eq!(new["api_auth_detail"]["password"], "x");
        assert_eq!(new["host"], "h2");
    }
}
