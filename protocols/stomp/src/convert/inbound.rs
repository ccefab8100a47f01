//! A client's SEND into a core message.

use bytes::Bytes;
use mqgate_core::message::{Headers, Message, Properties};
use mqgate_core::names::RoutingKeyText;

use super::{
    ConvertError, AMQP_MESSAGE_ID, APP_ID, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID,
    EXPIRATION, FRAME_HEADERS, MESSAGE_TYPE, PERSISTENT, PRIORITY, REPLY_TO, TIMESTAMP, USER_ID,
};
use crate::destination::{Destination, TEMP_QUEUE_PREFIX};

/// The core message for a SEND to `destination` with the frame's decoded `headers` (wire
/// order, repeats kept: the first occurrence wins) and `body` (shared, not copied), from a
/// connection authenticated as `authenticated_user`.
///
/// - Exchange and routing key: [`Destination::publish_target`] (`/temp-queue/` refused).
///   Declaring a `/queue/` first is the session's ([`Destination::send_declaration`]).
/// - Properties as in the module table; `persistent` is true only for `true` (any case);
///   `priority` must be 0-255, `expiration` and `timestamp` non-negative integers.
/// - `user-id` must equal `authenticated_user` ([`ConvertError::UserIdMismatch`]).
/// - `reply-to`: a `/temp-queue/` must already be rewritten by the session to
///   `/reply-queue/<queue>` ([`ConvertError::UnresolvedTempQueue`] otherwise); a destination is
///   kept in its raw core form (a `/reply-queue/` as the bare queue name, so AMQP clients can
///   reply via the default exchange); anything else verbatim.
/// - [`FRAME_HEADERS`] are dropped (a SEND may not set `message-id`); every other header
///   becomes a `Str` header, `x-retain` included (the core retains on it).
///
/// [`Message::origin`] is left `None` for the session to set.
pub fn message_from_send(
    destination: &Destination,
    headers: &[(String, String)],
    body: Bytes,
    authenticated_user: &str,
) -> Result<Message, ConvertError> {
    let (exchange, routing_key) = destination.publish_target()?;
    let mut properties = Properties::default();
    let mut table = Headers::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in headers {
        if seen.contains(&name.as_str()) {
            continue;
        }
        seen.push(name);
        match name.as_str() {
            n if FRAME_HEADERS.contains(&n) => {}
            CONTENT_TYPE => properties.content_type = Some(value.clone()),
            CONTENT_ENCODING => properties.content_encoding = Some(value.clone()),
            CORRELATION_ID => properties.correlation_id = Some(value.clone()),
            REPLY_TO => properties.reply_to = Some(core_reply_to(value)?),
            PERSISTENT => properties.persistent = value.eq_ignore_ascii_case("true"),
            PRIORITY => properties.priority = Some(number(name, value, "an integer 0-255")?),
            EXPIRATION => {
                properties.expiration_ms = Some(number(name, value, "a number of milliseconds")?);
            }
            TIMESTAMP => properties.timestamp = Some(number(name, value, "a number of seconds")?),
            AMQP_MESSAGE_ID => properties.message_id = Some(value.clone()),
            MESSAGE_TYPE => properties.message_type = Some(value.clone()),
            APP_ID => properties.app_id = Some(value.clone()),
            USER_ID => {
                if value != authenticated_user {
                    return Err(ConvertError::UserIdMismatch {
                        claimed: value.clone(),
                        user: authenticated_user.to_owned(),
                    });
                }
                properties.user_id = Some(value.clone());
            }
            _ => {
                table.push_if_absent(name.as_str(), value.as_str());
            }
        }
    }
    Ok(Message {
        exchange,
        routing_key: RoutingKeyText::from(routing_key.as_str()),
        properties,
        headers: table,
        body,
        origin: None,
    })
}

fn number<T: std::str::FromStr>(
    name: &str,
    value: &str,
    expected: &'static str,
) -> Result<T, ConvertError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConvertError::InvalidHeader {
            name: name.to_owned(),
            value: value.to_owned(),
            expected,
        })
}

fn core_reply_to(value: &str) -> Result<String, ConvertError> {
    if value.starts_with(TEMP_QUEUE_PREFIX) {
        return Err(ConvertError::UnresolvedTempQueue(value.to_owned()));
    }
    Ok(match Destination::parse(value) {
        Ok(destination) => destination.to_core_reply_to(),
        Err(_) => value.to_owned(),
    })
}
