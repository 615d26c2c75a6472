//! Incremental windows, the part every source shares: the task's time zone, wall clocks, the kind
//! of a cursor column, the filter selecting one window, and [`WindowSql`], what a relational
//! source renders in its own SQL (its literals, its placeholders, its `count(*)`).
//!
//! A window is half-open, `[begin, end)`, in epoch milliseconds. Consecutive windows share their
//! boundary, so a row whose cursor equals a boundary is read by exactly one of them. The task's
//! zone is `timeZone`: `GMT+08:00` style offsets (also `UTC-05:30`, `GMT+8`, `+0800`), or an IANA
//! name (`Asia/Shanghai`); empty means UTC.

use std::fmt::Write;

use arrow::datatypes::DataType;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use fdi_types::task_detail::{BEGIN_PLACEHOLDER, END_PLACEHOLDER};
use fdi_types::{WhereCondition, WhereOp};

/// What a relational source renders for an incremental window, in its own SQL.
pub trait WindowSql: Send + Sync {
    /// A window bound compared with a cursor column of `kind` (unquoted).
    fn bound_text(&self, kind: CursorKind, ms: i64, zone: &Zone) -> Result<String, String>;
    /// A custom query with `${begin}` / `${end}` replaced by literals of the bounds.
    fn substitute_placeholders(
        &self,
        sql: &str,
        begin_ms: i64,
        end_ms: i64,
        zone: &Zone,
    ) -> Result<String, String>;
    /// `SELECT count(*)` of `table` under `filters`.
    fn count_select(&self, table: &str, filters: &[WhereCondition]) -> String;
}

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
    pub fn local(&self, ms: i64) -> Result<(NaiveDateTime, i32), String> {
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

pub fn push_offset_to(out: &mut impl Write, secs: i32) -> std::fmt::Result {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    write!(out, "{sign}{:02}:{:02}", a / 3600, (a / 60) % 60)?;
    if !a.is_multiple_of(60) {
        write!(out, ":{:02}", a % 60)?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff]`, the fraction only when there is one.
pub fn push_wall_clock(out: &mut String, t: &NaiveDateTime) {
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

/// Whether a custom query uses the window placeholders.
pub fn has_placeholders(sql: &str) -> bool {
    sql.contains(BEGIN_PLACEHOLDER) || sql.contains(END_PLACEHOLDER)
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
