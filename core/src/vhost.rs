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

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::sync::{Arc, Weak};
use std::time::Instant;

use crate::confirm::{Completion, ConfirmTracker};
use crate::dead_letter::{dead_letter_copy, is_cycle};
use crate::declare::{
    BindingDeclaration, ExchangeDeclaration, ExchangeKind, QueueDeclaration, QueueDeclared,
};
use crate::errors::{
    BindError, DeclareExchangeError, DeclareQueueError, DeleteExchangeError, DeleteQueueError,
    PublishError, QueueAccessError,
};
use crate::exchange::{alternate_exchange, Destination, Exchange};
use crate::message::{Headers, Message};
use crate::metrics::Metrics;
use crate::names::{ConnectionId, ExchangeName, QueueName, VhostName};
use crate::queue::{DeadLetter, DeadLetterSink, Queue, QueueArguments, QueueConfig, QueueEnv};
use crate::services::Services;
use crate::storage::QueueKey;

/// The queue arguments compared when a queue is declared again (RabbitMQ's list).
const EQUIVALENCE_ARGUMENTS: [&str; 9] = [
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-single-active-consumer",
];

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
                dead_letters: Arc::new(VhostDeadLetters {
                    vhost: Weak::clone(me),
                }),
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

    /// `exchange.declare`.
    pub fn declare_exchange(
        &self,
        declaration: ExchangeDeclaration,
    ) -> Result<(), DeclareExchangeError> {
        let name = declaration.name.clone();
        if name.is_default() {
            return Err(DeclareExchangeError::ReservedName { exchange: name });
        }
        if declaration.passive {
            return match self.exchange(&name) {
                Some(_) => Ok(()),
                None => Err(DeclareExchangeError::NotFound {
                    exchange: name,
                    vhost: self.name.clone(),
                }),
            };
        }
        let alternate = alternate_exchange(&declaration.arguments).map_err(|reason| {
            DeclareExchangeError::InvalidArgument {
                exchange: name.clone(),
                vhost: self.name.clone(),
                reason,
            }
        })?;
        match self.exchanges.entry(name.clone()) {
            Entry::Occupied(existing) => self.check_equivalent(existing.get(), &declaration),
            Entry::Vacant(slot) => {
                if name.as_str().starts_with("amq.") {
                    return Err(DeclareExchangeError::ReservedName { exchange: name });
                }
                slot.insert(Arc::new(Exchange::new(
                    name,
                    declaration.kind,
                    declaration.durable,
                    declaration.auto_delete,
                    declaration.internal,
                    declaration.arguments,
                    alternate,
                )));
                Ok(())
            }
        }
    }

    fn check_equivalent(
        &self,
        existing: &Exchange,
        declaration: &ExchangeDeclaration,
    ) -> Result<(), DeclareExchangeError> {
        let differs = |field: &'static str, received: String, current: String| {
            DeclareExchangeError::Inequivalent {
                exchange: existing.name.clone(),
                vhost: self.name.clone(),
                field,
                received,
                current,
            }
        };
        if existing.kind != declaration.kind {
            return Err(differs(
                "type",
                format!("'{}'", declaration.kind),
                format!("'{}'", existing.kind),
            ));
        }
        for (field, received, current) in [
            ("durable", declaration.durable, existing.durable),
            ("auto_delete", declaration.auto_delete, existing.auto_delete),
            ("internal", declaration.internal, existing.internal),
        ] {
            if received != current {
                return Err(differs(
                    field,
                    format!("'{received}'"),
                    format!("'{current}'"),
                ));
            }
        }
        let received = alternate_exchange(&declaration.arguments).ok().flatten();
        if received != existing.alternate {
            return Err(differs(
                "alternate-exchange",
                format!("{received:?}"),
                format!("{:?}", existing.alternate),
            ));
        }
        Ok(())
    }

    /// `exchange.delete`.
    pub fn delete_exchange(
        &self,
        name: &ExchangeName,
        if_unused: bool,
    ) -> Result<(), DeleteExchangeError> {
        if name.is_default() || BUILT_INS.iter().any(|(n, _)| *n == name.as_str()) {
            return Err(DeleteExchangeError::BuiltIn {
                exchange: name.clone(),
                vhost: self.name.clone(),
            });
        }
        let removed = self.exchanges.remove_if(name, |_, exchange| {
            !if_unused || exchange.binding_count() == 0
        });
        match removed {
            Some(_) => {
                self.remove_bindings_to(&Destination::Exchange(name.clone()));
                Ok(())
            }
            None if self.exchanges.contains_key(name) => Err(DeleteExchangeError::InUse {
                exchange: name.clone(),
                vhost: self.name.clone(),
            }),
            None => Err(DeleteExchangeError::NotFound {
                exchange: name.clone(),
                vhost: self.name.clone(),
            }),
        }
    }

    /// `queue.declare`; `owner` is the declaring connection (`None` for the system).
    pub fn declare_queue(
        &self,
        declaration: QueueDeclaration,
        owner: Option<ConnectionId>,
    ) -> Result<QueueDeclared, DeclareQueueError> {
        let now = Instant::now();
        let name = match declaration.name.clone() {
            Some(name) if !name.as_str().is_empty() => name,
            Some(empty) if declaration.passive => {
                return Err(QueueAccessError::NotFound {
                    queue: empty,
                    vhost: self.name.clone(),
                }
                .into())
            }
            _ => QueueName::generated(),
        };
        if declaration.passive {
            let queue = self.queue_for(&name, owner)?;
            return Ok(declared(&queue));
        }
        let arguments = QueueArguments::parse(&declaration.arguments).map_err(|e| {
            DeclareQueueError::InvalidArgument {
                queue: name.clone(),
                vhost: self.name.clone(),
                reason: e.to_string(),
            }
        })?;
        match self.queues.entry(name.clone()) {
            Entry::Occupied(existing) => {
                let queue = Arc::clone(existing.get());
                drop(existing);
                let queue = self.queue_for(queue.name(), owner).map(|_| queue)?;
                self.check_queue_equivalent(&queue, &declaration, owner)?;
                queue.touch(now);
                Ok(declared(&queue))
            }
            Entry::Vacant(slot) => {
                if name.as_str().starts_with("amq.") && declaration.name.is_some() {
                    return Err(DeclareQueueError::ReservedName { queue: name });
                }
                let config = QueueConfig {
                    key: QueueKey {
                        vhost: self.name.clone(),
                        queue: name.clone(),
                    },
                    durable: declaration.durable,
                    exclusive_owner: if declaration.exclusive { owner } else { None },
                    auto_delete: declaration.auto_delete,
                    arguments,
                    declared_arguments: declaration.arguments,
                };
                let queue = Queue::new(config, self.queue_env(), now);
                slot.insert(Arc::clone(&queue));
                tracing::debug!(vhost = %self.name, queue = %name, "queue declared");
                Ok(declared(&queue))
            }
        }
    }

    fn check_queue_equivalent(
        &self,
        queue: &Queue,
        declaration: &QueueDeclaration,
        owner: Option<ConnectionId>,
    ) -> Result<(), DeclareQueueError> {
        let config = queue.config();
        let differs =
            |field: &str, received: String, current: String| DeclareQueueError::Inequivalent {
                queue: queue.name().clone(),
                vhost: self.name.clone(),
                field: field.to_owned(),
                received,
                current,
            };
        let exclusive_now = config.exclusive_owner.is_some();
        let exclusive_asked = declaration.exclusive && owner.is_some();
        for (field, received, current) in [
            ("durable", declaration.durable, config.durable),
            ("exclusive", exclusive_asked, exclusive_now),
            ("auto_delete", declaration.auto_delete, config.auto_delete),
        ] {
            if received != current {
                return Err(differs(
                    field,
                    format!("'{received}'"),
                    format!("'{current}'"),
                ));
            }
        }
        // RabbitMQ compares the arguments it understands; unknown ones are ignored both ways.
        for key in EQUIVALENCE_ARGUMENTS {
            let received = declaration.arguments.get(key);
            let current = config.declared_arguments.get(key);
            let same = match (received, current) {
                (None, None) => true,
                (Some(a), Some(b)) => a == b || (a.as_i64().is_some() && a.as_i64() == b.as_i64()),
                _ => false,
            };
            if !same {
                return Err(differs(
                    key,
                    received.map_or("none".into(), |v| format!("'{}'", v.to_text())),
                    current.map_or("none".into(), |v| format!("'{}'", v.to_text())),
                ));
            }
        }
        Ok(())
    }

    fn queue_env(&self) -> QueueEnv {
        QueueEnv {
            metrics: Arc::clone(&self.services.metrics),
            memory: Arc::clone(&self.services.memory),
            storage: Arc::clone(&self.services.storage),
            dead_letters: Arc::clone(&self.dead_letters),
        }
    }

    /// `queue.delete`: returns the number of ready messages deleted with it.
    pub fn delete_queue(
        &self,
        name: &QueueName,
        accessor: Option<ConnectionId>,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u32, DeleteQueueError> {
        let queue = self.queue_for(name, accessor)?;
        let stats = queue.stats();
        if if_unused && stats.consumers > 0 {
            return Err(DeleteQueueError::InUse {
                queue: name.clone(),
                vhost: self.name.clone(),
            });
        }
        if if_empty && stats.ready > 0 {
            return Err(DeleteQueueError::NotEmpty {
                queue: name.clone(),
                vhost: self.name.clone(),
            });
        }
        Ok(self.remove_queue(&queue))
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

    /// `queue.purge`: returns how many ready messages were removed.
    pub fn purge_queue(
        &self,
        name: &QueueName,
        accessor: Option<ConnectionId>,
    ) -> Result<u32, QueueAccessError> {
        Ok(self.queue_for(name, accessor)?.purge())
    }

    fn source_exchange(&self, name: &ExchangeName) -> Result<Arc<Exchange>, BindError> {
        if name.is_default() {
            return Err(BindError::DefaultExchange);
        }
        self.exchange(name)
            .ok_or_else(|| BindError::SourceNotFound {
                exchange: name.clone(),
                vhost: self.name.clone(),
            })
    }

    fn binding_target(
        &self,
        binding: &BindingDeclaration,
        to_queue: bool,
        accessor: Option<ConnectionId>,
    ) -> Result<Destination, BindError> {
        if to_queue {
            let name = QueueName::new(&binding.destination)
                .map_err(|e| BindError::InvalidName(e.to_string()))?;
            self.queue_for(&name, accessor)?;
            Ok(Destination::Queue(name))
        } else {
            let name = ExchangeName::new(&binding.destination)
                .map_err(|e| BindError::InvalidName(e.to_string()))?;
            if name.is_default() {
                return Err(BindError::DefaultExchange);
            }
            if self.exchange(&name).is_none() {
                return Err(BindError::DestinationNotFound {
                    exchange: name,
                    vhost: self.name.clone(),
                });
            }
            Ok(Destination::Exchange(name))
        }
    }

    fn bind(
        &self,
        binding: &BindingDeclaration,
        to_queue: bool,
        accessor: Option<ConnectionId>,
    ) -> Result<(), BindError> {
        let source = self.source_exchange(&binding.source)?;
        let destination = self.binding_target(binding, to_queue, accessor)?;
        source
            .bind(destination, &binding.routing_key, &binding.arguments)
            .map(|_| ())
            .map_err(|e| BindError::InvalidArgument {
                exchange: binding.source.clone(),
                vhost: self.name.clone(),
                reason: e.to_string(),
            })
    }

    fn unbind(
        &self,
        binding: &BindingDeclaration,
        to_queue: bool,
        accessor: Option<ConnectionId>,
    ) -> Result<bool, BindError> {
        let source = self.source_exchange(&binding.source)?;
        let destination = self.binding_target(binding, to_queue, accessor)?;
        let removed = source.unbind(&destination, &binding.routing_key, &binding.arguments);
        if removed && source.auto_delete && source.binding_count() == 0 {
            self.delete_auto_exchange(&source.name);
        }
        Ok(removed)
    }

    /// `queue.bind`. Binding twice is a no-op.
    pub fn bind_queue(
        &self,
        binding: BindingDeclaration,
        accessor: Option<ConnectionId>,
    ) -> Result<(), BindError> {
        self.bind(&binding, true, accessor)
    }

    /// `exchange.bind`: messages reaching `source` also go through `destination`.
    pub fn bind_exchange(&self, binding: BindingDeclaration) -> Result<(), BindError> {
        self.bind(&binding, false, None)
    }

    /// `queue.unbind`: returns whether such a binding existed (RabbitMQ answers ok either way).
    pub fn unbind_queue(
        &self,
        binding: BindingDeclaration,
        accessor: Option<ConnectionId>,
    ) -> Result<bool, BindError> {
        self.unbind(&binding, true, accessor)
    }

    /// `exchange.unbind`: returns whether such a binding existed.
    pub fn unbind_exchange(&self, binding: BindingDeclaration) -> Result<bool, BindError> {
        self.unbind(&binding, false, None)
    }

    /// Routes `message` from its exchange and enqueues it on every queue reached.
    ///
    /// `confirm` (when the publisher asked) is settled once every queue holds the message;
    /// an unroutable message is confirmed at once, as RabbitMQ does (after `basic.return` if
    /// mandatory, which the adapter sends from the returned [`Routed`]).
    pub fn publish(
        &self,
        message: Arc<Message>,
        mandatory: bool,
        confirm: Option<ConfirmTracker>,
    ) -> Result<Routed, PublishError> {
        let queues = self.route(&message)?;
        let metrics = &self.services.metrics;
        Metrics::bump(&metrics.published);
        if queues.is_empty() {
            if mandatory {
                Metrics::bump(&metrics.unroutable_returned);
            } else {
                Metrics::bump(&metrics.unroutable_dropped);
                tracing::debug!(
                    vhost = %self.name,
                    exchange = %message.exchange,
                    routing_key = %message.routing_key,
                    "unroutable message dropped"
                );
            }
        }
        let now = Instant::now();
        for queue in &queues {
            let completion = confirm
                .as_ref()
                .map_or_else(Completion::detached, ConfirmTracker::completion);
            queue.enqueue(Arc::clone(&message), completion, now);
        }
        if let Some(tracker) = confirm {
            tracker.finish();
        }
        Ok(Routed {
            queues: queues.len(),
        })
    }

    /// The queues `message` reaches from its exchange.
    pub fn route(&self, message: &Message) -> Result<Vec<Arc<Queue>>, PublishError> {
        let mut queues = Vec::new();
        if message.exchange.is_default() {
            if let Ok(name) = QueueName::new(&*message.routing_key) {
                queues.extend(self.queue(&name));
            }
            return Ok(queues);
        }
        let exchange =
            self.exchange(&message.exchange)
                .ok_or_else(|| PublishError::ExchangeNotFound {
                    exchange: message.exchange.clone(),
                    vhost: self.name.clone(),
                })?;
        if exchange.internal {
            return Err(PublishError::InternalExchange {
                exchange: message.exchange.clone(),
                vhost: self.name.clone(),
            });
        }
        let mut visited = Vec::new();
        let mut names = Vec::new();
        self.walk(&exchange, message, &mut visited, &mut names);
        queues.extend(names.iter().filter_map(|name| self.queue(name)));
        Ok(queues)
    }

    fn walk(
        &self,
        exchange: &Arc<Exchange>,
        message: &Message,
        visited: &mut Vec<ExchangeName>,
        queues: &mut Vec<QueueName>,
    ) {
        if visited.contains(&exchange.name) {
            return;
        }
        visited.push(exchange.name.clone());
        let before = queues.len();
        let mut destinations = Vec::new();
        exchange.route(message, &mut destinations);
        for destination in destinations {
            match destination {
                Destination::Queue(name) => {
                    if !queues.contains(&name) && self.queues.contains_key(&name) {
                        queues.push(name);
                    }
                }
                Destination::Exchange(name) => {
                    if let Some(next) = self.exchange(&name) {
                        self.walk(&next, message, visited, queues);
                    }
                }
            }
        }
        if queues.len() == before {
            if let Some(alternate) = exchange.alternate.as_ref().and_then(|a| self.exchange(a)) {
                self.walk(&alternate, message, visited, queues);
            }
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

    fn dead_letter(&self, from: &QueueConfig, letters: Vec<DeadLetter>) {
        let metrics = &self.services.metrics;
        let Some(dlx) = from.arguments.dead_letter_exchange.as_ref() else {
            Metrics::add(&metrics.dead_letter_dropped, letters.len() as u64);
            return;
        };
        let now = Instant::now();
        for letter in letters {
            let copy = dead_letter_copy(
                &letter.message,
                &from.key.queue,
                letter.reason,
                dlx,
                from.arguments.dead_letter_routing_key.as_deref(),
            );
            let targets = match self.route(&copy) {
                Ok(targets) => targets,
                Err(error) => {
                    Metrics::bump(&metrics.dead_letter_dropped);
                    tracing::warn!(vhost = %self.name, queue = %from.key.queue, %error, "dead letter dropped");
                    continue;
                }
            };
            let copy = Arc::new(copy);
            let mut delivered = false;
            for target in targets {
                if is_cycle(&copy, target.name()) {
                    tracing::debug!(vhost = %self.name, queue = %target.name(), "dead-letter cycle dropped");
                    continue;
                }
                target.enqueue(Arc::clone(&copy), Completion::detached(), now);
                delivered = true;
            }
            if delivered {
                Metrics::bump(&metrics.dead_lettered);
            } else {
                Metrics::bump(&metrics.dead_letter_dropped);
                tracing::warn!(
                    vhost = %self.name,
                    queue = %from.key.queue,
                    dead_letter_exchange = %dlx,
                    "dead letter dropped: it reached no queue"
                );
            }
        }
    }
}

fn declared(queue: &Queue) -> QueueDeclared {
    let stats = queue.stats();
    QueueDeclared {
        name: queue.name().clone(),
        messages: stats.ready,
        consumers: stats.consumers,
    }
}

/// Routes a queue's dead letters through its vhost; holds the vhost weakly (queues live in it).
#[derive(Debug)]
struct VhostDeadLetters {
    vhost: Weak<Vhost>,
}

impl DeadLetterSink for VhostDeadLetters {
    fn dead_letter(&self, from: &QueueConfig, letters: Vec<DeadLetter>) {
        if let Some(vhost) = self.vhost.upgrade() {
            vhost.dead_letter(from, letters);
        }
    }
}
