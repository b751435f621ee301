//! `/proc/iomem`: which physical memory is RAM and which parts of it Linux has in use.
//!
//! Each line is `START-END : NAME` (hex, END inclusive), indented two spaces per nesting level:
//!
//! ```text
//! 40000000-7fffffff : System RAM
//!   40210000-4158ffff : Kernel code
//!   48000000-480f1fff : reserved
//! ```
//!
//! Top-level "System RAM" lines are the RAM; every nested line (kernel code and data, `reserved`
//! memblocks such as the DTB, reserved-memory regions and firmware tables) is memory to avoid.
//! Without CAP_SYS_ADMIN the kernel prints every address as 0: that is reported as
//! [`IomemError::NotRoot`] rather than as "no RAM".

use core::fmt;

use kexboot_loader::Range;

/// Name of the top-level resources that are RAM.
pub const SYSTEM_RAM: &str = "System RAM";

/// What `/proc/iomem` said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Iomem {
    /// Top-level "System RAM" ranges, in file order.
    pub ram: Vec<Range>,
    /// Every nested range (children of RAM and of anything else), in file order.
    pub avoid: Vec<Range>,
}

/// Why `/proc/iomem` could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IomemError {
    /// Line `line` (1-based) is not `START-END : NAME` with START <= END.
    BadLine { line: usize, what: &'static str },
    /// Every address reads 0: the caller lacks the privilege to see them.
    NotRoot,
    /// No top-level "System RAM" line.
    NoSystemRam,
}

impl fmt::Display for IomemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IomemError::BadLine { line, what } => write!(f, "/proc/iomem line {line}: {what}"),
            IomemError::NotRoot => write!(
                f,
                "/proc/iomem shows every address as 0: must run as root (needs CAP_SYS_ADMIN)"
            ),
            IomemError::NoSystemRam => write!(f, "/proc/iomem has no \"System RAM\" range"),
        }
    }
}

/// One parsed line: nesting depth, range (END made exclusive), name.
fn parse_line(line: &str, no: usize) -> Result<(usize, Range, &str), IomemError> {
    let bad = |what| IomemError::BadLine { line: no, what };
    let body = line.trim_start_matches(' ');
    let depth = (line.len() - body.len()) / 2;
    let (span, name) = body
        .split_once(" : ")
        .ok_or(bad("no \" : \" between range and name"))?;
    let (start, end) = span.split_once('-').ok_or(bad("no '-' in the range"))?;
    let hex = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("address is not hexadecimal"));
        }
        u64::from_str_radix(s, 16).map_err(|_| bad("address beyond 64 bits"))
    };
    let (start, last) = (hex(start)?, hex(end)?);
    let end = last.checked_add(1).ok_or(bad("range ends at 2^64"))?;
    let range = Range::new(start, end).map_err(|_| bad("range end below its start"))?;
    Ok((depth, range, name.trim_end()))
}

impl Iomem {
    /// Parses the text of `/proc/iomem`.
    pub fn parse(text: &str) -> Result<Iomem, IomemError> {
        let mut out = Iomem::default();
        let (mut lines, mut any_nonzero) = (0usize, false);
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let (depth, range, name) = parse_line(line, i + 1)?;
            lines += 1;
            any_nonzero |= range.start() != 0 || range.end() != 1;
            if depth > 0 {
                out.avoid.push(range);
            } else if name == SYSTEM_RAM {
                out.ram.push(range);
            }
        }
        if lines > 0 && !any_nonzero {
            return Err(IomemError::NotRoot);
        }
        if out.ram.is_empty() {
            return Err(IomemError::NoSystemRam);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const QEMU_VIRT: &str = include_str!("../tests/data/qemu-virt-iomem.txt");

    fn r(start: u64, end: u64) -> Range {
        Range::new(start, end).unwrap()
    }

    #[test]
    fn qemu_virt_sample() {
        let m = Iomem::parse(QEMU_VIRT).unwrap();
        assert_eq!(m.ram, [r(0x4000_0000, 0x8000_0000)]);
        // Kernel code, reserved, Kernel data, 9 more reserved, plus the device children.
        assert!(m.avoid.contains(&r(0x4021_0000, 0x4159_0000)));
        assert!(m.avoid.contains(&r(0x4159_0000, 0x41a1_0000)));
        assert!(m.avoid.contains(&r(0x41a1_0000, 0x41cb_0000)));
        assert!(m.avoid.contains(&r(0x4800_0000, 0x480f_2000)));
        assert!(m.avoid.contains(&r(0x7fdf_a000, 0x8000_0000)));
        let in_ram = m.avoid.iter().filter(|a| m.ram[0].overlaps(a)).count();
        assert_eq!(in_ram, 12);
        // Top-level non-RAM (PCI ECAM, devices) is neither RAM nor avoided.
        assert!(!m.avoid.contains(&r(0x40_1000_0000, 0x40_2000_0000)));
    }

    #[test]
    fn unprivileged_view_is_not_root() {
        let zeroed: String = QEMU_VIRT
            .lines()
            .map(|l| {
                let indent = l.len() - l.trim_start().len();
                let name = l.split_once(" : ").unwrap().1;
                format!("{}00000000-00000000 : {name}\n", " ".repeat(indent))
            })
            .collect();
        assert_eq!(Iomem::parse(&zeroed), Err(IomemError::NotRoot));
        assert!(IomemError::NotRoot.to_string().contains("must run as root"));
    }

    #[test]
    fn several_ram_ranges_and_deeper_nesting() {
        let text = "\
00000000-0000ffff : reserved
80000000-bfffffff : System RAM
  80000000-801fffff : reserved
    80000000-8000ffff : nested deeper
c0000000-c00fffff : ramoops
880000000-8bfffffff : System RAM
  8be000000-8bfffffff : crash kernel
";
        let m = Iomem::parse(text).unwrap();
        assert_eq!(
            m.ram,
            [r(0x8000_0000, 0xc000_0000), r(0x8_8000_0000, 0x8_c000_0000)]
        );
        assert_eq!(
            m.avoid,
            [
                r(0x8000_0000, 0x8020_0000),
                r(0x8000_0000, 0x8001_0000),
                r(0x8_be00_0000, 0x8_c000_0000)
            ]
        );
    }

    #[test]
    fn bad_lines() {
        let cases = [
            ("40000000-7fffffff System RAM", "no \" : \""),
            ("400000007fffffff : System RAM", "no '-'"),
            ("4000000g-7fffffff : System RAM", "not hexadecimal"),
            ("-7fffffff : System RAM", "not hexadecimal"),
            ("7fffffff-40000000 : System RAM", "below its start"),
            ("0-ffffffffffffffff : System RAM", "2^64"),
            ("0-1ffffffffffffffff : System RAM", "beyond 64 bits"),
        ];
        for (text, want) in cases {
            let e = Iomem::parse(&format!("09000000-09000fff : pl011\n{text}\n")).unwrap_err();
            assert!(matches!(e, IomemError::BadLine { line: 2, .. }), "{text}");
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        assert_eq!(Iomem::parse(""), Err(IomemError::NoSystemRam));
        assert_eq!(
            Iomem::parse("09000000-09000fff : pl011\n"),
            Err(IomemError::NoSystemRam)
        );
        // RAM only nested under something else does not count.
        assert_eq!(
            Iomem::parse("00000000-ffffffff : bus\n  40000000-7fffffff : System RAM\n"),
            Err(IomemError::NoSystemRam)
        );
    }

    proptest! {
        #[test]
        fn never_panics(text in "[0-9a-fA-F :\\-\nSystemRA]{0,200}") {
            if let Ok(m) = Iomem::parse(&text) {
                prop_assert!(!m.ram.is_empty());
                prop_assert!(m.ram.iter().chain(&m.avoid).all(|r| r.start() <= r.end()));
            }
        }

        #[test]
        fn garbage_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Iomem::parse(&String::from_utf8_lossy(&bytes));
        }
    }
}
