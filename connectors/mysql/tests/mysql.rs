//! The MySQL connector (MariaDB) against the real server: discovery, filters, order, custom SQL,
//! every type round trip through reader -> writer -> reader, transactions.

use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use fdi_connector::{
    Connector, ConnectorFactory, ErrorKind, OrderBy, ReadSpec, SourceQuery, WriteMode, WriteSpec,
};
use fdi_types::{WhereCondition, WhereOp};
use serde_json::json;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn unique(p: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{p}_{}_{nanos}", std::process::id())
}

fn connector() -> Arc<dyn Connector> {
    fdi_connector_mysql::Factory.create(&json!({"host": "127.0.0.1", "port": 3306, "username": "root", "password": "", "database": "test"})).unwrap()
}

async fn exec(sql: &str) {
    let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn read_all(c: &Arc<dyn Connector>, query: SourceQuery, batch_rows: usize) -> RecordBatch {
    let mut reader = c.reader(ReadSpec { query, batch_rows }).await.unwrap();
    let schema = reader.schema();
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let collect = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(b) = rx.recv().await.map(|b: fdi_connector::SourceBatch| b.rows) {
            v.push(b);
        }
        v
    });
    let n = reader.read(tx, CancellationToken::new()).await.unwrap();
    let batches = collect.await.unwrap();
    assert!(batches.iter().all(|b| b.num_rows() <= batch_rows));
    let all = concat_batches(&schema, &batches).unwrap();
    assert_eq!(all.num_rows() as u64, n);
    all
}

fn table(t: &str) -> SourceQuery {
    SourceQuery::Table {
        table: t.into(),
        columns: vec![],
        filters: vec![],
        order_by: Some(OrderBy {
            column: "id".into(),
            descending: false,
        }),
    }
}

fn ids(b: &RecordBatch) -> Vec<i64> {
    let col = b.column_by_name("id").unwrap();
    let col = arrow::compute::cast(col, &DataType::Int64).unwrap();
    col.as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

const DDL: &str = "id bigint PRIMARY KEY, code varchar(20) UNIQUE, small smallint NOT NULL DEFAULT 0, i int, flag tinyint, r float,
    d double, amount decimal(12,2), huge decimal(38,10), ui int unsigned, name varchar(64), note text, born date, at_time time(6),
    created datetime(6), created_tz timestamp(6) NULL, payload blob, doc json, ub bigint unsigned";

#[tokio::test]
async fn discovery_reports_columns_keys_and_tables() {
    let t = unique("c_pg_disc");
    exec(&format!("CREATE TABLE {t} ({DDL})")).await;
    let c = connector();
    c.test_connect().await.unwrap();
    let cols = c.columns(&t).await.unwrap();
    let names: Vec<&str> = cols.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "id",
            "code",
            "small",
            "i",
            "flag",
            "r",
            "d",
            "amount",
            "huge",
            "ui",
            "name",
            "note",
            "born",
            "at_time",
            "created",
            "created_tz",
            "payload",
            "doc",
            "ub"
        ]
    );
    let by = |n: &str| cols.iter().find(|c| c.name == n).unwrap();
    assert!(by("id").primary && !by("id").nullable && !by("id").unique);
    assert!(by("code").unique && !by("code").primary);
    assert!(!by("small").nullable && by("i").nullable);
    assert_eq!(by("code").length, Some(20));
    assert_eq!(by("code").native_type, "varchar");
    assert_eq!(by("ui").native_type, "int unsigned");
    assert_eq!(
        (by("amount").length, by("amount").decimal_digits),
        (Some(12), Some(2))
    );
    let types: Vec<DataType> = cols.iter().map(|c| c.arrow_type.clone()).collect();
    assert_eq!(
        types,
        vec![
            DataType::Int64,
            DataType::Utf8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int8,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(12, 2),
            DataType::Decimal128(38, 10),
            DataType::Int64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Date32,
            DataType::Time64(TimeUnit::Microsecond),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Binary,
            DataType::Utf8,
            DataType::Decimal128(20, 0),
        ]
    );
    let tables = c.list_tables(Some(&t.to_uppercase())).await.unwrap();
    assert_eq!(tables, vec![t.clone()]);
    assert!(
        !c.list_tables(Some("zz_no_such_table_zz"))
            .await
            .unwrap()
            .contains(&t)
    );
    let e = c.columns("no_such_table_here").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::User);
    assert!(e.message.contains("does not exist"), "{}", e.message);
    // Custom SQL: described without fetching.
    let q = c
        .test_sql(&format!(
            "SELECT id, amount, name AS n, CAST(now() AS DATETIME) AS ts FROM {t}"
        ))
        .await
        .unwrap();
    let q: Vec<(String, DataType)> = q.into_iter().map(|c| (c.name, c.arrow_type)).collect();
    assert_eq!(q[0], ("id".to_string(), DataType::Int64));
    assert_eq!(q[2], ("n".to_string(), DataType::Utf8));
    assert_eq!(q[3].1, DataType::Timestamp(TimeUnit::Microsecond, None));
    let e = c.test_sql("SELEC nonsense").await.unwrap_err();
    assert!(e.message.contains("SQL syntax"), "{}", e.message);
    exec(&format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn validate_names_the_field_and_connect_errors_carry_the_cause() {
    let f = fdi_connector_mysql::Factory;
    assert!(
        f.validate(&json!({"port": 3306, "user": "x"}))
            .unwrap_err()
            .message
            .starts_with("content.host")
    );
    assert!(
        f.validate(&json!({"host": "h", "port": "abc", "user": "x"}))
            .unwrap_err()
            .message
            .starts_with("content.port")
    );
    assert!(
        f.validate(&json!({"host": "h"}))
            .unwrap_err()
            .message
            .starts_with("content.user")
    );
    assert!(
        f.validate(&json!({"url": "postgres://x"}))
            .unwrap_err()
            .message
            .starts_with("content.url")
    );
    f.validate(&json!({"url": "mysql://root@127.0.0.1/test"}))
        .unwrap();
    let c = f.create(&json!({"host": "127.0.0.1", "port": 3306, "user": "root", "database": "no_such_db_fdi"})).unwrap();
    let e = c.test_connect().await.unwrap_err();
    assert!(e.message.contains("no_such_db_fdi"), "{}", e.message);
}

fn w(
    andor: Option<&str>,
    op: WhereOp,
    field: &str,
    value: Option<&str>,
    min: Option<&str>,
    max: Option<&str>,
) -> WhereCondition {
    WhereCondition {
        andor: andor.map(Into::into),
        field_name: field.into(),
        field_type: None,
        op,
        value: value.map(Into::into),
        min_value: min.map(Into::into),
        max_value: max.map(Into::into),
    }
}

#[tokio::test]
async fn every_filter_op_order_and_custom_sql() {
    let t = unique("c_pg_where");
    exec(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, name text); INSERT INTO {t} SELECT seq, CASE WHEN seq % 3 = 0 THEN NULL ELSE CONCAT('n', seq) END FROM seq_1_to_10"
    ))
    .await;
    let c = connector();
    let cases: Vec<(Vec<WhereCondition>, Vec<i64>)> = vec![
        (
            vec![w(None, WhereOp::Equal, "id", Some("4"), None, None)],
            vec![4],
        ),
        (
            vec![
                w(None, WhereOp::NotEqual, "id", Some("4"), None, None),
                w(Some("and"), WhereOp::Less, "id", Some("4"), None, None),
            ],
            vec![1, 2, 3],
        ),
        (
            vec![w(None, WhereOp::LessEqual, "id", Some("2"), None, None)],
            vec![1, 2],
        ),
        (
            vec![w(None, WhereOp::More, "id", Some("8"), None, None)],
            vec![9, 10],
        ),
        (
            vec![
                w(None, WhereOp::MoreEqual, "id", Some("9"), None, None),
                w(Some("or"), WhereOp::Equal, "name", Some("n1"), None, None),
            ],
            vec![1, 9, 10],
        ),
        (
            vec![w(None, WhereOp::IsNull, "name", None, None, None)],
            vec![3, 6, 9],
        ),
        (
            vec![
                w(None, WhereOp::NotNull, "name", None, None, None),
                w(Some("and"), WhereOp::More, "id", Some("6"), None, None),
            ],
            vec![7, 8, 10],
        ),
        (
            vec![w(None, WhereOp::Between, "id", None, Some("3"), Some("5"))],
            vec![3, 4, 5],
        ),
        (
            vec![w(
                None,
                WhereOp::NotBetween,
                "id",
                None,
                Some("2"),
                Some("9"),
            )],
            vec![1, 10],
        ),
        (
            vec![w(None, WhereOp::InList, "id", Some("2, 5,7"), None, None)],
            vec![2, 5, 7],
        ),
        (
            vec![w(
                None,
                WhereOp::NotInList,
                "id",
                Some("1,2,3,4,5,6,7"),
                None,
                None,
            )],
            vec![8, 9, 10],
        ),
        (
            vec![w(
                None,
                WhereOp::Equal,
                "name",
                Some("n1' OR '1'='1"),
                None,
                None,
            )],
            vec![],
        ),
    ];
    for (filters, expected) in cases {
        let q = SourceQuery::Table {
            table: t.clone(),
            columns: vec!["id".into()],
            filters: filters.clone(),
            order_by: Some(OrderBy {
                column: "id".into(),
                descending: false,
            }),
        };
        assert_eq!(ids(&read_all(&c, q, 4).await), expected, "{filters:?}");
    }
    let q = SourceQuery::Table {
        table: t.clone(),
        columns: vec!["name".into(), "id".into()],
        filters: vec![],
        order_by: Some(OrderBy {
            column: "id".into(),
            descending: true,
        }),
    };
    let b = read_all(&c, q, 3).await;
    assert_eq!(b.schema().field(0).name(), "name");
    assert_eq!(ids(&b), (1..=10).rev().collect::<Vec<_>>());
    let b = read_all(
        &c,
        SourceQuery::Sql(format!(
            "SELECT id * 2 AS id, upper(name) AS u FROM {t} WHERE id < 4 ORDER BY id;"
        )),
        100,
    )
    .await;
    assert_eq!(ids(&b), vec![2, 4, 6]);
    assert_eq!(b.column(1).as_string::<i32>().value(0), "N1");
    assert!(b.column(1).is_null(2));
    let e = c
        .reader(ReadSpec {
            query: SourceQuery::Table {
                table: t.clone(),
                columns: vec!["nope".into()],
                filters: vec![],
                order_by: None,
            },
            batch_rows: 10,
        })
        .await
        .err()
        .expect("missing column refused");
    assert!(e.message.contains("nope"), "{}", e.message);
    exec(&format!("DROP TABLE {t}")).await;
}

async fn write(
    c: &Arc<dyn Connector>,
    t: &str,
    batch: RecordBatch,
    mode: WriteMode,
    clear: bool,
    commit: bool,
) -> u64 {
    let cols = c.columns(t).await.unwrap();
    let cols = batch
        .schema()
        .fields()
        .iter()
        .map(|f| cols.iter().find(|c| c.name == *f.name()).unwrap().clone())
        .collect();
    let mut w = c
        .writer(WriteSpec {
            table: t.into(),
            columns: cols,
            mode,
            clear_table: clear,
        })
        .await
        .unwrap();
    w.begin().await.unwrap();
    let mut bytes = 0;
    for start in (0..batch.num_rows()).step_by(64) {
        let len = 64.min(batch.num_rows() - start);
        let s = w.write(batch.slice(start, len)).await.unwrap();
        assert_eq!(s.rows, len as u64);
        bytes += s.bytes;
    }
    if commit {
        w.commit().await.unwrap()
    } else {
        w.abort().await.unwrap()
    }
    bytes
}

#[tokio::test]
async fn every_type_round_trips_through_reader_and_writer() {
    let src = unique("c_pg_rt_src");
    let dst = unique("c_pg_rt_dst");
    exec(&format!(
        "CREATE TABLE {src} ({DDL}); CREATE TABLE {dst} ({DDL});
         INSERT INTO {src} SELECT seq, CONCAT('c', seq), seq % 100, seq * 7, seq % 2, seq / 8.0, seq / 3.0, seq * 12.34, CONCAT('1234567890123456789.', seq),
            4294967295 - seq, CASE WHEN seq % 5 = 0 THEN NULL ELSE CONCAT('ü名🚀 '' \\\\ \t', seq) END, CONCAT(REPEAT('z', seq), '\n\r\0'),
            '1999-12-31' + INTERVAL seq DAY, SEC_TO_TIME(seq * 60 + 1.5), '1970-01-02 00:00:00' + INTERVAL seq DAY + INTERVAL seq MICROSECOND,
            '2024-01-01 00:00:00' + INTERVAL seq SECOND, CASE WHEN seq % 4 = 0 THEN NULL ELSE CONCAT(UNHEX(MD5(seq)), CHAR(0)) END,
            JSON_OBJECT('g', seq), 18446744073709551615 - seq
         FROM seq_1_to_300; INSERT INTO {src} (id) VALUES (0)"
    ))
    .await;
    let c = connector();
    let original = read_all(&c, table(&src), 50).await;
    assert_eq!(original.num_rows(), 301);
    let bytes = write(&c, &dst, original.clone(), WriteMode::Insert, false, true).await;
    assert!(bytes > 30_000, "{bytes}");
    let copied = read_all(&c, table(&dst), 1000).await;
    assert_eq!(original, copied);
    // Written with the writer, checked by the server itself.
    let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test")
        .await
        .unwrap();
    sqlx::raw_sql("SET SESSION group_concat_max_len = 100000000")
        .execute(&pool)
        .await
        .unwrap();
    let sql = |t: &str| {
        format!(
            "SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, code, small, i, flag, r, d, amount, huge, ui, name, note, born, at_time, created, created_tz, HEX(payload), doc, ub) ORDER BY id)) FROM {t}"
        )
    };
    let a: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql(&src)))
        .fetch_one(&pool)
        .await
        .unwrap();
    let b: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql(&dst)))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(a, b);
    // Abort: nothing visible; clear_table + upsert inside one transaction.
    write(
        &c,
        &dst,
        original.slice(0, 10),
        WriteMode::Insert,
        true,
        false,
    )
    .await;
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {dst}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 301, "aborted clear + insert left the table as it was");
    write(
        &c,
        &dst,
        original.slice(0, 10),
        WriteMode::Upsert {
            keys: vec!["id".into()],
            part_update: true,
        },
        false,
        true,
    )
    .await;
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {dst}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 301);
    exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn reader_stops_promptly_when_cancelled() {
    let t = unique("c_pg_cancel");
    exec(&format!(
        "CREATE TABLE {t} (id bigint); INSERT INTO {t} SELECT seq FROM seq_1_to_300000"
    ))
    .await;
    let c = connector();
    let mut reader = c
        .reader(ReadSpec {
            query: table(&t),
            batch_rows: 1000,
        })
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let task = tokio::spawn(async move { reader.read(tx, c2).await });
    let first = rx.recv().await.unwrap().rows;
    assert_eq!(first.num_rows(), 1000);
    cancel.cancel();
    let t0 = std::time::Instant::now();
    let r = task.await.unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(r.unwrap_err().kind, ErrorKind::Cancelled);
    exec(&format!("DROP TABLE {t}")).await;
}
