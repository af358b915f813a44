//! Exec arguments with their dynamic parts collapsed into `*`, so that a profile stays small
//! and stable: `/tmp/tmp.Xk3j9QpZ/run.sh` and `/tmp/tmp.8sKd02Lm/run.sh` are one entry, and so
//! are `kill 41233` and `kill 41302`. Conservative on purpose: ports, flags, hostnames, small
//! numbers and words stay as they are.

use super::model::caps;

/// Interpreters whose `-c` / `-e` argument is program text: collapsed to `*` (an agent that
/// runs generated code would otherwise add an entry per script).
const INTERPRETERS: &[&str] = &[
    "sh", "bash", "dash", "ash", "zsh", "ksh", "busybox", "python", "python2", "python3", "node",
    "nodejs", "perl", "ruby", "php", "lua", "deno", "bun",
];

/// Normalises a whole argument vector (argv[0] included), bounded by `caps`.
pub fn normalize_args(args: &[String]) -> Vec<String> {
    let interpreter = args.first().is_some_and(|a0| is_interpreter(a0));
    let mut out = Vec::with_capacity(args.len().min(caps::ARGS_PER_EXEC));
    let mut code_next = false;
    for (i, arg) in args.iter().enumerate() {
        if out.len() == caps::ARGS_PER_EXEC {
            out.push("...".to_string());
            break;
        }
        if code_next {
            out.push("*".to_string());
            code_next = false;
            continue;
        }
        if interpreter && i > 0 && matches!(arg.as_str(), "-c" | "-e" | "--eval" | "-lc") {
            code_next = true;
        }
        out.push(normalize_arg(arg));
    }
    out
}

/// Whether argv[0] (or its basename) is a known interpreter, versioned names included
/// (`python3.11`).
fn is_interpreter(argv0: &str) -> bool {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS.contains(&base) || INTERPRETERS.contains(&stem)
}

/// Normalises one argument: dynamic runs inside it become `*`, and it is cut to a bounded
/// length.
pub fn normalize_arg(arg: &str) -> String {
    let arg = replace_uuids(arg);
    let mut out = String::with_capacity(arg.len());
    let mut token = String::new();
    for c in arg.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            token.push(c);
        } else {
            flush(&mut token, &mut out, c == '-');
            out.push(c);
        }
    }
    flush(&mut token, &mut out, false);
    let out = collapse_stars(&out);
    if out.len() > caps::ARG_LEN {
        let mut cut = caps::ARG_LEN;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}*", &out[..cut])
    } else {
        out
    }
}

fn flush(token: &mut String, out: &mut String, _before_dash: bool) {
    if token.is_empty() {
        return;
    }
    if is_dynamic(token) {
        out.push('*');
    } else {
        out.push_str(token);
    }
    token.clear();
}

/// A token (run of `[A-Za-z0-9_]`) that is generated rather than written by a person.
fn is_dynamic(token: &str) -> bool {
    let digits = token.chars().filter(char::is_ascii_digit).count();
    let letters = token.chars().filter(char::is_ascii_alphabetic).count();
    let len = token.len();
    // pids, timestamps, counters: five digits or more (ports and small numbers stay).
    if digits == len && len >= 5 {
        return true;
    }
    // Hex ids and hashes (container ids, digests, git shas).
    if len >= 12 && token.chars().all(|c| c.is_ascii_hexdigit()) && digits >= 2 {
        return true;
    }
    // Random names: mixed letters and digits, long enough to be generated (mktemp, k8s suffixes).
    len >= 8 && digits >= 2 && letters >= 2
}

/// UUIDs (8-4-4-4-12 hex) become `*` whole: their groups are too short to look generated one
/// by one.
fn replace_uuids(arg: &str) -> String {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    const LEN: usize = 36;
    let bytes = arg.as_bytes();
    let is_uuid_at = |i: usize| {
        if i + LEN > bytes.len() {
            return false;
        }
        let mut at = i;
        for (g, n) in SHAPE.iter().enumerate() {
            if !bytes[at..at + n].iter().all(u8::is_ascii_hexdigit) {
                return false;
            }
            at += n;
            if g < 4 {
                if bytes[at] != b'-' {
                    return false;
                }
                at += 1;
            }
        }
        // Not part of a longer hex run.
        (i == 0 || !bytes[i - 1].is_ascii_hexdigit())
            && bytes.get(at).is_none_or(|b| !b.is_ascii_hexdigit())
    };
    let mut out = String::with_capacity(arg.len());
    let mut i = 0;
    while i < bytes.len() {
        if is_uuid_at(i) {
            out.push('*');
            i += LEN;
        } else {
            let c = arg[i..].chars().next().unwrap_or('\0');
            out.push(c);
            i += c.len_utf8().max(1);
        }
    }
    out
}

/// `a**b` -> `a*b`: adjacent wildcards say nothing more.
fn collapse_stars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '*' && out.ends_with('*') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Whether a normalised pattern (with `*` wildcards) covers a concrete, normalised argument
/// vector. Used to match new execs against the baseline.
pub fn args_match(pattern: &[String], args: &[String]) -> bool {
    pattern.len() == args.len() && pattern.iter().zip(args).all(|(p, a)| glob(p, a))
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dynamic_parts_become_wildcards() {
        let cases = [
            ("/tmp/tmp.Xk3j9QpZ/run.sh", "/tmp/tmp.*/run.sh"),
            ("/tmp/tmp.8sKd02Lm/run.sh", "/tmp/tmp.*/run.sh"),
            ("41233", "*"),
            ("--pid=1234567", "--pid=*"),
            ("/proc/48213/status", "/proc/*/status"),
            (
                "sha256:3f1c9e7a0b2d4c6e8f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6",
                "sha256:*",
            ),
            (
                "/var/lib/containerd/9f8e7d6c5b4a39281706f5e4d3c2b1a0/rootfs",
                "/var/lib/containerd/*/rootfs",
            ),
            ("job-28734560-qwv7x", "job-*-qwv7x"),
            ("123e4567-e89b-12d3-a456-426614174000", "*"),
            (
                "/var/lib/kubelet/pods/123e4567-e89b-12d3-a456-426614174000/volumes",
                "/var/lib/kubelet/pods/*/volumes",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_arg(input), want, "{input}");
        }
    }

    #[test]
    fn written_values_stay() {
        for arg in [
            "--port=8080",
            "8080",
            "-v",
            "/usr/local/bin/python3.11",
            "api.openai.com",
            "10.0.0.1:443",
            "--workers=4",
            "x86_64-linux-gnu",
            "index.html",
            "app.kubernetes.io/name",
            "2024",
        ] {
            assert_eq!(normalize_arg(arg), arg);
        }
    }

    #[test]
    fn interpreter_code_is_collapsed_but_scripts_are_kept() {
        assert_eq!(
            normalize_args(&v(&["python3", "-c", "import os; print(os.getpid())"])),
            v(&["python3", "-c", "*"])
        );
        assert_eq!(
            normalize_args(&v(&["/bin/sh", "-c", "echo 1"])),
            v(&["/bin/sh", "-c", "*"])
        );
        assert_eq!(
            normalize_args(&v(&["node", "-e", "1+1"])),
            v(&["node", "-e", "*"])
        );
        assert_eq!(
            normalize_args(&v(&["python3.11", "app.py"])),
            v(&["python3.11", "app.py"])
        );
        // -c of a non-interpreter is an ordinary flag.
        assert_eq!(
            normalize_args(&v(&["ping", "-c", "3", "host"])),
            v(&["ping", "-c", "3", "host"])
        );
    }

    #[test]
    fn bounded_in_count_and_length() {
        let many: Vec<String> = (0..100).map(|i| format!("a{i}")).collect();
        let out = normalize_args(&many);
        assert_eq!(out.len(), caps::ARGS_PER_EXEC + 1);
        assert_eq!(out.last().unwrap(), "...");
        let long = "x".repeat(10_000);
        assert!(normalize_arg(&long).len() <= caps::ARG_LEN + 1);
        let unicode = "é".repeat(500);
        assert!(normalize_arg(&unicode).ends_with('*'));
    }

    #[test]
    fn globs_match_what_they_stand_for() {
        assert!(glob("/tmp/tmp.*/run.sh", "/tmp/tmp.Xk3j9QpZ/run.sh"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "a123b456c"));
        assert!(!glob("a*b", "a123c"));
        assert!(!glob("abc", "abd"));
        assert!(glob("--pid=*", "--pid=42"));
        assert!(args_match(&v(&["kill", "*"]), &v(&["kill", "41233"])));
        assert!(!args_match(
            &v(&["kill", "*"]),
            &v(&["kill", "-9", "41233"])
        ));
    }
}
