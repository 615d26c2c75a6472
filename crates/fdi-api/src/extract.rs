//! Request extractors whose rejections are FDI error bodies naming the field (never axum's
//! plain-text errors), plus small helpers to read query parameters.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use fdi_types::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// A JSON body. Malformed JSON -> 400 FDI.3002 `body: ...`; a wrong type or missing field ->
/// 400 FDI.3002 naming the field path (e.g. `datasource_name: invalid type: integer ...`).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// A body sent as JSON or as an HTML form (`application/x-www-form-urlencoded`: every field a
/// string), for endpoints whose reference lists "FormData" parameters. `multipart/form-data` is
/// refused naming `body`. Errors as [`JsonBody`]'s.
pub struct FormOrJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for FormOrJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/") {
            return Err(Error::field(
                "body",
                "multipart/form-data is not accepted: send the fields as application/x-www-form-urlencoded or as JSON",
            ));
        }
        let bytes = read_body(req, state).await?;
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let map: serde_json::Map<String, serde_json::Value> = form_urlencoded::parse(&bytes)
                .into_owned()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            let json = serde_json::Value::Object(map).to_string();
            return parse_json(json.as_bytes()).map(FormOrJson);
        }
        parse_json(&bytes).map(FormOrJson)
    }
}

/// The body's bytes; a body over the limit is 413, an unreadable one 400 naming `body`.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            Error::new(ErrorCode::PayloadTooLarge, format!("body: {e}"))
        } else {
            Error::field("body", format!("cannot read the request body: {e}"))
        }
    })
}

/// Parse a JSON body (an empty body is read as `{}`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let text: &[u8] = if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        b"{}"
    } else {
        bytes
    };
    let value: serde_json::Value = serde_json::from_slice(text)
        .map_err(|e| Error::field("body", format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(Error::field("body", "a JSON object is expected"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path.is_empty() || path == "." {
            "body".to_string()
        } else {
            path
        };
        Error::field(&field, e.inner().to_string())
    })
}

/// Query parameters as strings (the last value wins when a name repeats). Read them with the
/// typed helpers below so that errors name the parameter.
#[derive(Debug, Default, Clone)]
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Params(
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ))
    }
}

impl Params {
    /// A non-empty string parameter (empty = absent).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(|s| s.as_str())
            .filter(|s| !s.trim().is_empty())
    }

    /// The first of several spellings that is present.
    pub fn str_any(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.str(n))
    }

    pub fn i64(&self, name: &str) -> Result<Option<i64>> {
        match self.str(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| Error::field(name, format!("{v:?} is not an integer"))),
        }
    }

    /// Paging: `offset`/`limit` must be integers >= 0 (400 FDI.3048 naming the parameter);
    /// `limit` above `max_limit` is cut to `max_limit`.
    pub fn paging(&self, default_limit: i64, max_limit: i64) -> Result<(i64, i64)> {
        self.paging_from(default_limit, max_limit, false)
    }

    /// As [`Params::paging`], but a negative `offset` counts as 0 (the datasource list: "偏移量小于0时，
    /// 自动转换为0").
    pub fn paging_negative_offset_as_zero(
        &self,
        default_limit: i64,
        max_limit: i64,
    ) -> Result<(i64, i64)> {
        self.paging_from(default_limit, max_limit, true)
    }

    fn paging_from(
        &self,
        default_limit: i64,
        max_limit: i64,
        negative_offset_is_zero: bool,
    ) -> Result<(i64, i64)> {
        let get = |name: &str| -> Result<Option<i64>> {
            match self.str(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<i64>() {
                    Ok(n) if n >= 0 => Ok(Some(n)),
                    Ok(_) if negative_offset_is_zero && name == "offset" => Ok(Some(0)),
                    _ => Err(Error::new(
                        ErrorCode::InvalidPaging,
                        format!("{name}: {v:?} must be an integer >= 0"),
                    )),
                },
            }
        };
        let offset = get("offset")?.unwrap_or(0);
        let limit = get("limit")?.unwrap_or(default_limit).min(max_limit);
        Ok((offset, limit))
    }

    /// Paging for endpoints whose `offset` starts at 1 (0 behaves as 1): `offset` is the page
    /// number. Returns (rows to skip, limit).
    pub fn page_paging(&self, default_limit: i64, max_limit: i64) -> Result<(i64, i64)> {
        let (offset, limit) = self.paging(default_limit, max_limit)?;
        let page = offset.max(1);
        Ok(((page - 1).saturating_mul(limit), limit))
    }
}

/// The path parameters of the matched route (`project_id`, `instance_id`, `datasource_id`, ...).
/// Never rejects with axum's plain text.
#[derive(Debug, Clone)]
pub struct PathParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| Error::field("path", e.body_text()))
    }
}

impl PathParams {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(|s| s.as_str()).unwrap_or("")
    }
    pub fn project(&self) -> &str {
        self.get("project_id")
    }
    pub fn instance(&self) -> &str {
        self.get("instance_id")
    }
}
