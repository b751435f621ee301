//! `setexpr` and `itest`, as U-Boot's `cmd/setexpr.c` and `cmd/itest.c`: numbers are hex (with
//! or without `0x`), `setexpr` stores its result as hex without `0x` (`env_set_hex`: `%lx`),
//! and `itest` compares values masked to its width (`.b` 8, `.w` 16, `.l` 32 bits, the
//! default; `.q` 64) or, with `.s`, strings.
//!
//! Unlike U-Boot, a word that is not a hex number is an error instead of the value of its
//! leading digits, a division by zero is an error instead of a trap, and the memory operands
//! `*addr` are refused (kexboot does not read arbitrary addresses for a script).

use alloc::format;
use alloc::string::{String, ToString};

use super::regex::{self, SubError};

/// The operand width a `.x` suffix asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    Bits(u32),
    /// `.s`: strings.
    Str,
}

/// `b w l q s` as U-Boot's `cmd_get_data_size`; `None` is the default (`.l`).
pub fn width(suffix: Option<&str>) -> Result<Width, String> {
    Ok(match suffix {
        None | Some("l") => Width::Bits(32),
        Some("b") => Width::Bits(8),
        Some("w") => Width::Bits(16),
        Some("q") => Width::Bits(64),
        Some("s") => Width::Str,
        Some(other) => return Err(format!("Invalid data width specifier '.{other}'")),
    })
}

/// A hex operand (`0x` optional).
pub fn hex(s: &str) -> Result<u64, String> {
    if s.starts_with('*') {
        return Err(format!("'{s}': memory operands (*addr) are not supported"));
    }
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("'{s}' is not a hex number"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| format!("'{s}' is more than 64 bits"))
}

/// `setexpr`'s usage text (U-Boot's, shortened).
pub const SETEXPR_USAGE: &str = "Usage: setexpr[.b, .w, .l, .q] name value1 [<op> value2] \
     (op: & | ^ + - * / %)\n       setexpr name gsub|sub r s [t]";

/// What `setexpr` decided: set `name` to `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assign {
    pub name: String,
    pub value: String,
}

/// `setexpr[.x] name ...` (`args` after the command name); `current` reads a variable (for
/// `sub`/`gsub` without `t`). The error is the console's message.
pub fn setexpr(
    suffix: Option<&str>,
    args: &[String],
    current: &dyn Fn(&str) -> Option<String>,
    max_len: usize,
) -> Result<Assign, String> {
    if width(suffix)? == Width::Str {
        return Err("setexpr.s is not supported".into());
    }
    let name = args.first().ok_or(SETEXPR_USAGE)?.clone();
    let assign = |v: u64| Assign {
        name: name.clone(),
        value: format!("{v:x}"),
    };
    match args {
        [_, a] => Ok(assign(hex(a)?)),
        [_, op, r, s, rest @ ..] if (op == "sub" || op == "gsub") && rest.len() <= 1 => {
            let text = match rest.first() {
                Some(t) => t.clone(),
                None => current(&name)
                    .ok_or_else(|| format!("## Error: variable \"{name}\" not defined"))?,
            };
            let value =
                regex::substitute(&text, r, s, op == "gsub", max_len).map_err(|e| match e {
                    SubError::Compile(m) => format!("Error compiling regex: {m}"),
                    SubError::NoMatch => format!("{text}: No match"),
                    SubError::TooCostly => format!("setexpr: matching '{r}' took too many steps"),
                    SubError::TooLong { max } => {
                        format!("## error: substitution buffer overflow (more than {max} bytes)")
                    }
                })?;
            Ok(Assign { name, value })
        }
        [_, a, op, b] => {
            let (a, b) = (hex(a)?, hex(b)?);
            let v = match op.as_str() {
                "|" => a | b,
                "&" => a & b,
                "+" => a.wrapping_add(b),
                "^" => a ^ b,
                "-" => a.wrapping_sub(b),
                "*" => a.wrapping_mul(b),
                "/" | "%" if b == 0 => return Err("setexpr: division by zero".into()),
                "/" => a / b,
                "%" => a % b,
                _ => return Err("invalid op".into()),
            };
            Ok(assign(v))
        }
        _ => Err(SETEXPR_USAGE.into()),
    }
}

/// `itest`'s usage text.
pub const ITEST_USAGE: &str = "Usage: itest[.b, .w, .l, .q, .s] value1 <op> value2";

/// `itest[.x] a op b` (`args` after the command name); `var` reads a variable for the `.s`
/// operand form `${name}`. The error is the console's message (the test is false).
pub fn itest(
    suffix: Option<&str>,
    args: &[String],
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, String> {
    let [a, op, b] = args else {
        return Err(ITEST_USAGE.into());
    };
    let ord = match width(suffix)? {
        Width::Str => {
            let operand = |s: &str| -> Result<String, String> {
                if s.starts_with('*') {
                    return Err(format!("'{s}': memory operands (*addr) are not supported"));
                }
                match s.strip_prefix("${").and_then(|n| n.strip_suffix('}')) {
                    Some(n) => Ok(var(n).unwrap_or_default()),
                    None => Ok(s.to_string()),
                }
            };
            operand(a)?.cmp(&operand(b)?)
        }
        Width::Bits(bits) => {
            let mask = if bits == 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            // U-Boot compares C longs: 64-bit values are signed.
            let val = |s: &str| hex(s).map(|v| (v & mask) as i64);
            val(a)?.cmp(&val(b)?)
        }
    };
    use core::cmp::Ordering::*;
    Ok(match op.as_str() {
        "-lt" | "<" => ord == Less,
        "-gt" | ">" => ord == Greater,
        "-eq" | "==" => ord == Equal,
        "-ne" | "!=" | "<>" => ord != Equal,
        "-ge" | ">=" => ord != Less,
        "-le" | "<=" => ord != Greater,
        _ => return Err(format!("Unknown operator '{op}'")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(ToString::to_string).collect()
    }

    fn set(suffix: Option<&str>, s: &str) -> Result<String, String> {
        let cur = |n: &str| (n == "v").then(|| "a.b.c".to_string());
        setexpr(suffix, &words(s), &cur, 100).map(|a| a.value)
    }

    #[test]
    fn setexpr_arithmetic_is_hex() {
        assert_eq!(set(None, "x 0x40000000"), Ok("40000000".into()));
        assert_eq!(set(None, "x 10 + 0x10"), Ok("20".into()));
        assert_eq!(set(None, "x ff & f0"), Ok("f0".into()));
        assert_eq!(set(None, "x 0 - 1"), Ok("ffffffffffffffff".into()));
        assert_eq!(set(None, "x 64 / 10"), Ok("6".into()));
        assert_eq!(set(None, "x 64 % 10"), Ok("4".into()));
        assert_eq!(set(Some("b"), "x 3 * 3"), Ok("9".into()));
        assert_eq!(
            set(None, "x 1 / 0"),
            Err("setexpr: division by zero".into())
        );
        assert_eq!(
            set(None, "x 1 % 0"),
            Err("setexpr: division by zero".into())
        );
        assert_eq!(set(None, "x 1 ** 2"), Err("invalid op".into()));
        assert_eq!(set(None, "x zz"), Err("'zz' is not a hex number".into()));
        assert!(set(None, "x *40000000")
            .unwrap_err()
            .contains("memory operands"));
        assert!(set(None, "x").unwrap_err().starts_with("Usage: setexpr"));
        assert!(set(None, "x 1 +")
            .unwrap_err()
            .starts_with("Usage: setexpr"));
        assert!(set(Some("s"), "x 1").is_err());
    }

    #[test]
    fn setexpr_sub_and_gsub() {
        assert_eq!(set(None, "v gsub \\. -"), Ok("a-b-c".into()));
        assert_eq!(set(None, "v sub \\. -"), Ok("a-b.c".into()));
        assert_eq!(set(None, "x sub b B abc"), Ok("aBc".into()));
        assert_eq!(set(None, "x sub z B abc"), Err("abc: No match".into()));
        assert_eq!(
            set(None, "y sub z B"),
            Err("## Error: variable \"y\" not defined".into())
        );
        assert!(set(None, "x sub ( B abc")
            .unwrap_err()
            .starts_with("Error compiling regex: "));
    }

    #[test]
    fn itest_widths_and_operators() {
        let var = |n: &str| (n == "v").then(|| "abc".to_string());
        let it = |suffix, s: &str| itest(suffix, &words(s), &var);
        assert_eq!(it(None, "10 -eq 0x10"), Ok(true));
        assert_eq!(it(None, "a > 9"), Ok(true));
        assert_eq!(it(None, "100000001 == 1"), Ok(true), ".l masks to 32 bits");
        assert_eq!(it(Some("q"), "100000001 == 1"), Ok(false));
        assert_eq!(it(Some("b"), "1ff <= ff"), Ok(true));
        assert_eq!(it(Some("w"), "1 <> 2"), Ok(true));
        assert_eq!(
            it(Some("q"), "ffffffffffffffff -lt 0"),
            Ok(true),
            "signed like a C long"
        );
        assert_eq!(it(Some("s"), "${v} == abc"), Ok(true));
        assert_eq!(it(Some("s"), "abd -gt abc"), Ok(true));
        assert_eq!(it(None, "1 =~ 1"), Err("Unknown operator '=~'".into()));
        assert_eq!(
            it(None, "xyz -eq 1"),
            Err("'xyz' is not a hex number".into())
        );
        assert_eq!(it(None, "1 -eq"), Err(ITEST_USAGE.into()));
        assert!(it(Some("z"), "1 -eq 1").unwrap_err().contains("width"));
        assert!(it(None, "*1000 -eq 1")
            .unwrap_err()
            .contains("memory operands"));
    }
}
