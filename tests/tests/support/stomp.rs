//! A raw STOMP 1.2 client for the end-to-end tests: frames written byte for byte, frames read
//! with a bounded wait, and a socket that can be split so one task writes while another reads.
//!
//! A test binary mounts it as `#[path = "support/stomp.rs"] mod stomp;` next to
//! `support/gateway.rs`. Header values are neither escaped nor unescaped: tests that use this
//! client send and expect plain values.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};

use super::gateway::within;

/// A frame as read from the wire (its `Debug` shows the body's length, not its bytes).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command line.
    pub command: String,
    /// The headers, in order (values as sent).
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
    /// The first header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The bytes of a client frame; a non-empty body gets a `content-length` header.
pub fn encode(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(body.len() + 256);
    bytes.extend_from_slice(command.as_bytes());
    bytes.push(b'\n');
    for (name, value) in headers {
        bytes.extend_from_slice(format!("{name}:{value}\n").as_bytes());
    }
    if !body.is_empty() {
        bytes.extend_from_slice(format!("content-length:{}\n", body.len()).as_bytes());
    }
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    bytes.push(0);
    bytes
}

/// The read side: a socket half and the bytes read but not yet framed.
#[derive(Debug)]
pub struct Reader {
    half: OwnedReadHalf,
    buf: Vec<u8>,
    /// Where the unparsed bytes start in `buf` (consumed bytes are dropped in batches).
    start: usize,
}

impl Reader {
    /// The next frame (heart-beat EOLs skipped), or `None` once the server closed the
    /// connection (end of stream or a reset). Not bounded: see [`Reader::recv`].
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            // Into the heap buffer: a large array here would sit in every future awaiting this.
            self.buf.reserve(64 * 1024);
            match self.half.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
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

    fn parse(&mut self) -> Option<Frame> {
        while matches!(self.buf.get(self.start), Some(b'\n' | b'\r')) {
            self.start += 1;
        }
        let rest = &self.buf[self.start..];
        let end = rest.windows(2).position(|w| w == b"\n\n")?;
        let head = String::from_utf8(rest[..end].to_vec()).expect("UTF-8 frame head");
        let mut lines = head.lines();
        let command = lines.next()?.trim_end_matches('\r').to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.trim_end_matches('\r').split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let body_start = end + 2;
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
pub struct Writer {
    half: OwnedWriteHalf,
}

impl Writer {
    /// Writes one frame. Not bounded: a server that stops reading blocks it once the socket
    /// buffers are full (which is what the backpressure tests look for).
    pub async fn send(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        self.half
            .write_all(&encode(command, headers, body))
            .await
            .expect("write a STOMP frame");
    }
}

/// A raw STOMP client: both halves of one connection.
#[derive(Debug)]
pub struct Client {
    /// The read side.
    pub reader: Reader,
    /// The write side.
    pub writer: Writer,
}

impl Client {
    /// Connects to `addr` (with `SO_RCVBUF` set to `receive_buffer` when given, before the
    /// handshake, so the kernel cannot buffer much for a client that stops reading), sends
    /// CONNECT as guest with STOMP 1.2 and no heart-beats, and expects CONNECTED within `limit`.
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
        let (read, write) = stream.into_split();
        let mut client = Self {
            reader: Reader {
                half: read,
                buf: Vec::new(),
                start: 0,
            },
            writer: Writer { half: write },
        };
        client
            .writer
            .send(
                "CONNECT",
                &[
                    ("accept-version", "1.2"),
                    ("host", "/"),
                    ("login", "guest"),
                    ("passcode", "guest"),
                    ("heart-beat", "0,0"),
                ],
                b"",
            )
            .await;
        let connected = client.reader.recv(limit).await;
        assert_eq!(connected.command, "CONNECTED", "{connected:?}");
        client
    }

    /// Sends a frame.
    pub async fn send(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        self.writer.send(command, headers, body).await;
    }

    /// The next frame within `limit`.
    pub async fn recv(&mut self, limit: Duration) -> Frame {
        self.reader.recv(limit).await
    }

    /// Sends a frame with `receipt` and expects its RECEIPT as the next frame, within `limit`.
    pub async fn with_receipt(
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
        let frame = self.recv(limit).await;
        assert_eq!(frame.command, "RECEIPT", "{frame:?}");
        assert_eq!(frame.header("receipt-id"), Some(receipt), "{frame:?}");
    }

    /// The two halves, for a writer task and a reader task.
    pub fn split(self) -> (Reader, Writer) {
        (self.reader, self.writer)
    }
}
