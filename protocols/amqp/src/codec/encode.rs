//! The encoder: [`OutFrame`]s into bytes.
//!
//! Method and content header frames are written by `amq-protocol`'s generators straight into
//! the write buffer ([`BufWriter`] gives cookie-factory the back-patching it needs for length
//! prefixes, so nothing is serialised twice or into a scratch buffer). Body frames are ours:
//! each is 7 header bytes, a slice of the shared body, and the frame end, with the write
//! buffer reserved once for all of them, so encoding allocates nothing per body byte.
//!
//! A failed encode leaves the write buffer as it was.

use std::io::{self, Write};

use amq_protocol::frame::{
    gen_frame, AMQPContentHeader, AMQPFrame, BackToTheBuffer, GenError, WriteContext,
};
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::AMQPClass;
use bytes::{BufMut, Bytes, BytesMut};

use super::framing::{FRAME_BODY, FRAME_END, FRAME_HEARTBEAT};
use super::{OutFrame, FRAME_OVERHEAD, PROTOCOL_HEADER};

/// The class of every content the server sends (basic).
const BASIC_CLASS: u16 = 60;

/// The heartbeat frame: type 8, channel 0, no payload.
const HEARTBEAT: [u8; 8] = [FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END];

/// Appends `frame` to `dst`, splitting a content body into frames of at most `frame_max`
/// bytes. On failure `dst` is left as it was.
pub(super) fn write(frame: OutFrame, frame_max: usize, dst: &mut BytesMut) -> io::Result<()> {
    let start = dst.len();
    let result = match frame {
        OutFrame::ProtocolHeader => {
            dst.extend_from_slice(PROTOCOL_HEADER);
            Ok(())
        }
        OutFrame::Method { channel, method } => write_method(channel, method, dst),
        OutFrame::Content {
            channel,
            method,
            properties,
            body,
        } => write_content(channel, method, properties, &body, frame_max, dst),
        OutFrame::Heartbeat => {
            dst.extend_from_slice(&HEARTBEAT);
            Ok(())
        }
    };
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn write_method(channel: u16, method: AMQPClass, dst: &mut BytesMut) -> io::Result<()> {
    write_generated(&AMQPFrame::Method(channel, method), dst)
}

fn write_content(
    channel: u16,
    method: AMQPClass,
    properties: AMQPProperties,
    body: &Bytes,
    frame_max: usize,
    dst: &mut BytesMut,
) -> io::Result<()> {
    write_method(channel, method, dst)?;
    let body_size = u64::try_from(body.len()).map_err(|_| too_large(body.len()))?;
    let header = AMQPContentHeader {
        class_id: BASIC_CLASS,
        body_size,
        properties,
    };
    write_generated(&AMQPFrame::Header(channel, header), dst)?;
    let chunk = body_chunk(frame_max);
    // All body frames in one reservation: the body plus 8 bytes per frame.
    let frames = body.len().div_ceil(chunk);
    dst.reserve(
        body.len()
            .saturating_add(frames.saturating_mul(FRAME_OVERHEAD)),
    );
    for part in body.chunks(chunk) {
        let size = u32::try_from(part.len()).map_err(|_| too_large(part.len()))?;
        dst.put_u8(FRAME_BODY);
        dst.put_u16(channel);
        dst.put_u32(size);
        dst.extend_from_slice(part);
        dst.put_u8(FRAME_END);
    }
    Ok(())
}

/// The largest body frame payload for `frame_max`: its size must also fit the frame header's
/// 32 bits, and is at least 1 so that splitting always progresses.
fn body_chunk(frame_max: usize) -> usize {
    let max_payload = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
    frame_max
        .saturating_sub(FRAME_OVERHEAD)
        .clamp(1, max_payload)
}

fn too_large(len: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("a content body of {len} bytes does not fit AMQP's size fields"),
    )
}

/// Writes a frame with `amq-protocol`'s generator.
fn write_generated(frame: &AMQPFrame, dst: &mut BytesMut) -> io::Result<()> {
    let writer = BufWriter {
        buf: dst,
        patch: None,
    };
    gen_frame(frame)(WriteContext::from(writer))
        .map(drop)
        .map_err(|error| match error {
            GenError::IoError(error) => error,
            other => io::Error::new(io::ErrorKind::InvalidInput, other.to_string()),
        })
}

/// A cookie-factory writer appending to a `BytesMut`.
///
/// cookie-factory writes a length prefix by reserving its bytes, writing what follows, then
/// writing the prefix into the reserved bytes ([`BackToTheBuffer`]); while `patch` is set,
/// writes overwrite the buffer from that offset instead of appending.
struct BufWriter<'a> {
    buf: &'a mut BytesMut,
    patch: Option<usize>,
}

impl Write for BufWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.patch {
            None => self.buf.extend_from_slice(data),
            Some(at) => {
                let end = at.saturating_add(data.len());
                let target = self.buf.get_mut(at..end).ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a length prefix overran its reserved bytes",
                    )
                })?;
                target.copy_from_slice(data);
                self.patch = Some(end);
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BackToTheBuffer for BufWriter<'_> {
    fn reserve_write_use<
        Tmp,
        Gen: Fn(WriteContext<Self>) -> Result<(WriteContext<Self>, Tmp), GenError>,
        Before: Fn(WriteContext<Self>, Tmp) -> Result<WriteContext<Self>, GenError>,
    >(
        s: WriteContext<Self>,
        reserved: usize,
        gen: &Gen,
        before: &Before,
    ) -> Result<WriteContext<Self>, GenError> {
        let WriteContext {
            write: writer,
            position,
        } = s;
        // amq-protocol's prefixes are plain integers: a reservation while patching another
        // would be a generator we do not use.
        if writer.patch.is_some() {
            return Err(GenError::InvalidOffset);
        }
        let reserved_at = writer.buf.len();
        writer.buf.put_bytes(0, reserved);
        let reserved_u64 = u64::try_from(reserved).map_err(|_| GenError::InvalidOffset)?;
        let (after, tmp) = gen(WriteContext {
            write: writer,
            position: position.saturating_add(reserved_u64),
        })?;
        let end_position = after.position;
        let mut writer = after.write;
        writer.patch = Some(reserved_at);
        let patched = before(
            WriteContext {
                write: writer,
                position,
            },
            tmp,
        )?;
        let mut writer = patched.write;
        let written = writer
            .patch
            .take()
            .map_or(0, |end| end.saturating_sub(reserved_at));
        if written != reserved {
            return Err(GenError::BufferTooBig(reserved.saturating_sub(written)));
        }
        Ok(WriteContext {
            write: writer,
            position: end_position,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_chunk_is_frame_max_less_overhead() {
        assert_eq!(body_chunk(8192), 8184);
        assert_eq!(body_chunk(0), 1);
        assert_eq!(body_chunk(usize::MAX), usize::try_from(u32::MAX).unwrap());
    }
}
