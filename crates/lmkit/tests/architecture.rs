//! The layering rule, checked: data flows one way through the crate's top-level modules, and a
//! module only uses the layers below it ([`LAYERS`], the README's architecture map). Reads every `crate::<module>` path (and `super::` chains that climb to the crate
//! root) outside comments; `use` lines and inline paths count alike.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The top-level modules, bottom layer first.
const LAYERS: &[&str] = &[
    "util",
    "plot",
    "formats",
    "hub",
    "tokenize",
    "data",
    "nn",
    "models",
    "embed",
    "generation",
    "metrics",
    "train",
    "pipelines",
    "finetune",
];

/// The top-level modules lib.rs declares.
fn declared_modules(lib_rs: &str) -> BTreeSet<String> {
    code_lines(lib_rs)
        .filter_map(|l| {
            let l = l.trim();
            let rest = l
                .strip_prefix("pub mod ")
                .or_else(|| l.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_string)
        })
        .collect()
}

/// Lines with `//` comments (doc comments included) cut off. String literals that hold `//`
/// are rare enough in this crate that cutting them too loses no import.
fn code_lines(src: &str) -> impl Iterator<Item = &str> {
    src.lines().map(|l| l.split("//").next().unwrap_or(""))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file below src/: `nn/kernels/ops.rs` -> [nn, kernels, ops],
/// `nn/mod.rs` -> [nn], `lib.rs` -> [].
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The top-level modules a file's code names, by `crate::x` or by a `super::` chain that climbs
/// to the crate root and goes on into `x`.
fn referenced_tops(src: &str, module: &[String], tops: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code_lines(src) {
        for (i, _) in line.match_indices("crate::") {
            let before = line[..i].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // e.g. `lmkit_crate::`
            }
            let name: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if tops.contains(&name) {
                found.insert(name);
            }
        }
        // `super::` chains: a file's own module counts as one level.
        for (i, _) in line.match_indices("super::") {
            if line[..i].ends_with("super::") {
                continue; // counted from the chain's first `super`
            }
            let mut rest = &line[i..];
            let mut ups = 0;
            while let Some(r) = rest.strip_prefix("super::") {
                ups += 1;
                rest = r;
            }
            if ups == module.len() {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if tops.contains(&name) {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// Edges `from -> to` between distinct top-level modules, with a file that makes each.
fn import_graph() -> (Vec<String>, BTreeMap<(String, String), String>) {
    let declared =
        declared_modules(&std::fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap());
    let order: Vec<String> = LAYERS.iter().map(|s| s.to_string()).collect();
    let tops: BTreeSet<String> = order.iter().cloned().collect();
    assert_eq!(
        declared, tops,
        "lib.rs declares other top-level modules than LAYERS lists: place each new module in LAYERS"
    );
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    let mut edges = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(SRC).unwrap().to_path_buf();
        let module = module_path(&rel);
        let Some(from) = module.first() else {
            continue; // lib.rs: the prelude re-exports from every layer
        };
        let src = std::fs::read_to_string(&f).unwrap();
        for to in referenced_tops(&src, &module, &tops) {
            if &to != from {
                edges
                    .entry((from.clone(), to))
                    .or_insert_with(|| rel.display().to_string());
            }
        }
    }
    (order, edges)
}

/// One cycle through the graph, if there is any (depth-first search, three colours).
fn find_cycle(edges: &BTreeSet<(String, String)>) -> Option<Vec<String>> {
    let mut adj: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in edges {
        adj.entry(a).or_default().push(b);
        adj.entry(b).or_default();
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        New,
        Open,
        Done,
    }
    fn visit<'a>(
        n: &'a str,
        adj: &BTreeMap<&'a str, Vec<&'a str>>,
        colour: &mut BTreeMap<&'a str, Colour>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        colour.insert(n, Colour::Open);
        stack.push(n);
        for &m in &adj[n] {
            match colour[m] {
                Colour::Open => {
                    let start = stack.iter().position(|&s| s == m).unwrap();
                    let mut c: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                    c.push(m.to_string());
                    return Some(c);
                }
                Colour::New => {
                    if let Some(c) = visit(m, adj, colour, stack) {
                        return Some(c);
                    }
                }
                Colour::Done => {}
            }
        }
        stack.pop();
        colour.insert(n, Colour::Done);
        None
    }
    let mut colour: BTreeMap<&str, Colour> = adj.keys().map(|&k| (k, Colour::New)).collect();
    let nodes: Vec<&str> = adj.keys().copied().collect();
    for n in nodes {
        if colour[n] == Colour::New {
            if let Some(c) = visit(n, &adj, &mut colour, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let (_, edges) = import_graph();
    let set: BTreeSet<(String, String)> = edges.keys().cloned().collect();
    if let Some(c) = find_cycle(&set) {
        let hops: Vec<String> = c
            .windows(2)
            .map(|w| {
                let key = (w[0].clone(), w[1].clone());
                format!("{} -> {} ({})", w[0], w[1], edges[&key])
            })
            .collect();
        panic!("import cycle: {}", hops.join(", "));
    }
}

#[test]
fn every_import_points_down_the_layers() {
    let (order, edges) = import_graph();
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let upward: Vec<String> = edges
        .iter()
        .filter(|((a, b), _)| rank[a.as_str()] < rank[b.as_str()])
        .map(|((a, b), f)| format!("{a} uses {b} ({f}), a layer above it"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports that point up the layers:\n{}",
        upward.join("\n")
    );
    // The graph is not empty: the reader found the imports it is meant to police.
    assert!(edges.len() > 20, "only {} edges found", edges.len());
}

#[test]
fn the_checks_catch_a_cycle_and_read_every_kind_of_path() {
    let e = |a: &str, b: &str| (a.to_string(), b.to_string());
    let acyclic: BTreeSet<_> = [e("models", "nn"), e("nn", "util"), e("models", "util")].into();
    assert_eq!(find_cycle(&acyclic), None);
    let mut cyclic = acyclic.clone();
    cyclic.insert(e("util", "models"));
    let c = find_cycle(&cyclic).expect("the cycle models -> nn -> util -> models");
    assert_eq!(c.first(), c.last());

    let tops: BTreeSet<String> = ["nn", "hub", "util", "train"].map(String::from).into();
    let module = ["nn".to_string(), "kernels".to_string(), "ops".to_string()];
    let src = "use crate::hub::resolve;\n\
               let x = crate::util::f(); // crate::train in a comment\n\
               use super::super::super::train::fit;\n\
               use super::super::layers::Linear;\n";
    let found = referenced_tops(src, &module, &tops);
    assert_eq!(found, ["hub", "train", "util"].map(String::from).into());
}
