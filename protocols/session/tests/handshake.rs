//! The handshake phase: accepted, rejected (refusal flushed first), timed out.

mod support;

use std::time::Duration;

use mqgate_session::CloseReason;
use support::{within, Options, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_handshake_starts_the_session() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    client.send(b"ECHO hi\nQUIT\n").await;
    client.expect("hi").await;
    client.expect("BYE").await;
    client.expect_eof().await;
    let probe = conn.probe.clone();
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::Disconnected);
    assert_eq!(report.stats.frames_in, 3, "HELLO, ECHO, QUIT");
    assert_eq!(report.stats.frames_out, 3, "WELCOME, hi, BYE");
    assert_eq!(probe.closes(), 1);
    assert_eq!(probe.reason(), Some(CloseReason::Disconnected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_pipelined_after_the_handshake_reach_the_session() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.send(b"HELLO ann\nECHO one\nECHO two\nQUIT\n").await;
    for expected in ["WELCOME ann", "one", "two", "BYE"] {
        client.expect(expected).await;
    }
    client.expect_eof().await;
    assert_eq!(conn.report().await.reason, CloseReason::Disconnected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_handshake_flushes_its_refusal_then_closes() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.send(b"LET ME IN\n").await;
    client.expect("DENIED").await;
    client.expect_eof().await;
    let probe = conn.probe.clone();
    let report = conn.report().await;
    assert!(
        matches!(report.reason, CloseReason::HandshakeRejected(ref text) if text.contains("LET ME IN")),
        "{:?}",
        report.reason
    );
    assert_eq!(report.stats.frames_out, 1);
    assert_eq!(probe.closes(), 0, "no session was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_times_out_in_the_handshake() {
    let mut options = Options::default();
    options.config.handshake_timeout = Duration::from_millis(200);
    let mut server = TestServer::start(options).await;
    let (mut client, conn) = server.connect().await;
    client.expect_eof().await;
    assert_eq!(conn.report().await.reason, CloseReason::HandshakeTimeout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_closing_during_the_handshake_is_peer_closed() {
    let mut server = TestServer::start(Options::default()).await;
    let (client, conn) = server.connect().await;
    drop(client);
    assert_eq!(conn.report().await.reason, CloseReason::PeerClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_the_handshake_closes_with_shutdown() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.send(b"HEL").await;
    server.shutdown.cancel();
    client.expect_eof().await;
    let probe = conn.probe.clone();
    assert_eq!(within(conn.report()).await.reason, CloseReason::Shutdown);
    assert_eq!(probe.closes(), 0);
}
