//! The reply code and text of every input the decoder refuses: what the session's
//! `connection.close` says.
//!
//! Each case names what RabbitMQ 3.10.8 answered to the same bytes (raw socket, after a full
//! handshake with `frame_max` 131072, channel 1 open). Where RabbitMQ answers, the code is its
//! code and the text keeps its words (`frame_too_large`, `unknown_frame`, `cannot decode`);
//! where it just drops the socket (its parser crashes), we still send a clean
//! `connection.close` with the spec's code: 501 FRAME_ERROR for bytes that cannot be decoded,
//! 502 SYNTAX_ERROR for decodable values we refuse, 540 NOT_IMPLEMENTED for methods we do not
//! know. Texts start with the code's name, as RabbitMQ writes them, and stay well under the
//! 255 bytes a reply text may hold.

use super::tables::TableError;
use super::FrameError;

/// The peer sent a frame the recipient could not decode.
pub(super) const FRAME_ERROR: u16 = 501;
/// The peer sent a frame with illegal values in its fields.
pub(super) const SYNTAX_ERROR: u16 = 502;
/// The peer sent a frame that was not expected.
pub(super) const UNEXPECTED_FRAME: u16 = 505;
/// The peer used functionality the server does not implement.
pub(super) const NOT_IMPLEMENTED: u16 = 540;

fn error(code: u16, text: String) -> FrameError {
    FrameError {
        code,
        text,
        class_id: 0,
        method_id: 0,
    }
}

fn method_error(code: u16, text: String, class_id: u16, method_id: u16) -> FrameError {
    FrameError {
        code,
        text,
        class_id,
        method_id,
    }
}

/// A frame header announcing more than `frame_max` bytes, frame end included.
///
/// RabbitMQ: 501 `FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,200000,131064}`,
/// decided from the header alone. It lets a payload of up to `frame_max` bytes through (a
/// "fudge" of 8 for old clients that forgot the frame overhead); we hold clients to the spec
/// (payload at most `frame_max - 8`).
pub(super) fn frame_too_large(kind: u8, size: u32, frame_max: usize) -> FrameError {
    let limit = frame_max.saturating_sub(super::FRAME_OVERHEAD);
    error(
        FRAME_ERROR,
        format!(
            "FRAME_ERROR - type {kind}: frame_too_large, a payload of {size} bytes is over the \
             limit of {limit} (frame_max {frame_max})"
        ),
    )
}

/// A frame type other than method (1), header (2), body (3) and heartbeat (8).
///
/// RabbitMQ: 501 `FRAME_ERROR - type 5, all octets = <<"abc">>: unknown_frame` (also for types
/// 0 and 4).
pub(super) fn unknown_frame_type(kind: u8) -> FrameError {
    error(
        FRAME_ERROR,
        format!("FRAME_ERROR - type {kind}: unknown_frame"),
    )
}

/// A heartbeat on a channel other than 0.
///
/// RabbitMQ: 505 `UNEXPECTED_FRAME - type 8, all octets = <<>>`.
pub(super) fn heartbeat_channel(channel: u16) -> FrameError {
    error(
        UNEXPECTED_FRAME,
        format!("UNEXPECTED_FRAME - type 8: heartbeat on channel {channel}, not 0"),
    )
}

/// A heartbeat with a payload.
///
/// RabbitMQ: 501 `FRAME_ERROR - type 8, all octets = <<"xx">>: unknown_frame`.
pub(super) fn heartbeat_payload(size: u32) -> FrameError {
    error(
        FRAME_ERROR,
        format!("FRAME_ERROR - type 8: unknown_frame, a heartbeat with a payload of {size} bytes"),
    )
}

/// A frame whose last octet is not 0xCE.
///
/// RabbitMQ: 501 `FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>:
/// {invalid_frame_end_marker,0}` (the same for body and heartbeat frames).
pub(super) fn bad_frame_end(kind: u8, octet: u8) -> FrameError {
    error(
        FRAME_ERROR,
        format!("FRAME_ERROR - type {kind}: invalid_frame_end_marker {octet:#04x}, not 0xce"),
    )
}

/// A method frame too short to hold its class and method ids.
///
/// RabbitMQ: 501 `FRAME_ERROR - type 1, all octets = <<0,50>>: unknown_frame` (and `<<>>` for
/// an empty payload).
pub(super) fn method_too_short(len: usize) -> FrameError {
    error(
        FRAME_ERROR,
        format!("FRAME_ERROR - type 1: unknown_frame, a method payload of {len} bytes"),
    )
}

/// A class or method id that AMQP 0-9-1 (with RabbitMQ's extensions) does not define.
///
/// RabbitMQ drops the socket (its reader exits with `{unknown_method_id,{50,99}}`); the spec's
/// code for functionality the server lacks is 540.
pub(super) fn unknown_method(class_id: u16, method_id: u16) -> FrameError {
    method_error(
        NOT_IMPLEMENTED,
        format!("NOT_IMPLEMENTED - unknown method {class_id}.{method_id}"),
        class_id,
        method_id,
    )
}

/// `basic.qos` with a non-zero `prefetch_size`, which amq-protocol's parser drops: RabbitMQ
/// answers 540 `NOT_IMPLEMENTED - prefetch_size!=0 (N)` and closes the connection.
pub(super) fn prefetch_size(size: u32) -> FrameError {
    method_error(
        NOT_IMPLEMENTED,
        format!("NOT_IMPLEMENTED - prefetch_size!=0 ({size})"),
        60,
        10,
    )
}

/// A method whose field tables the walker refused.
///
/// - A length past its container (a table's length past the payload, a long string past its
///   table): RabbitMQ answers the first with 501 `FRAME_ERROR - cannot decode <<...>>` and the
///   method's ids, and drops the socket on the second (`function_clause` in its table parser);
///   both are 501 here.
/// - An unknown field value type: RabbitMQ drops the socket; 502 here (a value that is not
///   legal). RabbitMQ does not know 'U' either; `amq-protocol` reads it as a short int, and so
///   do we.
/// - Nesting deeper than [`MAX_TABLE_DEPTH`](super::MAX_TABLE_DEPTH): RabbitMQ has no cap (it
///   took 1,000 nested tables); ours is 502.
pub(super) fn method_arguments(
    name: &str,
    class_id: u16,
    method_id: u16,
    cause: &TableError,
) -> FrameError {
    let (code, text) = table_text(name, cause);
    method_error(code, text, class_id, method_id)
}

/// A method `amq-protocol` could not parse (after the walker accepted its tables): truncated
/// arguments, a short string that is not UTF-8.
///
/// RabbitMQ: 501 `FRAME_ERROR - cannot decode <<0,0,5,97,98>>` with the method's class and
/// method ids (for a short string that is not UTF-8 it says `FRAME_ERROR - Malformed UTF-8 in
/// shortstr` with ids 0).
pub(super) fn cannot_decode_method(name: &str, class_id: u16, method_id: u16) -> FrameError {
    method_error(
        FRAME_ERROR,
        format!("FRAME_ERROR - cannot decode {name}: its arguments are malformed or truncated"),
        class_id,
        method_id,
    )
}

/// A method followed by bytes its arguments do not account for.
///
/// RabbitMQ: 501 `FRAME_ERROR - cannot decode <<0,0,0,0,0,10,0,106,117,110,107>>` with the
/// method's ids (basic.qos plus "junk").
pub(super) fn trailing_method_bytes(
    name: &str,
    class_id: u16,
    method_id: u16,
    extra: usize,
) -> FrameError {
    method_error(
        FRAME_ERROR,
        format!("FRAME_ERROR - cannot decode {name}: {extra} bytes after its last argument"),
        class_id,
        method_id,
    )
}

/// A content header whose `headers` table the walker refused (codes as for a method's tables).
///
/// RabbitMQ decodes properties lazily: it accepts the frame and later closes with 541
/// `INTERNAL_ERROR` when it reads them.
pub(super) fn content_header_table(cause: &TableError) -> FrameError {
    let (code, text) = table_text("content header", cause);
    error(code, text)
}

/// A content header `amq-protocol` could not parse, or shorter than its fixed 14 bytes.
///
/// RabbitMQ: 501 `FRAME_ERROR - type 2, all octets = <<0,60,0,0,0>>: unknown_frame` for a
/// header shorter than its fixed fields; 541 `INTERNAL_ERROR` (later) for bad properties.
pub(super) fn cannot_decode_content_header() -> FrameError {
    error(
        FRAME_ERROR,
        "FRAME_ERROR - cannot decode content header: its properties are malformed or truncated"
            .to_owned(),
    )
}

/// A content header followed by bytes its properties do not account for.
///
/// RabbitMQ: 541 `INTERNAL_ERROR` once it reads the properties.
pub(super) fn trailing_header_bytes(extra: usize) -> FrameError {
    error(
        FRAME_ERROR,
        format!("FRAME_ERROR - cannot decode content header: {extra} bytes after its properties"),
    )
}

/// A content header whose weight is not 0.
///
/// RabbitMQ: 505 `UNEXPECTED_FRAME - expected content header for class 60, got non content
/// header frame instead` (with the ids of the method awaiting content, which the codec does
/// not know; the session may refine it).
pub(super) fn header_weight(weight: u16) -> FrameError {
    error(
        UNEXPECTED_FRAME,
        format!("UNEXPECTED_FRAME - content header with weight {weight}, not 0"),
    )
}

fn table_text(subject: &str, cause: &TableError) -> (u16, String) {
    match cause {
        TableError::Truncated { what, needed, left } => (
            FRAME_ERROR,
            format!(
                "FRAME_ERROR - cannot decode {subject}: {what} of {needed} bytes past the end of \
                 its container ({left} bytes left)"
            ),
        ),
        TableError::UnknownType(kind) => (
            SYNTAX_ERROR,
            format!(
                "SYNTAX_ERROR - {subject}: unknown field value type {}",
                describe_type(*kind)
            ),
        ),
        TableError::TooDeep => (
            SYNTAX_ERROR,
            format!(
                "SYNTAX_ERROR - {subject}: field tables and arrays nested deeper than {} levels",
                super::MAX_TABLE_DEPTH
            ),
        ),
    }
}

/// `'Z' (0x5a)` for a printable type byte, `0x00` otherwise.
fn describe_type(kind: u8) -> String {
    if kind.is_ascii_graphic() {
        format!("'{}' ({kind:#04x})", char::from(kind))
    } else {
        format!("{kind:#04x}")
    }
}
