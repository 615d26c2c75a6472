//! The PostgreSQL connector against the real server: discovery, filters, order, custom SQL,
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
    fdi_connector_postgres::Factory
        .create(&json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}))
        .unwrap()
}

async fn exec(sql: &str) {
    let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

const DDL: &str = "id bigint PRIMARY KEY, code varchar(20) UNIQUE, small smallint NOT NULL DEFAULT 0, i int, flag boolean, r real,
    d double precision, amount numeric(12,2), huge numeric(38,10), loose numeric, name varchar(64), note text, born date, at_time time,
    created timestamp(6), created_tz timestamptz, payload bytea, doc jsonb, uid uuid";

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
            "loose",
            "name",
            "note",
            "born",
            "at_time",
            "created",
            "created_tz",
            "payload",
            "doc",
            "uid"
        ]
    );
    let by = |n: &str| cols.iter().find(|c| c.name == n).unwrap();
    assert!(by("id").primary && !by("id").nullable && !by("id").unique);
    assert!(by("code").unique && !by("code").primary);
    assert!(!by("small").nullable && by("i").nullable);
    assert_eq!(by("code").length, Some(20));
    assert_eq!(by("code").native_type, "character varying");
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
            DataType::Boolean,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(12, 2),
            DataType::Decimal128(38, 10),
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Date32,
            DataType::Time64(TimeUnit::Microsecond),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DataType::Binary,
            DataType::Utf8,
            DataType::Utf8,
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
            "SELECT id, amount, name AS n, now() AS ts FROM {t}"
        ))
        .await
        .unwrap();
    let q: Vec<(String, DataType)> = q.into_iter().map(|c| (c.name, c.arrow_type)).collect();
    assert_eq!(q[0], ("id".to_string(), DataType::Int64));
    assert_eq!(q[2], ("n".to_string(), DataType::Utf8));
    assert_eq!(
        q[3].1,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let e = c.test_sql("SELEC nonsense").await.unwrap_err();
    assert!(e.message.contains("syntax"), "{}", e.message);
    exec(&format!("DROP TABLE {t}")).await;
}

/// (Refused contents: the compliance suite.)
#[tokio::test]
async fn a_url_is_accepted_and_connect_errors_carry_the_cause() {
    let f = fdi_connector_postgres::Factory;
    f.validate(&json!({"url": "postgres://postgres@127.0.0.1/test"}))
        .unwrap();
    let c = f.create(&json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "no_such_db_fdi"})).unwrap();
    let e = c.test_connect().await.unwrap_err();
    assert!(e.message.contains("no_such_db_fdi"), "{}", e.message);
}

#[tokio::test]
async fn every_filter_op_order_and_custom_sql() {
    let t = unique_name("c_pg_where");
    exec(&format!(
        "CREATE TABLE {t} (id int PRIMARY KEY, name text); INSERT INTO {t} SELECT g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'n' || g END FROM generate_series(1, 10) g"
    ))
    .await;
    let c = connector();
    assert_filters_and_order(&c, &t, "name", "n").await;
    let b = read_rows(
        &c,
        SourceQuery::Sql(format!(
            "SELECT id * 2 AS id, upper(name) AS u FROM {t} WHERE id < 4;"
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
         INSERT INTO {src} SELECT g, 'c' || g, g % 100, g * 7, g % 2 = 0, g / 8.0, g / 3.0, g * 12.34, ('1234567890123456789.' || g)::numeric, g / 7.0,
            CASE WHEN g % 5 = 0 THEN NULL ELSE 'ü名🚀 '' \\ \t' || g END, repeat('z', g) || E'\\n\\r', date '1999-12-31' + g, time '00:00:01.5' + g * interval '1 min',
            timestamp '1970-01-01 00:00:00' - g * interval '1 day 1 microsecond', timestamptz '2024-01-01 00:00:00+05' + g * interval '1 s',
            CASE WHEN g % 4 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') || '\\x00'::bytea END, jsonb_build_object('g', g), md5(g::text)::uuid
         FROM generate_series(1, 300) g; INSERT INTO {src} (id) VALUES (0)"
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
    let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test")
        .await
        .unwrap();
    let sql = |t: &str| format!("SELECT md5(string_agg(x::text, '|' ORDER BY id)) FROM {t} x");
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

/// The ranges of a split read share one snapshot: a transaction committed after the readers were
/// opened, moving a row from one range into the other, is seen by neither range (without the
/// shared snapshot the first range would miss the row and the second would see it).
#[tokio::test]
async fn split_readers_read_one_snapshot() {
    use fdi_connector::ReadSpec;
    use fdi_types::{WhereCondition, WhereOp};
    let t = unique_name("pg_split_snap");
    exec(&format!(
        "CREATE TABLE {t} (id bigint PRIMARY KEY, v int);
         INSERT INTO {t} SELECT g, g FROM generate_series(1, 1000) g"
    ))
    .await;
    let c = connector();
    let range = |op, v: i64| ReadSpec {
        query: SourceQuery::Table {
            table: t.clone(),
            columns: vec![],
            filters: vec![WhereCondition {
                andor: None,
                field_name: "id".into(),
                field_type: None,
                op,
                value: Some(v.to_string()),
                min_value: None,
                max_value: None,
            }],
            order_by: None,
        },
        batch_rows: 100,
    };
    let readers = c
        .split_readers(vec![
            range(WhereOp::Less, 500),
            range(WhereOp::MoreEqual, 500),
        ])
        .await
        .unwrap();
    // Committed after the snapshot: id 5 moves from the first range to the second.
    exec(&format!("UPDATE {t} SET id = 5005, v = -5 WHERE id = 5")).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1000);
    let mut total = 0;
    let mut tasks = Vec::new();
    for mut r in readers {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            r.read(tx, tokio_util::sync::CancellationToken::new()).await
        }));
    }
    drop(tx);
    let mut seen = Vec::new();
    while let Some(b) = rx.recv().await {
        seen.extend(ids(&b.rows));
    }
    for task in tasks {
        total += task.await.unwrap().unwrap();
    }
    seen.sort();
    assert_eq!(total, 1000);
    assert_eq!(
        seen,
        (1..=1000).collect::<Vec<i64>>(),
        "the rows as of the snapshot"
    );
    // A read opened now sees the move.
    let now = ids(&read_rows(&c, range(WhereOp::MoreEqual, 500).query, 100).await);
    assert!(now.contains(&5005) && now.len() == 502, "{}", now.len());
    // The snapshot's connections went back clean: a later transaction on the pool works.
    exec(&format!("DROP TABLE {t}")).await;
}
