//! Prepared connections by id, in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::PreparedConnection;

/// A bounded map from connection id to its prepared form.
///
/// A load that started before an invalidation must not put back what it read: every
/// invalidation bumps a generation, and [`ConnectionCache::insert`] only stores a value loaded
/// in the current one.
pub struct ConnectionCache {
    map: RwLock<HashMap<String, Arc<PreparedConnection>>>,
    generation: AtomicU64,
    capacity: usize,
}

impl ConnectionCache {
    pub fn new(capacity: usize) -> Self {
        ConnectionCache { map: RwLock::default(), generation: AtomicU64::new(0), capacity: capacity.max(1) }
    }

    pub fn get(&self, connection_id: &str) -> Option<Arc<PreparedConnection>> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(connection_id).cloned()
    }

    /// Take this before loading; pass it to [`ConnectionCache::insert`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores `prepared` unless something was invalidated since `generation`.
    pub fn insert(&self, prepared: Arc<PreparedConnection>, generation: u64) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.capacity && !map.contains_key(&prepared.connection_id) {
            // Full: drop an arbitrary entry; it is prepared again on its next use.
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(prepared.connection_id.clone(), prepared);
    }

    /// After a connection changed or was deleted.
    pub fn invalidate(&self, connection_id: &str) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(connection_id);
    }

    /// After a connector changed or was deleted: all its connections.
    pub fn invalidate_connector(&self, connector_id: &str) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, p| p.connector_id != connector_id);
    }

    /// Forgets everything (changes may have been missed).
    pub fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use portico_model::{Backend, ConnectionSpec, Connector, Metadata, Scheme};

    use super::*;

    fn prepared(id: &str, connector: &str) -> Arc<PreparedConnection> {
        let c = Connector {
            metadata: Metadata { name: "c".into(), display_name: "C".into(), ..Metadata::default() },
            backend: Backend { scheme: Scheme::Http, host: "h".into(), base_path: "/".into(), host_template: None },
            operations: vec![],
            connection: ConnectionSpec::none(),
            policies: vec![],
            test_operation: None,
        };
        let p = crate::prepare(
            "t",
            id,
            connector,
            Arc::new(c),
            None,
            &BTreeMap::new(),
            &BTreeMap::new(),
            None,
            Arc::default(),
        );
        Arc::new(p.unwrap())
    }

    #[test]
    fn invalidation_removes_and_blocks_stale_loads() {
        let cache = ConnectionCache::new(10);
        let g = cache.generation();
        cache.insert(prepared("a", "x"), g);
        cache.insert(prepared("b", "x"), g);
        cache.insert(prepared("c", "y"), g);
        assert_eq!(cache.len(), 3);
        let before = cache.generation();
        cache.invalidate("a");
        assert!(cache.get("a").is_none());
        cache.insert(prepared("a", "x"), before);
        assert!(cache.get("a").is_none(), "a load older than the invalidation is not stored");
        cache.invalidate_connector("x");
        assert!(cache.get("b").is_none());
        assert!(cache.get("c").is_some());
    }

    #[test]
    fn stays_within_capacity() {
        let cache = ConnectionCache::new(2);
        for id in ["a", "b", "c", "d"] {
            cache.insert(prepared(id, "x"), cache.generation());
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("d").is_some());
    }
}
