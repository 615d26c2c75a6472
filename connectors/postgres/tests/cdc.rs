//! PostgreSQL change capture against a real server with `wal_level = logical`
//! (`scripts/services.sh up pg-cdc`; URL in `FDI_PG_CDC`, default
//! postgres://postgres@127.0.0.1:5433/test). Every test uses its own tables and reader name.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fdi_connector::change::{
    ChangeEvent, ChangeOp, ChangeSource, ChangeSpec, ChangeTable, ChangeTransaction, ChangeValue,
    RowChange, TableId,
};
use fdi_connector::{Acknowledger, Connector, ConnectorFactory, ErrorKind, SourcePosition};
use fdi_connector_compliance::unique_name;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

fn url() -> String {
    std::env::var("FDI_PG_CDC")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5433/test".to_string())
}

fn connector() -> Arc<dyn Connector> {
    fdi_connector_postgres::Factory
        .create(&json!({ "url": url() }))
        .unwrap()
}

async fn pool() -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url())
        .await
        .unwrap()
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn spec(reader: &str, tables: &[&str], resume: Option<SourcePosition>, batch: usize) -> ChangeSpec {
    ChangeSpec {
        reader_name: reader.to_string(),
        tables: tables.iter().map(|t| TableId::new("public", *t)).collect(),
        resume,
        server_id: None,
        snapshot_batch_rows: batch,
    }
}

fn t(s: &str) -> ChangeValue {
    ChangeValue::Text(s.to_string())
}

const N: ChangeValue = ChangeValue::Null;

/// A running change source.
struct Running {
    rx: mpsc::Receiver<ChangeEvent>,
    cancel: CancellationToken,
    task: JoinHandle<fdi_connector::Result<()>>,
    ack: Arc<dyn Acknowledger>,
}

impl Running {
    fn start(mut source: Box<dyn ChangeSource>, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity);
        let cancel = CancellationToken::new();
        let ack = source.acknowledger();
        let token = cancel.clone();
        let task = tokio::spawn(async move { source.run(tx, token).await });
        Self {
            rx,
            cancel,
            task,
            ack,
        }
    }

    async fn open(c: &dyn Connector, spec: ChangeSpec, capacity: usize) -> Self {
        let log = c.change_log().expect("PostgreSQL has a change log");
        Self::start(log.open(spec).await.unwrap(), capacity)
    }

    async fn next(&mut self) -> ChangeEvent {
        match tokio::time::timeout(Duration::from_secs(20), self.rx.recv()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => panic!("source ended: {:?}", (&mut self.task).await),
            Err(_) => panic!("no change event within 20 s"),
        }
    }

    /// The snapshot: rows per table in arrival order, and the position after it.
    async fn snapshot(
        &mut self,
    ) -> (
        Vec<(Arc<ChangeTable>, Vec<Vec<ChangeValue>>)>,
        SourcePosition,
    ) {
        let mut tables: Vec<(Arc<ChangeTable>, Vec<Vec<ChangeValue>>)> = Vec::new();
        loop {
            match self.next().await {
                ChangeEvent::SnapshotRows { table, rows } => match tables.last_mut() {
                    Some((last, all)) if last.id == table.id => all.extend(rows),
                    _ => tables.push((table, rows)),
                },
                ChangeEvent::SnapshotDone { position } => return (tables, position),
                other => panic!("unexpected during the snapshot: {other:?}"),
            }
        }
    }

    /// The next transaction, skipping heartbeats.
    async fn transaction(&mut self) -> ChangeTransaction {
        loop {
            match self.next().await {
                ChangeEvent::Transaction(t) => return t,
                ChangeEvent::Heartbeat { .. } => {}
                other => panic!("expected a transaction: {other:?}"),
            }
        }
    }

    /// No transaction arrives for `d` (heartbeats may); returns the heartbeats' positions.
    async fn quiet_for(&mut self, d: Duration) -> Vec<SourcePosition> {
        let mut beats = Vec::new();
        let until = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(until, self.rx.recv()).await {
                Err(_) => return beats,
                Ok(Some(ChangeEvent::Heartbeat { position })) => beats.push(position),
                Ok(other) => panic!("expected nothing but heartbeats: {other:?}"),
            }
        }
    }

    /// Cancel; the run must end with `Cancelled` within 2 s.
    async fn stop(self) -> Arc<dyn Acknowledger> {
        let Running {
            rx,
            cancel,
            task,
            ack,
        } = self;
        let t = Instant::now();
        cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .expect("run ends within 2 s of cancel")
            .unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
        drop(rx);
        ack
    }
}

fn lsn_of(p: &SourcePosition) -> String {
    p.0["lsn"].as_str().expect("{\"lsn\": ...}").to_string()
}

fn lsn_value(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

async fn slot(pool: &PgPool, name: &str) -> Option<(Option<i32>, Option<String>)> {
    sqlx::query_as::<_, (Option<i32>, Option<String>)>(
        "SELECT active_pid, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// Wait until the slot confirmed `lsn`.
async fn confirmed(pool: &PgPool, name: &str, lsn: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let now = slot(pool, name).await.and_then(|s| s.1);
        if now.as_deref() == Some(lsn) {
            return;
        }
        assert!(
            Instant::now() < until,
            "slot {name} confirmed {now:?}, expected {lsn}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cleanup(c: &dyn Connector, reader: &str) {
    c.change_log().unwrap().drop_reader(reader).await.unwrap();
}

fn change(
    table: &Arc<ChangeTable>,
    op: ChangeOp,
    before: Option<Vec<ChangeValue>>,
    after: Option<Vec<ChangeValue>>,
) -> RowChange {
    RowChange {
        table: table.clone(),
        op,
        before,
        after,
    }
}

const TYPES: &str = "id int8 PRIMARY KEY, s int2, i int4, n numeric(45,15), f float8, b bool, \
    t text, by bytea, d date, ts timestamp(6), tz timestamptz, j jsonb, u uuid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_transactions_with_exact_values() {
    let pool = pool().await;
    let (multi, comp, other) = (
        unique_name("cdc_types"),
        unique_name("cdc_comp"),
        unique_name("cdc_other"),
    );
    let reader = unique_name("fdi_snap");
    exec(&pool, &format!("CREATE TABLE {multi} ({TYPES})")).await;
    exec(
        &pool,
        &format!("CREATE TABLE {comp} (a int4, b text, v text, PRIMARY KEY (a, b))"),
    )
    .await;
    exec(&pool, &format!("CREATE TABLE {other} (id int PRIMARY KEY)")).await;
    exec(
        &pool,
        &format!(
            "INSERT INTO {multi} VALUES (1, -32768, 2147483647, \
             12345678901234567890123456.123456789012345, 'NaN', true, 'héllo ✓ 日本 \"q\"', \
             '\\x00ff10', '2024-02-29', '2024-02-29 13:14:15.123456', \
             '2024-02-29 13:14:15.5+02', '{{\"a\": [1, 2.50]}}', \
             'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'), \
             (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
             (3, 7, 8, -0.5, '-Infinity', false, '', '\\x', '0001-01-01', \
             '1999-12-31 23:59:59', '1970-01-01 00:00:00+00', 'null', \
             '00000000-0000-0000-0000-000000000000')"
        ),
    )
    .await;
    exec(
        &pool,
        &format!("INSERT INTO {comp} VALUES (1, 'x', 'one'), (1, 'y', 'two'), (2, 'x', NULL)"),
    )
    .await;

    let c = connector();
    let mut run = Running::open(&*c, spec(&reader, &[&multi, &comp], None, 2), 4).await;
    let (tables, done) = run.snapshot().await;

    // Tables come one after the other, in the spec's order, with their columns and keys.
    assert_eq!(tables.len(), 2);
    let (mt, mrows) = &tables[0];
    let (ct, crows) = &tables[1];
    assert_eq!(mt.id, TableId::new("public", &multi));
    let shape: Vec<(&str, &str, bool)> = mt
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.native_type.as_str(), c.key))
        .collect();
    assert_eq!(
        shape,
        [
            ("id", "int8", true),
            ("s", "int2", false),
            ("i", "int4", false),
            ("n", "numeric", false),
            ("f", "float8", false),
            ("b", "bool", false),
            ("t", "text", false),
            ("by", "bytea", false),
            ("d", "date", false),
            ("ts", "timestamp", false),
            ("tz", "timestamptz", false),
            ("j", "jsonb", false),
            ("u", "uuid", false),
        ]
    );
    let keys: Vec<(&str, bool)> = ct
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.key))
        .collect();
    assert_eq!(keys, [("a", true), ("b", true), ("v", false)]);

    let row1 = vec![
        t("1"),
        t("-32768"),
        t("2147483647"),
        t("12345678901234567890123456.123456789012345"),
        t("NaN"),
        t("true"),
        t("héllo ✓ 日本 \"q\""),
        ChangeValue::Bytes(vec![0, 255, 16]),
        t("2024-02-29"),
        t("2024-02-29 13:14:15.123456"),
        t("2024-02-29T11:14:15.5Z"),
        t("{\"a\": [1, 2.50]}"),
        t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ];
    let mut row2 = vec![N; 13];
    row2[0] = t("2");
    let row3 = vec![
        t("3"),
        t("7"),
        t("8"),
        t("-0.500000000000000"),
        t("-Infinity"),
        t("false"),
        t(""),
        ChangeValue::Bytes(vec![]),
        t("0001-01-01"),
        t("1999-12-31 23:59:59"),
        t("1970-01-01T00:00:00Z"),
        t("null"),
        t("00000000-0000-0000-0000-000000000000"),
    ];
    let mut got = mrows.clone();
    got.sort_by_key(|r| format!("{:?}", r[0]));
    assert_eq!(got, vec![row1.clone(), row2.clone(), row3.clone()]);
    let mut got = crows.clone();
    got.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        got,
        vec![
            vec![t("1"), t("x"), t("one")],
            vec![t("1"), t("y"), t("two")],
            vec![t("2"), t("x"), N],
        ]
    );
    let point = lsn_of(&done);

    // Changes in several transactions.
    exec(
        &pool,
        &format!(
            "BEGIN; INSERT INTO {multi} VALUES (4, 1, 2, 3.25, 0.1, true, 'new', '\\xdeadbeef', \
             '2000-01-01', '2000-01-01 00:00:00.000001', '2000-01-01 00:00:00-08:30', \
             '[]', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'); \
             INSERT INTO {comp} VALUES (3, 'é', 'three'); COMMIT"
        ),
    )
    .await;
    exec(
        &pool,
        &format!(
            "BEGIN; UPDATE {multi} SET t = 'changed', f = 'Infinity', b = NULL WHERE id = 1; \
             UPDATE {comp} SET b = 'z' WHERE a = 1 AND b = 'x'; COMMIT"
        ),
    )
    .await;
    exec(&pool, &format!("INSERT INTO {other} VALUES (1)")).await;
    exec(
        &pool,
        &format!("BEGIN; DELETE FROM {comp} WHERE a = 2; DELETE FROM {multi} WHERE id = 2; COMMIT"),
    )
    .await;

    let t1 = run.transaction().await;
    let row4 = vec![
        t("4"),
        t("1"),
        t("2"),
        t("3.250000000000000"),
        t("0.1"),
        t("true"),
        t("new"),
        ChangeValue::Bytes(vec![0xde, 0xad, 0xbe, 0xef]),
        t("2000-01-01"),
        t("2000-01-01 00:00:00.000001"),
        t("2000-01-01T08:30:00Z"),
        t("[]"),
        t("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12"),
    ];
    assert_eq!(
        t1.changes,
        vec![
            change(mt, ChangeOp::Insert, None, Some(row4)),
            change(
                ct,
                ChangeOp::Insert,
                None,
                Some(vec![t("3"), t("é"), t("three")])
            ),
        ]
    );
    // The stream's tables are the snapshot's (the same Arc while the schema is unchanged).
    assert!(Arc::ptr_eq(&t1.changes[0].table, mt));
    assert!(lsn_value(&lsn_of(&t1.position)) > lsn_value(&point));
    let now_ms = chrono::Utc::now().timestamp_millis();
    assert!((now_ms - t1.commit_ms).abs() < 60_000, "{}", t1.commit_ms);

    let t2 = run.transaction().await;
    let mut row1_after = row1.clone();
    row1_after[4] = t("Infinity");
    row1_after[5] = N;
    row1_after[6] = t("changed");
    assert_eq!(
        t2.changes,
        vec![
            change(mt, ChangeOp::Update, None, Some(row1_after)),
            change(
                ct,
                ChangeOp::Update,
                Some(vec![t("1"), t("x"), N]),
                Some(vec![t("1"), t("z"), t("one")])
            ),
        ]
    );

    let t3 = run.transaction().await;
    assert_eq!(
        t3.changes,
        vec![
            change(ct, ChangeOp::Delete, Some(vec![t("2"), t("x"), N]), None),
            // The default replica identity logs the key; the other columns come as NULL.
            change(mt, ChangeOp::Delete, Some(row2.clone()), None),
        ]
    );
    assert!(lsn_value(&lsn_of(&t3.position)) > lsn_value(&lsn_of(&t2.position)));

    // Changes of other tables only move the position: heartbeats, at most about one a second.
    for i in 2..40 {
        exec(&pool, &format!("INSERT INTO {other} VALUES ({i})")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let beats = run.quiet_for(Duration::from_secs(3)).await;
    assert!(!beats.is_empty(), "no heartbeat after other tables changed");
    assert!(beats.len() <= 6, "{} heartbeats in ~5 s", beats.len());
    let mut last = lsn_value(&lsn_of(&t3.position));
    for b in &beats {
        let l = lsn_value(&lsn_of(b));
        assert!(l > last, "heartbeat positions move forward");
        last = l;
    }

    run.stop().await;
    cleanup(&*c, &reader).await;
    exec(&pool, &format!("DROP TABLE {multi}, {comp}, {other}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_toast_values_come_from_the_old_row_or_stay_unchanged() {
    let pool = pool().await;
    let (plain, full) = (unique_name("cdc_toast"), unique_name("cdc_toastf"));
    let reader = unique_name("fdi_toast");
    for tbl in [&plain, &full] {
        exec(
            &pool,
            &format!(
                "CREATE TABLE {tbl} (id int PRIMARY KEY, v int, big text); \
                 ALTER TABLE {tbl} ALTER COLUMN big SET STORAGE EXTERNAL"
            ),
        )
        .await;
    }
    exec(&pool, &format!("ALTER TABLE {full} REPLICA IDENTITY FULL")).await;
    let big = "0123456789abcdef".repeat(1000);
    for tbl in [&plain, &full] {
        exec(&pool, &format!("INSERT INTO {tbl} VALUES (1, 1, '{big}')")).await;
    }
    let c = connector();
    let mut run = Running::open(&*c, spec(&reader, &[&plain, &full], None, 100), 4).await;
    let (tables, _) = run.snapshot().await;
    assert_eq!(tables[0].1, vec![vec![t("1"), t("1"), t(&big)]]);
    // FULL: every column is in the log's old row, the key is still the primary key.
    let keys: Vec<bool> = tables[1].0.columns.iter().map(|c| c.key).collect();
    assert_eq!(keys, [true, false, false]);

    exec(&pool, &format!("UPDATE {plain} SET v = 2")).await;
    exec(&pool, &format!("UPDATE {full} SET v = 2")).await;
    exec(&pool, &format!("DELETE FROM {full}")).await;
    let a = run.transaction().await;
    assert_eq!(
        a.changes[0].after,
        Some(vec![t("1"), t("2"), ChangeValue::Unchanged])
    );
    assert_eq!(a.changes[0].before, None);
    let b = run.transaction().await;
    assert_eq!(b.changes[0].before, Some(vec![t("1"), t("1"), t(&big)]));
    assert_eq!(b.changes[0].after, Some(vec![t("1"), t("2"), t(&big)]));
    let d = run.transaction().await;
    assert_eq!(d.changes[0].op, ChangeOp::Delete);
    assert_eq!(d.changes[0].before, Some(vec![t("1"), t("2"), t(&big)]));

    run.stop().await;
    cleanup(&*c, &reader).await;
    exec(&pool, &format!("DROP TABLE {plain}, {full}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_during_the_copy_comes_once_in_the_stream() {
    let pool = pool().await;
    let tbl = unique_name("cdc_during");
    let reader = unique_name("fdi_during");
    exec(
        &pool,
        &format!("CREATE TABLE {tbl} (id int PRIMARY KEY, v text)"),
    )
    .await;
    exec(
        &pool,
        &format!("INSERT INTO {tbl} SELECT g, 'old' FROM generate_series(1, 10) g"),
    )
    .await;
    let c = connector();
    // Two rows a batch and room for one event: the copy waits for us between batches.
    let mut run = Running::open(&*c, spec(&reader, &[&tbl], None, 2), 1).await;
    let mut rows = match run.next().await {
        ChangeEvent::SnapshotRows { rows, .. } => rows,
        other => panic!("{other:?}"),
    };
    assert_eq!(rows.len(), 2);
    // The slot and its snapshot exist now; the copy has not read the rest yet.
    exec(
        &pool,
        &format!(
            "BEGIN; UPDATE {tbl} SET v = 'new' WHERE id IN (1, 9); INSERT INTO {tbl} VALUES (11, 'new'); \
             DELETE FROM {tbl} WHERE id = 10; COMMIT"
        ),
    )
    .await;
    let (rest, _) = run.snapshot().await;
    rows.extend(rest.into_iter().flat_map(|(_, r)| r));
    rows.sort_by_key(|r| match &r[0] {
        ChangeValue::Text(s) => s.parse::<i32>().unwrap(),
        _ => 0,
    });
    let expected: Vec<Vec<ChangeValue>> = (1..=10)
        .map(|i| vec![t(&i.to_string()), t("old")])
        .collect();
    assert_eq!(
        rows, expected,
        "the copy is the state at the slot's snapshot"
    );

    let tx = run.transaction().await;
    let ops: Vec<(ChangeOp, Option<Vec<ChangeValue>>)> = tx
        .changes
        .iter()
        .map(|c| (c.op, c.after.clone().or(c.before.clone())))
        .collect();
    assert_eq!(
        ops,
        vec![
            (ChangeOp::Update, Some(vec![t("1"), t("new")])),
            (ChangeOp::Update, Some(vec![t("9"), t("new")])),
            (ChangeOp::Insert, Some(vec![t("11"), t("new")])),
            (ChangeOp::Delete, Some(vec![t("10"), N])),
        ]
    );
    // Exactly once: nothing else follows.
    run.quiet_for(Duration::from_secs(2)).await;
    run.stop().await;
    cleanup(&*c, &reader).await;
    exec(&pool, &format!("DROP TABLE {tbl}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_transactions_are_not_delivered_again() {
    let pool = pool().await;
    let tbl = unique_name("cdc_ack");
    let reader = unique_name("fdi_ack");
    exec(&pool, &format!("CREATE TABLE {tbl} (id int PRIMARY KEY)")).await;
    let c = connector();
    let mut run = Running::open(&*c, spec(&reader, &[&tbl], None, 10), 8).await;
    let (_, done) = run.snapshot().await;
    // Created with the copy's position confirmed.
    confirmed(&pool, &reader, &lsn_of(&done)).await;
    for i in 1..=3 {
        exec(&pool, &format!("INSERT INTO {tbl} VALUES ({i})")).await;
    }
    let t1 = run.transaction().await;
    let t2 = run.transaction().await;
    let t3 = run.transaction().await;
    assert_eq!(t3.changes[0].after, Some(vec![t("3")]));
    // Acknowledged while streaming: a status update moves the slot.
    run.ack.ack(&t2.position).await.unwrap();
    confirmed(&pool, &reader, &lsn_of(&t2.position)).await;
    run.stop().await;

    // Resuming from the acknowledged position re-delivers only what came after it; so does
    // resuming from an older stored position (the server starts where the slot confirmed).
    for from in [&t2.position, &t1.position, &done] {
        let mut again = Running::open(&*c, spec(&reader, &[&tbl], Some(from.clone()), 10), 8).await;
        let first = again.transaction().await;
        assert_eq!(first.changes, t3.changes, "resumed from {from:?}");
        assert_eq!(first.position, t3.position);
        again.quiet_for(Duration::from_millis(1500)).await;
        let ack = again.stop().await;
        if std::ptr::eq(from, &done) {
            // Acknowledged after the stream closed (the pipeline commits after stopping the
            // source): the slot moves over SQL.
            ack.ack(&t3.position).await.unwrap();
            confirmed(&pool, &reader, &lsn_of(&t3.position)).await;
        }
    }
    let mut last = Running::open(
        &*c,
        spec(&reader, &[&tbl], Some(t3.position.clone()), 10),
        8,
    )
    .await;
    last.quiet_for(Duration::from_millis(1500)).await;
    exec(&pool, &format!("INSERT INTO {tbl} VALUES (4)")).await;
    assert_eq!(
        last.transaction().await.changes[0].after,
        Some(vec![t("4")])
    );
    last.stop().await;

    cleanup(&*c, &reader).await;
    exec(&pool, &format!("DROP TABLE {tbl}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_reader_removes_slot_and_publication() {
    let pool = pool().await;
    let (a, b) = (unique_name("cdc_drop_a"), unique_name("cdc_drop_b"));
    let reader = unique_name("fdi_drop");
    exec(
        &pool,
        &format!("CREATE TABLE {a} (id int PRIMARY KEY); CREATE TABLE {b} (id int PRIMARY KEY)"),
    )
    .await;
    let c = connector();
    let log = c.change_log().unwrap();
    let published = |pool: PgPool, name: String| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1",
        )
        .bind(name)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let mut run = Running::open(&*c, spec(&reader, &[&a], None, 10), 8).await;
    let (_, done) = run.snapshot().await;
    assert!(slot(&pool, &reader).await.is_some());
    assert_eq!(
        published(pool.clone(), reader.clone()).await,
        vec![a.clone()]
    );
    run.stop().await;

    // The task's tables changed: the publication follows on the next open.
    let run = Running::open(&*c, spec(&reader, &[&a, &b], Some(done), 10), 8).await;
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(published(pool.clone(), reader.clone()).await, both);
    run.stop().await;

    log.drop_reader(&reader).await.unwrap();
    assert!(slot(&pool, &reader).await.is_none());
    assert!(published(pool.clone(), reader.clone()).await.is_empty());
    let pubs: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_publication WHERE pubname = $1")
        .bind(&reader)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(pubs, 0);
    // Idempotent.
    log.drop_reader(&reader).await.unwrap();
    // Resuming a dropped reader asks for a new copy.
    let e = log
        .open(spec(
            &reader,
            &[&a],
            Some(SourcePosition(json!({"lsn": "0/1"}))),
            10,
        ))
        .await
        .err()
        .expect("no slot");
    assert_eq!(e.kind, ErrorKind::User);
    assert!(e.message.contains("repulling_snapshot"), "{}", e.message);
    log.drop_reader(&reader).await.unwrap();
    exec(&pool, &format!("DROP TABLE {a}, {b}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_position_at_and_bad_input() {
    let c = connector();
    let log = c.change_log().unwrap();
    log.check().await.unwrap();

    let e = log.position_at(1_700_000_000_000).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::User);
    assert!(
        e.message.contains("cannot rewind") && e.message.contains("repulling_snapshot"),
        "{}",
        e.message
    );
    let e = log
        .open(spec("fdi_missing_table", &["no_such_table_cdc"], None, 10))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::User);
    assert!(e.message.contains("no_such_table_cdc"), "{}", e.message);
    let e = log
        .open(spec(
            "fdi_bad_pos",
            &["x"],
            Some(SourcePosition(json!({"file": "x"}))),
            10,
        ))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::User);

    // The machine's own server (127.0.0.1:5432) runs without logical WAL here.
    let own = fdi_connector_postgres::Factory
        .create(&json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}))
        .unwrap();
    let level: Option<String> =
        match sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await {
            Ok(p) => sqlx::query_scalar("SHOW wal_level")
                .fetch_one(&p)
                .await
                .ok(),
            Err(_) => None,
        };
    match level.as_deref() {
        Some("logical") | None => eprintln!("skipped: 127.0.0.1:5432 wal_level is {level:?}"),
        Some(other) => {
            let e = own.change_log().unwrap().check().await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::User);
            assert!(e.message.contains("wal_level"), "{}", e.message);
            assert!(e.message.contains(other), "{}", e.message);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_run_within_two_seconds() {
    let pool = pool().await;
    let tbl = unique_name("cdc_cancel");
    let reader = unique_name("fdi_cancel");
    exec(&pool, &format!("CREATE TABLE {tbl} (id int PRIMARY KEY)")).await;
    exec(
        &pool,
        &format!("INSERT INTO {tbl} SELECT generate_series(1, 100)"),
    )
    .await;
    let c = connector();

    // During the copy, blocked on a full channel.
    let mut run = Running::open(&*c, spec(&reader, &[&tbl], None, 10), 1).await;
    assert!(matches!(run.next().await, ChangeEvent::SnapshotRows { .. }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.stop().await;

    // While streaming, idle.
    let mut run = Running::open(&*c, spec(&reader, &[&tbl], None, 1000), 8).await;
    let (_, done) = run.snapshot().await;
    run.quiet_for(Duration::from_millis(500)).await;
    run.stop().await;

    // While streaming, with the pipeline not taking events.
    let run = Running::open(&*c, spec(&reader, &[&tbl], Some(done), 10), 1).await;
    for i in 101..110 {
        exec(&pool, &format!("INSERT INTO {tbl} VALUES ({i})")).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop().await;

    // The slot is free again right away for the next reader.
    let until = Instant::now() + Duration::from_secs(5);
    while slot(&pool, &reader).await.and_then(|s| s.0).is_some() {
        assert!(Instant::now() < until, "slot still active");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cleanup(&*c, &reader).await;

    // While creating the slot, which waits for a transaction that is still running: the run
    // ends at once, and the slot the server makes once that transaction ends is dropped.
    let mut open_tx = pool.begin().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {tbl} VALUES (1000)"
    )))
    .execute(&mut *open_tx)
    .await
    .unwrap();
    let mut run = Running::open(&*c, spec(&reader, &[&tbl], None, 10), 8).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(800), run.rx.recv())
            .await
            .is_err(),
        "the copy cannot start before the running transaction ends"
    );
    run.stop().await;
    open_tx.rollback().await.unwrap();
    let until = Instant::now() + Duration::from_secs(5);
    while slot(&pool, &reader).await.is_some() {
        assert!(Instant::now() < until, "the cancelled reader's slot stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cleanup(&*c, &reader).await;
    exec(&pool, &format!("DROP TABLE {tbl}")).await;
}
