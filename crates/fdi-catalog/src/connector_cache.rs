//! Connectors kept between runs: a run of a datasource whose factory allows it gets the
//! connector (and so the idle pooled connections) the previous run of the same content used,
//! instead of paying connection setup (TCP, TLS, authentication) again.
//!
//! Bounded two ways: an entry unused for [`IDLE_EXPIRY`] is dropped (its pool closes when the
//! last run holding it ends), and at most [`MAX_ENTRIES`] contents are kept (the least recently
//! used goes first). A changed content is a new key, so an edited datasource never reaches an
//! old pool; the old entry simply expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fdi_connector::Connector;
use fdi_types::DatasourceType;
use serde_json::Value;

/// How long an unused connector is kept.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(300);
/// How many datasource contents are kept at most.
pub const MAX_ENTRIES: usize = 64;

struct Entry {
    connector: Arc<dyn Connector>,
    last_used: Instant,
}

/// Connectors by datasource type and content, reused across runs.
pub struct ConnectorCache {
    entries: Mutex<HashMap<(DatasourceType, String), Entry>>,
    idle_expiry: Duration,
    max_entries: usize,
}

impl Default for ConnectorCache {
    fn default() -> Self {
        Self::new(IDLE_EXPIRY, MAX_ENTRIES)
    }
}

impl ConnectorCache {
    pub fn new(idle_expiry: Duration, max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            idle_expiry,
            max_entries: max_entries.max(1),
        }
    }

    /// The kept connector for (`t`, `content`), or the one `build` makes, kept for next time.
    pub fn get_or_build<E>(
        &self,
        t: DatasourceType,
        content: &Value,
        build: impl FnOnce() -> Result<Arc<dyn Connector>, E>,
    ) -> Result<Arc<dyn Connector>, E> {
        let key = (t, content.to_string());
        let now = Instant::now();
        {
            let mut entries = self.entries.lock().unwrap();
            self.expire(&mut entries, now);
            if let Some(e) = entries.get_mut(&key) {
                e.last_used = now;
                return Ok(e.connector.clone());
            }
        }
        // Built outside the lock (a factory may do some work); two runs racing for a new content
        // both build, and the later one is kept.
        let connector = build()?;
        let mut entries = self.entries.lock().unwrap();
        if entries.len() >= self.max_entries
            && !entries.contains_key(&key)
            && let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
        {
            entries.remove(&oldest);
        }
        entries.insert(
            key,
            Entry {
                connector: connector.clone(),
                last_used: now,
            },
        );
        Ok(connector)
    }

    /// How many connectors are kept now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expire(&self, entries: &mut HashMap<(DatasourceType, String), Entry>, now: Instant) {
        entries.retain(|_, e| now.duration_since(e.last_used) < self.idle_expiry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PG: DatasourceType = DatasourceType::new("POSTGRESQL", "pg");
    const MY: DatasourceType = DatasourceType::new("MYSQL", "mysql");

    fn build(content: &Value) -> Result<Arc<dyn Connector>, fdi_connector::ConnectorError> {
        fdi_connector_postgres::Factory.create(content)
    }

    use fdi_connector::ConnectorFactory;

    #[tokio::test]
    async fn same_content_gets_the_same_connector_and_changed_content_a_new_one() {
        let cache = ConnectorCache::default();
        let a = json!({"url": "postgres://postgres@127.0.0.1:5432/test"});
        let b = json!({"url": "postgres://postgres@127.0.0.1:5432/postgres"});
        let first = cache.get_or_build(PG, &a, || build(&a)).unwrap();
        let again = cache.get_or_build(PG, &a, || build(&a)).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let other = cache.get_or_build(PG, &b, || build(&b)).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        // The type is part of the key.
        let other_type = cache.get_or_build(MY, &a, || build(&a)).unwrap();
        assert!(!Arc::ptr_eq(&first, &other_type));
        assert_eq!(cache.len(), 3);
    }

    #[tokio::test]
    async fn unused_entries_expire_and_the_least_recently_used_goes_first() {
        let cache = ConnectorCache::new(Duration::from_millis(50), 2);
        let a = json!({"url": "postgres://postgres@127.0.0.1:5432/a"});
        let b = json!({"url": "postgres://postgres@127.0.0.1:5432/b"});
        let c = json!({"url": "postgres://postgres@127.0.0.1:5432/c"});
        let first_a = cache.get_or_build(PG, &a, || build(&a)).unwrap();
        cache.get_or_build(PG, &b, || build(&b)).unwrap();
        // a used again: b is now the least recently used and makes room for c.
        cache.get_or_build(PG, &a, || build(&a)).unwrap();
        cache.get_or_build(PG, &c, || build(&c)).unwrap();
        assert_eq!(cache.len(), 2);
        let a_again = cache.get_or_build(PG, &a, || build(&a)).unwrap();
        assert!(Arc::ptr_eq(&first_a, &a_again), "a was kept");
        let mut built_b = false;
        cache
            .get_or_build(PG, &b, || {
                built_b = true;
                build(&b)
            })
            .unwrap();
        assert!(built_b, "b had been evicted");
        std::thread::sleep(Duration::from_millis(80));
        let a_late = cache.get_or_build(PG, &a, || build(&a)).unwrap();
        assert!(
            !Arc::ptr_eq(&first_a, &a_late),
            "a expired after 50 ms idle"
        );
        assert_eq!(cache.len(), 1);
    }

    #[tokio::test]
    async fn a_build_error_keeps_nothing() {
        let cache = ConnectorCache::default();
        let bad = json!({"url": "not a url"});
        assert!(cache.get_or_build(PG, &bad, || build(&bad)).is_err());
        assert!(cache.is_empty());
    }
}
