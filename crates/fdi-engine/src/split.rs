//! Split-parallel reads (after DataX's `splitPk`): a table read is cut into ranges of an integer
//! key and the ranges are read at once, each by its own reader on its own connection, into the
//! run's one writer (one transaction: a failed range fails the run and nothing is committed).
//!
//! A task names the key with `splitPk` (any table size) or leaves it to the engine, which splits
//! tables of at least [`AUTO_SPLIT_ROWS`] rows (the source's estimate) on their one-column integer
//! primary key. `splitCount` says how many readers; the default is [`default_readers`]. The
//! first range has no lower bound and the last no upper bound, so rows written while the run
//! reads, outside the bounds seen at its start, are still read.

use std::sync::Arc;

use fdi_connector::{
    BatchSender, Connector, ConnectorError, ReadSpec, Result, SourceQuery, SourceReader,
};
use fdi_types::{WhereCondition, WhereOp};
use tokio_util::sync::CancellationToken;

use crate::plan::ExecPlan;

/// A table the task did not ask to split is split from this many rows (the source's estimate).
pub(crate) const AUTO_SPLIT_ROWS: u64 = 500_000;

/// Readers of a split read when the task does not say: the cores, at least 2, at most 4.
pub(crate) fn default_readers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 4)
}

/// How a read was split, for the run's log.
#[derive(Debug, Clone)]
pub(crate) struct SplitRead {
    /// The whole split ("4 readers over ranges of \"id\" (1 to 1000000)").
    pub described: String,
    /// Each range's condition, in the order of the reads ("250000 <= id < 500000").
    pub ranges: Vec<String>,
}

/// The reads of a run: the plan's one read, or one per key range with how it was split.
/// `estimate` is the source's row estimate of the read (the one progress is measured against).
pub(crate) async fn read_specs(
    plan: &ExecPlan,
    source: &Arc<dyn Connector>,
    estimate: Option<u64>,
) -> Result<(Vec<ReadSpec>, Option<SplitRead>)> {
    let single = || Ok((vec![plan.read.clone()], None));
    let Some(key) = &plan.split else {
        return single();
    };
    if !key.asked && estimate.is_none_or(|rows| rows < AUTO_SPLIT_ROWS) {
        return single();
    }
    let Some((lo, hi)) = source.key_range(&plan.read.query, &key.column).await? else {
        return single();
    };
    let ranges = key_ranges(lo, hi, key.count.unwrap_or_else(default_readers));
    if ranges.len() < 2 {
        return single();
    }
    let specs = ranges
        .iter()
        .map(|&(from, to)| range_spec(&plan.read, &key.column, from, to))
        .collect();
    let described = format!(
        "{} readers over ranges of \"{}\" ({lo} to {hi})",
        ranges.len(),
        key.column
    );
    let ranges = ranges
        .iter()
        .map(|&(from, to)| range_label(&key.column, from, to))
        .collect();
    Ok((specs, Some(SplitRead { described, ranges })))
}

/// `from <= key < to` as the run's log shows a range (an open side left out).
fn range_label(key: &str, from: Option<i64>, to: Option<i64>) -> String {
    match (from, to) {
        (Some(f), Some(t)) => format!("{f} <= {key} < {t}"),
        (Some(f), None) => format!("{key} >= {f}"),
        (None, Some(t)) => format!("{key} < {t}"),
        (None, None) => format!("every {key}"),
    }
}

/// `n` ranges of about equal width over `lo..=hi`, as (from inclusive, to exclusive) bounds; the
/// first is open below, the last open above. Fewer when there are fewer values than `n`.
pub(crate) fn key_ranges(lo: i64, hi: i64, n: usize) -> Vec<(Option<i64>, Option<i64>)> {
    let width = i128::from(hi) - i128::from(lo) + 1;
    let n = (n as i128).min(width).max(1);
    let bounds: Vec<i64> = (1..n)
        .map(|i| (i128::from(lo) + width * i / n) as i64)
        .collect();
    let mut ranges = Vec::with_capacity(n as usize);
    let mut from = None;
    for b in bounds {
        ranges.push((from, Some(b)));
        from = Some(b);
    }
    ranges.push((from, None));
    ranges
}

/// The read limited to `from <= key < to` (an open side is no condition).
fn range_spec(read: &ReadSpec, key: &str, from: Option<i64>, to: Option<i64>) -> ReadSpec {
    let mut spec = read.clone();
    if let SourceQuery::Table { filters, .. } = &mut spec.query {
        let cond = |op, v: i64| WhereCondition {
            andor: None,
            field_name: key.to_string(),
            field_type: None,
            op,
            value: Some(v.to_string()),
            min_value: None,
            max_value: None,
        };
        // (Appended after the task's own filters, which are grouped before an AND.)
        if let Some(f) = from {
            filters.push(cond(WhereOp::MoreEqual, f));
        }
        if let Some(t) = to {
            filters.push(cond(WhereOp::Less, t));
        }
    }
    spec
}

/// Run every reader into `out` at once, one task each; the first failure cancels the others and
/// is returned. Returns the rows each reader read, in the readers' order.
pub(crate) async fn read_all(
    readers: Vec<Box<dyn SourceReader>>,
    out: BatchSender,
    cancel: CancellationToken,
) -> Result<Vec<u64>> {
    let mut readers = readers;
    if readers.len() == 1 {
        let n = readers.pop().expect("one reader").read(out, cancel).await?;
        return Ok(vec![n]);
    }
    let mut rows = vec![0; readers.len()];
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut reader) in readers.into_iter().enumerate() {
        let (out, cancel) = (out.clone(), cancel.clone());
        tasks.spawn(tracing::Instrument::instrument(
            async move { (i, reader.read(out, cancel).await) },
            tracing::Span::current(),
        ));
    }
    drop(out);
    while let Some(done) = tasks.join_next().await {
        let failed = match done {
            Ok((i, Ok(n))) => {
                rows[i] = n;
                continue;
            }
            Ok((_, Err(e))) => e,
            Err(join) => ConnectorError::internal(format!("a split reader failed: {join}")),
        };
        cancel.cancel();
        return Err(failed);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_keys_once_with_open_ends() {
        assert_eq!(
            key_ranges(-10, 9, 4),
            vec![
                (None, Some(-5)),
                (Some(-5), Some(0)),
                (Some(0), Some(5)),
                (Some(5), None)
            ]
        );
        // Fewer values than readers.
        assert_eq!(key_ranges(7, 8, 4), vec![(None, Some(8)), (Some(8), None)]);
        assert_eq!(key_ranges(7, 7, 4), vec![(None, None)]);
        // The whole i64 range without overflow, bounds increasing.
        let r = key_ranges(i64::MIN, i64::MAX, 3);
        assert_eq!(r.len(), 3);
        assert!(r[0].1.unwrap() < r[1].1.unwrap());
        assert_eq!(r[0].1, r[1].0);
    }

    #[test]
    fn every_key_falls_in_exactly_one_range() {
        for (lo, hi, n) in [(-1000, 1000, 3), (1, 1_000_003, 4), (-7, -1, 2), (0, 99, 7)] {
            let ranges = key_ranges(lo, hi, n);
            for k in (lo - 5..=hi + 5).step_by(1.max(((hi - lo) / 500) as usize)) {
                let hits = ranges
                    .iter()
                    .filter(|(f, t)| f.is_none_or(|f| k >= f) && t.is_none_or(|t| k < t))
                    .count();
                assert_eq!(hits, 1, "key {k} in {ranges:?}");
            }
        }
    }
}
