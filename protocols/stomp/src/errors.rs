//! The one place that maps failures to STOMP's answer, and decides that the connection closes.
//!
//! STOMP has one way to refuse anything: an ERROR frame with a `message` header (and a
//! `receipt-id` when the offending frame asked for a receipt), after which the server closes the
//! connection (DESIGN.md section 5). Inputs are the codec's [`CodecError`]s, the core's errors and
//! rejections, and the session's own refusals; outputs are ERROR frames pushed to the driver's
//! [`Outbound`] and a [`Step::Close`] naming the cause for the logs.
//!
//! Invariants:
//! - Every failure after CONNECT closes the connection: there is no ERROR without a close.
//! - The `message` header is short and says what went wrong; the body (text/plain) gives the
//!   detail, naming the resource as the core's errors do (`no queue 'q' in vhost '/'`).
//! - A refused login says only `login refused for user '<name>'`; the cause stays in the logs.

use std::fmt::Display;

use mqgate_core::errors::PublishError;
use mqgate_core::outbox::PublishRejection;
use mqgate_session::{CloseReason, Outbound, Step};

use crate::codec::{CodecError, Outbound as Out, ServerCommand, ServerFrame};

/// The versions this server speaks, as an ERROR's `version` header lists them.
pub const SUPPORTED_VERSIONS: &str = "1.0,1.1,1.2";

/// An ERROR frame: `message`, then `receipt-id` when given, then a text/plain `detail` body
/// (none when empty).
pub fn error_frame(message: &str, receipt: Option<&str>, detail: &str) -> ServerFrame {
    let mut frame =
        ServerFrame::new(ServerCommand::Error).with_header("message", one_line(message));
    if let Some(receipt) = receipt {
        frame = frame.with_header("receipt-id", receipt);
    }
    if !detail.is_empty() {
        frame = frame
            .with_header("content-type", "text/plain")
            .with_body(detail.to_owned().into_bytes());
    }
    frame
}

/// Pushes an ERROR frame and closes with `reason`.
pub fn fail(
    out: &mut Outbound<Out>,
    message: &str,
    receipt: Option<&str>,
    detail: &str,
    reason: CloseReason,
) -> Step {
    tracing::info!(%message, %detail, "closing with ERROR");
    out.push(Out::Frame(error_frame(message, receipt, detail)));
    Step::Close(reason)
}

/// The client broke a protocol rule (a missing header, an unknown ack id, a mismatched
/// `user-id`): ERROR, then close as a protocol error.
pub fn protocol_error(
    out: &mut Outbound<Out>,
    message: &str,
    receipt: Option<&str>,
    detail: impl Display,
) -> Step {
    let detail = detail.to_string();
    let reason = CloseReason::Protocol(if detail.is_empty() {
        message.to_owned()
    } else {
        format!("{message}: {detail}")
    });
    fail(out, message, receipt, &detail, reason)
}

/// The codec could not decode a frame: ERROR with its description, then close (too large
/// frames close as [`CloseReason::FrameTooLarge`]).
pub fn codec_failure(out: &mut Outbound<Out>, error: &CodecError) -> Step {
    let (frame, reason) = codec_refusal(error);
    tracing::info!(%error, "bad frame");
    out.push(Out::Frame(frame));
    Step::Close(reason)
}

/// The ERROR frame and close reason for a codec error (before or after CONNECT).
pub fn codec_refusal(error: &CodecError) -> (ServerFrame, CloseReason) {
    let reason = match error {
        CodecError::FrameTooLarge { limit } => CloseReason::FrameTooLarge { limit: *limit },
        other => CloseReason::Protocol(other.to_string()),
    };
    let frame = error_frame(&codec_message(error), None, &error.to_string());
    (frame, reason)
}

fn codec_message(error: &CodecError) -> String {
    match error {
        CodecError::FrameTooLarge { .. } => "frame too large".to_owned(),
        CodecError::TooManyHeaders { .. } => "too many headers".to_owned(),
        CodecError::HeaderTooLong { .. } => "header too long".to_owned(),
        CodecError::BadContentLength(_) | CodecError::BodyAfterContentLength => {
            "invalid content-length".to_owned()
        }
        CodecError::NotUtf8 => "invalid encoding".to_owned(),
        CodecError::MissingColon(_) => "malformed header".to_owned(),
        CodecError::UnknownCommand(_) => "unknown command".to_owned(),
        CodecError::InvalidEscape(_) => "invalid header escape".to_owned(),
        _ => "malformed frame".to_owned(),
    }
}

/// The engine refused a SEND at once (no such exchange, an internal exchange).
pub fn publish_failed(
    out: &mut Outbound<Out>,
    error: &PublishError,
    receipt: Option<&str>,
) -> Step {
    let message = match error {
        PublishError::ExchangeNotFound { .. } => "not_found",
        _ => "access_refused",
    };
    fail(
        out,
        message,
        receipt,
        &error.to_string(),
        CloseReason::SessionEnded(format!("publish failed: {error}")),
    )
}

/// The engine settled a SEND as rejected (a full queue with `reject-publish`, storage).
pub fn publish_rejected(
    out: &mut Outbound<Out>,
    rejection: PublishRejection,
    receipt: Option<&str>,
) -> Step {
    let detail = match rejection {
        PublishRejection::QueueFull => "a target queue is full and rejects new messages",
        PublishRejection::StorageFailed => "the message could not be stored",
        PublishRejection::QueueDeleted => "a target queue was deleted before it stored the message",
        _ => "the engine rejected the message",
    };
    fail(
        out,
        "message rejected",
        receipt,
        detail,
        CloseReason::SessionEnded(format!("publish rejected: {rejection:?}")),
    )
}

/// The engine refused a SUBSCRIBE (declaring, binding or consuming the queue failed).
pub fn subscribe_failed(
    out: &mut Outbound<Out>,
    error: impl Display,
    receipt: Option<&str>,
) -> Step {
    let detail = error.to_string();
    let message = if detail.starts_with("no queue") || detail.starts_with("no exchange") {
        "not_found"
    } else if detail.contains("exclusive") {
        "resource_locked"
    } else {
        "subscription refused"
    };
    fail(
        out,
        message,
        receipt,
        &detail,
        CloseReason::SessionEnded(format!("subscribe failed: {detail}")),
    )
}

/// A per-connection limit was reached (subscriptions, transactions, buffered frames).
pub fn limit_reached(out: &mut Outbound<Out>, what: &str, receipt: Option<&str>) -> Step {
    fail(
        out,
        "resource limit reached",
        receipt,
        what,
        CloseReason::SessionEnded(format!("limit reached: {what}")),
    )
}

/// The frame the server sends every connection when it shuts down.
pub fn shutdown_frame() -> ServerFrame {
    error_frame(
        "server shutting down",
        None,
        "the server is shutting down; reconnect later",
    )
}

/// Header values may not hold line breaks in 1.0 (which has no escaping): keep one line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frames_carry_message_receipt_and_detail() {
        let frame = error_frame("bad\nthing", Some("r-1"), "the detail");
        assert_eq!(frame.command, ServerCommand::Error);
        assert_eq!(
            frame.headers,
            vec![
                ("message".to_owned(), "bad thing".to_owned()),
                ("receipt-id".to_owned(), "r-1".to_owned()),
                ("content-type".to_owned(), "text/plain".to_owned()),
            ]
        );
        assert_eq!(&frame.body[..], b"the detail");
        let bare = error_frame("m", None, "");
        assert_eq!(bare.headers.len(), 1);
        assert!(bare.body.is_empty());
    }

    #[test]
    fn too_large_frames_close_as_too_large() {
        let (frame, reason) = codec_refusal(&CodecError::FrameTooLarge { limit: 10 });
        assert_eq!(reason, CloseReason::FrameTooLarge { limit: 10 });
        assert_eq!(frame.headers[0].1, "frame too large");
    }
}
