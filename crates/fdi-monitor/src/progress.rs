//! A run's live progress from its successive progress samples: percent done against the
//! source's row estimate, rows per second over the last interval, time left. Computed here
//! only; the store keeps the results and the API shows them.

/// Rows read so far, at an instant (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub rows_read: u64,
    pub at_ms: i64,
}

/// Samples closer than this to the previous one keep the previous rate (too short to measure).
pub const MIN_INTERVAL_MS: i64 = 200;

/// Percent done while running: read / estimate, at most 99 (a run is 100 only once it
/// succeeded; a source that holds more rows than it estimated stays at 99 until the end). None
/// without an estimate.
pub fn running_percent(rows_read: u64, estimate: Option<u64>) -> Option<u8> {
    let total = estimate?;
    if total == 0 {
        return Some(if rows_read == 0 { 0 } else { 99 });
    }
    let pct = (u128::from(rows_read) * 100 / u128::from(total)).min(99);
    Some(pct as u8)
}

/// Rows per second between two samples; None when they are too close to measure.
pub fn rate(previous: Sample, now: Sample) -> Option<f64> {
    let ms = now.at_ms - previous.at_ms;
    if ms < MIN_INTERVAL_MS {
        return None;
    }
    let rows = now.rows_read.saturating_sub(previous.rows_read);
    Some(rows as f64 * 1000.0 / ms as f64)
}

/// Time left in ms at `rows_per_second` for the rows the estimate has left; None without an
/// estimate, without a rate, or once the read passed the estimate (then nobody knows).
pub fn remaining_ms(rows_read: u64, estimate: Option<u64>, rows_per_second: f64) -> Option<i64> {
    let total = estimate?;
    if rows_read >= total || rows_per_second <= 0.0 || !rows_per_second.is_finite() {
        return None;
    }
    let left = (total - rows_read) as f64;
    Some((left * 1000.0 / rows_per_second).ceil() as i64)
}

/// Rows per second over a whole read (`ms` long): what an ended run shows.
pub fn average_rate(rows: u64, ms: i64) -> f64 {
    if ms <= 0 {
        return 0.0;
    }
    rows as f64 * 1000.0 / ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rows_read: u64, at_ms: i64) -> Sample {
        Sample { rows_read, at_ms }
    }

    #[test]
    fn percent_is_read_over_estimate_capped_at_99() {
        assert_eq!(running_percent(0, Some(1_000)), Some(0));
        assert_eq!(running_percent(254, Some(1_000)), Some(25));
        assert_eq!(running_percent(999, Some(1_000)), Some(99));
        assert_eq!(running_percent(1_000, Some(1_000)), Some(99));
        assert_eq!(running_percent(5_000, Some(1_000)), Some(99));
        assert_eq!(running_percent(10, Some(0)), Some(99));
        assert_eq!(running_percent(0, Some(0)), Some(0));
        assert_eq!(running_percent(10, None), None);
        assert_eq!(running_percent(u64::MAX, Some(u64::MAX)), Some(99));
    }

    #[test]
    fn rate_over_the_last_interval() {
        assert_eq!(rate(at(1_000, 10_000), at(3_000, 10_500)), Some(4_000.0));
        assert_eq!(rate(at(0, 0), at(250_000, 1_000)), Some(250_000.0));
        // Too close to measure.
        assert_eq!(rate(at(0, 0), at(100, 199)), None);
        // A restarted read (a retry) does not go negative.
        assert_eq!(rate(at(500, 0), at(100, 1_000)), Some(0.0));
    }

    #[test]
    fn time_left_from_the_rate() {
        assert_eq!(
            remaining_ms(250_000, Some(1_000_000), 250_000.0),
            Some(3_000)
        );
        assert_eq!(remaining_ms(999_999, Some(1_000_000), 3.0), Some(334));
        assert_eq!(remaining_ms(10, Some(1_000_000), 0.0), None);
        assert_eq!(remaining_ms(10, None, 100.0), None);
        assert_eq!(remaining_ms(2_000, Some(1_000), 100.0), None);
    }

    #[test]
    fn average_of_a_whole_read() {
        assert_eq!(average_rate(1_000_000, 4_000), 250_000.0);
        assert_eq!(average_rate(10, 0), 0.0);
    }
}
