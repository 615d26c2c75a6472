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

use arrow::datatypes::DataType;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use fdi_types::task_detail::{BEGIN_PLACEHOLDER, END_PLACEHOLDER};
use fdi_types::{WhereCondition, WhereOp};

use crate::dialect::Dialect;

/// The time zone window bounds are rendered in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    Fixed(FixedOffset),
    Named(Tz),
}

impl Default for Zone {
    fn default() -> Self {
        Zone::Fixed(FixedOffset::east_opt(0).expect("zero offset"))
    }
}

/// `+hh[:mm]`, `+hhmm`, `-h` ... (the sign is required).
fn parse_offset(s: &str) -> Option<FixedOffset> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits = |t: &str| !t.is_empty() && t.len() <= 2 && t.bytes().all(|b| b.is_ascii_digit());
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) if digits(h) && m.len() == 2 && digits(m) => (h, m),
        Some(_) => return None,
        None if rest.len() == 4 && rest.bytes().all(|b| b.is_ascii_digit()) => {
            (&rest[..2], &rest[2..])
        }
        None if digits(rest) => (rest, "0"),
        None => return None,
    };
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 18 || m > 59 || (h == 18 && m > 0) {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

impl Zone {
    /// Parse a task's `timeZone`; None or empty is UTC.
    pub fn parse(s: Option<&str>) -> Result<Zone, String> {
        let raw = s.unwrap_or("");
        let t: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        if t.is_empty() {
            return Ok(Zone::default());
        }
        let upper = t.to_ascii_uppercase();
        if matches!(upper.as_str(), "UTC" | "GMT" | "Z" | "UT") {
            return Ok(Zone::default());
        }
        let offset = if let Some(rest) = upper
            .strip_prefix("GMT")
            .or_else(|| upper.strip_prefix("UTC"))
            .filter(|r| r.starts_with(['+', '-']))
        {
            Some(parse_offset(rest))
        } else if upper.starts_with(['+', '-']) {
            Some(parse_offset(&upper))
        } else {
            None
        };
        let bad = || format!("{raw:?} is not a GMT+hh:mm offset or an IANA time zone name");
        match offset {
            Some(Some(o)) => Ok(Zone::Fixed(o)),
            Some(None) => Err(bad()),
            None => t.parse::<Tz>().map(Zone::Named).map_err(|_| bad()),
        }
    }

    /// The wall clock of `ms` in this zone and the zone's offset from UTC at that instant.
    fn local(&self, ms: i64) -> Result<(NaiveDateTime, i32), String> {
        let utc: DateTime<Utc> = Utc
            .timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| format!("{ms} is not a valid timestamp"))?;
        let (local, offset) = match self {
            Zone::Fixed(o) => {
                let l = utc.with_timezone(o);
                (l.naive_local(), o.local_minus_utc())
            }
            Zone::Named(tz) => {
                let l = utc.with_timezone(tz);
                (l.naive_local(), l.offset().fix().local_minus_utc())
            }
        };
        if !(1..=9999).contains(&local.year()) {
            return Err(format!("{ms} is outside the years 1..9999"));
        }
        Ok((local, offset))
    }
}

impl std::fmt::Display for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Zone::Fixed(o) if o.local_minus_utc() == 0 => f.write_str("UTC"),
            Zone::Fixed(o) => {
                f.write_str("GMT")?;
                push_offset_to(f, o.local_minus_utc())
            }
            Zone::Named(tz) => f.write_str(tz.name()),
        }
    }
}

fn push_offset_to(out: &mut impl Write, secs: i32) -> std::fmt::Result {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    write!(out, "{sign}{:02}:{:02}", a / 3600, (a / 60) % 60)?;
    if !a.is_multiple_of(60) {
        write!(out, ":{:02}", a % 60)?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, the fraction only when there is one.
fn push_wall_clock(out: &mut String, t: &NaiveDateTime) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let micros = t.nanosecond() / 1000;
    if micros != 0 {
        let _ = write!(out, ".{micros:06}");
    }
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]` of `ms` in `zone` (for messages and logs).
pub fn wall_clock(ms: i64, zone: &Zone) -> Result<String, String> {
    let (local, _) = zone.local(ms)?;
    let mut out = String::with_capacity(26);
    push_wall_clock(&mut out, &local);
    Ok(out)
}

/// How the cursor column holds time; decides the shape and zone of a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    /// A wall clock without zone (`timestamp`, `DATETIME`, SQLite `DATETIME` text).
    Timestamp,
    /// An instant (`timestamptz`, MySQL `TIMESTAMP`).
    TimestampTz,
    Date,
    /// Text holding `YYYY-MM-DD HH:MM:SS[.ffffff]` timestamps.
    Text,
}

impl CursorKind {
    /// The kind of a column of this Arrow type; None when it cannot hold a cursor.
    pub fn of(arrow_type: &DataType) -> Option<CursorKind> {
        match arrow_type {
            DataType::Timestamp(_, None) => Some(CursorKind::Timestamp),
            DataType::Timestamp(_, Some(_)) => Some(CursorKind::TimestampTz),
            DataType::Date32 | DataType::Date64 => Some(CursorKind::Date),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(CursorKind::Text),
            _ => None,
        }
    }
}

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

/// Whether a custom query uses the window placeholders.
pub fn has_placeholders(sql: &str) -> bool {
    sql.contains(BEGIN_PLACEHOLDER) || sql.contains(END_PLACEHOLDER)
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

/// The filter selecting one window on `column`: `column >= begin AND column < end`, with
/// `OR column IS NULL` when `include_nulls`. Bounds come from [`bound_text`]. Appended after a
/// task's own filters (which are folded first), it ANDs with all of them.
pub fn window_filter(
    column: &str,
    begin: String,
    end: String,
    include_nulls: bool,
) -> WhereCondition {
    WhereCondition {
        andor: Some("and".into()),
        field_name: column.to_string(),
        field_type: None,
        op: if include_nulls {
            WhereOp::InWindowOrNull
        } else {
            WhereOp::InWindow
        },
        value: None,
        min_value: Some(begin),
        max_value: Some(end),
    }
}

/// The filter of rows whose cursor is NULL, appended after a task's own filters.
pub fn null_cursor_filter(column: &str) -> WhereCondition {
    WhereCondition {
        andor: Some("and".into()),
        field_name: column.to_string(),
        field_type: None,
        op: WhereOp::IsNull,
        value: None,
        min_value: None,
        max_value: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::{SelectColumn, count_select, table_select};

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
