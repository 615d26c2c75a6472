//! The SQLite connector on real files: discovery, filters, order, custom SQL, round trips,
//! transactions, missing files.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use fdi_connector::{Connector, ConnectorFactory, ErrorKind, OrderBy, SourceQuery, WriteMode};
use fdi_connector_compliance::{
    assert_abort_and_upsert_keep, assert_filters_and_order, ids, ordered_by_id, read_rows,
    unique_name, write_table,
};
use serde_json::json;

async fn new_db(ddl: &str) -> (std::path::PathBuf, sqlx::SqlitePool) {
    let path = std::env::temp_dir().join(format!("{}.sqlite", unique_name("fdi_sqlite")));
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
    assert_filters_and_order(&c, "t", "code", "c").await;
    let descending = |t: &str| SourceQuery::Table {
        table: t.into(),
        columns: vec![],
        filters: vec![],
        order_by: Some(OrderBy {
            column: "id".into(),
            descending: true,
        }),
    };
    let all = read_rows(&c, descending("t"), 3).await;
    assert_eq!(ids(&all), (1..=10).rev().collect::<Vec<_>>());
    let b = read_rows(
        &c,
        SourceQuery::Sql("SELECT id, upper(code) AS u FROM t WHERE id < 4 ORDER BY id".into()),
        10,
    )
    .await;
    assert_eq!(ids(&b), vec![1, 2, 3]);
    assert_eq!(b.column(1).as_string::<i32>().value(0), "C1");
    assert!(b.column(1).is_null(2));

    // Writer: commit writes every value; an aborted clear and an upsert change nothing.
    let stats = write_table(&c, "t2", &all, WriteMode::Insert, true, true).await;
    assert_eq!(stats.rows, 10);
    assert_eq!(read_rows(&c, descending("t2"), 100).await, all);
    let ascending = read_rows(&c, ordered_by_id("t2"), 100).await;
    assert_abort_and_upsert_keep(&c, "t2", &ascending).await;
    let _ = std::fs::remove_file(&path);
}
