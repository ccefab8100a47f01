//! The protocol registry: which adapters exist, and how the gateway gets a connection handler
//! for each.
//!
//! An adapter lands by changing its entry in [`adapter`] from [`AdapterStatus::Pending`] to
//! [`AdapterStatus::Landed`] with a [`HandlerFactory`]; nothing else in the gateway changes.
//! Until then, config validation refuses a listener for that protocol, and so does
//! [`crate::Gateway::start`] (a listener that accepts connections and ignores them would be
//! worse than none).
//!
//! MQTT, STOMP and AMQP 0-9-1 have all landed. `Pending` stays for the next protocol: its
//! [`Protocol`] variant and `listeners:` key can be added, and checked, before its adapter
//! exists ([`AdapterStatus::not_landed_reason`] words the refusal).

use std::fmt;
use std::sync::Arc;

use mqgate_amqp::AmqpSettings;
use mqgate_core::auth::Users;
use mqgate_core::broker::Broker;
use mqgate_core::names::UserName;
use mqgate_mqtt::MqttSettings;
use mqgate_stomp::StompSettings;

use crate::listener::ConnectionHandler;
use crate::settings::Limits;

/// A protocol the gateway can listen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// MQTT 3.1, 3.1.1 and 5.0.
    Mqtt,
    /// STOMP 1.0, 1.1 and 1.2.
    Stomp,
    /// AMQP 0-9-1.
    Amqp,
}

impl Protocol {
    /// Every protocol, in config order.
    pub const ALL: [Protocol; 3] = [Protocol::Mqtt, Protocol::Stomp, Protocol::Amqp];

    /// The protocol's key under `listeners:` in the config file.
    pub fn key(self) -> &'static str {
        match self {
            Protocol::Mqtt => "mqtt",
            Protocol::Stomp => "stomp",
            Protocol::Amqp => "amqp",
        }
    }

    /// The protocol's name for people.
    pub fn display_name(self) -> &'static str {
        match self {
            Protocol::Mqtt => "MQTT",
            Protocol::Stomp => "STOMP",
            Protocol::Amqp => "AMQP",
        }
    }

    /// The conventional plain and TLS ports (DESIGN.md section 1).
    pub fn default_ports(self) -> (u16, u16) {
        match self {
            Protocol::Mqtt => (1883, 8883),
            Protocol::Stomp => (61613, 61614),
            Protocol::Amqp => (5672, 5671),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What an adapter gets to build its handler: the engine, the users, the limits and the
/// adapters' sections.
#[derive(Debug, Clone)]
pub struct AdapterContext {
    /// The engine.
    pub broker: Arc<Broker>,
    /// The configured users.
    pub users: Arc<Users>,
    /// The user that clients sending no credentials act as, if anonymous logins are enabled.
    pub anonymous: Option<UserName>,
    /// Connection and message limits.
    pub limits: Limits,
    /// The MQTT adapter's settings (the `mqtt:` section).
    pub mqtt: MqttSettings,
    /// The STOMP adapter's settings (the `stomp:` section).
    pub stomp: StompSettings,
    /// The AMQP adapter's settings (the `amqp:` section).
    pub amqp: AmqpSettings,
}

/// Builds an adapter's connection handler, once per listener.
pub type HandlerFactory = fn(&AdapterContext) -> Arc<dyn ConnectionHandler>;

/// Whether an adapter can serve connections yet.
#[derive(Clone, Copy)]
pub enum AdapterStatus {
    /// The adapter exists: this builds its handler.
    Landed(HandlerFactory),
    /// Not written yet; `issue` is the tracking issue, when known.
    Pending {
        /// The issue that will land it.
        issue: Option<u32>,
    },
}

impl fmt::Debug for AdapterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdapterStatus::Landed(_) => f.write_str("Landed"),
            AdapterStatus::Pending { issue } => {
                f.debug_struct("Pending").field("issue", issue).finish()
            }
        }
    }
}

impl AdapterStatus {
    /// Why a listener for `protocol` cannot be served with this status, as said to the
    /// operator; `None` if the adapter has landed.
    pub fn not_landed_reason(self, protocol: Protocol) -> Option<String> {
        match self {
            AdapterStatus::Landed(_) => None,
            AdapterStatus::Pending { issue } => {
                let issue = issue.map(|n| format!(" (issue {n})")).unwrap_or_default();
                Some(format!(
                    "the {} adapter has not landed yet{issue}; remove this key",
                    protocol.display_name()
                ))
            }
        }
    }
}

/// Looks up a protocol's adapter status: [`adapter`], or another table in tests.
pub type Registry = fn(Protocol) -> AdapterStatus;

/// The registry: each protocol's adapter status. An adapter issue registers its handler here.
pub fn adapter(protocol: Protocol) -> AdapterStatus {
    match protocol {
        Protocol::Mqtt => AdapterStatus::Landed(crate::adapters::mqtt::MqttHandler::factory),
        Protocol::Stomp => AdapterStatus::Landed(crate::adapters::stomp::StompHandler::factory),
        Protocol::Amqp => AdapterStatus::Landed(crate::adapters::amqp::AmqpHandler::factory),
    }
}

/// Why a protocol cannot be listened for yet, as said to the operator; `None` if it can.
pub fn not_landed_reason(protocol: Protocol) -> Option<String> {
    adapter(protocol).not_landed_reason(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_has_landed() {
        for protocol in Protocol::ALL {
            assert!(
                matches!(adapter(protocol), AdapterStatus::Landed(_)),
                "{protocol}"
            );
            assert_eq!(not_landed_reason(protocol), None, "{protocol}");
        }
    }

    #[test]
    fn pending_adapters_say_so() {
        let pending = AdapterStatus::Pending { issue: Some(5) };
        assert_eq!(
            pending.not_landed_reason(Protocol::Amqp).as_deref(),
            Some("the AMQP adapter has not landed yet (issue 5); remove this key")
        );
        let untracked = AdapterStatus::Pending { issue: None };
        assert_eq!(
            untracked.not_landed_reason(Protocol::Stomp).as_deref(),
            Some("the STOMP adapter has not landed yet; remove this key")
        );
        assert_eq!(format!("{pending:?}"), "Pending { issue: Some(5) }");
        let landed = adapter(Protocol::Amqp);
        assert_eq!(landed.not_landed_reason(Protocol::Amqp), None);
        assert_eq!(format!("{landed:?}"), "Landed");
    }
}
