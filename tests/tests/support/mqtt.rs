//! MQTT clients for the end-to-end tests: hand-written packets over a raw `TcpStream`, rumqttc
//! helpers for its v4 (3.1.1) and v5 clients, and a probe proving the gateway still serves
//! others.
//!
//! Mount it next to `support/gateway.rs` (as `gateway`, which it uses for its bounds):
//! `#[path = "support/mqtt.rs"] mod mqtt;`. Every wait is bounded by [`STEP`] unless a test
//! names another bound; nothing sleeps to synchronise.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::gateway::STEP;

/// Packet types, as the high nibble of the first byte.
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const SUBACK: u8 = 9;
pub const UNSUBACK: u8 = 11;
pub const DISCONNECT: u8 = 14;

/// A client id no other test in this process uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------------
// Writing packets by hand.

/// A Variable Byte Integer.
pub fn vbi(mut value: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if value == 0 {
            return out;
        }
    }
}

/// A two-byte length and `bytes` (UTF-8 string or binary data; not checked, on purpose).
pub fn string(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A packet: `byte1`, the remaining length, `body`.
pub fn frame(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    out.extend(vbi(body.len()));
    out.extend_from_slice(body);
    out
}

/// A property block with its length in front.
pub fn props(block: &[u8]) -> Vec<u8> {
    let mut out = vbi(block.len());
    out.extend_from_slice(block);
    out
}

/// A CONNECT: protocol `name` and `level`, `flags`, `keepalive`, MQTT 5 `properties` (the block
/// without its length, `None` before 5.0), then `payload` (client id, will, login) as given.
pub fn connect(
    name: &[u8],
    level: u8,
    flags: u8,
    keepalive: u16,
    properties: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = string(name);
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&keepalive.to_be_bytes());
    if let Some(block) = properties {
        body.extend(props(block));
    }
    body.extend_from_slice(payload);
    frame(0x10, &body)
}

/// A 3.1.1 CONNECT with `client_id` (raw bytes), clean session as given, keepalive 30 s.
pub fn connect_v311(client_id: &[u8], clean: bool) -> Vec<u8> {
    connect(
        b"MQTT",
        4,
        u8::from(clean) << 1,
        30,
        None,
        &string(client_id),
    )
}

/// A 3.1 ("MQIsdp", level 3) CONNECT with clean session, keepalive 30 s.
pub fn connect_v31(client_id: &str) -> Vec<u8> {
    connect(b"MQIsdp", 3, 0x02, 30, None, &string(client_id.as_bytes()))
}

/// A 5.0 CONNECT with clean start, keepalive 30 s and the property block `properties`.
pub fn connect_v5(client_id: &[u8], properties: &[u8]) -> Vec<u8> {
    connect(b"MQTT", 5, 0x02, 30, Some(properties), &string(client_id))
}

/// A PUBLISH; `properties` is the MQTT 5 block without its length (`None` for 3.1.x).
pub fn publish(
    qos: u8,
    topic: &[u8],
    pkid: u16,
    properties: Option<&[u8]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    if let Some(block) = properties {
        body.extend(props(block));
    }
    body.extend_from_slice(payload);
    frame(0x30 | (qos << 1), &body)
}

/// A SUBSCRIBE of one filter at `qos`.
pub fn subscribe(pkid: u16, filter: &str, qos: u8, v5: bool) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    body.extend(string(filter.as_bytes()));
    body.push(qos);
    frame(0x82, &body)
}

/// An UNSUBSCRIBE of one filter.
pub fn unsubscribe(pkid: u16, filter: &str, v5: bool) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    if v5 {
        body.push(0);
    }
    body.extend(string(filter.as_bytes()));
    frame(0xA2, &body)
}

/// PUBACK for `pkid`.
pub fn puback(pkid: u16) -> Vec<u8> {
    frame(0x40, &pkid.to_be_bytes())
}

// ---------------------------------------------------------------------------------------------
// Reading answers.

/// One packet read from the server, or the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A whole packet: its first byte and body.
    Packet(u8, Vec<u8>),
    /// The server closed the connection (EOF or reset) with no further packet.
    Closed,
}

/// A CONNACK, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub code: u8,
    /// MQTT 5 properties as (identifier, raw value); empty for 3.1.x.
    pub properties: Vec<(u8, Vec<u8>)>,
}

impl ConnAck {
    /// The raw value of property `id`.
    pub fn property(&self, id: u8) -> Option<&[u8]> {
        self.properties
            .iter()
            .find(|(found, _)| *found == id)
            .map(|(_, value)| value.as_slice())
    }

    /// A Two Byte Integer property.
    pub fn u16_property(&self, id: u8) -> Option<u16> {
        self.property(id)
            .map(|value| u16::from_be_bytes([value[0], value[1]]))
    }

    /// A Four Byte Integer property.
    pub fn u32_property(&self, id: u8) -> Option<u32> {
        self.property(id)
            .map(|value| u32::from_be_bytes([value[0], value[1], value[2], value[3]]))
    }
}

/// Parses an MQTT 5 property block (with its length) from the front of `bytes`.
pub fn parse_properties(bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let (len, len_len) = read_vbi(bytes).expect("property length");
    let mut block = &bytes[len_len..len_len + len];
    let mut out = Vec::new();
    while let [id, rest @ ..] = block {
        let size = match id {
            0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => 1,
            0x13 | 0x21 | 0x22 | 0x23 => 2,
            0x02 | 0x11 | 0x18 | 0x27 => 4,
            0x0B => read_vbi(rest).expect("property").1,
            0x26 => {
                let key = 2 + usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                key + 2 + usize::from(u16::from_be_bytes([rest[key], rest[key + 1]]))
            }
            _ => 2 + usize::from(u16::from_be_bytes([rest[0], rest[1]])),
        };
        out.push((*id, rest[..size].to_vec()));
        block = &rest[size..];
    }
    out
}

fn read_vbi(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (index, byte) in bytes.iter().take(4).enumerate() {
        value |= usize::from(byte & 0x7F) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((value, index + 1));
        }
    }
    None
}

/// A hand-driven MQTT connection.
pub struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes written so far.
    pub sent: usize,
}

impl Raw {
    /// Opens a TCP connection to the gateway.
    pub async fn open(addr: SocketAddr) -> Raw {
        let stream = tokio::time::timeout(STEP, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: Vec::new(),
            sent: 0,
        }
    }

    /// Opens a connection and completes a 3.1.1 CONNECT (CONNACK 0 expected).
    pub async fn v311(addr: SocketAddr, client_id: &str) -> Raw {
        let mut raw = Raw::open(addr).await;
        raw.send(&connect_v311(client_id.as_bytes(), true)).await;
        let ack = raw.connack().await;
        assert_eq!(ack.code, 0, "CONNACK for {client_id}");
        raw
    }

    /// Opens a connection and completes a 5.0 CONNECT (CONNACK 0 expected); returns the CONNACK.
    pub async fn v5(addr: SocketAddr, client_id: &str) -> (Raw, ConnAck) {
        let mut raw = Raw::open(addr).await;
        raw.send(&connect_v5(client_id.as_bytes(), &[])).await;
        let ack = raw.connack_v5().await;
        assert_eq!(ack.code, 0, "CONNACK for {client_id}");
        (raw, ack)
    }

    /// Writes `bytes`; a write the server refused by closing is not an error here (the answer
    /// is what the test reads next).
    pub async fn send(&mut self, bytes: &[u8]) {
        let written = tokio::time::timeout(STEP, self.stream.write_all(bytes))
            .await
            .expect("write timed out");
        if written.is_ok() {
            self.sent += bytes.len();
        }
    }

    /// The next packet, or [`Read::Closed`]; fails the test after [`STEP`].
    pub async fn next(&mut self) -> Read {
        self.next_within(STEP).await
    }

    /// Like [`next`](Self::next), bounded by `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Read {
        tokio::time::timeout(limit, self.read_packet())
            .await
            .expect("timed out waiting for the server")
    }

    async fn read_packet(&mut self) -> Read {
        loop {
            if self.buf.len() >= 2 {
                if let Some((len, len_len)) = read_vbi(&self.buf[1..]) {
                    let total = 1 + len_len + len;
                    if self.buf.len() >= total {
                        let packet: Vec<u8> = self.buf.drain(..total).collect();
                        return Read::Packet(packet[0], packet[1 + len_len..].to_vec());
                    }
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    assert!(
                        self.buf.is_empty(),
                        "connection closed inside a packet: {:02x?}",
                        self.buf
                    );
                    return Read::Closed;
                }
                Ok(read) => self.buf.extend_from_slice(&chunk[..read]),
            }
        }
    }

    /// The next packet, which must not be the close.
    pub async fn packet(&mut self) -> (u8, Vec<u8>) {
        match self.next().await {
            Read::Packet(byte1, body) => (byte1, body),
            Read::Closed => panic!("the server closed the connection"),
        }
    }

    /// The next packet of type `kind`, skipping others (acks of earlier packets, say).
    pub async fn packet_of(&mut self, kind: u8) -> (u8, Vec<u8>) {
        loop {
            let (byte1, body) = self.packet().await;
            if byte1 >> 4 == kind {
                return (byte1, body);
            }
        }
    }

    /// A 3.1.x CONNACK.
    pub async fn connack(&mut self) -> ConnAck {
        let (byte1, body) = self.packet().await;
        assert_eq!(
            byte1, 0x20,
            "CONNACK expected, got {byte1:#04x} {body:02x?}"
        );
        assert_eq!(body.len(), 2, "3.1.x CONNACK body: {body:02x?}");
        ConnAck {
            session_present: body[0] & 1 == 1,
            code: body[1],
            properties: Vec::new(),
        }
    }

    /// An MQTT 5 CONNACK.
    pub async fn connack_v5(&mut self) -> ConnAck {
        let (byte1, body) = self.packet().await;
        assert_eq!(
            byte1, 0x20,
            "CONNACK expected, got {byte1:#04x} {body:02x?}"
        );
        assert!(body.len() >= 3, "MQTT 5 CONNACK body: {body:02x?}");
        ConnAck {
            session_present: body[0] & 1 == 1,
            code: body[1],
            properties: parse_properties(&body[2..]),
        }
    }

    /// The server closes without sending anything more.
    pub async fn closed(&mut self) {
        match self.next().await {
            Read::Closed => {}
            Read::Packet(byte1, body) => {
                panic!("expected a plain close, got {byte1:#04x} {body:02x?}")
            }
        }
    }

    /// An MQTT 5 CONNACK refusing with `code`, then the close.
    pub async fn refused_v5(&mut self, code: u8) {
        let ack = self.connack_v5().await;
        assert_eq!(ack.code, code, "CONNACK reason code");
        self.closed().await;
    }

    /// An MQTT 5 DISCONNECT (skipping acks before it) and the close; returns its reason code.
    pub async fn disconnect_code(&mut self) -> u8 {
        let code = loop {
            match self.next().await {
                Read::Packet(byte1, body) if byte1 >> 4 == DISCONNECT => {
                    assert_eq!(byte1, 0xE0, "DISCONNECT flags");
                    break body.first().copied().unwrap_or(0);
                }
                Read::Packet(byte1, _) if [PUBACK, PUBREC].contains(&(byte1 >> 4)) => {}
                other => panic!("expected DISCONNECT, got {other:02x?}"),
            }
        };
        self.closed().await;
        code
    }

    /// Subscribes to `filter` at `qos` and waits for a SUBACK granting it.
    pub async fn subscribe(&mut self, pkid: u16, filter: &str, qos: u8, v5: bool) {
        self.send(&subscribe(pkid, filter, qos, v5)).await;
        let (_, body) = self.packet_of(SUBACK).await;
        assert_eq!(&body[..2], &pkid.to_be_bytes());
        assert_eq!(*body.last().unwrap(), qos, "SUBACK {body:02x?}");
    }
}

/// A PUBLISH's topic and payload (3.1.x layout; `v5` skips the properties).
pub fn parse_publish(byte1: u8, body: &[u8], v5: bool) -> (String, Vec<u8>) {
    let len = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8(body[2..2 + len].to_vec()).unwrap();
    let mut at = 2 + len;
    if (byte1 >> 1) & 3 > 0 {
        at += 2;
    }
    if v5 {
        let (props_len, len_len) = read_vbi(&body[at..]).unwrap();
        at += len_len + props_len;
    }
    (topic, body[at..].to_vec())
}

// ---------------------------------------------------------------------------------------------
// rumqttc.

/// The rumqttc helpers, alike for its v4 and v5 clients: expanded in [`v4`] and [`v5`], where
/// `AsyncClient`, `ConnAck`, `Event`, `EventLoop`, `MqttOptions`, `Packet` and `Publish` name
/// that version's types.
macro_rules! rumqttc_helpers {
    () => {
        use std::net::SocketAddr;
        use std::time::Duration;

        use crate::gateway::{within, STEP};

        /// Options for client `id` at `addr` with a 5 s keepalive.
        pub fn options(id: &str, addr: SocketAddr) -> MqttOptions {
            let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
            options.set_keep_alive(Duration::from_secs(5));
            options
        }

        /// Polls until `pick` accepts an incoming packet, failing after `limit` or on a
        /// connection error.
        pub async fn wait_for_within<T>(
            limit: Duration,
            events: &mut EventLoop,
            mut pick: impl FnMut(&Packet) -> Option<T>,
        ) -> T {
            within(limit, "waiting for a packet", async {
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(packet)) => {
                            if let Some(found) = pick(&packet) {
                                return found;
                            }
                        }
                        Ok(Event::Outgoing(_)) => {}
                        Err(error) => panic!("connection failed: {error:?}"),
                    }
                }
            })
            .await
        }

        /// [`wait_for_within`] [`STEP`].
        pub async fn wait_for<T>(
            events: &mut EventLoop,
            pick: impl FnMut(&Packet) -> Option<T>,
        ) -> T {
            wait_for_within(STEP, events, pick).await
        }

        /// The CONNACK.
        pub async fn connack(events: &mut EventLoop) -> ConnAck {
            wait_for(events, |p| match p {
                Packet::ConnAck(ack) => Some(ack.clone()),
                _ => None,
            })
            .await
        }

        /// The next SUBACK.
        pub async fn suback(events: &mut EventLoop) {
            wait_for(events, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
        }

        /// The next PUBACK.
        pub async fn puback(events: &mut EventLoop) {
            wait_for(events, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;
        }

        /// The next PUBLISH.
        pub async fn next_publish(events: &mut EventLoop) -> Publish {
            wait_for(events, |p| match p {
                Packet::Publish(publish) => Some(publish.clone()),
                _ => None,
            })
            .await
        }

        /// A client for `options` whose CONNACK has arrived.
        pub async fn connect_with(options: MqttOptions) -> (AsyncClient, EventLoop, ConnAck) {
            let (client, mut events) = AsyncClient::new(options, 32);
            let ack = connack(&mut events).await;
            (client, events, ack)
        }

        /// A connected client `id` with the default [`options`].
        pub async fn connect(addr: SocketAddr, id: &str) -> (AsyncClient, EventLoop) {
            let (client, events, _) = connect_with(options(id, addr)).await;
            (client, events)
        }

        /// Drives an event loop in the background until its connection ends.
        pub fn drive(mut events: EventLoop) -> tokio::task::JoinHandle<()> {
            tokio::spawn(async move { while events.poll().await.is_ok() {} })
        }

        /// A connected client whose event loop runs in the background (a publisher).
        pub async fn publisher(addr: SocketAddr, id: &str) -> AsyncClient {
            let (client, events) = connect(addr, id).await;
            drive(events);
            client
        }
    };
}

/// rumqttc's 3.1.1 client.
pub mod v4 {
    use rumqttc::{
        AsyncClient, ConnAck, Event, EventLoop, MqttOptions, Packet, Publish, QoS,
        SubscribeReasonCode,
    };

    rumqttc_helpers!();

    /// Subscribes `client` to `filter` at `qos` and waits for the SUBACK.
    pub async fn subscribe(client: &AsyncClient, events: &mut EventLoop, filter: &str, qos: QoS) {
        client.subscribe(filter, qos).await.unwrap();
        suback(events).await;
    }

    /// Subscribes `client` to `filter` at `qos` and asserts a SUBACK, within `limit`, granting
    /// exactly that.
    pub async fn subscribe_granted(
        limit: Duration,
        client: &AsyncClient,
        events: &mut EventLoop,
        filter: &str,
        qos: QoS,
    ) {
        client.subscribe(filter, qos).await.unwrap();
        let granted = wait_for_within(limit, events, |p| match p {
            Packet::SubAck(ack) => Some(ack.return_codes.clone()),
            _ => None,
        })
        .await;
        assert_eq!(granted, vec![SubscribeReasonCode::Success(qos)]);
    }
}

/// rumqttc's MQTT 5 client.
pub mod v5 {
    use rumqttc::v5::mqttbytes::v5::{ConnAck, Packet, Publish};
    use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};

    rumqttc_helpers!();
}

/// Proves the gateway still serves other clients: a fresh rumqttc (3.1.1) client subscribes to
/// a topic of its own and gets its own QoS 1 publish back.
pub async fn assert_other_client_works(addr: SocketAddr) {
    let id = unique("probe");
    let topic = format!("probe/{id}");
    let (client, mut events) = AsyncClient::new(v4::options(&id, addr), 16);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    v4::suback(&mut events).await;
    client
        .publish(&topic, QoS::AtLeastOnce, false, "still here")
        .await
        .unwrap();
    let received = v4::next_publish(&mut events).await;
    assert_eq!(received.topic, topic);
    assert_eq!(&received.payload[..], b"still here");
    client.disconnect().await.unwrap();
}
