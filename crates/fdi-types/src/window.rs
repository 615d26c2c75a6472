//! The incremental window: one type from the scheduler that decides it, through the engine that
//! reads it, to the run record that keeps it.

use serde::{Deserialize, Serialize};

/// One window of an incremental task (`need_inc_migration`), decided by the scheduler.
///
/// The window is half-open, `[begin_ms, end_ms)`, in epoch milliseconds:
/// - a table source reads `sourceDateColumn >= begin AND sourceDateColumn < end`, ANDed with the
///   task's own `where` filters. The bounds are literals in the task's `timeZone` (`GMT+08:00`
///   or an IANA name; UTC when empty) shaped for the source's dialect and the column's type (see
///   `fdi_sql_core::window`). Consecutive windows share their boundary, so a row whose cursor
///   equals it is read exactly once.
/// - a custom query (`isAddSql`) gets `${begin}` and `${end}` replaced by quoted timestamp
///   literals of the bounds (`'2024-03-01 08:00:00'`; on PostgreSQL with the zone's offset,
///   `'2024-03-01 08:00:00+08:00'`); the query itself decides how to use them and
///   `include_nulls` does not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncrementalWindow {
    /// Inclusive start (epoch ms).
    pub begin_ms: i64,
    /// Exclusive end (epoch ms).
    pub end_ms: i64,
    /// Also read rows whose cursor is NULL (`... OR col IS NULL`). The scheduler sets it on a
    /// task's first window so those rows are loaded once by the initial load. When false, the
    /// run counts them and reports `N rows have NULL in <col> and are only loaded by the first
    /// run` in the remarks of its reader-end step (101); the run does not fail.
    pub include_nulls: bool,
}

impl IncrementalWindow {
    /// Nothing can be in it (and it is not a first window that loads NULL cursors).
    pub fn is_empty(&self) -> bool {
        self.end_ms <= self.begin_ms && !self.include_nulls
    }
}

/// `[begin, end]` on the wire and in stored documents (as release 0.1 wrote a run's window);
/// `include_nulls` travels as an optional third element.
impl Serialize for IncrementalWindow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.include_nulls {
            (self.begin_ms, self.end_ms, true).serialize(s)
        } else {
            (self.begin_ms, self.end_ms).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for IncrementalWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<serde_json::Value> = Vec::deserialize(d)?;
        let int = |i: usize| {
            v.get(i)
                .and_then(serde_json::Value::as_i64)
                .ok_or_else(|| serde::de::Error::custom("a window is [begin_ms, end_ms]"))
        };
        Ok(Self {
            begin_ms: int(0)?,
            end_ms: int(1)?,
            include_nulls: v
                .get(2)
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::IncrementalWindow;

    #[test]
    fn reads_the_0_1_pair_and_keeps_include_nulls() {
        let w: IncrementalWindow = serde_json::from_str("[10, 20]").unwrap();
        assert_eq!((w.begin_ms, w.end_ms, w.include_nulls), (10, 20, false));
        let first = IncrementalWindow {
            include_nulls: true,
            ..w
        };
        let back: IncrementalWindow =
            serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        assert_eq!(back, first);
        assert_eq!(serde_json::to_string(&w).unwrap(), "[10,20]");
        assert!(serde_json::from_str::<IncrementalWindow>("[10]").is_err());
    }

    #[test]
    fn emptiness() {
        let w = IncrementalWindow {
            begin_ms: 5,
            end_ms: 5,
            include_nulls: false,
        };
        assert!(w.is_empty());
        assert!(
            !IncrementalWindow {
                include_nulls: true,
                ..w
            }
            .is_empty()
        );
        assert!(!IncrementalWindow { end_ms: 6, ..w }.is_empty());
    }
}
