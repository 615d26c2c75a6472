//! Datasource `content` parsing for the server databases (MySQL / PostgreSQL).

use fdi_connector::{ConnectorError, ContentField, Result};
use serde_json::Value;

/// The `content` fields of a MySQL / PostgreSQL datasource: the reference's (`host`, `port`,
/// `database_name`, `user_name`, `password`, `mode`, `url` in professional mode, `cdc_mode`) and
/// the short spellings we accept.
pub const SERVER_CONTENT_FIELDS: &[ContentField] = &[
    ContentField::plain("host"),
    ContentField::plain("port"),
    ContentField::plain("database_name"),
    ContentField::plain("database"),
    ContentField::plain("db"),
    ContentField::plain("user_name"),
    ContentField::plain("user"),
    ContentField::plain("username"),
    ContentField::secret("password"),
    ContentField::plain("schema"),
    ContentField::plain("mode"),
    ContentField::plain("cdc_mode"),
    ContentField::url("url"),
];

/// Connection settings of a MySQL / PostgreSQL datasource.
#[derive(Clone, PartialEq)]
pub struct ServerContent {
    /// A full URL (`mysql://...`, `postgres://...`) given instead of host/port.
    pub url: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// PostgreSQL schema used for unqualified table names.
    pub schema: Option<String>,
}

impl std::fmt::Debug for ServerContent {
    // Never print the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContent")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A string field of `content`; numbers are accepted as their text.
pub fn str_field(content: &Value, name: &str) -> Option<String> {
    match content.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl ServerContent {
    /// Parse and check `content`; errors name the field (`content.host: required`).
    pub fn parse(content: &Value, url_schemes: &[&str]) -> Result<Self> {
        if !content.is_object() {
            return Err(ConnectorError::user("content: must be a JSON object"));
        }
        let url = str_field(content, "url");
        if let Some(u) = &url
            && !url_schemes
                .iter()
                .any(|s| u.starts_with(&format!("{s}://")))
        {
            return Err(ConnectorError::user(format!(
                "content.url: must start with {}://",
                url_schemes.join(":// or ")
            )));
        }
        let host = str_field(content, "host").unwrap_or_default();
        if url.is_none() && host.is_empty() {
            return Err(ConnectorError::user(
                "content.host: required (or content.url)",
            ));
        }
        let port = match str_field(content, "port") {
            None => None,
            Some(p) => Some(p.parse::<u16>().map_err(|_| {
                ConnectorError::user(format!("content.port: {p:?} is not a port number"))
            })?),
        };
        // The reference spells them `user_name` and `database_name`; short forms are accepted too.
        let user = str_field(content, "user_name")
            .or_else(|| str_field(content, "user"))
            .or_else(|| str_field(content, "username"));
        if url.is_none() && user.is_none() {
            return Err(ConnectorError::user("content.user_name: required"));
        }
        Ok(Self {
            url,
            host,
            port,
            database: str_field(content, "database_name")
                .or_else(|| str_field(content, "database"))
                .or_else(|| str_field(content, "db")),
            user,
            password: content
                .get("password")
                .and_then(|v| v.as_str())
                .filter(|p| !p.is_empty())
                .map(str::to_string),
            schema: str_field(content, "schema"),
        })
    }
}
