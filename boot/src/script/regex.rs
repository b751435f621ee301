//! The regular expressions of `setexpr name sub|gsub r s [t]`: the part of U-Boot's SLRE that
//! boot scripts use. Atoms are a character, `.`, a class `[a-z_]` / `[^...]`, or an escape
//! (`\d \D \s \S \w \W`, anything else literal); each may take `*`, `+` or `?` (greedy); `^` at
//! the start and `$` at the end anchor. Groups and alternatives (`( ) |`) are refused when the
//! pattern is compiled, so nothing is silently matched differently from U-Boot.
//!
//! Matching backtracks over single-atom repeats only, and every atom test costs one step of a
//! fixed budget, so a hostile pattern fails instead of running long.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Most atoms in one pattern (the matcher recurses once per atom).
pub const MAX_ATOMS: usize = 256;
/// Atom tests one substitution may make before it gives up.
pub const MAX_MATCH_STEPS: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq)]
enum Atom {
    Char(char),
    Any,
    /// `[...]`: inclusive ranges, negated by a leading `^`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Digit(bool),
    Space(bool),
    Word(bool),
}

impl Atom {
    fn matches(&self, c: char) -> bool {
        match self {
            Atom::Char(x) => *x == c,
            Atom::Any => true,
            Atom::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            Atom::Digit(yes) => c.is_ascii_digit() == *yes,
            Atom::Space(yes) => c.is_ascii_whitespace() == *yes,
            Atom::Word(yes) => (c.is_ascii_alphanumeric() || c == '_') == *yes,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Repeat {
    One,
    /// `*`
    Any,
    /// `+`
    Many,
    /// `?`
    Maybe,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Regex {
    at_start: bool,
    at_end: bool,
    items: Vec<(Atom, Repeat)>,
}

/// A match: char positions `start..end` of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub start: usize,
    pub end: usize,
}

fn escape(c: char) -> Atom {
    match c {
        'd' => Atom::Digit(true),
        'D' => Atom::Digit(false),
        's' => Atom::Space(true),
        'S' => Atom::Space(false),
        'w' => Atom::Word(true),
        'W' => Atom::Word(false),
        'n' => Atom::Char('\n'),
        't' => Atom::Char('\t'),
        c => Atom::Char(c),
    }
}

/// `[...]` after its `[`: the class and the characters it took.
fn class(chars: &[char]) -> Result<(Atom, usize), String> {
    let mut i = 0;
    let negated = chars.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or("unterminated '['")?;
        if c == ']' && !first {
            return Ok((Atom::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = match c {
            '\\' => {
                i += 1;
                match escape(*chars.get(i).ok_or("unterminated '['")?) {
                    Atom::Char(c) => c,
                    _ => return Err("'\\d', '\\s', '\\w' inside '[...]' are not supported".into()),
                }
            }
            c => c,
        };
        i += 1;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
            let hi = chars[i + 1];
            if hi < lo {
                return Err(format!("bad range '{lo}-{hi}'"));
            }
            ranges.push((lo, hi));
            i += 2;
        } else {
            ranges.push((lo, lo));
        }
    }
}

impl Regex {
    /// Compiles `pattern`; the error is what U-Boot prints after "Error compiling regex: ".
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut re = Regex {
            at_start: false,
            at_end: false,
            items: Vec::new(),
        };
        let mut i = 0;
        if chars.first() == Some(&'^') {
            re.at_start = true;
            i = 1;
        }
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            let atom = match c {
                '$' if i == chars.len() => {
                    re.at_end = true;
                    break;
                }
                '.' => Atom::Any,
                '[' => {
                    let (atom, took) = class(&chars[i..])?;
                    i += took;
                    atom
                }
                '\\' => {
                    let e = *chars.get(i).ok_or("pattern ends with '\\'")?;
                    i += 1;
                    escape(e)
                }
                '(' | ')' | '|' => {
                    return Err(format!("'{c}': groups and alternatives are not supported"))
                }
                '*' | '+' | '?' => return Err(format!("'{c}' repeats nothing")),
                c => Atom::Char(c),
            };
            let repeat = match chars.get(i) {
                Some('*') => Repeat::Any,
                Some('+') => Repeat::Many,
                Some('?') => Repeat::Maybe,
                _ => Repeat::One,
            };
            if repeat != Repeat::One {
                i += 1;
            }
            if re.items.len() == MAX_ATOMS {
                return Err(format!("more than {MAX_ATOMS} atoms"));
            }
            re.items.push((atom, repeat));
        }
        Ok(re)
    }

    /// The first match in `text` starting at or after char `from` (a `^` pattern matches only
    /// at 0). `steps` is the budget left; an error when it runs out.
    pub fn find(&self, text: &[char], from: usize, steps: &mut u32) -> Result<Option<Found>, ()> {
        let starts = if self.at_start {
            0..=0
        } else {
            from..=text.len()
        };
        for start in starts {
            if start < from {
                break;
            }
            if let Some(end) = self.here(0, text, start, steps)? {
                return Ok(Some(Found { start, end }));
            }
        }
        Ok(None)
    }

    /// Where items `i..` matched from `pos` end, if they do.
    fn here(
        &self,
        i: usize,
        text: &[char],
        pos: usize,
        steps: &mut u32,
    ) -> Result<Option<usize>, ()> {
        let Some((atom, repeat)) = self.items.get(i) else {
            return Ok((!self.at_end || pos == text.len()).then_some(pos));
        };
        let (min, max) = match repeat {
            Repeat::One => (1, 1),
            Repeat::Any => (0, usize::MAX),
            Repeat::Many => (1, usize::MAX),
            Repeat::Maybe => (0, 1),
        };
        let mut n = 0;
        while n < max {
            *steps = steps.checked_sub(1).ok_or(())?;
            match text.get(pos + n) {
                Some(&c) if atom.matches(c) => n += 1,
                _ => break,
            }
        }
        // Greedy: the longest run first, then shorter ones.
        for k in (min..=n).rev() {
            if let Some(end) = self.here(i + 1, text, pos + k, steps)? {
                return Ok(Some(end));
            }
        }
        Ok(None)
    }
}

/// Why a substitution did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubError {
    /// The pattern does not compile (U-Boot: "Error compiling regex: ...").
    Compile(String),
    /// Nothing matched (U-Boot: "<text>: No match").
    NoMatch,
    /// The matcher's step budget ran out.
    TooCostly,
    /// The result would be longer than `max` bytes.
    TooLong { max: usize },
}

/// `text` with the first (or, `global`, every) match of `pattern` replaced by `with`, where
/// `\0` stands for the whole match (as U-Boot; `\1`..`\9` stay as written: no groups).
pub fn substitute(
    text: &str,
    pattern: &str,
    with: &str,
    global: bool,
    max_len: usize,
) -> Result<String, SubError> {
    let re = Regex::new(pattern).map_err(SubError::Compile)?;
    let chars: Vec<char> = text.chars().collect();
    let mut steps = MAX_MATCH_STEPS;
    let mut out = String::new();
    let mut pos = 0;
    let mut any = false;
    let mut last_end = None;
    while pos <= chars.len() {
        let Some(m) = re
            .find(&chars, pos, &mut steps)
            .map_err(|()| SubError::TooCostly)?
        else {
            break;
        };
        if m.start == m.end && last_end == Some(m.start) {
            // An empty match right after a match (as sed): no replacement here.
            match chars.get(pos) {
                Some(&c) => out.push(c),
                None => break,
            }
            pos += 1;
            continue;
        }
        any = true;
        last_end = Some(m.end);
        out.extend(&chars[pos..m.start]);
        let whole: String = chars[m.start..m.end].iter().collect();
        out.push_str(&with.replace("\\0", &whole));
        if out.len() > max_len {
            return Err(SubError::TooLong { max: max_len });
        }
        pos = m.end;
        if m.end == m.start {
            // An empty match: keep the next character and look after it.
            match chars.get(pos) {
                Some(&c) => out.push(c),
                None => {
                    pos += 1;
                    break;
                }
            }
            pos += 1;
        }
        if !global || re.at_start {
            break;
        }
    }
    if !any {
        return Err(SubError::NoMatch);
    }
    if pos < chars.len() {
        out.extend(&chars[pos..]);
    }
    if out.len() > max_len {
        return Err(SubError::TooLong { max: max_len });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(t: &str, r: &str, s: &str, g: bool) -> Result<String, SubError> {
        substitute(t, r, s, g, 1000)
    }

    #[test]
    fn literals_classes_repeats_anchors() {
        assert_eq!(sub("a.b.c", "\\.", "-", true).unwrap(), "a-b-c");
        assert_eq!(sub("a.b.c", ".", "-", false).unwrap(), "-.b.c");
        assert_eq!(sub("abc123def", "[0-9]+", "#", true).unwrap(), "abc#def");
        assert_eq!(
            sub("abc123def", "\\d", "<\\0>", true).unwrap(),
            "abc<1><2><3>def"
        );
        assert_eq!(sub("aaa", "^a", "b", true).unwrap(), "baa");
        assert_eq!(sub("aaa", "a$", "b", true).unwrap(), "aab");
        assert_eq!(sub("x  y", "\\s*", "_", true).unwrap(), "_x_y_");
        assert_eq!(
            sub("colou?r color", "colou?r", "c", true).unwrap(),
            "colou?r c"
        );
        assert_eq!(sub("[x]", "[^x]", "", true).unwrap(), "x");
        assert_eq!(sub("a-b", "[a-]", "", true).unwrap(), "b");
        assert_eq!(sub("ab", "x*", "-", true).unwrap(), "-a-b-");
        assert_eq!(sub("abc", "z", "y", true), Err(SubError::NoMatch));
    }

    #[test]
    fn refusals_and_bounds() {
        for bad in ["(a)", "a|b", "*a", "[a", "a\\", "[z-a]"] {
            assert!(
                matches!(sub("a", bad, "", true), Err(SubError::Compile(_))),
                "{bad}"
            );
        }
        let long = "a".repeat(MAX_ATOMS + 1);
        assert!(Regex::new(&long).is_err());
        // Quadratic-per-start backtracking on a long text runs out of steps, not of time.
        let text = "a".repeat(5000);
        let r = substitute(&text, "a*a*a*a*b", "", true, 100_000);
        assert_eq!(r, Err(SubError::TooCostly));
        assert_eq!(
            sub(&"x".repeat(600), "x", "yy", true),
            Err(SubError::TooLong { max: 1000 })
        );
    }
}
