//! Redis's glob rules, exactly: a port of `stringmatchlen` (`src/util.c`, case-sensitive), the
//! matcher behind `SCAN MATCH`, `KEYS` and `PSUBSCRIBE`. The dashboard filters keys client-side
//! with it, so a `--pattern` selects the same keys here as on the server (tested against the
//! server's own `SCAN MATCH` in `tests/tui_glob_server.rs`).
//!
//! Rules: `*` any run (also empty), `?` one byte, `[abc]` one of, `[^abc]` none of, `[a-z]` a range
//! (ends in either order), `\x` the byte `x` (also inside brackets). Bytes, not characters: `?`
//! matches one byte of a multi-byte UTF-8 character, and range ends compare as C's signed `char`.

use thiserror::Error;

/// Why a `--pattern` is refused (Redis itself accepts anything; these would select nothing or
/// something the operator did not mean).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    /// The pattern is empty: it matches only the empty key name.
    #[error("empty pattern (it would match no key); give a glob such as 'lock:*'")]
    Empty,
    /// A `[` without its `]`: Redis reads the rest of the pattern as the set, rarely what was meant.
    #[error("unclosed '[' at byte {0}; escape a literal bracket as '\\['")]
    UnclosedBracket(usize),
    /// A `\` at the very end escapes nothing.
    #[error("trailing '\\' escapes nothing; write '\\\\' for a literal backslash")]
    TrailingBackslash,
}

/// Check a user-supplied pattern (`--pattern`): non-empty, brackets closed, no dangling escape.
///
/// # Errors
/// [`PatternError`] naming the problem.
pub fn validate(pattern: &str) -> Result<(), PatternError> {
    let p = pattern.as_bytes();
    if p.is_empty() {
        return Err(PatternError::Empty);
    }
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'\\' => {
                if i + 1 >= p.len() {
                    return Err(PatternError::TrailingBackslash);
                }
                i += 2;
            }
            b'[' => {
                let open = i;
                i += 1;
                if p.get(i) == Some(&b'^') {
                    i += 1;
                }
                loop {
                    match p.get(i) {
                        None => return Err(PatternError::UnclosedBracket(open)),
                        Some(b'\\') if i + 1 < p.len() => i += 2,
                        Some(b']') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Whether `text` matches `pattern` under Redis's rules (see the module docs).
#[must_use]
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let mut skip_longer = false;
    go(pattern, text, &mut skip_longer, 0)
}

/// The literal bytes a pattern starts with (up to its first metacharacter, escapes resolved): the
/// prefix every matching key has, for `CLIENT TRACKING ... PREFIX`.
#[must_use]
pub fn literal_prefix(pattern: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'*' | b'?' | b'[' => break,
            b'\\' if i + 1 < pattern.len() => {
                out.push(pattern[i + 1]);
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// C's `char` on x86/ARM Linux builds of Redis is signed: range ends compare that way.
fn signed(b: u8) -> i32 {
    i32::from(b as i8)
}

/// The byte at `i`, or the C string terminator past the end (the C code reads it).
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn go(pattern: &[u8], string: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > 1000 {
        return false;
    }
    let (mut p, mut s) = (0usize, 0usize);
    let (plen, slen) = (pattern.len(), string.len());
    while p < plen && s < slen {
        match pattern[p] {
            b'*' => {
                while p + 1 < plen && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == plen {
                    return true;
                }
                while s < slen {
                    if go(&pattern[p + 1..], &string[s..], skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let not = at(pattern, p) == b'^';
                if not {
                    p += 1;
                }
                let mut matched = false;
                let c = string[s];
                loop {
                    let rest = plen.saturating_sub(p);
                    if at(pattern, p) == b'\\' && rest >= 2 {
                        p += 1;
                        if pattern[p] == c {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if rest == 0 {
                        // unterminated: the C code steps back so the outer loop ends the pattern
                        p -= 1;
                        break;
                    } else if rest >= 3 && pattern[p + 1] == b'-' {
                        let (mut start, mut end) = (signed(pattern[p]), signed(pattern[p + 2]));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        p += 2;
                        let ch = signed(c);
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if pattern[p] == c {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            b'\\' => {
                if plen - p >= 2 {
                    p += 1;
                }
                if pattern[p] != string[s] {
                    return false;
                }
                s += 1;
            }
            c => {
                if c != string[s] {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == slen {
            while p < plen && pattern[p] == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= plen && s == slen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        matches(p.as_bytes(), t.as_bytes())
    }

    #[test]
    fn redis_glob_rules() {
        assert!(m("lock:*", "lock:a:b"));
        assert!(m("lock:*", "lock:"));
        assert!(!m("lock:*", "locks"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("lock:[xa]*", "lock:x1"));
        assert!(m("lock:[xa]*", "lock:a"));
        assert!(!m("lock:[xa]*", "lock:b"));
        assert!(m("lock:[^xa]*", "lock:b"));
        assert!(!m("lock:[^xa]*", "lock:x"));
        assert!(m("[a-c]", "b") && m("[c-a]", "b") && !m("[a-c]", "d"));
        assert!(m("a\\*b", "a*b") && !m("a\\*b", "axb"));
        assert!(m("[\\]]", "]"));
        assert!(
            !m("*", ""),
            "as in Redis: the loop never runs for an empty key"
        );
        assert!(m("", ""));
        assert!(!m("", "a"));
        // unterminated bracket: Redis reads the rest as the set
        assert!(m("[ab", "a") && m("[ab", "b"));
        // a trailing backslash is a literal backslash
        assert!(m("a\\", "a\\"));
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(validate(""), Err(PatternError::Empty));
        assert_eq!(validate("lock:[ab"), Err(PatternError::UnclosedBracket(5)));
        assert_eq!(validate("lock:\\"), Err(PatternError::TrailingBackslash));
        assert_eq!(validate("lock:[\\]]"), Ok(()));
        assert_eq!(validate("lock:[xa]*"), Ok(()));
        assert_eq!(literal_prefix(b"lock:\\*x*"), b"lock:*x".to_vec());
    }
}
