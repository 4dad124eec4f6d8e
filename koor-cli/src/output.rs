//! Everything the CLI writes to stdout.
//!
//! JSON is compact by default and indented with `--pretty`. Raw stored values are written as their
//! bytes; with `--pretty` a value that is JSON is indented (keeping its key order). Every write is
//! flushed, so a reader of a pipe sees each line as soon as it is printed; a closed pipe surfaces
//! as an `io::Error` of kind `BrokenPipe`, which `main` turns into a quiet exit 0.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub pretty: bool,
}

impl Output {
    pub fn new(pretty: bool) -> Self {
        Self { pretty }
    }

    /// Prints `value` as JSON followed by a newline.
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> io::Result<()> {
        let mut bytes = if self.pretty {
            serde_json::to_vec_pretty(value)
        } else {
            serde_json::to_vec(value)
        }
        .map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_stdout(&bytes)
    }

    /// Prints a stored value. Without `--pretty` the bytes go out unchanged (a newline is added only
    /// when stdout is a terminal, so pipes and files get the exact bytes).
    pub fn raw(&self, bytes: &[u8]) -> io::Result<()> {
        if self.pretty
            && let Some(mut indented) = pretty_json(bytes)
        {
            indented.push(b'\n');
            return write_stdout(&indented);
        }
        let mut out = io::stdout().lock();
        out.write_all(bytes)?;
        if io::stdout().is_terminal() && !bytes.is_empty() && !bytes.ends_with(b"\n") {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// Prints a JSON text that is already compact (keeping its key order), indented with
    /// `--pretty`.
    pub fn json_text(&self, compact: &[u8]) -> io::Result<()> {
        let mut bytes = if self.pretty {
            pretty_json(compact).unwrap_or_else(|| compact.to_vec())
        } else {
            compact.to_vec()
        };
        bytes.push(b'\n');
        write_stdout(&bytes)
    }

    /// Prints text as is (help-like output such as shell completions).
    pub fn text(&self, bytes: &[u8]) -> io::Result<()> {
        write_stdout(bytes)
    }
}

fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// A JSON document without the whitespace between its tokens, key order and literals kept.
/// `None` when `bytes` is not one valid JSON document.
pub fn compact_json(bytes: &[u8]) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).ok()?;
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            out.push(b);
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
    Some(out)
}

/// Indents a JSON document by two spaces per level, keeping the key order and every number and
/// string exactly as written. `None` when `bytes` is not one valid JSON document.
pub fn pretty_json(bytes: &[u8]) -> Option<Vec<u8>> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).ok()?;
    let mut out = Vec::with_capacity(bytes.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    let mut iter = bytes.iter().copied().peekable();
    while let Some(b) = iter.next() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b'"' => {
                in_string = true;
                out.push(b);
            }
            b'{' | b'[' => {
                out.push(b);
                // Empty containers stay on one line.
                while iter.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    iter.next();
                }
                if matches!(iter.peek(), Some(b'}' | b']')) {
                    out.extend(iter.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(b),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pretty(s: &str) -> String {
        String::from_utf8(pretty_json(s.as_bytes()).expect("valid JSON")).expect("utf-8")
    }

    #[test]
    fn indents_and_keeps_order_and_numbers() {
        assert_eq!(
            pretty(r#"{"z":1,"a":[1, 2.50,{}],"s":"a,b:{\"c\"}","e":[]}"#),
            "{\n  \"z\": 1,\n  \"a\": [\n    1,\n    2.50,\n    {}\n  ],\n  \"s\": \"a,b:{\\\"c\\\"}\",\n  \"e\": []\n}"
        );
        assert_eq!(pretty(" 42 "), "42");
        assert_eq!(pretty("{ }"), "{}");
    }

    #[test]
    fn compacts_outside_strings_only() {
        let c = compact_json(b"{ \"a b\" : [ 1 , \"x \\\" y\" ] }\n").expect("valid");
        assert_eq!(c, br#"{"a b":[1,"x \" y"]}"#);
        assert!(compact_json(b"{").is_none());
    }

    #[test]
    fn not_json_is_left_alone() {
        assert!(pretty_json(b"\x00\x01binary").is_none());
        assert!(pretty_json(b"{\"a\":").is_none());
    }
}
