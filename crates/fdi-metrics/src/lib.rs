//! fdi's Prometheus metrics: the names and help texts, one typed function per fact, and the text
//! exposition that `GET /metrics` answers with.
//!
//! Recording goes through the `metrics` facade: until [`install`] has run (metrics off), every
//! recording function is a no-op that costs a relaxed atomic load. Recording happens per run, per
//! batch or per store query, never per row.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `fdi_runs_total` | counter | `task_id`, `status` |
//! | `fdi_rows_read_total` | counter | `task_id` |
//! | `fdi_bytes_read_total` | counter | `task_id` |
//! | `fdi_rows_written_total` | counter | `task_id` |
//! | `fdi_bytes_written_total` | counter | `task_id` |
//! | `fdi_dirty_rows_total` | counter | `task_id` |
//! | `fdi_run_duration_seconds` | histogram | `task_id` |
//! | `fdi_dispatch_lag_seconds` | histogram | |
//! | `fdi_active_runs` | gauge | |
//! | `fdi_realtime_lag_seconds` | gauge | `task_id` |
//! | `fdi_cdc_lag_seconds` | gauge | `task_id` |
//! | `fdi_store_query_duration_seconds` | histogram | |

use std::sync::OnceLock;
use std::time::Duration;

use metrics::histogram;
use metrics::{Gauge, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Runs that ended, by task and final status (SUCCESS, ERROR, CANCELLED).
pub const RUNS: &str = "fdi_runs_total";
/// Rows the source delivered.
pub const ROWS_READ: &str = "fdi_rows_read_total";
pub const BYTES_READ: &str = "fdi_bytes_read_total";
/// Rows the target committed.
pub const ROWS_WRITTEN: &str = "fdi_rows_written_total";
/// Bytes the target committed.
pub const BYTES_WRITTEN: &str = "fdi_bytes_written_total";
/// Rows kept as dirty data (rejected by the target or by a conversion).
pub const DIRTY_ROWS: &str = "fdi_dirty_rows_total";
/// How long runs took, from their start to their end.
pub const RUN_DURATION: &str = "fdi_run_duration_seconds";
/// From a dispatch plan's planned fire time to the start of its run.
pub const DISPATCH_LAG: &str = "fdi_dispatch_lag_seconds";
/// Runs executing on this node now.
pub const ACTIVE_RUNS: &str = "fdi_active_runs";
/// How far a realtime (polling) task's target is behind: now minus the end of its last copied window.
pub const REALTIME_LAG: &str = "fdi_realtime_lag_seconds";
/// How far a CDC task's target is behind: from a change's commit at the source to its commit at
/// the target, for the newest change committed.
pub const CDC_LAG: &str = "fdi_cdc_lag_seconds";
/// Latency of one metadata-store query.
pub const STORE_QUERY_DURATION: &str = "fdi_store_query_duration_seconds";

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const RUN_DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
const DISPATCH_LAG_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
const STORE_QUERY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot install the metrics recorder: {0}")]
    Install(String),
}

/// The installed recorder's handle: renders the exposition.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Install the Prometheus recorder for this process (once; a second call returns the first's
/// exporter). Without it the recording functions do nothing and [`exporter`] is `None`.
pub fn install() -> Result<Exporter, MetricsError> {
    if let Some(e) = EXPORTER.get() {
        return Ok(e.clone());
    }
    let bad = |e: metrics_exporter_prometheus::BuildError| MetricsError::Install(e.to_string());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(RUN_DURATION.into()), RUN_DURATION_BUCKETS)
        .map_err(bad)?
        .set_buckets_for_metric(Matcher::Full(DISPATCH_LAG.into()), DISPATCH_LAG_BUCKETS)
        .map_err(bad)?
        .set_buckets_for_metric(
            Matcher::Full(STORE_QUERY_DURATION.into()),
            STORE_QUERY_BUCKETS,
        )
        .map_err(bad)?
        .install_recorder()
        .map_err(bad)?;
    describe_all();
    // Gauges without labels show from the first scrape (0), not from their first change.
    gauge!(ACTIVE_RUNS).set(0.0);
    Ok(EXPORTER.get_or_init(|| Exporter { handle }).clone())
}

/// The installed exporter, or `None` when metrics are off.
pub fn exporter() -> Option<&'static Exporter> {
    EXPORTER.get()
}

impl Exporter {
    /// The text exposition of every metric recorded so far.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drain histogram samples recorded since the last scrape into their buckets (keeps memory
    /// bounded between scrapes): call every few seconds.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn describe_all() {
    describe_counter!(RUNS, "Runs that ended, by task and final status.");
    describe_counter!(ROWS_READ, "Rows read from the source.");
    describe_counter!(
        BYTES_READ,
        Unit::Bytes,
        "Bytes of the rows read from the source (their values as the engine holds them; 0 for combination tasks)."
    );
    describe_counter!(ROWS_WRITTEN, "Rows committed to the target.");
    describe_counter!(BYTES_WRITTEN, Unit::Bytes, "Bytes committed to the target.");
    describe_counter!(DIRTY_ROWS, "Rows kept as dirty data.");
    describe_histogram!(
        RUN_DURATION,
        Unit::Seconds,
        "Run duration from start to end."
    );
    describe_histogram!(
        DISPATCH_LAG,
        Unit::Seconds,
        "Delay from a dispatch plan's planned fire time to its run's start."
    );
    describe_gauge!(ACTIVE_RUNS, "Runs executing on this node.");
    describe_gauge!(
        REALTIME_LAG,
        Unit::Seconds,
        "Now minus the end of the last window a realtime task copied."
    );
    describe_gauge!(
        CDC_LAG,
        Unit::Seconds,
        "Source commit to target commit of the newest change a CDC task committed."
    );
    describe_histogram!(
        STORE_QUERY_DURATION,
        Unit::Seconds,
        "Latency of one metadata store query."
    );
}

/// Whether metrics are being recorded (the recorder is installed).
fn recording() -> bool {
    EXPORTER.get().is_some()
}

/// A run started on this node.
pub fn run_started() {
    gauge!(ACTIVE_RUNS).increment(1.0);
}

/// A run that started on this node ended with `status` after `duration`.
pub fn run_ended(task_id: &str, status: &str, duration: Duration) {
    // Counted before the gauge drops: a scrape that sees no active run sees every ended one.
    if recording() {
        let task = task_id.to_string();
        counter!(RUNS, "task_id" => task.clone(), "status" => status.to_string()).increment(1);
        histogram!(RUN_DURATION, "task_id" => task).record(duration.as_secs_f64());
    }
    gauge!(ACTIVE_RUNS).decrement(1.0);
}

/// A run that never executed here was recorded ended with `status`: a dispatch that failed
/// (ERROR 913), a fire rejected while the previous run was active (CANCELLED 914), a run of a
/// dead node ended by this one (ERROR 915). Counted in `fdi_runs_total` only.
pub fn run_recorded(task_id: &str, status: &str) {
    if !recording() {
        return;
    }
    counter!(RUNS, "task_id" => task_id.to_string(), "status" => status.to_string()).increment(1);
}

/// A planned fire's run started `lag` after its planned instant.
pub fn dispatch_lag(lag: Duration) {
    histogram!(DISPATCH_LAG).record(lag.as_secs_f64());
}

/// What one engine run (or one window of a realtime run, or a CDC run) moved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moved {
    pub rows_read: u64,
    pub bytes_read: u64,
    pub rows_written: u64,
    pub bytes_written: u64,
    pub dirty_rows: u64,
}

/// Add what a run (or a window of one) moved to the task's counters.
pub fn data_moved(task_id: &str, moved: Moved) {
    if !recording() {
        return;
    }
    let task = task_id.to_string();
    counter!(ROWS_READ, "task_id" => task.clone()).increment(moved.rows_read);
    counter!(BYTES_READ, "task_id" => task.clone()).increment(moved.bytes_read);
    counter!(ROWS_WRITTEN, "task_id" => task.clone()).increment(moved.rows_written);
    counter!(BYTES_WRITTEN, "task_id" => task.clone()).increment(moved.bytes_written);
    counter!(DIRTY_ROWS, "task_id" => task).increment(moved.dirty_rows);
}

/// One metadata-store query took `elapsed`.
pub fn store_query(elapsed: Duration) {
    histogram!(STORE_QUERY_DURATION).record(elapsed.as_secs_f64());
}

/// A task's lag gauge, resolved once (setting it allocates nothing).
#[derive(Clone)]
pub struct LagGauge(Gauge);

impl LagGauge {
    /// The lag of a realtime (window-polling) task.
    pub fn realtime(task_id: &str) -> Self {
        Self::of(REALTIME_LAG, task_id)
    }

    /// The lag of a CDC task.
    pub fn cdc(task_id: &str) -> Self {
        Self::of(CDC_LAG, task_id)
    }

    fn of(name: &'static str, task_id: &str) -> Self {
        if !recording() {
            return Self(Gauge::noop());
        }
        Self(gauge!(name, "task_id" => task_id.to_string()))
    }

    pub fn set(&self, lag: Duration) {
        self.0.set(lag.as_secs_f64());
    }

    /// Set from milliseconds (negative values, from clock skew, count as 0).
    pub fn set_ms(&self, lag_ms: i64) {
        self.0.set(lag_ms.max(0) as f64 / 1000.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `line_prefix` (name with labels) in an exposition.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn recorded_facts_show_in_the_exposition() {
        run_started(); // before install: a no-op
        let exporter = install().expect("install");
        run_started();
        run_started();
        run_ended("t1", "SUCCESS", Duration::from_millis(1500));
        run_recorded("t1", "CANCELLED");
        data_moved(
            "t1",
            Moved {
                rows_read: 10,
                bytes_read: 120,
                rows_written: 9,
                bytes_written: 100,
                dirty_rows: 1,
            },
        );
        dispatch_lag(Duration::from_millis(20));
        store_query(Duration::from_micros(700));
        LagGauge::cdc("t2").set_ms(2500);
        let text = exporter.render();
        assert_eq!(value(&text, "fdi_active_runs "), Some(1.0), "{text}");
        assert_eq!(
            value(&text, r#"fdi_runs_total{task_id="t1",status="SUCCESS"} "#),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(&text, r#"fdi_rows_written_total{task_id="t1"} "#),
            Some(9.0)
        );
        assert_eq!(
            value(&text, r#"fdi_bytes_read_total{task_id="t1"} "#),
            Some(120.0)
        );
        assert_eq!(
            value(&text, r#"fdi_dirty_rows_total{task_id="t1"} "#),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"fdi_run_duration_seconds_bucket{task_id="t1",le="1"} "#
            ),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                r#"fdi_run_duration_seconds_bucket{task_id="t1",le="2.5"} "#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(value(&text, "fdi_dispatch_lag_seconds_count "), Some(1.0));
        assert_eq!(
            value(&text, "fdi_store_query_duration_seconds_count "),
            Some(1.0)
        );
        assert_eq!(
            value(&text, r#"fdi_cdc_lag_seconds{task_id="t2"} "#),
            Some(2.5)
        );
        assert!(
            text.contains("# HELP fdi_runs_total Runs that ended"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE fdi_run_duration_seconds histogram"),
            "{text}"
        );
    }
}
