//! A core message into the headers of a MESSAGE frame.

use mqgate_core::message::Message;
use mqgate_core::outbox::Delivery;

use super::{
    AMQP_MESSAGE_ID, APP_ID, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID, EXPIRATION,
    FRAME_HEADERS, MESSAGE_TYPE, PERSISTENT, PRIORITY, REPLY_TO, TIMESTAMP, USER_ID,
};
use crate::destination::{destination_header, Destination};

/// The headers of the MESSAGE frame delivering `delivery` to subscription `subscription`, in
/// this order: `destination` ([`destination_header`] of the message's exchange and routing
/// key), `message-id` (`message_id`: the session's delivery handle), `subscription`, `ack`
/// (pass `ack` only for STOMP 1.2 subscriptions that acknowledge), `redelivered`
/// (`true`/`false`, as RabbitMQ), then [`message_headers`].
///
/// `content-length` is the encoder's to add.
pub fn message_frame_headers(
    delivery: &Delivery,
    subscription: &str,
    message_id: &str,
    ack: Option<&str>,
) -> Vec<(String, String)> {
    let message = &delivery.message;
    let mut headers = vec![
        (
            "destination".to_owned(),
            destination_header(&message.exchange, &message.routing_key),
        ),
        ("message-id".to_owned(), message_id.to_owned()),
        ("subscription".to_owned(), subscription.to_owned()),
    ];
    if let Some(ack) = ack {
        headers.push(("ack".to_owned(), ack.to_owned()));
    }
    headers.push(("redelivered".to_owned(), delivery.redelivered.to_string()));
    headers.extend(message_headers(message));
    headers
}

/// The message part of a MESSAGE frame's headers: the standard properties that are set
/// (`content-type`, `content-encoding`, `persistent:true`, `priority`, `expiration`,
/// `amqp-message-id`, `timestamp`, `type`, `app-id`, `user-id`, `correlation-id`, `reply-to`),
/// then every message header in order, stringified with
/// [`FieldValue::to_text`](mqgate_core::message::FieldValue::to_text).
///
/// - `reply-to`: a bare queue name (no `/`) shows as `/reply-queue/<name>`; a raw core destination
///   (`/topic/<key>`, `/exchange/<x>/<key>`, `/queue/<q>`, `/amq/queue/<q>`) in its canonical
///   escaped form; anything else verbatim.
/// - A header whose name is already in the list (a property, e.g. an MQTT user property
///   `timestamp` of a message without the property), is one of [`FRAME_HEADERS`], or is empty
///   (STOMP cannot carry it) is left out; the first occurrence wins.
pub fn message_headers(message: &Message) -> Vec<(String, String)> {
    let standard = &message.properties;
    let properties = [
        (CONTENT_TYPE, standard.content_type.clone()),
        (CONTENT_ENCODING, standard.content_encoding.clone()),
        (PERSISTENT, standard.persistent.then(|| "true".to_owned())),
        (PRIORITY, standard.priority.map(|p| p.to_string())),
        (EXPIRATION, standard.expiration_ms.map(|ms| ms.to_string())),
        (AMQP_MESSAGE_ID, standard.message_id.clone()),
        (TIMESTAMP, standard.timestamp.map(|t| t.to_string())),
        (MESSAGE_TYPE, standard.message_type.clone()),
        (APP_ID, standard.app_id.clone()),
        (USER_ID, standard.user_id.clone()),
        (CORRELATION_ID, standard.correlation_id.clone()),
        (REPLY_TO, standard.reply_to.as_deref().map(stomp_reply_to)),
    ];
    let mut headers: Vec<(String, String)> = properties
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value?)))
        .collect();
    for (name, value) in message.headers.iter() {
        if name.is_empty()
            || FRAME_HEADERS.contains(&name)
            || headers.iter().any(|(existing, _)| existing == name)
        {
            continue;
        }
        headers.push((name.to_owned(), value.to_text()));
    }
    headers
}

fn stomp_reply_to(reply_to: &str) -> String {
    match Destination::from_core_reply_to(reply_to) {
        Some(destination) => destination.to_string(),
        None => reply_to.to_owned(),
    }
}
