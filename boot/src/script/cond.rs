//! `test`, as U-Boot's `cmd/test.c` evaluates it, so boot scripts written against U-Boot get
//! the same answers: operators are read left to right with no precedence (`-a` and `-o` combine
//! the expression so far with the next primary), `!` negates the next primary, numbers are C's
//! `strtol(s, 0)` (decimal, `0x` hex, leading-`0` octal; the digits before any junk count, so an
//! empty or unset variable is 0), and fewer than two arguments is false (U-Boot: `argc < 3`).
//!
//! Primaries: `-z s`, `-n s`, `a = b`, `a == b`, `a != b`, `a < b`, `a > b` (strings),
//! `a -eq|-ne|-lt|-le|-gt|-ge b` (numbers), `-e <interface> <dev[:part]> <path>` (a file exists).
//!
//! Where U-Boot quietly answers true for what it cannot read (an unknown word, an operator
//! missing its operands), this says what is wrong and answers false.

use alloc::format;
use alloc::string::String;

/// Looks a file up for `-e`: `(interface, dev[:part], path)`.
pub type Exists<'a> = dyn FnMut(&str, &str, &str) -> Result<bool, String> + 'a;

/// C's `strtol(s, NULL, 0)` as U-Boot's `simple_strtol`: sign, base prefix, then the digits
/// that are valid in the base (none: 0). Wraps like the C long it stands for.
pub fn strtol(s: &str) -> i64 {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let b = t.as_bytes();
    let (base, digits) = match b {
        [b'0', b'x' | b'X', c, ..] if c.is_ascii_hexdigit() => (16, &b[2..]),
        [b'0', ..] => (8, b),
        _ => (10, b),
    };
    let mut v: i64 = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(base) else {
            break;
        };
        v = v.wrapping_mul(i64::from(base)).wrapping_add(i64::from(d));
    }
    if neg {
        v.wrapping_neg()
    } else {
        v
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Join {
    None,
    And,
    Or,
}

/// A primary at the start of `a`: its value and how many words it took, or `None` when `a[0]`
/// is not the start of one.
fn primary(a: &[String], exists: &mut Exists) -> Result<Option<(bool, usize)>, String> {
    // Binary operators first, as U-Boot's table: `test -n = -n` compares two strings.
    if let (Some(l), Some(op)) = (a.first(), a.get(1)) {
        let numeric = |f: fn(i64, i64) -> bool| -> Result<Option<(bool, usize)>, String> {
            let r = a
                .get(2)
                .ok_or_else(|| format!("'{op}' needs a right operand"))?;
            Ok(Some((f(strtol(l), strtol(r)), 3)))
        };
        let string = |f: fn(&str, &str) -> bool| -> Result<Option<(bool, usize)>, String> {
            let r = a
                .get(2)
                .ok_or_else(|| format!("'{op}' needs a right operand"))?;
            Ok(Some((f(l, r), 3)))
        };
        match op.as_str() {
            "=" | "==" => return string(|l, r| l == r),
            "!=" => return string(|l, r| l != r),
            "<" => return string(|l, r| l < r),
            ">" => return string(|l, r| l > r),
            "-eq" => return numeric(|l, r| l == r),
            "-ne" => return numeric(|l, r| l != r),
            "-lt" => return numeric(|l, r| l < r),
            "-le" => return numeric(|l, r| l <= r),
            "-gt" => return numeric(|l, r| l > r),
            "-ge" => return numeric(|l, r| l >= r),
            _ => {}
        }
    }
    match a.first().map(String::as_str) {
        Some(op @ ("-z" | "-n")) => {
            let s = a.get(1).ok_or_else(|| format!("'{op}' needs an operand"))?;
            Ok(Some(((op == "-z") == s.is_empty(), 2)))
        }
        Some("-e") => match a.get(1..4) {
            Some([iface, dev, path]) => Ok(Some((exists(iface, dev, path)?, 4))),
            _ => Err("usage: -e <interface> <dev[:part]> <path>".into()),
        },
        _ => Ok(None),
    }
}

/// Evaluates `test`'s arguments; an error is a message for the console (the test is false).
pub fn eval(args: &[String], exists: &mut Exists) -> Result<bool, String> {
    if args.len() < 2 {
        return Ok(false);
    }
    let mut pos = 0;
    let mut expr = false;
    let (mut join, mut last) = (Join::None, false);
    let mut negate = false;
    while pos < args.len() {
        let word = args[pos].as_str();
        if let Some((v, took)) = primary(&args[pos..], exists)? {
            let v = v != negate;
            negate = false;
            expr = match join {
                Join::None => v,
                Join::And => last && v,
                Join::Or => last || v,
            };
            join = Join::None;
            pos += took;
            continue;
        }
        match word {
            "!" => negate = !negate,
            "-a" | "-o" => {
                last = expr;
                join = if word == "-a" { Join::And } else { Join::Or };
            }
            _ => return Err(format!("unexpected '{word}'")),
        }
        pos += 1;
    }
    if negate || join != Join::None {
        return Err(format!("'{}' needs an operand", args[args.len() - 1]));
    }
    Ok(expr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    fn t(s: &str) -> Result<bool, String> {
        let args: Vec<String> = s.split(' ').map(ToString::to_string).collect();
        eval(&args, &mut |_, _, p| Ok(p == "/yes"))
    }

    #[test]
    fn numbers_as_strtol() {
        assert_eq!(strtol("10"), 10);
        assert_eq!(strtol("0x10"), 16);
        assert_eq!(strtol("010"), 8);
        assert_eq!(strtol("-7"), -7);
        assert_eq!(strtol(""), 0);
        assert_eq!(strtol("12abc"), 12);
        assert_eq!(strtol("0x"), 0);
        assert_eq!(strtol("abc"), 0);
    }

    #[test]
    fn left_to_right_like_u_boot() {
        assert_eq!(t("a = a"), Ok(true));
        assert_eq!(t("a = b -o c = c -a d = e"), Ok(false));
        // POSIX would bind -a first and answer true; U-Boot goes left to right.
        assert_eq!(t("a = a -o b = c -a c = d"), Ok(false));
        assert_eq!(t("! a = b -a ! ! c = c"), Ok(true));
        assert_eq!(t("-e virtio 0:1 /yes -a -n x"), Ok(true));
        assert_eq!(t("! -e virtio 0:1 /no"), Ok(true));
        assert_eq!(t("-n = -n"), Ok(true));
        assert_eq!(t("x"), Ok(false));
        assert_eq!(t("-z"), Ok(false));
        assert_eq!(t("8 -eq 010"), Ok(true));
        assert_eq!(t("a -lt 1"), Ok(true));
    }

    #[test]
    fn malformed_is_an_error() {
        assert_eq!(t("a b"), Err("unexpected 'a'".into()));
        assert_eq!(t("a = a b"), Err("unexpected 'b'".into()));
        assert_eq!(t("a = a -a"), Err("'-a' needs an operand".into()));
        assert_eq!(
            t("-e virtio 0:1"),
            Err("usage: -e <interface> <dev[:part]> <path>".into())
        );
        assert_eq!(t("x !"), Err("unexpected 'x'".into()));
    }
}
