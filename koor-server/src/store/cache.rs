//! A bounded in-memory cache of current state values, so hot reads skip SQLite.
//!
//! Consistency comes from the single writer: every committed change to a key updates (or drops)
//! its entry from a post-commit hook, in commit order. A read that missed fills the cache only if
//! no change of any key committed while it read from SQLite (the generation did not move), so a
//! slow reader can never put back a value that a newer write replaced.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use koor_shared::ContentHash;
use warp::http::HeaderValue;

/// Values larger than this are never cached.
pub const MAX_CACHED_VALUE: usize = 256 * 1024;
/// Bytes of values the cache holds at most.
pub const DEFAULT_BUDGET: usize = 64 * 1024 * 1024;

/// A current value with what a GET answers with. The header values are built once, when the
/// value enters the cache, so serving a hit copies nothing.
#[derive(Debug)]
pub struct Current {
    pub version: i64,
    pub hash: ContentHash,
    pub content_type: String,
    pub value: Bytes,
    /// `Content-Type` (`application/octet-stream` when the stored type is not a valid header).
    pub content_type_header: HeaderValue,
    /// `ETag`: the hash in quotes.
    pub etag_header: HeaderValue,
    /// `X-Koor-Version`.
    pub version_header: HeaderValue,
}

impl Current {
    pub fn new(version: i64, hash: ContentHash, content_type: String, value: Bytes) -> Self {
        let content_type_header = HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        let etag_header = HeaderValue::from_str(&hash.etag())
            .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
        Self {
            version,
            hash,
            content_type,
            value,
            content_type_header,
            etag_header,
            version_header: HeaderValue::from(version),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Arc<Current>>,
    bytes: usize,
    generation: u64,
}

#[derive(Debug)]
pub struct StateCache {
    inner: RwLock<Inner>,
    budget: usize,
}

impl StateCache {
    pub fn new(budget: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            budget,
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<Current>> {
        self.inner.read().ok()?.map.get(key).cloned()
    }

    /// Read before a miss goes to SQLite; pass to [`StateCache::fill`].
    pub fn generation(&self) -> u64 {
        self.inner.read().map(|i| i.generation).unwrap_or(u64::MAX)
    }

    /// A committed write (called from the writer's post-commit hook).
    pub fn put(&self, key: &str, current: Current) {
        if let Ok(mut inner) = self.inner.write() {
            inner.generation += 1;
            Self::drop_key(&mut inner, key);
            if current.value.len() <= MAX_CACHED_VALUE {
                self.insert(&mut inner, key, current);
            }
        }
    }

    /// A committed delete.
    pub fn remove(&self, key: &str) {
        if let Ok(mut inner) = self.inner.write() {
            inner.generation += 1;
            Self::drop_key(&mut inner, key);
        }
    }

    /// Caches what a read found, unless anything was written since `generation`.
    pub fn fill(&self, key: &str, current: Current, generation: u64) -> Arc<Current> {
        let current = Arc::new(current);
        if current.value.len() <= MAX_CACHED_VALUE
            && let Ok(mut inner) = self.inner.write()
            && inner.generation == generation
            && !inner.map.contains_key(key)
        {
            inner.bytes += current.value.len() + key.len();
            inner.map.insert(key.to_owned(), current.clone());
            self.evict(&mut inner);
        }
        current
    }

    fn insert(&self, inner: &mut Inner, key: &str, current: Current) {
        inner.bytes += current.value.len() + key.len();
        inner.map.insert(key.to_owned(), Arc::new(current));
        self.evict(inner);
    }

    fn drop_key(inner: &mut Inner, key: &str) {
        if let Some(old) = inner.map.remove(key) {
            inner.bytes -= old.value.len() + key.len();
        }
    }

    /// Over budget: drop arbitrary entries (hash order is effectively random) down to 90%.
    fn evict(&self, inner: &mut Inner) {
        if inner.bytes <= self.budget {
            return;
        }
        let target = self.budget / 10 * 9;
        let victims: Vec<String> = inner
            .map
            .iter()
            .scan(inner.bytes, |bytes, (k, v)| {
                (*bytes > target).then(|| {
                    *bytes -= v.value.len() + k.len();
                    k.clone()
                })
            })
            .collect();
        for k in victims {
            Self::drop_key(inner, &k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(version: i64, value: &[u8]) -> Current {
        Current::new(
            version,
            ContentHash::of(value),
            "application/json".into(),
            Bytes::copy_from_slice(value),
        )
    }

    #[test]
    fn a_fill_that_raced_a_write_is_dropped() {
        let cache = StateCache::new(DEFAULT_BUDGET);
        let g = cache.generation();
        cache.put("k", cur(2, b"new"));
        cache.fill("k", cur(1, b"old"), g);
        assert_eq!(cache.get("k").map(|c| c.version), Some(2));

        let g = cache.generation();
        cache.remove("k");
        cache.fill("k", cur(2, b"new"), g);
        assert!(
            cache.get("k").is_none(),
            "a delete is not undone by a slow reader"
        );

        let g = cache.generation();
        cache.fill("k", cur(3, b"x"), g);
        assert_eq!(cache.get("k").map(|c| c.version), Some(3));
    }

    #[test]
    fn budget_is_kept_and_big_values_skip_the_cache() {
        let cache = StateCache::new(1000);
        for i in 0..100 {
            cache.put(&format!("k{i}"), cur(1, &[b'x'; 50]));
        }
        let bytes = cache.inner.read().map(|i| i.bytes).unwrap_or(0);
        assert!(bytes <= 1000, "{bytes}");
        cache.put("big", cur(1, &vec![b'y'; MAX_CACHED_VALUE + 1]));
        assert!(cache.get("big").is_none());
    }
}
