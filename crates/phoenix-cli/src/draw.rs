//! Drawings of the dependency graph for `phoenix graph`: Graphviz DOT text,
//! a Mermaid `flowchart`, or an SVG picture laid out in-process by
//! `layout-rs` (no Graphviz needed). Each node is a resource, labelled with
//! its address and type and, with `--plan`, coloured by its planned action.
//! An arrow `a -> b` means `a` needs `b`; what is needed is drawn on the left.

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::style::{LineStyleKind, StyleAttr};
use layout::std_shapes::render::get_shape_size;
use layout::std_shapes::shapes::{Arrow, Element, LineEndKind, ShapeKind};
use layout::topo::layout::VisualGraph;
use std::collections::BTreeMap;

use phoenix_core::ResourceAddr;
use phoenix_core::definition::Definition;
use phoenix_core::graph::Dag;
use phoenix_core::plan::{Action, Plan};

/// One resource in a drawing.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub addr: String,
    pub type_name: String,
    /// What the plan does to it (`--plan`), if a plan was made.
    pub action: Option<Action>,
}

/// A graph to draw: nodes in a stable order, edges as (needs, needed) indexes.
#[derive(Debug, Clone, Default)]
pub struct Drawing {
    pub name: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<(usize, usize)>,
}

/// Fill and stroke of a node, by planned action (none: no plan was made).
fn colours(action: Option<Action>) -> (&'static str, &'static str) {
    match action {
        None => ("#ffffff", "#333333"),
        Some(Action::Create) => ("#dcfce7", "#15803d"),
        Some(Action::Update) => ("#fef9c3", "#a16207"),
        Some(Action::Replace) => ("#f3e8ff", "#7e22ce"),
        Some(Action::Delete) => ("#fee2e2", "#b91c1c"),
        Some(Action::NoOp) => ("#f4f4f5", "#71717a"),
    }
}

fn action_word(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::NoOp => "no change",
    }
}

impl Node {
    /// The label's lines: address, type, and the planned action if any.
    fn lines(&self) -> Vec<String> {
        let mut lines = vec![self.addr.clone(), self.type_name.clone()];
        if let Some(a) = self.action {
            lines.push(format!("({})", action_word(a)));
        }
        lines
    }
}

/// A DOT quoted string's body. A line break becomes DOT's `\n` escape, which
/// Graphviz draws as a new line; it is not escaped again (`\\n` would show a
/// backslash and an `n`).
fn dot_quote(s: &str) -> String {
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

impl Drawing {
    /// The declared resources and their dependencies; with a plan, also what
    /// it deletes that is no longer declared, and every node's planned action.
    pub fn of(name: &str, def: &Definition, deps: &Dag<ResourceAddr>, plan: Option<&Plan>) -> Self {
        let mut nodes: BTreeMap<ResourceAddr, Node> = def
            .resources
            .iter()
            .map(|(a, r)| (a.clone(), Node { addr: a.to_string(), type_name: r.type_name.clone(), action: None }))
            .collect();
        let mut needs: Vec<(ResourceAddr, ResourceAddr)> = Vec::new();
        for (i, a) in deps.nodes().iter().enumerate() {
            needs.extend(deps.needs(i).iter().map(|&j| (a.clone(), deps.node(j).clone())));
        }
        for c in plan.map(|p| p.changes.as_slice()).unwrap_or_default().iter().filter(|c| !c.deposed) {
            let node = nodes.entry(c.addr.clone()).or_insert_with(|| Node {
                addr: c.addr.to_string(),
                type_name: c.type_name.clone(),
                action: None,
            });
            node.action = Some(c.action);
            if !def.resources.contains_key(&c.addr)
                && let Some(prior) = &c.prior
            {
                needs.extend(prior.depends_on.iter().map(|d| (c.addr.clone(), d.clone())));
            }
        }
        if plan.is_some() {
            // Declared but absent from the plan (left out by its scope): nothing happens to it.
            for n in nodes.values_mut() {
                n.action.get_or_insert(Action::NoOp);
            }
        }
        let index: BTreeMap<&ResourceAddr, usize> = nodes.keys().enumerate().map(|(i, a)| (a, i)).collect();
        let mut edges: Vec<(usize, usize)> = needs.iter().filter_map(|(a, b)| Some((*index.get(a)?, *index.get(b)?))).collect();
        edges.sort_unstable();
        edges.dedup();
        Self { name: name.to_string(), nodes: nodes.into_values().collect(), edges }
    }

    pub fn dot(&self) -> String {
        let mut out = format!("digraph {} {{\n", dot_quote(&self.name));
        out.push_str("  rankdir = \"RL\";\n");
        out.push_str("  node [shape = box, style = \"rounded,filled\", fillcolor = \"#ffffff\", fontname = \"Helvetica\"];\n");
        for n in &self.nodes {
            let mut attrs = format!("label = {}", dot_quote(&n.lines().join("\n")));
            if n.action.is_some() {
                let (fill, stroke) = colours(n.action);
                attrs.push_str(&format!(", fillcolor = {}, color = {}", dot_quote(fill), dot_quote(stroke)));
            }
            if n.action == Some(Action::Delete) {
                attrs.push_str(", style = \"rounded,filled,dashed\"");
            }
            out.push_str(&format!("  {} [{attrs}];\n", dot_quote(&n.addr)));
        }
        for &(from, to) in &self.edges {
            out.push_str(&format!("  {} -> {};\n", dot_quote(&self.nodes[from].addr), dot_quote(&self.nodes[to].addr)));
        }
        out.push_str("}\n");
        out
    }

    /// A Mermaid flowchart. Nodes get neutral ids (`n0`, `n1`…): an address
    /// such as `health-page` is not a safe Mermaid id, so it is only a label.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("flowchart RL\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let label: Vec<String> = n.lines().iter().map(|l| mermaid_text(l)).collect();
            out.push_str(&format!("  n{i}[\"{}\"]\n", label.join("<br/>")));
        }
        for &(from, to) in &self.edges {
            out.push_str(&format!("  n{from} --> n{to}\n"));
        }
        let mut used: Vec<Action> = self.nodes.iter().filter_map(|n| n.action).collect();
        used.sort_by_key(|a| action_word(*a));
        used.dedup();
        for a in used {
            let (fill, stroke) = colours(Some(a));
            let class = mermaid_class(a);
            let dash = if a == Action::Delete { ",stroke-dasharray:5 5" } else { "" };
            out.push_str(&format!("  classDef {class} fill:{fill},stroke:{stroke}{dash}\n"));
            let members: Vec<String> =
                self.nodes.iter().enumerate().filter(|(_, n)| n.action == Some(a)).map(|(i, _)| format!("n{i}")).collect();
            out.push_str(&format!("  class {} {class}\n", members.join(",")));
        }
        out
    }

    /// An SVG picture, laid out by layout-rs. Each resource is one
    /// `<g class="node" data-addr="…">` group, so tools (and tests) can find it.
    pub fn svg(&self) -> String {
        let mut vg = VisualGraph::new(Orientation::LeftToRight);
        let handles: Vec<_> = self
            .nodes
            .iter()
            .map(|n| {
                let (fill, stroke) = colours(n.action);
                let shape = ShapeKind::new_box(&n.lines().join("\n"));
                let look = StyleAttr::new(Color::fast(stroke), 2, Some(Color::fast(fill)), 6, 14);
                // layout-rs flips the orientation for a shape's own size, as its DOT builder does.
                let size = get_shape_size(Orientation::TopToBottom, &shape, look.font_size, false);
                let props = format!("class=\"node\" data-addr=\"{}\"", xml_attr(&n.addr));
                vg.add_node(Element::create_with_properties(shape, look, Orientation::TopToBottom, size, props))
            })
            .collect();
        for &(from, to) in &self.edges {
            // Laid out from what is needed (left) to what needs it (right), with the
            // arrowhead on the needed end: the same picture as the DOT's `rankdir = RL`.
            let look = StyleAttr::new(Color::fast("#555555"), 1, None, 0, 12);
            let arrow = Arrow::new(LineEndKind::Arrow, LineEndKind::None, LineStyleKind::Normal, "", &look, &None, &None);
            vg.add_edge(arrow, handles[to], handles[from]);
        }
        let mut svg = SVGWriter::new();
        if !self.nodes.is_empty() {
            vg.do_it(false, false, false, &mut svg);
        }
        svg.finalize()
    }
}

fn mermaid_class(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "delete",
        Action::NoOp => "noop",
    }
}

/// Text inside a quoted Mermaid label: `"` and markup characters as entity codes.
fn mermaid_text(s: &str) -> String {
    s.replace('&', "#amp;").replace('"', "#quot;").replace('<', "#lt;").replace('>', "#gt;")
}

fn xml_attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(plan: bool) -> Drawing {
        let node = |addr: &str, type_name: &str, action| Node {
            addr: addr.into(),
            type_name: type_name.into(),
            action: if plan { Some(action) } else { None },
        };
        Drawing {
            name: "dev".into(),
            nodes: vec![
                node("health-page", "metal.file", Action::NoOp),
                node("web", "metal.service", Action::Replace),
                node("old", "metal.file", Action::Delete),
            ],
            edges: vec![(1, 0)],
        }
    }

    /// Node labels and edges as a DOT consumer reads them (layout-rs's Graphviz parser).
    fn parsed(dot: &str) -> (Vec<(String, String)>, Vec<(String, String)>) {
        use layout::gv::parser::ast::Stmt;
        let graph = layout::gv::DotParser::new(dot).process().expect("the DOT parses");
        let mut labels = Vec::new();
        let mut edges = Vec::new();
        for stmt in &graph.list.list {
            match stmt {
                Stmt::Node(n) => {
                    let label = n.list.iter().find(|(k, _)| k == "label").map(|(_, v)| v.clone()).unwrap_or_default();
                    labels.push((n.id.name.clone(), label));
                }
                Stmt::Edge(e) => edges.push((e.from.name.clone(), e.to[0].0.name.clone())),
                _ => {}
            }
        }
        (labels, edges)
    }

    #[test]
    fn dot_labels_break_lines_where_graphviz_does() {
        let dot = sample(false).dot();
        assert!(dot.contains("\"web\" [label = \"web\\nmetal.service\"];"), "{dot}");
        let (labels, edges) = parsed(&dot);
        assert_eq!(labels[1], ("web".to_string(), "web\nmetal.service".to_string()));
        assert_eq!(edges, vec![("web".to_string(), "health-page".to_string())]);
    }

    #[test]
    fn dot_with_a_plan_colours_each_node_by_its_action() {
        let dot = sample(true).dot();
        assert!(
            dot.contains("\"web\" [label = \"web\\nmetal.service\\n(replace)\", fillcolor = \"#f3e8ff\", color = \"#7e22ce\"];"),
            "{dot}"
        );
        assert!(dot.contains("\"old\" [label = \"old\\nmetal.file\\n(delete)\", fillcolor = \"#fee2e2\""), "{dot}");
        let (labels, _) = parsed(&dot);
        assert_eq!(labels[0].1, "health-page\nmetal.file\n(no change)");
    }

    #[test]
    fn mermaid_is_a_flowchart_with_classes_per_action() {
        assert_eq!(
            sample(true).mermaid(),
            "flowchart RL\n  n0[\"health-page<br/>metal.file<br/>(no change)\"]\n  n1[\"web<br/>metal.service<br/>(replace)\"]\n  \
             n2[\"old<br/>metal.file<br/>(delete)\"]\n  n1 --> n0\n  \
             classDef delete fill:#fee2e2,stroke:#b91c1c,stroke-dasharray:5 5\n  class n2 delete\n  \
             classDef noop fill:#f4f4f5,stroke:#71717a\n  class n0 noop\n  \
             classDef replace fill:#f3e8ff,stroke:#7e22ce\n  class n1 replace\n"
        );
    }

    #[test]
    fn svg_has_one_node_group_per_resource() {
        let svg = sample(true).svg();
        assert!(svg.starts_with("<?xml"), "{svg}");
        assert_eq!(svg.matches("<g class=\"node\"").count(), 3, "{svg}");
        assert!(svg.contains("data-addr=\"health-page\""));
        assert!(svg.contains(">metal.service</tspan>"), "{svg}");
    }

    #[test]
    fn an_empty_graph_is_still_a_picture() {
        let svg = Drawing { name: "empty".into(), ..Drawing::default() }.svg();
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
    }
}
