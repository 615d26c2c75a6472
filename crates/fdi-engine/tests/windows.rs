//! Incremental (windowed) reads against the real PostgreSQL, MariaDB and SQLite: three
//! consecutive half-open windows with inserts and updates between runs; every row whose cursor
//! falls before the last window's end is loaded exactly once (boundary rows included), rows with
//! a NULL cursor are loaded by the first window and counted by later ones.

mod common;

use std::collections::BTreeMap;

use chrono::{FixedOffset, TimeZone, Utc};
use common::*;
use fdi_engine::{Endpoint, IncrementalWindow};
use fdi_types::{ExecuteStatus, StepCode};
use serde_json::{Value, json};
use sqlx::Row;

/// 2024-03-01 00:00:00 UTC: the first window's start.
const T0: i64 = 1_709_251_200_000;
const MIN: i64 = 60_000;
/// Windows are one hour: [T0, T1), [T1, T2), [T2, T3).
const T1: i64 = T0 + 60 * MIN;
const T2: i64 = T0 + 120 * MIN;
const T3: i64 = T0 + 180 * MIN;

/// A database the tests read from or write to.
#[derive(Clone)]
enum Db {
    Pg,
    My,
    Lite(sqlx::SqlitePool, std::path::PathBuf),
}

impl Db {
    async fn exec(&self, sql: &str) {
        match self {
            Db::Pg => exec_pg(sql).await,
            Db::My => exec_mysql(sql).await,
            Db::Lite(pool, _) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// `(id, v)` pairs of a query selecting two integer columns, sorted.
    async fn pairs(&self, sql: &str) -> Vec<(i64, i64)> {
        let q = sqlx::AssertSqlSafe(sql.to_string());
        let mut out: Vec<(i64, i64)> = match self {
            Db::Pg => sqlx::query(q)
                .fetch_all(&pg_pool().await)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
            Db::My => sqlx::query(q)
                .fetch_all(&mysql_pool().await)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
            Db::Lite(pool, _) => sqlx::query(q)
                .fetch_all(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"))
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        };
        out.sort();
        out
    }

    fn endpoint(&self) -> Endpoint {
        match self {
            Db::Pg => pg(),
            Db::My => mysql(),
            Db::Lite(_, path) => sqlite(path),
        }
    }
}

/// Wall clock `YYYY-MM-DD HH:MM:SS[.ffffff]` of an instant (ms + µs) at a fixed offset, as
/// fdi writes timestamps into SQLite.
fn wall(ms: i64, micros: i64, offset_secs: i32) -> String {
    let at = Utc.timestamp_micros(ms * 1000 + micros).unwrap();
    let local = at.with_timezone(&FixedOffset::east_opt(offset_secs).unwrap());
    if (ms * 1000 + micros) % 1_000_000 == 0 {
        local.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    }
}

/// How one scenario's source holds its cursor.
struct Scenario {
    source: Db,
    target: Db,
    /// DDL type of the source's cursor column.
    cursor_type: &'static str,
    /// DDL type of the targets' copy of it.
    target_cursor_type: &'static str,
    /// Take the same-server shortcut (one INSERT ... SELECT per window) where it applies.
    in_server: bool,
    /// The task's `timeZone` (None: the default, UTC).
    task_zone: Option<&'static str>,
    /// The offset at which the test writes cursor literals into the source (the task's zone for
    /// wall-clock columns; UTC for MySQL TIMESTAMP, whose connection zone is UTC).
    write_offset_secs: i32,
}

impl Scenario {
    /// The literal of the cursor `minutes` after T0, shifted by `micros`.
    fn at(&self, minutes: i64, micros: i64) -> String {
        format!(
            "'{}'",
            wall(T0 + minutes * MIN, micros, self.write_offset_secs)
        )
    }

    fn detail(&self, src: &str, dst: &str, upsert: bool, batch_number: bool) -> Value {
        let mut source = json!({
            "sourceTable": src,
            "sourceSelectedColumnList": [{"field_name": "id"}, {"field_name": "v"}, {"field_name": "updated_at"}],
            "where": [{"field_name": "kind", "op": "notEqual", "value": "skip"}],
            "need_inc_migration": true,
            "sourceDateColumn": "updated_at",
            "dataTimestamp": T0,
            "compensation_time": 0,
        });
        if let Some(z) = self.task_zone {
            source["timeZone"] = json!(z);
        }
        let mut target = json!({"targetTable": dst, "supportPartUpdate": upsert,
            "isSupportInServerCopy": self.in_server});
        if batch_number {
            target["batchNumber"] = json!("run");
        }
        json!({"sourceSelectedDatasource": source, "targetSelectedDatasource": target})
    }

    /// Three windows, each run into an upsert target and an append-only log target.
    async fn run(&self, name: &str) {
        let src = unique(&format!("{name}_src"));
        let dst = unique(&format!("{name}_dst"));
        let log = unique(&format!("{name}_log"));
        let s = &self.source;
        let t = &self.target;
        s.exec(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, v bigint NOT NULL, kind varchar(8) NOT NULL, updated_at {})",
            self.cursor_type
        ))
        .await;
        t.exec(&format!(
            "CREATE TABLE {dst} (id bigint PRIMARY KEY, v bigint, updated_at {})",
            self.target_cursor_type
        ))
        .await;
        t.exec(&format!(
            "CREATE TABLE {log} (id bigint, v bigint, updated_at {}, run varchar(64))",
            self.target_cursor_type
        ))
        .await;

        // Initial rows: (id, kind, cursor). Values are id * 10.
        let mut rows: Vec<(i64, &str, Option<String>)> = (1..=20)
            .map(|id| (id, "a", Some(self.at((id - 1) * 9, 0))))
            .collect();
        rows.extend([
            (21, "a", Some(self.at(60, 0))),    // exactly T1: window 2
            (22, "a", Some(self.at(60, -1))),   // T1 - 1µs: window 1
            (23, "a", Some(self.at(120, 0))),   // exactly T2: window 3
            (24, "a", Some(self.at(180, 0))),   // exactly T3: never
            (25, "a", Some(self.at(210, 0))),   // after T3: never
            (26, "a", None),                    // NULL: window 1 (include_nulls)
            (27, "skip", None),                 // NULL but filtered out: never
            (28, "skip", Some(self.at(30, 0))), // filtered out: never
            (29, "a", Some(self.at(0, -1))),    // before T0: never
            (30, "a", None),                    // NULL: window 1
        ]);
        let values: Vec<String> = rows
            .iter()
            .map(|(id, kind, at)| {
                format!(
                    "({id}, {}, '{kind}', {})",
                    id * 10,
                    at.as_deref().unwrap_or("NULL")
                )
            })
            .collect();
        s.exec(&format!(
            "INSERT INTO {src} (id, v, kind, updated_at) VALUES {}",
            values.join(", ")
        ))
        .await;

        let window = |begin_ms, end_ms, include_nulls| IncrementalWindow {
            begin_ms,
            end_ms,
            include_nulls,
        };
        let run_both = |w: IncrementalWindow| {
            let up = detail(self.detail(&src, &dst, true, false));
            let ap = detail(self.detail(&src, &log, false, true));
            async move {
                let a = run_window(up, s.endpoint(), t.endpoint(), w).await;
                let b = run_window(ap, s.endpoint(), t.endpoint(), w).await;
                for r in [&a, &b] {
                    assert_eq!(
                        r.outcome.status,
                        ExecuteStatus::Success,
                        "{:?} {:?}",
                        r.outcome,
                        r.events
                    );
                }
                assert_eq!(a.outcome.rows_read, b.outcome.rows_read);
                for r in [&a, &b] {
                    let start = &r.step(StepCode::READER_START).unwrap().remarks;
                    assert!(
                        start.starts_with("Reader start: window [") && start.contains("updated_at"),
                        "{start}"
                    );
                    assert_eq!(start.contains("in-server copy"), self.in_server, "{start}");
                }
                (a, b)
            }
        };
        let reader_end = |r: &Ran| r.step(StepCode::READER_END).unwrap().remarks.clone();

        // Window 1 [T0, T1), with the NULL-cursor rows.
        let (a, b) = run_both(window(T0, T1, true)).await;
        assert_eq!(a.outcome.rows_read, 10, "ids 1..=7, 22, 26, 30");
        assert_eq!(reader_end(&a), "Reader end");
        assert_eq!(reader_end(&b), "Reader end");

        // Between runs: a new row in window 2, a NULL row no window will load, and a row of
        // window 1 updated into window 2.
        s.exec(&format!(
            "INSERT INTO {src} (id, v, kind, updated_at) VALUES (31, 310, 'a', {}), (33, 330, 'a', NULL)",
            self.at(70, 0)
        ))
        .await;
        s.exec(&format!(
            "UPDATE {src} SET v = 2000, updated_at = {} WHERE id = 2",
            self.at(80, 0)
        ))
        .await;

        // Window 2 [T1, T2).
        let (a, b) = run_both(window(T1, T2, false)).await;
        assert_eq!(a.outcome.rows_read, 10, "ids 8..=14, 21, 31, 2");
        let nulls =
            "Reader end: 3 rows have NULL in updated_at and are only loaded by the first run";
        assert_eq!(reader_end(&a), nulls);
        assert_eq!(reader_end(&b), nulls);

        // Between runs: a not-yet-read row changes, a row of window 2 moves to exactly T2, new
        // rows in window 3 (one a microsecond before T3) and exactly at T3.
        s.exec(&format!("UPDATE {src} SET v = 1500 WHERE id = 15"))
            .await;
        s.exec(&format!(
            "UPDATE {src} SET v = 3100, updated_at = {} WHERE id = 31",
            self.at(120, 0)
        ))
        .await;
        s.exec(&format!(
            "INSERT INTO {src} (id, v, kind, updated_at) VALUES (34, 340, 'a', {}), (35, 350, 'a', {}), (36, 360, 'a', {})",
            self.at(150, 0),
            self.at(180, -1),
            self.at(180, 0)
        ))
        .await;

        // Window 3 [T2, T3).
        let (a, _) = run_both(window(T2, T3, false)).await;
        assert_eq!(a.outcome.rows_read, 10, "ids 15..=20, 23, 31, 34, 35");
        assert_eq!(reader_end(&a), nulls);

        // The upsert target holds exactly the source rows the windows cover, with their latest
        // values: cursor in [T0, T3), or NULL and present at the first run.
        let expected = s
            .pairs(&format!(
                "SELECT id, v FROM {src} WHERE kind <> 'skip' AND ((updated_at >= {} AND updated_at < {}) OR id IN (26, 30))",
                self.at(0, 0),
                self.at(180, 0)
            ))
            .await;
        let got = t.pairs(&format!("SELECT id, v FROM {dst}")).await;
        assert_eq!(got.len(), 28, "{got:?}");
        assert_eq!(got, expected);
        let sum = |p: &[(i64, i64)]| p.iter().fold((0, 0), |(a, b), (i, v)| (a + i, b + v));
        assert_eq!(sum(&got), sum(&expected));

        // The append-only log: every row read once, except the two moved to a later window.
        let per_id: BTreeMap<i64, i64> = t
            .pairs(&format!("SELECT id, count(*) FROM {log} GROUP BY id"))
            .await
            .into_iter()
            .collect();
        let want: BTreeMap<i64, i64> = expected
            .iter()
            .map(|(id, _)| (*id, if *id == 2 || *id == 31 { 2 } else { 1 }))
            .collect();
        assert_eq!(per_id, want);
        for never in [24, 25, 27, 28, 29, 33, 36] {
            assert!(!per_id.contains_key(&never), "{never} was read");
        }
        // Boundary rows landed with the run of the right window: T1 (21) with window 2's rows
        // (8), T1 - 1µs (22) with window 1's (1), T2 (23) with window 3's (16).
        let runs = t
            .pairs(&format!(
                "SELECT l.id, m.id FROM {log} l JOIN {log} m ON m.run = l.run WHERE l.id IN (21, 22, 23, 35) AND m.id IN (1, 8, 16)"
            ))
            .await;
        assert_eq!(runs, vec![(21, 8), (22, 1), (23, 16), (35, 16)]);
    }
}

#[tokio::test]
async fn pg_to_pg_three_windows_timestamp_cursor() {
    Scenario {
        source: Db::Pg,
        target: Db::Pg,
        cursor_type: "timestamp(6)",
        target_cursor_type: "timestamp(6)",
        in_server: false,
        task_zone: Some("GMT+08:00"),
        write_offset_secs: 8 * 3600,
    }
    .run("w_pg")
    .await;
}

/// The same three windows, each one INSERT ... SELECT inside the server (upsert with changed
/// columns only, and the append-only log with its batch number): the same rows land, the same
/// NULL-cursor counts are reported.
#[tokio::test]
async fn pg_to_pg_three_windows_inside_the_server() {
    Scenario {
        source: Db::Pg,
        target: Db::Pg,
        cursor_type: "timestamp(6)",
        target_cursor_type: "timestamp(6)",
        in_server: true,
        task_zone: Some("GMT+08:00"),
        write_offset_secs: 8 * 3600,
    }
    .run("w_pg_in")
    .await;
}

#[tokio::test]
async fn mysql_to_pg_three_windows_timestamp_with_zone_cursor() {
    // MySQL TIMESTAMP holds instants (the connection's zone is UTC): the task's zone only names
    // where the window bounds are, so literals are written in UTC.
    Scenario {
        source: Db::My,
        target: Db::Pg,
        cursor_type: "TIMESTAMP(6) NULL DEFAULT NULL",
        in_server: false,
        target_cursor_type: "timestamptz",
        task_zone: Some("Asia/Shanghai"),
        write_offset_secs: 0,
    }
    .run("w_my")
    .await;
}

#[tokio::test]
async fn mysql_to_pg_three_windows_datetime_cursor() {
    Scenario {
        source: Db::My,
        target: Db::Pg,
        cursor_type: "DATETIME(6) NULL",
        in_server: false,
        target_cursor_type: "timestamp(6)",
        task_zone: Some("GMT-05:30"),
        write_offset_secs: -(5 * 3600 + 1800),
    }
    .run("w_mydt")
    .await;
}

#[tokio::test]
async fn sqlite_to_sqlite_three_windows_text_timestamps() {
    let (path, pool) = sqlite_file("w_lite").await;
    let db = Db::Lite(pool, path);
    Scenario {
        source: db.clone(),
        target: db,
        cursor_type: "DATETIME",
        in_server: false,
        target_cursor_type: "DATETIME",
        task_zone: None,
        write_offset_secs: 0,
    }
    .run("w_lite")
    .await;
}

/// A custom query with `${begin}` / `${end}` (quoted by us, or already quoted by the user).
async fn query_sql_windows(
    source: Db,
    target: Db,
    cursor_type: &str,
    zone: &str,
    write_offset_secs: i32,
    write_suffix: &str,
    name: &str,
) {
    let src = unique(&format!("{name}_src"));
    let dst = unique(&format!("{name}_dst"));
    source
        .exec(&format!(
            "CREATE TABLE {src} (id bigint PRIMARY KEY, v bigint NOT NULL, at_ {cursor_type})"
        ))
        .await;
    target
        .exec(&format!(
            "CREATE TABLE {dst} (id bigint PRIMARY KEY, v bigint)"
        ))
        .await;
    let lit = |minutes: i64, micros: i64| {
        format!(
            "'{}{write_suffix}'",
            wall(T0 + minutes * MIN, micros, write_offset_secs)
        )
    };
    source
        .exec(&format!(
            "INSERT INTO {src} (id, v, at_) VALUES (1, 10, {}), (2, 20, {}), (3, 30, {}), (4, 40, {}), (5, 50, {}), (6, 60, NULL), (7, 70, {})",
            lit(0, 0),
            lit(59, 0),
            lit(60, -1),
            lit(60, 0),
            lit(119, 0),
            lit(120, 0)
        ))
        .await;
    let detail = detail(json!({
        "sourceSelectedDatasource": {
            "isAddSql": true,
            "querySql": format!("select id, v from {src} where at_ >= ${{begin}} and at_ < '${{end}}'"),
            "need_inc_migration": true,
            "dataTimestamp": T0,
            "compensation_time": 0,
            "timeZone": zone,
        },
        "targetSelectedDatasource": {"targetTable": dst, "supportPartUpdate": true},
    }));
    // The task is valid at create time (placeholders substituted to describe the query).
    fdi_engine::resolve_plan(&detail, &source.endpoint(), &target.endpoint())
        .await
        .expect("incremental querySql resolves");

    let mut read = Vec::new();
    for (b, e) in [(T0, T1), (T1, T2)] {
        let w = IncrementalWindow {
            begin_ms: b,
            end_ms: e,
            include_nulls: b == T0,
        };
        let r = run_window(detail.clone(), source.endpoint(), target.endpoint(), w).await;
        assert_succeeded(&r);
        assert_eq!(
            r.step(StepCode::READER_END).unwrap().remarks,
            "Reader end",
            "no NULL count for a custom query"
        );
        read.push(r.outcome.rows_read);
    }
    assert_eq!(read, vec![3, 2], "[T0,T1): 1, 2, 3; [T1,T2): 4, 5");
    assert_eq!(
        target.pairs(&format!("SELECT id, v FROM {dst}")).await,
        vec![(1, 10), (2, 20), (3, 30), (4, 40), (5, 50)]
    );

    // Without a window the placeholders cannot be filled: the run fails at the source.
    let r = run(detail, source.endpoint(), target.endpoint()).await;
    assert_eq!(r.outcome.status, ExecuteStatus::Error);
    assert!(
        r.outcome.remarks.contains("querySql")
            && r.outcome.remarks.contains("no incremental window"),
        "{}",
        r.outcome.remarks
    );
}

#[tokio::test]
async fn query_sql_windows_on_pg_timestamptz() {
    // PostgreSQL literals carry the zone's offset: a timestamptz cursor compares exact instants.
    // Rows are written as instants with a -03:00 offset; the task's zone is +08:00.
    query_sql_windows(
        Db::Pg,
        Db::Pg,
        "timestamptz",
        "Asia/Shanghai",
        -3 * 3600,
        "-03:00",
        "wq_pg",
    )
    .await;
}

#[tokio::test]
async fn query_sql_windows_on_mysql_datetime() {
    query_sql_windows(
        Db::My,
        Db::Pg,
        "DATETIME(6) NULL",
        "GMT+08:00",
        8 * 3600,
        "",
        "wq_my",
    )
    .await;
}

#[tokio::test]
async fn query_sql_windows_on_sqlite_text() {
    let (path, pool) = sqlite_file("wq_lite").await;
    let db = Db::Lite(pool, path);
    query_sql_windows(
        db.clone(),
        db,
        "DATETIME",
        "GMT+08:00",
        8 * 3600,
        "",
        "wq_lite",
    )
    .await;
}

#[tokio::test]
async fn window_plan_errors_name_the_field() {
    let src = unique("wp_src");
    let dst = unique("wp_dst");
    exec_pg(&format!(
        "CREATE TABLE {src} (id bigint PRIMARY KEY, n int, at_ timestamp); CREATE TABLE {dst} (id bigint PRIMARY KEY, n int)"
    ))
    .await;
    let task = |date_column: &str, zone: &str| {
        detail(json!({
            "sourceSelectedDatasource": {
                "sourceTable": src, "sourceSelectedColumnList": ["id", "n"],
                "need_inc_migration": true, "sourceDateColumn": date_column,
                "dataTimestamp": T0, "compensation_time": 0, "timeZone": zone,
            },
            "targetSelectedDatasource": {"targetTable": dst},
        }))
    };
    let check =
        |d: fdi_types::TaskDetail| async move { fdi_engine::resolve_plan(&d, &pg(), &pg()).await };
    check(task("at_", "GMT+08:00")).await.expect("valid");
    let e = check(task("at_", "Mars/Olympus")).await.unwrap_err();
    assert!(e.message.contains("timeZone"), "{}", e.message);
    let e = check(task("n", "UTC")).await.unwrap_err();
    assert!(
        e.message.contains("sourceDateColumn") && e.message.contains("not a date"),
        "{}",
        e.message
    );
    let e = check(task("nope", "UTC")).await.unwrap_err();
    assert!(e.message.contains("sourceDateColumn"), "{}", e.message);

    // A window whose end is before its start fails the run at the source, committing nothing.
    let r = run_window(
        task("at_", "UTC"),
        pg(),
        pg(),
        IncrementalWindow {
            begin_ms: T1,
            end_ms: T0,
            include_nulls: false,
        },
    )
    .await;
    assert_eq!(r.outcome.status, ExecuteStatus::Error);
    assert_eq!(r.outcome.status_code, StepCode::SOURCE_ERROR);
}
