//! Changes as events, for a target without tables (a Kafka topic): one JSON message per changed
//! row, in source commit order, nothing collapsed:
//!
//! ```json
//! {"op": "UPDATE", "source_table": "public.orders", "key": "42",
//!  "before": {"id": "42", "amount": "10.50"}, "after": {"id": "42", "amount": "11.00"},
//!  "position": "{\"lsn\":\"0/16B3748\"}", "commit_ms": 1764748800123, "snapshot": false}
//! ```
//!
//! Values are in the change log's text form (see `ChangeValue`), binary values as lowercase hex;
//! `before` / `after` are null where the change has none; `key` (also the message key, so one
//! row's events stay in one partition, in order) is the key value, or a JSON array of them for a
//! composite key. Rows of the initial copy are INSERT events with `"snapshot": true` and no
//! position.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, StringArray, StringBuilder, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, Schema};
use arrow::record_batch::RecordBatch;
use fdi_connector::change::{ChangeOp, ChangeTable, ChangeValue, RowChange};
use fdi_connector::{ColumnInfo, ConnectorError, Result, SinkWriter, SourcePosition, WriteStats};

use crate::TableMapping;
use crate::apply::{OpCounts, commit_batches, push_hex};

/// The columns of an event batch besides `before` / `after` (whose fields vary).
pub fn event_columns() -> Vec<ColumnInfo> {
    let mut key = ColumnInfo::new("key", "text", DataType::Utf8);
    key.primary = true;
    vec![
        ColumnInfo::new("op", "text", DataType::Utf8),
        ColumnInfo::new("source_table", "text", DataType::Utf8),
        key,
        ColumnInfo::new("position", "text", DataType::Utf8),
        ColumnInfo::new("commit_ms", "bigint", DataType::Int64),
        ColumnInfo::new("snapshot", "boolean", DataType::Boolean),
    ]
}

type Image = Vec<(String, ChangeValue)>;

struct Event {
    op: ChangeOp,
    key: Option<String>,
    before: Option<Image>,
    after: Option<Image>,
    position: Option<String>,
    commit_ms: Option<i64>,
}

/// One mapped table's events on their way to the target.
pub struct EventSink {
    pub mapping: TableMapping,
    writer: Box<dyn SinkWriter>,
    pending: Vec<Event>,
    uncommitted: OpCounts,
    pub applied: OpCounts,
    pub skipped: u64,
}

impl EventSink {
    pub fn new(mapping: TableMapping, writer: Box<dyn SinkWriter>) -> Self {
        Self {
            mapping,
            writer,
            pending: Vec::new(),
            uncommitted: OpCounts::default(),
            applied: OpCounts::default(),
            skipped: 0,
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The row as (name, value) pairs: the mapped columns under their target names, or every
    /// column when the mapping names none.
    fn image(&self, table: &ChangeTable, row: &[ChangeValue]) -> Image {
        if self.mapping.columns.is_empty() {
            return table
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| (c.name.clone(), v.clone()))
                .collect();
        }
        self.mapping
            .columns
            .iter()
            .map(|(s, t)| {
                let v = table
                    .columns
                    .iter()
                    .position(|c| &c.name == s)
                    .map_or(ChangeValue::Null, |i| row[i].clone());
                (t.clone(), v)
            })
            .collect()
    }

    fn key(table: &ChangeTable, row: &[ChangeValue]) -> Option<String> {
        let values: Vec<Option<String>> = table
            .columns
            .iter()
            .zip(row)
            .filter(|(c, _)| c.key)
            .map(|(_, v)| text(v))
            .collect();
        match values.as_slice() {
            [] => None,
            [one] => one.clone(),
            many => serde_json::to_string(many).ok(),
        }
    }

    pub fn add_snapshot_rows(&mut self, table: &ChangeTable, rows: &[Vec<ChangeValue>]) {
        for row in rows {
            self.uncommitted.inserts += 1;
            self.pending.push(Event {
                op: ChangeOp::Insert,
                key: Self::key(table, row),
                before: None,
                after: Some(self.image(table, row)),
                position: None,
                commit_ms: None,
            });
        }
    }

    pub fn add_change(&mut self, change: &RowChange, commit_ms: i64, position: &SourcePosition) {
        let table = &change.table;
        let key_row = change.after.as_ref().or(change.before.as_ref());
        match change.op {
            ChangeOp::Insert => self.uncommitted.inserts += 1,
            ChangeOp::Update => self.uncommitted.updates += 1,
            ChangeOp::Delete => self.uncommitted.deletes += 1,
        }
        self.pending.push(Event {
            op: change.op,
            key: key_row.and_then(|r| Self::key(table, r)),
            before: change.before.as_ref().map(|r| self.image(table, r)),
            after: change.after.as_ref().map(|r| self.image(table, r)),
            position: Some(position.0.to_string()),
            commit_ms: Some(commit_ms),
        });
    }

    /// Send the pending events and wait for the target to confirm them.
    pub async fn flush(&mut self) -> Result<WriteStats> {
        if self.pending.is_empty() {
            return Ok(WriteStats::default());
        }
        let events = std::mem::take(&mut self.pending);
        let batch = to_batch(&self.mapping.source.to_string(), &events)?;
        let stats = commit_batches(
            self.writer.as_mut(),
            &self.mapping.target_table,
            None,
            Some(batch),
        )
        .await?;
        self.skipped += stats.dirty_rows;
        self.applied.add(std::mem::take(&mut self.uncommitted));
        Ok(stats)
    }

    pub async fn discard(&mut self) {
        self.pending.clear();
        self.uncommitted = OpCounts::default();
        let _ = self.writer.abort().await;
    }
}

fn text(v: &ChangeValue) -> Option<String> {
    match v {
        ChangeValue::Null | ChangeValue::Unchanged => None,
        ChangeValue::Text(s) => Some(s.clone()),
        ChangeValue::Bytes(b) => {
            let mut s = String::new();
            push_hex(&mut s, b);
            Some(s)
        }
    }
}

/// `before` or `after` of every event as one struct column (fields: every name seen, in order).
fn images(events: &[Event], pick: impl Fn(&Event) -> Option<&Image>) -> ArrayRef {
    let mut names: Vec<&str> = Vec::new();
    for e in events {
        for (n, _) in pick(e).into_iter().flatten() {
            if !names.contains(&n.as_str()) {
                names.push(n);
            }
        }
    }
    let mut children: Vec<ArrayRef> = Vec::with_capacity(names.len());
    for name in &names {
        let mut b = StringBuilder::with_capacity(events.len(), events.len() * 8);
        for e in events {
            let v = pick(e).and_then(|img| img.iter().find(|(n, _)| n == name).map(|(_, v)| v));
            match v.and_then(text) {
                Some(s) => b.append_value(s),
                None => b.append_null(),
            }
        }
        children.push(Arc::new(b.finish()));
    }
    let fields: Fields = names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect();
    let valid = NullBuffer::from(events.iter().map(|e| pick(e).is_some()).collect::<Vec<_>>());
    if fields.is_empty() {
        return Arc::new(StructArray::new_empty_fields(events.len(), Some(valid)));
    }
    Arc::new(StructArray::new(fields, children, Some(valid)))
}

fn to_batch(source_table: &str, events: &[Event]) -> Result<RecordBatch> {
    let before = images(events, |e| e.before.as_ref());
    let after = images(events, |e| e.after.as_ref());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            events.iter().map(|e| e.op.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            events.iter().map(|_| source_table),
        )),
        Arc::new(StringArray::from_iter(
            events.iter().map(|e| e.key.as_deref()),
        )),
        before.clone(),
        after.clone(),
        Arc::new(StringArray::from_iter(
            events.iter().map(|e| e.position.as_deref()),
        )),
        Arc::new(Int64Array::from_iter(events.iter().map(|e| e.commit_ms))),
        Arc::new(BooleanArray::from_iter(
            events.iter().map(|e| Some(e.position.is_none())),
        )),
    ];
    let schema = Schema::new(vec![
        Field::new("op", DataType::Utf8, false),
        Field::new("source_table", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("before", before.data_type().clone(), true),
        Field::new("after", after.data_type().clone(), true),
        Field::new("position", DataType::Utf8, true),
        Field::new("commit_ms", DataType::Int64, true),
        Field::new("snapshot", DataType::Boolean, false),
    ]);
    RecordBatch::try_new(Arc::new(schema), columns)
        .map_err(|e| ConnectorError::internal(format!("change events: {e}")))
}

#[cfg(test)]
mod tests {
    use fdi_connector::change::{ChangeColumn, TableId};

    use super::*;

    #[test]
    fn events_encode_as_one_json_object_each() {
        let table = Arc::new(ChangeTable {
            id: TableId::new("public", "t"),
            columns: vec![
                ChangeColumn {
                    name: "id".into(),
                    native_type: "int4".into(),
                    key: true,
                },
                ChangeColumn {
                    name: "b".into(),
                    native_type: "bytea".into(),
                    key: false,
                },
            ],
        });
        let t = |s: &str| ChangeValue::Text(s.into());
        let events = vec![
            Event {
                op: ChangeOp::Update,
                key: EventSink::key(&table, &[t("7"), ChangeValue::Null]),
                before: Some(vec![("id".into(), t("7")), ("b".into(), ChangeValue::Null)]),
                after: Some(vec![
                    ("id".into(), t("7")),
                    ("b".into(), ChangeValue::Bytes(vec![0, 171])),
                ]),
                position: Some("{\"lsn\":\"0/1\"}".into()),
                commit_ms: Some(5),
            },
            Event {
                op: ChangeOp::Delete,
                key: Some("8".into()),
                before: Some(vec![("id".into(), t("8"))]),
                after: None,
                position: Some("{\"lsn\":\"0/2\"}".into()),
                commit_ms: Some(6),
            },
        ];
        let b = to_batch("public.t", &events).unwrap();
        let rows = fdi_connector_json(&b);
        assert_eq!(
            rows[0],
            serde_json::json!({"op": "UPDATE", "source_table": "public.t", "key": "7",
                "before": {"id": "7"}, "after": {"id": "7", "b": "00ab"},
                "position": "{\"lsn\":\"0/1\"}", "commit_ms": 5, "snapshot": false})
        );
        assert_eq!(rows[1]["after"], serde_json::Value::Null);
        assert_eq!(rows[1]["op"], "DELETE");
        assert!(b.column(4).is_null(1));
    }

    /// The batch as arrow's JSON writer (what the Kafka writer uses) writes it.
    fn fdi_connector_json(b: &RecordBatch) -> Vec<serde_json::Value> {
        let mut buf = Vec::new();
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(b).unwrap();
        w.finish().unwrap();
        String::from_utf8(buf)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}
