//! Declaring and deleting exchanges and queues, with RabbitMQ's equivalence rules.

use dashmap::mapref::entry::Entry;
use std::sync::Arc;
use std::time::Instant;

use crate::declare::{ExchangeDeclaration, QueueDeclaration, QueueDeclared};
use crate::errors::{
    DeclareExchangeError, DeclareQueueError, DeleteExchangeError, DeleteQueueError,
    QueueAccessError,
};
use crate::exchange::{alternate_exchange, Destination, Exchange};
use crate::names::{ConnectionId, ExchangeName, QueueName};
use crate::queue::{Queue, QueueArguments, QueueConfig, QueueEnv};
use crate::storage::QueueKey;

use super::{Vhost, BUILT_INS};

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

impl Vhost {
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

    /// `queue.purge`: returns how many ready messages were removed.
    pub fn purge_queue(
        &self,
        name: &QueueName,
        accessor: Option<ConnectionId>,
    ) -> Result<u32, QueueAccessError> {
        Ok(self.queue_for(name, accessor)?.purge())
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
