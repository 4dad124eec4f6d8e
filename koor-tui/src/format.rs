//! Small text helpers shared by the views: ages, sizes, one-line JSON, truncation.

use std::time::Duration;

use koor_shared::time::{format_age, parse_rfc3339};

/// Milliseconds since the Unix epoch of an RFC 3339 time, `None` when it does not parse.
pub fn epoch_ms(rfc3339: &str) -> Option<i64> {
    parse_rfc3339(rfc3339).map(|t| t.timestamp_millis())
}

/// The age of an RFC 3339 time at `now_ms` (`4s`, `12m`, `3h`), `-` when unknown.
pub fn age(rfc3339: &str, now_ms: i64) -> String {
    match epoch_ms(rfc3339) {
        Some(t) => age_ms(now_ms.saturating_sub(t)),
        None => "-".into(),
    }
}

/// A duration in milliseconds as a short age; negative (clock skew) reads as `0s`.
pub fn age_ms(ms: i64) -> String {
    format_age(Duration::from_millis(ms.max(0) as u64))
}

/// The `HH:MM:SS` part of an RFC 3339 time (UTC, as the server sends it).
pub fn clock(rfc3339: &str) -> &str {
    rfc3339.get(11..19).unwrap_or(rfc3339)
}

/// A byte count for a narrow column: `512 B`, `12.3 KiB`, `4.0 MiB`.
pub fn bytes(n: i64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else {
        format!("{:.1} MiB", f / (KIB * KIB))
    }
}

/// A number with thousands separators: `12,345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// JSON on one line, for table cells.
pub fn compact_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Cuts `s` to at most `max` characters, ending with `…` when it was longer.
pub fn truncate(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The first characters of an id, enough to tell instances apart.
pub fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// A stored value for reading: pretty JSON when it parses as JSON, the text when it is UTF-8,
/// else a note about its size.
pub fn pretty_value(bytes: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return serde_json::to_string_pretty(&v).unwrap_or_default();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("<{} of binary data>", self::bytes(bytes.len() as i64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(clock("2026-02-09T14:30:05.123Z"), "14:30:05");
        let t = epoch_ms("2026-02-09T14:30:00Z").expect("parses");
        assert_eq!(age("2026-02-09T14:30:00Z", t + 125_000), "2m");
        assert_eq!(age("2026-02-09T14:30:00Z", t - 5_000), "0s");
        assert_eq!(age("garbage", t), "-");
        assert_eq!(pretty_value(br#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(pretty_value(b"plain text"), "plain text");
        assert_eq!(pretty_value(&[0xff, 0xfe]), "<2 B of binary data>");
    }
}
