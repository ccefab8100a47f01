//! Why the decoder refused its input.

/// Bad input from a client.
///
/// The decoder yields it as [`Inbound::Invalid`](super::Inbound::Invalid) rather than failing, so
/// the session can send an ERROR frame (its `Display` is the `message` header) and then close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame (command line, headers and body) grew over `limit` bytes.
    #[error("frame too large: over the limit of {limit} bytes")]
    FrameTooLarge {
        /// The limit it broke, in bytes.
        limit: usize,
    },
    /// The frame has more than `limit` header lines.
    #[error("too many headers: over the limit of {limit}")]
    TooManyHeaders {
        /// The largest number of header lines accepted.
        limit: usize,
    },
    /// A header line is longer than `limit` bytes.
    #[error("header line too long: over the limit of {limit} bytes")]
    HeaderTooLong {
        /// The longest header line accepted, in bytes, end of line excluded.
        limit: usize,
    },
    /// A `content-length` that is not a non-negative decimal number within the frame size limit.
    #[error("invalid content-length header: {0}")]
    BadContentLength(String),
    /// A header line without a `:` (the line, lossily decoded and shortened).
    #[error("header line without a colon: {0:?}")]
    MissingColon(String),
    /// A command this server does not accept from a client (shortened).
    #[error("unknown command: {0:?}")]
    UnknownCommand(String),
    /// A backslash escape the negotiated version does not define (e.g. `\t`), or a header ending
    /// in a lone backslash; the header is named.
    #[error("invalid escape sequence in header {0:?}")]
    InvalidEscape(String),
    /// The command line or a header is not UTF-8.
    #[error("the command or a header is not valid UTF-8")]
    NotUtf8,
    /// The `content-length` bytes of the body are not followed by a NUL byte.
    #[error("body not terminated by NUL after content-length bytes")]
    BodyAfterContentLength,
    /// Any other malformation.
    #[error("malformed frame: {0}")]
    Malformed(String),
}
