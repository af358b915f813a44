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
}
