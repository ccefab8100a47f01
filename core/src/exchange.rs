//! Exchanges: a name, a routing algorithm, and the bindings that lead from it to queues and
//! other exchanges.
//!
//! Invariants:
//! - A binding's identity is (destination, key, arguments), as in RabbitMQ: binding twice is a
//!   no-op, and unbinding needs the same three.
//! - Topic bindings live in a [`TopicTrie`] (with its result cache); direct bindings in a map by
//!   key; fanout and headers bindings in a list. All kinds keep the full list for listing and
//!   for removing every binding to a deleted destination.
//! - The tag filter (binding argument `x-tag-filter`) is checked after the kind's own match, so
//!   the trie's cached results stay valid whatever the message's tags.
//! - The default exchange has no table: the vhost routes it by queue name.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::declare::{ExchangeKind, TAG_FILTER_ARGUMENT};
use crate::message::{FieldValue, Headers, Message};
use crate::names::{ExchangeName, QueueName};
use crate::routing::headers_match::HeadersBinding;
use crate::routing::tags::TagFilter;
use crate::routing::topic::TopicTrie;

/// Where a binding leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// A queue.
    Queue(QueueName),
    /// Another exchange (exchange-to-exchange binding).
    Exchange(ExchangeName),
}

/// Binding arguments the exchange could not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingArgumentError {
    /// `x-tag-filter` is not a valid expression.
    #[error("invalid tag filter: {0}")]
    TagFilter(String),
    /// Headers-exchange arguments are invalid (e.g. a bad `x-match`).
    #[error("invalid headers binding: {0}")]
    Headers(String),
}

/// One binding.
#[derive(Debug)]
pub struct Binding {
    id: u64,
    /// Where it leads.
    pub destination: Destination,
    /// The binding key or topic pattern.
    pub key: String,
    /// The arguments it was made with.
    pub arguments: Headers,
    tags: Option<TagFilter>,
    headers: Option<HeadersBinding>,
}

impl Binding {
    fn accepts_tags(&self, message: &Message) -> bool {
        self.tags
            .as_ref()
            .is_none_or(|filter| filter.matches_message(message))
    }
}

/// A trie value: the binding, compared by its id so the trie can dedupe and remove it.
#[derive(Debug, Clone)]
struct TrieEntry(Arc<Binding>);

impl PartialEq for TrieEntry {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for TrieEntry {}

impl Hash for TrieEntry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

#[derive(Debug, Default)]
struct BindingTable {
    all: Vec<Arc<Binding>>,
    by_key: HashMap<String, Vec<Arc<Binding>>>,
}

/// An exchange.
#[derive(Debug)]
pub struct Exchange {
    /// Its name.
    pub name: ExchangeName,
    /// Its routing algorithm.
    pub kind: ExchangeKind,
    /// Declared durable.
    pub durable: bool,
    /// Deleted when its last binding as a source goes.
    pub auto_delete: bool,
    /// Only reachable through exchange-to-exchange bindings.
    pub internal: bool,
    /// The arguments it was declared with.
    pub arguments: Headers,
    /// Where messages it cannot route go (`alternate-exchange`).
    pub alternate: Option<ExchangeName>,
    table: RwLock<BindingTable>,
    topic: TopicTrie<TrieEntry>,
    next_id: AtomicU64,
}

/// The argument naming an alternate exchange.
pub const ALTERNATE_EXCHANGE_ARGUMENT: &str = "alternate-exchange";

impl Exchange {
    /// A new exchange with no bindings. `alternate` comes from the `alternate-exchange` argument.
    pub fn new(
        name: ExchangeName,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: Headers,
        alternate: Option<ExchangeName>,
    ) -> Self {
        Self {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate,
            table: RwLock::new(BindingTable::default()),
            topic: TopicTrie::new(),
            next_id: AtomicU64::new(1),
        }
    }

    /// Adds a binding; returns false if the same binding existed already.
    pub fn bind(
        &self,
        destination: Destination,
        key: &str,
        arguments: &Headers,
    ) -> Result<bool, BindingArgumentError> {
        let tags = match arguments.get(TAG_FILTER_ARGUMENT) {
            None => None,
            Some(value) => {
                let text = value.as_str().ok_or_else(|| {
                    BindingArgumentError::TagFilter(format!(
                        "'{TAG_FILTER_ARGUMENT}' must be a string, got {}",
                        value.to_text()
                    ))
                })?;
                let filter = TagFilter::parse(text)
                    .map_err(|e| BindingArgumentError::TagFilter(e.to_string()))?;
                (!filter.is_all()).then_some(filter)
            }
        };
        let headers = match self.kind {
            ExchangeKind::Headers => {
                // The tag filter is ours, not a header condition, even under `all-with-x`.
                let mut conditions = arguments.clone();
                conditions.remove(TAG_FILTER_ARGUMENT);
                Some(
                    HeadersBinding::parse(&conditions)
                        .map_err(|e| BindingArgumentError::Headers(e.to_string()))?,
                )
            }
            _ => None,
        };
        let mut table = self.table.write();
        if table
            .all
            .iter()
            .any(|b| b.destination == destination && b.key == key && b.arguments == *arguments)
        {
            return Ok(false);
        }
        let binding = Arc::new(Binding {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            destination,
            key: key.to_owned(),
            arguments: arguments.clone(),
            tags,
            headers,
        });
        match self.kind {
            ExchangeKind::Topic => {
                self.topic.insert(key, TrieEntry(Arc::clone(&binding)));
            }
            ExchangeKind::Direct => table
                .by_key
                .entry(key.to_owned())
                .or_default()
                .push(Arc::clone(&binding)),
            ExchangeKind::Fanout | ExchangeKind::Headers => {}
        }
        table.all.push(binding);
        Ok(true)
    }

    /// Removes a binding; returns false if there was no such binding.
    pub fn unbind(&self, destination: &Destination, key: &str, arguments: &Headers) -> bool {
        let mut table = self.table.write();
        let Some(index) = table.all.iter().position(|b| {
            b.destination == *destination && b.key == key && b.arguments == *arguments
        }) else {
            return false;
        };
        let binding = table.all.remove(index);
        self.forget(&mut table, &binding);
        true
    }

    /// Removes every binding leading to `destination` (it was deleted); returns how many.
    pub fn unbind_destination(&self, destination: &Destination) -> usize {
        let mut table = self.table.write();
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut table.all)
            .into_iter()
            .partition(|b| b.destination == *destination);
        table.all = kept;
        for binding in &gone {
            self.forget(&mut table, binding);
        }
        gone.len()
    }

    fn forget(&self, table: &mut BindingTable, binding: &Arc<Binding>) {
        match self.kind {
            ExchangeKind::Topic => {
                self.topic
                    .remove(&binding.key, &TrieEntry(Arc::clone(binding)));
            }
            ExchangeKind::Direct => {
                if let Some(list) = table.by_key.get_mut(&binding.key) {
                    list.retain(|b| b.id != binding.id);
                    if list.is_empty() {
                        table.by_key.remove(&binding.key);
                    }
                }
            }
            ExchangeKind::Fanout | ExchangeKind::Headers => {}
        }
    }

    /// Number of bindings from this exchange.
    pub fn binding_count(&self) -> usize {
        self.table.read().all.len()
    }

    /// Every binding from this exchange, in the order they were made.
    pub fn bindings(&self) -> Vec<Arc<Binding>> {
        self.table.read().all.clone()
    }

    /// Appends the destinations this exchange's own bindings give `message` (duplicates possible;
    /// the vhost dedupes across the whole route).
    pub fn route(&self, message: &Message, out: &mut Vec<Destination>) {
        match self.kind {
            ExchangeKind::Topic => {
                for entry in self.topic.matches(&message.routing_key).iter() {
                    if entry.0.accepts_tags(message) {
                        out.push(entry.0.destination.clone());
                    }
                }
            }
            ExchangeKind::Direct => {
                let table = self.table.read();
                if let Some(list) = table.by_key.get(&*message.routing_key) {
                    out.extend(
                        list.iter()
                            .filter(|b| b.accepts_tags(message))
                            .map(|b| b.destination.clone()),
                    );
                }
            }
            ExchangeKind::Fanout => {
                let table = self.table.read();
                out.extend(
                    table
                        .all
                        .iter()
                        .filter(|b| b.accepts_tags(message))
                        .map(|b| b.destination.clone()),
                );
            }
            ExchangeKind::Headers => {
                let table = self.table.read();
                out.extend(
                    table
                        .all
                        .iter()
                        .filter(|b| {
                            b.headers
                                .as_ref()
                                .is_some_and(|h| h.matches(&message.headers))
                                && b.accepts_tags(message)
                        })
                        .map(|b| b.destination.clone()),
                );
            }
        }
    }
}

/// Reads the `alternate-exchange` argument.
pub fn alternate_exchange(arguments: &Headers) -> Result<Option<ExchangeName>, String> {
    match arguments.get(ALTERNATE_EXCHANGE_ARGUMENT) {
        None => Ok(None),
        Some(FieldValue::Str(name)) => ExchangeName::new(name)
            .map(Some)
            .map_err(|e| format!("invalid '{ALTERNATE_EXCHANGE_ARGUMENT}': {e}")),
        Some(other) => Err(format!(
            "'{ALTERNATE_EXCHANGE_ARGUMENT}' must be a string, got {}",
            other.to_text()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(kind: ExchangeKind) -> Exchange {
        Exchange::new(
            ExchangeName::new("x").unwrap(),
            kind,
            false,
            false,
            false,
            Headers::new(),
            None,
        )
    }

    fn queue(name: &str) -> Destination {
        Destination::Queue(QueueName::new(name).unwrap())
    }

    fn routed(exchange: &Exchange, message: &Message) -> Vec<Destination> {
        let mut out = Vec::new();
        exchange.route(message, &mut out);
        out
    }

    fn message(key: &str) -> Message {
        Message::new(ExchangeName::new("x").unwrap(), key, "body")
    }

    #[test]
    fn direct_routes_by_exact_key() {
        let x = exchange(ExchangeKind::Direct);
        assert!(x.bind(queue("q1"), "k", &Headers::new()).unwrap());
        assert!(!x.bind(queue("q1"), "k", &Headers::new()).unwrap(), "no-op");
        x.bind(queue("q2"), "other", &Headers::new()).unwrap();
        assert_eq!(routed(&x, &message("k")), vec![queue("q1")]);
        assert!(x.unbind(&queue("q1"), "k", &Headers::new()));
        assert!(routed(&x, &message("k")).is_empty());
    }

    #[test]
    fn fanout_ignores_key() {
        let x = exchange(ExchangeKind::Fanout);
        x.bind(queue("q1"), "", &Headers::new()).unwrap();
        x.bind(queue("q2"), "whatever", &Headers::new()).unwrap();
        assert_eq!(routed(&x, &message("k")).len(), 2);
    }

    #[test]
    fn topic_uses_wildcards_and_unbind_destination_clears() {
        let x = exchange(ExchangeKind::Topic);
        x.bind(queue("q1"), "a.*", &Headers::new()).unwrap();
        x.bind(queue("q2"), "a.#", &Headers::new()).unwrap();
        assert_eq!(routed(&x, &message("a.b")).len(), 2);
        assert_eq!(routed(&x, &message("a")), vec![queue("q2")]);
        assert_eq!(x.unbind_destination(&queue("q2")), 1);
        assert!(routed(&x, &message("a")).is_empty());
        assert_eq!(routed(&x, &message("a.b")), vec![queue("q1")]);
    }

    #[test]
    fn headers_match_all_and_any() {
        let x = exchange(ExchangeKind::Headers);
        let mut all = Headers::new();
        all.insert("x-match", "all");
        all.insert("a", "1");
        all.insert("b", "2");
        let mut any = Headers::new();
        any.insert("x-match", "any");
        any.insert("a", "1");
        any.insert("b", "2");
        x.bind(queue("all"), "", &all).unwrap();
        x.bind(queue("any"), "", &any).unwrap();
        let mut m = message("");
        m.headers.insert("a", "1");
        assert_eq!(routed(&x, &m), vec![queue("any")]);
        m.headers.insert("b", "2");
        assert_eq!(routed(&x, &m).len(), 2);
    }

    #[test]
    fn tag_filter_on_binding() {
        let x = exchange(ExchangeKind::Topic);
        let mut args = Headers::new();
        args.insert(TAG_FILTER_ARGUMENT, "TagA || TagB");
        x.bind(queue("tagged"), "#", &args).unwrap();
        x.bind(queue("all"), "#", &Headers::new()).unwrap();
        let mut m = message("k");
        assert_eq!(routed(&x, &m), vec![queue("all")], "untagged message");
        m.headers.insert(crate::message::TAGS_HEADER, "TagB");
        assert_eq!(routed(&x, &m).len(), 2);
        m.headers.insert(crate::message::TAGS_HEADER, "TagC");
        assert_eq!(routed(&x, &m), vec![queue("all")]);
    }

    #[test]
    fn tag_filter_is_not_a_header_condition_under_all_with_x() {
        let x = exchange(ExchangeKind::Headers);
        let mut args = Headers::new();
        args.insert("x-match", "all-with-x");
        args.insert("kind", "alert");
        args.insert(TAG_FILTER_ARGUMENT, "Urgent");
        x.bind(queue("q"), "", &args).unwrap();
        let mut m = message("");
        m.headers.insert("kind", "alert");
        m.headers.insert(crate::message::TAGS_HEADER, "Urgent");
        assert_eq!(routed(&x, &m), vec![queue("q")]);
    }

    #[test]
    fn bad_tag_filter_is_refused() {
        let x = exchange(ExchangeKind::Topic);
        let mut args = Headers::new();
        args.insert(TAG_FILTER_ARGUMENT, "A || ");
        assert!(matches!(
            x.bind(queue("q"), "#", &args),
            Err(BindingArgumentError::TagFilter(_))
        ));
        args.insert(TAG_FILTER_ARGUMENT, 5i64);
        assert!(x.bind(queue("q"), "#", &args).is_err());
    }
}
