//! mqgate-core: the one queue engine behind every protocol adapter.
//!
//! The flow it serves: an adapter's session turns a client's publish into a [`message::Message`]
//! and calls [`session::Session::publish`]; the vhost routes it through exchanges and bindings
//! ([`routing`]) to queues ([`queue`]); each queue stores it, confirms it through
//! [`confirm`] once stored ([`storage`]), and hands it to consumers as [`outbox::Event`]s that the
//! adapter's session turns back into frames. Nothing here knows a socket or a protocol frame.
//!
//! Invariants worth naming:
//! - A body is never copied per subscriber: messages travel as `Arc<Message>` with `Bytes` bodies.
//! - Nothing grows without a bound: queues have their limits and overflow policies, a session's
//!   outbox holds at most its transit window of deliveries, and the memory monitor blocks
//!   publishers above the high watermark. Every drop and block is counted in [`metrics`].
//! - A publish that asked for confirmation is always settled: confirmed once every target queue
//!   holds it, or rejected; never left pending.
//! - Locks: a queue's lock is never held while calling into another queue or an exchange;
//!   dead letters are routed after the queue's lock is released.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod broker;
pub mod confirm;
pub mod dead_letter;
pub mod declare;
pub mod errors;
mod event_queue;
pub mod exchange;
pub mod groups;
pub mod memory;
pub mod message;
pub mod metrics;
pub mod names;
pub mod outbox;
pub mod queue;
pub mod retained;
pub mod routing;
mod services;
pub mod session;
pub mod storage;
pub mod vhost;

pub use broker::{Broker, BrokerConfig};
pub use session::{Connection, ConsumeRequest, Session};
pub use vhost::Vhost;
