//! STOMP 1.2 framing for the benchmark client: frames written with escaped headers and a
//! `content-length` for any body, frames read from a buffer (heart-beat EOLs skipped, bodies
//! by `content-length` or up to the NUL).
//!
//! [`parse`] is cancel-safe by construction: it only looks at the buffer and removes a frame
//! once it is whole, so the reader may be dropped between reads without losing bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A frame read from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command line (`CONNECTED`, `MESSAGE`, `RECEIPT`, `ERROR`...).
    pub command: String,
    /// Headers in order, unescaped (except in CONNECTED).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl Frame {
    /// The first header called `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why the bytes from the broker are not STOMP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// More than the allowed bytes without a whole frame.
    #[error("a frame larger than {0} bytes")]
    TooLarge(usize),
    /// A frame head that is not UTF-8.
    #[error("frame head is not UTF-8")]
    Utf8,
    /// A header line without a colon.
    #[error("header line without a colon: {0:?}")]
    Header(String),
    /// A `content-length` that is not a number.
    #[error("bad content-length {0:?}")]
    ContentLength(String),
    /// The byte after a `content-length` body is not NUL.
    #[error("frame body not followed by NUL")]
    Unterminated,
    /// An escape sequence STOMP 1.2 does not define.
    #[error("undefined escape in {0:?}")]
    Escape(String),
}

fn escape_into(out: &mut BytesMut, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.put_slice(b"\\\\"),
            '\n' => out.put_slice(b"\\n"),
            '\r' => out.put_slice(b"\\r"),
            ':' => out.put_slice(b"\\c"),
            c => {
                let mut utf8 = [0u8; 4];
                out.put_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
}

fn unescape(text: &str) -> Result<String, FrameError> {
    if !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            _ => return Err(FrameError::Escape(text.to_owned())),
        }
    }
    Ok(out)
}

/// The bytes of one frame: headers escaped (not in CONNECT), `content-length` added for a
/// non-empty body.
pub fn encode(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Bytes {
    let escaped = command != "CONNECT" && command != "STOMP";
    let mut out = BytesMut::with_capacity(command.len() + 128 + body.len());
    out.put_slice(command.as_bytes());
    out.put_u8(b'\n');
    for (name, value) in headers {
        if escaped {
            escape_into(&mut out, name);
            out.put_u8(b':');
            escape_into(&mut out, value);
        } else {
            out.put_slice(name.as_bytes());
            out.put_u8(b':');
            out.put_slice(value.as_bytes());
        }
        out.put_u8(b'\n');
    }
    if !body.is_empty() {
        out.put_slice(format!("content-length:{}\n", body.len()).as_bytes());
    }
    out.put_u8(b'\n');
    out.put_slice(body);
    out.put_u8(0);
    out.freeze()
}

/// Takes one whole frame from the front of `buf`, skipping heart-beat EOLs before it;
/// `Ok(None)` until a whole frame is there. More than `max` bytes without one is an error.
pub fn parse(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    let eols = buf
        .iter()
        .take_while(|&&byte| byte == b'\n' || byte == b'\r')
        .count();
    buf.advance(eols);
    // The head ends at the first empty line.
    let Some(head_end) = find_blank_line(buf) else {
        return over(buf, max);
    };
    let (head_len, body_start) = head_end;
    let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| FrameError::Utf8)?;
    let mut lines = head
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line));
    let command = lines.next().unwrap_or_default().to_owned();
    let unescaped = command != "CONNECTED";
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| FrameError::Header(line.to_owned()))?;
        if unescaped {
            headers.push((unescape(name)?, unescape(value)?));
        } else {
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map(|(_, value)| {
            value
                .parse::<usize>()
                .map_err(|_| FrameError::ContentLength(value.clone()))
        })
        .transpose()?;
    let body_end = match length {
        Some(length) => {
            let end = body_start + length;
            if buf.len() <= end {
                return over(buf, max);
            }
            if buf[end] != 0 {
                return Err(FrameError::Unterminated);
            }
            end
        }
        None => match buf[body_start..].iter().position(|&byte| byte == 0) {
            Some(at) => body_start + at,
            None => return over(buf, max),
        },
    };
    let mut frame = buf.split_to(body_end + 1);
    frame.truncate(body_end);
    let body = frame.split_off(body_start).freeze();
    Ok(Some(Frame {
        command,
        headers,
        body,
    }))
}

/// `Ok(None)` (wait for more) unless the buffer already holds more than `max` bytes.
fn over(buf: &BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    if buf.len() > max {
        Err(FrameError::TooLarge(max))
    } else {
        Ok(None)
    }
}

/// The length of the head (command and header lines, without the blank line) and where the
/// body starts, once the blank line is in `buf`.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (at, &byte) in buf.iter().enumerate() {
        if byte != b'\n' {
            continue;
        }
        let line = &buf[line_start..at];
        if line.is_empty() || line == b"\r" {
            return Some((line_start.saturating_sub(1), at + 1));
        }
        line_start = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Vec<Frame> {
        let mut buf = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(frame) = parse(&mut buf, 1 << 20).unwrap() {
            frames.push(frame);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        frames
    }

    #[test]
    fn round_trip_with_escapes_and_binary_body() {
        let body = [0u8, 1, 2, 0, 255];
        let bytes = encode("MESSAGE", &[("ack", "a:b\\c"), ("x", "1")], &body);
        let frames = parse_all(&bytes);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].command, "MESSAGE");
        assert_eq!(frames[0].header("ack"), Some("a:b\\c"));
        assert_eq!(frames[0].header("content-length"), Some("5"));
        assert_eq!(&frames[0].body[..], &body);
    }

    #[test]
    fn heartbeats_crlf_and_nul_terminated_bodies() {
        let bytes = b"\n\r\nRECEIPT\r\nreceipt-id:7\r\n\r\n\0\nMESSAGE\nfoo:bar\n\nhello\0";
        let frames = parse_all(bytes);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].header("receipt-id"), Some("7"));
        assert!(frames[0].body.is_empty());
        assert_eq!(&frames[1].body[..], b"hello");
    }

    #[test]
    fn partial_frames_wait_and_keep_their_bytes() {
        let bytes = encode("MESSAGE", &[("a", "b")], b"0123456789");
        let mut buf = BytesMut::new();
        for (index, byte) in bytes.iter().enumerate() {
            buf.put_u8(*byte);
            let parsed = parse(&mut buf, 1 << 20).unwrap();
            if index + 1 < bytes.len() {
                assert!(parsed.is_none(), "frame too early at byte {index}");
            } else {
                assert_eq!(&parsed.unwrap().body[..], b"0123456789");
            }
        }
    }

    #[test]
    fn connected_headers_are_not_unescaped() {
        let frames = parse_all(b"CONNECTED\nserver:a\\cb\n\n\0");
        assert_eq!(frames[0].header("server"), Some("a\\cb"));
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut buf = BytesMut::from(&b"MESSAGE\nno-colon\n\n\0"[..]);
        assert!(matches!(parse(&mut buf, 1024), Err(FrameError::Header(_))));
        let mut buf = BytesMut::from(&b"MESSAGE\ncontent-length:2\n\nabc\0"[..]);
        assert_eq!(parse(&mut buf, 1024), Err(FrameError::Unterminated));
        let mut buf = BytesMut::from(&b"MESSAGE\ncontent-length:x\n\n\0"[..]);
        assert!(matches!(
            parse(&mut buf, 1024),
            Err(FrameError::ContentLength(_))
        ));
        let mut buf = BytesMut::from(&[b'M'; 2000][..]);
        assert_eq!(parse(&mut buf, 1024), Err(FrameError::TooLarge(1024)));
    }
}
