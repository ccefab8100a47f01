//! Declarations: what a client or the config file asks the engine to create.
//!
//! These are plain data, already parsed into names; the vhost checks them against what exists
//! (RabbitMQ's equivalence rules) and either creates, accepts, or refuses with an error that names
//! the resource.

use std::fmt;
use std::str::FromStr;

use crate::message::Headers;
use crate::names::{ExchangeName, QueueName};

/// An exchange's routing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Routing key equals binding key.
    Direct,
    /// Every binding.
    Fanout,
    /// `.`-separated words with `*` and `#` wildcards.
    Topic,
    /// Header values against binding arguments (`x-match` all/any).
    Headers,
}

impl ExchangeKind {
    /// The AMQP name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

impl fmt::Display for ExchangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exchange type name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown exchange type '{0}'")]
pub struct UnknownExchangeKind(pub String);

impl FromStr for ExchangeKind {
    type Err = UnknownExchangeKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "direct" => Ok(ExchangeKind::Direct),
            "fanout" => Ok(ExchangeKind::Fanout),
            "topic" => Ok(ExchangeKind::Topic),
            "headers" => Ok(ExchangeKind::Headers),
            other => Err(UnknownExchangeKind(other.to_owned())),
        }
    }
}

/// `exchange.declare`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDeclaration {
    /// The exchange.
    pub name: ExchangeName,
    /// Its routing algorithm.
    pub kind: ExchangeKind,
    /// Survives a restart (once storage exists).
    pub durable: bool,
    /// Deleted when its last binding (as a source) goes.
    pub auto_delete: bool,
    /// Cannot be published to directly, only through exchange-to-exchange bindings.
    pub internal: bool,
    /// Only check that it exists.
    pub passive: bool,
    /// Arguments, e.g. `alternate-exchange`.
    pub arguments: Headers,
}

impl ExchangeDeclaration {
    /// A durable, non-internal exchange with no arguments.
    pub fn new(name: ExchangeName, kind: ExchangeKind) -> Self {
        Self {
            name,
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            passive: false,
            arguments: Headers::new(),
        }
    }
}

/// `queue.declare`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueDeclaration {
    /// The queue; `None` asks for a server-generated `amq.gen-...` name.
    pub name: Option<QueueName>,
    /// Survives a restart (once storage exists).
    pub durable: bool,
    /// Owned by the declaring connection, deleted when it closes.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Only check that it exists.
    pub passive: bool,
    /// `x-*` arguments (see DESIGN.md section 2).
    pub arguments: Headers,
}

impl QueueDeclaration {
    /// A plain (non-durable, non-exclusive) queue with this name.
    pub fn named(name: QueueName) -> Self {
        Self {
            name: Some(name),
            ..Self::default()
        }
    }
}

/// `queue.declare-ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDeclared {
    /// The queue's name (generated if none was asked for).
    pub name: QueueName,
    /// Ready messages.
    pub messages: u32,
    /// Consumers.
    pub consumers: u32,
}

/// `queue.bind` / `exchange.bind` (and their unbinds).
#[derive(Debug, Clone, PartialEq)]
pub struct BindingDeclaration {
    /// The exchange messages come from.
    pub source: ExchangeName,
    /// The queue (for `bind_queue`) or exchange (for `bind_exchange`) they go to.
    pub destination: String,
    /// The binding key or topic pattern.
    pub routing_key: String,
    /// Headers-exchange arguments, and `x-tag-filter` for tag filtering.
    pub arguments: Headers,
}

/// The binding argument that holds a RocketMQ-style tag filter (`TagA || TagB`).
pub const TAG_FILTER_ARGUMENT: &str = "x-tag-filter";
