//! Pre-declared vhosts, exchanges, queues and bindings: checked when the config is loaded,
//! declared through the core when the gateway starts.
//!
//! Entries are declared in the order vhosts, exchanges, queues, bindings, each list in file
//! order, so a binding may name any exchange or queue of the file. An entry the core refuses
//! stops the start with its config key path (`queues[2]`) and the core's message, which names
//! the resource.

use std::fmt;

use mqgate_core::broker::Broker;
use mqgate_core::declare::{
    BindingDeclaration, ExchangeDeclaration, ExchangeKind, QueueDeclaration,
};
use mqgate_core::message::Headers;
use mqgate_core::names::{QueueName, VhostName};

/// What to declare at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Definitions {
    /// Vhosts, each with its built-in exchanges.
    pub vhosts: Vec<VhostName>,
    /// Exchanges.
    pub exchanges: Vec<ExchangeDefinition>,
    /// Queues.
    pub queues: Vec<QueueDefinition>,
    /// Bindings.
    pub bindings: Vec<BindingDefinition>,
}

impl Default for Definitions {
    /// The vhost `/` and nothing else.
    fn default() -> Self {
        Self {
            vhosts: vec![VhostName::default_vhost()],
            exchanges: Vec::new(),
            queues: Vec::new(),
            bindings: Vec::new(),
        }
    }
}

/// An exchange to declare.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDefinition {
    /// Its vhost.
    pub vhost: VhostName,
    /// What to declare.
    pub declaration: ExchangeDeclaration,
}

/// A queue to declare.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDefinition {
    /// Its vhost.
    pub vhost: VhostName,
    /// Its name.
    pub name: QueueName,
    /// Survives a restart (once storage exists).
    pub durable: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// `x-*` arguments.
    pub arguments: Headers,
}

/// Whether a binding leads to a queue or to another exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// `queue.bind`.
    Queue,
    /// `exchange.bind`.
    Exchange,
}

/// A binding to declare.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingDefinition {
    /// Its vhost.
    pub vhost: VhostName,
    /// Queue or exchange.
    pub destination_kind: DestinationKind,
    /// What to declare.
    pub declaration: BindingDeclaration,
}

/// The core refused a pre-declaration. `Display`: `config error at queues[2]: <core message>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error at {key}: {message}")]
pub struct DefinitionError {
    /// The entry's config key path, e.g. `queues[2]`.
    pub key: String,
    /// What the core said.
    pub message: String,
}

/// Parses an exchange type as the config file writes it.
pub fn parse_exchange_kind(text: &str) -> Result<ExchangeKind, String> {
    text.parse::<ExchangeKind>().map_err(|_| {
        format!("unknown exchange type '{text}'; expected direct, fanout, topic or headers")
    })
}

/// Declares everything in `definitions` on `broker`.
pub fn declare(broker: &Broker, definitions: &Definitions) -> Result<(), DefinitionError> {
    for vhost in &definitions.vhosts {
        broker.add_vhost(vhost.clone());
    }
    let vhost_of = |key: &str, name: &VhostName| {
        broker.vhost(name).ok_or_else(|| DefinitionError {
            key: format!("{key}.vhost"),
            message: format!("vhost '{name}' is not declared in vhosts"),
        })
    };
    for (index, exchange) in definitions.exchanges.iter().enumerate() {
        let key = format!("exchanges[{index}]");
        vhost_of(&key, &exchange.vhost)?
            .declare_exchange(exchange.declaration.clone())
            .map_err(|e| refused(&key, e))?;
    }
    for (index, queue) in definitions.queues.iter().enumerate() {
        let key = format!("queues[{index}]");
        let declaration = QueueDeclaration {
            name: Some(queue.name.clone()),
            durable: queue.durable,
            exclusive: false,
            auto_delete: queue.auto_delete,
            passive: false,
            arguments: queue.arguments.clone(),
        };
        vhost_of(&key, &queue.vhost)?
            .declare_queue(declaration, None)
            .map_err(|e| refused(&key, e))?;
    }
    for (index, binding) in definitions.bindings.iter().enumerate() {
        let key = format!("bindings[{index}]");
        let vhost = vhost_of(&key, &binding.vhost)?;
        let declaration = binding.declaration.clone();
        match binding.destination_kind {
            DestinationKind::Queue => vhost.bind_queue(declaration, None),
            DestinationKind::Exchange => vhost.bind_exchange(declaration),
        }
        .map_err(|e| refused(&key, e))?;
    }
    Ok(())
}

fn refused(key: &str, error: impl fmt::Display) -> DefinitionError {
    DefinitionError {
        key: key.to_owned(),
        message: error.to_string(),
    }
}
