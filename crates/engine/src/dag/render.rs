//! Text, Graphviz and Mermaid views of a [`Dag`]. Nodes appear in insertion
//! (topological) order and per-wave steps are grouped by wave.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use super::{Dag, NodeSpec, StepId, StepKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    /// An indented list, one step a line with what it waits for.
    Text,
    /// Graphviz `dot`, one cluster per wave.
    Dot,
    /// A Mermaid `flowchart TD`, one subgraph per wave.
    Mermaid,
}

pub(super) fn render(dag: &Dag, format: GraphFormat) -> String {
    match format {
        GraphFormat::Text => text(dag),
        GraphFormat::Dot => dot(dag),
        GraphFormat::Mermaid => mermaid(dag),
    }
}

/// The title of a wave's group; says so when the wave stands for all of them.
fn wave_title(dag: &Dag, wave: u32) -> String {
    if dag.repeating == Some(wave) {
        format!(
            "wave {wave} (repeats as wave {}, {}, ... until every pod runs the update revision)",
            wave + 1,
            wave + 2
        )
    } else {
        format!("wave {wave}")
    }
}

/// Consecutive runs of nodes sharing a wave (`None` = run-level), in insertion order.
fn groups(dag: &Dag) -> Vec<(Option<u32>, Vec<&NodeSpec>)> {
    let mut out: Vec<(Option<u32>, Vec<&NodeSpec>)> = Vec::new();
    for spec in dag.nodes() {
        match out.last_mut() {
            Some((wave, members)) if *wave == spec.id.wave => members.push(spec),
            _ => out.push((spec.id.wave, vec![spec])),
        }
    }
    out
}

fn text(dag: &Dag) -> String {
    let mut out = String::new();
    for (wave, members) in groups(dag) {
        let indent = match wave {
            Some(w) => {
                let _ = writeln!(out, "{}:", wave_title(dag, w));
                "  "
            }
            None => "",
        };
        for spec in members {
            let _ = write!(out, "{indent}{}", spec.id);
            if !spec.deps.is_empty() {
                let deps: Vec<String> = spec.deps.iter().map(ToString::to_string).collect();
                let _ = write!(out, "  (after {})", deps.join(", "));
            }
            out.push('\n');
        }
    }
    out
}

/// A Graphviz double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Hooks and gates look different from the engine's own steps.
fn dot_shape(kind: &StepKind) -> &'static str {
    match kind {
        StepKind::Hook { .. } => "ellipse",
        StepKind::Approval => "octagon",
        StepKind::Settle => "hexagon",
        StepKind::Window => "hexagon",
        _ => "box",
    }
}

fn dot(dag: &Dag) -> String {
    let mut out =
        String::from("digraph baton {\n  rankdir=TB;\n  node [shape=box, style=rounded];\n");
    for (wave, members) in groups(dag) {
        let indent = match wave {
            Some(w) => {
                let _ = writeln!(out, "  subgraph {} {{", quote(&format!("cluster_wave_{w}")));
                let _ = writeln!(out, "    label={};", quote(&wave_title(dag, w)));
                "    "
            }
            None => "  ",
        };
        for spec in &members {
            let _ = writeln!(
                out,
                "{indent}{} [label={}, shape={}];",
                quote(&spec.id.to_string()),
                quote(&spec.id.kind.to_string()),
                dot_shape(&spec.id.kind)
            );
        }
        if wave.is_some() {
            out.push_str("  }\n");
        }
    }
    for spec in dag.nodes() {
        for dep in &spec.deps {
            let _ = writeln!(
                out,
                "  {} -> {};",
                quote(&dep.to_string()),
                quote(&spec.id.to_string())
            );
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid ids: letters, digits and `_` only, made unique with a numeric suffix.
fn mermaid_ids(dag: &Dag) -> BTreeMap<StepId, String> {
    let mut taken = HashSet::new();
    let mut ids = BTreeMap::new();
    for spec in dag.nodes() {
        let base: String = spec
            .id
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let mut id = base.clone();
        let mut n = 2;
        while !taken.insert(id.clone()) {
            id = format!("{base}_{n}");
            n += 1;
        }
        ids.insert(spec.id.clone(), id);
    }
    ids
}

/// A Mermaid quoted label: `"` has to be an entity.
fn mermaid_label(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "#quot;"))
}

fn mermaid(dag: &Dag) -> String {
    let ids = mermaid_ids(dag);
    let id = |step: &StepId| ids.get(step).cloned().unwrap_or_default();
    let mut out = String::from("flowchart TD\n");
    for (wave, members) in groups(dag) {
        let indent = match wave {
            Some(w) => {
                let _ = writeln!(
                    out,
                    "  subgraph wave_{w} [{}]",
                    mermaid_label(&wave_title(dag, w))
                );
                "    "
            }
            None => "  ",
        };
        for spec in &members {
            let label = mermaid_label(&spec.id.kind.to_string());
            let node = match spec.id.kind {
                StepKind::Hook { .. } => format!("([{label}])"),
                StepKind::Approval => format!("{{{{{label}}}}}"),
                _ => format!("[{label}]"),
            };
            let _ = writeln!(out, "{indent}{}{node}", id(&spec.id));
        }
        if wave.is_some() {
            out.push_str("  end\n");
        }
    }
    for spec in dag.nodes() {
        for dep in &spec.deps {
            let _ = writeln!(out, "  {} --> {}", id(dep), id(&spec.id));
        }
    }
    out
}
