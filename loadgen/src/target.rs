//! Where a client connects and how a scenario's logical key becomes that protocol's name.
//!
//! A target is `scheme://host:port`: `mqtt` (MQTT 3.1.1), `mqtt5`, `stomp` (1.2) or `amqp`
//! (0-9-1, vhost `/`); the port defaults to the protocol's usual one. A scenario names its
//! streams with a logical key `bench.<run>.<n>` (words of `[0-9a-z]`), translated as every
//! broker under test maps them onto one topic space: MQTT topic `bench/<run>/<n>`, STOMP
//! destination `/topic/bench.<run>.<n>`, AMQP exchange `amq.topic` with that routing key.

use std::fmt;
use std::str::FromStr;

/// The protocol a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4).
    Mqtt3,
    /// MQTT 5.0.
    Mqtt5,
    /// STOMP 1.2.
    Stomp,
    /// AMQP 0-9-1.
    Amqp,
}

impl Protocol {
    fn scheme(self) -> &'static str {
        match self {
            Protocol::Mqtt3 => "mqtt",
            Protocol::Mqtt5 => "mqtt5",
            Protocol::Stomp => "stomp",
            Protocol::Amqp => "amqp",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Protocol::Mqtt3 | Protocol::Mqtt5 => 1883,
            Protocol::Stomp => 61613,
            Protocol::Amqp => 5672,
        }
    }

    /// True for both MQTT versions.
    pub fn is_mqtt(self) -> bool {
        matches!(self, Protocol::Mqtt3 | Protocol::Mqtt5)
    }
}

/// A broker address and the protocol to speak there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The protocol.
    pub protocol: Protocol,
    /// Host name or IP address (brackets removed from an IPv6 literal).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Why a target string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// No `scheme://` in front.
    #[error("expected scheme://host[:port], e.g. mqtt://127.0.0.1:1883")]
    NoScheme,
    /// A scheme other than mqtt, mqtt5, stomp, amqp.
    #[error("unknown scheme {0:?} (mqtt, mqtt5, stomp or amqp)")]
    Scheme(String),
    /// An empty host.
    #[error("no host")]
    NoHost,
    /// A port that is not a number from 1 to 65535.
    #[error("bad port {0:?}")]
    Port(String),
}

impl FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = text.split_once("://").ok_or(TargetError::NoScheme)?;
        let protocol = match scheme {
            "mqtt" => Protocol::Mqtt3,
            "mqtt5" => Protocol::Mqtt5,
            "stomp" => Protocol::Stomp,
            "amqp" => Protocol::Amqp,
            other => return Err(TargetError::Scheme(other.to_owned())),
        };
        let authority = rest.trim_end_matches('/');
        let (host, port) = if let Some(literal) = authority.strip_prefix('[') {
            // [v6]:port or [v6]
            let (host, after) = literal.split_once(']').ok_or(TargetError::NoHost)?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(TargetError::NoHost);
        }
        let port = match port {
            None => protocol.default_port(),
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|&port| port > 0)
                .ok_or_else(|| TargetError::Port(port.to_owned()))?,
        };
        Ok(Self {
            protocol,
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(
                f,
                "{}://[{}]:{}",
                self.protocol.scheme(),
                self.host,
                self.port
            )
        } else {
            write!(
                f,
                "{}://{}:{}",
                self.protocol.scheme(),
                self.host,
                self.port
            )
        }
    }
}

impl Target {
    /// `host:port` for a socket connect (IPv6 literals bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The name of logical `key` (dot-separated words) in this target's protocol: an MQTT
    /// topic, a STOMP destination, or an AMQP routing key on `amq.topic`.
    pub fn name(&self, key: &str) -> String {
        match self.protocol {
            Protocol::Mqtt3 | Protocol::Mqtt5 => key.replace('.', "/"),
            Protocol::Stomp => format!("/topic/{key}"),
            Protocol::Amqp => key.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults_ports() {
        let target: Target = "mqtt5://127.0.0.1".parse().unwrap();
        assert_eq!(target.protocol, Protocol::Mqtt5);
        assert_eq!(target.port, 1883);
        let target: Target = "amqp://localhost:25672/".parse().unwrap();
        assert_eq!((target.host.as_str(), target.port), ("localhost", 25672));
        let target: Target = "stomp://[::1]:61613".parse().unwrap();
        assert_eq!(target.host, "::1");
        assert_eq!(target.authority(), "[::1]:61613");
        assert_eq!(target.to_string(), "stomp://[::1]:61613");
    }

    #[test]
    fn refuses_bad_targets() {
        assert_eq!(
            "127.0.0.1:1883".parse::<Target>(),
            Err(TargetError::NoScheme)
        );
        assert!(matches!(
            "http://x".parse::<Target>(),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            "mqtt://x:0".parse::<Target>(),
            Err(TargetError::Port(_))
        ));
        assert!(matches!(
            "mqtt://x:y".parse::<Target>(),
            Err(TargetError::Port(_))
        ));
        assert_eq!("mqtt://:1883".parse::<Target>(), Err(TargetError::NoHost));
    }

    #[test]
    fn names_per_protocol() {
        let key = "bench.ab12.3";
        let name = |t: &str| t.parse::<Target>().unwrap().name(key);
        assert_eq!(name("mqtt://h"), "bench/ab12/3");
        assert_eq!(name("stomp://h"), "/topic/bench.ab12.3");
        assert_eq!(name("amqp://h"), "bench.ab12.3");
    }
}
