//! STOMP bad input over raw frames (issue 4, "Bad input"): each case gets an ERROR frame with a
//! clear `message`, then the close, and another client of the same gateway keeps working.
//!
//! Every wait is bounded; a refused frame's effect (or its absence) is checked with a marker
//! round trip, never by sleeping.

#[allow(dead_code)]
#[path = "support/gateway.rs"]
mod gateway;
#[allow(dead_code)]
#[path = "support/stomp.rs"]
mod stomp;

use std::net::SocketAddr;
use std::time::Duration;

use gateway::{queue_stats, within};
use stomp::{connect, frame, unique, Client, Style};

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
        let mut subscriber = connect(addr).await;
        subscriber.subscribe("b", &queue, &[]).await;
        Self {
            subscriber,
            publisher: connect(addr).await,
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
    let (running, addr) = stomp::start().await;
    let mut bystander = Bystander::new(addr).await;
    let queue = unique("never");
    for command in ["SEND", "SUBSCRIBE"] {
        let mut client = Client::open(addr, Style::ESCAPED).await;
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
    let (_running, addr) = stomp::start().await;
    let mut bystander = Bystander::new(addr).await;
    let mut client = Client::open(addr, Style::ESCAPED).await;
    let bytes = endless("CONNECT\naccept-version:1.2\n\n", 64 * 1024);
    refused(&mut client, &bytes, "frame too large", &mut bystander).await;
}

#[tokio::test]
async fn a_frame_over_4_mib_after_connect_is_refused() {
    let (_running, addr) = stomp::start().await;
    let mut bystander = Bystander::new(addr).await;
    let mut client = connect(addr).await;
    let queue = format!("/queue/{}", unique("big"));
    let bytes = endless(&format!("SEND\ndestination:{queue}\n\n"), 4 * 1024 * 1024);
    refused(&mut client, &bytes, "frame too large", &mut bystander).await;

    // Just under the limit is fine.
    let mut client = connect(addr).await;
    let body = vec![b'b'; 4 * 1024 * 1024 - 100];
    client.publish(&queue, &body).await;
}

#[tokio::test]
async fn too_many_headers_and_too_long_headers_are_refused() {
    let (_running, addr) = stomp::start().await;
    let mut bystander = Bystander::new(addr).await;
    let limit = mqgate_stomp::StompSettings::default().max_headers;
    let names: Vec<String> = (0..=limit).map(|n| format!("h{n}")).collect();
    let mut headers: Vec<(&str, &str)> = vec![("destination", "/queue/many")];
    headers.extend(names.iter().map(|name| (name.as_str(), "v")));
    let mut client = connect(addr).await;
    refused(
        &mut client,
        &frame("SEND", &headers, b""),
        "too many headers",
        &mut bystander,
    )
    .await;
    // Before CONNECT too.
    let mut client = Client::open(addr, Style::ESCAPED).await;
    refused(
        &mut client,
        &frame("CONNECT", &headers, b""),
        "too many headers",
        &mut bystander,
    )
    .await;

    let long = "x".repeat(mqgate_stomp::StompSettings::default().max_header_len + 1);
    let mut client = connect(addr).await;
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
    let (_running, addr) = stomp::start().await;
    let mut bystander = Bystander::new(addr).await;
    let queue = format!("/queue/{}", unique("cl"));
    let too_large = (5 * 1024 * 1024).to_string();
    for value in ["-1", "abc", "12x", too_large.as_str()] {
        let mut client = connect(addr).await;
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
    let mut client = connect(addr).await;
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
    let mut client = Client::open(addr, Style::ESCAPED).await;
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
    let (_running, addr) = stomp::start().await;
    let mut bystander = Bystander::new(addr).await;
    let mut client = connect(addr).await;
    refused(
        &mut client,
        b"SEND\ndestination:/queue/x\nno-colon-here\n\n\0",
        "malformed header",
        &mut bystander,
    )
    .await;
    let mut client = connect(addr).await;
    refused(
        &mut client,
        &frame("PUBLISH", &[("destination", "/queue/x")], b""),
        "unknown command",
        &mut bystander,
    )
    .await;
    // Commands are case-sensitive.
    let mut client = connect(addr).await;
    refused(
        &mut client,
        &frame("send", &[("destination", "/queue/x")], b""),
        "unknown command",
        &mut bystander,
    )
    .await;
    // An undefined escape in 1.2 (`\t`), and `\r` in 1.1, which has none.
    let mut client = connect(addr).await;
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
    let (mut client, connected) =
        Client::guest(addr, Style::ESCAPED, &[("accept-version", "1.1")]).await;
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
    let (_running, addr) = stomp::start().await;
    let mut bystander = Bystander::new(addr).await;
    let mut client = connect(addr).await;
    let bytes = frame("SEND", &[("receipt", "r-1")], b"body");
    client.write(&bytes).await;
    let error = client.refused("missing destination header").await;
    assert_eq!(error.header("receipt-id"), Some("r-1"));
    bystander.alive().await;

    let mut client = connect(addr).await;
    refused(
        &mut client,
        &frame("ACK", &[("id", "12345")], b""),
        "unknown ack id",
        &mut bystander,
    )
    .await;
    let mut client = connect(addr).await;
    refused(
        &mut client,
        &frame("ACK", &[("id", "not-a-number")], b""),
        "unknown ack id",
        &mut bystander,
    )
    .await;

    let queue = unique("spoof");
    let mut client = connect(addr).await;
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
    let mut client = connect(addr).await;
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
    let mut client = connect(addr).await;
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
    let (_running, addr) = stomp::start().await;
    let mut bystander = Bystander::new(addr).await;
    let mut bad = Vec::new();
    for n in 0..20 {
        let mut client = Client::open(addr, Style::ESCAPED).await;
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
