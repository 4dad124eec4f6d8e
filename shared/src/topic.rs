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
//!
//! A pattern is compiled once into a regular expression over bytes (classes become byte sets, so a
//! long `[...]` costs nothing per character) and matched by the `regex` crate, whose automata run
//! in time linear in the topic for a compiled pattern: no pattern can make matching backtrack.
//! Patterns are bounded like topics ([`MAX_PATTERN_BYTES`], [`PatternSet::parse`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use regex::bytes::Regex;

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
/// Longest pattern a client may subscribe or filter with.
pub const MAX_PATTERN_BYTES: usize = MAX_TOPIC_BYTES;
/// Most patterns in one subscription or history query.
pub const MAX_PATTERNS: usize = 64;

/// Why a pattern (set) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error(
        "pattern is longer than {MAX_PATTERN_BYTES} bytes (topics are at most {MAX_TOPIC_BYTES})"
    )]
    TooLong,
    #[error("too many patterns: at most {MAX_PATTERNS} at once")]
    TooMany,
}

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
#[derive(Debug, Clone)]
pub struct Pattern {
    raw: String,
    /// `None` for the match-all pattern (`*` or empty).
    matcher: Option<Matcher>,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for Pattern {}

/// A compiled pattern that is not match-all.
#[derive(Debug, Clone)]
struct Matcher {
    /// The first segment is literally `koor` (the pattern may see system topics).
    system: bool,
    /// Matches `.` + topic; `None` when some class can match nothing, so no topic matches.
    regex: Option<Regex>,
}

impl Pattern {
    /// Compiles `raw` (surrounding whitespace ignored). Any length is accepted here; servers
    /// bound what clients send with [`PatternSet::parse`].
    pub fn new(raw: &str) -> Self {
        let raw = raw.trim();
        let matcher = if raw.is_empty() || raw == "*" {
            None
        } else {
            Some(Matcher {
                system: raw.split('.').next() == Some(SYSTEM_PREFIX),
                regex: compiled(raw),
            })
        };
        Self {
            raw: raw.to_owned(),
            matcher,
        }
    }

    /// Like [`Pattern::new`], refusing patterns longer than [`MAX_PATTERN_BYTES`].
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        if raw.trim().len() > MAX_PATTERN_BYTES {
            return Err(PatternError::TooLong);
        }
        Ok(Self::new(raw))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        if self.raw.is_empty() { "*" } else { &self.raw }
    }

    /// Whether `topic` matches this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        let system = is_system_topic(topic);
        match &self.matcher {
            None => !system,
            Some(m) => {
                if system && !m.system {
                    return false;
                }
                let Some(regex) = &m.regex else {
                    return false;
                };
                // Every segment, the first included, is matched with the dot before it.
                let mut dotted = Vec::with_capacity(topic.len() + 1);
                dotted.push(b'.');
                dotted.extend_from_slice(topic.as_bytes());
                regex.is_match(&dotted)
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
    /// Like [`PatternSet::new`], refusing too long patterns and too many of them (the bounds a
    /// server puts on what clients send).
    pub fn parse<S: AsRef<str>>(
        patterns: impl IntoIterator<Item = S>,
    ) -> Result<Self, PatternError> {
        let mut list = Vec::new();
        for p in patterns {
            if list.len() == MAX_PATTERNS {
                return Err(PatternError::TooMany);
            }
            list.push(Pattern::parse(p.as_ref())?);
        }
        if list.is_empty() {
            list.push(Pattern::new("*"));
        }
        Ok(Self(list))
    }

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

/// Compiled patterns by their text, so callers that build the same pattern often (a console
/// filtering every row) compile it once. Bounded: cleared when full.
fn compiled(raw: &str) -> Option<Regex> {
    const CACHE_MAX: usize = 256;
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache.lock().ok().and_then(|c| c.get(raw).cloned()) {
        return hit;
    }
    let regex = to_regex(raw).and_then(|source| Regex::new(&source).ok());
    if let Ok(mut c) = cache.lock() {
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(raw.to_owned(), regex.clone());
    }
    regex
}

/// A set of bytes, one bit each.
#[derive(Clone, Copy, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn add(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    fn add_range(&mut self, lo: u8, hi: u8) {
        for b in lo..=hi {
            self.add(b);
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    /// The set as a regex class of byte ranges; `None` when empty.
    fn to_class(self) -> Option<String> {
        let mut out = String::from("[");
        let mut b = 0usize;
        while b < 256 {
            if self.contains(b as u8) {
                let lo = b;
                while b + 1 < 256 && self.contains((b + 1) as u8) {
                    b += 1;
                }
                out.push_str(&format!("\\x{lo:02x}-\\x{b:02x}"));
            }
            b += 1;
        }
        out.push(']');
        (out.len() > 2).then_some(out)
    }
}

/// The regex (over bytes, anchored) matching `.` + every topic that `pattern` matches: a segment
/// `**` becomes `(?:\.[^.]*)*` (zero or more segments), any other segment `\.` and its glob,
/// where `*` is `[^.]*`, `?` is `[^.]` and a class the byte set it names, minus `.`. `None` when a
/// class matches no byte at all.
fn to_regex(pattern: &str) -> Option<String> {
    let mut out = String::from("(?s-u)^");
    for segment in pattern.split('.') {
        if segment == "**" {
            out.push_str("(?:\\.[^.]*)*");
            continue;
        }
        out.push_str("\\.");
        let p = segment.as_bytes();
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'*' => {
                    out.push_str("[^.]*");
                    i += 1;
                }
                b'?' => {
                    out.push_str("[^.]");
                    i += 1;
                }
                b'\\' if i + 1 < p.len() => {
                    push_byte(&mut out, p[i + 1]);
                    i += 2;
                }
                b'[' => match class(&p[i..]) {
                    Some((set, len)) => {
                        out.push_str(&set.to_class()?);
                        i += len;
                    }
                    // Unterminated: a literal `[`.
                    None => {
                        push_byte(&mut out, b'[');
                        i += 1;
                    }
                },
                c => {
                    push_byte(&mut out, c);
                    i += 1;
                }
            }
        }
    }
    out.push('$');
    Some(out)
}

fn push_byte(out: &mut String, b: u8) {
    out.push_str(&format!("\\x{b:02x}"));
}

/// The byte set of the class at the start of `pattern` (which begins with `[`): `[abc]`, `[a-z]`,
/// `[!abc]` / `[^abc]`, a `]` first is literal. Never contains `.`, which separates segments.
/// Returns the set and the class's length, or `None` for an unterminated class.
fn class(pattern: &[u8]) -> Option<(ByteSet, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut set = ByteSet::default();
    let mut first = true;
    let len = loop {
        let lo = *pattern.get(i)?;
        if lo == b']' && !first {
            break i + 1;
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&hi| hi != b']') {
            let hi = pattern[i + 2];
            if lo <= hi {
                set.add_range(lo, hi);
            }
            i += 3;
        } else {
            set.add(lo);
            i += 1;
        }
    };
    if negated {
        for w in &mut set.0 {
            *w = !*w;
        }
    }
    set.0[usize::from(b'.' >> 6)] &= !(1 << (b'.' & 63));
    Some((set, len))
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
        let m = |p: &str, t: &str| Pattern::new(p).matches(t);
        assert!(m("x.*", "x."));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("[", "["));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "x"));
        assert!(m("[]a]", "]"));
        assert!(!m("[!a].b", "a.b"));
        assert!(m("[^a].b", "c.b"));
        assert!(!m("a[.]b", "a.b"), "a class never matches the separator");
        assert!(!m("a[!x]b", "a.b"));
        assert!(!m("[z-a]", "m"), "an empty range matches nothing");
        assert!(m("caf\u{e9}", "caf\u{e9}"));
    }

    #[test]
    fn long_classes_cost_nothing_per_character() {
        // Was quadratic in the topic times the class length (minutes for a 30,000-byte class).
        let class = "a".repeat(30_000);
        let pattern = Pattern::new(&format!("*[{class}]b"));
        let topic = "a".repeat(511);
        for _ in 0..1000 {
            assert!(!pattern.matches(&topic));
        }
        assert!(pattern.matches(&format!("{}ab", "a".repeat(300))));
        assert_eq!(
            PatternSet::parse([format!("*[{class}]b")]),
            Err(PatternError::TooLong)
        );
        assert_eq!(
            PatternSet::parse(vec!["a"; MAX_PATTERNS + 1]),
            Err(PatternError::TooMany)
        );
        assert!(PatternSet::parse(["api.*", "koor.**"]).is_ok());
    }
}
