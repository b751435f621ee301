//! The figures every bench section prints: medians, "median (min–max)" cells, ratios.

use crate::util::{Context, Result};
use std::path::Path;
use std::time::Duration;

/// For the `--*-only` runs: replaces the level-2 section `title` (`## <title>`) of an existing
/// bench file `out` with `section` (or appends it; starts the file when there is none).
pub(crate) fn write_section(out: &Path, title: &str, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(out).unwrap_or_else(|_| "# kexboot boot-time bench\n".into());
    // Level-2 sections start at "\n## "; keep every one but the old one.
    let mut kept = String::new();
    for (k, part) in old.split("\n## ").enumerate() {
        if k == 0 {
            kept += part;
        } else if !part.starts_with(&format!("{title}\n")) {
            kept += "\n## ";
            kept += part;
        }
    }
    let md = format!("{}\n{section}", kept.trim_end());
    std::fs::write(out, md).ctx(out.display())
}

/// Median of the values present.
pub(crate) fn median(v: impl Iterator<Item = Option<Duration>>) -> Option<Duration> {
    let mut v: Vec<Duration> = v.flatten().collect();
    v.sort();
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2),
    }
}

pub(crate) fn secs(d: Option<Duration>) -> String {
    d.map(|d| format!("{:.3}", d.as_secs_f64()))
        .unwrap_or_else(|| "–".into())
}

/// "median (min–max)" of the values present.
pub(crate) fn cell(med: Option<Duration>, v: impl Iterator<Item = Option<Duration>>) -> String {
    let v: Vec<Duration> = v.flatten().collect();
    match (v.iter().min(), v.iter().max()) {
        (Some(lo), Some(hi)) if v.len() > 1 => {
            format!("{} ({}–{})", secs(med), secs(Some(*lo)), secs(Some(*hi)))
        }
        _ => secs(med),
    }
}

pub(crate) fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64()),
        _ => "n/a".into(),
    }
}

/// Which way a goal points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Want {
    AtMost(f64),
    AtLeast(f64),
}

/// One goal of the performance issue, measured in this run: `value` (a ratio against `anchor`,
/// or an absolute figure in `unit`) next to what it should be.
#[derive(Clone, Debug)]
pub(crate) struct Goal {
    /// The part ("1. relocation", ...).
    pub part: &'static str,
    /// What is measured, e.g. "time to kernel entry, kexboot / U-Boot".
    pub what: String,
    pub value: Option<f64>,
    /// "x" for ratios, else the unit of an absolute figure ("KiB").
    pub unit: &'static str,
    pub want: Want,
    /// The figures the value comes from, with their spread.
    pub from: String,
}

impl Goal {
    pub fn ratio(
        part: &'static str,
        what: impl Into<String>,
        value: Option<f64>,
        want: Want,
    ) -> Self {
        Goal {
            part,
            what: what.into(),
            value,
            unit: "x",
            want,
            from: String::new(),
        }
    }

    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = from.into();
        self
    }

    /// Met, not met, or not measured (None).
    pub fn met(&self) -> Option<bool> {
        let v = self.value?;
        Some(match self.want {
            Want::AtMost(g) => v <= g,
            Want::AtLeast(g) => v >= g,
        })
    }

    fn fmt_value(&self, v: f64) -> String {
        if self.unit == "x" {
            format!("{v:.2}x")
        } else {
            format!("{v:.1} {}", self.unit)
        }
    }

    fn goal_text(&self) -> String {
        match self.want {
            Want::AtMost(g) => format!("≤ {}", self.fmt_value(g)),
            Want::AtLeast(g) => format!("≥ {}", self.fmt_value(g)),
        }
    }
}

/// The N of kexboot's "starting kernel ...: N ms after kexboot entry" line.
pub(crate) fn own_ms(line: &str) -> Option<u64> {
    let (head, _) = line.split_once(" ms after kexboot entry")?;
    head.rsplit(' ').next()?.parse().ok()
}

/// kexboot's stage lines in boot order: a name for the report, and what the line holds.
pub(crate) const STAGES: [(&str, &str); 9] = [
    ("MMU and caches on", "] MMU and caches on at"),
    ("boot volume found", "] virtio 0:1: "),
    ("environment loaded", "] environment: "),
    ("entry chosen", "] booting entry "),
    ("kernel read", "] loaded kernel "),
    ("initrd read", "] loaded initrd "),
    ("placed", "] placement: "),
    ("relocated", "] relocated "),
    ("kernel entry", "] starting kernel at "),
];

/// kexboot's own timestamp (its timer, from its entry) of each of [`STAGES`] among `lines`, as
/// milliseconds; `None` for a stage with no line.
pub(crate) fn stage_ms<'a>(lines: impl Iterator<Item = &'a str> + Clone) -> Vec<Option<f64>> {
    STAGES
        .iter()
        .map(|(_, key)| {
            let line = lines.clone().find(|l| l.contains(key))?;
            let (stamp, _) = line.split_once(']')?;
            let secs: f64 = stamp.rsplit('[').next()?.trim().parse().ok()?;
            Some(secs * 1000.0)
        })
        .collect()
}

/// Per-stage medians of several boots' [`stage_ms`].
pub(crate) fn stage_medians(boots: &[Vec<Option<f64>>]) -> Vec<Option<f64>> {
    (0..STAGES.len())
        .map(|i| {
            let mut v: Vec<f64> = boots
                .iter()
                .filter_map(|b| b.get(i).copied().flatten())
                .collect();
            v.sort_by(f64::total_cmp);
            match v.len() {
                0 => None,
                n if n % 2 == 1 => Some(v[n / 2]),
                n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
            }
        })
        .collect()
}

/// Ratio of two durations as a number.
pub(crate) fn ratio_f(a: Option<Duration>, b: Option<Duration>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => Some(a.as_secs_f64() / b.as_secs_f64()),
        _ => None,
    }
}

/// The goals table that opens `target/bench.md`: every goal, its value in this run, met or not.
pub(crate) fn goals_table(goals: &[Goal], date: &str) -> String {
    format!(
        "## Goals\n\nEvery figure of the performance issue, measured in this run ({date}); ratios \
         are medians of the sections below against their anchor in the same run, and the \
         figures they come from show the spread (min–max).\n\n{}",
        goals_rows(goals)
    )
}

/// The goals of a partial run (`--net-only`, `--decompress`), closing its section.
pub(crate) fn goals_list(goals: &[Goal], date: &str) -> String {
    format!(
        "\n### Goals measured here ({date})\n\n{}",
        goals_rows(goals)
    )
}

fn goals_rows(goals: &[Goal]) -> String {
    let mut md = String::from(
        "| part | measured | this run | goal | met | from |\n|---|---|---:|---:|:---:|---|\n",
    );
    for g in goals {
        let v = g.value.map_or("n/a".into(), |v| g.fmt_value(v));
        let met = match g.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        md += &format!(
            "| {} | {} | {v} | {} | {met} | {} |\n",
            g.part,
            g.what,
            g.goal_text(),
            g.from
        );
    }
    md += "\n";
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_met_or_not() {
        let g = |v, w| Goal::ratio("p", "w", v, w);
        assert_eq!(g(Some(0.3), Want::AtMost(0.35)).met(), Some(true));
        assert_eq!(g(Some(0.56), Want::AtMost(0.35)).met(), Some(false));
        assert_eq!(g(Some(1.6), Want::AtLeast(1.5)).met(), Some(true));
        assert_eq!(g(Some(0.7), Want::AtLeast(1.5)).met(), Some(false));
        assert_eq!(g(None, Want::AtLeast(1.5)).met(), None);
        let t = goals_table(
            &[
                g(Some(0.56), Want::AtMost(0.35)).from("a vs b"),
                Goal {
                    unit: "KiB",
                    ..g(Some(713.0), Want::AtMost(400.0))
                },
                g(None, Want::AtLeast(1.0)),
            ],
            "today",
        );
        assert!(
            t.contains("| p | w | 0.56x | ≤ 0.35x | **no** | a vs b |"),
            "{t}"
        );
        assert!(t.contains("| 713.0 KiB | ≤ 400.0 KiB | **no** |"), "{t}");
        assert!(t.contains("| n/a | ≥ 1.00x | not measured |"), "{t}");
        let d = |s| Some(Duration::from_secs_f64(s));
        assert_eq!(ratio_f(d(1.0), d(4.0)), Some(0.25));
        assert_eq!(ratio_f(d(1.0), d(0.0)), None);
        assert_eq!(
            own_ms("[   0.117820] starting kernel at 0x40800000, dtb 0x63f7b000: 117 ms after kexboot entry, 120 ms after machine reset"),
            Some(117)
        );
        assert_eq!(own_ms("starting kernel"), None);
        let lines = [
            "[   0.014369] MMU and caches on at EL1; heap 447 MiB at 0x64080000",
            "[   0.105670] loaded kernel /boot/Image: 27303872 bytes in 53 ms (506 MB/s)",
            "[   0.117820] starting kernel at 0x40800000, dtb 0x63f7b000: 117 ms after kexboot entry",
        ];
        let st = stage_ms(lines.iter().copied());
        assert_eq!(st.len(), STAGES.len());
        assert_eq!(st[0].map(|v| v.round()), Some(14.0));
        assert_eq!(st[4].map(|v| v.round()), Some(106.0));
        assert_eq!(st[8].map(|v| v.round()), Some(118.0));
        assert_eq!(st[2], None);
        let m = stage_medians(&[
            st.clone(),
            st.iter().map(|v| v.map(|x| x + 2.0)).collect(),
            st,
        ]);
        assert_eq!(m[4].map(|v| v.round()), Some(106.0));
        assert_eq!(m[2], None);
    }

    #[test]
    fn median_and_ratio() {
        let s = |v: f64| Some(Duration::from_secs_f64(v));
        assert_eq!(median([s(3.0), None, s(1.0), s(2.0)].into_iter()), s(2.0));
        assert_eq!(median([s(1.0), s(2.0)].into_iter()), s(1.5));
        assert_eq!(median([None, None].into_iter()), None);
        assert_eq!(ratio(s(1.0), s(4.0)), "0.25x");
        assert_eq!(ratio(None, s(4.0)), "n/a");
        assert_eq!(secs(None), "–");
        assert_eq!(
            cell(s(2.0), [s(1.0), s(2.0), s(3.0)].into_iter()),
            "2.000 (1.000–3.000)"
        );
        assert_eq!(cell(None, [None].into_iter()), "–");
    }
}
