//! STOMP bad input over raw frames (issue 4, "Bad input"): each case gets an ERROR frame with a
//! clear `message`, then the close, and another client of the same gateway keeps working.
//!
//! Every wait is bounded; a refused frame's effect (or its absence) is checked with a marker
//! round trip, never by sleeping.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use gateway::{queue_stats, within, STEP};
use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway with a STOMP listener; returns it and the STOMP address.
async fn gateway() -> (RunningGateway, SocketAddr) {
    let (running, _mqtt) = gateway::start(|settings| {
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
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A frame as read from the wire, header values unescaped (1.1/1.2 rules).
#[derive(Debug)]
struct Received {
    command: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn expect(self, command: &str) -> Self {
        assert_eq!(self.command, command, "{self:?}");
        self
    }
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            Some('\\') => out.push('\\'),
            other => panic!("bad escape from the server: {other:?} in {text:?}"),
        }
    }
    out
}

/// A raw STOMP client.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Heart-beat EOLs read so far (between frames).
    beats: usize,
}

impl Client {
    async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: within(STEP, "connect", TcpStream::connect(addr))
                .await
                .unwrap(),
            buf: Vec::new(),
            beats: 0,
        }
    }

    /// Connects as guest with STOMP 1.2 and `extra` CONNECT headers (replacing the defaults of
    /// the same name); returns the client and its CONNECTED frame.
    async fn connect_with(addr: SocketAddr, extra: &[(&str, &str)]) -> (Self, Received) {
        let mut client = Self::open(addr).await;
        let mut headers = vec![
            ("accept-version", "1.2"),
            ("host", "/"),
            ("login", "guest"),
            ("passcode", "guest"),
        ];
        headers.retain(|(name, _)| extra.iter().all(|(n, _)| n != name));
        headers.extend_from_slice(extra);
        client.send("CONNECT", &headers, b"").await;
        let connected = client.recv().await.expect("CONNECTED");
        (client, connected)
    }

    async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, &[]).await.0
    }

    async fn send(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut bytes = format!("{command}\n").into_bytes();
        for (name, value) in headers {
            bytes.extend_from_slice(format!("{name}:{value}\n").as_bytes());
        }
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        bytes.push(0);
        self.write(&bytes).await;
    }

    async fn write(&mut self, bytes: &[u8]) {
        within(STEP, "a write", self.stream.write_all(bytes))
            .await
            .unwrap();
    }

    /// The next frame (heart-beats counted and skipped), within [`STEP`].
    async fn recv(&mut self) -> Received {
        within(STEP, "a frame", self.read_frame()).await
    }

    fn skip_beats(&mut self) {
        loop {
            match self.buf.first() {
                Some(b'\n') => {
                    self.buf.remove(0);
                    self.beats += 1;
                }
                Some(b'\r') if self.buf.get(1) == Some(&b'\n') => {
                    self.buf.drain(..2);
                    self.beats += 1;
                }
                _ => return,
            }
        }
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed; buffered {:?}", self.buf);
        self.buf.extend_from_slice(&chunk[..n]);
    }

    async fn read_frame(&mut self) -> Received {
        loop {
            self.skip_beats();
            if let Some(frame) = self.parse() {
                return frame;
            }
            self.fill().await;
        }
    }

    fn parse(&mut self) -> Option<Received> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        let mut lines = head.lines();
        let command = lines.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (unescape(n), unescape(v)))
            .collect();
        let start = end + 2;
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse::<usize>().unwrap());
        let body_end = match length {
            Some(length) => start + length,
            None => start + self.buf[start..].iter().position(|&b| b == 0)?,
        };
        if self.buf.len() <= body_end {
            return None;
        }
        let body = self.buf[start..body_end].to_vec();
        self.buf.drain(..=body_end);
        Some(Received {
            command,
            headers,
            body,
        })
    }

    /// Sends `command` with a receipt and waits for the RECEIPT.
    async fn with_receipt(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        let receipt = unique("r");
        let mut all = headers.to_vec();
        all.push(("receipt", &receipt));
        self.send(command, &all, body).await;
        let frame = self.recv().await.expect("RECEIPT");
        assert_eq!(frame.header("receipt-id"), Some(receipt.as_str()));
    }

    async fn subscribe(&mut self, id: &str, destination: &str, extra: &[(&str, &str)]) {
        let mut headers = vec![("id", id), ("destination", destination)];
        headers.extend_from_slice(extra);
        self.with_receipt("SUBSCRIBE", &headers, b"").await;
    }

    /// A confirmed SEND of `body` to `destination`.
    async fn publish(&mut self, destination: &str, body: &[u8]) {
        self.with_receipt("SEND", &[("destination", destination)], body)
            .await;
    }

    /// The next MESSAGE's body.
    async fn next_body(&mut self) -> Vec<u8> {
        self.recv().await.expect("MESSAGE").body
    }

    /// True once the server closed the connection, within `limit`.
    async fn closed_within(&mut self, limit: Duration) -> bool {
        within(limit, "the close", async {
            let mut chunk = [0u8; 1024];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await
    }

    /// The next frame is an ERROR whose `message` contains `text`, then the close.
    async fn refused(&mut self, text: &str) -> Received {
        let error = self.recv().await.expect("ERROR");
        let message = error.header("message").unwrap_or_default();
        assert!(
            message.contains(text),
            "message {message:?}, wanted {text:?}"
        );
        assert!(self.closed_within(STEP).await);
        error
    }
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// A client of the same gateway that must keep working while others are refused: a subscriber
/// and a publisher on a queue of their own.
struct Bystander {
    subscriber: Client,
    publisher: Client,
    queue: String,
}

impl Bystander {
    async fn new(addr: SocketAddr) -> Self {
        let queue = format!("/queue/{}", unique("bystander"));
        let mut subscriber = Client::connect(addr).await;
        subscriber.subscribe("b", &queue, &[]).await;
        Self {
            subscriber,
            publisher: Client::connect(addr).await,
            queue,
        }
    }

    /// A message still goes round.
    async fn alive(&mut self) {
        let body = unique("still-here").into_bytes();
        self.publisher.publish(&self.queue, &body).await;
        assert_eq!(self.subscriber.next_body().await, body);
    }
}

/// A frame's bytes.
fn frame(command: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{command}\n").into_bytes();
    for (name, value) in headers {
        bytes.extend_from_slice(format!("{name}:{value}\n").as_bytes());
    }
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    bytes.push(0);
    bytes
}

/// The head of a frame whose body never ends, padded with `a` to exactly `len` bytes: a frame
/// that cannot fit `len` bytes (no NUL yet). Exactly `len`, so the server has read every byte
/// when it refuses (no reset racing the ERROR frame).
fn endless(head: &str, len: usize) -> Vec<u8> {
    let mut bytes = head.as_bytes().to_vec();
    bytes.resize(len, b'a');
    bytes
}

/// Writes `bytes` on `client` and expects an ERROR whose `message` contains `message`, then the
/// close; then checks that `bystander` still works.
async fn refused(client: &mut Client, bytes: &[u8], message: &str, bystander: &mut Bystander) {
    client.write(bytes).await;
    client.refused(message).await;
    bystander.alive().await;
}

#[tokio::test]
async fn frames_before_connect_are_refused_unprocessed() {
    let (running, addr) = gateway().await;
    let mut bystander = Bystander::new(addr).await;
    let queue = unique("never");
    for command in ["SEND", "SUBSCRIBE"] {
        let mut client = Client::open(addr).await;
        let bytes = frame(
            command,
            &[("destination", &format!("/queue/{queue}")), ("id", "s")],
            b"",
        );
        refused(&mut client, &bytes, "not connected", &mut bystander).await;
    }
    // Neither frame was processed: the SEND would have declared the queue.
    assert!(queue_stats(running.broker(), &queue).is_none());
}

#[tokio::test]
async fn a_frame_over_64_kib_before_connect_is_refused() {
    let (_running, addr) = gateway().await;
    let mut bystander = Bystander::new(addr).await;
    let mut client = Client::open(addr).await;
    let bytes = endless("CONNECT\naccept-version:1.2\n\n", 64 * 1024);
    refused(&mut client, &bytes, "frame too large", &mut bystander).await;
}

#[tokio::test]
async fn a_frame_over_4_mib_after_connect_is_refused() {
    let (_running, addr) = gateway().await;
    let mut bystander = Bystander::new(addr).await;
    let mut client = Client::connect(addr).await;
    let queue = format!("/queue/{}", unique("big"));
    let bytes = endless(&format!("SEND\ndestination:{queue}\n\n"), 4 * 1024 * 1024);
    refused(&mut client, &bytes, "frame too large", &mut bystander).await;

    // Just under the limit is fine.
    let mut client = Client::connect(addr).await;
    let body = vec![b'b'; 4 * 1024 * 1024 - 100];
    client.publish(&queue, &body).await;
}

#[tokio::test]
async fn too_many_headers_and_too_long_headers_are_refused() {
    let (_running, addr) = gateway().await;
    let mut bystander = Bystander::new(addr).await;
    let limit = mqgate_stomp::StompSettings::default().max_headers;
    let names: Vec<String> = (0..=limit).map(|n| format!("h{n}")).collect();
    let mut headers: Vec<(&str, &str)> = vec![("destination", "/queue/many")];
    headers.extend(names.iter().map(|name| (name.as_str(), "v")));
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame("SEND", &headers, b""),
        "too many headers",
        &mut bystander,
    )
    .await;
    // Before CONNECT too.
    let mut client = Client::open(addr).await;
    refused(
        &mut client,
        &frame("CONNECT", &headers, b""),
        "too many headers",
        &mut bystander,
    )
    .await;

    let long = "x".repeat(mqgate_stomp::StompSettings::default().max_header_len + 1);
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame(
            "SEND",
            &[("destination", "/queue/long"), ("x-long", &long)],
            b"",
        ),
        "header too long",
        &mut bystander,
    )
    .await;
}

#[tokio::test]
async fn bad_content_lengths_are_refused() {
    let (_running, addr) = gateway().await;
    let mut bystander = Bystander::new(addr).await;
    let queue = format!("/queue/{}", unique("cl"));
    let too_large = (5 * 1024 * 1024).to_string();
    for value in ["-1", "abc", "12x", too_large.as_str()] {
        let mut client = Client::connect(addr).await;
        let bytes = frame(
            "SEND",
            &[("destination", &queue), ("content-length", value)],
            b"",
        );
        let head_only = &bytes[..bytes.len() - 1];
        // The header alone proves it wrong: no body byte needs to arrive.
        refused(
            &mut client,
            head_only,
            "invalid content-length",
            &mut bystander,
        )
        .await;
    }
    // A body longer than its content-length.
    let mut client = Client::connect(addr).await;
    let bytes = frame(
        "SEND",
        &[("destination", &queue), ("content-length", "3")],
        b"hello",
    );
    refused(
        &mut client,
        &bytes,
        "invalid content-length",
        &mut bystander,
    )
    .await;
    // A content-length larger than the pre-CONNECT limit, before CONNECT.
    let mut client = Client::open(addr).await;
    let bytes = frame("CONNECT", &[("content-length", "70000")], b"");
    refused(
        &mut client,
        &bytes[..bytes.len() - 1],
        "invalid content-length",
        &mut bystander,
    )
    .await;
}

#[tokio::test]
async fn malformed_frames_are_refused() {
    let (_running, addr) = gateway().await;
    let mut bystander = Bystander::new(addr).await;
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        b"SEND\ndestination:/queue/x\nno-colon-here\n\n\0",
        "malformed header",
        &mut bystander,
    )
    .await;
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame("PUBLISH", &[("destination", "/queue/x")], b""),
        "unknown command",
        &mut bystander,
    )
    .await;
    // Commands are case-sensitive.
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame("send", &[("destination", "/queue/x")], b""),
        "unknown command",
        &mut bystander,
    )
    .await;
    // An undefined escape in 1.2 (`\t`), and `\r` in 1.1, which has none.
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame(
            "SEND",
            &[("destination", "/queue/x"), ("x-h", "a\\tb")],
            b"",
        ),
        "invalid header escape",
        &mut bystander,
    )
    .await;
    let (mut client, connected) = Client::connect_with(addr, &[("accept-version", "1.1")]).await;
    assert_eq!(connected.header("version"), Some("1.1"));
    refused(
        &mut client,
        &frame(
            "SEND",
            &[("destination", "/queue/x"), ("x-h", "a\\rb")],
            b"",
        ),
        "invalid header escape",
        &mut bystander,
    )
    .await;
}

#[tokio::test]
async fn session_rule_violations_are_refused() {
    let (_running, addr) = gateway().await;
    let mut bystander = Bystander::new(addr).await;
    let mut client = Client::connect(addr).await;
    let bytes = frame("SEND", &[("receipt", "r-1")], b"body");
    client.write(&bytes).await;
    let error = client.refused("missing destination header").await;
    assert_eq!(error.header("receipt-id"), Some("r-1"));
    bystander.alive().await;

    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame("ACK", &[("id", "12345")], b""),
        "unknown ack id",
        &mut bystander,
    )
    .await;
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame("ACK", &[("id", "not-a-number")], b""),
        "unknown ack id",
        &mut bystander,
    )
    .await;

    let queue = unique("spoof");
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame(
            "SEND",
            &[
                ("destination", &format!("/queue/{queue}")),
                ("user-id", "mallory"),
            ],
            b"spoofed",
        ),
        "user-id mismatch",
        &mut bystander,
    )
    .await;
    // The first user-id counts, as for routing: a later matching one does not help.
    let mut client = Client::connect(addr).await;
    refused(
        &mut client,
        &frame(
            "SEND",
            &[
                ("destination", &format!("/queue/{queue}")),
                ("user-id", "mallory"),
                ("user-id", "guest"),
            ],
            b"spoofed",
        ),
        "user-id mismatch",
        &mut bystander,
    )
    .await;
    // The authenticated user's own name is fine.
    let mut client = Client::connect(addr).await;
    client
        .with_receipt(
            "SEND",
            &[
                ("destination", &format!("/queue/{queue}")),
                ("user-id", "guest"),
            ],
            b"honest",
        )
        .await;
}

#[tokio::test]
async fn a_refused_client_never_delays_others() {
    // Many bad clients at once; the bystander's round trips stay prompt.
    let (_running, addr) = gateway().await;
    let mut bystander = Bystander::new(addr).await;
    let mut bad = Vec::new();
    for n in 0..20 {
        let mut client = Client::open(addr).await;
        client
            .write(&frame("BOGUS", &[("n", &n.to_string())], b""))
            .await;
        bad.push(client);
    }
    within(Duration::from_secs(2), "the bystander", bystander.alive()).await;
    for client in &mut bad {
        client.refused("unknown command").await;
    }
    bystander.alive().await;
}
