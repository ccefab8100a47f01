//! Every AMQP error the adapter sends, and whether it closes the channel or the connection.
//!
//! This is the one file that maps failures onto reply codes (DESIGN.md section 5): channel
//! exceptions (403, 404, 405, 406) close the channel with `channel.close`; connection exceptions
//! (320, 501-505, 530, 540, 541) close the connection with `connection.close`. Texts follow
//! RabbitMQ's: the code's name, " - ", and a sentence naming the resource, so client code that
//! matches on them keeps working.

use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::ShortString;
use mqgate_core::errors::{
    BindError, ConsumeError, DeclareExchangeError, DeclareQueueError, DeleteExchangeError,
    DeleteQueueError, PublishError, QueueAccessError, UnknownDeliveryTag,
};

use crate::codec::FrameError;
use crate::convert::ConvertError;

/// `connection.close` reason when the server shuts down.
pub const CONNECTION_FORCED: u16 = 320;
/// The client sent bad content (a publish too large, a body longer than declared).
pub const CONTENT_TOO_LARGE: u16 = 311;
/// A mandatory publish that no queue took.
pub const NO_ROUTE: u16 = 312;
/// Not allowed: access to a resource, reserved names.
pub const ACCESS_REFUSED: u16 = 403;
/// A missing exchange or queue.
pub const NOT_FOUND: u16 = 404;
/// An exclusive queue of another connection.
pub const RESOURCE_LOCKED: u16 = 405;
/// Inequivalent redeclares, unknown delivery tags, invalid arguments.
pub const PRECONDITION_FAILED: u16 = 406;
/// A malformed frame.
pub const FRAME_ERROR: u16 = 501;
/// A malformed method.
pub const SYNTAX_ERROR: u16 = 502;
/// A method not allowed here.
pub const COMMAND_INVALID: u16 = 503;
/// A method on a channel that is not open, or a second `channel.open`.
pub const CHANNEL_ERROR: u16 = 504;
/// A frame out of order (a body without a header, a header without a publish).
pub const UNEXPECTED_FRAME: u16 = 505;
/// A limit (tune-ok values, channel_max, consumers per channel, a reused consumer tag) or a
/// vhost refusal.
pub const NOT_ALLOWED: u16 = 530;
/// A feature we do not implement (`immediate`).
pub const NOT_IMPLEMENTED: u16 = 540;
/// The server failed.
pub const INTERNAL_ERROR: u16 = 541;

/// What an error closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `channel.close`: the connection and its other channels go on.
    Channel,
    /// `connection.close`: everything ends.
    Connection,
}

/// An AMQP exception: a reply code, its text, and the method that caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    /// The reply code.
    pub code: u16,
    /// The full reply text, e.g. `NOT_FOUND - no queue 'q' in vhost '/'`.
    pub text: String,
    /// The class of the method that failed (0 when none).
    pub class_id: u16,
    /// The method that failed (0 when none).
    pub method_id: u16,
}

impl AmqpError {
    /// An error with `code` and a reason; the text gets the code's name as RabbitMQ writes it.
    pub fn new(code: u16, reason: impl std::fmt::Display) -> Self {
        Self {
            code,
            text: format!("{} - {reason}", code_name(code)),
            class_id: 0,
            method_id: 0,
        }
    }

    /// The same error, blamed on `method`.
    pub fn caused_by(self, method: &AMQPClass) -> Self {
        self.caused_by_ids(method.get_amqp_class_id(), method.get_amqp_method_id())
    }

    /// The same error, blamed on the method with these ids.
    pub fn caused_by_ids(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// Whether it closes the channel or the connection.
    pub fn scope(&self) -> Scope {
        match self.code {
            ACCESS_REFUSED | NOT_FOUND | RESOURCE_LOCKED | PRECONDITION_FAILED => Scope::Channel,
            _ => Scope::Connection,
        }
    }

    /// The reply text as a short string (cut at 255 bytes on a character boundary).
    pub fn reply_text(&self) -> ShortString {
        short(&self.text)
    }

    /// The connection.close for a codec refusal.
    pub fn from_frame(error: &FrameError) -> Self {
        Self {
            code: error.code,
            text: if error.text.starts_with(code_name(error.code)) {
                error.text.clone()
            } else {
                format!("{} - {}", code_name(error.code), error.text)
            },
            class_id: error.class_id,
            method_id: error.method_id,
        }
    }
}

/// A short string holding `text`, cut at 255 bytes on a character boundary (a reply text or a
/// name longer than AMQP allows would otherwise make the encoder fail).
pub fn short(text: &str) -> ShortString {
    let mut end = text.len().min(255);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::from(text.get(..end).unwrap_or_default())
}

/// RabbitMQ's name for a reply code.
pub fn code_name(code: u16) -> &'static str {
    match code {
        200 => "OK",
        CONNECTION_FORCED => "CONNECTION_FORCED",
        CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
        NO_ROUTE => "NO_ROUTE",
        ACCESS_REFUSED => "ACCESS_REFUSED",
        NOT_FOUND => "NOT_FOUND",
        RESOURCE_LOCKED => "RESOURCE_LOCKED",
        PRECONDITION_FAILED => "PRECONDITION_FAILED",
        FRAME_ERROR => "FRAME_ERROR",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        COMMAND_INVALID => "COMMAND_INVALID",
        CHANNEL_ERROR => "CHANNEL_ERROR",
        UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        NOT_ALLOWED => "NOT_ALLOWED",
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        INTERNAL_ERROR => "INTERNAL_ERROR",
        _ => "ERROR",
    }
}

impl From<&QueueAccessError> for AmqpError {
    fn from(error: &QueueAccessError) -> Self {
        let code = match error {
            QueueAccessError::Locked { .. } => RESOURCE_LOCKED,
            _ => NOT_FOUND,
        };
        AmqpError::new(code, error)
    }
}

impl From<&DeclareExchangeError> for AmqpError {
    fn from(error: &DeclareExchangeError) -> Self {
        let code = match error {
            DeclareExchangeError::NotFound { .. } => NOT_FOUND,
            DeclareExchangeError::ReservedName { .. } => ACCESS_REFUSED,
            _ => PRECONDITION_FAILED,
        };
        AmqpError::new(code, error)
    }
}

impl From<&DeleteExchangeError> for AmqpError {
    fn from(error: &DeleteExchangeError) -> Self {
        let code = match error {
            DeleteExchangeError::NotFound { .. } => NOT_FOUND,
            DeleteExchangeError::BuiltIn { .. } => ACCESS_REFUSED,
            _ => PRECONDITION_FAILED,
        };
        AmqpError::new(code, error)
    }
}

impl From<&DeclareQueueError> for AmqpError {
    fn from(error: &DeclareQueueError) -> Self {
        match error {
            DeclareQueueError::Access(access) => access.into(),
            DeclareQueueError::ReservedName { .. } => AmqpError::new(ACCESS_REFUSED, error),
            _ => AmqpError::new(PRECONDITION_FAILED, error),
        }
    }
}

impl From<&DeleteQueueError> for AmqpError {
    fn from(error: &DeleteQueueError) -> Self {
        match error {
            DeleteQueueError::Access(access) => access.into(),
            _ => AmqpError::new(PRECONDITION_FAILED, error),
        }
    }
}

impl From<&BindError> for AmqpError {
    fn from(error: &BindError) -> Self {
        match error {
            BindError::Queue(access) => access.into(),
            BindError::SourceNotFound { .. } | BindError::DestinationNotFound { .. } => {
                AmqpError::new(NOT_FOUND, error)
            }
            BindError::DefaultExchange => AmqpError::new(ACCESS_REFUSED, error),
            _ => AmqpError::new(PRECONDITION_FAILED, error),
        }
    }
}

impl From<&PublishError> for AmqpError {
    fn from(error: &PublishError) -> Self {
        let code = match error {
            PublishError::InternalExchange { .. } => ACCESS_REFUSED,
            _ => NOT_FOUND,
        };
        AmqpError::new(code, error)
    }
}

impl From<&ConsumeError> for AmqpError {
    fn from(error: &ConsumeError) -> Self {
        match error {
            ConsumeError::Access(access) => access.into(),
            ConsumeError::TagInUse { .. } => AmqpError::new(NOT_ALLOWED, error),
            _ => AmqpError::new(ACCESS_REFUSED, error),
        }
    }
}

impl From<&UnknownDeliveryTag> for AmqpError {
    fn from(error: &UnknownDeliveryTag) -> Self {
        AmqpError::new(PRECONDITION_FAILED, error)
    }
}

impl From<&ConvertError> for AmqpError {
    fn from(error: &ConvertError) -> Self {
        AmqpError::new(PRECONDITION_FAILED, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_carry_the_code_name_and_scopes_follow_the_code() {
        let error = AmqpError::new(NOT_FOUND, "no queue 'q' in vhost '/'");
        assert_eq!(error.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert_eq!(error.scope(), Scope::Channel);
        assert_eq!(
            AmqpError::new(CHANNEL_ERROR, "x").scope(),
            Scope::Connection
        );
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let text = "é".repeat(200);
        assert_eq!(short(&text).as_str().len(), 254);
    }
}
