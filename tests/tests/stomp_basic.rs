//! STOMP end to end over raw frames: CONNECT/CONNECTED, SUBSCRIBE to `/queue/` and `/topic/`,
//! SEND with custom headers, MESSAGE, receipts, ack modes, against an in-process gateway.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/stomp.rs"]
mod stomp;

use std::net::SocketAddr;

use stomp::{Client, Style};

/// Header values as given and as sent (the tests check escapes verbatim), no `content-length`.
const STYLE: Style = Style::VERBATIM;

/// Connects as guest with `version` and expects CONNECTED.
async fn connect(addr: SocketAddr, version: &str) -> Client {
    Client::guest(addr, STYLE, &[("accept-version", version)])
        .await
        .0
}

#[tokio::test]
async fn connected_announces_version_heartbeat_session_and_server() {
    let (_gateway, addr) = stomp::start().await;
    let mut client = Client::open(addr, STYLE).await;
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
    let (_gateway, addr) = stomp::start().await;
    let mut client = Client::open(addr, STYLE).await;
    client
        .send("CONNECT", &[("accept-version", "2.0")], b"")
        .await;
    let error = client.recv().await;
    assert_eq!(error.command, "ERROR");
    assert_eq!(error.header("version"), Some("1.0,1.1,1.2"));
    assert!(client.closed().await);

    let mut client = Client::open(addr, STYLE).await;
    client
        .send("SEND", &[("destination", "/queue/nope")], b"x")
        .await;
    let error = client.recv().await;
    assert_eq!(error.command, "ERROR");
    assert!(client.closed().await);

    let mut client = Client::open(addr, STYLE).await;
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
    let (_gateway, addr) = stomp::start().await;
    let mut consumer = connect(addr, "1.2").await;
    consumer
        .receipted(
            "SUBSCRIBE",
            &[("id", "s1"), ("destination", "/queue/q"), ("ack", "client")],
            b"",
            "sub-1",
        )
        .await;
    let mut producer = connect(addr, "1.1").await;
    producer
        .receipted(
            "SEND",
            &[
                ("destination", "/queue/q"),
                ("content-type", "text/plain"),
                ("x-custom", "a\\cb"),
            ],
            b"",
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
    consumer
        .receipted("ACK", &[("id", &ack)], b"", "ack-1")
        .await;
    // Acking it again is an unknown id: ERROR and close.
    consumer.send("ACK", &[("id", &ack)], b"").await;
    let error = consumer.recv().await;
    assert_eq!(error.command, "ERROR");
    assert!(consumer.closed().await);
}

#[tokio::test]
async fn topic_subscribers_each_get_a_copy_and_client_ack_is_cumulative() {
    let (_gateway, addr) = stomp::start().await;
    let mut first = connect(addr, "1.2").await;
    first
        .receipted(
            "SUBSCRIBE",
            &[("id", "t"), ("destination", "/topic/a.*")],
            b"",
            "s",
        )
        .await;
    let mut second = connect(addr, "1.2").await;
    second
        .receipted(
            "SUBSCRIBE",
            &[
                ("id", "t2"),
                ("destination", "/topic/a.b"),
                ("ack", "client"),
            ],
            b"",
            "s",
        )
        .await;
    let mut producer = connect(addr, "1.2").await;
    for n in 0..3 {
        producer
            .receipted(
                "SEND",
                &[("destination", "/topic/a.b")],
                b"",
                &format!("r{n}"),
            )
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
    second.receipted("ACK", &[("id", &last)], b"", "a").await;
    second
        .receipted("UNSUBSCRIBE", &[("id", "t2")], b"", "u")
        .await;
    second.receipted("DISCONNECT", &[], b"", "bye").await;
    assert!(second.closed().await);
}

#[tokio::test]
async fn nack_requeues_by_default_and_client_individual_settles_one() {
    let (_gateway, addr) = stomp::start().await;
    let mut producer = connect(addr, "1.2").await;
    for n in 0..2 {
        producer
            .receipted(
                "SEND",
                &[("destination", "/queue/n")],
                b"",
                &format!("r{n}"),
            )
            .await;
    }
    let mut consumer = connect(addr, "1.2").await;
    consumer
        .receipted(
            "SUBSCRIBE",
            &[
                ("id", "s"),
                ("destination", "/queue/n"),
                ("ack", "client-individual"),
                ("prefetch-count", "1"),
            ],
            b"",
            "s",
        )
        .await;
    let first = consumer.recv().await;
    assert_eq!(first.header("redelivered"), Some("false"));
    let ack = first.header("ack").unwrap().to_owned();
    consumer.receipted("NACK", &[("id", &ack)], b"", "n").await;
    let again = consumer.recv().await;
    assert_eq!(again.header("redelivered"), Some("true"));
    assert_eq!(again.body, first.body);
    let ack = again.header("ack").unwrap().to_owned();
    consumer.receipted("ACK", &[("id", &ack)], b"", "a").await;
    let second = consumer.recv().await;
    assert_eq!(second.command, "MESSAGE");
}

#[tokio::test]
async fn stomp_1_0_uses_message_id_and_a_mismatched_user_id_is_refused() {
    let (_gateway, addr) = stomp::start().await;
    let mut client = connect(addr, "1.0").await;
    client
        .receipted(
            "SUBSCRIBE",
            &[("destination", "/queue/old"), ("ack", "client")],
            b"",
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
        .receipted("ACK", &[("message-id", &id)], b"", "a")
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
