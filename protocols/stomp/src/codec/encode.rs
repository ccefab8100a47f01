//! Server frames to bytes.

use bytes::{BufMut, BytesMut};

use super::frame::{ServerCommand, ServerFrame, StompVersion};
use super::headers::{escape_into, Escaping};

/// Appends `frame` to `dst` in `version`'s escaping (none for CONNECTED, in 1.0, and while no
/// version is set).
///
/// A caller's `content-length` is dropped; the encoder writes the body's length itself, last among
/// the headers, for every MESSAGE and ERROR and for any other frame with a non-empty body.
pub(super) fn write(frame: &ServerFrame, version: Option<StompVersion>, dst: &mut BytesMut) {
    let escaping = Escaping::of(version, frame.command == ServerCommand::Connected);
    let mut head = Vec::with_capacity(
        frame.command.as_str().len()
            + frame
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 2)
                .sum::<usize>()
            + 40,
    );
    head.extend_from_slice(frame.command.as_str().as_bytes());
    head.push(b'\n');
    for (name, value) in &frame.headers {
        if name == "content-length" {
            continue;
        }
        escape_into(&mut head, name, escaping, true);
        head.push(b':');
        escape_into(&mut head, value, escaping, false);
        head.push(b'\n');
    }
    let with_length = matches!(frame.command, ServerCommand::Message | ServerCommand::Error)
        || !frame.body.is_empty();
    if with_length {
        head.extend_from_slice(b"content-length:");
        head.extend_from_slice(frame.body.len().to_string().as_bytes());
        head.push(b'\n');
    }
    head.push(b'\n');
    dst.reserve(head.len() + frame.body.len() + 1);
    dst.put_slice(&head);
    dst.put_slice(&frame.body);
    dst.put_u8(0);
}
