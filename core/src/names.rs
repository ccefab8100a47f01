//! Names of the things the engine holds, as newtypes parsed once at the edge.
//!
//! Every name is an `Arc<str>`: cloning one into a delivery, a binding or a log line costs a
//! reference count, never a copy of the text. AMQP caps names at 255 bytes (a short string);
//! the constructors enforce that cap so no adapter can create a name another adapter cannot carry.

use std::fmt;
use std::sync::Arc;

/// The longest name any protocol can carry (an AMQP short string).
pub const MAX_NAME_LEN: usize = 255;

/// A name was rejected when it was parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// Longer than [`MAX_NAME_LEN`] bytes.
    #[error("name of {0} bytes is longer than the limit of 255")]
    TooLong(usize),
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses a name, rejecting one longer than [`MAX_NAME_LEN`] bytes.
            pub fn new(text: impl AsRef<str>) -> Result<Self, NameError> {
                let text = text.as_ref();
                if text.len() > MAX_NAME_LEN {
                    return Err(NameError::TooLong(text.len()));
                }
                Ok(Self(Arc::from(text)))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A virtual host: a namespace of exchanges, queues, bindings and permissions.
    VhostName
);
name_type!(
    /// An exchange's name; the empty name is the default exchange.
    ExchangeName
);
name_type!(
    /// A queue's name.
    QueueName
);
name_type!(
    /// A consumer's tag, unique within its session.
    ConsumerTag
);
name_type!(
    /// A user's name.
    UserName
);

impl VhostName {
    /// The default vhost `/`.
    pub fn default_vhost() -> Self {
        Self(Arc::from("/"))
    }
}

impl QueueName {
    /// A fresh server-generated name, `amq.gen-` and 22 random letters and digits, as RabbitMQ
    /// makes them.
    pub fn generated() -> Self {
        use rand::distributions::{Alphanumeric, DistString};
        let suffix = Alphanumeric.sample_string(&mut rand::thread_rng(), 22);
        Self(Arc::from(format!("amq.gen-{suffix}")))
    }
}

impl ExchangeName {
    /// The default exchange `""`, which routes to the queue named by the routing key.
    pub fn default_exchange() -> Self {
        Self(Arc::from(""))
    }

    /// True for the default exchange.
    pub fn is_default(&self) -> bool {
        self.0.is_empty()
    }
}

/// A message's routing key: `.`-separated words. Unlike names it may be up to 255 bytes too,
/// but it is kept as shared text because every copy of a message carries it.
pub type RoutingKeyText = Arc<str>;

/// Identifies one client connection (owner of exclusive queues), unique for the broker's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Identifies one core session (an AMQP channel, a STOMP connection, an MQTT session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_over_255_bytes_are_rejected() {
        assert!(QueueName::new("q".repeat(255)).is_ok());
        assert_eq!(
            QueueName::new("q".repeat(256)),
            Err(NameError::TooLong(256))
        );
    }

    #[test]
    fn default_exchange_is_empty() {
        assert!(ExchangeName::default_exchange().is_default());
        assert!(!ExchangeName::new("amq.topic").unwrap().is_default());
    }
}
