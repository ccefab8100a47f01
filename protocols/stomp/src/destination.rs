//! STOMP destinations and what the core must do for them (DESIGN.md section 3, RabbitMQ's STOMP
//! plugin conventions).
//!
//! | destination | SEND | SUBSCRIBE |
//! |---|---|---|
//! | `/topic/<key>` | `amq.topic`, routing key `<key>` | a private queue (server-named, exclusive, auto-delete) bound to `amq.topic` with the pattern `<key>` (`*`, `#` pass through); durable: see below |
//! | `/queue/<q>` | default exchange, key `<q>`; `q` declared durable on first use | the shared durable queue `q`, declared on first use (consumers compete) |
//! | `/amq/queue/<q>` | default exchange, key `<q>`; no declare | the existing queue `q` (passive declare: a missing queue is an error naming it) |
//! | `/exchange/<x>[/<key>]` | exchange `x`, key `<key>` (empty when absent) | a private queue bound to `x` with `<key>` (empty when absent) |
//! | `/temp-queue/<n>` | only in `reply-to` (the session rewrites it) | refused |
//! | `/reply-queue/<q>` | default exchange, key `<q>` | refused |
//!
//! Names: `%2F` (or `%2f`) inside a name or key stands for `/`, and `%25` for `%`; they are
//! decoded once, so `%252F` is the text `%2F`. Any other `%` is kept. A name is one segment: an
//! unescaped `/` inside it is an error, except in `/reply-queue/` where the whole rest is the
//! name. [`Destination`]'s `Display` writes the canonical form (escaping `%` and `/`), so
//! `parse(d.to_string()) == d`.
//!
//! Durable subscriptions (`/topic/` and `/exchange/` with `durable:true`, or its older spelling
//! `persistent:true`) need an `id` header and read a durable, non-exclusive, non-auto-delete
//! queue that outlives the connection. Its name is the `x-queue-name` header when given, else
//! [`durable_subscription_queue`]: `stomp-subscription-` and 32 hex digits of a stable 128-bit
//! FNV-1a hash of the canonical destination and the subscription id (RabbitMQ hashes the same
//! pair with MD5), so a client that resubscribes with the same destination and id (from any
//! connection) finds its queue and the messages that arrived meanwhile. The hash is fixed by
//! this module, never by the Rust version, because the queue is durable.
//!
//! Reply-to values are kept in the core in a raw form shared with the MQTT adapter
//! ([`Destination::to_core_reply_to`]): `/topic/<key>` and `/exchange/<x>/<key>` with the key
//! unescaped (MQTT reads the key after the exchange's `/`), and a reply queue as its bare name.

use std::fmt;

use mqgate_core::declare::{BindingDeclaration, QueueDeclaration};
use mqgate_core::message::Headers;
use mqgate_core::names::{ExchangeName, QueueName, MAX_NAME_LEN};

/// The exchange `/topic/` destinations publish to and bind on.
pub const TOPIC_EXCHANGE: &str = "amq.topic";
/// Prefix of topic destinations.
pub const TOPIC_PREFIX: &str = "/topic/";
/// Prefix of shared queue destinations.
pub const QUEUE_PREFIX: &str = "/queue/";
/// Prefix of existing-queue destinations.
pub const AMQ_QUEUE_PREFIX: &str = "/amq/queue/";
/// Prefix of exchange destinations.
pub const EXCHANGE_PREFIX: &str = "/exchange/";
/// Prefix of temporary reply queues (only in `reply-to`).
pub const TEMP_QUEUE_PREFIX: &str = "/temp-queue/";
/// Prefix of the generated reply queues that `/temp-queue/` becomes for the receiver.
pub const REPLY_QUEUE_PREFIX: &str = "/reply-queue/";
/// Prefix of durable subscription queue names.
pub const DURABLE_SUBSCRIPTION_PREFIX: &str = "stomp-subscription-";
/// SUBSCRIBE header naming the queue of a topic or exchange subscription (RabbitMQ).
pub const QUEUE_NAME_HEADER: &str = "x-queue-name";

/// Queue arguments read from SUBSCRIBE (and SEND to `/queue/`) headers, with their types: the
/// DESIGN.md section 2 list. Other `x-*` headers are not queue arguments.
const INTEGER_ARGUMENTS: [&str; 5] = [
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
];
const TEXT_ARGUMENTS: [&str; 3] = [
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
];
const BOOL_ARGUMENTS: [&str; 1] = ["x-single-active-consumer"];

/// A destination or a destination header was refused. Each message names the destination or
/// the header; they are the `message` of the ERROR frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DestinationError {
    /// No known prefix (RabbitMQ's wording).
    #[error("Unknown destination '{0}'")]
    Unknown(String),
    /// A known prefix with a bad name: empty, more segments than allowed, too long.
    #[error("Invalid destination '{destination}': {reason}")]
    Invalid {
        /// The destination as the client sent it.
        destination: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `/temp-queue/` outside `reply-to`.
    #[error("Invalid destination '{0}': /temp-queue/ destinations are only allowed in reply-to")]
    ReplyToOnly(String),
    /// SUBSCRIBE to a destination that cannot be subscribed to (`/reply-queue/`).
    #[error("Invalid destination '{0}': cannot subscribe to a reply queue")]
    NotSubscribable(String),
    /// A durable subscription without an `id` header.
    #[error("Missing header: a durable subscription to '{0}' requires an 'id' header")]
    DurableWithoutId(String),
    /// A queue header with a value of the wrong type.
    #[error("Invalid header '{name}': '{value}' is not {expected}")]
    InvalidHeader {
        /// The header.
        name: String,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// `x-queue-name` longer than 255 bytes.
    #[error("Invalid header 'x-queue-name': a queue name is at most 255 bytes, got {0}")]
    QueueNameTooLong(usize),
}

/// A parsed STOMP destination. Names and keys are unescaped (`%2F` is `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `/topic/<key>`: `amq.topic` with routing key or pattern `key`.
    Topic {
        /// Routing key (SEND) or binding pattern (SUBSCRIBE).
        key: String,
    },
    /// `/queue/<name>`: a shared durable queue, declared on first use.
    Queue {
        /// The queue.
        name: QueueName,
    },
    /// `/amq/queue/<name>`: an existing queue, never declared.
    AmqQueue {
        /// The queue.
        name: QueueName,
    },
    /// `/exchange/<name>[/<key>]`.
    Exchange {
        /// The exchange (never the default exchange).
        name: ExchangeName,
        /// Routing key or binding pattern; `None` when the destination has no second segment
        /// (treated as the empty key, as RabbitMQ does).
        key: Option<String>,
    },
    /// `/temp-queue/<name>`: a per-connection private reply queue; only valid in `reply-to`.
    TempQueue {
        /// The client's name for it (scoped to its connection).
        name: String,
    },
    /// `/reply-queue/<name>`: a generated reply queue, sendable via the default exchange.
    ReplyQueue {
        /// The queue.
        name: QueueName,
    },
}

/// The queue a SUBSCRIBE reads: declare (or check) it, bind it if asked, then consume it.
///
/// Use: `let declared = session.declare_queue(target.declaration.clone())?;` then, when
/// [`SubscribeTarget::binding`] gives one, `session.bind_queue(binding)`, then consume
/// `declared.name`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscribeTarget {
    /// The declaration. `name: None` asks for a server-named private queue; `passive: true`
    /// (`/amq/queue/`) only checks that the queue exists.
    pub declaration: QueueDeclaration,
    /// The exchange and pattern to bind the queue to, if any.
    pub bind: Option<(ExchangeName, String)>,
}

impl SubscribeTarget {
    /// The queue's name when it is not server-generated.
    pub fn queue(&self) -> Option<&QueueName> {
        self.declaration.name.as_ref()
    }

    /// The binding of `queue` (the declared name) to make, if any.
    pub fn binding(&self, queue: &QueueName) -> Option<BindingDeclaration> {
        self.bind
            .as_ref()
            .map(|(exchange, pattern)| BindingDeclaration {
                source: exchange.clone(),
                destination: queue.to_string(),
                routing_key: pattern.clone(),
                arguments: Headers::new(),
            })
    }

    /// Whether the queue outlives the connection (a `/queue/`, `/amq/queue/` or durable
    /// subscription): UNSUBSCRIBE of a durable topic subscription keeps it, as in RabbitMQ.
    pub fn is_shared(&self) -> bool {
        !self.declaration.exclusive
    }
}

/// Queue headers of a SUBSCRIBE (or of a SEND to `/queue/`): `id`, `durable` (and `persistent`
/// on SUBSCRIBE), `auto-delete`, `exclusive`, `x-queue-name` and the `x-*` queue arguments.
/// First occurrence of a header wins. Booleans are `true` or `false` (any case).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueOptions {
    /// The subscription `id`.
    pub id: Option<String>,
    /// `durable` (SUBSCRIBE: else `persistent`).
    pub durable: Option<bool>,
    /// `auto-delete`.
    pub auto_delete: Option<bool>,
    /// `exclusive`.
    pub exclusive: Option<bool>,
    /// `x-queue-name`: the queue of a topic or exchange subscription.
    pub queue_name: Option<QueueName>,
    /// Queue arguments, typed: integers for `x-message-ttl`, `x-expires`, `x-max-length`,
    /// `x-max-length-bytes`, `x-max-priority`; a boolean for `x-single-active-consumer`; text
    /// for `x-overflow`, `x-dead-letter-exchange`, `x-dead-letter-routing-key`.
    pub arguments: Headers,
}

impl QueueOptions {
    /// The options of a SUBSCRIBE frame's headers (`persistent` is an alias of `durable`).
    pub fn for_subscribe(headers: &[(String, String)]) -> Result<Self, DestinationError> {
        Self::from_headers(headers, true)
    }

    /// The options of a SEND frame's headers, for declaring a `/queue/` on first use
    /// (`persistent` is the message's, not the queue's).
    pub fn for_send(headers: &[(String, String)]) -> Result<Self, DestinationError> {
        Self::from_headers(headers, false)
    }

    fn from_headers(
        headers: &[(String, String)],
        persistent_is_durable: bool,
    ) -> Result<Self, DestinationError> {
        let mut options = Self::default();
        let mut persistent = None;
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in headers {
            if seen.contains(&name.as_str()) {
                continue;
            }
            seen.push(name);
            match name.as_str() {
                "id" => options.id = Some(value.clone()),
                "durable" => options.durable = Some(parse_bool(name, value)?),
                "persistent" if persistent_is_durable => {
                    persistent = Some(parse_bool(name, value)?);
                }
                "auto-delete" => options.auto_delete = Some(parse_bool(name, value)?),
                "exclusive" => options.exclusive = Some(parse_bool(name, value)?),
                QUEUE_NAME_HEADER => {
                    options.queue_name = Some(
                        QueueName::new(value)
                            .map_err(|_| DestinationError::QueueNameTooLong(value.len()))?,
                    );
                }
                n if INTEGER_ARGUMENTS.contains(&n) => {
                    let number = value
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| invalid_header(name, value, "an integer"))?;
                    options.arguments.insert(n, number);
                }
                n if BOOL_ARGUMENTS.contains(&n) => {
                    options.arguments.insert(n, parse_bool(name, value)?);
                }
                n if TEXT_ARGUMENTS.contains(&n) => {
                    options.arguments.insert(n, value.as_str());
                }
                _ => {}
            }
        }
        if options.durable.is_none() {
            options.durable = persistent;
        }
        Ok(options)
    }
}

fn invalid_header(name: &str, value: &str, expected: &'static str) -> DestinationError {
    DestinationError::InvalidHeader {
        name: name.to_owned(),
        value: value.to_owned(),
        expected,
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, DestinationError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid_header(name, value, "true or false"))
    }
}

/// The `amq.topic` exchange.
pub fn topic_exchange() -> ExchangeName {
    ExchangeName::new(TOPIC_EXCHANGE).unwrap_or_else(|_| ExchangeName::default_exchange())
}

/// Decodes `%2F` (either case) to `/` and `%25` to `%`, once; any other `%` is kept.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(index) = rest.find('%') {
        out.push_str(&rest[..index]);
        let tail = &rest[index..];
        if let Some(after) = tail
            .strip_prefix("%2F")
            .or_else(|| tail.strip_prefix("%2f"))
        {
            out.push('/');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("%25") {
            out.push('%');
            rest = after;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Escapes `%` as `%25` and `/` as `%2F`, so [`unescape`] gives `text` back.
pub fn escape(text: &str) -> String {
    if !text.contains(['%', '/']) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 6);
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            other => out.push(other),
        }
    }
    out
}

impl Destination {
    /// Parses a destination header value (already STOMP-unescaped by the codec).
    pub fn parse(text: &str) -> Result<Self, DestinationError> {
        let invalid = |reason: &'static str| DestinationError::Invalid {
            destination: text.to_owned(),
            reason,
        };
        if let Some(rest) = text.strip_prefix(REPLY_QUEUE_PREFIX) {
            return Ok(Destination::ReplyQueue {
                name: queue_name(text, &unescape(rest))?,
            });
        }
        if let Some(rest) = text.strip_prefix(EXCHANGE_PREFIX) {
            let (exchange, key) = match rest.split_once('/') {
                Some((exchange, key)) => (exchange, Some(key)),
                None => (rest, None),
            };
            if exchange.is_empty() {
                return Err(invalid("the exchange name is empty"));
            }
            if key.is_some_and(|key| key.contains('/')) {
                return Err(invalid(
                    "expected /exchange/<name>[/<key>]; write '/' inside a name as %2F",
                ));
            }
            let exchange = unescape(exchange);
            if exchange.len() > MAX_NAME_LEN {
                return Err(invalid("the exchange name is longer than 255 bytes"));
            }
            let name = ExchangeName::new(&exchange)
                .map_err(|_| invalid("the exchange name is longer than 255 bytes"))?;
            let key = key.map(unescape);
            if key.as_ref().is_some_and(|key| key.len() > MAX_NAME_LEN) {
                return Err(invalid("the routing key is longer than 255 bytes"));
            }
            return Ok(Destination::Exchange { name, key });
        }
        let prefixes = [
            TOPIC_PREFIX,
            QUEUE_PREFIX,
            AMQ_QUEUE_PREFIX,
            TEMP_QUEUE_PREFIX,
        ];
        for prefix in prefixes {
            let Some(rest) = text.strip_prefix(prefix) else {
                continue;
            };
            if rest.is_empty() {
                return Err(invalid("the name is empty"));
            }
            if rest.contains('/') {
                return Err(invalid("write '/' inside a name as %2F"));
            }
            let name = unescape(rest);
            return match prefix {
                TOPIC_PREFIX if name.len() > MAX_NAME_LEN => {
                    Err(invalid("the routing key is longer than 255 bytes"))
                }
                TOPIC_PREFIX => Ok(Destination::Topic { key: name }),
                QUEUE_PREFIX => Ok(Destination::Queue {
                    name: queue_name(text, &name)?,
                }),
                AMQ_QUEUE_PREFIX => Ok(Destination::AmqQueue {
                    name: queue_name(text, &name)?,
                }),
                _ => Ok(Destination::TempQueue { name }),
            };
        }
        let bare = [
            "/topic",
            "/queue",
            "/amq/queue",
            "/exchange",
            "/temp-queue",
            "/reply-queue",
        ];
        if bare.contains(&text) {
            return Err(invalid("the name is missing"));
        }
        Err(DestinationError::Unknown(text.to_owned()))
    }

    /// Where a SEND to this destination goes: the exchange and the routing key.
    /// `/temp-queue/` is refused ([`DestinationError::ReplyToOnly`]). A SEND to `/queue/` must
    /// also declare the queue first: see [`Destination::send_declaration`].
    pub fn publish_target(&self) -> Result<(ExchangeName, String), DestinationError> {
        Ok(match self {
            Destination::Topic { key } => (topic_exchange(), key.clone()),
            Destination::Queue { name }
            | Destination::AmqQueue { name }
            | Destination::ReplyQueue { name } => {
                (ExchangeName::default_exchange(), name.to_string())
            }
            Destination::Exchange { name, key } => (name.clone(), key.clone().unwrap_or_default()),
            Destination::TempQueue { .. } => {
                return Err(DestinationError::ReplyToOnly(self.to_string()))
            }
        })
    }

    /// The queue a SEND must declare before publishing: `/queue/<q>` only (durable,
    /// non-exclusive, non-auto-delete unless the headers say otherwise).
    pub fn send_declaration(&self, options: &QueueOptions) -> Option<QueueDeclaration> {
        match self {
            Destination::Queue { name } => Some(shared_queue(name, options)),
            _ => None,
        }
    }

    /// The queue a SUBSCRIBE reads, from the frame's [`QueueOptions`]; see the module docs.
    pub fn subscribe_target(
        &self,
        options: &QueueOptions,
    ) -> Result<SubscribeTarget, DestinationError> {
        let (exchange, pattern) = match self {
            Destination::Queue { name } => {
                return Ok(SubscribeTarget {
                    declaration: shared_queue(name, options),
                    bind: None,
                })
            }
            Destination::AmqQueue { name } => {
                return Ok(SubscribeTarget {
                    declaration: QueueDeclaration {
                        passive: true,
                        ..QueueDeclaration::named(name.clone())
                    },
                    bind: None,
                })
            }
            Destination::TempQueue { .. } => {
                return Err(DestinationError::ReplyToOnly(self.to_string()))
            }
            Destination::ReplyQueue { .. } => {
                return Err(DestinationError::NotSubscribable(self.to_string()))
            }
            Destination::Topic { key } => (topic_exchange(), key.clone()),
            Destination::Exchange { name, key } => (name.clone(), key.clone().unwrap_or_default()),
        };
        let declaration = if options.durable == Some(true) {
            let name = match (&options.queue_name, &options.id) {
                (Some(name), _) => name.clone(),
                (None, Some(id)) => durable_subscription_queue(self, id),
                (None, None) => return Err(DestinationError::DurableWithoutId(self.to_string())),
            };
            QueueDeclaration {
                name: Some(name),
                durable: true,
                exclusive: options.exclusive.unwrap_or(false),
                auto_delete: options.auto_delete.unwrap_or(false),
                passive: false,
                arguments: options.arguments.clone(),
            }
        } else {
            QueueDeclaration {
                name: options.queue_name.clone(),
                durable: false,
                exclusive: options.exclusive.unwrap_or(true),
                auto_delete: options.auto_delete.unwrap_or(true),
                passive: false,
                arguments: options.arguments.clone(),
            }
        };
        Ok(SubscribeTarget {
            declaration,
            bind: Some((exchange, pattern)),
        })
    }

    /// The delivery-side destination of a message published to `exchange` with
    /// `routing_key`: `amq.topic` gives `/topic/<key>`, the default exchange `/queue/<key>`,
    /// any other exchange `/exchange/<x>/<key>`.
    pub fn from_route(exchange: &ExchangeName, routing_key: &str) -> Self {
        if exchange.is_default() {
            // A routing key longer than a queue name cannot have reached a queue.
            if let Ok(name) = QueueName::new(routing_key) {
                return Destination::Queue { name };
            }
        }
        if exchange.as_str() == TOPIC_EXCHANGE {
            return Destination::Topic {
                key: routing_key.to_owned(),
            };
        }
        Destination::Exchange {
            name: exchange.clone(),
            key: Some(routing_key.to_owned()),
        }
    }

    /// The raw form a `reply-to` destination is kept in by the core, shared with the MQTT
    /// adapter: `/topic/<key>`, `/exchange/<x>[/<key>]`, `/queue/<q>`, `/amq/queue/<q>` with
    /// names unescaped, and a reply queue as its bare name. `/temp-queue/<n>` stays as written
    /// (the session rewrites it before it reaches the core).
    pub fn to_core_reply_to(&self) -> String {
        match self {
            Destination::Topic { key } => format!("{TOPIC_PREFIX}{key}"),
            Destination::Queue { name } => format!("{QUEUE_PREFIX}{name}"),
            Destination::AmqQueue { name } => format!("{AMQ_QUEUE_PREFIX}{name}"),
            Destination::Exchange { name, key: None } => format!("{EXCHANGE_PREFIX}{name}"),
            Destination::Exchange {
                name,
                key: Some(key),
            } => format!("{EXCHANGE_PREFIX}{name}/{key}"),
            Destination::TempQueue { name } => format!("{TEMP_QUEUE_PREFIX}{}", escape(name)),
            Destination::ReplyQueue { name } => name.to_string(),
        }
    }

    /// Reads a core `reply_to` (any protocol's) as a destination: the inverse of
    /// [`Destination::to_core_reply_to`]. A bare queue name (non-empty, without `/`) is a
    /// [`Destination::ReplyQueue`]; `None` for text that is neither (kept verbatim by the
    /// caller, e.g. a URL). For `/exchange/`, the exchange ends at the first `/` and the rest is
    /// the key.
    pub fn from_core_reply_to(reply_to: &str) -> Option<Self> {
        if !reply_to.starts_with('/') {
            if reply_to.is_empty() || reply_to.contains('/') {
                return None;
            }
            return QueueName::new(reply_to)
                .ok()
                .map(|name| Destination::ReplyQueue { name });
        }
        if let Some(key) = reply_to.strip_prefix(TOPIC_PREFIX) {
            return Some(Destination::Topic {
                key: key.to_owned(),
            });
        }
        if let Some(rest) = reply_to.strip_prefix(EXCHANGE_PREFIX) {
            let (name, key) = match rest.split_once('/') {
                Some((name, key)) => (name, Some(key.to_owned())),
                None => (rest, None),
            };
            if name.is_empty() {
                return None;
            }
            return ExchangeName::new(name)
                .ok()
                .map(|name| Destination::Exchange { name, key });
        }
        if let Some(name) = reply_to.strip_prefix(QUEUE_PREFIX) {
            return QueueName::new(name)
                .ok()
                .map(|name| Destination::Queue { name });
        }
        if let Some(name) = reply_to.strip_prefix(AMQ_QUEUE_PREFIX) {
            return QueueName::new(name)
                .ok()
                .map(|name| Destination::AmqQueue { name });
        }
        None
    }
}

fn queue_name(destination: &str, name: &str) -> Result<QueueName, DestinationError> {
    if name.is_empty() {
        return Err(DestinationError::Invalid {
            destination: destination.to_owned(),
            reason: "the name is empty",
        });
    }
    QueueName::new(name).map_err(|_| DestinationError::Invalid {
        destination: destination.to_owned(),
        reason: "the queue name is longer than 255 bytes",
    })
}

fn shared_queue(name: &QueueName, options: &QueueOptions) -> QueueDeclaration {
    QueueDeclaration {
        name: Some(name.clone()),
        durable: options.durable.unwrap_or(true),
        exclusive: options.exclusive.unwrap_or(false),
        auto_delete: options.auto_delete.unwrap_or(false),
        passive: false,
        arguments: options.arguments.clone(),
    }
}

/// The canonical destination text: prefixes with names escaped by [`escape`].
impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Topic { key } => write!(f, "{TOPIC_PREFIX}{}", escape(key)),
            Destination::Queue { name } => write!(f, "{QUEUE_PREFIX}{}", escape(name.as_str())),
            Destination::AmqQueue { name } => {
                write!(f, "{AMQ_QUEUE_PREFIX}{}", escape(name.as_str()))
            }
            Destination::Exchange { name, key } => {
                write!(f, "{EXCHANGE_PREFIX}{}", escape(name.as_str()))?;
                match key {
                    Some(key) => write!(f, "/{}", escape(key)),
                    None => Ok(()),
                }
            }
            Destination::TempQueue { name } => write!(f, "{TEMP_QUEUE_PREFIX}{}", escape(name)),
            Destination::ReplyQueue { name } => {
                write!(f, "{REPLY_QUEUE_PREFIX}{}", escape(name.as_str()))
            }
        }
    }
}

/// The `destination` header of a MESSAGE frame for a message published to `exchange` with
/// `routing_key` (see [`Destination::from_route`]), canonical and escaped.
pub fn destination_header(exchange: &ExchangeName, routing_key: &str) -> String {
    Destination::from_route(exchange, routing_key).to_string()
}

/// `/reply-queue/<queue>`: what a `/temp-queue/<n>` in `reply-to` becomes once the session has
/// declared the connection's private reply queue `queue` for `n`.
pub fn reply_queue_destination(queue: &QueueName) -> String {
    Destination::ReplyQueue {
        name: queue.clone(),
    }
    .to_string()
}

/// The declaration of a `/temp-queue/` reply queue: server-named, exclusive to the connection,
/// auto-delete. The session declares one per connection and temp-queue name, consumes it, and
/// rewrites `reply-to` with [`reply_queue_destination`].
pub fn temp_queue_declaration() -> QueueDeclaration {
    QueueDeclaration {
        name: None,
        durable: false,
        exclusive: true,
        auto_delete: true,
        passive: false,
        arguments: Headers::new(),
    }
}

/// The durable queue of a durable subscription to `destination` with subscription `id`
/// (without `x-queue-name`): `stomp-subscription-` and the 128-bit FNV-1a hash, in hex, of the
/// canonical destination, a NUL and the id. Stable across builds and restarts.
pub fn durable_subscription_queue(destination: &Destination, id: &str) -> QueueName {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let canonical = destination.to_string();
    let mut hash = OFFSET;
    for byte in canonical
        .as_bytes()
        .iter()
        .chain([0u8].iter())
        .chain(id.as_bytes())
    {
        hash ^= u128::from(*byte);
        hash = hash.wrapping_mul(PRIME);
    }
    // 19 + 32 bytes: always a valid name.
    QueueName::new(format!("{DURABLE_SUBSCRIPTION_PREFIX}{hash:032x}"))
        .unwrap_or_else(|_| QueueName::generated())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqgate_core::message::FieldValue;

    fn q(name: &str) -> QueueName {
        QueueName::new(name).unwrap()
    }

    fn x(name: &str) -> ExchangeName {
        ExchangeName::new(name).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            Destination::parse("/topic/a.b.*").unwrap(),
            Destination::Topic {
                key: "a.b.*".into()
            }
        );
        assert_eq!(
            Destination::parse("/queue/q1").unwrap(),
            Destination::Queue { name: q("q1") }
        );
        assert_eq!(
            Destination::parse("/amq/queue/amq.gen-x").unwrap(),
            Destination::AmqQueue {
                name: q("amq.gen-x")
            }
        );
        assert_eq!(
            Destination::parse("/exchange/logs").unwrap(),
            Destination::Exchange {
                name: x("logs"),
                key: None
            }
        );
        assert_eq!(
            Destination::parse("/exchange/logs/a.#").unwrap(),
            Destination::Exchange {
                name: x("logs"),
                key: Some("a.#".into())
            }
        );
        assert_eq!(
            Destination::parse("/exchange/logs/").unwrap(),
            Destination::Exchange {
                name: x("logs"),
                key: Some(String::new())
            }
        );
        assert_eq!(
            Destination::parse("/temp-queue/replies").unwrap(),
            Destination::TempQueue {
                name: "replies".into()
            }
        );
        assert_eq!(
            Destination::parse("/reply-queue/amq.gen-abc").unwrap(),
            Destination::ReplyQueue {
                name: q("amq.gen-abc")
            }
        );
    }

    #[test]
    fn percent_escapes_decode_once() {
        assert_eq!(
            Destination::parse("/queue/a%2Fb%2fc").unwrap(),
            Destination::Queue { name: q("a/b/c") }
        );
        assert_eq!(
            Destination::parse("/topic/a%252Fb").unwrap(),
            Destination::Topic {
                key: "a%2Fb".into()
            }
        );
        assert_eq!(
            Destination::parse("/queue/100%").unwrap(),
            Destination::Queue { name: q("100%") }
        );
        assert_eq!(
            Destination::parse("/exchange/x%2Fy/k%2Fz").unwrap(),
            Destination::Exchange {
                name: x("x/y"),
                key: Some("k/z".into())
            }
        );
        assert_eq!(unescape("%41%25%2F"), "%41%/");
        assert_eq!(escape("%41%/"), "%2541%25%2F");
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        let cases = [
            Destination::Topic {
                key: "a/b.%".into(),
            },
            Destination::Queue { name: q("q/1") },
            Destination::AmqQueue { name: q("x%2F") },
            Destination::Exchange {
                name: x("e/x"),
                key: Some("k/1".into()),
            },
            Destination::Exchange {
                name: x("e"),
                key: None,
            },
            Destination::TempQueue { name: "t/1".into() },
            Destination::ReplyQueue { name: q("r/1") },
        ];
        for destination in cases {
            let text = destination.to_string();
            assert_eq!(Destination::parse(&text).unwrap(), destination, "{text}");
        }
        assert_eq!(
            Destination::parse("/topic/a%2fb").unwrap().to_string(),
            "/topic/a%2Fb"
        );
    }

    #[test]
    fn bad_destinations_are_named() {
        for text in ["foo", "/foo/bar", "", "/topics/a", "queue/q"] {
            let error = Destination::parse(text).unwrap_err();
            assert_eq!(error, DestinationError::Unknown(text.to_owned()));
            assert_eq!(error.to_string(), format!("Unknown destination '{text}'"));
        }
        for text in [
            "/topic/",
            "/queue/",
            "/topic/a/b",
            "/queue/a/b",
            "/amq/queue/",
            "/exchange/",
            "/exchange//k",
            "/exchange/x/a/b",
            "/temp-queue/",
            "/reply-queue/",
            "/topic",
            "/queue",
        ] {
            let error = Destination::parse(text).unwrap_err();
            assert!(
                matches!(&error, DestinationError::Invalid { destination, .. } if destination == text),
                "{text}: {error:?}"
            );
            assert!(error.to_string().contains(&format!("'{text}'")));
        }
        let long = format!("/queue/{}", "q".repeat(256));
        assert!(matches!(
            Destination::parse(&long),
            Err(DestinationError::Invalid { .. })
        ));
        assert!(Destination::parse(&format!("/queue/{}", "q".repeat(255))).is_ok());
    }

    #[test]
    fn publish_targets() {
        let target = |text: &str| Destination::parse(text).unwrap().publish_target();
        assert_eq!(
            target("/topic/a.b").unwrap(),
            (x("amq.topic"), "a.b".into())
        );
        assert_eq!(
            target("/queue/q").unwrap(),
            (ExchangeName::default_exchange(), "q".into())
        );
        assert_eq!(
            target("/amq/queue/q").unwrap(),
            (ExchangeName::default_exchange(), "q".into())
        );
        assert_eq!(
            target("/reply-queue/amq.gen-1").unwrap(),
            (ExchangeName::default_exchange(), "amq.gen-1".into())
        );
        assert_eq!(target("/exchange/e/k").unwrap(), (x("e"), "k".into()));
        assert_eq!(target("/exchange/e").unwrap(), (x("e"), String::new()));
        assert_eq!(
            target("/temp-queue/t").unwrap_err(),
            DestinationError::ReplyToOnly("/temp-queue/t".into())
        );
    }

    #[test]
    fn send_declares_only_queue_destinations() {
        let options =
            QueueOptions::for_send(&headers(&[("persistent", "false"), ("x-max-length", "10")]))
                .unwrap();
        assert_eq!(options.durable, None, "persistent on SEND is the message's");
        let declaration = Destination::parse("/queue/q")
            .unwrap()
            .send_declaration(&options)
            .unwrap();
        assert_eq!(declaration.name, Some(q("q")));
        assert!(declaration.durable && !declaration.exclusive && !declaration.auto_delete);
        assert_eq!(
            declaration.arguments.get("x-max-length"),
            Some(&FieldValue::I64(10))
        );
        for text in [
            "/amq/queue/q",
            "/topic/a",
            "/exchange/e/k",
            "/reply-queue/r",
        ] {
            assert_eq!(
                Destination::parse(text).unwrap().send_declaration(&options),
                None
            );
        }
    }

    #[test]
    fn topic_subscription_is_a_private_bound_queue() {
        let options = QueueOptions::for_subscribe(&headers(&[("id", "0")])).unwrap();
        let target = Destination::parse("/topic/a.*.#")
            .unwrap()
            .subscribe_target(&options)
            .unwrap();
        assert_eq!(target.queue(), None);
        let d = &target.declaration;
        assert!(d.exclusive && d.auto_delete && !d.durable && !d.passive);
        assert!(!target.is_shared());
        assert_eq!(target.bind, Some((x("amq.topic"), "a.*.#".into())));
        let binding = target.binding(&q("amq.gen-1")).unwrap();
        assert_eq!(binding.source, x("amq.topic"));
        assert_eq!(binding.destination, "amq.gen-1");
        assert_eq!(binding.routing_key, "a.*.#");
    }

    #[test]
    fn exchange_subscription_binds_to_the_exchange() {
        let options = QueueOptions::default();
        let target = Destination::parse("/exchange/logs/error")
            .unwrap()
            .subscribe_target(&options)
            .unwrap();
        assert_eq!(target.bind, Some((x("logs"), "error".into())));
        assert_eq!(target.queue(), None);
        let target = Destination::parse("/exchange/fan")
            .unwrap()
            .subscribe_target(&options)
            .unwrap();
        assert_eq!(target.bind, Some((x("fan"), String::new())));
    }

    #[test]
    fn durable_topic_subscription_has_a_stable_name() {
        let destination = Destination::parse("/topic/a.b").unwrap();
        for header in ["durable", "persistent"] {
            let options =
                QueueOptions::for_subscribe(&headers(&[("id", "sub-1"), (header, "true")]))
                    .unwrap();
            let target = destination.subscribe_target(&options).unwrap();
            let d = &target.declaration;
            assert!(d.durable && !d.exclusive && !d.auto_delete);
            assert!(target.is_shared());
            let name = target.queue().unwrap().as_str().to_owned();
            assert!(name.starts_with(DURABLE_SUBSCRIPTION_PREFIX), "{name}");
            assert_eq!(name.len(), DURABLE_SUBSCRIPTION_PREFIX.len() + 32);
            assert_eq!(
                name,
                durable_subscription_queue(&destination, "sub-1").as_str()
            );
        }
        // Fixed value: the name must not change between builds (the queue is durable).
        assert_eq!(
            durable_subscription_queue(&destination, "sub-1").as_str(),
            durable_subscription_queue(&Destination::parse("/topic/a.b").unwrap(), "sub-1")
                .as_str()
        );
        assert_ne!(
            durable_subscription_queue(&destination, "sub-1"),
            durable_subscription_queue(&destination, "sub-2")
        );
        assert_ne!(
            durable_subscription_queue(&destination, "sub-1"),
            durable_subscription_queue(&Destination::parse("/topic/a.c").unwrap(), "sub-1")
        );
        // Equivalent spellings share the queue.
        assert_eq!(
            durable_subscription_queue(&Destination::parse("/topic/a%2fb").unwrap(), "s"),
            durable_subscription_queue(&Destination::parse("/topic/a%2Fb").unwrap(), "s")
        );
        let options = QueueOptions::for_subscribe(&headers(&[
            ("id", "s"),
            ("durable", "true"),
            ("x-queue-name", "my-sub"),
        ]))
        .unwrap();
        assert_eq!(
            destination.subscribe_target(&options).unwrap().queue(),
            Some(&q("my-sub"))
        );
    }

    #[test]
    fn durable_without_id_is_refused() {
        let options = QueueOptions::for_subscribe(&headers(&[("durable", "true")])).unwrap();
        let error = Destination::parse("/topic/a")
            .unwrap()
            .subscribe_target(&options)
            .unwrap_err();
        assert_eq!(error, DestinationError::DurableWithoutId("/topic/a".into()));
        assert!(error.to_string().contains("'id'"));
    }

    #[test]
    fn queue_subscriptions_share_a_durable_queue() {
        let options = QueueOptions::for_subscribe(&headers(&[
            ("id", "1"),
            ("x-message-ttl", "6000"),
            ("x-overflow", "reject-publish"),
            ("x-single-active-consumer", "true"),
            ("x-tags", "not an argument"),
        ]))
        .unwrap();
        let target = Destination::parse("/queue/work")
            .unwrap()
            .subscribe_target(&options)
            .unwrap();
        assert_eq!(target.queue(), Some(&q("work")));
        assert_eq!(target.bind, None);
        let d = &target.declaration;
        assert!(d.durable && !d.exclusive && !d.auto_delete && !d.passive);
        assert_eq!(
            d.arguments.get("x-message-ttl"),
            Some(&FieldValue::I64(6000))
        );
        assert_eq!(
            d.arguments.get("x-overflow"),
            Some(&FieldValue::Str("reject-publish".into()))
        );
        assert_eq!(
            d.arguments.get("x-single-active-consumer"),
            Some(&FieldValue::Bool(true))
        );
        assert_eq!(d.arguments.len(), 3);

        let options = QueueOptions::for_subscribe(&headers(&[
            ("durable", "false"),
            ("durable", "true"),
            ("auto-delete", "true"),
            ("exclusive", "TRUE"),
        ]))
        .unwrap();
        let d = Destination::parse("/queue/tmp")
            .unwrap()
            .subscribe_target(&options)
            .unwrap()
            .declaration;
        assert!(
            !d.durable && d.auto_delete && d.exclusive,
            "first header wins"
        );
    }

    #[test]
    fn amq_queue_is_passive() {
        let target = Destination::parse("/amq/queue/existing")
            .unwrap()
            .subscribe_target(&QueueOptions::default())
            .unwrap();
        assert!(target.declaration.passive);
        assert_eq!(target.queue(), Some(&q("existing")));
        assert_eq!(target.bind, None);
    }

    #[test]
    fn reply_destinations_are_not_subscribable() {
        let options = QueueOptions::default();
        assert_eq!(
            Destination::parse("/temp-queue/t")
                .unwrap()
                .subscribe_target(&options)
                .unwrap_err(),
            DestinationError::ReplyToOnly("/temp-queue/t".into())
        );
        assert_eq!(
            Destination::parse("/reply-queue/r")
                .unwrap()
                .subscribe_target(&options)
                .unwrap_err(),
            DestinationError::NotSubscribable("/reply-queue/r".into())
        );
        let temp = temp_queue_declaration();
        assert!(temp.name.is_none() && temp.exclusive && !temp.durable);
        assert_eq!(
            reply_queue_destination(&q("amq.gen-7")),
            "/reply-queue/amq.gen-7"
        );
    }

    #[test]
    fn bad_queue_headers_are_named() {
        for (name, value) in [
            ("durable", "yes"),
            ("auto-delete", "1"),
            ("x-max-length", "ten"),
            ("x-single-active-consumer", "on"),
        ] {
            let error = QueueOptions::for_subscribe(&headers(&[(name, value)])).unwrap_err();
            assert!(
                matches!(&error, DestinationError::InvalidHeader { name: n, .. } if n == name),
                "{error:?}"
            );
            assert!(error.to_string().contains(value));
        }
        assert_eq!(
            QueueOptions::for_subscribe(&headers(&[("x-queue-name", &"q".repeat(256))]))
                .unwrap_err(),
            DestinationError::QueueNameTooLong(256)
        );
    }

    #[test]
    fn delivery_destination_from_route() {
        assert_eq!(destination_header(&x("amq.topic"), "a.b"), "/topic/a.b");
        assert_eq!(destination_header(&x("amq.topic"), "a/b"), "/topic/a%2Fb");
        assert_eq!(
            destination_header(&ExchangeName::default_exchange(), "q"),
            "/queue/q"
        );
        assert_eq!(destination_header(&x("logs"), "k"), "/exchange/logs/k");
        assert_eq!(destination_header(&x("logs"), ""), "/exchange/logs/");
        // Each one, sent back, reaches the same exchange and key.
        for (exchange, key) in [
            (x("amq.topic"), "a/b.c"),
            (ExchangeName::default_exchange(), "q%1"),
            (x("e/1"), "k/2"),
        ] {
            let text = destination_header(&exchange, key);
            let (e, k) = Destination::parse(&text).unwrap().publish_target().unwrap();
            assert_eq!((e, k.as_str()), (exchange, key), "{text}");
        }
    }

    #[test]
    fn core_reply_to_round_trips() {
        for (stomp, core) in [
            ("/topic/a%2Fb.c", "/topic/a/b.c"),
            ("/exchange/amq.topic/a%2Fb", "/exchange/amq.topic/a/b"),
            ("/exchange/e", "/exchange/e"),
            ("/queue/q%2F1", "/queue/q/1"),
            ("/amq/queue/q", "/amq/queue/q"),
            ("/reply-queue/amq.gen-1", "amq.gen-1"),
        ] {
            let destination = Destination::parse(stomp).unwrap();
            assert_eq!(destination.to_core_reply_to(), core);
            assert_eq!(
                Destination::from_core_reply_to(core).unwrap().to_string(),
                stomp
            );
        }
        assert_eq!(Destination::from_core_reply_to("/other/thing"), None);
        assert_eq!(Destination::from_core_reply_to(""), None);
    }
}
