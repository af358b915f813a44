//! What every rule family words the same way: MITRE references, completeness caveats, short
//! summaries of lists, byte sizes.

use std::collections::BTreeMap;

use crate::detect::model::Mitre;
use crate::profile::model::ApplicationProfile;

pub(super) fn mitre(technique: &str, name: &str, tactic: &str) -> Option<Mitre> {
    Some(Mitre {
        technique: technique.into(),
        name: name.into(),
        tactic: tactic.into(),
    })
}

/// Notes that the baseline may be missing entries: partial profile, or the cap of the
/// category was hit.
pub(super) fn add_completeness(
    baseline: &mut BTreeMap<String, String>,
    profile: &ApplicationProfile,
    overflowed: bool,
    category: &str,
) {
    if !profile.partial_reasons.is_empty() {
        baseline.insert(
            "partial".into(),
            truncate(&profile.partial_reasons.join("; "), 160),
        );
    }
    if overflowed {
        baseline.insert(
            "overflow".into(),
            format!("the {category} cap was reached while learning: entries are missing"),
        );
    }
}

/// `none`, or `N: a, b, c, ...` with at most `max` examples.
pub(super) fn summary(total: usize, items: impl Iterator<Item = String>, max: usize) -> String {
    if total == 0 {
        return "none".into();
    }
    let shown: Vec<String> = items.take(max).collect();
    let more = if total > shown.len() { ", ..." } else { "" };
    format!("{total}: {}{more}", shown.join(", "))
}

pub(super) fn count_label(n: usize, what: &str) -> String {
    match n {
        0 => "none".into(),
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

pub(super) use crate::text::truncate;

pub(super) fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub(super) fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}
