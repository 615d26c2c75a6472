//! Engine runs between the real PostgreSQL, MariaDB and SQLite: data checked on arrival.

mod common;

use common::*;
use fdi_types::{ExecuteStatus, StepCode};
use serde_json::json;
use sqlx::Row;
use tokio_util::sync::CancellationToken;

const PG_TYPES_DDL: &str = "id bigint PRIMARY KEY, small smallint, i int, flag boolean, r real, d double precision,
    amount numeric(20,6), big_amount numeric(38,10), name varchar(64), note text, born date, at_time time,
    created timestamp, created_tz timestamptz, payload bytea, doc json";

async fn make_pg_types_source(table: &str, rows: i64) {
    exec_pg(&format!(
        "CREATE TABLE {table} ({PG_TYPES_DDL});
         INSERT INTO {table} SELECT g, (g % 300)::smallint, g * 3, g % 2 = 0, g / 4.0, g / 3.0,
             (g * 1234.567891)::numeric(20,6), ('12345678901234567890.' || lpad(g::text, 10, '0'))::numeric(38,10),
             CASE WHEN g % 10 = 0 THEN NULL ELSE 'naïve 名前 ' || g || ' 🚀 it''s \\ tab	' END,
             repeat('x', (g % 50)::int) || E'\\n line2',
             date '2024-02-29' + g::int, time '13:45:30.123456' + g * interval '1 second',
             timestamp '2024-02-29 13:45:30.123456' + g * interval '1 minute',
             timestamptz '2024-02-29 13:45:30.5+00' + g * interval '1 hour',
             CASE WHEN g % 7 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
             json_build_object('k', g, 's', 'ü')
         FROM generate_series(1, {rows}) g;
         INSERT INTO {table} (id) VALUES ({rows} + 1)"
    ))
    .await;
}

/// The same value as text for every column, ordered by id.
async fn pg_checksum(table: &str, cols: &str) -> String {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT md5(string_agg(concat_ws('|', {cols}), E'\\n' ORDER BY id)) || ':' || count(*) FROM {table} t"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    row.get(0)
}

#[tokio::test]
async fn pg_to_pg_every_type_round_trips() {
    let src = unique("e_pg_src");
    let dst = unique("e_pg_dst");
    make_pg_types_source(&src, 1000).await;
    exec_pg(&format!("CREATE TABLE {dst} ({PG_TYPES_DDL})")).await;
    let ran = run(detail(json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst}})), pg(), pg()).await;
    assert_succeeded(&ran);
    assert_eq!(ran.outcome.rows_read, 1001);
    assert_eq!(ran.outcome.rows_written, 1001);
    assert!(ran.outcome.bytes_written > 100_000, "{:?}", ran.outcome);
    let cols = "id, small, i, flag, r, d, amount, big_amount, name, note, born, at_time, created, created_tz, encode(payload, 'hex'), doc::text, \
                (name IS NULL), (payload IS NULL), (doc IS NULL)";
    assert_eq!(pg_checksum(&src, cols).await, pg_checksum(&dst, cols).await);
    let codes = ran.codes();
    let pos = |c: u16| {
        codes
            .iter()
            .position(|x| *x == c)
            .unwrap_or_else(|| panic!("{c} missing in {codes:?}"))
    };
    assert!(
        pos(99) < pos(100) && pos(100) < pos(102) && pos(102) < pos(104) && pos(104) < pos(101),
        "{codes:?}"
    );
    assert!(
        pos(500) < pos(502) && pos(502) < pos(504) && pos(504) < pos(501) && pos(501) < pos(901),
        "{codes:?}"
    );
    assert_eq!(
        ran.step(StepCode::READER_START).map(|s| s.stage.as_str()),
        Some("pgreader")
    );
    assert_eq!(
        ran.step(StepCode::WRITER_START).map(|s| s.stage.as_str()),
        Some("pgwriter")
    );
    exec_pg(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn pg_to_mysql_with_mapping_filters_order_and_conversion() {
    let src = unique("e_pm_src");
    let dst = unique("e_pm_dst");
    make_pg_types_source(&src, 500).await;
    exec_mysql(&format!(
        "CREATE TABLE {dst} (id bigint PRIMARY KEY, full_name varchar(64), amount decimal(20,6), big decimal(38,10), i_text varchar(20),
           created datetime(6), created_tz timestamp(6) NULL, born date, at_time time(6), flag tinyint(1), payload blob, doc json, r float, d double)
         DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    let d = detail(json!({
    "sourceSelectedDatasource": {"sourceTable": src,
        "where": [{"field_name": "id", "op": "lessEqual", "value": "400"}, {"andor": "and", "field_name": "i", "op": "notEqual", "value": "30"}],
        "orderColumn": "id", "orderType": "DESC"},
    "targetSelectedDatasource": {"targetTable": dst},
    "mappingTable": [
        {"sourceColumn": "id", "targetColumn": "id"}, {"sourceColumn": "name", "targetColumn": "full_name"},
        {"sourceColumn": "amount", "targetColumn": "amount"}, {"sourceColumn": "big_amount", "targetColumn": "big"},
        {"sourceColumn": "i", "targetColumn": "i_text", "targetColumnType": "VARCHAR"},
        {"sourceColumn": "created", "targetColumn": "created"}, {"sourceColumn": "created_tz", "targetColumn": "created_tz"},
        {"sourceColumn": "born", "targetColumn": "born"}, {"sourceColumn": "at_time", "targetColumn": "at_time"},
        {"sourceColumn": "flag", "targetColumn": "flag"}, {"sourceColumn": "payload", "targetColumn": "payload"},
        {"sourceColumn": "doc", "targetColumn": "doc"}, {"sourceColumn": "r", "targetColumn": "r"}, {"sourceColumn": "d", "targetColumn": "d"}
    ]}));
    let ran = run(d, pg(), mysql()).await;
    assert_succeeded(&ran);
    assert_eq!(ran.outcome.rows_written, 399);
    assert_eq!(
        ran.step(StepCode::WRITER_START).map(|s| s.stage.as_str()),
        Some("mysqlwriter")
    );
    let p = pg_pool().await;
    let m = mysql_pool().await;
    let (pg_sum, pg_big, pg_names, pg_len): (String, String, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT sum(amount)::text, sum(big_amount)::text, count(name), sum(char_length(name))::bigint FROM {src} WHERE id <= 400 AND i <> 30"
    )))
    .fetch_one(&p)
    .await
    .unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(sum(amount) AS CHAR), CAST(sum(big) AS CHAR), count(full_name), CAST(sum(char_length(full_name)) AS SIGNED),
                CAST(sum(CAST(i_text AS SIGNED)) AS SIGNED), CAST(sum(flag) AS SIGNED) FROM {dst}"
    )))
    .fetch_one(&m)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), pg_sum, "exact decimals");
    assert_eq!(row.get::<String, _>(1), pg_big, "38-digit decimals");
    assert_eq!(row.get::<i64, _>(2), pg_names);
    assert_eq!(row.get::<i64, _>(3), pg_len, "unicode intact");
    assert_eq!(
        row.get::<i64, _>(4),
        (1..=400i64)
            .filter(|g| g * 3 != 30)
            .map(|g| g * 3)
            .sum::<i64>()
    );
    assert_eq!(
        row.get::<i64, _>(5),
        (1..=400i64).filter(|g| g * 3 != 30 && g % 2 == 0).count() as i64
    );
    let one = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT full_name, CAST(created AS CHAR), CAST(created_tz AS CHAR), CAST(born AS CHAR), CAST(at_time AS CHAR), HEX(payload),
                JSON_EXTRACT(doc, '$.k'), r, d FROM {dst} WHERE id = 7"
    )))
    .fetch_one(&m)
    .await
    .unwrap();
    assert_eq!(one.get::<String, _>(0), "naïve 名前 7 🚀 it's \\ tab\t");
    assert_eq!(one.get::<String, _>(1), "2024-02-29 13:52:30.123456");
    assert_eq!(one.get::<String, _>(2), "2024-02-29 20:45:30.500000");
    assert_eq!(one.get::<String, _>(3), "2024-03-07");
    assert_eq!(one.get::<String, _>(4), "13:45:37.123456");
    let (hex,): (String,) = sqlx::query_as("SELECT upper(md5('7'))")
        .fetch_one(&p)
        .await
        .unwrap();
    assert_eq!(
        one.get::<Option<String>, _>(5),
        None,
        "7 % 7 == 0 -> NULL payload"
    );
    let _ = hex;
    let (hex8,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT HEX(payload) FROM {dst} WHERE id = 8"
    )))
    .fetch_one(&m)
    .await
    .unwrap();
    let (pg_hex8,): (String,) = sqlx::query_as("SELECT upper(md5('8'))")
        .fetch_one(&p)
        .await
        .unwrap();
    assert_eq!(hex8, pg_hex8);
    assert_eq!(one.get::<f32, _>(7), 1.75);
    assert!((one.get::<f64, _>(8) - 7.0 / 3.0).abs() < 1e-12);
    exec_pg(&format!("DROP TABLE {src}")).await;
    exec_mysql(&format!("DROP TABLE {dst}")).await;
}

const MY_DDL: &str = "id int PRIMARY KEY, label varchar(40), price decimal(8,3), seen datetime(6), day date, flag tinyint(1),
    big bigint unsigned, blob_col varbinary(16), txt text";

async fn make_mysql_source(table: &str, rows: i64) {
    exec_mysql(&format!(
        "CREATE TABLE {table} ({MY_DDL}) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    let values: Vec<String> = (1..=rows)
        .map(|i| {
            let label = if i % 9 == 0 { "NULL".to_string() } else { format!("'ü label {i} \\\\ ''q'''") };
            format!(
                "({i}, {label}, {}.{:03}, '2023-05-01 10:00:00.{:06}' + INTERVAL {i} HOUR, '2023-01-01' + INTERVAL {i} DAY, {}, {}, UNHEX(MD5({i})), REPEAT('t', {}))",
                i * 3,
                i % 1000,
                i,
                i % 2,
                18_000_000_000_000_000_000u64 - i as u64,
                i % 30
            )
        })
        .collect();
    for chunk in values.chunks(500) {
        exec_mysql(&format!("INSERT INTO {table} VALUES {}", chunk.join(","))).await;
    }
}

async fn mysql_checksum(table: &str) -> (i64, String, String, i64, String) {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), CAST(sum(price) AS CHAR), CAST(sum(big) AS CHAR), CAST(sum(char_length(label)) AS SIGNED),
                MD5(GROUP_CONCAT(CONCAT_WS('|', id, label, price, seen, day, flag, big, HEX(blob_col), txt) ORDER BY id SEPARATOR '\\n'))
         FROM {table}"
    )))
    .fetch_one(&mysql_pool().await)
    .await
    .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

#[tokio::test]
async fn mysql_to_mysql_clear_table_and_batch_number() {
    exec_mysql("SET GLOBAL group_concat_max_len = 16777216").await;
    let src = unique("e_mm_src");
    let dst = unique("e_mm_dst");
    make_mysql_source(&src, 700).await;
    exec_mysql(&format!(
        "CREATE TABLE {dst} ({MY_DDL}, batch_no varchar(64)) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    exec_mysql(&format!(
        "INSERT INTO {dst} (id, label) VALUES (100000, 'stale')"
    ))
    .await;
    let d = detail(json!({"sourceSelectedDatasource": {"sourceTable": src},
        "targetSelectedDatasource": {"targetTable": dst, "isSupportClearTab": true, "batchNumber": "batch_no"}}));
    let ran = run(d, mysql(), mysql()).await;
    assert_succeeded(&ran);
    assert_eq!(ran.outcome.rows_written, 700);
    assert_eq!(mysql_checksum(&src).await, mysql_checksum(&dst).await);
    let (n, ids): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT batch_no) FROM {dst}"
    )))
    .fetch_one(&mysql_pool().await)
    .await
    .unwrap();
    assert_eq!((n, ids), (700, 1), "stale row cleared, one batch id");
    let (len,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT CAST(min(char_length(batch_no)) AS SIGNED) FROM {dst}"
    )))
    .fetch_one(&mysql_pool().await)
    .await
    .unwrap();
    assert!(len >= 14);
    exec_mysql(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn mysql_to_pg_and_back() {
    let src = unique("e_mp_src");
    let mid = unique("e_mp_mid");
    let back = unique("e_mp_back");
    make_mysql_source(&src, 300).await;
    exec_pg(&format!(
        "CREATE TABLE {mid} (id int PRIMARY KEY, label text, price numeric(8,3), seen timestamp, day date, flag smallint, big numeric(20,0), blob_col bytea, txt text)"
    ))
    .await;
    exec_mysql(&format!(
        "CREATE TABLE {back} ({MY_DDL}) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    let ran = run(detail(json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": mid}})), mysql(), pg()).await;
    assert_succeeded(&ran);
    let (sum, big): (String, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT sum(price)::text, sum(big)::text FROM {mid}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    let theirs = mysql_checksum(&src).await;
    assert_eq!((sum, big), (theirs.1.clone(), theirs.2.clone()));
    let ran = run(detail(json!({"sourceSelectedDatasource": {"sourceTable": mid}, "targetSelectedDatasource": {"targetTable": back}})), pg(), mysql()).await;
    assert_succeeded(&ran);
    assert_eq!(
        mysql_checksum(&back).await,
        theirs,
        "MySQL -> PG -> MySQL keeps every value"
    );
    exec_mysql(&format!("DROP TABLE {src}; DROP TABLE {back}")).await;
    exec_pg(&format!("DROP TABLE {mid}")).await;
}

#[tokio::test]
async fn sqlite_to_pg_and_mysql_and_back() {
    let (path, pool) = sqlite_file("e_sq").await;
    sqlx::raw_sql(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL, born TEXT, amount DECIMAL(10,2), day DATE, at DATETIME, ok BOOLEAN, raw BLOB)",
    )
    .execute(&pool)
    .await
    .unwrap();
    for i in 1..=250i64 {
        sqlx::query("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(i)
            .bind(if i % 5 == 0 {
                None
            } else {
                Some(format!("person ü{i} 'x'"))
            })
            .bind(i as f64 / 4.0)
            .bind("2020-01-02 03:04:05")
            .bind(format!("{}.{:02}", i, i % 100))
            .bind(format!("2021-03-{:02}", i % 28 + 1))
            .bind(format!("2022-04-05 06:07:{:02}", i % 60))
            .bind(i % 3 == 0)
            .bind(vec![i as u8, 0, 255])
            .execute(&pool)
            .await
            .unwrap();
    }
    let pg_t = unique("e_sq_pg");
    let my_t = unique("e_sq_my");
    exec_pg(&format!(
        "CREATE TABLE {pg_t} (id bigint PRIMARY KEY, name text, score float8, born timestamp, amount numeric(10,2), day date, at timestamp, ok boolean, raw bytea)"
    ))
    .await;
    exec_mysql(&format!(
        "CREATE TABLE {my_t} (id bigint PRIMARY KEY, name text, score double, born datetime, amount decimal(10,2), day date, at datetime, ok tinyint(1), raw blob) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    let to = |t: &str| {
        detail(
            json!({"sourceSelectedDatasource": {"sourceTable": "people"}, "targetSelectedDatasource": {"targetTable": t}}),
        )
    };
    let ran = run(to(&pg_t), sqlite(&path), pg()).await;
    assert_succeeded(&ran);
    assert_eq!(
        ran.step(StepCode::READER_START).map(|s| s.stage.as_str()),
        Some("sqlitereader")
    );
    let ran = run(to(&my_t), sqlite(&path), mysql()).await;
    assert_succeeded(&ran);
    let expected_sum: f64 = (1..=250).map(|i| i as f64 / 4.0).sum();
    let expected_amount: String = format!(
        "{:.2}",
        (1..=250)
            .map(|i| i as f64 + (i % 100) as f64 / 100.0)
            .sum::<f64>()
    );
    let (n, names, score, amount, born, oks, raw): (i64, i64, f64, String, String, i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(name), sum(score), sum(amount)::text, min(born)::text, count(*) FILTER (WHERE ok), (SELECT encode(raw, 'hex') FROM {pg_t} WHERE id = 1) FROM {pg_t}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    assert_eq!(
        (
            n,
            names,
            score,
            amount.clone(),
            born.as_str(),
            oks,
            raw.as_str()
        ),
        (
            250,
            200,
            expected_sum,
            expected_amount.clone(),
            "2020-01-02 03:04:05",
            83,
            "0100ff"
        )
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(name), sum(score), CAST(sum(amount) AS CHAR), CAST(max(at) AS CHAR), CAST(sum(ok) AS SIGNED) FROM {my_t}"
    )))
    .fetch_one(&mysql_pool().await)
    .await
    .unwrap();
    assert_eq!(row.get::<i64, _>(0), 250);
    assert_eq!(row.get::<i64, _>(1), 200);
    assert_eq!(row.get::<f64, _>(2), expected_sum);
    assert_eq!(row.get::<String, _>(3), expected_amount);
    assert_eq!(row.get::<String, _>(4), "2022-04-05 06:07:59");
    assert_eq!(row.get::<i64, _>(5), 83);

    // And back into SQLite from both.
    sqlx::raw_sql("CREATE TABLE from_pg (id INTEGER PRIMARY KEY, name TEXT, score REAL, amount DECIMAL(10,2), day DATE, at DATETIME, ok BOOLEAN, raw BLOB);
                   CREATE TABLE from_my (id INTEGER PRIMARY KEY, name TEXT, score REAL, amount DECIMAL(10,2), day DATE, at DATETIME, ok BOOLEAN, raw BLOB)")
        .execute(&pool)
        .await
        .unwrap();
    let back = |s: &str, t: &str| {
        let mapping: Vec<_> = ["id", "name", "score", "amount", "day", "at", "ok", "raw"]
            .iter()
            .map(|c| json!({"sourceColumn": c, "targetColumn": c}))
            .collect();
        detail(
            json!({"sourceSelectedDatasource": {"sourceTable": s}, "targetSelectedDatasource": {"targetTable": t}, "mappingTable": mapping}),
        )
    };
    let ran = run(back(&pg_t, "from_pg"), pg(), sqlite(&path)).await;
    assert_succeeded(&ran);
    let ran = run(back(&my_t, "from_my"), mysql(), sqlite(&path)).await;
    assert_succeeded(&ran);
    for t in ["people", "from_pg", "from_my"] {
        let (n, names, score, at, ok, raw): (i64, i64, f64, String, i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), count(name), sum(score), max(at), sum(ok), (SELECT hex(raw) FROM {t} WHERE id = 1) FROM {t}"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (n, names, score, at.as_str(), ok, raw.as_str()),
            (250, 200, expected_sum, "2022-04-05 06:07:59", 83, "0100FF"),
            "{t}"
        );
    }
    let (s_name,): (String,) = sqlx::query_as("SELECT name FROM from_my WHERE id = 3")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(s_name, "person ü3 'x'");
    exec_pg(&format!("DROP TABLE {pg_t}")).await;
    exec_mysql(&format!("DROP TABLE {my_t}")).await;
    pool.close().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn upsert_with_part_update_on_pg_mysql_and_sqlite() {
    let src = unique("e_up_src");
    let pg_t = unique("e_up_pg");
    let my_t = unique("e_up_my");
    exec_pg(&format!(
        "CREATE TABLE {src} (id int PRIMARY KEY, label text, price numeric(8,3))"
    ))
    .await;
    exec_pg(&format!(
        "INSERT INTO {src} VALUES (1, 'one', 1.125), (2, 'TWO', 2.5), (4, 'four', NULL)"
    ))
    .await;
    exec_pg(&format!("CREATE TABLE {pg_t} (id int PRIMARY KEY, label text, price numeric(8,3), batch_no text);
                      INSERT INTO {pg_t} VALUES (1, 'one', 1.125, 'old'), (2, 'two', 2.5, 'old'), (3, 'three', 3, 'old')"))
    .await;
    exec_mysql(&format!(
        "CREATE TABLE {my_t} (id int PRIMARY KEY, label text, price decimal(8,3), batch_no text)"
    ))
    .await;
    exec_mysql(&format!("INSERT INTO {my_t} VALUES (1, 'one', 1.125, 'old'), (2, 'two', 2.5, 'old'), (3, 'three', 3, 'old')")).await;
    let (path, pool) = sqlite_file("e_up").await;
    sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, label TEXT, price DECIMAL(8,3), batch_no TEXT);
                   INSERT INTO t VALUES (1, 'one', 1.125, 'old'), (2, 'two', 2.5, 'old'), (3, 'three', 3, 'old')")
        .execute(&pool)
        .await
        .unwrap();
    let d = |t: &str| {
        detail(
            json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": t, "supportPartUpdate": true},
            "mappingTable": [{"sourceColumn": "id", "targetColumn": "id"}, {"sourceColumn": "label", "targetColumn": "label"}, {"sourceColumn": "price", "targetColumn": "price"}]}),
        )
    };
    let expect = vec![
        (
            1,
            "one".to_string(),
            Some("1.125".to_string()),
            Some("old".to_string()),
        ),
        (
            2,
            "TWO".to_string(),
            Some("2.500".to_string()),
            Some("old".to_string()),
        ),
        (
            3,
            "three".to_string(),
            Some("3.000".to_string()),
            Some("old".to_string()),
        ),
        (4, "four".to_string(), None, None),
    ];
    for _ in 0..2 {
        let ran = run(d(&pg_t), pg(), pg()).await;
        assert_succeeded(&ran);
        let rows: Vec<(i32, String, Option<String>, Option<String>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, label, price::text, batch_no FROM {pg_t} ORDER BY id"
            )))
            .fetch_all(&pg_pool().await)
            .await
            .unwrap();
        assert_eq!(rows, expect);
        let ran = run(d(&my_t), pg(), mysql()).await;
        assert_succeeded(&ran);
        let rows: Vec<(i32, String, Option<String>, Option<String>)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, label, CAST(price AS CHAR), batch_no FROM {my_t} ORDER BY id"
            )))
            .fetch_all(&mysql_pool().await)
            .await
            .unwrap();
        assert_eq!(rows, expect);
        let ran = run(d("t"), pg(), sqlite(&path)).await;
        assert_succeeded(&ran);
        let rows: Vec<(i64, String, Option<f64>, Option<String>)> =
            sqlx::query_as("SELECT id, label, CAST(price AS REAL), batch_no FROM t ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        let labels: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
        assert_eq!(labels, ["one", "TWO", "three", "four"]);
        assert_eq!(rows[1].2, Some(2.5));
        assert_eq!(
            rows[0].3.as_deref(),
            Some("old"),
            "unmapped column untouched"
        );
    }
    exec_pg(&format!("DROP TABLE {src}; DROP TABLE {pg_t}")).await;
    exec_mysql(&format!("DROP TABLE {my_t}")).await;
    pool.close().await;
    let _ = std::fs::remove_file(&path);
}

/// A PostgreSQL table of 4 rows where row 2's `qty` is not a number, and an int target.
async fn dirty_source(tag: &str) -> (String, String) {
    let src = unique(&format!("e_dirty_src_{tag}"));
    let dst = unique(&format!("e_dirty_dst_{tag}"));
    exec_pg(&format!("CREATE TABLE {src} (id int, qty text); INSERT INTO {src} VALUES (1, '10'), (2, 'ten'), (3, NULL), (4, '40')")).await;
    exec_pg(&format!("CREATE TABLE {dst} (id int, qty int)")).await;
    (src, dst)
}

async fn count_and_sum(table: &str) -> (i64, Option<i64>) {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), sum(qty)::bigint FROM {table}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap()
}

fn dirty_detail(src: &str, dst: &str) -> fdi_types::TaskDetail {
    detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst}}),
    )
}

fn dirty_dir(tag: &str) -> (std::path::PathBuf, fdi_engine::DirtyDataPolicy) {
    let dir = std::env::temp_dir().join(unique(&format!("fdi_dirty_{tag}")));
    let policy = fdi_engine::DirtyDataPolicy {
        dir: Some(fdi_engine::DirtyDataDir {
            path: dir.clone(),
            shown: format!("dirty/{tag}"),
        }),
        max_rows: 10_000,
        max_ratio: None,
    };
    (dir, policy)
}

/// The JSON lines of the one file a run wrote into `dir`.
fn dirty_lines(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one file per run: {files:?}");
    std::fs::read_to_string(&files[0])
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn without_an_error_handler_the_first_dirty_row_fails_the_run() {
    let (src, dst) = dirty_source("fail").await;
    let ran = run(dirty_detail(&src, &dst), pg(), pg()).await;
    assert_eq!(
        ran.outcome.status,
        ExecuteStatus::Error,
        "{:?}",
        ran.outcome
    );
    let remarks = &ran.outcome.remarks;
    assert!(
        remarks.contains("dirty row 2 (id=2, qty=ten)")
            && remarks.contains("column qty: \"ten\" does not convert to Int32")
            && remarks.contains("task_detail.error_handler"),
        "{remarks}"
    );
    assert_eq!(count_and_sum(&dst).await, (0, None), "nothing committed");
    exec_pg(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn dirty_rows_go_to_the_error_handler_file_with_their_reasons() {
    let (src, dst) = dirty_source("file").await;
    let (dir, policy) = dirty_dir("file");
    let ran = run_with_dirty_policy(dirty_detail(&src, &dst), pg(), pg(), policy).await;
    assert_succeeded(&ran);
    assert_eq!(
        (
            ran.outcome.rows_read,
            ran.outcome.rows_written,
            ran.outcome.dirty_rows
        ),
        (4, 3, 1)
    );
    assert_eq!(count_and_sum(&dst).await, (3, Some(50)));
    let lines = dirty_lines(&dir);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["row"], 2);
    assert_eq!(lines[0]["data"], json!({"id": 2, "qty": "ten"}));
    assert_eq!(lines[0]["task_id"], "task-1");
    assert!(
        lines[0]["reason"].as_str().unwrap().contains("column qty"),
        "{}",
        lines[0]
    );
    let done = ran
        .events
        .iter()
        .find_map(|e| match e {
            fdi_engine::RunEvent::Step(s) if s.code == StepCode::WRITE_DONE => {
                Some(s.remarks.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(done.contains("1 dirty rows are in dirty/file/"), "{done}");
    exec_pg(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_run_past_its_dirty_row_limits_fails_and_commits_nothing() {
    // By count: no dirty row allowed.
    let (src, dst) = dirty_source("limit").await;
    let (dir, mut policy) = dirty_dir("limit");
    policy.max_rows = 0;
    let ran = run_with_dirty_policy(dirty_detail(&src, &dst), pg(), pg(), policy.clone()).await;
    assert_failed_saying(&ran, "1 dirty rows passed the limit of 0");
    assert_eq!(count_and_sum(&dst).await, (0, None));
    assert_eq!(
        dirty_lines(&dir).len(),
        1,
        "the row is kept even though the run failed"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // By share: 1 dirty row of 4 read is more than 20 %, not more than 30 %.
    policy.max_rows = 10;
    policy.max_ratio = Some(0.2);
    let ran = run_with_dirty_policy(dirty_detail(&src, &dst), pg(), pg(), policy.clone()).await;
    assert_failed_saying(
        &ran,
        "1 dirty rows of 4 read passed the limit of a 0.2 share",
    );
    assert_eq!(count_and_sum(&dst).await, (0, None));
    policy.max_ratio = Some(0.3);
    let ran = run_with_dirty_policy(dirty_detail(&src, &dst), pg(), pg(), policy).await;
    assert_succeeded(&ran);
    assert_eq!(count_and_sum(&dst).await, (3, Some(50)));
    exec_pg(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn custom_sql_source() {
    let src = unique("e_sql_src");
    let dst = unique("e_sql_dst");
    exec_mysql(&format!(
        "CREATE TABLE {src} (id int PRIMARY KEY, label varchar(20), price decimal(8,3))"
    ))
    .await;
    exec_mysql(&format!(
        "INSERT INTO {src} VALUES (1, 'a', 1.5), (2, 'b', 2.25), (3, 'c', 3)"
    ))
    .await;
    exec_pg(&format!(
        "CREATE TABLE {dst} (id int PRIMARY KEY, label text, price numeric(8,3))"
    ))
    .await;
    let d = detail(
        json!({"sourceSelectedDatasource": {"isAddSql": true, "querySql": format!("SELECT id + 100 AS id, upper(label) AS label, price * 2 AS price FROM {src} WHERE id <= 2;")},
        "targetSelectedDatasource": {"targetTable": dst}}),
    );
    let ran = run(d, mysql(), pg()).await;
    assert_succeeded(&ran);
    let rows: Vec<(i32, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, label, price::text FROM {dst} ORDER BY id"
    )))
    .fetch_all(&pg_pool().await)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            (101, "A".into(), "3.000".into()),
            (102, "B".into(), "4.500".into())
        ]
    );
    exec_mysql(&format!("DROP TABLE {src}")).await;
    exec_pg(&format!("DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn failing_target_is_error_503_and_commits_nothing() {
    let src = unique("e_fail_src");
    let dst = unique("e_fail_dst");
    exec_pg(&format!("CREATE TABLE {src} (id int, label text); INSERT INTO {src} SELECT g, CASE WHEN g = 950 THEN NULL ELSE 'x' END FROM generate_series(1, 1000) g")).await;
    for (target, name) in [(pg(), "pg"), (mysql(), "mysql")] {
        let t = format!("{dst}_{name}");
        let ddl = format!("CREATE TABLE {t} (id int, label varchar(10) NOT NULL)");
        if name == "pg" {
            exec_pg(&ddl).await
        } else {
            exec_mysql(&ddl).await
        }
        let ran = run(detail(json!({"sourceSelectedDatasource": {"sourceTable": src, "orderColumn": "id"}, "targetSelectedDatasource": {"targetTable": t}})), pg(), target).await;
        assert_eq!(
            ran.outcome.status,
            ExecuteStatus::Error,
            "{:?}",
            ran.outcome
        );
        assert_eq!(ran.outcome.status_code, StepCode::TARGET_ERROR);
        assert!(ran.codes().contains(&503), "{:?}", ran.codes());
        assert!(!ran.codes().contains(&901));
        assert!(
            ran.outcome.remarks.to_lowercase().contains("null"),
            "{}",
            ran.outcome.remarks
        );
        let count_sql = format!("SELECT count(*) FROM {t}");
        let n: i64 = if name == "pg" {
            sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                .fetch_one(&pg_pool().await)
                .await
                .unwrap()
        } else {
            sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                .fetch_one(&mysql_pool().await)
                .await
                .unwrap()
        };
        assert_eq!(n, 0, "{name}: a failed run commits nothing");
        if name == "pg" {
            exec_pg(&format!("DROP TABLE {t}")).await
        } else {
            exec_mysql(&format!("DROP TABLE {t}")).await
        }
    }
    exec_pg(&format!("DROP TABLE {src}")).await;
}

#[tokio::test]
async fn cancelled_run_leaves_the_target_unchanged() {
    let src = unique("e_cancel_src");
    let dst = unique("e_cancel_dst");
    exec_pg(&format!("CREATE TABLE {src} (id bigint, payload text); INSERT INTO {src} SELECT g, repeat(md5(g::text), 4) FROM generate_series(1, 600000) g")).await;
    exec_mysql(&format!("CREATE TABLE {dst} (id bigint, payload text)")).await;
    exec_mysql(&format!("INSERT INTO {dst} VALUES (-1, 'kept')")).await;
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let t0 = std::time::Instant::now();
        c2.cancel();
        t0
    });
    let mut opts = options();
    opts.batch_rows = 4096;
    let d = detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst, "isSupportClearTab": true}}),
    );
    let ran = run_with(d, pg(), mysql(), opts, cancel).await;
    let t0 = canceller.await.unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "ended {:?} after cancel",
        t0.elapsed()
    );
    assert_eq!(
        ran.outcome.status,
        ExecuteStatus::Cancelled,
        "{:?}",
        ran.outcome
    );
    let codes = ran.codes();
    assert!(
        codes.contains(&16) && codes.contains(&106) && codes.contains(&505),
        "{codes:?}"
    );
    assert!(
        ran.outcome.rows_written > 0,
        "it was cancelled mid-run: {:?}",
        ran.outcome
    );
    let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, payload FROM {dst}"
    )))
    .fetch_all(&mysql_pool().await)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![(-1, "kept".to_string())],
        "clear + partial writes rolled back"
    );
    exec_pg(&format!("DROP TABLE {src}")).await;
    exec_mysql(&format!("DROP TABLE {dst}")).await;
}

/// A TCP proxy to PostgreSQL that cuts the first connection once it has carried `cut_after`
/// bytes from the server (a server restart in the middle of a read), then forwards faithfully.
async fn cutting_pg_proxy(cut_after: usize) -> u16 {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(AtomicBool::new(false));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let cut = cut.clone();
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect("127.0.0.1:5432")
                    .await
                    .unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                let mut buf = vec![0u8; 64 * 1024];
                let mut carried = 0usize;
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    carried += n;
                    if carried > cut_after && !cut.swap(true, Ordering::SeqCst) {
                        break; // drop both directions mid-stream
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    port
}

#[tokio::test]
async fn a_connection_lost_mid_read_is_retried_and_the_run_lands_every_row_once() {
    let src = unique("e_retry_src");
    let dst = unique("e_retry_dst");
    exec_pg(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, note text);
         INSERT INTO {src} SELECT g, repeat('x', 100) || g FROM generate_series(1, 50000) g;
         CREATE TABLE {dst} (id bigint PRIMARY KEY, note text);"
    ))
    .await;
    let port = cutting_pg_proxy(1 << 20).await;
    let mut content = pg_content();
    content["port"] = json!(port);
    let source = fdi_engine::Endpoint {
        datasource_type: fdi_connector_postgres::TYPE,
        connector: {
            use fdi_connector::ConnectorFactory;
            fdi_connector_postgres::Factory.create(&content).unwrap()
        },
    };
    let mut opts = options();
    opts.batch_rows = 1000;
    opts.retry_backoff = std::time::Duration::from_millis(200);
    let ran = run_request(
        detail(json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": {"targetTable": dst}})),
        source,
        pg(),
        opts,
        CancellationToken::new(),
        None,
    )
    .await;
    assert_succeeded(&ran);
    assert_eq!(
        (ran.outcome.rows_read, ran.outcome.rows_written),
        (50_000, 50_000)
    );
    let codes: Vec<u16> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            fdi_engine::RunEvent::Step(s) => Some(s.code.0),
            _ => None,
        })
        .collect();
    let interrupted = codes
        .iter()
        .position(|c| *c == StepCode::READER_INTERRUPTED.0);
    let resumed = codes.iter().position(|c| *c == StepCode::READER_RESUMED.0);
    assert!(
        matches!((interrupted, resumed), (Some(i), Some(r)) if i < r),
        "one interruption then a resumption: {codes:?}"
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == StepCode::TASK_START.0)
            .count(),
        1,
        "{codes:?}"
    );
    assert_eq!(codes.last(), Some(&StepCode::RUN_FINISHED.0), "{codes:?}");
    let (n, distinct, sum): (i64, i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT id), sum(id)::bigint FROM {dst}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    assert_eq!((n, distinct, sum), (50_000, 50_000, 50_000 * 50_001 / 2));
    exec_pg(&format!("DROP TABLE {src}; DROP TABLE {dst}")).await;
}
