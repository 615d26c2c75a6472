//! Applying changes to one target table: changes collapse per key to their last state (upsert the
//! newest row, or delete the key) and are written as two batches in one transaction.
//!
//! Collapsing keeps the result of applying the changes one by one in commit order: the keys of
//! the final upserts and of the final deletes are disjoint, so the deletes may go first. A change
//! of a row's key is a delete of the old key and an upsert of the new one.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BinaryBuilder, StringBuilder};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use fdi_connector::change::{ChangeOp, ChangeTable, ChangeValue, RowChange};
use fdi_connector::{ColumnInfo, ConnectorError, Result, SinkWriter, TableSetWriter, WriteStats};

use crate::TableMapping;

/// Where each mapped column sits in a source table's rows, for one shape of the table.
#[derive(Debug, Clone)]
struct SourceLayout {
    /// For the table's column list this was built from.
    columns: Vec<String>,
    /// Per target column (mapping order): the source column's index (None: the source no
    /// longer has the column; the target gets NULL).
    value_at: Vec<Option<usize>>,
}

/// What the collapse keeps per key.
enum Last {
    /// The row in target column order.
    Upsert(Vec<ChangeValue>),
    /// The key values in key order.
    Delete(Vec<ChangeValue>),
}

/// Per-operation counts of what a table applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
}

impl OpCounts {
    pub fn total(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }

    pub fn add(&mut self, o: OpCounts) {
        self.inserts += o.inserts;
        self.updates += o.updates;
        self.deletes += o.deletes;
    }
}

/// Append `bytes` as lowercase hex (one allocation-free pass; binary keys and event values).
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// In one transaction of `writer`: delete the key rows of `deletes`, write `rows`, commit. On
/// failure the transaction is rolled back and the error names `target`.
pub(crate) async fn commit_batches(
    writer: &mut dyn SinkWriter,
    target: &str,
    deletes: Option<RecordBatch>,
    rows: Option<RecordBatch>,
) -> Result<WriteStats> {
    let mut stats = WriteStats::default();
    let r = async {
        writer.begin().await?;
        if let Some(keys) = deletes {
            stats.rows += writer.delete(keys).await?;
        }
        if let Some(rows) = rows {
            let s = writer.write(rows).await?;
            stats.rows += s.rows;
            stats.bytes += s.bytes;
            stats.dirty_rows += s.dirty_rows;
        }
        writer.commit().await
    }
    .await;
    if let Err(e) = r {
        let _ = writer.abort().await;
        return Err(ConnectorError {
            message: format!("{target}: {}", e.message),
            ..e
        });
    }
    Ok(stats)
}

/// One table's pending work: keys to delete, then rows to upsert.
pub struct PendingBatches {
    pub deletes: Option<RecordBatch>,
    pub rows: Option<RecordBatch>,
}

/// In one transaction of `set`, every table's pending work (and the first transaction's
/// clearing), then commit: the target shows all of it or none. `sinks[i]` is table `i` of the
/// set. On failure the transaction is rolled back and the error names the table.
pub(crate) async fn commit_table_set(
    set: &mut dyn TableSetWriter,
    sinks: &mut [&mut TableSink],
) -> Result<WriteStats> {
    let mut stats = WriteStats::default();
    let r = async {
        set.begin().await?;
        for (i, sink) in sinks.iter_mut().enumerate() {
            let target = sink.mapping.target_table.clone();
            let named = |e: ConnectorError| ConnectorError {
                message: format!("{target}: {}", e.message),
                ..e
            };
            if sink.clearing() {
                set.prepare(i).await.map_err(named)?;
            }
            let Some(b) = sink.take_batches()? else {
                continue;
            };
            if let Some(keys) = b.deletes {
                stats.rows += set.delete(i, keys).await.map_err(named)?;
            }
            if let Some(rows) = b.rows {
                let s = set.write(i, rows).await.map_err(named)?;
                stats.rows += s.rows;
                stats.bytes += s.bytes;
                stats.dirty_rows += s.dirty_rows;
            }
        }
        set.commit().await
    }
    .await;
    if let Err(e) = r {
        let _ = set.abort().await;
        return Err(e);
    }
    for sink in sinks.iter_mut() {
        sink.committed();
    }
    Ok(stats)
}

/// One target table of a running task.
pub struct TableSink {
    pub mapping: TableMapping,
    /// The mapped target columns, in mapping order.
    columns: Vec<ColumnInfo>,
    schema: SchemaRef,
    /// Indexes into `columns` of the target's key.
    key_at: Vec<usize>,
    key_schema: SchemaRef,
    /// None for a table written through the task's [`TableSetWriter`].
    writer: Option<Box<dyn SinkWriter>>,
    layout: Option<SourceLayout>,
    /// Pending keys in first-seen order, and their last state.
    order: Vec<String>,
    pending: HashMap<String, Last>,
    /// Counted when applied (committed).
    uncommitted: OpCounts,
    pub applied: OpCounts,
    /// Changes that could not be applied (an UPDATE / DELETE of a table without key, a value the
    /// source did not send), with the first reason.
    pub skipped: u64,
    pub skip_reason: Option<String>,
    /// A change of the source table's columns seen and not yet reported.
    pub drift: Option<String>,
    /// The table is yet to be emptied (by the first commit).
    clearing: bool,
}

impl TableSink {
    /// `columns`: the target's mapped columns in mapping order; `key`: the names of its key.
    /// `clearing`: the writer empties the table in its first transaction (a copy is starting:
    /// rows the source no longer has must not survive from an earlier, interrupted copy).
    pub fn new(
        mapping: TableMapping,
        columns: Vec<ColumnInfo>,
        key: &[String],
        writer: Option<Box<dyn SinkWriter>>,
        clearing: bool,
    ) -> Self {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.arrow_type.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let key_at: Vec<usize> = key
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect();
        let key_schema = Arc::new(Schema::new(
            key_at
                .iter()
                .map(|&i| schema.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        Self {
            mapping,
            columns,
            schema,
            key_at,
            key_schema,
            writer,
            layout: None,
            order: Vec::new(),
            pending: HashMap::new(),
            uncommitted: OpCounts::default(),
            applied: OpCounts::default(),
            skipped: 0,
            skip_reason: None,
            drift: None,
            clearing,
        }
    }

    pub fn has_key(&self) -> bool {
        !self.key_at.is_empty()
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn skip(&mut self, reason: String) {
        self.skipped += 1;
        self.skip_reason.get_or_insert(reason);
    }

    /// The layout of `table`'s rows (rebuilt when its columns changed).
    fn layout(&mut self, table: &ChangeTable) -> Result<&SourceLayout> {
        let same = self.layout.as_ref().is_some_and(|l| {
            l.columns.len() == table.columns.len()
                && l.columns
                    .iter()
                    .zip(&table.columns)
                    .all(|(a, b)| *a == b.name)
        });
        if !same {
            let value_at = self
                .mapping
                .columns
                .iter()
                .map(|(source, _)| table.columns.iter().position(|c| &c.name == source))
                .collect();
            // What changed since the mapping was made (or since the last shape seen).
            let known: Vec<String> = match &self.layout {
                Some(l) => l.columns.clone(),
                None => self.mapping.source_columns.clone(),
            };
            if !known.is_empty() {
                let now: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
                let added: Vec<&str> = now
                    .iter()
                    .copied()
                    .filter(|c| !known.iter().any(|k| k == c))
                    .collect();
                let removed: Vec<&str> = known
                    .iter()
                    .map(String::as_str)
                    .filter(|k| !now.contains(k))
                    .collect();
                if !added.is_empty() || !removed.is_empty() {
                    let mut note = format!("the source table {} changed:", self.mapping.source);
                    if !added.is_empty() {
                        note.push_str(&format!(" columns added {added:?} (not mapped)"));
                    }
                    if !removed.is_empty() {
                        note.push_str(&format!(
                            " columns removed {removed:?} (mapped ones get NULL)"
                        ));
                    }
                    self.drift = Some(note);
                }
            }
            self.layout = Some(SourceLayout {
                columns: table.columns.iter().map(|c| c.name.clone()).collect(),
                value_at,
            });
        }
        Ok(self.layout.as_ref().expect("set above"))
    }

    fn key_string(values: &[ChangeValue]) -> String {
        let mut s = String::new();
        for v in values {
            match v {
                ChangeValue::Null => s.push('N'),
                ChangeValue::Unchanged => s.push('U'),
                ChangeValue::Text(t) => {
                    s.push('T');
                    s.push_str(&t.len().to_string());
                    s.push(':');
                    s.push_str(t);
                }
                ChangeValue::Bytes(b) => {
                    s.push('B');
                    s.push_str(&b.len().to_string());
                    s.push(':');
                    push_hex(&mut s, b);
                }
            }
        }
        s
    }

    fn remember(&mut self, key: String, last: Last) {
        if self.pending.insert(key.clone(), last).is_none() {
            self.order.push(key);
        }
    }

    /// A row in target column order from a source row.
    fn target_row(&mut self, table: &ChangeTable, row: &[ChangeValue]) -> Result<Vec<ChangeValue>> {
        let layout = self.layout(table)?;
        Ok(layout
            .value_at
            .iter()
            .map(|i| i.map_or(ChangeValue::Null, |i| row[i].clone()))
            .collect())
    }

    fn key_of(&self, target_row: &[ChangeValue]) -> Vec<ChangeValue> {
        self.key_at.iter().map(|&i| target_row[i].clone()).collect()
    }

    /// Rows of the initial copy: upserts.
    pub fn add_snapshot_rows(
        &mut self,
        table: &ChangeTable,
        rows: &[Vec<ChangeValue>],
    ) -> Result<()> {
        for row in rows {
            let t = self.target_row(table, row)?;
            self.add_upsert(t, ChangeOp::Insert);
        }
        Ok(())
    }

    fn add_upsert(&mut self, row: Vec<ChangeValue>, op: ChangeOp) {
        let key = if self.has_key() {
            Self::key_string(&self.key_of(&row))
        } else {
            // Without a key every row is its own.
            format!("#{}", self.order.len())
        };
        match op {
            ChangeOp::Update => self.uncommitted.updates += 1,
            _ => self.uncommitted.inserts += 1,
        }
        self.remember(key, Last::Upsert(row));
    }

    /// One change of the stream.
    pub fn add_change(&mut self, change: &RowChange) -> Result<()> {
        let table = change.table.clone();
        let after = match &change.after {
            Some(a) => Some(self.target_row(&table, a)?),
            None => None,
        };
        let before = match &change.before {
            Some(b) => Some(self.target_row(&table, b)?),
            None => None,
        };
        if change.op != ChangeOp::Insert && !self.has_key() {
            self.skip(format!(
                "{} of {}: the target table {} has no primary key, so the row cannot be found",
                change.op.as_str(),
                self.mapping.source,
                self.mapping.target_table
            ));
            return Ok(());
        }
        if let Some(a) = &after
            && a.contains(&ChangeValue::Unchanged)
        {
            self.skip(format!(
                "{} of {}: the source did not send every value (unchanged TOAST values; set REPLICA IDENTITY FULL on the source table)",
                change.op.as_str(),
                self.mapping.source
            ));
            return Ok(());
        }
        match (change.op, after, before) {
            (ChangeOp::Delete, _, Some(b)) => {
                let key = self.key_of(&b);
                self.uncommitted.deletes += 1;
                self.remember(Self::key_string(&key), Last::Delete(key));
            }
            (ChangeOp::Delete, _, None) => self.skip(format!(
                "DELETE of {}: the change log sent no key",
                self.mapping.source
            )),
            (op, Some(a), before) => {
                // A changed key: the old row goes.
                if let Some(b) = before {
                    let old = self.key_of(&b);
                    if self.has_key() && old != self.key_of(&a) {
                        self.remember(Self::key_string(&old), Last::Delete(old));
                    }
                }
                self.add_upsert(a, op);
            }
            (op, None, _) => self.skip(format!(
                "{} of {}: the change log sent no new row",
                op.as_str(),
                self.mapping.source
            )),
        }
        Ok(())
    }

    /// The table is yet to be emptied by the first commit.
    pub fn clearing(&self) -> bool {
        self.clearing
    }

    /// What is pending as batches: the keys to delete and the rows to upsert (None when there
    /// is nothing to do). Counted as applied once [`TableSink::committed`].
    pub fn take_batches(&mut self) -> Result<Option<PendingBatches>> {
        if self.pending.is_empty() && !self.clearing {
            return Ok(None);
        }
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for k in std::mem::take(&mut self.order) {
            match self.pending.remove(&k) {
                Some(Last::Upsert(r)) => upserts.push(r),
                Some(Last::Delete(k)) => deletes.push(k),
                None => {}
            }
        }
        Ok(Some(PendingBatches {
            deletes: match deletes.is_empty() {
                true => None,
                false => Some(to_batch(&self.key_schema, &deletes)?),
            },
            rows: match upserts.is_empty() {
                true => None,
                false => Some(to_batch(&self.schema, &upserts)?),
            },
        }))
    }

    /// The batches taken last were committed.
    pub fn committed(&mut self) {
        self.clearing = false;
        self.applied.add(std::mem::take(&mut self.uncommitted));
    }

    /// Write what is pending in one transaction of this table's own writer and commit it.
    /// Returns rows and bytes written.
    pub async fn flush(&mut self) -> Result<WriteStats> {
        let Some(batches) = self.take_batches()? else {
            return Ok(WriteStats::default());
        };
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| ConnectorError::internal("a table of a table set flushed on its own"))?;
        let stats = commit_batches(
            writer.as_mut(),
            &self.mapping.target_table,
            batches.deletes,
            batches.rows,
        )
        .await?;
        self.committed();
        Ok(stats)
    }

    /// Forget what is pending (the run is ending without committing it).
    pub async fn discard(&mut self) {
        self.order.clear();
        self.pending.clear();
        self.uncommitted = OpCounts::default();
        if let Some(w) = self.writer.as_mut() {
            let _ = w.abort().await;
        }
    }

    pub fn target_columns(&self) -> &[ColumnInfo] {
        &self.columns
    }
}

/// `true`/`false` (and PostgreSQL's `t`/`f`) as 1/0; any other text as it is.
fn boolean_as_integer(s: &str) -> &str {
    match s {
        "true" | "t" => "1",
        "false" | "f" => "0",
        s => s,
    }
}

/// Rows of change values as a batch of `schema`'s types: text parsed by Arrow's casts, bytes
/// kept as they are for binary columns.
pub fn to_batch(schema: &SchemaRef, rows: &[Vec<ChangeValue>]) -> Result<RecordBatch> {
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (j, field) in schema.fields().iter().enumerate() {
        let array: ArrayRef = match field.data_type() {
            DataType::Binary | DataType::LargeBinary => {
                let mut b = BinaryBuilder::with_capacity(rows.len(), rows.len() * 16);
                for r in rows {
                    match &r[j] {
                        ChangeValue::Bytes(v) => b.append_value(v),
                        ChangeValue::Text(t) => b.append_value(t.as_bytes()),
                        ChangeValue::Null | ChangeValue::Unchanged => b.append_null(),
                    }
                }
                let a: ArrayRef = Arc::new(b.finish());
                if field.data_type() == &DataType::Binary {
                    a
                } else {
                    cast_with_options(&a, field.data_type(), &options).map_err(|e| {
                        ConnectorError::user(format!("column {}: {e}", field.name()))
                    })?
                }
            }
            t => {
                let mut b = StringBuilder::with_capacity(rows.len(), rows.len() * 8);
                // A boolean source column into an integer target (MySQL's BOOLEAN is TINYINT).
                let integer = t.is_integer();
                for r in rows {
                    match &r[j] {
                        ChangeValue::Text(s) if integer => b.append_value(boolean_as_integer(s)),
                        ChangeValue::Text(s) => b.append_value(s),
                        ChangeValue::Bytes(v) => b.append_value(String::from_utf8_lossy(v)),
                        ChangeValue::Null | ChangeValue::Unchanged => b.append_null(),
                    }
                }
                let a: ArrayRef = Arc::new(b.finish());
                let convert = |to: &DataType| {
                    cast_with_options(&a, to, &options).map_err(|e| {
                        ConnectorError::user(format!(
                            "column {} ({t}): a value does not convert: {e}",
                            field.name()
                        ))
                    })
                };
                match t {
                    DataType::Utf8 => a,
                    // Zoned timestamps are parsed as UTC instants (text with `Z` or an offset),
                    // then labelled with the column's zone (Arrow here parses no zone names).
                    DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => {
                        let naive = convert(&DataType::Timestamp(TimeUnit::Microsecond, None))?;
                        Arc::new(
                            naive
                                .as_primitive::<TimestampMicrosecondType>()
                                .clone()
                                .with_timezone(tz.clone()),
                        )
                    }
                    t => convert(t)?,
                }
            }
        };
        columns.push(array);
    }
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| ConnectorError::internal(format!("batch: {e}")))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array};
    use arrow::datatypes::Int64Type;

    use super::*;

    #[test]
    fn text_values_become_typed_columns() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("price", DataType::Decimal128(38, 10), true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("ok", DataType::Boolean, true),
            Field::new("raw", DataType::Binary, true),
            Field::new("f", DataType::Float64, true),
        ]));
        let t = |s: &str| ChangeValue::Text(s.into());
        let rows = vec![
            vec![
                t("-9223372036854775808"),
                t("1234567890123456789012345678.0123456789"),
                t("2024-02-29T23:59:59.123456Z"),
                t("true"),
                ChangeValue::Bytes(vec![0, 255]),
                t("NaN"),
            ],
            vec![
                ChangeValue::Null,
                ChangeValue::Null,
                t("1999-12-31 00:00:00"),
                t("false"),
                ChangeValue::Null,
                t("-1.5"),
            ],
        ];
        let b = to_batch(&schema, &rows).unwrap();
        let ids: &Int64Array = b.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.value(0), i64::MIN);
        assert!(ids.is_null(1));
        let d = b
            .column(1)
            .as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(d.value(0), 12345678901234567890123456780123456789);
        let ts = b
            .column(2)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_709_251_199_123_456);
        assert_eq!(ts.value(1), 946_598_400_000_000);
        assert!(b.column(3).as_boolean().value(0));
        assert_eq!(b.column(4).as_binary::<i32>().value(0), &[0, 255]);
        let f = b.column(5).as_primitive::<arrow::datatypes::Float64Type>();
        assert!(f.value(0).is_nan());
    }

    #[test]
    fn a_value_that_does_not_convert_names_its_column() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
        let e = to_batch(&schema, &[vec![ChangeValue::Text("x1".into())]]).unwrap_err();
        assert!(e.message.contains("column n"), "{}", e.message);
    }
}
