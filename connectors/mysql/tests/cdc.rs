//! The binlog change log against a real MariaDB with ROW binlog (`scripts/services.sh up
//! mysql-cdc`; `FDI_MYSQL_CDC`, default `mysql://root@127.0.0.1:3307/test`): snapshot, streamed
//! transactions with every value kind, a change during the copy, resume, position_at, check,
//! schema change, heartbeats and cancel.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fdi_connector::change::{
    ChangeEvent, ChangeOp, ChangeSpec, ChangeTable, ChangeTransaction, ChangeValue, TableId,
};
use fdi_connector::{Connector, ConnectorFactory, ErrorKind, Result, SourcePosition};
use fdi_connector_compliance::unique_name;
use mysql_async::prelude::Queryable;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn url() -> String {
    std::env::var("FDI_MYSQL_CDC").unwrap_or_else(|_| "mysql://root@127.0.0.1:3307/test".into())
}

fn connector_at(url: &str) -> Arc<dyn Connector> {
    fdi_connector_mysql::Factory
        .create(&json!({ "url": url }))
        .unwrap()
}

fn connector() -> Arc<dyn Connector> {
    connector_at(&url())
}

/// The test CA and client certificate `scripts/services.sh up mysql-cdc` made
/// (`FDI_MYSQL_CDC_TLS`).
fn tls_dir() -> String {
    std::env::var("FDI_MYSQL_CDC_TLS")
        .unwrap_or_else(|_| "/var/tmp/fdi-services/mysql-cdc-tls".into())
}

async fn conn() -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url()).unwrap())
        .prefer_socket(false);
    let mut c = mysql_async::Conn::new(opts).await.unwrap();
    c.query_drop("SET time_zone = '+00:00'").await.unwrap();
    c
}

async fn exec(sql: &str) {
    let mut c = conn().await;
    c.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = c.disconnect().await;
}

/// Statements in one transaction.
async fn tx(statements: &[&str]) {
    let mut c = conn().await;
    c.query_drop("START TRANSACTION").await.unwrap();
    for s in statements {
        c.query_drop(*s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    c.query_drop("COMMIT").await.unwrap();
    let _ = c.disconnect().await;
}

fn spec(tables: &[&str], resume: Option<SourcePosition>, batch: usize) -> ChangeSpec {
    ChangeSpec {
        reader_name: unique_name("r"),
        tables: tables.iter().map(|t| TableId::new("test", *t)).collect(),
        resume,
        server_id: None,
        snapshot_batch_rows: batch,
    }
}

fn t(s: &str) -> ChangeValue {
    ChangeValue::Text(s.into())
}

fn row(values: &[&str]) -> Vec<ChangeValue> {
    values.iter().map(|v| t(v)).collect()
}

const NULL: ChangeValue = ChangeValue::Null;

/// A source running in a task, its events in a channel.
struct Running {
    rx: mpsc::Receiver<ChangeEvent>,
    cancel: CancellationToken,
    task: JoinHandle<Result<()>>,
}

impl Running {
    async fn start(spec: ChangeSpec, capacity: usize) -> Running {
        Self::start_on(connector(), spec, capacity).await
    }

    async fn start_on(c: Arc<dyn Connector>, spec: ChangeSpec, capacity: usize) -> Running {
        let log = c.change_log().expect("MySQL has a change log");
        let mut source = log.open(spec).await.unwrap();
        source
            .acknowledger()
            .ack(&SourcePosition(json!({})))
            .await
            .unwrap();
        let (tx, rx) = mpsc::channel(capacity);
        let cancel = CancellationToken::new();
        let token = cancel.clone();
        let task = tokio::spawn(async move { source.run(tx, token).await });
        Running { rx, cancel, task }
    }

    async fn next(&mut self) -> ChangeEvent {
        match tokio::time::timeout(Duration::from_secs(30), self.rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("source ended: {:?}", (&mut self.task).await),
            Err(_) => panic!("no change event within 30 s"),
        }
    }

    /// The copy: rows per table (sorted), the tables as described, and the position after it.
    async fn snapshot(
        &mut self,
    ) -> (
        BTreeMap<String, Vec<Vec<ChangeValue>>>,
        BTreeMap<String, Arc<ChangeTable>>,
        SourcePosition,
    ) {
        let mut rows: BTreeMap<String, Vec<Vec<ChangeValue>>> = BTreeMap::new();
        let mut tables = BTreeMap::new();
        loop {
            match self.next().await {
                ChangeEvent::SnapshotRows { table, rows: r } => {
                    rows.entry(table.id.name.clone()).or_default().extend(r);
                    tables.insert(table.id.name.clone(), table);
                }
                ChangeEvent::SnapshotDone { position } => {
                    for r in rows.values_mut() {
                        r.sort_by_key(|v| format!("{v:?}"));
                    }
                    return (rows, tables, position);
                }
                other => panic!("unexpected during the copy: {other:?}"),
            }
        }
    }

    /// The next transaction, skipping heartbeats.
    async fn transaction(&mut self) -> ChangeTransaction {
        loop {
            match self.next().await {
                ChangeEvent::Transaction(t) => return t,
                ChangeEvent::Heartbeat { .. } => continue,
                other => panic!("unexpected event: {other:?}"),
            }
        }
    }

    /// Cancel; the run must end with Cancelled within 2 s.
    async fn stop(self) {
        let Running { rx, cancel, task } = self;
        let started = Instant::now();
        cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("run ends within 2 s of the cancel")
            .unwrap();
        assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(rx);
    }
}

/// A compact view of a change: op, before, after.
type Change = (ChangeOp, Option<Vec<ChangeValue>>, Option<Vec<ChangeValue>>);

fn changes(tx: &ChangeTransaction) -> Vec<(String, Change)> {
    tx.changes
        .iter()
        .map(|c| {
            (
                c.table.id.name.clone(),
                (c.op, c.before.clone(), c.after.clone()),
            )
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const TYPES_DDL: &str = "id int PRIMARY KEY,
    ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned, mi mediumint,
    miu mediumint unsigned, i int, iu int unsigned, bi bigint, biu bigint unsigned,
    dec38 decimal(38,10), dbl double, flt float, b1 bit(1), b10 bit(10), d date, dt datetime(6),
    ts timestamp(6) NULL DEFAULT NULL, tm time, vc varchar(50), tx text, bl blob,
    vb varbinary(20), j json, e enum('red','green','blue'), st set('a','b','c'), yr year,
    lat varchar(10) CHARACTER SET latin1";

const TYPES_COLUMNS: [&str; 29] = [
    "id", "ti", "tiu", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu", "dec38", "dbl", "flt",
    "b1", "b10", "d", "dt", "ts", "tm", "vc", "tx", "bl", "vb", "j", "e", "st", "yr", "lat",
];

fn types_max(id: i32) -> String {
    format!(
        "({id}, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
        9223372036854775807, 18446744073709551615, '1234567890123456789012345678.0123456789',
        1.5, 0.25, b'1', b'1000000001', '2024-02-29', '2024-01-02 03:04:05.123456',
        '2024-01-02 03:04:05.654321', '-838:59:59', 'héllo 世界 🎉', 'long text', x'00FF10',
        x'DEADBEEF', '{{\"a\": [1, 2]}}', 'green', 'a,c', 2024, 'café €')"
    )
}

fn types_max_values(id: &str) -> Vec<ChangeValue> {
    let mut v = row(&[
        id,
        "127",
        "255",
        "32767",
        "65535",
        "8388607",
        "16777215",
        "2147483647",
        "4294967295",
        "9223372036854775807",
        "18446744073709551615",
        "1234567890123456789012345678.0123456789",
        "1.5",
        "0.25",
        "1",
        "513",
        "2024-02-29",
        "2024-01-02 03:04:05.123456",
        "2024-01-02T03:04:05.654321Z",
        "-838:59:59",
        "héllo 世界 🎉",
        "long text",
    ]);
    v.push(ChangeValue::Bytes(vec![0x00, 0xFF, 0x10]));
    v.push(ChangeValue::Bytes(vec![0xDE, 0xAD, 0xBE, 0xEF]));
    v.extend(row(&["{\"a\": [1, 2]}", "green", "a,c", "2024", "café €"]));
    v
}

fn types_min(id: i32) -> String {
    format!(
        "({id}, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
        '-0.0000000001', -2.5e-300, -10000000000, b'0', b'0', '1000-01-01', '1000-01-01 00:00:00',
        '1970-01-01 00:00:01', '-00:00:01', '', '', x'', x'00', 'null', 'red', '', 1901, '')"
    )
}

fn types_min_values(id: &str) -> Vec<ChangeValue> {
    let mut v = row(&[
        id,
        "-128",
        "0",
        "-32768",
        "0",
        "-8388608",
        "0",
        "-2147483648",
        "0",
        "-9223372036854775808",
        "0",
        "-0.0000000001",
        "-2.5e-300",
        "-10000000000",
        "0",
        "0",
        "1000-01-01",
        "1000-01-01 00:00:00",
        "1970-01-01T00:00:01Z",
        "-00:00:01",
        "",
        "",
    ]);
    v.push(ChangeValue::Bytes(vec![]));
    v.push(ChangeValue::Bytes(vec![0]));
    v.extend(row(&["null", "red", "", "1901", ""]));
    v
}

fn types_null_values(id: &str) -> Vec<ChangeValue> {
    let mut v = vec![t(id)];
    v.extend(std::iter::repeat_n(NULL, TYPES_COLUMNS.len() - 1));
    v
}

#[tokio::test]
async fn snapshot_then_transactions_with_exact_values() {
    let k = unique_name("cdc_k");
    let ty = unique_name("cdc_types");
    let other = unique_name("cdc_other");
    exec(&format!(
        "CREATE TABLE {k} (a int, b varchar(10), v text, PRIMARY KEY (a, b)) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    exec(&format!(
        "CREATE TABLE {ty} ({TYPES_DDL}) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    exec(&format!("CREATE TABLE {other} (id int PRIMARY KEY)")).await;
    exec(&format!(
        "INSERT INTO {k} VALUES (1, 'x', 'one'), (1, 'y', 'two'), (2, 'x', 'three')"
    ))
    .await;
    exec(&format!(
        "INSERT INTO {ty} (id) VALUES (3); INSERT INTO {ty} VALUES {}, {}",
        types_max(1),
        types_min(2)
    ))
    .await;

    let mut run = Running::start(spec(&[&k, &ty], None, 2), 16).await;
    let (rows, tables, done) = run.snapshot().await;
    assert!(done.0["file"].as_str().unwrap().starts_with("mysql-bin."));
    assert!(done.0["pos"].as_u64().unwrap() > 4);
    assert!(
        done.0["gtid"].as_str().is_some(),
        "MariaDB positions carry the GTID: {done:?}"
    );

    // The composite key and the columns as information_schema has them.
    let kt = &tables[&k];
    let described: Vec<(&str, &str, bool)> = kt
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.native_type.as_str(), c.key))
        .collect();
    assert_eq!(
        described,
        [
            ("a", "int(11)", true),
            ("b", "varchar(10)", true),
            ("v", "text", false)
        ]
    );
    let tt = &tables[&ty];
    let names: Vec<&str> = tt.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, TYPES_COLUMNS);
    assert_eq!(tt.columns[10].native_type, "bigint(20) unsigned");
    assert_eq!(tt.columns[11].native_type, "decimal(38,10)");
    assert!(tt.columns[0].key && !tt.columns[1].key);

    assert_eq!(
        rows[&k],
        vec![
            row(&["1", "x", "one"]),
            row(&["1", "y", "two"]),
            row(&["2", "x", "three"])
        ]
    );
    let mut expected = vec![
        types_max_values("1"),
        types_min_values("2"),
        types_null_values("3"),
    ];
    expected.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(rows[&ty], expected);

    // Streamed: the same values through the binlog.
    let before = now_ms();
    tx(&[
        &format!("INSERT INTO {k} VALUES (3, 'z', 'four')"),
        &format!("UPDATE {k} SET v = 'ONE' WHERE a = 1 AND b = 'x'"),
    ])
    .await;
    tx(&[
        &format!("UPDATE {k} SET b = 'w' WHERE a = 2"),
        &format!("DELETE FROM {k} WHERE a = 1 AND b = 'y'"),
    ])
    .await;
    // Not a captured table: no transaction.
    exec(&format!("INSERT INTO {other} VALUES (1)")).await;
    tx(&[
        &format!(
            "INSERT INTO {ty} VALUES {}, {}",
            types_max(11),
            types_min(12)
        ),
        &format!("INSERT INTO {ty} (id) VALUES (13)"),
        &format!("UPDATE {ty} SET tiu = 7, vc = 'ünï' WHERE id = 1"),
        &format!("DELETE FROM {ty} WHERE id = 2"),
    ])
    .await;

    let a = run.transaction().await;
    assert!(
        a.commit_ms >= before / 1000 * 1000 && a.commit_ms <= now_ms(),
        "{}",
        a.commit_ms
    );
    assert_eq!(a.commit_ms % 1000, 0);
    assert_eq!(
        changes(&a),
        vec![
            (
                k.clone(),
                (ChangeOp::Insert, None, Some(row(&["3", "z", "four"])))
            ),
            (
                k.clone(),
                (
                    ChangeOp::Update,
                    Some(row(&["1", "x", "one"])),
                    Some(row(&["1", "x", "ONE"]))
                )
            ),
        ]
    );
    assert!(Arc::ptr_eq(&a.changes[0].table, &a.changes[1].table));
    assert_eq!(a.changes[0].table.columns, kt.columns);

    let b = run.transaction().await;
    assert_eq!(
        changes(&b),
        vec![
            (
                k.clone(),
                (
                    ChangeOp::Update,
                    Some(row(&["2", "x", "three"])),
                    Some(row(&["2", "w", "three"]))
                )
            ),
            (
                k.clone(),
                (ChangeOp::Delete, Some(row(&["1", "y", "two"])), None)
            ),
        ]
    );
    assert_ne!(a.position, b.position);

    let d = run.transaction().await;
    let mut updated = types_max_values("1");
    updated[2] = t("7");
    updated[20] = t("ünï");
    assert_eq!(
        changes(&d),
        vec![
            (
                ty.clone(),
                (ChangeOp::Insert, None, Some(types_max_values("11")))
            ),
            (
                ty.clone(),
                (ChangeOp::Insert, None, Some(types_min_values("12")))
            ),
            (
                ty.clone(),
                (ChangeOp::Insert, None, Some(types_null_values("13")))
            ),
            (
                ty.clone(),
                (ChangeOp::Update, Some(types_max_values("1")), Some(updated))
            ),
            (
                ty.clone(),
                (ChangeOp::Delete, Some(types_min_values("2")), None)
            ),
        ]
    );
    // Positions move forward: same file further on, or a later file.
    let pos = |p: &SourcePosition| {
        (
            p.0["file"].as_str().unwrap().to_string(),
            p.0["pos"].as_u64().unwrap(),
        )
    };
    assert!(pos(&done) < pos(&a.position));
    assert!(pos(&a.position) < pos(&b.position));
    assert!(pos(&b.position) < pos(&d.position));
    run.stop().await;
}

#[tokio::test]
async fn a_change_committed_during_the_copy_comes_exactly_once() {
    let tb = unique_name("cdc_during");
    exec(&format!(
        "CREATE TABLE {tb} (id int PRIMARY KEY, v varchar(20))"
    ))
    .await;
    let values: Vec<String> = (1..=50).map(|i| format!("({i}, 'v{i}')")).collect();
    exec(&format!("INSERT INTO {tb} VALUES {}", values.join(", "))).await;

    // Batches of 5 through a channel of 1: the copy waits for the reader between batches.
    let mut run = Running::start(spec(&[&tb], None, 5), 1).await;
    let first = run.next().await;
    assert!(
        matches!(first, ChangeEvent::SnapshotRows { .. }),
        "{first:?}"
    );
    tx(&[
        &format!("INSERT INTO {tb} VALUES (1000, 'new')"),
        &format!("UPDATE {tb} SET v = 'changed' WHERE id = 1"),
    ])
    .await;

    let mut copied = match first {
        ChangeEvent::SnapshotRows { rows, .. } => rows,
        _ => unreachable!(),
    };
    let (rest, _, _) = run.snapshot().await;
    copied.extend(rest.get(&tb).cloned().unwrap_or_default());
    assert_eq!(
        copied.len(),
        50,
        "the copy holds what was committed before it"
    );
    assert!(copied.contains(&row(&["1", "v1"])));
    assert!(!copied.iter().any(|r| r[0] == t("1000")));

    exec(&format!("INSERT INTO {tb} VALUES (2000, 'marker')")).await;
    let mut seen = Vec::new();
    loop {
        let tx = run.transaction().await;
        let done = changes(&tx)
            .iter()
            .any(|(_, (_, _, after))| after.as_ref().is_some_and(|a| a[0] == t("2000")));
        seen.extend(changes(&tx));
        if done {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            (
                tb.clone(),
                (ChangeOp::Insert, None, Some(row(&["1000", "new"])))
            ),
            (
                tb.clone(),
                (
                    ChangeOp::Update,
                    Some(row(&["1", "v1"])),
                    Some(row(&["1", "changed"]))
                )
            ),
            (
                tb.clone(),
                (ChangeOp::Insert, None, Some(row(&["2000", "marker"])))
            ),
        ]
    );
    run.stop().await;
}

#[tokio::test]
async fn resume_reads_only_later_transactions_by_gtid_and_by_file() {
    let tb = unique_name("cdc_resume");
    exec(&format!("CREATE TABLE {tb} (id int PRIMARY KEY)")).await;
    let mut run = Running::start(spec(&[&tb], None, 100), 16).await;
    let (rows, _, _) = run.snapshot().await;
    assert!(rows.is_empty());
    exec(&format!("INSERT INTO {tb} VALUES (1)")).await;
    let first = run.transaction().await;
    exec(&format!("INSERT INTO {tb} VALUES (2)")).await;
    let second = run.transaction().await;
    assert_eq!(changes(&second)[0].1.2, Some(row(&["2"])));
    // A new binlog file: the stream follows it, resuming crosses it.
    exec("FLUSH BINARY LOGS").await;
    exec(&format!("INSERT INTO {tb} VALUES (3)")).await;
    let third = run.transaction().await;
    assert_eq!(changes(&third)[0].1.2, Some(row(&["3"])));
    let file = |t: &ChangeTransaction| t.position.0["file"].as_str().unwrap().to_string();
    assert!(
        file(&third) > file(&second),
        "{:?} after {:?}",
        third.position,
        second.position
    );
    run.stop().await;

    let p = first.position.0.clone();
    assert!(p["gtid"].is_string(), "{p}");
    let by_file = json!({"file": p["file"], "pos": p["pos"]});
    let by_gtid = json!({"gtid": p["gtid"]});
    for resume in [p.clone(), by_file, by_gtid] {
        let mut run =
            Running::start(spec(&[&tb], Some(SourcePosition(resume.clone())), 100), 16).await;
        let a = run.transaction().await;
        assert_eq!(
            changes(&a),
            vec![(tb.clone(), (ChangeOp::Insert, None, Some(row(&["2"]))))],
            "resuming from {resume}"
        );
        let b = run.transaction().await;
        assert_eq!(
            changes(&b)[0].1.2,
            Some(row(&["3"])),
            "resuming from {resume}"
        );
        assert_eq!(b.position.0["file"], third.position.0["file"]);
        assert_eq!(b.position.0["pos"], third.position.0["pos"]);
        // The same place in the log, however it was found.
        assert_eq!(a.position.0["pos"], second.position.0["pos"]);
        assert_eq!(a.position.0["gtid"], second.position.0["gtid"]);
        run.stop().await;
    }
}

#[tokio::test]
async fn a_column_added_at_the_source_appears_in_later_changes() {
    let tb = unique_name("cdc_alter");
    exec(&format!(
        "CREATE TABLE {tb} (id int PRIMARY KEY, v int unsigned)"
    ))
    .await;
    let mut run = Running::start(spec(&[&tb], None, 100), 16).await;
    run.snapshot().await;
    exec(&format!("INSERT INTO {tb} VALUES (1, 4294967295)")).await;
    let a = run.transaction().await;
    assert_eq!(a.changes[0].after, Some(row(&["1", "4294967295"])));
    exec(&format!(
        "ALTER TABLE {tb} ADD COLUMN extra varchar(10) DEFAULT 'd'"
    ))
    .await;
    exec(&format!("INSERT INTO {tb} (id, v) VALUES (2, 5)")).await;
    let b = run.transaction().await;
    let names: Vec<&str> = b.changes[0]
        .table
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["id", "v", "extra"]);
    assert_eq!(b.changes[0].after, Some(row(&["2", "5", "d"])));
    run.stop().await;
}

#[tokio::test]
async fn heartbeats_show_an_idle_or_busy_elsewhere_stream_alive() {
    let tb = unique_name("cdc_hb");
    let other = unique_name("cdc_hb_other");
    exec(&format!("CREATE TABLE {tb} (id int PRIMARY KEY)")).await;
    exec(&format!("CREATE TABLE {other} (id int PRIMARY KEY)")).await;
    let mut run = Running::start(spec(&[&tb], None, 100), 16).await;
    let (_, _, done) = run.snapshot().await;
    let started = Instant::now();
    let first = loop {
        if let ChangeEvent::Heartbeat { position } = run.next().await {
            break position;
        }
    };
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(first.0["file"].is_string());
    // Changes of another table move the position without a transaction.
    for i in 0..3 {
        exec(&format!("INSERT INTO {other} VALUES ({i})")).await;
    }
    let file_pos = |p: &SourcePosition| {
        (
            p.0["file"].as_str().unwrap().to_string(),
            p.0["pos"].as_u64().unwrap(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let moved = loop {
        assert!(
            Instant::now() < deadline,
            "no heartbeat past the other table's changes"
        );
        match run.next().await {
            ChangeEvent::Heartbeat { position } if file_pos(&position) > file_pos(&done) => {
                break position;
            }
            ChangeEvent::Heartbeat { .. } => {}
            other => panic!("unexpected: {other:?}"),
        }
    };
    // Resuming from a heartbeat's position is valid and skips the other table's changes.
    run.stop().await;
    exec(&format!("INSERT INTO {tb} VALUES (7)")).await;
    let mut run = Running::start(spec(&[&tb], Some(moved), 100), 16).await;
    assert_eq!(changes(&run.transaction().await)[0].1.2, Some(row(&["7"])));
    run.stop().await;
}

#[tokio::test]
async fn position_at_goes_back_to_a_binlog_file_or_names_the_oldest_time() {
    let c = connector();
    let log = c.change_log().unwrap();
    let err = log.position_at(946_684_800_000).await.unwrap_err(); // 2000-01-01
    assert_eq!(err.kind, ErrorKind::User, "{}", err.message);
    assert!(
        err.message.contains("2000-01-01T00:00:00Z"),
        "{}",
        err.message
    );
    assert!(err.message.contains("oldest file"), "{}", err.message);
    let oldest = err
        .message
        .split("starts at ")
        .nth(1)
        .expect("names the oldest time");
    assert!(
        chrono::DateTime::parse_from_rfc3339(oldest.trim()).is_ok(),
        "{oldest}"
    );

    let tb = unique_name("cdc_at");
    exec(&format!("CREATE TABLE {tb} (id int PRIMARY KEY)")).await;
    let at = log.position_at(now_ms()).await.unwrap();
    assert_eq!(at.0["pos"], 4, "{at:?}");
    exec(&format!("INSERT INTO {tb} VALUES (42)")).await;
    let mut run = Running::start(spec(&[&tb], Some(at), 100), 16).await;
    let tx = run.transaction().await;
    assert_eq!(
        changes(&tx),
        vec![(tb.clone(), (ChangeOp::Insert, None, Some(row(&["42"]))))]
    );
    run.stop().await;
}

#[tokio::test]
async fn check_accepts_a_row_binlog_and_names_what_is_missing() {
    connector().change_log().unwrap().check().await.unwrap();

    // The machine's own MariaDB: its binlog is usually off.
    let own = "mysql://root@127.0.0.1:3306/test";
    let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(own).unwrap())
        .prefer_socket(false);
    let Ok(mut conn) = mysql_async::Conn::new(opts).await else {
        eprintln!("no server on 3306: skipped");
        return;
    };
    let log_bin: Option<String> = conn.query_first("SELECT @@log_bin").await.unwrap();
    let format: Option<String> = conn.query_first("SELECT @@binlog_format").await.unwrap();
    let result = connector_at(own).change_log().unwrap().check().await;
    match log_bin.as_deref() {
        Some("0") | Some("OFF") => {
            let err = result.unwrap_err();
            assert_eq!(err.kind, ErrorKind::User);
            assert!(err.message.contains("log_bin"), "{}", err.message);
        }
        _ if format.as_deref() != Some("ROW") => {
            let err = result.unwrap_err();
            assert!(err.message.contains("binlog_format"), "{}", err.message);
        }
        _ => {}
    }
}

#[tokio::test]
async fn open_refuses_missing_tables_and_the_servers_own_id() {
    let log_owner = connector();
    let log = log_owner.change_log().unwrap();
    let err = log
        .open(spec(&["no_such_table_cdc"], None, 10))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::User);
    assert!(
        err.message.contains("test.no_such_table_cdc"),
        "{}",
        err.message
    );

    let tb = unique_name("cdc_id");
    exec(&format!("CREATE TABLE {tb} (id int PRIMARY KEY)")).await;
    let mut s = spec(&[&tb], None, 10);
    s.server_id = Some(1);
    let err = log.open(s).await.err().unwrap();
    assert_eq!(err.kind, ErrorKind::User);
    assert!(err.message.contains("server_id 1"), "{}", err.message);

    let bad = log
        .open(spec(&[&tb], Some(SourcePosition(json!({"pos": 5}))), 10))
        .await;
    assert_eq!(bad.err().unwrap().kind, ErrorKind::User);

    // A binlog file the server does not have (purged): the run fails, the user's to fix.
    let gone = SourcePosition(json!({"file": "mysql-bin.999999", "pos": 4}));
    let mut source = log.open(spec(&[&tb], Some(gone), 10)).await.unwrap();
    let (tx, _rx) = mpsc::channel(4);
    let err = tokio::time::timeout(
        Duration::from_secs(10),
        source.run(tx, CancellationToken::new()),
    )
    .await
    .expect("fails at once")
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::User, "{}", err.message);
    log.drop_reader("anything").await.unwrap();
}

#[tokio::test]
async fn cancel_ends_the_run_within_two_seconds_while_streaming_or_copying() {
    let tb = unique_name("cdc_cancel");
    exec(&format!("CREATE TABLE {tb} (id int PRIMARY KEY)")).await;
    let values: Vec<String> = (1..=20).map(|i| format!("({i})")).collect();
    exec(&format!("INSERT INTO {tb} VALUES {}", values.join(", "))).await;

    // Idle in the stream.
    let mut run = Running::start(spec(&[&tb], None, 100), 16).await;
    run.snapshot().await;
    run.stop().await;

    // Stuck in the copy: nobody takes its batches.
    let mut run = Running::start(spec(&[&tb], None, 1), 1).await;
    assert!(matches!(run.next().await, ChangeEvent::SnapshotRows { .. }));
    tokio::time::sleep(Duration::from_millis(200)).await;
    run.stop().await;
}

/// The binlog over TLS, the server's certificate checked against the test CA and a client
/// certificate presented: the user `x509` is `REQUIRE X509`, so a connection without TLS and
/// the certificate would be refused. The copy and a streamed transaction arrive.
#[tokio::test]
async fn binlog_read_over_tls_with_a_client_certificate() {
    let tb = unique_name("cdc_tls");
    exec(&format!(
        "CREATE TABLE {tb} (id int PRIMARY KEY, v varchar(20));
         INSERT INTO {tb} VALUES (1, 'copied')"
    ))
    .await;
    let d = tls_dir();
    let url = format!(
        "mysql://x509@127.0.0.1:3307/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={d}/ca.pem\
         &ssl-cert={d}/client.pem&ssl-key={d}/client-key.pem"
    );
    let mut run = Running::start_on(connector_at(&url), spec(&[&tb], None, 100), 10).await;
    let (rows, _, _) = run.snapshot().await;
    assert_eq!(rows.get(&tb), Some(&vec![row(&["1", "copied"])]));
    exec(&format!("INSERT INTO {tb} VALUES (2, 'streamed')")).await;
    let tx = run.transaction().await;
    assert_eq!(
        changes(&tx),
        vec![(
            tb.clone(),
            (ChangeOp::Insert, None, Some(row(&["2", "streamed"])))
        )]
    );
    run.stop().await;
    // Without the client certificate the same user is refused: the certificate was what let it in.
    let bare =
        format!("mysql://x509@127.0.0.1:3307/test?ssl-mode=VERIFY_IDENTITY&ssl-ca={d}/ca.pem");
    let log = connector_at(&bare);
    let err = log
        .change_log()
        .unwrap()
        .open(spec(&[&tb], None, 100))
        .await
        .err()
        .expect("refused without the certificate");
    assert!(err.message.contains("Access denied"), "{}", err.message);
}
