//! What the message connectors (RabbitMQ, Kafka, Redis) share: messages -> Arrow batches by the
//! task's fields ([`MessageDecoder`]), the read loop that batches them ([`batching`]), rows ->
//! one JSON object per message ([`encode_rows`]), and the factory and connector around each
//! one's own parts ([`connector`]).
//!
//! ## Values
//! | field type | from JSON | from text |
//! |---|---|---|
//! | String | text as is; numbers, booleans, objects and arrays as their JSON text | as is |
//! | Integer / Long | integral numbers | parsed |
//! | Double | numbers | parsed |
//! | Decimal (38, 10) | numbers (as JSON parses them: up to f64 precision) | parsed exactly (send long decimals as text) |
//! | Boolean | `true` / `false` | `true` / `false` / `1` / `0` |
//! | Timestamp (UTC, µs) | epoch milliseconds (`format` `unix_s`: seconds) | RFC 3339, `YYYY-MM-DD HH:MM:SS[.f]` (UTC), or `format` as a chrono pattern |
//! | Date | epoch milliseconds | `YYYY-MM-DD`, or `format` |
//! | Binary | — | the text's UTF-8 bytes |
//!
//! A missing member or JSON `null` is NULL. A value that does not convert makes the message
//! dirty: [`MessageDecoder::decode`] returns which message and why.

pub mod batching;
pub mod connector;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float64Builder,
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::datatypes::{DataType, Decimal128Type, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use fdi_connector::{FieldSource, MessageField};
use serde_json::Value;

pub use batching::{Batching, Feed, pump};
pub use connector::{ConnectorOf, FactoryOf, MessageConnector};

/// One message as a connector received it: its payload and the properties it offers as
/// `@name` fields (`@body`, the payload as text, is offered for every message).
#[derive(Debug, Clone, Default)]
pub struct Message {
    pub payload: Vec<u8>,
    pub properties: Vec<(&'static str, Value)>,
}

/// Why a message could not become a row.
#[derive(Debug, Clone, PartialEq)]
pub struct DirtyMessage {
    /// Index of the message in the decoded slice.
    pub index: usize,
    pub reason: String,
}

/// Messages -> RecordBatches with one column per field.
#[derive(Debug, Clone)]
pub struct MessageDecoder {
    fields: Vec<MessageField>,
    schema: SchemaRef,
    /// Some field reads the JSON payload (else payloads are not parsed).
    reads_payload: bool,
}

enum Column {
    Utf8(StringBuilder),
    I32(Int32Builder),
    I64(Int64Builder),
    F64(Float64Builder),
    /// With the type's precision and scale.
    Dec(Decimal128Builder, u8, i8),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Bin(BinaryBuilder),
}

impl MessageDecoder {
    pub fn new(fields: Vec<MessageField>) -> Self {
        let schema = Arc::new(Schema::new(
            fields
                .iter()
                .map(|f| Field::new(&f.name, f.arrow_type.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let reads_payload = fields
            .iter()
            .any(|f| matches!(f.source, FieldSource::Json(_)));
        Self {
            fields,
            schema,
            reads_payload,
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The rows of `messages` (the dirty ones left out, with their reasons).
    pub fn decode(&self, messages: &[Message]) -> (RecordBatch, Vec<DirtyMessage>) {
        let mut columns: Vec<Column> = self
            .fields
            .iter()
            .map(|f| builder(&f.arrow_type, messages.len()))
            .collect();
        let mut dirty = Vec::new();
        let mut row: Vec<Value> = Vec::with_capacity(self.fields.len());
        for (index, m) in messages.iter().enumerate() {
            match self.values(m, &mut row) {
                Ok(()) => {}
                Err(reason) => {
                    dirty.push(DirtyMessage { index, reason });
                    continue;
                }
            }
            // Convert every value first so a dirty message leaves no partial row behind.
            let converted: Result<Vec<Scalar>, String> = columns
                .iter()
                .zip(&self.fields)
                .zip(&row)
                .map(|((c, f), v)| convert(c, f, v).map_err(|e| format!("{}: {e}", f.name)))
                .collect();
            match converted {
                Ok(values) => {
                    for (c, v) in columns.iter_mut().zip(values) {
                        push(c, v);
                    }
                }
                Err(reason) => dirty.push(DirtyMessage { index, reason }),
            }
        }
        let arrays: Vec<ArrayRef> = columns.into_iter().map(finish).collect();
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .expect("columns built from the schema's own types");
        (batch, dirty)
    }

    /// Each field's raw value in `m`.
    fn values(&self, m: &Message, out: &mut Vec<Value>) -> Result<(), String> {
        out.clear();
        let payload: Value = if self.reads_payload {
            serde_json::from_slice(&m.payload)
                .map_err(|e| format!("the message is not JSON: {e}"))?
        } else {
            Value::Null
        };
        for f in &self.fields {
            let v = match &f.source {
                FieldSource::Json(path) => path
                    .iter()
                    .try_fold(&payload, |v, member| v.get(member))
                    .cloned()
                    .unwrap_or(Value::Null),
                // The raw body, for any connector, made only when a field asks for it.
                FieldSource::Property(name) if name == "body" => {
                    Value::from(String::from_utf8_lossy(&m.payload).into_owned())
                }
                FieldSource::Property(name) => m
                    .properties
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("{}: the message has no property @{name}", f.name))?,
            };
            out.push(v);
        }
        Ok(())
    }
}

fn builder(t: &DataType, n: usize) -> Column {
    match t {
        DataType::Int32 => Column::I32(Int32Builder::with_capacity(n)),
        DataType::Int64 => Column::I64(Int64Builder::with_capacity(n)),
        DataType::Float64 => Column::F64(Float64Builder::with_capacity(n)),
        DataType::Decimal128(p, s) => Column::Dec(
            Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(*p, *s)
                .expect("valid decimal type"),
            *p,
            *s,
        ),
        DataType::Boolean => Column::Bool(BooleanBuilder::with_capacity(n)),
        DataType::Timestamp(_, tz) => {
            Column::Ts(TimestampMicrosecondBuilder::with_capacity(n).with_timezone_opt(tz.clone()))
        }
        DataType::Date32 => Column::Date(Date32Builder::with_capacity(n)),
        DataType::Binary => Column::Bin(BinaryBuilder::with_capacity(n, n * 16)),
        _ => Column::Utf8(StringBuilder::with_capacity(n, n * 16)),
    }
}

fn finish(c: Column) -> ArrayRef {
    match c {
        Column::Utf8(mut b) => Arc::new(b.finish()),
        Column::I32(mut b) => Arc::new(b.finish()),
        Column::I64(mut b) => Arc::new(b.finish()),
        Column::F64(mut b) => Arc::new(b.finish()),
        Column::Dec(mut b, _, _) => Arc::new(b.finish()),
        Column::Bool(mut b) => Arc::new(b.finish()),
        Column::Ts(mut b) => Arc::new(b.finish()),
        Column::Date(mut b) => Arc::new(b.finish()),
        Column::Bin(mut b) => Arc::new(b.finish()),
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn integer(v: &Value) -> Result<Option<i64>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{n} is not an integer")),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{s:?} is not an integer")),
        other => Err(format!("{other} is not an integer")),
    }
}

/// One value converted to its column's type (None: NULL).
enum Scalar {
    Text(Option<String>),
    I32(Option<i32>),
    I64(Option<i64>),
    F64(Option<f64>),
    Dec(Option<i128>),
    Bool(Option<bool>),
    Ts(Option<i64>),
    Date(Option<i32>),
    Bin(Option<Vec<u8>>),
}

/// `v` converted for column `c` of field `f`; an error says why it does not fit.
fn convert(c: &Column, f: &MessageField, v: &Value) -> Result<Scalar, String> {
    Ok(match c {
        Column::Utf8(_) => Scalar::Text(text(v)),
        Column::I32(_) => Scalar::I32(match integer(v)? {
            None => None,
            Some(n) => Some(i32::try_from(n).map_err(|_| format!("{n} does not fit an Integer"))?),
        }),
        Column::I64(_) => Scalar::I64(integer(v)?),
        Column::F64(_) => Scalar::F64(match v {
            Value::Null => None,
            Value::Number(n) => Some(n.as_f64().unwrap_or(f64::NAN)),
            Value::String(s) => Some(
                s.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{s:?} is not a number"))?,
            ),
            other => return Err(format!("{other} is not a number")),
        }),
        Column::Dec(_, precision, scale) => Scalar::Dec(match text(v) {
            None => None,
            Some(t) => {
                let t = t.trim();
                if t.split_once('.')
                    .is_some_and(|(_, f)| f.len() > *scale as usize)
                {
                    return Err(format!("{t} has more than {scale} decimal places"));
                }
                Some(
                    parse_decimal::<Decimal128Type>(t, *precision, *scale)
                        .map_err(|_| format!("{t:?} is not a decimal"))?,
                )
            }
        }),
        Column::Bool(_) => Scalar::Bool(match v {
            Value::Null => None,
            Value::Bool(x) => Some(*x),
            Value::Number(n) if n.as_i64() == Some(0) => Some(false),
            Value::Number(n) if n.as_i64() == Some(1) => Some(true),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => return Err(format!("{s:?} is not true or false")),
            },
            other => return Err(format!("{other} is not true or false")),
        }),
        Column::Ts(_) => Scalar::Ts(timestamp_micros(v, f.format.as_deref())?),
        Column::Date(_) => Scalar::Date(date_days(v, f.format.as_deref())?),
        Column::Bin(_) => Scalar::Bin(match v {
            Value::Null => None,
            Value::String(s) => Some(s.as_bytes().to_vec()),
            other => Some(other.to_string().into_bytes()),
        }),
    })
}

/// Append a value [`convert`] made for this column.
fn push(c: &mut Column, s: Scalar) {
    match (c, s) {
        (Column::Utf8(b), Scalar::Text(v)) => b.append_option(v),
        (Column::I32(b), Scalar::I32(v)) => b.append_option(v),
        (Column::I64(b), Scalar::I64(v)) => b.append_option(v),
        (Column::F64(b), Scalar::F64(v)) => b.append_option(v),
        (Column::Dec(b, _, _), Scalar::Dec(v)) => b.append_option(v),
        (Column::Bool(b), Scalar::Bool(v)) => b.append_option(v),
        (Column::Ts(b), Scalar::Ts(v)) => b.append_option(v),
        (Column::Date(b), Scalar::Date(v)) => b.append_option(v),
        (Column::Bin(b), Scalar::Bin(v)) => b.append_option(v),
        _ => unreachable!("convert makes the scalar of its own column"),
    }
}

/// Epoch microseconds of a timestamp value (see the module's table).
fn timestamp_micros(v: &Value, format: Option<&str>) -> Result<Option<i64>, String> {
    let epoch = |n: i64| match format {
        Some("unix_s") => n.checked_mul(1_000_000),
        _ => n.checked_mul(1_000),
    };
    match v {
        Value::Null => Ok(None),
        Value::Number(_) => {
            let n = integer(v)?.expect("a number");
            epoch(n)
                .map(Some)
                .ok_or_else(|| format!("{n} is out of range"))
        }
        Value::String(s) => {
            let s = s.trim();
            match format {
                Some("unix_ms" | "unix_s") => {
                    let n = s
                        .parse::<i64>()
                        .map_err(|_| format!("{s:?} is not a {}", format.unwrap_or_default()))?;
                    epoch(n)
                        .map(Some)
                        .ok_or_else(|| format!("{n} is out of range"))
                }
                Some(pattern) => NaiveDateTime::parse_from_str(s, pattern)
                    .map(|t| Some(t.and_utc().timestamp_micros()))
                    .map_err(|e| format!("{s:?} does not match {pattern:?}: {e}")),
                // Without an offset first (what the JSON writers send), through chrono's
                // precompiled ISO parser rather than a format string parsed per value.
                None => naive_iso(s)
                    .map(|t| t.and_utc().timestamp_micros())
                    .or_else(|| {
                        DateTime::parse_from_rfc3339(s)
                            .ok()
                            .map(|t| t.timestamp_micros())
                    })
                    .map(Some)
                    .ok_or_else(|| format!("{s:?} is not a timestamp")),
            }
        }
        other => Err(format!("{other} is not a timestamp")),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f]` or the same with a space for the `T`, without an offset.
fn naive_iso(s: &str) -> Option<NaiveDateTime> {
    if s.as_bytes().get(10) == Some(&b' ') {
        let mut t = s.to_string();
        t.replace_range(10..11, "T");
        t.parse().ok()
    } else {
        s.parse().ok()
    }
}

/// Days since 1970-01-01 of a date value.
fn date_days(v: &Value, format: Option<&str>) -> Result<Option<i32>, String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    match v {
        Value::Null => Ok(None),
        Value::Number(_) => {
            let micros = timestamp_micros(v, format)?.expect("a number");
            Ok(Some(micros.div_euclid(86_400_000_000) as i32))
        }
        Value::String(s) => {
            let pattern = format
                .filter(|f| !f.starts_with("unix_"))
                .unwrap_or("%Y-%m-%d");
            NaiveDate::parse_from_str(s.trim(), pattern)
                .map(|d| Some((d - epoch).num_days() as i32))
                .map_err(|_| format!("{s:?} is not a date ({pattern})"))
        }
        other => Err(format!("{other} is not a date")),
    }
}

/// Each row of `batch` as one JSON object (column name -> value): what a message sink sends.
///
/// Timestamps with a zone are written as RFC 3339 instants in UTC (`2024-03-01T00:00:00Z`),
/// decimals as text (exact: a JSON number would be read back as a double), binary as arrow's
/// JSON writer spells it. A batch the writer cannot encode is an internal error.
pub fn encode_rows(batch: &RecordBatch) -> fdi_connector::Result<Vec<Vec<u8>>> {
    let internal =
        |e: String| fdi_connector::ConnectorError::internal(format!("encoding rows as JSON: {e}"));
    let batch = with_utc_offsets(batch).map_err(internal)?;
    let mut buf = Vec::with_capacity(batch.num_rows() * 64);
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(&batch).map_err(|e| internal(e.to_string()))?;
        w.finish().map_err(|e| internal(e.to_string()))?;
    }
    Ok(buf
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect())
}

/// The batch as the JSON writer should see it: decimals as their exact text, and every zoned
/// timestamp column's zone spelled `+00:00` (the same instants; the writer resolves only
/// offsets, not zone names such as `UTC`).
fn with_utc_offsets(batch: &RecordBatch) -> Result<RecordBatch, String> {
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        match f.data_type() {
            DataType::Decimal128(..) | DataType::Decimal256(..) => {
                columns.push(arrow::compute::cast(c, &DataType::Utf8).map_err(|e| e.to_string())?);
                fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
            }
            DataType::Timestamp(unit, Some(_)) => {
                let t = DataType::Timestamp(*unit, Some("+00:00".into()));
                let data = c
                    .to_data()
                    .into_builder()
                    .data_type(t.clone())
                    .build()
                    .map_err(|e| e.to_string())?;
                columns.push(arrow::array::make_array(data));
                fields.push(Field::new(f.name(), t, f.is_nullable()));
            }
            _ => {
                columns.push(c.clone());
                fields.push(f.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
    use fdi_types::MetaField;

    fn fields(spec: &[(&str, &str, &str)]) -> Vec<MessageField> {
        spec.iter()
            .enumerate()
            .map(|(i, (n, t, p))| {
                MessageField::from_meta(
                    i,
                    &MetaField {
                        name: (*n).into(),
                        field_type: Some((*t).into()),
                        path: Some((*p).into()),
                        format: None,
                    },
                )
                .unwrap()
            })
            .collect()
    }

    fn msg(json: &str) -> Message {
        Message {
            payload: json.as_bytes().to_vec(),
            properties: vec![("routing_key", Value::String("rk".into()))],
        }
    }

    #[test]
    fn decodes_paths_types_nulls_and_properties() {
        let d = MessageDecoder::new(fields(&[
            ("id", "Long", "order.id"),
            ("amount", "Decimal", ""),
            ("at", "Timestamp", ""),
            ("name", "String", ""),
            ("rk", "String", "@routing_key"),
        ]));
        let (b, dirty) = d.decode(&[
            msg(r#"{"order":{"id":9007199254740993},"amount":"12345678901234567890.0123456789","at":"2024-03-01T08:00:00+08:00","name":"né 漢字"}"#),
            msg(r#"{"order":{"id":"2"},"amount":1.5,"at":1709251200000,"name":null}"#),
            msg(r#"{"order":{}}"#),
        ]);
        assert!(dirty.is_empty(), "{dirty:?}");
        assert_eq!(b.num_rows(), 3);
        let ids = b.column(0).as_primitive::<Int64Type>();
        assert_eq!(
            (ids.value(0), ids.value(1), ids.is_null(2)),
            (9_007_199_254_740_993, 2, true)
        );
        let amounts = b.column(1).as_primitive::<Decimal128Type>();
        assert_eq!(amounts.value(0), 123_456_789_012_345_678_900_123_456_789);
        assert_eq!(amounts.value(1), 15_000_000_000);
        let at = b.column(2).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(at.value(0), 1_709_251_200_000_000);
        assert_eq!(at.value(1), 1_709_251_200_000_000);
        assert_eq!(b.column(3).as_string::<i32>().value(0), "né 漢字");
        assert!(b.column(3).is_null(1));
        assert_eq!(b.column(4).as_string::<i32>().value(2), "rk");
    }

    #[test]
    fn bad_messages_are_dirty_with_a_reason_and_leave_no_row() {
        let d = MessageDecoder::new(fields(&[("id", "Integer", ""), ("ok", "Boolean", "")]));
        let (b, dirty) = d.decode(&[
            msg(r#"{"id":1,"ok":true}"#),
            msg("not json"),
            msg(r#"{"id":"x","ok":true}"#),
            msg(r#"{"id":3000000000,"ok":true}"#),
            msg(r#"{"id":2,"ok":"maybe"}"#),
        ]);
        assert_eq!(b.num_rows(), 1);
        let why: Vec<(usize, &str)> = dirty.iter().map(|d| (d.index, d.reason.as_str())).collect();
        assert_eq!(why[0].0, 1);
        assert!(why[0].1.starts_with("the message is not JSON"));
        assert_eq!(why[1], (2, "id: \"x\" is not an integer"));
        assert_eq!(why[2], (3, "id: 3000000000 does not fit an Integer"));
        assert_eq!(why[3], (4, "ok: \"maybe\" is not true or false"));
    }

    #[test]
    fn rows_encode_as_json_objects() {
        let d = MessageDecoder::new(fields(&[("id", "Long", ""), ("name", "String", "")]));
        let (b, _) = d.decode(&[msg(r#"{"id":1,"name":"a"}"#), msg(r#"{"id":2}"#)]);
        let rows = encode_rows(&b).unwrap();
        let parsed: Vec<Value> = rows
            .iter()
            .map(|r| serde_json::from_slice(r).unwrap())
            .collect();
        assert_eq!(parsed[0], serde_json::json!({"id": 1, "name": "a"}));
        assert_eq!(parsed[1]["id"], 2);
    }
}
