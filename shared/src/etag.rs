//! Content hashes and the ETag headers built from them.
//!
//! A stored value's hash is the lowercase hex SHA-256 of its bytes; its ETag is that hash in double
//! quotes. This module owns the quoting and the comparison rules of `If-None-Match` and `If-Match`,
//! so no other code compares header strings by hand.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of a stored value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    /// Hashes `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(bytes);
        let mut hex = String::with_capacity(64);
        for byte in digest {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(hex)
    }

    /// Wraps a hash read back from storage (already lowercase hex).
    pub fn from_hex(hex: impl Into<String>) -> Self {
        Self(hex.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ETag header value: the hash in double quotes.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// Whether an `If-None-Match` header value matches this hash (so a GET answers 304).
    ///
    /// Accepts `*`, a list of entity tags, weak tags (`W/"..."`) and, for clients that forget the
    /// quotes, a bare hash.
    pub fn matches_if_none_match(&self, header: &str) -> bool {
        hash_matches(&self.0, header)
    }

    /// Whether an `If-Match` header value matches this hash (so a conditional write may go on).
    pub fn matches_if_match(&self, header: &str) -> bool {
        header_tags(header).any(|tag| tag == "*" || tag == self.0)
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether an `If-None-Match` (or `If-Match`) header value names the value whose hex hash is
/// `hash` (`*` names any).
pub fn hash_matches(hash: &str, header: &str) -> bool {
    header_tags(header).any(|tag| tag == "*" || tag == hash)
}

/// Whether an `If-None-Match` header is the create-only wildcard `*`.
pub fn is_wildcard(header: &str) -> bool {
    header.trim() == "*"
}

/// The entity tags of a header value, without `W/` and quotes.
fn header_tags(header: &str) -> impl Iterator<Item = &str> {
    header.split(',').filter_map(|raw| {
        let tag = raw.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let tag = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        (!tag.is_empty()).then_some(tag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_lowercase_hex_sha256() {
        let h = ContentHash::of(b"hello");
        assert_eq!(
            h.as_str(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(h.etag(), format!("\"{}\"", h.as_str()));
    }

    #[test]
    fn if_none_match_forms() {
        let h = ContentHash::of(b"x");
        let quoted = h.etag();
        assert!(h.matches_if_none_match(&quoted));
        assert!(h.matches_if_none_match(&format!("W/{quoted}")));
        assert!(h.matches_if_none_match(&format!("\"abc\", {quoted}")));
        assert!(h.matches_if_none_match(h.as_str()));
        assert!(h.matches_if_none_match("*"));
        assert!(!h.matches_if_none_match("\"abc\""));
        assert!(!h.matches_if_none_match(""));
    }

    #[test]
    fn if_match_forms() {
        let h = ContentHash::of(b"x");
        assert!(h.matches_if_match(&h.etag()));
        assert!(!h.matches_if_match("\"0000\""));
        assert!(is_wildcard(" * "));
        assert!(!is_wildcard("\"*\""));
    }
}
