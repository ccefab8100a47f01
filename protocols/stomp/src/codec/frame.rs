//! The frames the codec yields and writes: STOMP versions, client and server commands.

use bytes::Bytes;

/// The STOMP version negotiated by CONNECT/CONNECTED; it selects the header escaping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StompVersion {
    /// STOMP 1.0: no header escaping.
    V1_0,
    /// STOMP 1.1: `\n`, `\c` and `\\` in headers.
    V1_1,
    /// STOMP 1.2: 1.1's escapes and `\r`.
    V1_2,
}

impl StompVersion {
    /// The version as it appears in `accept-version` and `version` headers: `"1.0"`, `"1.1"`,
    /// `"1.2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0",
            Self::V1_1 => "1.1",
            Self::V1_2 => "1.2",
        }
    }

    /// Parses `"1.0"`, `"1.1"` or `"1.2"`.
    pub fn from_header(value: &str) -> Option<Self> {
        match value.trim() {
            "1.0" => Some(Self::V1_0),
            "1.1" => Some(Self::V1_1),
            "1.2" => Some(Self::V1_2),
            _ => None,
        }
    }
}

impl std::fmt::Display for StompVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `CONNECT`.
    Connect,
    /// `STOMP` (1.1+ name of CONNECT; accepted in every version).
    Stomp,
    /// `SEND`.
    Send,
    /// `SUBSCRIBE`.
    Subscribe,
    /// `UNSUBSCRIBE`.
    Unsubscribe,
    /// `ACK`.
    Ack,
    /// `NACK`.
    Nack,
    /// `BEGIN`.
    Begin,
    /// `COMMIT`.
    Commit,
    /// `ABORT`.
    Abort,
    /// `DISCONNECT`.
    Disconnect,
}

impl Command {
    /// The command as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Stomp => "STOMP",
            Self::Send => "SEND",
            Self::Subscribe => "SUBSCRIBE",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::Ack => "ACK",
            Self::Nack => "NACK",
            Self::Begin => "BEGIN",
            Self::Commit => "COMMIT",
            Self::Abort => "ABORT",
            Self::Disconnect => "DISCONNECT",
        }
    }

    /// Parses a command line (exact, case-sensitive, as the specification requires).
    pub fn from_wire(line: &[u8]) -> Option<Self> {
        Some(match line {
            b"CONNECT" => Self::Connect,
            b"STOMP" => Self::Stomp,
            b"SEND" => Self::Send,
            b"SUBSCRIBE" => Self::Subscribe,
            b"UNSUBSCRIBE" => Self::Unsubscribe,
            b"ACK" => Self::Ack,
            b"NACK" => Self::Nack,
            b"BEGIN" => Self::Begin,
            b"COMMIT" => Self::Commit,
            b"ABORT" => Self::Abort,
            b"DISCONNECT" => Self::Disconnect,
            _ => return None,
        })
    }

    /// Whether the frame opens a connection (CONNECT or STOMP): its headers are never escaped.
    pub fn is_connect(self) -> bool {
        matches!(self, Self::Connect | Self::Stomp)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client frame.
///
/// Headers are decoded per the negotiated version's escaping (none in 1.0 and in CONNECT/STOMP
/// frames), in wire order, repeated headers kept: the session applies "first one wins"
/// ([`header`](Self::header) does). `content-length`, when present, is among the headers and the
/// body has exactly that many bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command.
    pub command: Command,
    /// Every header in wire order, unescaped, repetitions kept.
    pub headers: Vec<(String, String)>,
    /// The body, without its NUL terminator.
    pub body: Bytes,
}

impl Frame {
    /// The value of the first header named `name` (the one that counts in STOMP 1.1 and 1.2).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A server command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerCommand {
    /// `CONNECTED`: headers never escaped.
    Connected,
    /// `MESSAGE`.
    Message,
    /// `RECEIPT`.
    Receipt,
    /// `ERROR`.
    Error,
}

impl ServerCommand {
    /// The command as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "CONNECTED",
            Self::Message => "MESSAGE",
            Self::Receipt => "RECEIPT",
            Self::Error => "ERROR",
        }
    }
}

impl std::fmt::Display for ServerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A server frame to encode.
///
/// The encoder escapes headers per the version set with
/// [`StompCodec::set_version`](super::StompCodec::set_version) (none for CONNECTED and in 1.0),
/// and writes `content-length` itself for a MESSAGE or ERROR with a body: a `content-length` in
/// `headers` is then ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    /// The command.
    pub command: ServerCommand,
    /// Headers in the order to write them, unescaped.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

impl ServerFrame {
    /// A frame with no headers and no body.
    pub fn new(command: ServerCommand) -> Self {
        Self {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Appends a header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }
}
