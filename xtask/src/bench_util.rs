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

#[cfg(test)]
mod tests {
    use super::*;

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
