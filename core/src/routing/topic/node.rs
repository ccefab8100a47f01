//! The trie itself: one node per pattern prefix, with no locking and no cache.
//!
//! Invariants:
//! - A node's `values` are the values bound with exactly the pattern spelled by the path from the
//!   root to that node; a value appears at most once per node (`HashSet`).
//! - Every node other than the root holds at least one value or one child: [`Node::remove`]
//!   prunes the chain a removal leaves empty, so memory follows the live bindings.
//! - Nothing here recurses on pattern or key depth (insert, remove, match and even `Drop` are
//!   loops), because an MQTT topic may have tens of thousands of levels and a tokio worker's stack
//!   is small.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// One word of a binding pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Segment<'a> {
    /// A word that must equal the routing key's word (includes the empty word and `a*`).
    Literal(&'a str),
    /// `*`: exactly one word.
    Star,
    /// `#`: zero or more words.
    Hash,
}

/// The words of a routing key: the empty key has none, otherwise it is split on every `.`, so
/// `a..b` has three words and the middle one is empty.
pub(super) fn words(key: &str) -> impl Iterator<Item = &str> {
    // `"".split('.')` yields one empty word; the empty key must yield none (so `*` cannot match it).
    let key = if key.is_empty() { None } else { Some(key) };
    key.into_iter().flat_map(|key| key.split('.'))
}

/// The segments of a binding pattern; `*` and `#` are wildcards only as whole words.
pub(super) fn segments(pattern: &str) -> impl Iterator<Item = Segment<'_>> {
    words(pattern).map(|word| match word {
        "*" => Segment::Star,
        "#" => Segment::Hash,
        literal => Segment::Literal(literal),
    })
}

/// A trie node: the level structure of nats' sublist (`nodes`, `pwc`, `fwc`), except that `#` may
/// be followed by more words, so the `#` child is a full node rather than a terminal.
pub(super) struct Node<T> {
    literal: HashMap<Box<str>, Node<T>>,
    star: Option<Box<Node<T>>>,
    hash: Option<Box<Node<T>>>,
    values: HashSet<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            literal: HashMap::new(),
            star: None,
            hash: None,
            values: HashSet::new(),
        }
    }
}

impl<T> Drop for Node<T> {
    // The derived drop would recurse once per level; a pattern with 30,000 words would overflow a
    // worker's stack when it is removed or when the trie is dropped. Children are moved onto a
    // heap stack instead, so each node is dropped with no children left.
    fn drop(&mut self) {
        if self.is_leaf() {
            return;
        }
        let mut pending = Vec::new();
        self.move_children_into(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.move_children_into(&mut pending);
        }
    }
}

impl<T> Node<T> {
    fn is_leaf(&self) -> bool {
        self.literal.is_empty() && self.star.is_none() && self.hash.is_none()
    }

    fn move_children_into(&mut self, pending: &mut Vec<Node<T>>) {
        pending.extend(self.literal.drain().map(|(_, child)| child));
        pending.extend(self.star.take().map(|child| *child));
        pending.extend(self.hash.take().map(|child| *child));
    }

    fn child_count(&self) -> usize {
        self.literal.len() + usize::from(self.star.is_some()) + usize::from(self.hash.is_some())
    }

    fn child(&self, segment: Segment<'_>) -> Option<&Node<T>> {
        match segment {
            Segment::Literal(word) => self.literal.get(word),
            Segment::Star => self.star.as_deref(),
            Segment::Hash => self.hash.as_deref(),
        }
    }

    fn child_mut(&mut self, segment: Segment<'_>) -> Option<&mut Node<T>> {
        match segment {
            Segment::Literal(word) => self.literal.get_mut(word),
            Segment::Star => self.star.as_deref_mut(),
            Segment::Hash => self.hash.as_deref_mut(),
        }
    }

    fn child_or_insert(&mut self, segment: Segment<'_>) -> &mut Node<T> {
        match segment {
            Segment::Literal(word) => self.literal.entry(Box::from(word)).or_default(),
            Segment::Star => self.star.get_or_insert_with(Box::default),
            Segment::Hash => self.hash.get_or_insert_with(Box::default),
        }
    }

    fn remove_child(&mut self, segment: Segment<'_>) {
        match segment {
            Segment::Literal(word) => {
                self.literal.remove(word);
            }
            Segment::Star => self.star = None,
            Segment::Hash => self.hash = None,
        }
    }

    /// The values bound at this node.
    pub(super) fn values(&self) -> &HashSet<T> {
        &self.values
    }
}

impl<T: Eq + Hash> Node<T> {
    /// Binds `value` with `pattern` below this node; false if it was already bound.
    pub(super) fn insert(&mut self, pattern: &str, value: T) -> bool {
        let mut node = self;
        for segment in segments(pattern) {
            node = node.child_or_insert(segment);
        }
        node.values.insert(value)
    }

    /// Unbinds `value` from `pattern` below this node, pruning the nodes left empty; false if it
    /// was not bound.
    pub(super) fn remove(&mut self, pattern: &str, value: &T) -> bool {
        let path: Vec<Segment<'_>> = segments(pattern).collect();

        // First pass, read-only: find the binding and the shallowest depth from which the whole
        // chain down to the pattern's node holds nothing but this binding. Nothing is changed
        // unless the binding exists, so a failed removal never leaves half-pruned state.
        let cut = {
            let mut nodes = Vec::with_capacity(path.len() + 1);
            let mut node: &Node<T> = self;
            nodes.push(node);
            for &segment in &path {
                match node.child(segment) {
                    Some(child) => node = child,
                    None => return false,
                }
                nodes.push(node);
            }
            if !node.values.contains(value) {
                return false;
            }
            // The root (empty path) is never pruned, so its values are simply removed.
            if path.is_empty() || node.values.len() > 1 || !node.is_leaf() {
                None
            } else {
                // `nodes[depth]` is the node reached by `path[..depth]`; the root (depth 0) is
                // never pruned.
                let mut depth = path.len();
                while depth > 1 {
                    let parent = nodes[depth - 1];
                    if !parent.values.is_empty() || parent.child_count() > 1 {
                        break;
                    }
                    depth -= 1;
                }
                Some(depth)
            }
        };

        // Second pass: the path was just found under the same `&mut`, so every lookup succeeds;
        // the `None` arms are unreachable but keep the code free of panics.
        let mut node: &mut Node<T> = self;
        match cut {
            None => {
                for &segment in &path {
                    match node.child_mut(segment) {
                        Some(child) => node = child,
                        None => return false,
                    }
                }
                node.values.remove(value)
            }
            Some(depth) => {
                // `depth` >= 1 because the root is never cut (see above).
                let Some(parent_depth) = depth.checked_sub(1) else {
                    return false;
                };
                let Some(&cut_segment) = path.get(parent_depth) else {
                    return false;
                };
                for &segment in &path[..parent_depth] {
                    match node.child_mut(segment) {
                        Some(child) => node = child,
                        None => return false,
                    }
                }
                // Dropping the detached chain also drops the binding's value.
                node.remove_child(cut_segment);
                true
            }
        }
    }

    /// Pushes onto `out` every node whose pattern matches `routing_key` and holds values; each
    /// node at most once.
    ///
    /// This simulates the pattern automaton over the key's words instead of backtracking: the
    /// frontier holds the nodes whose pattern prefix matches the key prefix read so far, and a
    /// `#` node stays in the frontier while it consumes words. The work is bounded by
    /// words x frontier size, so patterns like `#.#.#` cost no more than `#`.
    pub(super) fn collect_matches<'n>(&'n self, routing_key: &str, out: &mut Vec<&'n Node<T>>) {
        let mut frontier = Frontier::default();
        let mut next = Frontier::default();
        frontier.push_closed(self, false);
        for word in words(routing_key) {
            for &Entry { node, is_hash } in &frontier.entries {
                if let Some(child) = node.literal.get(word) {
                    next.push_closed(child, false);
                }
                if let Some(child) = node.star.as_deref() {
                    next.push_closed(child, false);
                }
                if is_hash {
                    next.push_closed(node, true);
                }
            }
            std::mem::swap(&mut frontier, &mut next);
            next.clear();
            if frontier.entries.is_empty() {
                return;
            }
        }
        out.extend(
            frontier
                .entries
                .into_iter()
                .map(|entry| entry.node)
                .filter(|node| !node.values.is_empty()),
        );
    }
}

/// A frontier entry: a node and whether it is a `#` node (which may consume more words).
struct Entry<'n, T> {
    node: &'n Node<T>,
    is_hash: bool,
}

impl<T> Clone for Entry<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Entry<'_, T> {}

/// Up to this many `#` nodes, duplicates are found by a scan; beyond it, by a set (a pattern like
/// `#.#.#...` with thousands of words would make the scan quadratic).
const HASH_SCAN_LIMIT: usize = 16;

/// The nodes alive after reading a key prefix, each at most once.
struct Frontier<'n, T> {
    entries: Vec<Entry<'n, T>>,
    hash_count: usize,
    /// Addresses of the `#` nodes in `entries`, filled only past [`HASH_SCAN_LIMIT`].
    hash_seen: HashSet<*const Node<T>>,
}

impl<T> Default for Frontier<'_, T> {
    fn default() -> Self {
        Self {
            entries: Vec::with_capacity(8),
            hash_count: 0,
            hash_seen: HashSet::new(),
        }
    }
}

impl<'n, T> Frontier<'n, T> {
    fn clear(&mut self) {
        self.entries.clear();
        self.hash_count = 0;
        self.hash_seen.clear();
    }

    fn contains_hash(&self, node: &'n Node<T>) -> bool {
        if self.hash_count > HASH_SCAN_LIMIT {
            self.hash_seen.contains(&std::ptr::from_ref(node))
        } else {
            self.entries
                .iter()
                .any(|entry| entry.is_hash && std::ptr::eq(entry.node, node))
        }
    }

    /// Adds `node` and the chain of `#` children it reaches without reading a word (a `#` may
    /// match zero words).
    ///
    /// Only `#` nodes can be reached twice in one step (from their parent and by consuming a word
    /// themselves); literal and `*` nodes are reached only from their unique parent, which is
    /// itself present at most once, so only `#` nodes are checked for duplicates. A `#` node
    /// already present has its closure present too, so the walk stops there.
    fn push_closed(&mut self, node: &'n Node<T>, is_hash: bool) {
        let mut current = Some((node, is_hash));
        while let Some((node, is_hash)) = current {
            if is_hash {
                if self.contains_hash(node) {
                    return;
                }
                self.hash_count += 1;
                if self.hash_count == HASH_SCAN_LIMIT + 1 {
                    let seen = self
                        .entries
                        .iter()
                        .filter(|entry| entry.is_hash)
                        .map(|entry| std::ptr::from_ref(entry.node));
                    self.hash_seen.extend(seen);
                }
                if self.hash_count > HASH_SCAN_LIMIT {
                    self.hash_seen.insert(std::ptr::from_ref(node));
                }
            }
            self.entries.push(Entry { node, is_hash });
            current = node.hash.as_deref().map(|child| (child, true));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_count<T>(node: &Node<T>) -> usize {
        let mut count = 0;
        let mut pending = vec![node];
        while let Some(node) = pending.pop() {
            count += 1;
            pending.extend(node.literal.values());
            pending.extend(node.star.as_deref());
            pending.extend(node.hash.as_deref());
        }
        count
    }

    #[test]
    fn words_of_empty_key_are_none() {
        assert_eq!(words("").count(), 0);
        assert_eq!(words("a..b").collect::<Vec<_>>(), vec!["a", "", "b"]);
        assert_eq!(words(".").collect::<Vec<_>>(), vec!["", ""]);
    }

    #[test]
    fn wildcards_only_as_whole_words() {
        assert_eq!(
            segments("a*.*.#.#b").collect::<Vec<_>>(),
            vec![
                Segment::Literal("a*"),
                Segment::Star,
                Segment::Hash,
                Segment::Literal("#b")
            ]
        );
    }

    #[test]
    fn removal_prunes_only_the_empty_chain() {
        let mut root = Node::default();
        assert!(root.insert("a.b.c.d", 1));
        assert!(root.insert("a.b", 2));
        assert_eq!(node_count(&root), 5);
        assert!(root.remove("a.b.c.d", &1));
        // `a.b` still holds a value, so only `c` and `d` go.
        assert_eq!(node_count(&root), 3);
        assert!(root.remove("a.b", &2));
        assert_eq!(node_count(&root), 1);
        assert!(root.is_leaf());
    }

    #[test]
    fn removing_the_empty_pattern_keeps_the_root() {
        let mut root = Node::default();
        assert!(root.insert("", 1));
        assert!(root.remove("", &1));
        assert!(root.values.is_empty());
        assert!(root.insert("", 2));
        assert!(root.insert("a", 3));
        assert!(root.remove("", &2));
        assert_eq!(node_count(&root), 2);
    }

    #[test]
    fn failed_removal_changes_nothing() {
        let mut root = Node::default();
        assert!(root.insert("a.*.#", 1));
        assert!(!root.remove("a.*.#", &2));
        assert!(!root.remove("a.*", &1));
        assert!(!root.remove("a.*.#.x", &1));
        assert_eq!(node_count(&root), 4);
    }

    #[test]
    fn deep_patterns_do_not_overflow_the_stack() {
        let deep = vec!["#"; 50_000].join(".");
        let mut root = Node::default();
        assert!(root.insert(&deep, 1));
        let mut out = Vec::new();
        root.collect_matches("a.b", &mut out);
        assert_eq!(out.len(), 1);
        assert!(root.remove(&deep, &1));
        assert!(root.insert(&deep, 1));
        // Dropping the trie with the deep chain still in it must not recurse either.
        drop(root);
    }
}
