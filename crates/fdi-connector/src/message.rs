//! Message sources: the fields a message is parsed into.
//!
//! A message source (a queue, a topic, a stream) has no schema to discover: its columns come from
//! the task's source metadata (`sourceMetaData`: name, type, path, format). Each field is read from
//! the message's JSON value at its path, or from a property of the message (`@key`,
//! `@timestamp`, ... as each connector documents), and converted to the field's Arrow type.

use arrow::datatypes::{DataType, TimeUnit};
use fdi_types::MetaField;

use crate::{ColumnInfo, ConnectorError, Result};

/// Where a field's value is in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSource {
    /// Members of the JSON value, outermost first (`order.id` -> `["order", "id"]`).
    Json(Vec<String>),
    /// A property of the message itself (`@routing_key` -> `routing_key`).
    Property(String),
}

/// One field of a message source.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageField {
    pub name: String,
    pub arrow_type: DataType,
    pub source: FieldSource,
    /// How a timestamp or date given as text or a number is read: `unix_ms` (default for
    /// numbers), `unix_s`, or a chrono format such as `%Y-%m-%d %H:%M:%S` (text default: RFC 3339
    /// or `YYYY-MM-DD HH:MM:SS[.f]` as UTC).
    pub format: Option<String>,
}

impl MessageField {
    /// The field a task's source metadata declares; `index` names it in errors
    /// (`task_detail.sourceSelectedDatasource.sourceMetaData[2].type: ...`).
    pub fn from_meta(index: usize, m: &MetaField) -> Result<Self> {
        let at = |what: &str| {
            format!("task_detail.sourceSelectedDatasource.sourceMetaData[{index}].{what}")
        };
        let name = m.name.trim();
        if name.is_empty() {
            return Err(ConnectorError::user(format!("{}: required", at("name"))));
        }
        let type_name = m.field_type.as_deref().unwrap_or("String").trim();
        let arrow_type = arrow_type_of(type_name).ok_or_else(|| {
            ConnectorError::user(format!(
                "{}: {type_name:?} is not one of String, Integer, Long, Double, Decimal, Boolean, Timestamp, Date, Binary",
                at("type")
            ))
        })?;
        let path = m.path.as_deref().map(str::trim).unwrap_or("");
        let source = if let Some(prop) = path.strip_prefix('@') {
            FieldSource::Property(prop.to_string())
        } else {
            let path = path.strip_prefix("$.").unwrap_or(path);
            let path = if path.is_empty() { name } else { path };
            let parts: Vec<String> = path.split('.').map(str::to_string).collect();
            if parts.iter().any(String::is_empty) {
                return Err(ConnectorError::user(format!(
                    "{}: {path:?} has an empty member",
                    at("path")
                )));
            }
            FieldSource::Json(parts)
        };
        Ok(Self {
            name: name.to_string(),
            arrow_type,
            source,
            format: m.format.clone().filter(|f| !f.trim().is_empty()),
        })
    }

    /// The field as a column (what mapping and the target see).
    pub fn column(&self) -> ColumnInfo {
        ColumnInfo {
            decimal_digits: match self.arrow_type {
                DataType::Decimal128(_, s) => Some(i64::from(s)),
                _ => None,
            },
            ..ColumnInfo::new(
                self.name.clone(),
                format!("{:?}", self.arrow_type),
                self.arrow_type.clone(),
            )
        }
    }
}

/// The Arrow type of a metadata type name (case-insensitive; Java-style aliases accepted).
pub fn arrow_type_of(type_name: &str) -> Option<DataType> {
    Some(match type_name.to_ascii_lowercase().as_str() {
        "" | "string" | "text" | "varchar" => DataType::Utf8,
        "integer" | "int" => DataType::Int32,
        "long" | "bigint" => DataType::Int64,
        "double" | "float" => DataType::Float64,
        "decimal" | "bigdecimal" | "number" => DataType::Decimal128(38, 10),
        "boolean" | "bool" => DataType::Boolean,
        "timestamp" | "datetime" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "date" => DataType::Date32,
        "binary" | "bytes" => DataType::Binary,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, t: &str, path: &str) -> MetaField {
        MetaField {
            name: name.into(),
            field_type: Some(t.into()),
            path: Some(path.into()),
            format: None,
        }
    }

    #[test]
    fn fields_from_metadata() {
        let f = MessageField::from_meta(0, &meta("id", "Long", "$.order.id")).unwrap();
        assert_eq!(
            f.source,
            FieldSource::Json(vec!["order".into(), "id".into()])
        );
        assert_eq!(f.arrow_type, DataType::Int64);
        let f = MessageField::from_meta(1, &meta("rk", "string", "@routing_key")).unwrap();
        assert_eq!(f.source, FieldSource::Property("routing_key".into()));
        let f = MessageField::from_meta(2, &meta("name", "", "")).unwrap();
        assert_eq!(
            (f.source, f.arrow_type),
            (FieldSource::Json(vec!["name".into()]), DataType::Utf8)
        );
        let e = MessageField::from_meta(3, &meta("x", "Blob", "")).unwrap_err();
        assert!(
            e.message
                .starts_with("task_detail.sourceSelectedDatasource.sourceMetaData[3].type:"),
            "{}",
            e.message
        );
        let e = MessageField::from_meta(4, &meta("x", "Long", "a..b")).unwrap_err();
        assert!(
            e.message.contains("sourceMetaData[4].path"),
            "{}",
            e.message
        );
    }
}
