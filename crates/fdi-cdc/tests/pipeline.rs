//! The change pipeline against real servers: a logical-replication PostgreSQL and a binlog MariaDB
//! (`scripts/services.sh up pg-cdc mysql-cdc`) into the machine's PostgreSQL and MariaDB.
//! Every check compares checksums of the target with the source.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fdi_cdc::mapping::{MappingStatus, Selection};
use fdi_cdc::{CdcOptions, CdcRequest, MappingEvents, PositionStore, TableMapping};
use fdi_connector::change::{ChangeOp, TableId};
use fdi_connector::{ColumnInfo, Connector, ConnectorFactory, SourcePosition};
use fdi_types::ExecuteStatus;
use serde_json::json;
use sqlx::{Executor, Row};
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn pg_cdc_url() -> String {
    env("FDI_PG_CDC", "postgres://postgres@127.0.0.1:5433/test")
}
fn mysql_cdc_url() -> String {
    env("FDI_MYSQL_CDC", "mysql://root@127.0.0.1:3307/test")
}
const PG_TARGET: &str = "postgres://postgres@127.0.0.1:5432/test";
const MYSQL_TARGET: &str = "mysql://root@127.0.0.1:3306/test";

fn unique(p: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{p}_{}_{nanos}", std::process::id())
}

fn pg(url: &str) -> Arc<dyn Connector> {
    fdi_connector_postgres::Factory
        .create(&json!({ "url": url }))
        .unwrap()
}
fn mysql(url: &str) -> Arc<dyn Connector> {
    fdi_connector_mysql::Factory
        .create(&json!({ "url": url }))
        .unwrap()
}

#[derive(Default)]
struct MemoryPosition(Mutex<Option<SourcePosition>>);

#[async_trait]
impl PositionStore for MemoryPosition {
    async fn save(&self, position: &SourcePosition) -> Result<(), String> {
        *self.0.lock().unwrap() = Some(position.clone());
        Ok(())
    }
}

/// Mapping events as they were reported.
#[derive(Default)]
struct MemoryMappings(Mutex<Vec<(String, String)>>);

#[async_trait]
impl MappingEvents for MemoryMappings {
    async fn mark(&self, source: &TableId, status: MappingStatus) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push((source.to_string(), status.as_str().to_string()));
        Ok(())
    }
    async fn added(&self, source: &TableId, _columns: &[ColumnInfo]) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push((source.to_string(), "ADD".to_string()));
        Ok(())
    }
}

impl MemoryMappings {
    fn seen(&self, table: &str, status: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|(t, s)| t == table && s == status)
    }
}

impl MemoryPosition {
    fn get(&self) -> Option<SourcePosition> {
        self.0.lock().unwrap().clone()
    }
}

/// A running pipeline.
struct Running {
    cancel: CancellationToken,
    handle: tokio::task::JoinHandle<fdi_cdc::RunOutcome>,
}

impl Running {
    async fn stop(self) -> fdi_cdc::RunOutcome {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("the run ends within 15 s of its cancel")
            .unwrap()
    }
}

/// A task under test: what each of its runs reads, and what they stored.
struct Task {
    id: String,
    source: Arc<dyn Connector>,
    target: Arc<dyn Connector>,
    tables: Vec<TableMapping>,
    selection: Option<Selection>,
    positions: Arc<MemoryPosition>,
    mappings: Arc<MemoryMappings>,
    /// Every step the task's runs reported.
    steps: Arc<std::sync::Mutex<Vec<fdi_types::run_event::StepRecord>>>,
}

impl Task {
    fn new(
        source: Arc<dyn Connector>,
        target: Arc<dyn Connector>,
        tables: Vec<TableMapping>,
    ) -> Self {
        Self {
            id: unique("t"),
            source,
            target,
            tables,
            selection: None,
            positions: Arc::default(),
            mappings: Arc::default(),
            steps: Arc::default(),
        }
    }

    /// The tables (stages) and rows of the sub-steps of the latest step that has any.
    fn latest_parts(&self) -> Vec<(String, u64)> {
        let steps = self.steps.lock().unwrap();
        steps
            .iter()
            .rev()
            .find(|s| !s.sub_steps.is_empty())
            .map(|s| {
                s.sub_steps
                    .iter()
                    .map(|p| (p.stage.clone(), p.data_count))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A run from the stored position (a copy first when there is none).
    fn start(&self, operations: &[ChangeOp]) -> Running {
        let cancel = CancellationToken::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let steps = self.steps.clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let fdi_types::run_event::RunEvent::Step(s) = ev {
                    eprintln!("[step {}] {}", s.code.0, s.remarks);
                    steps.lock().unwrap().push(s);
                }
            }
        });
        let req = CdcRequest {
            task_id: self.id.clone(),
            run_id: fdi_types::new_id(),
            source: self.source.clone(),
            target: self.target.clone(),
            tables: self.tables.clone(),
            selection: self.selection.clone(),
            mapping_events: self.mappings.clone(),
            operations: operations.iter().copied().collect::<HashSet<_>>(),
            server_id: None,
            resume: self.positions.get(),
            positions: self.positions.clone(),
            cancel: cancel.clone(),
            options: CdcOptions {
                progress_interval: Duration::from_secs(1),
                drift_interval: Duration::from_millis(500),
                ..Default::default()
            },
        };
        Running {
            cancel,
            handle: tokio::spawn(fdi_cdc::run(req, tx)),
        }
    }
}

fn same_columns(source: TableId, target: &str, cols: &[&str]) -> TableMapping {
    TableMapping {
        source,
        target_table: target.to_string(),
        columns: cols
            .iter()
            .map(|c| (c.to_string(), c.to_string()))
            .collect(),
        source_columns: cols.iter().map(|c| c.to_string()).collect(),
    }
}

/// Poll until `check` holds, or fail with what it last said.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

// ---- PostgreSQL -> PostgreSQL ------------------------------------------------------------------

async fn pg_pool(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

/// Checksum of a table's rows in key order (text forms that do not depend on the session).
async fn pg_sum(pool: &sqlx::PgPool, sql: &str) -> String {
    let r = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap();
    let n: i64 = r.get(0);
    let s: Option<String> = r.get(1);
    format!("{n} rows, {}", s.unwrap_or_default())
}

fn orders_sum(table: &str) -> String {
    format!(
        "SELECT COUNT(*), md5(string_agg(concat_ws('|', id, customer, amount::text, \
         (extract(epoch from at) * 1000000)::bigint, encode(data, 'hex'), ok), ',' ORDER BY id)) FROM {table}"
    )
}
fn lines_sum(table: &str) -> String {
    format!(
        "SELECT COUNT(*), md5(string_agg(concat_ws('|', order_id, line, qty, note), ',' ORDER BY order_id, line)) FROM {table}"
    )
}

#[tokio::test]
async fn postgres_changes_land_in_postgres_and_resume_from_the_stored_position() {
    let (src_url, dst_url) = (pg_cdc_url(), PG_TARGET.to_string());
    let src = pg_pool(&src_url).await;
    let dst = pg_pool(&dst_url).await;
    let orders = unique("cdc_orders");
    let lines = unique("cdc_lines");
    for (pool, full) in [(&src, true), (&dst, false)] {
        pool.execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {orders} (id int PRIMARY KEY, customer text, amount numeric(30,6), at timestamptz, data bytea, ok boolean);
             CREATE TABLE {lines} (order_id int, line int, qty bigint, note text, PRIMARY KEY (order_id, line));{}",
            if full { format!(" ALTER TABLE {orders} REPLICA IDENTITY FULL;") } else { String::new() }
        )))
        .await
        .unwrap();
    }
    src.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {orders} SELECT g, 'cust ' || g || ' é中', g * 1.5 + 0.000001, \
         timestamptz '2024-01-01 00:00:00.123456+00' + g * interval '1 minute', \
         CASE WHEN g % 3 = 0 THEN NULL ELSE decode(lpad(to_hex(g), 8, '0'), 'hex') END, g % 2 = 0 \
         FROM generate_series(1, 3000) g;
         INSERT INTO {lines} SELECT g / 3, g % 3, g * 100000000000, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END \
         FROM generate_series(3, 6002) g;"
    )))
    .await
    .unwrap();
    let tables = vec![
        same_columns(
            TableId::new("public", &orders),
            &orders,
            &["id", "customer", "amount", "at", "data", "ok"],
        ),
        same_columns(
            TableId::new("public", &lines),
            &lines,
            &["order_id", "line", "qty", "note"],
        ),
    ];
    // A row left in the target by an earlier, interrupted copy: the copy empties the table.
    dst.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {orders} (id, customer) VALUES (999999, 'ghost')"
    )))
    .await
    .unwrap();
    let all = [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete];
    let source = pg(&src_url);
    let mut task = Task::new(source.clone(), pg(&dst_url), tables);
    task.selection = Some(Selection::parse("selection", "public.*").unwrap());
    let run = task.start(&all);
    let checks = [orders_sum(&orders), lines_sum(&lines)];
    let equal = || async {
        for sql in &checks {
            let (a, b) = (pg_sum(&src, sql).await, pg_sum(&dst, sql).await);
            if a != b {
                return Err(format!("{sql}: source {a}, target {b}"));
            }
        }
        Ok(())
    };
    eventually("the snapshot lands and its position is stored", || async {
        equal().await?;
        match task.positions.get() {
            Some(_) => Ok(()),
            None => Err("no position stored".to_string()),
        }
    })
    .await;
    // Mixed changes in several transactions: updates, deletes, inserts, a key change.
    src.execute(sqlx::AssertSqlSafe(format!(
        "UPDATE {orders} SET amount = amount * 2, customer = NULL WHERE id % 7 = 0;
         DELETE FROM {orders} WHERE id % 11 = 0;
         INSERT INTO {orders} SELECT g, 'new', g, now(), '\\x00ff', NULL FROM generate_series(3001, 3500) g;
         UPDATE {orders} SET id = 10000 WHERE id = 1;
         BEGIN; DELETE FROM {lines} WHERE order_id < 100; UPDATE {lines} SET qty = -qty WHERE line = 2; COMMIT;"
    )))
    .await
    .unwrap();
    eventually("the changes land", equal).await;
    // The progress entries give each table's changes as a sub-step.
    eventually("each table's changes are a sub-step", || async {
        let parts = task.latest_parts();
        for table in [&orders, &lines] {
            match parts
                .iter()
                .find(|(stage, _)| stage.contains(table.as_str()))
            {
                Some((_, rows)) if *rows > 0 => {}
                _ => return Err(format!("no sub-step with rows for {table}: {parts:?}")),
            }
        }
        Ok(())
    })
    .await;
    // Schema drift: a column added at the source (mapping UPDATE, the task goes on), a new table
    // matching the selection (mapping ADD).
    let newt = unique("cdc_new");
    src.execute(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE {lines} ADD COLUMN extra int; UPDATE {lines} SET extra = 1, qty = 7 WHERE order_id = 200;
         CREATE TABLE {newt} (id int PRIMARY KEY);"
    )))
    .await
    .unwrap();
    eventually(
        "the drift is reported and the changes still land",
        || async {
            equal().await?;
            for (t, status) in [(&lines, "UPDATE"), (&newt, "ADD")] {
                if !task.mappings.seen(&format!("public.{t}"), status) {
                    return Err(format!("{t}: no {status} yet"));
                }
            }
            Ok(())
        },
    )
    .await;
    let o = run.stop().await;
    assert_eq!(o.status, ExecuteStatus::Cancelled, "{}", o.remarks);
    assert!(o.rows_written >= 9000, "{o:?}");
    // Changes while the task is stopped are read from the stored position on restart.
    src.execute(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {orders} WHERE id BETWEEN 100 AND 199; UPDATE {lines} SET note = 'after restart' WHERE order_id = 500;"
    )))
    .await
    .unwrap();
    let run = task.start(&all);
    eventually("the changes made while stopped land", equal).await;
    run.stop().await;
    // Without DELETE in the operation types, deleted rows stay in the target.
    let run = task.start(&[ChangeOp::Insert, ChangeOp::Update]);
    src.execute(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {orders} WHERE id BETWEEN 200 AND 299; INSERT INTO {orders} (id, customer) VALUES (20000, 'last');"
    )))
    .await
    .unwrap();
    let count = |pool: sqlx::PgPool, sql: String| async move {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    eventually("the insert lands and the deletes do not", || {
        let (dst, orders) = (dst.clone(), orders.clone());
        async move {
            let last = count(
                dst.clone(),
                format!("SELECT COUNT(*) FROM {orders} WHERE id = 20000"),
            )
            .await;
            let kept = count(
                dst,
                format!("SELECT COUNT(*) FROM {orders} WHERE id BETWEEN 200 AND 299"),
            )
            .await;
            if last == 1 && kept > 0 {
                Ok(())
            } else {
                Err(format!("last {last}, kept {kept}"))
            }
        }
    })
    .await;
    let kept = count(
        dst.clone(),
        format!("SELECT COUNT(*) FROM {orders} WHERE id BETWEEN 200 AND 299"),
    )
    .await;
    // 200..=299 less the 9 multiples of 11 deleted earlier (with DELETE applied then).
    assert_eq!(
        kept, 91,
        "rows deleted without DELETE in the operation types remain"
    );
    // A mapped table dropped at the source: mapping DELETE, the run goes on.
    src.execute(sqlx::AssertSqlSafe(format!(
        "DROP TABLE {lines}; DROP TABLE {newt};"
    )))
    .await
    .unwrap();
    eventually("the dropped table is reported", || async {
        if task.mappings.seen(&format!("public.{lines}"), "DELETE") {
            Ok(())
        } else {
            Err("no DELETE yet".to_string())
        }
    })
    .await;
    run.stop().await;
    source
        .change_log()
        .unwrap()
        .drop_reader(&fdi_cdc::reader_name(&task.id))
        .await
        .unwrap();
    for pool in [&src, &dst] {
        pool.execute(sqlx::AssertSqlSafe(format!(
            "DROP TABLE {orders}; DROP TABLE IF EXISTS {lines};"
        )))
        .await
        .unwrap();
    }
}

// ---- MariaDB -> PostgreSQL ---------------------------------------------------------------------

#[tokio::test]
async fn mariadb_changes_land_in_postgres_and_in_mariadb() {
    let src_url = mysql_cdc_url();
    let src = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(&src_url)
        .await
        .unwrap();
    let pg_dst = pg_pool(PG_TARGET).await;
    let my_dst = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(2)
        .connect(MYSQL_TARGET)
        .await
        .unwrap();
    let t = unique("cdc_items");
    src.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {t} (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(100), price DECIMAL(30,6), at DATETIME(6), raw VARBINARY(16))"
    )))
    .await
    .unwrap();
    pg_dst
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {t} (id numeric(20) PRIMARY KEY, name text, price numeric(30,6), at timestamp(6), raw bytea)"
        )))
        .await
        .unwrap();
    my_dst
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {t} (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(100), price DECIMAL(30,6), at DATETIME(6), raw VARBINARY(16))"
        )))
        .await
        .unwrap();
    let mut values = Vec::new();
    for i in 1..=2000u64 {
        let id = if i == 2000 { u64::MAX } else { i };
        values.push(format!(
            "({id}, 'name {i} ü', {i}.125, '2024-03-01 10:00:00.{:06}', {})",
            i % 1_000_000,
            if i % 4 == 0 {
                "NULL".to_string()
            } else {
                format!("UNHEX('{:08X}')", i)
            }
        ));
    }
    src.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {t} VALUES {}",
        values.join(",")
    )))
    .await
    .unwrap();
    let cols = ["id", "name", "price", "at", "raw"];
    let tables = vec![same_columns(TableId::new("test", &t), &t, &cols)];
    let all = [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete];
    let source = mysql(&src_url);
    let to_pg = Task::new(source.clone(), pg(PG_TARGET), tables.clone()).start(&all);
    let to_my = Task::new(source.clone(), mysql(MYSQL_TARGET), tables).start(&all);
    src.execute(sqlx::AssertSqlSafe(format!(
        "UPDATE {t} SET price = price + 1, name = NULL WHERE id % 3 = 0;
         DELETE FROM {t} WHERE id % 10 = 0;
         INSERT INTO {t} VALUES (5000, 'late', 1.000001, '2025-01-01 00:00:00', UNHEX('00FF'));"
    )))
    .await
    .unwrap();
    let my_sum = |pool: sqlx::MySqlPool, t: String| async move {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET STATEMENT group_concat_max_len = 100000000 FOR SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, COALESCE(name, '~'), price, DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f'), COALESCE(LOWER(HEX(raw)), '~')) ORDER BY id SEPARATOR ',')) FROM {t}"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        let n: i64 = r.get(0);
        let s: Option<String> = r.get(1);
        format!("{n} rows, {}", s.unwrap_or_default())
    };
    let pg_sum_items = |pool: sqlx::PgPool, t: String| async move {
        pg_sum(
            &pool,
            &format!(
                "SELECT COUNT(*), md5(string_agg(concat_ws('|', id, COALESCE(name, '~'), price, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US'), COALESCE(encode(raw, 'hex'), '~')), ',' ORDER BY id)) FROM {t}"
            ),
        )
        .await
    };
    eventually("MariaDB -> PostgreSQL and MariaDB -> MariaDB", || {
        let (src, pg_dst, my_dst, t) = (src.clone(), pg_dst.clone(), my_dst.clone(), t.clone());
        async move {
            let a = my_sum(src, t.clone()).await;
            let b = pg_sum_items(pg_dst, t.clone()).await;
            let c = my_sum(my_dst, t).await;
            if a == b && a == c {
                Ok(())
            } else {
                Err(format!("source {a}, postgres {b}, mariadb {c}"))
            }
        }
    })
    .await;
    for r in [to_pg, to_my] {
        let o = r.stop().await;
        assert_eq!(o.status, ExecuteStatus::Cancelled, "{}", o.remarks);
    }
    src.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
        .await
        .unwrap();
    pg_dst
        .execute(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
        .await
        .unwrap();
    my_dst
        .execute(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
        .await
        .unwrap();
}

// ---- PostgreSQL -> Kafka (change events) --------------------------------------------------------

/// A new topic of one partition on the broker of `scripts/services.sh up kafka`.
async fn kafka_topic() -> String {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let name = unique("fdi_cdc_events");
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(&name, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("the broker on 127.0.0.1:9092 (scripts/services.sh up kafka)")
    {
        r.unwrap();
    }
    name
}

/// The first `n` messages of the topic's partition 0, as JSON.
fn read_events(topic: &str, n: usize) -> Vec<serde_json::Value> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:9092")
        .set("group.id", unique("fdi_cdc_read"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            let mut v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            v["message_key"] = json!(key);
            out.push(v);
        }
    }
    out
}

#[tokio::test]
async fn postgres_changes_become_kafka_events_in_commit_order() {
    let src_url = pg_cdc_url();
    let src = pg_pool(&src_url).await;
    let t = unique("cdc_ev");
    src.execute(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, name text, raw bytea);
         INSERT INTO {t} SELECT g, 'n' || g, '\\x0a0b' FROM generate_series(1, 3) g;"
    )))
    .await
    .unwrap();
    let topic = kafka_topic().await;
    let kafka = fdi_connector_kafka::Factory
        .create(&json!({"broker": "127.0.0.1:9092"}))
        .unwrap();
    let tables = vec![TableMapping {
        source: TableId::new("public", &t),
        target_table: topic.clone(),
        columns: Vec::new(),
        source_columns: Vec::new(),
    }];
    let task = Task::new(pg(&src_url), kafka, tables);
    let run = task.start(&[ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete]);
    eventually("the snapshot is sent", || async {
        if task.positions.get().is_some() {
            Ok(())
        } else {
            Err("no position yet".into())
        }
    })
    .await;
    src.execute(sqlx::AssertSqlSafe(format!(
        "UPDATE {t} SET name = 'changed' WHERE id = 2; DELETE FROM {t} WHERE id = 3;"
    )))
    .await
    .unwrap();
    let events = tokio::task::spawn_blocking(move || read_events(&topic, 5))
        .await
        .unwrap();
    let o = run.stop().await;
    assert_eq!(o.status, ExecuteStatus::Cancelled, "{}", o.remarks);
    let ops: Vec<&str> = events.iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        ["INSERT", "INSERT", "INSERT", "UPDATE", "DELETE"],
        "{events:?}"
    );
    assert_eq!(events[0]["snapshot"], true);
    assert_eq!(
        events[0]["after"],
        json!({"id": "1", "name": "n1", "raw": "0a0b"})
    );
    assert_eq!(events[0]["source_table"], format!("public.{t}"));
    let update = &events[3];
    assert_eq!(update["snapshot"], false);
    assert_eq!(update["message_key"], "2");
    assert_eq!(update["after"]["name"], "changed");
    assert!(update["commit_ms"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(
        update["position"].as_str().unwrap().contains("lsn"),
        "{update}"
    );
    assert_eq!(events[4]["after"], serde_json::Value::Null);
    assert_eq!(events[4]["before"]["id"], "3");
    assert_eq!(events[4]["message_key"], "3");
    task.source
        .change_log()
        .unwrap()
        .drop_reader(&fdi_cdc::reader_name(&task.id))
        .await
        .unwrap();
    src.execute(sqlx::AssertSqlSafe(format!("DROP TABLE {t}")))
        .await
        .unwrap();
}

// ---- The matrix: both sources into both targets, five tables, mixed load ---------------------

/// The two SQL dialects of the matrix: DDL, literals and a checksum text that is equal on both
/// servers for equal rows.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Sql {
    Pg,
    My,
}

/// The tables of the matrix: one with every type, one with a composite key, three plain.
const MATRIX_TABLES: [&str; 5] = ["types", "comp", "k1", "k2", "k3"];
const TYPES_COLS: [&str; 13] = [
    "id", "i", "s", "big", "dbl", "flag", "name", "body", "d", "tm", "ts", "tz", "raw",
];

impl Sql {
    fn ddl(self, kind: &str) -> &'static str {
        match (self, kind) {
            (Sql::Pg, "types") => {
                "id bigint PRIMARY KEY, i int, s smallint, big numeric(38,10), dbl double precision, \
                flag boolean, name varchar(100), body text, d date, tm time(6), ts timestamp(6), tz timestamptz, raw bytea"
            }
            (Sql::My, "types") => {
                "id BIGINT PRIMARY KEY, i INT, s SMALLINT, big DECIMAL(38,10), dbl DOUBLE, \
                flag BOOLEAN, name VARCHAR(100), body TEXT, d DATE, tm TIME(6), ts DATETIME(6), tz TIMESTAMP(6) NULL, raw VARBINARY(64)"
            }
            (Sql::Pg, "comp") => {
                "a int, b varchar(20), c bigint, note varchar(50), PRIMARY KEY (a, b)"
            }
            (Sql::My, "comp") => {
                "a INT, b VARCHAR(20), c BIGINT, note VARCHAR(50), PRIMARY KEY (a, b)"
            }
            (Sql::Pg, _) => "id int PRIMARY KEY, v varchar(100), n numeric(12,2)",
            (Sql::My, _) => "id INT PRIMARY KEY, v VARCHAR(100), n DECIMAL(12,2)",
        }
    }

    fn create(self, table: &str, kind: &str) -> String {
        match self {
            Sql::Pg => format!("CREATE TABLE {table} ({})", self.ddl(kind)),
            Sql::My => format!(
                "CREATE TABLE {table} ({}) DEFAULT CHARSET=utf8mb4",
                self.ddl(kind)
            ),
        }
    }

    fn text(self, s: &str) -> String {
        match self {
            Sql::Pg => format!("'{}'", s.replace('\'', "''")),
            Sql::My => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''")),
        }
    }

    fn bytes(self, hex: &str) -> String {
        match self {
            Sql::Pg => format!("'\\x{hex}'::bytea"),
            Sql::My => format!("X'{hex}'"),
        }
    }

    fn instant(self, s: &str) -> String {
        match self {
            Sql::Pg => format!("'{s}+00'"),
            // The session runs in UTC (see `session`).
            Sql::My => format!("'{s}'"),
        }
    }

    /// What every load session runs first.
    fn session(self) -> &'static str {
        match self {
            Sql::Pg => "SET TIME ZONE 'UTC'",
            Sql::My => "SET time_zone = '+00:00'",
        }
    }

    /// The values of a `types` row (`version` changes every non-key column).
    fn types_row(self, id: i64, version: i64) -> String {
        let null = id % 7 == 0;
        let or_null = |v: String| if null { "NULL".to_string() } else { v };
        let x = id + version * 1000;
        let big = format!(
            "{}{}.{:010}",
            if x % 3 == 0 { "-" } else { "" },
            (x as u128 * 1_234_567_890_123_456_789) % 10u128.pow(27),
            (x * 7919) % 10_000_000_000
        );
        let date = format!("{}-{:02}-{:02}", 2000 + x % 37, 1 + x % 12, 1 + x % 28);
        let time = format!(
            "{:02}:{:02}:{:02}.{:06}",
            x % 24,
            x % 60,
            (x * 7) % 60,
            (x * 13) % 1_000_000
        );
        let flag = match self {
            Sql::Pg => (x % 2 == 0).to_string(),
            Sql::My => ((x % 2 == 0) as i32).to_string(),
        };
        [
            id.to_string(),
            ((x * 48271) % 2_000_000_000 - 1_000_000_000).to_string(),
            ((x % 60000) - 30000).to_string(),
            or_null(big),
            format!("{}", x as f64 * 0.25 - 100.0),
            or_null(flag),
            or_null(self.text(&format!("name {x} ü名🚀 'q'"))),
            or_null(self.text(&format!(
                "body {x}\n\ttab \\ back \"dq\" {}",
                "é".repeat((x % 9) as usize)
            ))),
            or_null(format!("'{date}'")),
            or_null(format!("'{time}'")),
            or_null(format!("'{date} {time}'")),
            or_null(self.instant(&format!("{date} {time}"))),
            or_null(self.bytes(&format!("00090a5c{:08x}", x))),
        ]
        .join(", ")
    }

    /// `SELECT COUNT(*), md5 of every row in key order` of a matrix table.
    fn checksum(self, table: &str, kind: &str) -> String {
        // (PostgreSQL, MySQL) expressions giving the same text for the same value.
        let cols: Vec<(String, String)> = match kind {
            "types" => vec![
                ("id::text".into(), "CAST(id AS CHAR)".into()),
                ("i::text".into(), "CAST(i AS CHAR)".into()),
                ("s::text".into(), "CAST(s AS CHAR)".into()),
                ("big::text".into(), "CAST(big AS CHAR)".into()),
                ("dbl::text".into(), "CAST(dbl AS CHAR)".into()),
                ("flag::int::text".into(), "CAST(flag AS CHAR)".into()),
                ("name".into(), "name".into()),
                ("body".into(), "body".into()),
                ("d::text".into(), "CAST(d AS CHAR)".into()),
                (
                    "((extract(epoch from tm) * 1000000)::bigint)::text".into(),
                    "CAST(CAST(TIME_TO_SEC(tm) * 1000000 AS SIGNED) AS CHAR)".into(),
                ),
                (
                    "((extract(epoch from ts) * 1000000)::bigint)::text".into(),
                    "CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', ts) AS CHAR)".into(),
                ),
                (
                    "((extract(epoch from tz) * 1000000)::bigint)::text".into(),
                    "CAST(CAST(UNIX_TIMESTAMP(tz) * 1000000 AS SIGNED) AS CHAR)".into(),
                ),
                ("encode(raw, 'hex')".into(), "LOWER(HEX(raw))".into()),
            ],
            "comp" => ["a", "b", "c", "note"]
                .iter()
                .map(|c| (format!("{c}::text"), format!("CAST({c} AS CHAR)")))
                .collect(),
            _ => ["id", "v", "n"]
                .iter()
                .map(|c| (format!("{c}::text"), format!("CAST({c} AS CHAR)")))
                .collect(),
        };
        let order = if kind == "comp" { "a, b" } else { "id" };
        match self {
            Sql::Pg => {
                let row: Vec<String> = cols
                    .iter()
                    .map(|(p, _)| format!("coalesce({p}, '~')"))
                    .collect();
                format!(
                    "SELECT COUNT(*), md5(string_agg(concat_ws('|', {}), ',' ORDER BY {order})) FROM {table}",
                    row.join(", ")
                )
            }
            Sql::My => {
                let row: Vec<String> = cols
                    .iter()
                    .map(|(_, m)| format!("COALESCE({m}, '~')"))
                    .collect();
                format!(
                    "SET STATEMENT group_concat_max_len = 1000000000 FOR SELECT COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', {}) ORDER BY {order} SEPARATOR ',')) FROM {table}",
                    row.join(", ")
                )
            }
        }
    }
}

/// A connection to one server of the matrix.
#[derive(Clone)]
enum Db {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
}

impl Db {
    async fn connect(sql: Sql, url: &str) -> Db {
        match sql {
            Sql::Pg => Db::Pg(pg_pool(url).await),
            Sql::My => Db::My(
                sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(2)
                    .connect(url)
                    .await
                    .unwrap(),
            ),
        }
    }

    fn sql(&self) -> Sql {
        match self {
            Db::Pg(_) => Sql::Pg,
            Db::My(_) => Sql::My,
        }
    }

    /// Run statements (one transaction when they say so), in the UTC session.
    async fn exec(&self, sql: &str) {
        let sql = format!("{}; {sql}", self.sql().session());
        let r = match self {
            Db::Pg(p) => p
                .execute(sqlx::AssertSqlSafe(sql.clone()))
                .await
                .map(|_| ()),
            Db::My(p) => p
                .execute(sqlx::AssertSqlSafe(sql.clone()))
                .await
                .map(|_| ()),
        };
        r.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn sum(&self, table: &str, kind: &str) -> String {
        let sql = self.sql().checksum(table, kind);
        let (n, s): (i64, Option<String>) = match self {
            Db::Pg(p) => {
                let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_one(p)
                    .await
                    .unwrap();
                (r.get(0), r.get(1))
            }
            Db::My(p) => {
                let r = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_one(p)
                    .await
                    .unwrap();
                (r.get(0), r.get(1))
            }
        };
        format!("{n} rows, {}", s.unwrap_or_default())
    }
}

/// Deterministic pseudo-random numbers for the load.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// One transaction of the mixed load (60% update, 30% insert, 10% delete) over the tables.
fn mixed_transaction(
    sql: Sql,
    names: &[String; 5],
    rng: &mut Lcg,
    next: &mut i64,
    version: i64,
) -> String {
    let mut stmts = vec![match sql {
        Sql::Pg => "BEGIN".to_string(),
        Sql::My => "START TRANSACTION".to_string(),
    }];
    for _ in 0..3 {
        let t = rng.below(5) as usize;
        let (name, kind) = (&names[t], MATRIX_TABLES[t]);
        let r = rng.below(100);
        let k = rng.below(1200) as i64 + 1;
        let s = match (kind, r) {
            ("types", 0..60) => {
                let row = sql.types_row(k, version);
                let sets: Vec<String> = TYPES_COLS
                    .iter()
                    .zip(row.split(", ").collect::<Vec<_>>())
                    .skip(1)
                    .map(|(c, v)| format!("{c} = {v}"))
                    .collect();
                format!("UPDATE {name} SET {} WHERE id = {k}", sets.join(", "))
            }
            ("types", 60..90) => {
                *next += 1;
                format!(
                    "INSERT INTO {name} VALUES ({})",
                    sql.types_row(*next, version)
                )
            }
            ("types", _) => format!("DELETE FROM {name} WHERE id = {k}"),
            ("comp", 0..60) => format!(
                "UPDATE {name} SET c = c + 1, note = 'u{version}' WHERE a = {}",
                k % 200
            ),
            ("comp", 60..90) => {
                *next += 1;
                format!(
                    "INSERT INTO {name} VALUES ({}, 'n{}', {}, NULL)",
                    *next,
                    *next,
                    *next * 3
                )
            }
            ("comp", _) => format!(
                "DELETE FROM {name} WHERE a = {} AND b = 'b{}'",
                k % 200,
                k % 5
            ),
            (_, 0..60) => {
                format!("UPDATE {name} SET v = 'v{version} ü', n = n + 1.25 WHERE id = {k}")
            }
            (_, 60..90) => {
                *next += 1;
                format!(
                    "INSERT INTO {name} VALUES ({}, NULL, -{}.50)",
                    *next,
                    *next % 1000
                )
            }
            (_, _) => format!("DELETE FROM {name} WHERE id = {k}"),
        };
        stmts.push(s);
    }
    stmts.push("COMMIT".to_string());
    stmts.join("; ")
}

/// Both sources (logical-replication PostgreSQL, binlog MariaDB) into both targets (PostgreSQL,
/// MariaDB), five tables each (one with every type, one with a composite key), under a mixed
/// load that starts while the copy runs: every target table ends equal to its source.
#[tokio::test]
async fn both_sources_into_both_targets_under_mixed_load() {
    let targets = [
        (Sql::Pg, PG_TARGET.to_string(), pg(PG_TARGET)),
        (Sql::My, MYSQL_TARGET.to_string(), mysql(MYSQL_TARGET)),
    ];
    let sources = [
        (Sql::Pg, pg_cdc_url(), "public"),
        (Sql::My, mysql_cdc_url(), "test"),
    ];
    let all = [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete];
    let mut runs = Vec::new();
    let mut loads = Vec::new();
    let mut checks = Vec::new();
    for (si, (src_sql, src_url, schema)) in sources.iter().enumerate() {
        let src = Db::connect(*src_sql, src_url).await;
        let names: [String; 5] = MATRIX_TABLES.map(|k| unique(&format!("mx{si}_{k}")));
        for (name, kind) in names.iter().zip(MATRIX_TABLES) {
            let mut sql = vec![src_sql.create(name, kind)];
            if kind == "types" {
                let rows: Vec<String> = (1..=600)
                    .map(|id| format!("({})", src_sql.types_row(id, 0)))
                    .collect();
                sql.push(format!("INSERT INTO {name} VALUES {}", rows.join(", ")));
            } else if kind == "comp" {
                let rows: Vec<String> = (0..1000)
                    .map(|g| format!("({}, 'b{}', {}, 'c{g}')", g / 5, g % 5, g * 7))
                    .collect();
                sql.push(format!("INSERT INTO {name} VALUES {}", rows.join(", ")));
            } else {
                let rows: Vec<String> = (1..=1200)
                    .map(|g| format!("({g}, 'v{g}', {g}.25)"))
                    .collect();
                sql.push(format!("INSERT INTO {name} VALUES {}", rows.join(", ")));
            }
            src.exec(&sql.join("; ")).await;
            for (dst_sql, dst_url, _) in &targets {
                Db::connect(*dst_sql, dst_url)
                    .await
                    .exec(&dst_sql.create(name, kind))
                    .await;
            }
        }
        let tables: Vec<TableMapping> = names
            .iter()
            .zip(MATRIX_TABLES)
            .map(|(name, kind)| {
                let cols: &[&str] = match kind {
                    "types" => &TYPES_COLS,
                    "comp" => &["a", "b", "c", "note"],
                    _ => &["id", "v", "n"],
                };
                same_columns(TableId::new(*schema, name), name, cols)
            })
            .collect();
        let source = match src_sql {
            Sql::Pg => pg(src_url),
            Sql::My => mysql(src_url),
        };
        for (dst_sql, dst_url, target) in &targets {
            let task = Task::new(source.clone(), target.clone(), tables.clone());
            let run = task.start(&all);
            runs.push((format!("{src_sql:?} -> {dst_sql:?}"), task, run));
            checks.push((
                src.clone(),
                Db::connect(*dst_sql, dst_url).await,
                names.clone(),
            ));
        }
        // The load starts while the copies run.
        let (sql, load_db, names) = (*src_sql, src.clone(), names.clone());
        loads.push(tokio::spawn(async move {
            let mut rng = Lcg(42 + si as u64);
            let mut next = 100_000i64;
            for version in 1..=1000 {
                let tx = mixed_transaction(sql, &names, &mut rng, &mut next, version);
                load_db.exec(&tx).await;
            }
        }));
    }
    for l in loads {
        l.await.unwrap();
    }
    for (src, dst, names) in &checks {
        eventually("every target table equals its source", || async {
            for (name, kind) in names.iter().zip(MATRIX_TABLES) {
                let (a, b) = (src.sum(name, kind).await, dst.sum(name, kind).await);
                if a != b {
                    return Err(format!(
                        "{name} ({:?} -> {:?}): source {a}, target {b}",
                        src.sql(),
                        dst.sql()
                    ));
                }
            }
            Ok(())
        })
        .await;
    }
    for (route, task, r) in runs {
        let o = r.stop().await;
        assert_eq!(o.status, ExecuteStatus::Cancelled, "{route}: {}", o.remarks);
        assert_eq!(o.dirty_rows, 0, "{route}: nothing skipped: {}", o.remarks);
        task.source
            .change_log()
            .unwrap()
            .drop_reader(&fdi_cdc::reader_name(&task.id))
            .await
            .unwrap();
    }
    for (_, dst, names) in &checks {
        for name in names {
            dst.exec(&format!("DROP TABLE {name}")).await;
        }
    }
    for (src, _, names) in checks.iter().step_by(2) {
        for name in names {
            src.exec(&format!("DROP TABLE {name}")).await;
        }
    }
}
