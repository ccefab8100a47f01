//! Queue declaration arguments (`x-…`), parsed once with RabbitMQ's rules.
//!
//! Integers are accepted in any integer field width; a value of the wrong type is an error, as in
//! RabbitMQ. Arguments this engine does not know are ignored, as RabbitMQ ignores them.

use std::time::Duration;

use crate::message::{FieldValue, Headers};
use crate::names::ExchangeName;

/// `x-message-ttl`: milliseconds a message may stay ready.
pub const MESSAGE_TTL: &str = "x-message-ttl";
/// `x-expires`: milliseconds a queue may stay unused before it is deleted.
pub const EXPIRES: &str = "x-expires";
/// `x-max-length`: most ready messages.
pub const MAX_LENGTH: &str = "x-max-length";
/// `x-max-length-bytes`: most ready body bytes.
pub const MAX_LENGTH_BYTES: &str = "x-max-length-bytes";
/// `x-overflow`: what happens when a limit is reached.
pub const OVERFLOW: &str = "x-overflow";
/// `x-dead-letter-exchange`: where dead letters are republished.
pub const DEAD_LETTER_EXCHANGE: &str = "x-dead-letter-exchange";
/// `x-dead-letter-routing-key`: the routing key dead letters are republished with.
pub const DEAD_LETTER_ROUTING_KEY: &str = "x-dead-letter-routing-key";
/// `x-max-priority`: number of priority levels above 0.
pub const MAX_PRIORITY: &str = "x-max-priority";
/// `x-single-active-consumer`: only one consumer receives at a time.
pub const SINGLE_ACTIVE_CONSUMER: &str = "x-single-active-consumer";

/// What a queue does when a publish would exceed `x-max-length` or `x-max-length-bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// `drop-head`: drop (or dead-letter) the oldest ready messages until the new one fits.
    #[default]
    DropHead,
    /// `reject-publish`: refuse the new message; its publisher gets a negative confirm.
    RejectPublish,
    /// `reject-publish-dlx`: refuse the new message and dead-letter it.
    RejectPublishDlx,
    /// `block-publisher` (mqgate's own): while the queue has a consumer, a publish that asked
    /// for confirmation is taken over the limit and its confirmation held until the queue is back
    /// within it, so the publisher's window of unconfirmed publishes stops it; a publish that
    /// asked for none is refused. With no consumer the queue drops its head, so an absent
    /// consumer never blocks anyone. See `queue/hold.rs`.
    BlockPublisher,
}

impl Overflow {
    /// The policy's name as RabbitMQ spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Overflow::DropHead => "drop-head",
            Overflow::RejectPublish => "reject-publish",
            Overflow::RejectPublishDlx => "reject-publish-dlx",
            Overflow::BlockPublisher => "block-publisher",
        }
    }

    /// True for the two policies that refuse every publish over the limit.
    pub fn rejects_publish(self) -> bool {
        matches!(self, Overflow::RejectPublish | Overflow::RejectPublishDlx)
    }
}

/// A queue argument was refused. The text follows RabbitMQ's `invalid arg '…'` wording; the
/// adapter prefixes its own reply code (AMQP 406 PRECONDITION_FAILED).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgumentError {
    /// An integer argument was negative.
    #[error("invalid arg '{argument}': negative value {value}")]
    Negative {
        /// The argument's name.
        argument: &'static str,
        /// The value given.
        value: i64,
    },
    /// An integer argument was outside its allowed range.
    #[error("invalid arg '{argument}': value {value} is outside {min}..={max}")]
    OutOfRange {
        /// The argument's name.
        argument: &'static str,
        /// The value given.
        value: i64,
        /// The smallest value allowed.
        min: i64,
        /// The largest value allowed.
        max: i64,
    },
    /// An argument had the wrong type.
    #[error("invalid arg '{argument}': expected {expected}, got {found}")]
    WrongType {
        /// The argument's name.
        argument: &'static str,
        /// The type required.
        expected: &'static str,
        /// The type given.
        found: &'static str,
    },
    /// A string argument had a value outside its set (`x-overflow`).
    #[error("invalid arg '{argument}': unknown value '{value}'")]
    UnknownValue {
        /// The argument's name.
        argument: &'static str,
        /// The value given.
        value: String,
    },
    /// A name argument (`x-dead-letter-exchange`) was longer than 255 bytes.
    #[error("invalid arg '{argument}': name of {length} bytes is longer than 255")]
    NameTooLong {
        /// The argument's name.
        argument: &'static str,
        /// The length given.
        length: usize,
    },
}

/// A queue's parsed RabbitMQ arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueArguments {
    /// `x-message-ttl`: how long a message may stay ready.
    pub message_ttl: Option<Duration>,
    /// `x-expires`: how long the queue may stay unused.
    pub expires: Option<Duration>,
    /// `x-max-length`: most ready messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: most ready body bytes.
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`: policy when a limit is reached.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`: where dead letters go; none means they are dropped.
    pub dead_letter_exchange: Option<ExchangeName>,
    /// `x-dead-letter-routing-key`: replaces the message's routing key when dead-lettered.
    pub dead_letter_routing_key: Option<String>,
    /// `x-max-priority`: highest message priority honoured (1..=255); none means no priorities.
    pub max_priority: Option<u8>,
    /// `x-single-active-consumer`.
    pub single_active_consumer: bool,
}

impl QueueArguments {
    /// Parses a declaration's argument table.
    pub fn parse(arguments: &Headers) -> Result<Self, ArgumentError> {
        let overflow = match string(arguments, OVERFLOW)? {
            None => Overflow::default(),
            Some("drop-head") => Overflow::DropHead,
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            Some("block-publisher") => Overflow::BlockPublisher,
            Some(other) => {
                return Err(ArgumentError::UnknownValue {
                    argument: OVERFLOW,
                    value: other.to_owned(),
                })
            }
        };
        let dead_letter_exchange = string(arguments, DEAD_LETTER_EXCHANGE)?
            .map(|name| {
                ExchangeName::new(name).map_err(|_| ArgumentError::NameTooLong {
                    argument: DEAD_LETTER_EXCHANGE,
                    length: name.len(),
                })
            })
            .transpose()?;
        let max_priority = integer(arguments, MAX_PRIORITY, 1, 255)?
            .map(|value| {
                u8::try_from(value).map_err(|_| ArgumentError::OutOfRange {
                    argument: MAX_PRIORITY,
                    value,
                    min: 1,
                    max: 255,
                })
            })
            .transpose()?;
        Ok(Self {
            message_ttl: millis(arguments, MESSAGE_TTL, 0)?,
            expires: millis(arguments, EXPIRES, 1)?,
            max_length: unsigned(arguments, MAX_LENGTH)?,
            max_length_bytes: unsigned(arguments, MAX_LENGTH_BYTES)?,
            overflow,
            dead_letter_exchange,
            dead_letter_routing_key: string(arguments, DEAD_LETTER_ROUTING_KEY)?.map(str::to_owned),
            max_priority,
            single_active_consumer: boolean(arguments, SINGLE_ACTIVE_CONSUMER)?.unwrap_or(false),
        })
    }
}

fn type_name(value: &FieldValue) -> &'static str {
    match value {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_)
        | FieldValue::U8(_)
        | FieldValue::I16(_)
        | FieldValue::U16(_)
        | FieldValue::I32(_)
        | FieldValue::U32(_)
        | FieldValue::I64(_) => "integer",
        FieldValue::F32(_) | FieldValue::F64(_) => "float",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::Str(_) | FieldValue::BinaryStr(_) => "string",
        FieldValue::Bytes(_) => "bytes",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Array(_) => "array",
        FieldValue::Void => "void",
    }
}

fn wrong_type(argument: &'static str, expected: &'static str, value: &FieldValue) -> ArgumentError {
    ArgumentError::WrongType {
        argument,
        expected,
        found: type_name(value),
    }
}

/// An integer in `min..=max`; a negative value is reported as such, as RabbitMQ does.
fn integer(
    arguments: &Headers,
    argument: &'static str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ArgumentError> {
    let Some(value) = arguments.get(argument) else {
        return Ok(None);
    };
    // A timestamp is not an integer argument for RabbitMQ, even though `as_i64` reads it.
    let number = match value {
        FieldValue::Timestamp(_) => None,
        other => other.as_i64(),
    }
    .ok_or_else(|| wrong_type(argument, "integer", value))?;
    if number < 0 && min >= 0 {
        return Err(ArgumentError::Negative {
            argument,
            value: number,
        });
    }
    if number < min || number > max {
        return Err(ArgumentError::OutOfRange {
            argument,
            value: number,
            min,
            max,
        });
    }
    Ok(Some(number))
}

fn unsigned(arguments: &Headers, argument: &'static str) -> Result<Option<u64>, ArgumentError> {
    Ok(integer(arguments, argument, 0, i64::MAX)?.and_then(|value| u64::try_from(value).ok()))
}

fn millis(
    arguments: &Headers,
    argument: &'static str,
    min: i64,
) -> Result<Option<Duration>, ArgumentError> {
    Ok(integer(arguments, argument, min, i64::MAX)?
        .and_then(|value| u64::try_from(value).ok())
        .map(Duration::from_millis))
}

fn string<'a>(
    arguments: &'a Headers,
    argument: &'static str,
) -> Result<Option<&'a str>, ArgumentError> {
    arguments
        .get(argument)
        .map(|value| {
            value
                .as_str()
                .ok_or_else(|| wrong_type(argument, "string", value))
        })
        .transpose()
}

fn boolean(arguments: &Headers, argument: &'static str) -> Result<Option<bool>, ArgumentError> {
    arguments
        .get(argument)
        .map(|value| match value {
            FieldValue::Bool(flag) => Ok(*flag),
            other => Err(wrong_type(argument, "bool", other)),
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, FieldValue)]) -> Result<QueueArguments, ArgumentError> {
        let mut headers = Headers::new();
        for (key, value) in pairs {
            headers.insert(*key, value.clone());
        }
        QueueArguments::parse(&headers)
    }

    #[test]
    fn empty_table_gives_defaults() {
        assert_eq!(parse(&[]), Ok(QueueArguments::default()));
    }

    #[test]
    fn every_argument_parses_from_any_integer_width() {
        let parsed = parse(&[
            (MESSAGE_TTL, FieldValue::U16(1500)),
            (EXPIRES, FieldValue::I32(60_000)),
            (MAX_LENGTH, FieldValue::I8(3)),
            (MAX_LENGTH_BYTES, FieldValue::U32(4096)),
            (OVERFLOW, FieldValue::from("reject-publish-dlx")),
            (DEAD_LETTER_EXCHANGE, FieldValue::from("dlx")),
            (DEAD_LETTER_ROUTING_KEY, FieldValue::from("dead")),
            (MAX_PRIORITY, FieldValue::U8(10)),
            (SINGLE_ACTIVE_CONSUMER, FieldValue::Bool(true)),
            ("x-queue-mode", FieldValue::from("lazy")),
        ])
        .unwrap();
        assert_eq!(parsed.message_ttl, Some(Duration::from_millis(1500)));
        assert_eq!(parsed.expires, Some(Duration::from_millis(60_000)));
        assert_eq!(parsed.max_length, Some(3));
        assert_eq!(parsed.max_length_bytes, Some(4096));
        assert_eq!(parsed.overflow, Overflow::RejectPublishDlx);
        assert_eq!(parsed.dead_letter_exchange.unwrap().as_str(), "dlx");
        assert_eq!(parsed.dead_letter_routing_key.as_deref(), Some("dead"));
        assert_eq!(parsed.max_priority, Some(10));
        assert!(parsed.single_active_consumer);
    }

    #[test]
    fn routing_key_alone_is_accepted() {
        let parsed = parse(&[(DEAD_LETTER_ROUTING_KEY, FieldValue::from("k"))]).unwrap();
        assert_eq!(parsed.dead_letter_exchange, None);
        assert_eq!(parsed.dead_letter_routing_key.as_deref(), Some("k"));
    }

    #[test]
    fn rabbitmq_ranges_are_enforced() {
        let error = parse(&[(MAX_LENGTH, FieldValue::I64(-1))]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid arg 'x-max-length': negative value -1"
        );
        assert!(parse(&[(MESSAGE_TTL, FieldValue::I64(0))]).is_ok());
        assert!(matches!(
            parse(&[(EXPIRES, FieldValue::I64(0))]),
            Err(ArgumentError::OutOfRange {
                argument: EXPIRES,
                value: 0,
                ..
            })
        ));
        assert!(parse(&[(MAX_PRIORITY, FieldValue::I64(0))]).is_err());
        assert!(parse(&[(MAX_PRIORITY, FieldValue::I64(256))]).is_err());
        assert_eq!(
            parse(&[(MAX_PRIORITY, FieldValue::I64(255))])
                .unwrap()
                .max_priority,
            Some(255)
        );
    }

    #[test]
    fn wrong_types_are_errors() {
        let error = parse(&[(MESSAGE_TTL, FieldValue::from("100"))]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid arg 'x-message-ttl': expected integer, got string"
        );
        assert!(parse(&[(MAX_LENGTH, FieldValue::F64(1.0))]).is_err());
        assert!(parse(&[(SINGLE_ACTIVE_CONSUMER, FieldValue::I8(1))]).is_err());
        assert!(parse(&[(DEAD_LETTER_EXCHANGE, FieldValue::I8(1))]).is_err());
        assert_eq!(
            parse(&[(OVERFLOW, FieldValue::from("drop-tail"))])
                .unwrap_err()
                .to_string(),
            "invalid arg 'x-overflow': unknown value 'drop-tail'"
        );
    }
}
