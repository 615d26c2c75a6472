//! Split-parallel reads (`splitPk`, `splitCount`) on the real PostgreSQL and MariaDB: every row
//! exactly once (negative keys, holes, far-away keys), a failed range fails the run and commits
//! nothing, a bad split key is refused naming the field.

mod common;

use common::*;
use fdi_types::{ExecuteStatus, StepCode};
use serde_json::json;
use sqlx::Row;

async fn pg_checksum(table: &str) -> String {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT md5(string_agg(concat_ws('|', id, label, amount, at), E'\\n' ORDER BY id)) || ':' || count(*) FROM {table}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    row.get(0)
}

fn reader_end(ran: &Ran) -> String {
    ran.step(StepCode::READER_END)
        .map(|s| s.remarks.clone())
        .unwrap_or_default()
}

const PG_DDL: &str = "id bigint PRIMARY KEY, label text, amount numeric(20,6), at timestamp(6)";

/// Keys from -60,000 to 60,000 without multiples of 7, plus two far-away keys.
async fn make_pg_source(table: &str) {
    exec_pg(&format!(
        "CREATE TABLE {table} ({PG_DDL});
         INSERT INTO {table} SELECT g, 'label ' || g || ' ü', g * 1.000001, timestamp '2024-02-29 00:00:00.000001' + g * interval '1 second'
             FROM generate_series(-60000, 60000) g WHERE g % 7 <> 0;
         INSERT INTO {table} VALUES (-9000000000000, 'far below', 1, now()), (9000000000000, 'far above', 2, now());
         ANALYZE {table}"
    ))
    .await;
}

#[tokio::test]
async fn pg_split_read_lands_every_row_once() {
    let src = unique("sp_pg_src");
    let dst = unique("sp_pg_dst");
    make_pg_source(&src).await;
    exec_pg(&format!("CREATE TABLE {dst} ({PG_DDL})")).await;
    let d = detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src, "splitPk": "id", "splitCount": 4},
        "targetSelectedDatasource": {"targetTable": dst}}),
    );
    let ran = run(d, pg(), pg()).await;
    assert_succeeded(&ran);
    assert!(
        reader_end(&ran).contains("4 readers over ranges of \"id\""),
        "{}",
        reader_end(&ran)
    );
    let want = pg_checksum(&src).await;
    assert!(want.ends_with(":102860"), "{want}");
    assert_eq!(pg_checksum(&dst).await, want);
    assert_eq!(ran.outcome.rows_read, 102_860);
    // The read step has one part per range, in key order: its condition and the rows it read,
    // checked against the table.
    let parts = &ran.step(StepCode::READ_DONE).expect("read done").sub_steps;
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert!(
        parts[0].remarks.starts_with("id < ") && parts[3].remarks.starts_with("id >= "),
        "{parts:?}"
    );
    assert_eq!(parts.iter().map(|p| p.data_count).sum::<u64>(), 102_860);
    for p in parts {
        let cond = p.remarks.replace(" <= id < ", " <= id AND id < ");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {src} WHERE {cond}"
        )))
        .fetch_one(&pg_pool().await)
        .await
        .unwrap();
        assert_eq!(p.data_count, n as u64, "{}", p.remarks);
    }
    // Filters still apply, each range within them.
    exec_pg(&format!("TRUNCATE {dst}")).await;
    let d = detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src, "splitPk": "id", "splitCount": 3,
            "where": [{"field_name": "id", "op": "lessEqual", "value": "0"}, {"andor": "or", "field_name": "label", "op": "equal", "value": "far above"}]},
        "targetSelectedDatasource": {"targetTable": dst}}),
    );
    let ran = run(d, pg(), pg()).await;
    assert_succeeded(&ran);
    assert!(
        reader_end(&ran).contains("3 readers"),
        "{}",
        reader_end(&ran)
    );
    let n: (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(*) FILTER (WHERE id > 0) FROM {dst}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    // 60,000 - 8,571 multiples of 7 below zero, minus zero itself, + the far one below + the far
    // one above (by its label).
    assert_eq!(n, (51_429 + 1 + 1, 1));
    exec_pg(&format!("DROP TABLE {src}, {dst}")).await;
}

#[tokio::test]
async fn mariadb_split_read_into_postgres() {
    let src = unique("sp_my_src");
    let dst = unique("sp_my_dst");
    exec_mysql(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, label varchar(64), amount decimal(20,6), at datetime(6)) DEFAULT CHARSET=utf8mb4"
    ))
    .await;
    exec_mysql(&format!(
        "INSERT INTO {src} SELECT CAST(seq AS SIGNED) - 30000, CONCAT('label ', seq, ' ü'), seq * 1.000001, TIMESTAMP'2024-02-29 00:00:00.000001' + INTERVAL seq SECOND
         FROM seq_1_to_60000 WHERE seq % 5 <> 0"
    ))
    .await;
    exec_pg(&format!("CREATE TABLE {dst} ({PG_DDL})")).await;
    let d = detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src, "splitPk": "id", "splitCount": 3},
        "targetSelectedDatasource": {"targetTable": dst}}),
    );
    let ran = run(d, mysql(), pg()).await;
    assert_succeeded(&ran);
    assert!(
        reader_end(&ran).contains("3 readers"),
        "{}",
        reader_end(&ran)
    );
    let (n, sum): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), sum(id)::bigint FROM {dst}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    let (want_n, want_sum): (i64, sqlx::types::Decimal) = sqlx::query_as(sqlx::AssertSqlSafe(
        format!("SELECT count(*), sum(id) FROM {src}"),
    ))
    .fetch_one(&mysql_pool().await)
    .await
    .unwrap();
    assert_eq!((n, sum.to_string()), (want_n, want_sum.to_string()));
    assert_eq!(n, 48_000);
    exec_mysql(&format!("DROP TABLE {src}")).await;
    exec_pg(&format!("DROP TABLE {dst}")).await;
}

#[tokio::test]
async fn a_failed_range_fails_the_run_and_commits_nothing() {
    let src = unique("sp_fail_src");
    let dst = unique("sp_fail_dst");
    make_pg_source(&src).await;
    // A value no reader can carry, in the last range only.
    exec_pg(&format!(
        "UPDATE {src} SET at = 'infinity' WHERE id = 9000000000000"
    ))
    .await;
    exec_pg(&format!(
        "CREATE TABLE {dst} ({PG_DDL}); INSERT INTO {dst} VALUES (1, 'kept', 0, now())"
    ))
    .await;
    let d = detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src, "splitPk": "id", "splitCount": 4},
        "targetSelectedDatasource": {"targetTable": dst, "isSupportClearTab": true}}),
    );
    let ran = run(d, pg(), pg()).await;
    assert_eq!(
        ran.outcome.status,
        ExecuteStatus::Error,
        "{:?}",
        ran.outcome
    );
    assert!(
        ran.outcome.remarks.contains("at"),
        "{}",
        ran.outcome.remarks
    );
    let rows: Vec<(i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT id, label FROM {dst}")))
            .fetch_all(&pg_pool().await)
            .await
            .unwrap();
    assert_eq!(rows, vec![(1, "kept".to_string())]);
    exec_pg(&format!("DROP TABLE {src}, {dst}")).await;
}

#[tokio::test]
async fn a_split_key_must_be_an_integer_column_without_nulls() {
    let src = unique("sp_bad_src");
    let dst = unique("sp_bad_dst");
    exec_pg(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, label text, n int); INSERT INTO {src} VALUES (1, 'a', NULL);
         CREATE TABLE {dst} (id bigint PRIMARY KEY, label text, n int)"
    ))
    .await;
    for (column, says) in [
        ("label", "must be an integer column"),
        ("n", "nullable"),
        ("nope", "nope"),
    ] {
        let d = detail(
            json!({"sourceSelectedDatasource": {"sourceTable": src, "splitPk": column},
            "targetSelectedDatasource": {"targetTable": dst}}),
        );
        let ran = run(d, pg(), pg()).await;
        assert_failed_saying(&ran, "sourceSelectedDatasource.splitPk");
        assert_failed_saying(&ran, says);
    }
    // splitCount out of range, splitPk on a custom query: refused when the task is written.
    for (source, field) in [
        (json!({"sourceTable": src, "splitCount": 0}), "splitCount"),
        (json!({"sourceTable": src, "splitCount": 33}), "splitCount"),
        (
            json!({"isAddSql": true, "querySql": "SELECT 1 AS id", "splitPk": "id"}),
            "splitPk",
        ),
    ] {
        let raw = json!({"sourceSelectedDatasource": source, "targetSelectedDatasource": {"targetTable": dst}});
        let e = fdi_types::TaskDetail::parse(&raw.to_string())
            .and_then(|d| d.validate())
            .expect_err("refused");
        assert!(e.message.contains(field), "{}", e.message);
    }
    // A one-row table with a split key: one range, read as usual.
    let d = detail(
        json!({"sourceSelectedDatasource": {"sourceTable": src, "splitPk": "id"},
        "targetSelectedDatasource": {"targetTable": dst}}),
    );
    let ran = run(d, pg(), pg()).await;
    assert_succeeded(&ran);
    assert_eq!(ran.outcome.rows_written, 1);
    exec_pg(&format!("DROP TABLE {src}, {dst}")).await;
}

/// Without `splitPk`, a table the source estimates at 500,000 rows or more is split on its
/// integer primary key; a smaller one, or one with `splitCount: 1`, is read by one reader.
#[tokio::test]
async fn a_large_table_is_split_on_its_key_without_asking() {
    let big = unique("sp_pg_auto_big");
    let dst = unique("sp_pg_auto_dst");
    exec_pg(&format!(
        "CREATE TABLE {big} (id bigint PRIMARY KEY, v int);
         INSERT INTO {big} SELECT g, g % 1000 FROM generate_series(1, 600000) g;
         ANALYZE {big};
         CREATE TABLE {dst} (id bigint PRIMARY KEY, v int)"
    ))
    .await;
    let copy = |source: serde_json::Value| {
        detail(json!({"sourceSelectedDatasource": source,
            "targetSelectedDatasource": {"targetTable": dst, "isSupportClearTab": true}}))
    };
    let ran = run(copy(json!({"sourceTable": big})), pg(), pg()).await;
    assert_succeeded(&ran);
    assert!(
        reader_end(&ran).contains("readers over ranges of \"id\" (1 to 600000)"),
        "{}",
        reader_end(&ran)
    );
    let sums: (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(DISTINCT id), sum(v)::bigint FROM {dst}"
    )))
    .fetch_one(&pg_pool().await)
    .await
    .unwrap();
    assert_eq!(sums, (600_000, 600 * (999 * 1000 / 2)));
    let ran = run(
        copy(json!({"sourceTable": big, "splitCount": 1})),
        pg(),
        pg(),
    )
    .await;
    assert_succeeded(&ran);
    assert_eq!(reader_end(&ran), "Reader end", "splitCount 1: one reader");
    assert_eq!(ran.outcome.rows_written, 600_000);
    exec_pg(&format!("DELETE FROM {big} WHERE id > 1000; ANALYZE {big}")).await;
    let ran = run(copy(json!({"sourceTable": big})), pg(), pg()).await;
    assert_eq!(reader_end(&ran), "Reader end", "a small table: one reader");
    assert_eq!(ran.outcome.rows_written, 1000);
    exec_pg(&format!("DROP TABLE {big}, {dst}")).await;
}
