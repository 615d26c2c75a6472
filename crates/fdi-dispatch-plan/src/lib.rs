//! When a dispatch plan fires.
//!
//! A plan has a start instant (`start_datetime`, epoch ms), a time zone, and either a Quartz cron
//! expression (`use_quartz_cron` + `cron`) or a period (MIN, HOUR, DAY, WEEK, MON) with an interval
//! of 1-59. [`DispatchPlan::next_after`] gives the first fire instant strictly after a given
//! instant; it is pure, so the scheduler can persist "next fire time" and recompute it anywhere.
//!
//! Time rules:
//! - Quartz cron is evaluated on the wall clock of the plan's zone (croner with seconds required,
//!   optional year, Quartz weekday numbering 1=SUN..7=SAT, `?`, `L`, `W`, `#`). A fixed-time fire
//!   that falls into a DST gap fires at the first real instant after the gap (never skipped); a
//!   fixed-time fire in a repeated hour fires once (never doubled).
//! - MIN and HOUR periods are absolute durations from the start instant (DST does not stretch them).
//! - DAY, WEEK and MON periods keep the start's wall-clock time in the plan's zone: a day is a
//!   calendar day (23 or 25 hours across DST), a month keeps the day of month (clamped to the
//!   month's last day: Jan 31 -> Feb 28 -> Mar 31). A wall time in a DST gap moves to the first
//!   real instant after the gap; a repeated wall time uses its first occurrence.

use chrono::{DateTime, Datelike, Duration, LocalResult, Months, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// `start_datetime` bounds from the reference (ms).
pub const MIN_START_MS: i64 = 946_684_800_000;
pub const MAX_START_MS: i64 = 2_147_512_447_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("cron: {0}")]
    InvalidCron(String),
    #[error("period: {0:?} (expected MIN, HOUR, DAY, WEEK or MON)")]
    InvalidPeriod(String),
    #[error("dispatch_interval: {0} (expected 1-59)")]
    InvalidInterval(i64),
    #[error("start_datetime: {0} is outside [{MIN_START_MS}, {MAX_START_MS}]")]
    InvalidStart(i64),
    #[error("time zone: {0:?} is not an IANA zone name or a GMT+hh:mm offset")]
    InvalidTimeZone(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Period {
    Min,
    Hour,
    Day,
    Week,
    Mon,
}

impl Period {
    pub fn parse(s: &str) -> Result<Self, PlanError> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MIN" => Ok(Self::Min),
            "HOUR" => Ok(Self::Hour),
            "DAY" => Ok(Self::Day),
            "WEEK" => Ok(Self::Week),
            "MON" => Ok(Self::Mon),
            _ => Err(PlanError::InvalidPeriod(s.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Min => "MIN",
            Self::Hour => "HOUR",
            Self::Day => "DAY",
            Self::Week => "WEEK",
            Self::Mon => "MON",
        }
    }
}

/// Quartz's start/step form `N/S` ("from N every S") as a range croner accepts: `N-MAX/S`,
/// with MAX the field's last value (seconds/minutes 59, hours 23, day-of-month 31, month 12 or
/// DEC, day-of-week 7 or SAT, year 2099).
fn expand_start_steps(field: &str, index: usize) -> String {
    let (last_num, last_name) = match index {
        0 | 1 => ("59", "59"),
        2 => ("23", "23"),
        3 => ("31", "31"),
        4 => ("12", "DEC"),
        5 => ("7", "SAT"),
        _ => ("2099", "2099"),
    };
    field
        .split(',')
        .map(|part| match part.split_once('/') {
            Some((start, step)) if !start.is_empty() && start != "*" && !start.contains('-') => {
                let last = if start.chars().all(|c| c.is_ascii_digit()) {
                    last_num
                } else {
                    last_name
                };
                format!("{start}-{last}/{step}")
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A parsed Quartz cron expression.
#[derive(Debug, Clone)]
pub struct QuartzCron {
    expr: String,
    cron: Cron,
}

impl QuartzCron {
    /// Parse a Quartz expression: `sec min hour day-of-month month day-of-week [year]`.
    pub fn parse(expr: &str) -> Result<Self, PlanError> {
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if !(6..=7).contains(&fields.len()) {
            return Err(PlanError::InvalidCron(format!(
                "{expr:?} has {} fields; Quartz needs 6 or 7 (seconds minutes hours day-of-month month day-of-week [year])",
                fields.len()
            )));
        }
        let (dom, dow) = (fields[3], fields[5]);
        let restricted = |f: &str| f != "*" && f != "?";
        if restricted(dom) && restricted(dow) {
            return Err(PlanError::InvalidCron(format!(
                "{expr:?} restricts both day-of-month ({dom}) and day-of-week ({dow}); use '?' in one of them"
            )));
        }
        if dom == "?" && dow == "?" {
            return Err(PlanError::InvalidCron(format!(
                "{expr:?} uses '?' in both day fields; only one may be '?'"
            )));
        }
        let normalized = fields
            .iter()
            .enumerate()
            .map(|(i, f)| expand_start_steps(f, i))
            .collect::<Vec<_>>()
            .join(" ");
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Optional)
            .alternative_weekdays(true)
            .build()
            .parse(&normalized)
            .map_err(|e| PlanError::InvalidCron(format!("{expr:?}: {e}")))?;
        Ok(Self {
            expr: expr.to_string(),
            cron,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.expr
    }

    /// First fire strictly after `after`, on the wall clock of `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[derive(Debug, Clone)]
pub enum Rule {
    Cron(Box<QuartzCron>),
    Every { period: Period, interval: u32 },
}

/// A plan's timing: start instant, zone and rule.
#[derive(Debug, Clone)]
pub struct DispatchPlan {
    pub start: DateTime<Utc>,
    pub tz: Tz,
    pub rule: Rule,
}

/// Parse a zone: an IANA name (`Asia/Shanghai`, `UTC`) or the reference's `GMT+08:00` form.
pub fn parse_time_zone(s: &str) -> Result<Tz, PlanError> {
    let t = s.trim();
    if let Ok(tz) = t.parse::<Tz>() {
        return Ok(tz);
    }
    // "GMT+08:00" -> Etc/GMT-8 (POSIX sign inversion); only whole hours exist as Etc zones.
    let rest = t
        .strip_prefix("GMT")
        .or_else(|| t.strip_prefix("UTC"))
        .ok_or_else(|| PlanError::InvalidTimeZone(s.into()))?;
    if rest.is_empty() {
        return Ok(Tz::UTC);
    }
    let (sign, hm) = rest.split_at(1);
    let (h, m) = hm.split_once(':').unwrap_or((hm, "00"));
    let (h, m): (i32, i32) = match (h.parse(), m.parse()) {
        (Ok(h), Ok(m)) if h <= 14 && m == 0 => (h, m),
        _ => return Err(PlanError::InvalidTimeZone(s.into())),
    };
    let _ = m;
    let name = match sign {
        "+" if h == 0 => "Etc/GMT".to_string(),
        "+" => format!("Etc/GMT-{h}"),
        "-" if h == 0 => "Etc/GMT".to_string(),
        "-" => format!("Etc/GMT+{h}"),
        _ => return Err(PlanError::InvalidTimeZone(s.into())),
    };
    name.parse::<Tz>()
        .map_err(|_| PlanError::InvalidTimeZone(s.into()))
}

impl DispatchPlan {
    /// Build and validate a plan from the API's fields.
    pub fn new(
        start_ms: i64,
        tz: Tz,
        use_quartz_cron: bool,
        cron: Option<&str>,
        period: Option<&str>,
        interval: Option<i64>,
    ) -> Result<Self, PlanError> {
        if !(MIN_START_MS..=MAX_START_MS).contains(&start_ms) {
            return Err(PlanError::InvalidStart(start_ms));
        }
        let start = Utc
            .timestamp_millis_opt(start_ms)
            .single()
            .ok_or(PlanError::InvalidStart(start_ms))?;
        let rule = if use_quartz_cron {
            Rule::Cron(Box::new(QuartzCron::parse(cron.unwrap_or(""))?))
        } else {
            let period = Period::parse(period.unwrap_or(""))?;
            let interval = interval.unwrap_or(0);
            if !(1..=59).contains(&interval) {
                return Err(PlanError::InvalidInterval(interval));
            }
            Rule::Every {
                period,
                interval: interval as u32,
            }
        };
        Ok(Self { start, tz, rule })
    }

    /// The first fire instant strictly after `after` (and not before the start).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.rule {
            Rule::Cron(c) => {
                let from = if after < self.start {
                    self.start - Duration::milliseconds(1)
                } else {
                    after
                };
                c.next_after(from, self.tz)
            }
            Rule::Every { period, interval } => self.next_periodic(*period, *interval, after),
        }
    }

    fn next_periodic(
        &self,
        period: Period,
        interval: u32,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if after < self.start {
            return Some(self.start);
        }
        match period {
            Period::Min | Period::Hour => {
                let step = if period == Period::Min {
                    60_000
                } else {
                    3_600_000
                } * interval as i64;
                let elapsed = (after - self.start).num_milliseconds();
                let k = elapsed / step + 1;
                Some(self.start + Duration::milliseconds(k * step))
            }
            Period::Day | Period::Week | Period::Mon => {
                let local_start = self.start.with_timezone(&self.tz).naive_local();
                let nth = |k: i64| -> Option<NaiveDateTime> {
                    match period {
                        Period::Day => {
                            local_start.checked_add_signed(Duration::days(k * interval as i64))
                        }
                        Period::Week => {
                            local_start.checked_add_signed(Duration::weeks(k * interval as i64))
                        }
                        _ => local_start
                            .checked_add_months(Months::new(u32::try_from(k).ok()? * interval)),
                    }
                };
                // Estimate k from elapsed wall time, then step to the first fire after `after`.
                let local_after = after.with_timezone(&self.tz).naive_local();
                let approx_days = (local_after - local_start).num_days().max(0);
                let k = match period {
                    Period::Day => approx_days / interval as i64,
                    Period::Week => approx_days / (7 * interval as i64),
                    _ => {
                        let months = (local_after.year() - local_start.year()) as i64 * 12
                            + local_after.month() as i64
                            - local_start.month() as i64;
                        (months / interval as i64).max(0)
                    }
                };
                let k = (k - 1).max(0);
                (k..k + 8).find_map(|k| self.resolve_local(nth(k)?).filter(|t| *t > after))
            }
        }
    }

    /// Local wall time -> instant: first occurrence when repeated, first instant after a gap.
    fn resolve_local(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => {
                // In a gap: walk forward minute by minute (gaps are at most a few hours).
                let mut probe = local;
                for _ in 0..(24 * 60) {
                    probe += Duration::minutes(1);
                    if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                        return Some(t.with_timezone(&Utc));
                    }
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fires(plan: &DispatchPlan, from: &str, n: usize) -> Vec<String> {
        let mut t = utc(from);
        let mut out = vec![];
        for _ in 0..n {
            t = plan.next_after(t).unwrap();
            out.push(t.to_rfc3339());
        }
        out
    }

    fn cron_plan(expr: &str, tz: Tz) -> DispatchPlan {
        DispatchPlan::new(MIN_START_MS, tz, true, Some(expr), None, None).unwrap()
    }

    #[test]
    fn quartz_start_step_fires_from_the_start_value() {
        let tz = Tz::UTC;
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let c = QuartzCron::parse("1/2 * * * * ?").unwrap();
        assert_eq!(
            c.next_after(at("2024-01-01T00:00:00Z"), tz),
            Some(at("2024-01-01T00:00:01Z"))
        );
        assert_eq!(
            c.next_after(at("2024-01-01T00:00:01Z"), tz),
            Some(at("2024-01-01T00:00:03Z"))
        );
        let c = QuartzCron::parse("0 0/5 * * * ?").unwrap();
        assert_eq!(
            c.next_after(at("2024-01-01T00:07:00Z"), tz),
            Some(at("2024-01-01T00:10:00Z"))
        );
        let c = QuartzCron::parse("0 15/30 8-18 ? * MON-FRI").unwrap();
        // 2024-01-06 is a Saturday: next is Monday 08:15.
        assert_eq!(
            c.next_after(at("2024-01-06T12:00:00Z"), tz),
            Some(at("2024-01-08T08:15:00Z"))
        );
        assert_eq!(
            c.next_after(at("2024-01-08T08:15:00Z"), tz),
            Some(at("2024-01-08T08:45:00Z"))
        );
        assert_eq!(c.as_str(), "0 15/30 8-18 ? * MON-FRI");
    }

    #[test]
    fn quartz_expressions_users_write() {
        let p = cron_plan("0 */15 * * * ?", Tz::UTC);
        assert_eq!(
            fires(&p, "2025-01-29T10:07:00Z", 2),
            ["2025-01-29T10:15:00+00:00", "2025-01-29T10:30:00+00:00"]
        );
        let p = cron_plan("0 0 2 ? * MON-FRI", Tz::UTC);
        // 2025-01-31 is a Friday: next are Fri 31, Mon Feb 3.
        assert_eq!(
            fires(&p, "2025-01-30T10:07:00Z", 2),
            ["2025-01-31T02:00:00+00:00", "2025-02-03T02:00:00+00:00"]
        );
        let p = cron_plan("0 0 12 L * ?", Tz::UTC);
        assert_eq!(
            fires(&p, "2025-01-29T10:07:00Z", 3),
            [
                "2025-01-31T12:00:00+00:00",
                "2025-02-28T12:00:00+00:00",
                "2025-03-31T12:00:00+00:00"
            ]
        );
        // Quartz weekday numbering: 6 = Friday; 6#3 = third Friday; 6L = last Friday.
        let p = cron_plan("0 0 12 ? * 6", Tz::UTC);
        assert_eq!(
            fires(&p, "2025-01-29T10:07:00Z", 1),
            ["2025-01-31T12:00:00+00:00"]
        );
        let p = cron_plan("0 0 12 ? * 6#3", Tz::UTC);
        assert_eq!(
            fires(&p, "2025-01-29T10:07:00Z", 1),
            ["2025-02-21T12:00:00+00:00"]
        );
        let p = cron_plan("0 0 12 ? * 6L", Tz::UTC);
        assert_eq!(
            fires(&p, "2025-01-29T10:07:00Z", 1),
            ["2025-01-31T12:00:00+00:00"]
        );
        // 15W: weekday nearest the 15th (2025-02-15 is a Saturday -> Friday 14th).
        let p = cron_plan("0 0 12 15W * ?", Tz::UTC);
        assert_eq!(
            fires(&p, "2025-02-01T00:00:00Z", 1),
            ["2025-02-14T12:00:00+00:00"]
        );
        let p = cron_plan("0 0 12 * * ? 2026", Tz::UTC);
        assert_eq!(
            fires(&p, "2025-01-29T10:07:00Z", 1),
            ["2026-01-01T12:00:00+00:00"]
        );
    }

    #[test]
    fn invalid_cron_is_refused_with_a_reason() {
        for bad in [
            "",
            "* * * *",
            "0 0 12 15 * MON",
            "0 0 12 ? * ?",
            "0 61 * * * ?",
            "0 0 25 * * ?",
            "0 0 12 ? * 9",
        ] {
            let e = QuartzCron::parse(bad).unwrap_err();
            assert!(matches!(e, PlanError::InvalidCron(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn cron_in_a_zone_survives_dst() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 2025-03-30: 02:00 -> 03:00 in Berlin. A 02:30 job fires once that day, right after the gap.
        let p = cron_plan("0 30 2 * * ?", berlin);
        let f = fires(&p, "2025-03-28T12:00:00Z", 3);
        assert_eq!(f[0], "2025-03-29T01:30:00+00:00");
        assert_eq!(
            f[1], "2025-03-30T01:00:00+00:00",
            "fires at 03:00 CEST, not skipped"
        );
        assert_eq!(f[2], "2025-03-31T00:30:00+00:00");
        // 2025-10-26: 03:00 -> 02:00. The 02:30 job fires once, not twice.
        let f = fires(&p, "2025-10-25T12:00:00Z", 2);
        assert_eq!(f[0], "2025-10-26T00:30:00+00:00");
        assert_eq!(f[1], "2025-10-27T01:30:00+00:00");
    }

    #[test]
    fn periods() {
        let start = utc("2025-01-31T08:00:00Z").timestamp_millis();
        let every = |period: &str, n: i64, tz: Tz| {
            DispatchPlan::new(start, tz, false, None, Some(period), Some(n)).unwrap()
        };
        assert_eq!(
            fires(&every("MIN", 15, Tz::UTC), "2025-01-31T08:07:00Z", 2),
            ["2025-01-31T08:15:00+00:00", "2025-01-31T08:30:00+00:00"]
        );
        assert_eq!(
            fires(&every("HOUR", 2, Tz::UTC), "2025-01-31T08:00:00Z", 1),
            ["2025-01-31T10:00:00+00:00"]
        );
        assert_eq!(
            fires(&every("DAY", 1, Tz::UTC), "2025-01-01T00:00:00Z", 2),
            ["2025-01-31T08:00:00+00:00", "2025-02-01T08:00:00+00:00"]
        );
        assert_eq!(
            fires(&every("WEEK", 1, Tz::UTC), "2025-01-31T08:00:00Z", 1),
            ["2025-02-07T08:00:00+00:00"]
        );
        assert_eq!(
            fires(&every("MON", 1, Tz::UTC), "2025-01-31T08:00:00Z", 3),
            [
                "2025-02-28T08:00:00+00:00",
                "2025-03-31T08:00:00+00:00",
                "2025-04-30T08:00:00+00:00"
            ]
        );
        // DAY keeps the wall clock across DST (Berlin: 09:00 local before and after).
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let start = utc("2025-03-29T08:00:00Z").timestamp_millis();
        let p = DispatchPlan::new(start, berlin, false, None, Some("DAY"), Some(1)).unwrap();
        assert_eq!(
            fires(&p, "2025-03-29T08:00:00Z", 2),
            ["2025-03-30T07:00:00+00:00", "2025-03-31T07:00:00+00:00"]
        );
        // A daily 02:30 plan fires at 03:00 on the spring-forward day, and once on the fall-back day.
        let start = utc("2025-03-28T01:30:00Z").timestamp_millis();
        let p = DispatchPlan::new(start, berlin, false, None, Some("DAY"), Some(1)).unwrap();
        assert_eq!(
            fires(&p, "2025-03-29T12:00:00Z", 2),
            ["2025-03-30T01:00:00+00:00", "2025-03-31T00:30:00+00:00"]
        );
        assert_eq!(
            fires(&p, "2025-10-25T12:00:00Z", 2),
            ["2025-10-26T00:30:00+00:00", "2025-10-27T01:30:00+00:00"]
        );
    }

    #[test]
    fn bad_plan_fields() {
        assert_eq!(
            DispatchPlan::new(5, Tz::UTC, false, None, Some("DAY"), Some(1)).unwrap_err(),
            PlanError::InvalidStart(5)
        );
        assert!(matches!(
            DispatchPlan::new(MIN_START_MS, Tz::UTC, false, None, Some("YEAR"), Some(1)),
            Err(PlanError::InvalidPeriod(_))
        ));
        assert_eq!(
            DispatchPlan::new(MIN_START_MS, Tz::UTC, false, None, Some("MIN"), Some(60))
                .unwrap_err(),
            PlanError::InvalidInterval(60)
        );
        assert_eq!(
            DispatchPlan::new(MIN_START_MS, Tz::UTC, false, None, Some("MIN"), None).unwrap_err(),
            PlanError::InvalidInterval(0)
        );
    }

    #[test]
    fn time_zones() {
        assert_eq!(
            parse_time_zone("GMT+08:00").unwrap(),
            "Etc/GMT-8".parse::<Tz>().unwrap()
        );
        assert_eq!(
            parse_time_zone("Asia/Shanghai").unwrap(),
            chrono_tz::Asia::Shanghai
        );
        assert_eq!(parse_time_zone("UTC").unwrap(), Tz::UTC);
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }
}
