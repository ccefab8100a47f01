//! Streaming framing: where a frame (or a heart-beat) ends in the read buffer, and every cap that
//! can be checked before the frame is complete.
//!
//! Nothing here unescapes or builds headers ([`super::headers`] does, once the frame is whole):
//! this only finds line ends, the blank line, `content-length` and the NUL, checking as it goes the
//! command, the header count, each header line's length, colon and UTF-8, and the frame size.
//!
//! [`Scanner`] remembers how far it has looked, so bytes arriving one at a time are each examined
//! once (O(n) per frame, not O(n²)). It is a cache over the buffer, not state of its own: the
//! buffer keeps every byte until a whole frame is split off, and [`Scanner::reset`] forgets it.

use bytes::BytesMut;

use super::error::CodecError;
use super::frame::Command;

/// The longest client command, `UNSUBSCRIBE`, plus a CR.
const MAX_COMMAND_LINE: usize = 12;

/// How much of an offending line goes into an error message.
const QUOTE_LEN: usize = 64;

/// What [`Scanner::scan`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scanned {
    /// Not enough bytes yet.
    Incomplete,
    /// An end-of-line of `len` bytes (1 for LF, 2 for CRLF) before any command: a heart-beat.
    HeartBeat {
        /// Bytes to consume.
        len: usize,
    },
    /// A whole frame: `src[..head_len]` is the command line, the header lines and the blank
    /// line; the body is `src[head_len..head_len + body_len]`, followed by the NUL at
    /// `frame_len - 1`.
    Frame {
        /// The command.
        command: Command,
        /// Bytes of the command line, the header lines and the blank line, EOLs included.
        head_len: usize,
        /// Bytes of the body.
        body_len: usize,
        /// Bytes of the whole frame, NUL included.
        frame_len: usize,
    },
}

/// The caps the scanner enforces for one frame.
#[derive(Debug, Clone, Copy)]
pub(super) struct Caps {
    pub max_frame: usize,
    pub max_headers: usize,
    pub max_header_len: usize,
}

/// Progress through the frame at the start of the buffer.
#[derive(Debug, Clone, Default)]
pub(super) struct Scanner {
    /// The command, once its line is complete.
    command: Option<Command>,
    /// Where the line being read starts.
    line_start: usize,
    /// Bytes before this offset were examined already.
    pos: usize,
    /// Header lines seen.
    headers: usize,
    /// The first `content-length`, if any.
    content_length: Option<usize>,
    /// The length of the head once the blank line was read.
    head_len: Option<usize>,
}

impl Scanner {
    /// Forgets the frame: after it was split off the buffer, or after an error.
    pub(super) fn reset(&mut self) {
        *self = Self::default();
    }

    /// Looks at the start of `src` for a heart-beat or a whole frame.
    ///
    /// Errors as soon as the buffered bytes prove the frame bad; never consumes from `src`.
    pub(super) fn scan(&mut self, src: &BytesMut, caps: Caps) -> Result<Scanned, CodecError> {
        if self.pos > src.len() {
            // Not the buffer this scan was made over: start again rather than trust it.
            self.reset();
        }
        if self.command.is_none() {
            match src.first() {
                None => return Ok(Scanned::Incomplete),
                Some(b'\n') => return Ok(Scanned::HeartBeat { len: 1 }),
                Some(b'\r') => {
                    return match src.get(1) {
                        None => Ok(Scanned::Incomplete),
                        Some(b'\n') => Ok(Scanned::HeartBeat { len: 2 }),
                        Some(_) => Err(CodecError::Malformed(
                            "carriage return not followed by line feed".into(),
                        )),
                    };
                }
                Some(_) => {}
            }
        }
        while self.head_len.is_none() {
            let Some(offset) = memchr_lf(src.get(self.pos..).unwrap_or(&[])) else {
                self.pos = src.len();
                return self.incomplete_line(src, caps);
            };
            let end = self.pos + offset;
            self.pos = end + 1;
            let line = strip_cr(src.get(self.line_start..end).unwrap_or(&[]));
            self.line_start = self.pos;
            // The frame needs at least one more byte, its NUL.
            self.check_size(self.pos + 1, caps)?;
            match self.command {
                None => self.command = Some(command(line)?),
                Some(_) if line.is_empty() => self.head_len = Some(self.pos),
                Some(_) => self.header_line(line, caps)?,
            }
        }
        let head_len = self.head_len.unwrap_or(self.pos);
        let command = self
            .command
            .ok_or_else(|| CodecError::Malformed("frame without a command".into()))?;
        let body_len = match self.content_length {
            Some(length) => {
                let nul = head_len + length;
                match src.get(nul) {
                    None => return Ok(Scanned::Incomplete),
                    Some(0) => length,
                    Some(_) => return Err(CodecError::BodyAfterContentLength),
                }
            }
            None => match memchr_nul(src.get(self.pos..).unwrap_or(&[])) {
                Some(offset) => self.pos + offset - head_len,
                None => {
                    self.pos = src.len();
                    // The NUL is not within the first `max_frame` bytes.
                    return if src.len() >= caps.max_frame {
                        Err(CodecError::FrameTooLarge {
                            limit: caps.max_frame,
                        })
                    } else {
                        Ok(Scanned::Incomplete)
                    };
                }
            },
        };
        let frame_len = head_len + body_len + 1;
        self.check_size(frame_len, caps)?;
        Ok(Scanned::Frame {
            command,
            head_len,
            body_len,
            frame_len,
        })
    }

    /// How many bytes the buffer should hold for the frame to be complete, when the head was read
    /// and a `content-length` gave the body's size: to reserve them at once.
    pub(super) fn wanted(&self) -> Option<usize> {
        Some(self.head_len? + self.content_length? + 1)
    }

    /// The buffer ends inside a line: check what can be checked of it already.
    fn incomplete_line(&self, src: &BytesMut, caps: Caps) -> Result<Scanned, CodecError> {
        let partial = src.get(self.line_start..).unwrap_or(&[]);
        match self.command {
            // No command is longer than `MAX_COMMAND_LINE` bytes.
            None if partial.len() > MAX_COMMAND_LINE => {
                return Err(CodecError::UnknownCommand(quote(partial)))
            }
            None => {}
            // One more byte than the cap may be the CR of a CRLF.
            Some(_) if partial.len() > caps.max_header_len + 1 => {
                return Err(CodecError::HeaderTooLong {
                    limit: caps.max_header_len,
                })
            }
            Some(_) => {}
        }
        // The frame needs at least one more byte (its NUL) than is buffered.
        self.check_size(src.len() + 1, caps)?;
        Ok(Scanned::Incomplete)
    }

    fn check_size(&self, size: usize, caps: Caps) -> Result<(), CodecError> {
        if size > caps.max_frame {
            Err(CodecError::FrameTooLarge {
                limit: caps.max_frame,
            })
        } else {
            Ok(())
        }
    }

    /// A complete header line (EOL stripped).
    fn header_line(&mut self, line: &[u8], caps: Caps) -> Result<(), CodecError> {
        self.headers += 1;
        if self.headers > caps.max_headers {
            return Err(CodecError::TooManyHeaders {
                limit: caps.max_headers,
            });
        }
        if line.len() > caps.max_header_len {
            return Err(CodecError::HeaderTooLong {
                limit: caps.max_header_len,
            });
        }
        if std::str::from_utf8(line).is_err() {
            return Err(CodecError::NotUtf8);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(CodecError::MissingColon(quote(line)));
        };
        let (name, value) = (
            line.get(..colon).unwrap_or(&[]),
            line.get(colon + 1..).unwrap_or(&[]),
        );
        if name == b"content-length" && self.content_length.is_none() {
            let length = parse_content_length(value)?;
            // Checked here, before the body is buffered.
            let total = self
                .line_start
                .checked_add(length)
                .and_then(|n| n.checked_add(2)); // at least the blank line's LF and the NUL
            match total {
                Some(total) if total <= caps.max_frame => self.content_length = Some(length),
                _ => {
                    return Err(CodecError::BadContentLength(format!(
                        "{length} is over the frame size limit of {} bytes",
                        caps.max_frame
                    )))
                }
            }
        }
        Ok(())
    }
}

/// The command of a complete command line (EOL stripped).
fn command(line: &[u8]) -> Result<Command, CodecError> {
    if let Some(command) = Command::from_wire(line) {
        return Ok(command);
    }
    if std::str::from_utf8(line).is_err() {
        return Err(CodecError::NotUtf8);
    }
    Err(CodecError::UnknownCommand(quote(line)))
}

/// A `content-length` value: decimal digits, spaces and tabs around them tolerated.
fn parse_content_length(value: &[u8]) -> Result<usize, CodecError> {
    let text = String::from_utf8_lossy(value);
    let digits = text.trim_matches([' ', '\t']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CodecError::BadContentLength(format!(
            "{:?} is not a non-negative decimal number",
            shorten(&text)
        )));
    }
    digits
        .parse::<usize>()
        .map_err(|_| CodecError::BadContentLength(format!("{:?} is too large", shorten(&text))))
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}

fn memchr_lf(haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == b'\n')
}

fn memchr_nul(haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == 0)
}

/// The start of `bytes` for an error message, lossily decoded.
pub(super) fn quote(bytes: &[u8]) -> String {
    shorten(&String::from_utf8_lossy(bytes))
}

/// At most [`QUOTE_LEN`] characters of `text`, with an ellipsis when cut.
pub(super) fn shorten(text: &str) -> String {
    match text.char_indices().nth(QUOTE_LEN) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or_default()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        max_frame: 1024,
        max_headers: 4,
        max_header_len: 32,
    };

    #[test]
    fn remembers_how_far_it_scanned() {
        let mut scanner = Scanner::default();
        let mut buf = BytesMut::from(&b"SEND\ndestination:/q"[..]);
        assert_eq!(scanner.scan(&buf, CAPS), Ok(Scanned::Incomplete));
        assert_eq!(scanner.pos, buf.len());
        assert_eq!(scanner.command, Some(Command::Send));
        assert_eq!(scanner.line_start, 5);
        buf.extend_from_slice(b"\n\nbody");
        assert_eq!(scanner.scan(&buf, CAPS), Ok(Scanned::Incomplete));
        assert_eq!(scanner.head_len, Some(21));
        assert_eq!(scanner.pos, buf.len(), "the body is searched for NUL once");
        buf.extend_from_slice(b"\0SEND");
        assert_eq!(
            scanner.scan(&buf, CAPS),
            Ok(Scanned::Frame {
                command: Command::Send,
                head_len: 21,
                body_len: 4,
                frame_len: 26,
            })
        );
    }

    #[test]
    fn content_length_waits_without_scanning_and_says_how_much_it_wants() {
        let mut scanner = Scanner::default();
        let mut buf = BytesMut::from(&b"SEND\ncontent-length:10\n\nab"[..]);
        assert_eq!(scanner.scan(&buf, CAPS), Ok(Scanned::Incomplete));
        assert_eq!(scanner.wanted(), Some(24 + 10 + 1));
        buf.extend_from_slice(b"\0\0\0\0\0\0\0\0\0");
        assert!(matches!(
            scanner.scan(&buf, CAPS),
            Ok(Scanned::Frame {
                body_len: 10,
                frame_len: 35,
                ..
            })
        ));
    }

    #[test]
    fn a_shorter_buffer_resets_the_scan() {
        let mut scanner = Scanner::default();
        let buf = BytesMut::from(&b"SEND\nk:v\n"[..]);
        assert_eq!(scanner.scan(&buf, CAPS), Ok(Scanned::Incomplete));
        let other = BytesMut::from(&b"\n"[..]);
        assert_eq!(
            scanner.scan(&other, CAPS),
            Ok(Scanned::HeartBeat { len: 1 })
        );
    }

    #[test]
    fn content_length_values() {
        assert_eq!(parse_content_length(b"0"), Ok(0));
        assert_eq!(parse_content_length(b" 12\t"), Ok(12));
        assert_eq!(parse_content_length(b"007"), Ok(7));
        for bad in [&b""[..], b"-1", b"+1", b"1.5", b"0x10", b"1 2", b"\xff"] {
            assert!(
                matches!(
                    parse_content_length(bad),
                    Err(CodecError::BadContentLength(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn quotes_are_short_and_cut_on_char_boundaries() {
        let long = "é".repeat(100);
        let quoted = shorten(&long);
        assert_eq!(quoted.chars().count(), QUOTE_LEN + 3);
        assert!(quoted.ends_with("..."));
        assert_eq!(quote(b"ab\xff"), "ab\u{fffd}");
    }
}
