//! One error enum per core operation. Each Display names the resource that failed, in RabbitMQ's
//! words where RabbitMQ has them, so adapters can pass the text to clients unchanged. Each adapter
//! maps variants to its wire codes in one file of its own (AMQP 403/404/405/406, STOMP ERROR,
//! MQTT reason codes); the core does not know those codes.

use crate::names::{ExchangeName, QueueName, VhostName};

/// `exchange.declare` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeclareExchangeError {
    /// Passive declare of a missing exchange (AMQP 404).
    #[error("no exchange '{exchange}' in vhost '{vhost}'")]
    NotFound {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
    },
    /// The name starts with `amq.` or is the default exchange (AMQP 403).
    #[error("exchange name '{exchange}' contains reserved prefix 'amq.*'")]
    ReservedName {
        /// The exchange.
        exchange: ExchangeName,
    },
    /// It exists with another type, flag or argument (AMQP 406).
    #[error("inequivalent arg '{field}' for exchange '{exchange}' in vhost '{vhost}': received {received} but current is {current}")]
    Inequivalent {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
        /// Which property differs.
        field: &'static str,
        /// The value asked for.
        received: String,
        /// The value it has.
        current: String,
    },
    /// An argument is invalid (AMQP 406).
    #[error("invalid argument for exchange '{exchange}' in vhost '{vhost}': {reason}")]
    InvalidArgument {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
        /// What is wrong.
        reason: String,
    },
}

/// `exchange.delete` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeleteExchangeError {
    /// The exchange does not exist (AMQP 404).
    #[error("no exchange '{exchange}' in vhost '{vhost}'")]
    NotFound {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
    },
    /// `if-unused` and it has bindings (AMQP 406).
    #[error("exchange '{exchange}' in vhost '{vhost}' in use")]
    InUse {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
    },
    /// Built-in exchanges cannot be deleted (AMQP 403).
    #[error("deletion of system exchange '{exchange}' in vhost '{vhost}' not allowed")]
    BuiltIn {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
    },
}

/// A queue could not be used: shared by declare, delete, purge, bind, consume and get.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueAccessError {
    /// The queue does not exist (AMQP 404).
    #[error("no queue '{queue}' in vhost '{vhost}'")]
    NotFound {
        /// The queue.
        queue: QueueName,
        /// Its vhost.
        vhost: VhostName,
    },
    /// Another connection owns this exclusive queue (AMQP 405).
    #[error("cannot obtain exclusive access to locked queue '{queue}' in vhost '{vhost}'")]
    Locked {
        /// The queue.
        queue: QueueName,
        /// Its vhost.
        vhost: VhostName,
    },
}

/// `queue.declare` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeclareQueueError {
    /// Missing (passive) or owned by another connection.
    #[error(transparent)]
    Access(#[from] QueueAccessError),
    /// The name starts with `amq.` (AMQP 403).
    #[error("queue name '{queue}' contains reserved prefix 'amq.*'")]
    ReservedName {
        /// The queue.
        queue: QueueName,
    },
    /// It exists with another flag or argument (AMQP 406).
    #[error("inequivalent arg '{field}' for queue '{queue}' in vhost '{vhost}': received {received} but current is {current}")]
    Inequivalent {
        /// The queue.
        queue: QueueName,
        /// Its vhost.
        vhost: VhostName,
        /// Which property differs.
        field: String,
        /// The value asked for.
        received: String,
        /// The value it has.
        current: String,
    },
    /// An `x-*` argument is invalid (AMQP 406).
    #[error("invalid argument for queue '{queue}' in vhost '{vhost}': {reason}")]
    InvalidArgument {
        /// The queue.
        queue: QueueName,
        /// Its vhost.
        vhost: VhostName,
        /// What is wrong.
        reason: String,
    },
}

/// `queue.delete` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeleteQueueError {
    /// Missing or locked.
    #[error(transparent)]
    Access(#[from] QueueAccessError),
    /// `if-unused` and it has consumers (AMQP 406).
    #[error("queue '{queue}' in vhost '{vhost}' in use")]
    InUse {
        /// The queue.
        queue: QueueName,
        /// Its vhost.
        vhost: VhostName,
    },
    /// `if-empty` and it has messages (AMQP 406).
    #[error("queue '{queue}' in vhost '{vhost}' not empty")]
    NotEmpty {
        /// The queue.
        queue: QueueName,
        /// Its vhost.
        vhost: VhostName,
    },
}

/// A bind or unbind failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// The source exchange does not exist (AMQP 404).
    #[error("no exchange '{exchange}' in vhost '{vhost}'")]
    SourceNotFound {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
    },
    /// The destination exchange does not exist (AMQP 404).
    #[error("no exchange '{exchange}' in vhost '{vhost}'")]
    DestinationNotFound {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
    },
    /// The destination queue is missing or locked.
    #[error(transparent)]
    Queue(#[from] QueueAccessError),
    /// The default exchange cannot be bound (AMQP 403).
    #[error("operation not permitted on the default exchange")]
    DefaultExchange,
    /// The arguments are invalid (AMQP 406).
    #[error("invalid binding from exchange '{exchange}' in vhost '{vhost}': {reason}")]
    InvalidArgument {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
        /// What is wrong.
        reason: String,
    },
    /// A name is too long.
    #[error("invalid name: {0}")]
    InvalidName(String),
}

/// `basic.publish` failed before routing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The exchange does not exist (AMQP 404, channel closes).
    #[error("no exchange '{exchange}' in vhost '{vhost}'")]
    ExchangeNotFound {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
    },
    /// The exchange is internal (AMQP 403).
    #[error("cannot publish to internal exchange '{exchange}' in vhost '{vhost}'")]
    InternalExchange {
        /// The exchange.
        exchange: ExchangeName,
        /// Its vhost.
        vhost: VhostName,
    },
}

/// `basic.consume` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumeError {
    /// Missing or locked.
    #[error(transparent)]
    Access(#[from] QueueAccessError),
    /// The consumer tag is in use on this session (AMQP 530 NOT_ALLOWED).
    #[error("attempt to reuse consumer tag '{tag}'")]
    TagInUse {
        /// The tag.
        tag: String,
    },
    /// The queue refused the consumer (exclusivity; AMQP 403).
    #[error("{0}")]
    Refused(String),
}

/// An ack, nack or reject named a tag the session does not hold (AMQP 406 PRECONDITION_FAILED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery tag {tag}")]
pub struct UnknownDeliveryTag {
    /// The tag.
    pub tag: u64,
}
