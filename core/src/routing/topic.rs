//! Topic exchange matching: a subscription trie with a bounded result cache.
//!
//! Semantics are RabbitMQ's topic exchange. A routing key is split on `.` into words; the empty
//! key `""` has zero words and `a..b` has three (`a`, ``, `b`). In a binding pattern `*` matches
//! exactly one word (possibly the empty word, never the empty key) and `#` matches zero or more
//! words, anywhere in the pattern (`#.b`, `a.#.#.b`). `*` and `#` are wildcards only as whole
//! words: `a*` is a literal.
//!
//! Invariants:
//! - The trie holds each `(pattern, value)` pair at most once, and [`TopicTrie::len`] counts them.
//! - [`TopicTrie::matches`] returns each value at most once, however many of its patterns match.
//! - Once [`TopicTrie::insert`] or [`TopicTrie::remove`] has returned, no match computed before it
//!   is served from the cache (see `cache.rs`).
//! - Matching takes a shared lock only; a cache hit takes no trie lock at all. Changes take the
//!   exclusive lock and clear the cache, on the assumption that bindings change far less often
//!   than messages are routed.

mod cache;
mod node;

use parking_lot::RwLock;
use std::collections::HashSet;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use cache::MatchCache;
use node::Node;

/// The cache capacity of [`TopicTrie::new`], in routing keys.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// The trie and its entry count, changed together under one lock.
struct Inner<T> {
    root: Node<T>,
    len: usize,
}

/// Topic bindings: `(pattern, value)` pairs, queried by routing key. Thread-safe; every method
/// takes `&self`.
///
/// Model: nats-server's sublist (a level per word with literal, `*` and `#` children and a bounded
/// result cache), generalised so that `#` may be followed by more words.
pub struct TopicTrie<T> {
    inner: RwLock<Inner<T>>,
    /// `None` when the cache is off.
    cache: Option<MatchCache<T>>,
    /// Shared by every empty result, so a miss allocates nothing.
    empty: Arc<[T]>,
}

impl<T> TopicTrie<T>
where
    T: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// An empty trie with a cache of [`DEFAULT_CACHE_CAPACITY`] routing keys.
    pub fn new() -> Self {
        Self::with_cache_capacity(DEFAULT_CACHE_CAPACITY)
    }

    /// An empty trie whose cache holds at most `capacity` routing keys; 0 turns the cache off.
    pub fn with_cache_capacity(capacity: usize) -> Self {
        Self {
            inner: RwLock::new(Inner {
                root: Node::default(),
                len: 0,
            }),
            cache: (capacity > 0).then(|| MatchCache::new(capacity)),
            empty: Arc::from(Vec::new()),
        }
    }

    /// Binds `value` with `pattern`; false if that pair was already bound (nothing changes).
    pub fn insert(&self, pattern: &str, value: T) -> bool {
        let mut inner = self.inner.write();
        let added = inner.root.insert(pattern, value);
        if added {
            inner.len += 1;
            self.clear_cache();
        }
        added
    }

    /// Unbinds `value` from `pattern`, freeing the trie nodes no other binding needs; false if
    /// that pair was not bound (nothing changes).
    pub fn remove(&self, pattern: &str, value: &T) -> bool {
        let mut inner = self.inner.write();
        let removed = inner.root.remove(pattern, value);
        if removed {
            inner.len -= 1;
            self.clear_cache();
        }
        removed
    }

    /// The values bound with a pattern that matches `routing_key`, each once, in no particular
    /// order. The result is shared with the cache: cloning it costs a reference count.
    pub fn matches(&self, routing_key: &str) -> Arc<[T]> {
        if let Some(hit) = self.cache.as_ref().and_then(|cache| cache.get(routing_key)) {
            return hit;
        }
        let inner = self.inner.read();
        let result = self.collect(&inner.root, routing_key);
        if let Some(cache) = &self.cache {
            // Still under the read lock: a writer cannot change the trie and clear the cache
            // between our read and this insert, so the entry is never stale.
            cache.insert(routing_key, Arc::clone(&result));
        }
        drop(inner);
        result
    }

    /// The number of `(pattern, value)` pairs bound.
    pub fn len(&self) -> usize {
        self.inner.read().len
    }

    /// True when nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of routing keys cached now (0 when the cache is off).
    pub fn cached_keys(&self) -> usize {
        self.cache.as_ref().map_or(0, MatchCache::len)
    }

    fn collect(&self, root: &Node<T>, routing_key: &str) -> Arc<[T]> {
        let mut nodes = Vec::new();
        root.collect_matches(routing_key, &mut nodes);
        match nodes.as_slice() {
            [] => Arc::clone(&self.empty),
            // One node's values are already distinct: the common case skips the dedupe set.
            [node] => node.values().iter().cloned().collect(),
            _ => {
                let capacity = nodes.iter().map(|node| node.values().len()).sum();
                let mut distinct: HashSet<&T> = HashSet::with_capacity(capacity);
                for node in &nodes {
                    distinct.extend(node.values());
                }
                distinct.into_iter().cloned().collect()
            }
        }
    }

    fn clear_cache(&self) {
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }
}

impl<T> Default for TopicTrie<T>
where
    T: Clone + Eq + Hash + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for TopicTrie<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopicTrie")
            .field("len", &self.inner.read().len)
            .field(
                "cache_capacity",
                &self.cache.as_ref().map_or(0, MatchCache::capacity),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn sorted(result: Arc<[u32]>) -> Vec<u32> {
        let mut values = result.to_vec();
        values.sort_unstable();
        values
    }

    /// Both cache settings, so every example runs against the trie alone and through the cache.
    fn tries() -> [TopicTrie<u32>; 2] {
        [TopicTrie::new(), TopicTrie::with_cache_capacity(0)]
    }

    fn matches_one(pattern: &str, key: &str) -> bool {
        let results: Vec<bool> = tries()
            .iter()
            .map(|trie| {
                trie.insert(pattern, 1);
                // Ask twice so the second answer comes from the cache when it is on.
                let first = !trie.matches(key).is_empty();
                let second = !trie.matches(key).is_empty();
                assert_eq!(
                    first, second,
                    "cached answer differs for {pattern:?} / {key:?}"
                );
                first
            })
            .collect();
        assert_eq!(
            results[0], results[1],
            "cache on/off differ for {pattern:?} / {key:?}"
        );
        results[0]
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        for key in ["a", "a.b", "a.b.c"] {
            assert!(matches_one("a.#", key), "a.# should match {key:?}");
        }
        assert!(!matches_one("a.#", "b.a"));
        assert!(!matches_one("a.#", ""));
        for key in ["", "a", "a.b.c", "..", "."] {
            assert!(matches_one("#", key), "# should match {key:?}");
        }
    }

    #[test]
    fn star_matches_exactly_one_word() {
        assert!(matches_one("*", "a"));
        assert!(!matches_one("*", ""));
        assert!(!matches_one("*", "a.b"));
        assert!(matches_one("a.*.c", "a.b.c"));
        assert!(!matches_one("a.*.c", "a.c"));
        // The middle word of `a..c` is empty, and `*` matches it.
        assert!(matches_one("a.*.c", "a..c"));
    }

    #[test]
    fn hash_in_the_middle_and_repeated() {
        assert!(matches_one("#.b", "b"));
        assert!(matches_one("#.b", "x.y.b"));
        assert!(!matches_one("#.b", "b.x"));
        for key in ["a.b", "a.x.b", "a.x.y.b", "a.b.b"] {
            assert!(matches_one("a.#.#.b", key), "a.#.#.b should match {key:?}");
        }
        assert!(!matches_one("a.#.#.b", "a"));
        assert!(matches_one("#.#.#", ""));
        assert!(matches_one("#.*.#", "x"));
        assert!(!matches_one("#.*.#", ""));
    }

    #[test]
    fn empty_words_and_empty_key() {
        assert!(matches_one("", ""));
        assert!(!matches_one("", "a"));
        assert!(matches_one("a..b", "a..b"));
        assert!(!matches_one("a..b", "a.b"));
        assert!(matches_one(".", "."));
        assert!(!matches_one(".", ""));
    }

    #[test]
    fn wildcards_only_as_whole_words() {
        assert!(matches_one("a*", "a*"));
        assert!(!matches_one("a*", "ab"));
        assert!(!matches_one("a#", "a.b"));
        assert!(matches_one("#a", "#a"));
    }

    #[test]
    fn each_value_once_even_when_several_patterns_match() {
        for trie in tries() {
            assert!(trie.insert("a.b", 1));
            assert!(trie.insert("a.*", 1));
            assert!(trie.insert("#", 1));
            assert!(trie.insert("a.#", 2));
            assert!(trie.insert("x", 3));
            assert_eq!(sorted(trie.matches("a.b")), vec![1, 2]);
            assert_eq!(sorted(trie.matches("x")), vec![1, 3]);
        }
    }

    #[test]
    fn insert_and_remove_bookkeeping() {
        for trie in tries() {
            assert!(trie.is_empty());
            assert!(trie.insert("a.b", 1));
            assert!(!trie.insert("a.b", 1), "duplicate pair");
            assert!(trie.insert("a.b", 2));
            assert!(trie.insert("a.*", 1));
            assert_eq!(trie.len(), 3);
            assert!(!trie.remove("a.b", &3), "absent value");
            assert!(!trie.remove("a.c", &1), "absent pattern");
            assert!(!trie.remove("a", &1), "prefix of a pattern");
            assert_eq!(trie.len(), 3);
            assert!(trie.remove("a.b", &1));
            assert!(!trie.remove("a.b", &1), "already removed");
            assert_eq!(sorted(trie.matches("a.b")), vec![1, 2]);
            assert!(trie.remove("a.*", &1));
            assert!(trie.remove("a.b", &2));
            assert!(trie.is_empty());
            assert!(trie.matches("a.b").is_empty());
        }
    }

    #[test]
    fn removal_prunes_and_trie_is_reusable() {
        let trie = TopicTrie::with_cache_capacity(0);
        for i in 0..100u32 {
            assert!(trie.insert(&format!("a.{i}.#.x"), i));
        }
        for i in 0..100u32 {
            assert!(trie.remove(&format!("a.{i}.#.x"), &i));
        }
        assert!(trie.is_empty());
        // The root is empty again: no pattern leaves a node behind.
        assert!(trie.inner.read().root.values().is_empty());
        assert!(trie.insert("a.5.#.x", 7));
        assert_eq!(sorted(trie.matches("a.5.x")), vec![7]);
    }

    #[test]
    fn cache_is_invalidated_by_insert_and_remove() {
        let trie = TopicTrie::new();
        assert!(trie.insert("a.*", 1));
        assert_eq!(sorted(trie.matches("a.b")), vec![1]);
        assert_eq!(trie.cached_keys(), 1);

        assert!(trie.insert("a.b", 2));
        assert_eq!(trie.cached_keys(), 0);
        assert_eq!(sorted(trie.matches("a.b")), vec![1, 2]);

        assert!(trie.remove("a.*", &1));
        assert_eq!(sorted(trie.matches("a.b")), vec![2]);

        // A cached miss must not survive a new binding either.
        assert!(trie.matches("z").is_empty());
        assert!(trie.insert("#", 3));
        assert_eq!(sorted(trie.matches("z")), vec![3]);

        // A failed change leaves the cache alone.
        assert_eq!(trie.cached_keys(), 1);
        assert!(!trie.insert("#", 3));
        assert!(!trie.remove("q", &3));
        assert_eq!(trie.cached_keys(), 1);
    }

    #[test]
    fn cache_capacity_is_respected() {
        let trie = TopicTrie::with_cache_capacity(10);
        assert!(trie.insert("k.*", 1));
        for i in 0..1000 {
            assert_eq!(sorted(trie.matches(&format!("k.{i}"))), vec![1]);
            assert!(
                trie.cached_keys() <= 10,
                "{} keys cached",
                trie.cached_keys()
            );
        }
        assert!(trie.cached_keys() > 0);

        let tiny = TopicTrie::with_cache_capacity(1);
        assert!(tiny.insert("#", 1));
        for i in 0..10 {
            tiny.matches(&i.to_string());
            assert_eq!(tiny.cached_keys(), 1);
        }

        let off = TopicTrie::with_cache_capacity(0);
        assert!(off.insert("#", 1));
        off.matches("a");
        assert_eq!(off.cached_keys(), 0);
    }

    #[test]
    fn concurrent_matchers_see_inserts() {
        let trie = Arc::new(TopicTrie::new());
        assert!(trie.insert("a.#", 0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let trie = Arc::clone(&trie);
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        assert!(trie.matches("a.b").contains(&0));
                    }
                })
            })
            .collect();
        for i in 1..200 {
            assert!(trie.insert("a.b", i));
            // Once insert has returned, every later match sees the new binding.
            assert!(trie.matches("a.b").contains(&i));
        }
        for reader in readers {
            assert!(reader.join().is_ok());
        }
    }

    // ---- property test against a naive matcher ----

    fn naive_words(text: &str) -> Vec<&str> {
        if text.is_empty() {
            Vec::new()
        } else {
            text.split('.').collect()
        }
    }

    /// The definition, by backtracking: obviously right, exponential in the worst case.
    fn naive_match(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| naive_match(rest, &key[skip..])),
            Some((&"*", rest)) => !key.is_empty() && naive_match(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && naive_match(rest, &key[1..]),
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(String, u32),
        Remove(String, u32),
        Match(String),
    }

    fn text(vocabulary: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vocabulary), 0..=5).prop_map(|w| w.join("."))
    }

    fn pattern() -> impl Strategy<Value = String> {
        text(&["a", "b", "c", "", "*", "#"])
    }

    fn key() -> impl Strategy<Value = String> {
        text(&["a", "b", "c", ""])
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (pattern(), 0..6u32).prop_map(|(p, v)| Op::Insert(p, v)),
            1 => (pattern(), 0..6u32).prop_map(|(p, v)| Op::Remove(p, v)),
            4 => key().prop_map(Op::Match),
        ]
    }

    /// Runs `ops` against `trie` and a plain set of pairs matched naively.
    fn check_against_model(trie: &TopicTrie<u32>, ops: &[Op]) -> Result<(), TestCaseError> {
        let mut model: BTreeSet<(String, u32)> = BTreeSet::new();
        for op in ops {
            match op {
                Op::Insert(p, v) => {
                    prop_assert_eq!(trie.insert(p, *v), model.insert((p.clone(), *v)));
                }
                Op::Remove(p, v) => {
                    prop_assert_eq!(trie.remove(p, v), model.remove(&(p.clone(), *v)));
                }
                Op::Match(k) => {
                    let key_words = naive_words(k);
                    let expected: BTreeSet<u32> = model
                        .iter()
                        .filter(|(p, _)| naive_match(&naive_words(p), &key_words))
                        .map(|(_, v)| *v)
                        .collect();
                    let got = trie.matches(k);
                    let distinct: BTreeSet<u32> = got.iter().copied().collect();
                    prop_assert_eq!(got.len(), distinct.len(), "duplicates for {:?}", k);
                    prop_assert_eq!(&distinct, &expected, "key {:?}, bindings {:?}", k, &model);
                }
            }
            prop_assert_eq!(trie.len(), model.len());
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn trie_agrees_with_naive_matcher(ops in prop::collection::vec(op(), 1..60)) {
            // Cache off, a tiny cache that evicts constantly, and the default cache.
            for capacity in [0, 3, DEFAULT_CACHE_CAPACITY] {
                check_against_model(&TopicTrie::with_cache_capacity(capacity), &ops)?;
            }
        }
    }
}
