//! A loopback MQTT sink for the self-check: just enough of a server to log clients in, take
//! their publishes (acknowledging QoS 1) and, to a subscriber, stream a fixed number of
//! benchmark payloads as fast as the socket takes them.
//!
//! It routes nothing and keeps nothing, so what it costs is parsing fixed headers and writing
//! acks. It speaks MQTT 3.1.1 and 5 to the extent rumqttc needs: CONNACK, PUBACK, SUBACK,
//! PINGRESP (MQTT 5 forms with no properties).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::payload::{nanos_since_origin, Stamp};

/// Largest packet accepted.
const MAX_PACKET: usize = 16 * 1024 * 1024 + 1024;
/// Bytes of PUBLISH packets gathered before one write while streaming.
const STREAM_BATCH: usize = 64 * 1024;

/// A running sink; stops when dropped.
pub struct Sink {
    /// Where it listens (loopback, an ephemeral port).
    pub addr: SocketAddr,
    /// PUBLISH packets received from clients.
    pub received: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the sink streams to each subscriber.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    /// Messages (publisher id 0, sequences from 0).
    pub messages: u64,
    /// Payload size.
    pub size: usize,
}

impl Sink {
    /// Listens on 127.0.0.1, an ephemeral port.
    pub async fn start(stream: Stream) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                connections.spawn(serve(socket, counter.clone(), stream));
            }
        });
        Ok(Self {
            addr,
            received,
            task,
        })
    }
}

fn put_vbi(out: &mut BytesMut, mut value: usize) {
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// A Variable Byte Integer at the front of `bytes`: (value, its length), if complete.
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

/// One whole packet from the front of `buf`: (first byte, body).
fn next_packet(buf: &mut BytesMut) -> Result<Option<(u8, Bytes)>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let Some((length, length_len)) = read_vbi(&buf[1..]) else {
        return if buf.len() >= 5 {
            Err("malformed remaining length")
        } else {
            Ok(None)
        };
    };
    if length > MAX_PACKET {
        return Err("packet too large");
    }
    if buf.len() < 1 + length_len + length {
        return Ok(None);
    }
    let first = buf[0];
    buf.advance(1 + length_len);
    Ok(Some((first, buf.split_to(length).freeze())))
}

/// Serves one client until it disconnects or sends something the sink cannot read.
async fn serve(socket: TcpStream, received: Arc<AtomicU64>, stream: Stream) {
    let _ = socket.set_nodelay(true);
    let (mut read, mut write) = socket.into_split();
    let (out, mut queue) = mpsc::channel::<Bytes>(64);
    let writer = tokio::spawn(async move {
        let mut batch = BytesMut::new();
        while let Some(first) = queue.recv().await {
            batch.extend_from_slice(&first);
            while let Ok(next) = queue.try_recv() {
                batch.extend_from_slice(&next);
            }
            if write.write_all(&batch).await.is_err() {
                return;
            }
            batch.clear();
        }
    });
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut v5 = false;
    let mut streamer: Option<JoinHandle<()>> = None;
    'read: loop {
        loop {
            let (first, body) = match next_packet(&mut buf) {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(_) => break 'read,
            };
            let reply: Option<Bytes> = match first >> 4 {
                1 => {
                    // CONNECT: protocol name (2 + 4 bytes), then the level.
                    v5 = body.get(6) == Some(&5);
                    Some(if v5 {
                        Bytes::from_static(&[0x20, 3, 0, 0, 0])
                    } else {
                        Bytes::from_static(&[0x20, 2, 0, 0])
                    })
                }
                3 => {
                    received.fetch_add(1, Ordering::Relaxed);
                    let qos = (first >> 1) & 3;
                    let topic_len = body
                        .get(..2)
                        .map_or(0, |len| usize::from(u16::from_be_bytes([len[0], len[1]])));
                    match (qos, body.get(2 + topic_len..4 + topic_len)) {
                        (1, Some(id)) => Some(Bytes::copy_from_slice(&[0x40, 2, id[0], id[1]])),
                        _ => None,
                    }
                }
                8 => match subscription(&body, v5) {
                    Some((id, topic, granted)) => {
                        if streamer.is_none() {
                            streamer = Some(tokio::spawn(produce(out.clone(), topic, v5, stream)));
                        }
                        let mut suback = BytesMut::new();
                        suback.put_u8(0x90);
                        suback.put_u8(if v5 { 4 } else { 3 });
                        suback.put_slice(&id);
                        if v5 {
                            suback.put_u8(0);
                        }
                        suback.put_u8(granted);
                        Some(suback.freeze())
                    }
                    None => break 'read,
                },
                12 => Some(Bytes::from_static(&[0xD0, 0])),
                14 => break 'read,
                _ => None,
            };
            if let Some(reply) = reply {
                if out.send(reply).await.is_err() {
                    break 'read;
                }
            }
        }
        buf.reserve(64 * 1024);
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if let Some(streamer) = streamer {
        streamer.abort();
    }
    drop(out);
    let _ = writer.await;
}

/// A SUBSCRIBE's packet id, first topic filter and requested QoS.
fn subscription(body: &[u8], v5: bool) -> Option<([u8; 2], String, u8)> {
    let id = [*body.first()?, *body.get(1)?];
    let mut at = 2;
    if v5 {
        let (length, length_len) = read_vbi(body.get(at..)?)?;
        at += length_len + length;
    }
    let len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
    let topic = std::str::from_utf8(body.get(at + 2..at + 2 + len)?).ok()?;
    let options = *body.get(at + 2 + len)?;
    Some((id, topic.to_owned(), (options & 3).min(1)))
}

/// Streams `stream.messages` QoS 0 PUBLISHes of stamped payloads on `topic`.
async fn produce(out: mpsc::Sender<Bytes>, topic: String, v5: bool, stream: Stream) {
    let mut batch = BytesMut::with_capacity(STREAM_BATCH + stream.size + 64);
    for sequence in 0..stream.messages {
        let payload = Stamp {
            publisher: 0,
            sequence,
            sent_ns: nanos_since_origin(std::time::Instant::now()),
        }
        .encode(stream.size);
        let length = 2 + topic.len() + usize::from(v5) + payload.len();
        batch.put_u8(0x30);
        put_vbi(&mut batch, length);
        batch.put_u16(topic.len() as u16);
        batch.put_slice(topic.as_bytes());
        if v5 {
            batch.put_u8(0);
        }
        batch.put_slice(&payload);
        if batch.len() >= STREAM_BATCH && out.send(batch.split().freeze()).await.is_err() {
            return;
        }
    }
    if !batch.is_empty() {
        let _ = out.send(batch.freeze()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_split_whole() {
        let mut buf = BytesMut::from(&[0x30, 3, 0, 1, b'a', 0xC0][..]);
        let (first, body) = next_packet(&mut buf).unwrap().unwrap();
        assert_eq!((first, &body[..]), (0x30, &[0, 1, b'a'][..]));
        assert_eq!(next_packet(&mut buf), Ok(None), "PINGREQ not whole yet");
        buf.put_u8(0);
        assert_eq!(next_packet(&mut buf).unwrap().unwrap().0, 0xC0);
        let mut bad = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..]);
        assert!(next_packet(&mut bad).is_err());
    }

    #[test]
    fn subscribe_bodies_both_versions() {
        let v4 = [0, 7, 0, 3, b'a', b'/', b'b', 1];
        assert_eq!(subscription(&v4, false), Some(([0, 7], "a/b".into(), 1)));
        let v5 = [0, 7, 0, 0, 1, b'x', 0x2 | 0x4];
        assert_eq!(subscription(&v5, true), Some(([0, 7], "x".into(), 1)));
        assert_eq!(subscription(&[0], false), None);
    }
}
