//! The raw STOMP client of the end-to-end tests: frames written byte for byte, frames read with
//! a bounded wait (heart-beat EOLs counted and skipped), over plain TCP or any other stream
//! (TLS), and a socket that can be split so one task writes while another reads.
//!
//! A test binary mounts it as `#[path = "support/stomp.rs"] mod stomp;` next to
//! `support/gateway.rs`. A [`Style`] says whether header values are escaped and unescaped (STOMP
//! 1.1/1.2 rules; never in CONNECT, STOMP and CONNECTED) and whether a body gets a
//! `content-length`. Every `Client` wait is bounded ([`STEP`] unless a `limit` is given); the
//! unbounded reads ([`Reader::next`], [`Client::read_frame`]) are for callers that bound them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use super::gateway::{within, STEP};

/// A gateway with a plain STOMP listener (and the gateway module's MQTT one); returns it and
/// the STOMP address.
pub async fn start() -> (RunningGateway, SocketAddr) {
    let (running, _mqtt) = super::gateway::start(|settings| {
        settings.listeners.push(ListenerSpec {
            protocol: Protocol::Stomp,
            transport: Transport::Plain,
            addr: "127.0.0.1:0".parse().unwrap(),
        });
    })
    .await;
    let addr = running
        .local_addr(Protocol::Stomp, Transport::Plain)
        .unwrap();
    (running, addr)
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// How a client writes and reads frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Header names and values escaped when written and unescaped when read (STOMP 1.1/1.2),
    /// except in CONNECT, STOMP and CONNECTED; otherwise as given and as sent.
    pub escape: bool,
    /// A non-empty body gets a `content-length` header.
    pub content_length: bool,
}

impl Style {
    /// Headers as given and as sent, no `content-length`.
    pub const VERBATIM: Self = Self {
        escape: false,
        content_length: false,
    };
    /// Headers as given and as sent, `content-length` for a non-empty body.
    pub const SIZED: Self = Self {
        escape: false,
        content_length: true,
    };
    /// Headers escaped and unescaped, no `content-length`.
    pub const ESCAPED: Self = Self {
        escape: true,
        content_length: false,
    };
    /// Headers escaped and unescaped, `content-length` for a non-empty body.
    pub const ESCAPED_SIZED: Self = Self {
        escape: true,
        content_length: true,
    };
}

/// A frame as read from the wire (its `Debug` shows the body's length, not its bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command line.
    pub command: String,
    /// The headers, in order (unescaped if the client's [`Style`] says so).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("command", &self.command)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Frame {
    /// The first header named `name` (a repeated header: the first one wins).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The frame, which must be a `command`.
    pub fn expect(self, command: &str) -> Self {
        assert_eq!(self.command, command, "{self:?}");
        self
    }
}

/// STOMP 1.2 header escaping.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            ':' => out.push_str("\\c"),
            c => out.push(c),
        }
    }
    out
}

/// STOMP 1.2 header unescaping; an undefined escape fails the test.
pub fn unescape(text: &str) -> String {
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
            other => panic!("bad escape from the server: {other:?} in {text:?}"),
        }
    }
    out
}

/// The bytes of a frame written in `style`.
pub fn encode(command: &str, headers: &[(&str, &str)], body: &[u8], style: Style) -> Vec<u8> {
    let escaped = style.escape && command != "CONNECT" && command != "STOMP";
    let mut bytes = Vec::with_capacity(body.len() + 256);
    bytes.extend_from_slice(command.as_bytes());
    bytes.push(b'\n');
    for (name, value) in headers {
        let line = if escaped {
            format!("{}:{}\n", escape(name), escape(value))
        } else {
            format!("{name}:{value}\n")
        };
        bytes.extend_from_slice(line.as_bytes());
    }
    if style.content_length && !body.is_empty() {
        bytes.extend_from_slice(format!("content-length:{}\n", body.len()).as_bytes());
    }
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    bytes.push(0);
    bytes
}

/// The bytes of a frame exactly as given: no escaping, no `content-length` added.
pub fn frame(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    encode(command, headers, body, Style::VERBATIM)
}

/// The read side: a stream (or half of one) and the bytes read but not yet framed.
#[derive(Debug)]
pub struct Reader<R = OwnedReadHalf> {
    half: R,
    buf: Vec<u8>,
    /// Where the unparsed bytes start in `buf` (consumed bytes are dropped in batches).
    start: usize,
    /// Heart-beat EOLs read so far (between frames).
    beats: usize,
    /// Header names and values unescaped (not in CONNECTED).
    unescape: bool,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    fn new(half: R, style: Style) -> Self {
        Self {
            half,
            buf: Vec::new(),
            start: 0,
            beats: 0,
            unescape: style.escape,
        }
    }

    /// The next frame (heart-beat EOLs counted and skipped), or `None` once the server closed
    /// the connection (end of stream or a reset). Not bounded: see [`Reader::recv`].
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            self.skip_beats();
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next frame within `limit`; fails the test if none comes or the connection closed.
    pub async fn recv(&mut self, limit: Duration) -> Frame {
        within(limit, "a STOMP frame", self.next())
            .await
            .expect("the connection closed while a frame was expected")
    }

    /// Reads (and discards) everything until the server closes the connection, within `limit`;
    /// returns the frames read meanwhile.
    pub async fn until_closed(&mut self, limit: Duration) -> usize {
        within(limit, "the server to close the connection", async {
            let mut frames = 0;
            while self.next().await.is_some() {
                frames += 1;
            }
            frames
        })
        .await
    }

    /// True once the server closed the connection, within `limit`; whatever arrives meanwhile
    /// (and whatever was buffered) is discarded unparsed.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        within(limit, "the close", async {
            loop {
                self.buf.clear();
                self.start = 0;
                if !self.fill().await {
                    return true;
                }
            }
        })
        .await
    }

    /// Reads until at least `n` heart-beats arrived in all, within `limit`; a frame meanwhile
    /// fails the test.
    pub async fn beats(&mut self, n: usize, limit: Duration) {
        within(limit, "heart-beats", async {
            loop {
                self.skip_beats();
                let rest = &self.buf[self.start..];
                assert!(rest.is_empty(), "a frame instead of a beat: {rest:?}");
                if self.beats >= n {
                    break;
                }
                assert!(self.fill().await, "the connection closed");
            }
        })
        .await;
    }

    /// Reads more bytes; false once the connection closed.
    async fn fill(&mut self) -> bool {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // Into the heap buffer: a large array here would sit in every future awaiting this.
        self.buf.reserve(64 * 1024);
        matches!(self.half.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    fn skip_beats(&mut self) {
        loop {
            match &self.buf[self.start..] {
                [b'\n', ..] => self.start += 1,
                [b'\r', b'\n', ..] => self.start += 2,
                _ => return,
            }
            self.beats += 1;
        }
    }

    /// A whole frame from the front of the unparsed bytes, if there is one.
    fn parse(&mut self) -> Option<Frame> {
        let rest = &self.buf[self.start..];
        let mut lines = Vec::new();
        let mut at = 0;
        let body_start = loop {
            let end = at + rest[at..].iter().position(|&b| b == b'\n')?;
            let line = rest[at..end].strip_suffix(b"\r").unwrap_or(&rest[at..end]);
            if line.is_empty() {
                break end + 1;
            }
            lines.push(String::from_utf8(line.to_vec()).expect("UTF-8 frame head"));
            at = end + 1;
        };
        let command = lines.first()?.clone();
        let unescaped = self.unescape && command != "CONNECTED";
        let headers: Vec<(String, String)> = lines[1..]
            .iter()
            .map(|line| {
                let (name, value) = line.split_once(':').expect("a header line with a colon");
                if unescaped {
                    (unescape(name), unescape(value))
                } else {
                    (name.to_owned(), value.to_owned())
                }
            })
            .collect();
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse::<usize>().expect("numeric content-length"));
        let body_end = match length {
            Some(length) => body_start + length,
            None => body_start + rest[body_start..].iter().position(|&b| b == 0)?,
        };
        if rest.len() <= body_end {
            return None;
        }
        assert_eq!(rest[body_end], 0, "frame not NUL-terminated");
        let body = rest[body_start..body_end].to_vec();
        self.start += body_end + 1;
        Some(Frame {
            command,
            headers,
            body,
        })
    }
}

/// The write side.
#[derive(Debug)]
pub struct Writer<W = OwnedWriteHalf> {
    half: W,
    style: Style,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Writes one frame. Not bounded: a server that stops reading blocks it once the socket
    /// buffers are full (which is what the backpressure tests look for).
    pub async fn send(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        self.write(&encode(command, headers, body, self.style))
            .await;
    }

    /// Writes `bytes` as they are and flushes them. Not bounded.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.half.write_all(bytes).await.expect("write STOMP bytes");
        self.half.flush().await.expect("flush STOMP bytes");
    }
}

/// A raw STOMP client: both halves of one connection.
#[derive(Debug)]
pub struct Client<R = OwnedReadHalf, W = OwnedWriteHalf> {
    /// The read side.
    pub reader: Reader<R>,
    /// The write side.
    pub writer: Writer<W>,
}

impl Client {
    /// Connects to `addr` (with `SO_RCVBUF` set to `receive_buffer` when given, before the
    /// handshake, so the kernel cannot buffer much for a client that stops reading), sends
    /// CONNECT as guest with STOMP 1.2 and no heart-beats, and expects CONNECTED within `limit`.
    /// Writes in [`Style::SIZED`].
    pub async fn connect(addr: SocketAddr, receive_buffer: Option<u32>, limit: Duration) -> Self {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .expect("a socket");
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        let stream: TcpStream = within(limit, "connect", socket.connect(addr))
            .await
            .expect("connected");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let mut client = Self::tcp(stream, Style::SIZED);
        client
            .writer
            .send("CONNECT", &guest_headers(&[("heart-beat", "0,0")]), b"")
            .await;
        client.recv_within(limit).await.expect("CONNECTED");
        client
    }

    /// A client on a TCP connection (not yet sent anything).
    pub fn tcp(stream: TcpStream, style: Style) -> Self {
        let (read, write) = stream.into_split();
        Self {
            reader: Reader::new(read, style),
            writer: Writer { half: write, style },
        }
    }

    /// A TCP connection to `addr` within [`STEP`] (nothing sent yet).
    pub async fn open(addr: SocketAddr, style: Style) -> Self {
        let stream = within(STEP, "connect", TcpStream::connect(addr))
            .await
            .expect("connected");
        Self::tcp(stream, style)
    }

    /// A TCP connection to `addr` on which CONNECT as guest with STOMP 1.2 and `extra` headers
    /// ([`guest_headers`]) got CONNECTED; the client and its CONNECTED frame.
    pub async fn guest(addr: SocketAddr, style: Style, extra: &[(&str, &str)]) -> (Self, Frame) {
        let mut client = Self::open(addr, style).await;
        let connected = client.hello(extra).await.expect("CONNECTED");
        (client, connected)
    }
}

impl<S: AsyncRead + AsyncWrite> Client<ReadHalf<S>, WriteHalf<S>> {
    /// A client on any stream (a TLS one, say), nothing sent yet.
    pub fn over(stream: S, style: Style) -> Self {
        let (read, write) = tokio::io::split(stream);
        Self {
            reader: Reader::new(read, style),
            writer: Writer { half: write, style },
        }
    }
}

/// A TCP connection to `addr` on which CONNECT as guest with STOMP 1.2 got CONNECTED, in
/// [`Style::ESCAPED`], within [`STEP`].
pub async fn connect(addr: SocketAddr) -> Client {
    Client::guest(addr, Style::ESCAPED, &[]).await.0
}

/// The CONNECT headers of guest with STOMP 1.2, `extra` replacing the defaults of the same name
/// (and following them).
pub fn guest_headers<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![
        ("accept-version", "1.2"),
        ("host", "/"),
        ("login", "guest"),
        ("passcode", "guest"),
    ];
    headers.retain(|(name, _)| extra.iter().all(|(n, _)| n != name));
    headers.extend_from_slice(extra);
    headers
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Client<R, W> {
    /// Sends CONNECT with [`guest_headers`]`(extra)`; the reply, within [`STEP`].
    pub async fn hello(&mut self, extra: &[(&str, &str)]) -> Frame {
        self.send("CONNECT", &guest_headers(extra), b"").await;
        self.recv().await
    }

    /// Sends a frame, within [`STEP`].
    pub async fn send(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        within(STEP, "a write", self.writer.send(command, headers, body)).await;
    }

    /// Writes `bytes` as they are, within [`STEP`].
    pub async fn write(&mut self, bytes: &[u8]) {
        within(STEP, "a write", self.writer.write(bytes)).await;
    }

    /// The next frame, within [`STEP`].
    pub async fn recv(&mut self) -> Frame {
        self.recv_within(STEP).await
    }

    /// The next frame, within `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Frame {
        self.reader.recv(limit).await
    }

    /// The next frame; fails the test if the connection closed. Not bounded: for a caller
    /// that bounds it (a `select!` inside a [`within`]).
    pub async fn read_frame(&mut self) -> Frame {
        self.reader
            .next()
            .await
            .expect("the connection closed while a frame was expected")
    }

    /// The next frame, which must be a MESSAGE, within [`STEP`].
    pub async fn message(&mut self) -> Frame {
        self.recv().await.expect("MESSAGE")
    }

    /// The next MESSAGE's body, within [`STEP`].
    pub async fn next_body(&mut self) -> Vec<u8> {
        self.message().await.body
    }

    /// Sends a frame with `receipt` and expects its RECEIPT as the next frame, within `limit`.
    pub async fn receipted_within(
        &mut self,
        command: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        receipt: &str,
        limit: Duration,
    ) {
        let mut all = headers.to_vec();
        all.push(("receipt", receipt));
        self.send(command, &all, body).await;
        let frame = self.recv_within(limit).await.expect("RECEIPT");
        assert_eq!(frame.header("receipt-id"), Some(receipt), "{frame:?}");
    }

    /// Sends a frame with `receipt` and expects its RECEIPT as the next frame, within [`STEP`].
    pub async fn receipted(
        &mut self,
        command: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        receipt: &str,
    ) {
        self.receipted_within(command, headers, body, receipt, STEP)
            .await;
    }

    /// Sends a frame with a fresh receipt and expects its RECEIPT next, within [`STEP`].
    pub async fn with_receipt(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        let receipt = unique("receipt");
        self.receipted(command, headers, body, &receipt).await;
    }

    /// Subscribes to `destination` as `id` with `extra` headers, confirmed by a receipt.
    pub async fn subscribe(&mut self, id: &str, destination: &str, extra: &[(&str, &str)]) {
        let mut headers = vec![("id", id), ("destination", destination)];
        headers.extend_from_slice(extra);
        self.with_receipt("SUBSCRIBE", &headers, b"").await;
    }

    /// A confirmed SEND of `body` to `destination`.
    pub async fn publish(&mut self, destination: &str, body: &[u8]) {
        self.with_receipt("SEND", &[("destination", destination)], body)
            .await;
    }

    /// True once the server closed the connection, within [`STEP`].
    pub async fn closed(&mut self) -> bool {
        self.closed_within(STEP).await
    }

    /// True once the server closed the connection, within `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        self.reader.closed_within(limit).await
    }

    /// The next frame is an ERROR whose `message` contains `text`, then the close (each within
    /// [`STEP`]); the ERROR.
    pub async fn refused(&mut self, text: &str) -> Frame {
        let error = self.recv().await.expect("ERROR");
        let message = error.header("message").unwrap_or_default();
        assert!(
            message.contains(text),
            "message {message:?}, wanted {text:?}"
        );
        assert!(self.closed().await);
        error
    }

    /// Reads until at least `n` heart-beats arrived in all, within `limit`.
    pub async fn beats(&mut self, n: usize, limit: Duration) {
        self.reader.beats(n, limit).await;
    }

    /// The two halves, for a writer task and a reader task.
    pub fn split(self) -> (Reader<R>, Writer<W>) {
        (self.reader, self.writer)
    }
}
