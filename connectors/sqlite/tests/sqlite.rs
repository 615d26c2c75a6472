//! The SQLite connector on real files: discovery, filters, order, custom SQL, round trips,
//! transactions, missing files.

use std::sync::Arc;
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
use tokio_util::sync::CancellationToken;

async fn new_db(ddl: &str) -> (std::path::PathBuf, sqlx::SqlitePool) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path =
        std::env::temp_dir().join(format!("fdi_sqlite_{}_{nanos}.sqlite", std::process::id()));
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl.to_string()))
        .execute(&pool)
        .await
        .unwrap();
    (path, pool)
}

fn connector(path: &std::path::Path) -> Arc<dyn Connector> {
    fdi_connector_sqlite::Factory::new(fdi_connector::FilesRoot::new(std::env::temp_dir()).unwrap())
        .create(&json!({"url": path.display().to_string()}))
        .unwrap()
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
    let all = concat_batches(&schema, &collect.await.unwrap()).unwrap();
    assert_eq!(all.num_rows() as u64, n);
    all
}

fn ids(b: &RecordBatch) -> Vec<i64> {
    b.column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.unwrap())
        .collect()
}

const DDL: &str = "CREATE TABLE t (id INTEGER PRIMARY KEY, code VARCHAR(20) UNIQUE, score REAL, amount DECIMAL(10,2), name TEXT NOT NULL,
    born DATE, at DATETIME, ok BOOLEAN, raw BLOB, free);";

#[tokio::test]
async fn discovery_and_missing_files() {
    let (path, _pool) = new_db(DDL).await;
    let c = connector(&path);
    c.test_connect().await.unwrap();
    let cols = c.columns("t").await.unwrap();
    let got: Vec<(&str, &DataType, bool, bool, bool)> = cols
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                &c.arrow_type,
                c.primary,
                c.unique,
                c.nullable,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("id", &DataType::Int64, true, false, false),
            ("code", &DataType::Utf8, false, true, true),
            ("score", &DataType::Float64, false, false, true),
            ("amount", &DataType::Decimal128(10, 2), false, false, true),
            ("name", &DataType::Utf8, false, false, false),
            ("born", &DataType::Date32, false, false, true),
            (
                "at",
                &DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
                false,
                true
            ),
            ("ok", &DataType::Boolean, false, false, true),
            ("raw", &DataType::Binary, false, false, true),
            ("free", &DataType::Utf8, false, false, true),
        ]
    );
    assert_eq!(
        c.list_tables(Some("T")).await.unwrap(),
        vec!["t".to_string()]
    );
    assert!(c.list_tables(Some("zz")).await.unwrap().is_empty());
    assert_eq!(c.columns("nope").await.unwrap_err().kind, ErrorKind::User);
    let q = c.test_sql("SELECT id, name AS n FROM t").await.unwrap();
    assert_eq!(
        q.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["id", "n"]
    );
    assert!(c.test_sql("SELEC x").await.is_err());
    let missing = connector(&path.with_extension("missing"));
    let e = missing.test_connect().await.unwrap_err();
    assert!(
        e.message.starts_with("content.url") && e.message.contains("does not exist"),
        "{}",
        e.message
    );
    assert!(
        !path.with_extension("missing").exists(),
        "a missing source file is not created"
    );
    assert!(
        fdi_connector_sqlite::Factory::new(
            fdi_connector::FilesRoot::new(std::env::temp_dir()).unwrap()
        )
        .validate(&json!({}))
        .unwrap_err()
        .message
        .starts_with("content.url")
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn filters_order_custom_sql_and_round_trip() {
    let (path, pool) = new_db(&format!("{DDL} CREATE TABLE t2 (id INTEGER PRIMARY KEY, code VARCHAR(20) UNIQUE, score REAL, amount DECIMAL(10,2), name TEXT NOT NULL,
        born DATE, at DATETIME, ok BOOLEAN, raw BLOB, free);")).await;
    for i in 1..=10i64 {
        sqlx::query("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(i)
            .bind(if i % 3 == 0 {
                None
            } else {
                Some(format!("c{i}"))
            })
            .bind(i as f64 / 2.0)
            .bind(format!("{i}.{:02}", i * 7 % 100))
            .bind(format!("ü {i} 'q' \\"))
            .bind(format!("2024-01-{i:02}"))
            .bind(format!("2024-01-{i:02} 10:11:12.{i:06}"))
            .bind(i % 2 == 0)
            .bind(vec![i as u8, 0u8, 200u8])
            .bind(i * 100)
            .execute(&pool)
            .await
            .unwrap();
    }
    let c = connector(&path);
    let w = |andor: Option<&str>, op, field: &str, value: Option<&str>| WhereCondition {
        andor: andor.map(Into::into),
        field_name: field.into(),
        field_type: None,
        op,
        value: value.map(Into::into),
        min_value: Some("3".into()),
        max_value: Some("5".into()),
    };
    let cases = vec![
        (vec![w(None, WhereOp::Equal, "id", Some("4"))], vec![4]),
        (
            vec![
                w(None, WhereOp::NotEqual, "id", Some("4")),
                w(Some("and"), WhereOp::Less, "id", Some("4")),
            ],
            vec![1, 2, 3],
        ),
        (
            vec![w(None, WhereOp::LessEqual, "id", Some("2"))],
            vec![1, 2],
        ),
        (vec![w(None, WhereOp::More, "id", Some("8"))], vec![9, 10]),
        (
            vec![
                w(None, WhereOp::MoreEqual, "id", Some("9")),
                w(Some("or"), WhereOp::Equal, "code", Some("c1")),
            ],
            vec![1, 9, 10],
        ),
        (vec![w(None, WhereOp::IsNull, "code", None)], vec![3, 6, 9]),
        (
            vec![
                w(None, WhereOp::NotNull, "code", None),
                w(Some("and"), WhereOp::More, "id", Some("6")),
            ],
            vec![7, 8, 10],
        ),
        (vec![w(None, WhereOp::Between, "id", None)], vec![3, 4, 5]),
        (
            vec![w(None, WhereOp::NotBetween, "id", None)],
            vec![1, 2, 6, 7, 8, 9, 10],
        ),
        (
            vec![w(None, WhereOp::InList, "id", Some("2,5, 7"))],
            vec![2, 5, 7],
        ),
        (
            vec![w(None, WhereOp::NotInList, "id", Some("1,2,3,4,5,6,7"))],
            vec![8, 9, 10],
        ),
    ];
    for (filters, expected) in cases {
        let q = SourceQuery::Table {
            table: "t".into(),
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
        table: "t".into(),
        columns: vec![],
        filters: vec![],
        order_by: Some(OrderBy {
            column: "id".into(),
            descending: true,
        }),
    };
    let all = read_all(&c, q, 3).await;
    assert_eq!(ids(&all), (1..=10).rev().collect::<Vec<_>>());
    let b = read_all(
        &c,
        SourceQuery::Sql("SELECT id, upper(code) AS u FROM t WHERE id < 4 ORDER BY id".into()),
        10,
    )
    .await;
    assert_eq!(ids(&b), vec![1, 2, 3]);
    assert_eq!(b.column(1).as_string::<i32>().value(0), "C1");
    assert!(b.column(1).is_null(2));

    // Writer: abort leaves nothing; commit writes every value; upsert updates.
    let cols = c.columns("t2").await.unwrap();
    let spec = |mode| WriteSpec {
        table: "t2".into(),
        columns: cols.clone(),
        mode,
        clear_table: true,
    };
    let mut wr = c.writer(spec(WriteMode::Insert)).await.unwrap();
    wr.begin().await.unwrap();
    wr.write(all.clone()).await.unwrap();
    wr.abort().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t2")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let mut wr = c.writer(spec(WriteMode::Insert)).await.unwrap();
    wr.begin().await.unwrap();
    let stats = wr.write(all.clone()).await.unwrap();
    assert_eq!(stats.rows, 10);
    wr.commit().await.unwrap();
    let q = |t: &str| SourceQuery::Table {
        table: t.into(),
        columns: vec![],
        filters: vec![],
        order_by: Some(OrderBy {
            column: "id".into(),
            descending: true,
        }),
    };
    assert_eq!(read_all(&c, q("t2"), 100).await, all);
    let mut wr = c
        .writer(WriteSpec {
            clear_table: false,
            ..spec(WriteMode::Upsert {
                keys: vec!["id".into()],
                part_update: true,
            })
        })
        .await
        .unwrap();
    wr.begin().await.unwrap();
    wr.write(all.slice(0, 3)).await.unwrap();
    wr.commit().await.unwrap();
    assert_eq!(read_all(&c, q("t2"), 100).await, all);
    let _ = std::fs::remove_file(&path);
}
