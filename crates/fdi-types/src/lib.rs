//! Leaf types shared by every fdi crate: ids, enums, step codes, FDI error codes and the
//! `task_detail` model. No I/O lives here.

pub mod error;
pub mod model;
pub mod run_event;
pub mod status;
pub mod task_detail;
pub mod window;

pub use error::{ApiError, ErrorCode};
pub use model::{DatasourceType, TaskKind, TaskType};
pub use status::{ExecuteStatus, Position, PositionStatus, StepCode};
pub use task_detail::{
    ColumnMapping, MetaField, SelectedColumn, SourceConfig, TargetConfig, TaskDetail,
    WhereCondition, WhereOp,
};
pub use window::IncrementalWindow;

/// Milliseconds since the Unix epoch (UTC), the timestamp unit of the whole API.
pub fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new id in the reference's style: 32 lowercase hex characters, time-ordered like a UUIDv7:
/// the first 12 are the creation millisecond, the other 20 random (80 bits). Ids made later sort
/// later, so the store's indexes on ids (runs, steps) grow at their right edge instead of
/// touching a random page per insert.
pub fn new_id() -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(32);
    let millis = now_millis().max(0) as u64 & 0xffff_ffff_ffff;
    let _ = write!(s, "{millis:012x}");
    for b in random_bytes::<10>() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = [0u8; N];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_usize(i);
        h.write_i64(chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default());
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_hex_unique_and_time_ordered() {
        let first = super::new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let ids: Vec<String> = (0..10_000).map(|_| super::new_id()).collect();
        assert!(ids.iter().all(|id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }));
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        assert!(ids.iter().all(|id| *id > first), "made later, sorts later");
        let millis = i64::from_str_radix(&first[..12], 16).unwrap();
        assert!((super::now_millis() - millis).abs() < 60_000);
    }
}
