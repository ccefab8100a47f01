//! Routing: deciding which bindings a published message satisfies.
//!
//! Three independent matchers, one per kind of binding condition, none of which knows a queue, an
//! exchange or a protocol; the vhost's exchanges combine them:
//! - [`topic`]: routing key against `*`/`#` patterns ([`TopicTrie`]), for `topic` exchanges and
//!   every adapter's subscriptions (MQTT filters and STOMP `/topic/` are translated to this syntax
//!   at the adapter's edge);
//! - [`headers_match`]: message headers against binding arguments ([`HeadersBinding`]), for
//!   `headers` exchanges;
//! - [`tags`]: message tags (header `x-tags`) against a RocketMQ-style filter ([`TagFilter`]),
//!   an optional extra condition on any binding.
//!
//! Invariants: every matcher is a pure function of its binding and the message (the trie's cache
//! never changes an answer), and each parses its binding once, at bind time, so that routing a
//! message never fails.

pub mod headers_match;
pub mod tags;
pub mod topic;

pub use headers_match::{HeadersBinding, HeadersBindingError};
pub use tags::{TagFilter, TagFilterError};
pub use topic::TopicTrie;
