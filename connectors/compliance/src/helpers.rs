//! What connectors' own tests share beyond the suite: reading everything a reader sends
//! ([`read_all`]), a reader running in a task of its own to follow and cancel ([`Running`]),
//! writing batches in one transaction ([`write_all`]), the rows, fields and specs tests build,
//! and the filter cases every SQL source must answer ([`assert_filters_and_order`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use fdi_connector::{
    Acknowledger, ColumnInfo, Connector, ErrorKind, MessageField, OrderBy, ReadSpec, SourceBatch,
    SourcePosition, SourceQuery, WriteMode, WriteSpec, WriteStats,
};
use fdi_types::{WhereCondition, WhereOp};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Everything one read sent.
pub struct Read {
    /// The reader's schema (known before the first row).
    pub schema: SchemaRef,
    pub batches: Vec<SourceBatch>,
    /// The reader's acknowledger; nothing is acknowledged yet.
    pub ack: Option<Arc<dyn Acknowledger>>,
}

impl Read {
    /// Every row, in the order read.
    pub fn rows(&self) -> RecordBatch {
        concat_batches(&self.schema, self.batches.iter().map(|b| &b.rows)).unwrap()
    }

    /// The position of the last batch that carries one.
    pub fn last_position(&self) -> Option<&SourcePosition> {
        self.batches.iter().rev().find_map(|b| b.position.as_ref())
    }

    /// Acknowledge everything read (as the engine does after the target committed it).
    pub async fn ack_all(&self) {
        if let (Some(ack), Some(p)) = (&self.ack, self.last_position()) {
            ack.ack(p).await.expect("acknowledge what was read");
        }
    }

    /// The rows of each batch, in the order sent.
    pub fn batch_sizes(&self) -> Vec<usize> {
        self.batches.iter().map(|b| b.rows.num_rows()).collect()
    }

    /// Acknowledge batches `0..=last` (as after a commit that covered them only).
    pub async fn ack_through(&self, last: usize) {
        let ack = self.ack.as_ref().expect("a source with positions");
        let p = self.batches[last].position.as_ref().expect("a position");
        ack.ack(p).await.expect("acknowledge");
    }
}

/// Read `spec` to its end, the batches taken as they come. Checks that the reader's count is
/// the rows it sent, in batches of at most `batch_rows`.
pub async fn read_all(connector: &Arc<dyn Connector>, spec: ReadSpec) -> Read {
    let batch_rows = spec.batch_rows.max(1);
    let mut reader = connector.reader(spec).await.expect("open the reader");
    let schema = reader.schema();
    let ack = reader.acknowledger();
    let (tx, mut rx) = mpsc::channel::<SourceBatch>(4);
    let collect = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(b) = rx.recv().await {
            v.push(b);
        }
        v
    });
    let n = reader
        .read(tx, CancellationToken::new())
        .await
        .expect("read");
    let batches = collect.await.unwrap();
    assert_eq!(
        batches
            .iter()
            .map(|b| b.rows.num_rows() as u64)
            .sum::<u64>(),
        n,
        "the reader's count is the rows it sent"
    );
    assert!(
        batches.iter().all(|b| b.rows.num_rows() <= batch_rows),
        "batches of at most batch_rows"
    );
    Read {
        schema,
        batches,
        ack,
    }
}

/// Every row of `query`, read in batches of `batch_rows`.
pub async fn read_rows(
    connector: &Arc<dyn Connector>,
    query: SourceQuery,
    batch_rows: usize,
) -> RecordBatch {
    read_all(connector, ReadSpec { query, batch_rows })
        .await
        .rows()
}

/// A reader reading in a task of its own (a following read), as the engine runs one.
pub struct Running {
    /// What it sent so far.
    pub batches: mpsc::Receiver<SourceBatch>,
    pub ack: Option<Arc<dyn Acknowledger>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<fdi_connector::Result<u64>>,
}

impl Running {
    pub async fn start(connector: &Arc<dyn Connector>, spec: ReadSpec) -> Self {
        let mut reader = connector.reader(spec).await.expect("open the reader");
        let ack = reader.acknowledger();
        let (tx, batches) = mpsc::channel::<SourceBatch>(16);
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let task = tokio::spawn(async move { reader.read(tx, token).await });
        Self {
            batches,
            ack,
            cancel,
            task,
        }
    }

    /// The next batch, which must come within `within`.
    pub async fn next(&mut self, within: Duration) -> SourceBatch {
        tokio::time::timeout(within, self.batches.recv())
            .await
            .unwrap_or_else(|_| panic!("a batch within {within:?}"))
            .expect("the reader is still reading")
    }

    /// Take and drop every batch from now on: the reader stays busy, never held up by the
    /// channel.
    pub fn discard_batches(&mut self) {
        let (_, closed) = mpsc::channel(1);
        let mut rx = std::mem::replace(&mut self.batches, closed);
        tokio::spawn(async move { while rx.recv().await.is_some() {} });
    }

    /// Cancel the read: it must end `Cancelled` within 2 s.
    pub async fn assert_cancels_within_2s(self) {
        let t = Instant::now();
        self.cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("the reader returns within 2 s of cancel")
            .unwrap();
        let e = r.expect_err("a cancelled read is an error");
        assert_eq!(e.kind, ErrorKind::Cancelled, "{}", e.message);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
    }
}

/// `Insert` into `table` of `columns` (empty: a schemaless target takes the batches' own),
/// the table not cleared.
pub fn insert_into(table: &str, columns: Vec<ColumnInfo>) -> WriteSpec {
    WriteSpec {
        table: table.into(),
        columns,
        mode: WriteMode::Insert,
        clear_table: false,
    }
}

/// Write `batches` through one writer of `spec` in one transaction, each write taking every row
/// of its batch; then commit, or abort when `commit` is false. The writes' stats, summed.
pub async fn write_all(
    connector: &Arc<dyn Connector>,
    spec: WriteSpec,
    batches: impl IntoIterator<Item = RecordBatch>,
    commit: bool,
) -> WriteStats {
    let mut w = connector.writer(spec).await.expect("open the writer");
    w.begin().await.expect("begin");
    let mut total = WriteStats::default();
    for b in batches {
        let s = w.write(b.clone()).await.expect("write");
        assert_eq!(s.rows, b.num_rows() as u64, "every row written: {s:?}");
        total.rows += s.rows;
        total.bytes += s.bytes;
        total.dirty_rows += s.dirty_rows;
    }
    if commit {
        w.commit().await.expect("commit");
    } else {
        w.abort().await.expect("abort");
    }
    total
}

/// `batch` into `table` in writes of 64 rows through [`write_all`], each column the one
/// discovery reports under the batch's field name.
pub async fn write_table(
    connector: &Arc<dyn Connector>,
    table: &str,
    batch: &RecordBatch,
    mode: WriteMode,
    clear_table: bool,
    commit: bool,
) -> WriteStats {
    let all = connector
        .columns(table)
        .await
        .expect("discover the columns");
    let columns = batch
        .schema()
        .fields()
        .iter()
        .map(|f| all.iter().find(|c| c.name == *f.name()).unwrap().clone())
        .collect();
    let spec = WriteSpec {
        table: table.into(),
        columns,
        mode,
        clear_table,
    };
    let slices = (0..batch.num_rows())
        .step_by(64)
        .map(|start| batch.slice(start, 64.min(batch.num_rows() - start)));
    write_all(connector, spec, slices, commit).await
}

/// `table` holds `rows` (in `id` order, of every column). A write that clears the table and
/// inserts its first 10 rows, then aborts, leaves it as it was (the clear is in the write's
/// transaction); an upsert of those rows on `id` (`part_update`) changes nothing either.
pub async fn assert_abort_and_upsert_keep(
    connector: &Arc<dyn Connector>,
    table: &str,
    rows: &RecordBatch,
) {
    let first = rows.slice(0, 10.min(rows.num_rows()));
    write_table(connector, table, &first, WriteMode::Insert, true, false).await;
    let now = read_rows(connector, ordered_by_id(table), 1000).await;
    assert!(
        &now == rows,
        "an aborted clear + insert left the table as it was"
    );
    let upsert = WriteMode::Upsert {
        keys: vec!["id".into()],
        part_update: true,
    };
    write_table(connector, table, &first, upsert, false, true).await;
    let now = read_rows(connector, ordered_by_id(table), 1000).await;
    assert!(&now == rows, "an upsert of the same rows changes nothing");
}

/// Message fields from `(name, type, path)` triples, as a task's `sourceMetaData` declares them.
pub fn message_fields(spec: &[(&str, &str, &str)]) -> Vec<MessageField> {
    spec.iter()
        .enumerate()
        .map(|(i, (name, field_type, path))| {
            MessageField::from_meta(
                i,
                &fdi_types::MetaField {
                    name: (*name).into(),
                    field_type: Some((*field_type).into()),
                    path: Some((*path).into()),
                    format: None,
                },
            )
            .expect("a valid field")
        })
        .collect()
}

/// The standard columns ([`crate::STANDARD_COLUMNS`]) as message fields.
pub const STANDARD_FIELDS: &[(&str, &str, &str)] = &[
    ("id", "Long", ""),
    ("name", "String", ""),
    ("amount", "Decimal", ""),
    ("at", "Timestamp", ""),
    ("ok", "Boolean", ""),
    ("data", "Binary", ""),
];

/// [`STANDARD_FIELDS`] as a task declares them.
pub fn standard_fields() -> Vec<MessageField> {
    message_fields(STANDARD_FIELDS)
}

/// Read the messages of `source` into `fields`, in the place of reader `reader_name`.
pub fn message_spec(
    source: &str,
    fields: Vec<MessageField>,
    follow: bool,
    batch_rows: usize,
    reader_name: &str,
) -> ReadSpec {
    ReadSpec {
        query: SourceQuery::Messages {
            source: source.into(),
            fields,
            follow,
            reader_name: reader_name.into(),
        },
        batch_rows,
    }
}

/// Read `columns` of `table` (none: all), unfiltered, in the source's order.
pub fn table_spec(table: &str, columns: &[&str], batch_rows: usize) -> ReadSpec {
    ReadSpec {
        query: SourceQuery::Table {
            table: table.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            filters: Vec::new(),
            order_by: None,
        },
        batch_rows,
    }
}

/// Every column of `table`, ordered by `id`.
pub fn ordered_by_id(table: &str) -> SourceQuery {
    SourceQuery::Table {
        table: table.into(),
        columns: Vec::new(),
        filters: Vec::new(),
        order_by: Some(OrderBy {
            column: "id".into(),
            descending: false,
        }),
    }
}

/// Columns as a writer takes them, of the fields of `schema`: those named in `keys` are the
/// primary key (and not nullable).
pub fn columns_of(schema: &Schema, keys: &[&str]) -> Vec<ColumnInfo> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let key = keys.contains(&f.name().as_str());
            ColumnInfo {
                name: f.name().clone(),
                native_type: String::new(),
                length: None,
                decimal_digits: None,
                nullable: !key,
                primary: key,
                unique: key,
                arrow_type: f.data_type().clone(),
            }
        })
        .collect()
}

/// The `name` of row `id` of [`numbered_rows`]: NULL where `id % 3 == 0`.
pub fn numbered_name(id: i64) -> Option<String> {
    (id % 3 != 0).then(|| format!("név {id} 漢字 \"q\""))
}

/// The `amount` of row `id` of [`numbered_rows`] (decimal(38, 10), as its unscaled integer):
/// 12345678901234567890 plus `id` in its last place.
pub fn numbered_amount(id: i64) -> i128 {
    123_456_789_012_345_678_900_000_000_000 + i128::from(id)
}

/// The `at` of row `id` of [`numbered_rows`] (µs): 2024-03-01T00:00:00Z plus `id` × 1.000001 s.
pub fn numbered_at(id: i64) -> i64 {
    1_709_251_200_000_000 + id * 1_000_001
}

/// Rows `from..to` with easily told values: `id` (Int64), `name` ([`numbered_name`]: unicode,
/// quotes, NULLs), `amount` ([`numbered_amount`]), `at` ([`numbered_at`], zone `UTC`), `ok`
/// (`id` is even).
pub fn numbered_rows(from: i64, to: i64) -> RecordBatch {
    let ids: Vec<i64> = (from..to).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.clone())),
        Arc::new(StringArray::from(
            ids.iter().map(|i| numbered_name(*i)).collect::<Vec<_>>(),
        )),
        Arc::new(
            Decimal128Array::from(ids.iter().map(|i| numbered_amount(*i)).collect::<Vec<_>>())
                .with_precision_and_scale(38, 10)
                .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(
                ids.iter().map(|i| numbered_at(*i)).collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(BooleanArray::from(
            ids.iter().map(|i| Some(i % 2 == 0)).collect::<Vec<_>>(),
        )),
    ];
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(38, 10), true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("ok", DataType::Boolean, true),
    ]);
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// The values of column `id` (any integer type, no NULLs) in row order.
pub fn ids(rows: &RecordBatch) -> Vec<i64> {
    let id = rows.column_by_name("id").expect("an id column");
    let id = cast(id, &DataType::Int64).unwrap();
    id.as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.expect("an id"))
        .collect()
}

/// The values of text column `col` in row order.
pub fn strings(rows: &RecordBatch, col: usize) -> Vec<Option<String>> {
    let a = rows.column(col).as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_string()))
        .collect()
}

fn condition(op: WhereOp, field: &str, value: Option<&str>) -> WhereCondition {
    WhereCondition {
        andor: None,
        field_name: field.into(),
        field_type: None,
        op,
        value: value.map(Into::into),
        min_value: None,
        max_value: None,
    }
}

fn joined(andor: &str, c: WhereCondition) -> WhereCondition {
    WhereCondition {
        andor: Some(andor.into()),
        ..c
    }
}

fn between(op: WhereOp, field: &str, min: &str, max: &str) -> WhereCondition {
    WhereCondition {
        min_value: Some(min.into()),
        max_value: Some(max.into()),
        ..condition(op, field, None)
    }
}

/// Checks a SQL source's filters and order on `table`: ids 1 to 10, column `text` NULL where
/// `id % 3 == 0`, else `{prefix}{id}`. Every operator (joined by `and` and by `or`; quotes in
/// a value are data, not SQL), ascending and descending order with the columns in the order
/// asked, and a missing column refused naming it.
pub async fn assert_filters_and_order(
    c: &Arc<dyn Connector>,
    table: &str,
    text: &str,
    prefix: &str,
) {
    use WhereOp::*;
    let id = |op, v| condition(op, "id", Some(v));
    let cases: Vec<(Vec<WhereCondition>, Vec<i64>)> = vec![
        (vec![id(Equal, "4")], vec![4]),
        (
            vec![id(NotEqual, "4"), joined("and", id(Less, "4"))],
            vec![1, 2, 3],
        ),
        (vec![id(LessEqual, "2")], vec![1, 2]),
        (vec![id(More, "8")], vec![9, 10]),
        (
            vec![
                id(MoreEqual, "9"),
                joined("or", condition(Equal, text, Some(&format!("{prefix}1")))),
            ],
            vec![1, 9, 10],
        ),
        (vec![condition(IsNull, text, None)], vec![3, 6, 9]),
        (
            vec![condition(NotNull, text, None), joined("and", id(More, "6"))],
            vec![7, 8, 10],
        ),
        (vec![between(Between, "id", "3", "5")], vec![3, 4, 5]),
        (vec![between(NotBetween, "id", "2", "9")], vec![1, 10]),
        (vec![id(InList, "2, 5,7")], vec![2, 5, 7]),
        (vec![id(NotInList, "1,2,3,4,5,6,7")], vec![8, 9, 10]),
        (
            vec![condition(
                Equal,
                text,
                Some(&format!("{prefix}1' OR '1'='1")),
            )],
            vec![],
        ),
    ];
    let query = |columns: &[&str], filters: Vec<WhereCondition>, descending| SourceQuery::Table {
        table: table.into(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        filters,
        order_by: Some(OrderBy {
            column: "id".into(),
            descending,
        }),
    };
    for (filters, expected) in cases {
        let got = read_rows(c, query(&["id"], filters.clone(), false), 4).await;
        assert_eq!(ids(&got), expected, "{filters:?}");
    }
    let b = read_rows(c, query(&[text, "id"], Vec::new(), true), 3).await;
    assert_eq!(b.schema().field(0).name(), text);
    assert_eq!(ids(&b), (1..=10).rev().collect::<Vec<_>>());
    let e = c
        .reader(table_spec(table, &["nope"], 10))
        .await
        .err()
        .expect("missing column refused");
    assert!(e.message.contains("nope"), "{}", e.message);
}
