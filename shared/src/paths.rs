//! (ext) Project paths for file reservations: normalisation, glob matching and overlap, in one
//! place so the server, the git guard and the Claude Code hook agree.
//!
//! A reservation names a file or a glob relative to the project root. Paths are normalised
//! before anything compares them (`./src//a/../b.rs` is `src/b.rs`), so two agents that name
//! one file differently still collide; an absolute path, or one that climbs out of the root,
//! is refused.
//!
//! Globs (`globset`, separator-aware): `*` and `?` stay inside one path segment, `**` crosses
//! `/`, `[abc]` and `{a,b}` work as in a shell. A path with none of `*?[{` is a literal file.
//! A reservation always covers the file of exactly its own name too, so `pages/[id].tsx`
//! reserves that file (and, read as a glob, `pages/i.tsx` and `pages/d.tsx`: more, never less).
//!
//! Overlap ("could some file match both?"):
//! - two literal paths: equal;
//! - a literal path and a glob: the glob matches the path (exact);
//! - two globs: a conservative test that may say "overlap" for two globs that are in fact
//!   disjoint, never the reverse. It walks both segment by segment: two literal segments must
//!   be equal, a literal segment must match the other side's glob segment, two glob segments
//!   must agree on their literal start and end (`test_*` never meets `main_*`, `*.md` never
//!   meets `*.rs`); a `**` ends the walk with "overlap", except that the last segments must
//!   still agree on their literal ending. Globs of different depth without `**` never overlap.

use globset::{GlobBuilder, GlobMatcher};

/// Longest path or glob accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("empty path")]
    Empty,
    #[error("path too long (at most {MAX_PATH_BYTES} bytes): {0}")]
    TooLong(String),
    #[error("absolute path {0:?}: paths are relative to the project root (e.g. src/auth/login.rs)")]
    Absolute(String),
    #[error("path {0:?} leaves the project root")]
    Escapes(String),
    #[error("path {0:?} names the project root itself; reserve \"**\" for every file")]
    Root(String),
    #[error("path {0:?} contains a control character")]
    Control(String),
    #[error("invalid glob {0:?}: {1}")]
    Glob(String, String),
}

/// Whether `path` is a glob (has any of `*?[{`).
pub fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

/// Normalises a project path or glob: `\`-free, relative, no `.` or empty segments, `..`
/// resolved. Refuses absolute paths, paths leaving the root, the root itself, and bad globs.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(PathError::Empty);
    }
    if trimmed.len() > MAX_PATH_BYTES {
        let head: String = trimmed.chars().take(40).collect();
        return Err(PathError::TooLong(format!("{head}...")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(PathError::Control(trimmed.to_owned()));
    }
    if is_absolute(trimmed) {
        return Err(PathError::Absolute(trimmed.to_owned()));
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in trimmed.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(PathError::Escapes(trimmed.to_owned()));
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(PathError::Root(trimmed.to_owned()));
    }
    let path = parts.join("/");
    if is_glob(&path) {
        matcher(&path).map_err(|e| PathError::Glob(path.clone(), e))?;
    }
    Ok(path)
}

fn is_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with('/')
        || p.starts_with('\\')
        || p.starts_with('~')
        || (b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':')
}

/// The compiled glob, `*` stopping at `/`.
fn matcher(glob: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(glob)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

/// Whether the reserved `pattern` (normalised, literal or glob) covers the file `file`
/// (normalised, always read literally: this is what the guard and the hook ask).
pub fn covers(pattern: &str, file: &str) -> bool {
    // Equal strings always match, so a file named like a glob (`pages/[id].tsx`) is covered
    // by a reservation of that very name.
    if pattern == file {
        return true;
    }
    is_glob(pattern) && matcher(pattern).is_ok_and(|m| m.is_match(file))
}

/// Whether some file could match both `a` and `b` (both normalised). Exact unless both are
/// globs, then conservative (see the module docs).
pub fn overlap(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (is_glob(a), is_glob(b)) {
        (false, false) => a == b,
        (true, false) => covers(a, b),
        (false, true) => covers(b, a),
        (true, true) => globs_overlap(a, b),
    }
}

/// Whether a `{..}` or `[..]` group of `glob` contains a `/` (then its segments cannot be told
/// apart by splitting on `/`).
fn has_slash_in_group(glob: &str) -> bool {
    let mut depth = 0usize;
    for c in glob.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            '/' if depth > 0 => return true,
            _ => {}
        }
    }
    false
}

/// The literal text before the first glob character of `s`.
fn literal_head(s: &str) -> &str {
    s.find(['*', '?', '[', '{', '\\']).map_or(s, |i| &s[..i])
}

/// The literal text after the last glob character of `s`.
fn literal_tail(s: &str) -> &str {
    s.rfind(['*', '?', ']', '}', '\\'])
        .map_or(s, |i| &s[i + 1..])
}

/// Whether two segments (neither of them `**`) could match one name.
fn segments_meet(a: &str, b: &str) -> bool {
    match (is_glob(a), is_glob(b)) {
        (false, false) => a == b,
        (true, false) => covers(a, b),
        (false, true) => covers(b, a),
        (true, true) => ends_agree(a, b),
    }
}

/// Whether two glob segments agree on their literal start and end.
fn ends_agree(a: &str, b: &str) -> bool {
    let (ha, hb) = (literal_head(a), literal_head(b));
    let (ta, tb) = (literal_tail(a), literal_tail(b));
    (ha.starts_with(hb) || hb.starts_with(ha)) && (ta.ends_with(tb) || tb.ends_with(ta))
}

fn globs_overlap(a: &str, b: &str) -> bool {
    if has_slash_in_group(a) || has_slash_in_group(b) {
        // Shape unknown: only the literal prefixes can rule it out.
        let (ha, hb) = (literal_head(a), literal_head(b));
        return ha.starts_with(hb) || hb.starts_with(ha);
    }
    let sa: Vec<&str> = a.split('/').collect();
    let sb: Vec<&str> = b.split('/').collect();
    for (x, y) in sa.iter().zip(&sb) {
        if x.contains("**") || y.contains("**") {
            return last_segments_agree(&sa, &sb);
        }
        if !segments_meet(x, y) {
            return false;
        }
    }
    // No `**` met: each side matches paths of exactly its own depth, unless the longer one
    // goes on into a `**` that may match nothing more (`a/**` also matches `a/x`).
    let (short, long) = if sa.len() <= sb.len() {
        (&sa, &sb)
    } else {
        (&sb, &sa)
    };
    if short.len() == long.len() {
        return true;
    }
    long[short.len()..].iter().any(|s| s.contains("**")) && last_segments_agree(&sa, &sb)
}

/// The final segments of two globs (one of which has a `**`): they must agree on their
/// literal ending unless either final segment is itself a `**`.
fn last_segments_agree(sa: &[&str], sb: &[&str]) -> bool {
    let (Some(la), Some(lb)) = (sa.last(), sb.last()) else {
        return true;
    };
    if la.contains("**") || lb.contains("**") {
        return true;
    }
    match (is_glob(la), is_glob(lb)) {
        (false, false) => la == lb,
        (true, false) => covers(la, lb),
        (false, true) => covers(lb, la),
        (true, true) => {
            let (ta, tb) = (literal_tail(la), literal_tail(lb));
            ta.ends_with(tb) || tb.ends_with(ta)
        }
    }
}

/// A path as the project sees it: `path` relative to the project `root` when it is absolute
/// and inside it, else as given. `None` for an absolute path outside the root.
pub fn relative_to(root: &std::path::Path, path: &str) -> Option<String> {
    let p = std::path::Path::new(path);
    if !p.is_absolute() {
        return Some(path.to_owned());
    }
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    // The file may not exist yet (Write creates it): resolve its nearest existing parent.
    let resolved = canonical_prefix(p);
    resolved
        .strip_prefix(&root)
        .ok()
        .map(|rel| rel.to_string_lossy().replace('\\', "/"))
}

/// `p` with its longest existing ancestor canonicalised (symlinks resolved), the rest kept.
fn canonical_prefix(p: &std::path::Path) -> std::path::PathBuf {
    let mut rest = Vec::new();
    let mut cur = p;
    loop {
        if let Ok(c) = cur.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                cur = parent;
            }
            _ => return p.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses() {
        assert_eq!(normalize("./a/../b").as_deref(), Ok("b"));
        assert_eq!(
            normalize("src//auth/./login.rs").as_deref(),
            Ok("src/auth/login.rs")
        );
        assert_eq!(normalize(" src/auth/** ").as_deref(), Ok("src/auth/**"));
        assert_eq!(normalize("src/").as_deref(), Ok("src"));
        assert!(matches!(
            normalize("/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(normalize("C:/x"), Err(PathError::Absolute(_))));
        assert!(matches!(normalize("~/x"), Err(PathError::Absolute(_))));
        assert!(matches!(normalize("../x"), Err(PathError::Escapes(_))));
        assert!(matches!(normalize("a/../../x"), Err(PathError::Escapes(_))));
        assert!(matches!(normalize("."), Err(PathError::Root(_))));
        assert!(matches!(normalize(""), Err(PathError::Empty)));
        assert!(matches!(normalize("a\nb"), Err(PathError::Control(_))));
        assert!(matches!(normalize("src/[ab"), Err(PathError::Glob(..))));
        assert!(matches!(
            normalize(&"a".repeat(2000)),
            Err(PathError::TooLong(_))
        ));
    }

    #[test]
    fn star_stays_in_a_segment_and_double_star_crosses() {
        assert!(covers("src/*.rs", "src/main.rs"));
        assert!(!covers("src/*.rs", "src/auth/login.rs"));
        assert!(covers("src/**", "src/auth/login.rs"));
        assert!(covers("src/**/*.rs", "src/auth/deep/login.rs"));
        assert!(covers("*.md", "README.md"));
        assert!(!covers("*.md", "docs/guide.md"));
        assert!(covers("**/*.md", "docs/guide.md"));
        assert!(covers("README.md", "README.md"));
        assert!(!covers("README.md", "docs/README.md"));
        assert!(covers("src/{a,b}.rs", "src/b.rs"));
        // a file named like a glob is covered by its own name
        assert!(covers("pages/[id].tsx", "pages/[id].tsx"));
        assert!(overlap("pages/[id].tsx", "pages/[id].tsx"));
    }

    #[test]
    fn overlap_of_files_and_globs() {
        // literal vs literal: exact
        assert!(overlap("a.rs", "a.rs"));
        assert!(!overlap("a.rs", "b.rs"));
        // literal vs glob: exact
        assert!(overlap("src/auth/**", "src/auth/login.rs"));
        assert!(overlap("src/auth/login.rs", "src/auth/**"));
        assert!(!overlap("src/auth/**", "src/api/users.rs"));
        assert!(!overlap("*.md", "src/readme.md"));
        // glob vs glob
        assert!(overlap("src/**", "src/auth/**"));
        assert!(overlap("src/auth/*.rs", "src/**"));
        assert!(overlap("**/*.rs", "src/auth/*"));
        assert!(overlap("src/*/login.rs", "src/auth/*.rs"));
        assert!(!overlap("src/auth/**", "src/api/**"));
        assert!(!overlap("docs/*.md", "src/*.md"));
        assert!(!overlap("*.md", "*.rs"));
        assert!(!overlap("**/*.md", "src/**/*.rs"));
        assert!(!overlap("src/test_*", "src/main_*"));
        assert!(
            !overlap("src/*.rs", "src/auth/*.rs"),
            "different depth, no **"
        );
        assert!(overlap("src/**", "src/*.rs"));
        assert!(
            overlap("src/a/**", "src/*"),
            "conservative: said to overlap"
        );
        assert!(overlap("{src,lib}/a.rs", "src/*.rs"));
    }

    #[test]
    fn absolute_paths_inside_the_root_become_relative() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
        let abs = dir.path().join("src/new_file.rs");
        assert_eq!(
            relative_to(dir.path(), abs.to_str().expect("utf-8")).as_deref(),
            Some("src/new_file.rs")
        );
        assert_eq!(relative_to(dir.path(), "/elsewhere/x.rs"), None);
        assert_eq!(
            relative_to(dir.path(), "src/a.rs").as_deref(),
            Some("src/a.rs")
        );
    }
}
