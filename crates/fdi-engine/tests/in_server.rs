//! The same-server shortcut (one `INSERT … SELECT` inside the server) on the real PostgreSQL and
//! MariaDB: taken where it may be, never where it may not, and landing exactly what the streaming
//! path lands (checked by content against the source and against a streamed copy).

mod common;

use common::*;
use fdi_types::{ExecuteStatus, StepCode};
use serde_json::{Value, json};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

const PG_DDL: &str = "id bigint PRIMARY KEY, amount numeric(38,10), name varchar(64), note text,
    at timestamp(6), at_tz timestamptz, payload bytea, flag boolean";

async fn make_pg_source(table: &str, rows: i64) {
    exec_pg(&format!(
        "CREATE TABLE {table} ({PG_DDL});
         INSERT INTO {table} SELECT g, (CASE WHEN g < 0 THEN '-' ELSE '' END || '1234567890123456789012345678.' || lpad(abs(g)::text, 10, '0'))::numeric(38,10),
             CASE WHEN g % 10 = 0 THEN NULL ELSE 'naïve 名前 ' || g || ' 🚀 it''s \\ tab	' END,
             repeat('x', (g % 50)::int) || E'\\n line2',
             timestamp '2024-02-29 13:45:30.123456' + g * interval '1 minute',
             timestamptz '2024-02-29 13:45:30.5+00' + g * interval '1 hour',
             CASE WHEN g % 7 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END, g % 2 = 0
         FROM generate_series(-{rows} / 2, {rows} / 2) g"
    ))
    .await;
}

async fn pg_checksum(table: &str) -> String {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT md5(string_agg(concat_ws('|', id, amount, name, note, at, at_tz, encode(payload, 'hex'), flag,
             name IS NULL, payload IS NULL), E'\\n' ORDER BY id)) || ':' || count(*) FROM {table}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    row.get(0)
}

fn in_server(ran: &Ran) -> bool {
    ran.step(StepCode::READER_START)
        .is_some_and(|s| s.remarks.contains("in-server copy"))
}

fn copy_detail(src: &str, dst: &str, target_extra: Value) -> fdi_types::TaskDetail {
    let mut target = json!({"targetTable": dst, "isSupportInServerCopy": true});
    for (k, v) in target_extra.as_object().unwrap() {
        target[k] = v.clone();
    }
    detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src}, "targetSelectedDatasource": target}),
    )
}

#[tokio::test]
async fn pg_same_server_copy_lands_what_the_stream_lands() {
    let src = unique("is_pg_src");
    let fast = unique("is_pg_fast");
    let slow = unique("is_pg_slow");
    make_pg_source(&src, 3000).await;
    exec_pg(&format!(
        "CREATE TABLE {fast} ({PG_DDL}); CREATE TABLE {slow} ({PG_DDL})"
    ))
    .await;
    let ran = run(copy_detail(&src, &fast, json!({})), pg(), pg()).await;
    assert_succeeded(&ran);
    assert!(in_server(&ran), "{:?}", ran.codes());
    assert_eq!(ran.outcome.rows_read, 3001);
    assert_eq!(ran.outcome.rows_written, 3001);
    // The same steps, in the same order, as a streamed run.
    let codes = ran.codes();
    let pos = |c: u16| codes.iter().position(|x| *x == c).unwrap_or(usize::MAX);
    assert!(
        pos(100) < pos(104)
            && pos(104) < pos(101)
            && pos(500) < pos(504)
            && pos(504) < pos(501)
            && pos(501) < pos(901),
        "{codes:?}"
    );
    let streamed = run(
        copy_detail(&src, &slow, json!({"isSupportInServerCopy": false})),
        pg(),
        pg(),
    )
    .await;
    assert_eq!(streamed.outcome.status, ExecuteStatus::Success);
    assert!(!in_server(&streamed), "the task turned it off");
    let want = pg_checksum(&src).await;
    assert!(want.ends_with(":3001"), "{want}");
    assert_eq!(pg_checksum(&fast).await, want);
    assert_eq!(pg_checksum(&slow).await, want);
    exec_pg(&format!("DROP TABLE {src}, {fast}, {slow}")).await;
}

/// Index names with definitions, and the indexes' OIDs (they change when an index is built again).
async fn pg_indexes(table: &str) -> (String, String) {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT string_agg(c.relname || ' ' || pg_get_indexdef(i.indexrelid), '; ' ORDER BY c.relname),
                string_agg(i.indexrelid::text, ',' ORDER BY c.relname)
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '{table}'::regclass"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    (row.get(0), row.get(1))
}

/// A large same-server copy into a table the task clears builds the table's indexes after the
/// rows: the same content, the same index names and definitions, new index OIDs.
#[tokio::test]
async fn pg_large_same_server_copy_into_a_cleared_table_builds_indexes_after_the_rows() {
    let src = unique("is_pg_big_src");
    let dst = unique("is_pg_big_dst");
    make_pg_source(&src, 150_000).await;
    exec_pg(&format!(
        "ANALYZE {src}; CREATE TABLE {dst} ({PG_DDL});
         CREATE INDEX {dst}_name ON {dst} (name, at) WHERE flag;
         INSERT INTO {dst} (id) VALUES (-999999999)"
    ))
    .await;
    let before = pg_indexes(&dst).await;
    let ran = run(
        copy_detail(&src, &dst, json!({"isSupportClearTab": true})),
        pg(),
        pg(),
    )
    .await;
    assert_succeeded(&ran);
    assert!(in_server(&ran), "{:?}", ran.codes());
    assert_eq!(ran.outcome.rows_written, 150_001);
    assert_eq!(pg_checksum(&dst).await, pg_checksum(&src).await);
    let after = pg_indexes(&dst).await;
    assert_eq!(after.0, before.0, "the same indexes");
    assert_ne!(after.1, before.1, "built after the rows");
    exec_pg(&format!("DROP TABLE {src}, {dst}")).await;
}

#[tokio::test]
async fn pg_same_server_upsert_renames_filters_clears_and_numbers_the_batch() {
    let src = unique("is_up_src");
    let dst = unique("is_up_dst");
    exec_pg(&format!(
        "CREATE TABLE {src} (id int PRIMARY KEY, label text, price numeric(8,3));
         INSERT INTO {src} SELECT g, 'new ' || g, g * 1.5 FROM generate_series(1, 1000) g;
         CREATE TABLE {dst} (key int PRIMARY KEY, title text, price numeric(8,3), batch_no text);
         -- Half the rows already there: even ones unchanged, odd ones with other values.
         INSERT INTO {dst} SELECT g, CASE WHEN g % 2 = 0 THEN 'new ' || g ELSE 'old' END, g * 1.5, 'before'
             FROM generate_series(1, 500) g;
         INSERT INTO {dst} VALUES (5000, 'kept', 1, 'before')"
    ))
    .await;
    let mapping = json!([{"sourceColumn": "id", "targetColumn": "key"}, {"sourceColumn": "label", "targetColumn": "title"}, {"sourceColumn": "price", "targetColumn": "price"}]);
    let d = detail(json!({
        "sourceSelectedDatasource": {"sourceTable": src, "where": [{"field_name": "id", "op": "lessEqual", "value": "900"}]},
        "targetSelectedDatasource": {"targetTable": dst, "supportPartUpdate": true, "isSupportInServerCopy": true},
        "mappingTable": mapping}));
    let ran = run(d, pg(), pg()).await;
    assert_succeeded(&ran);
    assert!(in_server(&ran), "{:?}", ran.events);
    // 400 new rows + 250 changed rows; the 250 unchanged ones are not rewritten.
    assert_eq!(ran.outcome.rows_written, 650);
    let pool = pg_pool().await;
    let counts = |sql: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (i64, i64, i64, i64)>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let summary = format!(
        "SELECT count(*), count(*) FILTER (WHERE title = 'new ' || key AND price = key * 1.5),
                count(*) FILTER (WHERE batch_no = 'before'), count(DISTINCT batch_no) FROM {dst}"
    );
    // 900 copied (the filter) + row 5000 the source never had; batch_no is not mapped: the
    // 500 old rows and row 5000 keep theirs, the new ones have none.
    assert_eq!(counts(summary.clone()).await, (901, 900, 501, 1));
    // Cleared in the same transaction, with a batch number: only the source's rows remain.
    let d = detail(json!({
        "sourceSelectedDatasource": {"sourceTable": src},
        "targetSelectedDatasource": {"targetTable": dst, "isSupportClearTab": true, "batchNumber": "batch_no", "isSupportInServerCopy": true},
        "mappingTable": mapping}));
    let ran = run(d, pg(), pg()).await;
    assert!(
        in_server(&ran) && ran.outcome.rows_written == 1000,
        "{:?}",
        ran.outcome
    );
    assert_eq!(counts(summary).await, (1000, 1000, 0, 1));
    exec_pg(&format!("DROP TABLE {src}, {dst}")).await;
}

#[tokio::test]
async fn the_shortcut_is_not_taken_across_servers_types_or_dirty_row_handling() {
    let src = unique("is_no_src");
    let dst = unique("is_no_dst");
    exec_pg(&format!(
        "CREATE TABLE {src} (id int PRIMARY KEY, n text); INSERT INTO {src} VALUES (1, '10'), (2, '20');
         CREATE TABLE {dst} (id int PRIMARY KEY, n int)"
    ))
    .await;
    // A column that changes type: the engine casts (and would count dirty rows), not the server.
    let ran = run(copy_detail(&src, &dst, json!({})), pg(), pg()).await;
    assert_succeeded(&ran);
    assert!(!in_server(&ran));
    // PostgreSQL -> MariaDB: two servers.
    exec_mysql(&format!("CREATE TABLE {dst} (id int PRIMARY KEY, n text)")).await;
    let ran = run(copy_detail(&src, &dst, json!({})), pg(), mysql()).await;
    assert_succeeded(&ran);
    assert!(!in_server(&ran));
    // The same server named another way: not provably one scope.
    exec_pg(&format!(
        "DROP TABLE {dst}; CREATE TABLE {dst} (id int PRIMARY KEY, n text)"
    ))
    .await;
    let other_login = fdi_engine::Endpoint {
        datasource_type: fdi_connector_postgres::TYPE,
        connector: fdi_connector::ConnectorFactory::create(
            &fdi_connector_postgres::Factory,
            &json!({"url": "postgres://postgres@localhost:5432/test"}),
        )
        .unwrap(),
    };
    let ran = run(copy_detail(&src, &dst, json!({})), pg(), other_login).await;
    assert_succeeded(&ran);
    assert!(
        !in_server(&ran),
        "localhost is not 127.0.0.1 for the scope check"
    );
    exec_pg(&format!("DROP TABLE {src}, {dst}")).await;
    exec_mysql(&format!("DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn a_cancelled_in_server_copy_stops_on_the_server_and_commits_nothing() {
    let src = unique("is_cancel_src");
    let dst = unique("is_cancel_dst");
    exec_pg(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, payload text);
         INSERT INTO {src} SELECT g, md5(g::text) FROM generate_series(1, 1000) g;
         CREATE TABLE {dst} (id bigint PRIMARY KEY, payload text); INSERT INTO {dst} VALUES (-1, 'kept')"
    ))
    .await;
    // A source query that takes 20 s inside the server.
    let d = detail(json!({
        "sourceSelectedDatasource": {"isAddSql": true, "querySql": format!("SELECT id, payload FROM {src} CROSS JOIN pg_sleep(20)")},
        "targetSelectedDatasource": {"targetTable": dst, "isSupportClearTab": true, "isSupportInServerCopy": true}}));
    let cancel = CancellationToken::new();
    let c2 = cancel.clone();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        c2.cancel();
        std::time::Instant::now()
    });
    let ran = run_with(d, pg(), pg(), options(), cancel).await;
    let t0 = canceller.await.unwrap();
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        ran.outcome.status,
        ExecuteStatus::Cancelled,
        "{:?}",
        ran.outcome
    );
    assert!(in_server(&ran));
    let pool = pg_pool().await;
    let rows: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id, payload FROM {dst}"
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![(-1, "kept".to_string())],
        "clear + copy rolled back"
    );
    // The statement was stopped on the server, not left to run for 20 s.
    let mut left = i64::MAX;
    for _ in 0..50 {
        left = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%{src}%CROSS JOIN pg_sleep%' AND pid <> pg_backend_pid()"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the server still runs the copy");
    exec_pg(&format!("DROP TABLE {src}, {dst}")).await;
}

#[tokio::test]
async fn mariadb_same_server_copy_upserts_and_fails_rather_than_truncating() {
    let src = unique("is_my_src");
    let dst = unique("is_my_dst");
    exec_mysql(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, name varchar(64), amount decimal(38,10), at datetime(6), payload varbinary(32)) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    exec_mysql(&format!(
        "INSERT INTO {src} SELECT seq, CONCAT('naïve 名前 🚀 ', seq), -1234567890.0123456789 * seq, TIMESTAMP'2024-02-29 13:45:30.123456' + INTERVAL seq MINUTE,
             IF(seq % 7 = 0, NULL, UNHEX(MD5(seq))) FROM seq_1_to_2000"
    ))
    .await;
    exec_mysql(&format!(
        "CREATE TABLE {dst} LIKE {src}; INSERT INTO {dst} SELECT id, 'old', 0, at, NULL FROM {src} WHERE id <= 1000"
    ))
    .await;
    let ran = run(copy_detail(&src, &dst, json!({})), mysql(), mysql()).await;
    assert_succeeded(&ran);
    assert!(in_server(&ran), "{:?}", ran.events);
    let sum = |t: &str| {
        format!(
            "SELECT count(*), MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, amount, at, HEX(payload), payload IS NULL) ORDER BY id SEPARATOR '\\n')) FROM {t}"
        )
    };
    let pool = mysql_pool().await;
    let a: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sum(&src)))
        .fetch_one(&pool)
        .await
        .unwrap();
    let b: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sum(&dst)))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(a.0, 2000);
    assert_eq!(a, b);
    // A target column too short for the values: the run fails and nothing changes (no
    // truncated values committed).
    let short = unique("is_my_short");
    exec_mysql(&format!(
        "CREATE TABLE {short} (id bigint PRIMARY KEY, name varchar(5)); INSERT INTO {short} VALUES (1, 'kept')"
    ))
    .await;
    let d = detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src, "sourceSelectedColumnList": [{"field_name": "id"}, {"field_name": "name"}]},
        "targetSelectedDatasource": {"targetTable": short, "isSupportClearTab": true, "isSupportInServerCopy": true}}),
    );
    let ran = run(d, mysql(), mysql()).await;
    assert_eq!(
        ran.outcome.status,
        ExecuteStatus::Error,
        "{:?}",
        ran.outcome
    );
    assert!(in_server(&ran));
    let rows: Vec<(i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT id, name FROM {short}")))
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows, vec![(1, "kept".to_string())]);
    exec_mysql(&format!("DROP TABLE {src}, {dst}, {short}")).await;
}
