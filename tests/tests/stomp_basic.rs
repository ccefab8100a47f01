//! STOMP end to end over raw frames: CONNECT/CONNECTED, SUBSCRIBE to `/queue/` and `/topic/`,
//! SEND with custom headers, MESSAGE, receipts, ack modes, against an in-process gateway.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;

use std::net::SocketAddr;

use gateway::{within, STEP};
use mqgate::protocols::Protocol;
use mqgate::{ListenerSpec, RunningGateway, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway with an MQTT and a STOMP listener; returns the STOMP address.
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

/// A frame as read from the wire.
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
}

/// A raw STOMP client.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn open(addr: SocketAddr) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// Connects as guest with `version` and expects CONNECTED.
    async fn connect(addr: SocketAddr, version: &str) -> Self {
        let mut client = Self::open(addr).await;
        client
            .send(
                "CONNECT",
                &[
                    ("accept-version", version),
                    ("host", "/"),
                    ("login", "guest"),
                    ("passcode", "guest"),
                ],
                b"",
            )
            .await;
        let connected = client.recv().await;
        assert_eq!(connected.command, "CONNECTED", "{connected:?}");
        client
    }

    async fn send(&mut self, command: &str, headers: &[(&str, &str)], body: &[u8]) {
        let mut bytes = format!("{command}\n").into_bytes();
        for (name, value) in headers {
            bytes.extend_from_slice(format!("{name}:{value}\n").as_bytes());
        }
        bytes.push(b'\n');
        bytes.extend_from_slice(body);
        bytes.push(0);
        self.stream.write_all(&bytes).await.unwrap();
    }

    /// The next frame (heart-beats skipped), within [`STEP`].
    async fn recv(&mut self) -> Received {
        within(STEP, "a frame", self.read_frame()).await
    }

    async fn read_frame(&mut self) -> Received {
        loop {
            while matches!(self.buf.first(), Some(b'\n' | b'\r')) {
                self.buf.remove(0);
            }
            if let Some(frame) = self.parse() {
                return frame;
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed; buffered {:?}", self.buf);
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(&mut self) -> Option<Received> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
        let mut lines = head.lines();
        let command = lines.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
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

    /// Sends `frame` with a receipt and waits for it.
    async fn with_receipt(&mut self, command: &str, headers: &[(&str, &str)], receipt: &str) {
        let mut all = headers.to_vec();
        all.push(("receipt", receipt));
        self.send(command, &all, b"").await;
        let frame = self.recv().await;
        assert_eq!(frame.command, "RECEIPT", "{frame:?}");
        assert_eq!(frame.header("receipt-id"), Some(receipt));
    }

    /// True once the server closed the connection (within [`STEP`]).
    async fn closed(&mut self) -> bool {
        within(STEP, "the close", async {
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
}

#[tokio::test]
async fn connected_announces_version_heartbeat_session_and_server() {
    let (_gateway, addr) = gateway().await;
    let mut client = Client::open(addr).await;
    client
        .send(
            "STOMP",
            &[
                ("accept-version", "1.0,1.1,1.2"),
                ("host", "/"),
                ("heart-beat", "0,2000"),
            ],
            b"",
        )
        .await;
    let connected = client.recv().await;
    assert_eq!(connected.command, "CONNECTED");
    assert_eq!(connected.header("version"), Some("1.2"));
    assert_eq!(connected.header("heart-beat"), Some("2000,0"));
    assert!(connected.header("session").is_some());
    assert!(connected
        .header("server")
        .is_some_and(|server| server.starts_with("mqgate/")));
}

#[tokio::test]
async fn unsupported_versions_and_frames_before_connect_are_refused() {
    let (_gateway, addr) = gateway().await;
    let mut client = Client::open(addr).await;
    client
        .send("CONNECT", &[("accept-version", "2.0")], b"")
        .await;
    let error = client.recv().await;
    assert_eq!(error.command, "ERROR");
    assert_eq!(error.header("version"), Some("1.0,1.1,1.2"));
    assert!(client.closed().await);

    let mut client = Client::open(addr).await;
    client
        .send("SEND", &[("destination", "/queue/nope")], b"x")
        .await;
    let error = client.recv().await;
    assert_eq!(error.command, "ERROR");
    assert!(client.closed().await);

    let mut client = Client::open(addr).await;
    client
        .send(
            "CONNECT",
            &[
                ("accept-version", "1.2"),
                ("login", "guest"),
                ("passcode", "bad"),
            ],
            b"",
        )
        .await;
    let error = client.recv().await;
    assert_eq!(error.command, "ERROR");
    assert!(client.closed().await);
}

#[tokio::test]
async fn queue_send_and_receive_with_custom_headers_and_receipts() {
    let (_gateway, addr) = gateway().await;
    let mut consumer = Client::connect(addr, "1.2").await;
    consumer
        .with_receipt(
            "SUBSCRIBE",
            &[("id", "s1"), ("destination", "/queue/q"), ("ack", "client")],
            "sub-1",
        )
        .await;
    let mut producer = Client::connect(addr, "1.1").await;
    producer
        .with_receipt(
            "SEND",
            &[
                ("destination", "/queue/q"),
                ("content-type", "text/plain"),
                ("x-custom", "a\\cb"),
            ],
            "send-1",
        )
        .await;
    let message = consumer.recv().await;
    assert_eq!(message.command, "MESSAGE", "{message:?}");
    assert_eq!(message.header("destination"), Some("/queue/q"));
    assert_eq!(message.header("subscription"), Some("s1"));
    assert_eq!(message.header("content-type"), Some("text/plain"));
    assert_eq!(message.header("x-custom"), Some("a\\cb"));
    let ack = message.header("ack").unwrap().to_owned();
    consumer.with_receipt("ACK", &[("id", &ack)], "ack-1").await;
    // Acking it again is an unknown id: ERROR and close.
    consumer.send("ACK", &[("id", &ack)], b"").await;
    let error = consumer.recv().await;
    assert_eq!(error.command, "ERROR");
    assert!(consumer.closed().await);
}

#[tokio::test]
async fn topic_subscribers_each_get_a_copy_and_client_ack_is_cumulative() {
    let (_gateway, addr) = gateway().await;
    let mut first = Client::connect(addr, "1.2").await;
    first
        .with_receipt(
            "SUBSCRIBE",
            &[("id", "t"), ("destination", "/topic/a.*")],
            "s",
        )
        .await;
    let mut second = Client::connect(addr, "1.2").await;
    second
        .with_receipt(
            "SUBSCRIBE",
            &[
                ("id", "t2"),
                ("destination", "/topic/a.b"),
                ("ack", "client"),
            ],
            "s",
        )
        .await;
    let mut producer = Client::connect(addr, "1.2").await;
    for n in 0..3 {
        producer
            .with_receipt("SEND", &[("destination", "/topic/a.b")], &format!("r{n}"))
            .await;
    }
    for _ in 0..3 {
        let message = first.recv().await;
        assert_eq!(message.command, "MESSAGE");
        assert_eq!(message.header("destination"), Some("/topic/a.b"));
        assert_eq!(message.header("ack"), None, "auto mode has no ack header");
    }
    let mut last = String::new();
    for _ in 0..3 {
        let message = second.recv().await;
        last = message.header("ack").unwrap().to_owned();
    }
    // One ACK of the last message settles all three.
    second.with_receipt("ACK", &[("id", &last)], "a").await;
    second
        .with_receipt("UNSUBSCRIBE", &[("id", "t2")], "u")
        .await;
    second.with_receipt("DISCONNECT", &[], "bye").await;
    assert!(second.closed().await);
}

#[tokio::test]
async fn nack_requeues_by_default_and_client_individual_settles_one() {
    let (_gateway, addr) = gateway().await;
    let mut producer = Client::connect(addr, "1.2").await;
    for n in 0..2 {
        producer
            .with_receipt("SEND", &[("destination", "/queue/n")], &format!("r{n}"))
            .await;
    }
    let mut consumer = Client::connect(addr, "1.2").await;
    consumer
        .with_receipt(
            "SUBSCRIBE",
            &[
                ("id", "s"),
                ("destination", "/queue/n"),
                ("ack", "client-individual"),
                ("prefetch-count", "1"),
            ],
            "s",
        )
        .await;
    let first = consumer.recv().await;
    assert_eq!(first.header("redelivered"), Some("false"));
    let ack = first.header("ack").unwrap().to_owned();
    consumer.with_receipt("NACK", &[("id", &ack)], "n").await;
    let again = consumer.recv().await;
    assert_eq!(again.header("redelivered"), Some("true"));
    assert_eq!(again.body, first.body);
    let ack = again.header("ack").unwrap().to_owned();
    consumer.with_receipt("ACK", &[("id", &ack)], "a").await;
    let second = consumer.recv().await;
    assert_eq!(second.command, "MESSAGE");
}

#[tokio::test]
async fn stomp_1_0_uses_message_id_and_a_mismatched_user_id_is_refused() {
    let (_gateway, addr) = gateway().await;
    let mut client = Client::connect(addr, "1.0").await;
    client
        .with_receipt(
            "SUBSCRIBE",
            &[("destination", "/queue/old"), ("ack", "client")],
            "s",
        )
        .await;
    client
        .send(
            "SEND",
            &[("destination", "/queue/old"), ("receipt", "p")],
            b"",
        )
        .await;
    // The MESSAGE and the SEND's RECEIPT race: take both.
    let (one, two) = (client.recv().await, client.recv().await);
    let (message, receipt) = if one.command == "MESSAGE" {
        (one, two)
    } else {
        (two, one)
    };
    assert_eq!(receipt.header("receipt-id"), Some("p"));
    let id = message.header("message-id").unwrap().to_owned();
    client
        .with_receipt("ACK", &[("message-id", &id)], "a")
        .await;
    client
        .send(
            "SEND",
            &[
                ("destination", "/queue/old"),
                ("user-id", "mallory"),
                ("receipt", "x"),
            ],
            b"",
        )
        .await;
    let error = client.recv().await;
    assert_eq!(error.command, "ERROR");
    assert_eq!(error.header("receipt-id"), Some("x"));
    assert!(client.closed().await);
}
