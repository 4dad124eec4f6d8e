//! Topic patterns for the event bus.
//!
//! Topics are dot-separated segments (`api.change.contract`). A pattern is matched segment by
//! segment:
//!
//! - `*` alone, or an empty pattern, matches every topic;
//! - within a segment, `*` matches any run of characters, `?` one character and `[abc]` / `[a-z]` /
//!   `[!abc]` one character of a set, so `api.*` matches `api.change` but not `api.change.contract`;
//! - (ext) a segment that is exactly `**` matches zero or more whole segments (`api.**` matches `api`,
//!   `api.change` and `api.change.contract`).
//!
//! (ext) Topics whose first segment is `koor` are the server's system topics. A pattern sees them only
//! when its own first segment is literally `koor`, so `*`, `**` and `api.*` never do.

use std::fmt;

/// First segment reserved for the server's own events.
pub const SYSTEM_PREFIX: &str = "koor";

/// Whether a topic is a system topic (`koor` or `koor.<...>`).
pub fn is_system_topic(topic: &str) -> bool {
    topic.split('.').next() == Some(SYSTEM_PREFIX)
}

/// Why a topic cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic is required")]
    Empty,
    #[error("topic has an empty segment: {0}")]
    EmptySegment(String),
    #[error("topics under 'koor.' are reserved for the server: {0}")]
    Reserved(String),
    #[error("topic contains a wildcard or control character: {0}")]
    BadCharacter(String),
    #[error("topic is longer than {MAX_TOPIC_BYTES} bytes")]
    TooLong,
}

/// Longest topic a client may publish.
pub const MAX_TOPIC_BYTES: usize = 512;

/// Checks a topic a client wants to publish to.
pub fn validate_publish_topic(topic: &str) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err(TopicError::Empty);
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong);
    }
    if topic.split('.').any(str::is_empty) {
        return Err(TopicError::EmptySegment(topic.to_owned()));
    }
    if topic
        .chars()
        .any(|c| matches!(c, '*' | '?' | '[' | ']') || c.is_control() || c.is_whitespace())
    {
        return Err(TopicError::BadCharacter(topic.to_owned()));
    }
    if is_system_topic(topic) {
        return Err(TopicError::Reserved(topic.to_owned()));
    }
    Ok(())
}

/// One compiled topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    raw: String,
    /// `None` for the match-all pattern (`*` or empty).
    segments: Option<Vec<String>>,
}

impl Pattern {
    pub fn new(raw: &str) -> Self {
        let raw = raw.trim();
        let segments = if raw.is_empty() || raw == "*" {
            None
        } else {
            Some(raw.split('.').map(str::to_owned).collect())
        };
        Self {
            raw: raw.to_owned(),
            segments,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        if self.raw.is_empty() { "*" } else { &self.raw }
    }

    /// Whether `topic` matches this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        let system = is_system_topic(topic);
        match &self.segments {
            None => !system,
            Some(segments) => {
                if system && segments.first().map(String::as_str) != Some(SYSTEM_PREFIX) {
                    return false;
                }
                let topic: Vec<&str> = topic.split('.').collect();
                match_segments(segments, &topic)
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A union of patterns: a topic matches when any pattern does. No patterns means "all" (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternSet(Vec<Pattern>);

impl PatternSet {
    pub fn new<S: AsRef<str>>(patterns: impl IntoIterator<Item = S>) -> Self {
        let mut list: Vec<Pattern> = patterns
            .into_iter()
            .map(|p| Pattern::new(p.as_ref()))
            .collect();
        if list.is_empty() {
            list.push(Pattern::new("*"));
        }
        Self(list)
    }

    pub fn matches(&self, topic: &str) -> bool {
        self.0.iter().any(|p| p.matches(topic))
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.0
    }
}

/// Segment-wise match in O(pattern × topic) time, however many `**` the pattern has:
/// `reach[j]` says whether the pattern read so far can end just before topic segment `j`.
fn match_segments(pattern: &[String], topic: &[&str]) -> bool {
    let mut reach = vec![false; topic.len() + 1];
    reach[0] = true;
    for p in pattern {
        if p == "**" {
            // Zero or more segments: once reachable, every later position is too.
            let mut seen = false;
            for r in &mut reach {
                seen |= *r;
                *r = seen;
            }
        } else {
            for j in (1..=topic.len()).rev() {
                reach[j] = reach[j - 1] && glob(p.as_bytes(), topic[j - 1].as_bytes());
            }
            reach[0] = false;
        }
        if !reach.contains(&true) {
            return false;
        }
    }
    reach[topic.len()]
}

/// Glob match of one segment: `*`, `?`, `[set]`, `[!set]`, `\x` escapes.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    backtrack = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => match class(&pattern[p..], text[t]) {
                    Some((true, next)) => {
                        p += next;
                        t += 1;
                        continue;
                    }
                    Some((false, _)) => {}
                    None if text[t] == b'[' => {
                        p += 1;
                        t += 1;
                        continue;
                    }
                    None => {}
                },
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == text[t] => {
                    p += 2;
                    t += 1;
                    continue;
                }
                b'\\' if p + 1 < pattern.len() => {}
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match backtrack {
            Some((bp, bt)) => {
                p = bp + 1;
                t = bt + 1;
                backtrack = Some((bp, bt + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class at the start of `pattern` (which begins with `[`). Returns whether
/// it matched and the class's length, or `None` for an unterminated class (then `[` is literal).
fn class(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *pattern.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&hi| hi != b']') {
            let hi = pattern[i + 2];
            matched |= lo <= c && c <= hi;
            i += 3;
        } else {
            matched |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "api.change", true),
            ("*", "anything.at.all", true),
            ("", "x", true),
            ("api.*", "api.change", true),
            ("api.*", "api.change.contract", false),
            ("api.*", "api", false),
            ("api.change.*", "api.change.contract", true),
            ("api.**", "api", true),
            ("api.**", "api.change", true),
            ("api.**", "api.change.contract", true),
            ("api.**", "apis.change", false),
            ("**", "a.b.c", true),
            ("**.done", "build.step.done", true),
            ("**.done", "done", true),
            ("a.**.z", "a.z", true),
            ("a.**.z", "a.b.c.z", true),
            ("a.**.z", "a.b.c", false),
            ("api.ch*", "api.change", true),
            ("api.*ge", "api.change", true),
            ("api.c?ange", "api.change", true),
            ("api.[cd]hange", "api.change", true),
            ("api.[!c]hange", "api.change", false),
            ("api.[a-d]hange", "api.change", true),
            ("api.change", "api.change", true),
            ("api.change", "api.changes", false),
            ("*.*", "a.b", true),
            ("*.*", "a", false),
            // system topics only for patterns whose first segment is literally `koor`
            ("*", "koor.state.updated", false),
            ("**", "koor.state.updated", false),
            ("*.state.*", "koor.state.updated", false),
            ("koor.*", "koor.state", true),
            ("koor.state.*", "koor.state.updated", true),
            ("koor.**", "koor.instance.stale", true),
            ("ko*.**", "koor.instance.stale", false),
        ];
        for (pattern, topic, want) in cases {
            assert_eq!(
                Pattern::new(pattern).matches(topic),
                *want,
                "pattern {pattern:?} topic {topic:?}"
            );
        }
    }

    #[test]
    fn many_double_stars_stay_linear() {
        let topic = vec!["a"; 200].join(".");
        let pattern = format!("{}.b", vec!["**"; 50].join("."));
        assert!(!Pattern::new(&pattern).matches(&topic));
        let pattern = format!("{}.a", vec!["**"; 50].join("."));
        assert!(Pattern::new(&pattern).matches(&topic));
    }

    #[test]
    fn union() {
        let set = PatternSet::new(["api.*", "koor.**"]);
        assert!(set.matches("api.x"));
        assert!(set.matches("koor.state.updated"));
        assert!(!set.matches("build.done"));
        let all = PatternSet::new(Vec::<String>::new());
        assert!(all.matches("build.done"));
    }

    #[test]
    fn publish_validation() {
        assert_eq!(validate_publish_topic(""), Err(TopicError::Empty));
        assert!(matches!(
            validate_publish_topic("koor.state.updated"),
            Err(TopicError::Reserved(_))
        ));
        assert!(matches!(
            validate_publish_topic("koor"),
            Err(TopicError::Reserved(_))
        ));
        assert!(matches!(
            validate_publish_topic("a..b"),
            Err(TopicError::EmptySegment(_))
        ));
        assert!(matches!(
            validate_publish_topic("a.*"),
            Err(TopicError::BadCharacter(_))
        ));
        assert!(validate_publish_topic("koordinate.x").is_ok());
        assert!(validate_publish_topic("api.change.contract").is_ok());
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
        assert!(glob(b"[", b"["));
        assert!(glob(b"\\*", b"*"));
        assert!(!glob(b"\\*", b"x"));
    }
}
