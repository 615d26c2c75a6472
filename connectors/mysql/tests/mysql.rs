//! The MySQL connector (MariaDB) against the real server: discovery, filters, order, custom SQL,
//! every type round trip through reader -> writer -> reader, transactions.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimeUnit};
use fdi_connector::{Connector, ConnectorFactory, ErrorKind, SourceQuery, WriteMode};
use fdi_connector_compliance::{
    assert_abort_and_upsert_keep, assert_filters_and_order, ids, ordered_by_id, read_rows,
    unique_name, write_table,
};
use serde_json::json;

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

const DDL: &str = "id bigint PRIMARY KEY, code varchar(20) UNIQUE, small smallint NOT NULL DEFAULT 0, i int, flag tinyint, r float,
    d double, amount decimal(12,2), huge decimal(38,10), ui int unsigned, name varchar(64), note text, born date, at_time time(6),
    created datetime(6), created_tz timestamp(6) NULL, payload blob, doc json, ub bigint unsigned";

#[tokio::test]
async fn discovery_reports_columns_keys_and_tables() {
    let t = unique_name("c_pg_disc");
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

/// (Refused contents: the compliance suite.)
#[tokio::test]
async fn a_url_is_accepted_and_connect_errors_carry_the_cause() {
    let f = fdi_connector_mysql::Factory;
    f.validate(&json!({"url": "mysql://root@127.0.0.1/test"}))
        .unwrap();
    let c = f.create(&json!({"host": "127.0.0.1", "port": 3306, "user": "root", "database": "no_such_db_fdi"})).unwrap();
    let e = c.test_connect().await.unwrap_err();
    assert!(e.message.contains("no_such_db_fdi"), "{}", e.message);
}

#[tokio::test]
async fn every_filter_op_order_and_custom_sql() {
    let t = unique_name("c_pg_where");
    exec(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, name text); INSERT INTO {t} SELECT seq, CASE WHEN seq % 3 = 0 THEN NULL ELSE CONCAT('n', seq) END FROM seq_1_to_10"
    ))
    .await;
    let c = connector();
    assert_filters_and_order(&c, &t, "name", "n").await;
    let b = read_rows(
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
    exec(&format!("DROP TABLE {t}")).await;
}

#[tokio::test]
async fn every_type_round_trips_through_reader_and_writer() {
    let src = unique_name("c_pg_rt_src");
    let dst = unique_name("c_pg_rt_dst");
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
    let original = read_rows(&c, ordered_by_id(&src), 50).await;
    assert_eq!(original.num_rows(), 301);
    let bytes = write_table(&c, &dst, &original, WriteMode::Insert, false, true)
        .await
        .bytes;
    assert!(bytes > 30_000, "{bytes}");
    let copied = read_rows(&c, ordered_by_id(&dst), 1000).await;
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
    assert_abort_and_upsert_keep(&c, &dst, &copied).await;
    exec(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}
