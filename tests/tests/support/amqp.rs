//! The AMQP 0-9-1 side of the end-to-end tests: the broker under test, a raw-frame client for
//! input no real client sends, and helpers around lapin.
//!
//! A test binary mounts it as `#[path = "support/amqp.rs"] mod amqp;` next to
//! `support/gateway.rs`.
//!
//! **Target.** [`Target::start`] starts an in-process gateway with a plain AMQP listener on
//! 127.0.0.1:0, unless the environment variable [`REFERENCE_PORT`] (`AMQP_REFERENCE_PORT`) is
//! set: then every test talks to the broker on 127.0.0.1:<that port> instead (a RabbitMQ with
//! `guest`/`guest` on vhost `/`), so that the expectations are checked against the behaviour
//! they copy. Tests name their queues and exchanges with [`unique`], since a reference broker
//! is shared by every test and every run; where the two brokers deliberately differ a test asks
//! [`Target::is_reference`] and says why in a comment.
//!
//! **Raw client.** [`Client`] writes frames built with amq-protocol ([`encode`]) or raw bytes
//! ([`raw_frame`]) and reads whole frames with amq-protocol's parser. Every `Client` method
//! that waits is bounded by [`STEP`] unless it takes a `limit`; [`Client::next_frame`] is the
//! one unbounded read, for callers that bound it. A server that closes the connection (end of
//! stream or a reset) reads as `None`, never as an error.
//!
//! **lapin.** [`connect`] logs in as guest within [`STEP`]; [`next_delivery`] and
//! [`consumer_ended`] read a `lapin::Consumer` with a bounded wait.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::basic::AMQPProperties;
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use futures_core::Stream;
use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Settings, Transport};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::gateway::{within, STEP};

/// The environment variable naming the port of a reference broker on 127.0.0.1 to run the
/// tests against instead of an in-process gateway.
pub const REFERENCE_PORT: &str = "AMQP_REFERENCE_PORT";

/// The protocol header of AMQP 0-9-1: what a client opens with, and what a server answers a
/// header it does not speak with.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// The largest frame either peer may send before tune-ok (the spec's `frame-min-size`).
pub const FRAME_MIN_SIZE: u32 = 8192;

/// Bytes a frame adds around its payload: 7 of header, 1 frame-end octet.
pub const FRAME_OVERHEAD: usize = 8;

/// The frame-end octet.
pub const FRAME_END: u8 = 0xCE;

/// Frame types.
pub const METHOD: u8 = 1;
/// A content header frame.
pub const HEADER: u8 = 2;
/// A content body frame.
pub const BODY: u8 = 3;
/// A heartbeat frame.
pub const HEARTBEAT: u8 = 8;

/// The port of the reference broker, if [`REFERENCE_PORT`] is set.
pub fn reference_port() -> Option<u16> {
    let value = std::env::var(REFERENCE_PORT).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{REFERENCE_PORT}={value:?} is not a port number")),
    )
}

/// A name no other test (and no other run against the same reference broker) uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// The broker under test.

/// A gateway with a plain AMQP listener (and the gateway module's MQTT one); returns it and the
/// AMQP address. Always the in-process gateway: see [`Target`] for tests that may run against a
/// reference broker.
pub async fn start() -> (RunningGateway, SocketAddr) {
    start_tuned(|_| {}).await
}

/// [`start`] with `tune` applied to the settings after the AMQP listener was added.
pub async fn start_tuned(tune: impl FnOnce(&mut Settings)) -> (RunningGateway, SocketAddr) {
    let (running, _mqtt) = super::gateway::start(|settings| {
        settings.listeners.push(ListenerSpec {
            protocol: Protocol::Amqp,
            transport: Transport::Plain,
            addr: "127.0.0.1:0".parse().unwrap(),
        });
        tune(settings);
    })
    .await;
    let addr = running
        .local_addr(Protocol::Amqp, Transport::Plain)
        .unwrap();
    (running, addr)
}

/// The broker a test talks to: an in-process gateway (kept running as long as this lives), or
/// the reference broker of [`REFERENCE_PORT`].
pub struct Target {
    gateway: Option<RunningGateway>,
    addr: SocketAddr,
}

impl Target {
    /// The reference broker if [`REFERENCE_PORT`] is set, otherwise a new gateway ([`start`]).
    pub async fn start() -> Self {
        Self::tuned(|_| {}).await
    }

    /// As [`Target::start`], `tune` applied to the gateway's settings (a reference broker is
    /// used as it is: a test relying on the tuning must skip it).
    pub async fn tuned(tune: impl FnOnce(&mut Settings)) -> Self {
        match reference_port() {
            Some(port) => Self {
                gateway: None,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            },
            None => {
                let (gateway, addr) = start_tuned(tune).await;
                Self {
                    gateway: Some(gateway),
                    addr,
                }
            }
        }
    }

    /// The AMQP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The in-process gateway, unless this is the reference broker.
    pub fn gateway(&self) -> Option<&RunningGateway> {
        self.gateway.as_ref()
    }

    /// True for the reference broker.
    pub fn is_reference(&self) -> bool {
        self.gateway.is_none()
    }

    /// The lapin URI of guest on vhost `/`, with `query` (`heartbeat=5`, say) if not empty.
    pub fn uri(&self, query: &str) -> String {
        uri(self.addr, query)
    }

    /// A lapin connection as guest on vhost `/` ([`connect`]).
    pub async fn connect(&self) -> lapin::Connection {
        connect(self.addr).await
    }

    /// A raw TCP connection, nothing sent yet.
    pub async fn raw(&self) -> Client {
        Client::tcp(self.addr).await
    }

    /// A raw connection past the handshake as guest on vhost `/`, heartbeats off.
    pub async fn guest(&self) -> Client {
        let mut client = self.raw().await;
        client.handshake("guest", "guest", "/").await;
        client
    }
}

// ---------------------------------------------------------------------------------------------
// Frames.

/// The bytes of `frame` as amq-protocol writes it.
pub fn encode(frame: &AMQPFrame) -> Vec<u8> {
    cookie_factory::gen_simple(gen_frame(frame), Vec::new()).expect("an encodable frame")
}

/// The payload of a method frame carrying `method` (class id, method id, arguments).
pub fn method_payload(method: &AMQPClass) -> Vec<u8> {
    let bytes = encode(&AMQPFrame::Method(0, method.clone()));
    bytes[7..bytes.len() - 1].to_vec()
}

/// A frame of type `kind` on `channel` around `payload`, with the right frame-end octet.
pub fn raw_frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    raw_frame_ending(kind, channel, payload, FRAME_END)
}

/// A frame of type `kind` on `channel` around `payload`, ending with `end`.
pub fn raw_frame_ending(kind: u8, channel: u16, payload: &[u8], end: u8) -> Vec<u8> {
    let mut bytes = frame_head(kind, channel, payload.len() as u32).to_vec();
    bytes.extend_from_slice(payload);
    bytes.push(end);
    bytes
}

/// The 7-byte header of a frame of type `kind` on `channel` announcing `size` payload bytes.
pub fn frame_head(kind: u8, channel: u16, size: u32) -> [u8; 7] {
    let [c0, c1] = channel.to_be_bytes();
    let [s0, s1, s2, s3] = size.to_be_bytes();
    [kind, c0, c1, s0, s1, s2, s3]
}

/// The bytes of `method` in a method frame on `channel`.
pub fn method_frame(channel: u16, method: AMQPClass) -> Vec<u8> {
    encode(&AMQPFrame::Method(channel, method))
}

/// The bytes of a content header frame on `channel` announcing `body_size` bytes.
pub fn header_frame(channel: u16, body_size: u64, properties: AMQPProperties) -> Vec<u8> {
    encode(&AMQPFrame::Header(
        channel,
        AMQPContentHeader {
            class_id: 60,
            body_size,
            properties,
        },
    ))
}

/// basic.publish of `routing_key` to `exchange`.
pub fn publish_method(exchange: &str, routing_key: &str, mandatory: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        mandatory,
        immediate: false,
    }))
}

/// The result of a complete handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// connection.start, with the server's properties and mechanisms.
    pub start: connection::Start,
    /// connection.tune, the server's proposal.
    pub tune: connection::Tune,
}

/// A message read from a raw connection: the method that carried it (basic.deliver,
/// basic.get-ok, basic.return), its properties and its body reassembled from body frames.
#[derive(Debug, Clone)]
pub struct Content {
    /// The method.
    pub method: AMQPClass,
    /// The properties of its content header.
    pub properties: AMQPProperties,
    /// The body.
    pub body: Vec<u8>,
}

impl Content {
    /// The delivery tag of a basic.deliver or basic.get-ok.
    pub fn delivery_tag(&self) -> u64 {
        match &self.method {
            AMQPClass::Basic(basic::AMQPMethod::Deliver(deliver)) => deliver.delivery_tag,
            AMQPClass::Basic(basic::AMQPMethod::GetOk(get_ok)) => get_ok.delivery_tag,
            other => panic!("no delivery tag in {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The raw client.

/// A raw AMQP client on one stream (TCP unless [`Client::over`] was given another).
#[derive(Debug)]
pub struct Client<S = TcpStream> {
    stream: S,
    buf: Vec<u8>,
    /// Where the unparsed bytes start in `buf` (consumed bytes are dropped in batches).
    start: usize,
    /// The frame size negotiated by [`Client::handshake`] (before that, [`FRAME_MIN_SIZE`]):
    /// the largest frame [`Client::publish`] sends.
    frame_max: u32,
    /// The channel_max the server proposed in connection.tune, once read.
    channel_max: u16,
}

impl Client {
    /// A TCP connection to `addr` within [`STEP`], nothing sent yet.
    pub async fn tcp(addr: SocketAddr) -> Self {
        let stream = within(STEP, "connect", TcpStream::connect(addr))
            .await
            .expect("connected");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Self::over(stream)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// A client on any stream (a TLS one, say), nothing sent yet.
    pub fn over(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::new(),
            start: 0,
            frame_max: FRAME_MIN_SIZE,
            channel_max: 0,
        }
    }

    /// The negotiated frame size (or [`FRAME_MIN_SIZE`] before the handshake).
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// The channel_max of the server's connection.tune (0 before it was read).
    pub fn channel_max(&self) -> u16 {
        self.channel_max
    }

    // -- writing --------------------------------------------------------------------------

    /// Writes `bytes` and flushes them within [`STEP`]; fails the test if the connection is
    /// gone.
    pub async fn write(&mut self, bytes: &[u8]) {
        assert!(
            self.try_write(bytes).await,
            "the server closed the connection while we wrote"
        );
    }

    /// Writes `bytes` and flushes them within [`STEP`]; false if the server had closed the
    /// connection (for input the server may refuse before reading all of it).
    pub async fn try_write(&mut self, bytes: &[u8]) -> bool {
        within(STEP, "a write", async {
            self.stream.write_all(bytes).await.is_ok() && self.stream.flush().await.is_ok()
        })
        .await
    }

    /// Writes `frame`, within [`STEP`].
    pub async fn send(&mut self, frame: &AMQPFrame) {
        self.write(&encode(frame)).await;
    }

    /// Writes `method` on `channel`, within [`STEP`].
    pub async fn send_method(&mut self, channel: u16, method: AMQPClass) {
        self.send(&AMQPFrame::Method(channel, method)).await;
    }

    /// Writes a basic.publish on `channel` with its content header and body frames (each body
    /// frame at most the negotiated frame size), within [`STEP`].
    pub async fn publish(
        &mut self,
        channel: u16,
        exchange: &str,
        routing_key: &str,
        properties: AMQPProperties,
        body: &[u8],
    ) {
        let mut bytes = method_frame(channel, publish_method(exchange, routing_key, false));
        bytes.extend(header_frame(channel, body.len() as u64, properties));
        for chunk in body.chunks(self.frame_max as usize - FRAME_OVERHEAD) {
            bytes.extend(raw_frame(BODY, channel, chunk));
        }
        self.write(&bytes).await;
    }

    // -- reading --------------------------------------------------------------------------

    /// The next frame, or `None` once the server closed the connection. Not bounded: for
    /// callers that bound it. A frame amq-protocol cannot parse fails the test.
    pub async fn next_frame(&mut self) -> Option<AMQPFrame> {
        loop {
            let rest = &self.buf[self.start..];
            if !rest.is_empty() {
                match parse_frame(rest) {
                    Ok((remaining, frame)) => {
                        self.start += rest.len() - remaining.len();
                        return Some(frame);
                    }
                    Err(error) if error.is_incomplete() => {}
                    Err(error) => panic!(
                        "unparsable frame from the server ({error:?}): {:?}",
                        &rest[..rest.len().min(64)]
                    ),
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads more bytes; false once the connection closed (end of stream or an error).
    async fn fill(&mut self) -> bool {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(64 * 1024);
        matches!(self.stream.read_buf(&mut self.buf).await, Ok(n) if n > 0)
    }

    /// The next frame, within `limit`; fails the test if the connection closed.
    pub async fn recv_within(&mut self, limit: Duration) -> AMQPFrame {
        within(limit, "an AMQP frame", self.next_frame())
            .await
            .expect("the server closed the connection while a frame was expected")
    }

    /// The next frame that is not a heartbeat, within [`STEP`].
    pub async fn recv(&mut self) -> AMQPFrame {
        within(STEP, "an AMQP frame", async {
            loop {
                match self.next_frame().await {
                    Some(AMQPFrame::Heartbeat) => continue,
                    Some(frame) => return frame,
                    None => panic!("the server closed the connection while a frame was expected"),
                }
            }
        })
        .await
    }

    /// The next frame, which must be a method on `channel`; the method, within [`STEP`].
    pub async fn recv_method(&mut self, channel: u16) -> AMQPClass {
        match self.recv().await {
            AMQPFrame::Method(on, method) if on == channel => method,
            other => panic!("expected a method on channel {channel}, got {other:?}"),
        }
    }

    /// The next frames are a method on `channel` carrying content, its header and its body;
    /// within [`STEP`].
    pub async fn recv_content(&mut self, channel: u16) -> Content {
        let method = self.recv_method(channel).await;
        let header = match self.recv().await {
            AMQPFrame::Header(on, header) if on == channel => header,
            other => panic!("expected a content header on channel {channel}, got {other:?}"),
        };
        let mut body = Vec::new();
        while (body.len() as u64) < header.body_size {
            match self.recv().await {
                AMQPFrame::Body(on, bytes) if on == channel => body.extend(bytes),
                other => panic!("expected a body frame on channel {channel}, got {other:?}"),
            }
        }
        assert_eq!(
            body.len() as u64,
            header.body_size,
            "body longer than announced"
        );
        Content {
            method,
            properties: header.properties,
            body,
        }
    }

    /// Reads (and discards) frames until the server closes the connection, within `limit`;
    /// false if it did not.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            loop {
                self.buf.clear();
                self.start = 0;
                if !self.fill().await {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }

    /// Every byte the server sends until it closes the connection, within `limit` (the
    /// unparsed bytes already read included).
    pub async fn bytes_until_closed(&mut self, limit: Duration) -> Vec<u8> {
        within(limit, "the server to close the connection", async {
            loop {
                let before = self.buf.len();
                self.buf.reserve(64 * 1024);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(n) if n > 0 => {}
                    _ => {
                        self.buf.truncate(before);
                        return;
                    }
                }
            }
        })
        .await;
        let bytes = self.buf[self.start..].to_vec();
        self.buf.clear();
        self.start = 0;
        bytes
    }

    /// Reads frames until connection.close (returned) or the end of the connection (`None`),
    /// within `limit`; every other frame is skipped.
    pub async fn next_connection_close(&mut self, limit: Duration) -> Option<connection::Close> {
        within(
            limit,
            "connection.close or the end of the connection",
            async {
                loop {
                    match self.next_frame().await? {
                        AMQPFrame::Method(
                            0,
                            AMQPClass::Connection(connection::AMQPMethod::Close(close)),
                        ) => return Some(close),
                        _ => continue,
                    }
                }
            },
        )
        .await
    }

    /// Reads until connection.close, which must carry `code`; answers close-ok and expects the
    /// server to close the connection (each within [`STEP`]). The reply text.
    pub async fn expect_connection_close(&mut self, code: u16) -> String {
        let close = self.next_connection_close(STEP).await.unwrap_or_else(|| {
            panic!("the server closed the connection without connection.close (wanted {code})")
        });
        assert_eq!(
            close.reply_code, code,
            "connection.close {} {:?}, wanted {code}",
            close.reply_code, close.reply_text
        );
        self.finish_close().await;
        close.reply_text.to_string()
    }

    /// Answers a connection.close with close-ok and expects the server to close the
    /// connection within [`STEP`].
    pub async fn finish_close(&mut self) {
        let close_ok = method_frame(
            0,
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
        );
        // The server may already have closed the socket: that is fine.
        let _ = self.try_write(&close_ok).await;
        assert!(
            self.closed_within(STEP).await,
            "the server kept the connection open after close-ok"
        );
    }

    /// Reads until channel.close on `channel`, which must carry `code`; answers close-ok
    /// (within [`STEP`]). The reply text. The connection stays open.
    pub async fn expect_channel_close(&mut self, channel: u16, code: u16) -> String {
        let close = within(STEP, "channel.close", async {
            loop {
                match self.next_frame().await {
                    Some(AMQPFrame::Method(on, AMQPClass::Channel(channel::AMQPMethod::Close(close))))
                        if on == channel =>
                    {
                        return close
                    }
                    Some(AMQPFrame::Method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
                    )) => panic!(
                        "connection.close {} {:?} instead of channel.close {code} on channel {channel}",
                        close.reply_code, close.reply_text
                    ),
                    Some(_) => continue,
                    None => panic!(
                        "the server closed the connection instead of channel {channel} ({code})"
                    ),
                }
            }
        })
        .await;
        assert_eq!(
            close.reply_code, code,
            "channel.close {} {:?}, wanted {code}",
            close.reply_code, close.reply_text
        );
        self.send_method(
            channel,
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
        )
        .await;
        close.reply_text.to_string()
    }

    /// Closes the connection the polite way: connection.close 200, close-ok, then the end of
    /// the connection (each within [`STEP`]; deliveries meanwhile are skipped).
    pub async fn close(&mut self) {
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            })),
        )
        .await;
        within(STEP, "connection.close-ok", async {
            loop {
                match self.next_frame().await {
                    Some(AMQPFrame::Method(
                        0,
                        AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)),
                    )) => return,
                    Some(_) => continue,
                    None => panic!("the server closed the connection before close-ok"),
                }
            }
        })
        .await;
        assert!(
            self.closed_within(STEP).await,
            "the server kept the connection open after close-ok"
        );
    }

    // -- the handshake ----------------------------------------------------------------------

    /// Sends the protocol header; connection.start, within [`STEP`].
    pub async fn hello(&mut self) -> connection::Start {
        self.write(PROTOCOL_HEADER).await;
        match self.recv_method(0).await {
            AMQPClass::Connection(connection::AMQPMethod::Start(start)) => start,
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    /// Sends start-ok with PLAIN credentials and client properties announcing the usual
    /// capabilities; connection.tune, within [`STEP`].
    pub async fn login(&mut self, user: &str, password: &str) -> connection::Tune {
        self.send_method(0, start_ok(user, password)).await;
        match self.recv_method(0).await {
            AMQPClass::Connection(connection::AMQPMethod::Tune(tune)) => {
                self.channel_max = tune.channel_max;
                tune
            }
            other => panic!("expected connection.tune, got {other:?}"),
        }
    }

    /// Sends tune-ok with these values (`frame_max` becomes the client's frame size).
    pub async fn tune_ok(&mut self, channel_max: u16, frame_max: u32, heartbeat: u16) {
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
                channel_max,
                frame_max,
                heartbeat,
            })),
        )
        .await;
        if frame_max != 0 {
            self.frame_max = frame_max;
        }
    }

    /// Sends connection.open of `vhost`; expects open-ok within [`STEP`].
    pub async fn open(&mut self, vhost: &str) {
        self.send_method(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                virtual_host: vhost.into(),
            })),
        )
        .await;
        match self.recv_method(0).await {
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => {}
            other => panic!("expected connection.open-ok, got {other:?}"),
        }
    }

    /// The whole handshake: protocol header, start / start-ok (PLAIN), tune / tune-ok (the
    /// server's channel_max and frame_max, heartbeats off), open / open-ok.
    pub async fn handshake(&mut self, user: &str, password: &str, vhost: &str) -> Handshake {
        self.handshake_with_heartbeat(user, password, vhost, 0)
            .await
    }

    /// [`Client::handshake`] with `heartbeat` seconds in tune-ok.
    pub async fn handshake_with_heartbeat(
        &mut self,
        user: &str,
        password: &str,
        vhost: &str,
        heartbeat: u16,
    ) -> Handshake {
        let start = self.hello().await;
        let tune = self.login(user, password).await;
        self.tune_ok(tune.channel_max, tune.frame_max, heartbeat)
            .await;
        self.open(vhost).await;
        Handshake { start, tune }
    }

    // -- channels and a few methods ----------------------------------------------------------

    /// Opens `channel`; expects open-ok within [`STEP`].
    pub async fn open_channel(&mut self, channel: u16) {
        self.send_method(
            channel,
            AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        )
        .await;
        match self.recv_method(channel).await {
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(_)) => {}
            other => panic!("expected channel.open-ok on {channel}, got {other:?}"),
        }
    }

    /// Declares exclusive queue `name` on `channel` with `arguments`; expects declare-ok.
    pub async fn declare_queue(&mut self, channel: u16, name: &str, arguments: FieldTable) {
        self.send_method(channel, declare_queue_method(name, arguments))
            .await;
        match self.recv_method(channel).await {
            AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => {
                assert_eq!(ok.queue.as_str(), name)
            }
            other => panic!("expected queue.declare-ok, got {other:?}"),
        }
    }

    /// Consumes `queue` on `channel` as `tag` (manual acks unless `no_ack`); expects
    /// consume-ok.
    pub async fn consume(&mut self, channel: u16, queue: &str, tag: &str, no_ack: bool) {
        self.send_method(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
                queue: queue.into(),
                consumer_tag: tag.into(),
                no_local: false,
                no_ack,
                exclusive: false,
                nowait: false,
                arguments: FieldTable::default(),
            })),
        )
        .await;
        match self.recv_method(channel).await {
            AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)) => {
                assert_eq!(ok.consumer_tag.as_str(), tag)
            }
            other => panic!("expected basic.consume-ok, got {other:?}"),
        }
    }

    /// Sends basic.ack of `tag` on `channel`.
    pub async fn ack(&mut self, channel: u16, tag: u64) {
        self.send_method(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: tag,
                multiple: false,
            })),
        )
        .await;
    }

    /// A synchronous round trip on `channel` (basic.qos, answered by qos-ok): everything sent
    /// before it on that channel was processed.
    pub async fn sync(&mut self, channel: u16) {
        self.send_method(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
                prefetch_count: 0,
                global: false,
            })),
        )
        .await;
        match self.recv_method(channel).await {
            AMQPClass::Basic(basic::AMQPMethod::QosOk(_)) => {}
            other => panic!("expected basic.qos-ok, got {other:?}"),
        }
    }
}

/// connection.start-ok with PLAIN credentials for `user` and client properties announcing the
/// capabilities RabbitMQ clients announce.
pub fn start_ok(user: &str, password: &str) -> AMQPClass {
    let mut capabilities = FieldTable::default();
    for capability in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
    ] {
        capabilities.insert(capability.into(), AMQPValue::Boolean(true));
    }
    let mut properties = FieldTable::default();
    properties.insert(
        "product".into(),
        AMQPValue::LongString("mqgate raw test client".into()),
    );
    properties.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
    AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: properties,
        mechanism: "PLAIN".into(),
        response: LongString::from(format!("\0{user}\0{password}")),
        locale: "en_US".into(),
    }))
}

/// queue.declare of an exclusive, non-durable queue `name` with `arguments`.
pub fn declare_queue_method(name: &str, arguments: FieldTable) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
        queue: ShortString::from(name),
        passive: false,
        durable: false,
        exclusive: true,
        auto_delete: false,
        nowait: false,
        arguments,
    }))
}

// ---------------------------------------------------------------------------------------------
// lapin.

/// The lapin URI of guest on vhost `/` at `addr`, with `query` if not empty.
pub fn uri(addr: SocketAddr, query: &str) -> String {
    let mut uri = format!("amqp://guest:guest@{addr}/%2f");
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(query);
    }
    uri
}

/// A lapin connection to `addr` as guest on vhost `/`, within [`STEP`].
pub async fn connect(addr: SocketAddr) -> lapin::Connection {
    connect_uri(&uri(addr, "")).await
}

/// A lapin connection to `uri`, within [`STEP`].
pub async fn connect_uri(uri: &str) -> lapin::Connection {
    within(
        STEP,
        "a lapin connection",
        lapin::Connection::connect(uri, lapin::ConnectionProperties::default()),
    )
    .await
    .unwrap_or_else(|error| panic!("lapin could not connect to {uri}: {error}"))
}

/// A new channel on `connection`, within [`STEP`].
pub async fn open_channel(connection: &lapin::Connection) -> lapin::Channel {
    within(STEP, "a lapin channel", connection.create_channel())
        .await
        .expect("a channel")
}

/// The next item of `consumer`: `None` once the server cancelled it (or it was cancelled).
/// Not bounded.
pub async fn next_item(
    consumer: &mut lapin::Consumer,
) -> Option<lapin::Result<lapin::message::Delivery>> {
    poll_fn(|cx| Pin::new(&mut *consumer).poll_next(cx)).await
}

/// The next delivery of `consumer`, within [`STEP`]; fails the test on a cancel or an error.
pub async fn next_delivery(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
    within(STEP, "a delivery", next_item(consumer))
        .await
        .expect("the consumer was cancelled while a delivery was expected")
        .expect("a delivery, not an error")
}

/// Waits (within [`STEP`]) until `consumer` ends: the server cancelled it. A delivery
/// meanwhile fails the test.
pub async fn consumer_ended(consumer: &mut lapin::Consumer) {
    within(STEP, "the consumer to be cancelled", async {
        loop {
            match next_item(consumer).await {
                None => return,
                Some(Err(_)) => continue,
                Some(Ok(delivery)) => panic!("a delivery instead of a cancel: {delivery:?}"),
            }
        }
    })
    .await;
}

/// Declares queue `name` on `channel` (exclusive to its connection unless `shared`), within
/// [`STEP`].
pub async fn declare_queue(channel: &lapin::Channel, name: &str, shared: bool) -> lapin::Queue {
    let options = lapin::options::QueueDeclareOptions {
        exclusive: !shared,
        ..Default::default()
    };
    within(
        STEP,
        "queue.declare",
        channel.queue_declare(name.into(), options, FieldTable::default()),
    )
    .await
    .unwrap_or_else(|error| panic!("queue.declare {name}: {error}"))
}

/// Deletes queue `name` (a shared queue, at the end of a test), within [`STEP`].
pub async fn delete_queue(channel: &lapin::Channel, name: &str) {
    within(
        STEP,
        "queue.delete",
        channel.queue_delete(name.into(), Default::default()),
    )
    .await
    .unwrap_or_else(|error| panic!("queue.delete {name}: {error}"));
}

/// The number of ready messages in queue `name` (passive declare), within [`STEP`].
pub async fn ready_count(channel: &lapin::Channel, name: &str) -> u32 {
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(
        STEP,
        "passive queue.declare",
        channel.queue_declare(name.into(), options, FieldTable::default()),
    )
    .await
    .unwrap_or_else(|error| panic!("passive queue.declare {name}: {error}"))
    .message_count()
}

/// Publishes `body` to `exchange` with `routing_key` on `channel` and awaits the publisher
/// confirm (the channel must be in confirm mode), within [`STEP`]; the confirmation.
pub async fn publish_confirmed(
    channel: &lapin::Channel,
    exchange: &str,
    routing_key: &str,
    body: &[u8],
    properties: lapin::BasicProperties,
) -> lapin::Confirmation {
    within(STEP, "a confirmed publish", async {
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                Default::default(),
                body,
                properties,
            )
            .await
            .expect("basic.publish")
            .await
            .expect("the publisher confirm")
    })
    .await
}
