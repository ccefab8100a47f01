//! A vhost: a namespace of exchanges and queues, and the routing of publishes through them.
//!
//! Invariants:
//! - Every vhost has the default exchange `""` (routes to the queue named by the key; cannot be
//!   bound, declared or deleted) and the built-ins `amq.direct`, `amq.fanout`, `amq.topic`,
//!   `amq.headers`; names starting with `amq.` cannot be created by clients.
//! - A route visits each exchange at most once (exchange-to-exchange cycles end), delivers at
//!   most one copy per queue, and falls back to an exchange's alternate exchange only when that
//!   exchange routed the message nowhere.
//! - Deleting a queue removes every binding to it; deleting an exchange removes its bindings and
//!   every binding to it; an auto-delete exchange goes with its last binding as a source.
//! - Exclusive queues are usable only by their owning connection and die with it.
//!
//! The methods are split by concern: `declare.rs` (exchanges and queues, with
//! RabbitMQ's equivalence rules), `bind.rs`, and `publish.rs` (routing and dead letters).

mod bind;
mod declare;
mod publish;

use dashmap::DashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::declare::ExchangeKind;
use crate::errors::QueueAccessError;
use crate::exchange::{Destination, Exchange};
use crate::message::Headers;
use crate::metrics::Metrics;
use crate::names::{ConnectionId, ExchangeName, QueueName, VhostName};
use crate::queue::{DeadLetterSink, Queue};
use crate::retained::RetainedStore;
use crate::services::Services;

/// What a publish reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// How many queues received a copy; 0 means unroutable (AMQP `basic.return` if mandatory).
    pub queues: usize,
}

/// A vhost. Shared by `Arc`.
pub struct Vhost {
    name: VhostName,
    services: Arc<Services>,
    exchanges: DashMap<ExchangeName, Arc<Exchange>>,
    queues: DashMap<QueueName, Arc<Queue>>,
    dead_letters: Arc<dyn DeadLetterSink>,
    retained: RetainedStore,
}

const BUILT_INS: [(&str, ExchangeKind); 4] = [
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
];

impl std::fmt::Debug for Vhost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vhost")
            .field("name", &self.name)
            .field("exchanges", &self.exchanges.len())
            .field("queues", &self.queues.len())
            .finish()
    }
}

impl Vhost {
    pub(crate) fn new(name: VhostName, services: Arc<Services>) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Vhost>| {
            let exchanges = DashMap::new();
            for (built_in, kind) in BUILT_INS {
                if let Ok(name) = ExchangeName::new(built_in) {
                    let exchange =
                        Exchange::new(name.clone(), kind, true, false, false, Headers::new(), None);
                    exchanges.insert(name, Arc::new(exchange));
                }
            }
            Vhost {
                name,
                services,
                exchanges,
                queues: DashMap::new(),
                dead_letters: Arc::new(publish::VhostDeadLetters {
                    vhost: Weak::clone(me),
                }),
                retained: RetainedStore::default(),
            }
        })
    }

    /// The vhost's name.
    pub fn name(&self) -> &VhostName {
        &self.name
    }

    /// The broker's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.services.metrics
    }

    /// The vhost's retained messages (stored by [`Vhost::publish`] from the `x-retain` header).
    pub fn retained(&self) -> &RetainedStore {
        &self.retained
    }

    /// The exchange named `name` (not the default exchange, which has no object).
    pub fn exchange(&self, name: &ExchangeName) -> Option<Arc<Exchange>> {
        self.exchanges.get(name).map(|e| Arc::clone(e.value()))
    }

    /// The queue named `name`, whoever owns it.
    pub fn queue(&self, name: &QueueName) -> Option<Arc<Queue>> {
        self.queues.get(name).map(|q| Arc::clone(q.value()))
    }

    /// Every queue, for listing and sweeps.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.iter().map(|q| Arc::clone(q.value())).collect()
    }

    /// Every exchange (not the default one).
    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges
            .iter()
            .map(|e| Arc::clone(e.value()))
            .collect()
    }

    /// The queue, if `accessor` may use it (`None` is the system: config and tests).
    pub fn queue_for(
        &self,
        name: &QueueName,
        accessor: Option<ConnectionId>,
    ) -> Result<Arc<Queue>, QueueAccessError> {
        let queue = self.queue(name).ok_or_else(|| QueueAccessError::NotFound {
            queue: name.clone(),
            vhost: self.name.clone(),
        })?;
        match (queue.config().exclusive_owner, accessor) {
            (Some(owner), Some(accessor)) if owner != accessor => Err(QueueAccessError::Locked {
                queue: name.clone(),
                vhost: self.name.clone(),
            }),
            _ => Ok(queue),
        }
    }

    /// Removes a queue the engine decided to delete (auto-delete, exclusive owner gone, expiry).
    pub(crate) fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        let removed = self
            .queues
            .remove_if(queue.name(), |_, current| Arc::ptr_eq(current, queue));
        if removed.is_none() {
            return 0;
        }
        self.remove_bindings_to(&Destination::Queue(queue.name().clone()));
        let count = queue.delete();
        tracing::debug!(vhost = %self.name, queue = %queue.name(), messages = count, "queue deleted");
        count
    }

    fn remove_bindings_to(&self, destination: &Destination) {
        let mut emptied = Vec::new();
        for exchange in self.exchanges.iter() {
            if exchange.unbind_destination(destination) > 0
                && exchange.auto_delete
                && exchange.binding_count() == 0
            {
                emptied.push(exchange.name.clone());
            }
        }
        for name in emptied {
            self.delete_auto_exchange(&name);
        }
    }

    fn delete_auto_exchange(&self, name: &ExchangeName) {
        if self
            .exchanges
            .remove_if(name, |_, e| e.auto_delete && e.binding_count() == 0)
            .is_some()
        {
            tracing::debug!(vhost = %self.name, exchange = %name, "auto-delete exchange deleted");
            self.remove_bindings_to(&Destination::Exchange(name.clone()));
        }
    }

    /// Expires messages and deletes queues unused past their `x-expires`.
    pub fn sweep(&self, now: Instant) {
        for queue in self.queues() {
            queue.expire(now);
            if queue.is_unused_expired(now) {
                tracing::info!(vhost = %self.name, queue = %queue.name(), "queue expired (x-expires)");
                self.remove_queue(&queue);
            }
        }
    }

    /// Deletes the exclusive queues of a connection that closed.
    pub fn connection_closed(&self, connection: ConnectionId) {
        let owned: Vec<_> = self
            .queues
            .iter()
            .filter(|q| q.config().exclusive_owner == Some(connection))
            .map(|q| Arc::clone(q.value()))
            .collect();
        for queue in owned {
            self.remove_queue(&queue);
        }
    }
}
