//! Typed connector configuration: each connector deserialises its datasource's `content` into
//! its own struct, and every error names the field (`content.port: "x" is not a port number`).
//!
//! The reference sends numbers and booleans as strings as often as not (`"port": "5672"`,
//! `"ssl_enable": "false"`); the `de` helpers accept both spellings.

use serde::de::DeserializeOwned;

use crate::{ConnectorError, Result};

/// `content` as the connector's configuration type `T`. A missing required field, a wrong type or
/// a value `T` refuses is `ErrorKind::User` naming `content.<field>`.
pub fn from_content<T: DeserializeOwned>(content: &serde_json::Value) -> Result<T> {
    if !content.is_object() {
        return Err(ConnectorError::user("content: must be a JSON object"));
    }
    serde_path_to_error::deserialize(content).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field only in its message (the path is the parent).
        let (field, message) = match inner.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or(rest);
                (name.to_string(), "required".to_string())
            }
            None => (path, strip_position(&inner)),
        };
        let field = if field.is_empty() || field == "." {
            "content".to_string()
        } else {
            format!("content.{field}")
        };
        ConnectorError::user(format!("{field}: {message}"))
    })
}

/// A list of server addresses (`host:port`, `[v6]:port`, separated by `,` or `;`), in order.
/// Without `default_port` every address needs its port. Errors name `field`
/// (`content.broker: "nohost" is not host:port`).
pub fn address_list(
    field: &str,
    raw: &str,
    default_port: Option<u16>,
) -> Result<Vec<(String, u16)>> {
    let mut out = Vec::new();
    for a in raw
        .split([',', ';'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        out.push(
            host_port(a, default_port)
                .ok_or_else(|| ConnectorError::user(format!("{field}: {a:?} is not host:port")))?,
        );
    }
    if out.is_empty() {
        return Err(ConnectorError::user(format!("{field}: must not be empty")));
    }
    Ok(out)
}

fn host_port(a: &str, default_port: Option<u16>) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        match tail {
            "" => (h, None),
            t => (h, Some(t.strip_prefix(':')?)),
        }
    } else {
        match a.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => return None,
            None => (a, None),
        }
    };
    let port = match port {
        None => default_port?,
        Some(p) => p.trim().parse::<u16>().ok().filter(|p| *p > 0)?,
    };
    let host = host.trim();
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| (host.to_string(), port))
}

/// serde_json's " at line 1 column 5" suffix says nothing about a `content` object.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// `deserialize_with` helpers for the reference's loosely typed fields.
pub mod de {
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    /// A port: a number or its text, 1..=65535.
    pub fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
        let v = Value::deserialize(d)?;
        let n = match &v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(p) if (1..=65_535).contains(&p) => Ok(p as u16),
            _ => Err(D::Error::custom(format!("{v} is not a port number"))),
        }
    }

    /// An optional port (absent, null or empty text: None).
    pub fn opt_port<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
        let v = Value::deserialize(d)?;
        match &v {
            Value::Null => Ok(None),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            _ => port(v).map(Some).map_err(D::Error::custom),
        }
    }

    /// A boolean: `true` / `false`, their text (any case), or 0 / 1.
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        let v = Value::deserialize(d)?;
        match &v {
            Value::Bool(b) => Ok(*b),
            Value::Null => Ok(false),
            Value::Number(n) if n.as_u64() == Some(0) => Ok(false),
            Value::Number(n) if n.as_u64() == Some(1) => Ok(true),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                _ => Err(D::Error::custom(format!("{v} is not true or false"))),
            },
            _ => Err(D::Error::custom(format!("{v} is not true or false"))),
        }
    }

    /// Text that may arrive as a number; empty text is None.
    pub fn opt_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        let v = Value::deserialize(d)?;
        match v {
            Value::Null => Ok(None),
            Value::String(s) if s.trim().is_empty() => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(D::Error::custom(format!("{other} is not text"))),
        }
    }

    /// Required non-empty text (numbers accepted as their text).
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        opt_text(d)?.ok_or_else(|| D::Error::custom("must not be empty"))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct Conf {
        #[serde(deserialize_with = "super::de::text")]
        host: String,
        #[serde(deserialize_with = "super::de::port")]
        port: u16,
        #[serde(default, deserialize_with = "super::de::flag")]
        ssl_enable: bool,
        #[serde(default, deserialize_with = "super::de::opt_text")]
        vhost: Option<String>,
    }

    fn err(v: serde_json::Value) -> String {
        super::from_content::<Conf>(&v).unwrap_err().message
    }

    #[test]
    fn loose_spellings_parse() {
        let c: Conf =
            super::from_content(&json!({"host": "h", "port": "5672", "ssl_enable": "False"}))
                .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.ssl_enable, c.vhost),
            ("h", 5672, false, None)
        );
        let c: Conf = super::from_content(
            &json!({"host": "h", "port": 1, "ssl_enable": true, "vhost": "/v"}),
        )
        .unwrap();
        assert_eq!(
            (c.port, c.ssl_enable, c.vhost.as_deref()),
            (1, true, Some("/v"))
        );
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(json!({"port": 1})), "content.host: required");
        assert_eq!(
            err(json!({"host": "h", "port": "x"})),
            "content.port: \"x\" is not a port number"
        );
        assert_eq!(
            err(json!({"host": "h", "port": 0})),
            "content.port: 0 is not a port number"
        );
        assert_eq!(
            err(json!({"host": "h", "port": 1, "ssl_enable": "maybe"})),
            "content.ssl_enable: \"maybe\" is not true or false"
        );
        assert_eq!(
            err(json!({"host": " ", "port": 1})),
            "content.host: must not be empty"
        );
        assert_eq!(err(json!([1])), "content: must be a JSON object");
    }
}
