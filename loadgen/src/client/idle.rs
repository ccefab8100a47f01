//! Bare logins for the idle-connections scenario: TCP, the protocol's handshake, nothing
//! more. No client library runs per connection (lapin alone would start a thread for each),
//! so ten thousand of them cost the generator little and the connect rate measured is the
//! broker's.
//!
//! MQTT: CONNECT (clean, keepalive 0: no pings expected) and CONNACK 0. STOMP: CONNECT (1.2,
//! heart-beat 0,0) and CONNECTED. AMQP: protocol header, start/start-ok (PLAIN), tune/tune-ok
//! (heartbeat 0), open/open-ok on vhost `/`.

use anyhow::Context;
use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::stomp_frame;
use super::Options;

use crate::target::{Protocol, Target};

/// Largest answer read during a handshake.
const MAX_ANSWER: usize = 64 * 1024;

/// Opens a connection to `target` and logs in as `client_id` (MQTT) with `options`' user;
/// returns the open socket.
pub async fn login(
    target: &Target,
    client_id: &str,
    options: &Options,
) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(target.authority())
        .await
        .with_context(|| format!("connect {target}"))?;
    stream.set_nodelay(true)?;
    match target.protocol {
        Protocol::Mqtt3 | Protocol::Mqtt5 => {
            let v5 = target.protocol == Protocol::Mqtt5;
            stream
                .write_all(&mqtt_connect(client_id, options, v5)?)
                .await?;
            mqtt_connack(&mut stream).await?;
        }
        Protocol::Stomp => stomp_login(&mut stream, options).await?,
        Protocol::Amqp => amqp_login(&mut stream, options).await?,
    }
    Ok(stream)
}

fn put_string(out: &mut BytesMut, text: &str) -> anyhow::Result<()> {
    out.put_u16(u16::try_from(text.len()).context("string over 65535 bytes")?);
    out.put_slice(text.as_bytes());
    Ok(())
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

/// An MQTT CONNECT: clean session, keepalive 0, user name and password (none when the user
/// name is empty).
fn mqtt_connect(client_id: &str, options: &Options, v5: bool) -> anyhow::Result<BytesMut> {
    let mut body = BytesMut::new();
    put_string(&mut body, "MQTT")?;
    body.put_u8(if v5 { 5 } else { 4 });
    let login = !options.user.is_empty();
    body.put_u8(if login { 0x02 | 0x40 | 0x80 } else { 0x02 });
    body.put_u16(0);
    if v5 {
        body.put_u8(0); // no properties
    }
    put_string(&mut body, client_id)?;
    if login {
        put_string(&mut body, &options.user)?;
        put_string(&mut body, &options.password)?;
    }
    let mut packet = BytesMut::with_capacity(body.len() + 5);
    packet.put_u8(0x10);
    put_vbi(&mut packet, body.len());
    packet.put_slice(&body);
    Ok(packet)
}

/// Reads a CONNACK and checks its return (3.1.1) or reason (5) code is 0.
async fn mqtt_connack(stream: &mut TcpStream) -> anyhow::Result<()> {
    let first = stream.read_u8().await.context("no CONNACK")?;
    anyhow::ensure!(first == 0x20, "expected CONNACK, got packet {first:#04x}");
    let mut length = 0usize;
    for shift in 0..4 {
        let byte = stream.read_u8().await?;
        length |= usize::from(byte & 0x7F) << (7 * shift);
        if byte & 0x80 == 0 {
            break;
        }
    }
    anyhow::ensure!(
        (2..=MAX_ANSWER).contains(&length),
        "CONNACK of {length} bytes"
    );
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await?;
    anyhow::ensure!(body[1] == 0, "CONNACK refused with code {:#04x}", body[1]);
    Ok(())
}

async fn stomp_login(stream: &mut TcpStream, options: &Options) -> anyhow::Result<()> {
    stream
        .write_all(&super::stomp::connect_frame(options))
        .await?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if let Some(frame) = stomp_frame::parse(&mut buf, MAX_ANSWER)? {
            anyhow::ensure!(
                frame.command == "CONNECTED",
                "STOMP login refused: {} {}",
                frame.command,
                frame.header("message").unwrap_or("")
            );
            return Ok(());
        }
        anyhow::ensure!(
            stream.read_buf(&mut buf).await? > 0,
            "closed before CONNECTED"
        );
    }
}

/// One AMQP frame read: type, channel, payload.
async fn amqp_frame(stream: &mut TcpStream) -> anyhow::Result<(u8, u16, Vec<u8>)> {
    let kind = stream
        .read_u8()
        .await
        .context("closed during the AMQP handshake")?;
    let channel = stream.read_u16().await?;
    let size = usize::try_from(stream.read_u32().await?)?;
    anyhow::ensure!(
        size <= MAX_ANSWER,
        "AMQP frame of {size} bytes in the handshake"
    );
    let mut payload = vec![0; size];
    stream.read_exact(&mut payload).await?;
    anyhow::ensure!(
        stream.read_u8().await? == 0xCE,
        "AMQP frame without frame-end"
    );
    Ok((kind, channel, payload))
}

/// Reads the next method frame on channel 0 and checks it is `class`.`method`; returns its
/// arguments. A connection.close instead fails with its reply.
async fn amqp_expect(stream: &mut TcpStream, class: u16, method: u16) -> anyhow::Result<Vec<u8>> {
    let (kind, channel, payload) = amqp_frame(stream).await?;
    anyhow::ensure!(
        kind == 1 && channel == 0 && payload.len() >= 4,
        "not a connection method"
    );
    let found = (
        u16::from_be_bytes([payload[0], payload[1]]),
        u16::from_be_bytes([payload[2], payload[3]]),
    );
    if found == (10, 50) {
        let text = payload
            .get(7..)
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        anyhow::bail!("AMQP connection.close: {text}");
    }
    anyhow::ensure!(
        found == (class, method),
        "expected {class}.{method}, got {found:?}"
    );
    Ok(payload[4..].to_vec())
}

fn amqp_method(class: u16, method: u16, arguments: &[u8]) -> BytesMut {
    let mut frame = BytesMut::with_capacity(arguments.len() + 12);
    frame.put_u8(1);
    frame.put_u16(0);
    frame.put_u32(u32::try_from(arguments.len() + 4).unwrap_or(u32::MAX));
    frame.put_u16(class);
    frame.put_u16(method);
    frame.put_slice(arguments);
    frame.put_u8(0xCE);
    frame
}

fn put_short(out: &mut BytesMut, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(255)];
    out.put_u8(bytes.len() as u8);
    out.put_slice(bytes);
}

async fn amqp_login(stream: &mut TcpStream, options: &Options) -> anyhow::Result<()> {
    stream.write_all(b"AMQP\x00\x00\x09\x01").await?;
    amqp_expect(stream, 10, 10).await?; // connection.start
    let mut start_ok = BytesMut::new();
    start_ok.put_u32(0); // client properties: empty table
    put_short(&mut start_ok, "PLAIN");
    let response = format!("\0{}\0{}", options.user, options.password);
    start_ok.put_u32(u32::try_from(response.len())?);
    start_ok.put_slice(response.as_bytes());
    put_short(&mut start_ok, "en_US");
    stream.write_all(&amqp_method(10, 11, &start_ok)).await?;
    let tune = amqp_expect(stream, 10, 30).await?;
    anyhow::ensure!(tune.len() >= 8, "short connection.tune");
    let mut tune_ok = BytesMut::new();
    tune_ok.put_slice(&tune[..6]); // channel-max and frame-max as proposed
    tune_ok.put_u16(0); // no heartbeats
    stream.write_all(&amqp_method(10, 31, &tune_ok)).await?;
    let mut open = BytesMut::new();
    put_short(&mut open, "/");
    put_short(&mut open, "");
    open.put_u8(0);
    stream.write_all(&amqp_method(10, 40, &open)).await?;
    amqp_expect(stream, 10, 41).await?; // connection.open-ok
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn options() -> Options {
        Options {
            qos: 0,
            window: 1,
            user: "guest".into(),
            password: "guest".into(),
            connect_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn mqtt_connect_golden_bytes() {
        let packet = mqtt_connect("c", &options(), false).unwrap();
        let mut expected = vec![
            0x10, 27, 0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 0, 0, 1, b'c',
        ];
        expected.extend_from_slice(&[0, 5, b'g', b'u', b'e', b's', b't']);
        expected.extend_from_slice(&[0, 5, b'g', b'u', b'e', b's', b't']);
        assert_eq!(&packet[..], &expected[..]);
        let v5 = mqtt_connect("c", &options(), true).unwrap();
        assert_eq!(v5[1], 28, "one more byte: the empty property block");
        assert_eq!(v5[8], 5);
    }

    #[test]
    fn amqp_method_framing() {
        let frame = amqp_method(10, 31, &[1, 2]);
        assert_eq!(&frame[..], &[1, 0, 0, 0, 0, 0, 6, 0, 10, 0, 31, 1, 2, 0xCE]);
    }
}
