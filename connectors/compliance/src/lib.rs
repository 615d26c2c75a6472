//! The compliance suite every connector's tests call with its own real server (Vector's
//! `run_and_assert_source_compliance` is the model): what a connector must do whatever it talks
//! to.
//!
//! A connector's test implements [`Subject`] (how to make an empty table or queue for the
//! standard columns, how to read it back, which configurations are wrong) and calls
//! [`run_and_assert_compliance`]. The suite checks:
//! - **round trip**: the standard rows, written by the connector's writer in two batches inside
//!   one commit, read back by its reader equal to what was written: NULLs, unicode, quotes,
//!   big integers, decimals (38, 10), timestamps with zones (before 1970, microseconds),
//!   booleans, binary (zero bytes);
//! - **empty source**: reading an empty table or queue ends at once with 0 rows;
//! - **rollback** (transactional targets): an aborted write leaves nothing;
//! - **cancel**: a reader on a source that keeps it busy returns `Cancelled` within 2 s, and the
//!   connector serves the next read at once;
//! - **bad configuration**: each wrong `content` is a user error starting with its field.
//!
//! [`SqlSubject`] and [`MessageSubject`] are the subjects of SQL databases and of message
//! connectors; [`helpers`] holds what connectors' own tests share beyond the suite.

pub mod helpers;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use fdi_connector::{
    ColumnInfo, Connector, ConnectorError, ConnectorFactory, ErrorKind, MessageField, ReadSpec,
};

pub use helpers::*;

/// The standard columns: what a target made by [`Subject::new_target`] must hold.
pub const STANDARD_COLUMNS: &[&str] = &["id", "name", "amount", "at", "ok", "data"];

/// What a connector's test tells the suite.
#[async_trait]
pub trait Subject: Send + Sync {
    fn factory(&self) -> Arc<dyn ConnectorFactory>;
    /// A working `content`.
    fn content(&self) -> serde_json::Value;
    /// A new, empty table or queue able to hold [`STANDARD_COLUMNS`] (`id` a 64-bit integer
    /// key, `name` text, `amount` decimal(38, 10), `at` timestamp with zone, `ok` boolean,
    /// `data` binary); its name.
    async fn new_target(&self) -> String;
    /// The columns of `target` as its writer takes them, in [`STANDARD_COLUMNS`] order.
    async fn write_columns(&self, connector: &Arc<dyn Connector>, target: &str) -> Vec<ColumnInfo>;
    /// How to read `target` in full, in [`STANDARD_COLUMNS`] order.
    fn read_spec(&self, target: &str, batch_rows: usize) -> ReadSpec;
    /// A read that keeps its reader busy for many seconds (a following queue, a slow query).
    async fn endless_read(&self) -> ReadSpec;
    /// Wrong contents and the field each error must start with (`content.port`).
    fn bad_contents(&self) -> Vec<(serde_json::Value, &'static str)>;
    /// Whether an aborted write leaves nothing behind (a database: yes; a queue: no).
    fn transactional(&self) -> bool;
    /// Columns this connector documents as not kept exactly (skipped by the round trip).
    fn lossy_columns(&self) -> &'static [&'static str] {
        &[]
    }
}

/// Run every check; panics with what failed.
pub async fn run_and_assert_compliance(s: &dyn Subject) {
    let connector = s
        .factory()
        .create(&s.content())
        .expect("the subject's content");
    round_trip(s, &connector).await;
    empty_source(s, &connector).await;
    if s.transactional() {
        rollback(s, &connector).await;
    }
    cancel(s, &connector).await;
    bad_configuration(s);
}

fn standard_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(38, 10), true),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
            true,
        ),
        Field::new("ok", DataType::Boolean, true),
        Field::new("data", DataType::Binary, true),
    ]))
}

/// The standard rows: edge values first, then ordinary rows up to `n`.
pub fn standard_rows(n: usize) -> RecordBatch {
    let names: Vec<Option<String>> = [
        Some("né 漢字 😀".to_string()),
        Some("quote ' double \" back ` slash \\".to_string()),
        Some(String::new()),
        None,
        Some("line\nbreak\ttab".to_string()),
    ]
    .into_iter()
    .chain((5..n).map(|i| Some(format!("row {i}"))))
    .take(n)
    .collect();
    let ids: Vec<i64> = [
        9_007_199_254_740_993i64,
        -9_007_199_254_740_993,
        0,
        1,
        i64::MAX / 2,
    ]
    .into_iter()
    .chain((5..n as i64).map(|i| i * 7))
    .take(n)
    .collect();
    let amounts: Vec<Option<i128>> = [
        Some(123_456_789_012_345_678_900_123_456_789i128),
        Some(-1),
        None,
        Some(0),
        Some(10_000_000_000),
    ]
    .into_iter()
    .chain((5..n as i128).map(|i| Some(i * 1_250_000_000)))
    .take(n)
    .collect();
    let ats: Vec<Option<i64>> = [
        Some(-86_400_000_001i64),
        Some(1_709_251_200_123_456),
        None,
        Some(0),
        Some(4_102_444_800_000_000),
    ]
    .into_iter()
    .chain((5..n as i64).map(|i| Some(1_700_000_000_000_000 + i * 1_000_001)))
    .take(n)
    .collect();
    let oks: Vec<Option<bool>> = (0..n)
        .map(|i| if i == 3 { None } else { Some(i % 2 == 0) })
        .collect();
    let data: Vec<Option<Vec<u8>>> = [Some(vec![0u8, 255, 0, 10]), Some(Vec::new()), None]
        .into_iter()
        .chain((3..n).map(|i| Some(format!("bytes {i}").into_bytes())))
        .take(n)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(
            Decimal128Array::from(amounts)
                .with_precision_and_scale(38, 10)
                .unwrap(),
        ),
        Arc::new(TimestampMicrosecondArray::from(ats).with_timezone("+00:00")),
        Arc::new(BooleanArray::from(oks)),
        Arc::new(BinaryArray::from(
            data.iter().map(|d| d.as_deref()).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(standard_schema(), columns).unwrap()
}

/// `batch` with each column cast to `types` (strict: a value that does not fit fails).
fn cast_to(batch: &RecordBatch, types: &[DataType]) -> RecordBatch {
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .zip(types)
        .map(|(f, t)| Field::new(f.name(), t.clone(), true))
        .collect();
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(types)
        .map(|(c, t)| {
            cast_with_options(c, t, &strict)
                .unwrap_or_else(|e| panic!("cast {:?} -> {t:?}: {e}", c.data_type()))
        })
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// Every row of a full read of `spec`, acknowledged.
async fn read_acked(connector: &Arc<dyn Connector>, spec: ReadSpec) -> RecordBatch {
    let read = read_all(connector, spec).await;
    read.ack_all().await;
    read.rows()
}

async fn round_trip(s: &dyn Subject, connector: &Arc<dyn Connector>) {
    let target = s.new_target().await;
    let columns = s.write_columns(connector, &target).await;
    assert_eq!(
        columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        STANDARD_COLUMNS,
        "write_columns must list the standard columns in order"
    );
    let rows = standard_rows(300);
    let types: Vec<DataType> = columns.iter().map(|c| c.arrow_type.clone()).collect();
    let to_write = cast_to(&rows, &types);
    let parts = [to_write.slice(0, 120), to_write.slice(120, 180)];
    let written = write_all(connector, insert_into(&target, columns), parts, true).await;
    assert_eq!(written.rows, 300);

    // At most 64 rows a batch (read_all checks it).
    let got = read_acked(connector, s.read_spec(&target, 64)).await;
    assert_eq!(got.num_rows(), 300, "every row comes back");
    // Compare in id order (a table need not keep insertion order).
    let order = arrow::compute::sort_to_indices(
        &cast_with_options(got.column(0), &DataType::Int64, &CastOptions::default()).unwrap(),
        None,
        None,
    )
    .unwrap();
    let got = arrow::compute::take_record_batch(&got, &order).unwrap();
    let want_order = arrow::compute::sort_to_indices(rows.column(0), None, None).unwrap();
    let want = arrow::compute::take_record_batch(&rows, &want_order).unwrap();
    for (i, name) in STANDARD_COLUMNS.iter().enumerate() {
        if s.lossy_columns().contains(name) {
            continue;
        }
        let expected = want.column(i);
        let back = cast_with_options(got.column(i), expected.data_type(), &CastOptions::default())
            .unwrap_or_else(|e| {
                panic!(
                    "column {name}: read back as {:?}: {e}",
                    got.column(i).data_type()
                )
            });
        if &back != expected {
            let first = (0..expected.len())
                .find(|&r| back.slice(r, 1) != expected.slice(r, 1))
                .unwrap_or(0);
            panic!(
                "column {name} differs after the round trip; first at row {first}: wrote {:?}, read {:?}",
                expected.slice(first, 1),
                back.slice(first, 1)
            );
        }
    }
}

async fn empty_source(s: &dyn Subject, connector: &Arc<dyn Connector>) {
    let target = s.new_target().await;
    let t = Instant::now();
    let got = read_acked(connector, s.read_spec(&target, 64)).await;
    assert_eq!(got.num_rows(), 0);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "an empty source ends at once"
    );
}

async fn rollback(s: &dyn Subject, connector: &Arc<dyn Connector>) {
    let target = s.new_target().await;
    let columns = s.write_columns(connector, &target).await;
    let types: Vec<DataType> = columns.iter().map(|c| c.arrow_type.clone()).collect();
    let rows = cast_to(&standard_rows(50), &types);
    write_all(connector, insert_into(&target, columns), [rows], false).await;
    let got = read_acked(connector, s.read_spec(&target, 64)).await;
    assert_eq!(got.num_rows(), 0, "an aborted write leaves nothing");
}

async fn cancel(s: &dyn Subject, connector: &Arc<dyn Connector>) {
    let mut reader = Running::start(connector, s.endless_read().await).await;
    reader.discard_batches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    reader.assert_cancels_within_2s().await;
    // The connector serves the next read at once (nothing left draining the cancelled one).
    let target = s.new_target().await;
    let t = Instant::now();
    tokio::time::timeout(
        Duration::from_secs(5),
        read_acked(connector, s.read_spec(&target, 64)),
    )
    .await
    .expect("a read right after a cancelled one");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
}

/// Why `factory` refuses `content` (by `validate`, else by `create`): a user error.
pub fn refusal(factory: &dyn ConnectorFactory, content: &serde_json::Value) -> ConnectorError {
    let e = factory
        .validate(content)
        .err()
        .or_else(|| factory.create(content).err())
        .unwrap_or_else(|| panic!("{content} is accepted"));
    assert_eq!(e.kind, ErrorKind::User, "{content}: {}", e.message);
    e
}

fn bad_configuration(s: &dyn Subject) {
    let f = s.factory();
    for (content, field) in s.bad_contents() {
        let e = refusal(f.as_ref(), &content);
        assert!(
            e.message.starts_with(field),
            "{content}: the error starts with {field}: {}",
            e.message
        );
    }
}

/// Runs one SQL statement on the subject's database through the test's own connection.
pub type Exec = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A SQL database as a [`Subject`]: tables made by `create_table`, read back whole.
pub struct SqlSubject {
    pub factory: Arc<dyn ConnectorFactory>,
    pub content: serde_json::Value,
    pub exec: Exec,
    /// `CREATE TABLE {name} (...)` holding [`STANDARD_COLUMNS`] in this database's types.
    pub create_table: &'static str,
    /// A query that streams rows for many seconds.
    pub endless_query: &'static str,
    pub bad_contents: Vec<(serde_json::Value, &'static str)>,
}

#[async_trait]
impl Subject for SqlSubject {
    fn factory(&self) -> Arc<dyn ConnectorFactory> {
        self.factory.clone()
    }

    fn content(&self) -> serde_json::Value {
        self.content.clone()
    }

    async fn new_target(&self) -> String {
        let name = format!("fdi_compliance_{}", unique_suffix());
        (self.exec)(self.create_table.replace("{name}", &name)).await;
        name
    }

    async fn write_columns(&self, c: &Arc<dyn Connector>, target: &str) -> Vec<ColumnInfo> {
        c.columns(target)
            .await
            .expect("discover the target's columns")
    }

    fn read_spec(&self, target: &str, batch_rows: usize) -> ReadSpec {
        table_spec(target, STANDARD_COLUMNS, batch_rows)
    }

    async fn endless_read(&self) -> ReadSpec {
        ReadSpec {
            query: fdi_connector::SourceQuery::Sql(self.endless_query.into()),
            batch_rows: 1000,
        }
    }

    fn bad_contents(&self) -> Vec<(serde_json::Value, &'static str)> {
        self.bad_contents.clone()
    }

    fn transactional(&self) -> bool {
        true
    }
}

/// Makes a new, empty queue, topic or stream; its name.
pub type NewSource = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = String> + Send>> + Send + Sync>;

/// A message connector (a queue, a topic, a stream) as a [`Subject`]: the standard columns are
/// the messages' fields ([`STANDARD_FIELDS`]), each read is in a reader place (consumer group)
/// of its own, nothing is transactional.
pub struct MessageSubject {
    pub factory: Arc<dyn ConnectorFactory>,
    pub content: serde_json::Value,
    pub new_source: NewSource,
    pub bad_contents: Vec<(serde_json::Value, &'static str)>,
    /// Columns the connector documents as not kept exactly (binary, for JSON messages).
    pub lossy_columns: &'static [&'static str],
    /// The sources made so far (for the test to delete).
    pub made: Mutex<Vec<String>>,
}

#[async_trait]
impl Subject for MessageSubject {
    fn factory(&self) -> Arc<dyn ConnectorFactory> {
        self.factory.clone()
    }

    fn content(&self) -> serde_json::Value {
        self.content.clone()
    }

    async fn new_target(&self) -> String {
        let name = (self.new_source)().await;
        self.made.lock().unwrap().push(name.clone());
        name
    }

    async fn write_columns(&self, _c: &Arc<dyn Connector>, _target: &str) -> Vec<ColumnInfo> {
        standard_fields().iter().map(MessageField::column).collect()
    }

    fn read_spec(&self, target: &str, batch_rows: usize) -> ReadSpec {
        let reader = fdi_types::new_id();
        message_spec(target, standard_fields(), false, batch_rows, &reader)
    }

    async fn endless_read(&self) -> ReadSpec {
        let source = self.new_target().await;
        message_spec(&source, standard_fields(), true, 100, &fdi_types::new_id())
    }

    fn bad_contents(&self) -> Vec<(serde_json::Value, &'static str)> {
        self.bad_contents.clone()
    }

    fn transactional(&self) -> bool {
        false
    }

    fn lossy_columns(&self) -> &'static [&'static str] {
        self.lossy_columns
    }
}

/// `prefix` and a suffix unique across test processes: a name for a test's own table.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", unique_suffix())
}

/// A table name suffix unique across test processes.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
