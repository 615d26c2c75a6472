//! Dispatch plans as the API shows them, their validation, and when they fire next.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use fdi_dispatch_plan::{DispatchPlan, PlanError};
use fdi_types::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What to do when the server was down across one or more fire times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MisfirePolicy {
    /// Fire once now for the whole missed window (Quartz "fire once now"), the default.
    #[default]
    FireOnceNow,
    /// Skip the missed fires; wait for the next planned instant.
    DoNothing,
}

/// A dispatch plan as stored and answered (reference §5.3.9-5.3.11, plus `time_zone` and
/// `misfire_policy`, our extensions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanDoc {
    pub dispatch_id: String,
    pub task_id: String,
    pub start_datetime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch_interval: Option<i64>,
    pub created_date: i64,
    pub last_modified_date: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    pub use_quartz_cron: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA name or `GMT+08:00`; plans without one fire in the server's zone (`--time-zone`,
    /// default UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub misfire_policy: MisfirePolicy,
}

impl PlanDoc {
    /// The timing rule, in the plan's zone or `default_tz`.
    pub fn timing(&self, default_tz: Tz) -> Result<DispatchPlan, ApiError> {
        let tz = match self.time_zone.as_deref() {
            Some(z) => fdi_dispatch_plan::parse_time_zone(z).map_err(plan_error)?,
            None => default_tz,
        };
        DispatchPlan::new(
            self.start_datetime,
            tz,
            self.use_quartz_cron,
            self.cron.as_deref(),
            self.period.as_deref(),
            self.dispatch_interval,
        )
        .map_err(plan_error)
    }

    /// Apply a create/update request body on top of this plan (fields absent keep their value),
    /// then validate the result.
    pub fn apply(&mut self, body: &Value, default_tz: Tz) -> Result<(), ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::invalid_field("body", "must be a JSON object"))?;
        let mode = plan_mode(obj)?;
        for (k, v) in obj {
            match k.as_str() {
                "start_datetime" => self.start_datetime = start_ms(v)?,
                "period" => self.period = opt_string(k, v)?,
                "dispatch_interval" => self.dispatch_interval = opt_int(k, v)?,
                "remark" => {
                    let r = opt_string(k, v)?;
                    if r.as_deref().is_some_and(|r| r.chars().count() > 36) {
                        return Err(ApiError::invalid_field("remark", "at most 36 characters"));
                    }
                    self.remark = r;
                }
                "use_quartz_cron" => self.use_quartz_cron = bool_of(k, v)?,
                "cron" => self.cron = opt_string(k, v)?,
                "time_zone" | "timeZone" => self.time_zone = opt_string(k, v)?,
                "misfire_policy" => {
                    self.misfire_policy = serde_json::from_value(v.clone()).map_err(|_| {
                        ApiError::invalid_field(
                            "misfire_policy",
                            "expected FIRE_ONCE_NOW or DO_NOTHING",
                        )
                    })?
                }
                // Read-only or identifying fields a client may echo back (the reference's PUT
                // example sends the whole plan).
                "dispatch_id" | "task_id" | "created_date" | "last_modified_date" => {}
                other => {
                    return Err(ApiError::invalid_field(other, "unknown field"));
                }
            }
        }
        if let Some(quartz) = mode {
            self.use_quartz_cron = quartz;
        }
        if self.use_quartz_cron {
            self.period = None;
            self.dispatch_interval = None;
            if self.cron.as_deref().unwrap_or("").trim().is_empty() {
                return Err(ApiError::invalid_field(
                    "cron",
                    "required when use_quartz_cron is true",
                ));
            }
        } else {
            self.cron = None;
        }
        self.timing(default_tz).map(|_| ())
    }
}

/// Which kind of plan a body asks for: `Some(true)` a Quartz cron, `Some(false)` a period, `None`
/// when it names neither (the plan keeps its kind). A body that names a cron and a period, or
/// contradicts its own `use_quartz_cron`, is refused rather than half applied.
fn plan_mode(body: &serde_json::Map<String, Value>) -> Result<Option<bool>, ApiError> {
    let named = |k: &str| {
        body.get(k)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
    };
    let cron = named("cron");
    let period = named("period") || named("dispatch_interval");
    let explicit = match body.get("use_quartz_cron") {
        None | Some(Value::Null) => None,
        Some(v) => Some(bool_of("use_quartz_cron", v)?),
    };
    match (explicit, cron, period) {
        (_, true, true) => Err(ApiError::invalid_field(
            "cron",
            "a plan is either a Quartz cron (cron) or a period (period, dispatch_interval), not both",
        )),
        (Some(false), true, false) => Err(ApiError::invalid_field(
            "cron",
            "given while use_quartz_cron is false",
        )),
        (Some(true), false, true) => Err(ApiError::invalid_field(
            "period",
            "given while use_quartz_cron is true",
        )),
        (Some(q), _, _) => Ok(Some(q)),
        (None, true, false) => Ok(Some(true)),
        (None, false, true) => Ok(Some(false)),
        (None, false, false) => Ok(None),
    }
}

/// Record in the metrics how late a planned fire's run started (now minus its planned instant).
pub(crate) fn record_dispatch_lag(planned_ms: i64) {
    let lag_ms = (fdi_types::now_millis() - planned_ms).max(0) as u64;
    fdi_metrics::dispatch_lag(std::time::Duration::from_millis(lag_ms));
}

/// The first planned instant strictly after `after_ms`.
pub fn next_fire(plan: &DispatchPlan, after_ms: i64) -> Option<i64> {
    let after: DateTime<Utc> = Utc.timestamp_millis_opt(after_ms).single()?;
    plan.next_after(after).map(|t| t.timestamp_millis())
}

fn plan_error(e: PlanError) -> ApiError {
    match e {
        PlanError::InvalidInterval(_) => ApiError::new(ErrorCode::InvalidInterval, e.to_string()),
        _ => ApiError::new(ErrorCode::InvalidParameters, e.to_string()),
    }
}

/// `start_datetime`: epoch ms (number or digits) or an RFC 3339 string as in the reference's
/// request example (`"2020-11-14T07:38:25.609Z"`).
fn start_ms(v: &Value) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::invalid_field(
            "start_datetime",
            "expected epoch milliseconds or an RFC 3339 date-time",
        )
    };
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(bad),
        Value::String(s) => {
            if let Ok(n) = s.trim().parse::<i64>() {
                return Ok(n);
            }
            DateTime::parse_from_rfc3339(s.trim())
                .map(|t| t.timestamp_millis())
                .map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

fn opt_string(field: &str, v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.trim().to_string())),
        _ => Err(ApiError::invalid_field(field, "must be a string")),
    }
}

fn opt_int(field: &str, v: &Value) -> Result<Option<i64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| ApiError::invalid_field(field, "must be an integer")),
        Value::String(s) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid_field(field, "must be an integer")),
        _ => Err(ApiError::invalid_field(field, "must be an integer")),
    }
}

fn bool_of(field: &str, v: &Value) -> Result<bool, ApiError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Value::Null => Ok(false),
        _ => Err(ApiError::invalid_field(field, "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn blank() -> PlanDoc {
        PlanDoc {
            dispatch_id: "d".into(),
            task_id: "t".into(),
            start_datetime: 0,
            period: None,
            dispatch_interval: None,
            created_date: 1,
            last_modified_date: 1,
            remark: None,
            use_quartz_cron: false,
            cron: None,
            time_zone: None,
            misfire_policy: MisfirePolicy::FireOnceNow,
        }
    }

    #[test]
    fn a_period_posted_onto_a_cron_plan_switches_it_and_both_are_refused() {
        let mut p = blank();
        p.start_datetime = 1_700_000_000_000;
        p.apply(&json!({"cron": "0 0 * * * ?"}), Tz::UTC).unwrap();
        assert!(p.use_quartz_cron, "naming a cron makes it a cron plan");
        p.apply(&json!({"period": "MIN", "dispatch_interval": 5}), Tz::UTC)
            .unwrap();
        assert!(!p.use_quartz_cron, "naming a period makes it a period plan");
        assert_eq!(p.period.as_deref(), Some("MIN"));
        assert_eq!(p.cron, None);
        p.apply(&json!({"remark": "only a remark"}), Tz::UTC)
            .unwrap();
        assert_eq!(p.period.as_deref(), Some("MIN"), "kind kept");
        for bad in [
            json!({"cron": "0 0 * * * ?", "period": "DAY"}),
            json!({"use_quartz_cron": false, "cron": "0 0 * * * ?"}),
            json!({"use_quartz_cron": true, "cron": "0 0 * * * ?", "dispatch_interval": 2}),
        ] {
            let before = p.clone();
            let e = p.apply(&bad, Tz::UTC).unwrap_err();
            assert_eq!(e.code, "FDI.3002", "{bad}");
            assert_eq!(p.period, before.period, "nothing applied from {bad}");
        }
    }

    #[test]
    fn reference_example_is_accepted_with_an_rfc3339_start() {
        let mut p = blank();
        p.apply(
            &json!({"use_quartz_cron": false, "remark": "123", "start_datetime": "2020-11-14T07:38:25.609Z", "period": "DAY", "dispatch_interval": 1}),
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(p.start_datetime, 1_605_339_505_609);
        let t = p.timing(Tz::UTC).unwrap();
        assert_eq!(next_fire(&t, 1_605_339_505_609), Some(1_605_425_905_609));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"start_datetime": 1_605_339_505_609_i64, "use_quartz_cron": true, "cron": "0 61 * * * ?"}),
                "FDI.3002",
                "cron",
            ),
            (
                json!({"start_datetime": 1_605_339_505_609_i64, "use_quartz_cron": true}),
                "FDI.3002",
                "cron",
            ),
            (
                json!({"start_datetime": 1_605_339_505_609_i64, "period": "YEAR", "dispatch_interval": 1}),
                "FDI.3002",
                "period",
            ),
            (
                json!({"start_datetime": 1_605_339_505_609_i64, "period": "DAY", "dispatch_interval": 60}),
                "FDI.3067",
                "dispatch_interval",
            ),
            (
                json!({"start_datetime": 5, "period": "DAY", "dispatch_interval": 1}),
                "FDI.3002",
                "start_datetime",
            ),
            (
                json!({"start_datetime": "yesterday", "period": "DAY", "dispatch_interval": 1}),
                "FDI.3002",
                "start_datetime",
            ),
            (
                json!({"start_datetime": 1_605_339_505_609_i64, "period": "DAY", "dispatch_interval": 1, "time_zone": "Mars/Base"}),
                "FDI.3002",
                "time zone",
            ),
            (
                json!({"start_datetime": 1_605_339_505_609_i64, "period": "DAY", "dispatch_interval": 1, "bogus": 1}),
                "FDI.3002",
                "bogus",
            ),
        ];
        for (body, code, field) in cases {
            let e = blank().apply(&body, Tz::UTC).unwrap_err();
            assert_eq!(e.code, code, "{body}: {e}");
            assert!(e.message.contains(field), "{body}: {e}");
        }
    }

    #[test]
    fn quartz_plan_in_a_zone_fires_on_its_wall_clock() {
        let mut p = blank();
        p.apply(
            &json!({"start_datetime": 1_700_000_000_000_i64, "use_quartz_cron": true, "cron": "0 0 2 ? * MON-FRI", "time_zone": "GMT+08:00"}),
            Tz::UTC,
        )
        .unwrap();
        let t = p.timing(Tz::UTC).unwrap();
        // 2023-11-14T22:13:20Z is Wed 06:13 in +08:00; next 02:00 +08:00 is Thu 2023-11-16 02:00
        // = 2023-11-15T18:00:00Z.
        assert_eq!(next_fire(&t, 1_700_000_000_000), Some(1_700_071_200_000));
    }
}
