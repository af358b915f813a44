//! Short readable strings for anomalies, tool calls and CLI lines.

/// At most `max` bytes (on a char boundary), with `...` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

/// 64-bit FNV-1a: a stable hash (the same on every node and release) for cut names.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An ASCII object name as it is when it fits in `max` bytes, otherwise cut and ended with a
/// hash of the whole name (so different long names stay different).
pub fn fit_with_hash(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    with_hash(name, max)
}

/// `name` cut to leave room for `-<hash of name>` within `max` bytes, ending alphanumeric.
pub fn with_hash(name: &str, max: usize) -> String {
    let hash = format!("{:016x}", fnv1a(name.as_bytes()));
    let mut cut = max.saturating_sub(hash.len() + 1).min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let kept = name[..cut].trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    if kept.is_empty() {
        hash
    } else {
        format!("{kept}-{hash}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_char_boundary() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdef", 3), "abc...");
        // `é` is two bytes: a cut at byte 2 would split it.
        assert_eq!(truncate("aé-long", 2), "a...");
    }

    #[test]
    fn long_names_keep_a_hash_of_the_whole() {
        assert_eq!(fit_with_hash("short", 10), "short");
        let a = fit_with_hash(&"a".repeat(40), 30);
        let b = fit_with_hash(&format!("{}b", "a".repeat(39)), 30);
        assert!(a.len() <= 30 && b.len() <= 30);
        assert_ne!(a, b);
        assert_eq!(
            with_hash("x.-", 17).len(),
            16,
            "no room left: the hash alone"
        );
        assert!(with_hash("x.-", 20).starts_with("x-"));
    }
}
