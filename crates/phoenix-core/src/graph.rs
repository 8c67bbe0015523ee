//! A generic directed acyclic graph of "needs" edges. Knows nothing of resources.
//!
//! An edge `a -> b` means `a` needs `b`: `b` comes first when creating and
//! last when destroying.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;

#[derive(Debug, Clone)]
pub struct Dag<N> {
    nodes: Vec<N>,
    index: HashMap<N, usize>,
    needs: Vec<Vec<usize>>,
    needed_by: Vec<Vec<usize>>,
}

impl<N> Default for Dag<N> {
    fn default() -> Self {
        Self { nodes: Vec::new(), index: HashMap::new(), needs: Vec::new(), needed_by: Vec::new() }
    }
}

impl<N: Clone + Eq + Hash + Ord + Display> Dag<N> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node (a no-op if present) and returns its index.
    pub fn add_node(&mut self, node: N) -> usize {
        if let Some(&i) = self.index.get(&node) {
            return i;
        }
        let i = self.nodes.len();
        self.index.insert(node.clone(), i);
        self.nodes.push(node);
        self.needs.push(Vec::new());
        self.needed_by.push(Vec::new());
        i
    }

    /// `from` needs `to`. Both are added if missing; duplicate edges are ignored.
    pub fn add_edge(&mut self, from: &N, to: &N) {
        let f = self.add_node(from.clone());
        let t = self.add_node(to.clone());
        if !self.needs[f].contains(&t) {
            self.needs[f].push(t);
            self.needed_by[t].push(f);
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn nodes(&self) -> &[N] {
        &self.nodes
    }
    pub fn index_of(&self, node: &N) -> Option<usize> {
        self.index.get(node).copied()
    }
    pub fn node(&self, i: usize) -> &N {
        &self.nodes[i]
    }
    /// Indices of what node `i` needs.
    pub fn needs(&self, i: usize) -> &[usize] {
        &self.needs[i]
    }
    /// Indices of what needs node `i`.
    pub fn needed_by(&self, i: usize) -> &[usize] {
        &self.needed_by[i]
    }

    /// A cycle as a path that starts and ends on the same node, smallest node
    /// first so the message is stable; `None` for an acyclic graph.
    pub fn find_cycle(&self) -> Option<Vec<N>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark = vec![Mark::New; self.nodes.len()];
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by(|a, b| self.nodes[*a].cmp(&self.nodes[*b]));
        for &start in &order {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative DFS: (node, next child position); `path` mirrors the stack.
            let mut stack = vec![(start, 0usize)];
            mark[start] = Mark::Active;
            while let Some(&mut (node, ref mut pos)) = stack.last_mut() {
                if let Some(&child) = self.needs[node].get(*pos) {
                    *pos += 1;
                    match mark[child] {
                        Mark::New => {
                            mark[child] = Mark::Active;
                            stack.push((child, 0));
                        }
                        Mark::Active => {
                            let from = stack.iter().position(|(n, _)| *n == child).unwrap_or(0);
                            let mut cycle: Vec<usize> = stack[from..].iter().map(|(n, _)| *n).collect();
                            let min = (0..cycle.len()).min_by(|a, b| self.nodes[cycle[*a]].cmp(&self.nodes[cycle[*b]])).unwrap_or(0);
                            cycle.rotate_left(min);
                            cycle.push(cycle[0]);
                            return Some(cycle.into_iter().map(|i| self.nodes[i].clone()).collect());
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
        None
    }

    /// Node indices with every node after all it needs (Kahn's algorithm,
    /// ties broken by node order so the result is deterministic). `None` on a cycle.
    pub fn topo_order(&self) -> Option<Vec<usize>> {
        let mut remaining: Vec<usize> = self.needs.iter().map(Vec::len).collect();
        let mut ready: std::collections::BTreeSet<(&N, usize)> =
            (0..self.nodes.len()).filter(|i| remaining[*i] == 0).map(|i| (&self.nodes[i], i)).collect();
        let mut out = Vec::with_capacity(self.nodes.len());
        while let Some(first) = ready.pop_first() {
            let i = first.1;
            out.push(i);
            for &d in &self.needed_by[i] {
                remaining[d] -= 1;
                if remaining[d] == 0 {
                    ready.insert((&self.nodes[d], d));
                }
            }
        }
        (out.len() == self.nodes.len()).then_some(out)
    }

    /// The graph in Graphviz DOT, edges pointing from a node to what it needs.
    pub fn to_dot(&self, name: &str, label: &dyn Fn(&N) -> String) -> String {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by(|a, b| self.nodes[*a].cmp(&self.nodes[*b]));
        let mut out = format!("digraph \"{}\" {{\n  rankdir = \"RL\";\n  node [shape = box];\n", escape(name));
        for &i in &order {
            out.push_str(&format!("  \"{}\" [label = \"{}\"];\n", escape(&self.nodes[i].to_string()), escape(&label(&self.nodes[i]))));
        }
        for &i in &order {
            let mut needs: Vec<&N> = self.needs[i].iter().map(|j| &self.nodes[*j]).collect();
            needs.sort();
            for n in needs {
                out.push_str(&format!("  \"{}\" -> \"{}\";\n", escape(&self.nodes[i].to_string()), escape(&n.to_string())));
            }
        }
        out.push_str("}\n");
        out
    }
}

/// A DOT quoted string's body: quotes and backslashes escaped, and each line
/// break as DOT's own `\n` (escaping a label's `\n` again would show a
/// literal backslash-n instead of a new line).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(edges: &[(&'static str, &'static str)]) -> Dag<&'static str> {
        let mut d = Dag::new();
        for (a, b) in edges {
            d.add_edge(a, b);
        }
        d
    }

    #[test]
    fn topo_puts_needs_first() {
        let d = dag(&[("web", "subnet"), ("subnet", "vpc"), ("sg", "vpc"), ("web", "sg")]);
        let order: Vec<_> = d.topo_order().unwrap().into_iter().map(|i| *d.node(i)).collect();
        let pos = |n| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("vpc") < pos("subnet"));
        assert!(pos("vpc") < pos("sg"));
        assert!(pos("subnet") < pos("web"));
        assert!(pos("sg") < pos("web"));
    }

    #[test]
    fn cycle_is_reported_as_a_closed_path() {
        let d = dag(&[("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")]);
        assert_eq!(d.find_cycle().unwrap(), vec!["a", "b", "c", "a"]);
        assert!(d.topo_order().is_none());
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let d = dag(&[("a", "a")]);
        assert_eq!(d.find_cycle().unwrap(), vec!["a", "a"]);
    }

    #[test]
    fn acyclic_has_no_cycle() {
        let d = dag(&[("a", "b"), ("a", "c"), ("b", "c")]);
        assert!(d.find_cycle().is_none());
    }

    #[test]
    fn dot_lists_edges() {
        let d = dag(&[("web", "vpc")]);
        let dot = d.to_dot("dev", &|n| n.to_string());
        assert!(dot.contains("\"web\" -> \"vpc\";"));
        // A label's line break is DOT's `\n`, not an escaped backslash.
        let dot = d.to_dot("dev", &|n| format!("{n}\nmetal.file"));
        assert!(dot.contains("\"web\" [label = \"web\\nmetal.file\"];"), "{dot}");
    }
}
