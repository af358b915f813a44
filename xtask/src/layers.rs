//! `cargo xtask lint`'s house rules for `sensor/src`: each top-level module is a stage of the
//! data flow and imports only the stages before it, and no two files import each other through
//! any chain (an import circle). Imports are read from `crate::`/`super::`/`self::` paths in
//! the code before a file's first `#[cfg(test)]` (tests may reach anywhere).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// The stages in data-flow order (`sensor/src/lib.rs` documents the same list).
pub const STAGES: &[&str] = &[
    "capture",
    "attribution",
    "profile",
    "ai",
    "learn",
    "drafts",
    "cluster",
    "detect",
    "audit",
    "api",
    "metrics",
    "daemon",
    "cli",
    // `sensor-dev`'s helpers (benchmarks, fuzz seeds): above everything, in no production path.
    "devtools",
];
/// Helpers below every stage.
pub const SHARED: &[&str] = &["clock", "text"];

/// A module path of the crate, e.g. `["capture", "kernel", "btf"]` (`[]` is the crate root).
type Module = Vec<String>;

pub fn check(src: &Path) -> Result<()> {
    let files = modules(src)?;
    let edges = imports(&files)?;
    let mut problems = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if let Some(p) = layering(from, to) {
                problems.push(p);
            }
        }
    }
    for circle in circles(&edges) {
        let names: Vec<String> = circle.iter().map(display).collect();
        problems.push(format!("import circle: {}", names.join(" <-> ")));
    }
    if !problems.is_empty() {
        bail!(
            "{} house rule(s) broken in {}:\n  {}",
            problems.len(),
            src.display(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// Every `.rs` file of the crate by module path.
fn modules(src: &Path) -> Result<BTreeMap<Module, PathBuf>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                // `src/bin/*` are crates of their own (they import `sensor::`, not `crate::`).
                if path != src.join("bin") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.insert(module_of(src, &path), path);
            }
        }
    }
    Ok(out)
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// File -> the files it imports (a child naming its own parent is structure, left out).
fn imports(files: &BTreeMap<Module, PathBuf>) -> Result<BTreeMap<Module, BTreeSet<Module>>> {
    let mut edges = BTreeMap::new();
    for (module, path) in files {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let code = before_test_module(&text);
        let code: String = code
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut targets = BTreeSet::new();
        for raw in paths_in(&code) {
            let Some((anchor, rest)) = raw.split_first() else {
                continue;
            };
            let mut full: Module = match anchor.as_str() {
                "crate" => Vec::new(),
                "self" => module.clone(),
                // `super` of `a/b.rs` and of `a/b/mod.rs` is `a`.
                _ => module[..module.len().saturating_sub(1)].to_vec(),
            };
            let mut rest = rest.iter().peekable();
            while rest.peek().is_some_and(|s| s.as_str() == "super") {
                rest.next();
                full.pop();
            }
            full.extend(rest.cloned());
            if let Some(target) = longest_file(files, &full)
                && &target != module
                && !target.is_empty()
                && target.as_slice() != &module[..module.len().saturating_sub(1)]
            {
                targets.insert(target);
            }
        }
        edges.insert(module.clone(), targets);
    }
    Ok(edges)
}

/// The text before the first inline `#[cfg(test)] mod name {` (a `#[cfg(test)] mod name;`
/// declaration does not end the code).
fn before_test_module(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let at = from + at;
        let after = text[at + "#[cfg(test)]".len()..].trim_start();
        let inline = after.strip_prefix("mod ").is_some_and(|rest| {
            let line = rest.lines().next().unwrap_or("");
            line.trim_end().ends_with('{')
        });
        if inline {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

/// `crate::a::b::C`, `super::x`, and the items of `use crate::{a::b, c::{d, e}}` as segment
/// lists starting with their anchor.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let anchor = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|a| rest.starts_with(a));
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let Some(anchor) = anchor.filter(|_| boundary) else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let (consumed, mut found) = expand(&rest[anchor.len()..]);
        for p in &mut found {
            p.insert(0, anchor.trim_end_matches(':').to_string());
        }
        out.extend(found);
        i += anchor.len() + consumed.max(1);
    }
    out
}

/// The paths of one path expression after its anchor: `a::b::C` or `a::{b, c::d}` (nested).
/// Returns the bytes consumed.
fn expand(s: &str) -> (usize, Vec<Vec<String>>) {
    let mut segs = Vec::new();
    let mut i = 0;
    loop {
        let ident: String = s[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !ident.is_empty() {
            i += ident.len();
            segs.push(ident);
            if s[i..].starts_with("::") {
                i += 2;
                continue;
            }
            return (i, vec![segs]);
        }
        if s[i..].starts_with('{') {
            // A group: split its items at depth 0 and expand each.
            let mut depth = 0usize;
            let mut end = i;
            for (k, c) in s[i..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let inner = &s[i + 1..end];
            let mut out = Vec::new();
            let mut depth = 0usize;
            let mut start = 0;
            for (k, c) in inner.char_indices().chain([(inner.len(), ',')]) {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        let item = inner[start..k].trim();
                        start = k + 1;
                        if item.is_empty() {
                            continue;
                        }
                        for tail in expand(item).1 {
                            let mut p = segs.clone();
                            p.extend(tail);
                            out.push(p);
                        }
                    }
                    _ => {}
                }
            }
            return (end + 1, out);
        }
        return (i, if segs.is_empty() { vec![] } else { vec![segs] });
    }
}

/// The longest prefix of `path` that is a file of the crate.
fn longest_file(files: &BTreeMap<Module, PathBuf>, path: &[String]) -> Option<Module> {
    (0..=path.len())
        .rev()
        .map(|k| path[..k].to_vec())
        .find(|m| files.contains_key(m))
}

fn rank(module: &Module) -> Option<usize> {
    let top = module.first()?;
    if SHARED.contains(&top.as_str()) {
        return Some(0);
    }
    STAGES.iter().position(|s| s == top).map(|p| p + 1)
}

/// A broken rule when `from` imports `to`, if any.
fn layering(from: &Module, to: &Module) -> Option<String> {
    if from.is_empty() || to.is_empty() || from.first() == to.first() {
        return None;
    }
    match (rank(from), rank(to)) {
        (None, _) => Some(format!(
            "{} is in no stage (add its folder to xtask/src/layers.rs STAGES)",
            display(from)
        )),
        (_, None) => Some(format!(
            "{} is in no stage (add its folder to xtask/src/layers.rs STAGES)",
            display(to)
        )),
        (Some(a), Some(b)) if b > a => Some(format!(
            "{} imports {}: a stage imports only the stages before it",
            display(from),
            display(to)
        )),
        _ => None,
    }
}

fn display(m: &Module) -> String {
    if m.is_empty() {
        "lib.rs".into()
    } else {
        m.join("/")
    }
}

/// The strongly connected components with more than one file (Tarjan).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(next) = s.edges.get(v) {
            for w in next {
                let Some((w, _)) = s.edges.get_key_value(w) else {
                    continue;
                };
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.clone());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Module {
        s.split('/').map(str::to_string).collect()
    }

    #[test]
    fn grouped_and_nested_imports_are_all_read() {
        let code = "use crate::{capture::{kernel::btf::Btf, Collector}, profile::model::Flow};\n\
                    fn f() { crate::learn::store::x(); super::y::z(); }";
        let got: Vec<String> = paths_in(code).iter().map(|p| p.join("::")).collect();
        assert_eq!(
            got,
            [
                "crate::capture::kernel::btf::Btf",
                "crate::capture::Collector",
                "crate::profile::model::Flow",
                "crate::learn::store::x",
                "super::y::z",
            ]
        );
    }

    #[test]
    fn only_an_inline_test_module_ends_the_code() {
        let text = "#[cfg(test)]\nmod accept;\nuse crate::a::b;\n#[cfg(test)]\nmod tests {\n use crate::c;\n}";
        assert_eq!(
            before_test_module(text),
            "#[cfg(test)]\nmod accept;\nuse crate::a::b;\n"
        );
    }

    #[test]
    fn a_lower_stage_importing_a_higher_one_is_reported() {
        assert!(layering(&m("capture/loader"), &m("attribution/event")).is_some());
        assert!(layering(&m("attribution/event"), &m("capture/loader")).is_none());
        assert!(layering(&m("capture/loader"), &m("text")).is_none());
        assert!(layering(&m("capture/loader"), &m("newstage/x")).is_some());
    }

    #[test]
    fn circles_are_found_through_chains() {
        let mut edges = BTreeMap::new();
        edges.insert(m("a/x"), BTreeSet::from([m("a/y")]));
        edges.insert(m("a/y"), BTreeSet::from([m("b/z")]));
        edges.insert(m("b/z"), BTreeSet::from([m("a/x")]));
        edges.insert(m("c/w"), BTreeSet::from([m("a/x")]));
        assert_eq!(circles(&edges), vec![vec![m("a/x"), m("a/y"), m("b/z")]]);
    }

    #[test]
    fn the_sensor_crate_keeps_the_rules() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sensor/src");
        let files = modules(&src).unwrap();
        for top in files.keys().filter_map(|m| m.first()) {
            assert!(rank(&vec![top.clone()]).is_some(), "{top} is in no stage");
        }
        // The check itself runs in `cargo xtask lint`; here it must at least parse everything.
        assert!(imports(&files).unwrap().len() > 100);
    }
}
