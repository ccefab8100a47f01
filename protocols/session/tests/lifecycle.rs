//! How connections end: shutdown, peer close, keepalive, the session's own close, a dropped
//! driver. `on_close` runs exactly once in every case.

mod support;

use std::time::Duration;

use mqgate_session::CloseReason;
use support::{within, Options, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_the_sessions_goodbye() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    server.shutdown.cancel();
    client.expect("GOODBYE").await;
    client.expect_eof().await;
    let probe = conn.probe.clone();
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::Shutdown);
    assert_eq!(probe.closes(), 1);
    assert_eq!(probe.reason(), Some(CloseReason::Shutdown));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_close_is_recorded_and_on_close_runs_once() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    drop(client);
    let probe = conn.probe.clone();
    let report = conn.report().await;
    assert_eq!(report.reason, CloseReason::PeerClosed);
    assert_eq!(probe.closes(), 1);
    assert_eq!(probe.reason(), Some(CloseReason::PeerClosed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_peer_still_gets_its_replies() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    client.send(b"ECHO last words\n").await;
    within(tokio::io::AsyncWriteExt::shutdown(&mut client.writer))
        .await
        .unwrap();
    client.expect("last words").await;
    client.expect_eof().await;
    assert_eq!(conn.report().await.reason, CloseReason::PeerClosed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_session_closes_on_keepalive() {
    let mut options = Options::default();
    options.settings.keepalive = Some(Duration::from_millis(100));
    let mut server = TestServer::start(options).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    client.expect_eof().await;
    let probe = conn.probe.clone();
    assert_eq!(conn.report().await.reason, CloseReason::KeepaliveTimeout);
    assert_eq!(probe.closes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_can_end_the_connection_from_an_event() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    conn.events.send("last".to_string()).await.unwrap();
    conn.events.send("CLOSE".to_string()).await.unwrap();
    client.expect("EVENT last").await;
    client.expect_eof().await;
    assert!(matches!(
        conn.report().await.reason,
        CloseReason::SessionEnded(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_driver_still_runs_on_close_once() {
    let mut server = TestServer::start(Options::default()).await;
    let (mut client, conn) = server.connect().await;
    client.hello("bob").await;
    conn.task.abort();
    let joined = within(conn.task).await;
    assert!(joined.unwrap_err().is_cancelled());
    assert_eq!(conn.probe.closes(), 1);
    assert_eq!(conn.probe.reason(), Some(CloseReason::Dropped));
    client.expect_eof().await;
}
