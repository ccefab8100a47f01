//! Retained messages: the last message published with "retain" per (exchange, routing key),
//! handed to new subscribers whose pattern matches it.
//!
//! Protocol-neutral: a publisher asks for retention with the header [`RETAIN_HEADER`] set to
//! `true` (MQTT adapters set it from the retain flag; AMQP and STOMP publishers set the header
//! themselves). [`Vhost::publish`](crate::Vhost::publish) stores such a message before routing it,
//! so a subscriber that binds and then reads [`RetainedStore::matching`] misses nothing.
//!
//! Invariants:
//! - At most one message per (exchange, routing key); storing another replaces it, and one with
//!   an empty body removes it (MQTT's rule).
//! - The store never holds more than its message and byte limits ([`Message::weight`] counts
//!   the bytes). A message over a limit is refused and the store is left unchanged; the publish
//!   itself still routes normally. The vhost counts refusals in `Metrics::retained_refused`.
//! - Bodies are shared: the store holds the published `Arc<Message>`.
//!
//! [`RetainedStore::matching`] scans every entry (linear in the store's size). That is acceptable
//! while subscribes are rare next to publishes; a trie of retained keys can replace the scan
//! behind the same method.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

use crate::message::{FieldValue, Headers, Message};
use crate::names::{ExchangeName, RoutingKeyText};

/// The header that asks for a message to be retained: `Bool(true)`, or the text `true`.
pub const RETAIN_HEADER: &str = "x-retain";

/// Default limit on the number of retained messages per vhost.
pub const DEFAULT_MAX_MESSAGES: usize = 100_000;

/// Default limit on the bytes ([`Message::weight`]) of retained messages per vhost: 256 MiB.
pub const DEFAULT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Whether `headers` ask for retention: [`RETAIN_HEADER`] is `Bool(true)` or the text `true`
/// (any case).
pub fn is_retain_requested(headers: &Headers) -> bool {
    match headers.get(RETAIN_HEADER) {
        Some(FieldValue::Bool(retain)) => *retain,
        Some(value) => value
            .as_str()
            .is_some_and(|text| text.trim().eq_ignore_ascii_case("true")),
        None => false,
    }
}

/// What [`RetainedStore::store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainOutcome {
    /// The message is now retained for its key (there was none before).
    Stored,
    /// The message replaced the one retained for its key.
    Replaced,
    /// The message had an empty body: the key's retained message, if any, was removed.
    Cleared,
    /// The store is full; nothing changed.
    Refused(RetainRefusal),
}

/// Why [`RetainedStore::store`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetainRefusal {
    /// Storing it would exceed the message limit.
    #[error("the retained-message limit is reached")]
    TooManyMessages,
    /// Storing it would exceed the byte limit.
    #[error("the retained-message byte limit would be exceeded")]
    TooManyBytes,
}

type Key = (ExchangeName, RoutingKeyText);

#[derive(Default)]
struct Entries {
    messages: HashMap<Key, Arc<Message>>,
    bytes: usize,
}

/// A vhost's retained messages. Thread-safe; every method takes `&self`.
pub struct RetainedStore {
    entries: RwLock<Entries>,
    max_messages: usize,
    max_bytes: usize,
}

impl std::fmt::Debug for RetainedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.entries.read();
        f.debug_struct("RetainedStore")
            .field("messages", &entries.messages.len())
            .field("bytes", &entries.bytes)
            .field("max_messages", &self.max_messages)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl Default for RetainedStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGES, DEFAULT_MAX_BYTES)
    }
}

impl RetainedStore {
    /// An empty store holding at most `max_messages` messages and `max_bytes` bytes.
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            entries: RwLock::new(Entries::default()),
            max_messages,
            max_bytes,
        }
    }

    /// Retains `message` for its (exchange, routing key), replacing the previous one; an empty
    /// body clears the key instead. Refuses, changing nothing, when the result would exceed a
    /// limit (a replacement counts its predecessor's bytes as freed).
    pub fn store(&self, message: &Arc<Message>) -> RetainOutcome {
        let key = (message.exchange.clone(), Arc::clone(&message.routing_key));
        let mut entries = self.entries.write();
        if message.body.is_empty() {
            if let Some(old) = entries.messages.remove(&key) {
                entries.bytes -= old.weight();
            }
            return RetainOutcome::Cleared;
        }
        let weight = message.weight();
        let (freed, count_after) = match entries.messages.get(&key) {
            Some(old) => (old.weight(), entries.messages.len()),
            None => (0, entries.messages.len() + 1),
        };
        if count_after > self.max_messages {
            return RetainOutcome::Refused(RetainRefusal::TooManyMessages);
        }
        if entries.bytes - freed + weight > self.max_bytes {
            return RetainOutcome::Refused(RetainRefusal::TooManyBytes);
        }
        entries.bytes = entries.bytes - freed + weight;
        match entries.messages.insert(key, Arc::clone(message)) {
            Some(_) => RetainOutcome::Replaced,
            None => RetainOutcome::Stored,
        }
    }

    /// The retained messages of `exchange` whose routing key matches the core topic `pattern`
    /// (`*` one word, `#` zero or more; see [`crate::routing::topic`]), ordered by routing key.
    pub fn matching(&self, exchange: &ExchangeName, pattern: &str) -> Vec<Arc<Message>> {
        let pattern: Vec<&str> = words(pattern).collect();
        let mut found: Vec<Arc<Message>> = self
            .entries
            .read()
            .messages
            .iter()
            .filter(|((name, key), _)| name == exchange && pattern_matches(&pattern, key))
            .map(|(_, message)| Arc::clone(message))
            .collect();
        found.sort_unstable_by(|a, b| a.routing_key.cmp(&b.routing_key));
        found
    }

    /// The message retained for exactly (`exchange`, `routing_key`).
    pub fn get(&self, exchange: &ExchangeName, routing_key: &str) -> Option<Arc<Message>> {
        let key = (exchange.clone(), RoutingKeyText::from(routing_key));
        self.entries.read().messages.get(&key).map(Arc::clone)
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.entries.read().messages.len()
    }

    /// True when nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held ([`Message::weight`] of each retained message).
    pub fn bytes(&self) -> usize {
        self.entries.read().bytes
    }
}

/// The words of a routing key or pattern; the empty text has none (the core's rule).
fn words(text: &str) -> impl Iterator<Item = &str> {
    (!text.is_empty())
        .then(|| text.split('.'))
        .into_iter()
        .flatten()
}

/// Whether `key` matches the pattern words: `*` one word (possibly empty), `#` zero or more.
///
/// Dynamic programming over pattern and key words, so repeated `#` never backtracks
/// exponentially: `reachable[j]` says whether the pattern prefix matched so far can end after
/// `j` key words.
fn pattern_matches(pattern: &[&str], key: &str) -> bool {
    let key: Vec<&str> = words(key).collect();
    let mut reachable = vec![false; key.len() + 1];
    reachable[0] = true;
    for segment in pattern {
        let mut next = vec![false; key.len() + 1];
        match *segment {
            "#" => {
                let mut any = false;
                for (j, slot) in next.iter_mut().enumerate() {
                    any |= reachable[j];
                    *slot = any;
                }
            }
            word => {
                for j in 0..key.len() {
                    next[j + 1] = reachable[j] && (word == "*" || word == key[j]);
                }
            }
        }
        reachable = next;
    }
    reachable[key.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn topic() -> ExchangeName {
        ExchangeName::new("amq.topic").unwrap()
    }

    fn message(key: &str, body: &'static str) -> Arc<Message> {
        Arc::new(Message::new(topic(), key, body))
    }

    fn keys(found: &[Arc<Message>]) -> Vec<&str> {
        found.iter().map(|m| &*m.routing_key).collect()
    }

    #[test]
    fn store_replace_and_clear() {
        let store = RetainedStore::default();
        let first = message("a.b", "one");
        assert_eq!(store.store(&first), RetainOutcome::Stored);
        assert_eq!(store.bytes(), first.weight());
        let second = message("a.b", "two, longer");
        assert_eq!(store.store(&second), RetainOutcome::Replaced);
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes(), second.weight());
        assert_eq!(store.get(&topic(), "a.b").unwrap().body, "two, longer");
        assert_eq!(store.store(&message("a.b", "")), RetainOutcome::Cleared);
        assert!(store.is_empty());
        assert_eq!(store.bytes(), 0);
        // Clearing a key that holds nothing is still `Cleared`, and harmless.
        assert_eq!(store.store(&message("x", "")), RetainOutcome::Cleared);
    }

    #[test]
    fn keys_are_per_exchange() {
        let store = RetainedStore::default();
        store.store(&message("k", "topic"));
        let other = ExchangeName::new("other").unwrap();
        store.store(&Arc::new(Message::new(other.clone(), "k", "other")));
        assert_eq!(store.len(), 2);
        assert_eq!(store.matching(&other, "#")[0].body, "other");
        assert_eq!(store.matching(&topic(), "k")[0].body, "topic");
    }

    #[test]
    fn message_limit_refuses_new_keys_but_allows_replacement() {
        let store = RetainedStore::new(1, DEFAULT_MAX_BYTES);
        assert_eq!(store.store(&message("a", "1")), RetainOutcome::Stored);
        assert_eq!(
            store.store(&message("b", "1")),
            RetainOutcome::Refused(RetainRefusal::TooManyMessages)
        );
        assert_eq!(store.store(&message("a", "2")), RetainOutcome::Replaced);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn byte_limit_counts_replaced_bytes_as_freed() {
        let small = message("a", "1234");
        let store = RetainedStore::new(10, small.weight() + 2);
        assert_eq!(store.store(&small), RetainOutcome::Stored);
        // Replacing with a message 2 bytes longer fits: the old one's bytes are freed.
        assert_eq!(
            store.store(&message("a", "123456")),
            RetainOutcome::Replaced
        );
        assert_eq!(
            store.store(&message("a", "1234567")),
            RetainOutcome::Refused(RetainRefusal::TooManyBytes)
        );
        // Refused changed nothing.
        assert_eq!(store.get(&topic(), "a").unwrap().body, "123456");
        assert_eq!(
            store.store(&message("b", "1")),
            RetainOutcome::Refused(RetainRefusal::TooManyBytes)
        );
        assert_eq!(store.bytes(), message("a", "123456").weight());
    }

    #[test]
    fn matching_uses_core_topic_semantics() {
        let store = RetainedStore::default();
        for key in ["a", "a.b", "a.b.c", "b.a", "a..c", ""] {
            store.store(&message(key, "x"));
        }
        let t = topic();
        assert_eq!(
            keys(&store.matching(&t, "a.#")),
            ["a", "a..c", "a.b", "a.b.c"]
        );
        assert_eq!(keys(&store.matching(&t, "a.*")), ["a.b"]);
        assert_eq!(keys(&store.matching(&t, "a.*.c")), ["a..c", "a.b.c"]);
        assert_eq!(keys(&store.matching(&t, "#.a")), ["a", "b.a"]);
        assert_eq!(keys(&store.matching(&t, "*")), ["a"]);
        assert_eq!(keys(&store.matching(&t, "")), [""]);
        assert_eq!(store.matching(&t, "#").len(), 6);
        assert!(store.matching(&t, "z.#").is_empty());
    }

    #[test]
    fn retain_header_values() {
        let mut headers = Headers::new();
        assert!(!is_retain_requested(&headers));
        headers.insert(RETAIN_HEADER, true);
        assert!(is_retain_requested(&headers));
        headers.insert(RETAIN_HEADER, false);
        assert!(!is_retain_requested(&headers));
        headers.insert(RETAIN_HEADER, "TRUE");
        assert!(is_retain_requested(&headers));
        headers.insert(RETAIN_HEADER, "yes");
        assert!(!is_retain_requested(&headers));
        headers.insert(RETAIN_HEADER, 1i64);
        assert!(!is_retain_requested(&headers));
    }

    #[test]
    fn many_hashes_do_not_backtrack() {
        let key = vec!["w"; 200].join(".");
        let pattern = vec!["#"; 100].join(".") + ".x";
        let pattern: Vec<&str> = words(&pattern).collect();
        assert!(!pattern_matches(&pattern, &key));
    }

    /// The trie the exchanges route with, as the reference matcher.
    fn trie_matches(pattern: &str, key: &str) -> bool {
        let trie = crate::routing::TopicTrie::with_cache_capacity(0);
        trie.insert(pattern, 1u32);
        !trie.matches(key).is_empty()
    }

    proptest! {
        #[test]
        fn agrees_with_the_routing_trie(
            pattern in prop::collection::vec(prop_oneof!["[ab]?", Just("*".to_owned()), Just("#".to_owned())], 0..5),
            key in prop::collection::vec("[ab]?", 0..5),
        ) {
            let pattern = pattern.join(".");
            let key = key.join(".");
            let words: Vec<&str> = words(&pattern).collect();
            prop_assert_eq!(pattern_matches(&words, &key), trie_matches(&pattern, &key));
        }
    }
}
