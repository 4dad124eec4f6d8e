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
/// Bytes the cache holds at most unless configured (`--cache-size`).
pub const DEFAULT_BUDGET: usize = 256 * 1024 * 1024;
/// What an entry costs beyond its key and value bytes: the shared `Current`, the map slot and
/// the key's `String`, the allocator's headers and what the readers that filled it keep
/// (measured: a million entries of 213-byte values and 7-byte keys add about 560 MB to the
/// server's RSS).
pub const ENTRY_OVERHEAD: usize = 330;

/// A current value with what a GET answers with: its headers are built once, when it enters
/// the cache, so serving a hit copies nothing.
#[derive(Debug)]
pub struct Current {
    pub version: i64,
    pub value: Bytes,
    /// `Content-Type` (`application/octet-stream` when the stored type is not a valid header).
    pub content_type: HeaderValue,
    /// `ETag`: the hex SHA-256 in quotes.
    pub etag: HeaderValue,
}

impl Current {
    pub fn new(version: i64, hash: &ContentHash, content_type: &str, value: Bytes) -> Self {
        let content_type = match content_type {
            "application/json" => HeaderValue::from_static("application/json"),
            "text/plain; charset=utf-8" => HeaderValue::from_static("text/plain; charset=utf-8"),
            other => HeaderValue::from_str(other)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
        };
        // Stored hashes are hex; a damaged one yields an ETag no client has.
        let etag = HeaderValue::from_str(&hash.etag())
            .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
        Self {
            version,
            value,
            content_type,
            etag,
        }
    }

    /// The hex SHA-256 of the value (the ETag without its quotes).
    pub fn hash(&self) -> &str {
        let tag = self.etag.to_str().unwrap_or_default();
        tag.get(1..tag.len().saturating_sub(1)).unwrap_or_default()
    }

    /// Whether an `If-None-Match` header names this value.
    pub fn matches_if_none_match(&self, header: &str) -> bool {
        koor_shared::etag::hash_matches(self.hash(), header)
    }

    /// Bytes this entry counts against the budget.
    fn cost(&self, key: &str) -> usize {
        key.len() + self.value.len() + ENTRY_OVERHEAD
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
            inner.bytes += current.cost(key);
            inner.map.insert(key.to_owned(), current.clone());
            self.evict(&mut inner);
        }
        current
    }

    fn insert(&self, inner: &mut Inner, key: &str, current: Current) {
        inner.bytes += current.cost(key);
        inner.map.insert(key.to_owned(), Arc::new(current));
        self.evict(inner);
    }

    fn drop_key(inner: &mut Inner, key: &str) {
        if let Some(old) = inner.map.remove(key) {
            inner.bytes -= old.cost(key);
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
                    *bytes -= v.cost(k);
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
            &ContentHash::of(value),
            "application/json",
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
        let cache = StateCache::new(4000);
        for i in 0..100 {
            cache.put(&format!("k{i}"), cur(1, &[b'x'; 50]));
        }
        let (bytes, len) = cache
            .inner
            .read()
            .map(|i| (i.bytes, i.map.len()))
            .unwrap_or_default();
        assert!(bytes <= 4000, "{bytes}");
        assert!(len > 5 && len < 100, "{len} entries kept");
        let zero = StateCache::new(0);
        zero.put("k", cur(1, b"x"));
        assert!(zero.get("k").is_none(), "a budget of 0 caches nothing");
        cache.put("big", cur(1, &vec![b'y'; MAX_CACHED_VALUE + 1]));
        assert!(cache.get("big").is_none());
    }
}
