//! The shape of the code, checked: no import cycles between the library's modules, and no
//! file in `src/` over 700 lines unless its opening comment says why.
//!
//! Module dependencies are read from the source text: every `crate::a::b` and `super::b`
//! path outside comments and `#[cfg(test)]` modules is an edge from the file's module to the
//! longest module prefix of the path that is a file in `src/`. A parent's `pub use child::..`
//! re-export is not an edge (it only names the child's items). Two graphs must be acyclic:
//! the one between files, and the one between the top-level modules (gpu, ops, reference,
//! formulas, model, ...), so that the layering gpu -> ops -> model -> train/metrics/eval
//! holds as a whole. To list the edges, run
//! `cargo test --release --test code_shape -- --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LONG_FILE: usize = 700;
const LONG_FILE_REASON: &str = "Why this file is long:";

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file (the binaries in src/bin are leaves and are left out).
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "bin") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `model/decoder/mod.rs` -> `model::decoder`, `lib.rs` -> `` (the crate root).
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The source without comments and without `#[cfg(test)] mod ... { }` blocks.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the item that follows, by brace depth.
            let mut depth = 0i32;
            let mut opened = false;
            for l in lines.by_ref() {
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                opened |= l.contains('{');
                if opened && depth <= 0 || !opened && l.trim_end().ends_with(';') {
                    break;
                }
            }
            continue;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The paths a file names: `crate::x::y` and `super::y`, with `{a, b::c}` groups expanded.
fn paths_in(code: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for root in ["crate::", "super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(root) {
            let before = rest[..i].chars().last();
            rest = &rest[i + root.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let path = rest[..end].trim_end_matches(':').to_string();
            let mut items = vec![path.clone()];
            if rest[end..].starts_with('{') && path.len() < end {
                if let Some(close) = rest[end..].find('}') {
                    for item in rest[end + 1..end + close].split(',') {
                        let item = item.split(" as ").next().unwrap().trim();
                        let item = item.split("::{").next().unwrap();
                        if !item.is_empty() && item != "self" {
                            items.push(format!("{path}::{item}"));
                        }
                    }
                }
            }
            for item in items {
                found.push((root.trim_end_matches("::").to_string(), item));
            }
        }
    }
    found
}

/// Children a parent module re-exports from (`pub use child::...`): not dependencies.
fn reexported_children(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|l| l.trim().strip_prefix("pub use "))
        .filter_map(|l| l.split("::").next())
        .filter(|c| !["crate", "super", "self"].contains(c))
        .map(str::to_string)
        .collect()
}

struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn of_library() -> Graph {
        let mut files = Vec::new();
        rust_files(&src(), &mut files);
        let modules: BTreeMap<String, PathBuf> =
            files.into_iter().map(|p| (module_of(&p), p)).collect();
        let resolve = |path: &str| -> Option<String> {
            let parts: Vec<&str> = path.split("::").collect();
            (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|m| modules.contains_key(m))
        };
        let mut edges = BTreeMap::new();
        for (module, path) in &modules {
            let code = code_of(&std::fs::read_to_string(path).unwrap());
            let children = reexported_children(&code);
            let mut to = BTreeSet::new();
            for (root, rel) in paths_in(&code) {
                let full = if root == "crate" {
                    rel
                } else {
                    // `super` is the module's parent (for `a/b.rs` and `a/b/mod.rs` alike).
                    let mut parent: Vec<&str> = module.split("::").collect();
                    parent.pop();
                    if parent.is_empty() {
                        rel
                    } else {
                        format!("{}::{rel}", parent.join("::"))
                    }
                };
                if let Some(target) = resolve(&full) {
                    let child = target
                        .strip_prefix(&format!("{module}::"))
                        .map(|c| c.split("::").next().unwrap().to_string());
                    if target != *module && !child.is_some_and(|c| children.contains(&c)) {
                        to.insert(target);
                    }
                }
            }
            edges.insert(module.clone(), to);
        }
        Graph { edges }
    }

    /// The same graph between top-level modules (the crate root and `error` left out).
    fn top_level(&self) -> Graph {
        let top = |m: &str| m.split("::").next().unwrap().to_string();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in &self.edges {
            if from.is_empty() {
                continue;
            }
            let entry = edges.entry(top(from)).or_default();
            for t in to {
                if top(t) != top(from) && !t.is_empty() {
                    entry.insert(top(t));
                }
            }
        }
        Graph { edges }
    }

    /// Every cycle's members (strongly connected components of more than one module, or a
    /// module depending on itself), found by Tarjan's algorithm.
    fn cycles(&self) -> Vec<Vec<String>> {
        struct State<'g> {
            g: &'g Graph,
            index: BTreeMap<&'g str, usize>,
            low: BTreeMap<&'g str, usize>,
            stack: Vec<&'g str>,
            on_stack: BTreeSet<&'g str>,
            out: Vec<Vec<String>>,
        }
        fn visit<'g>(s: &mut State<'g>, v: &'g str) {
            let i = s.index.len();
            s.index.insert(v, i);
            s.low.insert(v, i);
            s.stack.push(v);
            s.on_stack.insert(v);
            let g = s.g;
            for w in g.edges.get(v).into_iter().flatten() {
                if !s.index.contains_key(w.as_str()) {
                    visit(s, w);
                    let lw = s.low[w.as_str()];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w.as_str()) {
                    let iw = s.index[w.as_str()];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if s.low[v] == s.index[v] {
                let mut component = Vec::new();
                while let Some(w) = s.stack.pop() {
                    s.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                let self_loop = g.edges.get(v).is_some_and(|e| e.contains(v));
                if component.len() > 1 || self_loop {
                    component.sort();
                    s.out.push(component);
                }
            }
        }
        let mut s = State {
            g: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            out: Vec::new(),
        };
        for v in self.edges.keys() {
            if !s.index.contains_key(v.as_str()) {
                visit(&mut s, v);
            }
        }
        s.out
    }

    fn describe(&self, cycles: &[Vec<String>]) -> String {
        let mut text = String::new();
        for c in cycles {
            text.push_str("cycle:\n");
            for m in c {
                let inside: Vec<&String> = self.edges[m].iter().filter(|t| c.contains(t)).collect();
                text.push_str(&format!("  {m} -> {inside:?}\n"));
            }
        }
        text
    }
}

#[test]
fn the_checker_finds_cycles() {
    // The checker itself, on made-up graphs: a cycle is found, a chain is not.
    let graph = |edges: &[(&str, &str)]| {
        let mut g = Graph {
            edges: BTreeMap::new(),
        };
        for (a, b) in edges {
            g.edges
                .entry(a.to_string())
                .or_default()
                .insert(b.to_string());
            g.edges.entry(b.to_string()).or_default();
        }
        g
    };
    let cyclic = graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]);
    assert_eq!(cyclic.cycles(), vec![vec!["a", "b", "c"]]);
    assert!(graph(&[("a", "b"), ("b", "c"), ("a", "c")])
        .cycles()
        .is_empty());
    // Paths are read from real source text, groups and `super` included.
    let code = code_of(
        "use super::config::{ModelConfig, ParamSpec};\n// crate::ignored\nuse crate::ops::{self, rope};\n#[cfg(test)]\nmod tests {\n    use crate::train;\n}\n",
    );
    let paths = paths_in(&code);
    assert!(paths.contains(&("super".into(), "config::ParamSpec".into())));
    assert!(paths.contains(&("crate".into(), "ops::rope".into())));
    assert!(!paths
        .iter()
        .any(|(_, p)| p.contains("ignored") || p.contains("train")));
}

#[test]
fn no_import_cycles_between_files_or_top_level_modules() {
    let files = Graph::of_library();
    assert!(
        files.edges.len() > 40 && files.edges.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the dependency reader found too few modules or edges: {:?}",
        files.edges.keys()
    );
    for (from, to) in &files.edges {
        println!(
            "{from:>28} -> {}",
            to.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let cycles = files.cycles();
    assert!(
        cycles.is_empty(),
        "import cycles between files:\n{}",
        files.describe(&cycles)
    );
    let top = files.top_level();
    let cycles = top.cycles();
    assert!(
        cycles.is_empty(),
        "import cycles between top-level modules:\n{}",
        top.describe(&cycles)
    );
}

#[test]
fn long_files_say_why() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    rust_files(&src().join("bin"), &mut files);
    let mut unexplained = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text.lines().count();
        let opening: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        if lines > LONG_FILE && !opening.contains(LONG_FILE_REASON) {
            unexplained.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(
        unexplained.is_empty(),
        "files over {LONG_FILE} lines whose opening //! comment has no '{LONG_FILE_REASON}' \
         line: split them along their seams, or say why they hold together:\n{}",
        unexplained.join("\n")
    );
}
