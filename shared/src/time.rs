//! Timestamps on the wire: RFC 3339 UTC with `Z`, and the Go-style uptime string.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a time as RFC 3339 UTC with millisecond precision and `Z`.
pub fn format_rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The current time, formatted for the wire.
pub fn now_rfc3339() -> String {
    format_rfc3339(Utc::now())
}

/// Parses an RFC 3339 time (any offset) into UTC.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Formats a duration as Go does for uptimes: `3h24m10s`, `5m0s`, `42s`.
pub fn format_uptime(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// A short human age such as `4s`, `12m`, `3h`, `2d`, for consoles.
pub fn format_age(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_like_go() {
        assert_eq!(format_uptime(Duration::from_secs(42)), "42s");
        assert_eq!(format_uptime(Duration::from_secs(300)), "5m0s");
        assert_eq!(format_uptime(Duration::from_secs(12250)), "3h24m10s");
    }

    #[test]
    fn rfc3339_round_trip() {
        let s = "2026-02-09T14:30:00Z";
        let t = parse_rfc3339(s).expect("parses");
        assert_eq!(format_rfc3339(t), "2026-02-09T14:30:00.000Z");
        assert!(parse_rfc3339("yesterday").is_none());
        assert!(parse_rfc3339("2026-02-09T16:30:00+02:00").is_some());
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(Duration::from_secs(5)), "5s");
        assert_eq!(format_age(Duration::from_secs(125)), "2m");
        assert_eq!(format_age(Duration::from_secs(7300)), "2h");
        assert_eq!(format_age(Duration::from_secs(200_000)), "2d");
    }
}
