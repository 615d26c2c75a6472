//! The key space: scanning a pattern, fetching keys as row objects (a pipeline per page of
//! keys), stream replies, and discovery (tables, columns).

use std::collections::BTreeSet;

use arrow::datatypes::DataType;
use fdi_connector::{ColumnInfo, ConnectorError, FieldSource, MessageField, Result};
use redis::Value;
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value as Json};

use crate::map_error;

/// Keys a `SCAN` call is asked to look at.
pub(crate) const SCAN_COUNT: usize = 1000;
/// Keys discovery looks at (`list_tables`).
const DISCOVERY_KEYS: usize = 10_000;
/// Keys (or stream entries) sampled for a table's columns.
const SAMPLE: usize = 100;

/// The text of a reply value (bulk strings lossily as UTF-8).
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        Value::Double(d) => Some(d.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// One `SCAN` call: the next cursor and the keys it returned.
pub(crate) async fn scan(
    c: &mut MultiplexedConnection,
    cursor: u64,
    pattern: Option<&str>,
) -> Result<(u64, Vec<Vec<u8>>)> {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor);
    if let Some(p) = pattern {
        cmd.arg("MATCH").arg(p);
    }
    cmd.arg("COUNT").arg(SCAN_COUNT);
    let (next, keys): (String, Vec<Vec<u8>>) =
        cmd.query_async(c).await.map_err(|e| map_error("SCAN", e))?;
    let next = next
        .parse::<u64>()
        .map_err(|_| ConnectorError::internal(format!("SCAN returned cursor {next:?}")))?;
    Ok((next, keys))
}

/// The type of each key (`none` for a key gone since it was scanned).
pub(crate) async fn types(c: &mut MultiplexedConnection, keys: &[Vec<u8>]) -> Result<Vec<String>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = redis::pipe();
    p.ignore_errors();
    for k in keys {
        p.cmd("TYPE").arg(k);
    }
    let replies: Vec<Value> = p.query_async(c).await.map_err(|e| map_error("TYPE", e))?;
    Ok(replies
        .iter()
        .map(|v| text(v).unwrap_or_else(|| "none".into()))
        .collect())
}

/// One key as a row: its name, its type and the row object (`key` plus its fields).
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub key: String,
    pub kind: &'static str,
    pub object: Map<String, Json>,
}

fn kind_of(t: &str) -> Option<&'static str> {
    Some(match t {
        "hash" => "hash",
        "string" => "string",
        "list" => "list",
        "set" => "set",
        "zset" => "zset",
        _ => return None,
    })
}

/// The rows of `keys` (streams, keys of other types and keys gone since the scan left out):
/// one pipeline for their types, one for their values.
pub(crate) async fn fetch(c: &mut MultiplexedConnection, keys: &[Vec<u8>]) -> Result<Vec<KeyRow>> {
    let kinds = types(c, keys).await?;
    let wanted: Vec<(&Vec<u8>, &'static str)> = keys
        .iter()
        .zip(&kinds)
        .filter_map(|(k, t)| kind_of(t).map(|kind| (k, kind)))
        .collect();
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut p = redis::pipe();
    p.ignore_errors();
    for (k, kind) in &wanted {
        match *kind {
            "hash" => p.cmd("HGETALL").arg(*k),
            "string" => p.cmd("GET").arg(*k),
            "list" => p.cmd("LRANGE").arg(*k).arg(0).arg(-1),
            "set" => p.cmd("SMEMBERS").arg(*k),
            _ => p.cmd("ZRANGE").arg(*k).arg(0).arg(-1),
        };
    }
    let values: Vec<Value> = p
        .query_async(c)
        .await
        .map_err(|e| map_error("read keys", e))?;
    let mut rows = Vec::with_capacity(wanted.len());
    for ((k, kind), v) in wanted.into_iter().zip(values) {
        let key = String::from_utf8_lossy(k).into_owned();
        let mut object = Map::new();
        match (kind, v) {
            // Changed type or vanished between the two pipelines: not a row of this read.
            (_, Value::ServerError(_) | Value::Nil) => continue,
            ("hash", Value::Array(flat)) => {
                for pair in flat.chunks(2) {
                    if let [f, v] = pair {
                        object.insert(text(f).unwrap_or_default(), text(v).into());
                    }
                }
            }
            ("hash", Value::Map(pairs)) => {
                for (f, v) in &pairs {
                    object.insert(text(f).unwrap_or_default(), text(v).into());
                }
            }
            ("hash", _) => continue,
            ("string", v) => {
                let value = text(&v).unwrap_or_default();
                if value.trim_start().starts_with('{')
                    && let Ok(Json::Object(members)) = serde_json::from_str::<Json>(&value)
                {
                    object.extend(members);
                }
                object.insert("value".into(), Json::String(value));
            }
            (_, Value::Array(items) | Value::Set(items)) => {
                let items: Vec<Json> = items.iter().map(|i| text(i).into()).collect();
                object.insert("value".into(), Json::Array(items));
            }
            _ => continue,
        }
        object.insert("key".into(), Json::String(key.clone()));
        rows.push(KeyRow { key, kind, object });
    }
    Ok(rows)
}

/// One stream entry: its id and its field/value pairs (None: deleted since it was delivered).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub id: String,
    pub fields: Option<Vec<(String, String)>>,
}

impl Entry {
    pub fn object(&self) -> Map<String, Json> {
        self.fields
            .iter()
            .flatten()
            .map(|(f, v)| (f.clone(), Json::String(v.clone())))
            .collect()
    }
}

fn reply_error(what: &str, v: &Value) -> ConnectorError {
    ConnectorError::internal(format!("unexpected {what} reply: {v:?}"))
}

fn pairs(v: &Value) -> Option<Vec<(String, String)>> {
    match v {
        Value::Array(flat) => Some(
            flat.chunks(2)
                .filter_map(|p| match p {
                    [f, v] => Some((text(f)?, text(v)?)),
                    _ => None,
                })
                .collect(),
        ),
        Value::Map(m) => Some(
            m.iter()
                .filter_map(|(f, v)| Some((text(f)?, text(v)?)))
                .collect(),
        ),
        _ => None,
    }
}

/// The entries of an `XRANGE` / `XREVRANGE` reply (or of one stream of an `XREADGROUP` reply).
pub(crate) fn entries(v: &Value) -> Result<Vec<Entry>> {
    let Value::Array(items) = v else {
        return match v {
            Value::Nil => Ok(Vec::new()),
            other => Err(reply_error("entries", other)),
        };
    };
    items
        .iter()
        .map(|item| match item {
            Value::Array(parts) if parts.len() == 2 => Ok(Entry {
                id: text(&parts[0]).ok_or_else(|| reply_error("entry id", &parts[0]))?,
                fields: match &parts[1] {
                    Value::Nil => None,
                    f => Some(pairs(f).ok_or_else(|| reply_error("entry fields", f))?),
                },
            }),
            other => Err(reply_error("entry", other)),
        })
        .collect()
}

/// The entries of an `XREADGROUP` reply for one stream (nil: none).
pub(crate) fn read_reply(v: &Value) -> Result<Vec<Entry>> {
    let streams: Vec<&Value> = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(streams) => streams
            .iter()
            .map(|s| match s {
                Value::Array(kv) if kv.len() == 2 => Ok(&kv[1]),
                other => Err(reply_error("XREADGROUP", other)),
            })
            .collect::<Result<_>>()?,
        Value::Map(m) => m.iter().map(|(_, e)| e).collect(),
        other => return Err(reply_error("XREADGROUP", other)),
    };
    let mut out = Vec::new();
    for s in streams {
        out.extend(entries(s)?);
    }
    Ok(out)
}

/// A stream entry id as numbers (`1700000000000-3` -> (1700000000000, 3)).
pub(crate) fn entry_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Text fields for a table read: `primary` (`key` / `id`) from the message's property, the
/// others from the row object's members of the same name.
pub(crate) fn text_fields(names: &[String], primary: &str) -> Vec<MessageField> {
    names
        .iter()
        .map(|n| MessageField {
            name: n.clone(),
            arrow_type: DataType::Utf8,
            source: if n == primary {
                FieldSource::Property(primary.to_string())
            } else {
                FieldSource::Json(vec![n.clone()])
            },
            format: None,
        })
        .collect()
}

fn text_column(name: &str, primary: bool, native: &str) -> ColumnInfo {
    ColumnInfo {
        nullable: !primary,
        primary,
        unique: primary,
        ..ColumnInfo::new(name, native, DataType::Utf8)
    }
}

/// Names in order of first appearance.
#[derive(Default)]
struct Union {
    names: Vec<String>,
    seen: std::collections::HashSet<String>,
}

impl Union {
    fn add(&mut self, name: &str) {
        if self.seen.insert(name.to_string()) {
            self.names.push(name.to_string());
        }
    }
}

/// `key` and the union of the fields of up to [`SAMPLE`] keys matching `pattern`.
pub(crate) async fn pattern_columns(
    c: &mut MultiplexedConnection,
    pattern: &str,
) -> Result<Vec<ColumnInfo>> {
    let mut union = Union::default();
    union.add("key");
    let mut sampled = 0usize;
    let mut cursor = 0u64;
    loop {
        let (next, keys) = scan(c, cursor, Some(pattern)).await?;
        let room = SAMPLE - sampled;
        for row in fetch(c, &keys).await?.into_iter().take(room) {
            sampled += 1;
            // Hash fields in the server's order; a string's `value` before its JSON members.
            if row.kind == "string" {
                union.add("value");
            }
            for name in row.object.keys() {
                union.add(name);
            }
        }
        cursor = next;
        if cursor == 0 || sampled >= SAMPLE {
            break;
        }
    }
    if sampled == 0 {
        return Err(ConnectorError::user(format!(
            "no hash, string, list or set key matches \"{pattern}\""
        )));
    }
    Ok(union
        .names
        .iter()
        .map(|n| text_column(n, n == "key", if n == "key" { "key" } else { "string" }))
        .collect())
}

/// The type of `key`, refusing a key that is neither missing nor a stream.
pub(crate) async fn stream_type(c: &mut MultiplexedConnection, key: &str) -> Result<bool> {
    let t: String = redis::cmd("TYPE")
        .arg(key)
        .query_async(c)
        .await
        .map_err(|e| map_error("TYPE", e))?;
    match t.as_str() {
        "stream" => Ok(true),
        "none" => Ok(false),
        other => Err(ConnectorError::user(format!(
            "\"{key}\" is a {other} key, not a stream (name keys by a pattern with *, ? or [)"
        ))),
    }
}

/// `id` and the union of the fields of the last [`SAMPLE`] entries of stream `key`.
pub(crate) async fn stream_columns(
    c: &mut MultiplexedConnection,
    key: &str,
) -> Result<Vec<ColumnInfo>> {
    if !stream_type(c, key).await? {
        return Err(ConnectorError::user(format!(
            "stream \"{key}\" does not exist"
        )));
    }
    let v: Value = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(SAMPLE)
        .query_async(c)
        .await
        .map_err(|e| map_error("XREVRANGE", e))?;
    let mut union = Union::default();
    union.add("id");
    for e in entries(&v)?.iter().rev() {
        for (f, _) in e.fields.iter().flatten() {
            union.add(f);
        }
    }
    Ok(union
        .names
        .iter()
        .map(|n| text_column(n, n == "id", if n == "id" { "stream id" } else { "string" }))
        .collect())
}

/// `prefix` with the glob characters escaped.
fn escape_glob(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The stream keys and one `prefix:*` pattern per key prefix, from the first
/// [`DISCOVERY_KEYS`] keys a `SCAN` returns; sorted.
pub(crate) async fn tables(c: &mut MultiplexedConnection) -> Result<Vec<String>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page) = scan(c, cursor, None).await?;
        keys.extend(page);
        cursor = next;
        if cursor == 0 || keys.len() >= DISCOVERY_KEYS {
            break;
        }
    }
    keys.truncate(DISCOVERY_KEYS);
    let mut out = BTreeSet::new();
    for chunk in keys.chunks(SCAN_COUNT) {
        for (k, t) in chunk.iter().zip(types(c, chunk).await?) {
            let k = String::from_utf8_lossy(k);
            match t.as_str() {
                // A stream whose name holds a glob character would be taken for a pattern.
                "stream" if !crate::is_pattern(&k) => {
                    out.insert(k.into_owned());
                }
                "stream" | "none" => {}
                _ => {
                    if let Some((prefix, _)) = k.split_once(':') {
                        out.insert(format!("{}:*", escape_glob(prefix)));
                    }
                }
            }
        }
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_replies_parse() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("a"), bulk("1"), bulk("b"), bulk("né")]),
                ]),
                Value::Array(vec![bulk("2-5"), Value::Nil]),
            ]),
        ])]);
        let e = read_reply(&reply).unwrap();
        assert_eq!(
            e,
            [
                Entry {
                    id: "1-0".into(),
                    fields: Some(vec![("a".into(), "1".into()), ("b".into(), "né".into())])
                },
                Entry {
                    id: "2-5".into(),
                    fields: None
                }
            ]
        );
        assert!(read_reply(&Value::Nil).unwrap().is_empty());
        assert_eq!(entry_id("1700000000000-3"), Some((1_700_000_000_000, 3)));
        assert_eq!(entry_id("x-1"), None);
        assert_eq!(escape_glob("a[1]*"), "a\\[1\\]\\*");
    }
}
