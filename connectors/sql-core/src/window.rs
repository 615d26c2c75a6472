//! Incremental windows on SQL sources: the task's time zone, window bounds rendered as literals
//! for each dialect and cursor column type, `${begin}`/`${end}` substitution in custom queries,
//! and the filter that selects one window.
//!
//! A window is half-open, `[begin, end)`, in epoch milliseconds. Consecutive windows share their
//! boundary, so a row whose cursor equals a boundary is read by exactly one of them.
//!
//! ## Literal rules
//! A bound is rendered as `YYYY-MM-DD HH:MM:SS[.ffffff]` (the fraction only when the instant has
//! one), then quoted as a string literal of the dialect; the database coerces it to the cursor
//! column's type. Which wall clock is rendered depends on the column:
//!
//! | cursor column | PostgreSQL | MySQL / MariaDB | SQLite |
//! |---|---|---|---|
//! | timestamp without zone (`timestamp`, `DATETIME`) | task zone | task zone | task zone |
//! | timestamp with zone (`timestamptz`, `TIMESTAMP`) | task zone + offset (`+08:00`), an exact instant | UTC (the connection's `time_zone` is `+00:00`, as the driver requires) | UTC (as fdi writes them) |
//! | date | first date whose midnight (task zone) is `>=` the bound, `YYYY-MM-DD` | same | same |
//! | text | task zone, compared as text | same | same |
//!
//! SQLite keeps timestamps as text `YYYY-MM-DD HH:MM:SS[.ffffff]`, so the comparison is a text
//! comparison in exactly that format.
//!
//! The task's zone is `timeZone`: `GMT+08:00` style offsets (also `UTC-05:30`, `GMT+8`, `+0800`),
//! or an IANA name (`Asia/Shanghai`); empty means UTC.

use std::fmt::Write;

use chrono::Datelike;
use fdi_types::WhereCondition;
use fdi_types::task_detail::{BEGIN_PLACEHOLDER, END_PLACEHOLDER};

pub use fdi_connector::window::{
    CursorKind, WindowSql, Zone, has_placeholders, null_cursor_filter, push_offset_to,
    push_wall_clock, wall_clock, window_filter,
};

use crate::dialect::Dialect;
/// A window bound compared with a cursor column of `kind` (unquoted; see the module's table).
pub fn bound_text(
    dialect: Dialect,
    kind: CursorKind,
    ms: i64,
    zone: &Zone,
) -> Result<String, String> {
    let mut out = String::with_capacity(32);
    match kind {
        CursorKind::Timestamp | CursorKind::Text => return wall_clock(ms, zone),
        CursorKind::TimestampTz => match dialect {
            Dialect::Postgres => {
                let (local, offset) = zone.local(ms)?;
                push_wall_clock(&mut out, &local);
                let _ = push_offset_to(&mut out, offset);
            }
            Dialect::MySql | Dialect::Sqlite => {
                let (utc, _) = Zone::default().local(ms)?;
                push_wall_clock(&mut out, &utc);
            }
        },
        CursorKind::Date => {
            // A date is its midnight in the task's zone: `date >= bound` <=> `date >= ceil(bound)`.
            let (local, _) = zone.local(ms)?;
            let day = if local.time() == chrono::NaiveTime::MIN {
                local.date()
            } else {
                local
                    .date()
                    .succ_opt()
                    .ok_or_else(|| format!("{ms} is outside the supported dates"))?
            };
            let _ = write!(out, "{:04}-{:02}-{:02}", day.year(), day.month(), day.day());
        }
    }
    Ok(out)
}

/// The quoted literal that replaces `${begin}` / `${end}` in a custom query: the bound's wall
/// clock in the task's zone, `'YYYY-MM-DD HH:MM:SS[.ffffff]'`; on PostgreSQL followed by the zone's
/// offset (`'2024-03-01 08:00:00+08:00'`), which a `timestamp` column reads as that wall clock
/// and a `timestamptz` column as that exact instant.
pub fn query_literal(dialect: Dialect, ms: i64, zone: &Zone) -> Result<String, String> {
    let kind = match dialect {
        Dialect::Postgres => CursorKind::TimestampTz,
        Dialect::MySql | Dialect::Sqlite => CursorKind::Timestamp,
    };
    Ok(dialect.string_literal(&bound_text(dialect, kind, ms, zone)?))
}

/// Substitute `${begin}` and `${end}` in a custom query with [`query_literal`]s of the window's
/// bounds, so the query reads `col >= ${begin} AND col < ${end}` as a half-open window. A
/// placeholder the user already quoted (`'${begin}'`) is replaced quotes included.
pub fn substitute_placeholders(
    dialect: Dialect,
    sql: &str,
    begin_ms: i64,
    end_ms: i64,
    zone: &Zone,
) -> Result<String, String> {
    let begin = query_literal(dialect, begin_ms, zone)?;
    let end = query_literal(dialect, end_ms, zone)?;
    Ok(sql
        .replace(&format!("'{BEGIN_PLACEHOLDER}'"), &begin)
        .replace(&format!("'{END_PLACEHOLDER}'"), &end)
        .replace(BEGIN_PLACEHOLDER, &begin)
        .replace(END_PLACEHOLDER, &end))
}

/// The SQL connectors' window rendering, per dialect.
impl WindowSql for Dialect {
    fn bound_text(&self, kind: CursorKind, ms: i64, zone: &Zone) -> Result<String, String> {
        bound_text(*self, kind, ms, zone)
    }

    fn substitute_placeholders(
        &self,
        sql: &str,
        begin_ms: i64,
        end_ms: i64,
        zone: &Zone,
    ) -> Result<String, String> {
        substitute_placeholders(*self, sql, begin_ms, end_ms, zone)
    }

    fn count_select(&self, table: &str, filters: &[WhereCondition]) -> String {
        crate::select::count_select(*self, table, filters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::{SelectColumn, count_select, table_select};
    use fdi_types::WhereOp;

    // 2024-03-01 00:00:00 UTC
    const T: i64 = 1_709_251_200_000;

    #[test]
    fn parses_zones() {
        let h =
            |z: Zone, ms: i64| bound_text(Dialect::MySql, CursorKind::Timestamp, ms, &z).unwrap();
        for s in [
            "GMT+08:00",
            "gmt+8",
            "UTC+0800",
            "+08:00",
            "GMT +08:00",
            "Asia/Shanghai",
        ] {
            let z = Zone::parse(Some(s)).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(h(z, T), "2024-03-01 08:00:00", "{s}");
        }
        for s in [None, Some(""), Some("UTC"), Some("GMT"), Some("Etc/UTC")] {
            assert_eq!(h(Zone::parse(s).unwrap(), T), "2024-03-01 00:00:00");
        }
        let z = Zone::parse(Some("GMT-05:30")).unwrap();
        assert_eq!(h(z, T), "2024-02-29 18:30:00");
        assert_eq!(z.to_string(), "GMT-05:30");
        for bad in ["Mars/Base", "GMT+25:00", "GMT+8:5", "+", "GMT+08:00x"] {
            assert!(Zone::parse(Some(bad)).is_err(), "{bad}");
        }
        // DST: New York is -05:00 in winter, -04:00 in summer.
        let ny = Zone::parse(Some("America/New_York")).unwrap();
        assert_eq!(
            bound_text(Dialect::Postgres, CursorKind::TimestampTz, T, &ny).unwrap(),
            "2024-02-29 19:00:00-05:00"
        );
        assert_eq!(
            bound_text(
                Dialect::Postgres,
                CursorKind::TimestampTz,
                T + 120 * 86_400_000,
                &ny
            )
            .unwrap(),
            "2024-06-28 20:00:00-04:00"
        );
    }

    #[test]
    fn renders_bounds_per_dialect_and_kind() {
        let z = Zone::parse(Some("GMT+08:00")).unwrap();
        let b = |d, k, ms| bound_text(d, k, ms, &z).unwrap();
        assert_eq!(
            b(Dialect::Sqlite, CursorKind::Timestamp, T + 123),
            "2024-03-01 08:00:00.123000"
        );
        assert_eq!(
            b(Dialect::Postgres, CursorKind::Timestamp, T),
            "2024-03-01 08:00:00"
        );
        assert_eq!(
            b(Dialect::Postgres, CursorKind::TimestampTz, T),
            "2024-03-01 08:00:00+08:00"
        );
        assert_eq!(
            b(Dialect::MySql, CursorKind::TimestampTz, T),
            "2024-03-01 00:00:00"
        );
        assert_eq!(
            b(Dialect::MySql, CursorKind::Text, T),
            "2024-03-01 08:00:00"
        );
        // Dates: the first date whose midnight (task zone) is at or after the bound.
        assert_eq!(
            b(Dialect::MySql, CursorKind::Date, T - 8 * 3_600_000),
            "2024-03-01"
        );
        assert_eq!(b(Dialect::MySql, CursorKind::Date, T), "2024-03-02");
        assert!(bound_text(Dialect::MySql, CursorKind::Timestamp, i64::MAX, &z).is_err());
    }

    #[test]
    fn substitutes_placeholders() {
        let z = Zone::parse(Some("GMT+08:00")).unwrap();
        let q = "select * from t where u >= ${begin} and u < '${end}'";
        assert_eq!(
            substitute_placeholders(Dialect::MySql, q, T, T + 1000, &z).unwrap(),
            "select * from t where u >= '2024-03-01 08:00:00' and u < '2024-03-01 08:00:01'"
        );
        assert_eq!(
            substitute_placeholders(Dialect::Postgres, q, T, T + 1000, &z).unwrap(),
            "select * from t where u >= '2024-03-01 08:00:00+08:00' and u < '2024-03-01 08:00:01+08:00'"
        );
        assert!(has_placeholders(q) && !has_placeholders("select 1"));
    }

    #[test]
    fn window_filter_ands_with_the_task_filters() {
        let user = WhereCondition {
            andor: None,
            field_name: "a".into(),
            field_type: None,
            op: WhereOp::Equal,
            value: Some("1".into()),
            min_value: None,
            max_value: None,
        };
        let mut or = user.clone();
        or.andor = Some("or".into());
        or.field_name = "b".into();
        let w = window_filter("u", "2024-03-01".into(), "2024-03-02".into(), true);
        let cols = [SelectColumn {
            name: "id",
            as_text: false,
            cast_to: None,
        }];
        assert_eq!(
            table_select(
                Dialect::Postgres,
                "t",
                &cols,
                &[user.clone(), or.clone(), w],
                None
            ),
            "SELECT \"id\" FROM \"t\" WHERE ((\"a\" = '1') OR (\"b\" = '1')) AND (((\"u\" >= '2024-03-01' AND \"u\" < '2024-03-02') OR \"u\" IS NULL))"
        );
        let w = window_filter("u", "x'".into(), "y".into(), false);
        assert_eq!(
            table_select(Dialect::MySql, "t", &cols, &[w], None),
            "SELECT `id` FROM `t` WHERE (`u` >= 'x''' AND `u` < 'y')"
        );
        assert_eq!(
            count_select(Dialect::Sqlite, "s.t", &[user, or, null_cursor_filter("u")]),
            "SELECT count(*) AS \"n\" FROM \"s\".\"t\" WHERE ((\"a\" = '1') OR (\"b\" = '1')) AND (\"u\" IS NULL)"
        );
    }
}
